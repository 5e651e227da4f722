/* The runtime's state machine (SPEC §6.1): BOOTING(phase) → READY → DRAINING → STOPPED, or
 * FAILED; every boot phase timed. One instance per process, shared by every thread. */
#ifndef PARD_LIFECYCLE_H
#define PARD_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "par/manifest.h"
#include "par/metrics.h"
#include "par/strbuf.h"

enum lc_state { LC_BOOTING, LC_READY, LC_DRAINING, LC_STOPPED, LC_FAILED, LC_NSTATES };

enum lc_phase {
	PH_CONFIG, PH_LISTEN, PH_FETCH, PH_VERIFY, PH_EXTRACT, PH_MANIFEST,
	PH_INSTALL, PH_LOAD, PH_SURFACES, PH_PROBE, PH_COUNT
};

enum lc_phase_status { PHS_PENDING, PHS_RUNNING, PHS_DONE, PHS_SKIPPED, PHS_FAILED };

/* What a surface is doing: not declared by the package, declared but not in this build,
 * serving, or declared and not serving. */
enum lc_surface { SURF_ABSENT, SURF_UNIMPLEMENTED, SURF_UP, SURF_DOWN };
/* The three surfaces of SPEC §5, plus the agent behind them (its worker or native health). */
enum lc_surface_id { SURFACE_REST, SURFACE_A2A, SURFACE_UI, SURFACE_AGENT, SURFACE_COUNT };

struct lc_boot_limits {
	int64_t budget_ms;      /* soft */
	int64_t hard_limit_ms;  /* 0 = none */
};

void lc_init(struct metrics *metrics, int64_t start_mono_ms);
void lc_set_limits(struct lc_boot_limits limits);  /* once the configuration is read */
void lc_destroy(void);

enum lc_state lc_state(void);
enum lc_phase lc_phase(void);       /* the phase running now, or the last one started */
const char *lc_state_name(enum lc_state s);
const char *lc_phase_name(enum lc_phase p);
const char *lc_surface_name(enum lc_surface s);

void lc_set_state(enum lc_state s);
void lc_phase_begin(enum lc_phase p);
/* Ends p with status (DONE, SKIPPED or FAILED); note (may be NULL) says why, for /meta. */
void lc_phase_end(enum lc_phase p, enum lc_phase_status status, const char *note);
void lc_set_surface(enum lc_surface_id id, enum lc_surface s);
enum lc_surface lc_get_surface(enum lc_surface_id id);

/* The boot's soft budget was crossed while booting (the watchdog calls this once). */
void lc_mark_budget_exceeded(void);

/* The package manifest, once parsed (ownership passes to the lifecycle). */
void lc_set_manifest(struct par_manifest *m);
/* Copies the manifest's name, version and description ("" before the manifest phase, or
 * when absent), truncated to fit: the manifest itself may only be read under the lock. */
void lc_manifest_info(char *name, size_t name_len, char *version, size_t version_len,
		      char *desc, size_t desc_len);

/* Health as /health reports it: READY, every declared surface serving, the health probe (the
 * native agent's own health function, when there is one) saying yes, no forced failure. */
bool lc_healthy(void);
void lc_set_health_probe(bool (*probe)(void));
/* A forced failure on top of honest health (the health.fail runtime fault): asked only when
 * everything else is healthy, so what it fails is counted as forced. */
void lc_set_health_override(bool (*failing)(void));

/* Called (outside the lifecycle lock) after every change of state or surface, e.g. to push
 * gRPC health Watch updates. At most 8 listeners. */
void lc_on_change(void (*fn)(void *ctx), void *ctx);
/* Runs the lc_on_change listeners for a change lifecycle.c does not see itself (a runtime
 * fault forcing health down or releasing it). Call without holding any lifecycle lock. */
void lc_notify_change(void);
int64_t lc_ready_mono_ms(void);     /* when READY was entered, 0 if never */

/* JSON bodies, appended to out. */
/* Returns the ok it wrote, so a status code can agree with the body. */
bool lc_health_json(struct strbuf *out, int64_t now_epoch_ms);
struct par_config;
/* /meta: the agent (name, version, description), surfaces, boot phases; package_json (a JSON
 * object text: where the package came from) is embedded as "package". */
void lc_meta_json(struct strbuf *out, const struct par_config *cfg, const char *package_json);
void lc_boot_json(struct strbuf *out);   /* {"phases":[…],"totalMs",…} */

#endif
