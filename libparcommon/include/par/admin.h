/* The admin protocol (SPEC §8.1), one definition for pard (server) and parctl (client):
 * versioned JSON lines over a Unix stream socket, the verb table with each verb's access
 * (read or change), the runtime fault names, and the socket path rules.
 *
 * Wire format, one JSON object per line ('\n'), at most ADMIN_LINE_MAX bytes with it:
 *   request   {"v":1,"id":7,"cmd":"show boot","args":{…}}       (args optional: {})
 *   response  {"v":1,"id":7,"ok":true,"result":<any JSON>}
 *             {"v":1,"id":7,"ok":false,"error":{"code":"denied","message":"…"}}
 *   monitor   the first response is ok with {"streaming":true}; then one line per event,
 *             {"v":1,"id":7,"event":{…the JSON log line…}}, until the client closes.
 * "cmd" is the verb phrase exactly as in admin_verbs (words joined by one space). A line
 * that is not such an object gets error "malformed" (id null when unknown) and the
 * connection stays usable; an over-long line gets "too_long" and the connection is closed;
 * "v" other than ADMIN_PROTO_VERSION gets "version" with both versions named. Blank lines
 * are ignored. A peer whose uid is not allowed gets one "denied" response (to its first
 * request, or after 2 s) and the connection closes; a socket with too many clients answers
 * "busy" and closes. */
#ifndef PAR_ADMIN_H
#define PAR_ADMIN_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#define ADMIN_PROTO_VERSION 1
#define ADMIN_LINE_MAX 65536

/* Error codes (response error.code). */
#define ADMIN_E_MALFORMED "malformed"      /* not a request object / bad field types */
#define ADMIN_E_TOO_LONG "too_long"        /* line over ADMIN_LINE_MAX */
#define ADMIN_E_VERSION "version"          /* v mismatch */
#define ADMIN_E_UNKNOWN "unknown_command"  /* cmd not in admin_verbs */
#define ADMIN_E_ARGS "bad_args"            /* args missing/invalid for the verb */
#define ADMIN_E_DENIED "denied"            /* uid not allowed, or changing verb on the RO socket */
#define ADMIN_E_STATE "bad_state"          /* not possible now (e.g. undrain when stopping) */
#define ADMIN_E_FAILED "failed"            /* the verb ran and failed */
#define ADMIN_E_INTERNAL "internal"
#define ADMIN_E_BUSY "busy"                /* too many clients on this socket now; retry */

enum admin_access { ADMIN_READ, ADMIN_CHANGE };

/* Verb args (keys of "args"), by cmd:
 *   status, show boot|config|package|metrics|budgets, ping, version, fault list: none
 *     (show metrics: {"format":"openmetrics"} → result is {"text":"…"}; default JSON)
 *   drain       {"timeout_s":N (optional, number ≥ 0), "no_exit":bool (optional)}
 *   undrain     none (only after drain --no-exit)
 *   health      {"state":"fail"|"ok"}
 *   fault set   {"name":"rest.latency","value":"200" (optional),"probability":0.5 (optional)}
 *   fault clear {"name":"…"} (optional: absent clears every runtime fault)
 *   log level   {"level":"debug"|"info"|"warn"|"error"}
 *   monitor     none (streams)
 *   verify-isolation {"strict":bool} */
struct admin_verb {
	const char *cmd;          /* "show boot" */
	enum admin_access access;
	bool streaming;           /* monitor */
	const char *usage;        /* argument synopsis for help: "[--timeout S] [--no-exit]" */
	const char *help;         /* one line */
};

/* NULL-terminated (cmd == NULL). */
extern const struct admin_verb admin_verbs[];
const struct admin_verb *admin_verb_find(const char *cmd);

/* Runtime faults (SPEC §8.3), settable with "fault set". */
struct admin_fault {
	const char *name;         /* "rest.latency" */
	const char *value_kind;   /* NULL: takes no value; else what the value is: "ms", "http-status" */
	bool probability;         /* accepts a probability */
	bool one_shot;            /* acts once when set (worker.kill, crash) */
	const char *help;
	const char *value_default; /* the value when none is given (rest.error: "500"); NULL */
};
extern const struct admin_fault admin_faults[];   /* NULL-terminated (name == NULL) */
const struct admin_fault *admin_fault_find(const char *name);
/* The one rule for a fault's value, used by parctl before sending and by pard on receipt:
 * ms 0..ADMIN_FAULT_MS_MAX, http-status 400..599, grpc-code 1..16 or its name
 * ("UNAVAILABLE", any case). 0 with *out; -1 with a sentence naming the fault, the value and
 * the rule in err. */
#define ADMIN_FAULT_MS_MAX 600000u
int admin_fault_value_parse(const struct admin_fault *f, const char *s, unsigned *out,
			    char *err, size_t errlen);
/* "UNAVAILABLE" for 14; "UNKNOWN" outside 0..16. */
const char *admin_grpc_code_name(int code);

/* A parsed request. id is a copy of the request's id (number or string; NULL when absent);
 * args is an object (empty when absent). Both owned by the request. */
struct admin_request {
	int v;
	cJSON *id;
	char *cmd;
	cJSON *args;
};

/* Parses one line (without its '\n'). 0 ok; -1 with *code one of ADMIN_E_* and a sentence
 * in msg; req->id is still filled when the line had one, so the error can echo it. */
int admin_request_parse(const char *line, size_t len, struct admin_request *req,
			const char **code, char *msg, size_t msglen);
void admin_request_free(struct admin_request *req);

/* Encoders: malloc'd text ending in '\n'. result/args are taken over (deleted). */
char *admin_request_encode(long id, const char *cmd, cJSON *args);
char *admin_response_ok(const cJSON *id, cJSON *result);
char *admin_response_error(const cJSON *id, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
char *admin_event_encode(const cJSON *id, const char *json_log_line);

/* A parsed response (client side). For an event line, event is set and ok is true. */
struct admin_response {
	int v;
	long id;
	bool ok;
	cJSON *result;            /* ok: the result (may be NULL) */
	cJSON *event;             /* monitor event */
	char *err_code, *err_msg; /* !ok */
	cJSON *doc;               /* owns the above */
};
int admin_response_parse(const char *line, size_t len, struct admin_response *resp,
			 char *msg, size_t msglen);
void admin_response_free(struct admin_response *resp);

/* Socket paths. The configured path (PAR_ADMIN_SOCKET, default ADMIN_DEFAULT_SOCKET), then
 * the SPEC §2 fallbacks: $XDG_RUNTIME_DIR/par/admin.sock, /tmp/par-$UID/admin.sock. pard
 * binds the first whose directory it can create; parctl (without -s) tries each in order. */
#define ADMIN_DEFAULT_SOCKET "/run/par/admin.sock"
/* Fills paths[0..n) (each malloc'd, caller frees) and returns n (≤ 3). */
size_t admin_socket_candidates(const char *configured, char *paths[3]);

/* Line reader for a stream socket: fills from fd until a whole line is there. */
struct admin_linebuf {
	char *buf;
	size_t len, cap;
	bool overflow;            /* the current line went over ADMIN_LINE_MAX */
	size_t consumed;          /* bytes of the line handed out last (dropped next call) */
};
/* Start from a zeroed linebuf. Returns 1 with a NUL-terminated line in *line (valid until
 * the next call; no '\n'; a last line without '\n' before EOF counts), 0 on EOF, -1 on error
 * (errno; EAGAIN when non-blocking and nothing complete), -2 when the line is longer than
 * ADMIN_LINE_MAX (the rest of that line is then skipped up to its '\n'). */
int admin_read_line(int fd, struct admin_linebuf *lb, char **line);
void admin_linebuf_free(struct admin_linebuf *lb);

#endif
