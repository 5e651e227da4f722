/* Runtime fault injection (SPEC §8.3): the state of each fault set through the admin socket,
 * its validation, logs and metrics, and the hooks REST, A2A and health call per request. */
#include "rtfaults.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lifecycle.h"
#include "par/admin.h"
#include "par/log.h"
#include "par/parse.h"
#include "par/strbuf.h"
#include "par/timeutil.h"
#include "worker.h"

/* The faults pard implements. par/admin.h's admin_faults is the list operators see (names,
 * which take a value or a probability); every entry of it must map to one of these. */
enum rtf_id {
	RTF_HEALTH_FAIL, RTF_REST_LATENCY, RTF_REST_ERROR, RTF_A2A_LATENCY, RTF_A2A_ERROR,
	RTF_WORKER_KILL, RTF_CRASH, RTF_HANG, RTF_COUNT
};

static const char *const rtf_names[RTF_COUNT] = {
	"health.fail", "rest.latency", "rest.error", "a2a.latency", "a2a.error",
	"worker.kill", "crash", "hang"};

/* Hooks read active/value/threshold without the lock (a set may be seen half-applied for
 * one request, which is harmless); everything else is written under rtf.mu. */
struct rtf_state {
	atomic_bool active;
	atomic_uint value;                 /* ms, HTTP status or gRPC code */
	atomic_uint_least64_t threshold;   /* fires when rng < threshold; UINT64_MAX: always */
	bool has_value;
	double probability;
	int64_t since_epoch_ms;
	unsigned generation;               /* bumped on clear: waits it started end early */
	unsigned waiting;                  /* hang: threads held now */
	atomic_ullong injected;
	struct metric *m_active, *m_injected;
};

static struct {
	pthread_once_t once;
	pthread_mutex_t mu;
	pthread_cond_t cond;               /* CLOCK_MONOTONIC: clear and stop broadcast */
	atomic_uint nactive;               /* the hot paths' first, relaxed check */
	atomic_bool stopping;
	bool metrics_done;
	struct rtf_state f[RTF_COUNT];
} rtf = {.once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER};

static void rtf_init_once(void)
{
	time_cond_init_mono(&rtf.cond);
}

static void rtf_ensure_init(void)
{
	pthread_once(&rtf.once, rtf_init_once);
}

/* A drain must not wait on a runtime hang or latency: stopping releases them. */
static void rtf_on_lifecycle(void *ctx)
{
	(void)ctx;
	enum lc_state s = lc_state();
	rtfaults_set_stopping(s == LC_DRAINING || s == LC_STOPPED || s == LC_FAILED);
}

void rtfaults_init(struct metrics *metrics)
{
	rtf_ensure_init();
	static atomic_bool hooked;
	if (!atomic_exchange(&hooked, true)) {
		lc_set_health_override(rtfault_health_failing);
		lc_on_change(rtf_on_lifecycle, NULL);
	}
	pthread_mutex_lock(&rtf.mu);
	/* Idempotent: main initialises it early, and a later caller changes nothing. */
	if (!rtf.metrics_done && metrics) {
		for (int i = 0; i < RTF_COUNT; i++) {
			char esc[64], labels[96];
			metrics_escape_label(rtf_names[i], esc, sizeof esc);
			snprintf(labels, sizeof labels, "fault=\"%s\"", esc);
			rtf.f[i].m_active = metrics_gauge(
				metrics, "par_fault_active",
				"1 while the runtime fault is set (admin socket), else 0.", labels);
			rtf.f[i].m_injected = metrics_counter(
				metrics, "par_fault_injected_total",
				"Times a runtime fault acted (a delayed, failed or held request; a kill).",
				labels);
			metric_set(rtf.f[i].m_active, atomic_load(&rtf.f[i].active) ? 1 : 0);
		}
		rtf.metrics_done = true;
	}
	pthread_mutex_unlock(&rtf.mu);
}

void rtfaults_set_stopping(bool stopping)
{
	rtf_ensure_init();
	pthread_mutex_lock(&rtf.mu);
	bool was = atomic_exchange(&rtf.stopping, stopping);
	if (stopping && !was)
		pthread_cond_broadcast(&rtf.cond);
	pthread_mutex_unlock(&rtf.mu);
}

/* ---- sampling ------------------------------------------------------------------------- */

/* xorshift64*, one state per thread: no lock and no shared cache line on the hot path. */
static _Thread_local uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t x = rng_state;
	if (!x) {
		/* splitmix64 of time and thread id, so threads started together differ. */
		x = (uint64_t)time_mono_us() ^ ((uint64_t)syscall(SYS_gettid) << 32) ^
		    (uint64_t)(uintptr_t)&rng_state;
		x += 0x9e3779b97f4a7c15ull;
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
		x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
		x ^= x >> 31;
		if (!x)
			x = 1;
	}
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint64_t probability_threshold(double p)
{
	if (p >= 1.0)
		return UINT64_MAX;
	return (uint64_t)ldexp(p, 64);
}

/* Whether fault id acts on this call; counts it when it does. */
static bool rtf_fires(enum rtf_id id)
{
	if (!atomic_load_explicit(&rtf.nactive, memory_order_relaxed))
		return false;
	struct rtf_state *f = &rtf.f[id];
	if (!atomic_load_explicit(&f->active, memory_order_acquire))
		return false;
	uint64_t t = atomic_load_explicit(&f->threshold, memory_order_relaxed);
	if (t != UINT64_MAX && rng_next() >= t)
		return false;
	atomic_fetch_add_explicit(&f->injected, 1, memory_order_relaxed);
	metric_inc(f->m_injected);
	return true;
}

/* ---- hooks ---------------------------------------------------------------------------- */

bool rtfault_health_failing(void)
{
	return rtf_fires(RTF_HEALTH_FAIL);
}

uint32_t rtfault_rest_delay_ms(void)
{
	return rtf_fires(RTF_REST_LATENCY) ? atomic_load(&rtf.f[RTF_REST_LATENCY].value) : 0;
}

unsigned rtfault_rest_error_status(void)
{
	return rtf_fires(RTF_REST_ERROR) ? atomic_load(&rtf.f[RTF_REST_ERROR].value) : 0;
}

uint32_t rtfault_a2a_delay_ms(void)
{
	return rtf_fires(RTF_A2A_LATENCY) ? atomic_load(&rtf.f[RTF_A2A_LATENCY].value) : 0;
}

int rtfault_a2a_error_code(void)
{
	return rtf_fires(RTF_A2A_ERROR) ? (int)atomic_load(&rtf.f[RTF_A2A_ERROR].value) : 0;
}

const char *rtfault_grpc_code_name(int code)
{
	return admin_grpc_code_name(code);
}

static struct timespec abs_mono(int64_t mono_ms)
{
	return (struct timespec){.tv_sec = mono_ms / 1000, .tv_nsec = (mono_ms % 1000) * 1000000L};
}

/* Waits base_ms plus the sampled delay of fault id, never past deadline_mono_ms (0: none).
 * The fault's share ends early when the fault is cleared or pard begins stopping, so neither
 * a clear nor a drain waits out a long injected latency. base_ms (PAR_FAULTS) is waited in
 * full as it always was: the drain tests use it as a request that outlives the grace. */
static void rtf_delay(enum rtf_id id, uint32_t base_ms, int64_t deadline_mono_ms)
{
	uint32_t extra = rtf_fires(id) ? atomic_load(&rtf.f[id].value) : 0;
	if (!base_ms && !extra)
		return;
	rtf_ensure_init();
	int64_t start = time_mono_ms();
	pthread_mutex_lock(&rtf.mu);
	unsigned gen = rtf.f[id].generation;
	for (;;) {
		bool keep = extra && rtf.f[id].generation == gen && !atomic_load(&rtf.stopping);
		int64_t end = start + base_ms + (keep ? extra : 0);
		if (deadline_mono_ms && end > deadline_mono_ms)
			end = deadline_mono_ms;
		if (time_mono_ms() >= end)
			break;
		struct timespec ts = abs_mono(end);
		pthread_cond_timedwait(&rtf.cond, &rtf.mu, &ts);
	}
	pthread_mutex_unlock(&rtf.mu);
}

void rtfault_rest_delay(uint32_t boot_latency_ms)
{
	rtf_delay(RTF_REST_LATENCY, boot_latency_ms, 0);
}

void rtfault_a2a_delay(int64_t deadline_mono_ms)
{
	rtf_delay(RTF_A2A_LATENCY, 0, deadline_mono_ms);
}

void rtfault_hang_point(void)
{
	if (!atomic_load_explicit(&rtf.nactive, memory_order_relaxed) ||
	    !atomic_load_explicit(&rtf.f[RTF_HANG].active, memory_order_relaxed))
		return;
	rtf_ensure_init();
	struct rtf_state *f = &rtf.f[RTF_HANG];
	pthread_mutex_lock(&rtf.mu);
	if (atomic_load(&f->active) && !atomic_load(&rtf.stopping)) {
		atomic_fetch_add(&f->injected, 1);
		metric_inc(f->m_injected);
		f->waiting++;
		/* Clear and stop broadcast; nothing else ends the hold, by design. */
		while (atomic_load(&f->active) && !atomic_load(&rtf.stopping))
			pthread_cond_wait(&rtf.cond, &rtf.mu);
		f->waiting--;
	}
	pthread_mutex_unlock(&rtf.mu);
}

/* ---- set / clear / list --------------------------------------------------------------- */

static int rtf_id_of(const char *name)
{
	for (int i = 0; i < RTF_COUNT; i++)
		if (strcmp(rtf_names[i], name) == 0)
			return i;
	return -1;
}

static void valid_names(char *buf, size_t n)
{
	size_t k = 0;
	buf[0] = '\0';
	for (const struct admin_fault *a = admin_faults; a->name && k < n; a++)
		k += (size_t)snprintf(buf + k, n - k, "%s%s", a == admin_faults ? "" : ", ",
				      a->name);
}

static int errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static void log_set(enum rtf_id id, bool has_value, unsigned value, double p)
{
	char what[48] = "";
	if (has_value)
		snprintf(what, sizeof what, " to %u", value);
	log_emit(PAR_LOG_WARN, "fault.set",
		 LOG_FIELDS(LF_STR("fault", rtf_names[id]),
			    has_value ? LF_UINT("value", value) : LF_STR("value", NULL),
			    LF_DBL("probability", p)),
		 "runtime fault %s set%s (probability %g)", rtf_names[id], what, p);
}

/* worker.kill: the supervisor sees a crash and restarts the worker as for any other. */
static int kill_worker(pid_t *killed, char *err, size_t errlen)
{
	pid_t pid = worker_pid();
	if (pid <= 0)
		return errf(err, errlen, "worker.kill: no worker is running (only exec and python "
			    "agents have one, and it may be restarting)");
	if (kill(pid, SIGKILL) != 0)
		return errf(err, errlen, "worker.kill: cannot signal worker %d: %s", (int)pid,
			    strerror(errno));
	*killed = pid;
	return 0;
}

static void fire_one_shot(enum rtf_id id)
{
	atomic_fetch_add(&rtf.f[id].injected, 1);
	metric_inc(rtf.f[id].m_injected);
}

int rtfault_set(const char *name, const char *value, double probability, char *err,
		size_t errlen)
{
	rtf_ensure_init();
	char names[256];
	valid_names(names, sizeof names);
	if (!name || !*name)
		return errf(err, errlen, "a fault name is required (one of: %s)", names);
	const struct admin_fault *af = admin_fault_find(name);
	int idx = af ? rtf_id_of(name) : -1;
	if (!af)
		return errf(err, errlen, "unknown fault \"%s\" (valid: %s)", name, names);
	if (idx < 0)
		return errf(err, errlen, "fault \"%s\" is not implemented by this pard", name);
	enum rtf_id id = (enum rtf_id)idx;

	if (!(probability > 0.0 && probability <= 1.0))
		return errf(err, errlen, "%s: probability %g is not in (0, 1]", name, probability);
	if (!af->probability && probability != 1.0)
		return errf(err, errlen, "%s takes no probability", name);

	unsigned v = 0;
	bool has_value = af->value_kind != NULL;
	if (!has_value && value)
		return errf(err, errlen, "%s takes no value (got \"%s\")", name, value);
	if (has_value) {
		const char *s = value ? value : af->value_default;
		if (!s)
			return errf(err, errlen, "%s needs a value (%s)", name, af->value_kind);
		if (admin_fault_value_parse(af, s, &v, err, errlen) != 0)
			return -1;
	}

	if (af->one_shot) {
		if (id == RTF_CRASH) {
			log_set(id, false, 0, 1.0);
			fire_one_shot(id);
			log_emit(PAR_LOG_ERROR, "fault.crash", LOG_NOFIELDS,
				 "injected fault: pard aborts now (SIGABRT)");
			abort();
		}
		if (id == RTF_WORKER_KILL) {
			pid_t pid = 0;
			if (kill_worker(&pid, err, errlen) != 0)
				return -1;
			log_set(id, false, 0, 1.0);
			log_emit(PAR_LOG_WARN, "fault.worker.kill", LOG_FIELDS(LF_INT("pid", pid)),
				 "injected fault: worker %d killed with SIGKILL; the supervisor "
				 "restarts it", (int)pid);
			fire_one_shot(id);
			return 0;
		}
		return errf(err, errlen, "fault \"%s\" is not implemented by this pard", name);
	}

	struct rtf_state *f = &rtf.f[id];
	pthread_mutex_lock(&rtf.mu);
	f->has_value = has_value;
	f->probability = probability;
	f->since_epoch_ms = time_epoch_ms();
	atomic_store(&f->value, v);
	atomic_store(&f->threshold, probability_threshold(probability));
	if (!atomic_exchange(&f->active, true))
		atomic_fetch_add(&rtf.nactive, 1);
	metric_set(f->m_active, 1);
	pthread_mutex_unlock(&rtf.mu);
	log_set(id, has_value, v, probability);
	if (id == RTF_HEALTH_FAIL)
		lc_notify_change();   /* gRPC Watch streams hear NOT_SERVING now */
	return 0;
}

/* Caller holds rtf.mu. Returns whether it was set. */
static bool clear_locked(enum rtf_id id)
{
	struct rtf_state *f = &rtf.f[id];
	if (!atomic_exchange(&f->active, false))
		return false;
	atomic_fetch_sub(&rtf.nactive, 1);
	f->generation++;
	metric_set(f->m_active, 0);
	return true;
}

static void log_cleared(enum rtf_id id)
{
	log_emit(PAR_LOG_WARN, "fault.cleared", LOG_FIELDS(LF_STR("fault", rtf_names[id])),
		 "runtime fault %s cleared", rtf_names[id]);
}

int rtfault_clear(const char *name, char *err, size_t errlen)
{
	rtf_ensure_init();
	bool cleared[RTF_COUNT] = {0};
	if (name) {
		char names[256];
		valid_names(names, sizeof names);
		const struct admin_fault *af = admin_fault_find(name);
		int idx = af ? rtf_id_of(name) : -1;
		if (idx < 0)
			return errf(err, errlen, "unknown fault \"%s\" (valid: %s)", name, names);
		if (af->one_shot)
			return errf(err, errlen, "%s acts once when set; there is nothing to clear",
				    name);
		pthread_mutex_lock(&rtf.mu);
		cleared[idx] = clear_locked((enum rtf_id)idx);
		if (cleared[idx])
			pthread_cond_broadcast(&rtf.cond);
		pthread_mutex_unlock(&rtf.mu);
		if (!cleared[idx])
			return errf(err, errlen, "fault %s is not set", name);
	} else {
		pthread_mutex_lock(&rtf.mu);
		for (int i = 0; i < RTF_COUNT; i++)
			cleared[i] = clear_locked((enum rtf_id)i);
		/* One broadcast releases every held and delayed thread at once. */
		pthread_cond_broadcast(&rtf.cond);
		pthread_mutex_unlock(&rtf.mu);
	}
	for (int i = 0; i < RTF_COUNT; i++)
		if (cleared[i])
			log_cleared((enum rtf_id)i);
	if (cleared[RTF_HEALTH_FAIL])
		lc_notify_change();
	return 0;
}

cJSON *rtfaults_active_json(void)
{
	rtf_ensure_init();
	cJSON *arr = cJSON_CreateArray();
	if (!arr)
		return NULL;
	pthread_mutex_lock(&rtf.mu);
	for (int i = 0; i < RTF_COUNT; i++) {
		struct rtf_state *f = &rtf.f[i];
		if (!atomic_load(&f->active))
			continue;
		cJSON *o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			break;
		}
		cJSON_AddStringToObject(o, "name", rtf_names[i]);
		if (f->has_value)
			cJSON_AddNumberToObject(o, "value", atomic_load(&f->value));
		else
			cJSON_AddNullToObject(o, "value");
		cJSON_AddNumberToObject(o, "probability", f->probability);
		cJSON_AddNumberToObject(o, "since", (double)f->since_epoch_ms);
		cJSON_AddNumberToObject(o, "injected", (double)atomic_load(&f->injected));
		if (i == RTF_HANG)
			cJSON_AddNumberToObject(o, "waiting", f->waiting);
	}
	pthread_mutex_unlock(&rtf.mu);
	return arr;
}

size_t rtfaults_active_count(void)
{
	return atomic_load(&rtf.nactive);
}
