/* The A2A surface: a gRPC core server for pixell.agent.AgentService and grpc.health.v1.Health.
 * Two threads poll one completion queue and never block on agent code: Invoke and
 * DescribeCapabilities run on a small handler pool. Every call context is counted, because
 * the queue may only be shut down once the last one is released (dependencies guide §1.5). */
#include "a2a.h"

#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "grpc/health/v1/health.pb-c.h"
#include "lifecycle.h"
#include "listen.h"
#include "par/log.h"
#include "par/strbuf.h"
#include "par/timeutil.h"
#include "pixell/agent.pb-c.h"
#include "rtfaults.h"

#define A2A_CQ_THREADS 2
/* Agent calls run here; more wait in the queue (their deadline still counts). */
#define A2A_HANDLERS 16
#define A2A_QUEUE_MAX 1024
#define A2A_PREPOST 4                   /* requests kept posted per method */
#define A2A_MAX_MESSAGE (4 * 1024 * 1024)
/* After the cancel, how long handlers still inside agent code get before the teardown is
 * skipped: ECS's stopTimeout leaves about 5 s past the grace period. */
#define A2A_STUCK_WAIT_MS 2000
/* Watch streams also follow health changes nobody announces (the agent's own probe). */
#define A2A_WATCH_REFRESH_MS 1000
/* An agent error that comes back this close to the deadline (or later) is the deadline's
 * doing: agents see the deadline in whole epoch ms, so they may stop a hair early. */
#define A2A_DEADLINE_SLACK_MS 2
#define A2A_ID_MAX 128
#define A2A_PATH_MAX 200

enum a2a_method {
	M_HEALTH, M_CAPS, M_INVOKE, M_PING, M_CHECK, M_WATCH,
	M_UNKNOWN,            /* the catch-all: anything not registered */
	M_COUNT
};
#define M_REGISTERED M_UNKNOWN

static const struct {
	const char *path;
	const char *name;     /* the method label of logs and metrics */
	bool pooled;          /* runs agent code: a handler thread, never a CQ thread */
	enum par_log_level level;
} a2a_methods[M_COUNT] = {
	{"/pixell.agent.AgentService/Health", "pixell.agent.AgentService/Health", false,
	 PAR_LOG_DEBUG},
	{"/pixell.agent.AgentService/DescribeCapabilities",
	 "pixell.agent.AgentService/DescribeCapabilities", true, PAR_LOG_INFO},
	{"/pixell.agent.AgentService/Invoke", "pixell.agent.AgentService/Invoke", true,
	 PAR_LOG_INFO},
	{"/pixell.agent.AgentService/Ping", "pixell.agent.AgentService/Ping", false,
	 PAR_LOG_DEBUG},
	{"/grpc.health.v1.Health/Check", "grpc.health.v1.Health/Check", false, PAR_LOG_DEBUG},
	{"/grpc.health.v1.Health/Watch", "grpc.health.v1.Health/Watch", false, PAR_LOG_DEBUG},
	{NULL, "unknown", false, PAR_LOG_INFO},
};

#define A2A_NCODES 17
static const char *const a2a_code_names[A2A_NCODES] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED"};

/* What a completion-queue event is about; embedded in the call it belongs to. */
enum a2a_tag_kind { TAG_NEW, TAG_DONE, TAG_SEND, TAG_CLOSE, TAG_SHUTDOWN };
struct a2a_tag {
	enum a2a_tag_kind kind;
	struct a2a_call *call;
};

struct a2a_call {
	enum a2a_method method;
	struct a2a_tag t_new, t_done, t_send, t_close;
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_call_details details;     /* M_UNKNOWN only */
	grpc_byte_buffer *request;
	grpc_byte_buffer *response;
	grpc_slice status_details;
	bool has_details;
	grpc_status_code status;
	int cancelled;                 /* RECV_CLOSE_ON_SERVER: client gone, or cancel_all */
	bool counted;                  /* in a2a_in_flight */
	int64_t start_us;
	char *request_id;
	char *action;                  /* Invoke, for the log */
	bool success;                  /* Invoke's in-band outcome */
	char *path;                    /* M_UNKNOWN: what the client asked for */
	struct a2a_call *next;         /* handler queue or watch list */

	/* Watch: a stream with at most one send in flight, freed when no batch is pending. */
	bool streaming;                /* set before its first batch is started */
	char *service;
	int pending;
	int last_sent;                 /* serving status last sent, -1 none */
	bool sent_initial, send_in_flight, broken, finish_wanted, finish_sent;
};

static struct {
	pthread_mutex_t life_mu;       /* start vs stop: a boot may race a drain */
	bool running;
	bool closed;                   /* a2a_stop ran: never start again */
	const struct par_config *cfg;

	grpc_server *server;
	grpc_completion_queue *cq;
	void *handles[M_REGISTERED];
	pthread_t cq_threads[A2A_CQ_THREADS];
	int n_cq_threads;

	pthread_mutex_t mu;            /* shutdown_done */
	pthread_cond_t cond;
	bool shutdown_started;
	bool shutdown_done;

	atomic_bool serving;           /* started and not yet stopping: a2a_serving */
	atomic_bool stopping;          /* stop accepting: no reposting */
	atomic_bool abandoned;         /* teardown skipped: late completions touch nothing */
	atomic_uint live;              /* call contexts allocated and not yet freed */
	atomic_uint in_flight;
	atomic_llong next_refresh_ms;

	struct metrics *metrics;
	struct metric *m_in_flight;
	struct metric *m_watches;
	struct metric *m_latency[M_COUNT];
	_Atomic(struct metric *) m_requests[M_COUNT][A2A_NCODES];
} a2a = {.life_mu = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct a2a_call *head, *tail;
	unsigned queued;
	bool stop;
	pthread_t threads[A2A_HANDLERS];
	int nthreads;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

static struct {
	pthread_mutex_t mu;
	struct a2a_call *head;
	bool open;                     /* false once torn down: late lc notifications are no-ops */
	bool closing;                  /* stop accepting: every stream ends after its last status */
	unsigned count;
} watches = {.mu = PTHREAD_MUTEX_INITIALIZER};

static struct a2a_tag a2a_shutdown_tag = {TAG_SHUTDOWN, NULL};
static bool a2a_listener_registered;

/* ---- small helpers ------------------------------------------------------------------ */

static void a2a_sleep_ms(int64_t ms)
{
	struct timespec ts = time_ms_to_timespec(ms);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static struct timespec a2a_abs_mono(int64_t deadline_mono_ms)
{
	return (struct timespec){.tv_sec = deadline_mono_ms / 1000,
				 .tv_nsec = (deadline_mono_ms % 1000) * 1000000L};
}

static char *a2a_generate_id(void)
{
	static atomic_ullong seq;
	char buf[64];
	snprintf(buf, sizeof buf, "req_%lld_%llu", (long long)time_epoch_ms(),
		 atomic_fetch_add(&seq, 1) + 1);
	return strdup(buf);
}

/* x-request-id metadata is echoed into logs, so only REST's conservative alphabet is taken. */
static bool a2a_id_acceptable(const char *s, size_t n)
{
	if (n == 0 || n > A2A_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':'))
			return false;
	}
	return true;
}

static char *a2a_metadata_id(const grpc_metadata_array *md)
{
	for (size_t i = 0; i < md->count; i++) {
		if (grpc_slice_str_cmp(md->metadata[i].key, "x-request-id") != 0)
			continue;
		const char *v = (const char *)GRPC_SLICE_START_PTR(md->metadata[i].value);
		size_t n = GRPC_SLICE_LENGTH(md->metadata[i].value);
		if (a2a_id_acceptable(v, n))
			return strndup(v, n);
	}
	return NULL;
}

/* Every call gets an id for its log line: the client's x-request-id, else a fresh one. */
static void a2a_assign_id(struct a2a_call *c)
{
	if (c->request_id)
		return;
	c->request_id = a2a_metadata_id(&c->md);
	if (!c->request_id)
		c->request_id = a2a_generate_id();
}

/* The call's deadline on CLOCK_MONOTONIC, as agent_invoke takes it; 0 = none. */
static int64_t a2a_deadline_mono_ms(gpr_timespec d)
{
	if (gpr_time_cmp(d, gpr_inf_future(d.clock_type)) == 0)
		return 0;
	gpr_timespec left = gpr_time_sub(d, gpr_now(d.clock_type));
	int64_t ms = left.tv_sec * 1000 + left.tv_nsec / 1000000;
	int64_t at = time_mono_ms() + ms;
	return at ? at : 1;
}

static grpc_byte_buffer *a2a_pack(const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	grpc_slice s = grpc_slice_malloc(n);
	protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

/* The request payload as message type d; NULL when absent or not that message. Free with
 * protobuf_c_message_free_unpacked. */
static ProtobufCMessage *a2a_unpack(struct a2a_call *c, const ProtobufCMessageDescriptor *d)
{
	if (!c->request)
		return NULL;
	grpc_byte_buffer_reader r;
	if (!grpc_byte_buffer_reader_init(&r, c->request))
		return NULL;
	grpc_slice s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	ProtobufCMessage *m =
		protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	return m;
}

/* ---- metrics and the call log -------------------------------------------------------- */

static struct metric *a2a_requests_counter(enum a2a_method m, grpc_status_code code)
{
	unsigned k = (unsigned)code < A2A_NCODES ? (unsigned)code : GRPC_STATUS_UNKNOWN;
	struct metric *mt = atomic_load(&a2a.m_requests[m][k]);
	if (mt)
		return mt;
	char labels[160];
	snprintf(labels, sizeof labels, "method=\"%s\",code=\"%s\"", a2a_methods[m].name,
		 a2a_code_names[k]);
	mt = metrics_counter(a2a.metrics, "par_grpc_requests_total",
			     "gRPC calls answered on the A2A surface, by method and status code.",
			     labels);
	atomic_store(&a2a.m_requests[m][k], mt);
	return mt;
}

/* What the client saw: a call cancelled under a status we sent as OK ended CANCELLED. */
static grpc_status_code a2a_outcome(const struct a2a_call *c)
{
	return c->cancelled && c->status == GRPC_STATUS_OK ? GRPC_STATUS_CANCELLED : c->status;
}

static void a2a_log_call(const struct a2a_call *c, grpc_status_code code, double ms)
{
	const char *status = (unsigned)code < A2A_NCODES ? a2a_code_names[code] : "UNKNOWN";
	struct log_field f[8];
	size_t n = 0;
	f[n++] = LF_STR("method", a2a_methods[c->method].name);
	f[n++] = LF_STR("grpcStatus", status);
	f[n++] = LF_DBL("durationMs", ms);
	if (c->path)
		f[n++] = LF_STR("path", c->path);
	if (c->action)
		f[n++] = LF_STR("action", c->action);
	if (c->method == M_INVOKE && code == GRPC_STATUS_OK)
		f[n++] = LF_BOOL("success", c->success);
	if (c->cancelled)
		f[n++] = LF_BOOL("cancelled", true);
	enum par_log_level level = a2a_methods[c->method].level;
	if (code == GRPC_STATUS_INTERNAL && level < PAR_LOG_WARN)
		level = PAR_LOG_WARN;
	log_set_request_id(c->request_id);
	log_emit(level, "a2a.call", f, n, "%s %s %.1f ms",
		 c->path ? c->path : a2a_methods[c->method].name, status, ms);
	log_set_request_id(NULL);
}

/* ---- call contexts ------------------------------------------------------------------- */

static struct a2a_call *a2a_call_new(enum a2a_method m)
{
	struct a2a_call *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->method = m;
	c->t_new = (struct a2a_tag){TAG_NEW, c};
	c->t_done = (struct a2a_tag){TAG_DONE, c};
	c->t_send = (struct a2a_tag){TAG_SEND, c};
	c->t_close = (struct a2a_tag){TAG_CLOSE, c};
	c->last_sent = -1;
	grpc_metadata_array_init(&c->md);
	if (m == M_UNKNOWN)
		grpc_call_details_init(&c->details);
	atomic_fetch_add(&a2a.live, 1);
	return c;
}

static void a2a_call_free(struct a2a_call *c)
{
	if (c->request)
		grpc_byte_buffer_destroy(c->request);
	if (c->response)
		grpc_byte_buffer_destroy(c->response);
	if (c->has_details)
		grpc_slice_unref(c->status_details);
	grpc_metadata_array_destroy(&c->md);
	if (c->method == M_UNKNOWN)
		grpc_call_details_destroy(&c->details);
	if (c->call)
		grpc_call_unref(c->call);
	free(c->request_id);
	free(c->action);
	free(c->path);
	free(c->service);
	free(c);
	/* Last: a2a_stop tears the queue down once this reaches zero. */
	atomic_fetch_sub(&a2a.live, 1);
}

/* The call is over on the wire: count it, log it, free it. */
static void a2a_call_done(struct a2a_call *c)
{
	if (!atomic_load(&a2a.abandoned)) {
		double ms = (double)(time_mono_us() - c->start_us) / 1000.0;
		grpc_status_code code = a2a_outcome(c);
		metric_inc(a2a_requests_counter(c->method, code));
		metric_observe(a2a.m_latency[c->method], ms / 1000.0);
		if (c->counted)
			metric_add(a2a.m_in_flight, -1);
		a2a_log_call(c, code, ms);
	}
	bool counted = c->counted;
	a2a_call_free(c);
	if (counted)
		atomic_fetch_sub(&a2a.in_flight, 1);
}

/* Keeps a request posted for method m, so the next call of that kind is matched. */
static int a2a_post(enum a2a_method m)
{
	struct a2a_call *c = a2a_call_new(m);
	if (!c)
		return -1;
	grpc_call_error e;
	if (m == M_UNKNOWN)
		e = grpc_server_request_call(a2a.server, &c->call, &c->details, &c->md, a2a.cq,
					     a2a.cq, &c->t_new);
	else
		e = grpc_server_request_registered_call(a2a.server, a2a.handles[m], &c->call,
							&c->deadline, &c->md, &c->request, a2a.cq,
							a2a.cq, &c->t_new);
	if (e != GRPC_CALL_OK) {
		log_emit(PAR_LOG_ERROR, "a2a.request.failed",
			 LOG_FIELDS(LF_STR("method", a2a_methods[m].name), LF_INT("grpcError", e)),
			 "cannot post a request for %s (error %d)", a2a_methods[m].name, (int)e);
		a2a_call_free(c);
		return -1;
	}
	return 0;
}

/* Answers a unary call (or refuses a stream) in one batch: the response when the status is
 * OK, then the status. The batch's completion frees the call. */
static void a2a_finish(struct a2a_call *c, grpc_status_code code, const char *msg,
		       const ProtobufCMessage *resp)
{
	c->status = code;
	if (resp && code == GRPC_STATUS_OK)
		c->response = a2a_pack(resp);
	c->status_details = grpc_slice_from_copied_string(msg ? msg : "");
	c->has_details = true;

	grpc_op ops[4];
	memset(ops, 0, sizeof ops);
	size_t n = 0;
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (c->response) {
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = c->response;
	}
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = code;
	ops[n++].data.send_status_from_server.status_details = &c->status_details;
	grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->t_done, NULL);
	if (e != GRPC_CALL_OK) {
		log_emit(PAR_LOG_ERROR, "a2a.batch.failed",
			 LOG_FIELDS(LF_STR("method", a2a_methods[c->method].name),
				    LF_INT("grpcError", e)),
			 "cannot answer a %s call (error %d)", a2a_methods[c->method].name, (int)e);
		a2a_call_done(c);
	}
}

static void a2a_finish_invalid(struct a2a_call *c, const char *what)
{
	char msg[128];
	snprintf(msg, sizeof msg, "the request is not a valid %s message", what);
	a2a_finish(c, GRPC_STATUS_INVALID_ARGUMENT, msg, NULL);
}

/* Empty-request methods still refuse a payload that is not a protobuf message. */
static bool a2a_empty_ok(struct a2a_call *c)
{
	ProtobufCMessage *m = a2a_unpack(c, &pixell__agent__empty__descriptor);
	if (!m) {
		a2a_finish_invalid(c, "pixell.agent.Empty");
		return false;
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return true;
}

/* ---- pixell.agent.AgentService ------------------------------------------------------- */

static void a2a_health(struct a2a_call *c)
{
	if (!a2a_empty_ok(c))
		return;
	Pixell__Agent__HealthStatus r = PIXELL__AGENT__HEALTH_STATUS__INIT;
	r.ok = lc_healthy();
	r.message = (char *)lc_state_name(lc_state());
	r.timestamp = time_epoch_ms();
	a2a_finish(c, GRPC_STATUS_OK, NULL, &r.base);
}

static void a2a_ping(struct a2a_call *c)
{
	if (!a2a_empty_ok(c))
		return;
	Pixell__Agent__Pong r = PIXELL__AGENT__PONG__INIT;
	r.message = "pong";
	r.timestamp = time_epoch_ms();
	a2a_finish(c, GRPC_STATUS_OK, NULL, &r.base);
}

static void a2a_capabilities(struct a2a_call *c)
{
	if (!a2a_empty_ok(c))
		return;
	char name[160], version[160], desc[2048], runtime[64];
	lc_manifest_info(name, sizeof name, version, sizeof version, desc, sizeof desc);
	snprintf(runtime, sizeof runtime, "pard %s", PAR_VERSION);
	const char *kv[][2] = {{"name", name},
			       {"version", version},
			       {"description", desc},
			       {"agentAppId", a2a.cfg->agent_app_id},
			       {"runtime", runtime}};
	enum { NMETA = sizeof kv / sizeof kv[0] };
	Pixell__Agent__Capabilities__MetadataEntry e[NMETA];
	Pixell__Agent__Capabilities__MetadataEntry *ep[NMETA];
	for (size_t i = 0; i < NMETA; i++) {
		pixell__agent__capabilities__metadata_entry__init(&e[i]);
		e[i].key = (char *)kv[i][0];
		e[i].value = (char *)(kv[i][1] ? kv[i][1] : "");
		ep[i] = &e[i];
	}
	Pixell__Agent__Capabilities r = PIXELL__AGENT__CAPABILITIES__INIT;
	const char *const *actions = agent_actions();
	while (actions[r.n_methods])
		r.n_methods++;
	r.methods = (char **)actions;
	r.n_metadata = NMETA;
	r.metadata = ep;
	a2a_finish(c, GRPC_STATUS_OK, NULL, &r.base);
}

struct a2a_param {
	const char *key, *value;
	size_t order;
};

static int a2a_param_cmp(const void *a, const void *b)
{
	const struct a2a_param *x = a, *y = b;
	int r = strcmp(x->key, y->key);
	if (r)
		return r;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* parameters as a JSON object of strings. A key sent twice keeps its last value, as a
 * proto3 map does. NULL when out of memory. */
static char *a2a_params_json(const Pixell__Agent__ActionRequest *req)
{
	size_t n = req->n_parameters;
	struct a2a_param *p = calloc(n ? n : 1, sizeof *p);
	if (!p)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const char *k = req->parameters[i]->key, *v = req->parameters[i]->value;
		p[i] = (struct a2a_param){k ? k : "", v ? v : "", i};
	}
	qsort(p, n, sizeof *p, a2a_param_cmp);
	struct strbuf sb = STRBUF_INIT;
	sb_putc(&sb, '{');
	bool first = true;
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && strcmp(p[i].key, p[i + 1].key) == 0)
			continue;
		if (!first)
			sb_putc(&sb, ',');
		first = false;
		sb_json_str(&sb, p[i].key);
		sb_putc(&sb, ':');
		sb_json_str(&sb, p[i].value);
	}
	sb_putc(&sb, '}');
	free(p);
	if (sb.oom) {
		sb_free(&sb);
		return NULL;
	}
	return sb_steal(&sb);
}

/* An agent outcome as a gRPC answer: agent errors in-band, runtime faults as statuses, and
 * any failure once the deadline has run out as DEADLINE_EXCEEDED. */
static void a2a_answer_invoke(struct a2a_call *c, const struct agent_result *res,
			      int64_t deadline)
{
	const char *err = res->error ? res->error : "";
	grpc_status_code code = GRPC_STATUS_OK;
	enum agent_status st = res->status;
	if (st != AGENT_OK && deadline && time_mono_ms() >= deadline - A2A_DEADLINE_SLACK_MS)
		st = AGENT_ERR_DEADLINE;
	switch (st) {
	case AGENT_OK:
	case AGENT_ERR_ACTION:
	case AGENT_ERR_UNKNOWN_ACTION:
		break;
	case AGENT_ERR_DEADLINE:
		code = GRPC_STATUS_DEADLINE_EXCEEDED;
		break;
	case AGENT_ERR_UNAVAILABLE:
		code = GRPC_STATUS_UNAVAILABLE;
		break;
	default:
		code = GRPC_STATUS_INTERNAL;
		break;
	}
	if (code != GRPC_STATUS_OK) {
		a2a_finish(c, code, *err ? err : a2a_code_names[code], NULL);
		return;
	}
	Pixell__Agent__ActionResult r = PIXELL__AGENT__ACTION_RESULT__INIT;
	c->success = res->status == AGENT_OK;
	r.success = c->success;
	r.result = c->success ? (res->result_json ? res->result_json : "null") : "";
	r.error = c->success ? "" : (char *)err;
	r.request_id = c->request_id;
	r.duration_ms = (time_mono_us() - c->start_us) / 1000;
	a2a_finish(c, GRPC_STATUS_OK, NULL, &r.base);
}

static void a2a_invoke(struct a2a_call *c)
{
	Pixell__Agent__ActionRequest *req = (Pixell__Agent__ActionRequest *)a2a_unpack(
		c, &pixell__agent__action_request__descriptor);
	if (!req) {
		a2a_assign_id(c);
		a2a_finish_invalid(c, "pixell.agent.ActionRequest");
		return;
	}
	c->request_id = req->request_id && *req->request_id ? strdup(req->request_id) : NULL;
	a2a_assign_id(c);
	c->action = strndup(req->action ? req->action : "", A2A_PATH_MAX);
	char *params = a2a_params_json(req);
	int64_t deadline = a2a_deadline_mono_ms(c->deadline);
	if (!params || !c->request_id) {
		a2a_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
	} else if (deadline && deadline <= time_mono_ms()) {
		/* It waited in the queue past its deadline: the agent is not worth calling. */
		a2a_finish(c, GRPC_STATUS_DEADLINE_EXCEEDED,
			   "deadline exceeded before a handler was free", NULL);
	} else {
		struct agent_result res;
		log_set_request_id(c->request_id);
		agent_invoke(req->action, params, c->request_id, deadline, &res);
		log_set_request_id(NULL);
		/* A stop gave up on this call: the queue may be gone, so touch nothing of it. */
		if (!atomic_load(&a2a.abandoned))
			a2a_answer_invoke(c, &res, deadline);
		agent_result_free(&res);
	}
	free(params);
	protobuf_c_message_free_unpacked(&req->base, NULL);
}

/* ---- grpc.health.v1.Health ----------------------------------------------------------- */

static bool a2a_known_service(const char *service)
{
	return !service || !*service || strcmp(service, "pixell.agent.AgentService") == 0;
}

static int a2a_serving_status(const char *service, bool healthy)
{
	if (!a2a_known_service(service))
		return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
	return healthy ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
		       : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

/* The service a health request names (malloc'd), or NULL once the call has been answered
 * with the reason it could not be read. Check and Watch share it. */
static char *a2a_health_service(struct a2a_call *c)
{
	Grpc__Health__V1__HealthCheckRequest *req =
		(Grpc__Health__V1__HealthCheckRequest *)a2a_unpack(
			c, &grpc__health__v1__health_check_request__descriptor);
	if (!req) {
		a2a_finish_invalid(c, "grpc.health.v1.HealthCheckRequest");
		return NULL;
	}
	char *service = strdup(req->service ? req->service : "");
	protobuf_c_message_free_unpacked(&req->base, NULL);
	if (!service)
		a2a_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
	return service;
}

static void a2a_check(struct a2a_call *c)
{
	char *service = a2a_health_service(c);
	if (!service)
		return;
	if (!a2a_known_service(service)) {
		char msg[A2A_PATH_MAX + 32];
		snprintf(msg, sizeof msg, "unknown service: %.*s", A2A_PATH_MAX, service);
		a2a_finish(c, GRPC_STATUS_NOT_FOUND, msg, NULL);
	} else {
		Grpc__Health__V1__HealthCheckResponse r =
			GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
		r.status = a2a_serving_status(service, lc_healthy());
		a2a_finish(c, GRPC_STATUS_OK, NULL, &r.base);
	}
	free(service);
}

/* Watch streams. Every batch is started under watches.mu: gRPC wants the send batches of
 * one call serialised, and a stream may be pushed from a CQ thread, a handler thread and
 * whichever thread changed the lifecycle. */

static void a2a_watch_send(struct a2a_call *c, int status)
{
	Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	r.status = status;
	c->response = a2a_pack(&r.base);
	grpc_op ops[2];
	memset(ops, 0, sizeof ops);
	size_t n = 0;
	if (!c->sent_initial)
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n++].data.send_message.send_message = c->response;
	if (grpc_call_start_batch(c->call, ops, n, &c->t_send, NULL) != GRPC_CALL_OK) {
		grpc_byte_buffer_destroy(c->response);
		c->response = NULL;
		c->broken = true;
		return;
	}
	c->sent_initial = true;
	c->send_in_flight = true;
	c->last_sent = status;
	c->pending++;
}

static void a2a_watch_end(struct a2a_call *c)
{
	c->status = GRPC_STATUS_UNAVAILABLE;
	c->status_details = grpc_slice_from_static_string("server shutting down");
	c->has_details = true;
	grpc_op ops[2];
	memset(ops, 0, sizeof ops);
	size_t n = 0;
	if (!c->sent_initial)
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = c->status;
	ops[n++].data.send_status_from_server.status_details = &c->status_details;
	c->finish_sent = true;
	if (grpc_call_start_batch(c->call, ops, n, &c->t_done, NULL) != GRPC_CALL_OK) {
		c->broken = true;
		return;
	}
	c->sent_initial = true;
	c->pending++;
}

/* Caller holds watches.mu. Sends the status when it changed, or the final status when the
 * stream must end; never two sends at once (the send's completion pushes again). */
static void a2a_watch_push(struct a2a_call *c, bool healthy)
{
	if (c->broken || c->finish_sent || c->send_in_flight)
		return;
	int status = a2a_serving_status(c->service, healthy);
	if (status != c->last_sent)
		a2a_watch_send(c, status);
	else if (c->finish_wanted)
		a2a_watch_end(c);
}

static void a2a_watch_push_all(void)
{
	bool healthy = lc_healthy();
	pthread_mutex_lock(&watches.mu);
	if (watches.open)
		for (struct a2a_call *w = watches.head; w; w = w->next)
			a2a_watch_push(w, healthy);
	pthread_mutex_unlock(&watches.mu);
}

/* lc_on_change: any thread, outside the lifecycle lock. */
static void a2a_on_lc_change(void *ctx)
{
	(void)ctx;
	a2a_watch_push_all();
}

static void a2a_watch_unlink(struct a2a_call *c)
{
	for (struct a2a_call **p = &watches.head; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			watches.count--;
			metric_add(a2a.m_watches, -1);
			return;
		}
}

static void a2a_watch_begin(struct a2a_call *c)
{
	c->service = a2a_health_service(c);
	if (!c->service)
		return;
	bool healthy = lc_healthy();
	pthread_mutex_lock(&watches.mu);
	grpc_op op;
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->cancelled;
	c->streaming = true;
	if (grpc_call_start_batch(c->call, &op, 1, &c->t_close, NULL) != GRPC_CALL_OK) {
		c->streaming = false;
		pthread_mutex_unlock(&watches.mu);
		a2a_finish(c, GRPC_STATUS_INTERNAL, "cannot start the stream", NULL);
		return;
	}
	c->pending = 1;
	c->next = watches.head;
	watches.head = c;
	watches.count++;
	metric_add(a2a.m_watches, 1);
	/* A stream that arrives as the server stops gets its status, then its end. */
	c->finish_wanted = watches.closing;
	a2a_watch_push(c, healthy);
	pthread_mutex_unlock(&watches.mu);
}

/* A completion of one of the stream's batches; the last one frees it. */
static void a2a_watch_event(struct a2a_call *c, enum a2a_tag_kind kind, bool ok)
{
	bool healthy = kind == TAG_SEND && ok ? lc_healthy() : false;
	pthread_mutex_lock(&watches.mu);
	c->pending--;
	if (kind == TAG_SEND) {
		c->send_in_flight = false;
		grpc_byte_buffer_destroy(c->response);
		c->response = NULL;
		if (!ok)
			c->broken = true;
		else
			a2a_watch_push(c, healthy);
	} else if (kind == TAG_CLOSE) {
		/* The client went away, or the status went out: nothing more can be sent. */
		c->broken = true;
		a2a_watch_unlink(c);
	}
	bool last = c->pending == 0;
	pthread_mutex_unlock(&watches.mu);
	if (last)
		a2a_call_done(c);
}

/* Ends every stream (after the status it has not seen yet): the server's shutdown waits
 * for open calls, and a Watch never ends on its own. */
static void a2a_watch_close_all(void)
{
	bool healthy = lc_healthy();
	pthread_mutex_lock(&watches.mu);
	watches.closing = true;
	for (struct a2a_call *w = watches.head; w; w = w->next) {
		w->finish_wanted = true;
		a2a_watch_push(w, healthy);
	}
	pthread_mutex_unlock(&watches.mu);
}

/* Handler threads re-read health now and then, for changes the lifecycle cannot announce
 * (the agent's own health probe). One thread does it per period. */
static void a2a_watch_maybe_refresh(void)
{
	long long now = time_mono_ms();
	long long next = atomic_load(&a2a.next_refresh_ms);
	long long then = now + A2A_WATCH_REFRESH_MS;
	if (now < next || !atomic_compare_exchange_strong(&a2a.next_refresh_ms, &next, then))
		return;
	pthread_mutex_lock(&watches.mu);
	bool any = watches.count > 0;
	pthread_mutex_unlock(&watches.mu);
	if (any)
		a2a_watch_push_all();
}

/* ---- the handler pool ---------------------------------------------------------------- */

/* Runtime faults (SPEC §8.3) before the agent runs: hang, a2a.latency (never past the call's
 * deadline, which the handler then reports), a2a.error as a gRPC status. The health service
 * and Ping run on the CQ threads and never see these: they keep telling the truth. true when
 * the call needs nothing more from the handler. */
static bool a2a_inject_faults(struct a2a_call *c)
{
	rtfault_hang_point();
	rtfault_a2a_delay(a2a_deadline_mono_ms(c->deadline));
	/* A stop that gave up on this call while it was held: touch nothing of it. */
	if (atomic_load(&a2a.abandoned))
		return true;
	int code = rtfault_a2a_error_code();
	if (!code)
		return false;
	char msg[96];
	snprintf(msg, sizeof msg, "injected fault a2a.error (%s)", rtfault_grpc_code_name(code));
	a2a_assign_id(c);
	a2a_finish(c, (grpc_status_code)code, msg, NULL);
	return true;
}

static void a2a_handle_pooled(struct a2a_call *c)
{
	if (a2a_inject_faults(c))
		return;
	if (c->method == M_INVOKE)
		a2a_invoke(c);
	else
		a2a_capabilities(c);
}

static void *a2a_handler_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&pool.mu);
	for (;;) {
		while (!pool.head && !pool.stop) {
			struct timespec ts = a2a_abs_mono(time_mono_ms() + A2A_WATCH_REFRESH_MS);
			if (pthread_cond_timedwait(&pool.cond, &pool.mu, &ts) == ETIMEDOUT) {
				pthread_mutex_unlock(&pool.mu);
				a2a_watch_maybe_refresh();
				pthread_mutex_lock(&pool.mu);
			}
		}
		if (!pool.head)
			break;
		struct a2a_call *c = pool.head;
		pool.head = c->next;
		if (!pool.head)
			pool.tail = NULL;
		pool.queued--;
		pthread_mutex_unlock(&pool.mu);
		c->next = NULL;
		a2a_handle_pooled(c);
		pthread_mutex_lock(&pool.mu);
	}
	pthread_mutex_unlock(&pool.mu);
	return NULL;
}

static void a2a_enqueue(struct a2a_call *c)
{
	pthread_mutex_lock(&pool.mu);
	bool full = pool.queued >= A2A_QUEUE_MAX;
	if (!full) {
		c->next = NULL;
		if (pool.tail)
			pool.tail->next = c;
		else
			pool.head = c;
		pool.tail = c;
		pool.queued++;
		pthread_cond_signal(&pool.cond);
	}
	pthread_mutex_unlock(&pool.mu);
	if (full)
		a2a_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED,
			   "too many calls waiting for a handler", NULL);
}


/* Starts n threads running fn; *started counts those that did (what stop must join). */
static int a2a_threads_start(pthread_t *threads, int n, int *started, void *(*fn)(void *),
			     const char *what)
{
	for (int i = 0; i < n; i++) {
		int e = pthread_create(&threads[i], NULL, fn, NULL);
		if (e) {
			log_emit(PAR_LOG_ERROR, "a2a.thread.failed", LOG_NOFIELDS,
				 "cannot start an A2A %s thread: %s", what, strerror(e));
			return -1;
		}
		(*started)++;
	}
	return 0;
}

static int a2a_pool_start(void)
{
	time_cond_init_mono(&pool.cond);
	pool.stop = false;
	return a2a_threads_start(pool.threads, A2A_HANDLERS, &pool.nthreads, a2a_handler_main,
				 "handler");
}

static void a2a_pool_stop(void)
{
	pthread_mutex_lock(&pool.mu);
	pool.stop = true;
	pthread_cond_broadcast(&pool.cond);
	pthread_mutex_unlock(&pool.mu);
	for (int i = 0; i < pool.nthreads; i++)
		pthread_join(pool.threads[i], NULL);
	pool.nthreads = 0;
	pthread_cond_destroy(&pool.cond);
}

/* ---- the completion queue ------------------------------------------------------------ */

static void a2a_on_unknown(struct a2a_call *c)
{
	size_t n = GRPC_SLICE_LENGTH(c->details.method);
	c->path = strndup((const char *)GRPC_SLICE_START_PTR(c->details.method),
			  n < A2A_PATH_MAX ? n : A2A_PATH_MAX);
	char msg[A2A_PATH_MAX + 32];
	snprintf(msg, sizeof msg, "unknown method %s", c->path ? c->path : "");
	a2a_finish(c, GRPC_STATUS_UNIMPLEMENTED, msg, NULL);
}

/* A new call matched a posted request. Runs on a CQ thread: nothing here may block. */
static void a2a_on_new(struct a2a_call *c, bool ok)
{
	if (!ok) {   /* a posted request the shutdown cancelled */
		a2a_call_free(c);
		return;
	}
	if (!atomic_load(&a2a.stopping))
		a2a_post(c->method);
	c->start_us = time_mono_us();
	if (c->method != M_WATCH) {
		c->counted = true;
		atomic_fetch_add(&a2a.in_flight, 1);
		metric_add(a2a.m_in_flight, 1);
	}
	if (c->method != M_INVOKE)
		a2a_assign_id(c);
	if (a2a_methods[c->method].pooled) {
		a2a_enqueue(c);
		return;
	}
	switch (c->method) {
	case M_HEALTH: a2a_health(c); break;
	case M_PING: a2a_ping(c); break;
	case M_CHECK: a2a_check(c); break;
	case M_WATCH: a2a_watch_begin(c); break;
	default: a2a_on_unknown(c); break;
	}
}

static void a2a_on_event(struct a2a_tag *t, bool ok)
{
	struct a2a_call *c = t->call;
	switch (t->kind) {
	case TAG_SHUTDOWN:
		pthread_mutex_lock(&a2a.mu);
		a2a.shutdown_done = true;
		pthread_cond_broadcast(&a2a.cond);
		pthread_mutex_unlock(&a2a.mu);
		break;
	case TAG_NEW:
		a2a_on_new(c, ok);
		break;
	case TAG_DONE:
		if (c->streaming)
			a2a_watch_event(c, TAG_DONE, ok);
		else
			a2a_call_done(c);
		break;
	case TAG_SEND:
	case TAG_CLOSE:
		a2a_watch_event(c, t->kind, ok);
		break;
	}
}

static void *a2a_cq_main(void *arg)
{
	(void)arg;
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(
			a2a.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE)
			a2a_on_event(ev.tag, ev.success != 0);
	}
	return NULL;
}

static int a2a_cq_threads_start(void)
{
	return a2a_threads_start(a2a.cq_threads, A2A_CQ_THREADS, &a2a.n_cq_threads, a2a_cq_main,
				 "queue");
}

/* Shuts the queue down, lets the threads drain it to GRPC_QUEUE_SHUTDOWN, and frees it. */
static void a2a_cq_stop(void)
{
	grpc_completion_queue_shutdown(a2a.cq);
	if (!a2a.n_cq_threads)   /* a start that failed before its threads ran */
		while (grpc_completion_queue_next(a2a.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
			       .type != GRPC_QUEUE_SHUTDOWN)
			;
	for (int i = 0; i < a2a.n_cq_threads; i++)
		pthread_join(a2a.cq_threads[i], NULL);
	a2a.n_cq_threads = 0;
	grpc_completion_queue_destroy(a2a.cq);
	a2a.cq = NULL;
}

/* ---- start and stop ------------------------------------------------------------------ */

static void a2a_metrics_init(struct metrics *m)
{
	a2a.metrics = m;
	a2a.m_in_flight = metrics_gauge(m, "par_grpc_in_flight",
					"Unary gRPC calls being served on the A2A surface.", NULL);
	a2a.m_watches = metrics_gauge(m, "par_grpc_watch_streams",
				      "Open grpc.health.v1.Health/Watch streams.", NULL);
	for (int i = 0; i < M_COUNT; i++) {
		char labels[96];
		snprintf(labels, sizeof labels, "method=\"%s\"", a2a_methods[i].name);
		a2a.m_latency[i] = metrics_histogram(
			m, "par_grpc_request_duration_seconds",
			"gRPC call latency on the A2A surface, by method.", labels,
			metrics_latency_buckets, metrics_latency_nbuckets);
	}
}

/* gRPC reports a failed bind as 0 with no reason: bind the port ourselves to say why. */
static void a2a_bind_error(uint16_t port, char *err, size_t errlen)
{
	char why[200];
	int fd = listen_tcp(port, why, sizeof why);
	if (fd >= 0) {
		close(fd);
		snprintf(why, sizeof why, "bind port %u: refused by the gRPC server", port);
	}
	snprintf(err, errlen, "A2A_PORT %u: %s", port, why);
}

static int a2a_bind(uint16_t port, char *err, size_t errlen)
{
	grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
	char addr[32];
	snprintf(addr, sizeof addr, "[::]:%u", port);
	int bound = grpc_server_add_http2_port(a2a.server, addr, creds);
	if (!bound) {   /* a host without IPv6 */
		snprintf(addr, sizeof addr, "0.0.0.0:%u", port);
		bound = grpc_server_add_http2_port(a2a.server, addr, creds);
	}
	grpc_server_credentials_release(creds);
	if (!bound) {
		a2a_bind_error(port, err, errlen);
		return -1;
	}
	return 0;
}

static int a2a_server_create(char *err, size_t errlen)
{
	grpc_arg args[2] = {
		/* Two processes silently sharing a port is SPEC §12.14. */
		{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
		{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
		 .value.integer = A2A_MAX_MESSAGE},
	};
	grpc_channel_args ca = {.num_args = 2, .args = args};
	a2a.server = grpc_server_create(&ca, NULL);
	if (!a2a.server) {
		snprintf(err, errlen, "cannot create the gRPC server");
		return -1;
	}
	for (int m = 0; m < M_REGISTERED; m++) {
		a2a.handles[m] = grpc_server_register_method(
			a2a.server, a2a_methods[m].path, NULL,
			GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
		if (!a2a.handles[m]) {
			snprintf(err, errlen, "cannot register %s", a2a_methods[m].path);
			return -1;
		}
	}
	a2a.cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(a2a.server, a2a.cq, NULL);
	return 0;
}

/* Undoes a start that failed before the server started (nothing bound, no call exists). */
static void a2a_unwind(void)
{
	if (a2a.server)
		grpc_server_destroy(a2a.server);
	a2a.server = NULL;
	if (a2a.cq)
		a2a_cq_stop();
	a2a_pool_stop();
	grpc_shutdown();
}

static void a2a_post_all(void)
{
	for (int m = 0; m < M_COUNT; m++)
		for (int i = 0; i < A2A_PREPOST; i++)
			a2a_post((enum a2a_method)m);
}

int a2a_start(const struct par_config *cfg, struct metrics *m, char *err, size_t errlen)
{
	int rc = -1;
	err[0] = '\0';
	pthread_mutex_lock(&a2a.life_mu);
	if (a2a.closed) {
		snprintf(err, errlen, "the runtime is shutting down");
		goto out;
	}
	rc = 0;
	if (a2a.running)
		goto out;
	rc = -1;
	a2a.cfg = cfg;
	a2a_metrics_init(m);
	time_cond_init_mono(&a2a.cond);

	grpc_init();
	/* Threads before the bind: once a port is bound the server must go through a full
	 * shutdown, which a failed thread start would complicate for nothing. */
	if (a2a_pool_start() < 0 || a2a_server_create(err, errlen) < 0 ||
	    a2a_cq_threads_start() < 0 || a2a_bind(cfg->a2a_port, err, errlen) < 0) {
		if (!err[0])
			snprintf(err, errlen, "cannot start the A2A server threads");
		a2a_unwind();
		pthread_cond_destroy(&a2a.cond);
		goto out;
	}
	grpc_server_start(a2a.server);
	a2a_post_all();
	pthread_mutex_lock(&watches.mu);
	watches.open = true;
	pthread_mutex_unlock(&watches.mu);
	if (!a2a_listener_registered) {
		lc_on_change(a2a_on_lc_change, NULL);
		a2a_listener_registered = true;
	}
	a2a.running = true;
	atomic_store(&a2a.serving, true);
	rc = 0;
	log_emit(PAR_LOG_INFO, "a2a.listening",
		 LOG_FIELDS(LF_UINT("port", cfg->a2a_port), LF_INT("handlers", A2A_HANDLERS)),
		 "A2A (gRPC) listening on port %u", cfg->a2a_port);
out:
	pthread_mutex_unlock(&a2a.life_mu);
	return rc;
}

void a2a_begin_drain(void)
{
	/* The state change already told the streams; this covers a caller that drains first. */
	a2a_watch_push_all();
}

/* Caller holds life_mu and the server runs. */
static void a2a_stop_accepting_locked(void)
{
	if (a2a.shutdown_started)
		return;
	atomic_store(&a2a.serving, false);
	atomic_store(&a2a.stopping, true);
	a2a.shutdown_started = true;
	grpc_server_shutdown_and_notify(a2a.server, a2a.cq, &a2a_shutdown_tag);
	a2a_watch_close_all();
	log_emit(PAR_LOG_INFO, "a2a.listener.closed",
		 LOG_FIELDS(LF_UINT("inFlight", a2a_in_flight())),
		 "A2A listener closed; new calls are refused (GOAWAY)");
}

void a2a_stop_accepting(void)
{
	pthread_mutex_lock(&a2a.life_mu);
	if (a2a.running)
		a2a_stop_accepting_locked();
	pthread_mutex_unlock(&a2a.life_mu);
}

unsigned a2a_in_flight(void)
{
	return atomic_load(&a2a.in_flight);
}

bool a2a_serving(void)
{
	/* Not life_mu: a2a_stop holds it through the whole grace period. */
	return atomic_load(&a2a.serving) && lc_healthy();
}

/* true when the shutdown tag arrived by deadline_mono_ms. */
static bool a2a_wait_shutdown(int64_t deadline_mono_ms)
{
	struct timespec ts = a2a_abs_mono(deadline_mono_ms);
	pthread_mutex_lock(&a2a.mu);
	while (!a2a.shutdown_done &&
	       pthread_cond_timedwait(&a2a.cond, &a2a.mu, &ts) != ETIMEDOUT)
		;
	bool done = a2a.shutdown_done;
	pthread_mutex_unlock(&a2a.mu);
	return done;
}

/* true when every call context was freed by deadline_mono_ms. */
static bool a2a_wait_released(int64_t deadline_mono_ms)
{
	while (atomic_load(&a2a.live) > 0) {
		if (time_mono_ms() >= deadline_mono_ms)
			return false;
		a2a_sleep_ms(5);
	}
	return true;
}

/* Every call is released: nothing can start a batch any more, so the queue may go. */
static void a2a_teardown(void)
{
	pthread_mutex_lock(&watches.mu);
	watches.open = false;
	pthread_mutex_unlock(&watches.mu);
	grpc_server_destroy(a2a.server);
	a2a.server = NULL;
	a2a_cq_stop();
	a2a_pool_stop();
	pthread_cond_destroy(&a2a.cond);
	grpc_shutdown();
}

void a2a_stop(int64_t deadline_mono_ms)
{
	pthread_mutex_lock(&a2a.life_mu);
	a2a.closed = true;
	if (!a2a.running)
		goto out;
	a2a.running = false;
	a2a_stop_accepting_locked();
	unsigned left = 0;
	if (!a2a_wait_shutdown(deadline_mono_ms)) {
		left = a2a_in_flight();
		log_emit(PAR_LOG_WARN, "a2a.cancel", LOG_FIELDS(LF_UINT("inFlight", left)),
			 "grace period over: cancelling %u gRPC call(s)", left);
		grpc_server_cancel_all_calls(a2a.server);
	}
	/* Handlers inside agent code return when the agent does; their batches then fail
	 * harmlessly on the cancelled call. Only after the last release may the queue go. */
	int64_t stuck = time_mono_ms() + A2A_STUCK_WAIT_MS;
	if (!a2a_wait_shutdown(stuck) || !a2a_wait_released(stuck)) {
		atomic_store(&a2a.abandoned, true);
		log_emit(PAR_LOG_WARN, "a2a.stop.abandoned",
			 LOG_FIELDS(LF_UINT("calls", atomic_load(&a2a.live)),
				    LF_UINT("inFlight", a2a_in_flight())),
			 "%u gRPC call(s) still inside agent code after the cancel: leaving the "
			 "gRPC server to the process exit",
			 a2a_in_flight());
		goto out;
	}
	a2a_teardown();
	log_emit(PAR_LOG_INFO, "a2a.stopped", LOG_FIELDS(LF_UINT("cancelled", left)),
		 "A2A server stopped");
out:
	pthread_mutex_unlock(&a2a.life_mu);
}
