/* Keeping secrets out of logs and admin output (SPEC §7). */
#ifndef PAR_REDACT_H
#define PAR_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#define REDACTED "[redacted]"

/* Copies url without userinfo, query string and fragment ("https://u:p@h/k?X-Amz-Signature=…"
 * → "https://h/k"); a string that is not a URL is copied up to its first '?' or '#'.
 * Returns a malloc'd string (NULL only on allocation failure). */
char *redact_url(const char *url);

/* True for variable or header names that carry secrets: *SECRET*, *TOKEN*, *PASSWORD*,
 * AUTHORIZATION, *SESSION*, AWS_ACCESS_KEY_ID, *CREDENTIAL*, COOKIE (case-insensitive). */
bool redact_is_secret_name(const char *name);

/* The value to show for name=value: REDACTED for a secret name, redact_url for a value that
 * looks like a URL, else the value itself. malloc'd. */
char *redact_value(const char *name, const char *value);

#endif
