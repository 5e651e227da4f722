/* Structured logging: one JSON object per line on stdout (SPEC §7), or text for a terminal.
 * Thread-safe; each line is written with a single write(2) under a lock. */
#ifndef PAR_LOG_H
#define PAR_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum par_log_level { PAR_LOG_DEBUG = 0, PAR_LOG_INFO, PAR_LOG_WARN, PAR_LOG_ERROR };
enum par_log_format { PAR_LOG_JSON = 0, PAR_LOG_TEXT };

enum log_field_type { LOGF_STR, LOGF_INT, LOGF_UINT, LOGF_DOUBLE, LOGF_BOOL, LOGF_RAWJSON };

struct log_field {
	const char *key;
	enum log_field_type type;
	union {
		const char *s;     /* LOGF_STR (NULL → null), LOGF_RAWJSON (already valid JSON) */
		int64_t i;
		uint64_t u;
		double d;
		bool b;
	} v;
};

#define LF_STR(k, x) ((struct log_field){.key = (k), .type = LOGF_STR, .v.s = (x)})
#define LF_INT(k, x) ((struct log_field){.key = (k), .type = LOGF_INT, .v.i = (int64_t)(x)})
#define LF_UINT(k, x) ((struct log_field){.key = (k), .type = LOGF_UINT, .v.u = (uint64_t)(x)})
#define LF_DBL(k, x) ((struct log_field){.key = (k), .type = LOGF_DOUBLE, .v.d = (double)(x)})
#define LF_BOOL(k, x) ((struct log_field){.key = (k), .type = LOGF_BOOL, .v.b = (x)})
#define LF_JSON(k, x) ((struct log_field){.key = (k), .type = LOGF_RAWJSON, .v.s = (x)})

/* LOG_FIELDS(a, b, …) expands to "array, count" for log_emit's fields parameters. */
#define LOG_FIELDS(...) \
	((const struct log_field[]){__VA_ARGS__}), \
	(sizeof((const struct log_field[]){__VA_ARGS__}) / sizeof(struct log_field))
#define LOG_NOFIELDS NULL, 0

/* Defaults before configuration is read: info, json, fd 1. */
void log_init(void);
void log_set_level(enum par_log_level level);
enum par_log_level log_get_level(void);
void log_set_format(enum par_log_format format);
void log_set_fd(int fd);                     /* tests: capture output */
/* agentAppId and deploymentId on every line (copied; NULL clears). */
void log_set_identity(const char *agent_app_id, const char *deployment_id);
/* requestId on every line this thread writes until cleared with NULL (copied). */
void log_set_request_id(const char *request_id);
const char *log_get_request_id(void);

/* Parses "debug", "info", "warn"/"warning", "error" (any case). 0 ok, -1 invalid. */
int log_parse_level(const char *s, enum par_log_level *out);
int log_parse_format(const char *s, enum par_log_format *out); /* "json" | "text" */
const char *log_level_name(enum par_log_level level);

/* Writes one line: timestamp, level, event, msg, agentAppId, deploymentId, requestId
 * (when set), then the fields in order. A field whose key repeats a fixed one is dropped. */
void log_emit(enum par_log_level level, const char *event,
	      const struct log_field *fields, size_t nfields,
	      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Observer for every emitted line (the admin socket's `monitor`): called after the write,
 * outside the log lock, with the JSON text of the line (no newline). One at a time. */
typedef void (*log_observer_fn)(const char *json_line, size_t len, void *ctx);
void log_set_observer(log_observer_fn fn, void *ctx);

#define log_debug(event, ...) log_emit(PAR_LOG_DEBUG, event, LOG_NOFIELDS, __VA_ARGS__)
#define log_info(event, ...) log_emit(PAR_LOG_INFO, event, LOG_NOFIELDS, __VA_ARGS__)
#define log_warn(event, ...) log_emit(PAR_LOG_WARN, event, LOG_NOFIELDS, __VA_ARGS__)
#define log_error(event, ...) log_emit(PAR_LOG_ERROR, event, LOG_NOFIELDS, __VA_ARGS__)

/* RFC 3339 UTC with milliseconds, e.g. 2026-11-27T15:04:05.123Z, into buf (≥ 25 bytes). */
void log_format_timestamp(int64_t epoch_ms, char *buf, size_t n);

#endif
