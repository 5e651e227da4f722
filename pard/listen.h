/* TCP listening sockets for the surfaces: dual-stack, and never shared with another
 * process (no SO_REUSEPORT: a taken port is a bind error, SPEC §12.14). */
#ifndef PARD_LISTEN_H
#define PARD_LISTEN_H

#include <stddef.h>
#include <stdint.h>

/* Binds and listens on port (all addresses, IPv6 dual-stack when the host has IPv6).
 * Returns the non-blocking, close-on-exec fd, or -1 with a sentence in err. */
int listen_tcp(uint16_t port, char *err, size_t errlen);

#endif
