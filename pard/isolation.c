/* verify-isolation: the egress ledger judged, the task role probed, the package read, the
 * environment and the process inspected — each a PASS/WARN/FAIL with one line of evidence. */
#include "isolation.h"

#include <ctype.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "package.h"
#include "par/awscreds.h"
#include "par/fetch.h"
#include "par/ledger.h"
#include "par/log.h"
#include "par/redact.h"
#include "par/strbuf.h"
#include "par/timeutil.h"
#include "par/url.h"

/* Each probe gets this for connect and answer together; they run side by side, so the
 * whole command stays within a few seconds even when every endpoint is blackholed. */
#define ISO_PROBE_TIMEOUT_MS 3000L
#define ISO_RUN_SLACK_MS 1000      /* the multi loop's own backstop past the probe timeout */
#define ISO_BODY_KEEP 2048         /* of an answer, kept for its error code */
#define ISO_EVIDENCE_MAX 640
#define ISO_OFFENDERS_NAMED 3      /* hosts the egress evidence names before "+N more" */
#define ISO_DEFAULT_REGION "us-east-1"
#define ISO_ECS_CREDS_HOST "169.254.170.2" /* where RELATIVE_URI points, as in awscreds.c */

enum iso_verdict { ISO_PASS, ISO_WARN, ISO_FAIL };

static const char *const iso_verdict_names[] = {"PASS", "WARN", "FAIL"};

struct iso_report {
	cJSON *checks;
	bool strict;
	int counts[3];
};

struct iso_origin {
	char host[256]; /* lower-case, IPv6 without brackets */
	int port;
};

/* Where the package comes from, as the fetcher reaches it. */
struct iso_source {
	bool remote;              /* PACKAGE_URL in use (not AGENT_PACKAGE_PATH) */
	bool s3;
	char *shown;              /* s3://bucket/key or the URL without its query */
	char *request_url;        /* s3: the object's HTTP URL (path- or virtual-host style) */
	struct iso_origin origin; /* valid when have_origin */
	bool have_origin;
};

/* One read-only control-plane call the task role must be refused. */
struct iso_service {
	const char *check;        /* check name */
	const char *action;       /* IAM action, for the evidence */
	const char *signing_name; /* service in the SigV4 credential scope */
	const char *host_prefix;  /* AWS's endpoint: https://PREFIX.REGION.amazonaws.com/ */
	bool global;              /* one endpoint for all regions, signed for us-east-1 */
	const char *target;       /* X-Amz-Target of the JSON protocols; NULL: query protocol */
	const char *content_type;
	const char *body;
};

static const struct iso_service iso_services[] = {
	{"iam.ecs", "ecs:ListClusters", "ecs", "ecs", false,
	 "AmazonEC2ContainerServiceV20141113.ListClusters", "application/x-amz-json-1.1", "{}"},
	{"iam.elb", "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing",
	 "elasticloadbalancing", false, NULL, "application/x-www-form-urlencoded; charset=utf-8",
	 "Action=DescribeLoadBalancers&Version=2015-12-01"},
	{"iam.servicediscovery", "servicediscovery:ListNamespaces", "servicediscovery",
	 "servicediscovery", false, "Route53AutoNaming_v20170314.ListNamespaces",
	 "application/x-amz-json-1.1", "{}"},
	{"iam.dynamodb", "dynamodb:ListTables", "dynamodb", "dynamodb", false,
	 "DynamoDB_20120810.ListTables", "application/x-amz-json-1.0", "{}"},
	{"iam.iam", "iam:ListRoles", "iam", "iam", true, NULL,
	 "application/x-www-form-urlencoded; charset=utf-8", "Action=ListRoles&Version=2010-05-08"},
};

#define ISO_NSERVICES (sizeof(iso_services) / sizeof(iso_services[0]))

/* One HTTP request of the batch: a control-plane probe (svc) or the S3 HeadObject (!svc). */
struct iso_probe {
	const struct iso_service *svc;
	char *url;
	char *shown;               /* url as evidence may show it */
	CURL *h;
	struct curl_slist *hdrs;
	char body[ISO_BODY_KEEP + 1];
	size_t body_len;
	uint64_t bytes;
	char error_type[128];      /* x-amzn-ErrorType, the JSON protocols' error code header */
	CURLcode rc;               /* stays a timeout when the run ends before the probe */
	long status;
	int64_t start_ms;
};

/* Answers that mean "this role may not do that". */
static const char *const iso_denied_codes[] = {
	"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
	"NotAuthorized", "NotAuthorizedException", "Forbidden", NULL,
};

/* Answers about the credentials themselves: they say nothing about the role's rights. */
static const char *const iso_credential_codes[] = {
	"UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException",
	"SignatureDoesNotMatch", "IncompleteSignature", "IncompleteSignatureException",
	"ExpiredToken", "ExpiredTokenException", "MissingAuthenticationToken",
	"MissingAuthenticationTokenException", "InvalidAccessKeyId", "AuthFailure", NULL,
};

static pthread_once_t iso_curl_once = PTHREAD_ONCE_INIT;

static void iso_curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- the report -------------------------------------------------------------------------- */

/* Evidence is one line: anything a peer or curl said is flattened to printable bytes. */
static void iso_one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

static void iso_add(struct iso_report *r, const char *name, enum iso_verdict v,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void iso_add(struct iso_report *r, const char *name, enum iso_verdict v,
		    const char *fmt, ...)
{
	static const enum par_log_level levels[] = {PAR_LOG_INFO, PAR_LOG_WARN, PAR_LOG_ERROR};
	char ev[ISO_EVIDENCE_MAX], shown[ISO_EVIDENCE_MAX + 16];
	cJSON *c;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ev, sizeof(ev), fmt, ap);
	va_end(ap);
	iso_one_line(ev);
	if (r->strict && v == ISO_WARN) {
		v = ISO_FAIL;
		snprintf(shown, sizeof(shown), "strict: %s", ev);
	} else {
		snprintf(shown, sizeof(shown), "%s", ev);
	}
	r->counts[v]++;
	c = cJSON_CreateObject();
	if (c) {
		cJSON_AddStringToObject(c, "name", name);
		cJSON_AddStringToObject(c, "verdict", iso_verdict_names[v]);
		cJSON_AddStringToObject(c, "evidence", shown);
		cJSON_AddItemToArray(r->checks, c);
	}
	log_emit(levels[v], "isolation.check",
		 LOG_FIELDS(LF_STR("check", name), LF_STR("verdict", iso_verdict_names[v]),
			    LF_STR("evidence", shown), LF_BOOL("strict", r->strict)),
		 "%s %s: %s", iso_verdict_names[v], name, shown);
}

/* ---- origins ----------------------------------------------------------------------------- */

static void iso_norm_host(char *dst, size_t n, const char *h)
{
	size_t len = strlen(h), i;

	if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
		h++;
		len -= 2;
	}
	if (len >= n)
		len = n - 1;
	for (i = 0; i < len; i++)
		dst[i] = (char)tolower((unsigned char)h[i]);
	dst[len] = '\0';
}

/* Host and port (the scheme's default when absent) of url. 0 ok, -1 not a URL. */
static int iso_origin_of(const char *url, struct iso_origin *o)
{
	CURLU *u = curl_url();
	char *h = NULL, *p = NULL;
	int ret = -1;

	memset(o, 0, sizeof(*o));
	if (u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK) {
		iso_norm_host(o->host, sizeof(o->host), h);
		o->port = atoi(p);
		ret = 0;
	}
	curl_free(h);
	curl_free(p);
	curl_url_cleanup(u);
	return ret;
}

static bool iso_origin_is(const struct iso_origin *o, const char *host, int port)
{
	char h[256];

	iso_norm_host(h, sizeof(h), host);
	return o->port == port && strcmp(o->host, h) == 0;
}

/* "host:port", or "none" when there is no such origin. */
static const char *iso_origin_text(const struct iso_origin *o, bool have, char *buf, size_t n)
{
	if (!have)
		return "none";
	snprintf(buf, n, strchr(o->host, ':') ? "[%s]:%d" : "%s:%d", o->host, o->port);
	return buf;
}

/* The credentials endpoint the environment names, as awscreds.c reaches it. */
static bool iso_creds_origin(struct iso_origin *o)
{
	const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");

	memset(o, 0, sizeof(*o));
	if (rel && *rel) {
		snprintf(o->host, sizeof(o->host), "%s", ISO_ECS_CREDS_HOST);
		o->port = 80;
		return true;
	}
	return full && *full && iso_origin_of(full, o) == 0;
}

/* ---- the package source ------------------------------------------------------------------ */

static const char *iso_region(const struct par_config *cfg)
{
	return cfg->aws_region && *cfg->aws_region ? cfg->aws_region : ISO_DEFAULT_REGION;
}

static const char *iso_s3_endpoint(const struct par_config *cfg)
{
	return cfg->aws_endpoint_url_s3 ? cfg->aws_endpoint_url_s3 : cfg->aws_endpoint_url;
}

/* Where the download went, so the HeadObject goes there too. */
static char *iso_s3_object_url(const struct par_config *cfg, const struct par_url *u)
{
	const char *why;
	return fetch_s3_object_url(u, iso_region(cfg), iso_s3_endpoint(cfg), cfg->s3_addressing,
				   &why);
}

/* An https/http URL with its scheme lower-cased, as the fetcher requests it. */
static char *iso_lower_scheme(const char *url)
{
	char *s = strdup(url);
	size_t i;

	for (i = 0; s && s[i] && s[i] != ':'; i++)
		s[i] = (char)tolower((unsigned char)s[i]);
	return s;
}

static void iso_source_init(const struct par_config *cfg, struct iso_source *src)
{
	struct par_url u;
	const char *why = NULL;
	char *url = NULL;

	memset(src, 0, sizeof(*src));
	src->remote = !cfg->agent_package_path && cfg->package_url;
	if (!src->remote || url_parse(cfg->package_url, cfg->allow_http, &u, &why) != 0)
		return;
	src->s3 = u.scheme == URL_S3;
	src->shown = redact_url(cfg->package_url);
	if (src->s3) {
		src->request_url = iso_s3_object_url(cfg, &u);
		url = src->request_url;
	} else {
		url = iso_lower_scheme(cfg->package_url);
	}
	src->have_origin = url && iso_origin_of(url, &src->origin) == 0;
	if (!src->s3)
		free(url);
	url_free(&u);
}

static void iso_source_free(struct iso_source *src)
{
	free(src->shown);
	free(src->request_url);
}

/* ---- the control-plane endpoints --------------------------------------------------------- */

/* AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL, else NULL (AWS's own endpoint). */
static const char *iso_service_override(const struct par_config *cfg, size_t i)
{
	const char *per[ISO_NSERVICES] = {
		cfg->aws_endpoint_url_ecs,
		cfg->aws_endpoint_url_elb,
		cfg->aws_endpoint_url_servicediscovery,
		cfg->aws_endpoint_url_dynamodb,
		cfg->aws_endpoint_url_iam,
	};

	return per[i] ? per[i] : cfg->aws_endpoint_url;
}

/* The URL the probe POSTs to: the endpoint's root (its path kept, a '/' added). */
static char *iso_service_url(const struct par_config *cfg, size_t i)
{
	const struct iso_service *s = &iso_services[i];
	const char *ep = iso_service_override(cfg, i);
	size_t n;
	char *url = NULL;
	int rc;

	if (ep) {
		n = strlen(ep);
		rc = asprintf(&url, "%s%s", ep, n && ep[n - 1] == '/' ? "" : "/");
	} else if (s->global) {
		rc = asprintf(&url, "https://%s.amazonaws.com/", s->host_prefix);
	} else {
		rc = asprintf(&url, "https://%s.%s.amazonaws.com/", s->host_prefix,
			      iso_region(cfg));
	}
	return rc < 0 ? NULL : url;
}

/* ---- check 1: egress --------------------------------------------------------------------- */

/* How many entries fell out of the ring (ledger.h offers the count only in its summary). */
static uint64_t iso_ledger_dropped(struct egress_ledger *l)
{
	struct strbuf sb;
	cJSON *j, *d;
	uint64_t n = 0;

	sb_init(&sb);
	ledger_summary_json(l, &sb);
	j = cJSON_Parse(sb.buf ? sb.buf : "");
	d = cJSON_GetObjectItemCaseSensitive(j, "dropped");
	if (cJSON_IsNumber(d) && d->valuedouble > 0)
		n = (uint64_t)d->valuedouble;
	cJSON_Delete(j);
	sb_free(&sb);
	return n;
}

struct iso_allowed {
	const struct iso_source *src;
	struct iso_origin creds;
	bool have_creds;
	struct iso_origin probes[ISO_NSERVICES];
	bool have_probe[ISO_NSERVICES];
};

/* Where an entry went, as far as the rule is concerned. */
enum iso_dest { ISO_DEST_FORBIDDEN, ISO_DEST_PACKAGE, ISO_DEST_CREDENTIALS, ISO_DEST_PROBE };

static enum iso_dest iso_entry_dest(const struct iso_allowed *a, const struct egress_entry *e)
{
	size_t i;

	if (a->src->have_origin && iso_origin_is(&a->src->origin, e->host, e->port))
		return ISO_DEST_PACKAGE;
	if (a->have_creds && iso_origin_is(&a->creds, e->host, e->port))
		return ISO_DEST_CREDENTIALS;
	/* verify-isolation's own earlier probes: only to the endpoints it is configured for. */
	if (strcmp(e->purpose, "iam-probe") != 0)
		return ISO_DEST_FORBIDDEN;
	for (i = 0; i < ISO_NSERVICES; i++)
		if (a->have_probe[i] && iso_origin_is(&a->probes[i], e->host, e->port))
			return ISO_DEST_PROBE;
	return ISO_DEST_FORBIDDEN;
}

static bool iso_entry_allowed(const struct iso_allowed *a, const struct egress_entry *e)
{
	return iso_entry_dest(a, e) != ISO_DEST_FORBIDDEN;
}

static bool iso_same_dest(const struct egress_entry *a, const struct egress_entry *b)
{
	return a->port == b->port && strcasecmp(a->host, b->host) == 0;
}

/* "h1:p (purpose), h2:p (purpose) +N more": each forbidden destination named once. */
static size_t iso_offenders(const struct iso_allowed *a, const struct egress_entry *e, size_t n,
			    struct strbuf *out)
{
	size_t bad = 0, named = 0, others = 0, i, j;

	for (i = 0; i < n; i++) {
		if (iso_entry_allowed(a, &e[i]))
			continue;
		bad++;
		for (j = 0; j < i; j++)
			if (!iso_entry_allowed(a, &e[j]) && iso_same_dest(&e[i], &e[j]))
				break;
		if (j < i)
			continue;
		if (named == ISO_OFFENDERS_NAMED) {
			others++;
			continue;
		}
		sb_printf(out, strchr(e[i].host, ':') ? "%s[%s]:%d (%s)" : "%s%s:%d (%s)",
			  named ? ", " : "", e[i].host, e[i].port, e[i].purpose);
		named++;
	}
	if (others)
		sb_printf(out, " +%zu more", others);
	return bad;
}

static void iso_check_egress(struct iso_report *r, const struct iso_allowed *a)
{
	struct egress_ledger *l = package_ledger();
	struct egress_entry *e = NULL;
	struct strbuf off;
	char pk[300], cr[300];
	size_t n, bad, per[4] = {0}, i;
	uint64_t dropped;

	if (!l) {
		iso_add(r, "egress", ISO_WARN,
			"no egress ledger to check (pard not fully started)");
		return;
	}
	n = ledger_snapshot(l, &e);
	dropped = iso_ledger_dropped(l);
	sb_init(&off);
	bad = iso_offenders(a, e, n, &off);
	for (i = 0; i < n; i++)
		per[iso_entry_dest(a, &e[i])]++;
	iso_origin_text(&a->src->origin, a->src->have_origin, pk, sizeof(pk));
	iso_origin_text(&a->creds, a->have_creds, cr, sizeof(cr));
	if (bad)
		iso_add(r, "egress", ISO_FAIL,
			"%zu of %zu connections since boot went to neither the package source (%s) "
			"nor the credentials endpoint (%s): %s", bad, n, pk, cr,
			off.buf ? off.buf : "");
	else if (dropped)
		iso_add(r, "egress", ISO_WARN,
			"the %zu connections in the ledger are allowed, but %" PRIu64
			" older ones fell out of it unchecked", n, dropped);
	else if (!n)
		iso_add(r, "egress", ISO_PASS, "no outbound connections since boot");
	else
		iso_add(r, "egress", ISO_PASS,
			"%zu connection%s since boot, all allowed: %zu to the package source (%s), "
			"%zu to the credentials endpoint (%s), %zu by verify-isolation's own "
			"probes",
			n, n == 1 ? "" : "s", per[ISO_DEST_PACKAGE], pk, per[ISO_DEST_CREDENTIALS],
			cr, per[ISO_DEST_PROBE]);
	sb_free(&off);
	free(e);
}

/* ---- the probes -------------------------------------------------------------------------- */

static size_t iso_on_header(char *buf, size_t size, size_t nmemb, void *ud)
{
	struct iso_probe *p = ud;
	size_t n = size * nmemb, k = 0;
	static const char name[] = "x-amzn-errortype:";
	const char *v;

	if (n <= sizeof(name) - 1 || strncasecmp(buf, name, sizeof(name) - 1) != 0)
		return n;
	for (v = buf + sizeof(name) - 1; v < buf + n && *v == ' '; v++)
		;
	/* "AccessDeniedException:http://internal.amazon.com/…": the code ends at ':'. */
	while (v + k < buf + n && k < sizeof(p->error_type) - 1 && v[k] != ':' && v[k] != '\r' &&
	       v[k] != '\n')
		k++;
	memcpy(p->error_type, v, k);
	p->error_type[k] = '\0';
	return n;
}

/* Keeps the start of the answer (for its error code) and counts the rest: the probe's
 * timeout, not a size cap, bounds how long an endless answer can take. */
static size_t iso_on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct iso_probe *p = ud;
	size_t n = size * nmemb, take = ISO_BODY_KEEP - p->body_len;

	if (take > n)
		take = n;
	memcpy(p->body + p->body_len, data, take);
	p->body_len += take;
	p->body[p->body_len] = '\0';
	p->bytes += n;
	return n;
}

static struct curl_slist *iso_append(struct curl_slist *h, const char *line)
{
	struct curl_slist *t;

	if (!h)
		return NULL;
	t = curl_slist_append(h, line);
	if (!t)
		curl_slist_free_all(h);
	return t;
}

/* The headers of one probe; curl adds X-Amz-Date and Authorization and signs these too. */
static struct curl_slist *iso_headers(const struct iso_probe *p, const struct aws_creds *cr)
{
	struct curl_slist *h;
	char line[160];

	if (p->svc) {
		snprintf(line, sizeof(line), "Content-Type: %s", p->svc->content_type);
		h = curl_slist_append(NULL, line);
		if (p->svc->target) {
			snprintf(line, sizeof(line), "X-Amz-Target: %s", p->svc->target);
			h = iso_append(h, line);
		}
	} else {
		/* curl does not send the payload hash S3 requires; it signs this value as it. */
		h = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
	}
	return aws_append_token_header(h, cr);
}

static int iso_probe_setup(struct iso_probe *p, const struct par_config *cfg,
			   const struct aws_creds *cr)
{
	const char *region = p->svc && p->svc->global ? ISO_DEFAULT_REGION : iso_region(cfg);
	char sigv4[96];
	CURL *h;

	p->rc = CURLE_OPERATION_TIMEDOUT;
	p->shown = redact_url(p->url);
	p->hdrs = iso_headers(p, cr);
	p->h = h = curl_easy_init();
	if (!p->shown || !p->hdrs || !h)
		return -1;
	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:%s", region,
		 p->svc ? p->svc->signing_name : "s3");
	curl_easy_setopt(h, CURLOPT_URL, p->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* an answer is judged where it stands */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "pard/" PAR_VERSION " verify-isolation");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ISO_PROBE_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ISO_PROBE_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, iso_on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, p);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, iso_on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(h, CURLOPT_PRIVATE, p);
	if (cfg->ca_bundle && *cfg->ca_bundle)
		curl_easy_setopt(h, CURLOPT_CAINFO, cfg->ca_bundle);
	curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4);
	/* USERNAME/PASSWORD rather than USERPWD: no ':' in a key can split them wrongly. */
	curl_easy_setopt(h, CURLOPT_USERNAME, cr->access_key);
	curl_easy_setopt(h, CURLOPT_PASSWORD, cr->secret_key);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, p->hdrs);
	if (p->svc) {
		curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, p->svc->body);
	} else {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L); /* HeadObject: read rights, no bytes */
		curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* S3 keys may hold "../" literally */
	}
	return 0;
}

static void iso_probe_free(struct iso_probe *p)
{
	curl_easy_cleanup(p->h);
	curl_slist_free_all(p->hdrs);
	free(p->url);
	free(p->shown);
}

/* Runs every prepared probe side by side; each ends by its own timeout at the latest. */
static void iso_run(struct iso_probe *p, size_t n)
{
	CURLM *m = curl_multi_init();
	int64_t deadline = time_mono_ms() + ISO_PROBE_TIMEOUT_MS + ISO_RUN_SLACK_MS;
	CURLMsg *msg;
	char *priv;
	int running = 0, left;
	size_t i;

	if (!m)
		return;
	for (i = 0; i < n; i++) {
		p[i].start_ms = time_epoch_ms();
		if (p[i].h && curl_multi_add_handle(m, p[i].h) != CURLM_OK)
			p[i].rc = CURLE_OUT_OF_MEMORY;
	}
	do {
		if (curl_multi_perform(m, &running) != CURLM_OK)
			break;
		if (running && curl_multi_poll(m, NULL, 0, 100, NULL) != CURLM_OK)
			break;
	} while (running && time_mono_ms() < deadline);
	while ((msg = curl_multi_info_read(m, &left))) {
		if (msg->msg != CURLMSG_DONE || !msg->easy_handle ||
		    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv) != CURLE_OK ||
		    !priv)
			continue;
		((struct iso_probe *)(void *)priv)->rc = msg->data.result;
	}
	for (i = 0; i < n; i++) {
		if (!p[i].h)
			continue;
		curl_easy_getinfo(p[i].h, CURLINFO_RESPONSE_CODE, &p[i].status);
		curl_multi_remove_handle(m, p[i].h);
	}
	curl_multi_cleanup(m);
}

/* Every probe is an outbound connection like any other: the ledger shows it. */
static void iso_ledger(struct egress_ledger *l, const struct iso_probe *p)
{
	struct egress_entry e = {.epoch_ms = p->start_ms, .status = p->status, .bytes = p->bytes};
	struct iso_origin o;
	char *ip = NULL;
	long port = 0;

	if (!l || !p->h)
		return;
	if (iso_origin_of(p->url, &o) == 0) {
		snprintf(e.host, sizeof(e.host), "%s", o.host);
		e.port = o.port;
	}
	if (curl_easy_getinfo(p->h, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip)
		snprintf(e.ip, sizeof(e.ip), "%s", ip);
	if (curl_easy_getinfo(p->h, CURLINFO_PRIMARY_PORT, &port) == CURLE_OK && port > 0)
		e.port = (int)port;
	snprintf(e.purpose, sizeof(e.purpose), "%s", p->svc ? "iam-probe" : "s3-probe");
	snprintf(e.method, sizeof(e.method), "%s", p->svc ? "POST" : "HEAD");
	if (p->rc != CURLE_OK)
		snprintf(e.error, sizeof(e.error), "%s", curl_easy_strerror(p->rc));
	ledger_record(l, &e);
}

/* ---- judging an answer ------------------------------------------------------------------- */

/* Copies the leading [A-Za-z0-9._-] of s: whatever else a peer sent stays out of the report. */
static void iso_copy_code(char *out, size_t n, const char *s)
{
	size_t i = 0;

	while (s[i] && i < n - 1 &&
	       (isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '-'))
		i++;
	memcpy(out, s, i);
	out[i] = '\0';
}

/* The AWS error code of an answer: the x-amzn-ErrorType header, the JSON protocols'
 * "__type" ("com.amazon.coral.service#AccessDeniedException"), or the query protocols'
 * <Code>; "" when there is none. */
static void iso_error_code(const struct iso_probe *p, char *out, size_t n)
{
	const char *s = NULL, *hash;
	cJSON *j = NULL, *t;

	out[0] = '\0';
	if (p->error_type[0]) {
		s = p->error_type;
	} else if ((j = cJSON_ParseWithLength(p->body, p->body_len))) {
		t = cJSON_GetObjectItemCaseSensitive(j, "__type");
		if (!cJSON_IsString(t))
			t = cJSON_GetObjectItemCaseSensitive(j, "code");
		s = cJSON_IsString(t) ? t->valuestring : NULL;
	} else if ((s = strstr(p->body, "<Code>"))) {
		s += 6;
	}
	if (s && (hash = strchr(s, '#')) && (!strchr(s, '<') || hash < strchr(s, '<')))
		s = hash + 1;
	if (s)
		iso_copy_code(out, n, s);
	cJSON_Delete(j);
}

static bool iso_code_in(const char *code, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(code, *list) == 0)
			return true;
	return false;
}

static void iso_judge_service(struct iso_report *r, const struct iso_probe *p)
{
	const char *name = p->svc->check, *act = p->svc->action;
	char code[64], sp[70];

	if (!p->h) {
		iso_add(r, name, ISO_WARN, "%s: the probe could not be prepared (out of memory)",
			act);
		return;
	}
	if (p->rc != CURLE_OK) {
		iso_add(r, name, ISO_WARN, "%s at %s got no answer (%s): network blocked?", act,
			p->shown, curl_easy_strerror(p->rc));
		return;
	}
	iso_error_code(p, code, sizeof(code));
	snprintf(sp, sizeof(sp), "%s%s", code[0] ? " " : "", code);
	if (p->status >= 200 && p->status <= 299)
		iso_add(r, name, ISO_FAIL,
			"%s was ALLOWED at %s (HTTP %ld): the task role is over-privileged", act,
			p->shown, p->status);
	else if (iso_code_in(code, iso_credential_codes))
		iso_add(r, name, ISO_WARN,
			"%s at %s rejected the credentials themselves (HTTP %ld%s): cannot tell "
			"whether the role may call it", act, p->shown, p->status, sp);
	else if (iso_code_in(code, iso_denied_codes) || p->status == 403)
		iso_add(r, name, ISO_PASS, "%s denied at %s (HTTP %ld%s)", act, p->shown, p->status,
			sp);
	else
		iso_add(r, name, ISO_WARN,
			"%s at %s answered HTTP %ld%s, neither allowed nor denied: cannot tell",
			act, p->shown, p->status, sp);
}

static void iso_judge_s3(struct iso_report *r, const struct iso_source *src,
			 const struct iso_probe *p)
{
	curl_off_t len = -1;

	if (!p->h) {
		iso_add(r, "s3", ISO_WARN, "HeadObject %s could not be prepared", src->shown);
		return;
	}
	if (p->rc != CURLE_OK) {
		iso_add(r, "s3", ISO_WARN,
			"HeadObject %s at %s got no answer (%s): network blocked?", src->shown,
			p->shown, curl_easy_strerror(p->rc));
		return;
	}
	curl_easy_getinfo(p->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
	if (p->status >= 200 && p->status <= 299)
		iso_add(r, "s3", ISO_PASS,
			"HeadObject %s works at %s (HTTP %ld, %lld bytes); no write attempted",
			src->shown, p->shown, p->status, (long long)len);
	else if (p->status == 401 || p->status == 403)
		iso_add(r, "s3", ISO_FAIL,
			"HeadObject %s denied at %s (HTTP %ld): the task role cannot read its "
			"package (s3:GetObject)", src->shown, p->shown, p->status);
	else if (p->status == 404)
		iso_add(r, "s3", ISO_FAIL, "HeadObject %s at %s: HTTP 404, the package is gone",
			src->shown, p->shown);
	else
		iso_add(r, "s3", ISO_WARN, "HeadObject %s at %s answered HTTP %ld: cannot tell",
			src->shown, p->shown, p->status);
}

/* ---- checks 2 and 3: the signed probes --------------------------------------------------- */

/* Credentials, probes prepared, run, recorded and judged. */
static void iso_check_probes(struct iso_report *r, const struct par_config *cfg,
			     const struct iso_source *src, struct aws_creds_provider *cp)
{
	struct iso_probe probes[ISO_NSERVICES + 1];
	bool want_s3 = src->s3 && src->request_url;
	size_t n = 0, i;
	struct aws_creds cr;
	char err[512] = "";

	memset(probes, 0, sizeof(probes));
	if (!cp || aws_creds_get(cp, &cr, err, sizeof(err)) != 0) {
		iso_one_line(err);
		for (i = 0; i < ISO_NSERVICES; i++)
			iso_add(r, iso_services[i].check, ISO_WARN,
				"no credentials to test with: %s", cp ? err : "out of memory");
		if (src->s3)
			iso_add(r, "s3", ISO_WARN, "no credentials to test HeadObject %s with",
				src->shown);
		return;
	}
	for (i = 0; i < ISO_NSERVICES; i++, n++) {
		probes[n].svc = &iso_services[i];
		probes[n].url = iso_service_url(cfg, i);
	}
	if (want_s3)
		probes[n++].url = strdup(src->request_url);
	for (i = 0; i < n; i++)
		if (!probes[i].url || iso_probe_setup(&probes[i], cfg, &cr) != 0) {
			curl_easy_cleanup(probes[i].h);
			probes[i].h = NULL;
		}
	explicit_bzero(&cr, sizeof(cr)); /* curl holds its own copies until cleanup */
	iso_run(probes, n);
	for (i = 0; i < n; i++) {
		iso_ledger(package_ledger(), &probes[i]);
		if (probes[i].svc)
			iso_judge_service(r, &probes[i]);
		else
			iso_judge_s3(r, src, &probes[i]);
	}
	if (src->s3 && !want_s3)
		iso_add(r, "s3", ISO_WARN, "cannot build the S3 URL of %s", src->shown);
	for (i = 0; i < n; i++)
		iso_probe_free(&probes[i]);
}

/* A package that does not come from S3 needs no S3 rights at all, which is what isolation
 * wants: PASS, not WARN, so --strict does not fail every https or local package. */
static void iso_check_not_s3(struct iso_report *r, const struct iso_source *src)
{
	if (!src->remote)
		iso_add(r, "s3", ISO_PASS,
			"not an S3 source (AGENT_PACKAGE_PATH): no S3 access needed");
	else if (!src->s3)
		iso_add(r, "s3", ISO_PASS, "not an S3 source (%s): no S3 access needed",
			src->shown ? src->shown : "PACKAGE_URL");
}

/* ---- check 4: environment ---------------------------------------------------------------- */

static void iso_check_environment(struct iso_report *r, const struct aws_creds_provider *cp)
{
	const char *secret = getenv("AWS_SECRET_ACCESS_KEY");

	if (aws_creds_static_long_lived(cp))
		iso_add(r, "environment", ISO_WARN,
			"AWS_ACCESS_KEY_ID is set without AWS_SESSION_TOKEN: long-lived static "
			"keys in the environment; use the task role instead");
	else if (aws_creds_source(cp) == AWS_CREDS_ENV)
		iso_add(r, "environment", ISO_PASS,
			"temporary keys in the environment (AWS_SESSION_TOKEN set)");
	else if (secret && *secret)
		iso_add(r, "environment", ISO_WARN,
			"AWS_SECRET_ACCESS_KEY is set without a usable key pair: a secret sits in "
			"the environment for nothing");
	else if (aws_creds_source(cp) == AWS_CREDS_CONTAINER)
		iso_add(r, "environment", ISO_PASS,
			"no static keys; credentials come from the container endpoint (task role)");
	else
		iso_add(r, "environment", ISO_PASS, "no AWS keys in the environment");
}

/* ---- check 5: process -------------------------------------------------------------------- */

/* CapEff/CapPrm of this process; false when /proc cannot tell. */
static bool iso_read_caps(uint64_t *eff, uint64_t *prm)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	int found = 0;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %" SCNx64, eff) == 1 ||
		    sscanf(line, "CapPrm: %" SCNx64, prm) == 1)
			found++;
	fclose(f);
	return found == 2;
}

static void iso_check_process(struct iso_report *r)
{
	uint64_t eff = 0, prm = 0;
	bool caps_known = iso_read_caps(&eff, &prm);
	int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	uid_t uid = getuid(), euid = geteuid();
	struct strbuf why;

	sb_init(&why);
	if (uid == 0 || euid == 0)
		sb_printf(&why, "runs as root (uid %u, euid %u)", (unsigned)uid, (unsigned)euid);
	if (!caps_known)
		sb_printf(&why, "%scapabilities unknown (/proc/self/status unreadable)",
			  why.len ? "; " : "");
	else if (eff || prm)
		sb_printf(&why, "%scapabilities effective %016" PRIx64 " permitted %016" PRIx64,
			  why.len ? "; " : "", eff, prm);
	if (nnp != 1)
		sb_printf(&why, "%sno_new_privs is not set", why.len ? "; " : "");
	if (why.len)
		iso_add(r, "process", ISO_WARN, "%s", why.buf);
	else
		iso_add(r, "process", ISO_PASS,
			"uid %u, no effective or permitted capabilities, no_new_privs set",
			(unsigned)uid);
	sb_free(&why);
}

/* ---- the whole report -------------------------------------------------------------------- */

static void iso_allowed_init(struct iso_allowed *a, const struct par_config *cfg,
			     const struct iso_source *src)
{
	char *url;
	size_t i;

	memset(a, 0, sizeof(*a));
	a->src = src;
	a->have_creds = iso_creds_origin(&a->creds);
	for (i = 0; i < ISO_NSERVICES; i++) {
		url = iso_service_url(cfg, i);
		a->have_probe[i] = url && iso_origin_of(url, &a->probes[i]) == 0;
		free(url);
	}
}

static cJSON *iso_result(struct iso_report *r, int64_t t0)
{
	cJSON *out = cJSON_CreateObject(), *sum;
	bool ok = r->counts[ISO_FAIL] == 0;

	log_emit(ok ? PAR_LOG_INFO : PAR_LOG_WARN, "isolation.summary",
		 LOG_FIELDS(LF_BOOL("ok", ok), LF_BOOL("strict", r->strict),
			    LF_INT("pass", r->counts[ISO_PASS]),
			    LF_INT("warn", r->counts[ISO_WARN]),
			    LF_INT("fail", r->counts[ISO_FAIL]),
			    LF_INT("durationMs", time_mono_ms() - t0)),
		 "verify-isolation%s: %d PASS, %d WARN, %d FAIL", r->strict ? " --strict" : "",
		 r->counts[ISO_PASS], r->counts[ISO_WARN], r->counts[ISO_FAIL]);
	if (!out) {
		cJSON_Delete(r->checks);
		return NULL;
	}
	cJSON_AddBoolToObject(out, "ok", ok);
	cJSON_AddBoolToObject(out, "strict", r->strict);
	cJSON_AddItemToObject(out, "checks", r->checks);
	sum = cJSON_AddObjectToObject(out, "summary");
	if (sum) {
		cJSON_AddNumberToObject(sum, "pass", r->counts[ISO_PASS]);
		cJSON_AddNumberToObject(sum, "warn", r->counts[ISO_WARN]);
		cJSON_AddNumberToObject(sum, "fail", r->counts[ISO_FAIL]);
	}
	return out;
}

cJSON *isolation_verify(const struct par_config *cfg, bool strict)
{
	struct iso_report r = {.strict = strict};
	struct iso_allowed allowed;
	struct iso_source src;
	struct aws_creds_provider *cp;
	int64_t t0 = time_mono_ms();

	r.checks = cJSON_CreateArray();
	if (!r.checks)
		return NULL;
	pthread_once(&iso_curl_once, iso_curl_init);
	log_emit(PAR_LOG_INFO, "isolation.start", LOG_FIELDS(LF_BOOL("strict", strict)),
		 "verify-isolation%s: running the checks", strict ? " --strict" : "");
	iso_source_init(cfg, &src);
	iso_allowed_init(&allowed, cfg, &src);
	/* The ledger is judged first, before this command's own connections join it. */
	iso_check_egress(&r, &allowed);
	/* A provider of our own: the package's may be mid-refresh on the boot thread, and the
	 * probes must not disturb what the fetcher holds. Its fetches land in the same ledger. */
	cp = aws_creds_provider_new(NULL, package_ledger());
	iso_check_probes(&r, cfg, &src, cp);
	iso_check_not_s3(&r, &src);
	iso_check_environment(&r, cp);
	iso_check_process(&r);
	aws_creds_provider_free(cp);
	iso_source_free(&src);
	return iso_result(&r, t0);
}
