/* parctl without a command: an interactive readline shell on a terminal, or one command per
 * line from a pipe or file. */
#ifndef PARCTL_SHELL_H
#define PARCTL_SHELL_H

#include <stdio.h>

#include "command.h"

/* `par> ` prompt, tab completion, history in ~/.parctl_history, help; quit, exit or Ctrl-D
 * leave with 0. */
int shell_interactive(struct ctl *ctl);

/* No prompt and no echo; blank lines and # comments skipped; stops at the first failure
 * with the line number on stderr and returns CTL_FAILED; quit/exit stop early with 0. */
int shell_lines(struct ctl *ctl, FILE *in);

#endif
