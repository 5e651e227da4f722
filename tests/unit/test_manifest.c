/* Unit tests of agent.yaml loading and validation (SPEC §3): par/manifest.h. */
#include "par/manifest.h"

#include <check.h>
#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PIXELL_DIR PAR_TEST_DATA "/manifests/pixell-three-surface"
#define DEMO_DIR PAR_TEST_DATA "/../../examples/demo-agent"

static int load(const char *yaml, struct par_manifest *m, struct manifest_problems *p)
{
	return manifest_load_buffer(yaml, strlen(yaml), m, p);
}

/* Every problem on one line each, for assertion messages. */
static const char *dump(const struct manifest_problems *p)
{
	static char buf[4096];
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < p->n && off < sizeof(buf); i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "[%s: %s] ", p->v[i].where,
					p->v[i].rule);
	return buf;
}

/* where is the key path, optionally followed by " (line L, column C)". */
static bool where_is(const char *where, const char *path)
{
	size_t n = strlen(path);

	if (strncmp(where, path, n) != 0)
		return false;
	return where[n] == '\0' || strncmp(where + n, " (", 2) == 0;
}

static const struct manifest_problem *find_problem(const struct manifest_problems *p,
						   const char *path)
{
	for (size_t i = 0; i < p->n; i++)
		if (where_is(p->v[i].where, path))
			return &p->v[i];
	return NULL;
}

/* Loads yaml that must fail with exactly one problem at path. */
static void expect_one_problem(const char *yaml, const char *path)
{
	struct par_manifest m;
	struct manifest_problems p = { 0 };

	ck_assert_int_eq(load(yaml, &m, &p), -1);
	ck_assert_msg(p.n == 1 && where_is(p.v[0].where, path), "want one problem at %s, got %s",
		      path, dump(&p));
	ck_assert_ptr_nonnull(p.v[0].rule);
	ck_assert_uint_gt(strlen(p.v[0].rule), 10);
	ck_assert_ptr_null(m.name);
	ck_assert_ptr_null(m.json);
	manifest_problems_free(&p);
}

/* Loads yaml that must succeed; the caller frees m. */
static void expect_ok(const char *yaml, struct par_manifest *m)
{
	struct manifest_problems p = { 0 };

	int rc = load(yaml, m, &p);
	ck_assert_msg(rc == 0 && p.n == 0, "want success, got %s", dump(&p));
	manifest_problems_free(&p);
}

START_TEST(test_pixell_full)
{
	struct par_manifest m;
	struct manifest_problems p = { 0 };

	ck_assert_msg(manifest_load_dir(PIXELL_DIR, &m, &p) == 0, "%s", dump(&p));
	ck_assert_uint_eq(p.n, 0);
	ck_assert_str_eq(m.name, "example-three-surface-agent");
	ck_assert_str_eq(m.version, "0.1.0");
	ck_assert_str_eq(m.description, "Example agent with A2A, REST and UI surfaces");
	ck_assert_str_eq(m.author, "Pixell");
	ck_assert_int_eq(m.runtime, PAR_RUNTIME_PYTHON);
	ck_assert_str_eq(m.runtime_spec, "python");
	ck_assert_str_eq(m.entrypoint, "main:handler");
	ck_assert_ptr_null(m.exec_command);
	ck_assert_ptr_null(m.exec_env);
	ck_assert(m.has_a2a);
	ck_assert_str_eq(m.a2a_service, "a2a_service:create_grpc_server");
	ck_assert(m.has_rest);
	ck_assert_str_eq(m.rest_entry, "rest_routes:mount");
	ck_assert(m.has_ui);
	ck_assert_str_eq(m.ui_path, "ui");
	ck_assert_str_eq(m.ui_base_path, "/");

	cJSON *doc = cJSON_Parse(m.json);
	ck_assert_ptr_nonnull(doc);
	const cJSON *subs = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(doc, "metadata"), "sub_agents");
	ck_assert(cJSON_IsArray(subs));
	ck_assert_int_eq(cJSON_GetArraySize(subs), 2);
	const cJSON *first = cJSON_GetArrayItem(subs, 0);
	const cJSON *first_name = cJSON_GetObjectItemCaseSensitive(first, "name");
	ck_assert_str_eq(first_name->valuestring, "summarizer");
	/* Scalars stay strings in the tree: "true" is not turned into a JSON boolean. */
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(first, "public")->valuestring, "true");
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(doc, "version")->valuestring, "0.1.0");
	cJSON_Delete(doc);
	manifest_free(&m);
	ck_assert_ptr_null(m.name);
	manifest_free(&m); /* idempotent on a zeroed struct */
}
END_TEST

struct runtime_case {
	const char *yaml;
	enum par_runtime want;
	const char *spec;
};

static const struct runtime_case runtime_cases[] = {
	{ "name: a\nversion: '1'\nruntime: python3.11\nentrypoint: main:handler\n",
	  PAR_RUNTIME_PYTHON, "python3.11" },
	{ "name: a\nversion: '1'\nruntime: python\nentrypoint: pkg.mod:run\n", PAR_RUNTIME_PYTHON,
	  "python" },
	{ "name: a\nversion: '1'\nruntime: {python: \">=3.8\"}\nentrypoint: main:handler\n",
	  PAR_RUNTIME_PYTHON, ">=3.8" },
	{ "name: a\nversion: '1'\nruntime:\n  python: \"~=3.11\"\nentrypoint: main:handler\n",
	  PAR_RUNTIME_PYTHON, "~=3.11" },
	{ "name: a\nversion: '1'\nentrypoint: main:handler\n", PAR_RUNTIME_PYTHON, "python" },
	{ "name: a\nversion: '1'\nentrypoint: lib/agent.so\n", PAR_RUNTIME_NATIVE, "native" },
	{ "name: a\nversion: '1'\nruntime: native\nentrypoint: lib/agent.so\n", PAR_RUNTIME_NATIVE,
	  "native" },
	{ "name: a\nversion: '1'\nruntime: exec\nexec: {command: [bin/worker]}\n", PAR_RUNTIME_EXEC,
	  "exec" },
	{ "name: a\nversion: '1'\nexec: {command: [bin/worker]}\n", PAR_RUNTIME_EXEC, "exec" },
	/* REST-only packages: python when rest.entry names Python code, else native, no agent. */
	{ "name: a\nversion: '1'\nrest: {entry: routes}\n", PAR_RUNTIME_PYTHON, "python" },
	{ "name: a\nversion: '1'\nrest: {}\n", PAR_RUNTIME_NATIVE, "native" },
	{ "name: a\nversion: '1'\nui: {path: web}\n", PAR_RUNTIME_NATIVE, "native" },
	{ "name: a\nversion: '1'\nruntime: python3\na2a: {service: svc:make}\n", PAR_RUNTIME_PYTHON,
	  "python3" },
};

START_TEST(test_runtime_forms)
{
	const struct runtime_case *tc = &runtime_cases[_i];
	struct par_manifest m;

	expect_ok(tc->yaml, &m);
	ck_assert_msg(m.runtime == tc->want, "case %d: runtime %s", _i,
		      manifest_runtime_name(m.runtime));
	ck_assert_str_eq(m.runtime_spec, tc->spec);
	manifest_free(&m);
}
END_TEST

START_TEST(test_exec_command_env)
{
	struct par_manifest m;

	expect_ok("name: w\nversion: 2.0.1\nruntime: exec\n"
		  "exec:\n  command: [bin/worker, --port, \"0\"]\n"
		  "  env:\n    MODE: fast\n    LEVEL: 3\n",
		  &m);
	ck_assert_int_eq(m.runtime, PAR_RUNTIME_EXEC);
	ck_assert_uint_eq(m.exec_command_count, 3);
	ck_assert_str_eq(m.exec_command[0], "bin/worker");
	ck_assert_str_eq(m.exec_command[1], "--port");
	ck_assert_str_eq(m.exec_command[2], "0");
	ck_assert_ptr_null(m.exec_command[3]);
	ck_assert_str_eq(m.exec_env[0], "MODE=fast");
	ck_assert_str_eq(m.exec_env[1], "LEVEL=3");
	ck_assert_ptr_null(m.exec_env[2]);
	ck_assert_ptr_null(m.entrypoint);
	ck_assert(!m.has_a2a && !m.has_rest && !m.has_ui);
	manifest_free(&m);
}
END_TEST

struct bad_case {
	const char *yaml;
	const char *where;
};

#define NV "name: a\nversion: '1'\n"
static const struct bad_case bad_cases[] = {
	{ "version: '1'\nentrypoint: m:f\n", "name" },
	{ "name: a\nentrypoint: m:f\n", "version" },
	{ "name: a/b\nversion: '1'\n", "name" },
	{ "name: ..\nversion: '1'\n", "name" },
	{ "name: .\nversion: '1'\n", "name" },
	{ "name: ''\nversion: '1'\n", "name" },
	{ "name: a b\nversion: '1'\n", "name" },
	{ "name: a\nversion: 1/2\n", "version" },
	{ "name: a\nversion: ../1\n", "version" },
	{ "name: [a]\nversion: '1'\n", "name" },
	{ "name: a\nversion: {major: 1}\n", "version" },
	{ NV "description: [x]\n", "description" },
	{ NV "runtime: ruby\n", "runtime" },
	{ NV "runtime: python3.\nentrypoint: m:f\n", "runtime" },
	{ NV "runtime: Python\nentrypoint: m:f\n", "runtime" },
	{ NV "runtime: [python]\n", "runtime" },
	{ NV "runtime: {node: '18'}\n", "runtime" },
	{ NV "runtime: {python: ''}\nentrypoint: m:f\n", "runtime.python" },
	{ NV "runtime: {python: [3]}\nentrypoint: m:f\n", "runtime.python" },
	{ NV "runtime: python\nentrypoint: main\n", "entrypoint" },
	{ NV "runtime: python\nentrypoint: 'main:'\n", "entrypoint" },
	{ NV "runtime: python\nentrypoint: 1main:f\n", "entrypoint" },
	{ NV "runtime: python\nentrypoint: a..b:f\n", "entrypoint" },
	{ NV "runtime: python3.11\n", "entrypoint" },
	{ NV "entrypoint: main\n", "entrypoint" },
	{ NV "entrypoint: /opt/agent.so\n", "entrypoint" },
	{ NV "runtime: native\nentrypoint: /opt/agent.so\n", "entrypoint" },
	{ NV "runtime: native\nentrypoint: ../agent.so\n", "entrypoint" },
	{ NV "runtime: native\nentrypoint: lib/../../agent.so\n", "entrypoint" },
	{ NV "runtime: native\nentrypoint: 'lib\\agent.so'\n", "entrypoint" },
	{ NV "runtime: exec\n", "exec.command" },
	{ NV "runtime: exec\nexec: {}\n", "exec.command" },
	{ NV "exec: {command: []}\n", "exec.command" },
	{ NV "exec: {command: bin/worker}\n", "exec.command" },
	{ NV "exec: {command: [[bin/worker]]}\n", "exec.command[0]" },
	{ NV "exec: {command: [/bin/sh, -c, x]}\n", "exec.command[0]" },
	{ NV "exec: {command: [../worker]}\n", "exec.command[0]" },
	{ NV "exec: {command: ['']}\n", "exec.command[0]" },
	{ NV "exec: [bin/worker]\n", "exec" },
	{ NV "exec: {command: [w], env: [A]}\n", "exec.env" },
	{ NV "exec: {command: [w], env: {1BAD: x}}\n", "exec.env.1BAD" },
	{ NV "exec: {command: [w], env: {A=B: x}}\n", "exec.env.A=B" },
	{ NV "exec: {command: [w], env: {A: [x]}}\n", "exec.env.A" },
	{ NV "a2a: on\n", "a2a" },
	{ NV "a2a:\n", "a2a" },
	{ NV "a2a: {service: nocolon}\n", "a2a.service" },
	{ NV "a2a: {service: [x]}\n", "a2a.service" },
	{ NV "rest: {entry: 'a:b:c'}\n", "rest.entry" },
	{ NV "rest: {entry: 'routes/x.py'}\n", "rest.entry" },
	{ NV "rest: [x]\n", "rest" },
	{ NV "ui: {path: ../x}\n", "ui.path" },
	{ NV "ui: {path: /abs}\n", "ui.path" },
	{ NV "ui: {path: web/../../x}\n", "ui.path" },
	{ NV "ui: {path: ..}\n", "ui.path" },
	{ NV "ui: {path: 'web\\dist'}\n", "ui.path" },
	{ NV "ui: {path: ''}\n", "ui.path" },
	{ NV "ui: {}\n", "ui.path" },
	{ NV "ui: {basePath: /}\n", "ui.path" },
	{ NV "ui: {path: web, basePath: app}\n", "ui.basePath" },
	{ NV "ui: {path: web, basePath: /a/../b}\n", "ui.basePath" },
	{ NV "ui: {path: web, basePath: '/a b'}\n", "ui.basePath" },
	{ NV "ui: web\n", "ui" },
};

START_TEST(test_bad_values)
{
	expect_one_problem(bad_cases[_i].yaml, bad_cases[_i].where);
}
END_TEST

START_TEST(test_where_has_line_and_column)
{
	struct par_manifest m;
	struct manifest_problems p = { 0 };

	ck_assert_int_eq(load("name: a\nversion: '1'\nui:\n  path: /abs\n", &m, &p), -1);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_str_eq(p.v[0].where, "ui.path (line 4, column 3)");
	manifest_problems_free(&p);

	ck_assert_int_eq(load("name: a\nversion: '1'\nexec:\n  command: [/bin/sh]\n", &m, &p), -1);
	ck_assert_str_eq(p.v[0].where, "exec.command[0] (line 4, column 13)");
	manifest_problems_free(&p);

	/* A missing key has no position: only its path. */
	ck_assert_int_eq(load("version: '1'\n", &m, &p), -1);
	ck_assert_str_eq(p.v[0].where, "name");
	manifest_problems_free(&p);
}
END_TEST

START_TEST(test_many_problems_at_once)
{
	struct par_manifest m;
	struct manifest_problems p = { 0 };
	const char *yaml = "name: bad/name\n"
			   "runtime: python3.11\n"
			   "entrypoint: not-callable\n"
			   "a2a: {service: x}\n"
			   "rest: {entry: 'a:b:c'}\n"
			   "ui: {path: /etc, basePath: nope}\n";

	ck_assert_int_eq(load(yaml, &m, &p), -1);
	ck_assert_msg(p.n == 7, "%s", dump(&p));
	const char *paths[] = { "name", "version", "entrypoint", "a2a.service", "rest.entry",
				"ui.path", "ui.basePath" };
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		ck_assert_msg(find_problem(&p, paths[i]), "no problem at %s: %s", paths[i],
			      dump(&p));
	manifest_problems_free(&p);

	/* Every wrong-shaped key is reported, not only the first, and once (not also as
	 * missing). */
	ck_assert_int_eq(load("name: [a]\nversion: {b: c}\nui: x\nrest: [y]\n", &m, &p), -1);
	ck_assert_msg(p.n == 4, "%s", dump(&p));
	manifest_problems_free(&p);

	/* Wrong shapes do not hide the value rules of the other keys. */
	ck_assert_int_eq(load("name: bad/x\nversion: [1]\nui: web\nentrypoint: m:f\n"
			      "exec: {command: [[x], ok]}\nrest: {entry: 'a:b:c'}\n",
			      &m, &p),
			 -1);
	const char *mixed[] = { "name", "version", "ui", "exec.command[0]", "rest.entry" };
	ck_assert_msg(p.n == 5, "%s", dump(&p));
	for (size_t i = 0; i < sizeof(mixed) / sizeof(mixed[0]); i++)
		ck_assert_msg(find_problem(&p, mixed[i]), "no problem at %s: %s", mixed[i],
			      dump(&p));
	manifest_problems_free(&p);
}
END_TEST

START_TEST(test_problem_cap)
{
	char yaml[8192];
	size_t off = (size_t)snprintf(yaml, sizeof(yaml), NV "exec:\n  command: [w]\n  env:\n");
	struct par_manifest m;
	struct manifest_problems p = { 0 };

	for (int i = 0; i < 150; i++)
		off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "    %dBAD: x\n", i);
	ck_assert_int_eq(load(yaml, &m, &p), -1);
	ck_assert_uint_eq(p.n, 101);
	ck_assert(where_is(p.v[0].where, "exec.env.0BAD"));
	ck_assert_str_eq(p.v[100].where, "agent.yaml");
	ck_assert_msg(strstr(p.v[100].rule, "more than 100"), "%s", p.v[100].rule);
	manifest_problems_free(&p);
}
END_TEST

START_TEST(test_problems_are_appended)
{
	struct par_manifest m;
	struct manifest_problems p = { 0 };

	ck_assert_int_eq(load("version: '1'\n", &m, &p), -1);
	ck_assert_int_eq(load("name: a\n", &m, &p), -1);
	ck_assert_uint_eq(p.n, 2);
	ck_assert(where_is(p.v[0].where, "name"));
	ck_assert(where_is(p.v[1].where, "version"));
	/* A success leaves earlier problems alone and still returns 0. */
	ck_assert_int_eq(load(NV, &m, &p), 0);
	ck_assert_uint_eq(p.n, 2);
	manifest_free(&m);
	manifest_problems_free(&p);
	ck_assert_uint_eq(p.n, 0);
	ck_assert_ptr_null(p.v);
}
END_TEST

START_TEST(test_null_problem_list)
{
	struct par_manifest m;

	ck_assert_int_eq(manifest_load_buffer("name: [", 7, &m, NULL), -1);
	ck_assert_int_eq(manifest_load_buffer(NV, strlen(NV), &m, NULL), 0);
	manifest_free(&m);
}
END_TEST

static const char *const whole_file_cases[] = {
	"",
	"\n\n   \n",
	"# only a comment\n# and another\n",
	"---\n",
	"---\n...\n",
	"- a\n- b\n",
	"just a string\n",
	"42\n",
	"name: a\nversion: '1'\n---\nname: b\n",
	"\tname: a\n\tversion: 1\n",
	"name: a\n\tversion: 1\n",
	"name: a\nversion: '1\n",
	"name: [a, b\n",
	"{name: a, version: 1\n",
	"name: a\n  version: 1\n bad\n",
	"name: \xff\xfe\xfd\nversion: '1'\n",
};

START_TEST(test_whole_file_problems)
{
	expect_one_problem(whole_file_cases[_i], "agent.yaml");
}
END_TEST

START_TEST(test_syntax_error_position)
{
	struct par_manifest m;
	struct manifest_problems p = { 0 };

	ck_assert_int_eq(load("name: a\n\tversion: 1\n", &m, &p), -1);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_msg(strstr(p.v[0].where, "(line 2, column 1)"), "%s", dump(&p));
	ck_assert_msg(strstr(p.v[0].rule, "syntax"), "%s", dump(&p));
	manifest_problems_free(&p);
}
END_TEST

START_TEST(test_billion_laughs)
{
	char yaml[4096];
	size_t off = 0;
	struct par_manifest m;
	struct manifest_problems p = { 0 };

	off += (size_t)snprintf(yaml + off, sizeof(yaml) - off,
				NV "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
	for (int i = 1; i < 10; i++) {
		int j = i - 1;
		off += (size_t)snprintf(yaml + off, sizeof(yaml) - off,
					"a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d,"
					" *a%d, *a%d, *a%d, *a%d]\n",
					i, i, j, j, j, j, j, j, j, j, j);
	}
	off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "metadata: *a9\n");
	ck_assert_uint_lt(off, sizeof(yaml) - 1);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(load(yaml, &m, &p), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	ck_assert_msg(ms < 200, "took %.1f ms", ms);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_msg(strstr(p.v[0].rule, "alias"), "%s", dump(&p));
	ck_assert_msg(where_is(p.v[0].where, "a0"), "%s", dump(&p));
	manifest_problems_free(&p);

	/* An alias alone (its anchor in a comment) and an anchor alone are refused too. */
	expect_one_problem(NV "x: *nothing\n", "x");
	expect_one_problem(NV "x: &a hello\n", "x");
	expect_one_problem(NV "metadata:\n  <<: *base\n", "metadata.<<");
	expect_one_problem("&root {name: a, version: '1'}\n", "agent.yaml");
}
END_TEST

START_TEST(test_duplicate_keys)
{
	struct par_manifest m;
	struct manifest_problems p = { 0 };

	ck_assert_int_eq(load("name: a\nversion: '1'\nname: b\n", &m, &p), -1);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_str_eq(p.v[0].where, "name (line 3, column 1)");
	ck_assert_msg(strstr(p.v[0].rule, "duplicate"), "%s", dump(&p));
	manifest_problems_free(&p);

	expect_one_problem(NV "ui:\n  path: a\n  path: b\n", "ui.path");
	expect_one_problem(NV "metadata:\n  deep:\n    x: {y: 1, y: 2}\n", "metadata.deep.x.y");
	expect_one_problem(NV "metadata:\n  list:\n    - {k: 1}\n    - {k: 1, k: 2}\n",
			   "metadata.list[1].k");
	expect_one_problem(NV "unknown: 1\nunknown: 2\n", "unknown");
	expect_one_problem(NV "\"name\": c\n", "name");

	/* The same key in sibling mappings is fine. */
	expect_ok(NV "metadata:\n  a: {k: 1}\n  b: {k: 2}\n  l: [{k: 1}, {k: 2}]\n", &m);
	manifest_free(&m);
}
END_TEST

START_TEST(test_duplicate_keys_large_mapping)
{
	/* ~40k keys in one mapping: the duplicate check must stay linear, and still catch one. */
	size_t cap = 1000 * 1000, off = 0;
	char *yaml = malloc(cap);
	struct par_manifest m;
	struct manifest_problems p = { 0 };

	ck_assert_ptr_nonnull(yaml);
	off += (size_t)snprintf(yaml, cap, NV "metadata:\n");
	for (int i = 0; i < 40000; i++)
		off += (size_t)snprintf(yaml + off, cap - off, "  k%d: v\n", i);
	ck_assert_int_eq(manifest_load_buffer(yaml, off, &m, &p), 0);
	manifest_free(&m);
	off += (size_t)snprintf(yaml + off, cap - off, "  k17: again\n");
	ck_assert_int_eq(manifest_load_buffer(yaml, off, &m, &p), -1);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_msg(where_is(p.v[0].where, "metadata.k17"), "%s", dump(&p));
	manifest_problems_free(&p);
	free(yaml);
}
END_TEST

START_TEST(test_non_scalar_key)
{
	expect_one_problem(NV "? [a, b]\n: c\n", "agent.yaml");
	expect_one_problem(NV "metadata:\n  ? {a: b}\n  : c\n", "metadata");
}
END_TEST

static char *nested(int levels)
{
	size_t cap = (size_t)levels * 4 + 64;
	char *s = malloc(cap);
	size_t off = (size_t)snprintf(s, cap, NV "metadata: ");

	for (int i = 0; i < levels; i++)
		s[off++] = '[';
	for (int i = 0; i < levels; i++)
		s[off++] = ']';
	s[off++] = '\n';
	s[off] = '\0';
	return s;
}

START_TEST(test_nesting_limit)
{
	struct par_manifest m;
	/* The root mapping is level 1, so metadata may nest 31 more. */
	char *ok = nested(31), *deep = nested(32), *huge = nested(100000);

	expect_ok(ok, &m);
	manifest_free(&m);
	for (int i = 0; i < 2; i++) {
		struct manifest_problems p = { 0 };
		ck_assert_int_eq(load(i ? huge : deep, &m, &p), -1);
		ck_assert_uint_eq(p.n, 1);
		/* Reported at the first container too deep: metadata[0]…[0] (31 levels). */
		ck_assert_msg(strncmp(p.v[0].where, "metadata[0][0]", 14) == 0, "%s", dump(&p));
		ck_assert_msg(strstr(p.v[0].rule, "32"), "%s", dump(&p));
		manifest_problems_free(&p);
	}
	free(ok);
	free(deep);
	free(huge);
}
END_TEST

START_TEST(test_unknown_keys_kept)
{
	struct par_manifest m;
	const char *yaml = "name: keep\nversion: 1.2\nentrypoint: main:handler\n"
			   "exports: [summarize, translate]\n"
			   "x-vendor: {tier: gold, limits: {rps: 10}}\n"
			   "metadata:\n  sub_agents:\n    - {name: s1, public: false}\n"
			   "a2a: {service: svc:make, extra: yes}\n"
			   "ui: {path: dist, theme: dark}\n";

	expect_ok(yaml, &m);
	/* version: 1.2 unquoted stays the string "1.2", not a float. */
	ck_assert_str_eq(m.version, "1.2");
	cJSON *doc = cJSON_Parse(m.json);
	ck_assert_ptr_nonnull(doc);
	const cJSON *exports = cJSON_GetObjectItemCaseSensitive(doc, "exports");
	ck_assert_int_eq(cJSON_GetArraySize(exports), 2);
	ck_assert_str_eq(cJSON_GetArrayItem(exports, 1)->valuestring, "translate");
	const cJSON *vendor = cJSON_GetObjectItemCaseSensitive(doc, "x-vendor");
	const cJSON *rps = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(vendor, "limits"), "rps");
	ck_assert_str_eq(rps->valuestring, "10");
	const cJSON *sub = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(doc, "metadata"), "sub_agents"), 0);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(sub, "name")->valuestring, "s1");
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(doc, "a2a"), "extra")->valuestring, "yes");
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(doc, "ui"), "theme")->valuestring, "dark");
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(doc, "version")->valuestring, "1.2");
	/* Key order is the document's. */
	ck_assert_str_eq(doc->child->string, "name");
	cJSON_Delete(doc);
	manifest_free(&m);
}
END_TEST

START_TEST(test_name_rules)
{
	char name[131];

	memset(name, 'a', 128);
	name[128] = '\0';
	ck_assert(manifest_valid_name(name));
	name[128] = 'a';
	name[129] = '\0';
	ck_assert(!manifest_valid_name(name));
	ck_assert(manifest_valid_name("a"));
	ck_assert(manifest_valid_name("A-z_0.9"));
	ck_assert(manifest_valid_name("..."));
	ck_assert(manifest_valid_name(".hidden"));
	ck_assert(!manifest_valid_name(""));
	ck_assert(!manifest_valid_name("."));
	ck_assert(!manifest_valid_name(".."));
	ck_assert(!manifest_valid_name("a/b"));
	ck_assert(!manifest_valid_name("../x"));
	ck_assert(!manifest_valid_name("a\\b"));
	ck_assert(!manifest_valid_name("é"));
	ck_assert(!manifest_valid_name("a\n"));
	ck_assert(!manifest_valid_name(NULL));

	char yaml[512];
	memset(name, 'n', 129);
	name[129] = '\0';
	snprintf(yaml, sizeof(yaml), "name: %s\nversion: '1'\n", name);
	expect_one_problem(yaml, "name");
	snprintf(yaml, sizeof(yaml), "name: a\nversion: %s\n", name);
	expect_one_problem(yaml, "version");
	name[128] = '\0';
	snprintf(yaml, sizeof(yaml), "name: %s\nversion: %s\n", name, name);
	struct par_manifest m;
	expect_ok(yaml, &m);
	ck_assert_uint_eq(strlen(m.name), 128);
	manifest_free(&m);
}
END_TEST

START_TEST(test_quoted_scalars)
{
	struct par_manifest m;

	expect_ok("name: \"quoted\"\nversion: '0.1.0'\ndescription: >\n  folded\n  text\n"
		  "author: |\n  A\n  B\n",
		  &m);
	ck_assert_str_eq(m.name, "quoted");
	ck_assert_str_eq(m.version, "0.1.0");
	ck_assert_str_eq(m.description, "folded text\n");
	ck_assert_str_eq(m.author, "A\nB\n");
	ck_assert_ptr_null(m.entrypoint);
	manifest_free(&m);

	/* A NUL smuggled through an escape would truncate the name: refused. */
	expect_one_problem("name: \"ok\\0/../x\"\nversion: '1'\n", "name");
}
END_TEST

START_TEST(test_rest_only)
{
	struct par_manifest m;

	expect_ok("name: rest-only\nversion: 1.0.0\nruntime: python3.11\n"
		  "rest:\n  entry: app.routes\n",
		  &m);
	ck_assert_int_eq(m.runtime, PAR_RUNTIME_PYTHON);
	ck_assert(m.has_rest && !m.has_a2a && !m.has_ui);
	ck_assert_str_eq(m.rest_entry, "app.routes");
	ck_assert_ptr_null(m.a2a_service);
	ck_assert_ptr_null(m.ui_path);
	ck_assert_str_eq(m.ui_base_path, "/");
	ck_assert_ptr_null(m.entrypoint);
	manifest_free(&m);
}
END_TEST

START_TEST(test_empty_surfaces)
{
	struct par_manifest m;

	expect_ok(NV "entrypoint: main:h\na2a: {}\nrest: {}\nui: {path: ./web/, basePath: /app}\n",
		  &m);
	ck_assert(m.has_a2a && m.has_rest && m.has_ui);
	ck_assert_ptr_null(m.a2a_service);
	ck_assert_ptr_null(m.rest_entry);
	ck_assert_str_eq(m.ui_path, "./web/");
	ck_assert_str_eq(m.ui_base_path, "/app");
	manifest_free(&m);
}
END_TEST

START_TEST(test_demo_agent)
{
	struct par_manifest m;
	struct manifest_problems p = { 0 };

	ck_assert_msg(manifest_load_dir(DEMO_DIR, &m, &p) == 0, "%s", dump(&p));
	ck_assert_str_eq(m.name, "demo-agent");
	ck_assert_str_eq(m.version, "0.1.0");
	ck_assert_int_eq(m.runtime, PAR_RUNTIME_NATIVE);
	ck_assert_ptr_null(m.entrypoint);
	ck_assert(m.has_rest && !m.has_a2a && !m.has_ui);
	ck_assert_ptr_nonnull(strstr(m.json, "\"metadata\""));
	manifest_free(&m);
}
END_TEST

START_TEST(test_missing_file)
{
	struct par_manifest m;
	struct manifest_problems p = { 0 };

	ck_assert_int_eq(manifest_load_dir("/nonexistent/pkg", &m, &p), -1);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_str_eq(p.v[0].where, "/nonexistent/pkg/agent.yaml");
	manifest_problems_free(&p);

	ck_assert_int_eq(manifest_load_file(PAR_TEST_DATA, &m, &p), -1); /* a directory */
	ck_assert_uint_eq(p.n, 1);
	ck_assert_str_eq(p.v[0].where, PAR_TEST_DATA);
	manifest_problems_free(&p);
}
END_TEST

START_TEST(test_size_limit)
{
	size_t big = 1024 * 1024 + 1;
	char *yaml = malloc(big);
	struct par_manifest m;
	struct manifest_problems p = { 0 };

	ck_assert_ptr_nonnull(yaml);
	memset(yaml, '#', big);
	memcpy(yaml, NV, strlen(NV));
	yaml[big - 1] = '\n';
	ck_assert_int_eq(manifest_load_buffer(yaml, big, &m, &p), -1);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_msg(strstr(p.v[0].rule, "1 MiB"), "%s", dump(&p));
	manifest_problems_free(&p);
	/* Exactly 1 MiB (a valid document and a long comment) is accepted. */
	ck_assert_int_eq(manifest_load_buffer(yaml, big - 1, &m, &p), 0);
	manifest_free(&m);

	char dir[] = "/tmp/test_manifest.XXXXXX", path[64];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/agent.yaml", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(yaml, 1, big, f), big);
	fclose(f);
	ck_assert_int_eq(manifest_load_dir(dir, &m, &p), -1);
	ck_assert_uint_eq(p.n, 1);
	ck_assert_str_eq(p.v[0].where, path);
	manifest_problems_free(&p);
	/* The same file cut to a valid size loads from disk. */
	ck_assert_int_eq(truncate(path, (off_t)strlen(NV)), 0);
	ck_assert_int_eq(manifest_load_dir(dir, &m, &p), 0);
	ck_assert_str_eq(m.name, "a");
	manifest_free(&m);
	unlink(path);
	rmdir(dir);
	free(yaml);
}
END_TEST

START_TEST(test_fuzz_prefixes)
{
	/* Every prefix of a rich document must load or fail cleanly (ASan/LSan watch this). */
	FILE *f = fopen(PIXELL_DIR "/agent.yaml", "r");
	char buf[4096];
	struct par_manifest m;
	struct manifest_problems p = { 0 };

	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	for (size_t len = 0; len <= n; len++) {
		if (manifest_load_buffer(buf, len, &m, &p) == 0) {
			ck_assert_ptr_nonnull(m.json);
			manifest_free(&m);
		} else {
			ck_assert_uint_gt(p.n, 0);
			ck_assert_ptr_null(m.json);
		}
		manifest_problems_free(&p);
	}
}
END_TEST

START_TEST(test_runtime_names)
{
	ck_assert_str_eq(manifest_runtime_name(PAR_RUNTIME_NATIVE), "native");
	ck_assert_str_eq(manifest_runtime_name(PAR_RUNTIME_EXEC), "exec");
	ck_assert_str_eq(manifest_runtime_name(PAR_RUNTIME_PYTHON), "python");
	ck_assert_str_eq(manifest_runtime_name((enum par_runtime)42), "unknown");
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *make_suite(void)
{
	Suite *s = suite_create("manifest");
	TCase *tc = tcase_create("manifest");

	tcase_add_test(tc, test_pixell_full);
	tcase_add_loop_test(tc, test_runtime_forms, 0, N(runtime_cases));
	tcase_add_test(tc, test_exec_command_env);
	tcase_add_loop_test(tc, test_bad_values, 0, N(bad_cases));
	tcase_add_test(tc, test_where_has_line_and_column);
	tcase_add_test(tc, test_many_problems_at_once);
	tcase_add_test(tc, test_problem_cap);
	tcase_add_test(tc, test_problems_are_appended);
	tcase_add_test(tc, test_null_problem_list);
	tcase_add_loop_test(tc, test_whole_file_problems, 0, N(whole_file_cases));
	tcase_add_test(tc, test_syntax_error_position);
	tcase_add_test(tc, test_billion_laughs);
	tcase_add_test(tc, test_duplicate_keys);
	tcase_add_test(tc, test_duplicate_keys_large_mapping);
	tcase_add_test(tc, test_non_scalar_key);
	tcase_add_test(tc, test_nesting_limit);
	tcase_add_test(tc, test_unknown_keys_kept);
	tcase_add_test(tc, test_name_rules);
	tcase_add_test(tc, test_quoted_scalars);
	tcase_add_test(tc, test_rest_only);
	tcase_add_test(tc, test_empty_surfaces);
	tcase_add_test(tc, test_demo_agent);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_size_limit);
	tcase_add_test(tc, test_fuzz_prefixes);
	tcase_add_test(tc, test_runtime_names);
	suite_add_tcase(s, tc);
	return s;
}
