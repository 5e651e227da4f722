/* parctl: the operator CLI over pard's admin socket. This build only knows --version; the
 * admin protocol and its verbs come with the admin socket. */
#include <stdio.h>
#include <string.h>

#define PARCTL_EXIT_USAGE 2

int main(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)) {
		printf("parctl %s\n", PAR_VERSION);
		return 0;
	}
	fprintf(stderr, "usage: parctl --version\n"
			"(the admin commands are not in this build yet)\n");
	return PARCTL_EXIT_USAGE;
}
