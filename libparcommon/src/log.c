/* Structured logging (SPEC §7): one JSON object per line, or a human text line, each written
 * with a single write(2) under a lock so lines from threads never interleave. */
#include "par/log.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "par/strbuf.h"
#include "par/timeutil.h"

/* Buffers larger than this are released after the line so one huge line does not pin memory. */
#define LOG_BUF_KEEP (64 * 1024)

/* Read without the lock on every call so lines below the level cost one atomic load. */
static atomic_int log_level = PAR_LOG_INFO;
static atomic_int log_format = PAR_LOG_JSON;
static atomic_int log_fd = 1;

/* Guards the identity and the writes; log_observer is also read under it as a hint. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_agent_app_id;
static char *log_deployment_id;
/* Held across each observer call so calls come one at a time and, once log_set_observer
 * returns, the old observer is never called again. Recursive: an observer may unregister
 * itself from inside its callback. */
static pthread_mutex_t log_obs_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static log_observer_fn log_observer;
static void *log_observer_ctx;

/* Per-thread state: the line buffers and the requestId. */
struct log_tls {
	struct strbuf json;
	struct strbuf text;
	struct strbuf msg;
	char *request_id;
	int busy;	/* an observer logging from inside log_emit must not reuse the buffers */
};

static _Thread_local struct log_tls *log_tls_cur;
static pthread_key_t log_tls_key;
static pthread_once_t log_tls_once = PTHREAD_ONCE_INIT;
static int log_tls_key_ok;

static const char *const log_fixed_keys[] = {
	"timestamp", "level", "event", "msg", "agentAppId", "deploymentId", "requestId",
};

static void log_tls_free(void *p)
{
	struct log_tls *t = p;

	if (!t)
		return;
	sb_free(&t->json);
	sb_free(&t->text);
	sb_free(&t->msg);
	free(t->request_id);
	free(t);
}

static void log_tls_key_init(void)
{
	log_tls_key_ok = pthread_key_create(&log_tls_key, log_tls_free) == 0;
}

/* The thread's state, created on first use; NULL only when out of memory. */
static struct log_tls *log_tls_get(void)
{
	struct log_tls *t = log_tls_cur;

	if (t)
		return t;
	pthread_once(&log_tls_once, log_tls_key_init);
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	/* The key's destructor frees the state when the thread exits. */
	if (log_tls_key_ok)
		pthread_setspecific(log_tls_key, t);
	log_tls_cur = t;
	return t;
}

void log_init(void)
{
	atomic_store(&log_level, PAR_LOG_INFO);
	atomic_store(&log_format, PAR_LOG_JSON);
	atomic_store(&log_fd, 1);
}

void log_set_level(enum par_log_level level)
{
	if (level < PAR_LOG_DEBUG || level > PAR_LOG_ERROR)
		return;
	atomic_store(&log_level, (int)level);
}

enum par_log_level log_get_level(void)
{
	return (enum par_log_level)atomic_load(&log_level);
}

void log_set_format(enum par_log_format format)
{
	if (format != PAR_LOG_JSON && format != PAR_LOG_TEXT)
		return;
	atomic_store(&log_format, (int)format);
}

void log_set_fd(int fd)
{
	pthread_mutex_lock(&log_lock);
	atomic_store(&log_fd, fd);
	pthread_mutex_unlock(&log_lock);
}

static char *log_dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

void log_set_identity(const char *agent_app_id, const char *deployment_id)
{
	char *a = log_dup(agent_app_id), *d = log_dup(deployment_id);
	char *old_a, *old_d;

	pthread_mutex_lock(&log_lock);
	old_a = log_agent_app_id;
	old_d = log_deployment_id;
	log_agent_app_id = a;
	log_deployment_id = d;
	pthread_mutex_unlock(&log_lock);
	free(old_a);
	free(old_d);
}

void log_set_request_id(const char *request_id)
{
	struct log_tls *t = log_tls_get();

	if (!t)
		return;
	free(t->request_id);
	t->request_id = log_dup(request_id);
}

const char *log_get_request_id(void)
{
	return log_tls_cur ? log_tls_cur->request_id : NULL;
}

void log_set_observer(log_observer_fn fn, void *ctx)
{
	pthread_mutex_lock(&log_obs_lock);
	pthread_mutex_lock(&log_lock);
	log_observer = fn;
	log_observer_ctx = ctx;
	pthread_mutex_unlock(&log_lock);
	pthread_mutex_unlock(&log_obs_lock);
}

static void log_notify(struct strbuf *json)
{
	pthread_mutex_lock(&log_obs_lock);
	if (log_observer)
		log_observer(json->buf, json->len, log_observer_ctx);
	pthread_mutex_unlock(&log_obs_lock);
}

int log_parse_level(const char *s, enum par_log_level *out)
{
	enum par_log_level l;

	if (!s)
		return -1;
	if (strcasecmp(s, "debug") == 0)
		l = PAR_LOG_DEBUG;
	else if (strcasecmp(s, "info") == 0)
		l = PAR_LOG_INFO;
	else if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0)
		l = PAR_LOG_WARN;
	else if (strcasecmp(s, "error") == 0)
		l = PAR_LOG_ERROR;
	else
		return -1;
	if (out)
		*out = l;
	return 0;
}

int log_parse_format(const char *s, enum par_log_format *out)
{
	enum par_log_format f;

	if (!s)
		return -1;
	if (strcasecmp(s, "json") == 0)
		f = PAR_LOG_JSON;
	else if (strcasecmp(s, "text") == 0)
		f = PAR_LOG_TEXT;
	else
		return -1;
	if (out)
		*out = f;
	return 0;
}

const char *log_level_name(enum par_log_level level)
{
	switch (level) {
	case PAR_LOG_DEBUG: return "debug";
	case PAR_LOG_INFO: return "info";
	case PAR_LOG_WARN: return "warn";
	case PAR_LOG_ERROR: return "error";
	}
	return "unknown";
}

static const char *log_level_text(enum par_log_level level)
{
	switch (level) {
	case PAR_LOG_DEBUG: return "DEBUG";
	case PAR_LOG_INFO: return "INFO ";
	case PAR_LOG_WARN: return "WARN ";
	case PAR_LOG_ERROR: return "ERROR";
	}
	return "?????";
}

void log_format_timestamp(int64_t epoch_ms, char *buf, size_t n)
{
	int64_t sec = epoch_ms / 1000, ms = epoch_ms % 1000;
	time_t t;
	struct tm tm;

	if (!buf || n == 0)
		return;
	if (ms < 0) {
		ms += 1000;
		sec--;
	}
	t = (time_t)sec;
	if (!gmtime_r(&t, &tm)) {
		snprintf(buf, n, "1970-01-01T00:00:00.000Z");
		return;
	}
	snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms);
}

/* requestId is fixed only on lines that carry one; elsewhere a caller may supply it. */
static int log_key_is_fixed(const char *key, int have_request_id)
{
	size_t i, n = sizeof(log_fixed_keys) / sizeof(log_fixed_keys[0]);

	if (!have_request_id)
		n--;
	for (i = 0; i < n; i++)
		if (strcmp(key, log_fixed_keys[i]) == 0)
			return 1;
	return 0;
}

/* Raw JSON is the caller's promise; line breaks are still flattened to keep one line per
 * object (outside strings they are insignificant, inside strings they were already invalid). */
static void log_put_raw(struct strbuf *sb, const char *raw)
{
	size_t start = sb->len, i;

	if (!raw || !*raw) {
		sb_append(sb, "null", 4);
		return;
	}
	sb_puts(sb, raw);
	if (sb->oom)
		return;
	for (i = start; i < sb->len; i++)
		if (sb->buf[i] == '\n' || sb->buf[i] == '\r')
			sb->buf[i] = ' ';
}

static void log_put_double(struct strbuf *sb, double d)
{
	/* JSON has no NaN or Infinity. */
	if (!isfinite(d))
		sb_append(sb, "null", 4);
	else
		sb_printf(sb, "%.15g", d);
}

static void log_put_value_json(struct strbuf *sb, const struct log_field *f)
{
	switch (f->type) {
	case LOGF_STR: sb_json_str(sb, f->v.s); break;
	case LOGF_INT: sb_printf(sb, "%lld", (long long)f->v.i); break;
	case LOGF_UINT: sb_printf(sb, "%llu", (unsigned long long)f->v.u); break;
	case LOGF_DOUBLE: log_put_double(sb, f->v.d); break;
	case LOGF_BOOL: sb_puts(sb, f->v.b ? "true" : "false"); break;
	case LOGF_RAWJSON: log_put_raw(sb, f->v.s); break;
	default: sb_append(sb, "null", 4); break;
	}
}

struct log_line {
	const char *ts;
	enum par_log_level level;
	const char *event;
	const char *msg;
	size_t msg_len;
	const char *agent_app_id;
	const char *deployment_id;
	const char *request_id;
	const struct log_field *fields;
	size_t nfields;
};

static void log_build_json(struct strbuf *sb, const struct log_line *l)
{
	size_t i;

	sb_puts(sb, "{\"timestamp\":\"");
	sb_puts(sb, l->ts);
	sb_puts(sb, "\",\"level\":\"");
	sb_puts(sb, log_level_name(l->level));
	sb_puts(sb, "\",\"event\":");
	sb_json_str(sb, l->event);
	sb_puts(sb, ",\"msg\":");
	sb_json_strn(sb, l->msg, l->msg_len);
	sb_puts(sb, ",\"agentAppId\":");
	sb_json_str(sb, l->agent_app_id);
	sb_puts(sb, ",\"deploymentId\":");
	sb_json_str(sb, l->deployment_id);
	if (l->request_id) {
		sb_puts(sb, ",\"requestId\":");
		sb_json_str(sb, l->request_id);
	}
	for (i = 0; i < l->nfields; i++) {
		const struct log_field *f = &l->fields[i];

		if (!f->key || log_key_is_fixed(f->key, l->request_id != NULL))
			continue;
		sb_putc(sb, ',');
		sb_json_str(sb, f->key);
		sb_putc(sb, ':');
		log_put_value_json(sb, f);
	}
	sb_putc(sb, '}');
}

/* Appends s escaped as inside a JSON string but without the quotes: one line, no raw
 * control characters, for the human format. */
static void log_put_escaped_bare(struct strbuf *sb, const char *s, size_t n)
{
	size_t start = sb->len;

	sb_json_strn(sb, s, n);
	if (sb->oom || sb->len < start + 2)
		return;
	memmove(sb->buf + start, sb->buf + start + 1, sb->len - start - 2);
	sb->len -= 2;
	sb->buf[sb->len] = '\0';
}

/* Text values go bare when that cannot be misread, else JSON-quoted. */
static void log_put_text_str(struct strbuf *sb, const char *s)
{
	const unsigned char *p;

	if (!s) {
		sb_puts(sb, "null");
		return;
	}
	for (p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7F)
			break;
	if (*p || p == (const unsigned char *)s)
		sb_json_str(sb, s);
	else
		sb_puts(sb, s);
}

static void log_put_text_kv(struct strbuf *sb, const char *key, const char *val)
{
	sb_putc(sb, ' ');
	log_put_escaped_bare(sb, key, strlen(key));
	sb_putc(sb, '=');
	log_put_text_str(sb, val);
}

static void log_build_text(struct strbuf *sb, const struct log_line *l)
{
	size_t i;

	sb_puts(sb, l->ts);
	sb_putc(sb, ' ');
	sb_puts(sb, log_level_text(l->level));
	sb_putc(sb, ' ');
	if (l->event)
		log_put_escaped_bare(sb, l->event, strlen(l->event));
	sb_puts(sb, ": ");
	log_put_escaped_bare(sb, l->msg, l->msg_len);
	if (l->agent_app_id)
		log_put_text_kv(sb, "agentAppId", l->agent_app_id);
	if (l->deployment_id)
		log_put_text_kv(sb, "deploymentId", l->deployment_id);
	if (l->request_id)
		log_put_text_kv(sb, "requestId", l->request_id);
	for (i = 0; i < l->nfields; i++) {
		const struct log_field *f = &l->fields[i];

		if (!f->key || log_key_is_fixed(f->key, l->request_id != NULL))
			continue;
		if (f->type == LOGF_STR) {
			log_put_text_kv(sb, f->key, f->v.s);
			continue;
		}
		sb_putc(sb, ' ');
		log_put_escaped_bare(sb, f->key, strlen(f->key));
		sb_putc(sb, '=');
		log_put_value_json(sb, f);
	}
}

/* One write(2) per line; the loop only finishes a short write. A line that cannot be
 * written is dropped: logging must never block or kill the daemon. */
static void log_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void log_shrink(struct strbuf *sb)
{
	if (sb->cap > LOG_BUF_KEEP)
		sb_free(sb);
	else
		sb_reset(sb);
}

void log_emit(enum par_log_level level, const char *event,
	      const struct log_field *fields, size_t nfields, const char *fmt, ...)
{
	struct log_tls *tls, local;
	struct log_tls *t;
	struct log_line l;
	struct strbuf *out;
	int obs;
	char ts[32];
	int text, fd;
	va_list ap;

	if ((int)level < atomic_load(&log_level))
		return;
	if (level > PAR_LOG_ERROR)
		level = PAR_LOG_ERROR;

	tls = log_tls_get();
	t = tls;
	if (!t || t->busy) {
		/* Out of memory or re-entered from an observer: fall back to private buffers. */
		memset(&local, 0, sizeof(local));
		local.request_id = tls ? tls->request_id : NULL;
		t = &local;
	}
	t->busy = 1;

	if (fmt) {
		va_start(ap, fmt);
		sb_vprintf(&t->msg, fmt, ap);
		va_end(ap);
	}
	log_format_timestamp(time_epoch_ms(), ts, sizeof(ts));
	memset(&l, 0, sizeof(l));
	l.ts = ts;
	l.level = level;
	l.event = event;
	l.msg = t->msg.buf ? t->msg.buf : "";
	l.msg_len = t->msg.buf ? t->msg.len : 0;
	l.request_id = t->request_id;
	l.fields = fields;
	l.nfields = fields ? nfields : 0;
	text = atomic_load(&log_format) == PAR_LOG_TEXT;

	pthread_mutex_lock(&log_lock);
	l.agent_app_id = log_agent_app_id;
	l.deployment_id = log_deployment_id;
	/* Lines logged by an observer itself are not fed back to it. */
	obs = log_observer != NULL && t == tls;
	fd = atomic_load(&log_fd);
	if (!text || obs)
		log_build_json(&t->json, &l);
	if (text)
		log_build_text(&t->text, &l);
	out = text ? &t->text : &t->json;
	/* The newline goes in the same write so a line is never split from its end. */
	sb_putc(out, '\n');
	if (!out->oom && fd >= 0)
		log_write_all(fd, out->buf, out->len);
	pthread_mutex_unlock(&log_lock);

	if (obs && !t->json.oom && t->json.len > 0) {
		if (!text) {
			t->json.len--;	/* the observer gets the line without its newline */
			t->json.buf[t->json.len] = '\0';
		}
		log_notify(&t->json);
	}

	log_shrink(&t->json);
	log_shrink(&t->text);
	log_shrink(&t->msg);
	if (t == &local) {
		sb_free(&local.json);
		sb_free(&local.text);
		sb_free(&local.msg);
	} else {
		t->busy = 0;
	}
}
