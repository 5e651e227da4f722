/* The exec agent backend (SPEC §4.2) inside pard: the supervised worker process (worker.c) and
 * the {BASE}/api/… streaming proxy to it (proxy.c). The python backend reuses all of it with
 * its own command line: worker_load with a struct worker_command, the rest as is. */
#ifndef PARD_WORKER_H
#define PARD_WORKER_H

#include <curl/curl.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent.h"
#include "par/config.h"
#include "par/metrics.h"

/* What to run. argv[0] is absolute, relative to the package root when it holds a '/', and a
 * bare name is the package root's file of that name when there is one, else looked up in
 * PATH. env entries ("K=V") override pard's environment, which the worker otherwise
 * inherits. */
struct worker_command {
	const char *const *argv;    /* NULL-terminated, at least argv[0] */
	const char *const *env;     /* NULL-terminated, or NULL */
	const char *origin;         /* where argv came from, for messages: "exec.command" */
};

/* The load phase: starts the worker in root, waits until GET /ping answers 200 and reads
 * GET /capabilities, then starts the supervisor. 0 ok; -1 with a sentence in err. */
int worker_load(const struct worker_command *cmd, const struct par_config *cfg,
		const char *root, struct metrics *metrics, int64_t deadline_mono_ms, char *err,
		size_t errlen);

/* The agent_backend functions, for backends built on the worker. */
const char *const *worker_actions(void);
const char *worker_default_action(void);
void worker_invoke(const char *action, const char *params_json, const char *request_id,
		   int64_t deadline_mono_ms, struct agent_result *out);
bool worker_healthy(void);
void worker_stop(int grace_ms);
bool worker_child_exited(pid_t pid, int status);
pid_t worker_pid(void);     /* the running worker's pid, 0 when none (fault injection) */

enum MHD_Result proxy_api(struct MHD_Connection *c, const char *method, const char *path,
			  const char *upload_data, size_t *upload_data_size, void **ctx,
			  const char *request_id);
void proxy_api_completed(void *ctx);

/* Shared by worker.c and proxy.c. */

/* An easy handle aimed at the worker's socket, from a pool so that connections to the worker
 * are reused; *gen says which worker run it belongs to. NULL when out of memory. */
CURL *worker_curl_take(unsigned *gen);
void worker_curl_give(CURL *c, unsigned gen);
/* The worker answers /ping (the agent surface is up). */
bool worker_up(void);
/* When every call into the worker is cut short: the drain's grace deadline once draining,
 * now once stopped; 0 while serving. Monotonic ms. */
int64_t worker_cancel_at(void);

#endif
