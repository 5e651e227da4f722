/* Growable byte buffer and the JSON string escaper: every JSON text PAR writes goes through it,
 * so its output must be valid JSON whatever bytes come in. */
#include "par/strbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_init(struct strbuf *sb)
{
	sb->buf = NULL;
	sb->len = 0;
	sb->cap = 0;
	sb->oom = 0;
}

void sb_free(struct strbuf *sb)
{
	free(sb->buf);
	sb_init(sb);
}

void sb_reset(struct strbuf *sb)
{
	sb->len = 0;
	sb->oom = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

char *sb_steal(struct strbuf *sb)
{
	char *s = sb->buf;

	if (sb->oom) {
		/* A partial string would silently lose data; make the failure visible. */
		free(s);
		s = NULL;
	} else if (!s) {
		s = calloc(1, 1);
	}
	sb_init(sb);
	return s;
}

/* Makes room for extra more bytes plus the NUL; 0 ok, -1 (and oom set) on failure. */
static int sb_reserve(struct strbuf *sb, size_t extra)
{
	size_t need, cap;
	char *nb;

	if (sb->oom)
		return -1;
	if (extra > SIZE_MAX - sb->len - 1)
		goto fail;
	need = sb->len + extra + 1;
	if (need <= sb->cap)
		return 0;
	cap = sb->cap ? sb->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	nb = realloc(sb->buf, cap);
	if (!nb)
		goto fail;
	sb->buf = nb;
	sb->cap = cap;
	return 0;
fail:
	sb->oom = 1;
	return -1;
}

void sb_append(struct strbuf *sb, const char *s, size_t n)
{
	if (sb_reserve(sb, n) < 0)
		return;
	if (n)
		memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void sb_puts(struct strbuf *sb, const char *s)
{
	sb_append(sb, s, strlen(s));
}

void sb_putc(struct strbuf *sb, char c)
{
	sb_append(sb, &c, 1);
}

void sb_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	if (sb_reserve(sb, 0) < 0)
		return;
	va_copy(cp, ap);
	n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, cp);
	va_end(cp);
	if (n < 0) {
		sb->buf[sb->len] = '\0';
		return;
	}
	if ((size_t)n >= sb->cap - sb->len) {
		if (sb_reserve(sb, (size_t)n) < 0) {
			sb->buf[sb->len] = '\0';
			return;
		}
		va_copy(cp, ap);
		n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, cp);
		va_end(cp);
		if (n < 0) {
			sb->buf[sb->len] = '\0';
			return;
		}
	}
	sb->len += (size_t)n;
}

void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sb_vprintf(sb, fmt, ap);
	va_end(ap);
}

/* Length of the well-formed UTF-8 sequence at s (Unicode table 3-7: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 when the byte at s does not start one. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xBF;
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4;
	else
		return 0;	/* continuation byte, C0/C1 overlong lead, or F5..FF */
	if (n < len)
		return 0;
	if (c == 0xE0)
		lo = 0xA0;	/* overlong 3-byte */
	else if (c == 0xED)
		hi = 0x9F;	/* surrogates D800..DFFF */
	else if (c == 0xF0)
		lo = 0x90;	/* overlong 4-byte */
	else if (c == 0xF4)
		hi = 0x8F;	/* above U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return len;
}

void sb_json_strn(struct strbuf *sb, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0, len;
	char esc[7];

	if (!s) {
		sb_append(sb, "null", 4);
		return;
	}
	sb_putc(sb, '"');
	/* Copies runs of plain bytes in one append; only specials break the run. */
	while (i < n) {
		unsigned char c = p[i];
		const char *rep = NULL;
		size_t replen = 2;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			run++;
			continue;
		}
		if (c >= 0x80) {
			len = utf8_seq_len(p + i, n - i);
			if (len) {
				i += len;
				run += len;
				continue;
			}
			rep = "\xEF\xBF\xBD";
			replen = 3;
		} else {
			switch (c) {
			case '"': rep = "\\\""; break;
			case '\\': rep = "\\\\"; break;
			case '\n': rep = "\\n"; break;
			case '\r': rep = "\\r"; break;
			case '\t': rep = "\\t"; break;
			case '\b': rep = "\\b"; break;
			case '\f': rep = "\\f"; break;
			default:
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 0xF];
				rep = esc;
				replen = 6;
				break;
			}
		}
		sb_append(sb, (const char *)p + i - run, run);
		run = 0;
		sb_append(sb, rep, replen);
		i++;
	}
	sb_append(sb, (const char *)p + i - run, run);
	sb_putc(sb, '"');
}

void sb_json_str(struct strbuf *sb, const char *s)
{
	sb_json_strn(sb, s, s ? strlen(s) : 0);
}
