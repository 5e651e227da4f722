/* libFuzzer target: arbitrary bytes as admin protocol traffic (SPEC §8.1): the whole input as
 * one line through both parsers, then line by line through the socket line reader, each line
 * as a request and as a response, and what was accepted re-encoded and parsed again. */
#include "par/admin.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An encoder's line (with its '\n') must parse as the response it was meant to be; freed. */
static void reparse_response(char *line, bool want_ok, const char *want_code)
{
	struct admin_response resp;
	char msg[256];
	if (!line)
		return;
	size_t n = strlen(line);
	if (n == 0 || line[n - 1] != '\n' || memchr(line, '\n', n - 1))
		abort(); /* exactly one line */
	if (admin_response_parse(line, n - 1, &resp, msg, sizeof msg) != 0 || resp.ok != want_ok ||
	    (want_code && (!resp.err_code || strcmp(resp.err_code, want_code) != 0)))
		abort();
	admin_response_free(&resp);
	free(line);
}

/* pard's side: a valid request comes back as the same request once re-encoded, and every
 * answer it could give parses on parctl's side. */
static void as_request(const char *line, size_t len)
{
	struct admin_request req;
	const char *code = NULL;
	char msg[256];

	if (admin_request_parse(line, len, &req, &code, msg, sizeof msg) != 0) {
		if (!code || req.cmd || req.args)
			abort();
		reparse_response(admin_response_error(req.id, code, "%s", msg), false, code);
		admin_request_free(&req);
		return;
	}
	if (!req.cmd || !cJSON_IsObject(req.args) || req.v != ADMIN_PROTO_VERSION ||
	    !admin_verb_find(req.cmd))
		abort();
	char *again = admin_request_encode(7, req.cmd, cJSON_Duplicate(req.args, 1));
	if (again) {
		struct admin_request req2;
		if (admin_request_parse(again, strlen(again) - 1, &req2, &code, msg, sizeof msg) != 0 ||
		    strcmp(req2.cmd, req.cmd) != 0 || !cJSON_Compare(req2.args, req.args, 1))
			abort();
		admin_request_free(&req2);
		free(again);
	}
	reparse_response(admin_response_ok(req.id, cJSON_Duplicate(req.args, 1)), true, NULL);
	admin_request_free(&req);
}

/* parctl's side: any line, and any line wrapped as a monitor event. */
static void as_response(const char *line, size_t len)
{
	struct admin_response resp;
	char msg[256];

	if (admin_response_parse(line, len, &resp, msg, sizeof msg) == 0) {
		if (resp.v != ADMIN_PROTO_VERSION || !resp.doc ||
		    (!resp.ok && (!resp.err_code || !resp.err_msg)))
			abort();
		admin_response_free(&resp);
	} else if (resp.doc) {
		abort(); /* a refusal frees what it parsed */
	}
	/* The envelope adds a level of nesting, and cJSON parses 1000 at most: only a line
	 * shallower than that must survive the wrapping (pard's log lines are flat). */
	size_t opens = 0;
	for (size_t i = 0; i < len; i++)
		opens += line[i] == '{' || line[i] == '[';
	if (opens < 999 && memchr(line, '\0', len) == NULL)
		reparse_response(admin_event_encode(NULL, line), true, NULL);
}

/* The line reader over a memfd holding the input, as pard and parctl read their socket. */
static void by_lines(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz_admin", MFD_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, data, size) == (ssize_t)size && lseek(fd, 0, SEEK_SET) == 0) {
		struct admin_linebuf lb = {0};
		char *line;
		int rc;
		/* Every call either hands out a line, skips an over-long one or ends. */
		for (int calls = 0; (rc = admin_read_line(fd, &lb, &line)) != 0; calls++) {
			if (rc == -1 || calls > (int)size + 1)
				abort();
			if (rc == 1) {
				size_t n = strlen(line);
				if (n >= ADMIN_LINE_MAX || memchr(line, '\n', n))
					abort();
				as_request(line, n);
				as_response(line, n);
			}
		}
		admin_linebuf_free(&lb);
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Straight from libFuzzer's buffer: no NUL after it, so a parser that reads past len
	 * shows up under ASan. */
	struct admin_request req;
	struct admin_response resp;
	const char *code;
	char msg[256];
	admin_request_parse((const char *)data, size, &req, &code, msg, sizeof msg);
	admin_request_free(&req);
	if (admin_response_parse((const char *)data, size, &resp, msg, sizeof msg) == 0)
		admin_response_free(&resp);

	by_lines(data, size);
	return 0;
}
