/* The command-line grammar (bgpctl style): a static token table walked word by word, with
 * prefix matching and errors that list the valid choices. The same walk completes words for
 * the shell's tab completion and for the bash/zsh/fish scripts (parctl __complete). */
#ifndef PARCTL_PARSER_H
#define PARCTL_PARSER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "par/admin.h"

enum parse_action {
	PA_NONE,
	PA_ADMIN,        /* a verb of admin_verbs, sent to pard */
	PA_VALIDATE,     /* local: the offline package check */
	PA_COMPLETION,   /* local: print a shell completion script */
	PA_HELP,         /* local */
	PA_QUIT,         /* shell only */
};

struct parse_result {
	enum parse_action action;
	const char *cmd;                  /* PA_ADMIN: the verb phrase of admin_verbs */
	cJSON *args;                      /* the request's args (PA_COMPLETION: {"shell":…}) */
	const struct admin_fault *fault;  /* fault set/clear: the fault named */
	int rest_argc;                    /* PA_VALIDATE, PA_HELP: the words from the verb on */
	char **rest_argv;
};

/* Parses words (argv[0] is the verb). shell: the shell-only verbs (quit, exit) are valid.
 * 0 ok (free res with parse_result_free); -1 with the sentence in err: a usage error. */
int parse_command(int argc, char **argv, bool shell, struct parse_result *res, char *err,
		  size_t errlen);
void parse_result_free(struct parse_result *res);

/* Calls emit for each word that may follow argv[0..argc) and starts with cur.
 * Returns 0, or 1 when the position takes a file name (validate) instead of a word. */
int parse_complete(int argc, char **argv, const char *cur, bool shell,
		   void (*emit)(const char *word, void *ctx), void *ctx);

/* Splits a shell line into words at blanks (no quoting: no verb takes a blank), up to a
 * word starting with '#' (a comment). The words point into line, which is modified; at most
 * max words. Returns the count, or -1 if there are more. */
int parse_split(char *line, char **words, int max);

#endif
