/* Reads every SPEC §2 variable once and checks its rule, collecting all errors and warnings
 * (variable, value redacted where secret, rule) so pard can report them together. */
#include "par/config.h"
#include "par/parse.h"

#include <ctype.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "par/redact.h"
#include "par/url.h"

extern char **environ;

#define CFG_ID_MAX 256
#define CFG_MB_MAX 1048576 /* 1 TiB: far above any package or cache, low enough to catch typos */
#define CFG_SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
#define CFG_REGION_MAX 32

/* Rule texts: used in issues and (most of them) in cfg_var_docs, so docs and errors agree. */
#define R_BOOL "must be true/false, 1/0, yes/no or on/off (any case)"
#define R_PORT "must be an integer 1..65535 (digits only)"
#define R_UI_PORT "must be an integer 0..65535 (digits only); 0 disables the UI listener"
#define R_MB "must be an integer 1..1048576 (MB, digits only)"
#define R_ABS_PATH "must be an absolute path (starting with '/', shorter than 4096 bytes)"
#define R_PATH "must be a path shorter than 4096 bytes"
#define R_SOCKET "must be an absolute path of at most 107 bytes (the sun_path limit)"
#define R_REGION "must be 1..32 of [a-z0-9-]"
#define R_SHA256 "must be exactly 64 hex digits (any case)"
#define R_BUCKET "must be a valid S3 bucket name: 3..63 of [a-z0-9.-], alphanumeric at both ends, no '..'"
#define R_ENDPOINT "must be an http:// or https:// URL (host[:port][/path]) without credentials or query"
#define R_MULTIPLIER "must be 0 (no hard limit) or a decimal 1.0..100 (digits and one '.')"
#define R_BUDGET "must be an integer 1..3600000 (ms, digits only)"
#define R_FAILURES "must be an integer 0..1000000 (digits only); using 0"
#define R_SHUTDOWN "must be an integer 0..3600 (seconds, digits only)"
#define R_FETCH_TIMEOUT "must be an integer 1..3600 (seconds, digits only)"
#define R_S3_ADDRESSING "must be auto, path or virtual (any case)"
#define R_CONNS_PER_IP "must be an integer 0..1024 (0: no per-IP limit)"
#define R_BACKOFF_RESET "must be an integer 1..86400 (seconds, digits only)"
#define R_LOG_LEVEL "must be debug, info, warn (or warning) or error (any case)"
#define R_LOG_FORMAT "must be json or text (any case)"
#define R_GROUP "must name an existing group (looked up with getgrnam)"
#define R_PYTHON "must be a command name or path without control characters"
#define R_WILDCARD \
	"'*' is not allowed: list the exact origins (a wildcard lets any web page call the agent)"

struct cfg_ctx {
	char *const *env;
	struct par_config *cfg;
	struct cfg_issues *errors;
	struct cfg_issues *warnings;
	size_t nerrors;
};

/* Configuration is read once at startup; running out of memory there leaves nothing sensible
 * to do, so it is fatal rather than another error path in every loader. */
static _Noreturn void cfg_oom(void)
{
	static const char msg[] = "pard: out of memory while reading the configuration\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);
	(void)r;
	abort();
}

static char *cfg_xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		cfg_oom();
	return d;
}

static char *cfg_xstrndup(const char *s, size_t n)
{
	char *d = strndup(s, n);
	if (!d)
		cfg_oom();
	return d;
}

/* ---- strict parsers ------------------------------------------------------------------- */



/* Digits and at most one '.', so strtod's extras (sign, exponent, hex, inf, nan, leading
 * space) can't sneak in. */
static int cfg_parse_multiplier(const char *s, double *out)
{
	const char *p;
	char *end;
	int dots = 0;
	double d;

	if (!s || !*s)
		return -1;
	for (p = s; *p; p++) {
		if (*p == '.' && ++dots > 1)
			return -1;
		if (*p != '.' && !isdigit((unsigned char)*p))
			return -1;
	}
	d = strtod(s, &end);
	if (end == s || *end || !isfinite(d))
		return -1;
	if (d != 0.0 && (d < 1.0 || d > 100.0))
		return -1;
	*out = d;
	return 0;
}

static bool cfg_valid_segment_char(char c)
{
	return isalnum((unsigned char)c) || c == '/' || c == '_' || c == '.' || c == '-';
}

static bool cfg_has_dot_segment(const char *p)
{
	while (*p) {
		size_t n;
		p += strspn(p, "/");
		n = strcspn(p, "/");
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return true;
		p += n;
	}
	return false;
}

char *cfg_normalise_base_path(const char *in, const char **rule)
{
	const char *p;
	char *out;
	size_t n;

	if (!in)
		in = "";
	for (p = in; *p; p++) {
		if (!cfg_valid_segment_char(*p)) {
			if (rule)
				*rule = "must use only [A-Za-z0-9/_.-]";
			return NULL;
		}
	}
	if (strstr(in, "//")) {
		if (rule)
			*rule = "must not contain '//'";
		return NULL;
	}
	if (cfg_has_dot_segment(in)) {
		if (rule)
			*rule = "must not contain '.' or '..' segments";
		return NULL;
	}
	if (in[0] == '/')
		in++;
	n = strlen(in);
	if (n > 0 && in[n - 1] == '/')
		n--;
	if (n == 0)
		return cfg_xstrdup("");
	out = malloc(n + 2);
	if (!out)
		cfg_oom();
	out[0] = '/';
	memcpy(out + 1, in, n);
	out[n + 1] = '\0';
	return out;
}

/* ---- environment and issues ------------------------------------------------------------ */

static const char *cfg_env_raw(const struct cfg_ctx *c, const char *name)
{
	size_t n = strlen(name);
	char *const *e;

	for (e = c->env; e && *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

/* An empty value counts as unset (SPEC §2), so `FOO=` in a task definition means default. */
static const char *cfg_get(const struct cfg_ctx *c, const char *name)
{
	const char *v = cfg_env_raw(c, name);
	return v && *v ? v : NULL;
}

static bool cfg_is_url_var(const char *name)
{
	return strcmp(name, "PACKAGE_URL") == 0 || strncmp(name, "AWS_ENDPOINT_URL", 16) == 0 ||
	       strcmp(name, "PAR_CORS_ORIGINS") == 0;
}

/* The value as it may be shown: secrets hidden, URLs (even malformed ones) without query. */
static char *cfg_shown_value(const char *name, const char *value)
{
	char *v;

	if (!value)
		return NULL;
	if (redact_is_secret_name(name))
		v = strdup(REDACTED);
	else if (cfg_is_url_var(name))
		v = redact_url(value);
	else
		v = redact_value(name, value);
	if (!v)
		cfg_oom();
	return v;
}

static void cfg_issue_push(struct cfg_issues *list, const char *name, const char *value,
			   const char *rule)
{
	struct cfg_issue *v;

	if (!list)
		return;
	v = realloc(list->v, (list->n + 1) * sizeof(*v));
	if (!v)
		cfg_oom();
	list->v = v;
	v[list->n].variable = cfg_xstrdup(name);
	v[list->n].value = cfg_shown_value(name, value);
	v[list->n].rule = cfg_xstrdup(rule);
	list->n++;
}

static void cfg_error(struct cfg_ctx *c, const char *name, const char *value, const char *rule)
{
	cfg_issue_push(c->errors, name, value, rule);
	c->nerrors++;
}

static void cfg_warn(struct cfg_ctx *c, const char *name, const char *value, const char *rule)
{
	cfg_issue_push(c->warnings, name, value, rule);
}

void cfg_issues_free(struct cfg_issues *issues)
{
	size_t i;

	if (!issues)
		return;
	for (i = 0; i < issues->n; i++) {
		free(issues->v[i].variable);
		free(issues->v[i].value);
		free(issues->v[i].rule);
	}
	free(issues->v);
	issues->v = NULL;
	issues->n = 0;
}

/* ---- generic loaders -------------------------------------------------------------------- */

static uint64_t cfg_load_uint(struct cfg_ctx *c, const char *name, uint64_t def, uint64_t min,
			      uint64_t max, const char *rule)
{
	const char *v = cfg_get(c, name);
	uint64_t out;

	if (!v)
		return def;
	if (parse_uint(v, min, max, &out) == 0)
		return out;
	cfg_error(c, name, v, rule);
	return def;
}

static bool cfg_load_bool(struct cfg_ctx *c, const char *name, bool def)
{
	const char *v = cfg_get(c, name);
	bool out;

	if (!v)
		return def;
	if (parse_bool(v, &out) == 0)
		return out;
	cfg_error(c, name, v, R_BOOL);
	return def;
}

static char *cfg_dup_or_null(const char *s)
{
	return s ? cfg_xstrdup(s) : NULL;
}

/* An absolute path below PATH_MAX, else def (copied; NULL for none). */
static char *cfg_load_abs_path(struct cfg_ctx *c, const char *name, const char *def)
{
	const char *v = cfg_get(c, name);

	if (!v)
		return cfg_dup_or_null(def);
	if (v[0] != '/' || strlen(v) >= PATH_MAX) {
		cfg_error(c, name, v, R_ABS_PATH);
		return cfg_dup_or_null(def);
	}
	return cfg_xstrdup(v);
}

static bool cfg_has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* AGENT_APP_ID and DEPLOYMENT_ID go into every log line and into file names derived from
 * them, so they are taken exactly as written or refused. */
static const char *cfg_id_rule(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n > CFG_ID_MAX)
		return "must be 1..256 bytes";
	if (cfg_has_control(v))
		return "must not contain control characters";
	if (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1]))
		return "must not have leading or trailing whitespace (it is not trimmed)";
	return NULL;
}

/* ---- per-area loaders ------------------------------------------------------------------- */

static void cfg_load_identity(struct cfg_ctx *c)
{
	const char *app = cfg_env_raw(c, "AGENT_APP_ID");
	const char *dep = cfg_get(c, "DEPLOYMENT_ID");
	const char *why;

	if (!app) {
		cfg_error(c, "AGENT_APP_ID", NULL, "is required (1..256 bytes)");
	} else if ((why = cfg_id_rule(app))) {
		cfg_error(c, "AGENT_APP_ID", app, why);
	} else {
		c->cfg->agent_app_id = cfg_xstrdup(app);
	}
	if (!dep)
		return;
	if ((why = cfg_id_rule(dep)))
		cfg_error(c, "DEPLOYMENT_ID", dep, why);
	else
		c->cfg->deployment_id = cfg_xstrdup(dep);
}

static void cfg_load_sha256(struct cfg_ctx *c)
{
	const char *v = cfg_get(c, "PACKAGE_SHA256");
	size_t i;
	char *lower;

	if (!v)
		return;
	if (strlen(v) != 64 || strspn(v, "0123456789abcdefABCDEF") != 64) {
		cfg_error(c, "PACKAGE_SHA256", v, R_SHA256);
		return;
	}
	lower = cfg_xstrdup(v);
	for (i = 0; lower[i]; i++)
		lower[i] = (char)tolower((unsigned char)lower[i]);
	c->cfg->package_sha256 = lower;
}

static void cfg_load_bucket(struct cfg_ctx *c)
{
	const char *v = cfg_get(c, "S3_BUCKET");

	if (!v)
		return;
	if (!url_valid_bucket(v)) {
		cfg_error(c, "S3_BUCKET", v, R_BUCKET);
		return;
	}
	c->cfg->s3_bucket = cfg_xstrdup(v);
}

static void cfg_load_package_url(struct cfg_ctx *c, const char *v)
{
	struct par_url u;
	const char *why;

	if (url_parse(v, c->cfg->allow_http, &u, &why) != 0) {
		cfg_error(c, "PACKAGE_URL", v, why);
		return;
	}
	if (u.scheme == URL_S3 && c->cfg->s3_bucket && strcmp(u.bucket, c->cfg->s3_bucket) != 0)
		cfg_error(c, "PACKAGE_URL", v, "s3:// bucket must be the one named in S3_BUCKET");
	else
		c->cfg->package_url = cfg_xstrdup(v);
	url_free(&u);
}

/* Where the package comes from; needs allow_http and s3_bucket already loaded. */
static void cfg_load_s3_addressing(struct cfg_ctx *c)
{
	static const char *const names[] = {"auto", "path", "virtual"};
	const char *v = cfg_get(c, "PAR_S3_ADDRESSING");

	c->cfg->s3_addressing = S3_ADDR_AUTO;
	if (!v)
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(v, names[i]) == 0) {
			c->cfg->s3_addressing = (enum s3_addressing)i;
			return;
		}
	}
	cfg_error(c, "PAR_S3_ADDRESSING", v, R_S3_ADDRESSING);
}

static void cfg_load_package(struct cfg_ctx *c)
{
	const char *path = cfg_get(c, "AGENT_PACKAGE_PATH");
	const char *url = cfg_get(c, "PACKAGE_URL");

	if (path) {
		if (strlen(path) >= PATH_MAX)
			cfg_error(c, "AGENT_PACKAGE_PATH", path, R_PATH);
		else
			c->cfg->agent_package_path = cfg_xstrdup(path);
		if (url)
			cfg_warn(c, "PACKAGE_URL", url, "ignored: AGENT_PACKAGE_PATH is set and wins");
	} else if (url) {
		cfg_load_package_url(c, url);
	} else {
		cfg_error(c, "PACKAGE_URL", NULL,
			  "one of PACKAGE_URL or AGENT_PACKAGE_PATH is required");
	}
	cfg_load_sha256(c);
	cfg_load_s3_addressing(c);
	c->cfg->fetch_timeout_sec = (unsigned)cfg_load_uint(c, "PAR_FETCH_TIMEOUT_SEC", 120, 1, 3600,
							    R_FETCH_TIMEOUT);
	if (c->cfg->require_sha256 && !path && url && !cfg_get(c, "PACKAGE_SHA256"))
		cfg_error(c, "PACKAGE_SHA256", NULL,
			  "is required: PAR_REQUIRE_SHA256 is true and the package comes from "
			  "PACKAGE_URL");
}

static bool cfg_valid_region(const char *v)
{
	size_t n = strlen(v);
	return n >= 1 && n <= CFG_REGION_MAX && strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static void cfg_load_region(struct cfg_ctx *c)
{
	const char *name = "AWS_REGION";
	const char *v = cfg_get(c, name);

	/* Like the AWS SDKs, AWS_DEFAULT_REGION is only a fallback, so it is only checked when
	 * it is the one used. */
	if (!v) {
		name = "AWS_DEFAULT_REGION";
		v = cfg_get(c, name);
	}
	if (v && cfg_valid_region(v)) {
		c->cfg->aws_region = cfg_xstrdup(v);
		return;
	}
	if (v)
		cfg_error(c, name, v, R_REGION);
	c->cfg->aws_region = cfg_xstrdup("us-east-1");
}

/* Endpoints and origins are web URLs only, so a wrong scheme gets their rule rather than the
 * package URL's "s3:// or https://". */
static bool cfg_is_web_url(const char *v)
{
	return strncasecmp(v, "https://", 8) == 0 || strncasecmp(v, "http://", 7) == 0;
}

static char *cfg_load_endpoint(struct cfg_ctx *c, const char *name)
{
	const char *v = cfg_get(c, name);
	struct par_url u;
	const char *why;
	char *out = NULL;

	if (!v)
		return NULL;
	if (!cfg_is_web_url(v)) {
		cfg_error(c, name, v, R_ENDPOINT);
		return NULL;
	}
	if (url_parse(v, true, &u, &why) != 0) {
		cfg_error(c, name, v, why);
		return NULL;
	}
	if (u.query)
		cfg_error(c, name, v, R_ENDPOINT);
	else
		out = cfg_xstrdup(v);
	url_free(&u);
	return out;
}

/* Only presence is kept: the fetcher reads the values itself, so they can't reach a log. */
static void cfg_load_credentials(struct cfg_ctx *c)
{
	const char *key = cfg_get(c, "AWS_ACCESS_KEY_ID");
	const char *secret = cfg_get(c, "AWS_SECRET_ACCESS_KEY");
	const char *token = cfg_get(c, "AWS_SESSION_TOKEN");

	if (key && !secret)
		cfg_error(c, "AWS_ACCESS_KEY_ID", key,
			  "is set without AWS_SECRET_ACCESS_KEY: set both or neither");
	if (secret && !key)
		cfg_error(c, "AWS_SECRET_ACCESS_KEY", secret,
			  "is set without AWS_ACCESS_KEY_ID: set both or neither");
	/* The SDKs ignore a lone session token; refusing to boot over it would break setups
	 * that work with the Python runtime, so it is only a warning. */
	if (token && !(key && secret))
		cfg_warn(c, "AWS_SESSION_TOKEN", token,
			 "ignored without AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
	c->cfg->aws_static_keys = key && secret;
	c->cfg->aws_session_token = key && secret && token;
	c->cfg->aws_container_credentials =
		cfg_get(c, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") ||
		cfg_get(c, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
}

struct cfg_port {
	const char *name;
	const char *raw; /* NULL when the default is used */
	uint16_t value;
	bool valid;
};

static struct cfg_port cfg_load_port(struct cfg_ctx *c, const char *name, uint16_t def,
				     bool zero_ok)
{
	struct cfg_port p = {name, cfg_get(c, name), def, true};
	uint64_t v;

	if (!p.raw)
		return p;
	if (parse_uint(p.raw, zero_ok ? 0 : 1, 65535, &v) != 0) {
		cfg_error(c, name, p.raw, zero_ok ? R_UI_PORT : R_PORT);
		p.valid = false;
		return p;
	}
	p.value = (uint16_t)v;
	return p;
}

/* A clash is reported once, on the variable the operator set (the later one when both are),
 * and not at all when either port is already invalid. */
static void cfg_check_port_pair(struct cfg_ctx *c, const struct cfg_port *a,
				const struct cfg_port *b, const char *why)
{
	const struct cfg_port *named, *other;
	char rule[160];

	if (!a->valid || !b->valid || a->value == 0 || a->value != b->value)
		return;
	named = b->raw ? b : a;
	other = named == b ? a : b;
	snprintf(rule, sizeof(rule), "must differ from %s (both are %u)%s", other->name,
		 (unsigned)a->value, why);
	cfg_error(c, named->name, named->raw, rule);
}

static void cfg_load_ports(struct cfg_ctx *c)
{
	struct par_config *cfg = c->cfg;
	struct cfg_port rest = cfg_load_port(c, "REST_PORT", 8080, false);
	struct cfg_port a2a = cfg_load_port(c, "A2A_PORT", 50051, false);
	struct cfg_port ui = cfg_load_port(c, "UI_PORT", 3000, true);

	cfg->multiplexed = cfg_load_bool(c, "MULTIPLEXED", true);
	cfg_check_port_pair(c, &rest, &a2a, "");
	if (!cfg->multiplexed)
		cfg_check_port_pair(c, &rest, &ui, " unless MULTIPLEXED is true");
	cfg_check_port_pair(c, &a2a, &ui, "");
	cfg->rest_port = rest.value;
	cfg->a2a_port = a2a.value;
	cfg->ui_port = ui.value;
}

static void cfg_load_base_path(struct cfg_ctx *c)
{
	const char *v = cfg_get(c, "BASE_PATH");
	const char *why = NULL;
	char *p = cfg_normalise_base_path(v ? v : "/", &why);

	if (!p) {
		cfg_error(c, "BASE_PATH", v, why);
		p = cfg_xstrdup("");
	}
	c->cfg->base_path = p;
}

static void cfg_load_timing(struct cfg_ctx *c)
{
	struct par_config *cfg = c->cfg;
	const char *v;
	uint64_t n = 0;

	cfg->boot_budget_ms = cfg_load_uint(c, "BOOT_BUDGET_MS", 5000, 1, 3600000, R_BUDGET);
	cfg->boot_hard_limit_multiplier = 2.0;
	v = cfg_get(c, "BOOT_HARD_LIMIT_MULTIPLIER");
	if (v && cfg_parse_multiplier(v, &cfg->boot_hard_limit_multiplier) != 0)
		cfg_error(c, "BOOT_HARD_LIMIT_MULTIPLIER", v, R_MULTIPLIER);
	/* SPEC §6.4: a malformed failure count must not stop the boot. */
	v = cfg_get(c, "BOOT_FAILURE_COUNT");
	if (v && parse_uint(v, 0, 1000000, &n) != 0) {
		cfg_warn(c, "BOOT_FAILURE_COUNT", v, R_FAILURES);
		n = 0;
	}
	cfg->boot_failure_count = v ? (unsigned)n : 0;
	cfg->graceful_shutdown_timeout_sec =
		(unsigned)cfg_load_uint(c, "GRACEFUL_SHUTDOWN_TIMEOUT_SEC", 30, 0, 3600, R_SHUTDOWN);
	cfg->drain_delay_sec =
		(unsigned)cfg_load_uint(c, "PAR_DRAIN_DELAY_SEC", 0, 0, 3600, R_SHUTDOWN);
	cfg->backoff_reset_sec = (unsigned)cfg_load_uint(c, "PAR_BACKOFF_RESET_SEC", 60, 1, 86400,
							 R_BACKOFF_RESET);
	cfg->http_max_conns_per_ip = (unsigned)cfg_load_uint(c, "PAR_HTTP_MAX_CONNS_PER_IP", 256, 0,
							     1024, R_CONNS_PER_IP);
}

static void cfg_load_logging(struct cfg_ctx *c)
{
	const char *lvl = cfg_get(c, "LOG_LEVEL");
	const char *fmt = cfg_get(c, "LOG_FORMAT");

	c->cfg->log_level = PAR_LOG_INFO;
	c->cfg->log_format = PAR_LOG_JSON;
	if (lvl && log_parse_level(lvl, &c->cfg->log_level) != 0)
		cfg_error(c, "LOG_LEVEL", lvl, R_LOG_LEVEL);
	if (fmt && log_parse_format(fmt, &c->cfg->log_format) != 0)
		cfg_error(c, "LOG_FORMAT", fmt, R_LOG_FORMAT);
}

static char *cfg_load_socket(struct cfg_ctx *c, const char *name, const char *def)
{
	const char *v = cfg_get(c, name);

	if (!v)
		return cfg_dup_or_null(def);
	if (v[0] != '/' || strlen(v) > CFG_SUN_PATH_MAX) {
		cfg_error(c, name, v, R_SOCKET);
		return cfg_dup_or_null(def);
	}
	return cfg_xstrdup(v);
}

static void cfg_load_admin(struct cfg_ctx *c)
{
	struct par_config *cfg = c->cfg;
	const char *group = cfg_get(c, "PAR_ADMIN_GROUP");

	cfg->admin_socket = cfg_load_socket(c, "PAR_ADMIN_SOCKET", "/run/par/admin.sock");
	cfg->admin_ro_socket = cfg_load_socket(c, "PAR_ADMIN_RO_SOCKET", NULL);
	if (cfg->admin_ro_socket && strcmp(cfg->admin_ro_socket, cfg->admin_socket) == 0) {
		cfg_error(c, "PAR_ADMIN_RO_SOCKET", cfg->admin_ro_socket,
			  "must differ from PAR_ADMIN_SOCKET");
		free(cfg->admin_ro_socket);
		cfg->admin_ro_socket = NULL;
	}
	if (!group)
		return;
	/* getgrnam is not thread-safe, but configuration is read once before any thread. */
	if (!getgrnam(group))
		cfg_error(c, "PAR_ADMIN_GROUP", group, R_GROUP);
	else
		cfg->admin_group = cfg_xstrdup(group);
}

static char *cfg_default_state_dir(const char *cache_dir)
{
	size_t n = strlen(cache_dir);
	const char *sep = n > 0 && cache_dir[n - 1] == '/' ? "" : "/";
	size_t len = n + strlen(sep) + sizeof("state");
	char *out = malloc(len);

	if (!out)
		cfg_oom();
	snprintf(out, len, "%s%sstate", cache_dir, sep);
	return out;
}

static void cfg_load_storage(struct cfg_ctx *c)
{
	struct par_config *cfg = c->cfg;
	const char *name = "PAR_CA_BUNDLE";
	const char *ca = cfg_get(c, name);

	cfg->cache_dir = cfg_load_abs_path(c, "PAR_CACHE_DIR", "/var/cache/par");
	cfg->cache_max_mb = cfg_load_uint(c, "PAR_CACHE_MAX_MB", 1024, 1, CFG_MB_MAX, R_MB);
	cfg->state_dir = cfg_load_abs_path(c, "PAR_STATE_DIR", NULL);
	if (!cfg->state_dir)
		cfg->state_dir = cfg_default_state_dir(cfg->cache_dir);
	cfg->wheelhouse_dir = cfg_load_abs_path(c, "WHEELHOUSE_DIR", NULL);
	cfg->max_extract_mb = cfg_load_uint(c, "PAR_MAX_EXTRACT_MB", 1024, 1, CFG_MB_MAX, R_MB);
	if (!ca) {
		name = "SSL_CERT_FILE";
		ca = cfg_get(c, name);
	}
	if (ca && strlen(ca) >= PATH_MAX)
		cfg_error(c, name, ca, R_PATH);
	else
		cfg->ca_bundle = cfg_dup_or_null(ca);
}

static void cfg_load_python(struct cfg_ctx *c)
{
	const char *v = cfg_get(c, "PAR_PYTHON");

	c->cfg->python = cfg_xstrdup("python3");
	if (v && cfg_has_control(v)) {
		cfg_error(c, "PAR_PYTHON", v, R_PYTHON);
	} else if (v) {
		free(c->cfg->python);
		c->cfg->python = cfg_xstrdup(v);
	}
	c->cfg->python_system_site_packages =
		cfg_load_bool(c, "PAR_PYTHON_SYSTEM_SITE_PACKAGES", false);
	c->cfg->pip_offline = cfg_load_bool(c, "PAR_PIP_OFFLINE", false);
}

static void cfg_load_faults(struct cfg_ctx *c)
{
	const char *enable = cfg_get(c, "PAR_ENABLE_FAULTS");
	const char *spec = cfg_get(c, "PAR_FAULTS");
	const char *why = NULL;

	c->cfg->enable_faults = cfg_load_bool(c, "PAR_ENABLE_FAULTS", false);
	if (!spec)
		return;
	c->cfg->faults_spec = cfg_xstrdup(spec);
	if (!c->cfg->enable_faults) {
		/* A malformed PAR_ENABLE_FAULTS is already an error; don't pile a warning on it. */
		if (!enable || parse_bool(enable, NULL) == 0)
			cfg_warn(c, "PAR_FAULTS", spec, "ignored: PAR_ENABLE_FAULTS is not true");
		return;
	}
	if (faults_parse(spec, &c->cfg->faults, &why) != 0)
		cfg_error(c, "PAR_FAULTS", spec, why);
}

/* ---- CORS ----------------------------------------------------------------------------- */

/* Checks one trimmed origin; returns NULL when it is fine, else the rule (in buf if built). */
static const char *cfg_cors_origin_rule(const char *o, char *buf, size_t n)
{
	struct par_url u;
	const char *why, *rest;

	if (*o == '\0')
		return "must not contain an empty origin (a stray ',')";
	if (strchr(o, '*'))
		return R_WILDCARD;
	if (!cfg_is_web_url(o))
		return "each origin must be http(s)://host[:port]";
	if (url_parse(o, true, &u, &why) != 0) {
		snprintf(buf, n, "each origin must be http(s)://host[:port]: %s", why);
		return buf;
	}
	url_free(&u);
	rest = strstr(o, "://") + 3;
	if (strpbrk(rest, "/?"))
		return "each origin must be http(s)://host[:port] with no path, not even '/'";
	return NULL;
}

static char *cfg_lower_dup(const char *s, size_t n)
{
	char *d = cfg_xstrndup(s, n);
	size_t i;

	for (i = 0; d[i]; i++)
		d[i] = (char)tolower((unsigned char)d[i]);
	return d;
}

static void cfg_free_list(char **list)
{
	size_t i;

	if (!list)
		return;
	for (i = 0; list[i]; i++)
		free(list[i]);
	free(list);
}

/* Checks the origin in p (len bytes, spaces around it allowed); returns it lower-cased, or
 * NULL after recording the error. Browsers send scheme and host in lower case. */
static char *cfg_cors_item(struct cfg_ctx *c, const char *p, size_t len)
{
	char buf[256];
	const char *why;
	char *item, *out = NULL;

	while (len > 0 && (*p == ' ' || *p == '\t'))
		p++, len--;
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	item = cfg_xstrndup(p, len);
	why = cfg_cors_origin_rule(item, buf, sizeof(buf));
	if (why)
		cfg_error(c, "PAR_CORS_ORIGINS", item, why);
	else
		out = cfg_lower_dup(item, len);
	free(item);
	return out;
}

/* Every bad origin is reported; one bad origin drops the whole list (no partial CORS). */
static void cfg_load_cors(struct cfg_ctx *c)
{
	const char *v = cfg_get(c, "PAR_CORS_ORIGINS");
	size_t cap = 2, n = 0, before = c->nerrors;
	const char *p;
	char **list;

	if (!v)
		return;
	for (p = v; *p; p++)
		cap += *p == ',';
	list = calloc(cap, sizeof(*list));
	if (!list)
		cfg_oom();
	for (p = v;; p += strcspn(p, ",") + 1) {
		char *item = cfg_cors_item(c, p, strcspn(p, ","));
		if (item)
			list[n++] = item;
		if (p[strcspn(p, ",")] == '\0')
			break;
	}
	if (c->nerrors != before) {
		cfg_free_list(list);
		return;
	}
	c->cfg->cors_origins = list;
}

/* ---- cfg_load / cfg_free ---------------------------------------------------------------- */

size_t cfg_load(struct par_config *cfg, char *const *env, struct cfg_issues *errors,
		struct cfg_issues *warnings)
{
	struct cfg_ctx c = {env ? env : environ, cfg, errors, warnings, 0};

	memset(cfg, 0, sizeof(*cfg));
	cfg_load_identity(&c);
	cfg->allow_http = cfg_load_bool(&c, "PAR_ALLOW_HTTP", false);
	cfg->require_sha256 = cfg_load_bool(&c, "PAR_REQUIRE_SHA256", false);
	cfg_load_bucket(&c);
	cfg_load_package(&c);
	cfg->max_package_size_mb =
		cfg_load_uint(&c, "MAX_PACKAGE_SIZE_MB", 100, 1, CFG_MB_MAX, R_MB);
	cfg_load_region(&c);
	cfg->aws_endpoint_url = cfg_load_endpoint(&c, "AWS_ENDPOINT_URL");
	cfg->aws_endpoint_url_s3 = cfg_load_endpoint(&c, "AWS_ENDPOINT_URL_S3");
	cfg->aws_endpoint_url_ecs = cfg_load_endpoint(&c, "AWS_ENDPOINT_URL_ECS");
	cfg->aws_endpoint_url_elb =
		cfg_load_endpoint(&c, "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2");
	cfg->aws_endpoint_url_servicediscovery =
		cfg_load_endpoint(&c, "AWS_ENDPOINT_URL_SERVICEDISCOVERY");
	cfg->aws_endpoint_url_dynamodb = cfg_load_endpoint(&c, "AWS_ENDPOINT_URL_DYNAMODB");
	cfg->aws_endpoint_url_iam = cfg_load_endpoint(&c, "AWS_ENDPOINT_URL_IAM");
	cfg_load_credentials(&c);
	cfg_load_ports(&c);
	cfg_load_base_path(&c);
	cfg_load_timing(&c);
	cfg_load_logging(&c);
	cfg_load_admin(&c);
	cfg_load_storage(&c);
	cfg_load_faults(&c);
	cfg_load_cors(&c);
	cfg_load_python(&c);
	return c.nerrors;
}

void cfg_free(struct par_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->agent_app_id);
	free(cfg->deployment_id);
	free(cfg->package_url);
	free(cfg->agent_package_path);
	free(cfg->package_sha256);
	free(cfg->s3_bucket);
	free(cfg->aws_region);
	free(cfg->aws_endpoint_url);
	free(cfg->aws_endpoint_url_s3);
	free(cfg->aws_endpoint_url_ecs);
	free(cfg->aws_endpoint_url_elb);
	free(cfg->aws_endpoint_url_servicediscovery);
	free(cfg->aws_endpoint_url_dynamodb);
	free(cfg->aws_endpoint_url_iam);
	free(cfg->base_path);
	free(cfg->admin_socket);
	free(cfg->admin_group);
	free(cfg->admin_ro_socket);
	free(cfg->cache_dir);
	free(cfg->state_dir);
	free(cfg->wheelhouse_dir);
	free(cfg->faults_spec);
	free(cfg->ca_bundle);
	cfg_free_list(cfg->cors_origins);
	free(cfg->python);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---- docs ------------------------------------------------------------------------------- */

const struct cfg_var_doc cfg_var_docs[] = {
	{"AGENT_APP_ID", "(required)",
	 "1..256 bytes, no control characters, no leading/trailing whitespace (not trimmed); "
	 "empty is an error", false},
	{"DEPLOYMENT_ID", "(unset)", "optional; same rule as AGENT_APP_ID", false},
	{"PACKAGE_URL", "(unset)",
	 "s3://bucket/key or https://host[:port]/path, scheme any case; http:// only with "
	 "PAR_ALLOW_HTTP; no user:pass@, no '#'; logged without its query", false},
	{"AGENT_PACKAGE_PATH", "(unset)",
	 "local .apkg or extracted directory (absolute or relative; checked at boot); wins over "
	 "PACKAGE_URL (warning); one of the two is required", false},
	{"PACKAGE_SHA256", "(unset)",
	 "64 hex digits, any case (stored lower-case); required when PAR_REQUIRE_SHA256 is true "
	 "and the package comes from PACKAGE_URL", false},
	{"PAR_REQUIRE_SHA256", "false", "boolean: true/false, 1/0, yes/no, on/off (any case)", false},
	{"PAR_ALLOW_HTTP", "false", "boolean; true admits http:// package URLs (local testing)", false},
	{"MAX_PACKAGE_SIZE_MB", "100", "integer 1..1048576", false},
	{"S3_BUCKET", "(unset)",
	 "S3 bucket name (3..63 of [a-z0-9.-], alphanumeric ends, no '..'); an s3:// PACKAGE_URL "
	 "must name this bucket", false},
	{"AWS_REGION", "us-east-1", "1..32 of [a-z0-9-]", false},
	{"AWS_DEFAULT_REGION", "us-east-1", "used only when AWS_REGION is unset; same rule", false},
	{"AWS_ENDPOINT_URL", "(unset)",
	 "http(s)://host[:port][/path], no credentials or query; S3 uses path-style addressing",
	 false},
	{"AWS_ENDPOINT_URL_S3", "(unset)", "same rule as AWS_ENDPOINT_URL; wins over it for S3",
	 false},
	{"AWS_ENDPOINT_URL_ECS", "(unset)",
	 "same rule; verify-isolation's ECS probe (else AWS_ENDPOINT_URL, else AWS)", false},
	{"AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", "(unset)",
	 "same rule; verify-isolation's Elastic Load Balancing probe", false},
	{"AWS_ENDPOINT_URL_SERVICEDISCOVERY", "(unset)",
	 "same rule; verify-isolation's Cloud Map probe", false},
	{"AWS_ENDPOINT_URL_DYNAMODB", "(unset)", "same rule; verify-isolation's DynamoDB probe",
	 false},
	{"AWS_ENDPOINT_URL_IAM", "(unset)",
	 "same rule; verify-isolation's IAM probe (signed for us-east-1)", false},
	{"PAR_S3_ADDRESSING", "auto",
	 "auto, path or virtual: how s3:// becomes an HTTP URL; auto is path-style with an "
	 "AWS_ENDPOINT_URL*, virtual-host style against AWS", false},
	{"PAR_FETCH_TIMEOUT_SEC", "120",
	 "integer 1..3600: all attempts of one package download, retries included", false},
	{"AWS_ACCESS_KEY_ID", "(unset)", "set together with AWS_SECRET_ACCESS_KEY or not at all",
	 true},
	{"AWS_SECRET_ACCESS_KEY", "(unset)", "set together with AWS_ACCESS_KEY_ID or not at all",
	 true},
	{"AWS_SESSION_TOKEN", "(unset)", "used with the two keys above; alone it is ignored (warning)",
	 true},
	{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "(unset)",
	 "ECS credentials endpoint, used when no static keys are set", true},
	{"AWS_CONTAINER_CREDENTIALS_FULL_URI", "(unset)",
	 "credentials endpoint URL, used when no static keys are set", true},
	{"AWS_CONTAINER_AUTHORIZATION_TOKEN", "(unset)", "token sent to the FULL_URI endpoint", true},
	{"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "(unset)", "file holding that token", true},
	{"REST_PORT", "8080",
	 "integer 1..65535 (digits only); distinct from A2A_PORT and UI_PORT (may equal UI_PORT "
	 "when MULTIPLEXED)", false},
	{"A2A_PORT", "50051", "integer 1..65535 (digits only); distinct from the other ports", false},
	{"UI_PORT", "3000",
	 "integer 0..65535 (digits only); 0 disables the separate UI listener; distinct from "
	 "A2A_PORT, and from REST_PORT unless MULTIPLEXED", false},
	{"MULTIPLEXED", "true", "boolean; true also serves the UI on REST_PORT under {BASE}/ui/",
	 false},
	{"BASE_PATH", "/",
	 "[A-Za-z0-9/_.-], no '//', no '.'/'..' segments; normalised to a leading '/' and no "
	 "trailing '/'", false},
	{"BOOT_BUDGET_MS", "5000", "integer 1..3600000; exceeding it is a warning and a metric", false},
	{"BOOT_HARD_LIMIT_MULTIPLIER", "2.0",
	 "0 (no hard limit) or a decimal 1.0..100 (digits and one '.')", false},
	{"BOOT_FAILURE_COUNT", "0", "integer 0..1000000; a malformed value is a warning and counts as 0",
	 false},
	{"GRACEFUL_SHUTDOWN_TIMEOUT_SEC", "30", "integer 0..3600", false},
	{"PAR_DRAIN_DELAY_SEC", "0", "integer 0..3600", false},
	{"LOG_LEVEL", "info", "debug, info, warn (or warning), error; any case", false},
	{"LOG_FORMAT", "json", "json or text; any case", false},
	{"PAR_ADMIN_SOCKET", "/run/par/admin.sock", "absolute path of at most 107 bytes", false},
	{"PAR_ADMIN_GROUP", "(unset)", "name of an existing group", false},
	{"PAR_ADMIN_RO_SOCKET", "(unset)",
	 "absolute path of at most 107 bytes, not the same as PAR_ADMIN_SOCKET", false},
	{"PAR_CACHE_DIR", "/var/cache/par", "absolute path", false},
	{"PAR_CACHE_MAX_MB", "1024", "integer 1..1048576", false},
	{"PAR_STATE_DIR", "$PAR_CACHE_DIR/state", "absolute path", false},
	{"WHEELHOUSE_DIR", "(unset)", "absolute path", false},
	{"PAR_PIP_OFFLINE", "false", "boolean; true adds pip --no-index", false},
	{"PAR_ENABLE_FAULTS", "false", "boolean; true honours PAR_FAULTS", false},
	{"PAR_FAULTS", "(unset)",
	 "comma-separated boot.delay=MS, rest.latency=MS, fetch.error, fetch.delay=MS, "
	 "extract.error (MS 0..600000, each once); ignored (warning) without PAR_ENABLE_FAULTS",
	 false},
	{"PAR_BACKOFF_RESET_SEC", "60", "integer 1..86400", false},
	{"PAR_CA_BUNDLE", "(system)", "path to a CA file", false},
	{"SSL_CERT_FILE", "(system)", "used when PAR_CA_BUNDLE is unset", false},
	{"PAR_MAX_EXTRACT_MB", "1024", "integer 1..1048576", false},
	{"PAR_HTTP_MAX_CONNS_PER_IP", "256",
	 "integer 0..1024: open connections one client address may hold on REST and on the UI "
	 "(0: no limit; behind a load balancer its addresses are the clients)", false},
	{"PAR_CORS_ORIGINS", "(unset)",
	 "comma-separated http(s)://host[:port] origins (no path, no '*'; stored lower-case)",
	 false},
	{"PAR_PYTHON", "python3", "interpreter command or path, no control characters", false},
	{"PAR_PYTHON_SYSTEM_SITE_PACKAGES", "false",
	 "boolean; true lets the agent's venv see the image's packages", false},
	{NULL, NULL, NULL, false},
};

/* ---- JSON -------------------------------------------------------------------------------- */

static void cfg_json_str(cJSON *o, const char *key, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, key, v);
	else
		cJSON_AddNullToObject(o, key);
}

/* URLs are shown without userinfo and query: a presigned URL's signature is a credential. */
static void cfg_json_url(cJSON *o, const char *key, const char *v)
{
	char *r;

	if (!v) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	r = redact_url(v);
	cfg_json_str(o, key, r ? r : REDACTED);
	free(r);
}

static void cfg_json_package(cJSON *o, const struct par_config *cfg)
{
	cfg_json_str(o, "AGENT_APP_ID", cfg->agent_app_id);
	cfg_json_str(o, "DEPLOYMENT_ID", cfg->deployment_id);
	cfg_json_url(o, "PACKAGE_URL", cfg->package_url);
	cfg_json_str(o, "AGENT_PACKAGE_PATH", cfg->agent_package_path);
	cfg_json_str(o, "PACKAGE_SHA256", cfg->package_sha256);
	cJSON_AddBoolToObject(o, "PAR_REQUIRE_SHA256", cfg->require_sha256);
	cJSON_AddBoolToObject(o, "PAR_ALLOW_HTTP", cfg->allow_http);
	cJSON_AddNumberToObject(o, "MAX_PACKAGE_SIZE_MB", (double)cfg->max_package_size_mb);
	cfg_json_str(o, "S3_BUCKET", cfg->s3_bucket);
	cfg_json_str(o, "AWS_REGION", cfg->aws_region);
	cfg_json_url(o, "AWS_ENDPOINT_URL", cfg->aws_endpoint_url);
	cfg_json_url(o, "AWS_ENDPOINT_URL_S3", cfg->aws_endpoint_url_s3);
	cfg_json_url(o, "AWS_ENDPOINT_URL_ECS", cfg->aws_endpoint_url_ecs);
	cfg_json_url(o, "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", cfg->aws_endpoint_url_elb);
	cfg_json_url(o, "AWS_ENDPOINT_URL_SERVICEDISCOVERY", cfg->aws_endpoint_url_servicediscovery);
	cfg_json_url(o, "AWS_ENDPOINT_URL_DYNAMODB", cfg->aws_endpoint_url_dynamodb);
	cfg_json_url(o, "AWS_ENDPOINT_URL_IAM", cfg->aws_endpoint_url_iam);
	cfg_json_str(o, "PAR_S3_ADDRESSING",
		     cfg->s3_addressing == S3_ADDR_PATH      ? "path"
		     : cfg->s3_addressing == S3_ADDR_VIRTUAL ? "virtual"
							     : "auto");
	cJSON_AddNumberToObject(o, "PAR_FETCH_TIMEOUT_SEC", cfg->fetch_timeout_sec);
}

/* Whether each credential source is present, never a value. */
static void cfg_json_credentials(cJSON *o, const struct par_config *cfg)
{
	cJSON *cr = cJSON_AddObjectToObject(o, "AWS_CREDENTIALS");

	if (!cr)
		return;
	cJSON_AddBoolToObject(cr, "staticKeys", cfg->aws_static_keys);
	cJSON_AddBoolToObject(cr, "sessionToken", cfg->aws_session_token);
	cJSON_AddBoolToObject(cr, "containerEndpoint", cfg->aws_container_credentials);
}

static void cfg_json_surfaces(cJSON *o, const struct par_config *cfg)
{
	cJSON *arr;
	size_t i;

	cJSON_AddNumberToObject(o, "REST_PORT", cfg->rest_port);
	cJSON_AddNumberToObject(o, "A2A_PORT", cfg->a2a_port);
	cJSON_AddNumberToObject(o, "UI_PORT", cfg->ui_port);
	cJSON_AddBoolToObject(o, "MULTIPLEXED", cfg->multiplexed);
	cfg_json_str(o, "BASE_PATH", cfg->base_path && *cfg->base_path ? cfg->base_path : "/");
	if (!cfg->cors_origins) {
		cJSON_AddNullToObject(o, "PAR_CORS_ORIGINS");
		return;
	}
	arr = cJSON_AddArrayToObject(o, "PAR_CORS_ORIGINS");
	for (i = 0; arr && cfg->cors_origins[i]; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(cfg->cors_origins[i]));
}

static void cfg_json_lifecycle(cJSON *o, const struct par_config *cfg)
{
	char faults[256];

	cJSON_AddNumberToObject(o, "BOOT_BUDGET_MS", (double)cfg->boot_budget_ms);
	cJSON_AddNumberToObject(o, "BOOT_HARD_LIMIT_MULTIPLIER", cfg->boot_hard_limit_multiplier);
	cJSON_AddNumberToObject(o, "BOOT_FAILURE_COUNT", cfg->boot_failure_count);
	cJSON_AddNumberToObject(o, "GRACEFUL_SHUTDOWN_TIMEOUT_SEC",
				cfg->graceful_shutdown_timeout_sec);
	cJSON_AddNumberToObject(o, "PAR_DRAIN_DELAY_SEC", cfg->drain_delay_sec);
	cJSON_AddNumberToObject(o, "PAR_BACKOFF_RESET_SEC", cfg->backoff_reset_sec);
	cJSON_AddNumberToObject(o, "PAR_HTTP_MAX_CONNS_PER_IP", cfg->http_max_conns_per_ip);
	cfg_json_str(o, "LOG_LEVEL", log_level_name(cfg->log_level));
	cfg_json_str(o, "LOG_FORMAT", cfg->log_format == PAR_LOG_TEXT ? "text" : "json");
	cJSON_AddBoolToObject(o, "PAR_ENABLE_FAULTS", cfg->enable_faults);
	cfg_json_str(o, "PAR_FAULTS", cfg->faults_spec);
	faults_describe(&cfg->faults, faults, sizeof(faults));
	cfg_json_str(o, "activeFaults", faults);
}

static void cfg_json_host(cJSON *o, const struct par_config *cfg)
{
	cfg_json_str(o, "PAR_ADMIN_SOCKET", cfg->admin_socket);
	cfg_json_str(o, "PAR_ADMIN_GROUP", cfg->admin_group);
	cfg_json_str(o, "PAR_ADMIN_RO_SOCKET", cfg->admin_ro_socket);
	cfg_json_str(o, "PAR_CACHE_DIR", cfg->cache_dir);
	cJSON_AddNumberToObject(o, "PAR_CACHE_MAX_MB", (double)cfg->cache_max_mb);
	cfg_json_str(o, "PAR_STATE_DIR", cfg->state_dir);
	cfg_json_str(o, "WHEELHOUSE_DIR", cfg->wheelhouse_dir);
	cJSON_AddBoolToObject(o, "PAR_PIP_OFFLINE", cfg->pip_offline);
	cfg_json_str(o, "PAR_CA_BUNDLE", cfg->ca_bundle);
	cJSON_AddNumberToObject(o, "PAR_MAX_EXTRACT_MB", (double)cfg->max_extract_mb);
	cfg_json_str(o, "PAR_PYTHON", cfg->python);
	cJSON_AddBoolToObject(o, "PAR_PYTHON_SYSTEM_SITE_PACKAGES",
			      cfg->python_system_site_packages);
}

char *cfg_to_json(const struct par_config *cfg)
{
	cJSON *o;
	char *out;

	if (!cfg)
		return NULL;
	o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cfg_json_package(o, cfg);
	cfg_json_credentials(o, cfg);
	cfg_json_surfaces(o, cfg);
	cfg_json_lifecycle(o, cfg);
	cfg_json_host(o, cfg);
	out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return out;
}
