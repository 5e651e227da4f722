/* The egress ledger (SPEC §8.4): every outbound connection pard makes, so verify-isolation
 * can judge it and /meta can summarise it. Thread-safe, bounded (oldest entries dropped
 * past the cap, with a count of how many). */
#ifndef PAR_LEDGER_H
#define PAR_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "par/strbuf.h"

struct egress_entry {
	int64_t epoch_ms;
	char host[256];      /* as connected to (name from the URL) */
	char ip[64];         /* the address actually used, "" when the connect failed */
	int port;
	char purpose[32];    /* "package", "credentials", "iam-probe", … */
	char method[8];
	long status;         /* HTTP status, 0 when there was no response */
	uint64_t bytes;      /* body bytes received */
	char error[128];     /* "" on success */
};

struct egress_ledger;

struct egress_ledger *ledger_new(size_t cap);
void ledger_free(struct egress_ledger *l);
void ledger_record(struct egress_ledger *l, const struct egress_entry *e);
/* Copies the entries (oldest first) into a malloc'd array; returns the count. */
size_t ledger_snapshot(struct egress_ledger *l, struct egress_entry **out);
size_t ledger_count(struct egress_ledger *l);
/* {"connections":N,"dropped":N,"hosts":[{"host","port","purpose","count","bytes"}…]} */
void ledger_summary_json(struct egress_ledger *l, struct strbuf *out);
/* Every entry as a JSON array (no secrets are ever stored in an entry). */
void ledger_entries_json(struct egress_ledger *l, struct strbuf *out);

#endif
