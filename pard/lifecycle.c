/* The runtime's state machine and boot-phase clock, guarded by one mutex: every surface
 * reads it to answer health, and the boot thread and the main loop write it. */
#include "lifecycle.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "par/config.h"
#include "par/log.h"
#include "par/timeutil.h"

struct phase_rec {
	enum lc_phase_status status;
	int64_t start_ms;     /* monotonic */
	int64_t dur_ms;
	char note[96];
};

static struct {
	pthread_mutex_t mu;
	enum lc_state state;
	enum lc_phase phase;
	struct phase_rec phases[PH_COUNT];
	enum lc_surface surfaces[SURFACE_COUNT];
	int64_t start_ms;
	int64_t ready_ms;
	int64_t boot_ms;            /* start → READY, 0 until then */
	struct lc_boot_limits limits;
	bool budget_exceeded;
	struct par_manifest *manifest;

	struct metric_stateset *m_state;
	struct metric *m_phase[PH_COUNT];
	struct metric *m_boot;
	struct metric *m_budget;
} lc = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const char *const state_names[LC_NSTATES] = {
	"booting", "ready", "draining", "stopped", "failed"};
static const char *const phase_names[PH_COUNT] = {
	"config", "listen", "fetch", "verify", "extract", "manifest",
	"install", "load", "surfaces", "probe"};
static const char *const phase_status_names[] = {
	"pending", "running", "done", "skipped", "failed"};
static const char *const surface_names[] = {"absent", "unimplemented", "up", "down"};
static const char *const surface_ids[SURFACE_COUNT] = {"rest", "a2a", "ui", "agent"};

#define LC_MAX_LISTENERS 8
struct lc_listener {
	void (*fn)(void *ctx);
	void *ctx;
};
static struct lc_listener listeners[LC_MAX_LISTENERS];
static int nlisteners;
static bool (*health_probe)(void);
static bool (*health_override)(void);

void lc_on_change(void (*fn)(void *ctx), void *ctx)
{
	pthread_mutex_lock(&lc.mu);
	if (nlisteners < LC_MAX_LISTENERS)
		listeners[nlisteners++] = (struct lc_listener){fn, ctx};
	pthread_mutex_unlock(&lc.mu);
}

void lc_set_health_override(bool (*failing)(void))
{
	pthread_mutex_lock(&lc.mu);
	health_override = failing;
	pthread_mutex_unlock(&lc.mu);
}

void lc_set_health_probe(bool (*probe)(void))
{
	pthread_mutex_lock(&lc.mu);
	health_probe = probe;
	pthread_mutex_unlock(&lc.mu);
}

static void notify_listeners(void)
{
	pthread_mutex_lock(&lc.mu);
	int n = nlisteners;
	pthread_mutex_unlock(&lc.mu);
	for (int i = 0; i < n; i++)
		listeners[i].fn(listeners[i].ctx);
}

void lc_notify_change(void)
{
	notify_listeners();
}

const char *lc_state_name(enum lc_state s) { return s < LC_NSTATES ? state_names[s] : "?"; }
const char *lc_phase_name(enum lc_phase p) { return p < PH_COUNT ? phase_names[p] : "?"; }
const char *lc_surface_name(enum lc_surface s) { return surface_names[s]; }

void lc_init(struct metrics *metrics, int64_t start_mono_ms)
{
	pthread_mutex_lock(&lc.mu);
	lc.state = LC_BOOTING;
	lc.phase = PH_CONFIG;
	lc.start_ms = start_mono_ms;
	lc.surfaces[SURFACE_REST] = SURF_DOWN;
	lc.m_state = metrics_stateset(metrics, "par_state", "Lifecycle state of the runtime.",
				      "state", state_names, LC_NSTATES);
	metric_stateset_set(lc.m_state, LC_BOOTING);
	for (int p = 0; p < PH_COUNT; p++) {
		char labels[64];
		snprintf(labels, sizeof labels, "phase=\"%s\"", phase_names[p]);
		lc.m_phase[p] = metrics_gauge(metrics, "par_boot_phase_duration_seconds",
					      "Duration of each boot phase.", labels);
	}
	lc.m_boot = metrics_gauge(metrics, "par_boot_duration_seconds",
				  "Process start to READY.", NULL);
	lc.m_budget = metrics_gauge(metrics, "par_boot_budget_exceeded",
				    "1 when the boot crossed its soft budget.", NULL);
	pthread_mutex_unlock(&lc.mu);
}

void lc_set_limits(struct lc_boot_limits limits)
{
	pthread_mutex_lock(&lc.mu);
	lc.limits = limits;
	pthread_mutex_unlock(&lc.mu);
}

void lc_destroy(void)
{
	pthread_mutex_lock(&lc.mu);
	if (lc.manifest) {
		manifest_free(lc.manifest);
		free(lc.manifest);
		lc.manifest = NULL;
	}
	pthread_mutex_unlock(&lc.mu);
}

enum lc_state lc_state(void)
{
	pthread_mutex_lock(&lc.mu);
	enum lc_state s = lc.state;
	pthread_mutex_unlock(&lc.mu);
	return s;
}

enum lc_phase lc_phase(void)
{
	pthread_mutex_lock(&lc.mu);
	enum lc_phase p = lc.phase;
	pthread_mutex_unlock(&lc.mu);
	return p;
}

int64_t lc_ready_mono_ms(void)
{
	pthread_mutex_lock(&lc.mu);
	int64_t t = lc.ready_ms;
	pthread_mutex_unlock(&lc.mu);
	return t;
}

void lc_set_state(enum lc_state s)
{
	int64_t now = time_mono_ms();
	pthread_mutex_lock(&lc.mu);
	enum lc_state old = lc.state;
	lc.state = s;
	if (s == LC_READY && lc.boot_ms == 0) {
		lc.ready_ms = now;
		lc.boot_ms = now - lc.start_ms;
		metric_set(lc.m_boot, (double)lc.boot_ms / 1000.0);
	}
	metric_stateset_set(lc.m_state, s);
	pthread_mutex_unlock(&lc.mu);
	if (old != s) {
		log_emit(PAR_LOG_INFO, "lifecycle.state",
			 LOG_FIELDS(LF_STR("from", state_names[old]), LF_STR("to", state_names[s])),
			 "state %s -> %s", state_names[old], state_names[s]);
		notify_listeners();
	}
}

void lc_phase_begin(enum lc_phase p)
{
	pthread_mutex_lock(&lc.mu);
	lc.phase = p;
	lc.phases[p].status = PHS_RUNNING;
	lc.phases[p].start_ms = time_mono_ms();
	pthread_mutex_unlock(&lc.mu);
	log_emit(PAR_LOG_DEBUG, "boot.phase.start", LOG_FIELDS(LF_STR("phase", phase_names[p])),
		 "phase %s started", phase_names[p]);
}

void lc_phase_end(enum lc_phase p, enum lc_phase_status status, const char *note)
{
	pthread_mutex_lock(&lc.mu);
	struct phase_rec *r = &lc.phases[p];
	if (r->status != PHS_RUNNING)   /* ended without a begin: a zero-length phase */
		r->start_ms = time_mono_ms();
	r->status = status;
	r->dur_ms = time_mono_ms() - r->start_ms;
	snprintf(r->note, sizeof r->note, "%s", note ? note : "");
	int64_t dur = r->dur_ms;
	metric_set(lc.m_phase[p], (double)dur / 1000.0);
	pthread_mutex_unlock(&lc.mu);
	log_emit(status == PHS_FAILED ? PAR_LOG_ERROR : PAR_LOG_INFO,
		 status == PHS_FAILED ? "boot.phase.failed" : "boot.phase.done",
		 LOG_FIELDS(LF_STR("phase", phase_names[p]), LF_INT("durationMs", dur),
			    LF_STR("status", phase_status_names[status]),
			    LF_STR("note", note && *note ? note : NULL)),
		 "phase %s %s in %lld ms%s%s", phase_names[p], phase_status_names[status],
		 (long long)dur, note && *note ? ": " : "", note ? note : "");
}

void lc_set_surface(enum lc_surface_id id, enum lc_surface s)
{
	pthread_mutex_lock(&lc.mu);
	enum lc_surface old = lc.surfaces[id];
	lc.surfaces[id] = s;
	pthread_mutex_unlock(&lc.mu);
	if (old != s) {
		log_emit(PAR_LOG_INFO, "surface.state",
			 LOG_FIELDS(LF_STR("surface", surface_ids[id]),
				    LF_STR("state", surface_names[s])),
			 "surface %s is %s", surface_ids[id], surface_names[s]);
		notify_listeners();
	}
}

enum lc_surface lc_get_surface(enum lc_surface_id id)
{
	pthread_mutex_lock(&lc.mu);
	enum lc_surface s = lc.surfaces[id];
	pthread_mutex_unlock(&lc.mu);
	return s;
}

void lc_mark_budget_exceeded(void)
{
	pthread_mutex_lock(&lc.mu);
	lc.budget_exceeded = true;
	metric_set(lc.m_budget, 1);
	pthread_mutex_unlock(&lc.mu);
}

void lc_set_manifest(struct par_manifest *m)
{
	pthread_mutex_lock(&lc.mu);
	lc.manifest = m;
	pthread_mutex_unlock(&lc.mu);
}

void lc_manifest_info(char *name, size_t name_len, char *version, size_t version_len,
		      char *desc, size_t desc_len)
{
	pthread_mutex_lock(&lc.mu);
	const struct par_manifest *m = lc.manifest;
	snprintf(name, name_len, "%s", m && m->name ? m->name : "");
	snprintf(version, version_len, "%s", m && m->version ? m->version : "");
	snprintf(desc, desc_len, "%s", m && m->description ? m->description : "");
	pthread_mutex_unlock(&lc.mu);
}

/* Caller holds the lock. A surface that is not serving holds health down; one the package
 * doesn't declare, or this build doesn't implement yet, does not. */
static bool healthy_locked(void)
{
	if (lc.state != LC_READY)
		return false;
	for (int i = 0; i < SURFACE_COUNT; i++)
		if (lc.surfaces[i] == SURF_DOWN)
			return false;
	return true;
}

/* *forced: the runtime fault health.fail is what made it false. */
static bool healthy_why(bool *forced)
{
	pthread_mutex_lock(&lc.mu);
	bool ok = healthy_locked();
	bool (*probe)(void) = health_probe;
	bool (*override)(void) = health_override;
	pthread_mutex_unlock(&lc.mu);
	/* Outside the lock: the probe may call into the agent. */
	ok = ok && (!probe || probe());
	/* Asked only when otherwise healthy, so the fault counts only the failures it made. */
	*forced = ok && override && override();
	return ok && !*forced;
}

bool lc_healthy(void)
{
	bool forced;
	return healthy_why(&forced);
}

static void surfaces_json_locked(struct strbuf *out)
{
	sb_putc(out, '{');
	for (int i = 0; i < SURFACE_COUNT; i++) {
		sb_printf(out, "%s\"%s\":", i ? "," : "", surface_ids[i]);
		sb_json_str(out, surface_names[lc.surfaces[i]]);
	}
	sb_putc(out, '}');
}

bool lc_health_json(struct strbuf *out, int64_t now_epoch_ms)
{
	bool forced;
	bool ok = healthy_why(&forced);
	pthread_mutex_lock(&lc.mu);
	sb_printf(out, "{\"ok\":%s,\"state\":\"%s\"", ok ? "true" : "false",
		  state_names[lc.state]);
	/* An operator reading a 503 while READY and every surface up must see why. */
	if (forced)
		sb_puts(out, ",\"fault\":\"health.fail\"");
	if (lc.state == LC_BOOTING)
		sb_printf(out, ",\"phase\":\"%s\"", phase_names[lc.phase]);
	sb_puts(out, ",\"surfaces\":");
	surfaces_json_locked(out);
	sb_printf(out, ",\"timestamp\":%lld}", (long long)now_epoch_ms);
	pthread_mutex_unlock(&lc.mu);
	return ok;
}

static void boot_json_locked(struct strbuf *out)
{
	int64_t now = time_mono_ms();
	sb_puts(out, "{\"phases\":[");
	for (int p = 0; p < PH_COUNT; p++) {
		const struct phase_rec *r = &lc.phases[p];
		int64_t dur = r->status == PHS_RUNNING ? now - r->start_ms : r->dur_ms;
		sb_printf(out, "%s{\"name\":\"%s\",\"status\":\"%s\",\"durationMs\":%lld,\"note\":",
			  p ? "," : "", phase_names[p], phase_status_names[r->status],
			  (long long)dur);
		sb_json_str(out, r->note[0] ? r->note : NULL);
		sb_putc(out, '}');
	}
	sb_printf(out, "],\"state\":\"%s\",\"phase\":\"%s\",\"elapsedMs\":%lld,\"totalMs\":",
		  state_names[lc.state], phase_names[lc.phase],
		  (long long)(now - lc.start_ms));
	if (lc.boot_ms)
		sb_printf(out, "%lld", (long long)lc.boot_ms);
	else
		sb_puts(out, "null");
	sb_printf(out, ",\"budgetMs\":%lld,\"hardLimitMs\":", (long long)lc.limits.budget_ms);
	if (lc.limits.hard_limit_ms)
		sb_printf(out, "%lld", (long long)lc.limits.hard_limit_ms);
	else
		sb_puts(out, "null");
	sb_printf(out, ",\"budgetExceeded\":%s}", lc.budget_exceeded ? "true" : "false");
}

void lc_boot_json(struct strbuf *out)
{
	pthread_mutex_lock(&lc.mu);
	boot_json_locked(out);
	pthread_mutex_unlock(&lc.mu);
}

static void json_field(struct strbuf *out, const char *key, const char *value)
{
	sb_printf(out, ",\"%s\":", key);
	sb_json_str(out, value);
}

void lc_meta_json(struct strbuf *out, const struct par_config *cfg, const char *package_json)
{
	pthread_mutex_lock(&lc.mu);
	const struct par_manifest *m = lc.manifest;
	sb_printf(out, "{\"runtime\":\"pard %s\"", PAR_VERSION);
	json_field(out, "agentAppId", cfg->agent_app_id);
	json_field(out, "deploymentId", cfg->deployment_id);
	json_field(out, "name", m ? m->name : NULL);
	json_field(out, "version", m ? m->version : NULL);
	json_field(out, "description", m ? m->description : NULL);
	json_field(out, "author", m ? m->author : NULL);
	json_field(out, "agentRuntime", m ? manifest_runtime_name(m->runtime) : NULL);
	sb_puts(out, ",\"package\":");
	sb_puts(out, package_json ? package_json : "null");
	sb_puts(out, ",\"surfaces\":");
	surfaces_json_locked(out);
	sb_puts(out, ",\"boot\":");
	boot_json_locked(out);
	sb_puts(out, ",\"manifest\":");
	sb_puts(out, m && m->json ? m->json : "null");
	sb_putc(out, '}');
	pthread_mutex_unlock(&lc.mu);
}
