/* Binding the surfaces' TCP listeners ourselves, so pard (not a library default) decides
 * the socket options and keeps the fd it must shut down during drain. */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int open_bound(int family, uint16_t port, char *err, size_t errlen)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "socket: %s", strerror(e));
		errno = e;
		return -1;
	}
	int one = 1, zero = 0;
	/* SO_REUSEADDR only lets a restarted pard bind past TIME_WAIT; SO_REUSEPORT would let
	 * two processes share the port silently, so it is explicitly off. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &zero, sizeof zero);

	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof ss);
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		a->sin6_addr = in6addr_any;
		len = sizeof *a;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_ANY);
		len = sizeof *a;
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		int e = errno;
		snprintf(err, errlen, "bind port %u: %s%s", port, strerror(e),
			 e == EADDRINUSE ? " (another process holds it)" : "");
		close(fd);
		errno = e;
		return -1;
	}
	if (listen(fd, 1024) < 0) {
		snprintf(err, errlen, "listen port %u: %s", port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int listen_tcp(uint16_t port, char *err, size_t errlen)
{
	int fd = open_bound(AF_INET6, port, err, errlen);
	if (fd >= 0 || (errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL))
		return fd;
	return open_bound(AF_INET, port, err, errlen);
}
