/* The REST surface on libmicrohttpd: reserved routes (health, liveness, per-agent health,
 * meta, metrics), request ids, JSON errors, and the listener half of the drain. */
#include "rest.h"

#include <errno.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "http.h"
#include "lifecycle.h"
#include "ui.h"
#include "package.h"
#include "rtfaults.h"
#include "par/log.h"
#include "par/parse.h"
#include "par/strbuf.h"
#include "par/timeutil.h"

#define REQUEST_ID_MAX 128

struct req_ctx {
	struct listener *lis;
	bool started;          /* the first handler call has set the request up */
	char *raw_path;        /* as received, percent-encoding kept, without the query */
	char request_id[REQUEST_ID_MAX + 1];
	char method[16];
	char *path;
	bool probe;      /* health/metrics traffic: its access line is debug */
	int64_t start_us;
	const char *api_path;  /* set for {BASE}/api/… requests handed to the agent */
	void *api_ctx;         /* the agent backend's per-request state */
	const char *cors_origin; /* the request's Origin when PAR_CORS_ORIGINS lists it */
	struct strbuf body;    /* POST /invocations */
	bool body_too_large;
	bool fault_answered;   /* rest.error answered it before the route (or agent) ran */
};

/* POST /invocations bodies are read whole; past this they get 413. */
#define INVOCATION_BODY_MAX (16u * 1024 * 1024)

/* A client connection, for the header deadline: slowloris clients send a header line now and
 * then, which resets libmicrohttpd's idle timeout forever; this bounds the whole header. */
struct conn {
	struct conn *next, *prev;
	int fd;
	int64_t waiting_since_ms;   /* waiting for a request's headers since; 0 = in a request */
	bool cut;
};

/* How long a client may take to send one request's headers (request line included). */
#define HEADER_DEADLINE_MS 10000
/* Bodies of reserved routes other than /invocations: they take none, so a big one is 413. */
#define RESERVED_BODY_MAX (1024u * 1024)

/* One HTTP listener: the REST port, or the UI's own port. */
struct listener {
	const char *surface;       /* "rest" or "ui": metrics label and log field */
	bool ui_only;              /* every path is a UI file */
	struct MHD_Daemon *daemon;
	int listen_fd;
	bool quiesced;
	struct metric *m_in_flight;
	struct metric *m_latency;
	_Atomic(struct metric *) m_by_code[600];
};

enum { L_REST, L_UI, L_COUNT };

static struct {
	struct listener l[L_COUNT];
	atomic_uint in_flight;
	atomic_uint connections;
	const struct par_config *cfg;
	struct metrics *metrics;
	pthread_mutex_t conns_mu;
	struct conn *conns;
	pthread_t watchdog;
	bool watchdog_running;
	atomic_bool stopping;
	struct metric *m_cut;
} rest = {.conns_mu = PTHREAD_MUTEX_INITIALIZER, .l = {{.surface = "rest", .listen_fd = -1},
		{.surface = "ui", .ui_only = true, .listen_fd = -1}}};

unsigned rest_in_flight(void) { return atomic_load(&rest.in_flight); }

/* The AgentCore /ping status and when it last changed (SPEC §5: the time moves only when the
 * status does). */
static struct {
	pthread_mutex_t mu;
	const char *status;
	int64_t since_epoch_s;
} ping = {.mu = PTHREAD_MUTEX_INITIALIZER};
unsigned rest_connections(void) { return atomic_load(&rest.connections); }

/* X-Request-ID is echoed into logs and headers, so only a conservative alphabet is taken
 * from the client; anything else gets a fresh id. */
static bool request_id_acceptable(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= REQUEST_ID_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':'))
			return false;
	}
	return n > 0;
}

static void request_id_generate(char *out, size_t n)
{
	unsigned char r[12];
	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
		static atomic_ullong seq;
		unsigned long long v = atomic_fetch_add(&seq, 1) ^ (unsigned long long)time_mono_us();
		memcpy(r, &v, sizeof v);
		memset(r + sizeof v, 0, sizeof r - sizeof v);
	}
	size_t k = (size_t)snprintf(out, n, "req_");
	for (size_t i = 0; i < sizeof r && k + 2 < n; i++, k += 2)
		snprintf(out + k, n - k, "%02x", r[i]);
}

static struct metric *requests_counter(struct listener *lis, unsigned code)
{
	if (code >= 600)
		code = 599;
	struct metric *m = atomic_load(&lis->m_by_code[code]);
	if (m)
		return m;
	char labels[48];
	snprintf(labels, sizeof labels, "surface=\"%s\",code=\"%u\"", lis->surface, code);
	m = metrics_counter(rest.metrics, "par_http_requests_total",
			    "HTTP requests answered, by surface and status code.", labels);
	atomic_store(&lis->m_by_code[code], m);
	return m;
}

/* The configured origin the request's Origin header names, or NULL. Only listed origins
 * ever get CORS headers, and never "*", so credentials can't leak to any page. */
static const char *cors_match(struct MHD_Connection *c)
{
	char *const *allowed = rest.cfg->cors_origins;
	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	for (size_t i = 0; allowed && origin && allowed[i]; i++)
		if (strcasecmp(allowed[i], origin) == 0)
			return allowed[i];
	return NULL;
}

/* Adds the headers every response carries and queues r (which it releases). */
static enum MHD_Result queue(struct MHD_Connection *c, struct req_ctx *ctx, unsigned status,
			     struct MHD_Response *r)
{
	if (rest.cfg->cors_origins)
		MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Origin");
	if (ctx->cors_origin) {
		MHD_add_response_header(r, "Access-Control-Allow-Origin", ctx->cors_origin);
		MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
		MHD_add_response_header(r, "Access-Control-Expose-Headers", "X-Request-ID");
	}
	return http_queue(c, status, r, ctx->request_id);
}

/* Queues body (malloc'd, ownership passes) with the headers every response carries. */
static enum MHD_Result respond(struct MHD_Connection *c, struct req_ctx *ctx,
			       unsigned status, char *body, size_t len, const char *content_type,
			       const char *allow)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE
									 : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	return queue(c, ctx, status, r);
}

static enum MHD_Result respond_json(struct MHD_Connection *c, struct req_ctx *ctx,
				    unsigned status, struct strbuf *sb)
{
	if (sb->oom) {
		sb_free(sb);
		return MHD_NO;
	}
	size_t len = sb->len;
	return respond(c, ctx, status, sb_steal(sb), len, "application/json", NULL);
}

static enum MHD_Result respond_error(struct MHD_Connection *c, struct req_ctx *ctx,
				     unsigned status, const char *code, const char *message,
				     const char *allow)
{
	struct MHD_Response *r = http_error_response(code, message, ctx->request_id);
	if (r && allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	return r ? queue(c, ctx, status, r) : MHD_NO;
}

/* "/x" under BASE_PATH: path equals base + suffix. With the root base ("") this is the
 * plain route, which every reserved route also answers on. */
static bool is_route(const char *path, const char *suffix)
{
	if (strcmp(path, suffix) == 0)
		return true;
	const char *base = rest.cfg->base_path;
	size_t bl = strlen(base);
	return bl && strncmp(path, base, bl) == 0 && strcmp(path + bl, suffix) == 0;
}

/* "/api/…" of an agent route (with or without BASE_PATH), or NULL for any other path. */
static const char *api_path(const char *path)
{
	const char *base = rest.cfg->base_path;
	size_t bl = strlen(base);
	if (bl && strncmp(path, base, bl) == 0 && strncmp(path + bl, "/api", 4) == 0 &&
	    (path[bl + 4] == '/' || path[bl + 4] == '\0'))
		return path + bl;
	if (strncmp(path, "/api", 4) == 0 && (path[4] == '/' || path[4] == '\0'))
		return path;
	return NULL;
}

static bool has_prefix_route(const char *path, const char *prefix)
{
	size_t pl = strlen(prefix);
	if (strncmp(path, prefix, pl) == 0 && (path[pl] == '/' || path[pl] == '\0'))
		return true;
	const char *base = rest.cfg->base_path;
	size_t bl = strlen(base);
	return bl && strncmp(path, base, bl) == 0 && strncmp(path + bl, prefix, pl) == 0 &&
	       (path[bl + pl] == '/' || path[bl + pl] == '\0');
}

/* "/agents/{id}/health" at p: 1 when {id} is ours, 0 when it is another id, -1 when p is not
 * of that form. */
static int agent_health_at(const char *p)
{
	static const char pre[] = "/agents/", suf[] = "/health";
	if (strncmp(p, pre, sizeof pre - 1) != 0)
		return -1;
	p += sizeof pre - 1;
	size_t n = strlen(p);
	if (n <= sizeof suf - 1 || strcmp(p + n - (sizeof suf - 1), suf) != 0)
		return -1;
	size_t idlen = n - (sizeof suf - 1);
	const char *id = rest.cfg->agent_app_id;
	return strlen(id) == idlen && strncmp(p, id, idlen) == 0;
}

/* /agents/{id}/health, also under BASE_PATH. It is matched before {BASE}/health so that
 * BASE_PATH=/agents/{id} cannot shadow it (SPEC §12.13). *id_ok says whether {id} is ours
 * in either reading of the path. */
static bool match_agent_health(const char *path, bool *id_ok)
{
	int plain = agent_health_at(path);
	int based = -1;
	const char *base = rest.cfg->base_path;
	size_t bl = strlen(base);
	if (bl && strncmp(path, base, bl) == 0)
		based = agent_health_at(path + bl);
	if (plain < 0 && based < 0)
		return false;
	*id_ok = plain == 1 || based == 1;
	return true;
}

static enum MHD_Result route_health(struct MHD_Connection *c, struct req_ctx *ctx)
{
	struct strbuf sb = STRBUF_INIT;
	bool ok = lc_health_json(&sb, time_epoch_ms());
	return respond_json(c, ctx, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, &sb);
}

static enum MHD_Result route_agent_health(struct MHD_Connection *c, struct req_ctx *ctx)
{
	enum lc_state st = lc_state();
	bool ok = lc_healthy();
	const char *status = ok ? "healthy"
			   : st == LC_BOOTING ? "starting"
			   : st == LC_READY ? "unhealthy"
			   : st == LC_FAILED ? "failed" : "draining";
	struct strbuf sb = STRBUF_INIT;
	sb_puts(&sb, "{\"status\":");
	sb_json_str(&sb, status);
	sb_puts(&sb, ",\"agentAppId\":");
	sb_json_str(&sb, rest.cfg->agent_app_id);
	sb_printf(&sb, ",\"state\":\"%s\",\"timestamp\":%lld}", lc_state_name(st),
		  (long long)time_epoch_ms());
	return respond_json(c, ctx, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, &sb);
}

static enum MHD_Result route_livez(struct MHD_Connection *c, struct req_ctx *ctx)
{
	struct strbuf sb = STRBUF_INIT;
	sb_printf(&sb, "{\"ok\":true,\"state\":\"%s\",\"timestamp\":%lld}",
		  lc_state_name(lc_state()), (long long)time_epoch_ms());
	return respond_json(c, ctx, MHD_HTTP_OK, &sb);
}

static enum MHD_Result route_meta(struct MHD_Connection *c, struct req_ctx *ctx)
{
	struct strbuf pk = STRBUF_INIT, sb = STRBUF_INIT;
	package_meta_json(&pk);
	lc_meta_json(&sb, rest.cfg, pk.oom ? NULL : pk.buf);
	sb_free(&pk);
	return respond_json(c, ctx, MHD_HTTP_OK, &sb);
}

static enum MHD_Result route_metrics(struct MHD_Connection *c, struct req_ctx *ctx)
{
	struct strbuf sb = STRBUF_INIT;
	metrics_write_prometheus(rest.metrics, &sb);
	if (sb.oom) {
		sb_free(&sb);
		return MHD_NO;
	}
	size_t len = sb.len;
	return respond(c, ctx, MHD_HTTP_OK, sb_steal(&sb), len,
		       "text/plain; version=0.0.4; charset=utf-8", NULL);
}

static enum MHD_Result route_a2a_health(struct MHD_Connection *c, struct req_ctx *ctx)
{
	enum lc_surface a2a = lc_get_surface(SURFACE_A2A);
	bool ok = a2a == SURF_UP && lc_healthy();
	struct strbuf sb = STRBUF_INIT;
	sb_printf(&sb, "{\"ok\":%s,\"status\":\"%s\",\"surface\":\"%s\",\"timestamp\":%lld}",
		  ok ? "true" : "false", ok ? "SERVING" : "NOT_SERVING", lc_surface_name(a2a),
		  (long long)time_epoch_ms());
	return respond_json(c, ctx, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, &sb);
}

/* AgentCore's container contract: Healthy, HealthyBusy while invocations run, Unhealthy. */
static enum MHD_Result route_ping(struct MHD_Connection *c, struct req_ctx *ctx)
{
	bool ok = lc_healthy();
	const char *status = !ok ? "Unhealthy" : agent_invocations() ? "HealthyBusy" : "Healthy";
	pthread_mutex_lock(&ping.mu);
	if (ping.status != status) {
		ping.status = status;
		ping.since_epoch_s = time_epoch_ms() / 1000;
	}
	int64_t since = ping.since_epoch_s;
	pthread_mutex_unlock(&ping.mu);
	struct strbuf sb = STRBUF_INIT;
	sb_printf(&sb, "{\"status\":\"%s\",\"time_of_last_update\":%lld}", status,
		  (long long)since);
	return respond_json(c, ctx, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, &sb);
}

static unsigned invocation_http_status(enum agent_status st)
{
	switch (st) {
	case AGENT_OK: return MHD_HTTP_OK;
	case AGENT_ERR_ACTION: return MHD_HTTP_UNPROCESSABLE_CONTENT;
	case AGENT_ERR_UNKNOWN_ACTION: return MHD_HTTP_NOT_FOUND;
	case AGENT_ERR_DEADLINE: return MHD_HTTP_GATEWAY_TIMEOUT;
	case AGENT_ERR_UNAVAILABLE: return MHD_HTTP_SERVICE_UNAVAILABLE;
	case AGENT_ERR_INTERNAL: break;
	}
	return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

/* AgentCore's POST /invocations: the body goes to the default action. A JSON object is the
 * parameters as is; any other JSON value (or none) arrives as {"input": value}. */
static enum MHD_Result route_invocations(struct MHD_Connection *c, struct req_ctx *ctx)
{
	if (ctx->body_too_large)
		return respond_error(c, ctx, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
				     "invocation bodies are limited to 16 MiB", NULL);
	if (lc_state() != LC_READY)
		return respond_error(c, ctx, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready",
				     "the runtime is not READY", NULL);
	const char *text = ctx->body.len ? ctx->body.buf : "{}";
	cJSON *v = cJSON_ParseWithOpts(text, NULL, 1);
	if (!v)
		return respond_error(c, ctx, MHD_HTTP_BAD_REQUEST, "invalid_json",
				     "the invocation body is not JSON", NULL);
	char *params = NULL;
	if (cJSON_IsObject(v)) {
		params = cJSON_PrintUnformatted(v);
	} else {
		cJSON *o = cJSON_CreateObject();
		if (o && cJSON_AddItemToObject(o, "input", v)) {
			v = NULL;
			params = cJSON_PrintUnformatted(o);
		}
		cJSON_Delete(o);
	}
	cJSON_Delete(v);
	if (!params)
		return MHD_NO;
	struct agent_result res;
	agent_invoke(NULL, params, ctx->request_id, 0, &res);
	free(params);
	enum MHD_Result r;
	if (res.status == AGENT_OK) {
		size_t n = strlen(res.result_json);
		r = respond(c, ctx, MHD_HTTP_OK, res.result_json, n, "application/json", NULL);
		res.result_json = NULL;
	} else {
		r = respond_error(c, ctx, invocation_http_status(res.status), "agent_error",
				  res.error ? res.error : "the agent failed", NULL);
	}
	agent_result_free(&res);
	return r;
}

/* Probe traffic (load balancers, kubelets, scrapers) is logged at debug so it does not
 * drown the lines an operator reads. */
static bool is_probe_route(const char *path)
{
	bool id_ok;
	return is_route(path, "/health") || strcmp(path, "/livez") == 0 ||
	       strcmp(path, "/metrics") == 0 || strcmp(path, "/ping") == 0 ||
	       match_agent_health(path, &id_ok);
}

static enum MHD_Result dispatch(struct MHD_Connection *c, struct req_ctx *ctx,
				const char *path, const char *method)
{
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool id_ok = false;
	enum MHD_Result (*route)(struct MHD_Connection *, struct req_ctx *) = NULL;

	if (strcmp(path, "/livez") == 0)
		route = route_livez;
	else if (match_agent_health(path, &id_ok)) {
		if (!id_ok)
			return respond_error(c, ctx, MHD_HTTP_NOT_FOUND, "unknown_agent",
					     "no agent with that id runs here", NULL);
		route = route_agent_health;
	} else if (is_route(path, "/health"))
		route = route_health;
	else if (is_route(path, "/meta"))
		route = route_meta;
	else if (strcmp(path, "/metrics") == 0)
		route = route_metrics;
	else if (is_route(path, "/a2a/health"))
		route = route_a2a_health;
	else if (strcmp(path, "/ping") == 0)
		route = route_ping;
	else if (strcmp(path, "/invocations") == 0) {
		if (strcmp(method, "POST") != 0)
			return respond_error(c, ctx, MHD_HTTP_METHOD_NOT_ALLOWED,
					     "method_not_allowed", "this route answers POST", "POST");
		return route_invocations(c, ctx);
	} else if (has_prefix_route(path, "/api"))
		return respond_error(c, ctx, MHD_HTTP_NOT_FOUND, "no_agent_route",
				     "the agent serves no route at this path", NULL);
	else
		return respond_error(c, ctx, MHD_HTTP_NOT_FOUND, "not_found",
				     "no route at this path", NULL);

	if (!get)
		return respond_error(c, ctx, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
				     "this route answers GET and HEAD", "GET, HEAD");
	return route(c, ctx);
}

/* Routes that tell the truth about health: rest.error must not mask what they report
 * (health.fail is the fault for that). /ping is AgentCore's invocation contract, so it fails
 * like /invocations does. */
static bool is_health_route(const char *path)
{
	bool id_ok;
	return is_route(path, "/health") || is_route(path, "/a2a/health") ||
	       match_agent_health(path, &id_ok);
}

/* Runtime faults (SPEC §8.3) and PAR_FAULTS rest.latency, before the route or the agent
 * runs. /livez and /metrics never see them: liveness and the scrape that shows the faults
 * must keep answering. true when the request was answered here (*ret). */
static bool inject_faults(struct MHD_Connection *c, struct req_ctx *ctx, const char *url,
			  enum MHD_Result *ret)
{
	if (strcmp(url, "/livez") == 0 || strcmp(url, "/metrics") == 0)
		return false;
	rtfault_hang_point();
	rtfault_rest_delay(rest.cfg->faults.rest_latency_ms);
	if (is_health_route(url))
		return false;
	unsigned status = rtfault_rest_error_status();
	if (!status)
		return false;
	char msg[96];
	snprintf(msg, sizeof msg, "injected fault rest.error: this request answers %u", status);
	ctx->fault_answered = true;
	*ret = respond_error(c, ctx, status, "fault_injected", msg, NULL);
	return true;
}

/* The UI's files, on its own port (mount "") or under {BASE}/ui{basePath} on REST. */
static enum MHD_Result serve_ui(struct MHD_Connection *c, struct req_ctx *ctx,
				const char *method, size_t mount_len, bool own_port)
{
	const char *path = ctx->path + mount_len;
	const char *raw = ctx->raw_path + (strlen(ctx->raw_path) >= mount_len ? mount_len : 0);
	struct ui_request r = {.method = method, .raw_path = raw, .path = path,
			       .own_port = own_port};
	struct ui_answer a;
	ui_answer(c, &r, &a);
	if (!a.resp)
		return respond_error(c, ctx, a.status, a.err_code, a.err_message,
				     a.status == MHD_HTTP_METHOD_NOT_ALLOWED ? "GET, HEAD" : NULL);
	return queue(c, ctx, a.status, a.resp);
}

/* Length of the UI mount at the start of path on the REST port, or -1. A bare mount (no
 * trailing '/') is redirected so the UI's relative links resolve. */
static long ui_mount(const char *path, bool *bare)
{
	char mount[512];
	snprintf(mount, sizeof mount, "%s/ui%s", rest.cfg->base_path, ui_base_path());
	size_t n = strlen(mount);
	*bare = strcmp(path, mount) == 0;
	if (*bare || (strncmp(path, mount, n) == 0 && path[n] == '/'))
		return (long)n;
	return -1;
}

static enum MHD_Result redirect_slash(struct MHD_Connection *c, struct req_ctx *ctx)
{
	char loc[1100];
	snprintf(loc, sizeof loc, "%s/", ctx->path);
	struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"",
								  MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, loc);
	return queue(c, ctx, MHD_HTTP_PERMANENT_REDIRECT, r);
}

/* MHD calls this with the raw request target before decoding it; its return value becomes
 * the request's context, so the raw path (needed to see %2f and %00) rides along. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	(void)c;
	struct req_ctx *ctx = calloc(1, sizeof *ctx);
	if (!ctx)
		return NULL;
	ctx->lis = cls;
	size_t n = strcspn(uri, "?");
	ctx->raw_path = strndup(uri, n);
	ctx->start_us = time_mono_us();
	atomic_fetch_add(&rest.in_flight, 1);
	metric_add(ctx->lis->m_in_flight, 1);
	return ctx;
}

static void conn_mark(struct MHD_Connection *c, bool waiting);

static bool body_over_limit(struct MHD_Connection *c, const char *url)
{
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	uint64_t n = 0, max = strcmp(url, "/invocations") == 0 ? INVOCATION_BODY_MAX
								: RESERVED_BODY_MAX;
	return cl && parse_uint(cl, 0, UINT64_MAX, &n) == 0 && n > max;
}

/* A CORS preflight from a listed origin: what the agent's routes accept. */
static enum MHD_Result cors_preflight(struct MHD_Connection *c, struct req_ctx *ctx)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"",
								  MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Access-Control-Allow-Methods",
				"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
	const char *want = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						       "Access-Control-Request-Headers");
	MHD_add_response_header(r, "Access-Control-Allow-Headers",
				want ? want : "Content-Type, Authorization, X-Request-ID");
	MHD_add_response_header(r, "Access-Control-Max-Age", "600");
	return queue(c, ctx, MHD_HTTP_NO_CONTENT, r);
}

static void request_start(struct MHD_Connection *c, struct req_ctx *ctx, const char *url,
			  const char *method)
{
	ctx->started = true;
	conn_mark(c, false);
	ctx->cors_origin = cors_match(c);
	const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-ID");
	if (rid && request_id_acceptable(rid))
		snprintf(ctx->request_id, sizeof ctx->request_id, "%s", rid);
	else
		request_id_generate(ctx->request_id, sizeof ctx->request_id);
	snprintf(ctx->method, sizeof ctx->method, "%s", method);
	ctx->path = strdup(url);
	ctx->probe = !ctx->lis->ui_only && is_probe_route(url);
	ctx->api_path = !ctx->lis->ui_only && agent_has_api() ? api_path(url) : NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	(void)cls, (void)version;
	struct req_ctx *ctx = *con_cls;
	if (!ctx || !ctx->raw_path)
		return MHD_NO;
	if (ctx->fault_answered) {
		/* The body of a request a fault already answered goes nowhere. */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!ctx->started) {
		request_start(c, ctx, url, method);
		if (!ctx->path)
			return MHD_NO;
		if (ctx->api_path) {
			/* Agent routes stream their body to the agent, so faults act up front. */
			enum MHD_Result r;
			log_set_request_id(ctx->request_id);
			bool answered = inject_faults(c, ctx, url, &r);
			log_set_request_id(NULL);
			if (answered)
				return r;
		} else {
			/* Refused before a byte of the body is read. */
			if (body_over_limit(c, url))
				return respond_error(c, ctx, MHD_HTTP_CONTENT_TOO_LARGE,
						     "body_too_large",
						     "the request body is over this route's limit",
						     NULL);
			if (ctx->cors_origin && strcmp(method, "OPTIONS") == 0)
				return cors_preflight(c, ctx);
			return MHD_YES;
		}
	}
	if (ctx->api_path) {
		/* The agent's own routes: every handler call, upload chunks included, is its. */
		log_set_request_id(ctx->request_id);
		enum MHD_Result r = agent_api(c, method, ctx->api_path, upload_data,
					      upload_data_size, &ctx->api_ctx, ctx->request_id);
		log_set_request_id(NULL);
		return r;
	}
	if (*upload_data_size) {
		/* Only /invocations takes a body; the others drop theirs. */
		if (strcmp(url, "/invocations") == 0 && !ctx->body_too_large) {
			if (ctx->body.len + *upload_data_size > INVOCATION_BODY_MAX)
				ctx->body_too_large = true;
			else
				sb_append(&ctx->body, upload_data, *upload_data_size);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}

	log_set_request_id(ctx->request_id);
	enum MHD_Result ret;
	bool bare = false;
	long mount;
	if (ctx->lis->ui_only) {
		ret = serve_ui(c, ctx, method, 0, true);
	} else if (ui_present() && rest.cfg->multiplexed && (mount = ui_mount(url, &bare)) >= 0) {
		ret = bare ? redirect_slash(c, ctx) : serve_ui(c, ctx, method, (size_t)mount, false);
	} else if (!inject_faults(c, ctx, url, &ret)) {
		ret = dispatch(c, ctx, url, method);
	}
	log_set_request_id(NULL);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	struct req_ctx *ctx = *con_cls;
	if (!ctx)
		return;
	*con_cls = NULL;

	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
	unsigned status = ci ? ci->http_status : 0;
	int64_t dur_us = time_mono_us() - ctx->start_us;
	bool ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;

	conn_mark(c, true);   /* a keep-alive connection now waits for the next request */
	metric_inc(requests_counter(ctx->lis, status));
	metric_observe(ctx->lis->m_latency, (double)dur_us / 1e6);
	metric_add(ctx->lis->m_in_flight, -1);

	if (ctx->started) {
		log_set_request_id(ctx->request_id);
		log_emit(!ok ? PAR_LOG_WARN : ctx->probe ? PAR_LOG_DEBUG : PAR_LOG_INFO,
			 ok ? "rest.request" : "rest.request.aborted",
			 LOG_FIELDS(LF_STR("surface", ctx->lis->surface),
				    LF_STR("method", ctx->method), LF_STR("path", ctx->path),
				    LF_UINT("status", status),
				    LF_DBL("durationMs", (double)dur_us / 1000.0)),
			 "%s %s %u%s", ctx->method, ctx->path ? ctx->path : "", status,
			 ok ? "" : " (connection closed before the response was sent)");
		log_set_request_id(NULL);
	}
	agent_api_completed(ctx->api_ctx);
	sb_free(&ctx->body);
	free(ctx->path);
	free(ctx->raw_path);
	free(ctx);
	/* Last: the drain reads this counter and may stop the server once it is zero. */
	atomic_fetch_sub(&rest.in_flight, 1);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	(void)cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		atomic_fetch_add(&rest.connections, 1);
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct conn *k = calloc(1, sizeof *k);
		if (!k)
			return;
		k->fd = ci ? ci->connect_fd : -1;
		k->waiting_since_ms = time_mono_ms();
		pthread_mutex_lock(&rest.conns_mu);
		k->next = rest.conns;
		if (rest.conns)
			rest.conns->prev = k;
		rest.conns = k;
		pthread_mutex_unlock(&rest.conns_mu);
		*socket_context = k;
		return;
	}
	atomic_fetch_sub(&rest.connections, 1);
	struct conn *k = *socket_context;
	if (!k)
		return;
	pthread_mutex_lock(&rest.conns_mu);
	if (k->prev)
		k->prev->next = k->next;
	else
		rest.conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	pthread_mutex_unlock(&rest.conns_mu);
	free(k);
	*socket_context = NULL;
}

/* 0: the connection is in a request (headers complete); otherwise waiting since now. */
static void conn_mark(struct MHD_Connection *c, bool waiting)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *k = ci ? ci->socket_context : NULL;
	if (!k)
		return;
	pthread_mutex_lock(&rest.conns_mu);
	k->waiting_since_ms = waiting ? time_mono_ms() : 0;
	pthread_mutex_unlock(&rest.conns_mu);
}

/* Once a second: a connection that has spent more than HEADER_DEADLINE_MS on one request's
 * headers is shut down (its thread sees EOF and closes it), logged once. */
static void *header_watchdog(void *arg)
{
	(void)arg;
	while (!atomic_load(&rest.stopping)) {
		struct timespec ts = {0, 250 * 1000000L};
		nanosleep(&ts, NULL);
		int64_t now = time_mono_ms();
		unsigned cut = 0;
		pthread_mutex_lock(&rest.conns_mu);
		for (struct conn *k = rest.conns; k; k = k->next) {
			if (k->cut || !k->waiting_since_ms || k->fd < 0 ||
			    now - k->waiting_since_ms < HEADER_DEADLINE_MS)
				continue;
			shutdown(k->fd, SHUT_RDWR);
			k->cut = true;
			cut++;
		}
		pthread_mutex_unlock(&rest.conns_mu);
		if (cut) {
			metric_add(rest.m_cut, cut);
			log_emit(PAR_LOG_WARN, "rest.header_deadline",
				 LOG_FIELDS(LF_UINT("connections", cut),
					    LF_UINT("deadlineMs", HEADER_DEADLINE_MS)),
				 "closed %u connection(s) that did not finish their headers in %u ms",
				 cut, HEADER_DEADLINE_MS);
		}
	}
	return NULL;
}

/* libmicrohttpd's own complaints (limits reached, bad requests) come once per event, which
 * a hostile client can make thousands of a second: the same message is logged at most once
 * per 10 s, with the number of repeats it stood for. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static char last[512];
	static int64_t last_ms;
	static unsigned repeats;
	struct listener *lis = cls;
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	int64_t now = time_mono_ms();
	pthread_mutex_lock(&mu);
	bool same = strcmp(msg, last) == 0 && now - last_ms < 10000;
	unsigned suppressed = repeats;
	if (same) {
		repeats++;
	} else {
		snprintf(last, sizeof last, "%s", msg);
		last_ms = now;
		repeats = 0;
	}
	pthread_mutex_unlock(&mu);
	if (!same)
		log_emit(PAR_LOG_WARN, "rest.server",
			 LOG_FIELDS(LF_STR("surface", lis->surface), LF_UINT("repeatsBefore", suppressed)),
			 "%s", msg);
}

static int listener_start(struct listener *lis, int listen_fd)
{
	char labels[32];
	snprintf(labels, sizeof labels, "surface=\"%s\"", lis->surface);
	lis->listen_fd = listen_fd;
	lis->m_in_flight = metrics_gauge(rest.metrics, "par_http_in_flight",
					 "HTTP requests being served, by surface.", labels);
	lis->m_latency = metrics_histogram(rest.metrics, "par_http_request_duration_seconds",
					   "HTTP request latency, by surface.", labels,
					   metrics_latency_buckets, metrics_latency_nbuckets);
	/* A thread per connection: a slow request (a slow agent, an injected latency) blocks
	 * only its own connection, and p99 stays lowest in the guide's measurements. */
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	lis->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, lis,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, lis,
		MHD_OPTION_LISTEN_SOCKET, listen_fd,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, lis,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
		/* Longer than a load balancer's idle timeout (ALB: 60 s), so the LB, not pard,
		 * closes idle keep-alive connections and never races a request into a close. */
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)75,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, rest.cfg->http_max_conns_per_ip,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
		MHD_OPTION_END);
	if (!lis->daemon) {
		log_emit(PAR_LOG_ERROR, "rest.start.failed",
			 LOG_FIELDS(LF_STR("surface", lis->surface)),
			 "the %s HTTP server could not start", lis->surface);
		close(listen_fd);
		lis->listen_fd = -1;
		return -1;
	}
	return 0;
}

int rest_start(int listen_fd, const struct par_config *cfg, struct metrics *metrics)
{
	rest.cfg = cfg;
	rest.metrics = metrics;
	rest.m_cut = metrics_counter(metrics, "par_http_header_deadline_closed_total",
				     "Connections closed for taking too long over their headers.",
				     NULL);
	if (listener_start(&rest.l[L_REST], listen_fd) != 0)
		return -1;
	rest.watchdog_running = pthread_create(&rest.watchdog, NULL, header_watchdog, NULL) == 0;
	return 0;
}

int rest_start_ui(int listen_fd)
{
	return listener_start(&rest.l[L_UI], listen_fd);
}

void rest_stop_accepting(void)
{
	for (int i = 0; i < L_COUNT; i++) {
		struct listener *lis = &rest.l[i];
		if (!lis->daemon || lis->quiesced)
			continue;
		int fd = MHD_quiesce_daemon(lis->daemon);
		lis->quiesced = true;
		/* Quiesce alone leaves the socket open, so new connects would sit in the backlog
		 * and hang; shutdown() makes the kernel refuse them at once. */
		if (fd >= 0)
			shutdown(fd, SHUT_RDWR);
		log_emit(PAR_LOG_INFO, "rest.listener.closed",
			 LOG_FIELDS(LF_STR("surface", lis->surface),
				    LF_UINT("inFlight", rest_in_flight()),
				    LF_UINT("connections", rest_connections())),
			 "%s listener closed; new connections are refused", lis->surface);
	}
}

void rest_stop(void)
{
	atomic_store(&rest.stopping, true);
	if (rest.watchdog_running) {
		pthread_join(rest.watchdog, NULL);
		rest.watchdog_running = false;
	}
	for (int i = 0; i < L_COUNT; i++) {
		struct listener *lis = &rest.l[i];
		if (!lis->daemon)
			continue;
		MHD_stop_daemon(lis->daemon);
		lis->daemon = NULL;
		/* After a quiesce the fd is ours again; otherwise MHD closed it. */
		if (lis->quiesced && lis->listen_fd >= 0)
			close(lis->listen_fd);
		lis->listen_fd = -1;
	}
}
