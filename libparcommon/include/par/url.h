/* Package URL parsing (SPEC §2 PACKAGE_URL): s3://bucket/key, https://, http:// (opt-in). */
#ifndef PAR_URL_H
#define PAR_URL_H

#include <stdbool.h>

enum url_scheme { URL_S3, URL_HTTPS, URL_HTTP };

/* How an s3:// URL becomes an HTTP one (PAR_S3_ADDRESSING): AUTO is path-style with a custom
 * endpoint (what local S3 servers expect) and virtual-host style against AWS. */
enum s3_addressing { S3_ADDR_AUTO, S3_ADDR_PATH, S3_ADDR_VIRTUAL };

struct par_url {
	enum url_scheme scheme;
	char *host;   /* https/http: host name or literal (IPv6 without brackets); s3: NULL */
	int port;     /* explicit port, or 0 for the scheme default */
	char *path;   /* https/http: "/…" (at least "/"), percent-encoding kept; s3: NULL */
	char *query;  /* after '?', without it; NULL when absent */
	char *bucket; /* s3 only */
	char *key;    /* s3 only: the object key, decoded exactly as written (no leading '/') */
};

/* Parses s. The scheme is case-insensitive. allow_http admits http://. On error returns -1
 * and sets *rule to a static sentence naming the rule broken; out is left zeroed. */
int url_parse(const char *s, bool allow_http, struct par_url *out, const char **rule);
void url_free(struct par_url *u);

/* S3 bucket naming rules: 3..63 of [a-z0-9.-], starts and ends alphanumeric, no "..". */
bool url_valid_bucket(const char *name);

#endif
