/* Text output for people: short aligned key/value tables, arrays of objects as column
 * tables, durations with their unit; metrics as OpenMetrics text; one line per event. */
#include "output.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "par/admin.h"
#include "par/strbuf.h"

const struct local_verb local_verbs[] = {
	{"validate", "FILE|DIR [--sha256 HEX] [--max-extract-mb MB]",
	 "check an agent package offline, every problem at once"},
	{"completion", "bash|zsh|fish", "print the shell completion script"},
	{"help", "[VERB]", "list the commands (and, for fault, the fault names)"},
	{"quit", "", "leave the shell (also exit, Ctrl-D)"},
	{NULL, NULL, NULL},
};

void output_result(const struct output *o, const char *cmd, const cJSON *r)
{
	if (strcmp(cmd, "status") == 0)
		o->status(r);
	else if (strcmp(cmd, "show boot") == 0)
		o->boot(r);
	else if (strcmp(cmd, "show config") == 0)
		o->config(r);
	else if (strcmp(cmd, "show package") == 0)
		o->package(r);
	else if (strcmp(cmd, "show metrics") == 0)
		o->metrics(r);
	else if (strcmp(cmd, "show budgets") == 0)
		o->budgets(r);
	else if (strcmp(cmd, "fault list") == 0)
		o->faults(r);
	else if (strcmp(cmd, "verify-isolation") == 0)
		o->isolation(r);
	else if (strcmp(cmd, "version") == 0)
		o->version(r);
	else if (strcmp(cmd, "ping") == 0)
		o->ping(r);
	else
		o->done(cmd, r);
}

/* --- values ---------------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && strcmp(s + n - m, suffix) == 0;
}

static bool is_ms_key(const char *key)
{
	return ends_with(key, "Ms") || ends_with(key, "_ms");
}

/* "durationMs" → "duration": the unit moves to the value. */
static void key_label(const char *key, char *buf, size_t len)
{
	size_t n = strlen(key);
	if (ends_with(key, "Ms"))
		n -= 2;
	else if (ends_with(key, "_ms"))
		n -= 3;
	snprintf(buf, len, "%.*s", (int)n, key);
}

static void number_text(struct strbuf *sb, double d)
{
	if (d == (double)(long long)d && d < 1e15 && d > -1e15)
		sb_printf(sb, "%lld", (long long)d);
	else
		sb_printf(sb, "%g", d);
}

static bool is_scalar(const cJSON *j)
{
	return !cJSON_IsObject(j) && !cJSON_IsArray(j);
}

/* A value as one short string; arrays of scalars comma-joined, anything nested as JSON. */
static void value_text(struct strbuf *sb, const char *key, const cJSON *j)
{
	if (cJSON_IsString(j)) {
		sb_puts(sb, j->valuestring[0] ? j->valuestring : "\"\"");
	} else if (cJSON_IsNumber(j)) {
		number_text(sb, j->valuedouble);
		if (key && is_ms_key(key))
			sb_puts(sb, " ms");
	} else if (cJSON_IsBool(j)) {
		sb_puts(sb, cJSON_IsTrue(j) ? "yes" : "no");
	} else if (!j || cJSON_IsNull(j)) {
		sb_puts(sb, "-");
	} else if (cJSON_IsArray(j) && cJSON_GetArraySize(j) == 0) {
		sb_puts(sb, "-");
	} else if (cJSON_IsObject(j) && !j->child) {
		sb_puts(sb, "-");
	} else {
		bool scalars = cJSON_IsArray(j);
		const cJSON *e;
		cJSON_ArrayForEach(e, j)
			scalars = scalars && is_scalar(e);
		if (scalars) {
			cJSON_ArrayForEach(e, j) {
				if (e != j->child)
					sb_puts(sb, ", ");
				value_text(sb, NULL, e);
			}
		} else {
			char *s = cJSON_PrintUnformatted(j);
			sb_puts(sb, s ? s : "?");
			cJSON_free(s);
		}
	}
}

/* --- key/value and column tables -------------------------------------------------------- */

struct kv {
	char *key, *val;
};

struct kvlist {
	struct kv *v;
	size_t n;
	const cJSON *tables[16];       /* arrays of objects, printed after the pairs */
	char *table_names[16];
	size_t ntables;
};

static void kv_add(struct kvlist *l, const char *key, char *val)
{
	struct kv *v = realloc(l->v, (l->n + 1) * sizeof *v);
	if (!v) {
		free(val);
		return;
	}
	l->v = v;
	l->v[l->n].key = strdup(key);
	l->v[l->n].val = val;
	l->n++;
}

static bool array_of_objects(const cJSON *j)
{
	const cJSON *e;
	if (!cJSON_IsArray(j) || !j->child)
		return false;
	cJSON_ArrayForEach(e, j)
		if (!cJSON_IsObject(e))
			return false;
	return true;
}

/* Flattens obj into "a.b  value" pairs; arrays of objects become tables. */
static void kv_flatten(struct kvlist *l, const cJSON *obj, const char *prefix)
{
	const cJSON *m;
	char key[256], label[200];

	cJSON_ArrayForEach(m, obj) {
		key_label(m->string ? m->string : "?", label, sizeof label);
		snprintf(key, sizeof key, "%s%s%s", prefix, prefix[0] ? "." : "", label);
		if (cJSON_IsObject(m) && m->child) {
			kv_flatten(l, m, key);
		} else if (array_of_objects(m) && l->ntables < 16) {
			l->table_names[l->ntables] = strdup(key);
			l->tables[l->ntables++] = m;
		} else {
			struct strbuf sb = STRBUF_INIT;
			value_text(&sb, m->string, m);
			kv_add(l, key, sb_steal(&sb));
			sb_free(&sb);
		}
	}
}

static void kv_print(const struct kvlist *l, const char *indent)
{
	int width = 0;
	for (size_t i = 0; i < l->n; i++)
		if ((int)strlen(l->v[i].key) > width)
			width = (int)strlen(l->v[i].key);
	for (size_t i = 0; i < l->n; i++)
		printf("%s%-*s  %s\n", indent, width, l->v[i].key, l->v[i].val ? l->v[i].val : "?");
}

static void kv_free(struct kvlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].val);
	}
	free(l->v);
	for (size_t i = 0; i < l->ntables; i++)
		free(l->table_names[i]);
	memset(l, 0, sizeof *l);
}

#define MAX_COLS 12

/* An array of objects as columns: the union of their members, in first-seen order. */
static void table_print(const cJSON *arr, const char *indent)
{
	const char *cols[MAX_COLS];
	int width[MAX_COLS], ncols = 0, nrows = cJSON_GetArraySize(arr);
	const cJSON *row, *m;

	cJSON_ArrayForEach(row, arr) {
		cJSON_ArrayForEach(m, row) {
			int c = 0;
			while (c < ncols && strcmp(cols[c], m->string) != 0)
				c++;
			if (c == ncols && ncols < MAX_COLS) {
				cols[ncols] = m->string;
				char label[200];
				key_label(m->string, label, sizeof label);
				width[ncols++] = (int)strlen(label);
			}
		}
	}
	char **cells = calloc((size_t)nrows * MAX_COLS, sizeof *cells);
	if (!cells)
		return;
	int r = 0;
	cJSON_ArrayForEach(row, arr) {
		for (int c = 0; c < ncols; c++) {
			struct strbuf sb = STRBUF_INIT;
			value_text(&sb, cols[c], cJSON_GetObjectItemCaseSensitive(row, cols[c]));
			cells[r * MAX_COLS + c] = sb_steal(&sb);
			sb_free(&sb);
			int w = cells[r * MAX_COLS + c] ? (int)strlen(cells[r * MAX_COLS + c]) : 0;
			if (w > width[c])
				width[c] = w;
		}
		r++;
	}
	fputs(indent, stdout);
	for (int c = 0; c < ncols; c++) {
		char label[200];
		key_label(cols[c], label, sizeof label);
		for (char *p = label; *p; p++)
			*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
		printf("%-*s%s", c + 1 < ncols ? width[c] : 0, label, c + 1 < ncols ? "  " : "\n");
	}
	for (r = 0; r < nrows; r++) {
		fputs(indent, stdout);
		for (int c = 0; c < ncols; c++) {
			const char *cell = cells[r * MAX_COLS + c] ? cells[r * MAX_COLS + c] : "";
			printf("%-*s%s", c + 1 < ncols ? width[c] : 0, cell, c + 1 < ncols ? "  " : "\n");
		}
	}
	for (int i = 0; i < nrows * MAX_COLS; i++)
		free(cells[i]);
	free(cells);
}

/* Any result: its pairs, then each array of objects as a titled table. */
static void text_generic(const cJSON *r)
{
	struct kvlist l = {0};

	if (!r || cJSON_IsNull(r) || (cJSON_IsObject(r) && !r->child)) {
		printf("ok\n");
		return;
	}
	if (array_of_objects(r)) {
		table_print(r, "");
		return;
	}
	if (!cJSON_IsObject(r)) {
		struct strbuf sb = STRBUF_INIT;
		value_text(&sb, NULL, r);
		printf("%s\n", sb.buf ? sb.buf : "");
		sb_free(&sb);
		return;
	}
	kv_flatten(&l, r, "");
	kv_print(&l, "");
	for (size_t i = 0; i < l.ntables; i++) {
		printf("%s%s:\n", l.n || i ? "\n" : "", l.table_names[i]);
		table_print(l.tables[i], "  ");
	}
	kv_free(&l);
}

/* --- per command ----------------------------------------------------------------------- */

static void text_metrics(const cJSON *r)
{
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(r, "text");

	if (!cJSON_IsString(text)) {
		text_generic(r);
		return;
	}
	size_t n = strlen(text->valuestring);
	fputs(text->valuestring, stdout);
	if (n == 0 || text->valuestring[n - 1] != '\n')
		putchar('\n');
}

static void text_version(const cJSON *r)
{
	printf("parctl %s (admin protocol %d)\n", PAR_VERSION, ADMIN_PROTO_VERSION);
	text_generic(r);
}

static void text_ping(const cJSON *r)
{
	const cJSON *up = cJSON_GetObjectItemCaseSensitive(r, "uptime_ms");

	if (cJSON_IsNumber(up))
		printf("pong (pard up %.1f s)\n", up->valuedouble / 1000);
	else
		printf("pong\n");
}

static void text_done(const char *cmd, const cJSON *r)
{
	if (!r || cJSON_IsNull(r) || (cJSON_IsObject(r) && !r->child))
		printf("%s: ok\n", cmd);
	else
		text_generic(r);
}

/* "12:00:01.234 info  boot.phase.done  msg  key=value …" */
static void text_event(const cJSON *ev)
{
	const cJSON *line = cJSON_GetObjectItemCaseSensitive(ev, "line");
	const char *lead[] = {"timestamp", "level", "event", "msg"};
	struct strbuf sb = STRBUF_INIT;
	const cJSON *m;

	if (cJSON_IsString(line)) {
		printf("%s\n", line->valuestring);
		return;
	}
	for (size_t i = 0; i < 4; i++) {
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(ev, lead[i]);
		if (!cJSON_IsString(f))
			continue;
		const char *s = f->valuestring;
		if (i == 0 && strlen(s) > 11 && s[10] == 'T')
			s += 11;   /* the time of day is enough on a live stream */
		sb_printf(&sb, "%s%s", sb.len ? "  " : "", s);
		if (i == 1)
			sb_printf(&sb, "%*s", 5 - (int)strlen(s) > 0 ? 5 - (int)strlen(s) : 0, "");
	}
	cJSON_ArrayForEach(m, ev) {
		bool is_lead = false;
		for (size_t i = 0; i < 4; i++)
			is_lead = is_lead || strcmp(m->string, lead[i]) == 0;
		if (is_lead || strcmp(m->string, "agentAppId") == 0 ||
		    strcmp(m->string, "deploymentId") == 0)
			continue;
		sb_printf(&sb, "  %s=", m->string);
		value_text(&sb, NULL, m);   /* key=value keeps the key's unit: durationMs=12 */
	}
	printf("%s\n", sb.buf ? sb.buf : "");
	fflush(stdout);
	sb_free(&sb);
}

static bool topic_matches(const char *topic, const char *verb)
{
	return !topic || strncmp(verb, topic, strlen(topic)) == 0;
}

static int help_width(void)
{
	int w = 0;

	for (const struct admin_verb *v = admin_verbs; v->cmd; v++)
		if ((int)(strlen(v->cmd) + 1 + strlen(v->usage)) > w)
			w = (int)(strlen(v->cmd) + 1 + strlen(v->usage));
	for (const struct local_verb *v = local_verbs; v->name; v++)
		if ((int)(strlen(v->name) + 1 + strlen(v->usage)) > w)
			w = (int)(strlen(v->name) + 1 + strlen(v->usage));
	return w;
}

static void text_help(const char *topic)
{
	char left[160];
	int w = help_width();

	printf("commands (any unique prefix works: st = status, sh bo = show boot):\n");
	for (const struct admin_verb *v = admin_verbs; v->cmd; v++) {
		if (!topic_matches(topic, v->cmd))
			continue;
		snprintf(left, sizeof left, "%s%s%s", v->cmd, v->usage[0] ? " " : "", v->usage);
		printf("  %-*s  %s%s\n", w, left, v->help, v->access == ADMIN_CHANGE ? "" : " [read]");
	}
	for (const struct local_verb *v = local_verbs; v->name; v++) {
		if (!topic_matches(topic, v->name))
			continue;
		snprintf(left, sizeof left, "%s%s%s", v->name, v->usage[0] ? " " : "", v->usage);
		printf("  %-*s  %s\n", w, left, v->help);
	}
	if (topic && !topic_matches(topic, "fault"))
		return;
	printf("\nruntime faults (fault set NAME [VALUE] [--probability P]):\n");
	for (const struct admin_fault *f = admin_faults; f->name; f++) {
		snprintf(left, sizeof left, "%s%s%s%s", f->name, f->value_kind ? " " : "",
			 f->value_kind ? f->value_kind : "", f->probability ? " [--probability P]" : "");
		printf("  %-*s  %s\n", w, left, f->help);
	}
	if (!topic)
		printf("\n[read]: also allowed on the read-only socket. Exit codes: 0 ok, 1 the "
		       "command failed, 2 usage, 3 pard unreachable, 4 permission denied.\n");
}

static void text_error(const struct ctl_error *e, long line)
{
	if (line > 0)
		fprintf(stderr, "parctl: line %ld: %s\n", line, e->msg);
	else
		fprintf(stderr, "parctl: %s\n", e->msg);
}

const struct output output_text = {
	.status = text_generic,
	.boot = text_generic,
	.config = text_generic,
	.package = text_generic,
	.metrics = text_metrics,
	.budgets = text_generic,
	.faults = text_generic,
	.isolation = text_generic,
	.version = text_version,
	.ping = text_ping,
	.done = text_done,
	.event = text_event,
	.help = text_help,
	.error = text_error,
};
