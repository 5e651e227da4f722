/* Unit tests for the UI's request paths (par/uipath.h): the raw and decoded checks against
 * traversal attempts, and the mapping to a file name beneath the UI root. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "par/uipath.h"

static char *repeat(char c, size_t n, const char *prefix)
{
	size_t p = strlen(prefix);
	char *s = malloc(p + n + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, prefix, p);
	memset(s + p, c, n);
	s[p + n] = '\0';
	return s;
}

START_TEST(raw_accepts_ordinary_escapes)
{
	static const char *const ok[] = {
		"/", "/index.html", "/a%20b.txt", "/caf%C3%A9.html", "/%41pp.js",
		"/%252e%252e/secret.txt", /* decodes once, to a literal "%2e%2e" */
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		ck_assert_msg(uipath_raw_ok(ok[i]), "refused %s", ok[i]);
}
END_TEST

START_TEST(raw_refuses_hidden_separators)
{
	static const char *const bad[] = {
		"/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/..%2fsecret.txt", "/%2Fetc",
		"/.%2e/x", "/..%5csecret.txt", "/%5C", "/..\\secret.txt", "/app.js%00.png",
		"/%00", "/a%", "/a%2" /* an escape cut short */, "/a%zz", "/%%2f",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!uipath_raw_ok(bad[i]), "accepted %s", bad[i]);
}
END_TEST

START_TEST(raw_length_limit)
{
	char *at = repeat('a', UIPATH_RAW_MAX - 1, "/");
	char *over = repeat('a', UIPATH_RAW_MAX, "/");
	ck_assert(uipath_raw_ok(at));
	ck_assert(!uipath_raw_ok(over));
	free(at);
	free(over);
}
END_TEST

START_TEST(decoded_accepts_names_with_dots)
{
	static const char *const ok[] = {
		"/", "/sub/", "/sub/index.html", "/.well-known/x", "/..a", "/a..", "/a..b/c",
		"/...", "/%2e%2e", "/a b", "/caf\xc3\xa9",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		ck_assert_msg(uipath_decoded_ok(ok[i]), "refused %s", ok[i]);
}
END_TEST

START_TEST(decoded_refuses_traversal)
{
	static const char *const bad[] = {
		"", "a", "index.html", "//", "//etc/passwd", "/sub//index.html", "/.", "/..",
		"/../", "/../secret.txt", "/../../canary.txt", "/sub/../../secret.txt",
		"/./secret.txt", "/sub/./index.html", "/sub/..", "/a\\b", "/..\\secret.txt",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!uipath_decoded_ok(bad[i]), "accepted %s", bad[i]);
}
END_TEST

START_TEST(decoded_segment_limit)
{
	char *at = repeat('s', UIPATH_SEGMENT_MAX, "/d/");
	char *over = repeat('s', UIPATH_SEGMENT_MAX + 1, "/d/");
	ck_assert(uipath_decoded_ok(at));
	ck_assert(!uipath_decoded_ok(over));
	free(at);
	free(over);
}
END_TEST

/* The attempts of tests/integration/test_ui.py, raw and as libmicrohttpd decodes them: each
 * is refused by at least one of the two checks. */
START_TEST(both_forms_refuse_integration_attempts)
{
	static const char *const attempts[][2] = {
		{"/../secret.txt", "/../secret.txt"},
		{"/%2e%2e/secret.txt", "/../secret.txt"},
		{"/%2e%2e%2fsecret.txt", "/../secret.txt"},
		{"/..%2fsecret.txt", "/../secret.txt"},
		{"/%2e%2e%2f%2e%2e%2fcanary.txt", "/../../canary.txt"},
		{"/.%2e/secret.txt", "/../secret.txt"},
		{"/%2e./secret.txt", "/../secret.txt"},
		{"/..%5csecret.txt", "/..\\secret.txt"},
		{"/%5c..%5csecret.txt", "/\\..\\secret.txt"},
		{"/app.js%00.png", "/app.js"},
		{"/%00../secret.txt", "/"},
		{"//etc/passwd", "//etc/passwd"},
		{"/%2fetc%2fpasswd", "//etc/passwd"},
		{"/etc/passwd%00", "/etc/passwd"},
		{"/sub//index.html", "/sub//index.html"},
	};
	for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++)
		ck_assert_msg(!uipath_ok(attempts[i][0], attempts[i][1]), "accepted %s",
			      attempts[i][0]);
	/* Double encoding decodes once, to a name with a literal '%': harmless, served as is. */
	ck_assert(uipath_ok("/%252e%252e/secret.txt", "/%2e%2e/secret.txt"));
	ck_assert(uipath_ok("/a%20b.txt", "/a b.txt"));
}
END_TEST

START_TEST(file_names)
{
	char out[64];
	ck_assert_int_eq(uipath_file("/", out, sizeof out), 0);
	ck_assert_str_eq(out, "index.html");
	ck_assert_int_eq(uipath_file("/sub/", out, sizeof out), 0);
	ck_assert_str_eq(out, "sub/index.html");
	ck_assert_int_eq(uipath_file("/assets/app.js", out, sizeof out), 0);
	ck_assert_str_eq(out, "assets/app.js");

	ck_assert_int_eq(uipath_dir_index("/sub", out, sizeof out), 0);
	ck_assert_str_eq(out, "sub/index.html");
	/* A path ending in '/' already asked for the index: nothing more to try. */
	ck_assert_int_eq(uipath_dir_index("/sub/", out, sizeof out), -1);
	ck_assert_int_eq(uipath_dir_index("/", out, sizeof out), -1);
}
END_TEST

/* A name cut to fit could end in ".." ("a/..b" in 5 bytes is "a/.."): refused instead. */
START_TEST(file_never_truncated)
{
	char out[5];
	ck_assert_int_eq(uipath_file("/a/..b", out, sizeof out), -1);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(uipath_dir_index("/a", out, sizeof out), -1);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(uipath_file("/abc", out, sizeof out), 0);
	ck_assert_str_eq(out, "abc");
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("uipath");
	TCase *raw = tcase_create("raw");
	tcase_add_test(raw, raw_accepts_ordinary_escapes);
	tcase_add_test(raw, raw_refuses_hidden_separators);
	tcase_add_test(raw, raw_length_limit);
	suite_add_tcase(s, raw);

	TCase *dec = tcase_create("decoded");
	tcase_add_test(dec, decoded_accepts_names_with_dots);
	tcase_add_test(dec, decoded_refuses_traversal);
	tcase_add_test(dec, decoded_segment_limit);
	tcase_add_test(dec, both_forms_refuse_integration_attempts);
	suite_add_tcase(s, dec);

	TCase *file = tcase_create("file");
	tcase_add_test(file, file_names);
	tcase_add_test(file, file_never_truncated);
	suite_add_tcase(s, file);
	return s;
}
