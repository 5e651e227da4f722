/* parctl: the operator CLI over pard's admin socket (SPEC §8): one command from the command
 * line, an interactive shell on a terminal, or commands line by line from a pipe. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "command.h"
#include "parser.h"
#include "shell.h"

#define DEFAULT_TIMEOUT_S 10.0

static void usage(FILE *f)
{
	fprintf(f,
		"usage: parctl [-s SOCKET] [-j|--json] [-t TIMEOUT] COMMAND [ARG...]\n"
		"       parctl [-s SOCKET] [-j] [-t TIMEOUT]     (a shell on a terminal, else one "
		"command per line from stdin)\n"
		"       parctl validate FILE|DIR [--sha256 HEX] [--max-extract-mb MB]\n"
		"       parctl completion bash|zsh|fish\n"
		"       parctl --version\n"
		"  -s SOCKET   pard's admin socket (default: $PAR_ADMIN_SOCKET, /run/par/admin.sock, "
		"then the fallbacks)\n"
		"  -j, --json  JSON output for scripts\n"
		"  -t TIMEOUT  seconds to wait for an answer (default 10; monitor streams without one)\n"
		"`parctl help` lists the commands.\n"
		"exit codes: 0 ok, 1 the command ran and reported failure, 2 usage, 3 pard "
		"unreachable, 4 permission denied\n");
}

static void print_word(const char *word, void *ctx)
{
	(void)ctx;
	printf("%s\n", word);
}

/* `parctl __complete WORD… CUR`: the candidates for CUR, for the shell completion scripts.
 * Exit 1 when CUR is a file name (the script then completes files). */
static int complete_main(int argc, char **argv)
{
	if (argc == 0)
		return parse_complete(0, argv, "", false, print_word, NULL);
	return parse_complete(argc - 1, argv, argv[argc - 1], false, print_word, NULL);
}

static int parse_timeout(const char *s, int *ms)
{
	char *end = NULL;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (!*s || !end || *end || errno || !isfinite(d) || d <= 0 || d > 86400)
		return -1;
	*ms = (int)(d * 1000);
	if (*ms == 0)
		*ms = 1;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *socket = NULL;
	int timeout_ms = (int)(DEFAULT_TIMEOUT_S * 1000), opt, rc;
	struct ctl ctl = {.out = &output_text};
	struct ctl_error err;

	/* '+': options end at the command, whose own --flags are the parser's. */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+s:jt:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			socket = optarg;
			break;
		case 'j':
			ctl.json = true;
			ctl.out = &output_json;
			break;
		case 't':
			if (parse_timeout(optarg, &timeout_ms) != 0) {
				fprintf(stderr, "parctl: bad -t %s: the timeout is seconds, a number "
					"> 0 and <= 86400\n", optarg);
				return CTL_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return CTL_OK;
		case 'V':
			printf("parctl %s\n", PAR_VERSION);
			return CTL_OK;
		default:
			fprintf(stderr, "parctl: unknown option %s\n", argv[optind - 1]);
			usage(stderr);
			return CTL_USAGE;
		}
	}
	if (optind < argc && strcmp(argv[optind], "__complete") == 0)
		return complete_main(argc - optind - 1, argv + optind + 1);
	if (client_init(&ctl.client, socket, timeout_ms) != 0) {
		fprintf(stderr, "parctl: out of memory\n");
		return CTL_FAILED;
	}
	if (optind < argc) {
		rc = ctl_run(&ctl, argc - optind, argv + optind, &err);
		if (rc != CTL_OK)
			ctl_report(&ctl, &err, 0);
	} else {
		ctl.shell = true;
		/* readline on a pipe echoes the prompt and each line into the output. */
		if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
			rc = shell_interactive(&ctl);
		else
			rc = shell_lines(&ctl, stdin);
	}
	client_free(&ctl.client);
	return rc;
}
