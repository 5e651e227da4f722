/* The shared shape of pard's HTTP answers, so an error from the worker proxy looks exactly
 * like one from a reserved route. */
#include "http.h"

#include <stdlib.h>

#include "lifecycle.h"
#include "par/strbuf.h"

struct MHD_Response *http_error_response(const char *code, const char *message,
					 const char *request_id)
{
	struct strbuf sb = STRBUF_INIT;
	sb_puts(&sb, "{\"error\":{\"code\":");
	sb_json_str(&sb, code);
	sb_puts(&sb, ",\"message\":");
	sb_json_str(&sb, message);
	sb_puts(&sb, "},\"requestId\":");
	sb_json_str(&sb, request_id);
	sb_putc(&sb, '}');
	if (sb.oom) {
		sb_free(&sb);
		return NULL;
	}
	size_t len = sb.len;
	char *body = sb_steal(&sb);
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return NULL;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return r;
}

enum MHD_Result http_queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r,
			   const char *request_id)
{
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "X-Request-ID", request_id);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	enum lc_state s = lc_state();
	if (s == LC_DRAINING || s == LC_STOPPED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}
