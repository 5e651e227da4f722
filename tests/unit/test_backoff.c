/* Unit tests for the boot-failure backoff rule and its persisted counter (SPEC §6.4). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "par/backoff.h"

static char tmpdir[PATH_MAX];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	chmod(path, 0700);  /* a test may have made it read-only */
	return remove(path);
}

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/par-backoff-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	chmod(tmpdir, 0700);
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);
	ck_assert_ptr_nonnull(p);
	snprintf(p, n, "%s/%s", a, b);
	return p;
}

static void put_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(content, f);
	ck_assert_int_eq(fclose(f), 0);
}

static char *get_file(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

START_TEST(test_delay_table)
{
	static const unsigned want[] = {0, 2, 4, 8, 16, 32, 60, 60};
	for (unsigned n = 0; n < 8; n++)
		ck_assert_uint_eq(backoff_delay_sec(n), want[n]);
	ck_assert_uint_eq(backoff_delay_sec(31), 60);
	ck_assert_uint_eq(backoff_delay_sec(32), 60);
	ck_assert_uint_eq(backoff_delay_sec(63), 60);
	ck_assert_uint_eq(backoff_delay_sec(64), 60);
	ck_assert_uint_eq(backoff_delay_sec(1000), 60);
	ck_assert_uint_eq(backoff_delay_sec(UINT_MAX), 60);
}
END_TEST

START_TEST(test_path_is_hashed)
{
	char *p = backoff_state_path("/state", "abc");
	/* sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a3…, first 32 hex kept. */
	ck_assert_str_eq(p, "/state/boot-failures-ba7816bf8f01cfea414140de5dae2223");
	free(p);
	p = backoff_state_path("/state/", "abc");
	ck_assert_str_eq(p, "/state/boot-failures-ba7816bf8f01cfea414140de5dae2223");
	free(p);
	ck_assert_ptr_null(backoff_state_path(NULL, "abc"));
	ck_assert_ptr_null(backoff_state_path("", "abc"));
	ck_assert_ptr_null(backoff_state_path("/state", NULL));
}
END_TEST

START_TEST(test_path_stays_inside)
{
	static const char *const ids[] = {"../../etc/passwd", "/abs/..", "..", "a/b\n", ""};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char *p = backoff_state_path("/state/dir", ids[i]);
		ck_assert_ptr_nonnull(p);
		const char *prefix = "/state/dir/boot-failures-";
		ck_assert_int_eq(strncmp(p, prefix, strlen(prefix)), 0);
		const char *name = p + strlen(prefix);
		ck_assert_uint_eq(strlen(name), 32);
		ck_assert_uint_eq(strspn(name, "0123456789abcdef"), 32);
		free(p);
	}
}
END_TEST

START_TEST(test_round_trip)
{
	unsigned count = 99;
	char *warn = NULL;
	ck_assert_int_eq(backoff_state_read(tmpdir, "agent-1", &count, &warn), 0);
	ck_assert_uint_eq(count, 0);
	ck_assert_ptr_null(warn);

	ck_assert_int_eq(backoff_state_write(tmpdir, "agent-1", 3), 0);
	ck_assert_int_eq(backoff_state_read(tmpdir, "agent-1", &count, &warn), 0);
	ck_assert_uint_eq(count, 3);
	ck_assert_ptr_null(warn);

	/* The file is for operators too: the count, then the id it belongs to. */
	char *path = backoff_state_path(tmpdir, "agent-1");
	ck_assert_str_eq(get_file(path), "3\nagent-1\n");
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0077, 0);

	/* Another agent's counter is separate. */
	ck_assert_int_eq(backoff_state_read(tmpdir, "agent-2", &count, &warn), 0);
	ck_assert_uint_eq(count, 0);

	ck_assert_int_eq(backoff_state_write(tmpdir, "agent-1", 4), 0);
	ck_assert_int_eq(backoff_state_read(tmpdir, "agent-1", &count, &warn), 0);
	ck_assert_uint_eq(count, 4);

	ck_assert_int_eq(backoff_state_clear(tmpdir, "agent-1"), 0);
	ck_assert_int_eq(access(path, F_OK), -1);
	ck_assert_int_eq(backoff_state_read(tmpdir, "agent-1", &count, &warn), 0);
	ck_assert_uint_eq(count, 0);
	ck_assert_ptr_null(warn);
	ck_assert_int_eq(backoff_state_clear(tmpdir, "agent-1"), 0);  /* missing is fine */
	free(path);
}
END_TEST

START_TEST(test_write_creates_dir)
{
	char *dir = join(tmpdir, "a/b/state");
	ck_assert_int_eq(backoff_state_write(dir, "x", 1), 0);
	struct stat st;
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	unsigned count = 0;
	ck_assert_int_eq(backoff_state_read(dir, "x", &count, NULL), 0);
	ck_assert_uint_eq(count, 1);
	free(dir);
}
END_TEST

START_TEST(test_missing_dir_reads_zero)
{
	char *dir = join(tmpdir, "nope");
	unsigned count = 5;
	char *warn = NULL;
	ck_assert_int_eq(backoff_state_read(dir, "x", &count, &warn), 0);
	ck_assert_uint_eq(count, 0);
	ck_assert_ptr_null(warn);
	ck_assert_int_eq(backoff_state_clear(dir, "x"), 0);
	free(dir);
}
END_TEST

static void expect_malformed(const char *content, const char *shown)
{
	char *path = backoff_state_path(tmpdir, "agent");
	put_file(path, content);
	unsigned count = 77;
	char *warn = NULL;
	ck_assert_int_eq(backoff_state_read(tmpdir, "agent", &count, &warn), 1);
	ck_assert_uint_eq(count, 0);
	ck_assert_ptr_nonnull(warn);
	ck_assert_msg(strstr(warn, path) != NULL, "warning does not name the file: %s", warn);
	char quoted[128];
	snprintf(quoted, sizeof(quoted), "\"%s", shown);
	ck_assert_msg(strstr(warn, quoted) != NULL, "warning does not show %s: %s", shown, warn);
	free(warn);
	/* Without a place for the warning it is still a 0, not a crash. */
	ck_assert_int_eq(backoff_state_read(tmpdir, "agent", &count, NULL), 1);
	free(path);
}

START_TEST(test_malformed)
{
	expect_malformed("abc", "abc\"");
	expect_malformed("", "\"");
	expect_malformed("\n", "\"");
	expect_malformed("-1", "-1\"");
	expect_malformed("99999999999999999999", "99999999999999999999\"");
	expect_malformed("1000001\n", "1000001\"");
	expect_malformed("12abc\nagent\n", "12abc\"");
	expect_malformed("0x10", "0x10\"");
	/* A long value is cut to 32 characters in the warning. */
	expect_malformed("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
			 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…");
}
END_TEST

START_TEST(test_lenient_forms)
{
	char *path = backoff_state_path(tmpdir, "agent");
	static const struct {
		const char *content;
		unsigned want;
	} cases[] = {
		{"7", 7}, {"7\n", 7}, {" 7 \r\nwhatever\n", 7}, {"0\n", 0}, {"1000000\n", 1000000},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		put_file(path, cases[i].content);
		unsigned count = 99;
		char *warn = NULL;
		ck_assert_int_eq(backoff_state_read(tmpdir, "agent", &count, &warn), 0);
		ck_assert_uint_eq(count, cases[i].want);
		ck_assert_ptr_null(warn);
	}
	free(path);
}
END_TEST

START_TEST(test_write_clamps_and_sanitises)
{
	ck_assert_int_eq(backoff_state_write(tmpdir, "evil\nid", UINT_MAX), 0);
	unsigned count = 0;
	ck_assert_int_eq(backoff_state_read(tmpdir, "evil\nid", &count, NULL), 0);
	ck_assert_uint_eq(count, 1000000);
	char *path = backoff_state_path(tmpdir, "evil\nid");
	ck_assert_str_eq(get_file(path), "1000000\nevil?id\n");
	free(path);
}
END_TEST

START_TEST(test_no_temp_files_left)
{
	for (unsigned i = 0; i < 20; i++)
		ck_assert_int_eq(backoff_state_write(tmpdir, "agent", i), 0);
	ck_assert_int_eq(count_entries(tmpdir), 1);
	ck_assert_int_eq(backoff_state_clear(tmpdir, "agent"), 0);
	ck_assert_int_eq(count_entries(tmpdir), 0);
}
END_TEST

/* A path below a regular file fails with ENOTDIR for every user, root included. */
START_TEST(test_unusable_dir)
{
	char *file = join(tmpdir, "plain");
	put_file(file, "x");
	char *dir = join(file, "state");
	errno = 0;
	ck_assert_int_eq(backoff_state_write(dir, "agent", 1), -1);
	ck_assert_int_eq(errno, ENOTDIR);
	ck_assert_int_eq(backoff_state_write(file, "agent", 1), -1);
	ck_assert_int_eq(errno, ENOTDIR);

	unsigned count = 9;
	char *warn = NULL;
	ck_assert_int_eq(backoff_state_read(dir, "agent", &count, &warn), -1);
	ck_assert_uint_eq(count, 0);
	ck_assert_ptr_nonnull(warn);
	ck_assert_ptr_nonnull(strstr(warn, dir));
	free(warn);
	ck_assert_int_eq(backoff_state_clear(dir, "agent"), -1);
	ck_assert_int_eq(count_entries(tmpdir), 1);
	free(dir);
	free(file);
}
END_TEST

START_TEST(test_counter_path_is_a_directory)
{
	char *path = backoff_state_path(tmpdir, "agent");
	ck_assert_int_eq(mkdir(path, 0700), 0);
	unsigned count = 9;
	char *warn = NULL;
	ck_assert_int_eq(backoff_state_read(tmpdir, "agent", &count, &warn), -1);
	ck_assert_uint_eq(count, 0);
	ck_assert_ptr_nonnull(warn);
	free(warn);
	ck_assert_int_eq(backoff_state_write(tmpdir, "agent", 1), -1);
	ck_assert_int_eq(count_entries(tmpdir), 1);  /* the temp file was removed */
	free(path);
}
END_TEST

/* A FIFO at the counter path must not hang the boot. */
START_TEST(test_fifo_does_not_block)
{
	char *path = backoff_state_path(tmpdir, "agent");
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	unsigned count = 9;
	char *warn = NULL;
	ck_assert_int_eq(backoff_state_read(tmpdir, "agent", &count, &warn), -1);
	ck_assert_uint_eq(count, 0);
	ck_assert_ptr_nonnull(warn);
	free(warn);
	free(path);
}
END_TEST

/* Permissions bind only non-root users; root would pass through them. */
START_TEST(test_readonly_dir)
{
	if (geteuid() == 0)
		return;
	ck_assert_int_eq(chmod(tmpdir, 0500), 0);
	ck_assert_int_eq(backoff_state_write(tmpdir, "agent", 1), -1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_int_eq(chmod(tmpdir, 0700), 0);
	ck_assert_int_eq(count_entries(tmpdir), 0);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("backoff");
	TCase *rule = tcase_create("rule");
	tcase_add_test(rule, test_delay_table);
	tcase_add_test(rule, test_path_is_hashed);
	tcase_add_test(rule, test_path_stays_inside);
	suite_add_tcase(s, rule);

	TCase *state = tcase_create("state");
	tcase_add_checked_fixture(state, setup, teardown);
	tcase_add_test(state, test_round_trip);
	tcase_add_test(state, test_write_creates_dir);
	tcase_add_test(state, test_missing_dir_reads_zero);
	tcase_add_test(state, test_malformed);
	tcase_add_test(state, test_lenient_forms);
	tcase_add_test(state, test_write_clamps_and_sanitises);
	tcase_add_test(state, test_no_temp_files_left);
	tcase_add_test(state, test_unusable_dir);
	tcase_add_test(state, test_counter_path_is_a_directory);
	tcase_add_test(state, test_fifo_does_not_block);
	tcase_add_test(state, test_readonly_dir);
	suite_add_tcase(s, state);
	return s;
}
