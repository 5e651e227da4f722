/* The python agent backend (SPEC §4.3): the install phase builds or reuses the package's venv
 * (pyenv.c); load runs the Python worker shipped with pard (pard/python/par_worker.py) with
 * that venv's interpreter, and from there it is an exec worker like any other (worker.c). */
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "pyenv.h"
#include "worker.h"

#ifndef PAR_DATADIR
#define PAR_DATADIR "/usr/local/share"
#endif
#define PYTHON_WORKER_REL "par/python/par_worker.py"

/* Set by install on the boot thread, read by load on the same thread. */
static struct pyenv python_env;

static int python_install(const struct par_config *cfg, const struct par_manifest *m,
			  const char *root, const atomic_bool *cancel, char *note, size_t notelen,
			  char *err, size_t errlen)
{
	return pyenv_prepare(cfg, m, root, cancel, &python_env, note, notelen, err, errlen);
}

/* Next to pard: <bindir>/../share/… when installed, <builddir>/share/… in a build tree, then
 * the configured data directory. */
static int python_worker_script(char *out, size_t n, char *err, size_t errlen)
{
	char exe[PATH_MAX - 64];   /* room for the relative part after it */
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	char places[3][PATH_MAX];
	int k = 0;
	if (len > 0) {
		exe[len] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		snprintf(places[k++], PATH_MAX, "%s/../share/" PYTHON_WORKER_REL, exe);
		snprintf(places[k++], PATH_MAX, "%s/share/" PYTHON_WORKER_REL, exe);
	}
	snprintf(places[k++], PATH_MAX, "%s/" PYTHON_WORKER_REL, PAR_DATADIR);
	for (int i = 0; i < k; i++)
		if (access(places[i], R_OK) == 0 && realpath(places[i], out) && strlen(out) < n)
			return 0;
	snprintf(err, errlen, "the Python worker %s is not installed (looked in %s, %s%s%s)",
		 PYTHON_WORKER_REL, places[0], places[1], k > 2 ? ", " : "", k > 2 ? places[2] : "");
	return -1;
}

static int python_load(const struct par_config *cfg, const struct par_manifest *m,
		       const char *root, struct metrics *metrics, int64_t deadline_mono_ms,
		       char *err, size_t errlen)
{
	char script[PATH_MAX];
	if (python_worker_script(script, sizeof script, err, errlen) < 0)
		return -1;
	const char *argv[12];
	size_t n = 0;
	argv[n++] = python_env.python;
	argv[n++] = "-u";
	argv[n++] = script;
	argv[n++] = "--root";
	argv[n++] = root;
	if (m->entrypoint) {
		argv[n++] = "--entrypoint";
		argv[n++] = m->entrypoint;
	}
	if (m->a2a_service) {
		argv[n++] = "--a2a-service";
		argv[n++] = m->a2a_service;
	}
	if (m->rest_entry) {
		argv[n++] = "--rest-entry";
		argv[n++] = m->rest_entry;
	}
	argv[n] = NULL;
	/* The agent's own subprocesses (pip, scripts of its requirements) find the venv too. */
	char venv[PATH_MAX + 16], path[PATH_MAX + 4096];
	const char *old_path = getenv("PATH");
	snprintf(venv, sizeof venv, "VIRTUAL_ENV=%s", python_env.dir);
	snprintf(path, sizeof path, "PATH=%s/bin%s%s", python_env.dir, old_path ? ":" : "",
		 old_path ? old_path : "");
	const char *env[] = {venv, path, "PYTHONUNBUFFERED=1", NULL};
	struct worker_command cmd = {.argv = argv, .env = env, .origin = "python worker"};
	return worker_load(&cmd, cfg, root, metrics, deadline_mono_ms, err, errlen);
}

const struct agent_backend agent_python_backend = {
	.name = "python",
	.install = python_install,
	.load = python_load,
	.actions = worker_actions,
	.default_action = worker_default_action,
	.invoke = worker_invoke,
	.api = proxy_api,
	.api_completed = proxy_api_completed,
	.healthy = worker_healthy,
	.stop = worker_stop,
	.child_exited = worker_child_exited,
};
