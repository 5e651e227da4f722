/* The native agent ABI (SPEC §4.1): what a shared object in an agent package exports so pard
 * can run it in-process. Versioned: pard refuses an object whose abi_version it does not
 * know. Strings returned by the agent are malloc'd (same libc as pard) and freed by pard. */
#ifndef PAR_AGENT_H
#define PAR_AGENT_H

#include <stddef.h>
#include <stdint.h>

#define PAR_AGENT_ABI_VERSION 1
/* The symbol pard looks up with dlsym: `const struct par_agent_v1 par_agent_v1 = {…};` */
#define PAR_AGENT_SYMBOL "par_agent_v1"

/* What invoke returns. */
enum par_agent_rc {
	PAR_AGENT_OK = 0,        /* *result_json holds the result (a JSON text) */
	PAR_AGENT_ERROR = 1,     /* the action failed: *error says why (sent in-band, success=false) */
	PAR_AGENT_FAULT = -1,    /* the agent itself is broken: *error says why (a runtime fault) */
};

struct par_http_header {
	const char *name;
	const char *value;
};

/* One request to {BASE}/api/… (path is what follows /api, starting with '/'). */
struct par_http_request {
	const char *method;
	const char *path;
	const char *query;                       /* without '?', NULL when none */
	const struct par_http_header *headers;   /* n_headers entries */
	size_t n_headers;
	const char *body;
	size_t body_len;
	const char *request_id;
	int64_t deadline_epoch_ms;
};

/* The agent fills it; every pointer malloc'd (pard frees them). */
struct par_http_response {
	int status;
	char *content_type;                      /* NULL: application/json */
	char *body;
	size_t body_len;
	struct par_http_header *headers;         /* extra headers; names and values malloc'd */
	size_t n_headers;
};

struct par_agent_v1 {
	uint32_t abi_version;                    /* PAR_AGENT_ABI_VERSION */
	const char *name;
	const char *const *actions;              /* NULL-terminated */
	const char *default_action;              /* POST /invocations; NULL = actions[0] */

	/* Called once in the load phase. config_json: {"agentAppId","packageRoot","manifest":{…}}.
	 * Returns 0 and sets *state, or non-zero with *error (malloc'd). */
	int (*init)(const char *package_root, const char *config_json, void **state, char **error);

	/* May run on several threads at once. deadline_epoch_ms: the caller gives up then (0 =
	 * none); a long action should check it and return PAR_AGENT_ERROR "deadline exceeded". */
	int (*invoke)(void *state, const char *action, const char *parameters_json,
		      const char *request_id, int64_t deadline_epoch_ms, char **result_json,
		      char **error);

	/* Optional (NULL = the agent has no /api routes). Returns 0 when it filled resp. */
	int (*http)(void *state, const struct par_http_request *req, struct par_http_response *resp);

	/* Optional (NULL = always healthy). 1 healthy, 0 not. */
	int (*health)(void *state);

	/* Optional. Called once after the last invoke has returned. */
	void (*shutdown)(void *state);
};

#endif
