/* Unit tests for the content-addressed package cache: layout, atomic commits, corruption,
 * cross-process locking and LRU eviction (SPEC §2, §3). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "par/cache.h"
#include "par/fsutil.h"
#include "par/hash.h"

#include "testutil.h"

static char root[64];

static void setup(void)
{
	snprintf(root, sizeof root, "/tmp/par-cache-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
}

static void teardown(void)
{
	fs_remove_tree(root);
}

static struct pkg_cache *open_cache(uint64_t max_bytes)
{
	char err[256] = "";
	struct pkg_cache *c = cache_open(root, max_bytes, err, sizeof err);
	ck_assert_msg(c != NULL, "cache_open: %s", err);
	return c;
}

static char *sub(const char *a, const char *b)
{
	size_t n = strlen(root) + strlen(a) + strlen(b) + 3;
	char *p = malloc(n);
	ck_assert_ptr_nonnull(p);
	snprintf(p, n, "%s/%s%s%s", root, a, *b ? "/" : "", b);
	return p;
}

static int count_sub(const char *name)
{
	char *p = sub(name, "");
	int n = count_entries(p);
	free(p);
	return n;
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fs_write_all(fd, data, len), 0);
	ck_assert_int_eq(close(fd), 0);
}

/* A complete temp file under tmp/ holding data; malloc'd path. */
static char *make_tmp_file(struct pkg_cache *c, const void *data, size_t len)
{
	size_t n = strlen(cache_tmp_dir(c)) + sizeof "/pkg.XXXXXX";
	char *p = malloc(n);
	ck_assert_ptr_nonnull(p);
	snprintf(p, n, "%s/pkg.XXXXXX", cache_tmp_dir(c));
	int fd = mkstemp(p);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fs_write_all(fd, data, len), 0);
	close(fd);
	return p;
}

/* Commits a package of len bytes of fill; its sha into sha. */
static void add_package(struct pkg_cache *c, char fill, size_t len, char sha[65])
{
	char *data = malloc(len);
	ck_assert_ptr_nonnull(data);
	memset(data, fill, len);
	sha256_hex(data, len, sha);
	char *tmp = make_tmp_file(c, data, len);
	ck_assert_int_eq(cache_commit_package(c, tmp, sha), 0);
	free(tmp);
	free(data);
}

static void set_mtime(const char *path, time_t t)
{
	struct timespec ts[2] = {{t, 0}, {t, 0}};
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void set_pkg_time(struct pkg_cache *c, const char *sha, time_t t)
{
	char *p = cache_package_path(c, sha);
	set_mtime(p, t);
	free(p);
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	char *buf = calloc(1, 65536);
	ck_assert_ptr_nonnull(buf);
	fread(buf, 1, 65535, f);
	fclose(f);
	return buf;
}

/* --- layout, names ------------------------------------------------------------------------ */

START_TEST(test_layout)
{
	struct pkg_cache *c = open_cache(1 << 20);
	const char *dirs[] = {"packages", "extracted", "tmp", "locks"};
	for (size_t i = 0; i < 4; i++) {
		char *p = sub(dirs[i], "");
		struct stat st;
		ck_assert_int_eq(stat(p, &st), 0);
		ck_assert(S_ISDIR(st.st_mode));
		free(p);
	}
	char *tmp = sub("tmp", "");
	ck_assert_str_eq(cache_tmp_dir(c), tmp);
	free(tmp);
	cache_close(c);

	/* Opening again is fine; a file in the way is a sentence in err. */
	c = open_cache(1);
	cache_close(c);
	char *file = sub("afile", "");
	write_file(file, "x", 1);
	char err[256] = "";
	ck_assert_ptr_null(cache_open(file, 1, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "cannot create cache directory"));
	free(file);
}
END_TEST

START_TEST(test_invalid_sha)
{
	static const char *const bad[] = {
		"ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
		"abcdef0123456789abcdef0123456789abcdef0123456789abcdef012345678",
		"abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567890",
		"../../../../../../../../../../../../../../../../../../../../etc/x",
		"",
		NULL,
	};
	struct pkg_cache *c = open_cache(1 << 20);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *s = bad[i];
		bool corrupt = true;
		errno = 0;
		ck_assert_ptr_null(cache_package_path(c, s));
		ck_assert_int_eq(errno, EINVAL);
		errno = 0;
		ck_assert_ptr_null(cache_extracted_path(c, s));
		ck_assert_int_eq(errno, EINVAL);
		errno = 0;
		ck_assert_int_eq(cache_lock(c, s, 0), -1);
		ck_assert_int_eq(errno, EINVAL);
		errno = 0;
		ck_assert_int_eq(cache_pin(c, s, 0), -1);
		ck_assert_int_eq(errno, EINVAL);
		errno = 0;
		ck_assert(!cache_package_ok(c, s, &corrupt));
		ck_assert_int_eq(errno, EINVAL);
		ck_assert(!corrupt);
		errno = 0;
		ck_assert(!cache_extracted_ok(c, s, &corrupt));
		ck_assert_int_eq(errno, EINVAL);
		errno = 0;
		ck_assert_int_eq(cache_commit_package(c, "/nonexistent", s), -1);
		ck_assert_int_eq(errno, EINVAL);
		errno = 0;
		ck_assert_int_eq(cache_commit_extracted(c, "/nonexistent", s), -1);
		ck_assert_int_eq(errno, EINVAL);
	}
	ck_assert_int_eq(count_sub("locks"), 0);
	cache_close(c);
}
END_TEST

/* --- packages ----------------------------------------------------------------------------- */

START_TEST(test_commit_package)
{
	struct pkg_cache *c = open_cache(1 << 20);
	char sha[65];
	add_package(c, 'p', 1000, sha);
	char *path = cache_package_path(c, sha);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 1000);
	ck_assert_int_eq(count_sub("tmp"), 0);  /* the temp file became the entry */

	/* Committing again: the new temp is dropped, the entry untouched. */
	char *tmp = make_tmp_file(c, "other", 5);
	ck_assert_int_eq(cache_commit_package(c, tmp, sha), 0);
	ck_assert(!exists(tmp));
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 1000);
	ck_assert_int_eq(count_sub("tmp"), 0);
	ck_assert_int_eq(count_sub("packages"), 1);
	free(tmp);
	free(path);
	cache_close(c);
}
END_TEST

START_TEST(test_package_ok_and_corrupt)
{
	struct pkg_cache *c = open_cache(1 << 20);
	char sha[65];
	bool corrupt = true;
	sha256_hex("absent", 6, sha);
	ck_assert(!cache_package_ok(c, sha, &corrupt));
	ck_assert(!corrupt);

	add_package(c, 'q', 4096, sha);
	char *path = cache_package_path(c, sha);
	set_mtime(path, 1000);
	ck_assert(cache_package_ok(c, sha, &corrupt));
	ck_assert(!corrupt);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_gt(st.st_mtim.tv_sec, time(NULL) - 60);  /* touched for LRU */

	/* One modified byte. */
	int fd = open(path, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "x", 1, 2000), 1);
	close(fd);
	ck_assert(!cache_package_ok(c, sha, &corrupt));
	ck_assert(corrupt);
	ck_assert(!exists(path));

	/* A symlink where the file should be is corrupt too, and removed without following. */
	char *target = sub("target", "");
	write_file(target, "keep", 4);
	ck_assert_int_eq(symlink(target, path), 0);
	ck_assert(!cache_package_ok(c, sha, &corrupt));
	ck_assert(corrupt);
	ck_assert(!exists(path));
	ck_assert(exists(target));
	free(target);
	free(path);
	cache_close(c);
}
END_TEST

/* --- extracted trees ---------------------------------------------------------------------- */

static char *make_tree(struct pkg_cache *c)
{
	char *t = cache_make_tmp_dir(c);
	ck_assert_ptr_nonnull(t);
	char p[512];
	snprintf(p, sizeof p, "%s/a.txt", t);
	write_file(p, "hello", 5);
	snprintf(p, sizeof p, "%s/with space%%.txt", t);
	write_file(p, "s", 1);
	snprintf(p, sizeof p, "%s/sub", t);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof p, "%s/sub/deeper", t);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof p, "%s/sub/b.bin", t);
	char buf[100];
	memset(buf, 'b', sizeof buf);
	write_file(p, buf, sizeof buf);
	snprintf(p, sizeof p, "%s/link", t);
	ck_assert_int_eq(symlink("a.txt", p), 0);
	return t;
}

static void commit_tree(struct pkg_cache *c, const char *sha)
{
	char *t = make_tree(c);
	ck_assert_int_eq(cache_commit_extracted(c, t, sha), 0);
	ck_assert(!exists(t));
	free(t);
}

START_TEST(test_extracted_commit_ok)
{
	struct pkg_cache *c = open_cache(1 << 20);
	char sha[65];
	bool corrupt = true;
	sha256_hex("tree", 4, sha);
	ck_assert(!cache_extracted_ok(c, sha, &corrupt));
	ck_assert(!corrupt);
	commit_tree(c, sha);
	ck_assert_int_eq(count_sub("tmp"), 0);
	ck_assert(cache_extracted_ok(c, sha, &corrupt));
	ck_assert(!corrupt);

	char *ext = cache_extracted_path(c, sha);
	char inv_path[512];
	snprintf(inv_path, sizeof inv_path, "%s/.par-extracted", ext);
	char *inv = read_all(inv_path);
	ck_assert_ptr_nonnull(strstr(inv, "f 5 a.txt\n"));
	ck_assert_ptr_nonnull(strstr(inv, "f 100 sub/b.bin\n"));
	ck_assert_ptr_nonnull(strstr(inv, "d 0 sub\n"));
	ck_assert_ptr_nonnull(strstr(inv, "d 0 sub/deeper\n"));
	ck_assert_ptr_nonnull(strstr(inv, "l 0 link a.txt\n"));
	ck_assert_ptr_nonnull(strstr(inv, "f 1 with%20space%25.txt\n"));
	free(inv);

	/* A second commit of the same sha drops its temp tree. */
	char *t = make_tree(c);
	ck_assert_int_eq(cache_commit_extracted(c, t, sha), 0);
	ck_assert(!exists(t));
	ck_assert_int_eq(count_sub("tmp"), 0);
	ck_assert_int_eq(count_sub("extracted"), 1);
	free(t);
	free(ext);
	cache_close(c);
}
END_TEST

/* Commits the tree, damages it with how, and expects detection and removal. */
static void check_damage(void (*how)(const char *ext))
{
	struct pkg_cache *c = open_cache(1 << 20);
	char sha[65];
	bool corrupt = false;
	sha256_hex("tree", 4, sha);
	commit_tree(c, sha);
	char *ext = cache_extracted_path(c, sha);
	how(ext);
	ck_assert(!cache_extracted_ok(c, sha, &corrupt));
	ck_assert(corrupt);
	ck_assert(!exists(ext));
	/* A fresh commit replaces it. */
	commit_tree(c, sha);
	ck_assert(cache_extracted_ok(c, sha, &corrupt));
	ck_assert(!corrupt);
	free(ext);
	cache_close(c);
}

static void in_tree(char *out, size_t n, const char *ext, const char *rel)
{
	snprintf(out, n, "%s/%s", ext, rel);
}

static void damage_delete(const char *ext)
{
	char p[512];
	in_tree(p, sizeof p, ext, "sub/b.bin");
	ck_assert_int_eq(unlink(p), 0);
}

static void damage_size(const char *ext)
{
	char p[512];
	in_tree(p, sizeof p, ext, "a.txt");
	write_file(p, "hello!", 6);
}

static void damage_symlink(const char *ext)
{
	char p[512];
	in_tree(p, sizeof p, ext, "sub/evil");
	ck_assert_int_eq(symlink("/etc/passwd", p), 0);
}

static void damage_file_to_symlink(const char *ext)
{
	char p[512];
	in_tree(p, sizeof p, ext, "sub/b.bin");
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(symlink("/etc/passwd", p), 0);
}

static void damage_link_target(const char *ext)
{
	char p[512];
	in_tree(p, sizeof p, ext, "link");
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(symlink("sub/b.bin", p), 0);
}

static void damage_dir_gone(const char *ext)
{
	char p[512];
	in_tree(p, sizeof p, ext, "sub/deeper");
	ck_assert_int_eq(rmdir(p), 0);
}

static void damage_no_inventory(const char *ext)
{
	char p[512];
	in_tree(p, sizeof p, ext, ".par-extracted");
	ck_assert_int_eq(unlink(p), 0);
}

START_TEST(test_tree_file_deleted) { check_damage(damage_delete); }
END_TEST
START_TEST(test_tree_size_changed) { check_damage(damage_size); }
END_TEST
START_TEST(test_tree_symlink_planted) { check_damage(damage_symlink); }
END_TEST
START_TEST(test_tree_file_became_symlink) { check_damage(damage_file_to_symlink); }
END_TEST
START_TEST(test_tree_link_retargeted) { check_damage(damage_link_target); }
END_TEST
START_TEST(test_tree_dir_gone) { check_damage(damage_dir_gone); }
END_TEST
START_TEST(test_tree_no_inventory) { check_damage(damage_no_inventory); }
END_TEST

/* --- locks -------------------------------------------------------------------------------- */

struct child {
	pid_t pid;
	int to_child;    /* parent writes: release */
	int from_child;  /* child writes: holding */
};

/* Forks a child that takes the entry's lock (or pin), reports, and holds it until told; with
 * unlink_first it then unlinks the lock file before releasing, as eviction does. */
static struct child hold_in_child_ex(const char *sha, bool pin, bool unlink_first)
{
	int up[2], down[2];
	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		char err[256];
		struct pkg_cache *c = cache_open(root, 1 << 20, err, sizeof err);
		int fd = c ? (pin ? cache_pin(c, sha, 1000) : cache_lock(c, sha, 1000)) : -1;
		char ch = fd >= 0 ? 'L' : 'E';
		if (write(up[1], &ch, 1) != 1)
			_exit(2);
		if (read(down[0], &ch, 1) < 0)
			_exit(2);
		if (unlink_first) {
			char *dir = sub("locks", sha);
			char path[512];
			snprintf(path, sizeof path, "%s.lock", dir);
			free(dir);
			if (unlink(path) != 0)
				_exit(3);
		}
		cache_unlock(fd);
		cache_close(c);
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	char ch = 0;
	ck_assert_int_eq(read(up[0], &ch, 1), 1);
	ck_assert_int_eq(ch, 'L');
	return (struct child){pid, down[1], up[0]};
}

static struct child hold_in_child(const char *sha, bool pin)
{
	return hold_in_child_ex(sha, pin, false);
}

static void release_child(struct child *ch)
{
	ck_assert_int_eq(write(ch->to_child, "g", 1), 1);
	int status;
	ck_assert_int_eq(waitpid(ch->pid, &status, 0), ch->pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(ch->to_child);
	close(ch->from_child);
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

START_TEST(test_lock_timeout_then_success)
{
	struct pkg_cache *c = open_cache(1 << 20);
	char sha[65];
	sha256_hex("locked", 6, sha);
	struct child ch = hold_in_child(sha, false);

	long t0 = now_ms();
	errno = 0;
	ck_assert_int_eq(cache_lock(c, sha, 200), -1);
	long took = now_ms() - t0;
	ck_assert_int_eq(errno, ETIMEDOUT);
	ck_assert_int_ge(took, 190);
	ck_assert_int_lt(took, 2000);

	/* A pin is shared and does not wait for the exclusive fill lock's holder... */
	int pin = cache_pin(c, sha, 0);
	ck_assert_int_ge(pin, 0);
	cache_unlock(pin);

	release_child(&ch);
	int fd = cache_lock(c, sha, 1000);
	ck_assert_int_ge(fd, 0);
	cache_unlock(fd);
	cache_close(c);
}
END_TEST

START_TEST(test_lock_waits_for_release)
{
	struct pkg_cache *c = open_cache(1 << 20);
	char sha[65];
	sha256_hex("handoff", 7, sha);
	struct child ch = hold_in_child(sha, false);
	/* Released while we wait: the wait ends early, with the lock. */
	pid_t releaser = fork();
	ck_assert_int_ge(releaser, 0);
	if (releaser == 0) {
		usleep(150 * 1000);
		_exit(write(ch.to_child, "g", 1) == 1 ? 0 : 1);
	}
	long t0 = now_ms();
	int fd = cache_lock(c, sha, 5000);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_lt(now_ms() - t0, 4000);
	cache_unlock(fd);
	int status;
	waitpid(releaser, &status, 0);
	waitpid(ch.pid, &status, 0);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(ch.to_child);
	close(ch.from_child);
	cache_close(c);
}
END_TEST

START_TEST(test_lock_survives_unlinked_lock_file)
{
	struct pkg_cache *c = open_cache(1 << 20);
	char sha[65];
	sha256_hex("unlinked", 8, sha);
	struct child ch = hold_in_child_ex(sha, false, true);
	pid_t releaser = fork();
	ck_assert_int_ge(releaser, 0);
	if (releaser == 0) {
		usleep(150 * 1000);  /* the parent is polling the old inode by now */
		_exit(write(ch.to_child, "g", 1) == 1 ? 0 : 1);
	}
	int fd = cache_lock(c, sha, 5000);
	ck_assert_int_ge(fd, 0);
	/* A lock won on the unlinked inode would exclude nobody: it must be the file at the path. */
	char *dir = sub("locks", sha);
	char path[512];
	snprintf(path, sizeof path, "%s.lock", dir);
	free(dir);
	struct stat a, b;
	ck_assert_int_eq(fstat(fd, &a), 0);
	ck_assert_int_eq(stat(path, &b), 0);
	ck_assert(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	cache_unlock(fd);
	int status;
	waitpid(releaser, &status, 0);
	ck_assert_int_eq(waitpid(ch.pid, &status, 0), ch.pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(ch.to_child);
	close(ch.from_child);
	cache_close(c);
}
END_TEST

/* One racer: lock, check, fill if missing, commit, unlock. Writes 'F' to fills if it filled. */
static int racer(int start_fd, int fills_fd)
{
	char ch;
	if (read(start_fd, &ch, 1) < 0)
		return 10;
	static const char content[] = "the one package both pards want";
	char sha[65], err[256];
	sha256_hex(content, sizeof content - 1, sha);
	struct pkg_cache *c = cache_open(root, 1 << 20, err, sizeof err);
	if (!c)
		return 11;
	int rc = 0;
	int fd = cache_lock(c, sha, 10000);
	if (fd < 0) {
		rc = 12;
		goto out;
	}
	bool corrupt;
	if (!cache_package_ok(c, sha, &corrupt)) {
		usleep(50 * 1000);  /* a slow download widens the window */
		char *tmp = make_tmp_file(c, content, sizeof content - 1);
		if (cache_commit_package(c, tmp, sha) != 0)
			rc = 13;
		free(tmp);
		char *t = cache_make_tmp_dir(c);
		char p[512];
		snprintf(p, sizeof p, "%s/agent.yaml", t ? t : "/nonexistent");
		write_file(p, "name: x\n", 8);
		if (cache_commit_extracted(c, t, sha) != 0)
			rc = 14;
		free(t);
		if (write(fills_fd, "F", 1) != 1)
			rc = 15;
	}
	if (!rc && (!cache_package_ok(c, sha, &corrupt) || !cache_extracted_ok(c, sha, &corrupt)))
		rc = 16;
	cache_unlock(fd);
out:
	cache_close(c);
	return rc;
}

START_TEST(test_two_racers_one_entry)
{
	int start[2], fills[2];
	ck_assert_int_eq(pipe(start), 0);
	ck_assert_int_eq(pipe(fills), 0);
	pid_t pids[2];
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0) {
			close(start[1]);
			close(fills[0]);
			_exit(racer(start[0], fills[1]));
		}
	}
	close(start[0]);
	close(fills[1]);
	close(start[1]);  /* both racers' reads return together */
	for (int i = 0; i < 2; i++) {
		int status;
		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "racer %d: %d", i,
			      WEXITSTATUS(status));
	}
	char buf[8];
	ck_assert_int_eq(read(fills[0], buf, sizeof buf), 1);  /* exactly one filled */
	close(fills[0]);
	ck_assert_int_eq(count_sub("packages"), 1);
	ck_assert_int_eq(count_sub("extracted"), 1);
	ck_assert_int_eq(count_sub("tmp"), 0);
}
END_TEST

/* --- eviction ----------------------------------------------------------------------------- */

START_TEST(test_evict_lru)
{
	struct pkg_cache *c = open_cache(1 << 20);
	char a[65], b[65], cc[65], d[65], e[65];
	add_package(c, 'a', 1000, a);
	add_package(c, 'b', 1000, b);
	add_package(c, 'c', 1000, cc);
	add_package(c, 'd', 1000, d);
	add_package(c, 'e', 1000, e);
	set_pkg_time(c, a, 1000);   /* oldest, but kept by the caller */
	set_pkg_time(c, b, 2000);   /* locked by another process */
	set_pkg_time(c, cc, 3000);
	set_pkg_time(c, d, 4000);
	set_pkg_time(c, e, 500);    /* old package, but its tree was used last */
	commit_tree(c, e);
	char *ext_e = cache_extracted_path(c, e);
	char inv[512];
	snprintf(inv, sizeof inv, "%s/.par-extracted", ext_e);
	set_mtime(inv, 6000);
	struct stat st;
	ck_assert_int_eq(stat(inv, &st), 0);
	uint64_t tree = 5 + 1 + 100 + (uint64_t)st.st_size;
	uint64_t before = cache_size(c);
	ck_assert_uint_eq(before, 5000 + tree);
	cache_close(c);

	/* The cap forces out two 1000-byte entries. */
	uint64_t cap = before - 1500;
	c = open_cache(cap);
	struct child ch = hold_in_child(b, false);
	ck_assert_uint_eq(cache_evict(c, a), 2000);
	ck_assert_uint_le(cache_size(c), cap);
	ck_assert_uint_eq(cache_size(c), before - 2000);
	bool corrupt;
	ck_assert(cache_package_ok(c, a, &corrupt));
	ck_assert(cache_package_ok(c, b, &corrupt));
	ck_assert(!cache_package_ok(c, cc, &corrupt));
	ck_assert(!cache_package_ok(c, d, &corrupt));
	ck_assert(cache_package_ok(c, e, &corrupt));
	ck_assert(cache_extracted_ok(c, e, &corrupt));
	release_child(&ch);
	free(ext_e);
	cache_close(c);
}
END_TEST

START_TEST(test_evict_respects_own_and_pinned)
{
	struct pkg_cache *c = open_cache(0);
	char a[65], b[65], x[65];
	add_package(c, 'a', 100, a);
	add_package(c, 'b', 100, b);
	add_package(c, 'x', 100, x);
	commit_tree(c, x);
	int own = cache_lock(c, a, 0);          /* this process's lock counts as held */
	ck_assert_int_ge(own, 0);
	struct child ch = hold_in_child(b, true);  /* another process runs from b */
	uint64_t xsize = cache_size(c) - 200;
	ck_assert_uint_eq(cache_evict(c, NULL), xsize);
	bool corrupt;
	ck_assert(!cache_package_ok(c, x, &corrupt));
	ck_assert(!cache_extracted_ok(c, x, &corrupt));
	ck_assert(!corrupt);
	ck_assert(cache_package_ok(c, a, &corrupt));
	ck_assert(cache_package_ok(c, b, &corrupt));
	ck_assert_uint_eq(cache_size(c), 200);
	/* The evicted entry's lock files went with it; the held ones stay. */
	char *xlock = sub("locks", x);
	char path[512];
	snprintf(path, sizeof path, "%s.lock", xlock);
	ck_assert(!exists(path));
	free(xlock);

	/* Once released, both go (and the lock is still usable afterwards). */
	cache_unlock(own);
	release_child(&ch);
	ck_assert_uint_eq(cache_evict(c, NULL), 200);
	ck_assert_uint_eq(cache_size(c), 0);
	own = cache_lock(c, a, 0);
	ck_assert_int_ge(own, 0);
	cache_unlock(own);
	cache_close(c);
}
END_TEST

START_TEST(test_evict_under_cap_keeps_all)
{
	struct pkg_cache *c = open_cache(10000);
	char a[65], b[65];
	add_package(c, 'a', 1000, a);
	add_package(c, 'b', 1000, b);
	ck_assert_uint_eq(cache_evict(c, NULL), 0);
	ck_assert_uint_eq(cache_size(c), 2000);
	cache_close(c);
}
END_TEST

START_TEST(test_evict_tmp_leftovers)
{
	struct pkg_cache *c = open_cache(1 << 20);
	char *old_file = sub("tmp", "pkg.old");
	char *old_dir = sub("tmp", "extract.old");
	char *fresh = sub("tmp", "pkg.fresh");
	write_file(old_file, "x", 1);
	write_file(fresh, "y", 1);
	ck_assert_int_eq(mkdir(old_dir, 0700), 0);
	char inner[512];
	snprintf(inner, sizeof inner, "%s/inner", old_dir);
	write_file(inner, "z", 1);
	time_t two_hours_ago = time(NULL) - 7200;
	set_mtime(old_file, two_hours_ago);
	set_mtime(old_dir, two_hours_ago);
	cache_evict(c, NULL);
	ck_assert(!exists(old_file));
	ck_assert(!exists(old_dir));
	ck_assert(exists(fresh));
	free(old_file);
	free(old_dir);
	free(fresh);
	cache_close(c);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("cache");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_layout);
	tcase_add_test(tc, test_invalid_sha);
	tcase_add_test(tc, test_commit_package);
	tcase_add_test(tc, test_package_ok_and_corrupt);
	tcase_add_test(tc, test_extracted_commit_ok);
	tcase_add_test(tc, test_tree_file_deleted);
	tcase_add_test(tc, test_tree_size_changed);
	tcase_add_test(tc, test_tree_symlink_planted);
	tcase_add_test(tc, test_tree_file_became_symlink);
	tcase_add_test(tc, test_tree_link_retargeted);
	tcase_add_test(tc, test_tree_dir_gone);
	tcase_add_test(tc, test_tree_no_inventory);
	tcase_add_test(tc, test_lock_timeout_then_success);
	tcase_add_test(tc, test_lock_waits_for_release);
	tcase_add_test(tc, test_lock_survives_unlinked_lock_file);
	tcase_add_test(tc, test_two_racers_one_entry);
	tcase_add_test(tc, test_evict_lru);
	tcase_add_test(tc, test_evict_respects_own_and_pinned);
	tcase_add_test(tc, test_evict_under_cap_keeps_all);
	tcase_add_test(tc, test_evict_tmp_leftovers);
	suite_add_tcase(s, tc);
	return s;
}
