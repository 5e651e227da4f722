/* The exec agent backend (SPEC §4.2): starts the package's worker process on a private Unix
 * socket, turns its output into JSON log lines, talks HTTP/1.1 to it (/ping, /capabilities,
 * /invoke), and supervises it — restart with backoff, readiness on the agent surface — until
 * the drain stops it. The /api proxy is proxy.c. */
#include "worker.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lifecycle.h"
#include "par/fsutil.h"
#include "par/log.h"
#include "par/strbuf.h"
#include "par/timeutil.h"
#include "subproc.h"

extern char **environ;

/* Worker output: longer lines are logged in pieces of this size. */
#define WORKER_LINE_MAX 8192
/* Restart backoff: 1 s, doubling, capped; a run that stayed up this long resets it. */
#define WORKER_BACKOFF_FIRST_MS 1000
#define WORKER_BACKOFF_MAX_MS 30000
#define WORKER_BACKOFF_RESET_MS 60000
/* A restarted worker gets this long to answer /ping before it is killed and tried again. */
#define WORKER_RESTART_READY_MS 30000
/* Used when the caller gives no deadline: the load phase, and an invocation. */
#define WORKER_LOAD_DEFAULT_MS 60000
#define WORKER_INVOKE_DEFAULT_MS 300000
#define WORKER_PING_INTERVAL_MS 50
/* Answers read into memory (/invoke, /capabilities) are capped. */
#define WORKER_ANSWER_MAX (32u * 1024 * 1024)
#define WORKER_POOL_MAX 16
#define WORKER_ACTIONS_MAX 1024

enum worker_state { WS_NONE, WS_STARTING, WS_UP, WS_DOWN, WS_STOPPED };

/* How a run ended, from wait status or waitid's siginfo. */
struct worker_exit {
	bool known;
	int code;      /* exit code, when sig == 0 */
	int sig;       /* the signal that killed it, or 0 */
};

/* One run of the worker process. Only one exists at a time: a new run starts after the
 * previous one has been reaped and its reader joined. */
struct worker_run {
	pid_t pid;               /* also its process group id; 0 when there is no run */
	int pidfd;               /* -1 when the kernel has none */
	int out_fd, err_fd;      /* read ends of its stdout and stderr pipes */
	int wake_fd;             /* eventfd: the reader drains what is left, then ends */
	pthread_t reader;
	bool reader_running;
	int64_t started_ms;
	bool exited;             /* reaped, by us or by the main loop */
	bool ended;              /* worker_end_run done: its pid and group are history */
	struct worker_exit how;
	char last_stderr[640];   /* for "exited during load" messages */
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cond;             /* run.exited, stopping */
	const struct par_config *cfg;
	struct metric *m_restarts;
	struct metric *m_up;
	char *root;
	char *exe;                       /* argv[0] resolved to a path */
	char **argv;                     /* as given: the worker sees its argv[0] unchanged */
	char **envp;
	char *origin;
	char *sock_dir;
	char *sock_path;
	struct worker_run run;
	enum worker_state state;
	bool stopping;
	pthread_t supervisor;
	bool supervisor_running;
	char **actions;                  /* NULL-terminated */
	char *default_action;
	atomic_uint gen;                 /* bumped per run: pooled connections die with it */
	atomic_llong cancel_at;
	atomic_int atexit_pgid;          /* what the exit handler kills when pard leaves early */
	char atexit_sock_dir[PATH_MAX];  /* what it removes (a copy: other threads may free) */
} w = {.mu = PTHREAD_MUTEX_INITIALIZER, .run = {.pidfd = -1, .out_fd = -1, .err_fd = -1,
						    .wake_fd = -1}};

static struct {
	pthread_mutex_t mu;
	CURL *h[WORKER_POOL_MAX];
	unsigned gen[WORKER_POOL_MAX];
	size_t n;
	bool open;
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const char *const worker_no_actions[] = {NULL};

/* ---- small helpers ----------------------------------------------------------------------- */

static void worker_cond_init(void)
{
	/* Waits measure against CLOCK_MONOTONIC, so the condition must too. */
	time_cond_init_mono(&w.cond);
}

static void worker_curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Waits on w.cond (w.mu held) until deadline_ms at the latest. */
static void worker_cond_wait_until(int64_t deadline_ms)
{
	struct timespec ts = time_ms_to_timespec(deadline_ms);
	pthread_cond_timedwait(&w.cond, &w.mu, &ts);
}

/* Sleeps ms unless a stop request comes first. Returns false when stopping. */
static bool worker_sleep(int64_t ms)
{
	int64_t deadline = time_mono_ms() + ms;
	pthread_mutex_lock(&w.mu);
	while (!w.stopping && time_mono_ms() < deadline)
		worker_cond_wait_until(deadline);
	bool ok = !w.stopping;
	pthread_mutex_unlock(&w.mu);
	return ok;
}

static bool worker_stopping(void)
{
	pthread_mutex_lock(&w.mu);
	bool s = w.stopping;
	pthread_mutex_unlock(&w.mu);
	return s;
}

static void worker_set_state(enum worker_state s)
{
	pthread_mutex_lock(&w.mu);
	w.state = s;
	pthread_mutex_unlock(&w.mu);
	if (w.m_up)
		metric_set(w.m_up, s == WS_UP);
}

static void worker_free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* "SIGKILL" for logs; NULL when sig is 0. */
static const char *worker_signame(int sig, char *buf, size_t n)
{
	const char *abbrev = sig ? sigabbrev_np(sig) : NULL;
	if (!sig)
		return NULL;
	if (abbrev)
		snprintf(buf, n, "SIG%s", abbrev);
	else
		snprintf(buf, n, "%d", sig);
	return buf;
}

static struct worker_exit worker_exit_from_status(int status)
{
	struct worker_exit x = {.known = true};
	if (WIFSIGNALED(status))
		x.sig = WTERMSIG(status);
	else
		x.code = WEXITSTATUS(status);
	return x;
}

/* "exit status 3" / "signal 9 (Killed)" / "unknown status". */
static void worker_exit_text(const struct worker_exit *x, char *buf, size_t n)
{
	if (!x->known)
		snprintf(buf, n, "an unknown status");
	else if (x->sig)
		snprintf(buf, n, "signal %d (%s)", x->sig, strsignal(x->sig));
	else
		snprintf(buf, n, "exit status %d", x->code);
}

/* ---- where and what to run ---------------------------------------------------------------- */

/* A fresh private directory (0700) for the socket. Not the cache directory: it may be on EFS,
 * and a socket path must fit in sun_path. */
static int worker_make_sock_dir(char *err, size_t errlen)
{
	const char *bases[] = {getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR"), "/tmp"};
	const char *sock = "/worker.sock";
	int last = 0;
	for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
		if (!bases[i] || bases[i][0] != '/')
			continue;
		char tmpl[PATH_MAX];
		int n = snprintf(tmpl, sizeof tmpl, "%s/par-worker-XXXXXX", bases[i]);
		if (n < 0 || (size_t)n + strlen(sock) >= sizeof pool.sock_path)
			continue;
		if (!mkdtemp(tmpl)) {
			last = errno;
			continue;
		}
		w.sock_dir = strdup(tmpl);
		size_t len = strlen(tmpl) + strlen(sock) + 1;
		w.sock_path = malloc(len);
		if (!w.sock_dir || !w.sock_path) {
			rmdir(tmpl);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		snprintf(w.sock_path, len, "%s%s", tmpl, sock);
		snprintf(w.atexit_sock_dir, sizeof w.atexit_sock_dir, "%s", tmpl);
		return 0;
	}
	snprintf(err, errlen,
		 "no directory for the worker socket ($XDG_RUNTIME_DIR, $TMPDIR, /tmp): %s",
		 last ? strerror(last) : "paths too long for a Unix socket");
	return -1;
}

static char *worker_join_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static bool worker_is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A bare command name: first the file of that name in the package, then PATH. */
static char *worker_search(const char *root, const char *name)
{
	char *p = worker_join_path(root, name);
	if (!p || worker_is_file(p))
		return p;
	free(p);
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t len = strcspn(path, ":");
		char dir[PATH_MAX];
		if (len && len < sizeof dir) {
			memcpy(dir, path, len);
			dir[len] = '\0';
			p = worker_join_path(dir, name);
			if (!p || (worker_is_file(p) && access(p, X_OK) == 0))
				return p;
			free(p);
		}
		path += len;
		if (*path == ':')
			path++;
	}
	errno = ENOENT;
	return NULL;
}

/* argv[0] as a path pard can spawn, checked first so that a wrong command fails the boot
 * with a sentence that names it. */
static char *worker_resolve_cmd(const char *root, const char *cmd0, const char *origin,
				char *err, size_t errlen)
{
	if (!cmd0 || !*cmd0) {
		snprintf(err, errlen, "%s[0] is empty", origin);
		return NULL;
	}
	char *p;
	if (cmd0[0] == '/')
		p = strdup(cmd0);
	else if (strchr(cmd0, '/'))
		p = worker_join_path(root, cmd0);
	else
		p = worker_search(root, cmd0);
	if (!p) {
		snprintf(err, errlen, "%s[0] \"%s\" not found in the package root %s or in PATH",
			 origin, cmd0, root);
		return NULL;
	}
	if (access(p, X_OK) != 0 || !worker_is_file(p)) {
		int e = errno;
		snprintf(err, errlen, "%s[0] \"%s\" (%s) cannot be executed: %s", origin, cmd0, p,
			 worker_is_file(p) ? strerror(e) : e == ENOENT ? strerror(e)
									 : "not a regular file");
		free(p);
		return NULL;
	}
	return p;
}

static bool worker_env_named(const char *entry, const char *name_eq)
{
	return strncmp(entry, name_eq, strlen(name_eq)) == 0;
}

/* Does entry's name ("K=…") appear in list? */
static bool worker_env_overridden(const char *entry, const char *const *list)
{
	size_t n = strcspn(entry, "=");
	for (size_t i = 0; list && list[i]; i++)
		if (strncmp(list[i], entry, n) == 0 && list[i][n] == '=')
			return true;
	return false;
}

/* pard's environment (the worker is the agent's code and needs what an in-process agent
 * would see: AWS credentials, AGENT_APP_ID…), then exec.env, then the socket. */
static char **worker_build_env(const char *const *extra, const char *sock_path,
			       const char *root)
{
	size_t n = 0, k = 0;
	for (char **e = environ; e && *e; e++)
		n++;
	for (size_t i = 0; extra && extra[i]; i++)
		n++;
	char **env = calloc(n + 3, sizeof *env);
	if (!env)
		return NULL;
	for (char **e = environ; e && *e; e++) {
		if (worker_env_named(*e, "PAR_WORKER_SOCKET=") ||
		    worker_env_named(*e, "PAR_PACKAGE_ROOT=") || worker_env_overridden(*e, extra))
			continue;
		if (!(env[k++] = strdup(*e)))
			goto fail;
	}
	for (size_t i = 0; extra && extra[i]; i++)
		if (!(env[k++] = strdup(extra[i])))
			goto fail;
	if (asprintf(&env[k++], "PAR_WORKER_SOCKET=%s", sock_path) < 0 ||
	    asprintf(&env[k++], "PAR_PACKAGE_ROOT=%s", root) < 0) {
		env[k - 1] = NULL;
		goto fail;
	}
	return env;
fail:
	worker_free_strv(env);
	return NULL;
}

/* ---- output → JSON log lines --------------------------------------------------------------- */

struct worker_stream {
	int fd;
	const char *name;        /* "stdout" / "stderr" */
	bool is_err;
	bool eof;
	size_t len;
	char buf[WORKER_LINE_MAX];
};

/* Where to cut a full buffer so a UTF-8 sequence is not split across two log lines: before
 * a last sequence that is incomplete. */
static size_t worker_utf8_cut(const char *s, size_t n)
{
	size_t i = n;
	while (i > 0 && n - i < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if (i < 2)
		return n;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	return n - (i - 1) < need ? i - 1 : n;
}

static void worker_emit_line(struct worker_stream *s, pid_t pid, const char *p, size_t n,
			     bool partial)
{
	char line[WORKER_LINE_MAX + 1];
	if (n && p[n - 1] == '\r')
		n--;
	for (size_t i = 0; i < n; i++)  /* a NUL would end the message early */
		line[i] = p[i] ? p[i] : '?';
	line[n] = '\0';
	bool err = s->is_err;
	if (partial)
		log_emit(PAR_LOG_INFO, err ? "worker.stderr" : "worker.stdout",
			 LOG_FIELDS(LF_STR("stream", s->name), LF_INT("pid", pid),
				    LF_BOOL("partial", true)),
			 "%s", line);
	else
		log_emit(PAR_LOG_INFO, err ? "worker.stderr" : "worker.stdout",
			 LOG_FIELDS(LF_STR("stream", s->name), LF_INT("pid", pid)), "%s", line);
	if (err && n) {
		pthread_mutex_lock(&w.mu);
		size_t k = n < sizeof w.run.last_stderr - 1 ? n : sizeof w.run.last_stderr - 1;
		memcpy(w.run.last_stderr, line, k);
		w.run.last_stderr[k] = '\0';
		pthread_mutex_unlock(&w.mu);
	}
}

/* Logs every complete line in the buffer, and a piece of a line that filled it. */
static void worker_stream_flush(struct worker_stream *s, pid_t pid, bool all)
{
	size_t start = 0;
	for (size_t i = 0; i < s->len; i++)
		if (s->buf[i] == '\n') {
			worker_emit_line(s, pid, s->buf + start, i - start, false);
			start = i + 1;
		}
	size_t left = s->len - start;
	if (left == sizeof s->buf || (all && left)) {
		size_t cut = all ? left : worker_utf8_cut(s->buf + start, left);
		worker_emit_line(s, pid, s->buf + start, cut, !all);
		start += cut;
		left -= cut;
	}
	memmove(s->buf, s->buf + start, left);
	s->len = left;
}

static void worker_stream_read(struct worker_stream *s, pid_t pid)
{
	ssize_t r = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
	if (r > 0) {
		s->len += (size_t)r;
		worker_stream_flush(s, pid, false);
	} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
		s->eof = true;
	}
}

/* The reader thread of one run: until both pipes close, or, once woken, until what is
 * already in them has been logged (a grandchild may hold a pipe open forever). */
static void *worker_reader_main(void *arg)
{
	struct worker_run *run = arg;
	struct worker_stream s[2] = {
		{.fd = run->out_fd, .name = "stdout"},
		{.fd = run->err_fd, .name = "stderr", .is_err = true},
	};
	bool woken = false;
	unsigned after_wake = 0;
	while (!(s[0].eof && s[1].eof) && after_wake < 256) {
		struct pollfd p[3] = {
			{.fd = s[0].eof ? -1 : s[0].fd, .events = POLLIN},
			{.fd = s[1].eof ? -1 : s[1].fd, .events = POLLIN},
			{.fd = woken ? -1 : run->wake_fd, .events = POLLIN},
		};
		int n = poll(p, 3, woken ? 0 : -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (p[2].revents)
			woken = true;
		if (woken)
			after_wake++;
		for (int i = 0; i < 2; i++)
			if (p[i].revents)
				worker_stream_read(&s[i], run->pid);
	}
	for (int i = 0; i < 2; i++)
		worker_stream_flush(&s[i], run->pid, true);
	return NULL;
}

/* ---- one run: spawn, exit, end --------------------------------------------------------- */

static void worker_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int worker_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* posix_spawn rather than fork: nothing runs in the child between fork and exec but libc's
 * own async-signal-safe steps, which matters in a process full of threads. */
static int worker_spawn_process(int out_w, int err_w, int in_fd, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	int e = posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
	if (!e)
		e = posix_spawn_file_actions_adddup2(&fa, out_w, 1);
	if (!e)
		e = posix_spawn_file_actions_adddup2(&fa, err_w, 2);
	if (!e)
		e = posix_spawn_file_actions_addchdir_np(&fa, w.root);
	/* Every descriptor is O_CLOEXEC already; this also covers a library's that is not. */
	if (!e)
		e = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	/* Its own process group lets stop() signal its children too. */
	if (!e)
		e = subproc_spawnattr_setup(&at);
	if (!e) {
		/* Held across the spawn so the main loop, which may reap the child at once,
		 * finds its pid recorded. */
		pthread_mutex_lock(&w.mu);
		e = posix_spawn(pid, w.exe, &fa, &at, w.argv, w.envp);
		if (!e) {
			w.run.pid = *pid;
			w.run.exited = false;
			w.run.ended = false;
			w.run.how = (struct worker_exit){0};
			w.run.last_stderr[0] = '\0';
			w.run.started_ms = time_mono_ms();
			atomic_store(&w.atexit_pgid, *pid);
		}
		pthread_mutex_unlock(&w.mu);
	}
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return e;
}

static void worker_log_start(pid_t pid)
{
	struct strbuf cmd = STRBUF_INIT;
	sb_putc(&cmd, '[');
	for (size_t i = 0; w.argv[i]; i++) {
		if (i)
			sb_putc(&cmd, ',');
		sb_json_str(&cmd, w.argv[i]);
	}
	sb_putc(&cmd, ']');
	log_emit(PAR_LOG_INFO, "worker.start",
		 LOG_FIELDS(LF_INT("pid", pid), LF_JSON("command", cmd.oom ? "null" : cmd.buf),
			    LF_STR("program", w.exe),
			    LF_STR("socket", w.sock_path), LF_STR("cwd", w.root)),
		 "worker started (pid %d)", (int)pid);
	sb_free(&cmd);
}

/* Starts one run: pipes, the process, its pidfd and its reader thread. */
static int worker_spawn(char *err, size_t errlen)
{
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, devnull = -1, rc = -1;
	struct worker_run *run = &w.run;
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ||
	    (run->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
	    worker_set_nonblock(outp[0]) < 0 || worker_set_nonblock(errp[0]) < 0) {
		snprintf(err, errlen, "cannot set up the worker's pipes: %s", strerror(errno));
		goto out;
	}
	/* A socket left by the previous run would make the new worker's bind fail. */
	unlink(w.sock_path);
	pid_t pid;
	int e = worker_spawn_process(outp[1], errp[1], devnull, &pid);
	if (e) {
		snprintf(err, errlen, "cannot start %s: %s", w.exe, strerror(e));
		goto out;
	}
	atomic_fetch_add(&w.gen, 1);
	run->out_fd = outp[0];
	run->err_fd = errp[0];
	outp[0] = errp[0] = -1;
	run->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	worker_log_start(pid);
	e = pthread_create(&run->reader, NULL, worker_reader_main, run);
	run->reader_running = e == 0;
	if (e)  /* the run still works; its output is lost */
		log_emit(PAR_LOG_WARN, "worker.output.lost", LOG_FIELDS(LF_INT("pid", pid)),
			 "cannot start the worker's output reader: %s", strerror(e));
	rc = 0;
out:
	worker_close(&outp[0]);
	worker_close(&outp[1]);
	worker_close(&errp[0]);
	worker_close(&errp[1]);
	worker_close(&devnull);
	if (rc)
		worker_close(&run->wake_fd);
	return rc;
}

/* True once the run's process has exited. Reaps it when nobody else has: waitid on the
 * pidfd cannot reap a recycled pid; waitpid is the fallback for kernels without pidfds. */
static bool worker_check_exit(void)
{
	pthread_mutex_lock(&w.mu);
	pid_t pid = w.run.pid;
	bool done = pid <= 0 || w.run.exited;
	int pidfd = w.run.pidfd;
	pthread_mutex_unlock(&w.mu);
	if (done)
		return true;
	struct worker_exit x = {0};
	bool exited = false;
	if (pidfd >= 0) {
		siginfo_t si = {0};
		if (waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) == 0) {
			if (si.si_pid) {
				exited = true;
				x.known = true;
				if (si.si_code == CLD_EXITED)
					x.code = si.si_status;
				else
					x.sig = si.si_status;
			}
		} else if (errno == ECHILD) {
			exited = true;   /* the main loop reaped it: its status comes via child_exited */
		}
	} else {
		int status;
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			exited = true;
			x = worker_exit_from_status(status);
		} else if (r < 0 && errno == ECHILD) {
			exited = true;
		}
	}
	if (!exited)
		return false;
	pthread_mutex_lock(&w.mu);
	if (!w.run.exited) {
		w.run.exited = true;
		w.run.how = x;
	}
	pthread_cond_broadcast(&w.cond);
	pthread_mutex_unlock(&w.mu);
	return true;
}

bool worker_child_exited(pid_t pid, int status)
{
	pthread_mutex_lock(&w.mu);
	bool mine = pid > 0 && pid == w.run.pid && !w.run.how.known;
	if (mine) {
		w.run.exited = true;
		w.run.how = worker_exit_from_status(status);
		pthread_cond_broadcast(&w.cond);
	}
	pthread_mutex_unlock(&w.mu);
	return mine;
}

/* Waits up to ms for the run to exit. */
static bool worker_wait_exit(int64_t ms)
{
	int64_t deadline = time_mono_ms() + ms;
	while (!worker_check_exit()) {
		if (time_mono_ms() >= deadline)
			return false;
		pthread_mutex_lock(&w.mu);
		worker_cond_wait_until(time_mono_ms() + 10);
		pthread_mutex_unlock(&w.mu);
	}
	return true;
}

/* The main loop may have reaped the run a moment before it hands over the status. */
static struct worker_exit worker_exit_status(void)
{
	int64_t deadline = time_mono_ms() + 200;
	pthread_mutex_lock(&w.mu);
	while (!w.run.how.known && time_mono_ms() < deadline)
		worker_cond_wait_until(deadline);
	struct worker_exit x = w.run.how;
	pthread_mutex_unlock(&w.mu);
	return x;
}

/* After the run's process has exited: its leftover children go too (they share the
 * process group), the reader logs what is left in the pipes and ends. */
static void worker_end_run(void)
{
	struct worker_run *run = &w.run;
	if (run->ended)
		return;
	/* pid > 0 always here: kill(-0) would signal pard's own group. */
	if (run->pid > 0)
		kill(-run->pid, SIGKILL);
	if (run->reader_running) {
		uint64_t one = 1;
		if (write(run->wake_fd, &one, sizeof one) < 0)
			log_emit(PAR_LOG_WARN, "worker.output.wake", LOG_NOFIELDS,
				 "cannot wake the output reader: %s", strerror(errno));
		pthread_join(run->reader, NULL);
		run->reader_running = false;
	}
	worker_close(&run->out_fd);
	worker_close(&run->err_fd);
	worker_close(&run->wake_fd);
	worker_close(&run->pidfd);
	atomic_store(&w.atexit_pgid, 0);
	run->ended = true;
}

/* pard is leaving without a drain (a boot failure, the hard boot limit): take the worker
 * along rather than orphan it, and its socket directory. */
static void worker_atexit(void)
{
	int pgid = atomic_load(&w.atexit_pgid);
	if (pgid > 0)
		kill(-pgid, SIGKILL);
	if (w.atexit_sock_dir[0]) {
		char sock[PATH_MAX + 16];
		snprintf(sock, sizeof sock, "%s/worker.sock", w.atexit_sock_dir);
		unlink(sock);
		rmdir(w.atexit_sock_dir);
	}
}

/* ---- HTTP to the worker ------------------------------------------------------------------ */

CURL *worker_curl_take(unsigned *gen)
{
	unsigned cur = atomic_load(&w.gen);
	CURL *c = NULL, *stale[WORKER_POOL_MAX];
	size_t nstale = 0;
	char path[sizeof pool.sock_path];
	pthread_mutex_lock(&pool.mu);
	bool open = pool.open;
	memcpy(path, pool.sock_path, sizeof path);
	while (pool.n && !c) {
		pool.n--;
		if (pool.gen[pool.n] == cur)
			c = pool.h[pool.n];
		else
			stale[nstale++] = pool.h[pool.n];
	}
	pthread_mutex_unlock(&pool.mu);
	for (size_t i = 0; i < nstale; i++)
		curl_easy_cleanup(stale[i]);
	if (!open) {
		if (c)
			curl_easy_cleanup(c);
		return NULL;
	}
	if (!c && !(c = curl_easy_init()))
		return NULL;
	/* reset keeps the handle's live connection, which is the point of the pool. */
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, path);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	*gen = cur;
	return c;
}

void worker_curl_give(CURL *c, unsigned gen)
{
	if (!c)
		return;
	pthread_mutex_lock(&pool.mu);
	if (pool.open && gen == atomic_load(&w.gen) && pool.n < WORKER_POOL_MAX) {
		pool.h[pool.n] = c;
		pool.gen[pool.n++] = gen;
		c = NULL;
	}
	pthread_mutex_unlock(&pool.mu);
	if (c)
		curl_easy_cleanup(c);
}

static void worker_pool_open(void)
{
	pthread_mutex_lock(&pool.mu);
	snprintf(pool.sock_path, sizeof pool.sock_path, "%s", w.sock_path);
	pool.open = true;
	pthread_mutex_unlock(&pool.mu);
}

static void worker_pool_close(void)
{
	pthread_mutex_lock(&pool.mu);
	pool.open = false;
	size_t n = pool.n;
	pool.n = 0;
	pthread_mutex_unlock(&pool.mu);
	for (size_t i = 0; i < n; i++)
		curl_easy_cleanup(pool.h[i]);
}

struct worker_answer {
	struct strbuf body;
	bool too_large;
};

static size_t worker_answer_write(char *p, size_t size, size_t n, void *cls)
{
	struct worker_answer *a = cls;
	size_t len = size * n;
	if (a->body.len + len > WORKER_ANSWER_MAX) {
		a->too_large = true;
		return 0;
	}
	sb_append(&a->body, p, len);
	return a->body.oom ? 0 : len;
}

int64_t worker_cancel_at(void)
{
	return atomic_load(&w.cancel_at);
}

/* Calls into the worker end when the drain's grace ends, whatever their own limits. */
static int worker_progress(void *cls, curl_off_t dt, curl_off_t dn, curl_off_t ut,
			   curl_off_t un)
{
	(void)cls, (void)dt, (void)dn, (void)ut, (void)un;
	int64_t at = worker_cancel_at();
	return at && time_mono_ms() >= at;
}

static void worker_request_common(CURL *c, struct worker_answer *a, long timeout_ms)
{
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, worker_answer_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, worker_progress);
}

/* GET path: the HTTP status (0 when there was no answer); the body in a when wanted. */
static long worker_get(const char *path, long timeout_ms, struct worker_answer *a)
{
	struct worker_answer scratch = {.body = STRBUF_INIT};
	if (!a)
		a = &scratch;
	unsigned gen;
	CURL *c = worker_curl_take(&gen);
	if (!c)
		return 0;
	char url[128];
	snprintf(url, sizeof url, "http://localhost%s", path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	worker_request_common(c, a, timeout_ms);
	long status = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	worker_curl_give(c, gen);
	sb_free(&scratch.body);
	return status;
}

/* ---- readiness and capabilities ----------------------------------------------------------- */

enum worker_ready { WR_OK, WR_EXITED, WR_TIMEOUT, WR_CANCELLED };

/* Polls GET /ping every 50 ms until it answers 200, the run exits, or time runs out. In the
 * boot, a drain or the hard boot limit (the state leaves BOOTING) cancels the wait. */
static enum worker_ready worker_wait_ready(int64_t deadline, bool booting)
{
	for (;;) {
		if (worker_check_exit())
			return WR_EXITED;
		if (worker_stopping() || (booting && lc_state() != LC_BOOTING))
			return WR_CANCELLED;
		int64_t now = time_mono_ms();
		if (now >= deadline)
			return WR_TIMEOUT;
		long t = deadline - now < 1000 ? (long)(deadline - now) : 1000;
		if (worker_get("/ping", t, NULL) == 200)
			return WR_OK;
		pthread_mutex_lock(&w.mu);
		if (!w.stopping && !w.run.exited)
			worker_cond_wait_until(time_mono_ms() + WORKER_PING_INTERVAL_MS);
		pthread_mutex_unlock(&w.mu);
	}
}

static bool worker_valid_action(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 256)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* {"actions":[…], "default": …} → w.actions, w.default_action. */
static int worker_parse_capabilities(const char *text, char *err, size_t errlen)
{
	int rc = -1;
	cJSON *doc = cJSON_ParseWithOpts(text, NULL, 1);
	cJSON *acts = cJSON_GetObjectItemCaseSensitive(doc, "actions");
	cJSON *def = cJSON_GetObjectItemCaseSensitive(doc, "default");
	if (!cJSON_IsArray(acts)) {
		snprintf(err, errlen, "GET /capabilities: expected {\"actions\":[…]}");
		goto out;
	}
	int n = cJSON_GetArraySize(acts);
	if (n > WORKER_ACTIONS_MAX) {
		snprintf(err, errlen, "GET /capabilities: %d actions (at most %d)", n,
			 WORKER_ACTIONS_MAX);
		goto out;
	}
	w.actions = calloc((size_t)n + 1, sizeof *w.actions);
	if (!w.actions) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	int k = 0;
	const cJSON *a;
	cJSON_ArrayForEach(a, acts) {
		if (!cJSON_IsString(a) || !worker_valid_action(a->valuestring)) {
			snprintf(err, errlen, "GET /capabilities: action %d is not a name "
				 "(1-256 characters, no control characters)", k);
			goto out;
		}
		if (!(w.actions[k++] = strdup(a->valuestring))) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	if (def && !cJSON_IsNull(def)) {
		if (!cJSON_IsString(def) || !worker_valid_action(def->valuestring)) {
			snprintf(err, errlen, "GET /capabilities: \"default\" is not an action name");
			goto out;
		}
		w.default_action = strdup(def->valuestring);
	} else if (n > 0) {
		w.default_action = strdup(w.actions[0]);
	}
	rc = 0;
out:
	cJSON_Delete(doc);
	return rc;
}

static int worker_read_capabilities(int64_t deadline, char *err, size_t errlen)
{
	struct worker_answer a = {.body = STRBUF_INIT};
	int64_t left = deadline - time_mono_ms();
	long status = worker_get("/capabilities", left > 5000 ? 5000 : left > 0 ? (long)left : 1,
				 &a);
	int rc = -1;
	if (status != 200 && status)
		snprintf(err, errlen, "GET /capabilities on the worker answered HTTP %ld", status);
	else if (status != 200)
		snprintf(err, errlen, "GET /capabilities: no answer from the worker");
	else
		rc = worker_parse_capabilities(a.body.buf ? a.body.buf : "", err, errlen);
	sb_free(&a.body);
	return rc;
}

/* ---- supervision ------------------------------------------------------------------------- */

static bool worker_no_restart(const char **why)
{
	enum lc_state s = lc_state();
	if (worker_stopping())
		*why = "stopping";
	else if (s == LC_DRAINING || s == LC_STOPPED || s == LC_FAILED)
		*why = "draining";
	else
		return false;
	return true;
}

/* The run has exited: log it, drop readiness, clear up. Returns how long it had been up. */
static int64_t worker_on_exit(void)
{
	struct worker_exit x = worker_exit_status();
	pthread_mutex_lock(&w.mu);
	pid_t pid = w.run.pid;
	int64_t up = time_mono_ms() - w.run.started_ms;
	char last[sizeof w.run.last_stderr];
	memcpy(last, w.run.last_stderr, sizeof last);
	pthread_mutex_unlock(&w.mu);
	worker_set_state(WS_DOWN);
	lc_set_surface(SURFACE_AGENT, SURF_DOWN);
	char how[96], sig[16];
	worker_exit_text(&x, how, sizeof how);
	log_emit(PAR_LOG_ERROR, "worker.exited",
		 LOG_FIELDS(LF_INT("pid", pid), LF_INT("exitCode", x.known && !x.sig ? x.code : -1),
			    LF_STR("signal", worker_signame(x.sig, sig, sizeof sig)),
			    LF_INT("uptimeMs", up), LF_STR("lastStderr", last[0] ? last : NULL)),
		 "worker (pid %d) exited with %s after %lld ms", (int)pid, how, (long long)up);
	worker_end_run();
	return up;
}

/* Starts a new run and waits for its /ping. A run that never answers is killed; its exit
 * brings the supervisor back round to the next backoff. */
static void worker_restart(unsigned attempt)
{
	char err[256];
	metric_inc(w.m_restarts);
	if (worker_spawn(err, sizeof err) != 0) {
		log_emit(PAR_LOG_ERROR, "worker.start.failed", LOG_FIELDS(LF_UINT("attempt", attempt)),
			 "%s", err);
		pthread_mutex_lock(&w.mu);
		w.run.pid = 0;    /* nothing to wait for: the loop goes straight to the next backoff */
		w.run.exited = true;
		w.run.ended = true;
		w.run.how = (struct worker_exit){0};
		w.run.started_ms = time_mono_ms();
		pthread_mutex_unlock(&w.mu);
		return;
	}
	worker_set_state(WS_STARTING);
	enum worker_ready r = worker_wait_ready(time_mono_ms() + WORKER_RESTART_READY_MS, false);
	if (r == WR_OK) {
		worker_set_state(WS_UP);
		lc_set_surface(SURFACE_AGENT, SURF_UP);
		log_emit(PAR_LOG_INFO, "worker.ready",
			 LOG_FIELDS(LF_INT("pid", w.run.pid), LF_UINT("restarts", attempt),
				    LF_INT("startMs", time_mono_ms() - w.run.started_ms)),
			 "worker (pid %d) is answering again", (int)w.run.pid);
	} else if (r == WR_TIMEOUT) {
		log_emit(PAR_LOG_ERROR, "worker.ping.timeout", LOG_FIELDS(LF_INT("pid", w.run.pid)),
			 "restarted worker (pid %d) did not answer /ping within %d ms: killing it",
			 (int)w.run.pid, WORKER_RESTART_READY_MS);
		kill(-w.run.pid, SIGKILL);
	}
}

/* Sleeps until the run exits or a stop is requested. Polls the pidfd now and then in case an
 * exit was reaped without reaching child_exited. Returns false when stopping. */
static bool worker_await_exit(void)
{
	for (;;) {
		if (worker_check_exit())
			return true;
		pthread_mutex_lock(&w.mu);
		bool stop = w.stopping;
		if (!stop && !w.run.exited)
			worker_cond_wait_until(time_mono_ms() + 500);
		stop = w.stopping;
		pthread_mutex_unlock(&w.mu);
		if (stop)
			return false;
	}
}

static void *worker_supervisor_main(void *arg)
{
	(void)arg;
	unsigned failures = 0, restarts = 0;
	for (;;) {
		if (!worker_await_exit())
			break;
		pthread_mutex_lock(&w.mu);
		bool spawned = w.run.pid > 0;
		pthread_mutex_unlock(&w.mu);
		int64_t up = spawned ? worker_on_exit() : 0;
		if (up >= WORKER_BACKOFF_RESET_MS)
			failures = 0;
		const char *why;
		if (worker_no_restart(&why)) {
			log_emit(PAR_LOG_INFO, "worker.restart.skipped", LOG_FIELDS(LF_STR("reason", why)),
				 "worker not restarted: pard is %s", why);
			break;
		}
		int64_t delay = WORKER_BACKOFF_FIRST_MS;
		for (unsigned i = 0; i < failures && delay < WORKER_BACKOFF_MAX_MS; i++)
			delay *= 2;
		if (delay > WORKER_BACKOFF_MAX_MS)
			delay = WORKER_BACKOFF_MAX_MS;
		failures++;
		log_emit(PAR_LOG_WARN, "worker.restart.scheduled",
			 LOG_FIELDS(LF_INT("delayMs", delay), LF_UINT("attempt", restarts + 1)),
			 "restarting the worker in %lld ms", (long long)delay);
		if (!worker_sleep(delay) || worker_no_restart(&why))
			break;
		worker_restart(++restarts);
	}
	return NULL;
}

/* The drain's grace deadline bounds every call into the worker (so a hung worker cannot hold
 * the surfaces' stop); undrain lifts it. libcurl notices a cancel within a second, so calls
 * are cancelled in the grace's last second: their 503 still reaches the client before the
 * listeners close. */
static void worker_on_lifecycle(void *ctx)
{
	(void)ctx;
	static _Atomic enum lc_state last = LC_BOOTING;
	enum lc_state s = lc_state();
	if (s == LC_DRAINING && last != LC_DRAINING && w.cfg) {
		int64_t grace = (int64_t)w.cfg->graceful_shutdown_timeout_sec * 1000;
		int64_t ms = grace >= 2000 ? grace - 1000 : grace / 2;
		if (last == LC_READY)
			ms += (int64_t)w.cfg->drain_delay_sec * 1000;
		atomic_store(&w.cancel_at, time_mono_ms() + ms);
	} else if (s == LC_READY) {
		atomic_store(&w.cancel_at, 0);
	}
	last = s;
}

/* ---- load and stop ------------------------------------------------------------------------- */

/* Everything of the loaded worker. The actions stay after a stop (keep_actions): the admin
 * socket still describes the agent while pard finishes its drain. */
static void worker_free_all(bool keep_actions)
{
	worker_pool_close();
	if (w.sock_path)
		unlink(w.sock_path);
	if (w.sock_dir && fs_remove_tree(w.sock_dir) < 0)
		log_emit(PAR_LOG_WARN, "worker.socket.cleanup", LOG_FIELDS(LF_STR("dir", w.sock_dir)),
			 "cannot remove %s: %s", w.sock_dir, strerror(errno));
	w.atexit_sock_dir[0] = '\0';
	free(w.sock_dir);
	free(w.sock_path);
	free(w.root);
	free(w.origin);
	free(w.exe);
	worker_free_strv(w.argv);
	worker_free_strv(w.envp);
	w.sock_dir = w.sock_path = w.root = w.origin = w.exe = NULL;
	w.argv = w.envp = NULL;
	if (keep_actions)
		return;
	worker_free_strv(w.actions);
	free(w.default_action);
	w.actions = NULL;
	w.default_action = NULL;
}

/* The load failed after the process started: it goes, now. */
static void worker_abort_run(void)
{
	if (w.run.pid > 0 && !worker_check_exit()) {
		kill(-w.run.pid, SIGKILL);
		worker_wait_exit(2000);
	}
	worker_end_run();
}

static int worker_prepare(const struct worker_command *cmd, const struct par_config *cfg,
			  const char *root, struct metrics *metrics, char *err, size_t errlen)
{
	w.cfg = cfg;
	w.m_restarts = metrics_counter(metrics, "par_worker_restarts_total",
				       "Worker processes started again after an exit.", NULL);
	w.m_up = metrics_gauge(metrics, "par_worker_up",
			       "1 while the worker answers /ping, else 0.", NULL);
	size_t argc = 0;
	while (cmd->argv && cmd->argv[argc])
		argc++;
	if (!(w.root = realpath(root, NULL))) {
		snprintf(err, errlen, "package root %s: %s", root, strerror(errno));
		return -1;
	}
	if (!(w.origin = strdup(cmd->origin ? cmd->origin : "command")) ||
	    !(w.argv = calloc(argc + 1, sizeof *w.argv))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (!(w.exe = worker_resolve_cmd(w.root, argc ? cmd->argv[0] : NULL, w.origin, err,
					 errlen)))
		return -1;
	for (size_t i = 0; i < argc; i++)
		if (!(w.argv[i] = strdup(cmd->argv[i]))) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	if (worker_make_sock_dir(err, errlen) < 0)
		return -1;
	if (!(w.envp = worker_build_env(cmd->env, w.sock_path, w.root))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static void worker_once_init(void)
{
	worker_cond_init();
	worker_curl_init();
	lc_on_change(worker_on_lifecycle, NULL);
	atexit(worker_atexit);
}

static void worker_load_error(enum worker_ready r, int64_t waited, char *err, size_t errlen)
{
	if (r == WR_EXITED) {
		struct worker_exit x = worker_exit_status();
		char how[96];
		worker_exit_text(&x, how, sizeof how);
		pthread_mutex_lock(&w.mu);
		char last[sizeof w.run.last_stderr];
		memcpy(last, w.run.last_stderr, sizeof last);
		pthread_mutex_unlock(&w.mu);
		snprintf(err, errlen, "worker %s exited during load with %s%s%s", w.exe, how,
			 last[0] ? "; last stderr line: " : "", last);
	} else if (r == WR_TIMEOUT) {
		snprintf(err, errlen, "worker %s did not answer GET /ping on %s within %lld ms",
			 w.exe, w.sock_path, (long long)waited);
	} else {
		snprintf(err, errlen, "load cancelled: pard is no longer booting");
	}
}

int worker_load(const struct worker_command *cmd, const struct par_config *cfg,
		const char *root, struct metrics *metrics, int64_t deadline_mono_ms, char *err,
		size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, worker_once_init);
	int64_t t0 = time_mono_ms();
	int64_t deadline = deadline_mono_ms ? deadline_mono_ms : t0 + WORKER_LOAD_DEFAULT_MS;
	bool spawned = false;
	if (worker_prepare(cmd, cfg, root, metrics, err, errlen) < 0)
		goto fail;
	worker_pool_open();
	if (worker_spawn(err, errlen) < 0)
		goto fail;
	spawned = true;
	worker_set_state(WS_STARTING);
	enum worker_ready r = worker_wait_ready(deadline, true);
	if (r != WR_OK) {
		worker_load_error(r, time_mono_ms() - t0, err, errlen);
		goto fail;
	}
	if (worker_read_capabilities(deadline, err, errlen) < 0)
		goto fail;
	int e = pthread_create(&w.supervisor, NULL, worker_supervisor_main, NULL);
	if (e) {
		snprintf(err, errlen, "cannot start the worker supervisor: %s", strerror(e));
		goto fail;
	}
	w.supervisor_running = true;
	worker_set_state(WS_UP);
	lc_set_surface(SURFACE_AGENT, SURF_UP);
	log_emit(PAR_LOG_INFO, "worker.ready",
		 LOG_FIELDS(LF_INT("pid", w.run.pid), LF_UINT("restarts", 0),
			    LF_INT("startMs", time_mono_ms() - t0)),
		 "worker (pid %d) is answering on %s", (int)w.run.pid, w.sock_path);
	return 0;
fail:
	if (spawned)
		worker_abort_run();
	worker_set_state(WS_NONE);
	worker_free_all(false);
	return -1;
}

/* SIGTERM to the process group, SIGKILL after grace_ms. Runs on the main thread during the
 * drain, which is the thread that would otherwise reap the worker: reap it here. */
static void worker_terminate(int grace_ms)
{
	pid_t pid = w.run.pid;
	if (pid <= 0 || worker_check_exit())
		return;
	int64_t t0 = time_mono_ms();
	kill(-pid, SIGTERM);
	const char *how = "SIGTERM";
	if (!worker_wait_exit(grace_ms > 0 ? grace_ms : 0)) {
		how = "SIGKILL";
		log_emit(PAR_LOG_WARN, "worker.kill", LOG_FIELDS(LF_INT("pid", pid),
								 LF_INT("graceMs", grace_ms)),
			 "worker (pid %d) still running %d ms after SIGTERM: SIGKILL", (int)pid,
			 grace_ms);
		kill(-pid, SIGKILL);
		worker_wait_exit(5000);
	}
	struct worker_exit x = worker_exit_status();
	char text[96], sig[16];
	worker_exit_text(&x, text, sizeof text);
	log_emit(PAR_LOG_INFO, "worker.stopped",
		 LOG_FIELDS(LF_INT("pid", pid), LF_STR("by", how),
			    LF_INT("durationMs", time_mono_ms() - t0),
			    LF_INT("exitCode", x.known && !x.sig ? x.code : -1),
			    LF_STR("signal", worker_signame(x.sig, sig, sizeof sig))),
		 "worker (pid %d) stopped by %s: %s", (int)pid, how, text);
}

void worker_stop(int grace_ms)
{
	pthread_mutex_lock(&w.mu);
	if (w.state == WS_NONE || w.state == WS_STOPPED) {
		pthread_mutex_unlock(&w.mu);
		return;
	}
	w.stopping = true;
	pthread_cond_broadcast(&w.cond);
	pthread_mutex_unlock(&w.mu);
	atomic_store(&w.cancel_at, time_mono_ms());
	if (w.supervisor_running) {
		pthread_join(w.supervisor, NULL);
		w.supervisor_running = false;
	}
	worker_terminate(grace_ms);
	worker_end_run();
	worker_set_state(WS_STOPPED);
	lc_set_surface(SURFACE_AGENT, SURF_DOWN);
	worker_free_all(true);
}

/* ---- the backend ---------------------------------------------------------------------- */

bool worker_up(void)
{
	pthread_mutex_lock(&w.mu);
	bool up = w.state == WS_UP;
	pthread_mutex_unlock(&w.mu);
	return up;
}

bool worker_healthy(void) { return worker_up(); }

pid_t worker_pid(void)
{
	pthread_mutex_lock(&w.mu);
	pid_t pid = w.run.exited ? 0 : w.run.pid;
	pthread_mutex_unlock(&w.mu);
	return pid;
}

const char *const *worker_actions(void)
{
	return w.actions ? (const char *const *)w.actions : worker_no_actions;
}

const char *worker_default_action(void) { return w.default_action; }

static void worker_result_error(struct agent_result *out, enum agent_status st,
				const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void worker_result_error(struct agent_result *out, enum agent_status st,
				const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	out->status = st;
	out->error = strdup(msg);
}

/* {"action","parameters","request_id"}; NULL when params_json is not JSON. */
static char *worker_invoke_body(const char *action, const char *params_json,
				const char *request_id)
{
	cJSON *params = cJSON_ParseWithOpts(params_json && *params_json ? params_json : "{}",
					    NULL, 1);
	if (!params)
		return NULL;
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	if (o && cJSON_AddStringToObject(o, "action", action) &&
	    cJSON_AddItemToObject(o, "parameters", params)) {
		params = NULL;
		if (cJSON_AddStringToObject(o, "request_id", request_id ? request_id : ""))
			text = cJSON_PrintUnformatted(o);
	}
	cJSON_Delete(params);
	cJSON_Delete(o);
	return text;
}

/* The worker's answer → the result. Strings stay JSON strings: the result is always the
 * JSON text of what the worker returned (SPEC §12.12). */
static void worker_map_answer(long status, const char *body, struct agent_result *out)
{
	cJSON *doc = cJSON_ParseWithOpts(body ? body : "", NULL, 1);
	cJSON *ok = cJSON_GetObjectItemCaseSensitive(doc, "success");
	if (!cJSON_IsBool(ok)) {
		worker_result_error(out, AGENT_ERR_INTERNAL,
				    "the worker answered POST /invoke with HTTP %ld and no "
				    "{\"success\",…} object", status);
		goto out;
	}
	if (cJSON_IsTrue(ok)) {
		cJSON *res = cJSON_GetObjectItemCaseSensitive(doc, "result");
		out->result_json = res ? cJSON_PrintUnformatted(res) : strdup("null");
		out->status = out->result_json ? AGENT_OK : AGENT_ERR_INTERNAL;
		if (!out->result_json)
			out->error = strdup("out of memory");
		goto out;
	}
	cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
	out->status = AGENT_ERR_ACTION;
	if (cJSON_IsString(e))
		out->error = strdup(e->valuestring);
	else if (e && !cJSON_IsNull(e))
		out->error = cJSON_PrintUnformatted(e);
	else
		out->error = strdup("the action failed");
out:
	cJSON_Delete(doc);
}

static void worker_map_failure(CURLcode rc, const struct worker_answer *a, int64_t limit_ms,
			       bool own_deadline, struct agent_result *out)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		worker_result_error(out, AGENT_ERR_DEADLINE,
				    own_deadline ? "deadline exceeded: no answer within %lld ms"
						 : "no answer from the worker within %lld ms",
				    (long long)limit_ms);
		break;
	case CURLE_ABORTED_BY_CALLBACK:
		worker_result_error(out, AGENT_ERR_UNAVAILABLE,
				    "cancelled: pard is shutting down");
		break;
	case CURLE_COULDNT_CONNECT:
		worker_result_error(out, AGENT_ERR_UNAVAILABLE,
				    "the worker is not accepting connections (restarting?)");
		break;
	case CURLE_WRITE_ERROR:
		if (a->too_large) {
			worker_result_error(out, AGENT_ERR_INTERNAL,
					    "the worker's answer is larger than %u MiB",
					    WORKER_ANSWER_MAX >> 20);
			break;
		}
		/* fall through */
	default:
		/* The request reached the worker and the connection died: a crash mid-call,
		 * which a client must not blindly retry. */
		worker_result_error(out, AGENT_ERR_INTERNAL, "the worker failed mid-call: %s",
				    curl_easy_strerror(rc));
		break;
	}
}

void worker_invoke(const char *action, const char *params_json, const char *request_id,
		   int64_t deadline_mono_ms, struct agent_result *out)
{
	out->status = AGENT_OK;
	out->result_json = out->error = NULL;
	struct worker_answer a = {.body = STRBUF_INIT};
	struct curl_slist *hdrs = NULL;
	CURL *c = NULL;
	unsigned gen = 0;
	char *body = NULL;
	int64_t limit = deadline_mono_ms ? deadline_mono_ms - time_mono_ms()
					 : WORKER_INVOKE_DEFAULT_MS;
	if (!worker_up()) {
		worker_result_error(out, AGENT_ERR_UNAVAILABLE, "the worker is down (restarting)");
		goto out;
	}
	if (limit <= 0) {
		worker_result_error(out, AGENT_ERR_DEADLINE, "deadline exceeded before the call");
		goto out;
	}
	if (!(body = worker_invoke_body(action, params_json, request_id))) {
		worker_result_error(out, AGENT_ERR_INTERNAL, "parameters are not a JSON text");
		goto out;
	}
	char rid[200];
	snprintf(rid, sizeof rid, "X-Request-ID: %s", request_id ? request_id : "");
	const char *lines[] = {"Content-Type: application/json", "Expect:", rid};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		struct curl_slist *n = curl_slist_append(hdrs, lines[i]);
		if (!n) {
			curl_slist_free_all(hdrs);
			hdrs = NULL;
			break;
		}
		hdrs = n;
	}
	if (!hdrs || !(c = worker_curl_take(&gen))) {
		worker_result_error(out, AGENT_ERR_UNAVAILABLE, "no connection to the worker");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, "http://localhost/invoke");
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	worker_request_common(c, &a, (long)limit);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (rc == CURLE_OK)
		worker_map_answer(status, a.body.buf, out);
	else
		worker_map_failure(rc, &a, limit, deadline_mono_ms != 0, out);
out:
	worker_curl_give(c, gen);
	curl_slist_free_all(hdrs);
	free(body);
	sb_free(&a.body);
}

static int exec_load(const struct par_config *cfg, const struct par_manifest *m,
		     const char *root, struct metrics *metrics, int64_t deadline_mono_ms,
		     char *err, size_t errlen)
{
	if (!m->exec_command || !m->exec_command[0]) {
		snprintf(err, errlen, "runtime exec needs exec.command (an argv list)");
		return -1;
	}
	struct worker_command cmd = {
		.argv = (const char *const *)m->exec_command,
		.env = (const char *const *)m->exec_env,
		.origin = "exec.command",
	};
	return worker_load(&cmd, cfg, root, metrics, deadline_mono_ms, err, errlen);
}

const struct agent_backend agent_exec_backend = {
	.name = "exec",
	.load = exec_load,
	.actions = worker_actions,
	.default_action = worker_default_action,
	.invoke = worker_invoke,
	.api = proxy_api,
	.api_completed = proxy_api_completed,
	.healthy = worker_healthy,
	.stop = worker_stop,
	.child_exited = worker_child_exited,
};
