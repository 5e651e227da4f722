/* What every part of parctl shares: its exit codes and how a failed command is described,
 * so the one-shot, shell and piped modes report failures the same way. */
#ifndef PARCTL_H
#define PARCTL_H

/* SPEC §8.2; docs/parctl.8 lists them too. */
enum ctl_exit {
	CTL_OK = 0,
	CTL_FAILED = 1,       /* the command ran and reported failure */
	CTL_USAGE = 2,
	CTL_UNREACHABLE = 3,  /* no pard on any socket tried, or no answer in time */
	CTL_DENIED = 4,       /* the socket or pard refused this uid or this verb */
};

struct ctl_error {
	int exit;             /* one of enum ctl_exit */
	char code[32];        /* "usage", "unreachable", "timeout", or the daemon's error code */
	char msg[2048];
};

void ctl_fail(struct ctl_error *e, int exit, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
