/* The main thread after configuration: bind REST first, start the boot thread, then wait on
 * signals and deadlines — the boot watchdog, the backoff-reset window, SIGTERM's drain. */
#include "daemon.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "a2a.h"
#include "agent.h"
#include "boot.h"
#include "lifecycle.h"
#include "listen.h"
#include "par/backoff.h"
#include "par/exitcodes.h"
#include "par/log.h"
#include "par/timeutil.h"
#include "rest.h"
#include "subproc.h"

static unsigned persisted_failures;

/* Drains the admin socket asks for: its thread queues the request here and wakes the main
 * loop with SIGUSR2, which carries it out (the drain is the main thread's job). */
static struct {
	pthread_mutex_t mu;
	pthread_t main;
	bool main_known;
	bool want_drain, want_undrain;
	struct daemon_drain_request req;
	struct daemon_drain_info info;
} dd = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* What drain() returns besides an exit code when the process goes on living. */
#define DRAIN_HELD (-1)       /* drain --no-exit finished: DRAINING until undrain */
#define DRAIN_UNDRAINED (-2)  /* undrain cut a --no-exit drain short */

/* Drain step 5: a worker gets SIGTERM, then SIGKILL after this long. */
#define WORKER_GRACE_MS DAEMON_WORKER_GRACE_MS

/* "SIGTERM", as operators write it (strsignal would say "Terminated"). */
static const char *signame(int sig)
{
	switch (sig) {
	case SIGTERM: return "SIGTERM";
	case SIGINT: return "SIGINT";
	default: return "signal";
	}
}

void daemon_signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGCHLD);
	sigaddset(set, SIGUSR1);   /* the boot thread has finished */
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR2);   /* an admin socket request (drain, undrain) is waiting */
}

/* pard may be PID 1: every orphan in the container becomes its child. The agent's worker is
 * one of them, and its supervisor wants the status first. */
static void reap_children(void)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (agent_child_exited(pid, status) || subproc_child_exited(pid, status))
			continue;
		log_emit(PAR_LOG_DEBUG, "process.reaped", LOG_FIELDS(LF_INT("pid", pid)),
			 "reaped child %d", (int)pid);
	}
}

/* Waits up to ms for a stop signal (and, when admin, an admin request: SIGUSR2), reaping
 * children and ignoring the rest meanwhile. Returns the signal, or 0 when the time ran out. */
static int wait_signal(int64_t ms, bool admin)
{
	sigset_t set;
	daemon_signal_set(&set);
	int64_t deadline = time_mono_ms() + ms;
	for (;;) {
		int64_t left = deadline - time_mono_ms();
		if (left <= 0)
			return 0;
		struct timespec ts = time_ms_to_timespec(left);
		int sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT || (admin && sig == SIGUSR2))
			return sig;
		if (sig == SIGCHLD)
			reap_children();
	}
}

void daemon_load_failures(const struct par_config *cfg)
{
	if (!cfg->state_dir || !cfg->agent_app_id)
		return;
	char *warning = NULL;
	int r = backoff_state_read(cfg->state_dir, cfg->agent_app_id, &persisted_failures,
				   &warning);
	if (r != 0)
		log_emit(PAR_LOG_WARN, "boot.backoff.state.invalid",
			 LOG_FIELDS(LF_STR("stateDir", cfg->state_dir)),
			 "%s", warning ? warning : "boot-failure counter unreadable");
	free(warning);
}

int daemon_fail_exit(const struct par_config *cfg, int code, const char *phase,
		     const char *reason)
{
	unsigned n = cfg->boot_failure_count > persisted_failures ? cfg->boot_failure_count
								  : persisted_failures;
	bool persisted = false;
	if (cfg->state_dir && cfg->agent_app_id) {
		if (backoff_state_write(cfg->state_dir, cfg->agent_app_id, n + 1) == 0)
			persisted = true;
		else
			log_emit(PAR_LOG_WARN, "boot.backoff.state.write_failed",
				 LOG_FIELDS(LF_STR("stateDir", cfg->state_dir),
					    LF_STR("error", strerror(errno))),
				 "cannot persist the boot-failure counter in %s: %s",
				 cfg->state_dir, strerror(errno));
	}
	unsigned delay = backoff_delay_sec(n);
	log_emit(PAR_LOG_ERROR, "boot.failed",
		 LOG_FIELDS(LF_STR("phase", phase), LF_INT("exitCode", code),
			    LF_STR("exitName", par_exit_name(code)), LF_STR("reason", reason),
			    LF_UINT("failures", n + 1), LF_BOOL("persisted", persisted),
			    LF_UINT("backoffSec", delay)),
		 "boot failed in phase %s: %s; exiting with %d after %u s", phase, reason, code,
		 delay);
	if (delay) {
		int sig = wait_signal((int64_t)delay * 1000, false);
		if (sig)
			log_emit(PAR_LOG_WARN, "boot.backoff.interrupted",
				 LOG_FIELDS(LF_STR("signal", signame(sig))),
				 "backoff cut short by %s", signame(sig));
	}
	log_emit(PAR_LOG_INFO, "process.exit", LOG_FIELDS(LF_INT("exitCode", code)),
		 "exiting with %d (%s)", code, par_exit_name(code));
	return code;
}

static void dd_wake_main_locked(void)
{
	if (dd.main_known)
		pthread_kill(dd.main, SIGUSR2);
}

static int dd_refuse(char *err, size_t errlen, const char *fmt, const char *arg)
{
	snprintf(err, errlen, fmt, arg);
	return -1;
}

int daemon_request_drain(const struct daemon_drain_request *r, char *err, size_t errlen)
{
	enum lc_state st = lc_state();
	int rc = 0;
	pthread_mutex_lock(&dd.mu);
	if (dd.want_drain)
		rc = dd_refuse(err, errlen, "a drain request is already waiting%s", "");
	else if (dd.info.active && !dd.info.no_exit)
		rc = dd_refuse(err, errlen, "already draining (since %s); pard exits when done",
			       dd.info.source);
	else if (dd.info.active && r->no_exit)
		rc = dd_refuse(err, errlen, "already draining with --no-exit (%s); use undrain, "
			       "or drain without --no-exit to exit", dd.info.step);
	else if (!dd.info.active && r->no_exit && st != LC_READY)
		rc = dd_refuse(err, errlen, "drain --no-exit needs state ready (now %s): only a "
			       "READY runtime can return to READY", lc_state_name(st));
	else if (!dd.info.active && st != LC_READY && st != LC_BOOTING)
		rc = dd_refuse(err, errlen, "cannot drain in state %s", lc_state_name(st));
	if (rc == 0) {
		dd.req = *r;
		dd.want_drain = true;
		dd_wake_main_locked();
	}
	pthread_mutex_unlock(&dd.mu);
	return rc;
}

int daemon_request_undrain(char *err, size_t errlen)
{
	int rc = 0;
	pthread_mutex_lock(&dd.mu);
	if (!dd.info.active || !dd.info.no_exit || dd.want_drain)
		rc = dd_refuse(err, errlen, "%s", dd.info.active || dd.want_drain
			       ? "this drain exits the process: it cannot be undone"
			       : "not draining: undrain only follows drain --no-exit");
	if (rc == 0) {
		dd.want_undrain = true;
		dd_wake_main_locked();
	}
	pthread_mutex_unlock(&dd.mu);
	return rc;
}

void daemon_drain_info(struct daemon_drain_info *out)
{
	pthread_mutex_lock(&dd.mu);
	*out = dd.info;
	pthread_mutex_unlock(&dd.mu);
}

static void dd_clear(void)
{
	pthread_mutex_lock(&dd.mu);
	dd.info = (struct daemon_drain_info){0};
	pthread_mutex_unlock(&dd.mu);
}

/* Takes the admin request waiting for the main loop: 1 drain (*r filled), 2 undrain, 0. */
static int dd_take(struct daemon_drain_request *r)
{
	int what = 0;
	pthread_mutex_lock(&dd.mu);
	if (dd.want_drain) {
		*r = dd.req;
		dd.want_drain = false;
		what = 1;
	} else if (dd.want_undrain) {
		dd.want_undrain = false;
		what = 2;
	}
	pthread_mutex_unlock(&dd.mu);
	return what;
}

/* What the drain waits for: requests on every surface and calls into the agent. */
static unsigned in_flight(void)
{
	/* Every call into the agent arrives through one of these, so it is counted there. */
	return rest_in_flight() + a2a_in_flight();
}

/* A second stop signal during the drain: the operator wants out now. */
static void __attribute__((noreturn)) forced_exit(int sig)
{
	log_emit(PAR_LOG_WARN, "drain.forced",
		 LOG_FIELDS(LF_STR("signal", signame(sig)), LF_UINT("inFlight", in_flight()),
			    LF_INT("exitCode", 128 + sig)),
		 "second %s during drain: exiting at once with %u request(s) in flight",
		 signame(sig), in_flight());
	_exit(128 + sig);
}

/* One drain as it runs: what started it, whether it ends the process, its grace. */
struct drain_run {
	int sig;              /* SIGTERM/SIGINT, or 0 for the admin socket */
	bool no_exit;
	int64_t grace_ms;
};

static const char *drain_source(const struct drain_run *d)
{
	return d->sig ? signame(d->sig) : "admin";
}

static void dd_set_step(const char *step, bool no_exit)
{
	pthread_mutex_lock(&dd.mu);
	dd.info.step = step;
	dd.info.no_exit = no_exit;
	pthread_mutex_unlock(&dd.mu);
}

/* A --no-exit drain becomes one that exits: a stop signal or `drain` without --no-exit. */
static void drain_make_exiting(struct drain_run *d, const char *by, int64_t grace_ms)
{
	d->no_exit = false;
	if (grace_ms >= 0)
		d->grace_ms = grace_ms;
	dd_set_step("stopping", false);
	log_emit(PAR_LOG_INFO, "drain.exiting",
		 LOG_FIELDS(LF_STR("by", by), LF_INT("graceSec", d->grace_ms / 1000)),
		 "%s: the --no-exit drain now ends the process", by);
}

/* One wait of the drain (ms). During an exiting drain a stop signal exits at once; during a
 * --no-exit drain it (or an admin `drain`) turns it into an exiting one. Returns true when
 * `undrain` ended a --no-exit drain. */
static bool drain_pause(struct drain_run *d, int64_t ms)
{
	int64_t deadline = time_mono_ms() + ms;
	for (;;) {
		int64_t left = deadline - time_mono_ms();
		if (left <= 0)
			return false;
		int sig = wait_signal(left, true);
		if (sig == 0)
			return false;
		if (sig == SIGUSR2) {
			struct daemon_drain_request r;
			int what = dd_take(&r);
			if (what == 2 && d->no_exit)
				return true;
			if (what == 1 && d->no_exit)
				drain_make_exiting(d, "admin", r.grace_ms);
			continue;
		}
		if (!d->no_exit)
			forced_exit(sig);
		drain_make_exiting(d, signame(sig), -1);
	}
}

/* SPEC §6.3. Returns the exit code, or DRAIN_HELD / DRAIN_UNDRAINED for a --no-exit drain,
 * which keeps the listeners open (so probes see 503 and NOT_SERVING, and `undrain` can
 * return to READY) and stops after the wait for in-flight work. */
static int drain(const struct par_config *cfg, struct drain_run *d)
{
	int64_t t0 = time_mono_ms();
	bool was_ready = lc_state() == LC_READY;
	pthread_mutex_lock(&dd.mu);
	if (!dd.info.active)    /* else a held --no-exit drain now goes all the way */
		dd.info.started_epoch_ms = time_epoch_ms();
	dd.info.active = true;
	dd.info.no_exit = d->no_exit;
	dd.info.source = drain_source(d);
	dd.info.step = was_ready && cfg->drain_delay_sec ? "delay" : "in_flight";
	dd.info.grace_ms = d->grace_ms;
	dd.info.delay_sec = cfg->drain_delay_sec;
	pthread_mutex_unlock(&dd.mu);
	lc_set_state(LC_DRAINING);
	a2a_begin_drain();
	log_emit(PAR_LOG_INFO, "drain.start",
		 LOG_FIELDS(LF_STR("signal", d->sig ? signame(d->sig) : NULL),
			    LF_STR("source", drain_source(d)), LF_BOOL("noExit", d->no_exit),
			    LF_UINT("drainDelaySec", cfg->drain_delay_sec),
			    LF_INT("graceSec", d->grace_ms / 1000),
			    LF_UINT("inFlight", in_flight())),
		 "%s: draining%s", drain_source(d), d->no_exit ? " (no exit)" : "");

	/* A runtime that never became READY was never in a load balancer's rotation, so
	 * there is nothing to deregister and no reason to wait. */
	if (was_ready && cfg->drain_delay_sec &&
	    drain_pause(d, (int64_t)cfg->drain_delay_sec * 1000))
		return DRAIN_UNDRAINED;
	if (d->no_exit) {
		dd_set_step("in_flight", true);
		int64_t deadline = time_mono_ms() + d->grace_ms;
		while (d->no_exit && in_flight() > 0 && time_mono_ms() < deadline)
			if (drain_pause(d, 20))
				return DRAIN_UNDRAINED;
		if (d->no_exit) {
			dd_set_step("held", true);
			log_emit(PAR_LOG_INFO, "drain.held",
				 LOG_FIELDS(LF_UINT("inFlight", in_flight()),
					    LF_INT("durationMs", time_mono_ms() - t0)),
				 "drained (no exit): DRAINING until undrain");
			return DRAIN_HELD;
		}
	}
	dd_set_step("stopping", false);
	rest_stop_accepting();
	a2a_stop_accepting();

	int64_t deadline = time_mono_ms() + d->grace_ms;
	while (in_flight() > 0 && time_mono_ms() < deadline)
		drain_pause(d, 20);
	unsigned left = in_flight();
	if (left)
		log_emit(PAR_LOG_WARN, "drain.timeout", LOG_FIELDS(LF_UINT("inFlight", left)),
			 "grace period over: cancelling %u request(s)", left);
	/* Idle keep-alive connections get a moment to close on their own (every response now
	 * says Connection: close); the rest are closed by the stop below. */
	int64_t linger = time_mono_ms() + 1000;
	if (linger > deadline)
		linger = deadline;
	while (rest_connections() > 0 && time_mono_ms() < linger)
		drain_pause(d, 20);
	/* Cancels what is left, then waits for every call to be released (never an abort). */
	a2a_stop(deadline);
	rest_stop();
	boot_cancel_and_join(1000);
	agent_stop(WORKER_GRACE_MS);
	lc_set_state(LC_STOPPED);
	log_emit(PAR_LOG_INFO, "drain.done",
		 LOG_FIELDS(LF_INT("durationMs", time_mono_ms() - t0), LF_UINT("cancelled", left)),
		 "drained in %lld ms", (long long)(time_mono_ms() - t0));
	return PAR_EXIT_OK;
}

/* `undrain`: back to READY after a --no-exit drain (listeners were never closed). */
static void undrain(void)
{
	dd_clear();
	lc_set_state(LC_READY);
	log_emit(PAR_LOG_INFO, "drain.undrained", LOG_NOFIELDS, "undrain: READY again");
}

/* Carries out an admin request taken from dd. Returns an exit code, or -1 to go on. */
static int on_admin_request(const struct par_config *cfg)
{
	struct daemon_drain_request r;
	int what = dd_take(&r);
	if (what == 2) {
		bool held = false;
		pthread_mutex_lock(&dd.mu);
		held = dd.info.active && dd.info.no_exit;
		pthread_mutex_unlock(&dd.mu);
		if (held)
			undrain();
		return -1;
	}
	if (what != 1)
		return -1;
	struct drain_run run = {
		.sig = 0, .no_exit = r.no_exit,
		.grace_ms = r.grace_ms >= 0 ? r.grace_ms
					    : (int64_t)cfg->graceful_shutdown_timeout_sec * 1000};
	int rc = drain(cfg, &run);
	if (rc == DRAIN_UNDRAINED)
		undrain();
	return rc < 0 ? -1 : rc;
}

static int start_rest(const struct par_config *cfg, struct metrics *metrics)
{
	lc_phase_begin(PH_LISTEN);
	char err[256];
	int fd = listen_tcp(cfg->rest_port, err, sizeof err);
	if (fd < 0) {
		log_emit(PAR_LOG_ERROR, "rest.bind.failed",
			 LOG_FIELDS(LF_STR("variable", "REST_PORT"), LF_UINT("port", cfg->rest_port),
				    LF_STR("error", err)),
			 "REST listener: %s", err);
		lc_phase_end(PH_LISTEN, PHS_FAILED, err);
		return daemon_fail_exit(cfg, PAR_EXIT_BIND, "listen", err);
	}
	if (rest_start(fd, cfg, metrics) < 0) {
		lc_phase_end(PH_LISTEN, PHS_FAILED, "HTTP server did not start");
		return daemon_fail_exit(cfg, PAR_EXIT_BIND, "listen", "HTTP server did not start");
	}
	lc_set_surface(SURFACE_REST, SURF_UP);
	log_emit(PAR_LOG_INFO, "rest.listening", LOG_FIELDS(LF_UINT("port", cfg->rest_port)),
		 "REST listening on port %u", cfg->rest_port);
	lc_phase_end(PH_LISTEN, PHS_DONE, "rest");
	return 0;
}

struct deadlines {
	int64_t soft;       /* 0 = passed or not armed */
	int64_t hard;
	int64_t reset;
};

static int64_t next_deadline(const struct deadlines *d)
{
	int64_t next = 0;
	const int64_t all[] = {d->soft, d->hard, d->reset};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (all[i] && (!next || all[i] < next))
			next = all[i];
	return next;
}

static int on_hard_limit(const struct par_config *cfg, int64_t start_ms, int64_t limit_ms)
{
	enum lc_phase ph = lc_phase();
	char reason[160];
	snprintf(reason, sizeof reason, "boot hard limit of %lld ms crossed in phase %s",
		 (long long)limit_ms, lc_phase_name(ph));
	log_emit(PAR_LOG_ERROR, "boot.budget.hard_limit",
		 LOG_FIELDS(LF_STR("phase", lc_phase_name(ph)), LF_INT("limitMs", limit_ms),
			    LF_INT("elapsedMs", time_mono_ms() - start_ms)),
		 "%s", reason);
	lc_phase_end(ph, PHS_FAILED, "aborted by the hard boot limit");
	lc_set_state(LC_FAILED);
	boot_cancel_and_join(500);
	return daemon_fail_exit(cfg, PAR_EXIT_BUDGET, lc_phase_name(ph), reason);
}

static void on_soft_budget(int64_t budget_ms)
{
	enum lc_phase ph = lc_phase();
	lc_mark_budget_exceeded();
	log_emit(PAR_LOG_WARN, "boot.budget.exceeded",
		 LOG_FIELDS(LF_STR("phase", lc_phase_name(ph)), LF_INT("budgetMs", budget_ms)),
		 "boot still in phase %s after its %lld ms budget", lc_phase_name(ph),
		 (long long)budget_ms);
}

int daemon_run(const struct par_config *cfg, struct metrics *metrics, int64_t start)
{
	int rc = start_rest(cfg, metrics);
	if (rc)
		return rc;
	if (boot_start(cfg, metrics, pthread_self()) < 0)
		return daemon_fail_exit(cfg, PAR_EXIT_INTERNAL, "fetch", "boot thread");

	int64_t budget = (int64_t)cfg->boot_budget_ms;
	int64_t hard = (int64_t)((double)cfg->boot_budget_ms * cfg->boot_hard_limit_multiplier);
	struct deadlines d = {.soft = start + budget, .hard = hard ? start + hard : 0};

	pthread_mutex_lock(&dd.mu);
	dd.main = pthread_self();
	dd.main_known = true;
	pthread_mutex_unlock(&dd.mu);

	sigset_t set;
	daemon_signal_set(&set);
	for (;;) {
		/* Also takes a request queued before this loop began. */
		rc = on_admin_request(cfg);
		if (rc >= 0)
			return rc;
		int64_t next = next_deadline(&d);
		int sig;
		if (next) {
			int64_t left = next - time_mono_ms();
			struct timespec ts = time_ms_to_timespec(left > 0 ? left : 0);
			sig = sigtimedwait(&set, NULL, &ts);
		} else {
			sig = sigwaitinfo(&set, NULL);
		}
		int64_t now = time_mono_ms();
		if (sig < 0) {
			if (d.hard && now >= d.hard && lc_state() == LC_BOOTING)
				return on_hard_limit(cfg, start, hard);
			if (d.soft && now >= d.soft) {
				if (lc_state() == LC_BOOTING)
					on_soft_budget(budget);
				d.soft = 0;
			}
			if (d.reset && now >= d.reset) {
				d.reset = 0;
				if (backoff_state_clear(cfg->state_dir, cfg->agent_app_id) == 0)
					log_emit(PAR_LOG_INFO, "boot.backoff.reset",
						 LOG_FIELDS(LF_UINT("readySec",
								    cfg->backoff_reset_sec)),
						 "READY for %u s: boot-failure counter cleared",
						 cfg->backoff_reset_sec);
				persisted_failures = 0;
			}
			continue;
		}
		switch (sig) {
		case SIGCHLD:
			reap_children();
			break;
		case SIGHUP:
			log_emit(PAR_LOG_INFO, "signal.ignored", LOG_FIELDS(LF_STR("signal", "SIGHUP")),
				 "SIGHUP ignored: configuration is read once at start");
			break;
		case SIGUSR2:
			break;   /* the request is taken at the top of the loop */
		case SIGTERM:
		case SIGINT: {
			struct drain_run run = {
				.sig = sig, .no_exit = false,
				.grace_ms = (int64_t)cfg->graceful_shutdown_timeout_sec * 1000};
			rc = drain(cfg, &run);
			if (rc >= 0)
				return rc;
			break;
		}
		case SIGUSR1: {
			struct boot_outcome o = boot_outcome();
			if (!o.done || lc_state() != LC_BOOTING)
				break;
			boot_cancel_and_join(1000);
			if (!o.ok) {
				lc_set_state(LC_FAILED);
				return daemon_fail_exit(cfg, o.exit_code, lc_phase_name(o.phase),
							o.reason);
			}
			d.soft = d.hard = 0;
			lc_set_state(LC_READY);
			log_emit(PAR_LOG_INFO, "lifecycle.ready",
				 LOG_FIELDS(LF_INT("bootMs", now - start), LF_INT("budgetMs", budget),
					    LF_BOOL("overBudget", now - start > budget)),
				 "ready in %lld ms", (long long)(now - start));
			if (persisted_failures && cfg->state_dir)
				d.reset = now + (int64_t)cfg->backoff_reset_sec * 1000;
			break;
		}
		}
	}
}
