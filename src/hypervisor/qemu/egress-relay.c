/*
 * pith-egress-relay HOST PORT
 *
 * QEMU runs this once per guest connection to a declared egress destination (guestfwd's cmd:
 * form), with the guest's connection on stdin/stdout. It connects to HOST:PORT on the host and
 * copies bytes both ways until either side closes. It is the only path out of a machine, so the
 * destination is fixed by Pith on its command line, never chosen by the guest.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int dial(const char *host, const char *port) {
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
	int err = getaddrinfo(host, port, &hints, &res);
	if (err) {
		fprintf(stderr, "pith-egress-relay: %s:%s: %s\n", host, port, gai_strerror(err));
		return -1;
	}
	int fd = -1;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
		if (fd >= 0) close(fd);
		fd = -1;
	}
	if (fd < 0) fprintf(stderr, "pith-egress-relay: %s:%s: %s\n", host, port, strerror(errno));
	freeaddrinfo(res);
	return fd;
}

/* Moves what is available from one fd to another; 0 at end of input or on error. */
static int pump(int from, int to) {
	char buf[65536];
	ssize_t n = read(from, buf, sizeof buf);
	if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
	if (n <= 0) return 0;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = write(to, buf + off, n - off);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) return 0;
		off += w;
	}
	return 1;
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: pith-egress-relay HOST PORT\n");
		return 2;
	}
	int remote = dial(argv[1], argv[2]);
	if (remote < 0) return 1;
	int guest_in = 0, guest_out = 1;
	int guest_open = 1, remote_open = 1;
	while (guest_open || remote_open) {
		struct pollfd fds[2] = {
			{.fd = guest_open ? guest_in : -1, .events = POLLIN},
			{.fd = remote_open ? remote : -1, .events = POLLIN},
		};
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR) continue;
			break;
		}
		if (fds[0].revents && !pump(guest_in, remote)) {
			guest_open = 0;
			shutdown(remote, SHUT_WR);
		}
		if (fds[1].revents && !pump(remote, guest_out)) {
			remote_open = 0;
			break; /* the destination is done: close the guest's side too */
		}
	}
	return 0;
}
