/* parctl: the operator CLI. This build has `validate` (offline package check) and
 * `version`; the admin-socket verbs come with the admin socket. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "validate.h"

#define PARCTL_EXIT_USAGE 2

static void usage(FILE *f)
{
	fprintf(f, "usage: parctl [-j|--json] validate FILE|DIR [--sha256 HEX] [--max-extract-mb MB]\n"
		   "       parctl --version\n"
		   "exit codes: 0 ok, 1 the command ran and reported failure, 2 usage\n");
}

int main(int argc, char **argv)
{
	bool json = false;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-j") == 0 || strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--version") == 0) {
			printf("parctl %s\n", PAR_VERSION);
			return 0;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return PARCTL_EXIT_USAGE;
		}
	}
	if (i < argc && strcmp(argv[i], "version") == 0) {
		printf("parctl %s\n", PAR_VERSION);
		return 0;
	}
	if (i < argc && strcmp(argv[i], "validate") == 0)
		return validate_main(argc - i, argv + i, json);
	usage(stderr);
	return PARCTL_EXIT_USAGE;
}
