/* Runs helper programs (venv, pip) to completion for the boot thread; see subproc.h. */
#include "subproc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "par/timeutil.h"

extern char **environ;

#define SUBPROC_SLOTS 4
#define SUBPROC_LINE_MAX 4096

/* The programs being waited for: the main loop fills in the status when it reaps one. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool cond_ready;
	struct {
		pid_t pid;     /* 0: free */
		bool exited;
		int status;
	} slot[SUBPROC_SLOTS];
} sp = {.mu = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t sp_once = PTHREAD_ONCE_INIT;

static void subproc_init(void)
{
	/* The waits measure against CLOCK_MONOTONIC, so the condition must too. */
	time_cond_init_mono(&sp.cond);
	sp.cond_ready = true;
}

bool subproc_child_exited(pid_t pid, int status)
{
	bool mine = false;
	pthread_mutex_lock(&sp.mu);
	for (int i = 0; i < SUBPROC_SLOTS; i++)
		if (sp.slot[i].pid == pid && !sp.slot[i].exited) {
			sp.slot[i].exited = true;
			sp.slot[i].status = status;
			mine = true;
		}
	if (mine && sp.cond_ready)
		pthread_cond_broadcast(&sp.cond);
	pthread_mutex_unlock(&sp.mu);
	return mine;
}

/* environ with the extra entries replacing the ones they name. */
static char **subproc_env(const char *const *extra)
{
	size_t n = 0, k = 0;
	while (environ[n])
		n++;
	while (extra && extra[k])
		k++;
	char **v = calloc(n + k + 1, sizeof *v);
	if (!v)
		return NULL;
	size_t out = 0;
	for (size_t i = 0; i < n; i++) {
		bool replaced = false;
		for (size_t j = 0; j < k && !replaced; j++) {
			const char *eq = strchr(extra[j], '=');
			size_t len = eq ? (size_t)(eq - extra[j]) + 1 : strlen(extra[j]);
			replaced = strncmp(environ[i], extra[j], len) == 0;
		}
		if (!replaced)
			v[out++] = environ[i];
	}
	for (size_t j = 0; j < k; j++)
		v[out++] = (char *)extra[j];
	return v;
}

static int subproc_spawn(const struct subproc_opts *o, int out_w, int *slot, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	char **envp = subproc_env(o->env);
	if (!envp)
		return ENOMEM;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	int e = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!e)
		e = posix_spawn_file_actions_adddup2(&fa, out_w, 1);
	if (!e)
		e = posix_spawn_file_actions_adddup2(&fa, out_w, 2);
	if (!e && o->cwd)
		e = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
	if (!e)
		e = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	if (!e)
		e = subproc_spawnattr_setup(&at);
	if (!e) {
		/* Held across the spawn so the main loop, which may reap the child at once,
		 * finds its pid recorded. */
		pthread_mutex_lock(&sp.mu);
		*slot = -1;
		for (int i = 0; i < SUBPROC_SLOTS && *slot < 0; i++)
			if (!sp.slot[i].pid)
				*slot = i;
		if (*slot < 0) {
			e = EAGAIN;
		} else {
			e = posix_spawnp(pid, o->argv[0], &fa, &at, (char *const *)o->argv, envp);
			if (!e)
				sp.slot[*slot].pid = *pid, sp.slot[*slot].exited = false;
		}
		pthread_mutex_unlock(&sp.mu);
	}
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	free(envp);
	return e;
}

int subproc_spawnattr_setup(posix_spawnattr_t *at)
{
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	int e = posix_spawnattr_setsigmask(at, &none);
	if (!e)
		e = posix_spawnattr_setsigdefault(at, &all);
	if (!e)
		e = posix_spawnattr_setpgroup(at, 0);
	if (!e)
		e = posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
						      POSIX_SPAWN_SETPGROUP);
	return e;
}

static void subproc_emit(const struct subproc_opts *o, char *buf, size_t *len, bool all)
{
	size_t start = 0;
	for (size_t i = 0; i < *len; i++)
		if (buf[i] == '\n') {
			buf[i] = '\0';
			if (i > start && buf[i - 1] == '\r')
				buf[i - 1] = '\0';
			o->on_line(o->ctx, buf + start);
			start = i + 1;
		}
	size_t left = *len - start;
	if (left && (all || left == SUBPROC_LINE_MAX)) {
		buf[start + left] = '\0';
		o->on_line(o->ctx, buf + start);
		start += left;
		left = 0;
	}
	memmove(buf, buf + start, left);
	*len = left;
}

static const char *subproc_stop_reason(const struct subproc_opts *o)
{
	if (o->cancel && atomic_load(o->cancel))
		return "cancelled";
	if (o->deadline_mono_ms && time_mono_ms() >= o->deadline_mono_ms)
		return "out of time";
	return NULL;
}

enum subproc_outcome subproc_run(const struct subproc_opts *o, int *status, char *err,
				 size_t errlen)
{
	pthread_once(&sp_once, subproc_init);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return SUBPROC_NOT_STARTED;
	}
	int slot;
	pid_t pid;
	int e = subproc_spawn(o, p[1], &slot, &pid);
	close(p[1]);
	if (e) {
		close(p[0]);
		snprintf(err, errlen, "cannot run %s: %s", o->argv[0], strerror(e));
		return SUBPROC_NOT_STARTED;
	}
	char buf[SUBPROC_LINE_MAX + 1];
	size_t len = 0;
	const char *stopped = NULL;
	bool eof = false;
	while (!eof) {
		if (!stopped && (stopped = subproc_stop_reason(o)))
			kill(-pid, SIGKILL);
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		int r = poll(&pfd, 1, 100);
		if (r <= 0)
			continue;
		ssize_t n = read(p[0], buf + len, SUBPROC_LINE_MAX - len);
		if (n > 0) {
			len += (size_t)n;
			subproc_emit(o, buf, &len, false);
		} else if (n == 0 || errno != EINTR) {
			eof = true;
		}
	}
	subproc_emit(o, buf, &len, true);
	close(p[0]);
	/* Output closed; the status arrives when the main loop reaps the child. */
	pthread_mutex_lock(&sp.mu);
	while (!sp.slot[slot].exited) {
		if (!stopped && (stopped = subproc_stop_reason(o)))
			kill(-pid, SIGKILL);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 100 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&sp.cond, &sp.mu, &ts);
	}
	*status = sp.slot[slot].status;
	sp.slot[slot].pid = 0;
	pthread_mutex_unlock(&sp.mu);
	if (stopped) {
		snprintf(err, errlen, "%s %s", o->argv[0], stopped);
		return SUBPROC_KILLED;
	}
	/* posix_spawnp reports an exec failure as exit 127 of the child. */
	if (WIFEXITED(*status) && WEXITSTATUS(*status) == 127) {
		snprintf(err, errlen, "cannot run %s (not found or not executable)", o->argv[0]);
		return SUBPROC_NOT_STARTED;
	}
	return SUBPROC_EXITED;
}
