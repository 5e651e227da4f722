/* verify-isolation (SPEC §8.4): judges pard's egress ledger, probes the task role with signed
 * read-only control-plane calls, checks the package is readable and the process unprivileged. */
#ifndef PARD_ISOLATION_H
#define PARD_ISOLATION_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "par/config.h"

/* Runs every check (network probes bounded to a few seconds in all) and logs each one
 * (isolation.check) and the summary (isolation.summary). Returns
 * {"ok","strict","checks":[{"name","verdict","evidence"}…],"summary":{"pass","warn","fail"}},
 * ok when no check FAILs; with strict every WARN is a FAIL. NULL only when out of memory.
 * Reentrant: each admin connection thread may run it; only the (locked) ledger is shared. */
cJSON *isolation_verify(const struct par_config *cfg, bool strict);

#endif
