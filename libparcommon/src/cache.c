/* The content-addressed package cache (SPEC §2, §3): verified entries, atomic commits, flock
 * coordination between pards sharing the directory, and LRU eviction under the size cap. */
#include "par/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "par/fsutil.h"
#include "par/hash.h"
#include "par/strbuf.h"

#define CACHE_SHA_LEN 64
#define CACHE_INVENTORY ".par-extracted"
#define CACHE_INVENTORY_HEADER "par-extracted 1\n"
#define CACHE_INVENTORY_MAX (64u << 20)  /* far beyond 10,000 entries; larger is garbage */
#define CACHE_LOCK_POLL_MS 20
#define CACHE_TMP_MAX_AGE_SEC 3600
#define CACHE_WALK_MAX_DEPTH 256         /* one fd per level; deeper trees are refused */

struct pkg_cache {
	pthread_mutex_t mu;  /* serialises evictions and size scans of this struct */
	uint64_t max_bytes;
	char *dir;
	char *pkg_dir;
	char *ext_dir;
	char *tmp_dir;
	char *lock_dir;
};

/* --- names and paths ---------------------------------------------------------------------- */

static bool cache_sha_valid(const char *sha)
{
	if (!sha)
		return false;
	for (int i = 0; i < CACHE_SHA_LEN; i++) {
		char ch = sha[i];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return false;
	}
	return sha[CACHE_SHA_LEN] == '\0';
}

/* "a/b<suffix>" as a malloc'd string. */
static char *cache_join(const char *a, const char *b, const char *suffix)
{
	size_t n = strlen(a) + 1 + strlen(b) + strlen(suffix) + 1;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s%s", a, b, suffix);
	return p;
}

/* Path under one of the layout directories for a sha, after validating it. */
static char *cache_sha_path(const char *dir, const char *sha, const char *suffix)
{
	if (!cache_sha_valid(sha)) {
		errno = EINVAL;
		return NULL;
	}
	return cache_join(dir, sha, suffix);
}

char *cache_package_path(const struct pkg_cache *c, const char *sha256)
{
	return cache_sha_path(c->pkg_dir, sha256, ".apkg");
}

char *cache_extracted_path(const struct pkg_cache *c, const char *sha256)
{
	return cache_sha_path(c->ext_dir, sha256, "");
}

const char *cache_tmp_dir(const struct pkg_cache *c)
{
	return c->tmp_dir;
}

/* --- open / close ------------------------------------------------------------------------- */

void cache_close(struct pkg_cache *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->mu);
	free(c->dir);
	free(c->pkg_dir);
	free(c->ext_dir);
	free(c->tmp_dir);
	free(c->lock_dir);
	free(c);
}

static int cache_mkdirs(struct pkg_cache *c, char *err, size_t errlen)
{
	const char *dirs[] = {c->dir, c->pkg_dir, c->ext_dir, c->tmp_dir, c->lock_dir};
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		if (fs_mkdir_p(dirs[i], 0755) != 0) {
			snprintf(err, errlen, "cannot create cache directory %s: %s", dirs[i],
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

struct pkg_cache *cache_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen)
{
	if (!dir || !*dir) {
		snprintf(err, errlen, "cache directory is empty");
		errno = EINVAL;
		return NULL;
	}
	struct pkg_cache *c = calloc(1, sizeof(*c));
	if (!c)
		goto oom;
	pthread_mutex_init(&c->mu, NULL);
	c->max_bytes = max_bytes;
	c->dir = strdup(dir);
	if (!c->dir)
		goto oom;
	/* Trailing slashes would only double up in the paths built below. */
	for (size_t n = strlen(c->dir); n > 1 && c->dir[n - 1] == '/'; n--)
		c->dir[n - 1] = '\0';
	c->pkg_dir = cache_join(c->dir, "packages", "");
	c->ext_dir = cache_join(c->dir, "extracted", "");
	c->tmp_dir = cache_join(c->dir, "tmp", "");
	c->lock_dir = cache_join(c->dir, "locks", "");
	if (!c->pkg_dir || !c->ext_dir || !c->tmp_dir || !c->lock_dir)
		goto oom;
	if (cache_mkdirs(c, err, errlen) != 0) {
		int e = errno;
		cache_close(c);
		errno = e;
		return NULL;
	}
	return c;
oom:
	snprintf(err, errlen, "out of memory opening the cache");
	cache_close(c);
	errno = ENOMEM;
	return NULL;
}

/* --- locks -------------------------------------------------------------------------------- */

/* Lock files this process holds, process-wide because cache_unlock gets only the fd. Eviction
 * consults it before opening a lock file: on NFS (EFS) flock is emulated with POSIX locks, which
 * do not conflict within one process and are dropped when any fd of the file is closed. */
struct cache_held {
	int fd;
	char *path;
};
static pthread_mutex_t cache_held_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cache_held *cache_held;
static size_t cache_held_n, cache_held_cap;

static int cache_held_add(int fd, const char *path)
{
	int rc = -1;
	pthread_mutex_lock(&cache_held_mu);
	if (cache_held_n == cache_held_cap) {
		size_t cap = cache_held_cap ? cache_held_cap * 2 : 8;
		struct cache_held *h = realloc(cache_held, cap * sizeof(*h));
		if (!h)
			goto out;
		cache_held = h;
		cache_held_cap = cap;
	}
	char *p = strdup(path);
	if (!p)
		goto out;
	cache_held[cache_held_n++] = (struct cache_held){fd, p};
	rc = 0;
out:
	pthread_mutex_unlock(&cache_held_mu);
	return rc;
}

static void cache_held_remove(int fd)
{
	pthread_mutex_lock(&cache_held_mu);
	for (size_t i = 0; i < cache_held_n; i++) {
		if (cache_held[i].fd != fd)
			continue;
		free(cache_held[i].path);
		cache_held[i] = cache_held[--cache_held_n];
		break;
	}
	if (cache_held_n == 0) {
		free(cache_held);
		cache_held = NULL;
		cache_held_cap = 0;
	}
	pthread_mutex_unlock(&cache_held_mu);
}

static bool cache_held_has(const char *path)
{
	bool found = false;
	pthread_mutex_lock(&cache_held_mu);
	for (size_t i = 0; i < cache_held_n && !found; i++)
		found = strcmp(cache_held[i].path, path) == 0;
	pthread_mutex_unlock(&cache_held_mu);
	return found;
}

static void cache_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int64_t cache_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* True when fd still is the file at path: eviction unlinks lock files while holding them, so a
 * lock won on an unlinked inode protects nothing and must be retried. */
static bool cache_fd_is_path(int fd, const char *path)
{
	struct stat a, b;
	if (fstat(fd, &a) != 0 || stat(path, &b) != 0)
		return false;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Opens (creating) the lock file at path and flocks it with op, polling LOCK_NB every 20 ms
 * for up to wait_ms. The fd, or -1 with errno (ETIMEDOUT when the wait ran out). O_RDWR because
 * NFS emulates an exclusive flock with a write lock. */
static int cache_flock_path(const char *path, int op, int wait_ms)
{
	int64_t deadline = cache_now_ms() + (wait_ms > 0 ? wait_ms : 0);
	for (;;) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			return -1;
		while (flock(fd, op | LOCK_NB) != 0) {
			int e = errno;
			if ((e != EWOULDBLOCK && e != EINTR) || cache_now_ms() >= deadline) {
				close(fd);
				errno = e == EWOULDBLOCK ? ETIMEDOUT : e;
				return -1;
			}
			cache_sleep_ms(CACHE_LOCK_POLL_MS);
		}
		if (cache_fd_is_path(fd, path))
			return fd;
		close(fd);
		if (cache_now_ms() >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

static int cache_lock_file(struct pkg_cache *c, const char *sha256, const char *suffix, int op,
			   int wait_ms)
{
	char *path = cache_sha_path(c->lock_dir, sha256, suffix);
	if (!path)
		return -1;
	int fd = cache_flock_path(path, op, wait_ms);
	if (fd >= 0 && cache_held_add(fd, path) != 0) {
		close(fd);
		fd = -1;
		errno = ENOMEM;
	}
	free(path);
	return fd;
}

int cache_lock(struct pkg_cache *c, const char *sha256, int wait_ms)
{
	return cache_lock_file(c, sha256, ".lock", LOCK_EX, wait_ms);
}

int cache_pin(struct pkg_cache *c, const char *sha256, int wait_ms)
{
	return cache_lock_file(c, sha256, ".pin", LOCK_SH, wait_ms);
}

void cache_unlock(int lock_fd)
{
	if (lock_fd < 0)
		return;
	cache_held_remove(lock_fd);
	/* Explicit unlock: a forked child may share the open file description. */
	flock(lock_fd, LOCK_UN);
	close(lock_fd);
}

/* --- the package file --------------------------------------------------------------------- */

/* Removes whatever sits at path (file, symlink or directory) and syncs its directory. */
static void cache_discard(const char *dir, const char *path)
{
	fs_remove_tree(path);
	fs_fsync_dir(dir);
}

/* 1 verified, 0 present but wrong (corrupt), -1 absent or unreadable. */
static int cache_check_package(const char *path, const char *sha256)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP || errno == EISDIR ? 0 : -1;
	struct stat st;
	char hex[65] = "";
	int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && sha256_fd(fd, hex) == 0 &&
		 strcmp(hex, sha256) == 0;
	if (ok)
		futimens(fd, NULL);  /* the LRU use time; a read-only cache still serves hits */
	close(fd);
	return ok;
}

bool cache_package_ok(struct pkg_cache *c, const char *sha256, bool *corrupt)
{
	if (corrupt)
		*corrupt = false;
	char *path = cache_package_path(c, sha256);
	if (!path)
		return false;
	int r = cache_check_package(path, sha256);
	if (r == 0) {
		/* Also a read error: left in place, a bad file would block every re-fetch. */
		cache_discard(c->pkg_dir, path);
		if (corrupt)
			*corrupt = true;
	}
	free(path);
	return r == 1;
}

static bool cache_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

int cache_commit_package(struct pkg_cache *c, const char *tmp_path, const char *sha256)
{
	char *dest = cache_package_path(c, sha256);
	if (!dest)
		return -1;
	int rc = -1;
	if (cache_exists(dest)) {
		/* Content-addressed: the existing file has the same bytes (or is checked on use). */
		rc = unlink(tmp_path) == 0 || errno == ENOENT ? 0 : -1;
		goto out;
	}
	int fd = open(tmp_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		goto out;
	int ok = fchmod(fd, 0644) == 0 && fsync(fd) == 0 && futimens(fd, NULL) == 0;
	int e = errno;
	close(fd);
	if (!ok) {
		errno = e;
		goto out;
	}
	if (rename(tmp_path, dest) != 0)
		goto out;
	rc = fs_fsync_dir(c->pkg_dir);
out:
	free(dest);
	return rc;
}

/* --- the extracted tree and its inventory ------------------------------------------------- */

/* Inventory lines are "<type> <size> <path>[ <symlink target>]" with type f (regular file),
 * d (directory) or l (symlink); paths are relative to the tree root with bytes <= 0x20, 0x7f
 * and '%' percent-encoded, so a line is always space-separated and newline-free. */

static void cache_encode(struct strbuf *sb, const char *s, size_t n)
{
	static const char hexd[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= 0x20 || ch == 0x7f || ch == '%') {
			char esc[3] = {'%', hexd[ch >> 4], hexd[ch & 0xf]};
			sb_append(sb, esc, 3);
		} else {
			sb_putc(sb, (char)ch);
		}
	}
}

static void cache_sb_truncate(struct strbuf *sb, size_t len)
{
	if (!sb->buf || len > sb->len)
		return;
	sb->len = len;
	sb->buf[len] = '\0';
}

struct cache_walk;
/* Called for every entry below the root (the root's inventory excepted); dirfd holds name. */
typedef int (*cache_visit_fn)(struct cache_walk *w, int dirfd, const char *name,
			      const struct stat *st);

struct cache_walk {
	cache_visit_fn visit;
	void *ctx;
	struct strbuf rel;  /* encoded path of the entry being visited */
	bool sync;          /* fsync every directory walked */
};

static int cache_walk_dir(struct cache_walk *w, int fd, int depth);

static int cache_walk_entry(struct cache_walk *w, int dfd, const char *name, int depth)
{
	if (depth == 0 && strcmp(name, CACHE_INVENTORY) == 0)
		return 0;
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return -1;
	size_t saved = w->rel.len;
	if (depth > 0)
		sb_putc(&w->rel, '/');
	cache_encode(&w->rel, name, strlen(name));
	int rc = -1;
	if (w->rel.oom) {
		errno = ENOMEM;
		goto out;
	}
	if (w->visit(w, dfd, name, &st) != 0)
		goto out;
	rc = 0;
	if (S_ISDIR(st.st_mode)) {
		int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		rc = sub < 0 ? -1 : cache_walk_dir(w, sub, depth + 1);
	}
out:
	cache_sb_truncate(&w->rel, saved);
	return rc;
}

/* Walks the directory fd (which it closes) without following symlinks. */
static int cache_walk_dir(struct cache_walk *w, int fd, int depth)
{
	if (depth > CACHE_WALK_MAX_DEPTH || (w->sync && fsync(fd) != 0)) {
		int e = depth > CACHE_WALK_MAX_DEPTH ? ELOOP : errno;
		close(fd);
		errno = e;
		return -1;
	}
	DIR *d = fs_fdopendir(fd);
	if (!d)
		return -1;
	int rc = 0;
	struct dirent *de;
	errno = 0;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = cache_walk_entry(w, dirfd(d), de->d_name, depth);
		if (rc == 0)
			errno = 0;
	}
	if (rc == 0 && errno != 0)
		rc = -1;  /* readdir failed */
	int e = errno;
	closedir(d);
	errno = e;
	return rc;
}

/* Encoded target of the symlink name in dfd appended to sb. */
static int cache_put_link(struct strbuf *sb, int dfd, const char *name)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(dfd, name, target, sizeof target);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof target) {
		errno = ENAMETOOLONG;
		return -1;
	}
	cache_encode(sb, target, (size_t)n);
	return 0;
}

/* Commit walk: one inventory line per entry, every regular file fsynced. */
static int cache_inventory_visit(struct cache_walk *w, int dfd, const char *name,
				 const struct stat *st)
{
	struct strbuf *out = w->ctx;
	if (S_ISDIR(st->st_mode)) {
		sb_printf(out, "d 0 %s\n", w->rel.buf);
		return 0;
	}
	if (S_ISLNK(st->st_mode)) {
		sb_printf(out, "l 0 %s ", w->rel.buf);
		if (cache_put_link(out, dfd, name) != 0)
			return -1;
		sb_putc(out, '\n');
		return 0;
	}
	if (!S_ISREG(st->st_mode)) {
		errno = EINVAL;  /* devices and fifos never belong in a package */
		return -1;
	}
	sb_printf(out, "f %llu %s\n", (unsigned long long)st->st_size, w->rel.buf);
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* Walks tmp_dir and writes its inventory into it (durably). */
static int cache_write_inventory(const char *tmp_dir)
{
	struct strbuf inv = STRBUF_INIT;
	struct cache_walk w = {cache_inventory_visit, &inv, STRBUF_INIT, true};
	char *path = cache_join(tmp_dir, CACHE_INVENTORY, "");
	int rc = -1;
	if (!path)
		goto out;
	sb_puts(&inv, CACHE_INVENTORY_HEADER);
	int fd = open(tmp_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || cache_walk_dir(&w, fd, 0) != 0)
		goto out;
	if (inv.oom) {
		errno = ENOMEM;
		goto out;
	}
	rc = fs_replace_file(tmp_dir, path, inv.buf, inv.len, 0644);
out:
	free(path);
	sb_free(&inv);
	sb_free(&w.rel);
	return rc;
}

char *cache_make_tmp_dir(struct pkg_cache *c)
{
	char *p = cache_join(c->tmp_dir, "extract.XXXXXX", "");
	if (p && !mkdtemp(p)) {
		int e = errno;
		free(p);
		errno = e;
		return NULL;
	}
	return p;
}

int cache_commit_extracted(struct pkg_cache *c, const char *tmp_dir, const char *sha256)
{
	char *dest = cache_extracted_path(c, sha256);
	if (!dest)
		return -1;
	int rc = -1;
	if (cache_exists(dest)) {
		rc = fs_remove_tree(tmp_dir);
		goto out;
	}
	/* mkdtemp made it private for the extraction; the entry is as readable as the layout. */
	if (chmod(tmp_dir, 0755) != 0 || cache_write_inventory(tmp_dir) != 0)
		goto out;
	if (rename(tmp_dir, dest) != 0) {
		/* Another process committed the same tree between the check and the rename. */
		if (errno == ENOTEMPTY || errno == EEXIST)
			rc = fs_remove_tree(tmp_dir);
		goto out;
	}
	rc = fs_fsync_dir(c->ext_dir);
out:
	free(dest);
	return rc;
}

/* --- checking a tree against its inventory ------------------------------------------------ */

struct cache_item {
	char *path;    /* encoded; points into the inventory text */
	char *target;  /* symlinks only */
	uint64_t size;
	char type;
	bool seen;
};

struct cache_inventory {
	char *text;
	struct cache_item *items;
	size_t n;
	uint64_t bytes;  /* regular-file bytes listed, plus the inventory itself */
	bool mismatch;   /* the walk found something the inventory does not list */
};

static void cache_inventory_free(struct cache_inventory *inv)
{
	free(inv->text);
	free(inv->items);
	memset(inv, 0, sizeof(*inv));
}

/* Whole small file read from dfd/name into a NUL-terminated malloc'd buffer. */
static char *cache_read_small(int dfd, const char *name, size_t max, size_t *len)
{
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	char *buf = NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		errno = EINVAL;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		goto out;
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*len = got;
out:
	close(fd);
	return buf;
}

/* Parses one line (NUL-terminated, no newline) into it. 0 ok, -1 malformed. */
static int cache_parse_line(char *line, struct cache_item *it)
{
	char *sp1 = strchr(line, ' ');
	if (!sp1 || sp1 != line + 1 || !strchr("fdl", line[0]))
		return -1;
	char *end;
	errno = 0;
	unsigned long long size = strtoull(sp1 + 1, &end, 10);
	if (errno != 0 || end == sp1 + 1 || *end != ' ' || end[1] == '\0')
		return -1;
	*it = (struct cache_item){.path = end + 1, .size = size, .type = line[0]};
	char *sp2 = strchr(it->path, ' ');
	if ((it->type == 'l') != (sp2 != NULL))
		return -1;
	if (sp2) {
		*sp2 = '\0';
		it->target = sp2 + 1;
		if (strchr(it->target, ' '))
			return -1;
	}
	return 0;
}

static int cache_item_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cache_item *)a)->path, ((const struct cache_item *)b)->path);
}

/* Loads and parses the inventory of the tree dfd. 0 ok, -1 missing or malformed. */
static int cache_inventory_load(int dfd, struct cache_inventory *inv)
{
	size_t len = 0, cap = 0;
	memset(inv, 0, sizeof(*inv));
	inv->text = cache_read_small(dfd, CACHE_INVENTORY, CACHE_INVENTORY_MAX, &len);
	size_t hlen = strlen(CACHE_INVENTORY_HEADER);
	if (!inv->text || len < hlen || memcmp(inv->text, CACHE_INVENTORY_HEADER, hlen) != 0 ||
	    inv->text[len - 1] != '\n' || strlen(inv->text) != len)
		goto bad;
	inv->bytes = len;
	for (char *line = inv->text + hlen; *line;) {
		char *nl = strchr(line, '\n');
		*nl = '\0';
		if (inv->n == cap) {
			cap = cap ? cap * 2 : 64;
			struct cache_item *items = realloc(inv->items, cap * sizeof(*items));
			if (!items)
				goto bad;
			inv->items = items;
		}
		if (cache_parse_line(line, &inv->items[inv->n]) != 0)
			goto bad;
		if (inv->items[inv->n].type == 'f')
			inv->bytes += inv->items[inv->n].size;
		inv->n++;
		line = nl + 1;
	}
	if (inv->n > 0)
		qsort(inv->items, inv->n, sizeof(*inv->items), cache_item_cmp);
	return 0;
bad:
	cache_inventory_free(inv);
	return -1;
}

static bool cache_link_matches(int dfd, const char *name, const char *want)
{
	struct strbuf sb = STRBUF_INIT;
	bool ok = cache_put_link(&sb, dfd, name) == 0 && !sb.oom &&
		  strcmp(sb.buf ? sb.buf : "", want) == 0;
	sb_free(&sb);
	return ok;
}

/* Check walk: every entry must be listed with the same type, size and link target. */
static int cache_check_visit(struct cache_walk *w, int dfd, const char *name,
			     const struct stat *st)
{
	struct cache_inventory *inv = w->ctx;
	struct cache_item key = {.path = w->rel.buf};
	struct cache_item *it = inv->n ? bsearch(&key, inv->items, inv->n, sizeof(*inv->items),
						 cache_item_cmp) : NULL;
	bool ok = it && !it->seen;
	if (ok && it->type == 'f')
		ok = S_ISREG(st->st_mode) && (uint64_t)st->st_size == it->size;
	else if (ok && it->type == 'd')
		ok = S_ISDIR(st->st_mode);
	else if (ok)
		ok = S_ISLNK(st->st_mode) && cache_link_matches(dfd, name, it->target);
	if (!ok) {
		inv->mismatch = true;
		return -1;  /* stops the walk */
	}
	it->seen = true;
	return 0;
}

/* True when the tree at path matches its inventory exactly. */
static bool cache_tree_matches(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct cache_inventory inv;
	struct cache_walk w = {cache_check_visit, &inv, STRBUF_INIT, false};
	bool ok = false;
	if (cache_inventory_load(fd, &inv) != 0)
		goto out;
	int inv_fd = openat(fd, CACHE_INVENTORY, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int walk_fd = dup(fd);
	ok = walk_fd >= 0 && cache_walk_dir(&w, walk_fd, 0) == 0 && !inv.mismatch;
	for (size_t i = 0; ok && i < inv.n; i++)
		ok = inv.items[i].seen;
	if (ok && inv_fd >= 0)
		futimens(inv_fd, NULL);  /* the LRU use time of the tree */
	if (inv_fd >= 0)
		close(inv_fd);
	cache_inventory_free(&inv);
out:
	sb_free(&w.rel);
	close(fd);
	return ok;
}

bool cache_extracted_ok(struct pkg_cache *c, const char *sha256, bool *corrupt)
{
	if (corrupt)
		*corrupt = false;
	char *path = cache_extracted_path(c, sha256);
	if (!path)
		return false;
	bool ok = cache_tree_matches(path);
	if (!ok && cache_exists(path)) {
		cache_discard(c->ext_dir, path);
		if (corrupt)
			*corrupt = true;
	}
	free(path);
	return ok;
}

/* --- sizes and eviction ------------------------------------------------------------------- */

struct cache_entry {
	char sha[CACHE_SHA_LEN + 1];
	uint64_t bytes;
	struct timespec used;  /* the newer of the package's and the tree's use time */
};

struct cache_entries {
	struct cache_entry *v;
	size_t n, cap;
};

static struct cache_entry *cache_entry_get(struct cache_entries *es, const char *sha)
{
	for (size_t i = 0; i < es->n; i++)
		if (strcmp(es->v[i].sha, sha) == 0)
			return &es->v[i];
	if (es->n == es->cap) {
		size_t cap = es->cap ? es->cap * 2 : 32;
		struct cache_entry *v = realloc(es->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		es->v = v;
		es->cap = cap;
	}
	struct cache_entry *e = &es->v[es->n++];
	memset(e, 0, sizeof(*e));
	memcpy(e->sha, sha, CACHE_SHA_LEN);
	return e;
}

static int cache_ts_cmp(struct timespec a, struct timespec b)
{
	if (a.tv_sec != b.tv_sec)
		return a.tv_sec < b.tv_sec ? -1 : 1;
	if (a.tv_nsec != b.tv_nsec)
		return a.tv_nsec < b.tv_nsec ? -1 : 1;
	return 0;
}

static void cache_entry_use(struct cache_entry *e, struct timespec t)
{
	if (cache_ts_cmp(t, e->used) > 0)
		e->used = t;
}

/* Sums regular-file sizes of a tree that has no readable inventory. */
static int cache_sum_visit(struct cache_walk *w, int dfd, const char *name,
			   const struct stat *st)
{
	(void)dfd;
	(void)name;
	if (S_ISREG(st->st_mode))
		*(uint64_t *)w->ctx += (uint64_t)st->st_size;
	return 0;
}

/* Size and use time of the tree dfd/name: the inventory's sums (one read instead of a stat per
 * file, which matters on EFS), or a walk when it is missing. */
static void cache_tree_account(int dfd, const char *name, struct cache_entry *e)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	struct cache_inventory inv;
	if (fstatat(fd, CACHE_INVENTORY, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    cache_inventory_load(fd, &inv) == 0) {
		e->bytes += inv.bytes;
		cache_entry_use(e, st.st_mtim);
		cache_inventory_free(&inv);
		close(fd);
		return;
	}
	if (fstat(fd, &st) == 0)
		cache_entry_use(e, st.st_mtim);
	uint64_t sum = 0;
	struct cache_walk w = {cache_sum_visit, &sum, STRBUF_INIT, false};
	cache_walk_dir(&w, fd, 0);  /* closes fd; a partial sum is the best there is */
	sb_free(&w.rel);
	e->bytes += sum;
}

/* Adds the entries of packages/ (is_pkg) or extracted/ to es. Other names are ignored. */
static int cache_scan(const char *dir, bool is_pkg, struct cache_entries *es)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char sha[CACHE_SHA_LEN + 1];
		size_t len = strlen(de->d_name);
		size_t want = CACHE_SHA_LEN + (is_pkg ? strlen(".apkg") : 0);
		if (len != want || (is_pkg && strcmp(de->d_name + CACHE_SHA_LEN, ".apkg") != 0))
			continue;
		memcpy(sha, de->d_name, CACHE_SHA_LEN);
		sha[CACHE_SHA_LEN] = '\0';
		struct stat st;
		if (!cache_sha_valid(sha) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		struct cache_entry *e = cache_entry_get(es, sha);
		if (!e) {
			rc = -1;
			break;
		}
		if (is_pkg) {
			e->bytes += (uint64_t)st.st_size;
			cache_entry_use(e, st.st_mtim);
		} else {
			cache_tree_account(dirfd(d), de->d_name, e);
		}
	}
	closedir(d);
	return rc;
}

static int cache_scan_all(struct pkg_cache *c, struct cache_entries *es)
{
	if (cache_scan(c->pkg_dir, true, es) != 0 || cache_scan(c->ext_dir, false, es) != 0)
		return -1;
	return 0;
}

static uint64_t cache_total(const struct cache_entries *es)
{
	uint64_t t = 0;
	for (size_t i = 0; i < es->n; i++)
		t += es->v[i].bytes;
	return t;
}

uint64_t cache_size(struct pkg_cache *c)
{
	struct cache_entries es = {0};
	pthread_mutex_lock(&c->mu);
	cache_scan_all(c, &es);
	pthread_mutex_unlock(&c->mu);
	uint64_t t = cache_total(&es);
	free(es.v);
	return t;
}

/* Removes tmp/ leftovers (a crashed fetch or extraction) older than an hour. */
static void cache_clean_tmp(struct pkg_cache *c)
{
	DIR *d = opendir(c->tmp_dir);
	if (!d)
		return;
	time_t cutoff = time(NULL) - CACHE_TMP_MAX_AGE_SEC;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_mtim.tv_sec < cutoff)
			fs_remove_tree_at(dirfd(d), de->d_name);
	}
	closedir(d);
}

static int cache_entry_cmp(const void *a, const void *b)
{
	const struct cache_entry *x = a, *y = b;
	int r = cache_ts_cmp(x->used, y->used);
	return r ? r : strcmp(x->sha, y->sha);
}

/* Takes the entry's lock and pin exclusively without waiting; false when anyone (this process
 * included) holds either. fds[0..1] get the lock fds on success. */
static bool cache_try_claim(struct pkg_cache *c, const char *sha, int fds[2], char *paths[2])
{
	static const char *const suffix[2] = {".lock", ".pin"};
	fds[0] = fds[1] = -1;
	for (int i = 0; i < 2; i++) {
		paths[i] = cache_join(c->lock_dir, sha, suffix[i]);
		/* Checked before opening: closing our own fd would drop our POSIX-emulated lock. */
		if (!paths[i] || cache_held_has(paths[i]))
			return false;
		fds[i] = cache_flock_path(paths[i], LOCK_EX, 0);
		if (fds[i] < 0)
			return false;
	}
	return true;
}

/* Removes one claimed entry; its lock files go too (unlinked while held, see cache_fd_is_path). */
static void cache_remove_entry(struct pkg_cache *c, const char *sha)
{
	char *pkg = cache_join(c->pkg_dir, sha, ".apkg");
	char *ext = cache_join(c->ext_dir, sha, "");
	if (ext)
		fs_remove_tree(ext);
	if (pkg)
		unlink(pkg);
	free(pkg);
	free(ext);
}

static void cache_release_claim(int fds[2], char *paths[2], bool unlink_files)
{
	for (int i = 1; i >= 0; i--) {
		if (unlink_files && fds[i] >= 0 && paths[i])
			unlink(paths[i]);
		if (fds[i] >= 0)
			close(fds[i]);
		free(paths[i]);
	}
}

uint64_t cache_evict(struct pkg_cache *c, const char *keep_sha256)
{
	struct cache_entries es = {0};
	uint64_t freed = 0;
	pthread_mutex_lock(&c->mu);
	cache_clean_tmp(c);
	cache_scan_all(c, &es);  /* a partial scan still evicts what it saw */
	uint64_t total = cache_total(&es);
	if (total <= c->max_bytes)
		goto out;
	qsort(es.v, es.n, sizeof(*es.v), cache_entry_cmp);
	for (size_t i = 0; i < es.n && total > c->max_bytes; i++) {
		const struct cache_entry *e = &es.v[i];
		if (keep_sha256 && strcmp(e->sha, keep_sha256) == 0)
			continue;
		int fds[2];
		char *paths[2] = {NULL, NULL};
		bool claimed = cache_try_claim(c, e->sha, fds, paths);
		if (claimed) {
			cache_remove_entry(c, e->sha);
			total -= e->bytes;
			freed += e->bytes;
		}
		cache_release_claim(fds, paths, claimed);
	}
	if (freed) {
		fs_fsync_dir(c->pkg_dir);
		fs_fsync_dir(c->ext_dir);
	}
out:
	pthread_mutex_unlock(&c->mu);
	free(es.v);
	return freed;
}
