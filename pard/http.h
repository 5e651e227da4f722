/* What every HTTP answer of pard shares, whichever module writes it (REST routes, UI files,
 * native /api, the worker proxy): the JSON error shape and the common headers. */
#ifndef PARD_HTTP_H
#define PARD_HTTP_H

#include <microhttpd.h>

/* {"error":{"code","message"},"requestId"} as application/json, no-store. NULL on OOM. */
struct MHD_Response *http_error_response(const char *code, const char *message,
					 const char *request_id);

/* X-Request-ID, nosniff, and Connection: close while draining (the client should reconnect
 * through the load balancer to another task), then queues r and releases it. r may be NULL
 * (out of memory): the connection is then closed. */
enum MHD_Result http_queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r,
			   const char *request_id);

#endif
