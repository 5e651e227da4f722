/* The UI surface's files (SPEC §5 UI): static files beneath the package's ui.path, resolved
 * so no request can leave that directory, with content types, validators and precompressed
 * variants. The listeners (UI_PORT, and {BASE}/ui/ on REST) live in rest.c. */
#ifndef PARD_UI_H
#define PARD_UI_H

#include <microhttpd.h>
#include <stdbool.h>

#include "par/config.h"
#include "par/manifest.h"

/* Opens ui.path beneath the package root (no symlinks on the way). 0 ok, -1 with err. */
int ui_open(const struct par_config *cfg, const struct par_manifest *m, const char *root,
	    char *err, size_t errlen);
bool ui_present(void);
void ui_close(void);
/* The manifest's ui.basePath ("" for "/"), mounted under {BASE}/ui on the REST port. */
const char *ui_base_path(void);

struct ui_request {
	const char *method;
	const char *raw_path;    /* as the client sent it, still percent-encoded, no query */
	const char *path;        /* decoded, relative to the mount, starting with '/' */
	bool own_port;           /* UI_PORT (apiBase must then be absolute) */
};

struct ui_answer {
	unsigned status;
	struct MHD_Response *resp;   /* NULL: answer a JSON error with err_code/err_message */
	const char *err_code;
	const char *err_message;
};

/* Resolves and prepares the answer; the caller adds the common headers and queues it. */
void ui_answer(struct MHD_Connection *c, const struct ui_request *r, struct ui_answer *out);

#endif
