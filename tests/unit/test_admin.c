/* Unit tests for the admin protocol (par/admin.h): request parsing, versions, sizes, the
 * encoders and the client-side parser, the verb and fault tables, socket path candidates
 * and the line reader. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "par/admin.h"

static int parse(const char *line, struct admin_request *req, const char **code)
{
	char msg[256];
	return admin_request_parse(line, strlen(line), req, code, msg, sizeof msg);
}

START_TEST(parse_valid_request)
{
	struct admin_request req;
	const char *code = NULL;
	ck_assert_int_eq(parse("{\"v\":1,\"id\":7,\"cmd\":\"show boot\",\"args\":{}}", &req,
			       &code), 0);
	ck_assert_int_eq(req.v, 1);
	ck_assert_str_eq(req.cmd, "show boot");
	ck_assert(cJSON_IsNumber(req.id));
	ck_assert_int_eq((int)req.id->valuedouble, 7);
	ck_assert(cJSON_IsObject(req.args));
	admin_request_free(&req);

	/* args may be absent; id may be a string; trailing whitespace and \r are fine. */
	ck_assert_int_eq(parse("{\"v\":1,\"id\":\"a\",\"cmd\":\"ping\"} \r", &req, &code), 0);
	ck_assert(cJSON_IsString(req.id));
	ck_assert_ptr_nonnull(req.args);
	ck_assert_int_eq(cJSON_GetArraySize(req.args), 0);
	admin_request_free(&req);

	ck_assert_int_eq(parse("{\"v\":1,\"cmd\":\"drain\",\"args\":{\"no_exit\":true}}", &req,
			       &code), 0);
	ck_assert_ptr_null(req.id);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(req.args, "no_exit")));
	admin_request_free(&req);
}
END_TEST

START_TEST(parse_invalid_requests)
{
	static const struct {
		const char *line;
		const char *code;
	} cases[] = {
		{"", ADMIN_E_MALFORMED},
		{"not json", ADMIN_E_MALFORMED},
		{"[1,2]", ADMIN_E_MALFORMED},
		{"\"ping\"", ADMIN_E_MALFORMED},
		{"{\"v\":1,\"cmd\":\"ping\"} trailing", ADMIN_E_MALFORMED},
		{"{\"v\":1,\"cmd\":\"ping\"}{}", ADMIN_E_MALFORMED},
		{"{\"cmd\":\"ping\"}", ADMIN_E_MALFORMED},
		{"{\"v\":\"1\",\"cmd\":\"ping\"}", ADMIN_E_MALFORMED},
		{"{\"v\":1.5,\"cmd\":\"ping\"}", ADMIN_E_MALFORMED},
		{"{\"v\":1}", ADMIN_E_MALFORMED},
		{"{\"v\":1,\"cmd\":\"\"}", ADMIN_E_MALFORMED},
		{"{\"v\":1,\"cmd\":7}", ADMIN_E_MALFORMED},
		{"{\"v\":1,\"cmd\":\"ping\",\"args\":[]}", ADMIN_E_MALFORMED},
		{"{\"v\":1,\"cmd\":\"ping\",\"id\":{}}", ADMIN_E_MALFORMED},
		{"{\"v\":1,\"cmd\":\"bogus\"}", ADMIN_E_UNKNOWN},
		{"{\"v\":1,\"cmd\":\"show\"}", ADMIN_E_UNKNOWN},
		{"{\"v\":1,\"cmd\":\"show  boot\"}", ADMIN_E_UNKNOWN},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct admin_request req;
		const char *code = NULL;
		ck_assert_msg(parse(cases[i].line, &req, &code) == -1, "accepted %s",
			      cases[i].line);
		ck_assert_msg(code && strcmp(code, cases[i].code) == 0, "%s: code %s, want %s",
			      cases[i].line, code ? code : "(null)", cases[i].code);
		ck_assert_ptr_null(req.cmd);
		admin_request_free(&req);
	}
}
END_TEST

START_TEST(parse_keeps_id_on_error)
{
	struct admin_request req;
	const char *code;
	ck_assert_int_eq(parse("{\"v\":1,\"id\":42,\"cmd\":\"nope\"}", &req, &code), -1);
	ck_assert_str_eq(code, ADMIN_E_UNKNOWN);
	ck_assert(cJSON_IsNumber(req.id));
	ck_assert_int_eq((int)req.id->valuedouble, 42);
	admin_request_free(&req);
}
END_TEST

START_TEST(parse_embedded_nul_is_malformed)
{
	static const char line[] = "{\"v\":1,\"cmd\":\"ping\"}\0junk";
	struct admin_request req;
	const char *code;
	char msg[128];
	ck_assert_int_eq(admin_request_parse(line, sizeof line - 1, &req, &code, msg, sizeof msg),
			 -1);
	ck_assert_str_eq(code, ADMIN_E_MALFORMED);
	admin_request_free(&req);
}
END_TEST

START_TEST(version_mismatch_names_both)
{
	struct admin_request req;
	const char *code;
	char msg[256];
	const char *line = "{\"v\":2,\"id\":1,\"cmd\":\"ping\"}";
	ck_assert_int_eq(admin_request_parse(line, strlen(line), &req, &code, msg, sizeof msg),
			 -1);
	ck_assert_str_eq(code, ADMIN_E_VERSION);
	ck_assert_ptr_nonnull(strstr(msg, "2"));
	ck_assert_ptr_nonnull(strstr(msg, "version 1"));
	ck_assert(cJSON_IsNumber(req.id));   /* the error can echo it */
	admin_request_free(&req);

	/* The client side: an answer from a pard speaking another version. */
	struct admin_response resp;
	const char *ans = "{\"v\":3,\"id\":1,\"ok\":true,\"result\":null}";
	ck_assert_int_eq(admin_response_parse(ans, strlen(ans), &resp, msg, sizeof msg), -1);
	ck_assert_ptr_nonnull(strstr(msg, "3"));
	ck_assert_ptr_nonnull(strstr(msg, "1"));
	ck_assert_ptr_null(resp.doc);
}
END_TEST

START_TEST(too_long_line)
{
	size_t n = ADMIN_LINE_MAX + 10;
	char *line = malloc(n + 1);
	ck_assert_ptr_nonnull(line);
	memset(line, ' ', n);
	memcpy(line, "{\"v\":1,\"cmd\":\"ping\"}", 20);
	line[n] = '\0';
	struct admin_request req;
	const char *code;
	char msg[128];
	ck_assert_int_eq(admin_request_parse(line, n, &req, &code, msg, sizeof msg), -1);
	ck_assert_str_eq(code, ADMIN_E_TOO_LONG);
	admin_request_free(&req);
	/* The longest allowed: ADMIN_LINE_MAX with its newline. */
	ck_assert_int_eq(admin_request_parse(line, ADMIN_LINE_MAX - 1, &req, &code, msg,
					     sizeof msg), 0);
	admin_request_free(&req);
	free(line);
}
END_TEST

START_TEST(encode_request_round_trip)
{
	cJSON *args = cJSON_CreateObject();
	cJSON_AddStringToObject(args, "name", "rest.latency");
	cJSON_AddStringToObject(args, "value", "line\nbreak");
	char *text = admin_request_encode(9, "fault set", args);
	ck_assert_ptr_nonnull(text);
	size_t len = strlen(text);
	ck_assert(len > 0 && text[len - 1] == '\n');
	ck_assert_ptr_eq(strchr(text, '\n'), text + len - 1);   /* one line, always */

	struct admin_request req;
	const char *code;
	char msg[128];
	ck_assert_int_eq(admin_request_parse(text, len - 1, &req, &code, msg, sizeof msg), 0);
	ck_assert_str_eq(req.cmd, "fault set");
	ck_assert_int_eq((int)req.id->valuedouble, 9);
	ck_assert_str_eq(cJSON_GetObjectItem(req.args, "value")->valuestring, "line\nbreak");
	admin_request_free(&req);
	free(text);
}
END_TEST

START_TEST(encode_response_round_trip)
{
	cJSON *id = cJSON_CreateNumber(12);
	cJSON *result = cJSON_CreateObject();
	cJSON_AddStringToObject(result, "state", "ready");
	char *ok = admin_response_ok(id, result);
	struct admin_response resp;
	char msg[128];
	ck_assert_int_eq(admin_response_parse(ok, strlen(ok) - 1, &resp, msg, sizeof msg), 0);
	ck_assert(resp.ok);
	ck_assert_int_eq(resp.id, 12);
	ck_assert_str_eq(cJSON_GetObjectItem(resp.result, "state")->valuestring, "ready");
	ck_assert_ptr_null(resp.event);
	admin_response_free(&resp);
	free(ok);

	char *err = admin_response_error(id, ADMIN_E_DENIED, "uid %d is not allowed", 65534);
	ck_assert_int_eq(admin_response_parse(err, strlen(err) - 1, &resp, msg, sizeof msg), 0);
	ck_assert(!resp.ok);
	ck_assert_str_eq(resp.err_code, "denied");
	ck_assert_str_eq(resp.err_msg, "uid 65534 is not allowed");
	admin_response_free(&resp);
	free(err);

	/* No id (a malformed request): null on the wire, -1 on the client side. */
	err = admin_response_error(NULL, ADMIN_E_MALFORMED, "bad");
	ck_assert_ptr_nonnull(strstr(err, "\"id\":null"));
	ck_assert_int_eq(admin_response_parse(err, strlen(err), &resp, msg, sizeof msg), 0);
	ck_assert_int_eq(resp.id, -1);
	admin_response_free(&resp);
	free(err);

	char *ev = admin_event_encode(id, "{\"event\":\"lifecycle.state\",\"to\":\"ready\"}");
	ck_assert_int_eq(admin_response_parse(ev, strlen(ev), &resp, msg, sizeof msg), 0);
	ck_assert(resp.ok);
	ck_assert_str_eq(cJSON_GetObjectItem(resp.event, "to")->valuestring, "ready");
	admin_response_free(&resp);
	free(ev);
	/* A line that is not JSON still arrives, wrapped. */
	ev = admin_event_encode(id, "12:00 info text line");
	ck_assert_int_eq(admin_response_parse(ev, strlen(ev), &resp, msg, sizeof msg), 0);
	ck_assert_str_eq(cJSON_GetObjectItem(resp.event, "line")->valuestring,
			 "12:00 info text line");
	admin_response_free(&resp);
	free(ev);
	cJSON_Delete(id);
}
END_TEST

START_TEST(response_parse_rejects_garbage)
{
	static const char *const bad[] = {
		"", "nope", "[]", "{\"v\":1}", "{\"v\":1,\"ok\":false}",
		"{\"v\":1,\"ok\":false,\"error\":{\"message\":\"x\"}}", "{\"ok\":true}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct admin_response resp;
		char msg[128];
		ck_assert_msg(admin_response_parse(bad[i], strlen(bad[i]), &resp, msg,
						   sizeof msg) == -1, "accepted %s", bad[i]);
		ck_assert_ptr_null(resp.doc);
	}
}
END_TEST

/* fuzz_admin's finding: numbers outside long's range ("v":1e300, "id":-9.3e18) were converted
 * to long before being checked, which is undefined behaviour (UBSan stops the sanitizer
 * build here). They are simply not integers: a malformed version, an absent id. */
START_TEST(huge_numbers_are_not_ints)
{
	struct admin_request req;
	struct admin_response resp;
	const char *code;
	char msg[256];

	ck_assert_int_eq(parse("{\"v\":1e300,\"id\":1e300,\"cmd\":\"ping\"}", &req, &code), -1);
	ck_assert_str_eq(code, ADMIN_E_MALFORMED);
	admin_request_free(&req);
	ck_assert_int_eq(parse("{\"v\":-9.3e18,\"id\":1,\"cmd\":\"ping\"}", &req, &code), -1);
	ck_assert_str_eq(code, ADMIN_E_MALFORMED);
	admin_request_free(&req);

	const char *ans = "{\"v\":1,\"id\":-9.3e18,\"ok\":true}";
	ck_assert_int_eq(admin_response_parse(ans, strlen(ans), &resp, msg, sizeof msg), 0);
	ck_assert_int_eq(resp.id, -1);
	admin_response_free(&resp);
	ans = "{\"v\":1e300,\"id\":1,\"ok\":true}";
	ck_assert_int_eq(admin_response_parse(ans, strlen(ans), &resp, msg, sizeof msg), -1);
	ck_assert_ptr_null(resp.doc);
}
END_TEST

START_TEST(verb_and_fault_tables)
{
	static const char *const verbs[] = {
		"status", "show boot", "show config", "show package", "show metrics",
		"show budgets", "drain", "undrain", "health", "fault list", "fault set",
		"fault clear", "log level", "monitor", "ping", "version", "verify-isolation"};
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		ck_assert_msg(admin_verb_find(verbs[i]) != NULL, "%s missing", verbs[i]);
	ck_assert_ptr_null(admin_verb_find("show"));
	ck_assert_ptr_null(admin_verb_find(NULL));
	ck_assert_int_eq(admin_verb_find("status")->access, ADMIN_READ);
	ck_assert_int_eq(admin_verb_find("drain")->access, ADMIN_CHANGE);
	ck_assert_int_eq(admin_verb_find("fault set")->access, ADMIN_CHANGE);
	ck_assert_int_eq(admin_verb_find("fault list")->access, ADMIN_READ);
	ck_assert(admin_verb_find("monitor")->streaming);

	static const char *const faults[] = {"health.fail", "rest.latency", "rest.error",
					     "a2a.latency", "a2a.error", "worker.kill", "crash",
					     "hang"};
	for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
		ck_assert_msg(admin_fault_find(faults[i]) != NULL, "%s missing", faults[i]);
	ck_assert_str_eq(admin_fault_find("rest.error")->value_default, "500");
	ck_assert_str_eq(admin_fault_find("a2a.error")->value_default, "14");
	ck_assert(admin_fault_find("crash")->one_shot);
	ck_assert(admin_fault_find("rest.latency")->probability);
	ck_assert_ptr_null(admin_fault_find("health.fail")->value_kind);
	ck_assert_ptr_null(admin_fault_find("nope"));
}
END_TEST

static void free_paths(char **p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i]);
}

START_TEST(candidates_with_xdg)
{
	char *p[3], tmp[64];
	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	size_t n = admin_socket_candidates("/srv/par/a.sock", p);
	ck_assert_int_eq(n, 3);
	ck_assert_str_eq(p[0], "/srv/par/a.sock");
	ck_assert_str_eq(p[1], "/run/user/1000/par/admin.sock");
	snprintf(tmp, sizeof tmp, "/tmp/par-%lu/admin.sock", (unsigned long)geteuid());
	ck_assert_str_eq(p[2], tmp);
	free_paths(p, n);

	/* Default; and a configured path equal to a fallback is listed once. */
	n = admin_socket_candidates(NULL, p);
	ck_assert_int_eq(n, 3);
	ck_assert_str_eq(p[0], ADMIN_DEFAULT_SOCKET);
	free_paths(p, n);
	n = admin_socket_candidates("/run/user/1000/par/admin.sock", p);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(p[1], tmp);
	free_paths(p, n);
}
END_TEST

START_TEST(candidates_without_xdg)
{
	char *p[3], tmp[64];
	snprintf(tmp, sizeof tmp, "/tmp/par-%lu/admin.sock", (unsigned long)geteuid());
	unsetenv("XDG_RUNTIME_DIR");
	size_t n = admin_socket_candidates("", p);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(p[0], ADMIN_DEFAULT_SOCKET);
	ck_assert_str_eq(p[1], tmp);
	free_paths(p, n);
	/* A relative XDG_RUNTIME_DIR is ignored, as is one too long for a socket path. */
	setenv("XDG_RUNTIME_DIR", "relative/dir", 1);
	n = admin_socket_candidates(NULL, p);
	ck_assert_int_eq(n, 2);
	free_paths(p, n);
	char longdir[200];
	memset(longdir, 'a', sizeof longdir - 1);
	longdir[0] = '/';
	longdir[sizeof longdir - 1] = '\0';
	setenv("XDG_RUNTIME_DIR", longdir, 1);
	n = admin_socket_candidates(NULL, p);
	ck_assert_int_eq(n, 2);
	free_paths(p, n);
	unsetenv("XDG_RUNTIME_DIR");
}
END_TEST

START_TEST(line_reader_splits_and_resumes)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	const char *data = "one\ntwo\nthr";
	ck_assert_int_eq(write(sv[1], data, strlen(data)), (ssize_t)strlen(data));
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	struct admin_linebuf lb = {0};
	char *line;
	ck_assert_int_eq(admin_read_line(sv[0], &lb, &line), 1);
	ck_assert_str_eq(line, "one");
	ck_assert_int_eq(admin_read_line(sv[0], &lb, &line), 1);
	ck_assert_str_eq(line, "two");
	errno = 0;
	ck_assert_int_eq(admin_read_line(sv[0], &lb, &line), -1);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_int_eq(write(sv[1], "ee\n", 3), 3);
	ck_assert_int_eq(admin_read_line(sv[0], &lb, &line), 1);
	ck_assert_str_eq(line, "three");
	/* A last line without its newline counts at EOF, then EOF. */
	ck_assert_int_eq(write(sv[1], "tail", 4), 4);
	close(sv[1]);
	ck_assert_int_eq(admin_read_line(sv[0], &lb, &line), 1);
	ck_assert_str_eq(line, "tail");
	ck_assert_int_eq(admin_read_line(sv[0], &lb, &line), 0);
	admin_linebuf_free(&lb);
	close(sv[0]);
}
END_TEST

START_TEST(line_reader_too_long_then_recovers)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	struct admin_linebuf lb = {0};
	char *line;
	char chunk[4096];
	memset(chunk, 'x', sizeof chunk);
	size_t sent = 0;
	int r = -1;
	/* Feed a line with no end until the reader gives up on it. */
	while (sent < 2 * ADMIN_LINE_MAX) {
		ssize_t w = write(sv[1], chunk, sizeof chunk);
		if (w > 0)
			sent += (size_t)w;
		r = admin_read_line(sv[0], &lb, &line);
		if (r != -1)
			break;
	}
	ck_assert_int_eq(r, -2);
	ck_assert(lb.overflow);
	/* The rest of that line is skipped; the next line is whole. */
	ck_assert_int_eq(write(sv[1], "xxxx\nnext\n", 10), 10);
	ck_assert_int_eq(admin_read_line(sv[0], &lb, &line), 1);
	ck_assert_str_eq(line, "next");
	admin_linebuf_free(&lb);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

START_TEST(line_reader_exact_limit)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	int sz = 4 * ADMIN_LINE_MAX;
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	/* ADMIN_LINE_MAX bytes with the newline: allowed. */
	char *buf = malloc(ADMIN_LINE_MAX);
	memset(buf, 'y', ADMIN_LINE_MAX - 1);
	buf[ADMIN_LINE_MAX - 1] = '\n';
	ck_assert_int_eq(write(sv[1], buf, ADMIN_LINE_MAX), ADMIN_LINE_MAX);
	struct admin_linebuf lb = {0};
	char *line;
	ck_assert_int_eq(admin_read_line(sv[0], &lb, &line), 1);
	ck_assert_int_eq(strlen(line), ADMIN_LINE_MAX - 1);
	/* One byte more: too long. */
	buf = realloc(buf, ADMIN_LINE_MAX + 1);
	memset(buf, 'z', ADMIN_LINE_MAX);
	buf[ADMIN_LINE_MAX] = '\n';
	ck_assert_int_eq(write(sv[1], buf, ADMIN_LINE_MAX + 1), ADMIN_LINE_MAX + 1);
	ck_assert_int_eq(admin_read_line(sv[0], &lb, &line), -2);
	free(buf);
	admin_linebuf_free(&lb);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("admin");
	TCase *proto = tcase_create("protocol");
	tcase_add_test(proto, parse_valid_request);
	tcase_add_test(proto, parse_invalid_requests);
	tcase_add_test(proto, parse_keeps_id_on_error);
	tcase_add_test(proto, parse_embedded_nul_is_malformed);
	tcase_add_test(proto, version_mismatch_names_both);
	tcase_add_test(proto, too_long_line);
	tcase_add_test(proto, encode_request_round_trip);
	tcase_add_test(proto, encode_response_round_trip);
	tcase_add_test(proto, response_parse_rejects_garbage);
	tcase_add_test(proto, verb_and_fault_tables);
	tcase_add_test(proto, huge_numbers_are_not_ints);
	suite_add_tcase(s, proto);

	TCase *paths = tcase_create("paths");
	tcase_add_test(paths, candidates_with_xdg);
	tcase_add_test(paths, candidates_without_xdg);
	suite_add_tcase(s, paths);

	TCase *reader = tcase_create("reader");
	tcase_add_test(reader, line_reader_splits_and_resumes);
	tcase_add_test(reader, line_reader_too_long_then_recovers);
	tcase_add_test(reader, line_reader_exact_limit);
	suite_add_tcase(s, reader);
	return s;
}
