/* Fetching a package (SPEC §2, §3): s3:// with SigV4, https:// with certificate checks,
 * http:// when allowed. Streams to a temp file while hashing, enforces the size cap, follows
 * at most 3 redirects (never https→http), retries transient failures with exponential backoff
 * inside one deadline, and records every connection in the egress ledger. */
#ifndef PAR_FETCH_H
#define PAR_FETCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "par/awscreds.h"
#include "par/faults.h"
#include "par/ledger.h"
#include "par/url.h"

struct fetch_opts {
	const char *url;             /* s3://bucket/key, https://…, http://… */
	bool allow_http;
	uint64_t max_bytes;          /* MAX_PACKAGE_SIZE_MB in bytes */
	const char *tmp_dir;         /* the temp file is created here (same fs as the cache) */
	const char *ca_bundle;       /* NULL: the system store */
	const char *region;          /* for SigV4 */
	const char *s3_endpoint;     /* AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else NULL (AWS) */
	enum s3_addressing s3_addressing; /* AUTO: path-style with an endpoint, else virtual-host */
	struct aws_creds_provider *creds; /* required for s3:// */
	const char *expected_sha256; /* lower-case hex, or NULL */
	int64_t deadline_ms;         /* total time for all attempts (monotonic budget), e.g. 120000 */
	const struct par_faults *faults; /* fetch.error, fetch.delay; may be NULL */
	struct egress_ledger *ledger;    /* may be NULL */
	atomic_bool *cancel;         /* checked while transferring and between attempts; may be NULL */
};

enum fetch_status {
	FETCH_OK = 0,
	FETCH_ERR_NOT_FOUND,      /* 404: final */
	FETCH_ERR_DENIED,         /* 401/403: final */
	FETCH_ERR_HTTP,           /* another 4xx: final */
	FETCH_ERR_TOO_LARGE,      /* Content-Length or streamed bytes over max_bytes: final */
	FETCH_ERR_SHA_MISMATCH,   /* final, the temp file is already removed */
	FETCH_ERR_REDIRECT,       /* https→http, a 4th redirect, or a redirect to another scheme */
	FETCH_ERR_TLS,            /* certificate or handshake failure: final */
	FETCH_ERR_CREDENTIALS,    /* no credentials could be had for s3:// */
	FETCH_ERR_GAVE_UP,        /* transient failures (connect, timeout, 5xx, 429) until the deadline */
	FETCH_ERR_IO,             /* local temp file */
	FETCH_ERR_CANCELLED,
};

struct fetch_result {
	enum fetch_status status;
	char *path;             /* the complete temp file (caller renames or unlinks); NULL on error */
	char sha256[65];        /* of the bytes received */
	uint64_t bytes;
	int attempts;
	long http_status;       /* of the last response */
	char message[512];      /* for the log: names the URL without its query, never a secret */
};

/* Fetches o->url. Returns 0 when status is FETCH_OK, -1 otherwise; r is filled either way and
 * must be released with fetch_result_free (which also unlinks a temp file still there). */
int fetch_package(const struct fetch_opts *o, struct fetch_result *r);

/* The HTTP URL of the s3:// object u: against s3_endpoint (AWS_ENDPOINT_URL[_S3]; path-style
 * unless addressing is VIRTUAL) or, when NULL, AWS itself in region (virtual-host unless PATH
 * or a dotted bucket). The one place that decides where an S3 request goes. malloc'd; NULL
 * with a sentence in *why. */
char *fetch_s3_object_url(const struct par_url *u, const char *region, const char *s3_endpoint,
			  enum s3_addressing addressing, const char **why);
void fetch_result_free(struct fetch_result *r);
const char *fetch_status_name(enum fetch_status s);

#endif
