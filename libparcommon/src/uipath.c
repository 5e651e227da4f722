/* Checks a UI request path on its raw and decoded forms and maps it to a file name relative
 * to the UI root (no I/O: pard opens the result with openat2 beneath the root). */
#include "par/uipath.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool uipath_raw_ok(const char *raw)
{
	for (const char *p = raw; *p; p++) {
		if (*p == '\\')
			return false;
		if (*p != '%')
			continue;
		if (!p[1] || !p[2])
			return false;
		/* strtol also reads "zz" as 0 and " 1" as 1: a malformed escape the server leaves
		 * as it is reads as 0 here and is refused, which is the safe side. */
		char hex[3] = {p[1], p[2], 0};
		long v = strtol(hex, NULL, 16);
		if (v == 0 || v == '/' || v == '\\' || v == '.')
			return false;
	}
	return strlen(raw) <= UIPATH_RAW_MAX;
}

bool uipath_decoded_ok(const char *path)
{
	if (path[0] != '/')
		return false;
	const char *p = path + 1;
	while (*p) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == 0 && end)
			return false; /* "//" */
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (n > UIPATH_SEGMENT_MAX || memchr(p, '\\', n))
			return false;
		if (!end)
			break;
		p = end + 1;
	}
	return true;
}

bool uipath_ok(const char *raw, const char *path)
{
	return uipath_raw_ok(raw) && uipath_decoded_ok(path);
}

static bool names_directory(const char *path)
{
	size_t len = strlen(path);
	return len == 0 || path[len - 1] == '/';
}

/* snprintf into out; -1 when it would not fit whole. */
static int put(char *out, size_t n, const char *rel, const char *suffix)
{
	int len = snprintf(out, n, "%s%s", rel, suffix);
	if (len < 0 || (size_t)len >= n) {
		if (n)
			out[0] = '\0';
		return -1;
	}
	return 0;
}

int uipath_file(const char *path, char *out, size_t n)
{
	const char *rel = path[0] == '/' ? path + 1 : path;
	return put(out, n, rel, names_directory(path) ? "index.html" : "");
}

int uipath_dir_index(const char *path, char *out, size_t n)
{
	if (names_directory(path)) {
		if (n)
			out[0] = '\0';
		return -1;
	}
	return put(out, n, path[0] == '/' ? path + 1 : path, "/index.html");
}
