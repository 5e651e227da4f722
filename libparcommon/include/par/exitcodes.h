/* The exit codes of pard, in one table (SPEC §6.5): the README, pard --help and pard(8) print it. */
#ifndef PAR_EXITCODES_H
#define PAR_EXITCODES_H

enum par_exit {
	PAR_EXIT_OK = 0,        /* served and drained cleanly, or --check/--version passed */
	PAR_EXIT_USAGE = 2,     /* bad command line */
	PAR_EXIT_CONFIG = 10,   /* invalid configuration (environment) */
	PAR_EXIT_FETCH = 11,    /* package could not be fetched or verified */
	PAR_EXIT_LOAD = 12,     /* package could not be extracted, parsed or loaded */
	PAR_EXIT_BIND = 13,     /* a listener could not be bound */
	PAR_EXIT_BUDGET = 14,   /* boot crossed its hard time limit */
	PAR_EXIT_INTERNAL = 15, /* a bug or an exhausted resource */
};

struct par_exit_row {
	int code;
	const char *name;
	const char *meaning;
};

/* NULL-terminated table, in code order. */
extern const struct par_exit_row par_exit_table[];

const char *par_exit_name(int code);

#endif
