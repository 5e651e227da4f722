/* parctl's side of the admin socket: finds pard among the socket candidates, sends one
 * request and waits (with a deadline) for its answer, streams monitor events, and
 * reconnects when pard restarted between two commands of a shell. */
#ifndef PARCTL_CLIENT_H
#define PARCTL_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "par/admin.h"
#include "parctl.h"

struct client {
	int fd;                   /* -1 when not connected */
	char *paths[3];           /* the candidates, or just -s PATH */
	size_t npaths;
	const char *path;         /* the one connected to */
	struct admin_linebuf lb;
	long next_id;
	int timeout_ms;           /* for an answer; < 0: wait forever */
};

/* socket: -s PATH, or NULL for admin_socket_candidates(PAR_ADMIN_SOCKET). */
int client_init(struct client *c, const char *socket, int timeout_ms);
void client_close(struct client *c);
void client_free(struct client *c);

/* Sends cmd with args (taken over) and waits for the answer. CTL_OK with resp filled (free
 * it with admin_response_free) when pard said ok; otherwise the exit code, with err set:
 * the daemon's error (denied → CTL_DENIED), unreachable, timeout, version mismatch. */
int client_call(struct client *c, const char *cmd, cJSON *args, struct admin_response *resp,
		struct ctl_error *err);

/* After a streaming call: waits (forever) for the next event. 1 with resp filled; 0 when
 * pard closed the stream or a signal not blocked in wait_mask arrived (SIGINT: the caller
 * blocks it and passes a mask without it); -1 with err set. */
int client_next_event(struct client *c, const sigset_t *wait_mask, struct admin_response *resp,
		      struct ctl_error *err);

#endif
