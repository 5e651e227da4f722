/* Boot fault injection (SPEC §8.3): parses PAR_FAULTS ("name[=value],…") strictly, so a typo
 * in a test setup is an error rather than a fault that silently never fires. */
#include "par/faults.h"
#include "par/parse.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>


#define FAULTS_MAX_MS 600000
#define FAULTS_KNOWN "boot.delay=MS, rest.latency=MS, fetch.error, fetch.delay=MS, extract.error"

enum faults_kind { FAULTS_MS, FAULTS_FLAG };

struct faults_def {
	const char *name;
	enum faults_kind kind;
	size_t offset; /* of the uint32_t or bool in struct par_faults */
};

static const struct faults_def faults_defs[] = {
	{"boot.delay", FAULTS_MS, offsetof(struct par_faults, boot_delay_ms)},
	{"rest.latency", FAULTS_MS, offsetof(struct par_faults, rest_latency_ms)},
	{"fetch.error", FAULTS_FLAG, offsetof(struct par_faults, fetch_error)},
	{"fetch.delay", FAULTS_MS, offsetof(struct par_faults, fetch_delay_ms)},
	{"extract.error", FAULTS_FLAG, offsetof(struct par_faults, extract_error)},
};
#define FAULTS_NDEFS (sizeof(faults_defs) / sizeof(faults_defs[0]))

/* The rule names the offending item, so it is built per call. */
static _Thread_local char faults_rule_buf[256];

static const char *faults_rule(const char *item, size_t n, const char *why)
{
	snprintf(faults_rule_buf, sizeof(faults_rule_buf), "fault \"%.*s\": %s",
		 (int)(n > 64 ? 64 : n), item, why);
	return faults_rule_buf;
}

static const struct faults_def *faults_find(const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < FAULTS_NDEFS; i++)
		if (strlen(faults_defs[i].name) == n && memcmp(faults_defs[i].name, name, n) == 0)
			return &faults_defs[i];
	return NULL;
}

static bool faults_is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Applies one trimmed item (n bytes at item). seen marks items already given. */
static const char *faults_apply(const char *item, size_t n, struct par_faults *out,
				bool seen[FAULTS_NDEFS])
{
	const char *eq = memchr(item, '=', n);
	size_t name_len = eq ? (size_t)(eq - item) : n;
	const struct faults_def *d = faults_find(item, name_len);
	char *field = (char *)out;
	char val[16];
	size_t vlen;
	uint64_t ms;

	if (n == 0)
		return faults_rule(item, n, "empty item (a stray ',')");
	if (!d)
		return faults_rule(item, n, "unknown name (known: " FAULTS_KNOWN ")");
	if (seen[d - faults_defs])
		return faults_rule(item, n, "given twice");
	seen[d - faults_defs] = true;
	if (d->kind == FAULTS_FLAG) {
		if (eq)
			return faults_rule(item, n, "takes no value");
		*(bool *)(field + d->offset) = true;
		return NULL;
	}
	if (!eq)
		return faults_rule(item, n, "needs a value in ms, e.g. name=500");
	vlen = n - name_len - 1;
	if (vlen == 0 || vlen >= sizeof(val))
		return faults_rule(item, n, "value must be an integer 0..600000 (ms)");
	memcpy(val, eq + 1, vlen);
	val[vlen] = '\0';
	if (parse_uint(val, 0, FAULTS_MAX_MS, &ms) != 0)
		return faults_rule(item, n, "value must be an integer 0..600000 (ms)");
	*(uint32_t *)(field + d->offset) = (uint32_t)ms;
	return NULL;
}

int faults_parse(const char *spec, struct par_faults *out, const char **rule)
{
	bool seen[FAULTS_NDEFS] = {false};
	const char *p = spec ? spec : "";
	const char *why;

	memset(out, 0, sizeof(*out));
	/* An empty spec means no faults; only separators between items must have content. */
	while (faults_is_space(*p))
		p++;
	if (*p == '\0')
		return 0;
	for (;;) {
		size_t n = strcspn(p, ",");
		const char *next = p[n] == ',' ? p + n + 1 : NULL;
		while (n > 0 && faults_is_space(*p)) {
			p++;
			n--;
		}
		while (n > 0 && faults_is_space(p[n - 1]))
			n--;
		why = faults_apply(p, n, out, seen);
		if (why) {
			memset(out, 0, sizeof(*out));
			if (rule)
				*rule = why;
			return -1;
		}
		if (!next)
			return 0;
		p = next;
	}
}

static void faults_put(char *buf, unsigned n, size_t *len, const char *name, uint32_t ms,
		       bool is_ms)
{
	int w;

	if (*len >= n)
		return;
	if (is_ms)
		w = snprintf(buf + *len, n - *len, "%s%s=%u", *len ? "," : "", name, (unsigned)ms);
	else
		w = snprintf(buf + *len, n - *len, "%s%s", *len ? "," : "", name);
	if (w < 0)
		return;
	*len = (size_t)w >= n - *len ? n - 1 : *len + (size_t)w;
}

void faults_describe(const struct par_faults *f, char *buf, unsigned n)
{
	size_t len = 0;

	if (!buf || n == 0)
		return;
	buf[0] = '\0';
	if (!f)
		return;
	if (f->boot_delay_ms)
		faults_put(buf, n, &len, "boot.delay", f->boot_delay_ms, true);
	if (f->rest_latency_ms)
		faults_put(buf, n, &len, "rest.latency", f->rest_latency_ms, true);
	if (f->fetch_error)
		faults_put(buf, n, &len, "fetch.error", 0, false);
	if (f->fetch_delay_ms)
		faults_put(buf, n, &len, "fetch.delay", f->fetch_delay_ms, true);
	if (f->extract_error)
		faults_put(buf, n, &len, "extract.error", 0, false);
}
