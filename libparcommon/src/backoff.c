/* Boot-failure backoff (SPEC §6.4): the delay rule and the per-agent counter file. */
#include "par/backoff.h"
#include "par/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "par/hash.h"
#include "par/strbuf.h"

#define BACKOFF_MAX_SEC 60u
#define BACKOFF_MAX_COUNT 1000000u   /* far past the cap; anything larger is garbage */
#define BACKOFF_FILE_PREFIX "boot-failures-"
#define BACKOFF_HASH_CHARS 32
#define BACKOFF_READ_MAX 4096
#define BACKOFF_SHOW_MAX 32          /* how much of a bad value a warning quotes */

unsigned backoff_delay_sec(unsigned n)
{
	if (n == 0)
		return 0;
	if (n >= 6)  /* 2^6 = 64 already exceeds the cap; also keeps the shift defined */
		return BACKOFF_MAX_SEC;
	return 1u << n;
}

char *backoff_state_path(const char *state_dir, const char *agent_app_id)
{
	if (!state_dir || !*state_dir || !agent_app_id) {
		errno = EINVAL;
		return NULL;
	}
	char hex[65];
	sha256_hex(agent_app_id, strlen(agent_app_id), hex);
	hex[BACKOFF_HASH_CHARS] = '\0';
	size_t dlen = strlen(state_dir);
	const char *sep = state_dir[dlen - 1] == '/' ? "" : "/";
	size_t n = dlen + strlen(sep) + sizeof(BACKOFF_FILE_PREFIX) + BACKOFF_HASH_CHARS;
	char *path = malloc(n);
	if (!path)
		return NULL;
	snprintf(path, n, "%s%s" BACKOFF_FILE_PREFIX "%s", state_dir, sep, hex);
	return path;
}

/* --- reading ----------------------------------------------------------------------------- */

static char *backoff_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *backoff_sprintf(const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sb_vprintf(&sb, fmt, ap);
	va_end(ap);
	if (sb.oom || !sb.buf) {
		sb_free(&sb);
		return NULL;
	}
	return sb_steal(&sb);
}

static void backoff_warn(char **warning, char *msg)
{
	if (warning)
		*warning = msg;
	else
		free(msg);
}

/* Reads up to cap-1 bytes; O_NONBLOCK plus the S_ISREG check keep a FIFO planted at the
 * path from hanging the boot. 0 ok, -1 with errno. */
static int backoff_slurp(const char *path, char *buf, size_t cap, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	int rc = -1;
	struct stat st;
	if (fstat(fd, &st) != 0)
		goto out;
	if (!S_ISREG(st.st_mode)) {
		errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
		goto out;
	}
	*len = 0;
	while (*len < cap - 1) {
		ssize_t r = read(fd, buf + *len, cap - 1 - *len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		*len += (size_t)r;
	}
	buf[*len] = '\0';
	rc = 0;
out:;
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

static int backoff_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* The first line, blanks trimmed (an operator's editor may add them), must be 1..7 digits
 * worth at most BACKOFF_MAX_COUNT. line is cut to that field in place. */
static int backoff_parse(char *line, unsigned *count)
{
	char *nl = strchr(line, '\n');
	if (nl)
		*nl = '\0';
	size_t n = strlen(line);
	while (n > 0 && backoff_is_blank(line[n - 1]))
		line[--n] = '\0';
	const char *p = line;
	while (backoff_is_blank(*p))
		p++;
	if (!*p)
		return -1;
	unsigned long v = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > BACKOFF_MAX_COUNT)
			return -1;
	}
	*count = (unsigned)v;
	return 0;
}

static char *backoff_malformed_msg(const char *path, const char *value)
{
	size_t n = strlen(value);
	int shown = n > BACKOFF_SHOW_MAX ? BACKOFF_SHOW_MAX : (int)n;
	return backoff_sprintf("boot failure counter %s holds \"%.*s%s\", not a count of "
			       "0 to %u; using 0",
			       path, shown, value, n > BACKOFF_SHOW_MAX ? "…" : "",
			       BACKOFF_MAX_COUNT);
}

int backoff_state_read(const char *state_dir, const char *agent_app_id, unsigned *count,
		       char **warning)
{
	*count = 0;
	if (warning)
		*warning = NULL;
	char *path = backoff_state_path(state_dir, agent_app_id);
	if (!path) {
		backoff_warn(warning, backoff_sprintf("cannot locate the boot failure counter: %s",
						      strerror(errno)));
		return -1;
	}
	char buf[BACKOFF_READ_MAX];
	size_t len = 0;
	int rc = 0;
	if (backoff_slurp(path, buf, sizeof(buf), &len) != 0) {
		if (errno == ENOENT)
			goto out;
		int e = errno;
		backoff_warn(warning, backoff_sprintf("cannot read boot failure counter %s: %s",
						      path, strerror(e)));
		errno = e;
		rc = -1;
		goto out;
	}
	if (backoff_parse(buf, count) != 0) {
		*count = 0;
		backoff_warn(warning, backoff_malformed_msg(path, buf));
		rc = 1;
	}
out:
	free(path);
	return rc;
}

/* --- writing ----------------------------------------------------------------------------- */

/* "count\napp id\n"; control bytes in the id would only confuse an operator's cat. */
static char *backoff_content(unsigned count, const char *agent_app_id)
{
	char *s = backoff_sprintf("%u\n%s\n", count, agent_app_id);
	if (!s)
		return NULL;
	char *id = strchr(s, '\n') + 1;
	size_t idlen = strlen(id) - 1;
	for (size_t i = 0; i < idlen; i++)
		if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
			id[i] = '?';
	return s;
}

int backoff_state_write(const char *state_dir, const char *agent_app_id, unsigned count)
{
	char *path = backoff_state_path(state_dir, agent_app_id);
	if (!path)
		return -1;
	int rc = -1;
	char *content = NULL;
	if (fs_mkdir_p(state_dir, 0700) != 0)
		goto out;
	/* Clamped so what we write always reads back as well-formed. */
	content = backoff_content(count > BACKOFF_MAX_COUNT ? BACKOFF_MAX_COUNT : count,
				  agent_app_id);
	if (!content)
		goto out;
	rc = fs_replace_file(state_dir, path, content, strlen(content), 0600);
out:
	free(content);
	int e = errno;
	free(path);
	errno = e;
	return rc;
}

int backoff_state_clear(const char *state_dir, const char *agent_app_id)
{
	char *path = backoff_state_path(state_dir, agent_app_id);
	if (!path)
		return -1;
	int rc = 0;
	if (unlink(path) != 0)
		rc = errno == ENOENT ? 0 : -1;
	else
		rc = fs_fsync_dir(state_dir);  /* so a reset is not undone by a crash */
	int e = errno;
	free(path);
	errno = e;
	return rc;
}
