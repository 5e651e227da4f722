/* Keeps secrets out of logs and admin output: strips URL credentials and query strings
 * (presigned S3 signatures live there) and hides values of secret-looking names. */
#include "par/redact.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Length of "scheme://" at the start of s (RFC 3986 scheme), or 0 when s is not a URL. */
static size_t url_scheme_len(const char *s)
{
	size_t i = 0;

	if (!isalpha((unsigned char)s[0]))
		return 0;
	while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
		i++;
	if (strncmp(s + i, "://", 3) != 0)
		return 0;
	return i + 3;
}

char *redact_url(const char *url)
{
	size_t scheme, auth_len, rest_len, n;
	const char *host, *at, *rest;
	char *out;

	if (!url)
		return strdup("");
	scheme = url_scheme_len(url);
	if (!scheme) {
		n = strcspn(url, "?#");
		return strndup(url, n);
	}
	/* Userinfo ends at the last '@' of the authority; a '@' later in the path is not one. */
	auth_len = strcspn(url + scheme, "/?#");
	host = url + scheme;
	at = memrchr(host, '@', auth_len);
	if (at) {
		auth_len -= (size_t)(at + 1 - host);
		host = at + 1;
	}
	rest = host + auth_len;
	rest_len = strcspn(rest, "?#");
	out = malloc(scheme + auth_len + rest_len + 1);
	if (!out)
		return NULL;
	memcpy(out, url, scheme);
	memcpy(out + scheme, host, auth_len);
	memcpy(out + scheme + auth_len, rest, rest_len);
	out[scheme + auth_len + rest_len] = '\0';
	return out;
}

bool redact_is_secret_name(const char *name)
{
	/* AUTHORIZATION and COOKIE match as substrings too, so Proxy-Authorization and
	 * Set-Cookie are covered: a false positive only hides a value. */
	static const char *const parts[] = {
		"SECRET", "TOKEN", "PASSWORD", "SESSION", "CREDENTIAL", "AUTHORIZATION", "COOKIE",
	};
	size_t i;

	if (!name || !*name)
		return false;
	if (strcasecmp(name, "AWS_ACCESS_KEY_ID") == 0)
		return true;
	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (strcasestr(name, parts[i]))
			return true;
	return false;
}

char *redact_value(const char *name, const char *value)
{
	if (redact_is_secret_name(name))
		return strdup(REDACTED);
	if (!value)
		return strdup("");
	if (url_scheme_len(value))
		return redact_url(value);
	return strdup(value);
}
