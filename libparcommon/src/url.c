/* A small strict parser for package and endpoint URLs (SPEC §2): s3://bucket/key, https://,
 * and http:// only when the caller allows it. Anything odd is rejected with a rule. */
#include "par/url.h"
#include "par/parse.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#define URL_S3_KEY_MAX 1024 /* S3's own limit on object key length */
#define URL_HOST_MAX 253
#define URL_LABEL_MAX 63

static const char url_rule_empty[] = "must not be empty";
static const char url_rule_chars[] =
	"must not contain control characters, nor spaces (except inside an s3:// key)";
static const char url_rule_scheme[] = "must start with s3:// or https://";
static const char url_rule_file[] =
	"file:// is not allowed: use AGENT_PACKAGE_PATH for local packages";
static const char url_rule_http[] = "http:// is allowed only with PAR_ALLOW_HTTP=1";
static const char url_rule_s3_form[] = "must be s3://bucket/key with a non-empty key";
static const char url_rule_s3_bucket[] =
	"bucket must be 3..63 of [a-z0-9.-], start and end alphanumeric, no '..'";
static const char url_rule_s3_key[] = "S3 key must be at most 1024 bytes";
static const char url_rule_userinfo[] =
	"must not carry credentials (user:pass@): credentials don't belong in URLs";
static const char url_rule_host[] = "must name a host ([A-Za-z0-9._-] labels, or [IPv6])";
static const char url_rule_ipv6[] = "IPv6 host must be a bracketed literal of hex digits and ':'";
static const char url_rule_port[] = "port must be an integer 1..65535 (digits only)";
static const char url_rule_fragment[] = "must not contain a fragment ('#')";
static const char url_rule_percent[] = "'%' must be followed by two hex digits";
static const char url_rule_nomem[] = "out of memory";

static void url_fail(struct par_url *out, const char **rule, const char *why)
{
	url_free(out);
	if (rule)
		*rule = why;
}

/* Spaces and control bytes are never part of a URL we accept; bytes >= 0x80 are left to the
 * path (S3 keys may be UTF-8). */
/* S3 keys may hold spaces (the AWS CLI takes s3://b/a b as is); nothing else may, and a
 * leading or trailing space is always a copy-paste accident. */
static bool url_has_bad_chars(const char *s, bool spaces_ok)
{
	size_t n = strlen(s);
	if (n && (s[0] == ' ' || s[n - 1] == ' '))
		return true;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f || (c == ' ' && !spaces_ok))
			return true;
	}
	return false;
}

static bool url_percent_ok(const char *s)
{
	for (; *s; s++) {
		if (*s != '%')
			continue;
		if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2]))
			return false;
		s += 2;
	}
	return true;
}

bool url_valid_bucket(const char *name)
{
	size_t n, i;

	if (!name)
		return false;
	n = strlen(name);
	if (n < 3 || n > 63)
		return false;
	for (i = 0; i < n; i++) {
		char c = name[i];
		if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '.' || c == '-'))
			return false;
	}
	if (!isalnum((unsigned char)name[0]) || !isalnum((unsigned char)name[n - 1]))
		return false;
	return strstr(name, "..") == NULL;
}

/* Returns the scheme and how many bytes "scheme://" takes, or a rule when it is not one we
 * accept. */
static const char *url_scheme(const char *s, bool allow_http, enum url_scheme *scheme,
			      size_t *len)
{
	const char *sep = strstr(s, "://");
	size_t n;

	if (!sep)
		return url_rule_scheme;
	n = (size_t)(sep - s);
	*len = n + 3;
	if (n == 2 && strncasecmp(s, "s3", 2) == 0) {
		*scheme = URL_S3;
		return NULL;
	}
	if (n == 5 && strncasecmp(s, "https", 5) == 0) {
		*scheme = URL_HTTPS;
		return NULL;
	}
	if (n == 4 && strncasecmp(s, "http", 4) == 0) {
		*scheme = URL_HTTP;
		return allow_http ? NULL : url_rule_http;
	}
	if (n == 4 && strncasecmp(s, "file", 4) == 0)
		return url_rule_file;
	return url_rule_scheme;
}

static int url_parse_s3(const char *rest, struct par_url *out, const char **rule)
{
	const char *slash = strchr(rest, '/');

	if (!slash || slash == rest || slash[1] == '\0') {
		url_fail(out, rule, url_rule_s3_form);
		return -1;
	}
	out->bucket = strndup(rest, (size_t)(slash - rest));
	if (!out->bucket) {
		url_fail(out, rule, url_rule_nomem);
		return -1;
	}
	if (!url_valid_bucket(out->bucket)) {
		url_fail(out, rule, url_rule_s3_bucket);
		return -1;
	}
	/* The key is taken verbatim, '?' and '#' included, as the AWS CLI does: both are legal
	 * in S3 keys and an s3:// URL has no query string. */
	if (strlen(slash + 1) > URL_S3_KEY_MAX) {
		url_fail(out, rule, url_rule_s3_key);
		return -1;
	}
	out->key = strdup(slash + 1);
	if (!out->key) {
		url_fail(out, rule, url_rule_nomem);
		return -1;
	}
	return 0;
}

static bool url_host_char(char c)
{
	return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

/* DNS name or IPv4 literal: non-empty labels of [A-Za-z0-9_-]; '_' is allowed because
 * container service names (docker compose) use it. */
static bool url_valid_hostname(const char *h, size_t n)
{
	size_t i, label = 0;

	if (n == 0 || n > URL_HOST_MAX)
		return false;
	for (i = 0; i < n; i++) {
		if (!url_host_char(h[i]))
			return false;
		if (h[i] != '.') {
			if (++label > URL_LABEL_MAX)
				return false;
			continue;
		}
		if (label == 0)
			return false;
		label = 0;
	}
	return label > 0;
}

static bool url_valid_ipv6(const char *h, size_t n)
{
	size_t i;

	if (n < 2 || !memchr(h, ':', n))
		return false;
	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.')
			return false;
	return true;
}

/* Splits "host[:port]" or "[v6][:port]" (auth, n bytes) into out->host and out->port. */
static const char *url_parse_authority(const char *auth, size_t n, struct par_url *out)
{
	const char *host = auth, *port = NULL;
	size_t hlen;
	uint64_t p;

	if (memchr(auth, '@', n))
		return url_rule_userinfo;
	if (n > 0 && auth[0] == '[') {
		const char *close = memchr(auth, ']', n);
		if (!close)
			return url_rule_ipv6;
		host = auth + 1;
		hlen = (size_t)(close - host);
		if (!url_valid_ipv6(host, hlen))
			return url_rule_ipv6;
		if (close + 1 < auth + n) {
			if (close[1] != ':')
				return url_rule_ipv6;
			port = close + 2;
		}
	} else {
		const char *colon = memchr(auth, ':', n);
		hlen = colon ? (size_t)(colon - auth) : n;
		if (!url_valid_hostname(host, hlen))
			return url_rule_host;
		if (colon)
			port = colon + 1;
	}
	if (port) {
		char buf[8];
		size_t plen = (size_t)(auth + n - port);
		if (plen == 0 || plen >= sizeof(buf))
			return url_rule_port;
		memcpy(buf, port, plen);
		buf[plen] = '\0';
		if (parse_uint(buf, 1, 65535, &p) != 0)
			return url_rule_port;
		out->port = (int)p;
	}
	out->host = strndup(host, hlen);
	return out->host ? NULL : url_rule_nomem;
}

static int url_parse_web(const char *rest, struct par_url *out, const char **rule)
{
	size_t auth_len = strcspn(rest, "/?");
	const char *path = rest + auth_len;
	const char *q = strchr(path, '?');
	const char *why;

	if (strchr(rest, '#')) {
		url_fail(out, rule, url_rule_fragment);
		return -1;
	}
	if (!url_percent_ok(path)) {
		url_fail(out, rule, url_rule_percent);
		return -1;
	}
	why = url_parse_authority(rest, auth_len, out);
	if (why) {
		url_fail(out, rule, why);
		return -1;
	}
	if (*path == '/')
		out->path = strndup(path, q ? (size_t)(q - path) : strlen(path));
	else
		out->path = strdup("/");
	if (q)
		out->query = strdup(q + 1);
	if (!out->path || (q && !out->query)) {
		url_fail(out, rule, url_rule_nomem);
		return -1;
	}
	return 0;
}

int url_parse(const char *s, bool allow_http, struct par_url *out, const char **rule)
{
	const char *why;
	size_t skip = 0;

	memset(out, 0, sizeof(*out));
	if (!s || !*s) {
		url_fail(out, rule, url_rule_empty);
		return -1;
	}
	why = url_scheme(s, allow_http, &out->scheme, &skip);
	if (!why && url_has_bad_chars(s, out->scheme == URL_S3))
		why = url_rule_chars;
	if (why) {
		url_fail(out, rule, why);
		return -1;
	}
	if (out->scheme == URL_S3)
		return url_parse_s3(s + skip, out, rule);
	return url_parse_web(s + skip, out, rule);
}

void url_free(struct par_url *u)
{
	if (!u)
		return;
	free(u->host);
	free(u->path);
	free(u->query);
	free(u->bucket);
	free(u->key);
	memset(u, 0, sizeof(*u));
}
