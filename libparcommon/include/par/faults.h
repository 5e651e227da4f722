/* Fault injection (SPEC §8.3). Boot faults come from PAR_FAULTS and are honoured only with
 * PAR_ENABLE_FAULTS=1. The runtime half (admin socket) grows on this later. */
#ifndef PAR_FAULTS_H
#define PAR_FAULTS_H

#include <stdbool.h>
#include <stdint.h>

struct par_faults {
	uint32_t boot_delay_ms;   /* boot.delay=MS: the `load` phase takes this much longer */
	uint32_t rest_latency_ms; /* rest.latency=MS: every REST request (but /livez) waits */
	bool fetch_error;         /* fetch.error: the fetch fails as a transient error would */
	uint32_t fetch_delay_ms;  /* fetch.delay=MS */
	bool extract_error;       /* extract.error */
};

/* Parses "name[=value],…" (spaces around items allowed). Unknown names, a missing or
 * extra value, or a value that is not an integer 0..600000 (ms) is an error: returns -1,
 * *rule says which item broke which rule (static or thread-local text, valid until the next
 * call). */
int faults_parse(const char *spec, struct par_faults *out, const char **rule);

/* Writes the active faults as "name=value,…" (flags as the bare name); "" when none. */
void faults_describe(const struct par_faults *f, char *buf, unsigned n);

#endif
