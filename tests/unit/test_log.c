/* Unit tests of the leaf modules under every log line: strbuf/JSON escaping, redaction,
 * the log line itself, timestamps, SHA-256, time helpers and the exit-code table. */
#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "par/exitcodes.h"
#include "par/hash.h"
#include "par/log.h"
#include "par/redact.h"
#include "par/strbuf.h"
#include "par/timeutil.h"

/* ---- helpers ------------------------------------------------------------------------- */

static int cap_rd = -1, cap_wr = -1;

/* Routes log output into a pipe; tests read it back with cap_read(). */
static void cap_start(void)
{
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	cap_rd = p[0];
	cap_wr = p[1];
	log_set_fd(cap_wr);
}

/* Everything written so far (malloc'd, NUL-terminated). */
static char *cap_read(void)
{
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	ssize_t n;

	while ((n = read(cap_rd, buf, sizeof(buf))) > 0)
		sb_append(&sb, buf, (size_t)n);
	ck_assert(n == 0 || errno == EAGAIN);
	return sb_steal(&sb);
}

static void cap_stop(void)
{
	log_set_fd(1);
	if (cap_rd >= 0)
		close(cap_rd);
	if (cap_wr >= 0)
		close(cap_wr);
	cap_rd = cap_wr = -1;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		if (*s == '\n')
			n++;
	return n;
}

/* Parses a single captured JSON line strictly: exactly one object, then '\n', then end. */
static cJSON *parse_one_line(const char *out)
{
	const char *nl = strchr(out, '\n');
	char *line;
	cJSON *j;

	ck_assert_msg(nl != NULL, "no newline in %s", out);
	ck_assert_msg(nl[1] == '\0', "more than one line: %s", out);
	line = strndup(out, (size_t)(nl - out));
	j = cJSON_ParseWithOpts(line, NULL, 1);
	ck_assert_msg(j != NULL, "not JSON: %s", line);
	ck_assert(cJSON_IsObject(j));
	free(line);
	return j;
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	ck_assert_msg(cJSON_IsString(v), "%s is not a string", key);
	return v->valuestring;
}

static int key_count(const cJSON *o, const char *key)
{
	const cJSON *c;
	int n = 0;

	cJSON_ArrayForEach(c, o)
		if (strcmp(c->string, key) == 0)
			n++;
	return n;
}

static char *json_of(const char *s, size_t n)
{
	struct strbuf sb = STRBUF_INIT;

	sb_json_strn(&sb, s, n);
	ck_assert(!sb.oom);
	return sb_steal(&sb);
}

static void setup(void)
{
	log_init();
	log_set_identity(NULL, NULL);
	log_set_request_id(NULL);
	log_set_observer(NULL, NULL);
}

static void teardown(void)
{
	cap_stop();
	log_set_identity(NULL, NULL);
	log_set_request_id(NULL);
	log_set_observer(NULL, NULL);
}

/* ---- strbuf ---------------------------------------------------------------------------- */

START_TEST(test_sb_basics)
{
	struct strbuf sb = STRBUF_INIT;
	char *s;
	int i;

	sb_puts(&sb, "ab");
	sb_putc(&sb, 'c');
	sb_append(&sb, "dexx", 2);
	sb_printf(&sb, "-%d-%s", 42, "z");
	ck_assert_str_eq(sb.buf, "abcde-42-z");
	ck_assert_uint_eq(sb.len, 10);
	/* Growth across many reallocations keeps every byte. */
	for (i = 0; i < 1000; i++)
		sb_printf(&sb, "%04d", i);
	ck_assert_uint_eq(sb.len, 10 + 4000);
	ck_assert(strncmp(sb.buf + 10 + 4 * 999, "0999", 4) == 0);
	sb_reset(&sb);
	ck_assert_uint_eq(sb.len, 0);
	ck_assert_str_eq(sb.buf, "");
	sb_puts(&sb, "kept");
	s = sb_steal(&sb);
	ck_assert_str_eq(s, "kept");
	ck_assert_ptr_null(sb.buf);
	ck_assert_uint_eq(sb.len, 0);
	free(s);
	s = sb_steal(&sb);	/* empty buffer still yields a string */
	ck_assert_str_eq(s, "");
	free(s);
	sb_free(&sb);
}
END_TEST

START_TEST(test_json_quotes_backslash)
{
	char *s = json_of("a\"b\\c/d", 7);

	ck_assert_str_eq(s, "\"a\\\"b\\\\c/d\"");
	free(s);
}
END_TEST

START_TEST(test_json_every_control_char)
{
	unsigned c;

	for (c = 0; c < 0x20; c++) {
		char in[3] = {'x', (char)c, 'y'};
		char want[16];
		char *s = json_of(in, 3);
		cJSON *j;

		switch (c) {
		case '\n': snprintf(want, sizeof(want), "\"x\\ny\""); break;
		case '\r': snprintf(want, sizeof(want), "\"x\\ry\""); break;
		case '\t': snprintf(want, sizeof(want), "\"x\\ty\""); break;
		case '\b': snprintf(want, sizeof(want), "\"x\\by\""); break;
		case '\f': snprintf(want, sizeof(want), "\"x\\fy\""); break;
		default: snprintf(want, sizeof(want), "\"x\\u%04xy\"", c); break;
		}
		ck_assert_msg(strcmp(s, want) == 0, "char 0x%02x: got %s want %s", c, s, want);
		j = cJSON_ParseWithOpts(s, NULL, 1);
		ck_assert_msg(j != NULL, "char 0x%02x: invalid JSON %s", c, s);
		if (c != 0) /* cJSON strings stop at NUL */
			ck_assert(memcmp(j->valuestring, in, 3) == 0);
		cJSON_Delete(j);
		free(s);
	}
}
END_TEST

START_TEST(test_json_null)
{
	struct strbuf sb = STRBUF_INIT;

	sb_json_str(&sb, NULL);
	sb_putc(&sb, ',');
	sb_json_strn(&sb, NULL, 5);
	sb_putc(&sb, ',');
	sb_json_str(&sb, "");
	ck_assert_str_eq(sb.buf, "null,null,\"\"");
	sb_free(&sb);
}
END_TEST

#define FFFD "\xEF\xBF\xBD"

static const struct {
	const char *in;
	const char *want;	/* without the quotes */
} utf8_cases[] = {
	/* valid multi-byte sequences are kept byte for byte */
	{"caf\xC3\xA9", "caf\xC3\xA9"},
	{"\xE2\x82\xAC", "\xE2\x82\xAC"},
	{"\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"},
	{"\xED\x9F\xBF", "\xED\x9F\xBF"},		/* U+D7FF, last before surrogates */
	{"\xEE\x80\x80", "\xEE\x80\x80"},		/* U+E000, first after */
	{"\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF"},	/* U+10FFFF */
	{"\xE2\x80\xA8", "\xE2\x80\xA8"},		/* U+2028 is legal in JSON */
	/* invalid: one U+FFFD per byte */
	{"\x80", FFFD},
	{"a\xBF" "b", "a" FFFD "b"},
	{"\xC0\xAF", FFFD FFFD},			/* overlong '/' */
	{"\xC1\xBF", FFFD FFFD},
	{"\xE0\x80\xAF", FFFD FFFD FFFD},		/* overlong 3-byte */
	{"\xF0\x80\x80\xAF", FFFD FFFD FFFD FFFD},	/* overlong 4-byte */
	{"\xED\xA0\x80", FFFD FFFD FFFD},		/* U+D800 */
	{"\xED\xBF\xBF", FFFD FFFD FFFD},		/* U+DFFF */
	{"\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD},	/* U+110000 */
	{"\xF5\x80\x80\x80", FFFD FFFD FFFD FFFD},
	{"\xFE\xFF", FFFD FFFD},
	{"\xE2\x82", FFFD FFFD},			/* truncated at end */
	{"x\xE2\x82y", "x" FFFD FFFD "y"},		/* truncated mid-string */
	{"\xF0\x9F\x98", FFFD FFFD FFFD},
	{"\xC3" "A", FFFD "A"},				/* lead byte followed by ASCII */
	{"\xC3\xA9\xA9", "\xC3\xA9" FFFD},		/* stray continuation after valid */
};

START_TEST(test_json_utf8)
{
	size_t i;

	for (i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
		char *s = json_of(utf8_cases[i].in, strlen(utf8_cases[i].in));
		char *want = malloc(strlen(utf8_cases[i].want) + 3);
		cJSON *j;

		sprintf(want, "\"%s\"", utf8_cases[i].want);
		ck_assert_msg(strcmp(s, want) == 0, "case %zu: got %s want %s", i, s, want);
		j = cJSON_ParseWithOpts(s, NULL, 1);
		ck_assert_msg(j != NULL && cJSON_IsString(j), "case %zu: invalid JSON", i);
		cJSON_Delete(j);
		free(want);
		free(s);
	}
}
END_TEST

/* ---- redaction ------------------------------------------------------------------------- */

static const struct {
	const char *in, *want;
} url_cases[] = {
	{"https://user:pass@example.com/path?x=1#frag", "https://example.com/path"},
	{"https://bucket.s3.us-east-1.amazonaws.com/pkgs/agent-1.2.apkg"
	 "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261127%2Fus-east-1"
	 "%2Fs3%2Faws4_request&X-Amz-Date=20261127T150405Z&X-Amz-Expires=3600"
	 "&X-Amz-Security-Token=FQoGZXIvYXdz&X-Amz-Signature=0123456789abcdef",
	 "https://bucket.s3.us-east-1.amazonaws.com/pkgs/agent-1.2.apkg"},
	{"HTTPS://tok@h:8443/a/b", "HTTPS://h:8443/a/b"},
	{"https://h?secret=1", "https://h"},
	{"https://h#x", "https://h"},
	{"https://u:p@h", "https://h"},
	{"https://h/a@b", "https://h/a@b"},		/* '@' in the path is not userinfo */
	{"https://a@b@h/k", "https://h/k"},
	{"s3://bucket/key.apkg", "s3://bucket/key.apkg"},
	{"file:///var/cache/p.apkg", "file:///var/cache/p.apkg"},
	{"plain?token=abc", "plain"},
	{"/local/path#frag", "/local/path"},
	{"not a url", "not a url"},
	{"", ""},
};

START_TEST(test_redact_url)
{
	size_t i;

	for (i = 0; i < sizeof(url_cases) / sizeof(url_cases[0]); i++) {
		char *s = redact_url(url_cases[i].in);

		ck_assert_ptr_nonnull(s);
		ck_assert_msg(strcmp(s, url_cases[i].want) == 0, "case %zu: got %s want %s", i, s,
			      url_cases[i].want);
		free(s);
	}
}
END_TEST

START_TEST(test_redact_secret_names)
{
	static const char *const yes[] = {
		"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "aws_access_key_id",
		"Authorization", "AUTHORIZATION", "Proxy-Authorization", "DB_PASSWORD", "GITHUB_TOKEN",
		"Cookie", "client_secret", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "x-session-id",
	};
	static const char *const no[] = {
		"PATH", "HOME", "PACKAGE_URL", "PACKAGE_SHA256", "AWS_REGION", "AWS_ACCESS_KEY",
		"LOG_LEVEL", "PASSWD_FILE_X", "", NULL,
	};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		ck_assert_msg(redact_is_secret_name(yes[i]), "%s should be secret", yes[i]);
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ck_assert_msg(!redact_is_secret_name(no[i]), "%s should not be secret",
			      no[i] ? no[i] : "(null)");
}
END_TEST

START_TEST(test_redact_value)
{
	char *s;

	s = redact_value("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI");
	ck_assert_str_eq(s, REDACTED);
	free(s);
	s = redact_value("Authorization", "https://looks-like-url");
	ck_assert_str_eq(s, REDACTED);
	free(s);
	s = redact_value("PACKAGE_URL", "https://u:p@b.s3.amazonaws.com/k?X-Amz-Signature=abc");
	ck_assert_str_eq(s, "https://b.s3.amazonaws.com/k");
	free(s);
	s = redact_value("LOG_LEVEL", "debug");
	ck_assert_str_eq(s, "debug");
	free(s);
	/* Only URLs lose their query; a plain value with '?' is shown as is. */
	s = redact_value("GREETING", "why?");
	ck_assert_str_eq(s, "why?");
	free(s);
}
END_TEST

/* ---- log lines ------------------------------------------------------------------------- */

static int is_rfc3339_ms(const char *s)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	size_t i;

	if (strlen(s) != sizeof(pat) - 1)
		return 0;
	for (i = 0; pat[i]; i++)
		if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
			return 0;
	return 1;
}

START_TEST(test_log_shape)
{
	static const char *const order[] = {
		"timestamp", "level", "event", "msg", "agentAppId", "deploymentId", "phase", "durationMs",
	};
	const cJSON *c;
	cJSON *j;
	char *out;
	size_t i = 0;

	cap_start();
	log_emit(PAR_LOG_INFO, "boot.phase.done", LOG_FIELDS(LF_STR("phase", "fetch"),
							     LF_INT("durationMs", 12)),
		 "phase %s took %d ms", "fetch", 12);
	out = cap_read();
	j = parse_one_line(out);
	cJSON_ArrayForEach(c, j) {
		ck_assert_msg(i < sizeof(order) / sizeof(order[0]), "extra key %s", c->string);
		ck_assert_str_eq(c->string, order[i]);
		i++;
	}
	ck_assert_uint_eq(i, sizeof(order) / sizeof(order[0]));
	ck_assert_msg(is_rfc3339_ms(jstr(j, "timestamp")), "bad timestamp %s", jstr(j, "timestamp"));
	ck_assert_str_eq(jstr(j, "level"), "info");
	ck_assert_str_eq(jstr(j, "event"), "boot.phase.done");
	ck_assert_str_eq(jstr(j, "msg"), "phase fetch took 12 ms");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "agentAppId")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "deploymentId")));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(j, "requestId"));
	ck_assert_str_eq(jstr(j, "phase"), "fetch");
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(j, "durationMs")->valueint, 12);
	cJSON_Delete(j);
	free(out);
}
END_TEST

START_TEST(test_log_levels)
{
	cJSON *j;
	char *out;

	ck_assert_int_eq(log_get_level(), PAR_LOG_INFO);
	cap_start();
	log_debug("t.debug", "hidden at info");
	out = cap_read();
	ck_assert_str_eq(out, "");
	free(out);

	log_set_level(PAR_LOG_WARN);
	ck_assert_int_eq(log_get_level(), PAR_LOG_WARN);
	log_debug("t.debug", "no");
	log_info("t.info", "no");
	out = cap_read();
	ck_assert_str_eq(out, "");
	free(out);
	log_warn("t.warn", "yes");
	out = cap_read();
	j = parse_one_line(out);
	ck_assert_str_eq(jstr(j, "level"), "warn");
	cJSON_Delete(j);
	free(out);
	log_error("t.error", "yes");
	out = cap_read();
	j = parse_one_line(out);
	ck_assert_str_eq(jstr(j, "level"), "error");
	cJSON_Delete(j);
	free(out);

	log_set_level(PAR_LOG_DEBUG);
	log_debug("t.debug", "now shown");
	out = cap_read();
	j = parse_one_line(out);
	ck_assert_str_eq(jstr(j, "level"), "debug");
	ck_assert_str_eq(jstr(j, "msg"), "now shown");
	cJSON_Delete(j);
	free(out);
}
END_TEST

START_TEST(test_log_parse_names)
{
	enum par_log_level l = PAR_LOG_INFO;
	enum par_log_format f = PAR_LOG_JSON;

	ck_assert_int_eq(log_parse_level("DEBUG", &l), 0);
	ck_assert_int_eq(l, PAR_LOG_DEBUG);
	ck_assert_int_eq(log_parse_level("Warning", &l), 0);
	ck_assert_int_eq(l, PAR_LOG_WARN);
	ck_assert_int_eq(log_parse_level("warn", &l), 0);
	ck_assert_int_eq(l, PAR_LOG_WARN);
	ck_assert_int_eq(log_parse_level("error", &l), 0);
	ck_assert_int_eq(l, PAR_LOG_ERROR);
	ck_assert_int_eq(log_parse_level("Info", &l), 0);
	ck_assert_int_eq(l, PAR_LOG_INFO);
	ck_assert_int_eq(log_parse_level("verbose", &l), -1);
	ck_assert_int_eq(log_parse_level("", &l), -1);
	ck_assert_int_eq(log_parse_level(NULL, &l), -1);
	ck_assert_int_eq(l, PAR_LOG_INFO);
	ck_assert_int_eq(log_parse_format("TEXT", &f), 0);
	ck_assert_int_eq(f, PAR_LOG_TEXT);
	ck_assert_int_eq(log_parse_format("json", &f), 0);
	ck_assert_int_eq(f, PAR_LOG_JSON);
	ck_assert_int_eq(log_parse_format("yaml", &f), -1);
	ck_assert_str_eq(log_level_name(PAR_LOG_DEBUG), "debug");
	ck_assert_str_eq(log_level_name(PAR_LOG_INFO), "info");
	ck_assert_str_eq(log_level_name(PAR_LOG_WARN), "warn");
	ck_assert_str_eq(log_level_name(PAR_LOG_ERROR), "error");
}
END_TEST

START_TEST(test_log_identity)
{
	cJSON *j;
	char *out;

	cap_start();
	log_set_identity("app-1", "dep-\"2\"");
	log_info("t.id", "x");
	out = cap_read();
	j = parse_one_line(out);
	ck_assert_str_eq(jstr(j, "agentAppId"), "app-1");
	ck_assert_str_eq(jstr(j, "deploymentId"), "dep-\"2\"");
	cJSON_Delete(j);
	free(out);

	log_set_identity("app-1", NULL);
	log_info("t.id", "x");
	out = cap_read();
	j = parse_one_line(out);
	ck_assert_str_eq(jstr(j, "agentAppId"), "app-1");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "deploymentId")));
	cJSON_Delete(j);
	free(out);
}
END_TEST

struct rid_result {
	char before[64];	/* requestId seen by the new thread before it sets one */
	char line[512];
};

static void *rid_thread(void *arg)
{
	struct rid_result *r = arg;
	const char *rid = log_get_request_id();
	char *out;

	snprintf(r->before, sizeof(r->before), "%s", rid ? rid : "(none)");
	log_set_request_id("req-thread");
	log_info("t.rid", "from thread");
	out = cap_read();
	snprintf(r->line, sizeof(r->line), "%s", out);
	free(out);
	return NULL;
}

START_TEST(test_log_request_id)
{
	struct rid_result r;
	pthread_t th;
	cJSON *j;
	char *out;

	cap_start();
	memset(&r, 0, sizeof(r));
	log_set_request_id("req-main");
	ck_assert_str_eq(log_get_request_id(), "req-main");
	ck_assert_int_eq(pthread_create(&th, NULL, rid_thread, &r), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_str_eq(r.before, "(none)");
	j = parse_one_line(r.line);
	ck_assert_str_eq(jstr(j, "requestId"), "req-thread");
	cJSON_Delete(j);

	/* The other thread's id did not leak into this one. */
	ck_assert_str_eq(log_get_request_id(), "req-main");
	log_info("t.rid", "from main");
	out = cap_read();
	j = parse_one_line(out);
	ck_assert_str_eq(jstr(j, "requestId"), "req-main");
	cJSON_Delete(j);
	free(out);

	/* Placed right after deploymentId, before the caller's fields. */
	log_emit(PAR_LOG_INFO, "t.rid", LOG_FIELDS(LF_INT("n", 1)), "x");
	out = cap_read();
	ck_assert_ptr_nonnull(strstr(out, "\"deploymentId\":null,\"requestId\":\"req-main\",\"n\":1}"));
	free(out);

	log_set_request_id(NULL);
	ck_assert_ptr_null(log_get_request_id());
	log_info("t.rid", "cleared");
	out = cap_read();
	j = parse_one_line(out);
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(j, "requestId"));
	cJSON_Delete(j);
	free(out);
}
END_TEST

START_TEST(test_log_field_types)
{
	const cJSON *v;
	cJSON *j;
	char *out;

	cap_start();
	log_emit(PAR_LOG_INFO, "t.types",
		 LOG_FIELDS(LF_STR("s", "a\tb"), LF_STR("snull", NULL), LF_INT("i", -42),
			    LF_INT("imin", INT64_MIN), LF_UINT("u", UINT64_MAX), LF_DBL("d", 1.5),
			    LF_DBL("nan", NAN), LF_DBL("inf", INFINITY), LF_BOOL("t", true),
			    LF_BOOL("f", false), LF_JSON("obj", "{\"a\":[1,2]}"),
			    LF_JSON("multi", "{\n  \"b\": true\n}"), LF_JSON("rnull", NULL)),
		 "types");
	out = cap_read();
	j = parse_one_line(out);
	ck_assert_str_eq(jstr(j, "s"), "a\tb");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "snull")));
	v = cJSON_GetObjectItemCaseSensitive(j, "i");
	ck_assert(cJSON_IsNumber(v));
	ck_assert_int_eq(v->valueint, -42);
	ck_assert_ptr_nonnull(strstr(out, "\"imin\":-9223372036854775808,"));
	ck_assert_ptr_nonnull(strstr(out, "\"u\":18446744073709551615,"));
	v = cJSON_GetObjectItemCaseSensitive(j, "d");
	ck_assert(cJSON_IsNumber(v));
	ck_assert_double_eq(v->valuedouble, 1.5);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "nan")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "inf")));
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "t")));
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "f")));
	v = cJSON_GetObjectItemCaseSensitive(j, "obj");
	ck_assert(cJSON_IsObject(v));
	v = cJSON_GetObjectItemCaseSensitive(v, "a");
	ck_assert(cJSON_IsArray(v));
	ck_assert_int_eq(cJSON_GetArraySize(v), 2);
	v = cJSON_GetObjectItemCaseSensitive(j, "multi");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "b")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "rnull")));
	cJSON_Delete(j);
	free(out);
}
END_TEST

START_TEST(test_log_duplicate_keys)
{
	cJSON *j;
	char *out;

	cap_start();
	log_emit(PAR_LOG_INFO, "t.dup",
		 LOG_FIELDS(LF_STR("msg", "evil"), LF_STR("level", "error"),
			    LF_STR("timestamp", "x"), LF_STR("event", "y"), LF_STR("agentAppId", "z"),
			    LF_STR("deploymentId", "w"), LF_STR("keep", "yes")),
		 "real");
	out = cap_read();
	j = parse_one_line(out);
	ck_assert_int_eq(key_count(j, "msg"), 1);
	ck_assert_int_eq(key_count(j, "level"), 1);
	ck_assert_int_eq(key_count(j, "timestamp"), 1);
	ck_assert_int_eq(key_count(j, "event"), 1);
	ck_assert_int_eq(key_count(j, "agentAppId"), 1);
	ck_assert_int_eq(key_count(j, "deploymentId"), 1);
	ck_assert_str_eq(jstr(j, "msg"), "real");
	ck_assert_str_eq(jstr(j, "level"), "info");
	ck_assert_str_eq(jstr(j, "event"), "t.dup");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "agentAppId")));
	ck_assert_str_eq(jstr(j, "keep"), "yes");
	cJSON_Delete(j);
	free(out);

	/* requestId is fixed on lines that carry the thread's id. */
	log_set_request_id("req-1");
	log_emit(PAR_LOG_INFO, "t.dup", LOG_FIELDS(LF_STR("requestId", "other")), "x");
	out = cap_read();
	j = parse_one_line(out);
	ck_assert_int_eq(key_count(j, "requestId"), 1);
	ck_assert_str_eq(jstr(j, "requestId"), "req-1");
	cJSON_Delete(j);
	free(out);
}
END_TEST

START_TEST(test_log_msg_escaping)
{
	cJSON *j;
	char *out;

	cap_start();
	log_info("t.esc", "line1\nline2 \"q\" \\ bad:%s", "\xC3\x28");
	out = cap_read();
	ck_assert_int_eq(count_lines(out), 1);
	j = parse_one_line(out);
	ck_assert_str_eq(jstr(j, "msg"), "line1\nline2 \"q\" \\ bad:" FFFD "(");
	cJSON_Delete(j);
	free(out);
	/* A long message takes the growth path, not truncation. */
	{
		char big[20000];

		memset(big, 'm', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		log_info("t.big", "%s", big);
		out = cap_read();
		j = parse_one_line(out);
		ck_assert_str_eq(jstr(j, "msg"), big);
		cJSON_Delete(j);
		free(out);
	}
}
END_TEST

START_TEST(test_log_text_format)
{
	char *out;

	cap_start();
	log_set_format(PAR_LOG_TEXT);
	log_emit(PAR_LOG_INFO, "boot.start",
		 LOG_FIELDS(LF_STR("key", "value"), LF_STR("key2", "quoted value"), LF_INT("n", 5),
			    LF_BOOL("ok", true), LF_STR("msg", "dropped")),
		 "hello %s", "world");
	out = cap_read();
	ck_assert_int_eq(count_lines(out), 1);
	ck_assert_msg(strlen(out) > 25 && out[24] == ' ', "bad line %s", out);
	out[24] = '\0';
	ck_assert_msg(is_rfc3339_ms(out), "bad timestamp %s", out);
	ck_assert_str_eq(out + 25,
			 "INFO  boot.start: hello world key=value key2=\"quoted value\" n=5 ok=true\n");
	free(out);

	log_set_identity("app", NULL);
	log_set_request_id("r1");
	log_emit(PAR_LOG_ERROR, "x.y", LOG_FIELDS(LF_STR("e", "")), "two\nlines");
	out = cap_read();
	ck_assert_int_eq(count_lines(out), 1);
	ck_assert_str_eq(out + 25, "ERROR x.y: two\\nlines agentAppId=app requestId=r1 e=\"\"\n");
	free(out);
}
END_TEST

struct obs_rec {
	int calls;
	char last[1024];
	size_t last_len;
};

static void obs_cb(const char *line, size_t len, void *ctx)
{
	struct obs_rec *r = ctx;

	r->calls++;
	r->last_len = len;
	snprintf(r->last, sizeof(r->last), "%.*s", (int)len, line);
}

START_TEST(test_log_observer)
{
	struct obs_rec r;
	cJSON *j;
	char *out;

	memset(&r, 0, sizeof(r));
	cap_start();
	log_set_observer(obs_cb, &r);
	log_info("t.obs", "one");
	out = cap_read();
	ck_assert_int_eq(r.calls, 1);
	/* The observer sees the written line without its newline. */
	ck_assert_uint_eq(r.last_len + 1, strlen(out));
	ck_assert(strncmp(out, r.last, r.last_len) == 0);
	free(out);

	/* In text mode the observer still gets JSON. */
	log_set_format(PAR_LOG_TEXT);
	log_warn("t.obs", "two");
	out = cap_read();
	ck_assert(out[0] != '{');
	free(out);
	ck_assert_int_eq(r.calls, 2);
	ck_assert(strchr(r.last, '\n') == NULL);
	j = cJSON_ParseWithOpts(r.last, NULL, 1);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(jstr(j, "msg"), "two");
	ck_assert_str_eq(jstr(j, "level"), "warn");
	cJSON_Delete(j);

	/* Filtered lines do not reach it; after removal nothing does. */
	log_debug("t.obs", "filtered");
	ck_assert_int_eq(r.calls, 2);
	log_set_observer(NULL, NULL);
	log_info("t.obs", "three");
	ck_assert_int_eq(r.calls, 2);
}
END_TEST

#define TH_N 4
#define TH_LINES 300

static void *spam_thread(void *arg)
{
	int id = (int)(intptr_t)arg, i;
	char rid[16];

	snprintf(rid, sizeof(rid), "r%d", id);
	log_set_request_id(rid);
	for (i = 0; i < TH_LINES; i++)
		log_emit(PAR_LOG_INFO, "t.spam", LOG_FIELDS(LF_INT("t", id), LF_INT("i", i)),
			 "thread %d line %d padding padding padding padding", id, i);
	return NULL;
}

START_TEST(test_log_threads_no_interleave)
{
	pthread_t th[TH_N];
	int next[TH_N] = {0}, lines = 0, i;
	FILE *f = tmpfile();
	char line[1024];

	ck_assert_ptr_nonnull(f);
	log_set_fd(fileno(f));
	for (i = 0; i < TH_N; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, spam_thread, (void *)(intptr_t)i), 0);
	for (i = 0; i < TH_N; i++)
		pthread_join(th[i], NULL);
	log_set_fd(1);
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		cJSON *j;
		int t, n;
		char want[16];

		line[strcspn(line, "\n")] = '\0';
		j = cJSON_ParseWithOpts(line, NULL, 1);
		ck_assert_msg(j != NULL, "interleaved line: %s", line);
		t = cJSON_GetObjectItemCaseSensitive(j, "t")->valueint;
		n = cJSON_GetObjectItemCaseSensitive(j, "i")->valueint;
		ck_assert(t >= 0 && t < TH_N);
		ck_assert_int_eq(n, next[t]);	/* per-thread order is kept */
		next[t]++;
		snprintf(want, sizeof(want), "r%d", t);
		ck_assert_str_eq(jstr(j, "requestId"), want);
		cJSON_Delete(j);
		lines++;
	}
	ck_assert_int_eq(lines, TH_N * TH_LINES);
	fclose(f);
}
END_TEST

/* ---- timestamps, clocks, hashes, exit codes ------------------------------------------ */

START_TEST(test_timestamp_format)
{
	char buf[32], small[8];

	log_format_timestamp(1795791845123LL, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2026-11-27T15:04:05.123Z");
	log_format_timestamp(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
	log_format_timestamp(1709210096007LL, buf, sizeof(buf));	/* leap day */
	ck_assert_str_eq(buf, "2024-02-29T12:34:56.007Z");
	log_format_timestamp(-1, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1969-12-31T23:59:59.999Z");
	memset(small, 'X', sizeof(small));
	log_format_timestamp(0, small, sizeof(small));
	ck_assert_str_eq(small, "1970-01");
}
END_TEST

START_TEST(test_timeutil)
{
	struct timespec ts;
	int64_t a, b;

	ts = time_ms_to_timespec(1500);
	ck_assert_int_eq(ts.tv_sec, 1);
	ck_assert_int_eq(ts.tv_nsec, 500000000L);
	ts = time_ms_to_timespec(-1);
	ck_assert_int_eq(ts.tv_sec, -1);
	ck_assert_int_eq(ts.tv_nsec, 999000000L);
	a = time_mono_ms();
	usleep(20000);
	b = time_mono_ms();
	ck_assert_int_ge(b - a, 15);
	ck_assert_int_ge(time_mono_us(), b * 1000);
	ck_assert_int_gt(time_epoch_ms(), 1700000000000LL);
}
END_TEST

START_TEST(test_sha256)
{
	struct sha256_ctx *c;
	char hex[65];

	sha256_hex("abc", 3, hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha256_hex("", 0, hex);
	ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	c = sha256_new();
	ck_assert_ptr_nonnull(c);
	sha256_update(c, "a", 1);
	sha256_update(c, "", 0);
	sha256_update(c, "bc", 2);
	sha256_final_hex(c, hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(test_exit_codes)
{
	const struct par_exit_row *r;
	int prev = -1, n = 0;

	ck_assert_str_eq(par_exit_name(0), "ok");
	ck_assert_str_eq(par_exit_name(2), "usage");
	ck_assert_str_eq(par_exit_name(10), "config");
	ck_assert_str_eq(par_exit_name(11), "fetch");
	ck_assert_str_eq(par_exit_name(12), "load");
	ck_assert_str_eq(par_exit_name(13), "bind");
	ck_assert_str_eq(par_exit_name(14), "budget");
	ck_assert_str_eq(par_exit_name(15), "internal");
	ck_assert_str_eq(par_exit_name(1), "unknown");
	ck_assert_str_eq(par_exit_name(-1), "unknown");
	ck_assert_str_eq(par_exit_name(16), "unknown");
	for (r = par_exit_table; r->name; r++, n++) {
		ck_assert_int_gt(r->code, prev);
		ck_assert(r->meaning && r->meaning[0]);
		ck_assert_str_eq(par_exit_name(r->code), r->name);
		prev = r->code;
	}
	ck_assert_int_eq(n, 8);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc;

	tc = tcase_create("strbuf");
	tcase_add_test(tc, test_sb_basics);
	tcase_add_test(tc, test_json_quotes_backslash);
	tcase_add_test(tc, test_json_every_control_char);
	tcase_add_test(tc, test_json_null);
	tcase_add_test(tc, test_json_utf8);
	suite_add_tcase(s, tc);

	tc = tcase_create("redact");
	tcase_add_test(tc, test_redact_url);
	tcase_add_test(tc, test_redact_secret_names);
	tcase_add_test(tc, test_redact_value);
	suite_add_tcase(s, tc);

	tc = tcase_create("log");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_log_shape);
	tcase_add_test(tc, test_log_levels);
	tcase_add_test(tc, test_log_parse_names);
	tcase_add_test(tc, test_log_identity);
	tcase_add_test(tc, test_log_request_id);
	tcase_add_test(tc, test_log_field_types);
	tcase_add_test(tc, test_log_duplicate_keys);
	tcase_add_test(tc, test_log_msg_escaping);
	tcase_add_test(tc, test_log_text_format);
	tcase_add_test(tc, test_log_observer);
	tcase_add_test(tc, test_log_threads_no_interleave);
	suite_add_tcase(s, tc);

	tc = tcase_create("misc");
	tcase_add_test(tc, test_timestamp_format);
	tcase_add_test(tc, test_timeutil);
	tcase_add_test(tc, test_sha256);
	tcase_add_test(tc, test_exit_codes);
	suite_add_tcase(s, tc);
	return s;
}
