/* The admin socket client: connect to the first socket candidate that answers, one request
 * and its answer at a time, under a deadline, so parctl never hangs on a stuck pard. */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int client_init(struct client *c, const char *socket, int timeout_ms)
{
	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->next_id = 1;
	c->timeout_ms = timeout_ms;
	if (!socket) {
		c->npaths = admin_socket_candidates(getenv("PAR_ADMIN_SOCKET"), c->paths);
		return c->npaths ? 0 : -1;
	}
	c->paths[0] = strdup(socket);
	c->npaths = c->paths[0] ? 1 : 0;
	return c->npaths ? 0 : -1;
}

void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	admin_linebuf_free(&c->lb);
}

void client_free(struct client *c)
{
	client_close(c);
	for (size_t i = 0; i < c->npaths; i++)
		free(c->paths[i]);
	c->npaths = 0;
}

/* A non-blocking connected socket, or -errno. */
static int connect_path(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static int client_connect(struct client *c, struct ctl_error *err)
{
	char tried[1200] = "";
	size_t off = 0;
	const char *denied = NULL;

	for (size_t i = 0; i < c->npaths; i++) {
		int fd = connect_path(c->paths[i]);
		if (fd >= 0) {
			c->fd = fd;
			c->path = c->paths[i];
			return CTL_OK;
		}
		if ((fd == -EACCES || fd == -EPERM) && !denied)
			denied = c->paths[i];
		if (off < sizeof tried)
			off += (size_t)snprintf(tried + off, sizeof tried - off, "%s%s (%s)",
						off ? ", " : "", c->paths[i], strerror(-fd));
	}
	/* A socket that exists but refuses us says more than the paths where none exists. */
	if (denied) {
		ctl_fail(err, CTL_DENIED, ADMIN_E_DENIED,
			 "permission denied on %s: run parctl as root, as pard's user or as a member "
			 "of PAR_ADMIN_GROUP; the read-only socket (PAR_ADMIN_RO_SOCKET) serves "
			 "status and show", denied);
		return CTL_DENIED;
	}
	ctl_fail(err, CTL_UNREACHABLE, "unreachable",
		 "cannot reach pard: tried %s; is pard running? set PAR_ADMIN_SOCKET or use -s PATH",
		 tried);
	return CTL_UNREACHABLE;
}

/* pard closed the connection since the last command (it restarted, or drained and exited):
 * the socket reads EOF or hangs up. Unread data alone is a late answer, not a close. */
static bool client_stale(struct client *c)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
	char b;

	if (poll(&p, 1, 0) <= 0)
		return false;
	if (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL))
		return true;
	return recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Waits for fd to be ready for events until deadline (< 0: forever). 1 ready, 0 timed out,
 * -1 error (errno; EINTR when a signal handler ran: the shell's Ctrl-C, or monitor's). */
static int wait_fd(int fd, short events, int64_t deadline, const sigset_t *mask)
{
	struct pollfd p = {.fd = fd, .events = events};
	struct timespec ts, *tsp = NULL;

	for (;;) {
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				return 0;
			ts = (struct timespec){.tv_sec = left / 1000, .tv_nsec = left % 1000 * 1000000};
			tsp = &ts;
		}
		int r = ppoll(&p, 1, tsp, mask);
		if (r > 0)
			return 1;
		if (r < 0)
			return -1;
	}
}

static int send_all(struct client *c, const char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		int r = wait_fd(c->fd, POLLOUT, deadline, NULL);
		if (r == 0)
			errno = ETIMEDOUT;
		if (r <= 0)
			return -1;
	}
	return 0;
}

static int exit_for_code(const char *code)
{
	return strcmp(code, ADMIN_E_DENIED) == 0 ? CTL_DENIED : CTL_FAILED;
}

static int timed_out(struct client *c, struct ctl_error *err)
{
	/* The answer may still come: a fresh connection keeps it from answering a later call. */
	ctl_fail(err, CTL_UNREACHABLE, "timeout",
		 "no answer from pard on %s within %g s (-t TIMEOUT waits longer)", c->path,
		 c->timeout_ms / 1000.0);
	client_close(c);
	return CTL_UNREACHABLE;
}

/* Reads lines until the answer to request id, or an error. */
static int client_wait(struct client *c, long id, int64_t deadline, struct admin_response *resp,
		       struct ctl_error *err)
{
	char msg[512], *line;

	for (;;) {
		int r = admin_read_line(c->fd, &c->lb, &line);
		if (r == 1) {
			if (admin_response_parse(line, strlen(line), resp, msg, sizeof msg) != 0) {
				bool version = strstr(msg, "version mismatch") != NULL;
				ctl_fail(err, CTL_FAILED, version ? ADMIN_E_VERSION : ADMIN_E_MALFORMED,
					 "%s", msg);
				client_close(c);
				return CTL_FAILED;
			}
			/* Events and late answers to an earlier, timed-out request are not ours;
			 * an error pard could not tie to a request (id null) is. */
			if (resp->event || (resp->id != id && resp->id != -1)) {
				admin_response_free(resp);
				continue;
			}
			if (resp->ok)
				return CTL_OK;
			int rc = exit_for_code(resp->err_code);
			ctl_fail(err, rc, resp->err_code, "%s", resp->err_msg);
			if (strcmp(resp->err_code, ADMIN_E_TOO_LONG) == 0)
				client_close(c);
			admin_response_free(resp);
			return rc;
		}
		if (r == 0) {
			ctl_fail(err, CTL_UNREACHABLE, "unreachable",
				 "pard closed the connection on %s without answering", c->path);
			client_close(c);
			return CTL_UNREACHABLE;
		}
		if (r == -2) {
			ctl_fail(err, CTL_FAILED, ADMIN_E_TOO_LONG,
				 "pard's answer is longer than %d bytes", ADMIN_LINE_MAX);
			client_close(c);
			return CTL_FAILED;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			ctl_fail(err, CTL_UNREACHABLE, "unreachable", "reading from pard on %s: %s",
				 c->path, strerror(errno));
			client_close(c);
			return CTL_UNREACHABLE;
		}
		r = wait_fd(c->fd, POLLIN, deadline, NULL);
		if (r == 0)
			return timed_out(c, err);
		if (r < 0 && errno == EINTR) {
			ctl_fail(err, CTL_FAILED, "interrupted",
				 "interrupted: pard's answer was not awaited");
			client_close(c);
			return CTL_FAILED;
		}
		if (r < 0) {
			ctl_fail(err, CTL_UNREACHABLE, "unreachable", "waiting for pard on %s: %s",
				 c->path, strerror(errno));
			client_close(c);
			return CTL_UNREACHABLE;
		}
	}
}

/* An answer already received when our request could not be sent (pard answers a refused
 * peer at once, then closes): its exit code with err set, or -1 if there is none. */
static int client_pending(struct client *c, struct admin_response *resp, struct ctl_error *err)
{
	char msg[512], *line;

	if (admin_read_line(c->fd, &c->lb, &line) != 1)
		return -1;
	if (admin_response_parse(line, strlen(line), resp, msg, sizeof msg) != 0)
		return -1;
	if (resp->ok || resp->event) {
		admin_response_free(resp);
		return -1;
	}
	int rc = exit_for_code(resp->err_code);
	ctl_fail(err, rc, resp->err_code, "%s", resp->err_msg);
	admin_response_free(resp);
	client_close(c);
	return rc;
}

int client_call(struct client *c, const char *cmd, cJSON *args, struct admin_response *resp,
		struct ctl_error *err)
{
	long id = c->next_id++;
	char *req = admin_request_encode(id, cmd, args);
	int64_t deadline = -1;
	int rc;

	memset(resp, 0, sizeof *resp);
	if (!req) {
		ctl_fail(err, CTL_FAILED, ADMIN_E_INTERNAL, "out of memory");
		return CTL_FAILED;
	}
	/* A write to a socket pard closed fails at once (EPIPE): nothing was delivered, so
	 * one retry on a fresh connection cannot run a command twice. */
	for (int attempt = 0;; attempt++) {
		if (c->fd >= 0 && client_stale(c))
			client_close(c);
		if (c->fd < 0 && (rc = client_connect(c, err)) != CTL_OK)
			goto out;
		deadline = c->timeout_ms < 0 ? -1 : now_ms() + c->timeout_ms;
		if (send_all(c, req, strlen(req), deadline) == 0)
			break;
		int e = errno;
		/* pard may have refused us on connect (the uid check) and closed: its answer
		 * is still waiting to be read. */
		if ((e == EPIPE || e == ECONNRESET) && (rc = client_pending(c, resp, err)) >= 0)
			goto out;
		client_close(c);
		if (e == ETIMEDOUT) {
			rc = timed_out(c, err);
			goto out;
		}
		if (e == EINTR) {
			ctl_fail(err, CTL_FAILED, "interrupted", "interrupted while sending to pard");
			rc = CTL_FAILED;
			goto out;
		}
		if (attempt == 0 && (e == EPIPE || e == ECONNRESET))
			continue;
		ctl_fail(err, CTL_UNREACHABLE, "unreachable", "sending to pard on %s: %s", c->path,
			 strerror(e));
		rc = CTL_UNREACHABLE;
		goto out;
	}
	rc = client_wait(c, id, deadline, resp, err);
out:
	free(req);
	return rc;
}

int client_next_event(struct client *c, const sigset_t *wait_mask, struct admin_response *resp,
		      struct ctl_error *err)
{
	char msg[512], *line;

	memset(resp, 0, sizeof *resp);
	for (;;) {
		int r = admin_read_line(c->fd, &c->lb, &line);
		if (r == 1) {
			if (admin_response_parse(line, strlen(line), resp, msg, sizeof msg) != 0) {
				ctl_fail(err, CTL_FAILED, ADMIN_E_MALFORMED, "%s", msg);
				return -1;
			}
			if (resp->event)
				return 1;
			if (!resp->ok) {
				ctl_fail(err, exit_for_code(resp->err_code), resp->err_code, "%s",
					 resp->err_msg);
				admin_response_free(resp);
				return -1;
			}
			admin_response_free(resp);
			continue;
		}
		if (r == 0)
			return 0;
		if (r == -2)
			continue;   /* an over-long event was dropped; the stream goes on */
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			ctl_fail(err, CTL_UNREACHABLE, "unreachable", "reading from pard on %s: %s",
				 c->path, strerror(errno));
			return -1;
		}
		r = wait_fd(c->fd, POLLIN, -1, wait_mask);
		if (r < 0 && errno == EINTR)
			return 0;
		if (r < 0) {
			ctl_fail(err, CTL_UNREACHABLE, "unreachable", "waiting for pard on %s: %s",
				 c->path, strerror(errno));
			return -1;
		}
	}
}
