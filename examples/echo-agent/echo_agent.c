/* echo-agent: the reference native agent (SPEC §4.1) — a handful of small actions and two
 * /api routes, written against par/agent.h alone (plus cJSON for the JSON it reads). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "par/agent.h"

#define ECHO_SLEEP_MAX_MS 600000.0

struct echo_state {
	char *agent_app_id;
};

static int64_t echo_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void echo_sleep_ms(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Ownership of j passes here; NULL when printing fails. */
static char *echo_print(cJSON *j)
{
	char *s = j ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	return s;
}

/* A number, or a string holding one: A2A parameters arrive as a map of strings. */
static int echo_number(const cJSON *params, const char *key, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
	if (cJSON_IsNumber(v)) {
		*out = v->valuedouble;
		return 0;
	}
	if (!cJSON_IsString(v) || !v->valuestring[0])
		return -1;
	char *end;
	errno = 0;
	*out = strtod(v->valuestring, &end);
	return errno || *end ? -1 : 0;
}

static const char *echo_text(const cJSON *params)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, "text");
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int echo_error(char **error, const char *msg)
{
	*error = strdup(msg);
	return PAR_AGENT_ERROR;
}

static int echo_echo(const cJSON *params, char **result)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddItemToObject(r, "echo", cJSON_Duplicate(params, 1));
	*result = echo_print(r);
	return *result ? PAR_AGENT_OK : PAR_AGENT_FAULT;
}

/* Reverses by UTF-8 character, not by byte, so the result stays valid UTF-8. */
static char *echo_reverse_utf8(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	size_t w = n;
	for (size_t i = 0; i < n;) {
		size_t len = 1;
		while (i + len < n && ((unsigned char)s[i + len] & 0xC0) == 0x80)
			len++;
		w -= len;
		memcpy(out + w, s + i, len);
		i += len;
	}
	out[n] = '\0';
	return out;
}

static int echo_text_result(char *text, char **result)
{
	if (!text)
		return PAR_AGENT_FAULT;
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "text", text);
	free(text);
	*result = echo_print(r);
	return *result ? PAR_AGENT_OK : PAR_AGENT_FAULT;
}

static int echo_reverse(const cJSON *params, char **result, char **error)
{
	const char *t = echo_text(params);
	if (!t)
		return echo_error(error, "parameters.text must be a string");
	return echo_text_result(echo_reverse_utf8(t), result);
}

static int echo_upper(const cJSON *params, char **result, char **error)
{
	const char *t = echo_text(params);
	if (!t)
		return echo_error(error, "parameters.text must be a string");
	char *u = strdup(t);
	for (char *p = u; p && *p; p++)
		*p = (char)toupper((unsigned char)*p);
	return echo_text_result(u, result);
}

static int echo_sum(const cJSON *params, char **result, char **error)
{
	double a, b;
	if (echo_number(params, "a", &a) < 0 || echo_number(params, "b", &b) < 0)
		return echo_error(error, "parameters.a and parameters.b must be numbers");
	cJSON *r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "sum", a + b);
	*result = echo_print(r);
	return *result ? PAR_AGENT_OK : PAR_AGENT_FAULT;
}

/* Refuses up front a sleep that would end past the deadline: a late answer is one the
 * caller has already given up on. */
static int echo_sleep(const cJSON *params, int64_t deadline_ms, char **result, char **error)
{
	double ms = 0;
	if (cJSON_GetObjectItemCaseSensitive(params, "ms") && echo_number(params, "ms", &ms) < 0)
		return echo_error(error, "parameters.ms must be a number");
	if (!(ms >= 0 && ms <= ECHO_SLEEP_MAX_MS))  /* also refuses "nan" */
		return echo_error(error, "parameters.ms must be 0..600000");
	if (deadline_ms && echo_now_ms() + (int64_t)ms > deadline_ms)
		return echo_error(error, "deadline exceeded");
	echo_sleep_ms((int64_t)ms);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "slept", (double)(int64_t)ms);
	*result = echo_print(r);
	return *result ? PAR_AGENT_OK : PAR_AGENT_FAULT;
}

static int echo_invoke(void *state, const char *action, const char *parameters_json,
		       const char *request_id, int64_t deadline_epoch_ms, char **result_json,
		       char **error)
{
	(void)state, (void)request_id;
	cJSON *params = cJSON_Parse(parameters_json);
	int rc;
	if (!params)
		rc = echo_error(error, "parameters are not JSON");
	else if (strcmp(action, "echo") == 0)
		rc = echo_echo(params, result_json);
	else if (strcmp(action, "reverse") == 0)
		rc = echo_reverse(params, result_json, error);
	else if (strcmp(action, "upper") == 0)
		rc = echo_upper(params, result_json, error);
	else if (strcmp(action, "sum") == 0)
		rc = echo_sum(params, result_json, error);
	else if (strcmp(action, "fail") == 0)
		rc = echo_error(error, "asked to fail");
	else if (strcmp(action, "sleep") == 0)
		rc = echo_sleep(params, deadline_epoch_ms, result_json, error);
	else
		rc = echo_error(error, "unknown action");
	cJSON_Delete(params);
	return rc;
}

/* --- /api ----------------------------------------------------------------------------- */

static const char *echo_header(const struct par_http_request *req, const char *name)
{
	for (size_t i = 0; i < req->n_headers; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

static int echo_respond_json(struct par_http_response *resp, int status, cJSON *body)
{
	resp->status = status;
	resp->body = echo_print(body);
	if (!resp->body)
		return -1;
	resp->body_len = strlen(resp->body);
	return 0;
}

static int echo_hello(const struct echo_state *st, const struct par_http_request *req,
		      struct par_http_response *resp)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "hello", "world");
	cJSON_AddStringToObject(r, "requestId", req->request_id);
	cJSON_AddStringToObject(r, "agentAppId", st->agent_app_id);
	return echo_respond_json(resp, 200, r);
}

static int echo_body_back(const struct par_http_request *req, struct par_http_response *resp)
{
	const char *ct = echo_header(req, "Content-Type");
	resp->status = 200;
	resp->content_type = strdup(ct ? ct : "application/octet-stream");
	resp->body = malloc(req->body_len ? req->body_len : 1);
	if (!resp->content_type || !resp->body)
		return -1;
	memcpy(resp->body, req->body, req->body_len);
	resp->body_len = req->body_len;
	return 0;
}

static int echo_http(void *state, const struct par_http_request *req,
		     struct par_http_response *resp)
{
	if (strcmp(req->path, "/hello") == 0 && strcmp(req->method, "GET") == 0)
		return echo_hello(state, req, resp);
	if (strcmp(req->path, "/echo") == 0 && strcmp(req->method, "POST") == 0)
		return echo_body_back(req, resp);
	cJSON *r = cJSON_CreateObject();
	cJSON *e = cJSON_AddObjectToObject(r, "error");
	cJSON_AddStringToObject(e, "code", "not_found");
	cJSON_AddStringToObject(e, "message", "echo-agent has no such route");
	return echo_respond_json(resp, 404, r);
}

/* --- lifecycle ------------------------------------------------------------------------ */

static int echo_init(const char *package_root, const char *config_json, void **state,
		     char **error)
{
	(void)package_root;
	cJSON *cfg = cJSON_Parse(config_json);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(cfg, "agentAppId");
	struct echo_state *st = calloc(1, sizeof *st);
	int rc = -1;
	if (!st || !cJSON_IsString(id) || !(st->agent_app_id = strdup(id->valuestring))) {
		*error = strdup("echo-agent: the configuration has no agentAppId");
		free(st);
		goto out;
	}
	*state = st;
	rc = 0;
out:
	cJSON_Delete(cfg);
	return rc;
}

static int echo_health(void *state)
{
	return state != NULL;
}

static void echo_shutdown(void *state)
{
	struct echo_state *st = state;
	if (!st)
		return;
	free(st->agent_app_id);
	free(st);
}

static const char *const echo_actions[] = {"echo", "reverse", "upper", "sum", "fail", "sleep",
					   NULL};

__attribute__((visibility("default"))) const struct par_agent_v1 par_agent_v1 = {
	.abi_version = PAR_AGENT_ABI_VERSION,
	.name = "echo-agent",
	.actions = echo_actions,
	.default_action = "echo",
	.init = echo_init,
	.invoke = echo_invoke,
	.http = echo_http,
	.health = echo_health,
	.shutdown = echo_shutdown,
};
