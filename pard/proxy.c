/* The {BASE}/api/… proxy to the worker (SPEC §4.2): method, headers, body and status pass
 * through, streamed both ways through two bounded rings, so memory per request is fixed
 * whatever the body sizes. libcurl runs the worker side on a pump thread; the
 * libmicrohttpd connection thread (thread-per-connection mode) feeds the request ring and
 * drains the response ring, blocking while a ring is full or empty. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http.h"
#include "lifecycle.h"
#include "par/log.h"
#include "par/strbuf.h"
#include "par/timeutil.h"
#include "worker.h"

/* Each direction's buffer. */
#define PROXY_RING_SIZE (128u * 1024)
/* The longest a proxied request may take, start to end (the drain's grace also ends it). */
#define PROXY_TIMEOUT_MS 300000
/* Response headers kept from the worker, in bytes. */
#define PROXY_HEADERS_MAX (64u * 1024)
/* Blocking waits wake this often to check the deadlines. */
#define PROXY_WAIT_SLICE_MS 200

struct proxy_ring {
	char *buf;
	size_t cap, head, len;
};

struct proxy_req {
	pthread_mutex_t mu;
	pthread_cond_t cond;          /* any change below */
	int64_t deadline;             /* monotonic ms */
	int client_fd;                /* the client's socket, watched while waiting for the worker */
	char request_id[160];
	CURL *curl;
	unsigned gen;
	struct curl_slist *req_headers;
	char *url;
	pthread_t pump;
	bool pump_started;
	bool responded;               /* a response is queued: later calls only drop the upload */
	struct proxy_ring up, down;
	bool up_eof;                  /* the client's body is all in the up ring */
	bool aborted;                 /* the client is gone: the pump stops */
	bool headers_done;            /* final status and headers from the worker */
	bool headers_overflow;
	size_t header_bytes;
	bool pump_done;
	CURLcode result;
	long status;
	curl_off_t resp_len;          /* -1: unknown */
	struct curl_slist *resp_headers;   /* "Name: value", filtered */
};

/* ---- rings ------------------------------------------------------------------------------ */

static int proxy_ring_init(struct proxy_ring *g)
{
	g->buf = malloc(PROXY_RING_SIZE);
	g->cap = g->buf ? PROXY_RING_SIZE : 0;
	return g->buf ? 0 : -1;
}

static size_t proxy_ring_put(struct proxy_ring *g, const char *p, size_t n)
{
	size_t k = 0;
	while (k < n && g->len < g->cap) {
		size_t tail = (g->head + g->len) % g->cap;
		size_t contig = g->cap - tail;
		if (contig > g->cap - g->len)
			contig = g->cap - g->len;
		size_t m = n - k < contig ? n - k : contig;
		memcpy(g->buf + tail, p + k, m);
		g->len += m;
		k += m;
	}
	return k;
}

static size_t proxy_ring_get(struct proxy_ring *g, char *p, size_t n)
{
	size_t k = 0;
	while (k < n && g->len) {
		size_t contig = g->cap - g->head;
		if (contig > g->len)
			contig = g->len;
		size_t m = n - k < contig ? n - k : contig;
		memcpy(p + k, g->buf + g->head, m);
		g->head = (g->head + m) % g->cap;
		g->len -= m;
		k += m;
	}
	return k;
}

/* ---- waiting ------------------------------------------------------------------------------ */

/* The request's own limit, or the drain's grace, has passed. */
static bool proxy_expired(const struct proxy_req *r)
{
	int64_t now = time_mono_ms();
	int64_t cancel = worker_cancel_at();
	return now >= r->deadline || (cancel && now >= cancel);
}

/* The client closed its connection. libmicrohttpd cannot notice while its thread waits here
 * for the worker, so the waits look for themselves. */
static bool proxy_client_gone(const struct proxy_req *r)
{
	struct pollfd p = {.fd = r->client_fd, .events = POLLRDHUP};
	return r->client_fd >= 0 && poll(&p, 1, 0) > 0 &&
	       (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* One slice of a wait on r->cond (r->mu held); callers loop and re-check. */
static void proxy_wait(struct proxy_req *r)
{
	struct timespec ts = time_ms_to_timespec(time_mono_ms() + PROXY_WAIT_SLICE_MS);
	pthread_cond_timedwait(&r->cond, &r->mu, &ts);
}

/* ---- the worker side: libcurl callbacks on the pump thread ------------------------------ */

static size_t proxy_on_upload(char *buf, size_t size, size_t n, void *cls)
{
	struct proxy_req *r = cls;
	pthread_mutex_lock(&r->mu);
	while (!r->up.len && !r->up_eof && !r->aborted && !proxy_expired(r))
		proxy_wait(r);
	size_t k = 0;
	bool stuck = !r->up.len && !r->up_eof;
	if (!r->aborted && !stuck) {
		k = proxy_ring_get(&r->up, buf, size * n);
		pthread_cond_broadcast(&r->cond);
	}
	bool abort = r->aborted || stuck;
	pthread_mutex_unlock(&r->mu);
	return abort ? CURL_READFUNC_ABORT : k;
}

static size_t proxy_on_body(char *p, size_t size, size_t n, void *cls)
{
	struct proxy_req *r = cls;
	size_t len = size * n, done = 0;
	pthread_mutex_lock(&r->mu);
	while (done < len) {
		while (r->down.len == r->down.cap && !r->aborted && !proxy_expired(r))
			proxy_wait(r);
		if (r->aborted || r->down.len == r->down.cap)
			break;
		done += proxy_ring_put(&r->down, p + done, len - done);
		pthread_cond_broadcast(&r->cond);
	}
	pthread_mutex_unlock(&r->mu);
	return done == len ? len : 0;
}

static bool proxy_name_is(const char *name, size_t n, const char *what)
{
	return strlen(what) == n && strncasecmp(name, what, n) == 0;
}

/* Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection, not to the message. */
static bool proxy_hop_by_hop(const char *name, size_t n)
{
	static const char *const hop[] = {"Connection", "Keep-Alive", "Transfer-Encoding", "TE",
					  "Trailer", "Upgrade", NULL};
	for (size_t i = 0; hop[i]; i++)
		if (proxy_name_is(name, n, hop[i]))
			return true;
	return n >= 6 && strncasecmp(name, "Proxy-", 6) == 0;
}

/* A status line starts a (possibly interim) response: what came before it is dropped. */
static void proxy_status_line(struct proxy_req *r, const char *line, size_t n)
{
	const char *sp = memchr(line, ' ', n);
	r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
	curl_slist_free_all(r->resp_headers);
	r->resp_headers = NULL;
	r->resp_len = -1;
	r->header_bytes = 0;
}

static void proxy_header_line(struct proxy_req *r, const char *line, size_t n)
{
	const char *colon = memchr(line, ':', n);
	if (!colon || colon == line || line[0] == ' ' || line[0] == '\t')
		return;  /* not a header, or an obsolete folded continuation */
	size_t nl = (size_t)(colon - line);
	const char *v = colon + 1, *end = line + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (proxy_name_is(line, nl, "Content-Length")) {
		char num[32];
		size_t vl = (size_t)(end - v) < sizeof num - 1 ? (size_t)(end - v) : sizeof num - 1;
		memcpy(num, v, vl);
		num[vl] = '\0';
		char *e;
		long long len = strtoll(num, &e, 10);
		r->resp_len = *e == '\0' && vl && len >= 0 ? (curl_off_t)len : -1;
		return;   /* libmicrohttpd writes its own from the size */
	}
	/* MHD adds its own Date; pard's X-Request-ID is the one the client gets. */
	if (proxy_hop_by_hop(line, nl) || proxy_name_is(line, nl, "Date") ||
	    proxy_name_is(line, nl, "X-Request-ID"))
		return;
	r->header_bytes += n;
	if (r->header_bytes > PROXY_HEADERS_MAX) {
		r->headers_overflow = true;
		return;
	}
	char *h;
	if (asprintf(&h, "%.*s: %.*s", (int)nl, line, (int)(end - v), v) < 0) {
		r->headers_overflow = true;
		return;
	}
	struct curl_slist *s = curl_slist_append(r->resp_headers, h);
	free(h);
	if (s)
		r->resp_headers = s;
	else
		r->headers_overflow = true;
}

static size_t proxy_on_header(char *p, size_t size, size_t n, void *cls)
{
	struct proxy_req *r = cls;
	size_t len = size * n, l = len;
	/* After the headers come only trailers, which are not passed on; the MHD thread may be
	 * reading the header list by then. */
	if (r->headers_done)
		return len;
	while (l && (p[l - 1] == '\n' || p[l - 1] == '\r'))
		l--;
	if (l >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		proxy_status_line(r, p, l);
	} else if (l == 0) {
		if (r->status >= 200) {
			pthread_mutex_lock(&r->mu);
			r->headers_done = true;
			pthread_cond_broadcast(&r->cond);
			pthread_mutex_unlock(&r->mu);
		}
	} else {
		proxy_header_line(r, p, l);
	}
	return r->headers_overflow ? 0 : len;
}

static int proxy_on_progress(void *cls, curl_off_t dt, curl_off_t dn, curl_off_t ut,
			     curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	struct proxy_req *r = cls;
	pthread_mutex_lock(&r->mu);
	bool stop = r->aborted || proxy_expired(r);
	pthread_mutex_unlock(&r->mu);
	return stop;
}

static void *proxy_pump_main(void *arg)
{
	struct proxy_req *r = arg;
	CURLcode rc = curl_easy_perform(r->curl);
	pthread_mutex_lock(&r->mu);
	r->pump_done = true;
	r->result = rc;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* ---- building the worker request --------------------------------------------------------- */

/* Percent-encodes every byte outside the unreserved set and keep. */
static void proxy_put_escaped(struct strbuf *sb, const char *s, const char *keep)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || strchr("-._~", *p) || strchr(keep, *p))
			sb_putc(sb, (char)*p);
		else
			sb_printf(sb, "%%%02X", *p);
	}
}

struct proxy_query {
	struct strbuf *sb;
	bool first;
};

static enum MHD_Result proxy_put_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				     const char *value)
{
	(void)kind;
	struct proxy_query *q = cls;
	static const char keep[] = "!$'()*,;:@/?";
	sb_putc(q->sb, q->first ? '?' : '&');
	q->first = false;
	proxy_put_escaped(q->sb, key, keep);
	if (value) {
		sb_putc(q->sb, '=');
		proxy_put_escaped(q->sb, value, keep);
	}
	return MHD_YES;
}

/* libmicrohttpd hands over the path and the query already decoded, so they are encoded again
 * (an encoded "/" in a segment arrives as "/": that one difference is unavoidable). */
static char *proxy_url(struct MHD_Connection *c, const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	sb_puts(&sb, "http://localhost");
	proxy_put_escaped(&sb, path, "/:@!$&'()*+,;=");
	struct proxy_query q = {&sb, true};
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, proxy_put_arg, &q);
	if (sb.oom) {
		sb_free(&sb);
		return NULL;
	}
	return sb_steal(&sb);
}

struct proxy_hdrs {
	struct curl_slist *list;
	const char *connection;        /* the client's Connection header: more hop-by-hop names */
	struct strbuf forwarded_for;
	bool have_accept;
	bool oom;
};

static bool proxy_named_in(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; p && *p;) {
		p += strspn(p, " \t,");
		size_t len = strcspn(p, " \t,");
		if (len == n && strncasecmp(p, name, n) == 0)
			return true;
		p += len;
	}
	return false;
}

static void proxy_hdrs_append(struct proxy_hdrs *h, const char *line)
{
	struct curl_slist *s = curl_slist_append(h->list, line);
	if (s)
		h->list = s;
	else
		h->oom = true;
}

static void proxy_hdrs_add(struct proxy_hdrs *h, const char *name, const char *value)
{
	char *line;
	/* "Name;" is libcurl's way to send a header with an empty value. */
	int n = value && *value ? asprintf(&line, "%s: %s", name, value)
				: asprintf(&line, "%s;", name);
	if (n < 0) {
		h->oom = true;
		return;
	}
	proxy_hdrs_append(h, line);
	free(line);
}

static enum MHD_Result proxy_put_header(void *cls, enum MHD_ValueKind kind, const char *key,
					const char *value)
{
	(void)kind;
	struct proxy_hdrs *h = cls;
	size_t n = strlen(key);
	if (proxy_hop_by_hop(key, n) || proxy_named_in(h->connection, key) ||
	    proxy_name_is(key, n, "Content-Length") || proxy_name_is(key, n, "Expect") ||
	    proxy_name_is(key, n, "X-Request-ID"))
		return MHD_YES;
	if (proxy_name_is(key, n, "X-Forwarded-For")) {
		if (h->forwarded_for.len)
			sb_puts(&h->forwarded_for, ", ");
		sb_puts(&h->forwarded_for, value ? value : "");
		return MHD_YES;
	}
	if (proxy_name_is(key, n, "Accept"))
		h->have_accept = true;
	proxy_hdrs_add(h, key, value);
	return MHD_YES;
}

/* The client's address, appended to X-Forwarded-For: the worker sees only a Unix socket. */
static void proxy_forwarded_for(struct MHD_Connection *c, struct strbuf *xff)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char ip[INET6_ADDRSTRLEN] = "";
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, ip,
			  sizeof ip);
	else if (sa && sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		/* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d. */
		if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, &a->s6_addr[12], ip, sizeof ip);
		else
			inet_ntop(AF_INET6, a, ip, sizeof ip);
	}
	if (!ip[0])
		return;
	if (xff->len)
		sb_puts(xff, ", ");
	sb_puts(xff, ip);
}

static struct curl_slist *proxy_request_headers(struct MHD_Connection *c,
						const char *request_id)
{
	struct proxy_hdrs h = {.forwarded_for = STRBUF_INIT};
	h.connection = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Connection");
	MHD_get_connection_values(c, MHD_HEADER_KIND, proxy_put_header, &h);
	proxy_forwarded_for(c, &h.forwarded_for);
	if (h.forwarded_for.len && !h.forwarded_for.oom)
		proxy_hdrs_add(&h, "X-Forwarded-For", h.forwarded_for.buf);
	proxy_hdrs_add(&h, "X-Request-ID", request_id);
	/* "Name:" removes a header libcurl would otherwise add to what the client sent. */
	proxy_hdrs_append(&h, "Expect:");
	if (!h.have_accept)
		proxy_hdrs_append(&h, "Accept:");
	sb_free(&h.forwarded_for);
	if (h.oom) {
		curl_slist_free_all(h.list);
		return NULL;
	}
	return h.list;
}

/* Whether the client sends a body, and its size (-1: chunked). */
static bool proxy_request_body(struct MHD_Connection *c, const char *method, curl_off_t *len)
{
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");
	*len = 0;
	if (te && strcasecmp(te, "identity") != 0) {
		*len = -1;
		return true;
	}
	if (cl) {
		*len = (curl_off_t)strtoll(cl, NULL, 10);
		return true;
	}
	/* These methods carry a body by definition; an empty one is sent as Content-Length: 0. */
	return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	       strcmp(method, "PATCH") == 0;
}

static void proxy_setup_curl(struct proxy_req *r, const char *method, bool body,
			     curl_off_t len)
{
	CURL *c = r->curl;
	curl_easy_setopt(c, CURLOPT_URL, r->url);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->req_headers);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)PROXY_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 64L * 1024);
	/* The body passes as the worker encoded it (no Accept-Encoding handling here). */
	curl_easy_setopt(c, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	curl_easy_setopt(c, CURLOPT_HTTP_TRANSFER_DECODING, 1L);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, len);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, proxy_on_upload);
		curl_easy_setopt(c, CURLOPT_READDATA, r);
	}
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, proxy_on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, proxy_on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, proxy_on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, r);
}

static struct proxy_req *proxy_req_new(const char *request_id)
{
	struct proxy_req *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	time_cond_init_mono(&r->cond);
	r->deadline = time_mono_ms() + PROXY_TIMEOUT_MS;
	r->client_fd = -1;
	r->resp_len = -1;
	snprintf(r->request_id, sizeof r->request_id, "%s", request_id ? request_id : "");
	return r;
}

/* Everything the worker request needs, then the pump. -1 when something could not be had. */
static int proxy_start(struct proxy_req *r, struct MHD_Connection *c, const char *method,
		       const char *path)
{
	curl_off_t len;
	bool body = proxy_request_body(c, method, &len);
	if (!(r->url = proxy_url(c, path)) ||
	    !(r->req_headers = proxy_request_headers(c, r->request_id)) ||
	    (body && len != 0 && proxy_ring_init(&r->up) < 0) ||
	    proxy_ring_init(&r->down) < 0 || !(r->curl = worker_curl_take(&r->gen)))
		return -1;
	if (!body || len == 0)
		r->up_eof = true;
	proxy_setup_curl(r, method, body, len);
	int e = pthread_create(&r->pump, NULL, proxy_pump_main, r);
	if (e) {
		log_emit(PAR_LOG_ERROR, "worker.proxy.thread", LOG_NOFIELDS,
			 "cannot start a proxy thread: %s", strerror(e));
		return -1;
	}
	r->pump_started = true;
	return 0;
}

/* ---- the client side: libmicrohttpd's connection thread ------------------------------------ */

/* Copies an upload chunk into the up ring, waiting while it is full. When the worker no longer
 * reads (its answer came early, or the pump failed) the rest is dropped. */
static void proxy_feed(struct proxy_req *r, const char *data, size_t n)
{
	pthread_mutex_lock(&r->mu);
	while (n && r->up.buf) {
		while (r->up.len == r->up.cap && !r->pump_done && !proxy_expired(r))
			proxy_wait(r);
		if (r->pump_done || r->up.len == r->up.cap)
			break;
		size_t k = proxy_ring_put(&r->up, data, n);
		data += k;
		n -= k;
		pthread_cond_broadcast(&r->cond);
	}
	pthread_mutex_unlock(&r->mu);
}

static ssize_t proxy_read_response(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct proxy_req *r = cls;
	pthread_mutex_lock(&r->mu);
	bool gone = false;
	while (!r->down.len && !r->pump_done && !proxy_expired(r) && !(gone = proxy_client_gone(r)))
		proxy_wait(r);
	ssize_t k;
	if (gone) {
		r->aborted = true;
		pthread_cond_broadcast(&r->cond);
		k = MHD_CONTENT_READER_END_WITH_ERROR;
	} else if (r->down.len) {
		k = (ssize_t)proxy_ring_get(&r->down, buf, max);
		pthread_cond_broadcast(&r->cond);
	} else {
		k = r->pump_done && r->result == CURLE_OK ? MHD_CONTENT_READER_END_OF_STREAM
							  : MHD_CONTENT_READER_END_WITH_ERROR;
	}
	pthread_mutex_unlock(&r->mu);
	return k;
}

/* As every REST response while draining: the client should not reuse the connection. */
static enum MHD_Result proxy_error(struct MHD_Connection *c, struct proxy_req *r,
				   unsigned status, const char *code, const char *message)
{
	r->responded = true;
	return http_queue(c, status, http_error_response(code, message, r->request_id),
			  r->request_id);
}

/* The worker's status and headers, and a body read from the down ring as it fills. */
static enum MHD_Result proxy_respond(struct MHD_Connection *c, struct proxy_req *r)
{
	uint64_t size = r->resp_len >= 0 ? (uint64_t)r->resp_len : MHD_SIZE_UNKNOWN;
	struct MHD_Response *resp =
		MHD_create_response_from_callback(size, 32 * 1024, proxy_read_response, r, NULL);
	if (!resp)
		return MHD_NO;
	for (struct curl_slist *h = r->resp_headers; h; h = h->next) {
		char *colon = strchr(h->data, ':');
		*colon = '\0';
		if (MHD_add_response_header(resp, h->data, colon + 2) != MHD_YES)
			log_emit(PAR_LOG_DEBUG, "worker.proxy.header.dropped",
				 LOG_FIELDS(LF_STR("header", h->data)),
				 "response header %s not passed on", h->data);
		*colon = ':';
	}
	r->responded = true;
	return http_queue(c, (unsigned)r->status, resp, r->request_id);
}

/* The worker gave no usable answer: say why, in JSON. */
static enum MHD_Result proxy_fail(struct MHD_Connection *c, struct proxy_req *r)
{
	CURLcode rc = r->pump_done ? r->result : CURLE_OPERATION_TIMEDOUT;
	int64_t cancel = worker_cancel_at();
	unsigned status = MHD_HTTP_BAD_GATEWAY;
	const char *code = "bad_gateway", *msg = "the worker gave no valid HTTP answer";
	if (rc == CURLE_COULDNT_CONNECT) {
		status = MHD_HTTP_SERVICE_UNAVAILABLE;
		code = "worker_unavailable";
		msg = "the agent's worker is not accepting connections (restarting?)";
	} else if (cancel && time_mono_ms() >= cancel) {
		status = MHD_HTTP_SERVICE_UNAVAILABLE;
		code = "shutting_down";
		msg = "cancelled: pard is shutting down";
	} else if (rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_ABORTED_BY_CALLBACK) {
		status = MHD_HTTP_GATEWAY_TIMEOUT;
		code = "worker_timeout";
		msg = "the worker did not answer within the proxy's time limit";
	} else if (r->headers_overflow) {
		msg = "the worker's response headers are too large";
	}
	log_emit(PAR_LOG_WARN, "worker.proxy.failed",
		 LOG_FIELDS(LF_UINT("status", status), LF_STR("error", curl_easy_strerror(rc))),
		 "proxy to the worker failed: %s", curl_easy_strerror(rc));
	return proxy_error(c, r, status, code, msg);
}

/* The upload is complete: wait for the worker's status line and headers, then answer. */
static enum MHD_Result proxy_finish(struct MHD_Connection *c, struct proxy_req *r)
{
	pthread_mutex_lock(&r->mu);
	r->up_eof = true;
	pthread_cond_broadcast(&r->cond);
	bool gone = false;
	while (!r->headers_done && !r->pump_done && !proxy_expired(r) &&
	       !(gone = proxy_client_gone(r)))
		proxy_wait(r);
	bool ok = r->headers_done && r->status >= 200 && r->status <= 999;
	if (gone) {
		r->aborted = true;
		pthread_cond_broadcast(&r->cond);
	}
	pthread_mutex_unlock(&r->mu);
	if (gone)
		return MHD_NO;   /* nobody to answer: libmicrohttpd closes the connection */
	return ok ? proxy_respond(c, r) : proxy_fail(c, r);
}

enum MHD_Result proxy_api(struct MHD_Connection *c, const char *method, const char *path,
			  const char *upload_data, size_t *upload_data_size, void **ctx,
			  const char *request_id)
{
	struct proxy_req *r = *ctx;
	if (!r) {
		if (!(r = proxy_req_new(request_id)))
			return MHD_NO;
		*ctx = r;
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		r->client_fd = ci ? ci->connect_fd : -1;
		/* Answered at once, before any upload: the client need not send a body that
		 * would be dropped. */
		if (!worker_up())
			return proxy_error(c, r, MHD_HTTP_SERVICE_UNAVAILABLE, "worker_unavailable",
					   "the agent's worker is down (restarting)");
		if (proxy_start(r, c, method, path) < 0)
			return proxy_error(c, r, MHD_HTTP_SERVICE_UNAVAILABLE, "proxy_unavailable",
					   "cannot reach the agent's worker now");
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!r->responded)
			proxy_feed(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->responded)
		return MHD_YES;
	return proxy_finish(c, r);
}

/* libmicrohttpd is done with the request, completed or not: the pump is stopped and joined
 * (a client that went away mid-stream leaves nothing behind). */
void proxy_api_completed(void *ctx)
{
	struct proxy_req *r = ctx;
	if (!r)
		return;
	if (r->pump_started) {
		pthread_mutex_lock(&r->mu);
		r->aborted = !r->pump_done;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->pump, NULL);
	}
	worker_curl_give(r->curl, r->gen);
	curl_slist_free_all(r->req_headers);
	curl_slist_free_all(r->resp_headers);
	free(r->url);
	free(r->up.buf);
	free(r->down.buf);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
