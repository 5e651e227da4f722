/* The package half of the boot (SPEC §3, §6.1): from AGENT_PACKAGE_PATH or PACKAGE_URL to an
 * extracted, verified package directory — phases fetch, verify and extract, through the
 * content-addressed cache. */
#ifndef PARD_PACKAGE_H
#define PARD_PACKAGE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "lifecycle.h"
#include "par/config.h"
#include "par/ledger.h"
#include "par/metrics.h"
#include "par/strbuf.h"

struct package_result {
	char *root;            /* the package directory (malloc'd) */
	const char *source;    /* "directory", "file", "s3", "https", "http" */
	char sha256[65];       /* "" for a directory */
	bool cache_hit;
	/* on failure */
	int exit_code;
	enum lc_phase phase;
	char reason[512];
};

/* Creates what every boot shares: the egress ledger and the credentials provider. */
int package_init(const struct par_config *cfg, struct metrics *metrics);
void package_shutdown(void);

/* Runs the fetch, verify and extract phases (each timed in the lifecycle). 0 ok, -1 with
 * exit_code, phase and reason set. cancel (may be NULL) cuts downloads and waits short. */
int package_prepare(const struct par_config *cfg, atomic_bool *cancel, struct package_result *r);
void package_result_free(struct package_result *r);

struct egress_ledger *package_ledger(void);

/* {"source","url","sha256","cacheHit","bytes"} and the egress summary, for /meta. */
void package_meta_json(struct strbuf *out);

#endif
