/* Static files of the agent's UI. Every request path is checked twice (par/uipath.h): on its
 * raw form (no encoded slash, backslash or NUL can smuggle a separator past the decoder) and
 * component by component, then opened with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)
 * relative to the UI root, so neither "..", an absolute path nor a symlink inside the package
 * can leave it. */
#include "ui.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "par/log.h"
#include "par/strbuf.h"
#include "par/uipath.h"

/* Room for any accepted path plus "/index.html" or a ".br"/".gz" suffix. */
#define UI_PATH_MAX (UIPATH_RAW_MAX + 16)

static struct {
	int root_fd;
	char base_path[256];
	const struct par_config *cfg;
} ui = {.root_fd = -1};

bool ui_present(void) { return ui.root_fd >= 0; }
const char *ui_base_path(void) { return ui.base_path; }

void ui_close(void)
{
	if (ui.root_fd >= 0)
		close(ui.root_fd);
	ui.root_fd = -1;
}

/* Walks rel (already validated by the manifest) from dirfd, refusing symlinks. */
static int open_dir_beneath(int dirfd, const char *rel)
{
	char *copy = strdup(rel);
	if (!copy)
		return -1;
	int fd = dup(dirfd);
	char *save = NULL;
	for (char *part = strtok_r(copy, "/", &save); fd >= 0 && part;
	     part = strtok_r(NULL, "/", &save)) {
		if (strcmp(part, ".") == 0)
			continue;
		int next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(fd);
		errno = e;
		fd = next;
	}
	free(copy);
	return fd;
}

int ui_open(const struct par_config *cfg, const struct par_manifest *m, const char *root,
	    char *err, size_t errlen)
{
	ui.cfg = cfg;
	if (!m->has_ui || !m->ui_path)
		return 0;
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		snprintf(err, errlen, "package root %s: %s", root, strerror(errno));
		return -1;
	}
	ui.root_fd = open_dir_beneath(rootfd, m->ui_path);
	int e = errno;
	close(rootfd);
	if (ui.root_fd < 0) {
		snprintf(err, errlen, "ui.path %s: %s", m->ui_path,
			 e == ELOOP || e == ENOTDIR ? "not a directory of the package (symlinks are refused)"
						    : strerror(e));
		return -1;
	}
	const char *bp = m->ui_base_path ? m->ui_base_path : "/";
	size_t n = strlen(bp);
	while (n > 1 && bp[n - 1] == '/')
		n--;
	snprintf(ui.base_path, sizeof ui.base_path, "%.*s", (int)(n == 1 ? 0 : n), bp);
	return 0;
}

static int open_beneath(const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, ui.root_fd, rel, &how, sizeof how);
	if (fd >= 0 || errno != ENOSYS)
		return (int)fd;
	/* Kernels before 5.6: the component walk gives the same guarantees. */
	char *dir = strdup(rel);
	if (!dir)
		return -1;
	char *slash = strrchr(dir, '/');
	int dfd = slash ? (*slash = '\0', open_dir_beneath(ui.root_fd, dir)) : dup(ui.root_fd);
	const char *leaf = slash ? strrchr(rel, '/') + 1 : rel;
	int r = dfd < 0 ? -1 : openat(dfd, leaf, flags | O_CLOEXEC | O_NOFOLLOW);
	int e = errno;
	if (dfd >= 0)
		close(dfd);
	free(dir);
	errno = e;
	return r;
}

static const struct {
	const char *ext;
	const char *type;
} content_types[] = {
	{"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
	{"js", "text/javascript; charset=utf-8"}, {"mjs", "text/javascript; charset=utf-8"},
	{"css", "text/css; charset=utf-8"}, {"json", "application/json"},
	{"map", "application/json"}, {"svg", "image/svg+xml"}, {"png", "image/png"},
	{"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"}, {"gif", "image/gif"},
	{"webp", "image/webp"}, {"avif", "image/avif"}, {"ico", "image/x-icon"},
	{"woff", "font/woff"}, {"woff2", "font/woff2"}, {"ttf", "font/ttf"},
	{"otf", "font/otf"}, {"txt", "text/plain; charset=utf-8"}, {"xml", "application/xml"},
	{"wasm", "application/wasm"}, {"pdf", "application/pdf"},
	{"webmanifest", "application/manifest+json"},
};

static const char *extension(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash : path, '.');
	return dot && dot[1] ? dot + 1 : NULL;
}

static const char *content_type(const char *path)
{
	const char *ext = extension(path);
	for (size_t i = 0; ext && i < sizeof content_types / sizeof content_types[0]; i++)
		if (strcasecmp(ext, content_types[i].ext) == 0)
			return content_types[i].type;
	return "application/octet-stream";
}

/* name.<8+ hex>.ext: a build tool's content hash, safe to cache for a year. */
static bool hashed_asset(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	const char *last = strrchr(name, '.');
	if (!last || last == name)
		return false;
	const char *prev = last - 1;
	while (prev > name && *prev != '.')
		prev--;
	if (*prev != '.')
		return false;
	size_t n = (size_t)(last - prev - 1);
	return n >= 6 && strspn(prev + 1, "0123456789abcdefABCDEF") >= n;
}

static bool accepts(struct MHD_Connection *c, const char *coding)
{
	const char *ae = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept-Encoding");
	if (!ae)
		return false;
	size_t n = strlen(coding);
	for (const char *p = ae; (p = strcasestr(p, coding)) != NULL; p += n) {
		bool start = p == ae || p[-1] == ' ' || p[-1] == ',';
		bool end = p[n] == '\0' || p[n] == ',' || p[n] == ';' || p[n] == ' ';
		if (start && end && strncmp(p + n, ";q=0", 4) != 0)
			return true;
	}
	return false;
}

static void http_date(time_t t, char *buf, size_t n)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* ui-config.json tells the UI where the agent's REST API is: relative on the REST port, an
 * absolute URL (same host, REST_PORT) when the UI is served from its own port. */
static void answer_config(struct MHD_Connection *c, const struct ui_request *r,
			  struct ui_answer *out)
{
	char api[512], host[256] = "localhost";
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	if (h) {
		snprintf(host, sizeof host, "%s", h);
		char *colon = host[0] == '[' ? strstr(host, "]:") : strrchr(host, ':');
		if (colon)
			colon[host[0] == '[' ? 1 : 0] = '\0';
		if (strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-[]:") !=
		    strlen(host))
			snprintf(host, sizeof host, "localhost");
	}
	if (r->own_port)
		snprintf(api, sizeof api, "http://%s:%u%s/api", host, ui.cfg->rest_port,
			 ui.cfg->base_path);
	else
		snprintf(api, sizeof api, "%s/api", ui.cfg->base_path);
	struct strbuf sb = STRBUF_INIT;
	sb_puts(&sb, "{\"apiBase\":");
	sb_json_str(&sb, api);
	sb_puts(&sb, ",\"basePath\":");
	sb_json_str(&sb, ui.cfg->base_path[0] ? ui.cfg->base_path : "/");
	sb_puts(&sb, ",\"agentAppId\":");
	sb_json_str(&sb, ui.cfg->agent_app_id);
	sb_putc(&sb, '}');
	size_t len = sb.len;
	char *text = sb_steal(&sb);
	out->status = MHD_HTTP_OK;
	out->resp = text ? MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE) : NULL;
	if (!out->resp) {
		free(text);
		return;
	}
	MHD_add_response_header(out->resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(out->resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
}

static void fail(struct ui_answer *out, unsigned status, const char *code, const char *msg)
{
	out->status = status;
	out->resp = NULL;
	out->err_code = code;
	out->err_message = msg;
}

/* The file to send for rel: the file itself, a directory's index.html, or the SPA fallback
 * for extension-less paths. Returns an fd, or -1 with *status. */
static int resolve(const char *path, char *chosen, size_t n, unsigned *status, bool *fallback)
{
	*fallback = false;
	if (uipath_file(path, chosen, n) != 0) {
		*status = MHD_HTTP_NOT_FOUND;
		return -1;
	}
	int fd = open_beneath(chosen, O_RDONLY);
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
		    uipath_dir_index(path, chosen, n) == 0) {
			close(fd);
			fd = open_beneath(chosen, O_RDONLY);
		}
	}
	if (fd >= 0)
		return fd;
	if (errno == ELOOP || errno == EXDEV) {
		*status = MHD_HTTP_FORBIDDEN;
		return -1;
	}
	/* Client-side routes (/settings, /agents/x) get the app; a missing asset (app.js) does
	 * not, so a broken deploy shows as 404s instead of HTML served as JavaScript. */
	if (!extension(path) && (errno == ENOENT || errno == ENOTDIR)) {
		snprintf(chosen, n, "index.html");
		*fallback = true;
		fd = open_beneath(chosen, O_RDONLY);
		if (fd >= 0)
			return fd;
	}
	*status = MHD_HTTP_NOT_FOUND;
	return -1;
}

/* A precompressed sibling (.br, then .gz) when the client takes it. */
static int precompressed(struct MHD_Connection *c, const char *chosen, const char **encoding)
{
	static const struct {
		const char *coding, *suffix;
	} variants[] = {{"br", ".br"}, {"gzip", ".gz"}};
	for (size_t i = 0; i < 2; i++) {
		if (!accepts(c, variants[i].coding))
			continue;
		char name[UI_PATH_MAX + 8];
		snprintf(name, sizeof name, "%s%s", chosen, variants[i].suffix);
		int fd = open_beneath(name, O_RDONLY);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
			*encoding = variants[i].coding;
			return fd;
		}
		if (fd >= 0)
			close(fd);
	}
	return -1;
}

void ui_answer(struct MHD_Connection *c, const struct ui_request *r, struct ui_answer *out)
{
	memset(out, 0, sizeof *out);
	if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
		return fail(out, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
			    "the UI answers GET and HEAD");
	if (!uipath_ok(r->raw_path, r->path))
		return fail(out, MHD_HTTP_BAD_REQUEST, "bad_path",
			    "the path has an encoded separator, a dot segment or a backslash");
	if (strcmp(r->path, "/ui-config.json") == 0)
		return answer_config(c, r, out);

	char chosen[UI_PATH_MAX];
	unsigned status = MHD_HTTP_NOT_FOUND;
	bool fallback;
	int fd = resolve(r->path, chosen, sizeof chosen, &status, &fallback);
	if (fd < 0)
		return fail(out, status, status == MHD_HTTP_FORBIDDEN ? "forbidden" : "not_found",
			    status == MHD_HTTP_FORBIDDEN ? "symlinks are not served" : "no such file");
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(out, MHD_HTTP_NOT_FOUND, "not_found", "no such file");
	}
	char etag[64], lastmod[64];
	snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
		 (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL +
			 (unsigned long long)st.st_mtim.tv_nsec);
	http_date(st.st_mtim.tv_sec, lastmod, sizeof lastmod);
	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
	const char *ims = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-Modified-Since");
	bool not_modified = inm ? (strstr(inm, etag) != NULL || strcmp(inm, "*") == 0)
				: (ims && strcmp(ims, lastmod) == 0);

	const char *encoding = NULL;
	int body_fd = fd;
	off_t size = st.st_size;
	if (!not_modified) {
		int z = precompressed(c, chosen, &encoding);
		struct stat zs;
		if (z >= 0 && fstat(z, &zs) == 0) {
			close(fd);
			body_fd = z;
			size = zs.st_size;
		} else if (z >= 0) {
			close(z);
		}
	} else {
		close(fd);
		body_fd = -1;
	}
	out->status = not_modified ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK;
	out->resp = not_modified
			    ? MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT)
			    : MHD_create_response_from_fd64((uint64_t)size, body_fd);
	if (!out->resp) {
		if (body_fd >= 0)
			close(body_fd);
		return fail(out, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory");
	}
	bool index = fallback || strcmp(chosen + (strlen(chosen) >= 10 ? strlen(chosen) - 10 : 0),
					"index.html") == 0;
	MHD_add_response_header(out->resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type(chosen));
	MHD_add_response_header(out->resp, MHD_HTTP_HEADER_ETAG, etag);
	MHD_add_response_header(out->resp, MHD_HTTP_HEADER_LAST_MODIFIED, lastmod);
	MHD_add_response_header(out->resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
	MHD_add_response_header(out->resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				index ? "no-cache"
				: hashed_asset(chosen) ? "public, max-age=31536000, immutable"
						       : "public, max-age=300");
	if (encoding)
		MHD_add_response_header(out->resp, MHD_HTTP_HEADER_CONTENT_ENCODING, encoding);
}
