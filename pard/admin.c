/* The admin socket server (SPEC §8): socket setup and fallbacks, peer checks, one thread per
 * client (capped), the verbs, and the monitor stream fed by the log observer. */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "a2a.h"
#include "agent.h"
#include "boot.h"
#include "daemon.h"
#include "isolation.h"
#include "lifecycle.h"
#include "package.h"
#include "par/admin.h"
#include "par/faults.h"
#include "par/fsutil.h"
#include "par/log.h"
#include "par/strbuf.h"
#include "par/timeutil.h"
#include "rest.h"
#include "rtfaults.h"

/* Per socket: the read-only socket is world-connectable, so its cap keeps a local user
 * from using up the operators' slots on the main one. */
#define ADMIN_MAX_CLIENTS 128
#define ADMIN_MAX_RO_CLIENTS 64
#define ADMIN_WRITE_TIMEOUT_MS 5000
/* A request line begun and not finished for this long closes the connection; an idle
 * connection (nothing pending) may stay open. */
#define ADMIN_PARTIAL_TIMEOUT_MS 30000
#define ADMIN_DENY_WAIT_MS 2000
#define ADMIN_MONITOR_QUEUE 1024
#define ADMIN_THREAD_STACK (512 * 1024)
/* What a drain can take beyond its delay, grace and worker stop: signal delivery, log
 * flush, process exit. */
#define ADMIN_STOP_MARGIN_SEC 2
/* Common stop timeouts: ECS stopTimeout (default 30 s, at most 120 s on Fargate) and
 * Kubernetes terminationGracePeriodSeconds (default 30 s). */
#define ECS_STOP_TIMEOUT_DEFAULT 30
#define ECS_STOP_TIMEOUT_MAX 120
#define K8S_GRACE_DEFAULT 30

struct admin_sock {
	int fd;                  /* -1 when not served */
	char *path;
	bool ro;
	unsigned nclients;       /* under adm.mu */
	dev_t dev;               /* what we bound, so exit unlinks only our own socket */
	ino_t ino;
};

struct admin_client {
	int fd;
	struct admin_sock *sock;
	struct ucred cred;
	const cJSON *req_id;     /* of the request being answered */
	bool denied;             /* the peer check failed: the first request gets "denied" */
	pthread_t thread;
	atomic_bool finished;
	struct admin_client *next;
};

static struct {
	bool running;
	const struct par_config *cfg;
	struct metrics *metrics;
	int64_t start_ms;
	struct admin_sock main, ro;
	bool group_set;
	gid_t group_gid;
	int stop_pipe[2];        /* readable once stopping: every poll includes it */
	pthread_t acceptor;
	pthread_mutex_t mu;      /* clients and the sockets' counts */
	struct admin_client *clients;
	struct metric *m_clients;
	struct metric *m_requests_ok, *m_requests_err;
} adm = {.main = {.fd = -1}, .ro = {.fd = -1, .ro = true}, .stop_pipe = {-1, -1},
	 .mu = PTHREAD_MUTEX_INITIALIZER};

/* ---- the monitor hub: the log observer feeds every subscribed stream ------------------ */

struct admin_sub {
	int wake[2];
	char *q[ADMIN_MONITOR_QUEUE];
	size_t head, n;
	unsigned dropped;
	struct admin_sub *next;
};

static struct {
	pthread_mutex_t mu;
	struct admin_sub *subs;
} hub = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* monitor streams state changes, boot phases, faults, drains, worker and process events,
 * and every warning or error; request-level lines (rest.request, …) are left out. */
static const char *const monitor_prefixes[] = {
	"lifecycle.", "boot.", "surface.", "drain.", "fault.", "worker.", "process.", "signal.",
	"admin.", "log.", NULL};

static bool monitor_wants(const char *line)
{
	const char *lv = strstr(line, "\"level\":\"");
	const char *ev = strstr(line, "\"event\":\"");
	if (lv && (strncmp(lv + 9, "warn\"", 5) == 0 || strncmp(lv + 9, "error\"", 6) == 0))
		return true;
	if (!ev)
		return false;
	ev += 9;
	for (const char *const *p = monitor_prefixes; *p; p++)
		if (strncmp(ev, *p, strlen(*p)) == 0)
			return true;
	return false;
}

/* The log observer: called outside the log lock, one call at a time. Never logs. */
static void admin_observe(const char *line, size_t len, void *ctx)
{
	(void)ctx;
	pthread_mutex_lock(&hub.mu);
	if (!hub.subs || !monitor_wants(line)) {
		pthread_mutex_unlock(&hub.mu);
		return;
	}
	for (struct admin_sub *s = hub.subs; s; s = s->next) {
		char *copy = s->n < ADMIN_MONITOR_QUEUE ? strndup(line, len) : NULL;
		if (!copy) {
			s->dropped++;
		} else {
			s->q[(s->head + s->n) % ADMIN_MONITOR_QUEUE] = copy;
			s->n++;
		}
		/* Non-blocking: a full pipe already means "wake up". */
		ssize_t w = write(s->wake[1], "x", 1);
		(void)w;
	}
	pthread_mutex_unlock(&hub.mu);
}

static struct admin_sub *hub_subscribe(void)
{
	struct admin_sub *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		free(s);
		return NULL;
	}
	pthread_mutex_lock(&hub.mu);
	s->next = hub.subs;
	hub.subs = s;
	pthread_mutex_unlock(&hub.mu);
	return s;
}

static void hub_unsubscribe(struct admin_sub *s)
{
	pthread_mutex_lock(&hub.mu);
	for (struct admin_sub **pp = &hub.subs; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	pthread_mutex_unlock(&hub.mu);
	for (size_t i = 0; i < s->n; i++)
		free(s->q[(s->head + i) % ADMIN_MONITOR_QUEUE]);
	close(s->wake[0]);
	close(s->wake[1]);
	free(s);
}

/* ---- socket I/O ---------------------------------------------------------------------- */

static bool admin_stopping(void)
{
	struct pollfd p = {.fd = adm.stop_pipe[0], .events = POLLIN};
	return poll(&p, 1, 0) > 0;
}

/* Writes all of text (then frees it), waiting at most ADMIN_WRITE_TIMEOUT_MS for a client
 * that does not read. 0 ok, -1 when the client is gone or stuck. */
static int admin_send(struct admin_client *c, char *text)
{
	if (!text)
		return -1;
	size_t len = strlen(text), off = 0;
	int64_t deadline = time_mono_ms() + ADMIN_WRITE_TIMEOUT_MS;
	int rc = 0;
	while (off < len) {
		ssize_t w = send(c->fd, text + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		int64_t left = deadline - time_mono_ms();
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && left > 0) {
			struct pollfd p = {.fd = c->fd, .events = POLLOUT};
			poll(&p, 1, (int)left);
			continue;
		}
		rc = -1;
		break;
	}
	free(text);
	return rc;
}

/* ---- access ------------------------------------------------------------------------- */

/* PAR_ADMIN_GROUP through the peer's gid or its user's supplementary groups. */
static bool admin_peer_in_group(const struct ucred *uc)
{
	if (!adm.group_set)
		return false;
	if (uc->gid == adm.group_gid)
		return true;
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (getpwuid_r(uc->uid, &pw, buf, sizeof buf, &res) != 0 || !res)
		return false;
	int n = 64;
	gid_t *groups = NULL;
	bool found = false;
	for (int tries = 0; tries < 4; tries++) {
		gid_t *g = realloc(groups, (size_t)n * sizeof(gid_t));
		if (!g)
			break;
		groups = g;
		int want = n;
		if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &want) >= 0) {
			for (int i = 0; i < want; i++)
				if (groups[i] == adm.group_gid)
					found = true;
			break;
		}
		n = want > n ? want : n * 2;
	}
	free(groups);
	return found;
}

static bool admin_peer_allowed(const struct ucred *uc)
{
	return uc->uid == 0 || uc->uid == geteuid() || admin_peer_in_group(uc);
}

/* ---- replies ------------------------------------------------------------------------ */

struct admin_reply {
	cJSON *result;
	const char *code;        /* NULL: ok */
	char msg[768];
};

static int reply_err(struct admin_reply *r, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int reply_err(struct admin_reply *r, const char *code, const char *fmt, ...)
{
	va_list ap;
	r->code = code;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof r->msg, fmt, ap);
	va_end(ap);
	return -1;
}

/* A JSON text from one of the *_json writers, as a cJSON value (JSON null when absent). */
static cJSON *json_from_sb(struct strbuf *sb)
{
	cJSON *v = !sb->oom && sb->buf ? cJSON_ParseWithLength(sb->buf, sb->len) : NULL;
	sb_free(sb);
	return v ? v : cJSON_CreateNull();
}

static cJSON *obj_take(cJSON *o, const char *key)
{
	return cJSON_DetachItemFromObjectCaseSensitive(o, key);
}

static void add_str_or_null(cJSON *o, const char *key, const char *v)
{
	if (v && *v)
		cJSON_AddStringToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

/* ---- argument helpers ------------------------------------------------------------------ */

/* Refuses argument keys the verb does not take, naming the ones it does. */
static int args_only(const char *cmd, const cJSON *args, const char *const *allowed,
		     struct admin_reply *r)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, args) {
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (strcmp(*a, it->string) == 0)
				ok = true;
		if (ok)
			continue;
		char names[128] = "";
		for (const char *const *a = allowed; *a; a++)
			snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
				 a == allowed ? "" : ", ", *a);
		return reply_err(r, ADMIN_E_ARGS, "%s takes no argument \"%.64s\"%s%s%s", cmd,
				 it->string, *allowed ? " (it takes: " : "", names,
				 *allowed ? ")" : "");
	}
	return 0;
}

/* args[key] as a string: absent → *out NULL; numbers are accepted and printed. */
static int arg_string(const cJSON *args, const char *key, char *buf, size_t n,
		      const char **out, struct admin_reply *r)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsString(v)) {
		*out = v->valuestring;
		return 0;
	}
	if (cJSON_IsNumber(v)) {
		/* A number too long for buf is refused, never passed on cut short. */
		if (snprintf(buf, n, "%.15g", v->valuedouble) >= (int)n)
			return reply_err(r, ADMIN_E_ARGS, "\"%s\" is too long", key);
		*out = buf;
		return 0;
	}
	return reply_err(r, ADMIN_E_ARGS, "\"%s\" must be a string", key);
}

/* ---- status pieces ------------------------------------------------------------------ */

static bool fault_active(const char *name)
{
	cJSON *a = rtfaults_active_json(), *it;
	bool found = false;
	cJSON_ArrayForEach(it, a) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
		if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
			found = true;
	}
	cJSON_Delete(a);
	return found;
}

/* Why /health is not 200 now, in one sentence; NULL when it is. */
static const char *why_not_ready(char *buf, size_t n)
{
	static const char *const surf_ids[SURFACE_COUNT] = {"rest", "a2a", "ui", "agent"};
	enum lc_state st = lc_state();
	struct daemon_drain_info di;
	switch (st) {
	case LC_BOOTING:
		snprintf(buf, n, "booting: phase %s", lc_phase_name(lc_phase()));
		return buf;
	case LC_DRAINING:
		daemon_drain_info(&di);
		snprintf(buf, n, "draining (%s%s%s)", di.source ? di.source : "signal",
			 di.no_exit ? ", no exit" : "", di.step && strcmp(di.step, "held") == 0
			 ? ", held until undrain" : "");
		return buf;
	case LC_STOPPED:
		snprintf(buf, n, "stopped");
		return buf;
	case LC_FAILED: {
		struct boot_outcome o = boot_outcome();
		snprintf(buf, n, "boot failed%s%.400s", o.done && o.reason[0] ? ": " : "",
			 o.done ? o.reason : "");
		return buf;
	}
	default:
		break;
	}
	for (int i = 0; i < SURFACE_COUNT; i++)
		if (lc_get_surface((enum lc_surface_id)i) == SURF_DOWN) {
			snprintf(buf, n, "surface %s is down", surf_ids[i]);
			return buf;
		}
	if (fault_active("health.fail")) {
		snprintf(buf, n, "runtime fault health.fail is set (parctl health ok clears it)");
		return buf;
	}
	if (!lc_healthy()) {
		snprintf(buf, n, "the agent's health check fails");
		return buf;
	}
	return NULL;
}

/* Boot faults (PAR_FAULTS) as [{"name","value"}…]: value a number, or null for flags. */
static cJSON *boot_faults_json(void)
{
	cJSON *arr = cJSON_CreateArray();
	char desc[512];
	if (!adm.cfg->enable_faults)
		return arr;
	faults_describe(&adm.cfg->faults, desc, sizeof desc);
	char *save = NULL;
	for (char *tok = strtok_r(desc, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		cJSON *o = cJSON_CreateObject();
		char *eq = strchr(tok, '=');
		if (eq)
			*eq = '\0';
		cJSON_AddStringToObject(o, "name", tok);
		if (eq)
			cJSON_AddNumberToObject(o, "value", strtod(eq + 1, NULL));
		else
			cJSON_AddNullToObject(o, "value");
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

static cJSON *drain_json(void)
{
	struct daemon_drain_info di;
	daemon_drain_info(&di);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "active", di.active);
	add_str_or_null(o, "source", di.active ? di.source : NULL);
	cJSON_AddBoolToObject(o, "noExit", di.active && di.no_exit);
	add_str_or_null(o, "step", di.active ? di.step : NULL);
	if (di.active)
		cJSON_AddNumberToObject(o, "startedAt", (double)di.started_epoch_ms);
	else
		cJSON_AddNullToObject(o, "startedAt");
	cJSON_AddNumberToObject(o, "graceSec",
				di.active ? (double)di.grace_ms / 1000.0
					  : (double)adm.cfg->graceful_shutdown_timeout_sec);
	cJSON_AddNumberToObject(o, "drainDelaySec", adm.cfg->drain_delay_sec);
	return o;
}

static cJSON *surfaces_json(void)
{
	static const char *const ids[SURFACE_COUNT] = {"rest", "a2a", "ui", "agent"};
	cJSON *o = cJSON_CreateObject();
	for (int i = 0; i < SURFACE_COUNT; i++)
		cJSON_AddStringToObject(o, ids[i],
					lc_surface_name(lc_get_surface((enum lc_surface_id)i)));
	return o;
}

/* /meta, parsed: the manifest's fields and the boot record. */
static cJSON *meta_doc(bool with_package)
{
	struct strbuf pk = STRBUF_INIT, sb = STRBUF_INIT;
	if (with_package)
		package_meta_json(&pk);
	lc_meta_json(&sb, adm.cfg, with_package && !pk.oom ? pk.buf : NULL);
	sb_free(&pk);
	cJSON *m = json_from_sb(&sb);
	if (!cJSON_IsObject(m)) {
		cJSON_Delete(m);
		m = cJSON_CreateObject();
	}
	return m;
}

/* ---- verbs --------------------------------------------------------------------------- */

static int v_status(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	(void)args;
	char why[512];
	enum lc_state st = lc_state();
	cJSON *o = cJSON_CreateObject();
	cJSON *meta = meta_doc(false);
	cJSON *boot = obj_take(meta, "boot");
	r->result = o;

	cJSON_AddNumberToObject(o, "pid", getpid());
	cJSON_AddStringToObject(o, "version", PAR_VERSION);
	cJSON_AddNumberToObject(o, "protocol", ADMIN_PROTO_VERSION);
	add_str_or_null(o, "agentAppId", adm.cfg->agent_app_id);
	add_str_or_null(o, "deploymentId", adm.cfg->deployment_id);
	cJSON_AddStringToObject(o, "state", lc_state_name(st));
	if (st == LC_BOOTING)
		cJSON_AddStringToObject(o, "phase", lc_phase_name(lc_phase()));
	else
		cJSON_AddNullToObject(o, "phase");
	const char *why_s = why_not_ready(why, sizeof why);
	cJSON_AddBoolToObject(o, "ready", why_s == NULL);
	add_str_or_null(o, "whyNotReady", why_s);
	cJSON_AddNumberToObject(o, "uptimeMs", (double)(time_mono_ms() - adm.start_ms));
	cJSON *total = cJSON_GetObjectItemCaseSensitive(boot, "totalMs");
	if (cJSON_IsNumber(total))
		cJSON_AddNumberToObject(o, "bootMs", total->valuedouble);
	else
		cJSON_AddNullToObject(o, "bootMs");
	cJSON_AddItemToObject(o, "surfaces", surfaces_json());

	cJSON *agent = cJSON_AddObjectToObject(o, "agent");
	const char *keys[][2] = {{"name", "name"}, {"version", "version"},
				 {"agentRuntime", "runtime"}};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, keys[i][0]);
		add_str_or_null(agent, keys[i][1], cJSON_IsString(v) ? v->valuestring : NULL);
	}
	cJSON_AddBoolToObject(agent, "loaded", agent_present());

	cJSON *inf = cJSON_AddObjectToObject(o, "inFlight");
	cJSON_AddNumberToObject(inf, "rest", rest_in_flight());
	cJSON_AddNumberToObject(inf, "a2a", a2a_in_flight());
	cJSON_AddNumberToObject(inf, "agent", agent_invocations());

	cJSON *faults = cJSON_AddObjectToObject(o, "faults");
	cJSON *rt = rtfaults_active_json();
	cJSON_AddItemToObject(faults, "runtime", rt ? rt : cJSON_CreateArray());
	cJSON_AddItemToObject(faults, "boot", boot_faults_json());
	cJSON_AddBoolToObject(faults, "bootFaultsEnabled", adm.cfg->enable_faults);

	cJSON_AddItemToObject(o, "drain", drain_json());
	cJSON_AddStringToObject(o, "logLevel", log_level_name(log_get_level()));

	cJSON *ad = cJSON_AddObjectToObject(o, "admin");
	add_str_or_null(ad, "socket", adm.main.fd >= 0 ? adm.main.path : NULL);
	add_str_or_null(ad, "readOnlySocket", adm.ro.fd >= 0 ? adm.ro.path : NULL);
	cJSON_AddBoolToObject(ad, "readOnly", c->sock->ro);
	pthread_mutex_lock(&adm.mu);
	cJSON_AddNumberToObject(ad, "clients", adm.main.nclients + adm.ro.nclients);
	pthread_mutex_unlock(&adm.mu);

	cJSON_Delete(boot);
	cJSON_Delete(meta);
	return 0;
}

static int v_show_boot(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	(void)c;
	(void)args;
	struct strbuf sb = STRBUF_INIT;
	char why[512];
	lc_boot_json(&sb);
	cJSON *o = json_from_sb(&sb);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return reply_err(r, ADMIN_E_INTERNAL, "boot record unavailable");
	}
	r->result = o;
	const cJSON *total = cJSON_GetObjectItemCaseSensitive(o, "totalMs");
	const cJSON *elapsed = cJSON_GetObjectItemCaseSensitive(o, "elapsedMs");
	const cJSON *soft = cJSON_GetObjectItemCaseSensitive(o, "budgetMs");
	const cJSON *hard = cJSON_GetObjectItemCaseSensitive(o, "hardLimitMs");
	const cJSON *exceeded = cJSON_GetObjectItemCaseSensitive(o, "budgetExceeded");
	bool final = cJSON_IsNumber(total) || lc_state() == LC_FAILED;
	double ms = cJSON_IsNumber(total) ? total->valuedouble
		  : cJSON_IsNumber(elapsed) ? elapsed->valuedouble : 0;
	const char *verdict = "within";
	if (cJSON_IsNumber(hard) && ms > hard->valuedouble)
		verdict = "over_hard";
	else if (cJSON_IsTrue(exceeded) || (cJSON_IsNumber(soft) && ms > soft->valuedouble))
		verdict = "over_soft";
	cJSON *b = cJSON_AddObjectToObject(o, "budget");
	cJSON_AddNumberToObject(b, "softMs", cJSON_IsNumber(soft) ? soft->valuedouble : 0);
	if (cJSON_IsNumber(hard))
		cJSON_AddNumberToObject(b, "hardMs", hard->valuedouble);
	else
		cJSON_AddNullToObject(b, "hardMs");
	cJSON_AddNumberToObject(b, "usedMs", ms);
	cJSON_AddStringToObject(b, "verdict", verdict);
	cJSON_AddBoolToObject(b, "final", final);
	const char *w = why_not_ready(why, sizeof why);
	cJSON_AddBoolToObject(o, "ready", w == NULL);
	add_str_or_null(o, "whyNotReady", w);
	return 0;
}

static int v_show_config(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	(void)c;
	(void)args;
	char *text = cfg_to_json(adm.cfg);
	cJSON *o = text ? cJSON_Parse(text) : NULL;
	free(text);
	if (!o)
		return reply_err(r, ADMIN_E_INTERNAL, "configuration unavailable");
	r->result = o;
	return 0;
}

static int v_show_package(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	(void)c;
	(void)args;
	cJSON *meta = meta_doc(true);
	cJSON *o = cJSON_CreateObject();
	static const char *const keys[] = {"name", "version", "description", "author",
					   "agentRuntime", "package", "manifest"};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		cJSON *v = obj_take(meta, keys[i]);
		cJSON_AddItemToObject(o, keys[i], v ? v : cJSON_CreateNull());
	}
	cJSON_Delete(meta);
	r->result = o;
	return 0;
}

/* One sample value of the exposition format; +Inf/-Inf/NaN stay strings (JSON has none). */
static cJSON *metric_value_json(const char *s)
{
	char *end;
	double d = strtod(s, &end);
	if (end == s || !isfinite(d))
		return cJSON_CreateString(s);
	return cJSON_CreateNumber(d);
}

/* Parses `{k="v",…}` (the exposition format's escapes \\ \" \n) into o. Returns the
 * position after '}', or NULL when malformed. */
static const char *metric_labels_json(const char *p, cJSON *o)
{
	p++;   /* '{' */
	while (*p && *p != '}') {
		const char *k = p;
		while (*p && *p != '=')
			p++;
		if (*p != '=' || p[1] != '"')
			return NULL;
		char key[128];
		snprintf(key, sizeof key, "%.*s", (int)(p - k), k);
		p += 2;
		struct strbuf v = STRBUF_INIT;
		while (*p && *p != '"') {
			if (*p == '\\' && p[1]) {
				p++;
				sb_putc(&v, *p == 'n' ? '\n' : *p);
			} else {
				sb_putc(&v, *p);
			}
			p++;
		}
		if (*p != '"') {
			sb_free(&v);
			return NULL;
		}
		p++;
		cJSON_AddStringToObject(o, key, v.buf ? v.buf : "");
		sb_free(&v);
		if (*p == ',')
			p++;
	}
	return *p == '}' ? p + 1 : NULL;
}

/* The registry's text, turned into [{"name","type","help","samples":[{"name","labels",
 * "value"}…]}…] so scripts need no exposition-format parser. */
static cJSON *metrics_text_to_json(const char *text)
{
	cJSON *fams = cJSON_CreateArray(), *fam = NULL, *samples = NULL;
	char *copy = strdup(text), *save = NULL;
	if (!copy)
		return fams;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# HELP ", 7) == 0) {
			char *name = line + 7, *sp = strchr(name, ' ');
			if (sp)
				*sp = '\0';
			fam = cJSON_CreateObject();
			cJSON_AddStringToObject(fam, "name", name);
			cJSON_AddStringToObject(fam, "type", "untyped");
			cJSON_AddStringToObject(fam, "help", sp ? sp + 1 : "");
			samples = cJSON_AddArrayToObject(fam, "samples");
			cJSON_AddItemToArray(fams, fam);
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char *sp = strchr(line + 7, ' ');
			if (fam && sp)
				cJSON_ReplaceItemInObjectCaseSensitive(fam, "type",
								       cJSON_CreateString(sp + 1));
			continue;
		}
		if (line[0] == '#' || !samples)
			continue;
		size_t nlen = strcspn(line, "{ ");
		cJSON *s = cJSON_CreateObject(), *labels = cJSON_CreateObject();
		char name[256];
		snprintf(name, sizeof name, "%.*s", (int)nlen, line);
		const char *p = line + nlen;
		if (*p == '{')
			p = metric_labels_json(p, labels);
		if (!p) {
			cJSON_Delete(s);
			cJSON_Delete(labels);
			continue;
		}
		while (*p == ' ')
			p++;
		cJSON_AddStringToObject(s, "name", name);
		cJSON_AddItemToObject(s, "labels", labels);
		char val[64];
		snprintf(val, sizeof val, "%.*s", (int)strcspn(p, " "), p);
		cJSON_AddItemToObject(s, "value", metric_value_json(val));
		cJSON_AddItemToArray(samples, s);
	}
	free(copy);
	return fams;
}

static int v_show_metrics(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	(void)c;
	char buf[32];
	const char *format;
	if (arg_string(args, "format", buf, sizeof buf, &format, r) != 0)
		return -1;
	if (format && strcmp(format, "json") != 0 && strcmp(format, "openmetrics") != 0 &&
	    strcmp(format, "prometheus") != 0)
		return reply_err(r, ADMIN_E_ARGS,
				 "format \"%.32s\" is not one of json, openmetrics, prometheus",
				 format);
	struct strbuf sb = STRBUF_INIT;
	metrics_write_prometheus(adm.metrics, &sb);
	if (sb.oom) {
		sb_free(&sb);
		return reply_err(r, ADMIN_E_INTERNAL, "out of memory");
	}
	cJSON *o = cJSON_CreateObject();
	r->result = o;
	if (format && strcmp(format, "json") != 0) {
		/* OpenMetrics parsers need the closing "# EOF"; Prometheus ones read it as a
		 * comment, so one text serves both. */
		bool om = strcmp(format, "openmetrics") == 0;
		if (om)
			sb_puts(&sb, "# EOF\n");
		cJSON_AddStringToObject(o, "format", format);
		cJSON_AddStringToObject(o, "contentType",
					om ? "application/openmetrics-text; version=1.0.0; "
					     "charset=utf-8"
					   : "text/plain; version=0.0.4; charset=utf-8");
		cJSON_AddStringToObject(o, "text", sb.buf ? sb.buf : "");
	} else {
		cJSON_AddStringToObject(o, "format", "json");
		cJSON_AddItemToObject(o, "metrics", metrics_text_to_json(sb.buf ? sb.buf : ""));
	}
	sb_free(&sb);
	return 0;
}

static cJSON *budget_target(const char *name, unsigned sec, unsigned need, const char *fix)
{
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "name", name);
	cJSON_AddNumberToObject(t, "seconds", sec);
	cJSON_AddBoolToObject(t, "fits", need <= sec);
	cJSON_AddStringToObject(t, "setting", fix);
	return t;
}

static int v_show_budgets(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	(void)c;
	(void)args;
	const struct par_config *cfg = adm.cfg;
	unsigned worker = DAEMON_WORKER_GRACE_MS / 1000;
	unsigned need = cfg->drain_delay_sec + cfg->graceful_shutdown_timeout_sec + worker +
			ADMIN_STOP_MARGIN_SEC;
	cJSON *o = cJSON_CreateObject();
	r->result = o;
	cJSON *d = cJSON_AddObjectToObject(o, "drain");
	cJSON_AddNumberToObject(d, "drainDelaySec", cfg->drain_delay_sec);
	cJSON_AddNumberToObject(d, "graceSec", cfg->graceful_shutdown_timeout_sec);
	cJSON_AddNumberToObject(d, "workerStopSec", worker);
	cJSON_AddNumberToObject(d, "marginSec", ADMIN_STOP_MARGIN_SEC);
	cJSON_AddNumberToObject(d, "worstCaseSec", need);
	cJSON *targets = cJSON_AddArrayToObject(o, "stopTimeouts");
	cJSON_AddItemToArray(targets, budget_target("ECS stopTimeout (default)",
						    ECS_STOP_TIMEOUT_DEFAULT, need,
						    "containerDefinitions[].stopTimeout"));
	cJSON_AddItemToArray(targets, budget_target("ECS stopTimeout (Fargate maximum)",
						    ECS_STOP_TIMEOUT_MAX, need,
						    "containerDefinitions[].stopTimeout"));
	cJSON_AddItemToArray(targets, budget_target("Kubernetes terminationGracePeriodSeconds "
						    "(default)", K8S_GRACE_DEFAULT, need,
						    "spec.terminationGracePeriodSeconds"));
	bool fits = need <= ECS_STOP_TIMEOUT_DEFAULT && need <= K8S_GRACE_DEFAULT;
	cJSON_AddStringToObject(o, "verdict", fits ? "fits" : need <= ECS_STOP_TIMEOUT_MAX
							       ? "raise_stop_timeout" : "too_long");
	char advice[512];
	if (fits)
		snprintf(advice, sizeof advice,
			 "a drain takes at most %u s (delay %u + grace %u + worker stop %u + "
			 "margin %u): within the default 30 s stop timeouts",
			 need, cfg->drain_delay_sec, cfg->graceful_shutdown_timeout_sec, worker,
			 ADMIN_STOP_MARGIN_SEC);
	else
		snprintf(advice, sizeof advice,
			 "a drain takes up to %u s (delay %u + grace %u + worker stop %u + margin "
			 "%u): set stopTimeout / terminationGracePeriodSeconds to at least %u%s, "
			 "or lower PAR_DRAIN_DELAY_SEC / GRACEFUL_SHUTDOWN_TIMEOUT_SEC; otherwise "
			 "SIGKILL cuts the drain short",
			 need, cfg->drain_delay_sec, cfg->graceful_shutdown_timeout_sec, worker,
			 ADMIN_STOP_MARGIN_SEC, need,
			 need > ECS_STOP_TIMEOUT_MAX ? " (beyond ECS's 120 s maximum)" : "");
	cJSON_AddStringToObject(o, "advice", advice);
	cJSON *b = cJSON_AddObjectToObject(o, "boot");
	cJSON_AddNumberToObject(b, "budgetMs", (double)cfg->boot_budget_ms);
	double hard = (double)cfg->boot_budget_ms * cfg->boot_hard_limit_multiplier;
	if (hard > 0)
		cJSON_AddNumberToObject(b, "hardLimitMs", hard);
	else
		cJSON_AddNullToObject(b, "hardLimitMs");
	return 0;
}

/* Waits up to ms for the main loop to carry out a request (it is woken at once). */
static bool wait_state(bool (*done)(void), int ms)
{
	int64_t deadline = time_mono_ms() + ms;
	while (!done()) {
		if (time_mono_ms() >= deadline || admin_stopping())
			return false;
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	return true;
}

static bool st_left_ready(void)
{
	enum lc_state s = lc_state();
	return s == LC_DRAINING || s == LC_STOPPED || s == LC_FAILED;
}

static bool st_ready(void)
{
	return lc_state() == LC_READY;
}

static int v_drain(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	(void)c;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(args, "timeout_s");
	const cJSON *ne = cJSON_GetObjectItemCaseSensitive(args, "no_exit");
	struct daemon_drain_request req = {.no_exit = false, .grace_ms = -1};
	if (t && !cJSON_IsNull(t)) {
		if (!cJSON_IsNumber(t) || !(t->valuedouble >= 0) || t->valuedouble > 86400)
			return reply_err(r, ADMIN_E_ARGS,
					 "timeout_s must be a number of seconds, 0 to 86400");
		req.grace_ms = (int64_t)(t->valuedouble * 1000.0);
	}
	if (ne && !cJSON_IsNull(ne)) {
		if (!cJSON_IsBool(ne))
			return reply_err(r, ADMIN_E_ARGS, "no_exit must be true or false");
		req.no_exit = cJSON_IsTrue(ne);
	}
	char err[256];
	if (daemon_request_drain(&req, err, sizeof err) != 0)
		return reply_err(r, ADMIN_E_STATE, "%s", err);
	wait_state(st_left_ready, 2000);
	cJSON *o = cJSON_CreateObject();
	r->result = o;
	cJSON_AddStringToObject(o, "state", lc_state_name(lc_state()));
	cJSON_AddBoolToObject(o, "noExit", req.no_exit);
	cJSON_AddNumberToObject(o, "graceSec",
				req.grace_ms >= 0 ? (double)req.grace_ms / 1000.0
						  : (double)adm.cfg->graceful_shutdown_timeout_sec);
	cJSON_AddNumberToObject(o, "drainDelaySec", adm.cfg->drain_delay_sec);
	return 0;
}

static int v_undrain(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	(void)c;
	(void)args;
	char err[256];
	if (daemon_request_undrain(err, sizeof err) != 0)
		return reply_err(r, ADMIN_E_STATE, "%s", err);
	if (!wait_state(st_ready, 5000))
		return reply_err(r, ADMIN_E_FAILED, "undrain requested, but the state is still %s",
				 lc_state_name(lc_state()));
	r->result = cJSON_CreateObject();
	cJSON_AddStringToObject(r->result, "state", lc_state_name(lc_state()));
	return 0;
}

static int v_health(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	(void)c;
	char buf[8], err[256];
	const char *state;
	if (arg_string(args, "state", buf, sizeof buf, &state, r) != 0)
		return -1;
	if (!state || (strcmp(state, "fail") != 0 && strcmp(state, "ok") != 0))
		return reply_err(r, ADMIN_E_ARGS, "health takes state \"fail\" or \"ok\"");
	bool fail = strcmp(state, "fail") == 0;
	bool was = fault_active("health.fail");
	int rc = 0;
	if (fail && !was)
		rc = rtfault_set("health.fail", NULL, 1.0, err, sizeof err);
	else if (!fail && was)
		rc = rtfault_clear("health.fail", err, sizeof err);
	if (rc != 0)
		return reply_err(r, ADMIN_E_FAILED, "%s", err);
	r->result = cJSON_CreateObject();
	cJSON_AddStringToObject(r->result, "health", fail ? "failing" : "ok");
	cJSON_AddBoolToObject(r->result, "changed", fail != was);
	return 0;
}

static int v_fault_list(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	(void)c;
	(void)args;
	cJSON *o = cJSON_CreateObject();
	r->result = o;
	cJSON *defs = cJSON_AddArrayToObject(o, "faults");
	for (const struct admin_fault *f = admin_faults; f->name; f++) {
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "name", f->name);
		add_str_or_null(d, "value", f->value_kind);
		add_str_or_null(d, "default", f->value_default);
		cJSON_AddBoolToObject(d, "probability", f->probability);
		cJSON_AddBoolToObject(d, "oneShot", f->one_shot);
		cJSON_AddStringToObject(d, "help", f->help);
		cJSON_AddItemToArray(defs, d);
	}
	cJSON *rt = rtfaults_active_json();
	cJSON_AddItemToObject(o, "active", rt ? rt : cJSON_CreateArray());
	cJSON_AddItemToObject(o, "boot", boot_faults_json());
	cJSON_AddBoolToObject(o, "bootFaultsEnabled", adm.cfg->enable_faults);
	return 0;
}

static int admin_reply_send(struct admin_client *c, const cJSON *id, struct admin_reply *r);

static int v_fault_set(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	char nbuf[8], vbuf[64], err[512];
	const char *name, *value;
	double p = 1.0;
	if (arg_string(args, "name", nbuf, sizeof nbuf, &name, r) != 0 ||
	    arg_string(args, "value", vbuf, sizeof vbuf, &value, r) != 0)
		return -1;
	const cJSON *pj = cJSON_GetObjectItemCaseSensitive(args, "probability");
	if (pj && !cJSON_IsNull(pj)) {
		if (!cJSON_IsNumber(pj))
			return reply_err(r, ADMIN_E_ARGS, "probability must be a number in (0, 1]");
		p = pj->valuedouble;
	}
	const struct admin_fault *f = admin_fault_find(name);
	if (!f) {
		char names[256] = "";
		for (const struct admin_fault *a = admin_faults; a->name; a++)
			snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
				 a == admin_faults ? "" : ", ", a->name);
		return reply_err(r, ADMIN_E_ARGS, "%s%.64s%s (faults: %s)",
				 name ? "unknown fault \"" : "fault set needs a name",
				 name ? name : "", name ? "\"" : "", names);
	}
	if (strcmp(f->name, "crash") == 0) {
		/* abort() leaves no time for the answer afterwards: it goes first. */
		if (value || p != 1.0)
			return reply_err(r, ADMIN_E_ARGS, "crash takes no value or probability");
		r->result = cJSON_CreateObject();
		cJSON_AddStringToObject(r->result, "fault", f->name);
		cJSON_AddBoolToObject(r->result, "oneShot", true);
		admin_reply_send(c, c->req_id, r);
		r->result = NULL;
	}
	if (rtfault_set(f->name, value, p, err, sizeof err) != 0)
		return reply_err(r, ADMIN_E_ARGS, "%s", err);
	r->result = cJSON_CreateObject();
	cJSON_AddStringToObject(r->result, "fault", f->name);
	cJSON_AddBoolToObject(r->result, "oneShot", f->one_shot);
	cJSON *active = rtfaults_active_json(), *it;
	cJSON_ArrayForEach(it, active) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
		if (cJSON_IsString(n) && strcmp(n->valuestring, f->name) == 0) {
			cJSON_AddItemToObject(r->result, "active", cJSON_Duplicate(it, 1));
			break;
		}
	}
	cJSON_Delete(active);
	return 0;
}

static int v_fault_clear(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	(void)c;
	char nbuf[8], err[512];
	const char *name;
	if (arg_string(args, "name", nbuf, sizeof nbuf, &name, r) != 0)
		return -1;
	if (name && !admin_fault_find(name))
		return reply_err(r, ADMIN_E_ARGS, "unknown fault \"%.64s\"", name);
	size_t before = rtfaults_active_count();
	if (rtfault_clear(name, err, sizeof err) != 0)
		return reply_err(r, ADMIN_E_FAILED, "%s", err);
	r->result = cJSON_CreateObject();
	add_str_or_null(r->result, "fault", name);
	cJSON_AddNumberToObject(r->result, "cleared",
				(double)(before - rtfaults_active_count()));
	cJSON *rt = rtfaults_active_json();
	cJSON_AddItemToObject(r->result, "active", rt ? rt : cJSON_CreateArray());
	return 0;
}

static int v_log_level(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	char buf[8];
	const char *s;
	enum par_log_level lvl;
	if (arg_string(args, "level", buf, sizeof buf, &s, r) != 0)
		return -1;
	if (!s || log_parse_level(s, &lvl) != 0)
		return reply_err(r, ADMIN_E_ARGS, "level must be debug, info, warn or error");
	enum par_log_level old = log_get_level();
	/* Logged at info on the more verbose side of the change, so the line is kept. */
	if (lvl > old)
		log_emit(PAR_LOG_INFO, "log.level",
			 LOG_FIELDS(LF_STR("from", log_level_name(old)),
				    LF_STR("to", log_level_name(lvl)), LF_INT("uid", c->cred.uid)),
			 "log level %s -> %s", log_level_name(old), log_level_name(lvl));
	log_set_level(lvl);
	if (lvl <= old)
		log_emit(PAR_LOG_INFO, "log.level",
			 LOG_FIELDS(LF_STR("from", log_level_name(old)),
				    LF_STR("to", log_level_name(lvl)), LF_INT("uid", c->cred.uid)),
			 "log level %s -> %s", log_level_name(old), log_level_name(lvl));
	r->result = cJSON_CreateObject();
	cJSON_AddStringToObject(r->result, "level", log_level_name(lvl));
	cJSON_AddStringToObject(r->result, "previous", log_level_name(old));
	return 0;
}

static int v_ping(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	(void)c;
	(void)args;
	r->result = cJSON_CreateObject();
	cJSON_AddTrueToObject(r->result, "pong");
	cJSON_AddNumberToObject(r->result, "uptime_ms", (double)(time_mono_ms() - adm.start_ms));
	return 0;
}

static int v_version(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	(void)c;
	(void)args;
	r->result = cJSON_CreateObject();
	cJSON_AddStringToObject(r->result, "name", "pard");
	cJSON_AddStringToObject(r->result, "version", PAR_VERSION);
	cJSON_AddNumberToObject(r->result, "protocol", ADMIN_PROTO_VERSION);
	return 0;
}

static int v_verify_isolation(struct admin_client *c, const cJSON *args, struct admin_reply *r)
{
	(void)c;
	const cJSON *strict = cJSON_GetObjectItemCaseSensitive(args, "strict");
	if (strict && !cJSON_IsNull(strict) && !cJSON_IsBool(strict))
		return reply_err(r, ADMIN_E_ARGS, "strict must be true or false");
	/* The report is the result either way; its "ok" says whether anything FAILed.
	 * One report at a time: each signs calls to five services, and operators retrying in
	 * several sessions should queue, not multiply them. */
	static pthread_mutex_t one_at_a_time = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&one_at_a_time);
	r->result = isolation_verify(adm.cfg, cJSON_IsTrue(strict));
	pthread_mutex_unlock(&one_at_a_time);
	return r->result ? 0 : reply_err(r, ADMIN_E_INTERNAL, "verify-isolation: out of memory");
}

typedef int (*admin_verb_fn)(struct admin_client *c, const cJSON *args,
			     struct admin_reply *r);

struct admin_handler {
	const char *cmd;
	admin_verb_fn fn;
	const char *args[4];     /* the argument keys it takes */
};

/* monitor is not here: it takes over the connection (admin_monitor). */
static const struct admin_handler admin_handlers[] = {
	{"status", v_status, {NULL}},
	{"show boot", v_show_boot, {NULL}},
	{"show config", v_show_config, {NULL}},
	{"show package", v_show_package, {NULL}},
	{"show metrics", v_show_metrics, {"format", NULL}},
	{"show budgets", v_show_budgets, {NULL}},
	{"drain", v_drain, {"timeout_s", "no_exit", NULL}},
	{"undrain", v_undrain, {NULL}},
	{"health", v_health, {"state", NULL}},
	{"fault list", v_fault_list, {NULL}},
	{"fault set", v_fault_set, {"name", "value", "probability", NULL}},
	{"fault clear", v_fault_clear, {"name", NULL}},
	{"log level", v_log_level, {"level", NULL}},
	{"ping", v_ping, {NULL}},
	{"version", v_version, {NULL}},
	{"verify-isolation", v_verify_isolation, {"strict", NULL}},
	{NULL, NULL, {NULL}},
};

static const struct admin_handler *handler_find(const char *cmd)
{
	for (const struct admin_handler *h = admin_handlers; h->cmd; h++)
		if (strcmp(h->cmd, cmd) == 0)
			return h;
	return NULL;
}

/* ---- a connection ---------------------------------------------------------------------- */

static int admin_reply_send(struct admin_client *c, const cJSON *id, struct admin_reply *r)
{
	char *text;
	if (r->code) {
		text = admin_response_error(id, r->code, "%s", r->msg);
		metric_inc(adm.m_requests_err);
	} else {
		text = admin_response_ok(id, r->result);
		r->result = NULL;
		metric_inc(adm.m_requests_ok);
	}
	return admin_send(c, text);
}

/* monitor: the connection becomes a stream of events until the client closes it. */
static void admin_monitor(struct admin_client *c, const cJSON *id)
{
	struct admin_sub *s = hub_subscribe();
	if (!s) {
		admin_send(c, admin_response_error(id, ADMIN_E_INTERNAL, "out of resources"));
		return;
	}
	cJSON *res = cJSON_CreateObject();
	cJSON_AddTrueToObject(res, "streaming");
	cJSON_AddStringToObject(res, "events",
				"lifecycle.*, boot.*, surface.*, drain.*, fault.*, worker.*, "
				"process.*, signal.*, admin.*, log.*, and every warn/error line");
	if (admin_send(c, admin_response_ok(id, res)) != 0)
		goto out;
	for (;;) {
		struct pollfd pf[3] = {
			{.fd = c->fd, .events = POLLIN},
			{.fd = adm.stop_pipe[0], .events = POLLIN},
			{.fd = s->wake[0], .events = POLLIN},
		};
		if (poll(pf, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		if (pf[0].revents) {
			/* Input after monitor is ignored; EOF or an error ends the stream. */
			char junk[512];
			ssize_t n = recv(c->fd, junk, sizeof junk, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				break;
		}
		if (!pf[2].revents)
			continue;
		char drain_buf[64];
		while (read(s->wake[0], drain_buf, sizeof drain_buf) > 0)
			;
		char *lines[ADMIN_MONITOR_QUEUE];
		size_t n = 0;
		unsigned dropped;
		pthread_mutex_lock(&hub.mu);
		for (; s->n > 0; s->n--, s->head = (s->head + 1) % ADMIN_MONITOR_QUEUE)
			lines[n++] = s->q[s->head];
		dropped = s->dropped;
		s->dropped = 0;
		pthread_mutex_unlock(&hub.mu);
		int rc = 0;
		if (dropped) {
			char note[160];
			snprintf(note, sizeof note,
				 "{\"level\":\"warn\",\"event\":\"admin.monitor.dropped\","
				 "\"msg\":\"%u events dropped: this client reads too slowly\","
				 "\"count\":%u}", dropped, dropped);
			rc = admin_send(c, admin_event_encode(id, note));
		}
		for (size_t i = 0; i < n; i++) {
			if (rc == 0)
				rc = admin_send(c, admin_event_encode(id, lines[i]));
			free(lines[i]);
		}
		if (rc != 0)
			break;
	}
out:
	hub_unsubscribe(s);
}

static void admin_deny(struct admin_client *c, const cJSON *id);

/* Answers one request line. Returns -1 when the connection must close. */
static int admin_handle_line(struct admin_client *c, const char *line, size_t len)
{
	struct admin_request req;
	struct admin_reply r = {0};
	const char *code;
	char msg[512];
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
		i++;
	if (i == len)
		return 0;   /* a blank line (someone typing into socat) is no request */
	if (c->denied) {
		/* Answered after its request arrives, so the client's write never meets a
		 * closed socket; the request itself is not looked at beyond its id. */
		admin_request_parse(line, len, &req, &code, msg, sizeof msg);
		admin_deny(c, req.id);
		admin_request_free(&req);
		return -1;
	}
	if (admin_request_parse(line, len, &req, &code, msg, sizeof msg) != 0) {
		metric_inc(adm.m_requests_err);
		int rc = admin_send(c, admin_response_error(req.id, code, "%s", msg));
		admin_request_free(&req);
		return strcmp(code, ADMIN_E_TOO_LONG) == 0 ? -1 : rc;
	}
	const struct admin_verb *verb = admin_verb_find(req.cmd);
	const struct admin_handler *h = handler_find(req.cmd);
	int rc = 0;
	c->req_id = req.id;
	if (c->sock->ro && verb->access == ADMIN_CHANGE) {
		log_emit(PAR_LOG_WARN, "admin.denied",
			 LOG_FIELDS(LF_STR("cmd", req.cmd), LF_INT("uid", c->cred.uid),
				    LF_INT("pid", c->cred.pid), LF_STR("socket", c->sock->path)),
			 "%s refused on the read-only socket", req.cmd);
		reply_err(&r, ADMIN_E_DENIED,
			  "%s changes the runtime: the read-only socket %s serves only status, "
			  "show, fault list, monitor, ping and version", req.cmd, c->sock->path);
		rc = admin_reply_send(c, req.id, &r);
		goto out;
	}
	if (verb->streaming) {
		if (args_only(req.cmd, req.args, (const char *const[]){NULL}, &r) != 0) {
			rc = admin_reply_send(c, req.id, &r);
			goto out;
		}
		admin_monitor(c, req.id);
		rc = -1;
		goto out;
	}
	if (!h) {
		reply_err(&r, ADMIN_E_UNKNOWN, "%s is not served by this pard", req.cmd);
		rc = admin_reply_send(c, req.id, &r);
		goto out;
	}
	if (verb->access == ADMIN_CHANGE)
		log_emit(PAR_LOG_INFO, "admin.command",
			 LOG_FIELDS(LF_STR("cmd", req.cmd), LF_INT("uid", c->cred.uid),
				    LF_INT("pid", c->cred.pid)),
			 "admin: %s (uid %d)", req.cmd, (int)c->cred.uid);
	if (args_only(req.cmd, req.args, h->args, &r) == 0)
		h->fn(c, req.args, &r);
	rc = admin_reply_send(c, req.id, &r);
out:
	c->req_id = NULL;
	cJSON_Delete(r.result);
	admin_request_free(&req);
	return rc;
}

static void admin_deny(struct admin_client *c, const cJSON *id)
{
	char who[192], uid[32] = "";
	if (geteuid() != 0)
		snprintf(uid, sizeof uid, "uid %d", (int)geteuid());
	if (adm.group_set)
		snprintf(who, sizeof who, "root, %s%sgroup %s", uid, uid[0] ? " or " : "",
			 adm.cfg->admin_group);
	else
		snprintf(who, sizeof who, "root%s%s; PAR_ADMIN_GROUP adds a group",
			 uid[0] ? " or " : "", uid);
	log_emit(PAR_LOG_WARN, "admin.denied",
		 LOG_FIELDS(LF_INT("uid", c->cred.uid), LF_INT("pid", c->cred.pid),
			    LF_STR("socket", c->sock->path)),
		 "uid %d refused on %s", (int)c->cred.uid, c->sock->path);
	metric_inc(adm.m_requests_err);
	admin_send(c, admin_response_error(id, ADMIN_E_DENIED,
					   "uid %d is not allowed on %s (%s)", (int)c->cred.uid,
					   c->sock->path, who));
}

static void *admin_client_main(void *arg)
{
	struct admin_client *c = arg;
	struct admin_linebuf lb = {0};
	c->denied = !c->sock->ro && !admin_peer_allowed(&c->cred);
	for (;;) {
		char *line;
		int r = admin_read_line(c->fd, &lb, &line);
		if (r == 1) {
			size_t n = lb.consumed;
			if (n && line[n - 1] == '\0')
				n--;   /* the newline, now a NUL */
			if (admin_handle_line(c, line, n) != 0)
				break;
			continue;
		}
		if (r == -2 && c->denied) {
			admin_deny(c, NULL);
			break;
		}
		if (r == -2) {
			metric_inc(adm.m_requests_err);
			admin_send(c, admin_response_error(NULL, ADMIN_E_TOO_LONG,
							   "request line longer than %d bytes: "
							   "closing the connection",
							   ADMIN_LINE_MAX - 1));
			break;
		}
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			break;
		struct pollfd pf[2] = {
			{.fd = c->fd, .events = POLLIN},
			{.fd = adm.stop_pipe[0], .events = POLLIN},
		};
		/* A refused peer gets a moment to send its request, then the answer anyway. */
		int timeout = c->denied ? ADMIN_DENY_WAIT_MS
			    : lb.len > 0 ? ADMIN_PARTIAL_TIMEOUT_MS : -1;
		int pr = poll(pf, 2, timeout);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0 || pf[1].revents)
			break;
		if (pr == 0 && c->denied) {
			admin_deny(c, NULL);
			break;
		}
		if (pr == 0) {
			admin_send(c, admin_response_error(NULL, ADMIN_E_MALFORMED,
							   "request line unfinished for %d s: "
							   "closing the connection",
							   ADMIN_PARTIAL_TIMEOUT_MS / 1000));
			break;
		}
	}
	admin_linebuf_free(&lb);
	close(c->fd);
	c->fd = -1;
	pthread_mutex_lock(&adm.mu);
	c->sock->nclients--;
	metric_set(adm.m_clients, adm.main.nclients + adm.ro.nclients);
	pthread_mutex_unlock(&adm.mu);
	atomic_store(&c->finished, true);
	return NULL;
}

/* Joins the threads of the connections that have ended (all, when all is set). */
static void admin_reap(bool all)
{
	for (;;) {
		struct admin_client *done = NULL;
		pthread_mutex_lock(&adm.mu);
		for (struct admin_client **pp = &adm.clients; *pp; pp = &(*pp)->next)
			if (all || atomic_load(&(*pp)->finished)) {
				done = *pp;
				*pp = done->next;
				break;
			}
		pthread_mutex_unlock(&adm.mu);
		if (!done)
			return;
		pthread_join(done->thread, NULL);
		free(done);
	}
}

static void admin_accept(struct admin_sock *sk)
{
	for (;;) {
		int fd = accept4(sk->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;   /* EAGAIN, or a transient error: poll tells us again */
		struct admin_client *c = calloc(1, sizeof(*c));
		socklen_t sl = sizeof(struct ucred);
		unsigned cap = sk->ro ? ADMIN_MAX_RO_CLIENTS : ADMIN_MAX_CLIENTS;
		pthread_mutex_lock(&adm.mu);
		bool full = sk->nclients >= cap;
		if (!full && c)
			sk->nclients++;
		pthread_mutex_unlock(&adm.mu);
		if (full || !c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &sl) != 0) {
			char *e = full ? admin_response_error(NULL, ADMIN_E_BUSY,
							      "%u clients already on %s: try again",
							      cap, sk->path)
				       : admin_response_error(NULL, ADMIN_E_INTERNAL,
							      "cannot serve this connection");
			if (e)
				send(fd, e, strlen(e), MSG_NOSIGNAL | MSG_DONTWAIT);
			free(e);
			close(fd);
			if (c && !full) {
				pthread_mutex_lock(&adm.mu);
				sk->nclients--;
				pthread_mutex_unlock(&adm.mu);
			}
			free(c);
			continue;
		}
		c->fd = fd;
		c->sock = sk;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, ADMIN_THREAD_STACK);
		int err = pthread_create(&c->thread, &attr, admin_client_main, c);
		pthread_attr_destroy(&attr);
		pthread_mutex_lock(&adm.mu);
		if (err == 0) {
			c->next = adm.clients;
			adm.clients = c;
		} else {
			sk->nclients--;
		}
		metric_set(adm.m_clients, adm.main.nclients + adm.ro.nclients);
		pthread_mutex_unlock(&adm.mu);
		if (err != 0) {
			close(fd);
			free(c);
		}
	}
}

static void *admin_acceptor_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd pf[3] = {{.fd = adm.stop_pipe[0], .events = POLLIN}};
		struct admin_sock *socks[3] = {NULL};
		nfds_t n = 1;
		if (adm.main.fd >= 0) {
			socks[n] = &adm.main;
			pf[n++] = (struct pollfd){.fd = adm.main.fd, .events = POLLIN};
		}
		if (adm.ro.fd >= 0) {
			socks[n] = &adm.ro;
			pf[n++] = (struct pollfd){.fd = adm.ro.fd, .events = POLLIN};
		}
		/* The timeout only paces the joins of ended connections. */
		int pr = poll(pf, n, 1000);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr > 0 && pf[0].revents)
			break;
		admin_reap(false);
		for (nfds_t i = 1; pr > 0 && i < n; i++)
			if (pf[i].revents)
				admin_accept(socks[i]);
	}
	/* Every connection polls the stop pipe too, and a stuck writer gives up after
	 * ADMIN_WRITE_TIMEOUT_MS: these joins end. */
	admin_reap(true);
	return NULL;
}

/* ---- binding -------------------------------------------------------------------------- */

static int bind_fail(char *why, size_t n, const char *fmt, const char *a, int err)
{
	snprintf(why, n, fmt, a, strerror(err));
	return -1;
}

/* Binds one candidate path. 0 ok; -1 with why (try the next candidate); -2 another daemon
 * answers there (give up: two pards must not share one name). */
static int admin_bind_one(struct admin_sock *sk, const char *path, mode_t dir_mode,
			  bool private_dir, mode_t sock_mode, char *why, size_t whylen)
{
	char *dir = strdup(path);
	if (!dir)
		return bind_fail(why, whylen, "%s: %s", path, ENOMEM);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	else if (slash)
		slash[1] = '\0';
	int rc = -1;
	struct stat st;
	if (fs_mkdir_p(dir, dir_mode) != 0) {
		bind_fail(why, whylen, "cannot create directory %s: %s", dir, errno);
		goto out;
	}
	/* A shared parent like /tmp: the directory must be ours alone, or someone else could
	 * swap the socket under it. */
	if (private_dir && (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
			    st.st_uid != geteuid() || (st.st_mode & 077))) {
		snprintf(why, whylen, "%s is not a private directory owned by uid %d", dir,
			 (int)geteuid());
		goto out;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(why, whylen, "%s is longer than a socket path may be", path);
		goto out;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(why, whylen, "%s exists and is not a socket", path);
			goto out;
		}
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int cr = probe >= 0 ? connect(probe, (struct sockaddr *)&sa, sizeof sa) : -1;
		int cerr = errno;
		if (probe >= 0)
			close(probe);
		if (cr == 0) {
			snprintf(why, whylen, "another daemon answers on %s", path);
			rc = -2;
			goto out;
		}
		if (cerr != ECONNREFUSED) {
			bind_fail(why, whylen, "cannot check the existing socket %s: %s", path,
				  cerr);
			goto out;
		}
		/* Nobody listens: a socket left behind by a pard that died. */
		if (unlink(path) != 0 && errno != ENOENT) {
			bind_fail(why, whylen, "cannot remove the stale socket %s: %s", path,
				  errno);
			goto out;
		}
		log_emit(PAR_LOG_INFO, "admin.stale_removed", LOG_FIELDS(LF_STR("path", path)),
			 "removed the stale admin socket %s (nobody answered on it)", path);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		bind_fail(why, whylen, "socket for %s: %s", path, errno);
		goto out;
	}
	/* Created 0600 whatever the umask was, then opened up to exactly sock_mode. */
	mode_t old = umask(0177);
	int br = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	int berr = errno;
	umask(old);
	if (br != 0) {
		close(fd);
		bind_fail(why, whylen, "bind %s: %s", path, berr);
		goto out;
	}
	if (chmod(path, sock_mode) != 0 || listen(fd, 128) != 0 || stat(path, &st) != 0) {
		int e = errno;
		close(fd);
		unlink(path);
		bind_fail(why, whylen, "cannot set up %s: %s", path, e);
		goto out;
	}
	if (!sk->ro && adm.group_set && chown(path, (uid_t)-1, adm.group_gid) != 0)
		log_emit(PAR_LOG_WARN, "admin.chown_failed",
			 LOG_FIELDS(LF_STR("path", path), LF_STR("group", adm.cfg->admin_group),
				    LF_STR("error", strerror(errno))),
			 "cannot give %s to group %s: %s", path, adm.cfg->admin_group,
			 strerror(errno));
	sk->fd = fd;
	sk->dev = st.st_dev;
	sk->ino = st.st_ino;
	sk->path = strdup(path);
	rc = 0;
out:
	free(dir);
	return rc;
}

/* The main socket: the configured path, then the SPEC §2 fallbacks. */
static int admin_bind_main(void)
{
	char *paths[3] = {NULL};
	size_t n = admin_socket_candidates(adm.cfg->admin_socket, paths);
	char why[512], first_why[512] = "";
	int rc = -1;
	for (size_t i = 0; i < n && rc == -1; i++) {
		/* Fallbacks live in per-user directories: 0700 (tmp: checked to be ours). */
		bool fallback = i > 0;
		bool in_tmp = strncmp(paths[i], "/tmp/par-", 9) == 0 && fallback;
		rc = admin_bind_one(&adm.main, paths[i], fallback ? 0700 : 0755, in_tmp,
				    0660, why, sizeof why);
		if (rc == -2) {
			log_emit(PAR_LOG_ERROR, "admin.in_use",
				 LOG_FIELDS(LF_STR("path", paths[i])),
				 "%s: admin socket disabled (this pard runs on without one)", why);
			break;
		}
		if (rc == 0) {
			log_emit(PAR_LOG_INFO, "admin.listening",
				 LOG_FIELDS(LF_STR("path", paths[i]), LF_BOOL("readOnly", false),
					    LF_STR("mode", "0660"),
					    LF_STR("group", adm.cfg->admin_group),
					    LF_BOOL("fallback", fallback),
					    LF_STR("configured", paths[0]),
					    LF_STR("fallbackReason", fallback ? first_why : NULL)),
				 "admin socket on %s%s%s", paths[i],
				 fallback ? " (fallback: " : "", fallback ? first_why : "");
			break;
		}
		log_emit(PAR_LOG_WARN, "admin.fallback",
			 LOG_FIELDS(LF_STR("path", paths[i]), LF_STR("reason", why),
				    LF_STR("next", i + 1 < n ? paths[i + 1] : NULL)),
			 "admin socket cannot be %s: %s%s%s", paths[i], why,
			 i + 1 < n ? "; trying " : "", i + 1 < n ? paths[i + 1] : "");
		if (!first_why[0])
			snprintf(first_why, sizeof first_why, "%s", why);
	}
	if (rc == -1)
		log_emit(PAR_LOG_ERROR, "admin.unavailable",
			 LOG_FIELDS(LF_STR("configured", paths[0]), LF_STR("reason", first_why)),
			 "no admin socket: every candidate path failed (pard runs on without one)");
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	return rc == 0 ? 0 : -1;
}

static void admin_bind_ro(void)
{
	char why[512];
	const char *path = adm.cfg->admin_ro_socket;
	if (!path)
		return;
	int rc = admin_bind_one(&adm.ro, path, 0755, false, 0666, why, sizeof why);
	if (rc == 0)
		log_emit(PAR_LOG_INFO, "admin.listening",
			 LOG_FIELDS(LF_STR("path", path), LF_BOOL("readOnly", true),
				    LF_STR("mode", "0666"), LF_BOOL("fallback", false)),
			 "read-only admin socket on %s", path);
	else
		log_emit(PAR_LOG_ERROR, rc == -2 ? "admin.in_use" : "admin.unavailable",
			 LOG_FIELDS(LF_STR("path", path), LF_BOOL("readOnly", true),
				    LF_STR("reason", why)),
			 "read-only admin socket disabled: %s", why);
}

static void admin_resolve_group(void)
{
	if (!adm.cfg->admin_group)
		return;
	struct group gr, *res = NULL;
	char buf[8192];
	if (getgrnam_r(adm.cfg->admin_group, &gr, buf, sizeof buf, &res) == 0 && res) {
		adm.group_set = true;
		adm.group_gid = gr.gr_gid;
	} else {
		log_emit(PAR_LOG_WARN, "admin.group_unknown",
			 LOG_FIELDS(LF_STR("group", adm.cfg->admin_group)),
			 "PAR_ADMIN_GROUP %s not found: only root and uid %d are allowed",
			 adm.cfg->admin_group, (int)geteuid());
	}
}

static void admin_release(void);

int admin_start(const struct par_config *cfg, struct metrics *metrics, int64_t start_mono_ms)
{
	if (adm.running)
		return 0;
	adm.cfg = cfg;
	adm.metrics = metrics;
	adm.start_ms = start_mono_ms;
	adm.m_clients = metrics_gauge(metrics, "par_admin_clients",
				      "Open admin socket connections.", NULL);
	adm.m_requests_ok = metrics_counter(metrics, "par_admin_requests_total",
					    "Admin socket requests answered.", "result=\"ok\"");
	adm.m_requests_err = metrics_counter(metrics, "par_admin_requests_total",
					     "Admin socket requests answered.",
					     "result=\"error\"");
	admin_resolve_group();
	if (pipe2(adm.stop_pipe, O_CLOEXEC) != 0) {
		log_emit(PAR_LOG_ERROR, "admin.unavailable",
			 LOG_FIELDS(LF_STR("error", strerror(errno))),
			 "no admin socket: %s", strerror(errno));
		return -1;
	}
	admin_bind_main();
	admin_bind_ro();
	if (adm.main.fd < 0 && adm.ro.fd < 0) {
		admin_release();
		return -1;
	}
	log_set_observer(admin_observe, NULL);
	if (pthread_create(&adm.acceptor, NULL, admin_acceptor_main, NULL) != 0) {
		log_set_observer(NULL, NULL);
		log_emit(PAR_LOG_ERROR, "admin.unavailable", LOG_NOFIELDS,
			 "no admin socket: cannot start its thread");
		admin_release();
		return -1;
	}
	adm.running = true;
	return 0;
}

static void admin_close_sock(struct admin_sock *sk)
{
	struct stat st;
	if (sk->fd < 0)
		return;
	close(sk->fd);
	sk->fd = -1;
	/* Only our own socket: another pard may have taken the name since (it never does
	 * while we answer, but a restart of this one may have raced ahead). */
	if (sk->path && lstat(sk->path, &st) == 0 && st.st_dev == sk->dev &&
	    st.st_ino == sk->ino)
		unlink(sk->path);
	free(sk->path);
	sk->path = NULL;
}

void admin_stop(void)
{
	if (!adm.running)
		return;
	adm.running = false;
	ssize_t w = write(adm.stop_pipe[1], "x", 1);
	(void)w;
	pthread_join(adm.acceptor, NULL);
	log_set_observer(NULL, NULL);
	admin_release();
}

/* Closes and unlinks the sockets and the stop pipe. */
static void admin_release(void)
{
	admin_close_sock(&adm.main);
	admin_close_sock(&adm.ro);
	for (int i = 0; i < 2; i++)
		if (adm.stop_pipe[i] >= 0) {
			close(adm.stop_pipe[i]);
			adm.stop_pipe[i] = -1;
		}
}
