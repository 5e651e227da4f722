/* Fetches a package over s3/https/http into a hashed, size-capped temp file, with retries. */
#include "par/fetch.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "par/fsutil.h"
#include "par/hash.h"
#include "par/log.h"
#include "par/redact.h"
#include "par/timeutil.h"
#include "par/url.h"

#define FETCH_MAX_REDIRECTS 3
#define FETCH_DEFAULT_DEADLINE_MS 120000
#define FETCH_DEFAULT_MAX_BYTES (100ULL * 1024 * 1024) /* MAX_PACKAGE_SIZE_MB's default */
#define FETCH_BACKOFF_FIRST_MS 200
#define FETCH_BACKOFF_MAX_MS 5000
#define FETCH_CONNECT_TIMEOUT_MS 10000
#define FETCH_STALL_SEC 30L        /* no byte for this long: the attempt is a timeout */
#define FETCH_ERRBODY_KEEP 1024    /* of an error body, kept for S3's <Code> */
#define FETCH_ERRBODY_MAX 65536    /* read no more of an error body than this */
#define FETCH_SLEEP_SLICE_MS 20    /* how quickly a sleep notices cancel */
#define FETCH_DEFAULT_REGION "us-east-1"

enum fetch_outcome { FETCH_OUT_OK, FETCH_OUT_FINAL, FETCH_OUT_TRANSIENT, FETCH_OUT_REDIRECT };

/* One request's (hop's) transfer state, reset before each. */
struct fetch_hop {
	long status;          /* of the latest status line the header callback saw */
	uint64_t bytes;       /* 2xx body bytes (written to the file) */
	uint64_t other_bytes; /* non-2xx body bytes (discarded) */
	char errbody[FETCH_ERRBODY_KEEP + 1];
	size_t errbody_len;
	bool too_large, io_failed, cancelled, errbody_cut;
	int io_errno;
};

struct fetch_ctx {
	const struct fetch_opts *o;
	uint64_t max_bytes;
	char *shown;          /* the URL as logs may show it */
	char *first_url;      /* the first hop (s3: the built endpoint URL) */
	bool s3;
	CURL *curl;
	int fd;
	char *tmp_path;
	struct sha256_ctx *sha;
	int64_t deadline;     /* monotonic ms */
	int64_t started;      /* monotonic ms, after fetch.delay */
	unsigned seed;
	enum fetch_status giveup_status; /* what running out of time reports */
	struct aws_creds creds;
	struct fetch_hop hop;
};

static pthread_once_t fetch_curl_once = PTHREAD_ONCE_INIT;

static void fetch_curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *fetch_status_name(enum fetch_status s)
{
	static const char *const names[] = {
		[FETCH_OK] = "ok",
		[FETCH_ERR_NOT_FOUND] = "not_found",
		[FETCH_ERR_DENIED] = "denied",
		[FETCH_ERR_HTTP] = "http_error",
		[FETCH_ERR_TOO_LARGE] = "too_large",
		[FETCH_ERR_SHA_MISMATCH] = "sha256_mismatch",
		[FETCH_ERR_REDIRECT] = "redirect_refused",
		[FETCH_ERR_TLS] = "tls",
		[FETCH_ERR_CREDENTIALS] = "credentials",
		[FETCH_ERR_GAVE_UP] = "gave_up",
		[FETCH_ERR_IO] = "io",
		[FETCH_ERR_CANCELLED] = "cancelled",
	};

	if ((unsigned)s < sizeof(names) / sizeof(names[0]) && names[s])
		return names[s];
	return "unknown";
}

void fetch_result_free(struct fetch_result *r)
{
	if (!r)
		return;
	if (r->path) {
		unlink(r->path); /* gone already when the caller renamed it: that is fine */
		free(r->path);
	}
	r->path = NULL;
}

/* ---- small helpers ----------------------------------------------------------------------- */

static bool fetch_cancelled(const struct fetch_ctx *c)
{
	return c->o->cancel && atomic_load(c->o->cancel);
}

/* Sleeps ms in slices; false when cancelled meanwhile. */
static bool fetch_sleep(const struct fetch_ctx *c, int64_t ms)
{
	int64_t end = time_mono_ms() + ms;

	for (;;) {
		int64_t left = end - time_mono_ms();
		struct timespec ts;
		if (fetch_cancelled(c))
			return false;
		if (left <= 0)
			return true;
		ts = time_ms_to_timespec(left < FETCH_SLEEP_SLICE_MS ? left : FETCH_SLEEP_SLICE_MS);
		nanosleep(&ts, NULL);
	}
}

static void fetch_msg(struct fetch_result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void fetch_msg(struct fetch_result *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
}

/* Scheme of an absolute URL, lower-cased into buf ("" when there is none). */
static const char *fetch_scheme_of(const char *url, char *buf, size_t n)
{
	size_t i = 0;
	const char *sep = strstr(url, "://");

	buf[0] = '\0';
	if (!sep || (size_t)(sep - url) >= n)
		return buf;
	for (; url + i < sep; i++)
		buf[i] = (char)tolower((unsigned char)url[i]);
	buf[i] = '\0';
	return buf;
}

/* NULL when a redirect from a `from` URL to a `to` URL may be followed, else why not. http to
 * http is fine (nothing is downgraded: the source was already plain http). */
static const char *fetch_redirect_rule(const char *from, const char *to)
{
	char fs[16], ts[16];

	fetch_scheme_of(from, fs, sizeof(fs));
	fetch_scheme_of(to, ts, sizeof(ts));
	if (strcmp(ts, "https") != 0 && strcmp(ts, "http") != 0)
		return "redirects may only go to https:// (or http:// from http://)";
	if (strcmp(ts, "http") == 0 && strcmp(fs, "http") != 0)
		return "an https:// source must never be downgraded to http://";
	return NULL;
}

/* scheme, host (without IPv6 brackets) and port (the scheme default when absent) of url. */
static int fetch_origin(const char *url, char *scheme, size_t sn, char *host, size_t hn,
			int *port)
{
	CURLU *u = curl_url();
	char *s = NULL, *h = NULL, *p = NULL;
	int ret = -1;

	if (!u || curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_SCHEME, &s, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) != CURLUE_OK)
		goto out;
	snprintf(scheme, sn, "%s", s);
	if (h[0] == '[' && h[strlen(h) - 1] == ']')
		snprintf(host, hn, "%.*s", (int)strlen(h) - 2, h + 1);
	else
		snprintf(host, hn, "%s", h);
	*port = atoi(p);
	ret = 0;
out:
	curl_free(s);
	curl_free(h);
	curl_free(p);
	curl_url_cleanup(u);
	return ret;
}

/* Credentials go only to the origin they were meant for, as curl itself does on redirects. */
static bool fetch_same_origin(const char *a, const char *b)
{
	char sa[16], sb[16], ha[256], hb[256];
	int pa, pb;

	if (fetch_origin(a, sa, sizeof(sa), ha, sizeof(ha), &pa) != 0 ||
	    fetch_origin(b, sb, sizeof(sb), hb, sizeof(hb), &pb) != 0)
		return false;
	return pa == pb && strcasecmp(sa, sb) == 0 && strcasecmp(ha, hb) == 0;
}

/* ---- the s3:// request URL --------------------------------------------------------------- */

static bool fetch_valid_region(const char *r)
{
	if (!*r || strlen(r) > 32)
		return false;
	for (; *r; r++)
		if (!islower((unsigned char)*r) && !isdigit((unsigned char)*r) && *r != '-')
			return false;
	return true;
}

static const char *fetch_region(const struct fetch_opts *o)
{
	return o->region && *o->region ? o->region : FETCH_DEFAULT_REGION;
}

/* The pieces of AWS_ENDPOINT_URL[_S3]: scheme, authority ("host[:port]") and a path prefix
 * without a trailing '/'. */
struct fetch_endpoint {
	char *scheme, *host, *port, *path;
};

static void fetch_endpoint_free(struct fetch_endpoint *e)
{
	curl_free(e->scheme);
	curl_free(e->host);
	curl_free(e->port);
	curl_free(e->path);
}

static const char *fetch_endpoint_parse(const char *url, struct fetch_endpoint *e)
{
	CURLU *u = curl_url();
	const char *why = NULL;
	size_t n;

	memset(e, 0, sizeof(*e));
	if (!u)
		return "out of memory";
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &e->scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &e->host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &e->path, 0) != CURLUE_OK)
		why = "the S3 endpoint URL (AWS_ENDPOINT_URL[_S3]) is not a valid URL";
	else if (strcmp(e->scheme, "https") != 0 && strcmp(e->scheme, "http") != 0)
		why = "the S3 endpoint URL (AWS_ENDPOINT_URL[_S3]) must be http:// or https://";
	/* An absent port is not an error; the default one must not be written out either, as it
	 * would change the signed Host header. */
	if (!why && curl_url_get(u, CURLUPART_PORT, &e->port, 0) != CURLUE_OK)
		e->port = NULL;
	for (n = e->path ? strlen(e->path) : 0; n > 0 && e->path[n - 1] == '/'; n--)
		e->path[n - 1] = '\0';
	curl_url_cleanup(u);
	return why;
}

char *fetch_s3_object_url(const struct par_url *u, const char *region, const char *s3_endpoint,
			  enum s3_addressing addressing, const char **why)
{
	struct fetch_endpoint e;
	char *key = NULL, *url = NULL;
	bool path_style;
	int n = -1;

	if (!region || !*region)
		region = FETCH_DEFAULT_REGION;
	*why = "out of memory";
	if (!fetch_valid_region(region)) {
		*why = "the AWS region must be lower-case letters, digits and '-'";
		return NULL;
	}
	key = aws_uri_encode(u->key, true);
	if (!key)
		return NULL;
	if (!s3_endpoint || !*s3_endpoint) {
		/* A dotted bucket cannot match *.s3.amazonaws.com's certificate: use path-style. */
		path_style = addressing == S3_ADDR_PATH ||
			     (addressing == S3_ADDR_AUTO && strchr(u->bucket, '.'));
		if (path_style)
			n = asprintf(&url, "https://s3.%s.amazonaws.com/%s/%s", region, u->bucket, key);
		else
			n = asprintf(&url, "https://%s.s3.%s.amazonaws.com/%s", u->bucket, region, key);
		free(key);
		return n < 0 ? NULL : url;
	}
	*why = fetch_endpoint_parse(s3_endpoint, &e);
	if (!*why) {
		*why = "out of memory";
		if (addressing == S3_ADDR_VIRTUAL)
			n = asprintf(&url, "%s://%s.%s%s%s%s/%s", e.scheme, u->bucket, e.host,
				     e.port ? ":" : "", e.port ? e.port : "", e.path, key);
		else
			n = asprintf(&url, "%s://%s%s%s%s/%s/%s", e.scheme, e.host, e.port ? ":" : "",
				     e.port ? e.port : "", e.path, u->bucket, key);
	}
	fetch_endpoint_free(&e);
	free(key);
	return n < 0 ? NULL : url;
}

/* Path-style or virtual-host URL of bucket/key; NULL with *why. */
static char *fetch_s3_url(const struct fetch_opts *o, const struct par_url *u, const char **why)
{
	return fetch_s3_object_url(u, o->region, o->s3_endpoint, o->s3_addressing, why);
}

/* ---- curl callbacks ---------------------------------------------------------------------- */

static bool fetch_is_2xx(long s)
{
	return s >= 200 && s <= 299;
}

/* Watches status lines and Content-Length so an oversized body is refused before any of it
 * is read. */
static size_t fetch_on_header(char *buf, size_t size, size_t nmemb, void *ud)
{
	struct fetch_ctx *c = ud;
	char line[64];
	size_t n = size * nmemb, k = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
	unsigned long long cl;

	/* The status code and a Content-Length value sit in the first bytes of their lines: a
	 * truncated copy is enough, and a NUL-terminated one can be parsed as a string. */
	memcpy(line, buf, k);
	line[k] = '\0';
	if (strncmp(line, "HTTP/", 5) == 0) {
		const char *sp = strchr(line, ' ');
		c->hop.status = sp ? strtol(sp + 1, NULL, 10) : 0;
		return n;
	}
	if (strncasecmp(line, "content-length:", 15) != 0)
		return n;
	if (sscanf(line + 15, " %llu", &cl) == 1 && fetch_is_2xx(c->hop.status) &&
	    cl > c->max_bytes) {
		c->hop.too_large = true;
		return 0; /* aborts the transfer: not one body byte is read */
	}
	return n;
}

/* An error body is only read (a bounded amount) for the S3 error code in it. */
static size_t fetch_on_error_body(struct fetch_ctx *c, const char *data, size_t n)
{
	size_t room = FETCH_ERRBODY_KEEP - c->hop.errbody_len;
	size_t take = n < room ? n : room;

	memcpy(c->hop.errbody + c->hop.errbody_len, data, take);
	c->hop.errbody_len += take;
	c->hop.errbody[c->hop.errbody_len] = '\0';
	c->hop.other_bytes += n;
	if (c->hop.other_bytes > FETCH_ERRBODY_MAX) {
		c->hop.errbody_cut = true;
		return 0;
	}
	return n;
}

static size_t fetch_on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct fetch_ctx *c = ud;
	size_t n = size * nmemb;

	if (!fetch_is_2xx(c->hop.status))
		return fetch_on_error_body(c, data, n);
	if (c->hop.bytes + n > c->max_bytes) {
		/* Stop the moment the cap is passed; this chunk is counted, never written. */
		c->hop.bytes += n;
		c->hop.too_large = true;
		return 0;
	}
	if (fs_write_all(c->fd, data, n) != 0) {
		c->hop.io_failed = true;
		c->hop.io_errno = errno;
		return 0;
	}
	sha256_update(c->sha, data, n);
	c->hop.bytes += n;
	return n;
}

static int fetch_on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			     curl_off_t ulnow)
{
	struct fetch_ctx *c = ud;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (!fetch_cancelled(c))
		return 0;
	c->hop.cancelled = true;
	return 1;
}

/* ---- one request ------------------------------------------------------------------------- */

/* The x-amz-* headers of a signed request. NULL when out of memory. */
static struct curl_slist *fetch_s3_headers(const struct aws_creds *cr)
{
	/* curl does not send the payload hash S3 requires; it signs this value as the hash. */
	return aws_append_token_header(
		curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD"), cr);
}

static int fetch_sign(struct fetch_ctx *c, struct curl_slist **hdrs)
{
	char sigv4[64];

	*hdrs = fetch_s3_headers(&c->creds);
	if (!*hdrs)
		return -1;
	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", fetch_region(c->o));
	/* USERNAME/PASSWORD rather than USERPWD: no ':' in a key can split them wrongly. */
	curl_easy_setopt(c->curl, CURLOPT_AWS_SIGV4, sigv4);
	curl_easy_setopt(c->curl, CURLOPT_USERNAME, c->creds.access_key);
	curl_easy_setopt(c->curl, CURLOPT_PASSWORD, c->creds.secret_key);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, *hdrs);
	return 0;
}

static void fetch_setup(struct fetch_ctx *c, const char *url, const char *scheme,
			int64_t remaining)
{
	CURL *h = c->curl;
	long total = remaining > 0 ? (long)remaining : 1L;

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, scheme);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* each hop is checked here */
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);     /* S3 keys may hold "../" literally */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "pard/" PAR_VERSION);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 total < FETCH_CONNECT_TIMEOUT_MS ? total : (long)FETCH_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, total);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, FETCH_STALL_SEC);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, fetch_on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fetch_on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, fetch_on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	if (c->o->ca_bundle && *c->o->ca_bundle)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->o->ca_bundle);
}

static void fetch_ledger(struct fetch_ctx *c, const char *url, CURLcode rc, int64_t start_ms)
{
	struct egress_entry e = {.epoch_ms = start_ms};
	char scheme[16], *ip = NULL;
	long port = 0;

	if (!c->o->ledger)
		return;
	fetch_origin(url, scheme, sizeof(scheme), e.host, sizeof(e.host), &e.port);
	if (curl_easy_getinfo(c->curl, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip)
		snprintf(e.ip, sizeof(e.ip), "%s", ip);
	if (curl_easy_getinfo(c->curl, CURLINFO_PRIMARY_PORT, &port) == CURLE_OK && port > 0)
		e.port = (int)port;
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &e.status);
	snprintf(e.purpose, sizeof(e.purpose), "package");
	snprintf(e.method, sizeof(e.method), "GET");
	e.bytes = c->hop.bytes + c->hop.other_bytes;
	if (c->hop.too_large)
		snprintf(e.error, sizeof(e.error), "size cap exceeded");
	else if (c->hop.cancelled)
		snprintf(e.error, sizeof(e.error), "cancelled");
	else if (rc != CURLE_OK && !c->hop.errbody_cut)
		snprintf(e.error, sizeof(e.error), "%s", curl_easy_strerror(rc));
	ledger_record(c->o->ledger, &e);
}

static bool fetch_curl_transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

static bool fetch_curl_tls(CURLcode rc)
{
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return true;
	default:
		return false;
	}
}

/* " (NoSuchKey)" from an S3 XML error body, else "". Only [A-Za-z0-9.] is copied, so the
 * message cannot carry anything odd the server sent. */
static void fetch_s3_code(const char *body, char *out, size_t n)
{
	const char *p = strstr(body, "<Code>");
	size_t i = 0;

	out[0] = '\0';
	if (!p || n < 8)
		return;
	p += 6;
	while (i < n - 4 && (isalnum((unsigned char)p[i]) || p[i] == '.'))
		i++;
	if (i && p[i] == '<')
		snprintf(out, n, " (%.*s)", (int)i, p);
}

static enum fetch_outcome fetch_classify_http(struct fetch_ctx *c, long status,
					      struct fetch_result *r)
{
	char code[72];

	fetch_s3_code(c->hop.errbody, code, sizeof(code));
	fetch_msg(r, "fetching %s: HTTP %ld%s", c->shown, status, code);
	if (status == 404) {
		r->status = FETCH_ERR_NOT_FOUND;
		return FETCH_OUT_FINAL;
	}
	if (status == 401 || status == 403) {
		r->status = FETCH_ERR_DENIED;
		return FETCH_OUT_FINAL;
	}
	if (status == 408 || status == 429 || status >= 500) {
		r->status = FETCH_ERR_GAVE_UP;
		return FETCH_OUT_TRANSIENT;
	}
	if (status >= 300 && status <= 399)
		fetch_msg(r, "fetching %s: HTTP %ld without a usable Location%s", c->shown, status,
			  code);
	r->status = FETCH_ERR_HTTP;
	return FETCH_OUT_FINAL;
}

static enum fetch_outcome fetch_classify(struct fetch_ctx *c, CURLcode rc, long status,
					 struct fetch_result *r)
{
	if (c->hop.cancelled) {
		r->status = FETCH_ERR_CANCELLED;
		fetch_msg(r, "fetching %s: cancelled", c->shown);
		return FETCH_OUT_FINAL;
	}
	if (c->hop.too_large) {
		r->status = FETCH_ERR_TOO_LARGE;
		fetch_msg(r, "fetching %s: larger than the %llu-byte cap (MAX_PACKAGE_SIZE_MB)",
			  c->shown, (unsigned long long)c->max_bytes);
		return FETCH_OUT_FINAL;
	}
	if (c->hop.io_failed) {
		r->status = FETCH_ERR_IO;
		fetch_msg(r, "fetching %s: writing %s: %s", c->shown, c->tmp_path,
			  strerror(c->hop.io_errno));
		return FETCH_OUT_FINAL;
	}
	if (rc != CURLE_OK && !c->hop.errbody_cut) {
		fetch_msg(r, "fetching %s: %s", c->shown, curl_easy_strerror(rc));
		if (fetch_curl_transient(rc)) {
			r->status = FETCH_ERR_GAVE_UP;
			return FETCH_OUT_TRANSIENT;
		}
		r->status = fetch_curl_tls(rc) ? FETCH_ERR_TLS : FETCH_ERR_HTTP;
		return FETCH_OUT_FINAL;
	}
	if (fetch_is_2xx(status)) {
		r->status = FETCH_OK;
		return FETCH_OUT_OK;
	}
	return fetch_classify_http(c, status, r);
}

/* One request to url. On FETCH_OUT_REDIRECT *next is the malloc'd absolute target. */
static enum fetch_outcome fetch_request(struct fetch_ctx *c, const char *url, bool sign,
					struct fetch_result *r, char **next)
{
	struct curl_slist *hdrs = NULL;
	char scheme[16], *loc = NULL;
	int64_t start = time_epoch_ms();
	enum fetch_outcome out;
	long status = 0;
	CURLcode rc;

	*next = NULL;
	memset(&c->hop, 0, sizeof(c->hop));
	fetch_setup(c, url, fetch_scheme_of(url, scheme, sizeof(scheme)),
		    c->deadline - time_mono_ms());
	if (sign && fetch_sign(c, &hdrs) != 0) {
		r->status = FETCH_ERR_IO;
		fetch_msg(r, "fetching %s: out of memory", c->shown);
		return FETCH_OUT_FINAL;
	}
	rc = curl_easy_perform(c->curl);
	fetch_ledger(c, url, rc, start);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	r->http_status = status;
	r->bytes = c->hop.bytes;
	out = fetch_classify(c, rc, status, r);
	if (out != FETCH_OUT_FINAL || status < 300 || status > 399 || c->hop.errbody_cut)
		return out;
	if (curl_easy_getinfo(c->curl, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK || !loc)
		return out;
	*next = strdup(loc);
	return *next ? FETCH_OUT_REDIRECT : out;
}

/* ---- one attempt ------------------------------------------------------------------------- */

/* Starts the temp file and the hash afresh: an attempt never appends to an earlier one. */
static int fetch_restart_file(struct fetch_ctx *c, struct fetch_result *r)
{
	char discard[65];

	if (c->sha)
		sha256_final_hex(c->sha, discard);
	c->sha = sha256_new();
	if (!c->sha || ftruncate(c->fd, 0) != 0 || lseek(c->fd, 0, SEEK_SET) != 0) {
		r->status = FETCH_ERR_IO;
		fetch_msg(r, "fetching %s: cannot reset %s: %s", c->shown, c->tmp_path,
			  c->sha ? strerror(errno) : "out of memory");
		return -1;
	}
	return 0;
}

static enum fetch_outcome fetch_get_creds(struct fetch_ctx *c, struct fetch_result *r)
{
	char err[256];

	if (!c->s3)
		return FETCH_OUT_OK;
	if (aws_creds_get(c->o->creds, &c->creds, err, sizeof(err)) == 0)
		return FETCH_OUT_OK;
	r->status = FETCH_ERR_CREDENTIALS;
	fetch_msg(r, "fetching %s: %s", c->shown, c->o->creds ? err : "no credentials provider");
	/* The container endpoint may come up a little after us: worth retrying. */
	if (aws_creds_source(c->o->creds) != AWS_CREDS_CONTAINER)
		return FETCH_OUT_FINAL;
	c->giveup_status = FETCH_ERR_CREDENTIALS;
	return FETCH_OUT_TRANSIENT;
}

static enum fetch_outcome fetch_redirect_refused(struct fetch_ctx *c, const char *to,
						 const char *why, struct fetch_result *r)
{
	char *shown_to = redact_url(to);

	r->status = FETCH_ERR_REDIRECT;
	fetch_msg(r, "fetching %s: redirect to %s refused: %s", c->shown, shown_to ? shown_to : "",
		  why);
	free(shown_to);
	return FETCH_OUT_FINAL;
}

static enum fetch_outcome fetch_attempt(struct fetch_ctx *c, struct fetch_result *r)
{
	enum fetch_outcome out;
	char *url, *next = NULL;
	const char *why;
	bool sign = c->s3;
	int hops;

	c->giveup_status = FETCH_ERR_GAVE_UP;
	if (c->o->faults && c->o->faults->fetch_error) {
		r->status = FETCH_ERR_GAVE_UP;
		r->http_status = 0;
		fetch_msg(r, "fetching %s: injected fault fetch.error", c->shown);
		return FETCH_OUT_TRANSIENT;
	}
	out = fetch_get_creds(c, r);
	if (out != FETCH_OUT_OK)
		return out;
	if (fetch_restart_file(c, r) != 0)
		return FETCH_OUT_FINAL;
	url = strdup(c->first_url);
	for (hops = 0; url; hops++) {
		out = fetch_request(c, url, sign, r, &next);
		if (out != FETCH_OUT_REDIRECT)
			break;
		why = fetch_redirect_rule(url, next);
		if (!why && hops == FETCH_MAX_REDIRECTS)
			why = "more than 3 redirects";
		if (why) {
			out = fetch_redirect_refused(c, next, why, r);
			break;
		}
		sign = sign && fetch_same_origin(url, next);
		free(url);
		url = next;
		next = NULL;
	}
	if (!url) {
		r->status = FETCH_ERR_IO;
		fetch_msg(r, "fetching %s: out of memory", c->shown);
		out = FETCH_OUT_FINAL;
	}
	explicit_bzero(&c->creds, sizeof(c->creds));
	free(next);
	free(url);
	return out;
}

/* ---- the retry loop ---------------------------------------------------------------------- */

/* 200 ms doubling to 5 s, ±20 % so pards restarting together do not retry in lockstep. */
static int64_t fetch_backoff_ms(struct fetch_ctx *c, int attempt)
{
	int64_t d = FETCH_BACKOFF_FIRST_MS;
	int i;

	for (i = 1; i < attempt && d < FETCH_BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > FETCH_BACKOFF_MAX_MS)
		d = FETCH_BACKOFF_MAX_MS;
	return d * 8 / 10 + (int64_t)(rand_r(&c->seed) % (unsigned)(d * 4 / 10 + 1));
}

static void fetch_log_retry(const struct fetch_ctx *c, const struct fetch_result *r,
			    int64_t t0, int64_t delay)
{
	log_emit(PAR_LOG_WARN, "fetch.retry",
		 LOG_FIELDS(LF_STR("url", c->shown), LF_INT("attempt", r->attempts),
			    LF_INT("status", r->http_status), LF_UINT("bytes", r->bytes),
			    LF_INT("durationMs", time_mono_ms() - t0), LF_INT("delayMs", delay)),
		 "%s; retrying in %lld ms", r->message, (long long)delay);
}

static void fetch_loop(struct fetch_ctx *c, struct fetch_result *r)
{
	enum fetch_outcome out;
	int64_t t0, delay;

	for (;;) {
		if (fetch_cancelled(c)) {
			r->status = FETCH_ERR_CANCELLED;
			fetch_msg(r, "fetching %s: cancelled", c->shown);
			return;
		}
		r->attempts++;
		t0 = time_mono_ms();
		log_emit(PAR_LOG_INFO, "fetch.attempt",
			 LOG_FIELDS(LF_STR("url", c->shown), LF_INT("attempt", r->attempts)),
			 "fetching %s (attempt %d)", c->shown, r->attempts);
		out = fetch_attempt(c, r);
		if (out != FETCH_OUT_TRANSIENT)
			return;
		delay = fetch_backoff_ms(c, r->attempts);
		if (time_mono_ms() + delay >= c->deadline) {
			char last[sizeof(r->message)];
			snprintf(last, sizeof(last), "%s", r->message);
			r->status = c->giveup_status;
			fetch_msg(r, "gave up after %d attempts in %lld ms: %s", r->attempts,
				  (long long)(time_mono_ms() - c->started), last);
			return;
		}
		fetch_log_retry(c, r, t0, delay);
		if (!fetch_sleep(c, delay)) {
			r->status = FETCH_ERR_CANCELLED;
			fetch_msg(r, "fetching %s: cancelled", c->shown);
			return;
		}
	}
}

/* ---- set-up, verification, the end ------------------------------------------------------- */

/* s3:// and an upper-case HTTPS:// both become what curl expects. */
static int fetch_first_url(struct fetch_ctx *c, struct fetch_result *r)
{
	struct par_url u;
	const char *why = NULL;
	size_t i;

	if (url_parse(c->o->url, c->o->allow_http, &u, &why) != 0) {
		r->status = FETCH_ERR_HTTP;
		fetch_msg(r, "fetching %s: invalid URL: %s", c->shown, why ? why : "");
		return -1;
	}
	c->s3 = u.scheme == URL_S3;
	if (c->s3) {
		c->first_url = fetch_s3_url(c->o, &u, &why);
	} else if ((c->first_url = strdup(c->o->url))) {
		for (i = 0; c->first_url[i] != ':'; i++)
			c->first_url[i] = (char)tolower((unsigned char)c->first_url[i]);
	}
	url_free(&u);
	if (!c->first_url) {
		r->status = FETCH_ERR_HTTP;
		fetch_msg(r, "fetching %s: %s", c->shown, why ? why : "out of memory");
		return -1;
	}
	return 0;
}

static int fetch_open_tmp(struct fetch_ctx *c, struct fetch_result *r)
{
	if (!c->o->tmp_dir || asprintf(&c->tmp_path, "%s/fetch-XXXXXX", c->o->tmp_dir) < 0) {
		c->tmp_path = NULL;
		r->status = FETCH_ERR_IO;
		fetch_msg(r, "fetching %s: no temp directory", c->shown);
		return -1;
	}
	c->fd = mkostemp(c->tmp_path, O_CLOEXEC);
	if (c->fd < 0) {
		r->status = FETCH_ERR_IO;
		fetch_msg(r, "fetching %s: cannot create a temp file in %s: %s", c->shown,
			  c->o->tmp_dir, strerror(errno));
		free(c->tmp_path);
		c->tmp_path = NULL;
		return -1;
	}
	return 0;
}

static int fetch_init(struct fetch_ctx *c, const struct fetch_opts *o, struct fetch_result *r)
{
	memset(c, 0, sizeof(*c));
	c->o = o;
	c->fd = -1;
	c->max_bytes = o->max_bytes ? o->max_bytes : FETCH_DEFAULT_MAX_BYTES;
	c->seed = (unsigned)time_mono_us() ^ (unsigned)getpid();
	c->shown = redact_url(o->url);
	if (!c->shown) {
		r->status = FETCH_ERR_IO;
		fetch_msg(r, "fetching a package: out of memory");
		return -1;
	}
	if (fetch_first_url(c, r) != 0 || fetch_open_tmp(c, r) != 0)
		return -1;
	pthread_once(&fetch_curl_once, fetch_curl_init);
	c->curl = curl_easy_init();
	if (!c->curl) {
		r->status = FETCH_ERR_IO;
		fetch_msg(r, "fetching %s: cannot initialise libcurl", c->shown);
		return -1;
	}
	return 0;
}

/* fetch.delay: the download "takes" this much longer, before the deadline starts. */
static int fetch_fault_delay(struct fetch_ctx *c, struct fetch_result *r)
{
	uint32_t ms = c->o->faults ? c->o->faults->fetch_delay_ms : 0;

	if (!ms)
		return 0;
	log_emit(PAR_LOG_INFO, "fetch.fault",
		 LOG_FIELDS(LF_STR("url", c->shown), LF_STR("fault", "fetch.delay"),
			    LF_UINT("delayMs", ms)),
		 "fault fetch.delay: waiting %u ms before fetching", ms);
	if (fetch_sleep(c, ms))
		return 0;
	r->status = FETCH_ERR_CANCELLED;
	fetch_msg(r, "fetching %s: cancelled", c->shown);
	return -1;
}

static void fetch_verify(struct fetch_ctx *c, struct fetch_result *r)
{
	sha256_final_hex(c->sha, r->sha256);
	c->sha = NULL;
	if (!c->o->expected_sha256 || strcasecmp(c->o->expected_sha256, r->sha256) == 0) {
		fetch_msg(r, "fetched %s: %llu bytes", c->shown, (unsigned long long)r->bytes);
		return;
	}
	r->status = FETCH_ERR_SHA_MISMATCH;
	fetch_msg(r, "fetching %s: SHA-256 mismatch: expected %.64s, got %s", c->shown,
		  c->o->expected_sha256, r->sha256);
}

static void fetch_log_end(const struct fetch_ctx *c, const struct fetch_result *r)
{
	int64_t ms = time_mono_ms() - c->started;

	if (r->status == FETCH_OK) {
		log_emit(PAR_LOG_INFO, "fetch.done",
			 LOG_FIELDS(LF_STR("url", c->shown), LF_INT("attempt", r->attempts),
				    LF_INT("status", r->http_status), LF_UINT("bytes", r->bytes),
				    LF_INT("durationMs", ms), LF_STR("sha256", r->sha256)),
			 "%s", r->message);
		return;
	}
	log_emit(PAR_LOG_ERROR, "fetch.failed",
		 LOG_FIELDS(LF_STR("url", c->shown), LF_INT("attempt", r->attempts),
			    LF_INT("status", r->http_status), LF_UINT("bytes", r->bytes),
			    LF_INT("durationMs", ms), LF_STR("error", fetch_status_name(r->status))),
		 "%s", r->message);
}

static void fetch_cleanup(struct fetch_ctx *c, struct fetch_result *r)
{
	char discard[65];

	if (c->sha)
		sha256_final_hex(c->sha, discard);
	if (c->fd >= 0 && close(c->fd) != 0 && r->status == FETCH_OK) {
		r->status = FETCH_ERR_IO;
		fetch_msg(r, "fetching %s: closing %s: %s", c->shown, c->tmp_path, strerror(errno));
	}
	if (r->status == FETCH_OK) {
		r->path = c->tmp_path;
	} else if (c->tmp_path) {
		unlink(c->tmp_path);
		free(c->tmp_path);
	}
	explicit_bzero(&c->creds, sizeof(c->creds));
	curl_easy_cleanup(c->curl);
	free(c->first_url);
	free(c->shown);
}

int fetch_package(const struct fetch_opts *o, struct fetch_result *r)
{
	struct fetch_ctx c;
	int64_t budget;

	memset(r, 0, sizeof(*r));
	r->status = FETCH_ERR_IO;
	if (fetch_init(&c, o, r) != 0 || fetch_fault_delay(&c, r) != 0)
		goto out;
	budget = o->deadline_ms > 0 ? o->deadline_ms : FETCH_DEFAULT_DEADLINE_MS;
	c.started = time_mono_ms();
	c.deadline = c.started + budget;
	fetch_loop(&c, r);
	if (r->status == FETCH_OK)
		fetch_verify(&c, r);
out:
	if (!c.started)
		c.started = time_mono_ms();
	fetch_log_end(&c, r);
	fetch_cleanup(&c, r);
	return r->status == FETCH_OK ? 0 : -1;
}
