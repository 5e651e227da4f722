/* One table of output functions per format (bgpctl's output.c / json.c): every command's
 * result goes through it, so each command has a text form for people and a JSON form for
 * scripts. */
#ifndef PARCTL_OUTPUT_H
#define PARCTL_OUTPUT_H

#include <cjson/cJSON.h>

#include "parctl.h"

struct output {
	void (*status)(const cJSON *r);
	void (*boot)(const cJSON *r);
	void (*config)(const cJSON *r);
	void (*package)(const cJSON *r);
	void (*metrics)(const cJSON *r);     /* text: OpenMetrics ({"text":…}) */
	void (*budgets)(const cJSON *r);
	void (*faults)(const cJSON *r);
	void (*isolation)(const cJSON *r);
	void (*version)(const cJSON *r);
	void (*ping)(const cJSON *r);
	void (*done)(const char *cmd, const cJSON *r);   /* a verb that changes something */
	void (*event)(const cJSON *ev);                  /* one monitor event */
	void (*help)(const char *topic);                 /* topic: a verb prefix, or NULL */
	/* A failed command, on stderr. line > 0: the input line it came from. */
	void (*error)(const struct ctl_error *e, long line);
};

extern const struct output output_text;
extern const struct output output_json;

/* Picks the table's function for admin verb cmd and calls it with result r. */
void output_result(const struct output *o, const char *cmd, const cJSON *r);

/* The local verbs, for help (both formats): name, usage, one line. */
struct local_verb {
	const char *name, *usage, *help;
};
extern const struct local_verb local_verbs[];

#endif
