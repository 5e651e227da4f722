/* Agent package zips (SPEC §3): every entry checked, data counted while it streams, files
 * written by us relative to a directory fd (no chdir, no archive_write_disk). */
#include "par/archive.h"

#include "par/fsutil.h"

#include <archive.h>
#include <archive_entry.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ARCH_MAX_PROBLEMS 100
/* Entries smaller than this never fail the ratio rule: a 512 KiB file of spaces inflates
 * ~1000:1 and is a perfectly good config file. Bigger bombs are caught 1 MiB in. */
#define ARCH_RATIO_FLOOR ((uint64_t)1 << 20)
#define ARCH_READ_BLOCK 65536
#define ARCH_EOCD_LEN 22
#define ARCH_EOCD_SEARCH (ARCH_EOCD_LEN + 65535)
#define ARCH_CDH_LEN 46
/* 10,000 entries with 255-byte names need ~3 MiB of central directory; more is refused. */
#define ARCH_CD_MAX ((uint64_t)16 << 20)
#define ARCH_SETUID_BITS 07000

struct arch_limits arch_default_limits(uint64_t max_extract_mb)
{
	struct arch_limits l = {
		.max_entries = 10000,
		.max_total_bytes = max_extract_mb << 20,
		.max_ratio = 100,
		.max_name = 255,
	};
	return l;
}

static const char *const arch_names[ARCH_ERR_COUNT] = {
	[ARCH_OK] = "ok",
	[ARCH_ERR_NOT_ZIP] = "not_zip",
	[ARCH_ERR_TRUNCATED] = "truncated",
	[ARCH_ERR_EMPTY_NAME] = "empty_name",
	[ARCH_ERR_ABSOLUTE] = "absolute",
	[ARCH_ERR_DOTDOT] = "dotdot",
	[ARCH_ERR_BACKSLASH] = "backslash",
	[ARCH_ERR_NAME_TOO_LONG] = "name_too_long",
	[ARCH_ERR_SYMLINK] = "symlink",
	[ARCH_ERR_HARDLINK] = "hardlink",
	[ARCH_ERR_DEVICE] = "device",
	[ARCH_ERR_FIFO] = "fifo",
	[ARCH_ERR_SPECIAL] = "special",
	[ARCH_ERR_SETUID] = "setuid",
	[ARCH_ERR_DUPLICATE] = "duplicate",
	[ARCH_ERR_TOO_MANY_ENTRIES] = "too_many_entries",
	[ARCH_ERR_RATIO] = "ratio",
	[ARCH_ERR_TOTAL_SIZE] = "total_size",
	[ARCH_ERR_SIZE_MISMATCH] = "size_mismatch",
	[ARCH_ERR_IO] = "io",
	[ARCH_ERR_METHOD] = "method",
};

const char *arch_error_name(enum arch_error e)
{
	if ((unsigned)e >= ARCH_ERR_COUNT)
		return "unknown";
	return arch_names[e];
}

void arch_problems_free(struct arch_problems *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].entry);
		free(p->v[i].message);
	}
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

/* ---- the set of paths an archive creates ------------------------------------------------ */

enum arch_kind { ARCH_KIND_IMPLIED, ARCH_KIND_DIR, ARCH_KIND_FILE };

struct arch_slot {
	char *path;  /* normalised: "a/b/c", no trailing slash */
	enum arch_kind kind;
};

/* Open addressing, FNV-1a; lookups take (pointer, length) so a prefix needs no copy. */
struct arch_set {
	struct arch_slot *slot;
	size_t cap;  /* a power of two, or 0 */
	size_t n;
};

static size_t arch_hash(const char *s, size_t len)
{
	size_t h = 1469598103934665603u;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211u;
	}
	return h;
}

static struct arch_slot *arch_set_find(const struct arch_set *s, const char *p, size_t len)
{
	if (s->cap == 0)
		return NULL;
	for (size_t i = arch_hash(p, len) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		struct arch_slot *e = &s->slot[i];
		if (!e->path)
			return NULL;
		if (strncmp(e->path, p, len) == 0 && e->path[len] == '\0')
			return e;
	}
}

static void arch_set_place(struct arch_set *s, char *path, enum arch_kind kind)
{
	size_t i = arch_hash(path, strlen(path)) & (s->cap - 1);
	while (s->slot[i].path)
		i = (i + 1) & (s->cap - 1);
	s->slot[i].path = path;
	s->slot[i].kind = kind;
}

static int arch_set_grow(struct arch_set *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	struct arch_slot *old = s->slot;
	size_t old_cap = s->cap;

	s->slot = calloc(cap, sizeof(*s->slot));
	if (!s->slot) {
		s->slot = old;
		return -1;
	}
	s->cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].path)
			arch_set_place(s, old[i].path, old[i].kind);
	free(old);
	return 0;
}

static int arch_set_add(struct arch_set *s, const char *p, size_t len, enum arch_kind kind)
{
	if ((s->n + 1) * 2 > s->cap && arch_set_grow(s) != 0)
		return -1;
	char *copy = strndup(p, len);
	if (!copy)
		return -1;
	arch_set_place(s, copy, kind);
	s->n++;
	return 0;
}

static void arch_set_free(struct arch_set *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->slot[i].path);
	free(s->slot);
	memset(s, 0, sizeof(*s));
}

/* ---- one pass over an archive ----------------------------------------------------------- */

struct arch_run {
	struct archive *a;
	const struct arch_limits *lim;
	struct arch_problems *out;  /* may be NULL */
	enum arch_error first;
	bool keep_going;            /* validate: report every entry's problems */
	bool stop;                  /* nothing more worth reading */
	bool no_decode;             /* the raw scan forbids running libarchive */
	uint64_t cd_entries;        /* what the central directory lists */
	int dest_fd;                /* extraction target; -1 when only validating */
	uint32_t listed;            /* entries libarchive returned */
	uint64_t declared;          /* sum of the declared sizes */
	uint64_t total;             /* bytes actually streamed */
	struct arch_set paths;
};

static bool arch_seen(const struct arch_problems *p, enum arch_error code, const char *entry)
{
	for (size_t i = 0; i < p->n; i++) {
		const struct arch_problem *q = &p->v[i];
		if (q->code != code)
			continue;
		if ((!q->entry && !entry) || (q->entry && entry && strcmp(q->entry, entry) == 0))
			return true;
	}
	return false;
}

static void arch_append(struct arch_problems *p, enum arch_error code, const char *entry,
			char *message)
{
	struct arch_problem *v = realloc(p->v, (p->n + 1) * sizeof(*v));
	char *e = entry ? strdup(entry) : NULL;
	if (!v || (entry && !e)) {
		if (v)
			p->v = v;
		free(e);
		free(message);
		return;
	}
	p->v = v;
	p->v[p->n++] = (struct arch_problem){ .code = code, .entry = e, .message = message };
}

/* Records a broken rule. The first one decides the result; extraction stops there. */
__attribute__((format(printf, 4, 5)))
static void arch_report(struct arch_run *r, enum arch_error code, const char *entry,
			const char *fmt, ...)
{
	if (r->first == ARCH_OK)
		r->first = code;
	if (!r->keep_going)
		r->stop = true;
	if (!r->out || r->out->n >= ARCH_MAX_PROBLEMS || arch_seen(r->out, code, entry))
		return;
	char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	arch_append(r->out, code, entry, n < 0 ? NULL : msg);
}

static const char *arch_errstr(struct archive *a)
{
	const char *s = archive_error_string(a);
	return s ? s : "unknown error";
}

/* ---- names ------------------------------------------------------------------------------ */

/* Checks a stored name against SPEC §3 and builds its normalised form: "." and empty
 * components dropped, no trailing slash ("./a//b/" -> "a/b"; "./" -> "", the root). */
static enum arch_error arch_check_name(const char *name, bool is_dir, uint32_t max_name,
				       char **norm)
{
	size_t len = strlen(name);
	while (len > 0 && name[len - 1] == '/')
		len--;  /* libarchive appends '/' to directories: not the packager's bytes */
	if (name[0] == '\0')
		return ARCH_ERR_EMPTY_NAME;
	if (len > max_name)
		return ARCH_ERR_NAME_TOO_LONG;
	if (name[0] == '/')
		return ARCH_ERR_ABSOLUTE;
	if (strchr(name, '\\'))
		return ARCH_ERR_BACKSLASH;

	char *out = malloc(len + 1);
	if (!out)
		return ARCH_ERR_IO;
	size_t o = 0;
	const char *last = "";
	size_t last_len = 0;
	for (size_t i = 0; i < len;) {
		size_t n = strcspn(name + i, "/");
		if (n > len - i)
			n = len - i;
		const char *c = name + i;
		if (n == 2 && c[0] == '.' && c[1] == '.') {
			free(out);
			return ARCH_ERR_DOTDOT;
		}
		if (n > 0 && !(n == 1 && c[0] == '.')) {
			if (o > 0)
				out[o++] = '/';
			memcpy(out + o, c, n);
			o += n;
		}
		last = c;
		last_len = n;
		i += n + 1;
	}
	out[o] = '\0';
	/* A file needs a real last component: "a/." or "." would land on a directory. */
	if (!is_dir && (last_len == 0 || (last_len == 1 && last[0] == '.'))) {
		free(out);
		return ARCH_ERR_EMPTY_NAME;
	}
	*norm = out;
	return ARCH_OK;
}

static const char *arch_name_rule(enum arch_error e)
{
	switch (e) {
	case ARCH_ERR_EMPTY_NAME:
		return "the name is empty or names no file";
	case ARCH_ERR_NAME_TOO_LONG:
		return "the name is longer than the limit";
	case ARCH_ERR_ABSOLUTE:
		return "absolute paths are not allowed";
	case ARCH_ERR_BACKSLASH:
		return "backslashes are not allowed in names";
	case ARCH_ERR_DOTDOT:
		return "a \"..\" component could climb out of the package";
	default:
		return "out of memory";
	}
}

/* ---- entry types ------------------------------------------------------------------------ */

static enum arch_error arch_check_type(struct archive_entry *e)
{
	if (archive_entry_hardlink(e))
		return ARCH_ERR_HARDLINK;
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
	case AE_IFDIR:
		break;
	case AE_IFLNK:
		return ARCH_ERR_SYMLINK;
	case AE_IFCHR:
	case AE_IFBLK:
		return ARCH_ERR_DEVICE;
	case AE_IFIFO:
		return ARCH_ERR_FIFO;
	default:
		return ARCH_ERR_SPECIAL;
	}
	if (archive_entry_mode(e) & ARCH_SETUID_BITS)
		return ARCH_ERR_SETUID;
	return ARCH_OK;
}

static const char *arch_type_rule(enum arch_error e)
{
	switch (e) {
	case ARCH_ERR_HARDLINK:
		return "hard links are not allowed";
	case ARCH_ERR_SYMLINK:
		return "symbolic links are not allowed";
	case ARCH_ERR_DEVICE:
		return "device entries are not allowed";
	case ARCH_ERR_FIFO:
		return "FIFOs are not allowed";
	case ARCH_ERR_SETUID:
		return "setuid, setgid and sticky bits are not allowed";
	default:
		return "only regular files and directories are allowed";
	}
}

/* ---- the raw zip structure -------------------------------------------------------------- */

/* libarchive's seekable zip reader trusts the central directory. Before it runs, a short
 * bounded walk over the same bytes checks three things:
 *  - the structure is the plain one every zip tool writes (end record at the end, central
 *    directory right before it, each local header where the directory says), so libarchive
 *    reads exactly the entries checked here; anything else is refused as damaged;
 *  - what libarchive hides: it rewrites '\' to '/' in a name without '/', turns a FIFO into
 *    a regular file (an Info-ZIP workaround), and ignores the PKWARE Unix extra field
 *    (0x000d), zip's only way to store a hard link;
 *  - the compression method, before any decoder starts: LZMA, XZ, zstd and PPMd size their
 *    memory from the archive (liblzma was asked for 2 GiB by a 270-byte zip under the
 *    fuzzer), so only stored, deflate and bzip2, whose memory is fixed, are allowed. */

#define ARCH_LOCHDR_LEN 30
#define ARCH_EOCD64_LEN 56
#define ARCH_LOCATOR_LEN 20

struct arch_src {
	const unsigned char *mem;  /* the archive in memory, or NULL */
	int fd;                    /* otherwise an open file */
	uint64_t size;
};

static int arch_src_read(const struct arch_src *s, uint64_t off, void *buf, size_t n)
{
	if (off > s->size || n > s->size - off)
		return -1;
	if (s->mem) {
		memcpy(buf, s->mem + off, n);
		return 0;
	}
	for (size_t done = 0; done < n;) {
		ssize_t k = pread(s->fd, (char *)buf + done, n - done, (off_t)(off + done));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		done += (size_t)k;
	}
	return 0;
}

static uint16_t arch_le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t arch_le32(const unsigned char *p)
{
	return (uint32_t)arch_le16(p) | (uint32_t)arch_le16(p + 2) << 16;
}

static uint64_t arch_le64(const unsigned char *p)
{
	return (uint64_t)arch_le32(p) | (uint64_t)arch_le32(p + 4) << 32;
}

struct arch_cd {
	uint64_t count, size, offset;
	uint64_t end;  /* where the (zip64) end record starts: the directory must stop there */
};

enum arch_cd_found { ARCH_CD_OK, ARCH_CD_NONE, ARCH_CD_DAMAGED };

/* The zip64 end record, through the locator right before the classic one (libarchive uses
 * it whenever the locator is there, markers or not). */
static enum arch_cd_found arch_read_cd64(const struct arch_src *s, uint64_t eocd,
					 struct arch_cd *cd)
{
	unsigned char loc[ARCH_LOCATOR_LEN], rec[ARCH_EOCD64_LEN];

	if (arch_src_read(s, eocd - ARCH_LOCATOR_LEN, loc, sizeof(loc)) != 0)
		return ARCH_CD_DAMAGED;
	uint64_t at = arch_le64(loc + 8);
	if (arch_src_read(s, at, rec, sizeof(rec)) != 0 || memcmp(rec, "PK\6\6", 4) != 0 ||
	    arch_le32(rec + 16) != 0 || arch_le32(rec + 20) != 0 ||
	    arch_le64(rec + 24) != arch_le64(rec + 32))
		return ARCH_CD_DAMAGED;
	cd->count = arch_le64(rec + 32);
	cd->size = arch_le64(rec + 40);
	cd->offset = arch_le64(rec + 48);
	cd->end = at;
	return ARCH_CD_OK;
}

/* Reads the end record: the last signature in the final 64 KiB, on disk 0, the directory
 * ending exactly where it (or its zip64 twin) starts. */
static enum arch_cd_found arch_parse_eocd(const struct arch_src *s, const unsigned char *p,
					  uint64_t pos, struct arch_cd *cd)
{
	unsigned char loc[4];
	enum arch_cd_found rc = ARCH_CD_OK;

	if (arch_le16(p + 4) != 0 || arch_le16(p + 6) != 0 || arch_le16(p + 8) != arch_le16(p + 10))
		return ARCH_CD_DAMAGED;
	cd->count = arch_le16(p + 10);
	cd->size = arch_le32(p + 12);
	cd->offset = arch_le32(p + 16);
	cd->end = pos;
	bool marked = cd->count == 0xffff || cd->size == 0xffffffff || cd->offset == 0xffffffff;
	bool located = pos >= ARCH_LOCATOR_LEN &&
		arch_src_read(s, pos - ARCH_LOCATOR_LEN, loc, sizeof(loc)) == 0 &&
		memcmp(loc, "PK\6\7", 4) == 0;
	if (located)
		rc = arch_read_cd64(s, pos, cd);
	else if (marked)
		rc = ARCH_CD_DAMAGED;
	if (rc == ARCH_CD_OK && (cd->offset > cd->end || cd->size != cd->end - cd->offset))
		rc = ARCH_CD_DAMAGED;
	return rc;
}

static enum arch_cd_found arch_find_cd(const struct arch_src *s, struct arch_cd *cd)
{
	size_t tail = s->size < ARCH_EOCD_SEARCH ? (size_t)s->size : ARCH_EOCD_SEARCH;
	if (tail < ARCH_EOCD_LEN)
		return ARCH_CD_NONE;
	uint64_t base = s->size - tail;
	unsigned char *buf = malloc(tail);
	enum arch_cd_found rc = ARCH_CD_NONE;
	if (!buf || arch_src_read(s, base, buf, tail) != 0)
		goto out;
	for (size_t i = tail - ARCH_EOCD_LEN + 1; i-- > 0;) {
		if (memcmp(buf + i, "PK\5\6", 4) == 0) {
			rc = arch_parse_eocd(s, buf + i, base + i, cd);
			break;
		}
	}
out:
	free(buf);
	return rc;
}

/* The PKWARE Unix extra field with a "linked to" name after its 12 fixed bytes. */
static bool arch_extra_links(const unsigned char *x, size_t len)
{
	while (len >= 4) {
		size_t id = arch_le16(x), n = arch_le16(x + 2);
		if (n > len - 4)
			return false;
		if (id == 0x000d && n > 12)
			return true;
		x += 4 + n;
		len -= 4 + n;
	}
	return false;
}

/* The local header offset, from the zip64 extra field when the record says 0xffffffff
 * (whose values come in a fixed order, each only when its 32-bit field is saturated). */
static bool arch_local_offset(const unsigned char *h, uint64_t *off)
{
	*off = arch_le32(h + 42);
	if (*off != 0xffffffff)
		return true;
	size_t nlen = arch_le16(h + 28), len = arch_le16(h + 30);
	const unsigned char *x = h + ARCH_CDH_LEN + nlen;
	while (len >= 4) {
		size_t id = arch_le16(x), n = arch_le16(x + 2);
		if (n > len - 4)
			return false;
		if (id == 0x0001) {
			size_t skip = (arch_le32(h + 24) == 0xffffffff ? 8 : 0) +
				      (arch_le32(h + 20) == 0xffffffff ? 8 : 0);
			if (n < skip + 8)
				return false;
			*off = arch_le64(x + 4 + skip);
			return true;
		}
		x += 4 + n;
		len -= 4 + n;
	}
	return false;
}

static bool arch_method_ok(unsigned m)
{
	return m == 0 || m == 8 || m == 12;  /* stored, deflate, bzip2 */
}

/* The local header the record points to, and both compression methods. */
static void arch_scan_local(struct arch_run *r, const struct arch_src *s,
			    const unsigned char *h, const char *name)
{
	unsigned char loc[ARCH_LOCHDR_LEN];
	uint64_t off;
	if (!arch_local_offset(h, &off) || arch_src_read(s, off, loc, sizeof(loc)) != 0 ||
	    memcmp(loc, "PK\3\4", 4) != 0) {
		arch_report(r, ARCH_ERR_TRUNCATED, name,
			    "entry \"%s\": no local header where the central directory says", name);
		r->no_decode = true;
		return;
	}
	unsigned m = arch_le16(h + 10), lm = arch_le16(loc + 8);
	if (arch_method_ok(m) && arch_method_ok(lm))
		return;
	r->no_decode = true;
	arch_report(r, ARCH_ERR_METHOD, name,
		    "entry \"%s\": compression method %u is not allowed (only stored, "
		    "deflate and bzip2, whose decoders use fixed memory)", name,
		    arch_method_ok(m) ? lm : m);
}

static void arch_scan_record(struct arch_run *r, const struct arch_src *s,
			     const unsigned char *h)
{
	size_t nlen = arch_le16(h + 28), xlen = arch_le16(h + 30);
	const char *raw = (const char *)h + ARCH_CDH_LEN;
	bool unix_attrs = h[5] == 3;  /* "version made by" high byte: 3 = Unix */
	mode_t mode = (mode_t)(arch_le32(h + 38) >> 16);
	char *name = strndup(raw, nlen);
	if (!name) {
		arch_report(r, ARCH_ERR_IO, NULL, "out of memory");
		r->stop = true;
		return;
	}
	if (memchr(raw, '\\', nlen))
		arch_report(r, ARCH_ERR_BACKSLASH, name, "entry \"%s\": %s", name,
			    arch_name_rule(ARCH_ERR_BACKSLASH));
	if (!r->stop && unix_attrs && S_ISFIFO(mode))
		arch_report(r, ARCH_ERR_FIFO, name, "entry \"%s\": %s", name,
			    arch_type_rule(ARCH_ERR_FIFO));
	if (!r->stop && !(unix_attrs && S_ISLNK(mode)) &&
	    arch_extra_links(h + ARCH_CDH_LEN + nlen, xlen))
		arch_report(r, ARCH_ERR_HARDLINK, name,
			    "entry \"%s\": %s (it carries a link target in a Unix extra field)",
			    name, arch_type_rule(ARCH_ERR_HARDLINK));
	if (!r->stop)
		arch_scan_local(r, s, h, name);
	free(name);
}

/* Walks the records; they must fill the directory exactly and number what the end record
 * says, or libarchive (which reads up to the end record) might see others. */
static void arch_scan_records(struct arch_run *r, const struct arch_src *s,
			      const unsigned char *p, const struct arch_cd *cd)
{
	size_t off = 0, len = (size_t)cd->size;
	uint64_t n = 0;
	while (!r->stop && len - off >= ARCH_CDH_LEN && memcmp(p + off, "PK\1\2", 4) == 0) {
		const unsigned char *h = p + off;
		size_t var = (size_t)arch_le16(h + 28) + arch_le16(h + 30) + arch_le16(h + 32);
		if (var > len - off - ARCH_CDH_LEN)
			break;
		arch_scan_record(r, s, h);
		off += ARCH_CDH_LEN + var;
		n++;
	}
	if (r->stop || (off == len && n == cd->count))
		return;
	arch_report(r, ARCH_ERR_TRUNCATED, NULL,
		    "the central directory is damaged (%llu of %llu entries readable)",
		    (unsigned long long)n, (unsigned long long)cd->count);
	r->no_decode = true;
}

/* With no end record: a zip cut short if it starts like one, else not a zip at all. */
static void arch_report_no_cd(struct arch_run *r, const struct arch_src *s)
{
	unsigned char magic[4];
	if (arch_src_read(s, 0, magic, sizeof(magic)) == 0 && memcmp(magic, "PK\3\4", 4) == 0)
		arch_report(r, ARCH_ERR_TRUNCATED, NULL,
			    "the archive has no end record: it is cut short or damaged");
	else
		arch_report(r, ARCH_ERR_NOT_ZIP, NULL, "not a zip archive");
}

static void arch_scan(struct arch_run *r, const struct arch_src *s)
{
	struct arch_cd cd = { 0 };
	enum arch_cd_found found = arch_find_cd(s, &cd);
	if (found == ARCH_CD_NONE)
		arch_report_no_cd(r, s);
	else if (found == ARCH_CD_DAMAGED)
		arch_report(r, ARCH_ERR_TRUNCATED, NULL,
			    "the end record is damaged or not where a zip has it");
	else if (cd.count > r->lim->max_entries)
		arch_report(r, ARCH_ERR_TOO_MANY_ENTRIES, NULL,
			    "the archive lists %llu entries, more than the limit of %u",
			    (unsigned long long)cd.count, r->lim->max_entries);
	else if (cd.size > ARCH_CD_MAX)
		arch_report(r, ARCH_ERR_TOO_MANY_ENTRIES, NULL,
			    "the central directory is %llu bytes, more than a package needs",
			    (unsigned long long)cd.size);
	if (r->first != ARCH_OK) {
		r->stop = true;  /* nothing libarchive could be trusted to read */
		return;
	}
	r->cd_entries = cd.count;
	unsigned char *buf = malloc(cd.size ? (size_t)cd.size : 1);
	if (!buf || arch_src_read(s, cd.offset, buf, (size_t)cd.size) != 0) {
		arch_report(r, ARCH_ERR_IO, NULL, "cannot read the central directory");
		r->no_decode = true;
	} else {
		arch_scan_records(r, s, buf, &cd);
	}
	free(buf);
	/* Backslashes, FIFOs and hard links are safe to read past (validate goes on to
	 * report the rest); a forbidden method or a damaged layout is not. */
	if (r->no_decode)
		r->stop = true;
}

/* ---- paths: duplicates, a file where a directory is, the entry cap ---------------------- */

/* Every path the archive creates, listed or implied by a deeper entry, is counted against
 * max_entries: that bounds the inodes an archive can make, not just its headers. */
static bool arch_claim(struct arch_run *r, const char *norm, enum arch_kind kind,
		       const char *name)
{
	for (const char *s = strchr(norm, '/'); s; s = strchr(s + 1, '/')) {
		const struct arch_slot *p = arch_set_find(&r->paths, norm, (size_t)(s - norm));
		if (p && p->kind == ARCH_KIND_FILE) {
			arch_report(r, ARCH_ERR_DUPLICATE, name,
				    "entry \"%s\": \"%s\" is already a file, not a directory", name,
				    p->path);
			return false;
		}
	}
	struct arch_slot *self = arch_set_find(&r->paths, norm, strlen(norm));
	if (self && !(kind == ARCH_KIND_DIR && self->kind == ARCH_KIND_IMPLIED)) {
		arch_report(r, ARCH_ERR_DUPLICATE, name, "entry \"%s\": \"%s\" %s", name, norm,
			    self->kind == ARCH_KIND_FILE ? "is already in the archive" :
			    "is already a directory");
		return false;
	}
	if (self)
		self->kind = ARCH_KIND_DIR;
	else if (arch_set_add(&r->paths, norm, strlen(norm), kind) != 0)
		goto oom;
	for (const char *s = strchr(norm, '/'); s; s = strchr(s + 1, '/')) {
		size_t n = (size_t)(s - norm);
		if (!arch_set_find(&r->paths, norm, n) &&
		    arch_set_add(&r->paths, norm, n, ARCH_KIND_IMPLIED) != 0)
			goto oom;
	}
	if (r->paths.n > r->lim->max_entries) {
		arch_report(r, ARCH_ERR_TOO_MANY_ENTRIES, name,
			    "entry \"%s\": the archive creates more than %u files and directories",
			    name, r->lim->max_entries);
		r->stop = true;
		return false;
	}
	return true;
oom:
	arch_report(r, ARCH_ERR_IO, name, "entry \"%s\": out of memory", name);
	r->stop = true;
	return false;
}

/* ---- the header of one entry ------------------------------------------------------------ */

/* Applies every header rule; *norm is set (malloc'd) only when all pass. */
static bool arch_check_header(struct arch_run *r, struct archive_entry *e, int hdr_rc,
			      char **norm)
{
	const char *name = archive_entry_pathname(e);
	*norm = NULL;
	if (!name) {
		/* libarchive could not convert the name (to UTF-8, see arch_locale_enter). */
		arch_report(r, ARCH_ERR_EMPTY_NAME, NULL, "an entry's name cannot be decoded: %s",
			    hdr_rc == ARCHIVE_WARN ? arch_errstr(r->a) : "it has none");
		return false;
	}
	bool ok = true;
	if (hdr_rc == ARCHIVE_WARN) {
		arch_report(r, ARCH_ERR_TRUNCATED, name, "entry \"%s\": the archive is inconsistent: %s",
			    name, arch_errstr(r->a));
		ok = false;
	}
	if (archive_entry_is_encrypted(e)) {
		arch_report(r, ARCH_ERR_TRUNCATED, name,
			    "entry \"%s\": encrypted entries cannot be read", name);
		ok = false;
	}
	enum arch_error type = arch_check_type(e);
	if (!r->stop && type != ARCH_OK) {
		arch_report(r, type, name, "entry \"%s\": %s", name, arch_type_rule(type));
		ok = false;
	}
	bool is_dir = archive_entry_filetype(e) == AE_IFDIR;
	enum arch_error bad = r->stop ? ARCH_OK :
		arch_check_name(name, is_dir, r->lim->max_name, norm);
	if (bad != ARCH_OK) {
		arch_report(r, bad, name, "entry \"%s\": %s", name, arch_name_rule(bad));
		ok = false;
	}
	if (!ok) {
		free(*norm);
		*norm = NULL;
	}
	return ok && *norm;
}

static bool arch_check_declared(struct arch_run *r, struct archive_entry *e, const char *name)
{
	if (!archive_entry_size_is_set(e))
		return true;
	int64_t size = archive_entry_size(e);
	if (size < 0) {
		arch_report(r, ARCH_ERR_SIZE_MISMATCH, name, "entry \"%s\": declares a negative size",
			    name);
		return false;
	}
	uint64_t max = r->lim->max_total_bytes;
	if ((uint64_t)size <= max && r->declared <= max - (uint64_t)size) {
		r->declared += (uint64_t)size;
		return true;
	}
	arch_report(r, ARCH_ERR_TOTAL_SIZE, name,
		    "entry \"%s\": the declared sizes add up to more than %llu bytes", name,
		    (unsigned long long)r->lim->max_total_bytes);
	r->stop = true;
	return false;
}

/* ---- data ------------------------------------------------------------------------------- */

/* The caps are checked on the bytes as they come out of the decompressor, never on the
 * declared size alone: that can lie. The compressed size an entry used is how far the raw
 * input moved (archive_filter_bytes), since libarchive does not report it per entry. */
static bool arch_over_ratio(const struct arch_run *r, uint64_t got, int64_t start)
{
	if (r->lim->max_ratio == 0 || got <= ARCH_RATIO_FLOOR)
		return false;
	int64_t now = archive_filter_bytes(r->a, -1);
	uint64_t packed = now > start ? (uint64_t)(now - start) : 1;
	return got / packed > r->lim->max_ratio;
}

/* Checks one block of data against every cap; false (reported) when one is broken. */
static bool arch_check_block(struct arch_run *r, struct archive_entry *e, const char *name,
			     uint64_t got, int64_t start)
{
	int64_t declared = archive_entry_size(e);
	if (archive_entry_size_is_set(e) && got > (uint64_t)declared) {
		arch_report(r, ARCH_ERR_SIZE_MISMATCH, name,
			    "entry \"%s\": inflates past the %lld bytes it declares", name,
			    (long long)declared);
		return false;
	}
	if (arch_over_ratio(r, got, start)) {
		arch_report(r, ARCH_ERR_RATIO, name,
			    "entry \"%s\": inflates more than %u:1", name, r->lim->max_ratio);
		return false;
	}
	uint64_t max = r->lim->max_total_bytes;
	if (got > max || r->total > max - got) {
		arch_report(r, ARCH_ERR_TOTAL_SIZE, name,
			    "entry \"%s\": the archive inflates past %llu bytes", name,
			    (unsigned long long)r->lim->max_total_bytes);
		return false;
	}
	return true;
}

/* Reads the entry's data to the end, writing it to fd when fd >= 0. A broken cap or a read
 * error ends the whole pass: nothing after a bomb or a corrupt stream is worth the time. */
static bool arch_stream(struct arch_run *r, struct archive_entry *e, const char *name, int fd)
{
	int64_t start = archive_filter_bytes(r->a, -1);
	uint64_t got = 0;
	bool ok = true;

	for (;;) {
		const void *buf;
		size_t n;
		la_int64_t off;
		int rc = archive_read_data_block(r->a, &buf, &n, &off);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc < ARCHIVE_WARN || off != (la_int64_t)got) {
			arch_report(r, ARCH_ERR_TRUNCATED, name, "entry \"%s\": cannot read its data: %s",
				    name, rc < ARCHIVE_WARN ? arch_errstr(r->a) :
				    "blocks out of order");
			ok = false;
			break;
		}
		got += n;
		if (!arch_check_block(r, e, name, got, start)) {
			ok = false;
			break;
		}
		if (fd >= 0 && fs_write_all(fd, buf, n) != 0) {
			arch_report(r, ARCH_ERR_IO, name, "entry \"%s\": cannot write: %s", name,
				    strerror(errno));
			ok = false;
			break;
		}
		if (rc == ARCHIVE_WARN) {
			/* A bad CRC or length, noticed at the entry's end. A wrong length is
			 * reported below as a size mismatch; anything else is corruption. */
			if (!archive_entry_size_is_set(e) || got == (uint64_t)archive_entry_size(e)) {
				arch_report(r, ARCH_ERR_TRUNCATED, name, "entry \"%s\": %s", name,
					    arch_errstr(r->a));
				ok = false;
			}
			break;
		}
	}
	r->total += got;
	if (ok && archive_entry_size_is_set(e) && got != (uint64_t)archive_entry_size(e)) {
		arch_report(r, ARCH_ERR_SIZE_MISMATCH, name,
			    "entry \"%s\": holds %llu bytes but declares %lld", name,
			    (unsigned long long)got, (long long)archive_entry_size(e));
		ok = false;
	}
	if (!ok)
		r->stop = true;
	return ok;
}

/* ---- writing ---------------------------------------------------------------------------- */

/* Opens (creating it 0755 if needed) the directory name inside dirfd, never through a
 * symlink. Returns the new fd or -1 with errno. */
static int arch_enter_dir(int dirfd, const char *name)
{
	bool made = mkdirat(dirfd, name, 0755) == 0;
	if (!made && errno != EEXIST)
		return -1;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && made && fchmod(fd, 0755) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Walks norm's directories below base (all of them when leaf is NULL, else all but the
 * last component, which *leaf then points to). Returns an fd the caller closes, or -1. */
static int arch_walk_dirs(int base, char *norm, const char **leaf)
{
	int fd = fcntl(base, F_DUPFD_CLOEXEC, 0);
	char *s = norm;
	while (fd >= 0 && *s) {
		char *slash = strchr(s, '/');
		if (!slash && leaf) {
			*leaf = s;
			return fd;
		}
		if (slash)
			*slash = '\0';
		int next = arch_enter_dir(fd, s);
		int e = errno;
		if (slash)
			*slash = '/';
		close(fd);
		errno = e;
		fd = next;
		s = slash ? slash + 1 : s + strlen(s);
	}
	return fd;
}

static bool arch_write_dir(struct arch_run *r, char *norm, const char *name)
{
	int fd = arch_walk_dirs(r->dest_fd, norm, NULL);
	if (fd < 0) {
		arch_report(r, ARCH_ERR_IO, name, "entry \"%s\": cannot create the directory: %s",
			    name, strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

/* O_EXCL|O_NOFOLLOW: nothing already there (a planted symlink above all) is ever opened. */
static bool arch_write_file(struct arch_run *r, struct archive_entry *e, char *norm,
			    const char *name)
{
	const char *leaf = NULL;
	int dfd = arch_walk_dirs(r->dest_fd, norm, &leaf);
	int fd = dfd < 0 ? -1 :
		openat(dfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int e0 = errno;
	if (dfd >= 0)
		close(dfd);
	if (fd < 0) {
		arch_report(r, ARCH_ERR_IO, name, "entry \"%s\": cannot create the file: %s", name,
			    strerror(e0));
		return false;
	}
	bool ok = arch_stream(r, e, name, fd);
	mode_t mode = (archive_entry_mode(e) & 0111) ? 0755 : 0644;
	if (ok && fchmod(fd, mode) != 0) {
		arch_report(r, ARCH_ERR_IO, name, "entry \"%s\": cannot set its mode: %s", name,
			    strerror(errno));
		ok = false;
	}
	if (close(fd) != 0 && ok) {
		arch_report(r, ARCH_ERR_IO, name, "entry \"%s\": cannot write: %s", name,
			    strerror(errno));
		ok = false;
	}
	return ok;
}

/* ---- the walk --------------------------------------------------------------------------- */

static void arch_entry(struct arch_run *r, struct archive_entry *e, int hdr_rc)
{
	char *norm = NULL;
	const char *name = archive_entry_pathname(e);
	bool ok = arch_check_header(r, e, hdr_rc, &norm);
	bool is_dir = archive_entry_filetype(e) == AE_IFDIR;

	/* "./" and the like name the root itself: nothing to create. */
	if (ok && *norm)
		ok = arch_claim(r, norm, is_dir ? ARCH_KIND_DIR : ARCH_KIND_FILE, name);
	if (ok)
		ok = arch_check_declared(r, e, name);
	if (r->stop)
		goto out;
	if (!ok || r->dest_fd < 0)
		arch_stream(r, e, name ? name : "", -1);  /* validating: still count the bytes */
	else if (!is_dir)
		arch_write_file(r, e, norm, name);
	else if (!*norm || arch_write_dir(r, norm, name))
		arch_stream(r, e, name, -1);
out:
	free(norm);
}

static void arch_walk(struct arch_run *r)
{
	while (!r->stop) {
		struct archive_entry *e;
		int rc = archive_read_next_header(r->a, &e);
		if (rc == ARCHIVE_EOF)
			return;
		if (rc < ARCHIVE_WARN) {
			arch_report(r, ARCH_ERR_TRUNCATED, NULL, "the archive is corrupt: %s",
				    arch_errstr(r->a));
			r->stop = true;
			return;
		}
		if (++r->listed > r->lim->max_entries) {
			arch_report(r, ARCH_ERR_TOO_MANY_ENTRIES, NULL,
				    "the archive has more than %u entries", r->lim->max_entries);
			r->stop = true;
			return;
		}
		arch_entry(r, e, rc);
	}
}

static struct archive *arch_reader(void)
{
	struct archive *a = archive_read_new();
	if (!a)
		return NULL;
	/* zip only, and only the seekable reader: the central directory is authoritative
	 * (the raw scan checked it), and no local-header streaming, where sizes can be absent
	 * and skipping an entry means inflating it. */
	if (archive_read_support_format_zip_seekable(a) != ARCHIVE_OK ||
	    archive_read_support_filter_none(a) != ARCHIVE_OK) {
		archive_read_free(a);
		return NULL;
	}
	return a;
}

static int arch_open_src(struct archive *a, const struct arch_src *s)
{
	if (s->mem)
		return archive_read_open_memory(a, s->mem, (size_t)s->size);
	return archive_read_open_fd(a, s->fd, ARCH_READ_BLOCK);
}

/* libarchive converts names to the calling thread's locale, and in the C locale every
 * non-ASCII UTF-8 name fails. uselocale is per thread, so the daemon's other threads keep
 * theirs. */
struct arch_locale {
	locale_t mine, prev;
};

static void arch_locale_enter(struct arch_locale *l)
{
	l->mine = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	l->prev = l->mine ? uselocale(l->mine) : (locale_t)0;
}

static void arch_locale_leave(struct arch_locale *l)
{
	if (!l->mine)
		return;
	uselocale(l->prev);
	freelocale(l->mine);
}

static void arch_run_src(struct arch_run *r, const struct arch_src *s)
{
	arch_scan(r, s);
	/* libarchive's seekable reader calls an empty zip unrecognised; it holds nothing. */
	if (r->stop || r->cd_entries == 0)
		return;
	struct arch_locale loc;
	arch_locale_enter(&loc);
	struct archive *a = arch_reader();
	if (!a) {
		arch_report(r, ARCH_ERR_IO, NULL, "cannot set up the zip reader");
		goto out;
	}
	if (arch_open_src(a, s) != ARCHIVE_OK) {
		/* The raw scan found a zip: libarchive refusing it means damage. Its private
		 * ARCHIVE_ERRNO_FILE_FORMAT is EILSEQ on Linux (no EFTYPE); anything else is
		 * the read itself failing. */
		bool format = archive_errno(a) == EILSEQ;
		arch_report(r, format ? ARCH_ERR_TRUNCATED : ARCH_ERR_IO, NULL,
			    format ? "the archive is damaged: %s" : "cannot read the archive: %s",
			    arch_errstr(a));
	} else {
		r->a = a;
		arch_walk(r);
		r->a = NULL;
	}
	archive_read_free(a);
out:
	arch_locale_leave(&loc);
}

/* Opens path as the archive source (fd owned by the caller on success). */
static int arch_src_open(struct arch_run *r, const char *path, struct arch_src *s)
{
	struct stat st;
	s->mem = NULL;
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		arch_report(r, ARCH_ERR_IO, NULL, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	const char *why = fstat(s->fd, &st) != 0 ? strerror(errno) :
		!S_ISREG(st.st_mode) ? "not a regular file" : NULL;
	if (why) {
		arch_report(r, ARCH_ERR_IO, NULL, "cannot read %s: %s", path, why);
		close(s->fd);
		return -1;
	}
	s->size = (uint64_t)st.st_size;
	return 0;
}

static void arch_run_init(struct arch_run *r, const struct arch_limits *lim,
			  struct arch_problems *out, bool keep_going, int dest_fd)
{
	memset(r, 0, sizeof(*r));
	r->lim = lim;
	r->out = out;
	r->keep_going = keep_going;
	r->dest_fd = dest_fd;
}

static void arch_run_path(struct arch_run *r, const char *path)
{
	struct arch_src s;
	if (arch_src_open(r, path, &s) != 0)
		return;
	arch_run_src(r, &s);
	close(s.fd);
}

/* ---- the destination -------------------------------------------------------------------- */

/* A private handle on the directory (its own offset, not the caller's). */
static DIR *arch_opendir(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	return fs_fdopendir(fd);
}

static bool arch_is_dot(const char *n)
{
	return strcmp(n, ".") == 0 || strcmp(n, "..") == 0;
}

/* 1 when empty, 0 when not, -1 on error. */
static int arch_dir_empty(int dirfd)
{
	DIR *d = arch_opendir(dirfd);
	if (!d)
		return -1;
	int rc = 1;
	struct dirent *de;
	while (rc == 1 && (de = readdir(d)) != NULL)
		if (!arch_is_dot(de->d_name))
			rc = 0;
	closedir(d);
	return rc;
}

/* Puts the destination back to the empty directory it was, so a failure leaves nothing. */
static void arch_empty_dir(int dirfd)
{
	DIR *d = arch_opendir(dirfd);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (!arch_is_dot(de->d_name))
			fs_remove_tree_at(dirfd, de->d_name);
	closedir(d);
}

/* ---- the API ---------------------------------------------------------------------------- */

enum arch_error arch_extract(const char *zip_path, int dest_fd, const struct arch_limits *lim,
			     struct arch_problems *problem, uint64_t *total_bytes)
{
	struct arch_run r;
	arch_run_init(&r, lim, problem, false, dest_fd);
	int empty = arch_dir_empty(dest_fd);
	if (empty != 1) {
		arch_report(&r, ARCH_ERR_IO, NULL, "the destination is %s",
			    empty == 0 ? "not empty" : "not a readable directory");
		goto out;
	}
	arch_run_path(&r, zip_path);
	if (r.first != ARCH_OK)
		arch_empty_dir(dest_fd);
out:
	if (total_bytes)
		*total_bytes = r.total;
	arch_set_free(&r.paths);
	return r.first;
}

enum arch_error arch_validate(const char *zip_path, const struct arch_limits *lim,
			      struct arch_problems *problems)
{
	struct arch_run r;
	arch_run_init(&r, lim, problems, true, -1);
	arch_run_path(&r, zip_path);
	arch_set_free(&r.paths);
	return r.first;
}

enum arch_error arch_validate_buffer(const void *data, size_t len, const struct arch_limits *lim,
				     struct arch_problems *problems)
{
	static const unsigned char none[1];
	struct arch_run r;
	struct arch_src s = { .mem = data ? data : none, .fd = -1, .size = data ? len : 0 };
	arch_run_init(&r, lim, problems, true, -1);
	arch_run_src(&r, &s);
	arch_set_free(&r.paths);
	return r.first;
}

/* Reads the current entry's data, at most max bytes, into a NUL-terminated buffer. */
static int arch_slurp(struct archive *a, size_t max, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		return -1;
	for (;;) {
		const void *blk;
		size_t k;
		la_int64_t off;
		int rc = archive_read_data_block(a, &blk, &k, &off);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc != ARCHIVE_OK || off != (la_int64_t)n || k > max - n)
			goto fail;
		if (k == 0)
			continue;  /* stored entries end with an empty block (and a NULL pointer) */
		if (n + k + 1 > cap) {
			while (n + k + 1 > cap)
				cap *= 2;
			char *bigger = realloc(buf, cap);
			if (!bigger)
				goto fail;
			buf = bigger;
		}
		memcpy(buf + n, blk, k);
		n += k;
	}
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return 0;
fail:
	free(buf);
	return -1;
}

/* Finds the regular file called want (normalised) and reads it. */
static int arch_find_and_read(struct archive *a, const char *want, size_t max, char **out,
			      size_t *len)
{
	struct archive_entry *e;
	int rc;
	while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
		const char *name = archive_entry_pathname(e);
		char *norm = NULL;
		if (!name || archive_entry_filetype(e) != AE_IFREG ||
		    arch_check_name(name, false, UINT32_MAX, &norm) != ARCH_OK)
			continue;
		bool match = strcmp(norm, want) == 0;
		free(norm);
		if (match)
			return arch_slurp(a, max, out, len);
	}
	return -1;
}

static int arch_read_member(const struct arch_src *s, const char *want, size_t max,
			    char **out, size_t *len)
{
	struct arch_locale loc;
	arch_locale_enter(&loc);
	struct archive *a = arch_reader();
	int rc = -1;
	if (a && arch_open_src(a, s) == ARCHIVE_OK)
		rc = arch_find_and_read(a, want, max, out, len);
	if (a)
		archive_read_free(a);
	arch_locale_leave(&loc);
	return rc;
}

int arch_read_file(const char *zip_path, const char *name, size_t max, char **out, size_t *len)
{
	char *want = NULL;
	if (!zip_path || !name || !out || arch_check_name(name, false, UINT32_MAX, &want) != ARCH_OK)
		return -1;
	struct arch_limits lim = arch_default_limits(0);
	struct arch_run r;
	struct arch_src s;
	int rc = -1;
	arch_run_init(&r, &lim, NULL, true, -1);
	if (arch_src_open(&r, zip_path, &s) == 0) {
		/* The same structure and method checks as extraction: a damaged layout or an
		 * LZMA member is never handed to libarchive, not even to read one file. */
		arch_scan(&r, &s);
		if (!r.stop && r.cd_entries > 0)
			rc = arch_read_member(&s, want, max, out, len);
		close(s.fd);
	}
	arch_set_free(&r.paths);
	free(want);
	return rc;
}

int arch_remove_tree(const char *path)
{
	return fs_remove_tree(path);
}
