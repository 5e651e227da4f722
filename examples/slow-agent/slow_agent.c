/* slow-agent: a native agent whose calls take a while, for drain and deadline tests:
 * `slow` sleeps (1500 ms by default) but stops at the caller's deadline, `quick` does not. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "par/agent.h"

#define SLOW_DEFAULT_MS 1500
#define SLOW_MAX_MS 600000
#define SLOW_ERR(code, msg) "{\"error\":{\"code\":\"" code "\",\"message\":\"" msg "\"}}"

static int64_t slow_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void slow_sleep_ms(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Sleeps ms, or until deadline_ms (epoch, 0 = none) when that comes first.
 * Returns 0 when the whole sleep happened, -1 when the deadline cut it short. */
static int slow_sleep_until(int64_t ms, int64_t deadline_ms)
{
	int64_t now = slow_now_ms();
	if (deadline_ms && now + ms > deadline_ms) {
		slow_sleep_ms(deadline_ms > now ? deadline_ms - now : 0);
		return -1;
	}
	slow_sleep_ms(ms);
	return 0;
}

/* "1500" or 1500: A2A parameters arrive as a map of strings. -1 when invalid. */
static int64_t slow_parse_ms(const char *s)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > SLOW_MAX_MS)
		return -1;
	return v;
}

static int64_t slow_param_ms(const char *parameters_json)
{
	cJSON *p = cJSON_Parse(parameters_json);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, "ms");
	int64_t ms = SLOW_DEFAULT_MS;
	if (cJSON_IsNumber(v))
		ms = v->valuedouble >= 0 && v->valuedouble <= SLOW_MAX_MS ? (int64_t)v->valuedouble
									   : -1;
	else if (cJSON_IsString(v))
		ms = slow_parse_ms(v->valuestring);
	else if (v)
		ms = -1;
	cJSON_Delete(p);
	return ms;
}

static char *slow_slept_json(int64_t ms)
{
	char buf[64];
	snprintf(buf, sizeof buf, "{\"slept\":%lld}", (long long)ms);
	return strdup(buf);
}

static int slow_invoke(void *state, const char *action, const char *parameters_json,
		       const char *request_id, int64_t deadline_epoch_ms, char **result_json,
		       char **error)
{
	(void)state, (void)request_id;
	if (strcmp(action, "quick") == 0) {
		*result_json = strdup("{\"quick\":true}");
		return *result_json ? PAR_AGENT_OK : PAR_AGENT_FAULT;
	}
	if (strcmp(action, "slow") != 0) {
		*error = strdup("unknown action");
		return PAR_AGENT_ERROR;
	}
	int64_t ms = slow_param_ms(parameters_json);
	if (ms < 0) {
		*error = strdup("parameters.ms must be 0..600000");
		return PAR_AGENT_ERROR;
	}
	if (slow_sleep_until(ms, deadline_epoch_ms) < 0) {
		*error = strdup("deadline exceeded");
		return PAR_AGENT_ERROR;
	}
	*result_json = slow_slept_json(ms);
	return *result_json ? PAR_AGENT_OK : PAR_AGENT_FAULT;
}

/* ms=N from a query like "a=1&ms=250"; the default when absent, -1 when invalid. */
static int64_t slow_query_ms(const char *query)
{
	for (const char *p = query; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		if (len > 3 && strncmp(p, "ms=", 3) == 0) {
			char num[16];
			if (len - 3 >= sizeof num)
				return -1;
			memcpy(num, p + 3, len - 3);
			num[len - 3] = '\0';
			return slow_parse_ms(num);
		}
		p = amp ? amp + 1 : NULL;
	}
	return SLOW_DEFAULT_MS;
}

static int slow_http(void *state, const struct par_http_request *req,
		     struct par_http_response *resp)
{
	(void)state;
	int64_t ms = -1;
	if (strcmp(req->path, "/slow") != 0 || strcmp(req->method, "GET") != 0) {
		resp->status = 404;
		resp->body = strdup(SLOW_ERR("not_found", "no such route"));
	} else if ((ms = slow_query_ms(req->query)) < 0) {
		resp->status = 400;
		resp->body = strdup(SLOW_ERR("bad_ms", "ms must be 0..600000"));
	} else if (slow_sleep_until(ms, req->deadline_epoch_ms) < 0) {
		resp->status = 504;
		resp->body = strdup(SLOW_ERR("deadline", "deadline exceeded"));
	} else {
		resp->status = 200;
		resp->body = slow_slept_json(ms);
	}
	if (!resp->body)
		return -1;
	resp->body_len = strlen(resp->body);
	return 0;
}

static int slow_init(const char *package_root, const char *config_json, void **state,
		     char **error)
{
	(void)package_root, (void)config_json, (void)error;
	*state = NULL;
	return 0;
}

static const char *const slow_actions[] = {"slow", "quick", NULL};

__attribute__((visibility("default"))) const struct par_agent_v1 par_agent_v1 = {
	.abi_version = PAR_AGENT_ABI_VERSION,
	.name = "slow-agent",
	.actions = slow_actions,
	.default_action = "slow",
	.init = slow_init,
	.invoke = slow_invoke,
	.http = slow_http,
};
