/* The boot sequence (SPEC §6.1), run on its own thread so the main thread stays free to
 * watch the budget and answer signals while a phase is slow. */
#ifndef PARD_BOOT_H
#define PARD_BOOT_H

#include <pthread.h>
#include <stdbool.h>

#include "lifecycle.h"
#include "par/config.h"
#include "par/metrics.h"

struct boot_outcome {
	bool done;            /* the thread has finished (READY or failed) */
	bool ok;
	int exit_code;        /* PAR_EXIT_* when !ok */
	enum lc_phase phase;  /* where it failed */
	char reason[1024];
};

/* Starts the boot thread at phase `fetch` (config and listen are the main thread's).
 * When it finishes it sends SIGUSR1 to notify_thread. 0 ok, -1 otherwise. */
int boot_start(const struct par_config *cfg, struct metrics *metrics, pthread_t notify_thread);

/* Copies the outcome (done=false while still running). */
struct boot_outcome boot_outcome(void);

/* Asks the boot to stop at its next cancellation point (the waits inside phases) and joins
 * it for at most wait_ms. Returns true when the thread has ended and was joined. */
bool boot_cancel_and_join(int wait_ms);

#endif
