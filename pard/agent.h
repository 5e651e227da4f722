/* The agent behind the surfaces (SPEC §4): one interface over the three ways to run agent
 * code — native (a shared object in-process), exec (a supervised worker process speaking
 * HTTP on a Unix socket), python (exec with the shipped Python worker) — or none at all for a
 * REST/UI-only package. The surfaces call only this. */
#ifndef PARD_AGENT_H
#define PARD_AGENT_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "par/config.h"
#include "par/manifest.h"
#include "par/metrics.h"
#include "par/strbuf.h"

enum agent_status {
	AGENT_OK = 0,
	AGENT_ERR_ACTION,         /* the agent reported failure: in-band (success=false) */
	AGENT_ERR_UNKNOWN_ACTION, /* in-band: "No handler found for action: X" */
	AGENT_ERR_DEADLINE,       /* the deadline passed first */
	AGENT_ERR_UNAVAILABLE,    /* no agent, worker down or restarting, draining */
	AGENT_ERR_INTERNAL,       /* the agent broke (bad JSON, crash mid-call) */
};

struct agent_result {
	enum agent_status status;
	char *result_json;   /* AGENT_OK: a JSON text (malloc'd) */
	char *error;         /* otherwise: a sentence (malloc'd) */
};

void agent_result_free(struct agent_result *r);

/* A backend: native.c and worker.c each provide one. */
struct agent_backend {
	const char *name;    /* "native", "exec", "python" */
	/* Install phase (optional): what the agent needs before load (python: its venv). The
	 * boot thread's cancel flag cuts it short. 0 ok with one line for the phase in note;
	 * -1 with a sentence in err. */
	int (*install)(const struct par_config *cfg, const struct par_manifest *m,
		       const char *root, const atomic_bool *cancel, char *note, size_t notelen,
		       char *err, size_t errlen);
	/* Load phase: start/load the agent and wait until it is ready (or the deadline).
	 * 0 ok; -1 with a sentence in err. */
	int (*load)(const struct par_config *cfg, const struct par_manifest *m, const char *root,
		    struct metrics *metrics, int64_t deadline_mono_ms, char *err, size_t errlen);
	/* The agent's actions (a NULL-terminated list owned by the backend, valid until stop)
	 * and the default one (for /invocations). */
	const char *const *(*actions)(void);
	const char *(*default_action)(void);
	void (*invoke)(const char *action, const char *params_json, const char *request_id,
		       int64_t deadline_mono_ms, struct agent_result *out);
	/* One libmicrohttpd handler call of a {BASE}/api/… request (path starts at "/api"),
	 * called exactly like an MHD access handler, upload chunks included. *ctx is the
	 * backend's per-request state; agent_api_completed is called when MHD is done with it. */
	enum MHD_Result (*api)(struct MHD_Connection *c, const char *method, const char *path,
			       const char *upload_data, size_t *upload_data_size, void **ctx,
			       const char *request_id);
	void (*api_completed)(void *ctx);
	bool (*healthy)(void);
	/* Drain step 5: stop the agent (worker: SIGTERM, SIGKILL after grace_ms). */
	void (*stop)(int grace_ms);
	/* SIGCHLD: the main loop offers every reaped child; true when it was the backend's. */
	bool (*child_exited)(pid_t pid, int status);
};

extern const struct agent_backend agent_native_backend;
extern const struct agent_backend agent_exec_backend;
extern const struct agent_backend agent_python_backend;

/* The install phase for the backend the manifest asks for: 1 nothing to install (note says
 * why), 0 installed (note says what), -1 failed (err). */
int agent_install(const struct par_config *cfg, const struct par_manifest *m, const char *root,
		  const atomic_bool *cancel, char *note, size_t notelen, char *err,
		  size_t errlen);

/* Chooses the backend from the manifest (native with an entrypoint, exec, python → exec with
 * the shipped worker; none for a package without agent code) and loads it. */
int agent_load(const struct par_config *cfg, const struct par_manifest *m, const char *root,
	       struct metrics *metrics, int64_t deadline_mono_ms, char *err, size_t errlen);
bool agent_present(void);
/* Invocations running now (REST /invocations and A2A Invoke): /ping says HealthyBusy. */
unsigned agent_invocations(void);
bool agent_healthy(void);            /* true when there is no agent */
/* {"actions":[…],"default":…} */
void agent_capabilities_json(struct strbuf *out);
const char *const *agent_actions(void);

/* Invokes action ("" or NULL: the default action). Unknown actions are refused here, with the
 * message existing A2A clients expect. Counts in-flight invocations. */
void agent_invoke(const char *action, const char *params_json, const char *request_id,
		  int64_t deadline_mono_ms, struct agent_result *out);
bool agent_has_api(void);
enum MHD_Result agent_api(struct MHD_Connection *c, const char *method, const char *path,
			  const char *upload_data, size_t *upload_data_size, void **ctx,
			  const char *request_id);
void agent_api_completed(void *ctx);
void agent_stop(int grace_ms);
bool agent_child_exited(pid_t pid, int status);

#endif
