/* The REST surface on libmicrohttpd: reserved routes (health, liveness, per-agent health,
 * meta, metrics), request ids, JSON errors, and the listener half of the drain. */
#include "rest.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lifecycle.h"
#include "package.h"
#include "par/log.h"
#include "par/strbuf.h"
#include "par/timeutil.h"

#define REQUEST_ID_MAX 128

struct req_ctx {
	char request_id[REQUEST_ID_MAX + 1];
	char method[16];
	char *path;
	bool probe;      /* health/metrics traffic: its access line is debug */
	int64_t start_us;
};

static struct {
	struct MHD_Daemon *daemon;
	int listen_fd;
	bool quiesced;
	atomic_bool draining;
	atomic_uint in_flight;
	atomic_uint connections;
	const struct par_config *cfg;
	struct metrics *metrics;
	struct metric *m_in_flight;
	struct metric *m_latency;
	_Atomic(struct metric *) m_by_code[600];
} rest = {.listen_fd = -1};

unsigned rest_in_flight(void) { return atomic_load(&rest.in_flight); }
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

static struct metric *requests_counter(unsigned code)
{
	if (code >= 600)
		code = 599;
	struct metric *m = atomic_load(&rest.m_by_code[code]);
	if (m)
		return m;
	char labels[48];
	snprintf(labels, sizeof labels, "surface=\"rest\",code=\"%u\"", code);
	m = metrics_counter(rest.metrics, "par_http_requests_total",
			    "HTTP requests answered, by surface and status code.", labels);
	atomic_store(&rest.m_by_code[code], m);
	return m;
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
	MHD_add_response_header(r, "X-Request-ID", ctx->request_id);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	if (atomic_load(&rest.draining))
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
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
	struct strbuf sb = STRBUF_INIT;
	sb_puts(&sb, "{\"error\":{\"code\":");
	sb_json_str(&sb, code);
	sb_puts(&sb, ",\"message\":");
	sb_json_str(&sb, message);
	sb_puts(&sb, "},\"requestId\":");
	sb_json_str(&sb, ctx->request_id);
	sb_putc(&sb, '}');
	if (sb.oom) {
		sb_free(&sb);
		return MHD_NO;
	}
	size_t len = sb.len;
	return respond(c, ctx, status, sb_steal(&sb), len, "application/json", allow);
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
	lc_health_json(&sb, time_epoch_ms());
	return respond_json(c, ctx, lc_healthy() ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
			    &sb);
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

/* Probe traffic (load balancers, kubelets, scrapers) is logged at debug so it does not
 * drown the lines an operator reads. */
static bool is_probe_route(const char *path)
{
	bool id_ok;
	return is_route(path, "/health") || strcmp(path, "/livez") == 0 ||
	       strcmp(path, "/metrics") == 0 || match_agent_health(path, &id_ok);
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
	else if (has_prefix_route(path, "/api"))
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

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = time_ms_to_timespec(ms);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	(void)cls, (void)version, (void)upload_data;
	struct req_ctx *ctx = *con_cls;
	if (!ctx) {
		ctx = calloc(1, sizeof *ctx);
		if (!ctx)
			return MHD_NO;
		ctx->start_us = time_mono_us();
		const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-ID");
		if (rid && request_id_acceptable(rid))
			snprintf(ctx->request_id, sizeof ctx->request_id, "%s", rid);
		else
			request_id_generate(ctx->request_id, sizeof ctx->request_id);
		snprintf(ctx->method, sizeof ctx->method, "%s", method);
		ctx->path = strdup(url);
		if (!ctx->path) {
			free(ctx);
			return MHD_NO;
		}
		ctx->probe = is_probe_route(url);
		*con_cls = ctx;
		atomic_fetch_add(&rest.in_flight, 1);
		metric_add(rest.m_in_flight, 1);
		return MHD_YES;
	}
	if (*upload_data_size) {
		/* No reserved route takes a body: drop it. */
		*upload_data_size = 0;
		return MHD_YES;
	}

	log_set_request_id(ctx->request_id);
	uint32_t latency = rest.cfg->faults.rest_latency_ms;
	if (latency && strcmp(url, "/livez") != 0 && strcmp(url, "/metrics") != 0)
		sleep_ms(latency);
	enum MHD_Result ret = dispatch(c, ctx, url, method);
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

	metric_inc(requests_counter(status));
	metric_observe(rest.m_latency, (double)dur_us / 1e6);
	metric_add(rest.m_in_flight, -1);

	log_set_request_id(ctx->request_id);
	log_emit(!ok ? PAR_LOG_WARN : ctx->probe ? PAR_LOG_DEBUG : PAR_LOG_INFO,
		 ok ? "rest.request" : "rest.request.aborted",
		 LOG_FIELDS(LF_STR("method", ctx->method), LF_STR("path", ctx->path),
			    LF_UINT("status", status),
			    LF_DBL("durationMs", (double)dur_us / 1000.0)),
		 "%s %s %u%s", ctx->method, ctx->path, status,
		 ok ? "" : " (connection closed before the response was sent)");
	log_set_request_id(NULL);
	free(ctx->path);
	free(ctx);
	/* Last: the drain reads this counter and may stop the server once it is zero. */
	atomic_fetch_sub(&rest.in_flight, 1);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	(void)cls, (void)c, (void)socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		atomic_fetch_add(&rest.connections, 1);
	else
		atomic_fetch_sub(&rest.connections, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_emit(PAR_LOG_WARN, "rest.server", LOG_NOFIELDS, "%s", msg);
}

int rest_start(int listen_fd, const struct par_config *cfg, struct metrics *metrics)
{
	rest.cfg = cfg;
	rest.metrics = metrics;
	rest.listen_fd = listen_fd;
	rest.m_in_flight = metrics_gauge(metrics, "par_http_in_flight",
					 "HTTP requests being served, by surface.",
					 "surface=\"rest\"");
	rest.m_latency = metrics_histogram(metrics, "par_http_request_duration_seconds",
					   "HTTP request latency, by surface.", "surface=\"rest\"",
					   metrics_latency_buckets, metrics_latency_nbuckets);
	/* A thread per connection: a slow request (a slow agent, an injected latency) blocks
	 * only its own connection, and p99 stays lowest in the guide's measurements. */
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	rest.daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, NULL,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, listen_fd,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
		/* Longer than a load balancer's idle timeout (ALB: 60 s), so the LB, not pard,
		 * closes idle keep-alive connections and never races a request into a close. */
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)75,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
		MHD_OPTION_END);
	if (!rest.daemon) {
		log_emit(PAR_LOG_ERROR, "rest.start.failed", LOG_NOFIELDS,
			 "the HTTP server could not start");
		return -1;
	}
	return 0;
}

void rest_begin_drain(void)
{
	atomic_store(&rest.draining, true);
}

void rest_stop_accepting(void)
{
	atomic_store(&rest.draining, true);
	if (!rest.daemon || rest.quiesced)
		return;
	int fd = MHD_quiesce_daemon(rest.daemon);
	rest.quiesced = true;
	/* Quiesce alone leaves the socket open, so new connects would sit in the backlog and
	 * hang; shutdown() makes the kernel refuse them at once. */
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
	log_emit(PAR_LOG_INFO, "rest.listener.closed",
		 LOG_FIELDS(LF_UINT("inFlight", rest_in_flight()),
			    LF_UINT("connections", rest_connections())),
		 "REST listener closed; new connections are refused");
}

void rest_stop(void)
{
	if (!rest.daemon)
		return;
	MHD_stop_daemon(rest.daemon);
	rest.daemon = NULL;
	/* After a quiesce the fd is ours again; otherwise MHD closed it. */
	if (rest.quiesced && rest.listen_fd >= 0)
		close(rest.listen_fd);
	rest.listen_fd = -1;
}
