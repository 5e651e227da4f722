/* The native backend (SPEC §4.1): an agent shared object loaded in-process with dlopen and
 * called through its versioned par_agent_v1 table, on the caller's thread. */
#include "agent.h"

#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "http.h"
#include "lifecycle.h"
#include "par/agent.h"
#include "par/log.h"
#include "par/strbuf.h"
#include "par/timeutil.h"

/* A request body is handed to the agent in one piece, so it is capped. */
#define NATIVE_BODY_MAX ((size_t)16 * 1024 * 1024)
#define NATIVE_MAX_ACTIONS 256

static struct {
	pthread_mutex_t mu;
	pthread_cond_t idle;          /* broadcast when in_flight drops to 0 */
	bool cond_ready;
	bool open;                    /* calls are admitted: loaded and not stopping */
	unsigned in_flight;           /* invoke, http and health calls inside the agent */
	void *handle;
	const struct par_agent_v1 *agent;
	void *state;
	char *file;                   /* the entrypoint as the manifest wrote it */
	/* Copies of the agent's action names: the surfaces may still list them after stop
	 * has unloaded the object, so they must not point into it. Reachable until exit. */
	char *actions[NATIVE_MAX_ACTIONS + 1];
	char *default_action;
} native = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* --- admission: nothing may be inside the object when stop unloads it ---------------- */

static bool native_enter(void)
{
	pthread_mutex_lock(&native.mu);
	bool ok = native.open;
	if (ok)
		native.in_flight++;
	pthread_mutex_unlock(&native.mu);
	return ok;
}

static void native_leave(void)
{
	pthread_mutex_lock(&native.mu);
	if (--native.in_flight == 0)
		pthread_cond_broadcast(&native.idle);
	pthread_mutex_unlock(&native.mu);
}

/* --- load ----------------------------------------------------------------------------- */

/* The entrypoint, resolved beneath the package root. realpath follows every symlink, so a
 * link (or a "..") that leads out of the package is caught by the prefix check. */
static int native_resolve(const char *root, const char *entry, char *real_root, char *path,
			  char *err, size_t errlen)
{
	char joined[PATH_MAX];
	if (entry[0] == '/') {
		snprintf(err, errlen, "entrypoint %s: must be a path relative to the package root",
			 entry);
		return -1;
	}
	if (!realpath(root, real_root)) {
		snprintf(err, errlen, "package root %s: %s", root, strerror(errno));
		return -1;
	}
	if ((size_t)snprintf(joined, sizeof joined, "%s/%s", real_root, entry) >= sizeof joined) {
		snprintf(err, errlen, "entrypoint %s: path too long", entry);
		return -1;
	}
	if (!realpath(joined, path)) {
		snprintf(err, errlen, "entrypoint %s: %s in the package", entry,
			 errno == ENOENT ? "no such file" : strerror(errno));
		return -1;
	}
	size_t n = strlen(real_root);
	bool inside = strcmp(real_root, "/") == 0 ||
		      (strncmp(path, real_root, n) == 0 && path[n] == '/');
	if (!inside) {
		snprintf(err, errlen,
			 "entrypoint %s: resolves to %s, outside the package root %s (refused)",
			 entry, path, real_root);
		return -1;
	}
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "entrypoint %s: not a regular file", entry);
		return -1;
	}
	return 0;
}

static bool native_action_listed(const struct par_agent_v1 *a, const char *name)
{
	for (size_t i = 0; a->actions[i]; i++)
		if (strcmp(a->actions[i], name) == 0)
			return true;
	return false;
}

/* The table's rules, checked before init runs any agent code. */
static int native_check_table(const struct par_agent_v1 *a, const char *entry, char *err,
			      size_t errlen)
{
	if (a->abi_version != PAR_AGENT_ABI_VERSION) {
		snprintf(err, errlen,
			 "entrypoint %s: %s has abi_version %u; this pard speaks %d", entry,
			 PAR_AGENT_SYMBOL, (unsigned)a->abi_version, PAR_AGENT_ABI_VERSION);
		return -1;
	}
	if (!a->init || !a->invoke) {
		snprintf(err, errlen, "entrypoint %s: %s has no %s function (required)", entry,
			 PAR_AGENT_SYMBOL, !a->init ? "init" : "invoke");
		return -1;
	}
	size_t n = 0;
	while (a->actions && a->actions[n]) {
		if (!a->actions[n][0]) {
			snprintf(err, errlen, "entrypoint %s: action %zu has an empty name", entry,
				 n);
			return -1;
		}
		n++;
	}
	if (n == 0 || n > NATIVE_MAX_ACTIONS) {
		snprintf(err, errlen, "entrypoint %s: %s must list 1..%d actions (it lists %zu)",
			 entry, PAR_AGENT_SYMBOL, NATIVE_MAX_ACTIONS, n);
		return -1;
	}
	if (a->default_action && !native_action_listed(a, a->default_action)) {
		snprintf(err, errlen, "entrypoint %s: default_action %s is not one of its actions",
			 entry, a->default_action);
		return -1;
	}
	return 0;
}

static void native_free_actions(void)
{
	for (size_t i = 0; native.actions[i]; i++) {
		free(native.actions[i]);
		native.actions[i] = NULL;
	}
	free(native.default_action);
	native.default_action = NULL;
}

static int native_copy_actions(const struct par_agent_v1 *a)
{
	size_t i = 0;
	for (; a->actions[i]; i++)
		if (!(native.actions[i] = strdup(a->actions[i])))
			return -1;
	native.actions[i] = NULL;
	native.default_action = strdup(a->default_action ? a->default_action : a->actions[0]);
	return native.default_action ? 0 : -1;
}

static char *native_config_json(const struct par_config *cfg, const struct par_manifest *m,
				const char *real_root)
{
	struct strbuf sb = STRBUF_INIT;
	sb_puts(&sb, "{\"agentAppId\":");
	sb_json_str(&sb, cfg->agent_app_id);
	sb_puts(&sb, ",\"packageRoot\":");
	sb_json_str(&sb, real_root);
	sb_puts(&sb, ",\"manifest\":");
	sb_puts(&sb, m->json ? m->json : "{}");
	sb_putc(&sb, '}');
	if (sb.oom) {
		sb_free(&sb);
		return NULL;
	}
	return sb_steal(&sb);
}

static void native_init_cond(void)
{
	if (native.cond_ready)
		return;
	/* Stop's grace is measured on CLOCK_MONOTONIC, so the condition waits on it too. */
	time_cond_init_mono(&native.idle);
	native.cond_ready = true;
}

/* Opens the entrypoint and finds a table that passes its rules; no agent code runs yet
 * (beyond the object's constructors). *handle is set when the object was opened. */
static const struct par_agent_v1 *native_open(const char *root, const char *entry,
					      char *real_root, void **handle, char *err,
					      size_t errlen)
{
	char path[PATH_MAX];
	if (native_resolve(root, entry, real_root, path, err, errlen) < 0)
		return NULL;
	dlerror();
	*handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!*handle) {
		const char *why = dlerror();
		snprintf(err, errlen, "entrypoint %s: cannot be loaded as a shared object: %s",
			 entry, why ? why : "unknown error");
		return NULL;
	}
	const struct par_agent_v1 *a = dlsym(*handle, PAR_AGENT_SYMBOL);
	if (!a) {
		snprintf(err, errlen, "entrypoint %s: does not export the symbol %s", entry,
			 PAR_AGENT_SYMBOL);
		return NULL;
	}
	return native_check_table(a, entry, err, errlen) < 0 ? NULL : a;
}

/* Runs the agent's init. 0 with *state set, or -1 with the agent's reason in err. */
static int native_start(const struct par_config *cfg, const struct par_manifest *m,
			const struct par_agent_v1 *a, const char *real_root, void **state,
			char *err, size_t errlen)
{
	char *init_err = NULL;
	char *config = native_config_json(cfg, m, real_root);
	int rc = -1;
	if (!config) {
		snprintf(err, errlen, "entrypoint %s: out of memory", m->entrypoint);
		goto out;
	}
	if (a->init(real_root, config, state, &init_err) != 0) {
		snprintf(err, errlen, "entrypoint %s: init failed: %s", m->entrypoint,
			 init_err ? init_err : "(the agent gave no reason)");
		goto out;
	}
	rc = 0;
out:
	free(init_err);
	free(config);
	return rc;
}

/* deadline_mono_ms is not used: init cannot be interrupted, and the boot watchdog already
 * ends the whole boot when the hard limit passes. */
static int native_load(const struct par_config *cfg, const struct par_manifest *m,
		       const char *root, struct metrics *metrics, int64_t deadline_mono_ms,
		       char *err, size_t errlen)
{
	(void)metrics, (void)deadline_mono_ms;
	const char *entry = m->entrypoint;
	char real_root[PATH_MAX];
	void *handle = NULL, *state = NULL;
	int rc = -1;
	int64_t t0 = time_mono_ms();

	if (!entry) {
		snprintf(err, errlen, "runtime native needs an entrypoint (a .so in the package)");
		goto out;
	}
	const struct par_agent_v1 *a = native_open(root, entry, real_root, &handle, err, errlen);
	if (!a)
		goto out;
	if (native_copy_actions(a) < 0 || !(native.file = strdup(entry))) {
		snprintf(err, errlen, "entrypoint %s: out of memory", entry);
		goto out;
	}
	if (native_start(cfg, m, a, real_root, &state, err, errlen) < 0)
		goto out;
	native_init_cond();
	pthread_mutex_lock(&native.mu);
	native.handle = handle;
	native.agent = a;
	native.state = state;
	native.open = true;
	pthread_mutex_unlock(&native.mu);
	handle = NULL;
	log_emit(PAR_LOG_INFO, "agent.native.loaded",
		 LOG_FIELDS(LF_STR("file", entry), LF_STR("name", a->name),
			    LF_INT("durationMs", time_mono_ms() - t0)),
		 "native agent %s loaded from %s", a->name ? a->name : "(unnamed)", entry);
	rc = 0;
out:
	if (rc != 0) {
		native_free_actions();
		free(native.file);
		native.file = NULL;
	}
	if (handle)
		dlclose(handle);
	return rc;
}

/* --- invoke --------------------------------------------------------------------------- */

static void native_fail(struct agent_result *out, enum agent_status st, const char *fmt,
			const char *arg)
{
	char msg[512];
	snprintf(msg, sizeof msg, fmt, arg);
	out->status = st;
	out->error = strdup(msg);
}

static bool native_valid_json(const char *s)
{
	cJSON *j = cJSON_ParseWithOpts(s, NULL, true);
	cJSON_Delete(j);
	return j != NULL;
}

/* Takes ownership of result and error (both malloc'd by the agent). */
static void native_map_result(const char *action, int rc, char *result, char *error,
			      bool late, struct agent_result *out)
{
	if (late) {
		native_fail(out, AGENT_ERR_DEADLINE, "action %s returned after its deadline",
			    action);
	} else if (rc == PAR_AGENT_OK && !result) {
		native_fail(out, AGENT_ERR_INTERNAL, "action %s returned no result", action);
	} else if (rc == PAR_AGENT_OK && !native_valid_json(result)) {
		native_fail(out, AGENT_ERR_INTERNAL, "action %s returned a result that is not JSON",
			    action);
	} else if (rc == PAR_AGENT_OK) {
		out->status = AGENT_OK;
		out->result_json = result;
		result = NULL;
	} else if (rc == PAR_AGENT_ERROR || rc == PAR_AGENT_FAULT) {
		out->status = rc == PAR_AGENT_ERROR ? AGENT_ERR_ACTION : AGENT_ERR_INTERNAL;
		out->error = error ? error
				   : strdup(rc == PAR_AGENT_ERROR ? "the action failed"
								 : "the agent reported a fault");
		error = NULL;
	} else {
		native_fail(out, AGENT_ERR_INTERNAL, "action %s returned an unknown status code",
			    action);
	}
	if (out->status == AGENT_ERR_INTERNAL)
		log_emit(PAR_LOG_ERROR, "agent.native.fault",
			 LOG_FIELDS(LF_STR("action", action), LF_INT("rc", rc),
				    LF_STR("error", out->error)),
			 "native agent fault in action %s: %s", action,
			 out->error ? out->error : "(no message)");
	free(result);
	free(error);
}

static void native_invoke(const char *action, const char *params_json, const char *request_id,
			  int64_t deadline_mono_ms, struct agent_result *out)
{
	memset(out, 0, sizeof *out);
	if (deadline_mono_ms > 0 && time_mono_ms() >= deadline_mono_ms) {
		native_fail(out, AGENT_ERR_DEADLINE, "action %s: the deadline passed before it ran",
			    action);
		return;
	}
	if (!native_enter()) {
		native_fail(out, AGENT_ERR_UNAVAILABLE, "%s", "the native agent is stopped");
		return;
	}
	/* The agent sees wall-clock time; convert the remaining budget, not the instant. */
	int64_t deadline_epoch_ms =
		deadline_mono_ms > 0 ? time_epoch_ms() + (deadline_mono_ms - time_mono_ms()) : 0;
	char *result = NULL, *error = NULL;
	int rc = native.agent->invoke(native.state, action, params_json ? params_json : "{}",
				      request_id ? request_id : "", deadline_epoch_ms, &result,
				      &error);
	bool late = deadline_mono_ms > 0 && time_mono_ms() >= deadline_mono_ms;
	native_leave();
	native_map_result(action, rc, result, error, late, out);
}

/* --- /api ----------------------------------------------------------------------------- */

struct native_api_ctx {
	struct strbuf body;
	bool too_large;
};

/* The same error shape as the REST surface's own errors. */
static enum MHD_Result native_api_error(struct MHD_Connection *c, unsigned status,
					const char *code, const char *message,
					const char *request_id)
{
	return http_queue(c, status, http_error_response(code, message, request_id), request_id);
}

static void native_urlencode(struct strbuf *sb, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch))
			sb_putc(sb, (char)ch);
		else {
			sb_putc(sb, '%');
			sb_putc(sb, hex[ch >> 4]);
			sb_putc(sb, hex[ch & 15]);
		}
	}
}

/* MHD hands over the query already split and decoded; the agent gets it re-encoded. */
static enum MHD_Result native_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
					const char *value)
{
	(void)kind;
	struct strbuf *sb = cls;
	if (sb->len)
		sb_putc(sb, '&');
	native_urlencode(sb, key);
	if (value) {
		sb_putc(sb, '=');
		native_urlencode(sb, value);
	}
	return MHD_YES;
}

struct native_headers {
	struct par_http_header *v;
	size_t n, cap;
};

static enum MHD_Result native_header(void *cls, enum MHD_ValueKind kind, const char *key,
				     const char *value)
{
	(void)kind;
	struct native_headers *h = cls;
	if (h->n < h->cap)
		h->v[h->n++] = (struct par_http_header){key, value ? value : ""};
	return MHD_YES;
}

static void native_response_free(struct par_http_response *resp)
{
	free(resp->content_type);
	free(resp->body);
	for (size_t i = 0; i < resp->n_headers; i++) {
		free((char *)resp->headers[i].name);
		free((char *)resp->headers[i].value);
	}
	free(resp->headers);
	memset(resp, 0, sizeof *resp);
}

/* Turns what the agent filled into an MHD response; the body's ownership passes to MHD. */
static enum MHD_Result native_api_respond(struct MHD_Connection *c,
					  struct par_http_response *resp, const char *request_id)
{
	size_t len = resp->body ? resp->body_len : 0;
	struct MHD_Response *r =
		resp->body ? MHD_create_response_from_buffer(len, resp->body, MHD_RESPMEM_MUST_FREE)
			   : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (r)
		resp->body = NULL;
	else {
		native_response_free(resp);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				resp->content_type ? resp->content_type : "application/json");
	/* Headers MHD manages itself (Content-Length, Connection…) are refused by it: ignored. */
	for (size_t i = 0; i < resp->n_headers; i++)
		if (resp->headers[i].name && resp->headers[i].value)
			MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
	unsigned status = (unsigned)resp->status;
	native_response_free(resp);
	return http_queue(c, status, r, request_id);
}

/* One call of the agent's http handler with the whole request. */
static enum MHD_Result native_api_call(struct MHD_Connection *c, const char *method,
				       const char *path, const char *body, size_t body_len,
				       const char *request_id)
{
	if (!native_enter())
		return native_api_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "agent_unavailable",
					"the native agent is stopped", request_id);
	enum MHD_Result ret = MHD_NO;
	struct strbuf query = STRBUF_INIT;
	struct native_headers hdrs = {0};
	struct par_http_response resp = {0};

	if (!native.agent->http) {
		ret = native_api_error(c, MHD_HTTP_NOT_FOUND, "no_agent_route",
				       "the agent serves no route at this path", request_id);
		goto out;
	}
	int n = MHD_get_connection_values(c, MHD_HEADER_KIND, NULL, NULL);
	hdrs.cap = n > 0 ? (size_t)n : 0;
	if (hdrs.cap && !(hdrs.v = calloc(hdrs.cap, sizeof *hdrs.v)))
		goto out;
	MHD_get_connection_values(c, MHD_HEADER_KIND, native_header, &hdrs);
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, native_query_arg, &query);
	if (query.oom)
		goto out;
	/* path starts at "/api"; the agent sees what follows, always starting with '/'. */
	const char *sub = path + strlen("/api");
	struct par_http_request req = {
		.method = method,
		.path = *sub ? sub : "/",
		.query = query.len ? query.buf : NULL,
		.headers = hdrs.v,
		.n_headers = hdrs.n,
		.body = body ? body : "",
		.body_len = body_len,
		.request_id = request_id,
		.deadline_epoch_ms = 0,
	};
	if (native.agent->http(native.state, &req, &resp) != 0 || resp.status < 100 ||
	    resp.status > 599) {
		native_response_free(&resp);
		log_emit(PAR_LOG_ERROR, "agent.native.http.failed",
			 LOG_FIELDS(LF_STR("method", method), LF_STR("path", path)),
			 "the native agent's http handler failed on %s %s", method, path);
		ret = native_api_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "agent_error",
				       "the agent failed to handle the request", request_id);
		goto out;
	}
	ret = native_api_respond(c, &resp, request_id);
out:
	native_leave();
	sb_free(&query);
	free(hdrs.v);
	return ret;
}

/* A request whose body MHD is still to deliver (in upload chunks). */
static bool native_expects_body(struct MHD_Connection *c, unsigned long long *declared)
{
	*declared = 0;
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl)
		*declared = strtoull(cl, NULL, 10);
	return *declared > 0 ||
	       MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

static enum MHD_Result native_api(struct MHD_Connection *c, const char *method, const char *path,
				  const char *upload_data, size_t *upload_data_size, void **ctx,
				  const char *request_id)
{
	struct native_api_ctx *x = *ctx;
	if (!x) {
		/* Works whether or not the caller already consumed MHD's header-only first call:
		 * a request without a body is answered at once, which MHD allows on any call. */
		unsigned long long declared;
		bool body = native_expects_body(c, &declared);
		if (!*upload_data_size && !body)
			return native_api_call(c, method, path, NULL, 0, request_id);
		if (declared > NATIVE_BODY_MAX)
			return native_api_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
						"the request body is over 16 MiB", request_id);
		if (!(x = calloc(1, sizeof *x)))
			return MHD_NO;
		*ctx = x;
		if (!*upload_data_size)
			return MHD_YES;
	}
	if (*upload_data_size) {
		if (!x->too_large && x->body.len + *upload_data_size > NATIVE_BODY_MAX) {
			x->too_large = true;
			sb_free(&x->body);
		}
		if (!x->too_large)
			sb_append(&x->body, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (x->too_large)
		return native_api_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
					"the request body is over 16 MiB", request_id);
	if (x->body.oom)
		return MHD_NO;
	return native_api_call(c, method, path, x->body.buf, x->body.len, request_id);
}

static void native_api_completed(void *ctx)
{
	struct native_api_ctx *x = ctx;
	if (!x)
		return;
	sb_free(&x->body);
	free(x);
}

/* --- health, actions, stop ------------------------------------------------------------ */

static bool native_healthy(void)
{
	if (!native_enter())
		return false;
	bool ok = !native.agent->health || native.agent->health(native.state) != 0;
	native_leave();
	return ok;
}

static const char *const *native_actions(void)
{
	return (const char *const *)native.actions;
}

static const char *native_default_action(void)
{
	return native.default_action;
}

/* Unloading with a call still inside the object would crash it, so an agent that outlives
 * the grace is left loaded: the process is about to exit anyway. */
static void native_stop(int grace_ms)
{
	pthread_mutex_lock(&native.mu);
	if (!native.handle) {
		pthread_mutex_unlock(&native.mu);
		return;
	}
	native.open = false;
	struct timespec until = time_ms_to_timespec(time_mono_ms() + (grace_ms > 0 ? grace_ms : 0));
	while (native.in_flight > 0 &&
	       pthread_cond_timedwait(&native.idle, &native.mu, &until) != ETIMEDOUT)
		;
	unsigned left = native.in_flight;
	pthread_mutex_unlock(&native.mu);
	if (left) {
		log_emit(PAR_LOG_WARN, "agent.native.stop.busy",
			 LOG_FIELDS(LF_UINT("inFlight", left), LF_INT("graceMs", grace_ms)),
			 "%u native agent call%s still running after %d ms; the agent stays loaded",
			 left, left == 1 ? "" : "s", grace_ms);
		return;
	}
	if (native.agent->shutdown)
		native.agent->shutdown(native.state);
	dlclose(native.handle);
	native.handle = NULL;
	native.agent = NULL;
	native.state = NULL;
	log_emit(PAR_LOG_INFO, "agent.native.stopped", LOG_FIELDS(LF_STR("file", native.file)),
		 "native agent %s shut down and unloaded", native.file);
	free(native.file);
	native.file = NULL;
}

static bool native_child_exited(pid_t pid, int status)
{
	(void)pid, (void)status;
	return false;
}

const struct agent_backend agent_native_backend = {
	.name = "native",
	.load = native_load,
	.actions = native_actions,
	.default_action = native_default_action,
	.invoke = native_invoke,
	.api = native_api,
	.api_completed = native_api_completed,
	.healthy = native_healthy,
	.stop = native_stop,
	.child_exited = native_child_exited,
};
