/* The main thread's loop once configuration is valid: listeners, the boot watchdog, signals,
 * the drain (SPEC §6.3) and the exit with backoff after a failure (SPEC §6.4). */
#ifndef PARD_DAEMON_H
#define PARD_DAEMON_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "par/config.h"
#include "par/metrics.h"

/* Drain step 5: the worker gets SIGTERM, then SIGKILL after this long. */
#define DAEMON_WORKER_GRACE_MS 5000

/* The signals the main thread takes with sigtimedwait; every thread blocks them. */
void daemon_signal_set(sigset_t *set);

/* Reads the persisted boot-failure counter (warning on a malformed file). Call once, as
 * soon as AGENT_APP_ID and PAR_STATE_DIR are known; later failures count from it. */
void daemon_load_failures(const struct par_config *cfg);

/* A boot failure: persists the counter, logs, sleeps min(60, 2^n) s (a SIGTERM/SIGINT cuts
 * the sleep short) and returns code for main to exit with. */
int daemon_fail_exit(const struct par_config *cfg, int code, const char *phase,
		     const char *reason);

/* Runs from the listen phase to the end of the drain; returns the exit code. start_mono_ms
 * is when the process started: the boot budget counts from there. */
int daemon_run(const struct par_config *cfg, struct metrics *metrics, int64_t start_mono_ms);

/* The admin socket's drain (SPEC §6.3), carried out by the main loop (woken with SIGUSR2).
 * grace_ms < 0: GRACEFUL_SHUTDOWN_TIMEOUT_SEC. A --no-exit drain keeps the listeners open
 * and stops after the wait for in-flight work, DRAINING until undrain. */
struct daemon_drain_request {
	bool no_exit;
	int64_t grace_ms;
};
/* 0 queued; -1 with a sentence in err when not possible in this state. */
int daemon_request_drain(const struct daemon_drain_request *r, char *err, size_t errlen);
int daemon_request_undrain(char *err, size_t errlen);

struct daemon_drain_info {
	bool active;
	bool no_exit;
	const char *source;        /* "SIGTERM", "SIGINT", "admin" (static) */
	const char *step;          /* "delay", "in_flight", "held", "stopping" (static) */
	int64_t started_epoch_ms;
	int64_t grace_ms;
	unsigned delay_sec;
};
void daemon_drain_info(struct daemon_drain_info *out);

#endif
