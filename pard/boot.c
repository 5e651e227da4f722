/* The boot thread: fetch → verify → extract (package.c) → manifest → install → load →
 * surfaces → probe, each phase timed in the lifecycle. */
#include "boot.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "par/exitcodes.h"
#include "par/log.h"
#include "par/manifest.h"
#include "par/timeutil.h"
#include "a2a.h"
#include "agent.h"
#include "listen.h"
#include "package.h"
#include "rest.h"
#include "ui.h"

/* How long the load phase waits for an agent to answer (a worker's /ping); the hard boot
 * limit, when shorter, ends the wait first. */
#define AGENT_LOAD_WAIT_MS 120000

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread;
	bool started;
	bool joined;
	bool cancel;
	atomic_bool cancel_flag;  /* the same request, for the download's progress callback */
	pthread_t notify;
	const struct par_config *cfg;
	struct metrics *metrics;
	struct boot_outcome out;
} boot = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

struct boot_outcome boot_outcome(void)
{
	pthread_mutex_lock(&boot.mu);
	struct boot_outcome o = boot.out;
	pthread_mutex_unlock(&boot.mu);
	return o;
}

/* A wait the cancel request cuts short. Returns -1 when cancelled. */
static int boot_wait_ms(uint32_t ms)
{
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&boot.mu);
	while (!boot.cancel &&
	       pthread_cond_timedwait(&boot.cond, &boot.mu, &deadline) != ETIMEDOUT)
		;
	int r = boot.cancel ? -1 : 0;
	pthread_mutex_unlock(&boot.mu);
	return r;
}

static bool boot_cancelled(void)
{
	pthread_mutex_lock(&boot.mu);
	bool c = boot.cancel;
	pthread_mutex_unlock(&boot.mu);
	return c;
}

static int fail(enum lc_phase phase, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(enum lc_phase phase, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&boot.mu);
	vsnprintf(boot.out.reason, sizeof boot.out.reason, fmt, ap);
	boot.out.exit_code = code;
	boot.out.phase = phase;
	pthread_mutex_unlock(&boot.mu);
	va_end(ap);
	lc_phase_end(phase, PHS_FAILED, boot.out.reason);
	return -1;
}

static int phase_manifest(const char *root, const struct par_manifest **out)
{
	lc_phase_begin(PH_MANIFEST);
	struct par_manifest *m = calloc(1, sizeof *m);
	struct manifest_problems probs = {0};
	if (!m)
		return fail(PH_MANIFEST, PAR_EXIT_INTERNAL, "out of memory");
	if (manifest_load_dir(root, m, &probs) < 0) {
		for (size_t i = 0; i < probs.n; i++)
			log_emit(PAR_LOG_ERROR, "package.manifest.invalid",
				 LOG_FIELDS(LF_STR("file", "agent.yaml"),
					    LF_STR("key", probs.v[i].where),
					    LF_STR("rule", probs.v[i].rule)),
				 "agent.yaml: %s: %s", probs.v[i].where, probs.v[i].rule);
		size_t n = probs.n;
		manifest_problems_free(&probs);
		free(m);
		return fail(PH_MANIFEST, PAR_EXIT_LOAD, "agent.yaml in %s has %zu problem%s", root,
			    n, n == 1 ? "" : "s");
	}
	manifest_problems_free(&probs);
	char note[96];
	snprintf(note, sizeof note, "%s %s (%s)", m->name, m->version,
		 manifest_runtime_name(m->runtime));
	lc_set_manifest(m);   /* the lifecycle owns it now; it outlives the boot thread */
	*out = m;
	lc_phase_end(PH_MANIFEST, PHS_DONE, note);
	return 0;
}

/* What the agent needs before it can load (a Python package's venv); timed like every
 * phase, so it counts toward the boot budget, and the budget's abort cuts it short. */
static int phase_install(const struct par_config *cfg, const struct par_manifest *m,
			 const char *root)
{
	lc_phase_begin(PH_INSTALL);
	char note[160], err[512];
	int r = agent_install(cfg, m, root, &boot.cancel_flag, note, sizeof note, err,
			      sizeof err);
	if (r < 0)
		return fail(PH_INSTALL, PAR_EXIT_LOAD, "%s", err);
	lc_phase_end(PH_INSTALL, r == 0 ? PHS_DONE : PHS_SKIPPED, note);
	return 0;
}

static int phase_load(const struct par_config *cfg, const struct par_manifest *m,
		      const char *root)
{
	lc_phase_begin(PH_LOAD);
	if (cfg->faults.boot_delay_ms) {
		log_emit(PAR_LOG_WARN, "fault.boot.delay",
			 LOG_FIELDS(LF_UINT("delayMs", cfg->faults.boot_delay_ms)),
			 "injected fault: load phase delayed %u ms", cfg->faults.boot_delay_ms);
		if (boot_wait_ms(cfg->faults.boot_delay_ms) < 0)
			return fail(PH_LOAD, PAR_EXIT_LOAD, "cancelled");
	}
	char err[1024];
	if (agent_load(cfg, m, root, boot.metrics, time_mono_ms() + AGENT_LOAD_WAIT_MS, err,
		       sizeof err) != 0)
		return fail(PH_LOAD, PAR_EXIT_LOAD, "%s", err);
	lc_phase_end(PH_LOAD, PHS_DONE, agent_present() ? "agent loaded" : "no agent code");
	return 0;
}

/* The UI's files, on UI_PORT (unless 0 or shared with REST) and, when MULTIPLEXED, under
 * {BASE}/ui/ on the REST port (rest.c routes it). */
/* gRPC serves a package that declares a2a, and any package with agent code: its actions
 * are callable over A2A whether or not the manifest says so. */
static int start_a2a(const struct par_config *cfg, const struct par_manifest *m)
{
	if (!m->has_a2a && !agent_present()) {
		lc_set_surface(SURFACE_A2A, SURF_ABSENT);
		return 0;
	}
	char err[400];
	if (a2a_start(cfg, boot.metrics, err, sizeof err) != 0) {
		log_emit(PAR_LOG_ERROR, "a2a.bind.failed",
			 LOG_FIELDS(LF_STR("variable", "A2A_PORT"), LF_UINT("port", cfg->a2a_port),
				    LF_STR("error", err)),
			 "A2A listener: %s", err);
		return fail(PH_SURFACES, PAR_EXIT_BIND, "A2A listener: %s", err);
	}
	lc_set_surface(SURFACE_A2A, SURF_UP);
	return 0;
}

static int start_ui(const struct par_config *cfg, const struct par_manifest *m, const char *root)
{
	char err[400];
	if (!m->has_ui) {
		lc_set_surface(SURFACE_UI, SURF_ABSENT);
		return 0;
	}
	if (ui_open(cfg, m, root, err, sizeof err) != 0)
		return fail(PH_SURFACES, PAR_EXIT_LOAD, "%s", err);
	bool own_port = cfg->ui_port && cfg->ui_port != cfg->rest_port;
	if (!own_port && !cfg->multiplexed) {
		log_emit(PAR_LOG_WARN, "ui.disabled", LOG_NOFIELDS,
			 "the package has a UI but UI_PORT=0 and MULTIPLEXED=false: not served");
		lc_set_surface(SURFACE_UI, SURF_ABSENT);
		return 0;
	}
	if (own_port) {
		int fd = listen_tcp(cfg->ui_port, err, sizeof err);
		if (fd < 0) {
			log_emit(PAR_LOG_ERROR, "ui.bind.failed",
				 LOG_FIELDS(LF_STR("variable", "UI_PORT"), LF_UINT("port", cfg->ui_port),
					    LF_STR("error", err)),
				 "UI listener: %s", err);
			return fail(PH_SURFACES, PAR_EXIT_BIND, "UI listener: %s", err);
		}
		if (rest_start_ui(fd) != 0)
			return fail(PH_SURFACES, PAR_EXIT_BIND, "the UI HTTP server did not start");
		log_emit(PAR_LOG_INFO, "ui.listening", LOG_FIELDS(LF_UINT("port", cfg->ui_port)),
			 "UI listening on port %u", cfg->ui_port);
	}
	lc_set_surface(SURFACE_UI, SURF_UP);
	return 0;
}

/* Every surface the package declares and this build serves; REST is already up. */
static int phase_surfaces(const struct par_config *cfg, const struct par_manifest *m,
			  const char *root)
{
	lc_phase_begin(PH_SURFACES);
	if (start_a2a(cfg, m) != 0)
		return -1;
	if (start_ui(cfg, m, root) != 0)
		return -1;
	lc_phase_end(PH_SURFACES, PHS_DONE, NULL);
	return 0;
}

static void *boot_main(void *arg)
{
	(void)arg;
	const struct par_config *cfg = boot.cfg;
	struct package_result pr;
	int r = package_prepare(cfg, &boot.cancel_flag, &pr);
	if (r != 0) {
		pthread_mutex_lock(&boot.mu);
		snprintf(boot.out.reason, sizeof boot.out.reason, "%s", pr.reason);
		boot.out.exit_code = pr.exit_code;
		boot.out.phase = pr.phase;
		pthread_mutex_unlock(&boot.mu);
	}
	const struct par_manifest *m = NULL;
	if (r == 0)
		r = phase_manifest(pr.root, &m);
	if (r == 0)
		r = phase_install(cfg, m, pr.root);
	if (r == 0)
		r = phase_load(cfg, m, pr.root);
	if (r == 0)
		r = phase_surfaces(cfg, m, pr.root);
	package_result_free(&pr);
	if (r == 0) {
		lc_phase_begin(PH_PROBE);
		lc_phase_end(PH_PROBE, PHS_DONE, NULL);
		if (boot_cancelled())
			r = fail(PH_PROBE, PAR_EXIT_LOAD, "cancelled");
	}
	pthread_mutex_lock(&boot.mu);
	boot.out.ok = r == 0;
	boot.out.done = true;
	pthread_mutex_unlock(&boot.mu);
	pthread_kill(boot.notify, SIGUSR1);
	return NULL;
}

int boot_start(const struct par_config *cfg, struct metrics *metrics, pthread_t notify_thread)
{
	boot.cfg = cfg;
	boot.metrics = metrics;
	boot.notify = notify_thread;
	/* The phase waits measure against CLOCK_MONOTONIC, so the condition must too. */
	pthread_cond_destroy(&boot.cond);
	time_cond_init_mono(&boot.cond);
	int e = pthread_create(&boot.thread, NULL, boot_main, NULL);
	if (e) {
		log_emit(PAR_LOG_ERROR, "boot.thread.failed", LOG_NOFIELDS,
			 "cannot start the boot thread: %s", strerror(e));
		return -1;
	}
	boot.started = true;
	return 0;
}

bool boot_cancel_and_join(int wait_ms)
{
	if (!boot.started || boot.joined)
		return true;
	pthread_mutex_lock(&boot.mu);
	boot.cancel = true;
	atomic_store(&boot.cancel_flag, true);
	pthread_cond_broadcast(&boot.cond);
	pthread_mutex_unlock(&boot.mu);

	int64_t deadline = time_mono_ms() + wait_ms;
	while (!boot_outcome().done) {
		if (time_mono_ms() >= deadline)
			return false;
		struct timespec ts = {0, 5 * 1000000L};
		nanosleep(&ts, NULL);
	}
	pthread_join(boot.thread, NULL);
	boot.joined = true;
	return true;
}
