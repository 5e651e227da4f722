/* The one door to agent code: picks the backend the manifest asks for (or none, for a
 * REST/UI-only package), refuses unknown actions the way existing A2A clients expect, and
 * counts what is in flight for the drain. */
#include "agent.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle.h"
#include "par/log.h"

/* Set once by the boot thread, read by every surface and the main loop. */
static const struct agent_backend *_Atomic backend;   /* NULL: no agent code */
/* The backend being loaded: a worker may exit before load returns, and its status must still
 * reach the backend (the main loop reaps it). */
static const struct agent_backend *_Atomic loading;
static atomic_uint invocations;
static const char *const no_actions[] = {NULL};

void agent_result_free(struct agent_result *r)
{
	free(r->result_json);
	free(r->error);
	r->result_json = r->error = NULL;
}

/* The manifest's runtime decides, and whether it names code to run: a package with only a
 * UI or static routes has no agent. */
static const struct agent_backend *choose(const struct par_manifest *m)
{
	switch (m->runtime) {
	case PAR_RUNTIME_NATIVE:
		return m->entrypoint ? &agent_native_backend : NULL;
	case PAR_RUNTIME_EXEC:
		return &agent_exec_backend;
	case PAR_RUNTIME_PYTHON:
		return m->entrypoint || m->a2a_service || m->rest_entry ? &agent_python_backend
									: NULL;
	}
	return NULL;
}

int agent_install(const struct par_config *cfg, const struct par_manifest *m, const char *root,
		  const atomic_bool *cancel, char *note, size_t notelen, char *err,
		  size_t errlen)
{
	err[0] = '\0';
	const struct agent_backend *b = choose(m);
	if (!b || !b->install) {
		snprintf(note, notelen, "%s", b ? "nothing to install for this runtime"
						: "no agent code");
		return 1;
	}
	return b->install(cfg, m, root, cancel, note, notelen, err, errlen) == 0 ? 0 : -1;
}

int agent_load(const struct par_config *cfg, const struct par_manifest *m, const char *root,
	       struct metrics *metrics, int64_t deadline_mono_ms, char *err, size_t errlen)
{
	err[0] = '\0';
	const struct agent_backend *b = choose(m);
	if (!b) {
		lc_set_surface(SURFACE_AGENT, SURF_ABSENT);
		return 0;
	}
	atomic_store(&loading, b);
	int lr = b->load(cfg, m, root, metrics, deadline_mono_ms, err, errlen);
	atomic_store(&loading, NULL);
	if (lr != 0)
		return -1;
	backend = b;
	lc_set_health_probe(agent_healthy);
	lc_set_surface(SURFACE_AGENT, SURF_UP);
	const char *const *a = b->actions();
	size_t n = 0;
	while (a && a[n])
		n++;
	log_emit(PAR_LOG_INFO, "agent.loaded",
		 LOG_FIELDS(LF_STR("backend", b->name), LF_UINT("actions", n),
			    LF_STR("defaultAction", b->default_action())),
		 "%s agent loaded with %zu action%s", b->name, n, n == 1 ? "" : "s");
	return 0;
}

bool agent_present(void) { return backend != NULL; }

bool agent_healthy(void) { return !backend || backend->healthy(); }

const char *const *agent_actions(void)
{
	const char *const *a = backend ? backend->actions() : NULL;
	return a ? a : no_actions;
}

void agent_capabilities_json(struct strbuf *out)
{
	sb_puts(out, "{\"actions\":[");
	const char *const *a = agent_actions();
	for (size_t i = 0; a[i]; i++) {
		if (i)
			sb_putc(out, ',');
		sb_json_str(out, a[i]);
	}
	sb_puts(out, "],\"default\":");
	sb_json_str(out, backend ? backend->default_action() : NULL);
	sb_putc(out, '}');
}

static bool known_action(const char *action)
{
	for (const char *const *a = agent_actions(); *a; a++)
		if (strcmp(*a, action) == 0)
			return true;
	return false;
}

static void set_error(struct agent_result *out, enum agent_status st, const char *fmt,
		      const char *arg)
{
	char msg[512];
	snprintf(msg, sizeof msg, fmt, arg);
	out->status = st;
	out->error = strdup(msg);
}

void agent_invoke(const char *action, const char *params_json, const char *request_id,
		  int64_t deadline_mono_ms, struct agent_result *out)
{
	memset(out, 0, sizeof *out);
	if (!backend) {
		set_error(out, AGENT_ERR_UNAVAILABLE, "%s", "this package has no agent code");
		return;
	}
	if (!action || !*action)
		action = backend->default_action();
	if (!action || !known_action(action)) {
		/* The wording existing A2A clients match on (SPEC §5). */
		set_error(out, AGENT_ERR_UNKNOWN_ACTION, "No handler found for action: %s",
			  action ? action : "");
		return;
	}
	atomic_fetch_add(&invocations, 1);
	backend->invoke(action, params_json ? params_json : "{}", request_id, deadline_mono_ms,
			out);
	atomic_fetch_sub(&invocations, 1);
}

unsigned agent_invocations(void) { return atomic_load(&invocations); }

bool agent_has_api(void) { return backend && backend->api; }

enum MHD_Result agent_api(struct MHD_Connection *c, const char *method, const char *path,
			  const char *upload_data, size_t *upload_data_size, void **ctx,
			  const char *request_id)
{
	return backend->api(c, method, path, upload_data, upload_data_size, ctx, request_id);
}

void agent_api_completed(void *ctx)
{
	if (backend && backend->api_completed && ctx)
		backend->api_completed(ctx);
}

void agent_stop(int grace_ms)
{
	if (!backend)
		return;
	backend->stop(grace_ms);
	lc_set_surface(SURFACE_AGENT, SURF_DOWN);
}

bool agent_child_exited(pid_t pid, int status)
{
	const struct agent_backend *b = backend ? backend : atomic_load(&loading);
	return b && b->child_exited && b->child_exited(pid, status);
}
