/* Commands without a command line: the readline shell on a terminal (prompt, completion
 * from the token table, history in ~/.parctl_history) and a plain line reader for pipes,
 * which must not echo a prompt into the output a script reads. */
#include "shell.h"

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "parser.h"

#define MAX_WORDS 64
#define HISTORY_MAX 500
#define PROMPT "par> "

static char *trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' ||
			 s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

/* Runs one line; the exit code, or CTL_QUIT. Blank and comment lines are CTL_OK. */
static int run_line(struct ctl *ctl, const char *text, struct ctl_error *err)
{
	char *copy = strdup(text), *words[MAX_WORDS];
	int n, rc;

	if (!copy) {
		ctl_fail(err, CTL_FAILED, "internal", "out of memory");
		return CTL_FAILED;
	}
	n = parse_split(copy, words, MAX_WORDS);
	if (n < 0) {
		ctl_fail(err, CTL_USAGE, "usage", "more than %d words on one line", MAX_WORDS);
		rc = CTL_USAGE;
	} else {
		rc = n == 0 ? CTL_OK : ctl_run(ctl, n, words, err);
	}
	free(copy);
	return rc;
}

int shell_lines(struct ctl *ctl, FILE *in)
{
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0;
	int rc = CTL_OK;
	struct ctl_error err;

	while (getline(&line, &cap, in) >= 0) {
		lineno++;
		int r = run_line(ctl, line, &err);
		if (r == CTL_QUIT)
			break;
		if (r != CTL_OK) {
			/* Later lines may depend on this one: stop, and name the line. Whatever
			 * failed, a script's exit is 1 (err.code still says what it was). */
			err.exit = CTL_FAILED;
			ctl_report(ctl, &err, lineno);
			rc = CTL_FAILED;
			break;
		}
	}
	free(line);
	return rc;
}

/* --- completion ------------------------------------------------------------------------ */

struct words {
	char *v[64];
	size_t n, next;
};

static struct words *completing;

static void collect(const char *word, void *ctx)
{
	struct words *w = ctx;
	if (w->n < sizeof w->v / sizeof w->v[0])
		w->v[w->n++] = strdup(word);
}

/* readline's generator: hands out the collected words one by one (readline frees them). */
static char *next_match(const char *text, int state)
{
	(void)text;
	if (state == 0)
		completing->next = 0;
	if (completing->next < completing->n) {
		char *w = completing->v[completing->next];
		completing->v[completing->next++] = NULL;
		return w;
	}
	return NULL;
}

static char **complete(const char *text, int start, int end)
{
	struct words found = {0};
	char *before = strndup(rl_line_buffer, (size_t)start), *words[MAX_WORDS];
	char **matches = NULL;
	int n;

	(void)end;
	rl_attempted_completion_over = 1;
	if (!before)
		return NULL;
	n = parse_split(before, words, MAX_WORDS);
	if (n >= 0 && parse_complete(n, words, text, true, collect, &found) == 1)
		rl_attempted_completion_over = 0;   /* validate: readline completes file names */
	completing = &found;
	if (found.n)
		matches = rl_completion_matches(text, next_match);
	completing = NULL;
	for (size_t i = 0; i < found.n; i++)
		free(found.v[i]);
	free(before);
	return matches;
}

/* --- history --------------------------------------------------------------------------- */

static char *history_path(void)
{
	const char *home = getenv("HOME");
	char *path = NULL;

	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || asprintf(&path, "%s/.parctl_history", home) < 0)
		return NULL;
	return path;
}

/* Each line goes to the file at once, so a killed shell loses nothing; append_history
 * needs the file to exist, write_history creates it. */
static void remember(const char *line, const char *path)
{
	HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1)
					      : NULL;

	if (last && strcmp(last->line, line) == 0)
		return;
	add_history(line);
	if (path && append_history(1, path) != 0)
		write_history(path);
}

/* --- the interactive shell -------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Ctrl-C at the prompt drops the line being typed and shows a fresh prompt, as a shell
 * does, instead of killing parctl. readline calls this after a signal interrupted a read. */
static int after_signal(void)
{
	if (!interrupted)
		return 0;
	interrupted = 0;
	rl_replace_line("", 0);
	rl_crlf();
	rl_on_new_line();
	rl_redisplay();
	return 0;
}

int shell_interactive(struct ctl *ctl)
{
	char *path = history_path(), *line;
	struct sigaction sa = {.sa_handler = on_sigint}, prev;
	struct ctl_error err;

	rl_readline_name = "parctl";
	rl_attempted_completion_function = complete;
	rl_signal_event_hook = after_signal;
	sigaction(SIGINT, &sa, &prev);
	using_history();
	stifle_history(HISTORY_MAX);
	if (path)
		read_history(path);   /* ENOENT on the first run is fine */

	for (;;) {
		interrupted = 0;   /* a Ctrl-C that aborted the last command is spent */
		line = readline(PROMPT);
		if (!line)
			break;
		char *cmd = trim(line);
		if (*cmd && *cmd != '#')
			remember(cmd, path);
		int rc = run_line(ctl, cmd, &err);
		free(line);
		if (rc == CTL_QUIT)
			break;
		if (rc != CTL_OK)
			ctl_report(ctl, &err, 0);
	}
	if (!line)
		putchar('\n');   /* Ctrl-D: leave the terminal on a fresh line */
	if (path)
		history_truncate_file(path, HISTORY_MAX);
	rl_clear_history();
	sigaction(SIGINT, &prev, NULL);
	free(path);
	return CTL_OK;
}
