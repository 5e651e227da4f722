/* The admin socket server (SPEC §8): binds the socket (with the SPEC §2 fallbacks) and the
 * optional read-only one, checks every peer, and answers the verbs of par/admin.h on its own
 * threads, so it keeps answering through boot, backoff and drain. */
#ifndef PARD_ADMIN_H
#define PARD_ADMIN_H

#include <stdint.h>

#include "par/config.h"
#include "par/metrics.h"

/* Binds and starts serving. Call before any other thread exists (the bind sets the process
 * umask for a moment). A socket that cannot be bound is logged and left out: pard runs on
 * without it. cfg and metrics must outlive admin_stop. Returns 0, or -1 when no socket is
 * served. */
int admin_start(const struct par_config *cfg, struct metrics *metrics, int64_t start_mono_ms);

/* Closes every connection, joins every thread and unlinks the sockets it created. The very
 * last step before the process exits; idempotent. */
void admin_stop(void);

#endif
