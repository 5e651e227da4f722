/* The egress ledger (SPEC §8.4): a bounded, thread-safe ring of every outbound connection. */
#include "par/ledger.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "par/log.h"

/* Used when the caller passes 0: enough for every connection of a normal boot many times
 * over, small enough (~0.5 KiB an entry) to never matter for memory. */
#define LEDGER_DEFAULT_CAP 1024

struct egress_ledger {
	pthread_mutex_t mu;
	struct egress_entry *ring;
	size_t cap;
	size_t head;    /* index of the oldest entry */
	size_t count;
	uint64_t total; /* every entry ever recorded, dropped ones included */
};

/* One (host, port, purpose) line of the summary. */
struct ledger_group {
	const struct egress_entry *first;
	uint64_t count;
	uint64_t bytes;
};

struct egress_ledger *ledger_new(size_t cap)
{
	struct egress_ledger *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->cap = cap ? cap : LEDGER_DEFAULT_CAP;
	l->ring = calloc(l->cap, sizeof(*l->ring));
	if (!l->ring || pthread_mutex_init(&l->mu, NULL) != 0) {
		free(l->ring);
		free(l);
		return NULL;
	}
	return l;
}

void ledger_free(struct egress_ledger *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->mu);
	free(l->ring);
	free(l);
}

/* Copies src into a fixed field, always NUL-terminated (entries are copied by value). */
static void ledger_copy_str(char *dst, size_t n, const char *src)
{
	size_t len = src ? strnlen(src, n - 1) : 0;

	if (len)
		memcpy(dst, src, len);
	dst[len] = '\0';
}

static void ledger_copy_entry(struct egress_entry *dst, const struct egress_entry *e)
{
	dst->epoch_ms = e->epoch_ms;
	dst->port = e->port;
	dst->status = e->status;
	dst->bytes = e->bytes;
	ledger_copy_str(dst->host, sizeof(dst->host), e->host);
	ledger_copy_str(dst->ip, sizeof(dst->ip), e->ip);
	ledger_copy_str(dst->purpose, sizeof(dst->purpose), e->purpose);
	ledger_copy_str(dst->method, sizeof(dst->method), e->method);
	ledger_copy_str(dst->error, sizeof(dst->error), e->error);
}

void ledger_record(struct egress_ledger *l, const struct egress_entry *e)
{
	size_t slot;

	if (!l || !e)
		return;
	pthread_mutex_lock(&l->mu);
	if (l->count < l->cap) {
		slot = (l->head + l->count) % l->cap;
		l->count++;
	} else {
		/* Full: the oldest entry makes room; `dropped` in the summary says so. */
		slot = l->head;
		l->head = (l->head + 1) % l->cap;
	}
	ledger_copy_entry(&l->ring[slot], e);
	l->total++;
	pthread_mutex_unlock(&l->mu);
}

/* Copies the ring oldest first; the caller holds the lock. NULL only when out of memory. */
static struct egress_entry *ledger_copy_locked(struct egress_ledger *l)
{
	struct egress_entry *out = malloc((l->count ? l->count : 1) * sizeof(*out));
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i < l->count; i++)
		out[i] = l->ring[(l->head + i) % l->cap];
	return out;
}


size_t ledger_count(struct egress_ledger *l)
{
	size_t n;

	if (!l)
		return 0;
	pthread_mutex_lock(&l->mu);
	n = l->count;
	pthread_mutex_unlock(&l->mu);
	return n;
}

/* The snapshot plus the totals, read under one lock so they agree with each other. */
static size_t ledger_snapshot_totals(struct egress_ledger *l, struct egress_entry **out,
				     uint64_t *total)
{
	size_t n = 0;

	*out = NULL;
	*total = 0;
	if (!l)
		return 0;
	pthread_mutex_lock(&l->mu);
	*out = ledger_copy_locked(l);
	if (*out)
		n = l->count;
	*total = l->total;
	pthread_mutex_unlock(&l->mu);
	return n;
}

size_t ledger_snapshot(struct egress_ledger *l, struct egress_entry **out)
{
	uint64_t total;
	return ledger_snapshot_totals(l, out, &total);
}

static bool ledger_same_group(const struct egress_entry *a, const struct egress_entry *b)
{
	return a->port == b->port && strcmp(a->host, b->host) == 0 &&
	       strcmp(a->purpose, b->purpose) == 0;
}

/* Groups entries by (host, port, purpose) in first-seen order. The ledger is small (its cap),
 * so the quadratic scan costs less than a hash table would in code. */
static size_t ledger_group(const struct egress_entry *e, size_t n, struct ledger_group *g)
{
	size_t ng = 0, i, j;

	for (i = 0; i < n; i++) {
		for (j = 0; j < ng; j++)
			if (ledger_same_group(g[j].first, &e[i]))
				break;
		if (j == ng) {
			g[ng].first = &e[i];
			g[ng].count = 0;
			g[ng].bytes = 0;
			ng++;
		}
		g[j].count++;
		g[j].bytes += e[i].bytes;
	}
	return ng;
}

void ledger_summary_json(struct egress_ledger *l, struct strbuf *out)
{
	struct egress_entry *e;
	struct ledger_group *g = NULL;
	uint64_t total;
	size_t n = ledger_snapshot_totals(l, &e, &total), ng = 0, i;

	if (n)
		g = malloc(n * sizeof(*g));
	if (g)
		ng = ledger_group(e, n, g);
	sb_printf(out, "{\"connections\":%llu,\"dropped\":%llu,\"hosts\":[",
		  (unsigned long long)total, (unsigned long long)(total - n));
	for (i = 0; i < ng; i++) {
		sb_puts(out, i ? ",{\"host\":" : "{\"host\":");
		sb_json_str(out, g[i].first->host);
		sb_printf(out, ",\"port\":%d,\"purpose\":", g[i].first->port);
		sb_json_str(out, g[i].first->purpose);
		sb_printf(out, ",\"count\":%llu,\"bytes\":%llu}", (unsigned long long)g[i].count,
			  (unsigned long long)g[i].bytes);
	}
	sb_puts(out, "]}");
	free(g);
	free(e);
}

static void ledger_entry_json(const struct egress_entry *e, struct strbuf *out)
{
	char ts[32];

	log_format_timestamp(e->epoch_ms, ts, sizeof(ts));
	sb_puts(out, "{\"time\":");
	sb_json_str(out, ts);
	sb_puts(out, ",\"host\":");
	sb_json_str(out, e->host);
	sb_puts(out, ",\"ip\":");
	sb_json_str(out, e->ip);
	sb_printf(out, ",\"port\":%d,\"purpose\":", e->port);
	sb_json_str(out, e->purpose);
	sb_puts(out, ",\"method\":");
	sb_json_str(out, e->method);
	sb_printf(out, ",\"status\":%ld,\"bytes\":%llu,\"error\":", e->status,
		  (unsigned long long)e->bytes);
	sb_json_str(out, e->error[0] ? e->error : NULL);
	sb_putc(out, '}');
}

void ledger_entries_json(struct egress_ledger *l, struct strbuf *out)
{
	struct egress_entry *e;
	uint64_t total;
	size_t n = ledger_snapshot_totals(l, &e, &total), i;

	sb_putc(out, '[');
	for (i = 0; i < n; i++) {
		if (i)
			sb_putc(out, ',');
		ledger_entry_json(&e[i], out);
	}
	sb_putc(out, ']');
	free(e);
}
