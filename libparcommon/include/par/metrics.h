/* Metrics (SPEC §7): counters, gauges, histograms and state sets in one registry, written
 * in the Prometheus text format 0.0.4. Thread-safe; updates are lock-free or per-series. */
#ifndef PAR_METRICS_H
#define PAR_METRICS_H

#include <stddef.h>

#include "par/strbuf.h"

struct metrics;        /* a registry */
struct metric;         /* one series: a name plus one set of label values */

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metrics *metrics_new(void);
void metrics_free(struct metrics *reg);

/* Finds or creates the series name{labels}. labels is the text inside the braces, e.g.
 * `surface="rest",code="200"` (NULL or "" for none); values must already be escaped for the
 * exposition format (metrics_escape_label). Every series of one name must share its type
 * and help; a mismatch returns NULL. The registry owns the series; the pointer stays valid
 * until metrics_free. Histograms take upper bounds in ascending order (+Inf is implied);
 * buckets may be NULL for counters and gauges. */
struct metric *metrics_counter(struct metrics *reg, const char *name, const char *help,
			       const char *labels);
struct metric *metrics_gauge(struct metrics *reg, const char *name, const char *help,
			     const char *labels);
struct metric *metrics_histogram(struct metrics *reg, const char *name, const char *help,
				 const char *labels, const double *buckets, size_t nbuckets);

void metric_inc(struct metric *m);                /* counter or gauge += 1 */
void metric_add(struct metric *m, double v);      /* counter (v ≥ 0) or gauge */
void metric_set(struct metric *m, double v);      /* gauge */
void metric_observe(struct metric *m, double v);  /* histogram */
double metric_value(const struct metric *m);      /* counter/gauge value; histogram count */

/* A state set: one gauge series per state, name{label="STATE"} = 1 for the current state and
 * 0 for the others. */
struct metric_stateset;
struct metric_stateset *metrics_stateset(struct metrics *reg, const char *name,
					 const char *help, const char *label,
					 const char *const *states, size_t nstates);
void metric_stateset_set(struct metric_stateset *s, size_t index);

/* Default latency buckets, seconds: 0.0005 … 10. */
extern const double metrics_latency_buckets[];
extern const size_t metrics_latency_nbuckets;

/* Escapes a label value (\\, \", \n) into buf; truncates to fit. Returns buf. */
char *metrics_escape_label(const char *value, char *buf, size_t n);

/* Appends every series, grouped by name with one # HELP and # TYPE line each, in the
 * order names were first registered. */
void metrics_write_prometheus(struct metrics *reg, struct strbuf *out);

#endif
