/* The admin protocol (SPEC §8.1) shared by pard and parctl: the verb and fault tables,
 * request/response parsing and encoding, the socket path candidates and the line reader. */
#include "par/admin.h"
#include "par/parse.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

/* verify-isolation is ADMIN_CHANGE although it changes nothing: it makes signed calls with
 * the task's credentials, which an arbitrary local uid on the read-only socket must not
 * be able to trigger. */
const struct admin_verb admin_verbs[] = {
	{"status", ADMIN_READ, false, "", "state, phase, readiness, surfaces and faults"},
	{"show boot", ADMIN_READ, false, "", "boot phases, durations, budget verdict, why not ready"},
	{"show config", ADMIN_READ, false, "", "the configuration in use (secrets redacted)"},
	{"show package", ADMIN_READ, false, "", "the agent package: source, digest, manifest"},
	{"show metrics", ADMIN_READ, false, "[--openmetrics]", "the metrics (JSON, or OpenMetrics text)"},
	{"show budgets", ADMIN_READ, false, "", "drain delay + grace against common stop timeouts"},
	{"drain", ADMIN_CHANGE, false, "[--timeout S] [--no-exit]",
	 "drain like SIGTERM (--no-exit: stay alive in DRAINING until undrain)"},
	{"undrain", ADMIN_CHANGE, false, "", "return to READY after drain --no-exit"},
	{"health", ADMIN_CHANGE, false, "fail|ok", "force /health and gRPC health to fail, or stop"},
	{"fault list", ADMIN_READ, false, "", "runtime fault names, active runtime and boot faults"},
	{"fault set", ADMIN_CHANGE, false, "NAME [VALUE] [--probability P]", "set a runtime fault"},
	{"fault clear", ADMIN_CHANGE, false, "[NAME]", "clear one runtime fault, or all"},
	{"log level", ADMIN_CHANGE, false, "debug|info|warn|error", "change the log level"},
	{"monitor", ADMIN_READ, true, "", "stream lifecycle, boot, fault, drain and worker events"},
	{"ping", ADMIN_READ, false, "", "check that pard answers"},
	{"version", ADMIN_READ, false, "", "pard and protocol versions"},
	{"verify-isolation", ADMIN_CHANGE, false, "[--strict]",
	 "check egress and task-role isolation (PASS/WARN/FAIL)"},
	{NULL, ADMIN_READ, false, NULL, NULL},
};

const struct admin_fault admin_faults[] = {
	{"health.fail", NULL, false, false, "/health, /ping and gRPC health answer 503/NOT_SERVING",
	 NULL},
	{"rest.latency", "ms", true, false, "REST requests (not /livez) wait MS first", NULL},
	{"rest.error", "http-status", true, false, "REST requests answer this status (default 500)",
	 "500"},
	{"a2a.latency", "ms", true, false, "A2A calls wait MS first", NULL},
	{"a2a.error", "grpc-code", true, false,
	 "A2A calls fail with this gRPC code (default 14 UNAVAILABLE)", "14"},
	{"worker.kill", NULL, false, true, "SIGKILL the agent worker once (it is restarted)", NULL},
	{"crash", NULL, false, true, "abort() pard once, to exercise restart paths", NULL},
	{"hang", NULL, false, false, "serving threads stop answering; /livez keeps answering", NULL},
	{NULL, NULL, false, false, NULL, NULL},
};

const struct admin_verb *admin_verb_find(const char *cmd)
{
	const struct admin_verb *v;

	if (!cmd)
		return NULL;
	for (v = admin_verbs; v->cmd; v++)
		if (strcmp(v->cmd, cmd) == 0)
			return v;
	return NULL;
}

static const char *const admin_grpc_codes[17] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED"};

const char *admin_grpc_code_name(int code)
{
	return code >= 0 && code <= 16 ? admin_grpc_codes[code] : "UNKNOWN";
}

int admin_fault_value_parse(const struct admin_fault *f, const char *s, unsigned *out,
			    char *err, size_t errlen)
{
	uint64_t v;
	const char *kind = f->value_kind ? f->value_kind : "";
	if (strcmp(kind, "ms") == 0) {
		if (parse_uint(s, 0, ADMIN_FAULT_MS_MAX, &v) == 0)
			goto ok;
		snprintf(err, errlen, "%s: value \"%s\" is not a whole number of ms in 0..%u",
			 f->name, s, ADMIN_FAULT_MS_MAX);
	} else if (strcmp(kind, "http-status") == 0) {
		if (parse_uint(s, 400, 599, &v) == 0)
			goto ok;
		snprintf(err, errlen, "%s: value \"%s\" is not an HTTP error status in 400..599",
			 f->name, s);
	} else if (strcmp(kind, "grpc-code") == 0) {
		if (parse_uint(s, 1, 16, &v) == 0)
			goto ok;
		/* The code's name works too: "UNAVAILABLE" is easier to read than 14. */
		for (v = 1; v <= 16; v++)
			if (strcasecmp(s, admin_grpc_codes[v]) == 0)
				goto ok;
		snprintf(err, errlen, "%s: value \"%s\" is not a gRPC status code in 1..16 (or "
			 "its name, e.g. UNAVAILABLE)", f->name, s);
	} else {
		snprintf(err, errlen, "%s takes no value", f->name);
	}
	return -1;
ok:
	*out = (unsigned)v;
	return 0;
}

const struct admin_fault *admin_fault_find(const char *name)
{
	const struct admin_fault *f;

	if (!name)
		return NULL;
	for (f = admin_faults; f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

/* --- requests -------------------------------------------------------------------------- */

static int admin_fail(const char **code, const char *which, char *msg, size_t msglen,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int admin_fail(const char **code, const char *which, char *msg, size_t msglen,
		      const char *fmt, ...)
{
	va_list ap;

	*code = which;
	if (msg && msglen) {
		va_start(ap, fmt);
		vsnprintf(msg, msglen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* A JSON text with only whitespace after it; cJSON alone accepts trailing garbage. */
static cJSON *admin_parse_exact(const char *s, size_t len)
{
	const char *end = NULL;
	cJSON *doc;
	size_t off;

	if (len == 0 || memchr(s, '\0', len))
		return NULL;
	doc = cJSON_ParseWithLengthOpts(s, len, &end, 0);
	if (!doc)
		return NULL;
	for (off = (size_t)(end - s); off < len; off++)
		if (s[off] != ' ' && s[off] != '\t' && s[off] != '\r' && s[off] != '\n') {
			cJSON_Delete(doc);
			return NULL;
		}
	return doc;
}

/* A whole number that fits a long. The range comes first: converting a double outside it
 * (1e300 from a client) to long is undefined behaviour (found by fuzz_admin). */
static bool admin_is_int(const cJSON *n)
{
	return cJSON_IsNumber(n) && n->valuedouble >= -0x1p63 && n->valuedouble < 0x1p63 &&
	       n->valuedouble == (double)(long)n->valuedouble;
}

int admin_request_parse(const char *line, size_t len, struct admin_request *req,
			const char **code, char *msg, size_t msglen)
{
	cJSON *doc, *v, *id, *cmd, *args;
	int rc = -1;

	memset(req, 0, sizeof(*req));
	if (len >= ADMIN_LINE_MAX)
		return admin_fail(code, ADMIN_E_TOO_LONG, msg, msglen,
				  "request line longer than %d bytes", ADMIN_LINE_MAX - 1);
	doc = admin_parse_exact(line, len);
	if (!doc)
		return admin_fail(code, ADMIN_E_MALFORMED, msg, msglen,
				  "request is not valid JSON (one object per line)");
	if (!cJSON_IsObject(doc)) {
		admin_fail(code, ADMIN_E_MALFORMED, msg, msglen, "request is not a JSON object");
		goto out;
	}
	id = cJSON_GetObjectItemCaseSensitive(doc, "id");
	if (id && !cJSON_IsNull(id)) {
		if (!cJSON_IsNumber(id) && !cJSON_IsString(id)) {
			admin_fail(code, ADMIN_E_MALFORMED, msg, msglen,
				   "\"id\" must be a number or a string");
			goto out;
		}
		req->id = cJSON_Duplicate(id, 1);
	}
	v = cJSON_GetObjectItemCaseSensitive(doc, "v");
	if (!admin_is_int(v)) {
		admin_fail(code, ADMIN_E_MALFORMED, msg, msglen,
			   "\"v\" (protocol version, an integer) is missing");
		goto out;
	}
	req->v = v->valuedouble > 1e9 || v->valuedouble < -1e9 ? -1 : (int)v->valuedouble;
	if (req->v != ADMIN_PROTO_VERSION) {
		admin_fail(code, ADMIN_E_VERSION, msg, msglen,
			   "protocol version %g is not supported: pard speaks version %d "
			   "(use a parctl from the same release)",
			   v->valuedouble, ADMIN_PROTO_VERSION);
		goto out;
	}
	cmd = cJSON_GetObjectItemCaseSensitive(doc, "cmd");
	if (!cJSON_IsString(cmd) || !cmd->valuestring[0]) {
		admin_fail(code, ADMIN_E_MALFORMED, msg, msglen, "\"cmd\" must be a non-empty string");
		goto out;
	}
	if (!admin_verb_find(cmd->valuestring)) {
		admin_fail(code, ADMIN_E_UNKNOWN, msg, msglen, "unknown command \"%.64s\"",
			   cmd->valuestring);
		goto out;
	}
	args = cJSON_GetObjectItemCaseSensitive(doc, "args");
	if (args && !cJSON_IsNull(args) && !cJSON_IsObject(args)) {
		admin_fail(code, ADMIN_E_MALFORMED, msg, msglen, "\"args\" must be an object");
		goto out;
	}
	req->cmd = strdup(cmd->valuestring);
	req->args = args && cJSON_IsObject(args) ? cJSON_Duplicate(args, 1)
						 : cJSON_CreateObject();
	if (!req->cmd || !req->args) {
		admin_fail(code, ADMIN_E_INTERNAL, msg, msglen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(doc);
	if (rc != 0) {
		free(req->cmd);
		req->cmd = NULL;
		cJSON_Delete(req->args);
		req->args = NULL;
	}
	return rc;
}

void admin_request_free(struct admin_request *req)
{
	if (!req)
		return;
	cJSON_Delete(req->id);
	cJSON_Delete(req->args);
	free(req->cmd);
	memset(req, 0, sizeof(*req));
}

/* --- encoding -------------------------------------------------------------------------- */

/* Prints o unformatted with '\n' appended; deletes o. cJSON escapes control characters in
 * strings, so the text never contains a newline of its own. */
static char *admin_print_line(cJSON *o)
{
	char *s, *line;
	size_t n;

	if (!o)
		return NULL;
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		return NULL;
	n = strlen(s);
	line = malloc(n + 2);
	if (line) {
		memcpy(line, s, n);
		line[n] = '\n';
		line[n + 1] = '\0';
	}
	cJSON_free(s);
	return line;
}

static cJSON *admin_envelope(const cJSON *id)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "v", ADMIN_PROTO_VERSION);
	if (id)
		cJSON_AddItemToObject(o, "id", cJSON_Duplicate(id, 1));
	else
		cJSON_AddNullToObject(o, "id");
	return o;
}

char *admin_request_encode(long id, const char *cmd, cJSON *args)
{
	cJSON *o = cJSON_CreateObject();

	if (!o) {
		cJSON_Delete(args);
		return NULL;
	}
	cJSON_AddNumberToObject(o, "v", ADMIN_PROTO_VERSION);
	cJSON_AddNumberToObject(o, "id", (double)id);
	cJSON_AddStringToObject(o, "cmd", cmd ? cmd : "");
	cJSON_AddItemToObject(o, "args", args ? args : cJSON_CreateObject());
	return admin_print_line(o);
}

char *admin_response_ok(const cJSON *id, cJSON *result)
{
	cJSON *o = admin_envelope(id);

	if (!o) {
		cJSON_Delete(result);
		return NULL;
	}
	cJSON_AddTrueToObject(o, "ok");
	cJSON_AddItemToObject(o, "result", result ? result : cJSON_CreateNull());
	return admin_print_line(o);
}

char *admin_response_error(const cJSON *id, const char *code, const char *fmt, ...)
{
	cJSON *o = admin_envelope(id), *err;
	char msg[1024];
	va_list ap;

	if (!o)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_AddFalseToObject(o, "ok");
	err = cJSON_AddObjectToObject(o, "error");
	if (err) {
		cJSON_AddStringToObject(err, "code", code ? code : ADMIN_E_INTERNAL);
		cJSON_AddStringToObject(err, "message", msg);
	}
	return admin_print_line(o);
}

char *admin_event_encode(const cJSON *id, const char *json_log_line)
{
	cJSON *o = admin_envelope(id), *ev;

	if (!o)
		return NULL;
	ev = json_log_line ? cJSON_Parse(json_log_line) : NULL;
	if (!ev || !cJSON_IsObject(ev)) {
		/* A text-format line (LOG_FORMAT=text) still reaches the client, wrapped. */
		cJSON_Delete(ev);
		ev = cJSON_CreateObject();
		if (ev)
			cJSON_AddStringToObject(ev, "line", json_log_line ? json_log_line : "");
	}
	cJSON_AddItemToObject(o, "event", ev);
	return admin_print_line(o);
}

int admin_response_parse(const char *line, size_t len, struct admin_response *resp,
			 char *msg, size_t msglen)
{
	const char *code;
	cJSON *doc, *v, *id, *ok, *err, *c, *m;

	memset(resp, 0, sizeof(*resp));
	resp->id = -1;
	doc = admin_parse_exact(line, len);
	if (!doc || !cJSON_IsObject(doc)) {
		cJSON_Delete(doc);
		return admin_fail(&code, ADMIN_E_MALFORMED, msg, msglen,
				  "the daemon's answer is not a JSON object");
	}
	resp->doc = doc;
	v = cJSON_GetObjectItemCaseSensitive(doc, "v");
	if (!admin_is_int(v) || v->valuedouble != ADMIN_PROTO_VERSION) {
		if (admin_is_int(v))
			admin_fail(&code, ADMIN_E_VERSION, msg, msglen,
				   "protocol version mismatch: pard speaks version %g, this client "
				   "speaks %d (use a parctl from the same release)",
				   v->valuedouble, ADMIN_PROTO_VERSION);
		else
			admin_fail(&code, ADMIN_E_MALFORMED, msg, msglen,
				   "the daemon's answer has no protocol version");
		goto fail;
	}
	resp->v = ADMIN_PROTO_VERSION;
	id = cJSON_GetObjectItemCaseSensitive(doc, "id");
	if (admin_is_int(id))
		resp->id = (long)id->valuedouble;
	resp->event = cJSON_GetObjectItemCaseSensitive(doc, "event");
	if (resp->event) {
		resp->ok = true;
		return 0;
	}
	ok = cJSON_GetObjectItemCaseSensitive(doc, "ok");
	if (!cJSON_IsBool(ok)) {
		admin_fail(&code, ADMIN_E_MALFORMED, msg, msglen, "the daemon's answer has no \"ok\"");
		goto fail;
	}
	resp->ok = cJSON_IsTrue(ok);
	if (resp->ok) {
		resp->result = cJSON_GetObjectItemCaseSensitive(doc, "result");
		return 0;
	}
	err = cJSON_GetObjectItemCaseSensitive(doc, "error");
	c = cJSON_GetObjectItemCaseSensitive(err, "code");
	m = cJSON_GetObjectItemCaseSensitive(err, "message");
	if (!cJSON_IsString(c)) {
		admin_fail(&code, ADMIN_E_MALFORMED, msg, msglen,
			   "the daemon's error answer has no code");
		goto fail;
	}
	resp->err_code = c->valuestring;
	resp->err_msg = cJSON_IsString(m) ? m->valuestring : c->valuestring;
	return 0;
fail:
	admin_response_free(resp);
	return -1;
}

void admin_response_free(struct admin_response *resp)
{
	if (!resp)
		return;
	cJSON_Delete(resp->doc);
	memset(resp, 0, sizeof(*resp));
	resp->id = -1;
}

/* --- socket paths ---------------------------------------------------------------------- */

static bool admin_path_fits(const char *p)
{
	return p[0] == '/' && strlen(p) < sizeof(((struct sockaddr_un *)0)->sun_path);
}

static void admin_add_candidate(char *paths[3], size_t *n, char *p)
{
	size_t i;

	if (!p)
		return;
	if (!admin_path_fits(p)) {
		free(p);
		return;
	}
	for (i = 0; i < *n; i++)
		if (strcmp(paths[i], p) == 0) {
			free(p);
			return;
		}
	paths[(*n)++] = p;
}

size_t admin_socket_candidates(const char *configured, char *paths[3])
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	size_t n = 0;
	char *p;

	admin_add_candidate(paths, &n, strdup(configured && *configured ? configured
							   : ADMIN_DEFAULT_SOCKET));
	if (xdg && xdg[0] == '/' && asprintf(&p, "%s/par/admin.sock", xdg) >= 0)
		admin_add_candidate(paths, &n, p);
	/* The euid: the fallback belongs to whoever runs pard (and parctl as the same user). */
	if (asprintf(&p, "/tmp/par-%lu/admin.sock", (unsigned long)geteuid()) >= 0)
		admin_add_candidate(paths, &n, p);
	return n;
}

/* --- line reader ----------------------------------------------------------------------- */

#define ADMIN_LB_MIN 4096

/* Drops the line handed out by the previous call. */
static void admin_lb_consume(struct admin_linebuf *lb)
{
	if (lb->consumed == 0)
		return;
	if (lb->consumed < lb->len)
		memmove(lb->buf, lb->buf + lb->consumed, lb->len - lb->consumed);
	lb->len -= lb->consumed;
	lb->consumed = 0;
}

/* Looks for a whole line in the buffer: 1 found, 0 need more, -2 too long. While skipping
 * the rest of a too-long line, bytes up to its newline are dropped. */
static int admin_lb_scan(struct admin_linebuf *lb, char **line)
{
	char *nl;

	if (lb->len == 0)
		return 0;
	nl = memchr(lb->buf, '\n', lb->len);
	if (lb->overflow) {
		if (!nl) {
			lb->len = 0;
			return 0;
		}
		lb->consumed = (size_t)(nl - lb->buf) + 1;
		lb->overflow = false;
		admin_lb_consume(lb);
		return admin_lb_scan(lb, line);
	}
	if (nl) {
		*nl = '\0';
		lb->consumed = (size_t)(nl - lb->buf) + 1;
		*line = lb->buf;
		return 1;
	}
	if (lb->len >= ADMIN_LINE_MAX) {
		lb->len = 0;
		lb->overflow = true;
		return -2;
	}
	return 0;
}

int admin_read_line(int fd, struct admin_linebuf *lb, char **line)
{
	ssize_t r;
	size_t want;
	char *nb;
	int rc;

	*line = NULL;
	admin_lb_consume(lb);
	for (;;) {
		rc = admin_lb_scan(lb, line);
		if (rc != 0)
			return rc;
		if (lb->cap < ADMIN_LINE_MAX + 1 && lb->cap - lb->len < ADMIN_LB_MIN / 2 + 1) {
			want = lb->cap ? lb->cap * 2 : ADMIN_LB_MIN;
			if (want > ADMIN_LINE_MAX + 1)
				want = ADMIN_LINE_MAX + 1;
			nb = realloc(lb->buf, want);
			if (!nb)
				return -1;
			lb->buf = nb;
			lb->cap = want;
		}
		/* One byte stays free for the NUL that ends a line handed out at EOF. */
		r = read(fd, lb->buf + lb->len, lb->cap - 1 - lb->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			/* A last line without its newline still counts. */
			if (lb->len > 0 && !lb->overflow) {
				lb->buf[lb->len] = '\0';
				lb->consumed = lb->len;
				*line = lb->buf;
				return 1;
			}
			lb->len = 0;
			return 0;
		}
		lb->len += (size_t)r;
	}
}

void admin_linebuf_free(struct admin_linebuf *lb)
{
	if (!lb)
		return;
	free(lb->buf);
	memset(lb, 0, sizeof(*lb));
}
