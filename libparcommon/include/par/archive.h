/* Agent packages as zip archives (SPEC §3): validation of every entry and safe extraction
 * into a directory fd, with no chdir (the daemon is threaded) and nothing left behind on
 * failure. */
#ifndef PAR_ARCHIVE_H
#define PAR_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

struct arch_limits {
	uint32_t max_entries;      /* 10,000 */
	uint64_t max_total_bytes;  /* PAR_MAX_EXTRACT_MB in bytes */
	uint32_t max_ratio;        /* 100 (uncompressed : compressed, per entry) */
	uint32_t max_name;         /* 255 bytes per path */
};

/* The defaults above, with max_total_bytes = max_extract_mb MiB. */
struct arch_limits arch_default_limits(uint64_t max_extract_mb);

/* Each rule an archive can break has its own code and stable name (for logs and tests). */
enum arch_error {
	ARCH_OK = 0,
	ARCH_ERR_NOT_ZIP,          /* not a zip (a tar renamed .apkg, garbage) */
	ARCH_ERR_TRUNCATED,        /* corrupt or cut short */
	ARCH_ERR_EMPTY_NAME,
	ARCH_ERR_ABSOLUTE,         /* /etc/x */
	ARCH_ERR_DOTDOT,           /* a ".." component */
	ARCH_ERR_BACKSLASH,
	ARCH_ERR_NAME_TOO_LONG,
	ARCH_ERR_SYMLINK,
	ARCH_ERR_HARDLINK,
	ARCH_ERR_DEVICE,           /* character or block device */
	ARCH_ERR_FIFO,
	ARCH_ERR_SPECIAL,          /* socket or unknown type */
	ARCH_ERR_SETUID,           /* setuid/setgid/sticky bits */
	ARCH_ERR_DUPLICATE,        /* the same path twice (also a file over a directory) */
	ARCH_ERR_TOO_MANY_ENTRIES,
	ARCH_ERR_RATIO,            /* an entry inflates more than max_ratio:1 */
	ARCH_ERR_TOTAL_SIZE,       /* all entries together over max_total_bytes */
	ARCH_ERR_SIZE_MISMATCH,    /* the data is not the size the entry declared */
	ARCH_ERR_IO,               /* reading the file or writing the output */
	ARCH_ERR_METHOD,           /* compressed other than stored, deflate or bzip2 */
	ARCH_ERR_COUNT
};

const char *arch_error_name(enum arch_error e);

struct arch_problem {
	enum arch_error code;
	char *entry;     /* the entry's path as stored (NULL for whole-archive problems) */
	char *message;   /* a sentence naming the entry and the rule */
};

struct arch_problems {
	struct arch_problem *v;
	size_t n;
};

void arch_problems_free(struct arch_problems *p);

/* Extracts zip_path into the empty directory dest_fd refers to. Stops at the first problem,
 * which is returned (and described in *problem when not NULL; free with arch_problems_free).
 * Files are created with openat(O_CREAT|O_EXCL|O_NOFOLLOW), mode 0644 (0755 when the entry
 * is executable), directories 0755; bytes are counted while streaming against every cap.
 * On failure the caller removes the directory (see arch_remove_tree). */
enum arch_error arch_extract(const char *zip_path, int dest_fd, const struct arch_limits *lim,
			     struct arch_problems *problem, uint64_t *total_bytes);

/* Reads the whole archive (data included, so lying sizes and bombs are caught) and reports
 * every problem, up to 100, writing nothing. Returns the first problem's code or ARCH_OK. */
enum arch_error arch_validate(const char *zip_path, const struct arch_limits *lim,
			      struct arch_problems *problems);
/* The same from memory (fuzzing). */
enum arch_error arch_validate_buffer(const void *data, size_t len, const struct arch_limits *lim,
				     struct arch_problems *problems);

/* Reads one regular file of the archive (e.g. "agent.yaml") into a malloc'd buffer of at
 * most max bytes (NUL-terminated). 0 ok, -1 when absent, too large or unreadable. */
int arch_read_file(const char *zip_path, const char *name, size_t max, char **out, size_t *len);

/* Removes a directory tree without following symlinks (dirfd-relative, no chdir).
 * 0 ok, -1 with errno. */
int arch_remove_tree(const char *path);

#endif
