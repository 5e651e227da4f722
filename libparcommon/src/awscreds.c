/* AWS credentials from the environment or the ECS endpoint, cached and refreshed, never logged. */
#include "par/awscreds.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "par/log.h"
#include "par/redact.h"
#include "par/timeutil.h"

extern char **environ;

#define AWS_ECS_HOST "http://169.254.170.2"
#define AWS_REFRESH_MARGIN_MS (5 * 60 * 1000)
#define AWS_CONNECT_TIMEOUT_MS 2000
#define AWS_TOTAL_TIMEOUT_MS 5000
#define AWS_BODY_MAX (64 * 1024) /* an endpoint answer is < 4 KiB; more is not one */
#define AWS_TOKEN_MAX 16384

struct aws_creds_provider {
	pthread_mutex_t mu;
	enum aws_creds_source source;
	struct aws_creds env;        /* AWS_CREDS_ENV */
	char *endpoint;              /* AWS_CREDS_CONTAINER: the full URL */
	char *auth_token;            /* AWS_CONTAINER_AUTHORIZATION_TOKEN */
	char *auth_token_file;       /* …_FILE: re-read on each fetch (EKS rotates it) */
	char why_none[256];          /* why the environment gave no usable source */
	struct egress_ledger *ledger;
	struct aws_creds cached;
	bool have_cached;
};

struct aws_body {
	char *buf;
	size_t len;
	bool overflow;
};

/* ---- environment ------------------------------------------------------------------------- */

/* The value of name in env ("K=V" list, NULL = environ); an empty value counts as unset, as
 * the SDKs treat it. */
static const char *aws_env_get(char *const *env, const char *name)
{
	size_t n = strlen(name);

	if (!env)
		env = environ;
	for (; env && *env; env++)
		if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
			return (*env)[n + 1] ? *env + n + 1 : NULL;
	return NULL;
}

static void aws_set_why(struct aws_creds_provider *p, const char *why)
{
	snprintf(p->why_none, sizeof(p->why_none), "%s", why);
}

/* Copies src into a fixed field; false when it does not fit (never truncate a key). */
static bool aws_copy_field(char *dst, size_t n, const char *src)
{
	size_t len = strlen(src);

	if (len >= n)
		return false;
	memcpy(dst, src, len + 1);
	return true;
}

static bool aws_from_env_keys(struct aws_creds_provider *p, char *const *env)
{
	const char *ak = aws_env_get(env, "AWS_ACCESS_KEY_ID");
	const char *sk = aws_env_get(env, "AWS_SECRET_ACCESS_KEY");
	const char *tok = aws_env_get(env, "AWS_SESSION_TOKEN");

	if (!ak && !sk)
		return false;
	if (!ak || !sk) {
		/* Partial keys: say so, then let the container endpoint have its turn. */
		aws_set_why(p, ak ? "AWS_ACCESS_KEY_ID is set without AWS_SECRET_ACCESS_KEY"
				  : "AWS_SECRET_ACCESS_KEY is set without AWS_ACCESS_KEY_ID");
		return false;
	}
	if (!aws_copy_field(p->env.access_key, sizeof(p->env.access_key), ak) ||
	    !aws_copy_field(p->env.secret_key, sizeof(p->env.secret_key), sk) ||
	    !aws_copy_field(p->env.session_token, sizeof(p->env.session_token), tok ? tok : "")) {
		memset(&p->env, 0, sizeof(p->env));
		aws_set_why(p, "AWS credential variables are longer than any AWS key or token");
		return false;
	}
	p->source = AWS_CREDS_ENV;
	return true;
}

/* The hosts the AWS SDKs accept for a FULL_URI over plain http: loopback and the ECS/EKS
 * link-local agents. Literal addresses only, so no DNS answer can widen the rule. */
static bool aws_allowed_http_host(const char *host)
{
	unsigned char a[16];
	char buf[64];
	size_t n = strlen(host);

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (strcmp(host, "169.254.170.2") == 0 || strcmp(host, "169.254.170.23") == 0)
		return true;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	if (n < 3 || n - 2 >= sizeof(buf) || host[0] != '[' || host[n - 1] != ']')
		return false;
	memcpy(buf, host + 1, n - 2);
	buf[n - 2] = '\0';
	if (inet_pton(AF_INET6, buf, a) != 1)
		return false;
	{
		static const unsigned char loop6[16] = {[15] = 1};
		static const unsigned char eks6[16] = {0xfd, 0x00, 0x0e, 0xc2, [15] = 0x23};
		return memcmp(a, loop6, 16) == 0 || memcmp(a, eks6, 16) == 0;
	}
}

/* NULL when uri is an acceptable FULL_URI, else the rule it breaks. */
static const char *aws_check_full_uri(const char *uri)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	const char *why = NULL;

	if (!u)
		return "out of memory";
	if (curl_url_set(u, CURLUPART_URL, uri, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		why = "AWS_CONTAINER_CREDENTIALS_FULL_URI is not a valid URL";
	else if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)
		why = "AWS_CONTAINER_CREDENTIALS_FULL_URI must be http:// or https://";
	else if (strcmp(scheme, "http") == 0 && !aws_allowed_http_host(host))
		why = "AWS_CONTAINER_CREDENTIALS_FULL_URI over http must name a loopback address, "
		      "169.254.170.2, 169.254.170.23 or [fd00:ec2::23]";
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return why;
}

static char *aws_concat(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	char *s = malloc(na + nb + 1);

	if (!s)
		return NULL;
	memcpy(s, a, na);
	memcpy(s + na, b, nb + 1);
	return s;
}

/* -1 only on allocation failure; an unusable configuration leaves the source NONE. */
static int aws_from_container(struct aws_creds_provider *p, char *const *env)
{
	const char *rel = aws_env_get(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = aws_env_get(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *tok = aws_env_get(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
	const char *tokfile = aws_env_get(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *why;

	if (rel) {
		/* RELATIVE_URI wins, as in the SDKs: it is what ECS itself injects. */
		if (asprintf(&p->endpoint, "%s%s%s", AWS_ECS_HOST, rel[0] == '/' ? "" : "/", rel) < 0)
			p->endpoint = NULL;
	} else if (full) {
		why = aws_check_full_uri(full);
		if (why) {
			aws_set_why(p, why);
			return 0;
		}
		p->endpoint = strdup(full);
	} else {
		return 0;
	}
	if (!p->endpoint)
		return -1;
	/* The token file wins over the literal token, as in the SDKs (EKS Pod Identity). */
	if (tokfile && !(p->auth_token_file = strdup(tokfile)))
		return -1;
	if (!tokfile && tok && !(p->auth_token = strdup(tok)))
		return -1;
	p->source = AWS_CREDS_CONTAINER;
	p->why_none[0] = '\0';
	return 0;
}

struct aws_creds_provider *aws_creds_provider_new(char *const *env, struct egress_ledger *ledger)
{
	struct aws_creds_provider *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	if (pthread_mutex_init(&p->mu, NULL) != 0) {
		free(p);
		return NULL;
	}
	p->ledger = ledger;
	p->source = AWS_CREDS_NONE;
	if (aws_from_env_keys(p, env))
		return p;
	if (aws_from_container(p, env) != 0) {
		aws_creds_provider_free(p);
		return NULL;
	}
	return p;
}

void aws_creds_provider_free(struct aws_creds_provider *p)
{
	if (!p)
		return;
	explicit_bzero(&p->env, sizeof(p->env));
	explicit_bzero(&p->cached, sizeof(p->cached));
	if (p->auth_token)
		explicit_bzero(p->auth_token, strlen(p->auth_token));
	free(p->auth_token);
	free(p->auth_token_file);
	free(p->endpoint);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

enum aws_creds_source aws_creds_source(const struct aws_creds_provider *p)
{
	return p ? p->source : AWS_CREDS_NONE;
}

const char *aws_creds_source_name(enum aws_creds_source s)
{
	switch (s) {
	case AWS_CREDS_ENV:
		return "environment";
	case AWS_CREDS_CONTAINER:
		return "container";
	case AWS_CREDS_NONE:
		break;
	}
	return "none";
}

bool aws_creds_static_long_lived(const struct aws_creds_provider *p)
{
	return p && p->source == AWS_CREDS_ENV && p->env.session_token[0] == '\0';
}

/* ---- ISO 8601 ---------------------------------------------------------------------------- */

/* "2026-11-27T16:00:00Z", with optional fractional seconds and a Z or ±HH:MM offset. */
static int aws_parse_iso8601(const char *s, int64_t *epoch_ms)
{
	struct tm tm = {0};
	int y, mo, d, h, mi, sec, used = 0, oh = 0, om = 0;
	time_t t;
	int64_t offset = 0;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6 ||
	    used != 19)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
		return -1;
	s += used;
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++)
			;
	if ((*s == '+' || *s == '-') && sscanf(s + 1, "%2d:%2d", &oh, &om) == 2 &&
	    strlen(s) == 6) {
		offset = ((int64_t)oh * 60 + om) * 60 * (*s == '+' ? 1 : -1);
	} else if (strcmp(s, "Z") != 0) {
		return -1;
	}
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	*epoch_ms = ((int64_t)t - offset) * 1000;
	return 0;
}

/* ---- the endpoint ------------------------------------------------------------------------ */

static size_t aws_body_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct aws_body *b = ud;
	size_t n = size * nmemb;
	char *grown;

	if (b->len + n > AWS_BODY_MAX) {
		b->overflow = true;
		return 0; /* aborts: memory stays bounded whatever the endpoint sends */
	}
	grown = realloc(b->buf, b->len + n + 1);
	if (!grown)
		return 0;
	b->buf = grown;
	memcpy(b->buf + b->len, data, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return n;
}

static void aws_body_free(struct aws_body *b)
{
	if (b->buf)
		explicit_bzero(b->buf, b->len);
	free(b->buf);
	b->buf = NULL;
	b->len = 0;
}

/* The authorization token: the file read anew each time (it rotates), else the variable.
 * *tok is NULL when none is configured. 0 ok, -1 with err. */
static int aws_read_token(const struct aws_creds_provider *p, char **tok, char *err, size_t errlen)
{
	char buf[AWS_TOKEN_MAX + 1];
	ssize_t n;
	int fd;

	*tok = NULL;
	if (!p->auth_token_file) {
		if (p->auth_token && !(*tok = strdup(p->auth_token)))
			goto nomem;
		goto check;
	}
	fd = open(p->auth_token_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s",
			 p->auth_token_file, strerror(errno));
		return -1;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0 || n > AWS_TOKEN_MAX) {
		snprintf(err, errlen, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s is unreadable or "
			 "longer than %d bytes", p->auth_token_file, AWS_TOKEN_MAX);
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	*tok = strndup(buf, (size_t)n);
	explicit_bzero(buf, sizeof(buf));
	if (!*tok)
		goto nomem;
check:
	/* A line break would smuggle a second header into the request. */
	if (*tok && strpbrk(*tok, "\r\n")) {
		snprintf(err, errlen, "the container authorization token contains a line break");
		explicit_bzero(*tok, strlen(*tok));
		free(*tok);
		*tok = NULL;
		return -1;
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static void aws_ledger_record(const struct aws_creds_provider *p, CURL *c, CURLcode rc,
			      int64_t start_ms, uint64_t bytes)
{
	struct egress_entry e = {.epoch_ms = start_ms, .bytes = bytes};
	char *host = NULL, *ip = NULL;
	long status = 0, port = 0;
	CURLU *u;

	if (!p->ledger)
		return;
	u = curl_url();
	if (u && curl_url_set(u, CURLUPART_URL, p->endpoint, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		snprintf(e.host, sizeof(e.host), "%s", host);
	curl_free(host);
	if (u && curl_url_get(u, CURLUPART_PORT, &host, CURLU_DEFAULT_PORT) == CURLUE_OK) {
		e.port = atoi(host);
		curl_free(host);
	}
	curl_url_cleanup(u);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (curl_easy_getinfo(c, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip)
		snprintf(e.ip, sizeof(e.ip), "%s", ip);
	if (curl_easy_getinfo(c, CURLINFO_PRIMARY_PORT, &port) == CURLE_OK && port > 0)
		e.port = (int)port;
	e.status = status;
	snprintf(e.purpose, sizeof(e.purpose), "credentials");
	snprintf(e.method, sizeof(e.method), "GET");
	if (rc != CURLE_OK)
		snprintf(e.error, sizeof(e.error), "%s", curl_easy_strerror(rc));
	ledger_record(p->ledger, &e);
}

/* Accept plus, when there is a token, Authorization. NULL when out of memory. */
static struct curl_slist *aws_headers(const char *auth)
{
	struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json"), *h;

	if (!hdrs || !auth)
		return hdrs;
	h = curl_slist_append(hdrs, auth);
	if (!h)
		curl_slist_free_all(hdrs);
	return h;
}

/* One GET of the endpoint into body. 0 ok (HTTP 200), -1 with err. */
static int aws_http_get(const struct aws_creds_provider *p, const char *token,
			struct aws_body *body, char *err, size_t errlen)
{
	char *auth = token ? aws_concat("Authorization: ", token) : NULL;
	struct curl_slist *hdrs = (token && !auth) ? NULL : aws_headers(auth);
	char *shown = redact_url(p->endpoint);
	int64_t start = time_epoch_ms();
	long status = 0;
	CURLcode rc;
	CURL *c = curl_easy_init();
	int ret = -1;

	if (!c || !hdrs) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, p->endpoint);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*"); /* the endpoint is local: never via a proxy */
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)AWS_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)AWS_TOTAL_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, aws_body_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	rc = curl_easy_perform(c);
	aws_ledger_record(p, c, rc, start, body->len);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK)
		snprintf(err, errlen, "credentials endpoint %s: %s", shown ? shown : "",
			 body->overflow ? "answer larger than 64 KiB" : curl_easy_strerror(rc));
	else if (status != 200)
		snprintf(err, errlen, "credentials endpoint %s answered HTTP %ld", shown ? shown : "",
			 status);
	else
		ret = 0;
out:
	if (auth)
		explicit_bzero(auth, strlen(auth));
	free(auth);
	free(shown);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return ret;
}

static void aws_json_wipe(cJSON *j)
{
	for (; j; j = j->next) {
		if (j->valuestring)
			explicit_bzero(j->valuestring, strlen(j->valuestring));
		aws_json_wipe(j->child);
	}
}

static const char *aws_json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* Parses {"AccessKeyId","SecretAccessKey","Token","Expiration"}. NULL ok, else the problem
 * (never quoting a value). */
static const char *aws_parse_answer(const char *json, size_t len, struct aws_creds *out)
{
	/* json is NUL-terminated; an embedded NUL would hide whatever follows it. */
	cJSON *o = memchr(json, '\0', len) ? NULL : cJSON_ParseWithOpts(json, NULL, 1);
	const char *ak, *sk, *tok, *exp, *why = NULL;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(o)) {
		why = "the answer is not a JSON object";
		goto out;
	}
	ak = aws_json_str(o, "AccessKeyId");
	sk = aws_json_str(o, "SecretAccessKey");
	tok = aws_json_str(o, "Token");
	exp = aws_json_str(o, "Expiration");
	if (!ak || !sk || !exp)
		why = "the answer lacks AccessKeyId, SecretAccessKey or Expiration";
	else if (!aws_copy_field(out->access_key, sizeof(out->access_key), ak) ||
		 !aws_copy_field(out->secret_key, sizeof(out->secret_key), sk) ||
		 !aws_copy_field(out->session_token, sizeof(out->session_token), tok ? tok : ""))
		why = "a credential in the answer is longer than any AWS key or token";
	else if (aws_parse_iso8601(exp, &out->expires_epoch_ms) != 0)
		why = "Expiration in the answer is not an ISO 8601 UTC time";
out:
	if (why)
		explicit_bzero(out, sizeof(*out));
	aws_json_wipe(o);
	cJSON_Delete(o);
	return why;
}

static int aws_fetch_container(struct aws_creds_provider *p, struct aws_creds *out, char *err,
			       size_t errlen)
{
	struct aws_body body = {0};
	char *token = NULL, *shown;
	const char *why;
	int ret = -1;

	if (aws_read_token(p, &token, err, errlen) != 0)
		return -1;
	if (aws_http_get(p, token, &body, err, errlen) != 0)
		goto out;
	why = aws_parse_answer(body.buf ? body.buf : "", body.len, out);
	if (why) {
		shown = redact_url(p->endpoint);
		snprintf(err, errlen, "credentials endpoint %s: %s", shown ? shown : "", why);
		free(shown);
		goto out;
	}
	ret = 0;
out:
	if (token)
		explicit_bzero(token, strlen(token));
	free(token);
	aws_body_free(&body);
	return ret;
}

static void aws_log_refreshed(const struct aws_creds *c)
{
	char ts[32];

	log_format_timestamp(c->expires_epoch_ms, ts, sizeof(ts));
	log_emit(PAR_LOG_INFO, "aws.credentials.refreshed",
		 LOG_FIELDS(LF_STR("source", "container"), LF_STR("expiration", ts)),
		 "fetched AWS credentials from the container endpoint");
}

static int aws_get_container_locked(struct aws_creds_provider *p, struct aws_creds *out,
				    char *err, size_t errlen)
{
	int64_t now = time_epoch_ms();
	struct aws_creds fresh;

	if (p->have_cached && p->cached.expires_epoch_ms - now > AWS_REFRESH_MARGIN_MS) {
		*out = p->cached;
		return 0;
	}
	if (aws_fetch_container(p, &fresh, err, errlen) == 0) {
		p->cached = fresh;
		p->have_cached = true;
		explicit_bzero(&fresh, sizeof(fresh));
		aws_log_refreshed(&p->cached);
		*out = p->cached;
		return 0;
	}
	if (p->have_cached && p->cached.expires_epoch_ms > now) {
		/* The endpoint hiccuped inside the refresh margin: what we hold still works. */
		log_emit(PAR_LOG_WARN, "aws.credentials.refresh_failed",
			 LOG_FIELDS(LF_STR("error", err)),
			 "refreshing AWS credentials failed; using the cached ones until they expire");
		*out = p->cached;
		return 0;
	}
	return -1;
}

int aws_creds_get(struct aws_creds_provider *p, struct aws_creds *out, char *err, size_t errlen)
{
	int ret = -1;

	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	if (!p) {
		snprintf(err, errlen, "no AWS credentials provider");
		return -1;
	}
	pthread_mutex_lock(&p->mu);
	switch (p->source) {
	case AWS_CREDS_ENV:
		*out = p->env;
		ret = 0;
		break;
	case AWS_CREDS_CONTAINER:
		ret = aws_get_container_locked(p, out, err, errlen);
		break;
	case AWS_CREDS_NONE:
		snprintf(err, errlen, "no AWS credentials: %s",
			 p->why_none[0] ? p->why_none
					: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run "
					  "with a task role (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)");
		break;
	}
	pthread_mutex_unlock(&p->mu);
	return ret;
}

/* ---- URI encoding ------------------------------------------------------------------------ */

static bool aws_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

char *aws_uri_encode(const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = s ? strlen(s) : 0, i, o = 0;
	char *out = malloc(3 * n + 1);

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (aws_unreserved(c) || (keep_slash && c == '/')) {
			out[o++] = (char)c;
			continue;
		}
		out[o++] = '%';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 0xF];
	}
	out[o] = '\0';
	return out;
}

struct curl_slist *aws_append_token_header(struct curl_slist *h, const struct aws_creds *cr)
{
	if (!h || !cr->session_token[0])
		return h;
	char *tok;
	if (asprintf(&tok, "x-amz-security-token: %s", cr->session_token) < 0) {
		curl_slist_free_all(h);
		return NULL;
	}
	struct curl_slist *t = curl_slist_append(h, tok);
	explicit_bzero(tok, strlen(tok));
	free(tok);
	if (!t)
		curl_slist_free_all(h);
	return t;
}
