/* Configuration from the environment (SPEC §2): read once, every rule checked, every
 * error collected (not just the first) so pard can log them all and exit once. */
#ifndef PAR_CONFIG_H
#define PAR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "par/faults.h"
#include "par/log.h"
#include "par/url.h"

struct par_config {
	char *agent_app_id;
	char *deployment_id;          /* NULL when unset */

	char *package_url;            /* as given (NULL when unset) */
	char *agent_package_path;     /* NULL when unset; wins over package_url */
	char *package_sha256;         /* lower-cased 64 hex, or NULL */
	bool require_sha256;
	bool allow_http;
	uint64_t max_package_size_mb;
	char *s3_bucket;
	char *aws_region;             /* AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1 */
	char *aws_endpoint_url;       /* NULL when unset */
	char *aws_endpoint_url_s3;    /* NULL when unset */
	/* AWS_ENDPOINT_URL_<SERVICE> of the verify-isolation probes (NULL when unset: then
	 * AWS_ENDPOINT_URL, then AWS's own endpoint), as the AWS SDKs name them. */
	char *aws_endpoint_url_ecs;
	char *aws_endpoint_url_elb;   /* AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2 */
	char *aws_endpoint_url_servicediscovery;
	char *aws_endpoint_url_dynamodb;
	char *aws_endpoint_url_iam;
	enum s3_addressing s3_addressing; /* PAR_S3_ADDRESSING */
	unsigned fetch_timeout_sec;   /* PAR_FETCH_TIMEOUT_SEC: all attempts of one fetch */

	uint16_t rest_port;
	uint16_t a2a_port;
	uint16_t ui_port;             /* 0 = no separate UI listener */
	bool multiplexed;
	char *base_path;              /* normalised; "" for "/", else "/a/b" (no trailing '/') */

	uint64_t boot_budget_ms;
	double boot_hard_limit_multiplier; /* 0 = no hard limit */
	unsigned boot_failure_count;
	unsigned graceful_shutdown_timeout_sec;
	unsigned drain_delay_sec;

	enum par_log_level log_level;
	enum par_log_format log_format;

	char *admin_socket;           /* as configured (fallbacks are applied when binding) */
	char *admin_group;            /* NULL when unset */
	char *admin_ro_socket;        /* NULL when unset */

	char *cache_dir;
	uint64_t cache_max_mb;
	char *state_dir;              /* default: <cache_dir>/state */
	char *wheelhouse_dir;
	bool pip_offline;

	bool enable_faults;
	char *faults_spec;            /* PAR_FAULTS as given */
	struct par_faults faults;     /* parsed; all zero unless enable_faults */
	unsigned backoff_reset_sec;
	char *ca_bundle;              /* PAR_CA_BUNDLE, else SSL_CERT_FILE, else NULL (system) */
	uint64_t max_extract_mb;
	unsigned http_max_conns_per_ip; /* PAR_HTTP_MAX_CONNS_PER_IP, 0 = no per-IP limit */
	char **cors_origins;          /* NULL-terminated list, NULL when unset */
	char *python;
	bool python_system_site_packages;

	/* Which AWS credential sources are present; the values are never stored here so that
	 * `show config` and logs cannot leak them (the fetcher reads them itself). */
	bool aws_static_keys;           /* AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY */
	bool aws_session_token;         /* AWS_SESSION_TOKEN */
	bool aws_container_credentials; /* AWS_CONTAINER_CREDENTIALS_{RELATIVE,FULL}_URI */
};

/* One problem with one variable. value is already redacted where the variable is secret
 * (and URLs lose their query string); NULL when the variable was unset. */
struct cfg_issue {
	char *variable;
	char *value;
	char *rule;
};

struct cfg_issues {
	struct cfg_issue *v;
	size_t n;
};

/* Reads the environment env ("NAME=value" strings, NULL-terminated; NULL means environ).
 * An empty value counts as unset, except for AGENT_APP_ID. Fills cfg with values or
 * defaults, appends every error to errors and every non-fatal oddity (a malformed
 * BOOT_FAILURE_COUNT, PAR_FAULTS without PAR_ENABLE_FAULTS, PACKAGE_URL shadowed by
 * AGENT_PACKAGE_PATH) to warnings. Returns the number of errors. cfg must be freed with
 * cfg_free whatever the result. */
size_t cfg_load(struct par_config *cfg, char *const *env,
		struct cfg_issues *errors, struct cfg_issues *warnings);
void cfg_free(struct par_config *cfg);
void cfg_issues_free(struct cfg_issues *issues);

/* BASE_PATH rule: adds a leading '/', drops one trailing '/', allows [A-Za-z0-9/_.-],
 * rejects "//" and "."/".." segments. On success returns a malloc'd normalised path ("" for
 * "/"); on failure NULL and *rule. */
char *cfg_normalise_base_path(const char *in, const char **rule);

/* The variables, for docs and `show config`: name, default as shown, rule. NULL-terminated. */
struct cfg_var_doc {
	const char *name;
	const char *def;
	const char *rule;
	bool secret;
};
extern const struct cfg_var_doc cfg_var_docs[];

/* The configuration as a JSON object text, secrets redacted (malloc'd). */
char *cfg_to_json(const struct par_config *cfg);

#endif
