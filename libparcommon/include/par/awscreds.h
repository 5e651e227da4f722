/* AWS credentials for signing (S3 and the verify-isolation probes): static keys from the
 * environment, else the ECS container credentials endpoint, cached and refreshed before they
 * expire. Values never reach a log. */
#ifndef PAR_AWSCREDS_H
#define PAR_AWSCREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "par/ledger.h"

struct aws_creds {
	char access_key[128];
	char secret_key[128];
	char session_token[4096];   /* "" when none */
	int64_t expires_epoch_ms;   /* 0 = does not expire (static keys) */
};

enum aws_creds_source { AWS_CREDS_NONE, AWS_CREDS_ENV, AWS_CREDS_CONTAINER };

struct aws_creds_provider;

/* Reads the credential variables from env ("K=V", NULL-terminated; NULL = environ):
 * AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, else
 * AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (http://169.254.170.2 + URI) or
 * AWS_CONTAINER_CREDENTIALS_FULL_URI with AWS_CONTAINER_AUTHORIZATION_TOKEN or
 * AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE. A FULL_URI over http must name a loopback or the
 * ECS/EKS link-local hosts (as the AWS SDKs require). Requests to the endpoint are recorded in
 * ledger (purpose "credentials") when it is not NULL. */
struct aws_creds_provider *aws_creds_provider_new(char *const *env, struct egress_ledger *ledger);
void aws_creds_provider_free(struct aws_creds_provider *p);
enum aws_creds_source aws_creds_source(const struct aws_creds_provider *p);
const char *aws_creds_source_name(enum aws_creds_source s); /* "none", "environment", "container" */

/* Current credentials: cached ones while they have more than 5 minutes left, else fetched
 * again (the endpoint answers {"AccessKeyId","SecretAccessKey","Token","Expiration"}).
 * Thread-safe. 0 ok; -1 with a sentence in err (never containing a secret). */
int aws_creds_get(struct aws_creds_provider *p, struct aws_creds *out, char *err, size_t errlen);

/* True when the environment holds long-lived static keys (an access key without a session
 * token): verify-isolation warns about them. */
bool aws_creds_static_long_lived(const struct aws_creds_provider *p);

/* AWS's URI encoding (RFC 3986 unreserved kept, everything else %XX upper-case); '/' kept
 * when keep_slash (object keys in paths). malloc'd. */
char *aws_uri_encode(const char *s, bool keep_slash);

/* Appends "x-amz-security-token: …" to h when cr has a session token (curl's SigV4 signs
 * it with the rest; the copy on the heap is wiped). Returns the list; on allocation
 * failure frees h and returns NULL, so calls chain. */
struct curl_slist;
struct curl_slist *aws_append_token_header(struct curl_slist *h, const struct aws_creds *cr);

#endif
