/* Unit tests for the metrics registry and its Prometheus exposition (SPEC §7). */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "par/metrics.h"
#include "par/strbuf.h"

/* The whole exposition, as a caller-owned string. */
static char *scrape(struct metrics *reg)
{
	struct strbuf sb = STRBUF_INIT;
	metrics_write_prometheus(reg, &sb);
	ck_assert(!sb.oom);
	char *s = sb_steal(&sb);
	return s ? s : strdup("");
}

START_TEST(test_exposition_exact)
{
	static const double lat[] = {0.25, 0.5, 1};
	static const double boot[] = {1};
	static const char *const states[] = {"BOOTING", "READY", "DRAINING"};
	struct metrics *reg = metrics_new();
	ck_assert_ptr_nonnull(reg);

	struct metric *rest = metrics_counter(reg, "par_requests_total", "Requests served.",
					      "surface=\"rest\",code=\"200\"");
	struct metric *a2a = metrics_counter(reg, "par_requests_total", "Requests served.",
					     "surface=\"a2a\",code=\"200\"");
	struct metric *restarts = metrics_counter(reg, "par_worker_restarts_total",
						  "Worker restarts.", NULL);
	struct metric *inflight = metrics_gauge(reg, "par_inflight", "In-flight requests.",
						"surface=\"rest\"");
	struct metric *frac = metrics_gauge(reg, "par_inflight", "In-flight requests.",
					    "surface=\"a2a\"");
	struct metric *big = metrics_gauge(reg, "par_cache_bytes", "Cache size.", "");
	struct metric *h = metrics_histogram(reg, "par_latency_seconds", "Request latency.",
					     "surface=\"rest\"", lat, 3);
	struct metric *hb = metrics_histogram(reg, "par_boot_seconds", "Boot duration.", NULL,
					      boot, 1);
	struct metric_stateset *st = metrics_stateset(reg, "par_state", "Runtime state.",
						      "state", states, 3);
	ck_assert(rest && a2a && restarts && inflight && frac && big && h && hb && st);

	metric_inc(rest);
	metric_inc(rest);
	metric_add(rest, 1);
	metric_add(rest, -5);  /* counters never go down */
	metric_add(a2a, 2.5);
	metric_set(inflight, 7);
	metric_add(inflight, -2);
	metric_set(frac, 0.1);
	metric_set(big, 1e6);
	/* 0.25, 0.5 and 1 sit exactly on bucket edges and count in those buckets. */
	metric_observe(h, 0.25);
	metric_observe(h, 0.5);
	metric_observe(h, 0.125);
	metric_observe(h, 1);
	metric_observe(h, 3);
	metric_observe(hb, 2);
	metric_stateset_set(st, 1);
	metric_stateset_set(st, 2);

	/* Asking again returns the same series and does not duplicate HELP/TYPE. */
	ck_assert_ptr_eq(metrics_counter(reg, "par_requests_total", "Requests served.",
					 "surface=\"rest\",code=\"200\""), rest);
	ck_assert_ptr_eq(metrics_stateset(reg, "par_state", "Runtime state.", "state", states, 3),
			 st);

	char *out = scrape(reg);
	ck_assert_str_eq(out,
		"# HELP par_requests_total Requests served.\n"
		"# TYPE par_requests_total counter\n"
		"par_requests_total{surface=\"rest\",code=\"200\"} 3\n"
		"par_requests_total{surface=\"a2a\",code=\"200\"} 2.5\n"
		"# HELP par_worker_restarts_total Worker restarts.\n"
		"# TYPE par_worker_restarts_total counter\n"
		"par_worker_restarts_total 0\n"
		"# HELP par_inflight In-flight requests.\n"
		"# TYPE par_inflight gauge\n"
		"par_inflight{surface=\"rest\"} 5\n"
		"par_inflight{surface=\"a2a\"} 0.1\n"
		"# HELP par_cache_bytes Cache size.\n"
		"# TYPE par_cache_bytes gauge\n"
		"par_cache_bytes 1000000\n"
		"# HELP par_latency_seconds Request latency.\n"
		"# TYPE par_latency_seconds histogram\n"
		"par_latency_seconds_bucket{surface=\"rest\",le=\"0.25\"} 2\n"
		"par_latency_seconds_bucket{surface=\"rest\",le=\"0.5\"} 3\n"
		"par_latency_seconds_bucket{surface=\"rest\",le=\"1\"} 4\n"
		"par_latency_seconds_bucket{surface=\"rest\",le=\"+Inf\"} 5\n"
		"par_latency_seconds_sum{surface=\"rest\"} 4.875\n"
		"par_latency_seconds_count{surface=\"rest\"} 5\n"
		"# HELP par_boot_seconds Boot duration.\n"
		"# TYPE par_boot_seconds histogram\n"
		"par_boot_seconds_bucket{le=\"1\"} 0\n"
		"par_boot_seconds_bucket{le=\"+Inf\"} 1\n"
		"par_boot_seconds_sum 2\n"
		"par_boot_seconds_count 1\n"
		"# HELP par_state Runtime state.\n"
		"# TYPE par_state gauge\n"
		"par_state{state=\"BOOTING\"} 0\n"
		"par_state{state=\"READY\"} 0\n"
		"par_state{state=\"DRAINING\"} 1\n");
	free(out);

	ck_assert(metric_value(rest) == 3);
	ck_assert(metric_value(h) == 5);
	metrics_free(reg);
}
END_TEST

START_TEST(test_stateset_switching)
{
	static const char *const states[] = {"BOOTING", "READY"};
	struct metrics *reg = metrics_new();
	struct metric_stateset *st = metrics_stateset(reg, "s", NULL, "state", states, 2);
	ck_assert_ptr_nonnull(st);
	metric_stateset_set(st, 0);
	char *out = scrape(reg);
	ck_assert_str_eq(out, "# TYPE s gauge\ns{state=\"BOOTING\"} 1\ns{state=\"READY\"} 0\n");
	free(out);
	metric_stateset_set(st, 1);
	metric_stateset_set(st, 7);  /* out of range: ignored */
	out = scrape(reg);
	ck_assert_str_eq(out, "# TYPE s gauge\ns{state=\"BOOTING\"} 0\ns{state=\"READY\"} 1\n");
	free(out);

	/* Same name with another shape, a bad label name, or no states: refused. */
	static const char *const other[] = {"BOOTING", "FAILED"};
	ck_assert_ptr_null(metrics_stateset(reg, "s", NULL, "state", other, 2));
	ck_assert_ptr_null(metrics_stateset(reg, "s2", NULL, "bad-label", states, 2));
	ck_assert_ptr_null(metrics_stateset(reg, "s3", NULL, "state", states, 0));
	ck_assert_ptr_null(metrics_stateset(reg, "s", NULL, "state", states, 1));
	metrics_free(reg);
}
END_TEST

START_TEST(test_special_values)
{
	struct metrics *reg = metrics_new();
	struct metric *g = metrics_gauge(reg, "g", "Help with \\ and\nnewline.", "k=\"v\"");
	metric_set(g, INFINITY);
	char *out = scrape(reg);
	ck_assert_str_eq(out, "# HELP g Help with \\\\ and\\nnewline.\n# TYPE g gauge\n"
			      "g{k=\"v\"} +Inf\n");
	free(out);
	metric_set(g, -INFINITY);
	out = scrape(reg);
	ck_assert_ptr_nonnull(strstr(out, "g{k=\"v\"} -Inf\n"));
	free(out);
	metric_set(g, NAN);
	out = scrape(reg);
	ck_assert_ptr_nonnull(strstr(out, "g{k=\"v\"} NaN\n"));
	free(out);
	metric_set(g, -0.0);
	out = scrape(reg);
	ck_assert_ptr_nonnull(strstr(out, "g{k=\"v\"} 0\n"));
	free(out);
	metric_set(g, 1.0 / 3);
	out = scrape(reg);
	ck_assert_ptr_nonnull(strstr(out, "g{k=\"v\"} 0.3333333333333333\n"));
	free(out);
	metric_set(g, -42);
	out = scrape(reg);
	ck_assert_ptr_nonnull(strstr(out, "g{k=\"v\"} -42\n"));
	free(out);
	metric_set(g, 1e-7);
	out = scrape(reg);
	ck_assert_ptr_nonnull(strstr(out, "g{k=\"v\"} 1e-07\n"));
	free(out);
	metrics_free(reg);
}
END_TEST

START_TEST(test_type_and_help_mismatch)
{
	static const double b1[] = {1, 2};
	static const double b2[] = {1, 3};
	struct metrics *reg = metrics_new();
	ck_assert_ptr_nonnull(metrics_counter(reg, "x_total", "X.", NULL));
	ck_assert_ptr_null(metrics_gauge(reg, "x_total", "X.", NULL));
	ck_assert_ptr_null(metrics_gauge(reg, "x_total", "X.", "a=\"b\""));
	ck_assert_ptr_null(metrics_histogram(reg, "x_total", "X.", NULL, b1, 2));
	ck_assert_ptr_null(metrics_counter(reg, "x_total", "Other help.", "a=\"b\""));
	ck_assert_ptr_nonnull(metrics_histogram(reg, "h", "H.", NULL, b1, 2));
	ck_assert_ptr_null(metrics_histogram(reg, "h", "H.", "a=\"b\"", b2, 2));
	ck_assert_ptr_null(metrics_histogram(reg, "h", "H.", "a=\"b\"", b1, 1));
	/* Buckets must ascend; a trailing +Inf is the implied one. */
	static const double desc[] = {2, 1};
	static const double dup[] = {1, 1};
	static const double withinf[] = {1, 2, INFINITY};
	ck_assert_ptr_null(metrics_histogram(reg, "h2", "H.", NULL, desc, 2));
	ck_assert_ptr_null(metrics_histogram(reg, "h3", "H.", NULL, dup, 2));
	ck_assert_ptr_nonnull(metrics_histogram(reg, "h", "H.", "a=\"c\"", withinf, 3));

	char *out = scrape(reg);
	/* Refused calls left nothing behind. */
	ck_assert_ptr_null(strstr(out, "h2"));
	ck_assert_ptr_null(strstr(out, "a=\"b\""));
	ck_assert_ptr_null(strstr(out, "Other help"));
	free(out);
	metrics_free(reg);
}
END_TEST

START_TEST(test_invalid_names)
{
	struct metrics *reg = metrics_new();
	ck_assert_ptr_null(metrics_counter(reg, NULL, "h", NULL));
	ck_assert_ptr_null(metrics_counter(reg, "", "h", NULL));
	ck_assert_ptr_null(metrics_counter(reg, "1abc", "h", NULL));
	ck_assert_ptr_null(metrics_counter(reg, "a-b", "h", NULL));
	ck_assert_ptr_null(metrics_gauge(reg, "a b", "h", NULL));
	ck_assert_ptr_null(metrics_gauge(reg, "a{b}", "h", NULL));
	ck_assert_ptr_null(metrics_histogram(reg, "é", "h", NULL, NULL, 0));
	ck_assert_ptr_null(metrics_counter(reg, "ok", "h", "a=\"raw\nnewline\""));
	ck_assert_ptr_nonnull(metrics_counter(reg, "_a:b_c9", "h", NULL));
	ck_assert_ptr_nonnull(metrics_counter(reg, ":x", "h", NULL));
	ck_assert_ptr_nonnull(metrics_histogram(reg, "only_inf", "h", NULL, NULL, 0));
	metrics_free(reg);
}
END_TEST

START_TEST(test_escape_label)
{
	char buf[64];
	ck_assert_str_eq(metrics_escape_label("a\"b\\c\nd", buf, sizeof(buf)),
			 "a\\\"b\\\\c\\nd");
	ck_assert_str_eq(metrics_escape_label("", buf, sizeof(buf)), "");
	ck_assert_str_eq(metrics_escape_label(NULL, buf, sizeof(buf)), "");
	/* Truncation never splits an escape or a UTF-8 character. */
	ck_assert_str_eq(metrics_escape_label("ab\"cd", buf, 5), "ab\\\"");
	ck_assert_str_eq(metrics_escape_label("ab\"cd", buf, 4), "ab");
	ck_assert_str_eq(metrics_escape_label("a\xc3\xa9", buf, 3), "a");
	ck_assert_str_eq(metrics_escape_label("a\xc3\xa9", buf, 4), "a\xc3\xa9");

	/* An escaped value goes through the exposition untouched. */
	struct metrics *reg = metrics_new();
	char labels[128];
	char esc[64];
	strcpy(labels, "path=\"");
	strcat(labels, metrics_escape_label("/a\"b\\c\n", esc, sizeof(esc)));
	strcat(labels, "\"");
	metric_inc(metrics_counter(reg, "hits_total", NULL, labels));
	char *out = scrape(reg);
	ck_assert_str_eq(out, "# TYPE hits_total counter\n"
			      "hits_total{path=\"/a\\\"b\\\\c\\n\"} 1\n");
	free(out);
	metrics_free(reg);
}
END_TEST

START_TEST(test_latency_buckets)
{
	ck_assert_uint_eq(metrics_latency_nbuckets, 14);
	ck_assert(metrics_latency_buckets[0] == 0.0005);
	ck_assert(metrics_latency_buckets[7] == 0.1);
	ck_assert(metrics_latency_buckets[13] == 10);
	struct metrics *reg = metrics_new();
	struct metric *h = metrics_histogram(reg, "lat", "L.", NULL, metrics_latency_buckets,
					     metrics_latency_nbuckets);
	ck_assert_ptr_nonnull(h);
	metric_observe(h, 0.0005);
	metric_observe(h, 11);
	char *out = scrape(reg);
	ck_assert_ptr_nonnull(strstr(out, "lat_bucket{le=\"0.0005\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "lat_bucket{le=\"0.0025\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "lat_bucket{le=\"10\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "lat_bucket{le=\"+Inf\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(out, "lat_sum 11.0005\n"));
	free(out);
	metrics_free(reg);
}
END_TEST

START_TEST(test_misuse_is_harmless)
{
	/* Callers may pass on a NULL from a refused registration; updates of the wrong kind
	 * are ignored rather than corrupting the series. */
	metric_inc(NULL);
	metric_add(NULL, 1);
	metric_set(NULL, 1);
	metric_observe(NULL, 1);
	metric_stateset_set(NULL, 0);
	ck_assert(metric_value(NULL) == 0);
	metrics_write_prometheus(NULL, NULL);
	metrics_free(NULL);

	struct metrics *reg = metrics_new();
	struct metric *c = metrics_counter(reg, "c", NULL, NULL);
	metric_set(c, 9);
	metric_observe(c, 9);
	metric_add(c, NAN);
	ck_assert(metric_value(c) == 0);
	struct metric *h = metrics_histogram(reg, "h", NULL, NULL, NULL, 0);
	metric_inc(h);
	metric_observe(h, NAN);
	ck_assert(metric_value(h) == 1);
	metrics_free(reg);
}
END_TEST

#define THREADS 4
#define ITERS 100000

static void *hammer(void *arg)
{
	struct metrics *reg = arg;
	/* Registering from every thread also exercises find-or-create under contention. */
	struct metric *c = metrics_counter(reg, "hits_total", "Hits.", "k=\"v\"");
	struct metric *g = metrics_gauge(reg, "level", "Level.", NULL);
	struct metric *h = metrics_histogram(reg, "lat", "Lat.", NULL, metrics_latency_buckets,
					     metrics_latency_nbuckets);
	for (int i = 0; i < ITERS; i++) {
		metric_inc(c);
		metric_add(g, 1);
		metric_add(g, -1);
		metric_observe(h, 0.25);
		if (i % 10000 == 0) {
			struct strbuf sb = STRBUF_INIT;
			metrics_write_prometheus(reg, &sb);
			sb_free(&sb);
		}
	}
	return NULL;
}

START_TEST(test_concurrent_increments)
{
	struct metrics *reg = metrics_new();
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, reg), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert(metric_value(metrics_counter(reg, "hits_total", "Hits.", "k=\"v\"")) ==
		  (double)THREADS * ITERS);
	ck_assert(metric_value(metrics_gauge(reg, "level", "Level.", NULL)) == 0);
	ck_assert(metric_value(metrics_histogram(reg, "lat", "Lat.", NULL,
						 metrics_latency_buckets,
						 metrics_latency_nbuckets)) == (double)THREADS * ITERS);
	char *out = scrape(reg);
	ck_assert_ptr_nonnull(strstr(out, "hits_total{k=\"v\"} 400000\n"));
	ck_assert_ptr_nonnull(strstr(out, "lat_bucket{le=\"0.1\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(out, "lat_bucket{le=\"0.25\"} 400000\n"));
	ck_assert_ptr_nonnull(strstr(out, "lat_sum 100000\n"));
	ck_assert_ptr_nonnull(strstr(out, "lat_count 400000\n"));
	/* One family each despite four registering threads. */
	const char *first = strstr(out, "# TYPE hits_total");
	ck_assert_ptr_nonnull(first);
	ck_assert_ptr_null(strstr(first + 1, "# TYPE hits_total"));
	free(out);
	metrics_free(reg);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_exposition_exact);
	tcase_add_test(tc, test_stateset_switching);
	tcase_add_test(tc, test_special_values);
	tcase_add_test(tc, test_type_and_help_mismatch);
	tcase_add_test(tc, test_invalid_names);
	tcase_add_test(tc, test_escape_label);
	tcase_add_test(tc, test_latency_buckets);
	tcase_add_test(tc, test_misuse_is_harmless);
	tcase_add_test(tc, test_concurrent_increments);
	suite_add_tcase(s, tc);
	return s;
}
