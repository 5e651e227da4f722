/* Unit tests for configuration (SPEC §2), the package URL parser and the PAR_FAULTS parser. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "par/config.h"
#include "par/parse.h"
#include "par/faults.h"
#include "par/redact.h"
#include "par/url.h"

/* ---- helpers ---------------------------------------------------------------------------- */

/* Which of the two always-required variables the harness adds after a case's own ones
 * (cfg_load takes the first NAME=, so a case's own value overrides the base). */
enum { B_NONE = 0, B_ID = 1, B_PKG = 2, B_ALL = 3 };

#define MAX_ENV 24

static char long_app_id[300];
static char long_socket[160];

/* Tokens for values too long to write inline. */
static const char *expand(const char *e)
{
	if (strcmp(e, "@LONG_APP_ID") == 0) {
		memset(long_app_id, 0, sizeof(long_app_id));
		strcpy(long_app_id, "AGENT_APP_ID=");
		memset(long_app_id + strlen(long_app_id), 'a', 257);
		return long_app_id;
	}
	if (strcmp(e, "@LONG_SOCKET") == 0) {
		memset(long_socket, 0, sizeof(long_socket));
		strcpy(long_socket, "PAR_ADMIN_SOCKET=/");
		memset(long_socket + strlen(long_socket), 's', 110);
		return long_socket;
	}
	return e;
}

struct loaded {
	struct par_config cfg;
	struct cfg_issues err;
	struct cfg_issues warn;
	size_t nerr;
};

static void load(struct loaded *l, const char *const *extra, int base)
{
	char *env[MAX_ENV + 3];
	size_t n = 0, i;

	for (i = 0; extra && extra[i]; i++) {
		ck_assert_uint_lt(n, MAX_ENV);
		env[n++] = (char *)expand(extra[i]);
	}
	if (base & B_ID)
		env[n++] = "AGENT_APP_ID=app";
	if (base & B_PKG)
		env[n++] = "AGENT_PACKAGE_PATH=/srv/agent.apkg";
	env[n] = NULL;
	memset(l, 0, sizeof(*l));
	l->nerr = cfg_load(&l->cfg, env, &l->err, &l->warn);
}

static void unload(struct loaded *l)
{
	cfg_free(&l->cfg);
	cfg_issues_free(&l->err);
	cfg_issues_free(&l->warn);
}

static const struct cfg_issue *find_issue(const struct cfg_issues *is, const char *var)
{
	size_t i;

	for (i = 0; i < is->n; i++)
		if (strcmp(is->v[i].variable, var) == 0)
			return &is->v[i];
	return NULL;
}

static bool issues_contain(const struct cfg_issues *is, const char *needle)
{
	size_t i;

	for (i = 0; i < is->n; i++) {
		const struct cfg_issue *x = &is->v[i];
		if (strstr(x->variable, needle) || (x->value && strstr(x->value, needle)) ||
		    strstr(x->rule, needle))
			return true;
	}
	return false;
}

static bool doc_has(const char *name)
{
	const struct cfg_var_doc *d;

	for (d = cfg_var_docs; d->name; d++)
		if (strcmp(d->name, name) == 0)
			return true;
	return false;
}

/* ---- defaults ------------------------------------------------------------------------- */

START_TEST(test_defaults)
{
	struct loaded l;
	const struct par_config *c = &l.cfg;

	load(&l, NULL, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert_uint_eq(l.err.n, 0);
	ck_assert_uint_eq(l.warn.n, 0);
	ck_assert_str_eq(c->agent_app_id, "app");
	ck_assert_ptr_null(c->deployment_id);
	ck_assert_ptr_null(c->package_url);
	ck_assert_str_eq(c->agent_package_path, "/srv/agent.apkg");
	ck_assert_ptr_null(c->package_sha256);
	ck_assert(!c->require_sha256);
	ck_assert(!c->allow_http);
	ck_assert_uint_eq(c->max_package_size_mb, 100);
	ck_assert_ptr_null(c->s3_bucket);
	ck_assert_str_eq(c->aws_region, "us-east-1");
	ck_assert_ptr_null(c->aws_endpoint_url);
	ck_assert_ptr_null(c->aws_endpoint_url_s3);
	ck_assert_uint_eq(c->rest_port, 8080);
	ck_assert_uint_eq(c->a2a_port, 50051);
	ck_assert_uint_eq(c->ui_port, 3000);
	ck_assert(c->multiplexed);
	ck_assert_str_eq(c->base_path, "");
	ck_assert_uint_eq(c->boot_budget_ms, 5000);
	ck_assert(c->boot_hard_limit_multiplier == 2.0);
	ck_assert_uint_eq(c->boot_failure_count, 0);
	ck_assert_uint_eq(c->graceful_shutdown_timeout_sec, 30);
	ck_assert_uint_eq(c->drain_delay_sec, 0);
	ck_assert_int_eq(c->log_level, PAR_LOG_INFO);
	ck_assert_int_eq(c->log_format, PAR_LOG_JSON);
	ck_assert_str_eq(c->admin_socket, "/run/par/admin.sock");
	ck_assert_ptr_null(c->admin_group);
	ck_assert_ptr_null(c->admin_ro_socket);
	ck_assert_str_eq(c->cache_dir, "/var/cache/par");
	ck_assert_uint_eq(c->cache_max_mb, 1024);
	ck_assert_str_eq(c->state_dir, "/var/cache/par/state");
	ck_assert_ptr_null(c->wheelhouse_dir);
	ck_assert(!c->pip_offline);
	ck_assert(!c->enable_faults);
	ck_assert_ptr_null(c->faults_spec);
	ck_assert(!c->faults.fetch_error && !c->faults.boot_delay_ms);
	ck_assert_uint_eq(c->backoff_reset_sec, 60);
	ck_assert_ptr_null(c->ca_bundle);
	ck_assert_uint_eq(c->max_extract_mb, 1024);
	ck_assert_ptr_null(c->cors_origins);
	ck_assert_str_eq(c->python, "python3");
	ck_assert(!c->python_system_site_packages);
	ck_assert(!c->aws_static_keys && !c->aws_session_token && !c->aws_container_credentials);
	unload(&l);
}
END_TEST

START_TEST(test_empty_is_unset)
{
	static const char *const env[] = {"REST_PORT=", "LOG_LEVEL=", "BASE_PATH=", "PAR_FAULTS=",
					  "DEPLOYMENT_ID=", "PAR_CACHE_DIR=", NULL};
	struct loaded l;

	load(&l, env, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert_uint_eq(l.warn.n, 0);
	ck_assert_uint_eq(l.cfg.rest_port, 8080);
	ck_assert_int_eq(l.cfg.log_level, PAR_LOG_INFO);
	ck_assert_str_eq(l.cfg.base_path, "");
	ck_assert_ptr_null(l.cfg.deployment_id);
	ck_assert_str_eq(l.cfg.cache_dir, "/var/cache/par");
	unload(&l);
}
END_TEST

START_TEST(test_null_env_reads_environ)
{
	struct par_config cfg;
	struct cfg_issues e = {0}, w = {0};

	setenv("AGENT_APP_ID", "from-environ", 1);
	setenv("AGENT_PACKAGE_PATH", "./agent", 1);
	setenv("REST_PORT", "9090", 1);
	ck_assert_uint_eq(cfg_load(&cfg, NULL, &e, &w), 0);
	ck_assert_str_eq(cfg.agent_app_id, "from-environ");
	ck_assert_str_eq(cfg.agent_package_path, "./agent");
	ck_assert_uint_eq(cfg.rest_port, 9090);
	cfg_free(&cfg);
	cfg_issues_free(&e);
	cfg_issues_free(&w);
	unsetenv("AGENT_APP_ID");
	unsetenv("AGENT_PACKAGE_PATH");
	unsetenv("REST_PORT");
}
END_TEST

START_TEST(test_null_issue_lists)
{
	static const char *const env[] = {"REST_PORT=x", "LOG_LEVEL=x", NULL};
	char *e[] = {(char *)env[0], (char *)env[1], NULL};
	struct par_config cfg;

	ck_assert_uint_eq(cfg_load(&cfg, e, NULL, NULL), 4); /* + AGENT_APP_ID, PACKAGE_URL */
	cfg_free(&cfg);
}
END_TEST

/* ---- invalid values: one case, one error, the right variable ---------------------------- */

struct bad_case {
	const char *env[5];
	int base;
	size_t nerr;
	const char *var;
};

#define SHA_OK "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const struct bad_case bad_cases[] = {
	{{NULL}, B_PKG, 1, "AGENT_APP_ID"},
	{{"AGENT_APP_ID="}, B_ALL, 1, "AGENT_APP_ID"},
	{{"AGENT_APP_ID= app"}, B_ALL, 1, "AGENT_APP_ID"},
	{{"AGENT_APP_ID=app "}, B_ALL, 1, "AGENT_APP_ID"},
	{{"AGENT_APP_ID=a\tb"}, B_ALL, 1, "AGENT_APP_ID"},
	{{"AGENT_APP_ID=a\x7f"}, B_ALL, 1, "AGENT_APP_ID"},
	{{"@LONG_APP_ID"}, B_ALL, 1, "AGENT_APP_ID"},
	{{"DEPLOYMENT_ID=dep\n"}, B_ALL, 1, "DEPLOYMENT_ID"},
	{{"DEPLOYMENT_ID= dep"}, B_ALL, 1, "DEPLOYMENT_ID"},
	{{NULL}, B_ID, 1, "PACKAGE_URL"},
	{{"PACKAGE_URL=file:///tmp/agent.apkg"}, B_ID, 1, "PACKAGE_URL"},
	{{"PACKAGE_URL=http://h/agent.apkg"}, B_ID, 1, "PACKAGE_URL"},
	{{"PACKAGE_URL=http://h/a", "PAR_ALLOW_HTTP=0"}, B_ID, 1, "PACKAGE_URL"},
	{{"PACKAGE_URL=ftp://h/agent.apkg"}, B_ID, 1, "PACKAGE_URL"},
	{{"PACKAGE_URL=https://user:pw@h/agent.apkg"}, B_ID, 1, "PACKAGE_URL"},
	{{"PACKAGE_URL=s3://my-bucket"}, B_ID, 1, "PACKAGE_URL"},
	{{"PACKAGE_URL=s3://Bad_Bucket/k"}, B_ID, 1, "PACKAGE_URL"},
	{{"PACKAGE_URL=agent.apkg"}, B_ID, 1, "PACKAGE_URL"},
	{{"S3_BUCKET=other-bucket", "PACKAGE_URL=s3://my-bucket/k"}, B_ID, 1, "PACKAGE_URL"},
	{{"S3_BUCKET=ab"}, B_ALL, 1, "S3_BUCKET"},
	{{"PACKAGE_SHA256=abc"}, B_ALL, 1, "PACKAGE_SHA256"},
	{{"PACKAGE_SHA256=" SHA_OK "0"}, B_ALL, 1, "PACKAGE_SHA256"},
	{{"PACKAGE_SHA256=g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
	 B_ALL, 1, "PACKAGE_SHA256"},
	{{"PAR_REQUIRE_SHA256=1", "PACKAGE_URL=https://h/a.apkg"}, B_ID, 1, "PACKAGE_SHA256"},
	{{"PAR_REQUIRE_SHA256=maybe"}, B_ALL, 1, "PAR_REQUIRE_SHA256"},
	{{"MAX_PACKAGE_SIZE_MB=0"}, B_ALL, 1, "MAX_PACKAGE_SIZE_MB"},
	{{"MAX_PACKAGE_SIZE_MB=-5"}, B_ALL, 1, "MAX_PACKAGE_SIZE_MB"},
	{{"MAX_PACKAGE_SIZE_MB=1048577"}, B_ALL, 1, "MAX_PACKAGE_SIZE_MB"},
	{{"AWS_REGION=US-EAST-1"}, B_ALL, 1, "AWS_REGION"},
	{{"AWS_DEFAULT_REGION=eu west 1"}, B_ALL, 1, "AWS_DEFAULT_REGION"},
	{{"AWS_ENDPOINT_URL=s3://bucket/x"}, B_ALL, 1, "AWS_ENDPOINT_URL"},
	{{"AWS_ENDPOINT_URL=https://h/?a=b"}, B_ALL, 1, "AWS_ENDPOINT_URL"},
	{{"AWS_ENDPOINT_URL_S3=localhost:9000"}, B_ALL, 1, "AWS_ENDPOINT_URL_S3"},
	{{"AWS_ACCESS_KEY_ID=AKIAEXAMPLE"}, B_ALL, 1, "AWS_ACCESS_KEY_ID"},
	{{"AWS_SECRET_ACCESS_KEY=abc"}, B_ALL, 1, "AWS_SECRET_ACCESS_KEY"},
	{{"REST_PORT=+8080 "}, B_ALL, 1, "REST_PORT"},
	{{"REST_PORT=+8080"}, B_ALL, 1, "REST_PORT"},
	{{"REST_PORT= 8080"}, B_ALL, 1, "REST_PORT"},
	{{"REST_PORT=8080 "}, B_ALL, 1, "REST_PORT"},
	{{"REST_PORT=0"}, B_ALL, 1, "REST_PORT"},
	{{"A2A_PORT=0"}, B_ALL, 1, "A2A_PORT"},
	{{"REST_PORT=70000"}, B_ALL, 1, "REST_PORT"},
	{{"UI_PORT=abc"}, B_ALL, 1, "UI_PORT"},
	{{"A2A_PORT=8080x"}, B_ALL, 1, "A2A_PORT"},
	{{"UI_PORT=65536"}, B_ALL, 1, "UI_PORT"},
	{{"A2A_PORT=8080"}, B_ALL, 1, "A2A_PORT"},
	{{"REST_PORT=50051"}, B_ALL, 1, "REST_PORT"},
	{{"REST_PORT=3000", "MULTIPLEXED=false"}, B_ALL, 1, "REST_PORT"},
	{{"UI_PORT=8080", "MULTIPLEXED=off"}, B_ALL, 1, "UI_PORT"},
	{{"UI_PORT=50051"}, B_ALL, 1, "UI_PORT"},
	{{"MULTIPLEXED=maybe"}, B_ALL, 1, "MULTIPLEXED"},
	{{"PAR_ALLOW_HTTP=2"}, B_ALL, 1, "PAR_ALLOW_HTTP"},
	{{"PAR_PIP_OFFLINE=y"}, B_ALL, 1, "PAR_PIP_OFFLINE"},
	{{"PAR_PYTHON_SYSTEM_SITE_PACKAGES=enabled"}, B_ALL, 1, "PAR_PYTHON_SYSTEM_SITE_PACKAGES"},
	{{"PAR_ENABLE_FAULTS=sure"}, B_ALL, 1, "PAR_ENABLE_FAULTS"},
	{{"BASE_PATH=/a//b"}, B_ALL, 1, "BASE_PATH"},
	{{"BASE_PATH=/a/../b"}, B_ALL, 1, "BASE_PATH"},
	{{"BASE_PATH=/./x"}, B_ALL, 1, "BASE_PATH"},
	{{"BASE_PATH=/a b"}, B_ALL, 1, "BASE_PATH"},
	{{"BOOT_BUDGET_MS=0"}, B_ALL, 1, "BOOT_BUDGET_MS"},
	{{"BOOT_BUDGET_MS=3600001"}, B_ALL, 1, "BOOT_BUDGET_MS"},
	{{"BOOT_HARD_LIMIT_MULTIPLIER=0.5"}, B_ALL, 1, "BOOT_HARD_LIMIT_MULTIPLIER"},
	{{"BOOT_HARD_LIMIT_MULTIPLIER=1e1"}, B_ALL, 1, "BOOT_HARD_LIMIT_MULTIPLIER"},
	{{"BOOT_HARD_LIMIT_MULTIPLIER=inf"}, B_ALL, 1, "BOOT_HARD_LIMIT_MULTIPLIER"},
	{{"BOOT_HARD_LIMIT_MULTIPLIER=100.5"}, B_ALL, 1, "BOOT_HARD_LIMIT_MULTIPLIER"},
	{{"BOOT_HARD_LIMIT_MULTIPLIER=2.0.0"}, B_ALL, 1, "BOOT_HARD_LIMIT_MULTIPLIER"},
	{{"BOOT_HARD_LIMIT_MULTIPLIER= 2"}, B_ALL, 1, "BOOT_HARD_LIMIT_MULTIPLIER"},
	{{"GRACEFUL_SHUTDOWN_TIMEOUT_SEC=3601"}, B_ALL, 1, "GRACEFUL_SHUTDOWN_TIMEOUT_SEC"},
	{{"PAR_DRAIN_DELAY_SEC=-1"}, B_ALL, 1, "PAR_DRAIN_DELAY_SEC"},
	{{"PAR_BACKOFF_RESET_SEC=0"}, B_ALL, 1, "PAR_BACKOFF_RESET_SEC"},
	{{"LOG_LEVEL=verbose"}, B_ALL, 1, "LOG_LEVEL"},
	{{"LOG_FORMAT=xml"}, B_ALL, 1, "LOG_FORMAT"},
	{{"PAR_ADMIN_SOCKET=relative.sock"}, B_ALL, 1, "PAR_ADMIN_SOCKET"},
	{{"@LONG_SOCKET"}, B_ALL, 1, "PAR_ADMIN_SOCKET"},
	{{"PAR_ADMIN_RO_SOCKET=/run/par/admin.sock"}, B_ALL, 1, "PAR_ADMIN_RO_SOCKET"},
	{{"PAR_ADMIN_RO_SOCKET=ro.sock"}, B_ALL, 1, "PAR_ADMIN_RO_SOCKET"},
	{{"PAR_ADMIN_GROUP=no-such-group-par-test"}, B_ALL, 1, "PAR_ADMIN_GROUP"},
	{{"PAR_CACHE_DIR=cache"}, B_ALL, 1, "PAR_CACHE_DIR"},
	{{"PAR_CACHE_MAX_MB=0"}, B_ALL, 1, "PAR_CACHE_MAX_MB"},
	{{"PAR_STATE_DIR=./state"}, B_ALL, 1, "PAR_STATE_DIR"},
	{{"WHEELHOUSE_DIR=wheels"}, B_ALL, 1, "WHEELHOUSE_DIR"},
	{{"PAR_MAX_EXTRACT_MB=1.5"}, B_ALL, 1, "PAR_MAX_EXTRACT_MB"},
	{{"PAR_ENABLE_FAULTS=1", "PAR_FAULTS=fetch.explode"}, B_ALL, 1, "PAR_FAULTS"},
	{{"PAR_ENABLE_FAULTS=1", "PAR_FAULTS=boot.delay=600001"}, B_ALL, 1, "PAR_FAULTS"},
	{{"PAR_ENABLE_FAULTS=1", "PAR_FAULTS=fetch.error=1"}, B_ALL, 1, "PAR_FAULTS"},
	{{"PAR_CORS_ORIGINS=*"}, B_ALL, 1, "PAR_CORS_ORIGINS"},
	{{"PAR_CORS_ORIGINS=https://*.example.com"}, B_ALL, 1, "PAR_CORS_ORIGINS"},
	{{"PAR_CORS_ORIGINS=https://a.com/"}, B_ALL, 1, "PAR_CORS_ORIGINS"},
	{{"PAR_CORS_ORIGINS=https://a.com/app"}, B_ALL, 1, "PAR_CORS_ORIGINS"},
	{{"PAR_CORS_ORIGINS=https://a.com,,https://b.com"}, B_ALL, 1, "PAR_CORS_ORIGINS"},
	{{"PAR_CORS_ORIGINS=ftp://a.com"}, B_ALL, 1, "PAR_CORS_ORIGINS"},
	{{"PAR_CORS_ORIGINS=s3://bucket/k"}, B_ALL, 1, "PAR_CORS_ORIGINS"},
	{{"PAR_PYTHON=py\nthon"}, B_ALL, 1, "PAR_PYTHON"},
};
#define N_BAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

START_TEST(test_invalid_case)
{
	const struct bad_case *bc = &bad_cases[_i];
	const struct cfg_issue *is;
	struct loaded l;

	load(&l, bc->env, bc->base);
	ck_assert_msg(l.nerr == bc->nerr, "case %d (%s): %zu errors, want %zu (first: %s: %s)", _i,
		      bc->var, l.nerr, bc->nerr, l.err.n ? l.err.v[0].variable : "-",
		      l.err.n ? l.err.v[0].rule : "-");
	ck_assert_uint_eq(l.err.n, bc->nerr);
	is = find_issue(&l.err, bc->var);
	ck_assert_msg(is != NULL, "case %d: no error names %s (got %s)", _i, bc->var,
		      l.err.v[0].variable);
	ck_assert(is->rule && *is->rule);
	ck_assert_msg(doc_has(bc->var), "%s has no cfg_var_docs entry", bc->var);
	unload(&l);
}
END_TEST

START_TEST(test_multiple_errors_together)
{
	static const char *const env[] = {"REST_PORT=abc", "LOG_LEVEL=loud", "BASE_PATH=/a//b",
					  "PAR_CACHE_MAX_MB=0", "A2A_PORT=0", NULL};
	struct loaded l;

	load(&l, env, B_NONE);
	ck_assert_uint_eq(l.nerr, 7);
	ck_assert_uint_eq(l.err.n, 7);
	ck_assert_ptr_nonnull(find_issue(&l.err, "AGENT_APP_ID"));
	ck_assert_ptr_nonnull(find_issue(&l.err, "PACKAGE_URL"));
	ck_assert_ptr_nonnull(find_issue(&l.err, "REST_PORT"));
	ck_assert_ptr_nonnull(find_issue(&l.err, "A2A_PORT"));
	ck_assert_ptr_nonnull(find_issue(&l.err, "LOG_LEVEL"));
	ck_assert_ptr_nonnull(find_issue(&l.err, "BASE_PATH"));
	ck_assert_ptr_nonnull(find_issue(&l.err, "PAR_CACHE_MAX_MB"));
	ck_assert_str_eq(find_issue(&l.err, "REST_PORT")->value, "abc");
	ck_assert_str_eq(find_issue(&l.err, "REST_PORT")->rule,
			 "must be an integer 1..65535 (digits only)");
	ck_assert_ptr_null(find_issue(&l.err, "AGENT_APP_ID")->value);
	unload(&l);
}
END_TEST

START_TEST(test_port_clashes_each_reported)
{
	static const char *const env[] = {"REST_PORT=9000", "A2A_PORT=9000", "UI_PORT=9000",
					  "MULTIPLEXED=no", NULL};
	struct loaded l;

	load(&l, env, B_ALL);
	ck_assert_uint_eq(l.nerr, 3);
	ck_assert_ptr_nonnull(find_issue(&l.err, "A2A_PORT"));
	ck_assert_ptr_nonnull(find_issue(&l.err, "UI_PORT"));
	ck_assert(strstr(find_issue(&l.err, "A2A_PORT")->rule, "REST_PORT") != NULL);
	unload(&l);
}
END_TEST

START_TEST(test_invalid_port_no_clash_cascade)
{
	static const char *const env[] = {"REST_PORT=8080x", "A2A_PORT=8080", NULL};
	struct loaded l;

	/* REST_PORT falls back to 8080 after its error; that must not also blame A2A_PORT. */
	load(&l, env, B_ALL);
	ck_assert_uint_eq(l.nerr, 1);
	ck_assert_ptr_nonnull(find_issue(&l.err, "REST_PORT"));
	unload(&l);
}
END_TEST

/* ---- valid edge values ---------------------------------------------------------------- */

START_TEST(test_valid_edges)
{
	static const char *const env[] = {
		"PACKAGE_URL=HTTPS://Example.com:8443/pkgs/a.apkg?X-Amz-Signature=abc",
		"PACKAGE_SHA256=0123456789ABCDEF0123456789abcdef0123456789ABCDEF0123456789ABCDEF",
		"PAR_REQUIRE_SHA256=TRUE",
		"REST_PORT=1",
		"A2A_PORT=65535",
		"UI_PORT=0",
		"BASE_PATH=api/v1/",
		"BOOT_BUDGET_MS=3600000",
		"BOOT_HARD_LIMIT_MULTIPLIER=0",
		"GRACEFUL_SHUTDOWN_TIMEOUT_SEC=0",
		"PAR_DRAIN_DELAY_SEC=3600",
		"PAR_BACKOFF_RESET_SEC=86400",
		"LOG_LEVEL=WARNING",
		"LOG_FORMAT=Text",
		"DEPLOYMENT_ID=deploy 1",
		NULL,
	};
	struct loaded l;

	load(&l, env, B_ID);
	ck_assert_msg(l.nerr == 0, "%s: %s", l.err.n ? l.err.v[0].variable : "",
		      l.err.n ? l.err.v[0].rule : "");
	ck_assert_str_eq(l.cfg.package_url,
			 "HTTPS://Example.com:8443/pkgs/a.apkg?X-Amz-Signature=abc");
	ck_assert_str_eq(l.cfg.package_sha256,
			 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	ck_assert_uint_eq(l.cfg.rest_port, 1);
	ck_assert_uint_eq(l.cfg.a2a_port, 65535);
	ck_assert_uint_eq(l.cfg.ui_port, 0);
	ck_assert_str_eq(l.cfg.base_path, "/api/v1");
	ck_assert_uint_eq(l.cfg.boot_budget_ms, 3600000);
	ck_assert(l.cfg.boot_hard_limit_multiplier == 0.0);
	ck_assert_uint_eq(l.cfg.graceful_shutdown_timeout_sec, 0);
	ck_assert_uint_eq(l.cfg.drain_delay_sec, 3600);
	ck_assert_uint_eq(l.cfg.backoff_reset_sec, 86400);
	ck_assert_int_eq(l.cfg.log_level, PAR_LOG_WARN);
	ck_assert_int_eq(l.cfg.log_format, PAR_LOG_TEXT);
	ck_assert_str_eq(l.cfg.deployment_id, "deploy 1");
	unload(&l);
}
END_TEST

START_TEST(test_rest_equals_ui_when_multiplexed)
{
	static const char *const on[] = {"REST_PORT=8080", "UI_PORT=8080", NULL};
	static const char *const yes[] = {"UI_PORT=8080", "MULTIPLEXED=YES", NULL};
	struct loaded l;

	load(&l, on, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert_uint_eq(l.cfg.ui_port, 8080);
	ck_assert(l.cfg.multiplexed);
	unload(&l);
	load(&l, yes, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	unload(&l);
}
END_TEST

START_TEST(test_ui_port_zero_never_clashes)
{
	static const char *const env[] = {"UI_PORT=0", "MULTIPLEXED=false", NULL};
	struct loaded l;

	load(&l, env, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert(!l.cfg.multiplexed);
	unload(&l);
}
END_TEST

START_TEST(test_package_sources)
{
	static const char *const http[] = {"PACKAGE_URL=http://localhost:9000/b/a.apkg",
					   "PAR_ALLOW_HTTP=on", NULL};
	static const char *const s3[] = {"PACKAGE_URL=s3://my-bucket/agents/a.apkg",
					 "S3_BUCKET=my-bucket", NULL};
	static const char *const rel[] = {"AGENT_PACKAGE_PATH=agents/a", NULL};
	static const char *const shadow_sha[] = {"PAR_REQUIRE_SHA256=1", NULL};
	struct loaded l;

	load(&l, http, B_ID);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert(l.cfg.allow_http);
	ck_assert_str_eq(l.cfg.package_url, "http://localhost:9000/b/a.apkg");
	unload(&l);

	load(&l, s3, B_ID);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert_str_eq(l.cfg.s3_bucket, "my-bucket");
	unload(&l);

	load(&l, rel, B_ID);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert_str_eq(l.cfg.agent_package_path, "agents/a");
	unload(&l);

	/* A local package needs no digest even when digests are required for URLs. */
	load(&l, shadow_sha, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert(l.cfg.require_sha256);
	unload(&l);
}
END_TEST

START_TEST(test_region_and_paths)
{
	static const char *const def_region[] = {"AWS_DEFAULT_REGION=eu-west-1",
						 "PAR_CACHE_DIR=/data/cache",
						 "SSL_CERT_FILE=/etc/ssl/ca.pem", NULL};
	static const char *const both[] = {"AWS_REGION=ap-south-2", "AWS_DEFAULT_REGION=BAD REGION",
					   "PAR_CA_BUNDLE=ca.pem", "SSL_CERT_FILE=/x",
					   "PAR_STATE_DIR=/state", "WHEELHOUSE_DIR=/wheels",
					   "PAR_ADMIN_SOCKET=/tmp/a.sock",
					   "PAR_ADMIN_RO_SOCKET=/tmp/ro.sock",
					   "PAR_ADMIN_GROUP=root", "PAR_PYTHON=/usr/bin/python3.11",
					   NULL};
	struct loaded l;

	load(&l, def_region, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert_str_eq(l.cfg.aws_region, "eu-west-1");
	ck_assert_str_eq(l.cfg.state_dir, "/data/cache/state");
	ck_assert_str_eq(l.cfg.ca_bundle, "/etc/ssl/ca.pem");
	unload(&l);

	load(&l, both, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert_str_eq(l.cfg.aws_region, "ap-south-2");
	ck_assert_str_eq(l.cfg.ca_bundle, "ca.pem");
	ck_assert_str_eq(l.cfg.state_dir, "/state");
	ck_assert_str_eq(l.cfg.wheelhouse_dir, "/wheels");
	ck_assert_str_eq(l.cfg.admin_socket, "/tmp/a.sock");
	ck_assert_str_eq(l.cfg.admin_ro_socket, "/tmp/ro.sock");
	ck_assert_str_eq(l.cfg.admin_group, "root");
	ck_assert_str_eq(l.cfg.python, "/usr/bin/python3.11");
	unload(&l);
}
END_TEST

START_TEST(test_socket_length_limit)
{
	char sock[140] = "PAR_ADMIN_SOCKET=/";
	const char *env[] = {sock, NULL};
	struct loaded l;

	/* 107 bytes fits sun_path with its NUL. */
	memset(sock + strlen(sock), 's', 106);
	load(&l, env, B_ALL);
	ck_assert_uint_eq(strlen(l.cfg.admin_socket), 107);
	ck_assert_uint_eq(l.nerr, 0);
	unload(&l);
	strcat(sock, "s");
	load(&l, env, B_ALL);
	ck_assert_uint_eq(l.nerr, 1);
	unload(&l);
}
END_TEST

START_TEST(test_cors_and_faults_enabled)
{
	static const char *const env[] = {
		"PAR_CORS_ORIGINS= https://App.Example.com , http://[::1]:3000,http://localhost:5173",
		"PAR_ENABLE_FAULTS=1",
		"PAR_FAULTS=fetch.error, boot.delay=250",
		NULL};
	struct loaded l;

	load(&l, env, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert_uint_eq(l.warn.n, 0);
	ck_assert_ptr_nonnull(l.cfg.cors_origins);
	ck_assert_str_eq(l.cfg.cors_origins[0], "https://app.example.com");
	ck_assert_str_eq(l.cfg.cors_origins[1], "http://[::1]:3000");
	ck_assert_str_eq(l.cfg.cors_origins[2], "http://localhost:5173");
	ck_assert_ptr_null(l.cfg.cors_origins[3]);
	ck_assert(l.cfg.enable_faults);
	ck_assert(l.cfg.faults.fetch_error);
	ck_assert_uint_eq(l.cfg.faults.boot_delay_ms, 250);
	ck_assert_str_eq(l.cfg.faults_spec, "fetch.error, boot.delay=250");
	unload(&l);
}
END_TEST

START_TEST(test_multiplier_values)
{
	static const struct {
		const char *v;
		double want;
	} ok[] = {{"1", 1.0}, {"1.0", 1.0}, {"2.5", 2.5}, {"100", 100.0}, {"0", 0.0}, {"0.0", 0.0}};
	char buf[64];
	const char *env[] = {buf, NULL};
	struct loaded l;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(buf, sizeof(buf), "BOOT_HARD_LIMIT_MULTIPLIER=%s", ok[i].v);
		load(&l, env, B_ALL);
		ck_assert_msg(l.nerr == 0, "%s rejected", ok[i].v);
		ck_assert(l.cfg.boot_hard_limit_multiplier == ok[i].want);
		unload(&l);
	}
}
END_TEST

/* ---- warnings ------------------------------------------------------------------------- */

START_TEST(test_warning_boot_failure_count)
{
	static const char *const bad[] = {"BOOT_FAILURE_COUNT=three", NULL};
	static const char *const big[] = {"BOOT_FAILURE_COUNT=1000001", NULL};
	static const char *const good[] = {"BOOT_FAILURE_COUNT=7", NULL};
	struct loaded l;

	load(&l, bad, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert_uint_eq(l.warn.n, 1);
	ck_assert_str_eq(l.warn.v[0].variable, "BOOT_FAILURE_COUNT");
	ck_assert_str_eq(l.warn.v[0].value, "three");
	ck_assert_uint_eq(l.cfg.boot_failure_count, 0);
	unload(&l);

	load(&l, big, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert_uint_eq(l.warn.n, 1);
	ck_assert_uint_eq(l.cfg.boot_failure_count, 0);
	unload(&l);

	load(&l, good, B_ALL);
	ck_assert_uint_eq(l.warn.n, 0);
	ck_assert_uint_eq(l.cfg.boot_failure_count, 7);
	unload(&l);
}
END_TEST

START_TEST(test_warning_faults_without_enable)
{
	static const char *const env[] = {"PAR_FAULTS=fetch.error,boot.delay=100", NULL};
	static const char *const junk[] = {"PAR_FAULTS=not-a-fault", NULL};
	struct loaded l;

	load(&l, env, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert_uint_eq(l.warn.n, 1);
	ck_assert_str_eq(l.warn.v[0].variable, "PAR_FAULTS");
	ck_assert(!l.cfg.enable_faults);
	ck_assert(!l.cfg.faults.fetch_error);
	ck_assert_uint_eq(l.cfg.faults.boot_delay_ms, 0);
	unload(&l);

	/* Not parsed at all when disabled: even a malformed spec is only the warning. */
	load(&l, junk, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert_uint_eq(l.warn.n, 1);
	unload(&l);
}
END_TEST

START_TEST(test_warning_package_url_shadowed)
{
	static const char *const env[] = {"PACKAGE_URL=https://h/a.apkg?X-Amz-Signature=shadowsig",
					  NULL};
	struct loaded l;

	load(&l, env, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert_uint_eq(l.warn.n, 1);
	ck_assert_str_eq(l.warn.v[0].variable, "PACKAGE_URL");
	ck_assert_str_eq(l.warn.v[0].value, "https://h/a.apkg");
	ck_assert_ptr_null(l.cfg.package_url);
	ck_assert_str_eq(l.cfg.agent_package_path, "/srv/agent.apkg");
	unload(&l);
}
END_TEST

START_TEST(test_warning_lone_session_token)
{
	static const char *const env[] = {"AWS_SESSION_TOKEN=FwoGZXIvYXdzEBlonetoken", NULL};
	struct loaded l;

	load(&l, env, B_ALL);
	ck_assert_uint_eq(l.nerr, 0);
	ck_assert_uint_eq(l.warn.n, 1);
	ck_assert_str_eq(l.warn.v[0].variable, "AWS_SESSION_TOKEN");
	ck_assert_str_eq(l.warn.v[0].value, REDACTED);
	ck_assert(!issues_contain(&l.warn, "lonetoken"));
	ck_assert(!l.cfg.aws_session_token);
	unload(&l);
}
END_TEST

/* ---- secrets ------------------------------------------------------------------------- */

START_TEST(test_secrets_redacted_in_issues)
{
	static const char *const env[] = {
		"AWS_ACCESS_KEY_ID=AKIASECRETKEYVALUE1",
		"PACKAGE_URL=https://user:hunter2@h/a.apkg?X-Amz-Signature=deadbeefsig",
		"AWS_ENDPOINT_URL=https://minio:topsecretpw@minio:9000",
		"PAR_CORS_ORIGINS=https://a.com/?token=corssecret",
		NULL};
	static const char *const env2[] = {"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCY",
					   "PACKAGE_URL=ftp://h/a.apkg?X-Amz-Credential=ftpcred",
					   NULL};
	static const char *const env3[] = {
		"S3_BUCKET=good-bucket", "PACKAGE_URL=s3://other-bucket/k?sig=s3sigsecret", NULL};
	struct loaded l;

	load(&l, env, B_ID);
	ck_assert_uint_eq(l.nerr, 4);
	ck_assert_str_eq(find_issue(&l.err, "AWS_ACCESS_KEY_ID")->value, REDACTED);
	ck_assert(!issues_contain(&l.err, "AKIASECRETKEYVALUE1"));
	ck_assert(!issues_contain(&l.err, "hunter2"));
	ck_assert(!issues_contain(&l.err, "deadbeefsig"));
	ck_assert(!issues_contain(&l.err, "topsecretpw"));
	ck_assert(!issues_contain(&l.err, "corssecret"));
	ck_assert_str_eq(find_issue(&l.err, "PACKAGE_URL")->value, "https://h/a.apkg");
	unload(&l);

	load(&l, env2, B_ID);
	ck_assert_uint_eq(l.nerr, 2);
	ck_assert(!issues_contain(&l.err, "wJalrXUtnFEMIK7MDENGbPxRfiCY"));
	ck_assert(!issues_contain(&l.err, "ftpcred"));
	unload(&l);

	load(&l, env3, B_ID);
	ck_assert_uint_eq(l.nerr, 1);
	ck_assert(!issues_contain(&l.err, "s3sigsecret"));
	unload(&l);
}
END_TEST

START_TEST(test_to_json_has_no_secret)
{
	static const char *const env[] = {
		"AWS_ACCESS_KEY_ID=AKIAJSONKEYVALUE",
		"AWS_SECRET_ACCESS_KEY=jsonsecretvalue",
		"AWS_SESSION_TOKEN=jsontokenvalue",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN=containertokenvalue",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/relsecret",
		"PACKAGE_URL=https://h/p.apkg?X-Amz-Signature=jsonsigvalue",
		"AWS_ENDPOINT_URL_S3=http://localhost:9000/",
		"PAR_CORS_ORIGINS=https://a.com",
		NULL};
	struct loaded l;
	cJSON *o, *cr, *cors;
	char *js;

	load(&l, env, B_ID);
	ck_assert_uint_eq(l.nerr, 0);
	js = cfg_to_json(&l.cfg);
	ck_assert_ptr_nonnull(js);
	ck_assert(strstr(js, "AKIAJSONKEYVALUE") == NULL);
	ck_assert(strstr(js, "jsonsecretvalue") == NULL);
	ck_assert(strstr(js, "jsontokenvalue") == NULL);
	ck_assert(strstr(js, "containertokenvalue") == NULL);
	ck_assert(strstr(js, "relsecret") == NULL);
	ck_assert(strstr(js, "jsonsigvalue") == NULL);
	o = cJSON_Parse(js);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(cJSON_GetObjectItem(o, "PACKAGE_URL")->valuestring, "https://h/p.apkg");
	ck_assert_str_eq(cJSON_GetObjectItem(o, "AGENT_APP_ID")->valuestring, "app");
	ck_assert_int_eq(cJSON_GetObjectItem(o, "REST_PORT")->valueint, 8080);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(o, "MULTIPLEXED")));
	ck_assert_str_eq(cJSON_GetObjectItem(o, "BASE_PATH")->valuestring, "/");
	ck_assert_str_eq(cJSON_GetObjectItem(o, "LOG_LEVEL")->valuestring, "info");
	cr = cJSON_GetObjectItem(o, "AWS_CREDENTIALS");
	ck_assert_ptr_nonnull(cr);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cr, "staticKeys")));
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cr, "sessionToken")));
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cr, "containerEndpoint")));
	cors = cJSON_GetObjectItem(o, "PAR_CORS_ORIGINS");
	ck_assert(cJSON_IsArray(cors));
	ck_assert_int_eq(cJSON_GetArraySize(cors), 1);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "DEPLOYMENT_ID")));
	cJSON_Delete(o);
	free(js);
	unload(&l);
}
END_TEST

START_TEST(test_docs_complete)
{
	const struct cfg_var_doc *d, *e;
	size_t n = 0;

	for (d = cfg_var_docs; d->name; d++, n++) {
		ck_assert(d->def && *d->def);
		ck_assert(d->rule && *d->rule);
		for (e = d + 1; e->name; e++)
			ck_assert_msg(strcmp(d->name, e->name) != 0, "%s twice", d->name);
		ck_assert_msg(d->secret == redact_is_secret_name(d->name), "%s secret flag", d->name);
	}
	ck_assert_uint_ge(n, 45);
	ck_assert(doc_has("AGENT_APP_ID") && doc_has("PAR_CORS_ORIGINS") && doc_has("SSL_CERT_FILE"));
}
END_TEST

/* ---- BASE_PATH ------------------------------------------------------------------------ */

static const struct {
	const char *in;
	const char *out; /* NULL: rejected */
} base_cases[] = {
	{"/", ""},
	{"", ""},
	{"a/b", "/a/b"},
	{"/a/", "/a"},
	{"a/", "/a"},
	{"/a/b", "/a/b"},
	{"/api/v1.2_x-Y", "/api/v1.2_x-Y"},
	{"/...", "/..."},
	{"/.well-known", "/.well-known"},
	{"/a//b", NULL},
	{"//", NULL},
	{"/a//", NULL},
	{"/a/../b", NULL},
	{"/./x", NULL},
	{"/a/.", NULL},
	{"..", NULL},
	{"/a/..", NULL},
	{"/a b", NULL},
	{"/a%20b", NULL},
	{"/a?b", NULL},
	{"/a\\b", NULL},
	{"/caf\xc3\xa9", NULL},
};

START_TEST(test_base_path)
{
	const char *rule = NULL;
	char *got = cfg_normalise_base_path(base_cases[_i].in, &rule);

	if (!base_cases[_i].out) {
		ck_assert_msg(got == NULL, "\"%s\" accepted as \"%s\"", base_cases[_i].in, got);
		ck_assert_ptr_nonnull(rule);
		return;
	}
	ck_assert_msg(got != NULL, "\"%s\" rejected: %s", base_cases[_i].in, rule);
	ck_assert_str_eq(got, base_cases[_i].out);
	free(got);
}
END_TEST

/* ---- url_parse --------------------------------------------------------------------------- */

struct url_case {
	const char *in;
	bool allow_http;
	bool ok;
	enum url_scheme scheme;
	const char *host;
	int port;
	const char *path;
	const char *query;
	const char *bucket;
	const char *key;
};

#define URL_BAD(s, http) {s, http, false, URL_S3, NULL, 0, NULL, NULL, NULL, NULL}

static const struct url_case url_cases[] = {
	{"s3://my-bucket/path/to/agent.apkg", false, true, URL_S3, NULL, 0, NULL, NULL,
	 "my-bucket", "path/to/agent.apkg"},
	{"S3://my.bucket-1/a?b#c", false, true, URL_S3, NULL, 0, NULL, NULL, "my.bucket-1",
	 "a?b#c"},
	{"https://example.com", false, true, URL_HTTPS, "example.com", 0, "/", NULL, NULL, NULL},
	{"HTTPS://Example.com:8443/a/b.apkg?X-Amz-Signature=x", false, true, URL_HTTPS,
	 "Example.com", 8443, "/a/b.apkg", "X-Amz-Signature=x", NULL, NULL},
	{"https://[::1]:9000/x", false, true, URL_HTTPS, "::1", 9000, "/x", NULL, NULL, NULL},
	{"https://[2001:db8::1]/", false, true, URL_HTTPS, "2001:db8::1", 0, "/", NULL, NULL, NULL},
	{"http://localhost:9000/b/k", true, true, URL_HTTP, "localhost", 9000, "/b/k", NULL, NULL,
	 NULL},
	{"hTTp://10.0.0.1:1/", true, true, URL_HTTP, "10.0.0.1", 1, "/", NULL, NULL, NULL},
	{"https://h/p%20q", false, true, URL_HTTPS, "h", 0, "/p%20q", NULL, NULL, NULL},
	{"https://h?x=1", false, true, URL_HTTPS, "h", 0, "/", "x=1", NULL, NULL},
	{"https://minio_s3:65535/", false, true, URL_HTTPS, "minio_s3", 65535, "/", NULL, NULL, NULL},
	URL_BAD("", false),
	URL_BAD("http://h/x", false),
	URL_BAD("file:///etc/passwd", true),
	URL_BAD("ftp://h/x", true),
	URL_BAD("h/x", false),
	URL_BAD("https//h/x", false),
	URL_BAD("https://", false),
	URL_BAD("https:///x", false),
	URL_BAD("https://u:p@h/x", false),
	URL_BAD("https://u@h/x", false),
	URL_BAD("https://h:0/x", false),
	URL_BAD("https://h:65536/", false),
	URL_BAD("https://h:/", false),
	URL_BAD("https://h:80a/", false),
	URL_BAD("https://h:+80/", false),
	URL_BAD("https://h /x", false),
	URL_BAD(" https://h/x", false),
	URL_BAD("https://h/x\n", false),
	URL_BAD("https://h/x\x7f", false),
	URL_BAD("https://[::1/x", false),
	URL_BAD("https://[zz]/", false),
	URL_BAD("https://[::1]x/", false),
	URL_BAD("https://h/x#frag", false),
	URL_BAD("https://h/%zz", false),
	URL_BAD("https://h/%2", false),
	URL_BAD("https://a..b/", false),
	URL_BAD("https://.a/", false),
	URL_BAD("https://h!/", false),
	URL_BAD("s3://bucket", false),
	URL_BAD("s3://bucket/", false),
	URL_BAD("s3://Bucket/k", false),
	URL_BAD("s3://ab/k", false),
	URL_BAD("s3:///k", false),
	URL_BAD("s3://a..b/k", false),
	URL_BAD("s3://-abc/k", false),
};

static void check_opt_str(const char *got, const char *want, const char *what, const char *in)
{
	if (!want) {
		ck_assert_msg(got == NULL, "%s: %s = \"%s\", want NULL", in, what, got);
		return;
	}
	ck_assert_msg(got && strcmp(got, want) == 0, "%s: %s = \"%s\", want \"%s\"", in, what,
		      got ? got : "(null)", want);
}

START_TEST(test_url_parse)
{
	const struct url_case *uc = &url_cases[_i];
	struct par_url u;
	const char *rule = NULL;
	int rc = url_parse(uc->in, uc->allow_http, &u, &rule);

	if (!uc->ok) {
		ck_assert_msg(rc == -1, "\"%s\" accepted", uc->in);
		ck_assert_ptr_nonnull(rule);
		ck_assert_ptr_null(u.host);
		ck_assert_ptr_null(u.bucket);
		return;
	}
	ck_assert_msg(rc == 0, "\"%s\" rejected: %s", uc->in, rule);
	ck_assert_int_eq(u.scheme, uc->scheme);
	check_opt_str(u.host, uc->host, "host", uc->in);
	ck_assert_int_eq(u.port, uc->port);
	check_opt_str(u.path, uc->path, "path", uc->in);
	check_opt_str(u.query, uc->query, "query", uc->in);
	check_opt_str(u.bucket, uc->bucket, "bucket", uc->in);
	check_opt_str(u.key, uc->key, "key", uc->in);
	url_free(&u);
	ck_assert_ptr_null(u.host);
}
END_TEST

START_TEST(test_url_rules_are_specific)
{
	struct par_url u;
	const char *rule = NULL;

	ck_assert_int_eq(url_parse("http://h/x", false, &u, &rule), -1);
	ck_assert(strstr(rule, "PAR_ALLOW_HTTP") != NULL);
	ck_assert_int_eq(url_parse("https://u:p@h/x", false, &u, &rule), -1);
	ck_assert(strstr(rule, "credentials") != NULL);
	ck_assert_int_eq(url_parse("file:///x", true, &u, &rule), -1);
	ck_assert(strstr(rule, "file://") != NULL);
	ck_assert_int_eq(url_parse("https://h:99999/", false, &u, &rule), -1);
	ck_assert(strstr(rule, "1..65535") != NULL);
}
END_TEST

START_TEST(test_url_valid_bucket)
{
	ck_assert(url_valid_bucket("abc"));
	ck_assert(url_valid_bucket("my.bucket-01"));
	ck_assert(url_valid_bucket("a23456789012345678901234567890123456789012345678901234567890123"));
	ck_assert(!url_valid_bucket("a234567890123456789012345678901234567890123456789012345678901234"));
	ck_assert(!url_valid_bucket("ab"));
	ck_assert(!url_valid_bucket("Abc"));
	ck_assert(!url_valid_bucket("abc-"));
	ck_assert(!url_valid_bucket(".abc"));
	ck_assert(!url_valid_bucket("a..b"));
	ck_assert(!url_valid_bucket("a_b"));
	ck_assert(!url_valid_bucket(NULL));
}
END_TEST

/* ---- faults_parse -------------------------------------------------------------------- */

struct fault_case {
	const char *spec;
	bool ok;
	struct par_faults want;
};

static const struct fault_case fault_cases[] = {
	{"", true, {0}},
	{"   ", true, {0}},
	{"fetch.error", true, {.fetch_error = true}},
	{" fetch.error , extract.error ", true, {.fetch_error = true, .extract_error = true}},
	{"boot.delay=100,rest.latency=5,fetch.delay=600000", true,
	 {.boot_delay_ms = 100, .rest_latency_ms = 5, .fetch_delay_ms = 600000}},
	{"boot.delay=0", true, {0}},
	{"\tfetch.delay=007", true, {.fetch_delay_ms = 7}},
	{"nope", false, {0}},
	{"fetch.error=1", false, {0}},
	{"boot.delay", false, {0}},
	{"boot.delay=", false, {0}},
	{"boot.delay=600001", false, {0}},
	{"boot.delay=-1", false, {0}},
	{"boot.delay=1x", false, {0}},
	{"boot.delay=99999999999999999999999", false, {0}},
	{"fetch.error,,extract.error", false, {0}},
	{"fetch.error,", false, {0}},
	{",fetch.error", false, {0}},
	{"fetch.error,fetch.error", false, {0}},
	{"boot.delay = 5", false, {0}},
	{"Boot.Delay=5", false, {0}},
	{"fetch.error;extract.error", false, {0}},
};

START_TEST(test_faults_parse)
{
	const struct fault_case *fc = &fault_cases[_i];
	struct par_faults f;
	const char *rule = NULL;
	int rc = faults_parse(fc->spec, &f, &rule);

	if (!fc->ok) {
		ck_assert_msg(rc == -1, "\"%s\" accepted", fc->spec);
		ck_assert_ptr_nonnull(rule);
		ck_assert(strstr(rule, "fault") != NULL);
		ck_assert(!f.fetch_error && !f.extract_error && !f.boot_delay_ms &&
			  !f.rest_latency_ms && !f.fetch_delay_ms);
		return;
	}
	ck_assert_msg(rc == 0, "\"%s\" rejected: %s", fc->spec, rule);
	ck_assert_uint_eq(f.boot_delay_ms, fc->want.boot_delay_ms);
	ck_assert_uint_eq(f.rest_latency_ms, fc->want.rest_latency_ms);
	ck_assert_uint_eq(f.fetch_delay_ms, fc->want.fetch_delay_ms);
	ck_assert_int_eq(f.fetch_error, fc->want.fetch_error);
	ck_assert_int_eq(f.extract_error, fc->want.extract_error);
}
END_TEST

START_TEST(test_faults_rule_names_item)
{
	struct par_faults f;
	const char *rule = NULL;

	ck_assert_int_eq(faults_parse("fetch.error,bogus.thing", &f, &rule), -1);
	ck_assert(strstr(rule, "bogus.thing") != NULL);
	ck_assert(strstr(rule, "fetch.delay=MS") != NULL); /* lists the known names */
}
END_TEST

START_TEST(test_faults_describe)
{
	struct par_faults f = {.boot_delay_ms = 100, .fetch_error = true, .extract_error = true};
	struct par_faults none = {0};
	char buf[128], tiny[6];

	faults_describe(&f, buf, sizeof(buf));
	ck_assert_str_eq(buf, "boot.delay=100,fetch.error,extract.error");
	faults_describe(&none, buf, sizeof(buf));
	ck_assert_str_eq(buf, "");
	faults_describe(&f, tiny, sizeof(tiny));
	ck_assert_str_eq(tiny, "boot.");
	tiny[0] = 'x';
	faults_describe(&f, tiny, 0);
	ck_assert_int_eq(tiny[0], 'x');
	f = (struct par_faults){.rest_latency_ms = 5, .fetch_delay_ms = 6};
	faults_describe(&f, buf, sizeof(buf));
	ck_assert_str_eq(buf, "rest.latency=5,fetch.delay=6");
	/* What describe writes, parse reads back. */
	ck_assert_int_eq(faults_parse(buf, &none, NULL), 0);
	ck_assert_uint_eq(none.rest_latency_ms, 5);
	ck_assert_uint_eq(none.fetch_delay_ms, 6);
}
END_TEST

/* ---- parse_uint / parse_bool -------------------------------------------------- */

START_TEST(test_parse_uint)
{
	uint64_t v = 42;

	ck_assert_int_eq(parse_uint("0", 0, 10, &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(parse_uint("007", 0, 10, &v), 0);
	ck_assert_uint_eq(v, 7);
	ck_assert_int_eq(parse_uint("10", 0, 10, &v), 0);
	ck_assert_int_eq(parse_uint("11", 0, 10, &v), -1);
	ck_assert_int_eq(parse_uint("4", 5, 10, &v), -1);
	ck_assert_int_eq(parse_uint("18446744073709551615", 0, UINT64_MAX, &v), 0);
	ck_assert(v == UINT64_MAX);
	ck_assert_int_eq(parse_uint("18446744073709551616", 0, UINT64_MAX, &v), -1);
	ck_assert_int_eq(parse_uint("99999999999999999999999", 0, UINT64_MAX, &v), -1);
	ck_assert_int_eq(parse_uint("", 0, 10, &v), -1);
	ck_assert_int_eq(parse_uint(NULL, 0, 10, &v), -1);
	ck_assert_int_eq(parse_uint("-1", 0, 10, &v), -1);
	ck_assert_int_eq(parse_uint("+1", 0, 10, &v), -1);
	ck_assert_int_eq(parse_uint(" 1", 0, 10, &v), -1);
	ck_assert_int_eq(parse_uint("1 ", 0, 10, &v), -1);
	ck_assert_int_eq(parse_uint("0x1", 0, 10, &v), -1);
	ck_assert_int_eq(parse_uint("1.0", 0, 10, &v), -1);
	ck_assert_int_eq(parse_uint("1e1", 0, 100, &v), -1);
	v = 42;
	ck_assert_int_eq(parse_uint("x", 0, 10, &v), -1);
	ck_assert_uint_eq(v, 42); /* untouched on failure */
	ck_assert_int_eq(parse_uint("5", 0, 10, NULL), 0);
}
END_TEST

START_TEST(test_parse_bool)
{
	static const char *const t[] = {"true", "1", "yes", "on", "TRUE", "Yes", "ON", "tRuE"};
	static const char *const f[] = {"false", "0", "no", "off", "FALSE", "No", "OFF"};
	static const char *const bad[] = {"", "2", "y", "n", "truee", " true", "true ", "enable",
					  "t", "00"};
	size_t i;
	bool b;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		b = false;
		ck_assert_int_eq(parse_bool(t[i], &b), 0);
		ck_assert(b);
	}
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		b = true;
		ck_assert_int_eq(parse_bool(f[i], &b), 0);
		ck_assert(!b);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse_bool(bad[i], &b) == -1, "\"%s\" accepted", bad[i]);
	ck_assert_int_eq(parse_bool(NULL, &b), -1);
}
END_TEST

/* ---- suite ---------------------------------------------------------------------------- */

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *make_suite(void)
{
	Suite *s = suite_create("config");
	TCase *load_tc = tcase_create("load");
	TCase *bad_tc = tcase_create("invalid");
	TCase *warn_tc = tcase_create("warnings");
	TCase *secret_tc = tcase_create("secrets");
	TCase *parse_tc = tcase_create("parsers");

	tcase_add_test(load_tc, test_defaults);
	tcase_add_test(load_tc, test_empty_is_unset);
	tcase_add_test(load_tc, test_null_env_reads_environ);
	tcase_add_test(load_tc, test_null_issue_lists);
	tcase_add_test(load_tc, test_valid_edges);
	tcase_add_test(load_tc, test_rest_equals_ui_when_multiplexed);
	tcase_add_test(load_tc, test_ui_port_zero_never_clashes);
	tcase_add_test(load_tc, test_package_sources);
	tcase_add_test(load_tc, test_region_and_paths);
	tcase_add_test(load_tc, test_socket_length_limit);
	tcase_add_test(load_tc, test_cors_and_faults_enabled);
	tcase_add_test(load_tc, test_multiplier_values);
	tcase_add_test(load_tc, test_docs_complete);
	suite_add_tcase(s, load_tc);

	tcase_add_loop_test(bad_tc, test_invalid_case, 0, (int)N_BAD);
	tcase_add_test(bad_tc, test_multiple_errors_together);
	tcase_add_test(bad_tc, test_port_clashes_each_reported);
	tcase_add_test(bad_tc, test_invalid_port_no_clash_cascade);
	suite_add_tcase(s, bad_tc);

	tcase_add_test(warn_tc, test_warning_boot_failure_count);
	tcase_add_test(warn_tc, test_warning_faults_without_enable);
	tcase_add_test(warn_tc, test_warning_package_url_shadowed);
	tcase_add_test(warn_tc, test_warning_lone_session_token);
	suite_add_tcase(s, warn_tc);

	tcase_add_test(secret_tc, test_secrets_redacted_in_issues);
	tcase_add_test(secret_tc, test_to_json_has_no_secret);
	suite_add_tcase(s, secret_tc);

	tcase_add_loop_test(parse_tc, test_base_path, 0, N_OF(base_cases));
	tcase_add_loop_test(parse_tc, test_url_parse, 0, N_OF(url_cases));
	tcase_add_test(parse_tc, test_url_rules_are_specific);
	tcase_add_test(parse_tc, test_url_valid_bucket);
	tcase_add_loop_test(parse_tc, test_faults_parse, 0, N_OF(fault_cases));
	tcase_add_test(parse_tc, test_faults_rule_names_item);
	tcase_add_test(parse_tc, test_faults_describe);
	tcase_add_test(parse_tc, test_parse_uint);
	tcase_add_test(parse_tc, test_parse_bool);
	suite_add_tcase(s, parse_tc);
	return s;
}
