/* Helper programs run to completion from the boot thread (python -m venv, pip): output line by
 * line to a callback, killed with their process group on cancel or deadline. The main loop
 * reaps every child (pard may be PID 1), so exit statuses come back through
 * subproc_child_exited. */
#ifndef PARD_SUBPROC_H
#define PARD_SUBPROC_H

#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct subproc_opts {
	const char *const *argv;   /* argv[0] looked up in PATH when it has no '/' */
	const char *const *env;    /* extra "K=V" entries over pard's environment, or NULL */
	const char *cwd;           /* NULL: pard's */
	/* Each output line (stdout and stderr merged, in order), without its newline. */
	void (*on_line)(void *ctx, const char *line);
	void *ctx;
	const atomic_bool *cancel; /* polled; true kills the program */
	int64_t deadline_mono_ms;  /* 0: none */
};

enum subproc_outcome { SUBPROC_EXITED, SUBPROC_NOT_STARTED, SUBPROC_KILLED };

/* Runs the program and waits for it. SUBPROC_EXITED: *status is its wait status.
 * SUBPROC_NOT_STARTED: err says why (the program could not be executed).
 * SUBPROC_KILLED: cancelled or out of time; err says which. */
enum subproc_outcome subproc_run(const struct subproc_opts *o, int *status, char *err,
				 size_t errlen);

/* Every child of pard starts this way: pard blocks its signals in every thread and ignores
 * SIGPIPE, the child must have neither; and it gets its own process group, so that one kill
 * reaches whatever it starts. 0 or an errno value. */
int subproc_spawnattr_setup(posix_spawnattr_t *at);

/* SIGCHLD: true when pid was a program subproc_run is waiting for. */
bool subproc_child_exited(pid_t pid, int status);

#endif
