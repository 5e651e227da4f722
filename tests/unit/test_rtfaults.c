/* Unit tests for runtime fault injection (pard/rtfaults.c, SPEC §8.3): validation, the
 * hooks, hang and delay release, metrics, and the one-shot faults (with pard's worker and
 * lifecycle stubbed out below). */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "par/admin.h"
#include "par/metrics.h"
#include "par/strbuf.h"
#include "par/timeutil.h"
#include "lifecycle.h"
#include "rtfaults.h"
#include "worker.h"

/* ---- stubs of the pard pieces rtfaults.c calls ---------------------------------------- */

static pid_t stub_worker;
static atomic_int notified;

pid_t worker_pid(void) { return stub_worker; }
void lc_notify_change(void) { atomic_fetch_add(&notified, 1); }
void lc_set_health_override(bool (*failing)(void)) { (void)failing; }
void lc_on_change(void (*fn)(void *ctx), void *ctx) { (void)fn; (void)ctx; }
enum lc_state lc_state(void) { return LC_READY; }

/* ---- helpers -------------------------------------------------------------------------- */

static char err[512];

static int set(const char *name, const char *value, double p)
{
	err[0] = '\0';
	return rtfault_set(name, value, p, err, sizeof err);
}

/* The active entry named name in rtfaults_active_json, as a detached copy (NULL if absent). */
static cJSON *active_entry(const char *name)
{
	cJSON *arr = rtfaults_active_json();
	ck_assert_ptr_nonnull(arr);
	cJSON *found = NULL, *e;
	cJSON_ArrayForEach(e, arr) {
		cJSON *n = cJSON_GetObjectItem(e, "name");
		if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
			found = cJSON_Duplicate(e, 1);
	}
	cJSON_Delete(arr);
	return found;
}

static double entry_number(const char *name, const char *key)
{
	cJSON *e = active_entry(name);
	ck_assert_ptr_nonnull(e);
	cJSON *v = cJSON_GetObjectItem(e, key);
	ck_assert(cJSON_IsNumber(v));
	double d = v->valuedouble;
	cJSON_Delete(e);
	return d;
}

static char *prometheus(struct metrics *m)
{
	struct strbuf sb = STRBUF_INIT;
	metrics_write_prometheus(m, &sb);
	ck_assert(!sb.oom);
	return sb_steal(&sb);
}

/* A valid value for each value kind admin_faults uses. */
static const char *sample_value(const char *kind)
{
	if (!kind)
		return NULL;
	if (strcmp(kind, "ms") == 0)
		return "10";
	if (strcmp(kind, "http-status") == 0)
		return "503";
	if (strcmp(kind, "grpc-code") == 0)
		return "14";
	ck_abort_msg("value kind %s has no sample here", kind);
	return NULL;
}

/* ---- validation ----------------------------------------------------------------------- */

START_TEST(unknown_name_lists_valid_names)
{
	ck_assert_int_eq(set("rest.latencyy", "10", 1), -1);
	ck_assert_ptr_nonnull(strstr(err, "rest.latencyy"));
	for (const struct admin_fault *a = admin_faults; a->name; a++)
		ck_assert_msg(strstr(err, a->name), "error does not name %s: %s", a->name, err);
	ck_assert_int_eq(set(NULL, NULL, 1), -1);
	ck_assert_int_eq(set("", NULL, 1), -1);
	ck_assert_uint_eq(rtfaults_active_count(), 0);
}
END_TEST

/* Every fault operators can name is implemented: the persistent ones set, list and clear. */
START_TEST(every_admin_fault_is_implemented)
{
	size_t n = 0;
	for (const struct admin_fault *a = admin_faults; a->name; a++) {
		if (a->one_shot)
			continue;
		ck_assert_msg(set(a->name, sample_value(a->value_kind), 1) == 0, "%s: %s", a->name,
			      err);
		n++;
		cJSON *e = active_entry(a->name);
		ck_assert_msg(e != NULL, "%s not listed", a->name);
		cJSON_Delete(e);
	}
	ck_assert_uint_eq(rtfaults_active_count(), n);
	ck_assert_int_eq(rtfault_clear(NULL, err, sizeof err), 0);
	ck_assert_uint_eq(rtfaults_active_count(), 0);
	cJSON *arr = rtfaults_active_json();
	ck_assert_int_eq(cJSON_GetArraySize(arr), 0);
	cJSON_Delete(arr);
}
END_TEST

START_TEST(latency_values)
{
	ck_assert_int_eq(set("rest.latency", NULL, 1), -1);
	ck_assert_ptr_nonnull(strstr(err, "needs a value"));
	ck_assert_int_eq(set("rest.latency", "600001", 1), -1);
	ck_assert_int_eq(set("rest.latency", "-5", 1), -1);
	ck_assert_int_eq(set("rest.latency", "12ms", 1), -1);
	ck_assert_int_eq(set("rest.latency", "", 1), -1);
	ck_assert_int_eq(set("a2a.latency", "600000", 1), 0);
	ck_assert_int_eq(set("rest.latency", "0", 1), 0);
	ck_assert_double_eq(entry_number("a2a.latency", "value"), 600000);
	ck_assert_double_eq(entry_number("rest.latency", "value"), 0);
}
END_TEST

START_TEST(error_values_and_defaults)
{
	ck_assert_int_eq(set("rest.error", NULL, 1), 0);
	ck_assert_double_eq(entry_number("rest.error", "value"), 500);
	ck_assert_uint_eq(rtfault_rest_error_status(), 500);
	ck_assert_int_eq(set("rest.error", "399", 1), -1);
	ck_assert_int_eq(set("rest.error", "600", 1), -1);
	ck_assert_int_eq(set("rest.error", "429", 1), 0);
	ck_assert_uint_eq(rtfault_rest_error_status(), 429);

	ck_assert_int_eq(set("a2a.error", NULL, 1), 0);
	ck_assert_int_eq(rtfault_a2a_error_code(), 14);
	ck_assert_int_eq(set("a2a.error", "0", 1), -1);
	ck_assert_int_eq(set("a2a.error", "17", 1), -1);
	ck_assert_int_eq(set("a2a.error", "bogus", 1), -1);
	ck_assert_int_eq(set("a2a.error", "resource_exhausted", 1), 0);
	ck_assert_int_eq(rtfault_a2a_error_code(), 8);
	ck_assert_str_eq(rtfault_grpc_code_name(8), "RESOURCE_EXHAUSTED");
}
END_TEST

START_TEST(value_forbidden_where_none_is_taken)
{
	ck_assert_int_eq(set("health.fail", "1", 1), -1);
	ck_assert_ptr_nonnull(strstr(err, "takes no value"));
	ck_assert_int_eq(set("hang", "", 1), -1);
	ck_assert_int_eq(set("crash", "now", 1), -1);   /* refused before it acts */
	ck_assert_uint_eq(rtfaults_active_count(), 0);
}
END_TEST

START_TEST(probability_rules)
{
	ck_assert_int_eq(set("rest.error", NULL, 0), -1);
	ck_assert_int_eq(set("rest.error", NULL, -0.5), -1);
	ck_assert_int_eq(set("rest.error", NULL, 1.5), -1);
	ck_assert_int_eq(set("rest.error", NULL, NAN), -1);
	ck_assert_int_eq(set("health.fail", NULL, 0.5), -1);
	ck_assert_ptr_nonnull(strstr(err, "probability"));
	ck_assert_int_eq(set("hang", NULL, 0.5), -1);
	ck_assert_uint_eq(rtfaults_active_count(), 0);
	ck_assert_int_eq(set("rest.error", "502", 0.25), 0);
	ck_assert_double_eq(entry_number("rest.error", "probability"), 0.25);
}
END_TEST

/* ---- hooks ---------------------------------------------------------------------------- */

START_TEST(hooks_idle_when_nothing_is_set)
{
	ck_assert(!rtfault_health_failing());
	ck_assert_uint_eq(rtfault_rest_delay_ms(), 0);
	ck_assert_uint_eq(rtfault_rest_error_status(), 0);
	ck_assert_uint_eq(rtfault_a2a_delay_ms(), 0);
	ck_assert_int_eq(rtfault_a2a_error_code(), 0);
	int64_t t0 = time_mono_ms();
	rtfault_hang_point();
	rtfault_rest_delay(0);
	rtfault_a2a_delay(0);
	ck_assert_int_lt(time_mono_ms() - t0, 100);
}
END_TEST

START_TEST(probability_samples)
{
	ck_assert_int_eq(set("rest.error", NULL, 0.5), 0);
	int hits = 0;
	for (int i = 0; i < 10000; i++)
		hits += rtfault_rest_error_status() == 500;
	/* Binomial(10000, 0.5): ±1000 is over 20 standard deviations. */
	ck_assert_int_gt(hits, 4000);
	ck_assert_int_lt(hits, 6000);
	ck_assert_double_eq(entry_number("rest.error", "injected"), hits);
}
END_TEST

START_TEST(health_fail_notifies_and_clears)
{
	ck_assert_int_eq(set("health.fail", NULL, 1), 0);
	ck_assert(rtfault_health_failing());
	ck_assert_int_eq(atomic_load(&notified), 1);
	ck_assert_int_eq(rtfault_clear("health.fail", err, sizeof err), 0);
	ck_assert(!rtfault_health_failing());
	ck_assert_int_eq(atomic_load(&notified), 2);
}
END_TEST

START_TEST(clear_rules)
{
	ck_assert_int_eq(rtfault_clear("hang", err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "not set"));
	ck_assert_int_eq(rtfault_clear("nope", err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "unknown"));
	ck_assert_int_eq(rtfault_clear("worker.kill", err, sizeof err), -1);
	ck_assert_int_eq(rtfault_clear(NULL, err, sizeof err), 0);   /* nothing set: fine */
	ck_assert_int_eq(set("hang", NULL, 1), 0);
	ck_assert_int_eq(set("hang", NULL, 1), 0);   /* setting again is not a second fault */
	ck_assert_uint_eq(rtfaults_active_count(), 1);
	ck_assert_int_eq(rtfault_clear("hang", err, sizeof err), 0);
	ck_assert_uint_eq(rtfaults_active_count(), 0);
}
END_TEST

/* ---- hang and delays ------------------------------------------------------------------ */

static atomic_int released;

static void *hang_thread(void *arg)
{
	(void)arg;
	rtfault_hang_point();
	atomic_fetch_add(&released, 1);
	return NULL;
}

/* Polls until the hang fault reports n waiting threads. */
static void wait_for_waiters(int n)
{
	int64_t deadline = time_mono_ms() + 5000;
	while (entry_number("hang", "waiting") != n) {
		ck_assert_msg(time_mono_ms() < deadline, "threads never reached the hang point");
		usleep(1000);
	}
}

static void hang_then_release(bool by_stop)
{
	enum { N = 4 };
	ck_assert_int_eq(set("hang", NULL, 1), 0);
	pthread_t t[N];
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, hang_thread, NULL), 0);
	wait_for_waiters(N);
	ck_assert_int_eq(atomic_load(&released), 0);
	if (by_stop)
		rtfaults_set_stopping(true);
	else
		ck_assert_int_eq(rtfault_clear("hang", err, sizeof err), 0);
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&released), N);
}

START_TEST(hang_released_by_clear)
{
	hang_then_release(false);
}
END_TEST

START_TEST(hang_released_by_stopping)
{
	hang_then_release(true);
	/* Stopping, a hang set now holds nobody. */
	rtfault_hang_point();
}
END_TEST

START_TEST(rest_delay_adds_boot_latency)
{
	ck_assert_int_eq(set("rest.latency", "150", 1), 0);
	int64_t t0 = time_mono_ms();
	rtfault_rest_delay(100);
	ck_assert_int_ge(time_mono_ms() - t0, 250);
	ck_assert_int_eq(rtfault_clear("rest.latency", err, sizeof err), 0);
	t0 = time_mono_ms();
	rtfault_rest_delay(100);   /* PAR_FAULTS alone still works */
	ck_assert_int_ge(time_mono_ms() - t0, 100);
}
END_TEST

static void *delay_thread(void *arg)
{
	(void)arg;
	rtfault_rest_delay(0);
	atomic_fetch_add(&released, 1);
	return NULL;
}

START_TEST(clear_ends_a_long_delay)
{
	ck_assert_int_eq(set("rest.latency", "600000", 1), 0);
	pthread_t t;
	int64_t t0 = time_mono_ms();
	ck_assert_int_eq(pthread_create(&t, NULL, delay_thread, NULL), 0);
	/* The thread has started its wait once the fault counted it. */
	while (entry_number("rest.latency", "injected") < 1)
		usleep(1000);
	ck_assert_int_eq(rtfault_clear("rest.latency", err, sizeof err), 0);
	pthread_join(t, NULL);
	ck_assert_int_lt(time_mono_ms() - t0, 30000);
}
END_TEST

static void *boot_delay_thread(void *arg)
{
	(void)arg;
	rtfault_rest_delay(300);
	atomic_fetch_add(&released, 1);
	return NULL;
}

/* Stopping ends the runtime share at once; the PAR_FAULTS share is still waited in full. */
START_TEST(stopping_keeps_the_boot_latency)
{
	ck_assert_int_eq(set("rest.latency", "600000", 1), 0);
	pthread_t t;
	int64_t t0 = time_mono_ms();
	ck_assert_int_eq(pthread_create(&t, NULL, boot_delay_thread, NULL), 0);
	while (entry_number("rest.latency", "injected") < 1)
		usleep(1000);
	rtfaults_set_stopping(true);
	pthread_join(t, NULL);
	int64_t took = time_mono_ms() - t0;
	ck_assert_int_ge(took, 300);
	ck_assert_int_lt(took, 30000);
}
END_TEST

START_TEST(a2a_delay_stops_at_deadline)
{
	ck_assert_int_eq(set("a2a.latency", "600000", 1), 0);
	int64_t t0 = time_mono_ms();
	rtfault_a2a_delay(t0 + 200);
	int64_t took = time_mono_ms() - t0;
	ck_assert_int_ge(took, 200);
	ck_assert_int_lt(took, 30000);
}
END_TEST

/* ---- metrics -------------------------------------------------------------------------- */

START_TEST(metrics_follow_set_and_clear)
{
	struct metrics *m = metrics_new();
	rtfaults_init(m);
	rtfaults_init(m);   /* idempotent */
	char *text = prometheus(m);
	ck_assert_ptr_nonnull(strstr(text, "par_fault_active{fault=\"rest.latency\"} 0"));
	ck_assert_ptr_nonnull(strstr(text, "par_fault_active{fault=\"hang\"} 0"));
	free(text);
	ck_assert_int_eq(set("rest.error", NULL, 1), 0);
	rtfault_rest_error_status();
	rtfault_rest_error_status();
	text = prometheus(m);
	ck_assert_ptr_nonnull(strstr(text, "par_fault_active{fault=\"rest.error\"} 1"));
	ck_assert_ptr_nonnull(strstr(text, "par_fault_injected_total{fault=\"rest.error\"} 2"));
	free(text);
	ck_assert_int_eq(rtfault_clear(NULL, err, sizeof err), 0);
	text = prometheus(m);
	ck_assert_ptr_nonnull(strstr(text, "par_fault_active{fault=\"rest.error\"} 0"));
	free(text);
	metrics_free(m);
}
END_TEST

/* ---- one-shot faults ------------------------------------------------------------------ */

START_TEST(worker_kill_needs_a_worker)
{
	stub_worker = 0;
	ck_assert_int_eq(set("worker.kill", NULL, 1), -1);
	ck_assert_ptr_nonnull(strstr(err, "no worker"));
}
END_TEST

START_TEST(worker_kill_sends_sigkill)
{
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		for (;;)
			pause();
	}
	stub_worker = child;
	ck_assert_msg(set("worker.kill", NULL, 1) == 0, "%s", err);
	int status;
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFSIGNALED(status));
	ck_assert_int_eq(WTERMSIG(status), SIGKILL);
	ck_assert_uint_eq(rtfaults_active_count(), 0);   /* one-shot: nothing stays set */
}
END_TEST

START_TEST(crash_aborts)
{
	set("crash", NULL, 1);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("rtfaults");
	TCase *tc = tcase_create("rtfaults");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, unknown_name_lists_valid_names);
	tcase_add_test(tc, every_admin_fault_is_implemented);
	tcase_add_test(tc, latency_values);
	tcase_add_test(tc, error_values_and_defaults);
	tcase_add_test(tc, value_forbidden_where_none_is_taken);
	tcase_add_test(tc, probability_rules);
	tcase_add_test(tc, hooks_idle_when_nothing_is_set);
	tcase_add_test(tc, probability_samples);
	tcase_add_test(tc, health_fail_notifies_and_clears);
	tcase_add_test(tc, clear_rules);
	tcase_add_test(tc, hang_released_by_clear);
	tcase_add_test(tc, hang_released_by_stopping);
	tcase_add_test(tc, rest_delay_adds_boot_latency);
	tcase_add_test(tc, clear_ends_a_long_delay);
	tcase_add_test(tc, stopping_keeps_the_boot_latency);
	tcase_add_test(tc, a2a_delay_stops_at_deadline);
	tcase_add_test(tc, metrics_follow_set_and_clear);
	tcase_add_test(tc, worker_kill_needs_a_worker);
	tcase_add_test(tc, worker_kill_sends_sigkill);
	tcase_add_test_raise_signal(tc, crash_aborts, SIGABRT);
	suite_add_tcase(s, tc);
	return s;
}
