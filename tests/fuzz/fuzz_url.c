/* libFuzzer target: arbitrary bytes as a package or endpoint URL through url_parse (both with
 * and without http://) and redact_url, checking what each promises about its result. */
#include "par/redact.h"
#include "par/url.h"

#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool has_control(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* An accepted URL has the parts its scheme promises (par/url.h); anything else is a bug. */
static void check_parsed(const char *s, bool allow_http, const struct par_url *u)
{
	if (u->scheme == URL_S3) {
		if (!url_valid_bucket(u->bucket) || !u->key || !u->key[0] ||
		    strlen(u->key) > 1024 || u->host || u->path)
			abort();
		return;
	}
	if (u->scheme == URL_HTTP && !allow_http)
		abort();
	if (!u->host || !u->host[0] || strchr(u->host, '@') || !u->path || u->path[0] != '/' ||
	    u->port < 0 || u->port > 65535 || strchr(s, '#') || has_control(s) ||
	    strchr(u->path, ' ') || (u->query && strchr(u->query, ' ')))
		abort();
}

/* Whether s starts with an RFC 3986 scheme and "://", which is when redact_url treats it as
 * a URL (anything else is only cut at its first '?' or '#'). */
static size_t scheme_len(const char *s)
{
	size_t i = 0;
	if (!isalpha((unsigned char)s[0]))
		return 0;
	while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
		i++;
	return strncmp(s + i, "://", 3) == 0 ? i + 3 : 0;
}

/* The redacted text has no query, fragment or userinfo left to leak. */
static void check_redacted(const char *s)
{
	char *r = redact_url(s);
	if (!r)
		return;
	if (strpbrk(r, "?#"))
		abort();
	size_t skip = scheme_len(s);
	if (skip && (strncmp(r, s, skip) != 0 || memchr(r + skip, '@', strcspn(r + skip, "/"))))
		abort();
	free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	for (int allow_http = 0; allow_http < 2; allow_http++) {
		struct par_url u;
		const char *rule = NULL;
		if (url_parse(s, allow_http, &u, &rule) == 0)
			check_parsed(s, allow_http, &u);
		else if (!rule || u.host || u.path || u.query || u.bucket || u.key)
			abort(); /* a refusal names its rule and leaves out zeroed */
		url_free(&u);
	}
	url_valid_bucket(s);
	check_redacted(s);
	free(s);
	return 0;
}
