/* The UI's request paths (SPEC §5 UI): what a client asked for, raw and decoded, checked and
 * turned into a file name relative to the UI root that cannot name anything outside it. */
#ifndef PAR_UIPATH_H
#define PAR_UIPATH_H

#include <stdbool.h>
#include <stddef.h>

#define UIPATH_RAW_MAX 1024    /* bytes of the raw path below the UI mount */
#define UIPATH_SEGMENT_MAX 255 /* bytes of one decoded component (NAME_MAX) */

/* The raw path as the client sent it (percent-encoding kept, no query). The HTTP server
 * decodes %2f to '/' and stops at %00 before pard sees the path, so the raw form must not
 * hide a separator, a dot or a NUL behind an escape: no backslash, no escape of NUL, '/',
 * '\\' or '.', no escape cut short by the end, at most UIPATH_RAW_MAX bytes. */
bool uipath_raw_ok(const char *raw);

/* The decoded path: starts with '/'; no empty ("//"), "." or ".." component, none longer
 * than UIPATH_SEGMENT_MAX, no backslash. A trailing '/' names a directory. */
bool uipath_decoded_ok(const char *path);

/* Both checks: the request may be served. */
bool uipath_ok(const char *raw, const char *path);

/* The file to open first for an accepted decoded path, relative to the UI root: the path
 * without its leading '/', with "index.html" appended when it names a directory ("/" or a
 * trailing '/'). 0, or -1 when that does not fit in n bytes (never a truncated name, which
 * could end in "." or ".."). */
int uipath_file(const char *path, char *out, size_t n);

/* When the file of a path without a trailing '/' is a directory: "<that file>/index.html".
 * -1 when the path already named a directory (its index was the file) or out is too small. */
int uipath_dir_index(const char *path, char *out, size_t n);

#endif
