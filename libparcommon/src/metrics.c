/* The metrics registry (SPEC §7) and its Prometheus text-format 0.0.4 writer. */
#include "par/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double metrics_latency_buckets[] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
const size_t metrics_latency_nbuckets =
	sizeof(metrics_latency_buckets) / sizeof(metrics_latency_buckets[0]);

/* One series. Values live in atomics so request paths never touch the registry lock;
 * doubles are kept as their bit patterns because C11 has no atomic floating add. */
struct metric {
	struct metric *next;          /* next series of the same family */
	struct metric_family *fam;
	char *labels;                 /* "" for none */
	_Atomic uint64_t value;       /* counter/gauge value, or histogram sum (double bits) */
	size_t ncounts;               /* histogram: nbounds + 1 (the last is +Inf) */
	_Atomic uint64_t counts[];    /* histogram: per-bucket, not cumulative */
};

/* Everything that shares one name: one # HELP, one # TYPE, one set of bucket bounds. */
struct metric_family {
	struct metric_family *next;
	char *name;
	char *help;
	enum metric_type type;
	double *bounds;
	size_t nbounds;
	struct metric *series;
	struct metric **series_tail;
};

struct metric_stateset {
	struct metric_stateset *next;
	struct metric_family *fam;
	char *label;
	char **states;
	struct metric **series;
	size_t n;
	pthread_mutex_t lock;         /* serialises setters so two never interleave */
};

struct metrics {
	pthread_mutex_t lock;         /* guards the lists, never the values */
	struct metric_family *families;
	struct metric_family **families_tail;
	struct metric_stateset *statesets;
};

/* --- atomic doubles ---------------------------------------------------------------------- */

static uint64_t metric_bits(double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof(b));
	return b;
}

static double metric_double(uint64_t b)
{
	double v;
	memcpy(&v, &b, sizeof(v));
	return v;
}

static double metric_load(const _Atomic uint64_t *a)
{
	return metric_double(atomic_load_explicit((_Atomic uint64_t *)a, memory_order_relaxed));
}

static void metric_store(_Atomic uint64_t *a, double v)
{
	atomic_store_explicit(a, metric_bits(v), memory_order_relaxed);
}

static void metric_atomic_add(_Atomic uint64_t *a, double v)
{
	uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(a, &old, metric_bits(metric_double(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

/* --- validation -------------------------------------------------------------------------- */

static int metrics_valid_name(const char *s, int allow_colon)
{
	if (!s || !*s)
		return 0;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			 (allow_colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return 0;
	}
	return 1;
}

/* A raw newline in the label text would split a sample line in two. */
static int metrics_valid_labels(const char *labels)
{
	return strchr(labels, '\n') == NULL;
}

static int metrics_valid_bounds(const double *b, size_t n)
{
	if (n > 0 && !b)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (isnan(b[i]) || (i > 0 && !(b[i] > b[i - 1])))
			return 0;
	}
	return 1;
}

static int metrics_same_text(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static int metrics_same_bounds(const struct metric_family *f, const double *b, size_t n)
{
	if (f->nbounds != n)
		return 0;
	return n == 0 || memcmp(f->bounds, b, n * sizeof(*b)) == 0;
}

/* --- registry ---------------------------------------------------------------------------- */

struct metrics *metrics_new(void)
{
	struct metrics *reg = calloc(1, sizeof(*reg));
	if (!reg)
		return NULL;
	if (pthread_mutex_init(&reg->lock, NULL) != 0) {
		free(reg);
		return NULL;
	}
	reg->families_tail = &reg->families;
	return reg;
}

static void metrics_family_free(struct metric_family *f)
{
	struct metric *m = f->series;
	while (m) {
		struct metric *next = m->next;
		free(m->labels);
		free(m);
		m = next;
	}
	free(f->name);
	free(f->help);
	free(f->bounds);
	free(f);
}

static void metrics_stateset_free(struct metric_stateset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->states[i]);
	free(s->states);
	free(s->series);
	free(s->label);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void metrics_free(struct metrics *reg)
{
	if (!reg)
		return;
	while (reg->families) {
		struct metric_family *next = reg->families->next;
		metrics_family_free(reg->families);
		reg->families = next;
	}
	while (reg->statesets) {
		struct metric_stateset *next = reg->statesets->next;
		metrics_stateset_free(reg->statesets);
		reg->statesets = next;
	}
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

static struct metric_family *metrics_find_family(struct metrics *reg, const char *name)
{
	for (struct metric_family *f = reg->families; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

/* Bounds are copied without a trailing +Inf: that bucket is always implied. */
static struct metric_family *metrics_family_new(const char *name, const char *help,
						enum metric_type type, const double *bounds,
						size_t nbounds)
{
	struct metric_family *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->name = strdup(name);
	f->help = strdup(help ? help : "");
	f->type = type;
	f->series_tail = &f->series;
	if (nbounds > 0) {
		f->bounds = malloc(nbounds * sizeof(*bounds));
		if (f->bounds)
			memcpy(f->bounds, bounds, nbounds * sizeof(*bounds));
		f->nbounds = nbounds;
	}
	if (!f->name || !f->help || (nbounds > 0 && !f->bounds)) {
		metrics_family_free(f);
		return NULL;
	}
	return f;
}

static struct metric *metrics_series_new(struct metric_family *f, const char *labels)
{
	size_t ncounts = f->type == METRIC_HISTOGRAM ? f->nbounds + 1 : 0;
	struct metric *m = calloc(1, sizeof(*m) + ncounts * sizeof(m->counts[0]));
	if (!m)
		return NULL;
	m->labels = strdup(labels);
	if (!m->labels) {
		free(m);
		return NULL;
	}
	m->fam = f;
	m->ncounts = ncounts;
	atomic_init(&m->value, metric_bits(0.0));
	for (size_t i = 0; i < ncounts; i++)
		atomic_init(&m->counts[i], 0);
	return m;
}

/* Finds the family for name, creating it if new; NULL when it exists with another shape. */
static struct metric_family *metrics_family_get(struct metrics *reg, const char *name,
						const char *help, enum metric_type type,
						const double *bounds, size_t nbounds)
{
	struct metric_family *f = metrics_find_family(reg, name);
	if (f) {
		if (f->type != type || !metrics_same_text(f->help, help) ||
		    !metrics_same_bounds(f, bounds, nbounds))
			return NULL;
		return f;
	}
	f = metrics_family_new(name, help, type, bounds, nbounds);
	if (!f)
		return NULL;
	*reg->families_tail = f;
	reg->families_tail = &f->next;
	return f;
}

static struct metric *metrics_series_get(struct metric_family *f, const char *labels)
{
	for (struct metric *m = f->series; m; m = m->next)
		if (strcmp(m->labels, labels) == 0)
			return m;
	struct metric *m = metrics_series_new(f, labels);
	if (!m)
		return NULL;
	*f->series_tail = m;
	f->series_tail = &m->next;
	return m;
}

/* Caller holds reg->lock. A family created here but whose series failed to allocate stays
 * registered empty; the writer skips empty families. */
static struct metric *metrics_get_locked(struct metrics *reg, const char *name,
					 const char *help, const char *labels,
					 enum metric_type type, const double *bounds,
					 size_t nbounds)
{
	struct metric_family *f = metrics_family_get(reg, name, help, type, bounds, nbounds);
	if (!f)
		return NULL;
	return metrics_series_get(f, labels);
}

static struct metric *metrics_get(struct metrics *reg, const char *name, const char *help,
				  const char *labels, enum metric_type type,
				  const double *bounds, size_t nbounds)
{
	if (!reg || !metrics_valid_name(name, 1))
		return NULL;
	if (!labels)
		labels = "";
	if (!metrics_valid_labels(labels))
		return NULL;
	pthread_mutex_lock(&reg->lock);
	struct metric *m = metrics_get_locked(reg, name, help, labels, type, bounds, nbounds);
	pthread_mutex_unlock(&reg->lock);
	return m;
}

struct metric *metrics_counter(struct metrics *reg, const char *name, const char *help,
			       const char *labels)
{
	return metrics_get(reg, name, help, labels, METRIC_COUNTER, NULL, 0);
}

struct metric *metrics_gauge(struct metrics *reg, const char *name, const char *help,
			     const char *labels)
{
	return metrics_get(reg, name, help, labels, METRIC_GAUGE, NULL, 0);
}

struct metric *metrics_histogram(struct metrics *reg, const char *name, const char *help,
				 const char *labels, const double *buckets, size_t nbuckets)
{
	if (nbuckets > 0 && buckets && isinf(buckets[nbuckets - 1]) &&
	    buckets[nbuckets - 1] > 0)
		nbuckets--;
	if (!metrics_valid_bounds(buckets, nbuckets))
		return NULL;
	return metrics_get(reg, name, help, labels, METRIC_HISTOGRAM, buckets, nbuckets);
}

/* --- updates ----------------------------------------------------------------------------- */

void metric_inc(struct metric *m)
{
	metric_add(m, 1.0);
}

/* Counters only go up; a negative or NaN add would break rate() downstream. */
void metric_add(struct metric *m, double v)
{
	if (!m || m->fam->type == METRIC_HISTOGRAM)
		return;
	if (m->fam->type == METRIC_COUNTER && !(v >= 0))
		return;
	metric_atomic_add(&m->value, v);
}

void metric_set(struct metric *m, double v)
{
	if (!m || m->fam->type != METRIC_GAUGE)
		return;
	metric_store(&m->value, v);
}

/* The first bucket whose upper bound holds v; NaN and values above every bound land in
 * +Inf, as in the reference Go client. */
static size_t metric_bucket_index(const struct metric_family *f, double v)
{
	size_t lo = 0, hi = f->nbounds;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v <= f->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return isnan(v) ? f->nbounds : lo;
}

void metric_observe(struct metric *m, double v)
{
	if (!m || m->fam->type != METRIC_HISTOGRAM)
		return;
	atomic_fetch_add_explicit(&m->counts[metric_bucket_index(m->fam, v)], 1,
				  memory_order_relaxed);
	metric_atomic_add(&m->value, v);
}

/* The count is summed from the buckets so _count always equals the +Inf bucket. */
static uint64_t metric_hist_count(const struct metric *m)
{
	uint64_t n = 0;
	for (size_t i = 0; i < m->ncounts; i++)
		n += atomic_load_explicit((_Atomic uint64_t *)&m->counts[i], memory_order_relaxed);
	return n;
}

double metric_value(const struct metric *m)
{
	if (!m)
		return 0;
	if (m->fam->type == METRIC_HISTOGRAM)
		return (double)metric_hist_count(m);
	return metric_load(&m->value);
}

/* --- state sets -------------------------------------------------------------------------- */

static struct metric_stateset *metrics_find_stateset(struct metrics *reg,
						     const struct metric_family *f)
{
	for (struct metric_stateset *s = reg->statesets; s; s = s->next)
		if (s->fam == f)
			return s;
	return NULL;
}

static int metrics_stateset_matches(const struct metric_stateset *s, const char *label,
				    const char *const *states, size_t n)
{
	if (s->n != n || strcmp(s->label, label) != 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(s->states[i], states[i]) != 0)
			return 0;
	return 1;
}

/* The series labels for one state, label="escaped state" (malloc'd). Escaping at most
 * doubles each byte. */
static char *metrics_state_labels(const char *label, const char *state)
{
	size_t esc_n = 2 * strlen(state) + 1;
	char *esc = malloc(esc_n);
	if (!esc)
		return NULL;
	metrics_escape_label(state, esc, esc_n);
	struct strbuf sb = STRBUF_INIT;
	sb_printf(&sb, "%s=\"%s\"", label, esc);
	free(esc);
	if (sb.oom || !sb.buf) {
		sb_free(&sb);
		return NULL;
	}
	return sb_steal(&sb);
}

/* Caller holds reg->lock. */
static int metrics_stateset_fill(struct metric_stateset *s, const char *const *states)
{
	for (size_t i = 0; i < s->n; i++) {
		s->states[i] = strdup(states[i]);
		char *labels = metrics_state_labels(s->label, states[i]);
		if (!s->states[i] || !labels) {
			free(labels);
			return -1;
		}
		s->series[i] = metrics_series_get(s->fam, labels);
		free(labels);
		if (!s->series[i])
			return -1;
	}
	return 0;
}

static struct metric_stateset *metrics_stateset_new(struct metric_family *f, const char *label,
						    const char *const *states, size_t n)
{
	struct metric_stateset *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		return NULL;
	}
	s->fam = f;
	s->n = n;
	s->label = strdup(label);
	s->states = calloc(n, sizeof(*s->states));
	s->series = calloc(n, sizeof(*s->series));
	if (!s->label || !s->states || !s->series || metrics_stateset_fill(s, states) != 0) {
		metrics_stateset_free(s);
		return NULL;
	}
	return s;
}

/* Caller holds reg->lock. Asking again with the same shape returns the same set. */
static struct metric_stateset *metrics_stateset_locked(struct metrics *reg, const char *name,
						       const char *help, const char *label,
						       const char *const *states, size_t n)
{
	struct metric_family *f = metrics_family_get(reg, name, help, METRIC_GAUGE, NULL, 0);
	if (!f)
		return NULL;
	struct metric_stateset *s = metrics_find_stateset(reg, f);
	if (s)
		return metrics_stateset_matches(s, label, states, n) ? s : NULL;
	s = metrics_stateset_new(f, label, states, n);
	if (!s)
		return NULL;
	s->next = reg->statesets;
	reg->statesets = s;
	return s;
}

struct metric_stateset *metrics_stateset(struct metrics *reg, const char *name,
					 const char *help, const char *label,
					 const char *const *states, size_t nstates)
{
	if (!reg || !metrics_valid_name(name, 1) || !metrics_valid_name(label, 0) || !states ||
	    nstates == 0)
		return NULL;
	for (size_t i = 0; i < nstates; i++)
		if (!states[i])
			return NULL;
	pthread_mutex_lock(&reg->lock);
	struct metric_stateset *s = metrics_stateset_locked(reg, name, help, label, states,
							    nstates);
	pthread_mutex_unlock(&reg->lock);
	return s;
}

/* Clears the others before raising the new one, so a scrape never sees two current
 * states (at worst, for an instant, none). */
void metric_stateset_set(struct metric_stateset *s, size_t index)
{
	if (!s || index >= s->n)
		return;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n; i++)
		if (i != index)
			metric_store(&s->series[i]->value, 0.0);
	metric_store(&s->series[index]->value, 1.0);
	pthread_mutex_unlock(&s->lock);
}

/* --- exposition -------------------------------------------------------------------------- */

/* Length of the UTF-8 sequence led by c, so truncation never splits a character. */
static size_t metrics_utf8_len(unsigned char c)
{
	if (c >= 0xF0 && c < 0xF8)
		return 4;
	if (c >= 0xE0)
		return c < 0xF0 ? 3 : 1;
	if (c >= 0xC0)
		return 2;
	return 1;
}

char *metrics_escape_label(const char *value, char *buf, size_t n)
{
	if (!buf || n == 0)
		return buf;
	size_t o = 0;
	for (const char *p = value ? value : ""; *p;) {
		char esc[2] = {0, 0};
		size_t len = 1;
		if (*p == '\\' || *p == '"')
			esc[0] = '\\', esc[1] = *p;
		else if (*p == '\n')
			esc[0] = '\\', esc[1] = 'n';
		else
			len = metrics_utf8_len((unsigned char)*p);
		if (esc[0]) {
			if (o + 2 >= n)
				break;
			buf[o++] = esc[0];
			buf[o++] = esc[1];
			p++;
			continue;
		}
		if (strnlen(p, len) < len)
			len = 1;  /* a cut-off sequence at the end: copy bytes as they are */
		if (o + len >= n)
			break;
		memcpy(buf + o, p, len);
		o += len;
		p += len;
	}
	buf[o] = '\0';
	return buf;
}

/* Shortest text that reads back as the same double; integral values without an exponent
 * (1000000, not 1e+06); infinities and NaN spelled as Prometheus parses them. */
static const char *metrics_fmt_double(double v, char buf[64])
{
	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	if (v == 0)
		return "0";  /* also folds -0 */
	/* Range-checked before the cast, which keeps it defined; no libm needed. */
	if (v > -1e17 && v < 1e17 && v == (double)(long long)v) {
		snprintf(buf, 64, "%.0f", v);
		return buf;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, 64, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

/* HELP text escapes only backslash and newline (format 0.0.4). */
static void metrics_put_help(struct strbuf *out, const char *help)
{
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			sb_puts(out, "\\\\");
		else if (*p == '\n')
			sb_puts(out, "\\n");
		else
			sb_putc(out, *p);
	}
}

static const char *metrics_type_name(enum metric_type t)
{
	switch (t) {
	case METRIC_COUNTER:
		return "counter";
	case METRIC_GAUGE:
		return "gauge";
	case METRIC_HISTOGRAM:
		return "histogram";
	}
	return "untyped";
}

/* One sample line: name[suffix]{labels[,extra]} value. */
static void metrics_put_sample(struct strbuf *out, const char *name, const char *suffix,
			       const char *labels, const char *extra, const char *value)
{
	sb_puts(out, name);
	sb_puts(out, suffix);
	if (*labels || extra) {
		sb_putc(out, '{');
		sb_puts(out, labels);
		if (*labels && extra)
			sb_putc(out, ',');
		if (extra)
			sb_puts(out, extra);
		sb_putc(out, '}');
	}
	sb_putc(out, ' ');
	sb_puts(out, value);
	sb_putc(out, '\n');
}

static void metrics_put_histogram(struct strbuf *out, const struct metric *m)
{
	const struct metric_family *f = m->fam;
	char num[64], le[96];
	uint64_t cum = 0;
	for (size_t i = 0; i < m->ncounts; i++) {
		cum += atomic_load_explicit((_Atomic uint64_t *)&m->counts[i],
					    memory_order_relaxed);
		double bound = i < f->nbounds ? f->bounds[i] : INFINITY;
		char bbuf[64];
		snprintf(le, sizeof(le), "le=\"%s\"", metrics_fmt_double(bound, bbuf));
		snprintf(num, sizeof(num), "%llu", (unsigned long long)cum);
		metrics_put_sample(out, f->name, "_bucket", m->labels, le, num);
	}
	metrics_put_sample(out, f->name, "_sum", m->labels, NULL,
			   metrics_fmt_double(metric_load(&m->value), num));
	snprintf(num, sizeof(num), "%llu", (unsigned long long)cum);
	metrics_put_sample(out, f->name, "_count", m->labels, NULL, num);
}

static void metrics_put_family(struct strbuf *out, const struct metric_family *f)
{
	if (!f->series)
		return;
	if (*f->help) {
		sb_printf(out, "# HELP %s ", f->name);
		metrics_put_help(out, f->help);
		sb_putc(out, '\n');
	}
	sb_printf(out, "# TYPE %s %s\n", f->name, metrics_type_name(f->type));
	for (const struct metric *m = f->series; m; m = m->next) {
		char num[64];
		if (f->type == METRIC_HISTOGRAM)
			metrics_put_histogram(out, m);
		else
			metrics_put_sample(out, f->name, "", m->labels, NULL,
					   metrics_fmt_double(metric_load(&m->value), num));
	}
}

void metrics_write_prometheus(struct metrics *reg, struct strbuf *out)
{
	if (!reg || !out)
		return;
	pthread_mutex_lock(&reg->lock);
	for (const struct metric_family *f = reg->families; f; f = f->next)
		metrics_put_family(out, f);
	pthread_mutex_unlock(&reg->lock);
}
