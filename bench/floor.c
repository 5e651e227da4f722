/* The boot floor: a program that does nothing, linked (no --as-needed) against every library
 * pard links, so exec'ing it costs what the loader and the libraries' constructors cost.
 * With an argument it says "up" and waits for stdin to close, so its RSS and PSS can be read:
 * the memory every pard pays before its first line of code. */
#include <unistd.h>

int main(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		char c;
		if (write(1, "u", 1) != 1)
			return 1;
		while (read(0, &c, 1) > 0)
			;
	}
	return 0;
}
