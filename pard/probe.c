/* The health-check client behind `pard --probe`: one GET, short timeouts, no redirects. */
#include "probe.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>

#include "par/parse.h"
#include "par/log.h"
#include "par/redact.h"

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p, (void)ud;
	return size * n;
}

int probe_run(const char *url)
{
	char def[64];
	if (!url) {
		uint64_t port = 8080;
		const char *env = getenv("REST_PORT");
		if (env && *env && parse_uint(env, 1, 65535, &port) < 0) {
			log_emit(PAR_LOG_ERROR, "probe.config.invalid",
				 LOG_FIELDS(LF_STR("variable", "REST_PORT"), LF_STR("value", env),
					    LF_STR("rule", "must be an integer 1..65535")),
				 "REST_PORT is not a port");
			return 1;
		}
		snprintf(def, sizeof def, "http://127.0.0.1:%u/health", (unsigned)port);
		url = def;
	}
	char *shown = redact_url(url);
	int rc = 1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		goto out;
	CURL *c = curl_easy_init();
	if (!c)
		goto out_global;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 4000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	CURLcode res = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (res != CURLE_OK)
		log_emit(PAR_LOG_ERROR, "probe.failed",
			 LOG_FIELDS(LF_STR("url", shown), LF_STR("error", curl_easy_strerror(res))),
			 "probe of %s failed: %s", shown, curl_easy_strerror(res));
	else if (status != 200)
		log_emit(PAR_LOG_ERROR, "probe.unhealthy",
			 LOG_FIELDS(LF_STR("url", shown), LF_INT("status", status)),
			 "probe of %s answered %ld", shown, status);
	else
		rc = 0;
	curl_easy_cleanup(c);
out_global:
	curl_global_cleanup();
out:
	free(shown);
	return rc;
}
