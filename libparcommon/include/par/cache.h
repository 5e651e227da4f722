/* The content-addressed package cache in PAR_CACHE_DIR (SPEC §2, §3):
 *   packages/<sha256>.apkg   verified archives
 *   extracted/<sha256>/      their extracted trees, each with a .par-extracted inventory
 *   tmp/                     private temp files and directories (same filesystem: rename works)
 *   locks/<sha256>.lock      flock(2) per entry, so pards sharing the directory (EFS) coordinate
 * Writes are atomic (temp + fsync + rename); a corrupt entry is detected and replaced; LRU
 * eviction keeps the total under PAR_CACHE_MAX_MB. */
#ifndef PAR_CACHE_H
#define PAR_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pkg_cache;

/* Creates the layout (mode 0755) if needed. NULL with a sentence in err. */
struct pkg_cache *cache_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen);
void cache_close(struct pkg_cache *c);

const char *cache_tmp_dir(const struct pkg_cache *c);

/* Exclusive lock on one entry for the caller's fetch/verify/extract; waits up to wait_ms
 * (another pard is filling it). Returns a lock fd (>= 0) or -1 (timeout or error, errno set). */
int cache_lock(struct pkg_cache *c, const char *sha256, int wait_ms);
/* Shared "in use" hold on an entry (locks/<sha256>.pin) for as long as an agent runs from it,
 * so no pard's eviction removes it; pins never block cache_lock. Take it while holding the
 * entry's lock; released with cache_unlock. Lock fd or -1 as for cache_lock. */
int cache_pin(struct pkg_cache *c, const char *sha256, int wait_ms);
/* Releases a cache_lock or cache_pin fd. */
void cache_unlock(int lock_fd);

/* malloc'd paths of an entry (whether or not it exists). */
char *cache_package_path(const struct pkg_cache *c, const char *sha256);
char *cache_extracted_path(const struct pkg_cache *c, const char *sha256);

/* A verified hit: packages/<sha>.apkg exists and hashes to sha256. A file that does not is
 * corrupt: it is removed and false returned (*corrupt set). Touches the entry for LRU. */
bool cache_package_ok(struct pkg_cache *c, const char *sha256, bool *corrupt);
/* extracted/<sha>/ exists and matches its inventory (every file present with its size). A
 * tree that does not is removed (*corrupt set). Touches the entry for LRU. */
bool cache_extracted_ok(struct pkg_cache *c, const char *sha256, bool *corrupt);

/* Moves a complete temp file into packages/<sha>.apkg (fsync file, rename, fsync dir). When
 * the entry already exists the temp file is removed and 0 returned. 0 ok, -1 with errno. */
int cache_commit_package(struct pkg_cache *c, const char *tmp_path, const char *sha256);

/* A fresh private directory under tmp/ for an extraction (malloc'd path; NULL with errno). */
char *cache_make_tmp_dir(struct pkg_cache *c);
/* Writes the inventory into tmp_dir, then renames it to extracted/<sha>. When the entry
 * already exists the temp tree is removed and 0 returned. 0 ok, -1 with errno. */
int cache_commit_extracted(struct pkg_cache *c, const char *tmp_dir, const char *sha256);

/* Removes least-recently-used entries (a package and its tree count as one entry, by the
 * newer of their use times) until the total is at most max_bytes; never an entry whose lock
 * or pin anyone holds (this process included), nor keep_sha256. Also removes temp leftovers
 * older than an hour. Returns the bytes freed. */
uint64_t cache_evict(struct pkg_cache *c, const char *keep_sha256);
/* Bytes in packages/ and extracted/ now. */
uint64_t cache_size(struct pkg_cache *c);

#endif
