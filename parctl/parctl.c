/* How a failed command is described (parctl.h): shared by the client, the commands and the
 * shell, so that every mode reports a failure the same way. */
#include "parctl.h"

#include <stdarg.h>
#include <stdio.h>

void ctl_fail(struct ctl_error *e, int exit, const char *code, const char *fmt, ...)
{
	va_list ap;

	e->exit = exit;
	snprintf(e->code, sizeof e->code, "%s", code);
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
}
