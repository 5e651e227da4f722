/* libFuzzer target: arbitrary bytes as the request target of a UI request. The path is
 * decoded by libmicrohttpd's own MHD_http_unescape, as pard receives it, then checked and
 * mapped by par/uipath.h; whatever is accepted must name a file beneath the UI root. */
#include "par/uipath.h"

#include <ctype.h>
#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A name relative to the root that openat2(RESOLVE_BENEATH) would not even need to refuse:
 * not absolute, no "", "." or ".." component, no backslash. */
static bool stays_beneath(const char *rel)
{
	if (!rel[0] || rel[0] == '/' || strchr(rel, '\\'))
		return false;
	for (const char *p = rel;;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.') ||
		    n > UIPATH_SEGMENT_MAX + 10)
			return false;
		if (!p[n])
			return true;
		p += n + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The request target as on_uri sees it: a C string, the query cut off. */
	char *raw = malloc(size + 1);
	if (!raw)
		return 0;
	memcpy(raw, data, size);
	raw[size] = '\0';
	raw[strcspn(raw, "?")] = '\0';
	char *path = strdup(raw);
	if (!path) {
		free(raw);
		return 0;
	}
	MHD_http_unescape(path);

	bool ok = uipath_ok(raw, path);
	if (ok != (uipath_raw_ok(raw) && uipath_decoded_ok(path)))
		abort();
	if (ok) {
		/* What the raw check exists for: no separator or dot came out of an escape, and no
		 * NUL cut the decoded path short (each escape the server decoded made it 2 bytes
		 * shorter, nothing else did). */
		size_t decoded = 0;
		for (const char *p = strchr(raw, '%'); p; p = strchr(p + 1, '%')) {
			if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
				continue;
			long v = strtol((char[3]){p[1], p[2], 0}, NULL, 16);
			if (v == '/' || v == '.' || v == '\\' || v == 0)
				abort();
			decoded++;
		}
		if (strlen(path) + 2 * decoded != strlen(raw))
			abort();
		char file[UIPATH_RAW_MAX + 16], index[UIPATH_RAW_MAX + 16];
		if (uipath_file(path, file, sizeof file) != 0 || !stays_beneath(file))
			abort();
		if (uipath_dir_index(path, index, sizeof index) == 0 &&
		    (!stays_beneath(index) || strncmp(index, file, strlen(file)) != 0))
			abort();
		/* Too small a buffer refuses instead of cutting the name short. */
		char small[8];
		if (uipath_file(path, small, sizeof small) == 0 && strcmp(small, file) != 0)
			abort();
	}
	free(path);
	free(raw);
	return 0;
}
