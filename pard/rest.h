/* The REST surface (SPEC §5): reserved routes, request ids, JSON errors, and the drain
 * steps that belong to an HTTP listener. */
#ifndef PARD_REST_H
#define PARD_REST_H

#include <stdbool.h>
#include <stdint.h>

#include "par/config.h"
#include "par/metrics.h"

/* Starts serving on the already-listening fd (ownership passes). The config and metrics
 * must outlive the server. 0 ok, -1 (logged) otherwise. */
int rest_start(int listen_fd, const struct par_config *cfg, struct metrics *metrics);

/* The UI's own listener (UI_PORT): every path is a UI file. Same drain as REST. */
int rest_start_ui(int listen_fd);

/* Drain step 3: stop accepting. New connections are refused at once (not left hanging in
 * the backlog); connections already open are served, each response with Connection: close. */
void rest_stop_accepting(void);

unsigned rest_in_flight(void);       /* requests received and not yet answered */
unsigned rest_connections(void);     /* open client connections */

/* Closes every connection and frees the server. Call after the in-flight wait. */
void rest_stop(void);

#endif
