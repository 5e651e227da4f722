/* From PACKAGE_URL or AGENT_PACKAGE_PATH to an extracted package on disk, through the cache:
 * a pinned (PACKAGE_SHA256) package already in the cache costs no network at all; anything
 * new is downloaded to a temp file, verified, extracted into a private directory and only
 * then renamed into the cache, so a failure leaves nothing behind. */
#include "package.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "par/archive.h"
#include "par/awscreds.h"
#include "par/cache.h"
#include "par/exitcodes.h"
#include "par/fetch.h"
#include "par/fsutil.h"
#include "par/hash.h"
#include "par/log.h"
#include "par/redact.h"
#include "par/timeutil.h"

/* Another pard filling the same entry (shared cache on EFS) is waited for this long. */
#define CACHE_LOCK_WAIT_MS 120000

static struct {
	pthread_mutex_t mu;
	struct egress_ledger *ledger;
	struct aws_creds_provider *creds;
	struct metric *m_hits;
	struct metric *m_misses;
	struct metric *m_bytes;
	/* what /meta shows */
	const char *source;
	char *url_shown;
	char sha256[65];
	bool cache_hit;
	uint64_t bytes;
	int pin_fd;   /* holds our entry against other pards' eviction while the agent runs */
} pkg = {.mu = PTHREAD_MUTEX_INITIALIZER, .pin_fd = -1};

int package_init(const struct par_config *cfg, struct metrics *metrics)
{
	(void)cfg;
	pkg.ledger = ledger_new(1024);
	pkg.creds = aws_creds_provider_new(NULL, pkg.ledger);
	pkg.m_hits = metrics_counter(metrics, "par_cache_hits_total",
				     "Boots served from the package cache.", NULL);
	pkg.m_misses = metrics_counter(metrics, "par_cache_misses_total",
				       "Boots that had to download or extract the package.", NULL);
	pkg.m_bytes = metrics_gauge(metrics, "par_package_download_bytes",
				    "Bytes of the package downloaded by this boot.", NULL);
	return pkg.ledger && pkg.creds ? 0 : -1;
}

void package_shutdown(void)
{
	if (pkg.pin_fd >= 0)
		cache_unlock(pkg.pin_fd);
	pkg.pin_fd = -1;
	aws_creds_provider_free(pkg.creds);
	ledger_free(pkg.ledger);
	free(pkg.url_shown);
	pkg.creds = NULL;
	pkg.ledger = NULL;
	pkg.url_shown = NULL;
}

struct egress_ledger *package_ledger(void) { return pkg.ledger; }

void package_result_free(struct package_result *r)
{
	free(r->root);
	r->root = NULL;
}

static int fail(struct package_result *r, enum lc_phase phase, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct package_result *r, enum lc_phase phase, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof r->reason, fmt, ap);
	va_end(ap);
	r->exit_code = code;
	r->phase = phase;
	lc_phase_end(phase, PHS_FAILED, r->reason);
	return -1;
}

static void publish(const struct package_result *r, const char *url, uint64_t bytes)
{
	pthread_mutex_lock(&pkg.mu);
	pkg.source = r->source;
	free(pkg.url_shown);
	pkg.url_shown = url ? redact_url(url) : NULL;
	snprintf(pkg.sha256, sizeof pkg.sha256, "%s", r->sha256);
	pkg.cache_hit = r->cache_hit;
	pkg.bytes = bytes;
	pthread_mutex_unlock(&pkg.mu);
	metric_inc(r->cache_hit ? pkg.m_hits : pkg.m_misses);
	metric_set(pkg.m_bytes, (double)bytes);
}

void package_meta_json(struct strbuf *out)
{
	pthread_mutex_lock(&pkg.mu);
	sb_puts(out, "{\"source\":");
	sb_json_str(out, pkg.source);
	sb_puts(out, ",\"url\":");
	sb_json_str(out, pkg.url_shown);
	sb_puts(out, ",\"sha256\":");
	sb_json_str(out, pkg.sha256[0] ? pkg.sha256 : NULL);
	sb_printf(out, ",\"cacheHit\":%s,\"downloadBytes\":%llu,\"egress\":",
		  pkg.cache_hit ? "true" : "false", (unsigned long long)pkg.bytes);
	pthread_mutex_unlock(&pkg.mu);
	if (pkg.ledger)
		ledger_summary_json(pkg.ledger, out);
	else
		sb_puts(out, "null");
	sb_putc(out, '}');
}

static void log_corrupt(const char *sha, const char *entry)
{
	log_emit(PAR_LOG_WARN, "cache.corrupt", LOG_FIELDS(LF_STR("sha256", sha), LF_STR("entry", entry)),
		 "cache entry %s (%s) did not match what it should hold: removed, filling it again",
		 sha, entry);
}

/* Extracts archive into extracted/<sha> unless a good tree is already there. */
static int extract_into_cache(const struct par_config *cfg, struct pkg_cache *cache,
			      const char *archive, const char *sha, struct package_result *r)
{
	lc_phase_begin(PH_EXTRACT);
	bool corrupt = false;
	if (cache_extracted_ok(cache, sha, &corrupt)) {
		r->cache_hit = true;
		lc_phase_end(PH_EXTRACT, PHS_SKIPPED, "cache hit");
		goto done;
	}
	if (corrupt)
		log_corrupt(sha, "extracted");
	if (cfg->faults.extract_error)
		return fail(r, PH_EXTRACT, PAR_EXIT_LOAD, "injected fault extract.error");
	char *tmp = cache_make_tmp_dir(cache);
	if (!tmp)
		return fail(r, PH_EXTRACT, PAR_EXIT_LOAD, "cannot create a temp directory in %s: %s",
			    cfg->cache_dir, strerror(errno));
	int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct arch_problems probs = {0};
	struct arch_limits lim = arch_default_limits(cfg->max_extract_mb);
	uint64_t total = 0;
	enum arch_error ae = dfd < 0 ? ARCH_ERR_IO : arch_extract(archive, dfd, &lim, &probs, &total);
	if (dfd >= 0)
		close(dfd);
	if (ae != ARCH_OK) {
		char msg[400];
		snprintf(msg, sizeof msg, "%s", probs.n ? probs.v[0].message : arch_error_name(ae));
		log_emit(PAR_LOG_ERROR, "package.archive.invalid",
			 LOG_FIELDS(LF_STR("rule", arch_error_name(ae)),
				    LF_STR("entry", probs.n ? probs.v[0].entry : NULL)),
			 "package archive rejected: %s", msg);
		arch_problems_free(&probs);
		fs_remove_tree(tmp);
		free(tmp);
		return fail(r, PH_EXTRACT, PAR_EXIT_LOAD, "package archive rejected (%s): %s",
			    arch_error_name(ae), msg);
	}
	arch_problems_free(&probs);
	if (cache_commit_extracted(cache, tmp, sha) != 0) {
		int e = errno;
		fs_remove_tree(tmp);
		free(tmp);
		return fail(r, PH_EXTRACT, PAR_EXIT_LOAD, "cannot store the extracted package: %s",
			    strerror(e));
	}
	free(tmp);
	char note[64];
	snprintf(note, sizeof note, "%llu bytes extracted", (unsigned long long)total);
	lc_phase_end(PH_EXTRACT, PHS_DONE, note);
done:
	r->root = cache_extracted_path(cache, sha);
	return r->root ? 0 : fail(r, PH_EXTRACT, PAR_EXIT_INTERNAL, "out of memory");
}

/* Taken while the entry's lock is held, kept until exit. */
static void pin_entry(struct pkg_cache *cache, const char *sha)
{
	if (pkg.pin_fd < 0)
		pkg.pin_fd = cache_pin(cache, sha, 1000);
	if (pkg.pin_fd < 0)
		log_emit(PAR_LOG_WARN, "cache.pin.failed", LOG_FIELDS(LF_STR("sha256", sha)),
			 "cannot pin the cache entry: another pard's eviction could remove it: %s",
			 strerror(errno));
}

/* AGENT_PACKAGE_PATH naming an .apkg file. */
static int prepare_file(const struct par_config *cfg, struct pkg_cache *cache,
			struct package_result *r)
{
	r->source = "file";
	lc_phase_end(PH_FETCH, PHS_SKIPPED, "local file");
	lc_phase_begin(PH_VERIFY);
	if (sha256_file(cfg->agent_package_path, r->sha256) < 0)
		return fail(r, PH_VERIFY, PAR_EXIT_FETCH, "cannot read %s: %s",
			    cfg->agent_package_path, strerror(errno));
	if (cfg->package_sha256 && strcmp(cfg->package_sha256, r->sha256) != 0)
		return fail(r, PH_VERIFY, PAR_EXIT_FETCH,
			    "PACKAGE_SHA256 mismatch for %s: expected %s, got %s",
			    cfg->agent_package_path, cfg->package_sha256, r->sha256);
	lc_phase_end(PH_VERIFY, PHS_DONE, cfg->package_sha256 ? "sha256 matches" : "sha256 computed");
	int lock = cache_lock(cache, r->sha256, CACHE_LOCK_WAIT_MS);
	if (lock < 0)
		return fail(r, PH_EXTRACT, PAR_EXIT_LOAD, "cache entry %s stays locked: %s",
			    r->sha256, strerror(errno));
	int rc = extract_into_cache(cfg, cache, cfg->agent_package_path, r->sha256, r);
	if (rc == 0)
		pin_entry(cache, r->sha256);
	cache_unlock(lock);
	publish(r, NULL, 0);
	return rc;
}

static int fetch_error_code(enum fetch_status s)
{
	return s == FETCH_ERR_IO ? PAR_EXIT_INTERNAL : PAR_EXIT_FETCH;
}

/* Downloads into a temp file of the cache; *tmp_path receives it. */
static int download(const struct par_config *cfg, struct pkg_cache *cache, atomic_bool *cancel,
		    struct package_result *r, char **tmp_path, uint64_t *bytes)
{
	lc_phase_begin(PH_FETCH);
	struct fetch_opts o = {
		.url = cfg->package_url,
		.allow_http = cfg->allow_http,
		.max_bytes = cfg->max_package_size_mb * 1024 * 1024,
		.tmp_dir = cache_tmp_dir(cache),
		.ca_bundle = cfg->ca_bundle,
		.region = cfg->aws_region,
		.s3_endpoint = cfg->aws_endpoint_url_s3 ? cfg->aws_endpoint_url_s3
							: cfg->aws_endpoint_url,
		.s3_addressing = cfg->s3_addressing,
		.creds = pkg.creds,
		.expected_sha256 = cfg->package_sha256,
		.deadline_ms = (int64_t)cfg->fetch_timeout_sec * 1000,
		.faults = &cfg->faults,
		.ledger = pkg.ledger,
		.cancel = cancel,
	};
	struct fetch_result fr = {0};
	if (fetch_package(&o, &fr) != 0) {
		enum lc_phase ph = fr.status == FETCH_ERR_SHA_MISMATCH ? PH_VERIFY : PH_FETCH;
		if (ph == PH_VERIFY)
			lc_phase_end(PH_FETCH, PHS_DONE, "downloaded");
		int rc = fail(r, ph, fetch_error_code(fr.status), "%s (%s)", fr.message,
			      fetch_status_name(fr.status));
		fetch_result_free(&fr);
		return rc;
	}
	char note[96];
	snprintf(note, sizeof note, "%llu bytes in %d attempt%s", (unsigned long long)fr.bytes,
		 fr.attempts, fr.attempts == 1 ? "" : "s");
	lc_phase_end(PH_FETCH, PHS_DONE, note);
	memcpy(r->sha256, fr.sha256, sizeof r->sha256);
	*bytes = fr.bytes;
	*tmp_path = fr.path;
	fr.path = NULL;
	fetch_result_free(&fr);
	lc_phase_begin(PH_VERIFY);
	lc_phase_end(PH_VERIFY, PHS_DONE,
		     cfg->package_sha256 ? "sha256 matches PACKAGE_SHA256"
					 : "sha256 computed (PACKAGE_SHA256 not set: not pinned)");
	return 0;
}

enum cache_hit { HIT_NONE, HIT_TREE, HIT_ARCHIVE };

/* A pinned package already in the cache costs no network: its extracted tree, or at least its
 * verified archive (which then only needs extracting). */
static enum cache_hit try_cache_hit(const struct par_config *cfg, struct pkg_cache *cache,
				    struct package_result *r)
{
	const char *sha = cfg->package_sha256;
	bool corrupt = false;
	bool hit = cache_extracted_ok(cache, sha, &corrupt);
	if (corrupt)
		log_corrupt(sha, "extracted");
	if (hit) {
		lc_phase_end(PH_FETCH, PHS_SKIPPED, "cache hit");
		lc_phase_end(PH_VERIFY, PHS_SKIPPED, "cache hit: verified when stored");
		lc_phase_end(PH_EXTRACT, PHS_SKIPPED, "cache hit");
		r->cache_hit = true;
		return HIT_TREE;
	}
	corrupt = false;
	hit = cache_package_ok(cache, sha, &corrupt);
	if (corrupt)
		log_corrupt(sha, "package");
	if (hit) {
		lc_phase_end(PH_FETCH, PHS_SKIPPED, "cache hit (archive)");
		lc_phase_end(PH_VERIFY, PHS_DONE, "cached archive re-hashed");
		r->cache_hit = true;
		return HIT_ARCHIVE;
	}
	return HIT_NONE;
}

static int prepare_url(const struct par_config *cfg, struct pkg_cache *cache,
		       atomic_bool *cancel, struct package_result *r)
{
	struct par_url u;
	const char *rule = NULL;
	r->source = url_parse(cfg->package_url, cfg->allow_http, &u, &rule) == 0
			    ? (u.scheme == URL_S3 ? "s3" : u.scheme == URL_HTTPS ? "https" : "http")
			    : "url";
	url_free(&u);

	int lock = -1, rc = -1;
	char *tmp = NULL, *apkg = NULL;
	uint64_t bytes = 0;
	if (cfg->package_sha256) {
		snprintf(r->sha256, sizeof r->sha256, "%s", cfg->package_sha256);
		lock = cache_lock(cache, r->sha256, CACHE_LOCK_WAIT_MS);
		if (lock < 0)
			return fail(r, PH_FETCH, PAR_EXIT_FETCH, "cache entry %s stays locked: %s",
				    r->sha256, strerror(errno));
		switch (try_cache_hit(cfg, cache, r)) {
		case HIT_TREE:
			r->root = cache_extracted_path(cache, r->sha256);
			rc = r->root ? 0 : fail(r, PH_EXTRACT, PAR_EXIT_INTERNAL, "out of memory");
			goto out;
		case HIT_ARCHIVE:
			apkg = cache_package_path(cache, r->sha256);
			rc = apkg ? extract_into_cache(cfg, cache, apkg, r->sha256, r)
				  : fail(r, PH_EXTRACT, PAR_EXIT_INTERNAL, "out of memory");
			goto out;
		case HIT_NONE:
			break;
		}
	}
	if (download(cfg, cache, cancel, r, &tmp, &bytes) != 0)
		goto out;
	if (lock < 0 && (lock = cache_lock(cache, r->sha256, CACHE_LOCK_WAIT_MS)) < 0) {
		fail(r, PH_EXTRACT, PAR_EXIT_LOAD, "cache entry %s stays locked: %s", r->sha256,
		     strerror(errno));
		goto out;
	}
	/* Extract first, store the archive second: a package that fails extraction must not
	 * stay in the cache as if it were good. */
	if (extract_into_cache(cfg, cache, tmp, r->sha256, r) != 0)
		goto out;
	if (cache_commit_package(cache, tmp, r->sha256) != 0)
		log_emit(PAR_LOG_WARN, "cache.store.failed", LOG_FIELDS(LF_STR("sha256", r->sha256)),
			 "cannot keep the archive in the cache: %s", strerror(errno));
	else {
		free(tmp);
		tmp = NULL;
	}
	rc = 0;
out:
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(apkg);
	if (rc == 0 && lock >= 0)
		pin_entry(cache, r->sha256);
	if (lock >= 0)
		cache_unlock(lock);
	if (rc == 0) {
		publish(r, cfg->package_url, bytes);
		uint64_t freed = cache_evict(cache, r->sha256);
		if (freed)
			log_emit(PAR_LOG_INFO, "cache.evicted", LOG_FIELDS(LF_UINT("bytes", freed)),
				 "evicted %llu bytes to stay under PAR_CACHE_MAX_MB",
				 (unsigned long long)freed);
	}
	return rc;
}

int package_prepare(const struct par_config *cfg, atomic_bool *cancel, struct package_result *r)
{
	memset(r, 0, sizeof *r);
	struct stat st;
	if (cfg->agent_package_path) {
		if (stat(cfg->agent_package_path, &st) < 0)
			return fail(r, PH_FETCH, PAR_EXIT_FETCH, "AGENT_PACKAGE_PATH %s: %s",
				    cfg->agent_package_path, strerror(errno));
		if (S_ISDIR(st.st_mode)) {
			r->source = "directory";
			lc_phase_end(PH_FETCH, PHS_SKIPPED, "local directory");
			lc_phase_end(PH_VERIFY, PHS_SKIPPED, "local directory: no archive to hash");
			lc_phase_end(PH_EXTRACT, PHS_SKIPPED, "local directory");
			r->root = strdup(cfg->agent_package_path);
			publish(r, NULL, 0);
			return r->root ? 0 : fail(r, PH_FETCH, PAR_EXIT_INTERNAL, "out of memory");
		}
	}
	char err[256];
	struct pkg_cache *cache =
		cache_open(cfg->cache_dir, cfg->cache_max_mb * 1024 * 1024, err, sizeof err);
	if (!cache)
		return fail(r, PH_FETCH, PAR_EXIT_FETCH, "PAR_CACHE_DIR %s: %s", cfg->cache_dir, err);
	int rc = cfg->agent_package_path ? prepare_file(cfg, cache, r)
					 : prepare_url(cfg, cache, cancel, r);
	cache_close(cache);
	return rc;
}
