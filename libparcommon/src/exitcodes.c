/* The one table of pard's exit codes, shared by --help, the README and the man page. */
#include "par/exitcodes.h"

#include <stddef.h>

const struct par_exit_row par_exit_table[] = {
	{PAR_EXIT_OK, "ok", "served and drained cleanly, or --check/--version passed"},
	{PAR_EXIT_USAGE, "usage", "bad command line"},
	{PAR_EXIT_CONFIG, "config", "invalid configuration (environment)"},
	{PAR_EXIT_FETCH, "fetch", "package could not be fetched or verified"},
	{PAR_EXIT_LOAD, "load", "package could not be extracted, parsed or loaded"},
	{PAR_EXIT_BIND, "bind", "a listener could not be bound"},
	{PAR_EXIT_BUDGET, "budget", "boot crossed its hard time limit"},
	{PAR_EXIT_INTERNAL, "internal", "a bug or an exhausted resource"},
	{0, NULL, NULL},
};

const char *par_exit_name(int code)
{
	const struct par_exit_row *r;

	for (r = par_exit_table; r->name; r++)
		if (r->code == code)
			return r->name;
	return "unknown";
}
