/*
 * pith-net --machine OWNER/ID --socket PATH [--forward HOSTADDR:HOSTPORT:GUESTPORT]...
 *          [--egress GUESTADDR:GUESTPORT=HOST:PORT]...
 *
 * A machine's user network, outside QEMU, so that QEMU can run under seccomp with spawn=deny.
 * It is libslirp, the library behind QEMU's own `-netdev user`, fed by QEMU's `-netdev stream`
 * (each frame a 4-byte big-endian length, then the ethernet frame). The guest sees the same
 * network as before: itself at 10.0.2.15, the gateway at 10.0.2.2, each declared egress
 * destination at its own address, no DNS, no IPv6, and no way out but those destinations
 * (restricted mode). Listen ports are forwarded from the given host address only.
 *
 * Egress connections go to unix sockets served by a forked child, the dialer. Per connection
 * it resolves the declared host now, drops every address a machine must not reach (loopback,
 * link-local, unspecified, multicast, broadcast, this host's own addresses) unless the manifest
 * named that address literally, and dials only what it checked: a name that starts resolving to
 * 127.0.0.1 reaches nothing on the host.
 *
 * Prints "ready" once every socket is listening, serves exactly one QEMU, and exits 0 when it
 * disconnects (1 if none connects within 60 s). --machine only names the process for discovery.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <slirp/libslirp.h>

#define MAX_RULES 64
/* QEMU's NET_BUFSIZE: no frame from QEMU is larger, so a larger length is a broken stream. */
#define MAX_FRAME (4096 + 65536)
#define OUT_CAPACITY (4 << 20)
#define ACCEPT_TIMEOUT_MS 60000

struct forward { struct in_addr host; int host_port, guest_port; };
struct egress { struct in_addr guest; int guest_port; char host[256], port[8]; char path[108]; int listener; };

static struct forward forwards[MAX_RULES];
static struct egress egresses[MAX_RULES];
static int nforwards, negress;

static void die(const char *fmt, const char *arg) {
	fprintf(stderr, "pith-net: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

/*
 * What a guest can cause (refused or failed egress, its own frame errors) is logged at most
 * NOTE_BURST lines per NOTE_WINDOW_S seconds, so a guest that tries forever cannot fill the disk
 * with net.log; what was left out is counted in the next line that is logged, never last. The
 * count is shared (an anonymous shared mapping made before any fork) because every egress
 * connection is dialled in a process of its own.
 */
#define NOTE_BURST 20
#define NOTE_WINDOW_S 10
struct note_window { time_t start; unsigned logged, suppressed; };
static struct note_window *notes;

static void notes_init(void) {
	notes = mmap(NULL, sizeof *notes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (notes == MAP_FAILED) die("%s", "cannot map the log's counters");
	*notes = (struct note_window){0};
}

static void note(const char *fmt, ...) {
	time_t now = time(NULL), start = __atomic_load_n(&notes->start, __ATOMIC_RELAXED);
	if (now - start >= NOTE_WINDOW_S && __atomic_compare_exchange_n(&notes->start, &start, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		__atomic_store_n(&notes->logged, 0, __ATOMIC_RELAXED);
	if (__atomic_fetch_add(&notes->logged, 1, __ATOMIC_RELAXED) >= NOTE_BURST) {
		__atomic_fetch_add(&notes->suppressed, 1, __ATOMIC_RELAXED);
		return;
	}
	unsigned suppressed = __atomic_exchange_n(&notes->suppressed, 0, __ATOMIC_RELAXED);
	if (suppressed) fprintf(stderr, "pith-net: %u more lines like these were not logged (at most %d per %d s)\n", suppressed, NOTE_BURST, NOTE_WINDOW_S);
	va_list args;
	va_start(args, fmt);
	fputs("pith-net: ", stderr);
	vfprintf(stderr, fmt, args);
	fputc('\n', stderr);
	va_end(args);
}

static void usage(void) {
	die("%s", "usage: pith-net --machine OWNER/ID --socket PATH [--forward ADDR:HOSTPORT:GUESTPORT]... [--egress GUESTADDR:GUESTPORT=HOST:PORT]...");
}

static int parse_port(const char *s) {
	char *end;
	long n = strtol(s, &end, 10);
	return *s && !*end && n > 0 && n < 65536 ? (int)n : -1;
}

/* "A:B:C" for forwards; the address is IPv4. */
static void parse_forward(const char *arg) {
	char buf[64], *p1, *p2;
	if (nforwards == MAX_RULES || strlen(arg) >= sizeof buf) die("too many or too long forwards: %s", arg);
	strcpy(buf, arg);
	if (!(p1 = strchr(buf, ':')) || !(p2 = strchr(p1 + 1, ':'))) die("bad --forward %s", arg);
	*p1++ = 0, *p2++ = 0;
	struct forward *f = &forwards[nforwards++];
	if (inet_pton(AF_INET, buf, &f->host) != 1 || (f->host_port = parse_port(p1)) < 0 || (f->guest_port = parse_port(p2)) < 0)
		die("bad --forward %s", arg);
}

/* "GUESTADDR:GUESTPORT=HOST:PORT"; HOST is a DNS name or an IPv4 address (as the manifest allows). */
static void parse_egress(const char *arg, const char *dir) {
	char buf[300], *eq, *c1, *c2;
	if (negress == MAX_RULES || strlen(arg) >= sizeof buf) die("too many or too long egress rules: %s", arg);
	strcpy(buf, arg);
	if (!(eq = strchr(buf, '=')) || !(c1 = strchr(buf, ':')) || c1 > eq || !(c2 = strrchr(eq, ':'))) die("bad --egress %s", arg);
	*eq++ = 0, *c1++ = 0, *c2++ = 0;
	struct egress *e = &egresses[negress];
	if (inet_pton(AF_INET, buf, &e->guest) != 1 || (e->guest_port = parse_port(c1)) < 0 || parse_port(c2) < 0 || !*eq)
		die("bad --egress %s", arg);
	snprintf(e->host, sizeof e->host, "%s", eq);
	snprintf(e->port, sizeof e->port, "%s", c2);
	if (snprintf(e->path, sizeof e->path, "%s/egress-%d.sock", dir, negress) >= (int)sizeof e->path) die("state dir too long: %s", dir);
	negress++;
}

static int unix_listener(const char *path, int backlog) {
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path) die("socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, backlog) < 0) die("cannot listen on %s", path);
	return fd;
}

/* ---- the dialer: egress connections, resolved and checked per connection ---- */

static int v4_forbidden(uint32_t a) {
	return (a >> 24) == 127 || (a >> 24) == 0 || (a >> 16) == 0xa9fe /* 169.254/16 */ || (a >> 28) >= 0xe /* multicast, reserved, broadcast */;
}

static int same_address(const struct sockaddr *a, const struct sockaddr *b) {
	if (!a || !b || a->sa_family != b->sa_family) return 0;
	if (a->sa_family == AF_INET) return ((struct sockaddr_in *)a)->sin_addr.s_addr == ((struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->sa_family == AF_INET6) return !memcmp(&((struct sockaddr_in6 *)a)->sin6_addr, &((struct sockaddr_in6 *)b)->sin6_addr, 16);
	return 0;
}

/* Why a machine must not reach this address, or NULL. */
static const char *forbidden(const struct sockaddr *sa, struct ifaddrs *own) {
	if (sa->sa_family == AF_INET) {
		if (v4_forbidden(ntohl(((struct sockaddr_in *)sa)->sin_addr.s_addr))) return "loopback, link-local or not unicast";
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_V4COMPAT(a)) {
			uint32_t v4;
			memcpy(&v4, &a->s6_addr[12], 4);
			if (v4_forbidden(ntohl(v4))) return "loopback, link-local or not unicast";
		}
		if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_MULTICAST(a))
			return "loopback, link-local or not unicast";
	} else {
		return "not an internet address";
	}
	for (struct ifaddrs *i = own; i; i = i->ifa_next)
		if (same_address(sa, i->ifa_addr) || (sa->sa_family == AF_INET && (i->ifa_flags & IFF_BROADCAST) && same_address(sa, i->ifa_broadaddr)))
			return "an address of this host";
	return NULL;
}

static void describe(const struct sockaddr *sa, char *out, size_t len) {
	if (getnameinfo(sa, sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6), out, len, NULL, 0, NI_NUMERICHOST))
		snprintf(out, len, "?");
}

/* Resolves now, checks, and dials only what it checked: the returned socket is the pinned destination. */
static int dial(const struct egress *e) {
	struct in_addr literal;
	int is_literal = inet_pton(AF_INET, e->host, &literal) == 1;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
	int err = getaddrinfo(e->host, e->port, &hints, &res);
	if (err) {
		note("egress %s:%s: cannot resolve: %s", e->host, e->port, gai_strerror(err));
		return -1;
	}
	struct ifaddrs *own = NULL;
	if (!is_literal && getifaddrs(&own) < 0) {
		note("egress %s:%s: refused: cannot list this host's addresses: %s", e->host, e->port, strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	char refused[512] = "", failed[512] = "", text[INET6_ADDRSTRLEN];
	int fd = -1;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		describe(ai->ai_addr, text, sizeof text);
		/* The manifest's literal address is what the operator chose: it is dialled as written. */
		const char *why = is_literal ? NULL : forbidden(ai->ai_addr, own);
		if (why) {
			size_t n = strlen(refused);
			snprintf(refused + n, sizeof refused - n, "%s%s (%s)", n ? ", " : "", text, why);
			continue;
		}
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
		size_t n = strlen(failed);
		snprintf(failed + n, sizeof failed - n, "%s%s: %s", n ? ", " : "", text, strerror(errno));
		if (fd >= 0) close(fd);
		fd = -1;
	}
	if (fd < 0)
		note("egress %s:%s: %s%s%s%s", e->host, e->port, *refused ? "refused " : "", refused,
			*refused && *failed ? "; " : "", *failed ? failed : (*refused ? "" : "no address"));
	freeaddrinfo(res);
	if (own) freeifaddrs(own);
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

static void splice_both_ways(int guest, int remote) {
	int guest_open = 1;
	for (;;) {
		struct pollfd fds[2] = {{.fd = guest_open ? guest : -1, .events = POLLIN}, {.fd = remote, .events = POLLIN}};
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR) continue;
			return;
		}
		if (fds[0].revents && !pump(guest, remote)) {
			guest_open = 0;
			shutdown(remote, SHUT_WR);
		}
		if (fds[1].revents && !pump(remote, guest)) return; /* the destination is done: close the guest's side too */
	}
}

/* Runs in the dialer child until pith-net exits: one grandchild per connection. */
static void serve_egress(int alive, pid_t parent) {
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent) _exit(1);
	/* stdout is Pith's pipe for "ready": only pith-net itself may hold it. */
	int null = open("/dev/null", O_WRONLY);
	if (null >= 0) dup2(null, 1), close(null);
	signal(SIGCHLD, SIG_IGN); /* connection handlers are reaped by the kernel */
	struct pollfd fds[MAX_RULES];
	for (int i = 0; i < negress; i++) fds[i] = (struct pollfd){.fd = egresses[i].listener, .events = POLLIN};
	for (;;) {
		if (poll(fds, negress, -1) < 0) {
			if (errno == EINTR) continue;
			_exit(1);
		}
		for (int i = 0; i < negress; i++) {
			if (!fds[i].revents) continue;
			int guest = accept4(fds[i].fd, NULL, NULL, SOCK_CLOEXEC);
			if (guest < 0) continue;
			pid_t dialer = getpid();
			if (fork() == 0) {
				/* Gone with the dialer, hence with pith-net: a destination that never closes keeps no process. */
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				if (getppid() != dialer) _exit(1);
				close(alive);
				for (int j = 0; j < negress; j++) close(egresses[j].listener);
				int remote = dial(&egresses[i]);
				if (remote >= 0) splice_both_ways(guest, remote);
				_exit(0);
			}
			close(guest);
		}
	}
}

static pid_t dialer_pid;

/* On every exit: the dialer is gone before pith-net is (its connections follow it by PDEATHSIG). */
static void end_dialer(void) {
	if (dialer_pid <= 0 || getpid() == dialer_pid) return;
	kill(dialer_pid, SIGKILL);
	while (waitpid(dialer_pid, NULL, 0) < 0 && errno == EINTR) {}
}

/* ---- the network: libslirp between QEMU's stream and the host ---- */

struct timer { SlirpTimerCb cb; void *opaque; int64_t expire_ms; struct timer *next; };
static struct timer *timers;

static int qemu = -1;
static uint8_t out[OUT_CAPACITY];
static size_t out_len;

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t cb_clock_get_ns(void *opaque) { (void)opaque; return now_ns(); }

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque) {
	(void)opaque;
	struct timer *t = calloc(1, sizeof *t);
	if (!t) die("%s", "out of memory");
	*t = (struct timer){.cb = cb, .opaque = cb_opaque, .expire_ms = -1, .next = timers};
	return timers = t;
}

static void cb_timer_free(void *timer, void *opaque) {
	(void)opaque;
	for (struct timer **p = &timers; *p; p = &(*p)->next)
		if (*p == timer) {
			*p = (*p)->next;
			free(timer);
			return;
		}
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque) {
	(void)opaque;
	((struct timer *)timer)->expire_ms = expire_ms;
}

static void run_timers(void) {
	/* A callback may add, change or free timers: start over after each. */
	for (int fired = 1; fired;) {
		fired = 0;
		int64_t now = now_ns() / 1000000;
		for (struct timer *t = timers; t; t = t->next)
			if (t->expire_ms >= 0 && t->expire_ms <= now) {
				t->expire_ms = -1;
				t->cb(t->opaque);
				fired = 1;
				break;
			}
	}
}

static void flush_out(void) {
	size_t off = 0;
	while (off < out_len) {
		ssize_t n = write(qemu, out + off, out_len - off);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0 && errno == EAGAIN) break;
		if (n <= 0) exit(0); /* QEMU is gone */
		off += n;
	}
	memmove(out, out + off, out_len - off);
	out_len -= off;
}

/* A frame for the guest. When QEMU does not keep up, frames are dropped like on a full NIC ring. */
static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque) {
	(void)opaque;
	if (out_len + 4 + len > sizeof out) return len;
	uint32_t be = htonl((uint32_t)len);
	memcpy(out + out_len, &be, 4);
	memcpy(out + out_len + 4, buf, len);
	out_len += 4 + len;
	flush_out();
	return len;
}

static void cb_guest_error(const char *msg, void *opaque) { (void)opaque; note("guest error: %s", msg); }
static void cb_nothing_fd(int fd, void *opaque) { (void)fd, (void)opaque; }
static void cb_notify(void *opaque) { (void)opaque; }

static struct pollfd *pfds;
static int npfds, cap_pfds;

static int add_poll(int fd, int events, void *opaque) {
	(void)opaque;
	if (npfds == cap_pfds) {
		cap_pfds = cap_pfds ? cap_pfds * 2 : 64;
		if (!(pfds = realloc(pfds, cap_pfds * sizeof *pfds))) die("%s", "out of memory");
	}
	short ev = 0;
	if (events & SLIRP_POLL_IN) ev |= POLLIN;
	if (events & SLIRP_POLL_OUT) ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI) ev |= POLLPRI;
	pfds[npfds] = (struct pollfd){.fd = fd, .events = ev};
	return npfds++;
}

static int get_revents(int idx, void *opaque) {
	(void)opaque;
	short r = pfds[idx].revents;
	return (r & POLLIN ? SLIRP_POLL_IN : 0) | (r & POLLOUT ? SLIRP_POLL_OUT : 0) | (r & POLLPRI ? SLIRP_POLL_PRI : 0) |
	       (r & POLLERR ? SLIRP_POLL_ERR : 0) | (r & POLLHUP ? SLIRP_POLL_HUP : 0);
}

static uint8_t in[4 + MAX_FRAME];
static size_t in_len;

/* Reads what QEMU sent and hands every complete frame to slirp. */
static void read_frames(Slirp *slirp) {
	ssize_t n = read(qemu, in + in_len, sizeof in - in_len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
	if (n <= 0) exit(0); /* QEMU closed the stream: the machine is gone */
	in_len += n;
	size_t off = 0;
	while (in_len - off >= 4) {
		uint32_t len;
		memcpy(&len, in + off, 4);
		len = ntohl(len);
		if (len > MAX_FRAME) {
			note("QEMU sent a %u-byte frame (at most %d): closing", len, MAX_FRAME);
			exit(1);
		}
		if (in_len - off - 4 < len) break;
		if (len) slirp_input(slirp, in + off + 4, (int)len);
		off += 4 + len;
	}
	memmove(in, in + off, in_len - off);
	in_len -= off;
}

static int accept_qemu(int listener) {
	struct pollfd p = {.fd = listener, .events = POLLIN};
	int64_t deadline = now_ns() / 1000000 + ACCEPT_TIMEOUT_MS;
	for (;;) {
		int left = (int)(deadline - now_ns() / 1000000);
		if (left <= 0) die("%s", "no QEMU connected within 60 s");
		int r = poll(&p, 1, left);
		if (r < 0 && errno != EINTR) die("poll: %s", strerror(errno));
		if (r <= 0) continue;
		int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) return fd;
		if (errno != EINTR && errno != ECONNABORTED) die("accept: %s", strerror(errno));
	}
}

int main(int argc, char **argv) {
	const char *socket_path = NULL, *machine = NULL;
	notes_init();
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--socket") && i + 1 < argc) socket_path = argv[++i];
		else if (!strcmp(argv[i], "--machine") && i + 1 < argc) machine = argv[++i];
		else if (!strcmp(argv[i], "--forward") && i + 1 < argc) parse_forward(argv[++i]);
		else if (!strcmp(argv[i], "--egress") && i + 1 < argc) i++; /* parsed below, once the state dir is known */
		else usage();
	if (!socket_path || !machine) usage();
	char dir[108];
	snprintf(dir, sizeof dir, "%s", socket_path);
	char *slash = strrchr(dir, '/');
	if (slash) *slash = 0; else strcpy(dir, ".");
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--egress")) parse_egress(argv[++i], dir);
	signal(SIGPIPE, SIG_IGN);

	/* The dialer is forked first, so it holds none of slirp's sockets; this pipe tells us if it dies. */
	int alive[2];
	if (negress) {
		for (int i = 0; i < negress; i++) egresses[i].listener = unix_listener(egresses[i].path, 16);
		if (pipe2(alive, O_CLOEXEC) < 0) die("pipe: %s", strerror(errno));
		pid_t self = getpid(), dialer = fork();
		if (dialer < 0) die("fork: %s", strerror(errno));
		if (dialer == 0) {
			close(alive[0]);
			serve_egress(alive[1], self);
		}
		dialer_pid = dialer;
		atexit(end_dialer);
		close(alive[1]);
		for (int i = 0; i < negress; i++) close(egresses[i].listener);
	}

	SlirpConfig cfg = {
		.version = 4,
		.restricted = 1, /* the guest reaches only the egress addresses below */
		.in_enabled = true,
		.in6_enabled = false,
		.disable_host_loopback = true,
		.disable_dns = true,
		.if_mtu = 0, .if_mru = 0, /* slirp's defaults */
	};
	inet_pton(AF_INET, "10.0.2.0", &cfg.vnetwork);
	inet_pton(AF_INET, "255.255.255.0", &cfg.vnetmask);
	inet_pton(AF_INET, "10.0.2.2", &cfg.vhost);
	inet_pton(AF_INET, "10.0.2.15", &cfg.vdhcp_start);
	inet_pton(AF_INET, "10.0.2.3", &cfg.vnameserver);
	static const SlirpCb callbacks = {
		.send_packet = cb_send_packet,
		.guest_error = cb_guest_error,
		.clock_get_ns = cb_clock_get_ns,
		.timer_new = cb_timer_new,
		.timer_free = cb_timer_free,
		.timer_mod = cb_timer_mod,
		.register_poll_fd = cb_nothing_fd,
		.unregister_poll_fd = cb_nothing_fd,
		.notify = cb_notify,
	};
	Slirp *slirp = slirp_new(&cfg, &callbacks, NULL);
	if (!slirp) die("%s", "cannot create the network");
	struct in_addr guest;
	inet_pton(AF_INET, "10.0.2.15", &guest);
	for (int i = 0; i < nforwards; i++) {
		struct forward *f = &forwards[i];
		if (slirp_add_hostfwd(slirp, 0, f->host, f->host_port, guest, f->guest_port) < 0) {
			char where[64];
			snprintf(where, sizeof where, "%s:%d", inet_ntoa(f->host), f->host_port);
			die("cannot forward %s: the port is in use or not allowed", where);
		}
	}
	for (int i = 0; i < negress; i++)
		if (slirp_add_unix(slirp, egresses[i].path, &egresses[i].guest, egresses[i].guest_port) < 0) die("cannot route egress %s", egresses[i].path);

	int listener = unix_listener(socket_path, 1);
	printf("ready\n");
	fflush(stdout);
	qemu = accept_qemu(listener);
	close(listener);
	unlink(socket_path);

	for (;;) {
		uint32_t timeout = UINT32_MAX;
		npfds = 0;
		add_poll(qemu, SLIRP_POLL_IN | (out_len ? SLIRP_POLL_OUT : 0), NULL);
		if (negress) add_poll(alive[0], SLIRP_POLL_IN, NULL);
		slirp_pollfds_fill(slirp, &timeout, add_poll, NULL);
		int64_t now = now_ns() / 1000000;
		for (struct timer *t = timers; t; t = t->next) {
			if (t->expire_ms < 0) continue;
			int64_t wait = t->expire_ms > now ? t->expire_ms - now : 0;
			if (wait < timeout) timeout = (uint32_t)wait;
		}
		int r = poll(pfds, npfds, timeout == UINT32_MAX ? -1 : (int)timeout);
		if (r < 0 && errno != EINTR) die("poll: %s", strerror(errno));
		if (r > 0 && negress && pfds[1].revents) die("%s", "the egress dialer exited");
		if (r > 0 && pfds[0].revents & POLLOUT) flush_out();
		if (r > 0 && pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) read_frames(slirp);
		slirp_pollfds_poll(slirp, r < 0, get_revents, NULL);
		run_timers();
	}
}
