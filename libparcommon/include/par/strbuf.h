/* A growable byte buffer and the JSON string escaper every JSON writer in PAR goes through. */
#ifndef PAR_STRBUF_H
#define PAR_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	char *buf;  /* always NUL-terminated once anything was appended */
	size_t len;
	size_t cap;
	int oom;    /* sticky: set when an allocation failed; further appends are no-ops */
};

#define STRBUF_INIT {NULL, 0, 0, 0}

void sb_init(struct strbuf *sb);
void sb_free(struct strbuf *sb);
void sb_reset(struct strbuf *sb);                  /* len = 0, keeps the memory */
char *sb_steal(struct strbuf *sb);                 /* caller frees; sb is reset to empty */
void sb_append(struct strbuf *sb, const char *s, size_t n);
void sb_puts(struct strbuf *sb, const char *s);
void sb_putc(struct strbuf *sb, char c);
void sb_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vprintf(struct strbuf *sb, const char *fmt, va_list ap);

/* Appends s as a quoted JSON string: escapes '"', '\\' and every control character
 * (\n \r \t \b \f, others as \u00XX), and replaces each byte of invalid UTF-8 with
 * U+FFFD so the output is always valid JSON. A NULL s appends null. */
void sb_json_str(struct strbuf *sb, const char *s);
void sb_json_strn(struct strbuf *sb, const char *s, size_t n);

#endif
