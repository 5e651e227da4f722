/* Unit tests of package extraction (SPEC §3): par/archive.h against the hostile corpus that
 * tests/data/make_hostile_zips.py generates (the CTest fixture archive_corpus). */
#include "par/archive.h"

#include "testutil.h"

#include <check.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ROWS 64
#define CANARY "the canary outside the destination\n"
#define ABS_TARGET "/tmp/par-hostile-evil"
#define FUZZ_SEEDS PAR_TEST_DATA "/../fuzz/corpus/archive"

/* The good archives' contents, byte for byte as make_hostile_zips.py writes them. */
#define AGENT_YAML "name: good-agent\nversion: 1.0.0\nentrypoint: agent.main:run\n"
#define MAIN_PY "def run():\n    return 'ok'\n"
#define RUN_SH "#!/bin/sh\nexec python3 -m agent.main\n"
#define SPACES_LEN (512 * 1024)

struct row {
	char file[128];
	char want[64];
	unsigned max_mb;
};

static struct row rows[MAX_ROWS];
static int nrows;

static const char *corpus(void)
{
	return getenv("PAR_HOSTILE_DIR");
}

static void corpus_path(char *buf, size_t n, const char *file)
{
	snprintf(buf, n, "%s/%s", corpus(), file);
}

static int load_rows(void)
{
	char path[PATH_MAX], line[512];
	if (!corpus())
		return -1;
	corpus_path(path, sizeof(path), "expected.tsv");
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (nrows < MAX_ROWS && fgets(line, sizeof(line), f)) {
		struct row *r = &rows[nrows];
		if (line[0] == '#')
			continue;
		if (sscanf(line, "%127[^\t]\t%63[^\t]\t%u", r->file, r->want, &r->max_mb) == 3)
			nrows++;
	}
	fclose(f);
	return nrows > 0 ? 0 : -1;
}

static enum arch_error code_named(const char *name)
{
	for (int e = 0; e < ARCH_ERR_COUNT; e++)
		if (strcmp(arch_error_name((enum arch_error)e), name) == 0)
			return (enum arch_error)e;
	ck_abort_msg("expected.tsv names an unknown arch_error: %s", name);
	return ARCH_ERR_COUNT;
}

/* A private root holding a canary file and the empty destination directory "dest". */
struct sandbox {
	char root[64];
	char dest[96];
	int dest_fd;
};

static void sandbox_make(struct sandbox *s)
{
	char canary[128];
	strcpy(s->root, "/tmp/par-arch-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(s->root));
	snprintf(canary, sizeof(canary), "%s/canary", s->root);
	FILE *f = fopen(canary, "w");
	ck_assert_ptr_nonnull(f);
	fputs(CANARY, f);
	fclose(f);
	snprintf(s->dest, sizeof(s->dest), "%s/dest", s->root);
	ck_assert_int_eq(mkdir(s->dest, 0700), 0);
	s->dest_fd = open(s->dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(s->dest_fd, 0);
}

static void sandbox_free(struct sandbox *s)
{
	close(s->dest_fd);
	ck_assert_int_eq(arch_remove_tree(s->root), 0);
}

static void read_all(const char *path, char *buf, size_t cap, size_t *len)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "cannot open %s: %s", path, strerror(errno));
	ssize_t n = read(fd, buf, cap);
	close(fd);
	ck_assert_int_ge(n, 0);
	*len = (size_t)n;
}

/* Nothing outside dest: the root holds exactly the canary (unchanged) and dest. */
static void assert_nothing_escaped(const struct sandbox *s, const char *file)
{
	char path[128], buf[256];
	size_t len;
	struct stat st;

	ck_assert_msg(count_entries(s->root) == 2, "%s: something was written beside dest",
		      file);
	snprintf(path, sizeof(path), "%s/canary", s->root);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_msg(S_ISREG(st.st_mode), "%s: the canary was replaced", file);
	read_all(path, buf, sizeof(buf), &len);
	ck_assert_msg(len == strlen(CANARY) && memcmp(buf, CANARY, len) == 0,
		      "%s: the canary changed", file);
	ck_assert_int_eq(lstat(s->dest, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_msg(lstat(ABS_TARGET, &st) != 0 && errno == ENOENT, "%s: wrote %s", file,
		      ABS_TARGET);
}

static void slurp_file(const char *path, char **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	*data = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(*data);
	ck_assert_int_eq(fread(*data, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
}

/* One row of expected.tsv: extract, validate (file and buffer) all agree, nothing escapes. */
START_TEST(test_corpus)
{
	const struct row *row = &rows[_i];
	enum arch_error want = code_named(row->want);
	struct arch_limits lim = arch_default_limits(row->max_mb);
	char path[PATH_MAX];
	struct sandbox s;
	struct arch_problems p = { 0 };
	uint64_t total = 0;

	corpus_path(path, sizeof(path), row->file);
	sandbox_make(&s);
	enum arch_error got = arch_extract(path, s.dest_fd, &lim, &p, &total);
	ck_assert_msg(got == want, "%s: extract gave %s, want %s (%s)", row->file,
		      arch_error_name(got), row->want, p.n ? p.v[0].message : "no message");
	if (want != ARCH_OK) {
		ck_assert_msg(p.n == 1 && p.v[0].code == want && p.v[0].message,
			      "%s: extract must describe exactly its one problem", row->file);
		ck_assert_msg(count_entries(s.dest) == 0, "%s: a failure left files in dest",
			      row->file);
	}
	assert_nothing_escaped(&s, row->file);
	arch_problems_free(&p);
	sandbox_free(&s);

	got = arch_validate(path, &lim, &p);
	ck_assert_msg(got == want, "%s: validate gave %s, want %s", row->file,
		      arch_error_name(got), row->want);
	ck_assert(want == ARCH_OK ? p.n == 0 : p.n >= 1 && p.v[0].code == want);
	arch_problems_free(&p);

	char *data;
	size_t len;
	slurp_file(path, &data, &len);
	got = arch_validate_buffer(data, len, &lim, &p);
	ck_assert_msg(got == want, "%s: validate_buffer gave %s, want %s", row->file,
		      arch_error_name(got), row->want);
	arch_problems_free(&p);
	free(data);
}
END_TEST

struct want_entry {
	const char *path;
	mode_t mode;          /* with the type bits */
	const char *content;  /* NULL: a directory, or checked by length */
	size_t len;
};

static void assert_tree(const char *dest, const struct want_entry *w, size_t n)
{
	static char buf[SPACES_LEN + 1];
	char path[PATH_MAX];
	struct stat st;

	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dest, w[i].path);
		ck_assert_msg(lstat(path, &st) == 0, "%s missing", w[i].path);
		ck_assert_msg(st.st_mode == w[i].mode, "%s: mode %o, want %o", w[i].path,
			      (unsigned)st.st_mode, (unsigned)w[i].mode);
		if (S_ISDIR(w[i].mode))
			continue;
		size_t len;
		read_all(path, buf, sizeof(buf), &len);
		ck_assert_msg(len == w[i].len, "%s: %zu bytes, want %zu", w[i].path, len, w[i].len);
		if (w[i].content)
			ck_assert(memcmp(buf, w[i].content, len) == 0);
		else
			for (size_t k = 0; k < len; k++)
				ck_assert_int_eq(buf[k], ' ');
	}
}

static int count_tree(const char *dir)
{
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n++;
		if (de->d_type == DT_DIR) {
			char sub[PATH_MAX];
			snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
			n += count_tree(sub);
		}
	}
	closedir(d);
	return n;
}

static void extract_good(const char *file, struct sandbox *s, uint64_t *total)
{
	char path[PATH_MAX];
	struct arch_limits lim = arch_default_limits(1024);
	struct arch_problems p = { 0 };

	corpus_path(path, sizeof(path), file);
	sandbox_make(s);
	/* Modes must be exactly 0644/0755 whatever the umask. */
	mode_t old = umask(077);
	enum arch_error e = arch_extract(path, s->dest_fd, &lim, &p, total);
	umask(old);
	ck_assert_msg(e == ARCH_OK, "%s: %s", file, p.n ? p.v[0].message : arch_error_name(e));
	ck_assert_uint_eq(p.n, 0);
}

#define S(x) x, sizeof(x) - 1

START_TEST(test_good_basic)
{
	static const struct want_entry w[] = {
		{ "agent.yaml", S_IFREG | 0644, S(AGENT_YAML) },
		{ "agent", S_IFDIR | 0755, NULL, 0 },
		{ "agent/__init__.py", S_IFREG | 0644, "", 0 },
		{ "agent/main.py", S_IFREG | 0644, S(MAIN_PY) },
		{ "bin", S_IFDIR | 0755, NULL, 0 },
		{ "bin/run.sh", S_IFREG | 0755, S(RUN_SH) },
		{ "data", S_IFDIR | 0755, NULL, 0 },
		{ "config", S_IFDIR | 0755, NULL, 0 },
		{ "config/spaces.txt", S_IFREG | 0644, NULL, SPACES_LEN },
		{ "README", S_IFREG | 0644, S("read me\n") },
	};
	struct sandbox s;
	uint64_t total = 0;

	extract_good("good_basic.zip", &s, &total);
	assert_tree(s.dest, w, sizeof(w) / sizeof(w[0]));
	ck_assert_int_eq(count_tree(s.dest), (int)(sizeof(w) / sizeof(w[0])));
	ck_assert_uint_eq(total, strlen(AGENT_YAML) + strlen(MAIN_PY) + strlen(RUN_SH) +
				 SPACES_LEN + strlen("read me\n"));
	sandbox_free(&s);
}
END_TEST

START_TEST(test_good_nested)
{
	static const struct want_entry w[] = {
		{ "a", S_IFDIR | 0755, NULL, 0 },
		{ "a/b", S_IFDIR | 0755, NULL, 0 },
		{ "a/b/c.txt", S_IFREG | 0644, S("c\n") },
		{ "x", S_IFDIR | 0755, NULL, 0 },
		{ "x/y", S_IFDIR | 0755, NULL, 0 },
		{ "x/y/z", S_IFDIR | 0755, NULL, 0 },
		{ "x/y/z/deep.txt", S_IFREG | 0644, S("deep\n") },
		{ ".hidden", S_IFREG | 0644, S("h\n") },
		{ "docs", S_IFDIR | 0755, NULL, 0 },
		{ "docs/caf\xc3\xa9.txt", S_IFREG | 0644, S("caf\n") },
		{ "agent.yaml", S_IFREG | 0644, S(AGENT_YAML) },
	};
	struct sandbox s;
	uint64_t total = 0;

	extract_good("good_nested.zip", &s, &total);
	assert_tree(s.dest, w, sizeof(w) / sizeof(w[0]));
	ck_assert_int_eq(count_tree(s.dest), (int)(sizeof(w) / sizeof(w[0])));
	sandbox_free(&s);
}
END_TEST

START_TEST(test_read_file)
{
	char path[PATH_MAX];
	char *out = NULL;
	size_t len = 0;

	corpus_path(path, sizeof(path), "good_basic.zip");
	ck_assert_int_eq(arch_read_file(path, "agent.yaml", 1 << 20, &out, &len), 0);
	ck_assert_uint_eq(len, strlen(AGENT_YAML));
	ck_assert_str_eq(out, AGENT_YAML);
	free(out);

	/* The same name spelled with a "./": names are compared normalised. */
	ck_assert_int_eq(arch_read_file(path, "./agent.yaml", 1 << 20, &out, &len), 0);
	free(out);

	/* A stored (uncompressed) member. */
	ck_assert_int_eq(arch_read_file(path, "README", 1 << 20, &out, NULL), 0);
	ck_assert_str_eq(out, "read me\n");
	free(out);

	ck_assert_int_eq(arch_read_file(path, "config/spaces.txt", 1 << 20, &out, &len), 0);
	ck_assert_uint_eq(len, SPACES_LEN);
	ck_assert_int_eq(out[len], '\0');
	free(out);

	out = NULL;
	ck_assert_int_eq(arch_read_file(path, "config/spaces.txt", 4096, &out, &len), -1);
	ck_assert_int_eq(arch_read_file(path, "missing.yaml", 1 << 20, &out, &len), -1);
	ck_assert_int_eq(arch_read_file(path, "agent", 1 << 20, &out, &len), -1);
	ck_assert_int_eq(arch_read_file(path, "../agent.yaml", 1 << 20, &out, &len), -1);
	ck_assert_ptr_null(out);

	corpus_path(path, sizeof(path), "tar_renamed.apkg");
	ck_assert_int_eq(arch_read_file(path, "agent.yaml", 1 << 20, &out, &len), -1);
	/* Its agent.yaml is LZMA: refused before any decoder runs, even to read one file. */
	corpus_path(path, sizeof(path), "method_lzma.zip");
	ck_assert_int_eq(arch_read_file(path, "agent.yaml", 1 << 20, &out, &len), -1);
	ck_assert_int_eq(arch_read_file("/nonexistent.zip", "agent.yaml", 1 << 20, &out, &len),
			 -1);
}
END_TEST

static bool has_code(const struct arch_problems *p, enum arch_error e)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->v[i].code == e)
			return p->v[i].message && p->v[i].entry;
	return false;
}

START_TEST(test_validate_reports_every_problem)
{
	char path[PATH_MAX];
	struct arch_limits lim = arch_default_limits(1024);
	struct arch_problems p = { 0 };

	corpus_path(path, sizeof(path), "multi_problem.zip");
	ck_assert_int_eq(arch_validate(path, &lim, &p), ARCH_ERR_DOTDOT);
	ck_assert_uint_eq(p.n, 5);
	ck_assert(has_code(&p, ARCH_ERR_DOTDOT));
	ck_assert(has_code(&p, ARCH_ERR_ABSOLUTE));
	ck_assert(has_code(&p, ARCH_ERR_SYMLINK));
	ck_assert(has_code(&p, ARCH_ERR_SETUID));
	ck_assert(has_code(&p, ARCH_ERR_DUPLICATE));
	ck_assert_str_eq(p.v[0].entry, "../up");
	arch_problems_free(&p);
	ck_assert_ptr_null(p.v);
	ck_assert_uint_eq(p.n, 0);

	/* libarchive turns "..\evil" into "../evil": the raw name and the converted one are
	 * two problems of one entry. */
	corpus_path(path, sizeof(path), "slip_backslash.zip");
	ck_assert_int_eq(arch_validate(path, &lim, &p), ARCH_ERR_BACKSLASH);
	ck_assert(has_code(&p, ARCH_ERR_DOTDOT));
	arch_problems_free(&p);

	/* A NULL list is fine: only the code is wanted. */
	ck_assert_int_eq(arch_validate(path, &lim, NULL), ARCH_ERR_BACKSLASH);
}
END_TEST

START_TEST(test_small_limits)
{
	char path[PATH_MAX];
	struct arch_limits lim = arch_default_limits(1024);
	struct arch_problems p = { 0 };

	corpus_path(path, sizeof(path), "good_basic.zip");
	lim.max_entries = 5;  /* 8 entries listed, 10 paths created */
	ck_assert_int_eq(arch_validate(path, &lim, &p), ARCH_ERR_TOO_MANY_ENTRIES);
	arch_problems_free(&p);

	lim = arch_default_limits(1024);
	lim.max_name = 8;  /* "agent.yaml" is 10 */
	ck_assert_int_eq(arch_validate(path, &lim, &p), ARCH_ERR_NAME_TOO_LONG);
	arch_problems_free(&p);

	lim = arch_default_limits(1024);
	lim.max_total_bytes = 1000;
	ck_assert_int_eq(arch_validate(path, &lim, &p), ARCH_ERR_TOTAL_SIZE);
	arch_problems_free(&p);

	/* A ratio of 0 turns the rule off: the deflate bomb then only meets the total cap. */
	corpus_path(path, sizeof(path), "bomb_deflate.zip");
	lim = arch_default_limits(1024);
	lim.max_ratio = 0;
	ck_assert_int_eq(arch_validate(path, &lim, &p), ARCH_OK);
	arch_problems_free(&p);
}
END_TEST

START_TEST(test_extract_needs_empty_dest)
{
	char path[PATH_MAX], keep[128];
	struct arch_limits lim = arch_default_limits(1024);
	struct arch_problems p = { 0 };
	struct sandbox s;

	sandbox_make(&s);
	snprintf(keep, sizeof(keep), "%s/keep", s.dest);
	FILE *f = fopen(keep, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	corpus_path(path, sizeof(path), "slip_dotdot.zip");
	ck_assert_int_eq(arch_extract(path, s.dest_fd, &lim, &p, NULL), ARCH_ERR_IO);
	ck_assert_int_eq(access(keep, F_OK), 0);  /* never emptied: it was not ours */
	arch_problems_free(&p);

	ck_assert_int_eq(arch_extract("/nonexistent.zip", s.dest_fd, &lim, NULL, NULL),
			 ARCH_ERR_IO);
	ck_assert_int_eq(unlink(keep), 0);
	ck_assert_int_eq(arch_extract("/nonexistent.zip", s.dest_fd, &lim, &p, NULL),
			 ARCH_ERR_IO);
	ck_assert_uint_eq(p.n, 1);
	arch_problems_free(&p);
	ck_assert_int_eq(arch_extract(s.root, s.dest_fd, &lim, NULL, NULL), ARCH_ERR_IO);
	sandbox_free(&s);
}
END_TEST

START_TEST(test_validate_buffer_garbage)
{
	struct arch_limits lim = arch_default_limits(1);
	ck_assert_int_eq(arch_validate_buffer("hello", 5, &lim, NULL), ARCH_ERR_NOT_ZIP);
	ck_assert_int_eq(arch_validate_buffer(NULL, 0, &lim, NULL), ARCH_ERR_NOT_ZIP);
	/* A lone end-of-central-directory record: an empty zip is a valid (empty) archive. */
	static const unsigned char eocd[22] = { 'P', 'K', 5, 6 };
	ck_assert_int_eq(arch_validate_buffer(eocd, sizeof(eocd), &lim, NULL), ARCH_OK);
}
END_TEST

START_TEST(test_remove_tree_keeps_symlink_targets)
{
	char root[] = "/tmp/par-arch-rm-XXXXXX";
	char p[PATH_MAX], outside[PATH_MAX];

	ck_assert_ptr_nonnull(mkdtemp(root));
	snprintf(outside, sizeof(outside), "%s/outside", root);
	ck_assert_int_eq(mkdir(outside, 0755), 0);
	snprintf(p, sizeof(p), "%s/outside/keep.txt", root);
	fclose(fopen(p, "w"));
	snprintf(p, sizeof(p), "%s/tree", root);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/tree/sub", root);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/tree/sub/file", root);
	fclose(fopen(p, "w"));
	snprintf(p, sizeof(p), "%s/tree/rel", root);
	ck_assert_int_eq(symlink("../outside", p), 0);
	snprintf(p, sizeof(p), "%s/tree/sub/abs", root);
	ck_assert_int_eq(symlink(outside, p), 0);
	snprintf(p, sizeof(p), "%s/linkdir", root);
	ck_assert_int_eq(symlink(outside, p), 0);

	snprintf(p, sizeof(p), "%s/tree", root);
	ck_assert_int_eq(arch_remove_tree(p), 0);
	ck_assert_int_eq(access(p, F_OK), -1);
	/* The path itself a symlink to a directory: the link goes, not what it points to. */
	snprintf(p, sizeof(p), "%s/linkdir", root);
	ck_assert_int_eq(arch_remove_tree(p), 0);
	snprintf(p, sizeof(p), "%s/outside/keep.txt", root);
	ck_assert_int_eq(access(p, F_OK), 0);
	ck_assert_int_eq(arch_remove_tree(root), 0);
	ck_assert_int_eq(arch_remove_tree(root), 0);  /* a missing path is fine */
}
END_TEST

START_TEST(test_names_and_defaults)
{
	for (int a = 0; a < ARCH_ERR_COUNT; a++) {
		const char *na = arch_error_name((enum arch_error)a);
		ck_assert(na && *na && strcmp(na, "unknown") != 0);
		for (int b = a + 1; b < ARCH_ERR_COUNT; b++)
			ck_assert_str_ne(na, arch_error_name((enum arch_error)b));
	}
	ck_assert_str_eq(arch_error_name(ARCH_ERR_COUNT), "unknown");
	ck_assert_str_eq(arch_error_name(ARCH_ERR_DOTDOT), "dotdot");

	struct arch_limits l = arch_default_limits(1024);
	ck_assert_uint_eq(l.max_entries, 10000);
	ck_assert_uint_eq(l.max_total_bytes, 1024ull << 20);
	ck_assert_uint_eq(l.max_ratio, 100);
	ck_assert_uint_eq(l.max_name, 255);
	arch_problems_free(NULL);
}
END_TEST

/* The fuzzer's checked-in seeds, regressions included, replayed in every build. */
START_TEST(test_fuzz_seeds_replay)
{
	const struct arch_limits lim = { 64, 1 << 20, 100, 255 };  /* as fuzz_archive.c */
	DIR *d = opendir(FUZZ_SEEDS);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX], *data;
		size_t len;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", FUZZ_SEEDS, de->d_name);
		slurp_file(path, &data, &len);
		enum arch_error e = arch_validate_buffer(data, len, &lim, NULL);
		free(data);
		ck_assert_int_lt(e, ARCH_ERR_COUNT);
		/* LZMA asking for a 2 GiB dictionary: found by fuzz_archive (tests/fuzz/README.md). */
		if (strcmp(de->d_name, "regress-lzma-2gib-dict.zip") == 0)
			ck_assert_int_eq(e, ARCH_ERR_METHOD);
		n++;
	}
	closedir(d);
	ck_assert_int_ge(n, 10);
}
END_TEST

START_TEST(test_no_corpus)
{
	ck_abort_msg("PAR_HOSTILE_DIR/expected.tsv missing: run through ctest, whose "
		     "archive_corpus fixture generates the corpus");
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("archive");
	TCase *tc = tcase_create("archive");

	tcase_set_timeout(tc, 60);
	if (load_rows() != 0) {
		tcase_add_test(tc, test_no_corpus);
		suite_add_tcase(s, tc);
		return s;
	}
	tcase_add_loop_test(tc, test_corpus, 0, nrows);
	tcase_add_test(tc, test_good_basic);
	tcase_add_test(tc, test_good_nested);
	tcase_add_test(tc, test_read_file);
	tcase_add_test(tc, test_validate_reports_every_problem);
	tcase_add_test(tc, test_small_limits);
	tcase_add_test(tc, test_extract_needs_empty_dest);
	tcase_add_test(tc, test_validate_buffer_garbage);
	tcase_add_test(tc, test_remove_tree_keeps_symlink_targets);
	tcase_add_test(tc, test_names_and_defaults);
	tcase_add_test(tc, test_fuzz_seeds_replay);
	suite_add_tcase(s, tc);
	return s;
}
