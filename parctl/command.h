/* Runs one parctl command given as words — the same path for a command line, a shell line
 * and a piped line — and reports its failure through the output table. */
#ifndef PARCTL_COMMAND_H
#define PARCTL_COMMAND_H

#include <stdbool.h>

#include "client.h"
#include "output.h"
#include "parctl.h"

struct ctl {
	struct client client;        /* one connection, reused across a shell's commands */
	const struct output *out;
	bool json;
	bool shell;                  /* reading commands from a shell or a pipe: quit/exit */
};

/* ctl_run's answer to quit/exit. */
#define CTL_QUIT (-1)

/* An exit code (enum ctl_exit) with err set when it is not CTL_OK, or CTL_QUIT. */
int ctl_run(struct ctl *ctl, int argc, char **argv, struct ctl_error *err);

/* Prints a failure (line > 0: naming the input line). */
void ctl_report(const struct ctl *ctl, struct ctl_error *err, long line);

/* The embedded completion scripts (generated from completions/ at build time). */
const char *completion_script(const char *shell);

#endif
