/* The A2A surface (SPEC §5): pixell.agent.AgentService and grpc.health.v1.Health on the gRPC
 * core C API, and the steps of the drain (SPEC §6.3) that belong to a gRPC server. */
#ifndef PARD_A2A_H
#define PARD_A2A_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "par/config.h"
#include "par/metrics.h"

/* Binds [::]:A2A_PORT (0.0.0.0 when the host has no IPv6), never sharing the port
 * (SO_REUSEPORT off), and starts serving. The config and metrics must outlive the server.
 * 0 ok; -1 with a sentence in err (a bind failure: the caller exits with PAR_EXIT_BIND).
 * Refused once a2a_stop has run, so a boot racing a drain cannot start a server nobody
 * stops. */
int a2a_start(const struct par_config *cfg, struct metrics *m, char *err, size_t errlen);

/* Drain step 1. Health turns NOT_SERVING through the lifecycle state itself (Watch streams
 * hear it from lc_on_change); this only records that the drain began. */
void a2a_begin_drain(void);

/* Drain step 3: no new calls (clients get GOAWAY, new connections are refused); calls in
 * flight go on. Open Watch streams end here with UNAVAILABLE, after their NOT_SERVING. */
void a2a_stop_accepting(void);

/* Unary calls received and not yet answered (Watch streams are not counted: they never
 * end on their own, and the drain must not wait for them). */
unsigned a2a_in_flight(void);

/* true while the server runs, has not begun its shutdown and the runtime is healthy: what
 * the REST route {BASE}/a2a/health reports. */
bool a2a_serving(void);

/* Drain step 4's end and teardown: waits for the calls still running until deadline, then
 * cancels them, waits for every call to be released, and frees the server, its queues and
 * threads, and gRPC itself. Handlers stuck in agent code are waited for a little longer;
 * if they still do not return, the teardown is skipped (logged) rather than abort or hang.
 * Idempotent; a no-op when never started. */
void a2a_stop(int64_t deadline_mono_ms);

#endif
