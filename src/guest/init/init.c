/*
 * Pith's init: PID 1 of every Pith machine.
 *
 * It is the only program in an image besides the app and its runtime, so it does just what a
 * machine needs and nothing a shell would: mount the kernel's filesystems, take the machine's
 * runtime config from the host, start the app, relay its messages, and power the machine off
 * with the app's exit code when it ends.
 *
 * The host talks to init over a second serial port (/dev/ttyS1), one text line per message, so
 * the console (/dev/ttyS0) carries only what the kernel and the app print.
 *
 *   host -> init   time <unix-ms> [<uptime-us>]  set the wall clock; with an uptime, <unix-ms> is the
 *                                         host's time when the guest's uptime was that (when init
 *                                         reported), and init adds what passed since
 *                  seed <hex>             credit entropy to the kernel's random pool
 *                  env <KEY>=<VALUE>      add to (or override) the app's environment
 *                  end                    config complete: start the app
 *                  shutdown <grace-ms>    SIGTERM the app, SIGKILL it after grace-ms
 *                  status                 ask for the app's state (a host that re-attaches asks)
 *                  restored               (after time, seed and env lines) this machine was just
 *                                         restored from a snapshot: apply them, tell the app
 *   init -> host   init <uptime-us>       init started, that long after the kernel did
 *                  clock <uptime-us>      a time without an uptime was set (after a restore):
 *                                         the host answers with the time anchored to this
 *                  start <uptime-us>      the app was exec'd
 *                  ready                  the app said it is ready (after "restored": the app
 *                                         has taken its new identity and can serve)
 *                  status <starting|ready> the answer to status
 *                  exit <code>            the app ended (128+signal if killed); power-off follows
 *                  error <text>           init could not do its job; power-off follows
 *
 * The app reaches init through the pipe on fd 3 (PITH_CONTROL_FD): it writes "ready\n". An app
 * that can take a new identity after a restore (the guest library) writes "restore-aware\n" at
 * its start; after a restore init sends it "env <KEY>=<VALUE>" lines and "restored\n" on the
 * pipe on fd 4 (PITH_NOTICE_FD), and waits for the app's "restored\n" before it reports the
 * machine ready. Other apps are not told. (Pipes, not one socket: kernels without a network
 * have no unix sockets.)
 * What the app runs and its baked-in environment come from the image: /pith/argv and /pith/env,
 * each a list of NUL-terminated strings. /pith/readiness says when the app is ready:
 *   call                 when it writes "ready" (the guest library's ready())
 *   none                 as soon as it starts
 *   tcp <port>           when 127.0.0.1:<port> accepts a connection
 *   http <port> <path>   when GET <path> on that port answers 2xx or 3xx
 * /pith/mounts, if present, lists disks to mount first, one "<device> <dir> <fstype> [rw]" per
 * line: the read-only runtime disk ("vda /runtime ext2"), and the app's volumes ("vdb /data ext4
 * rw"), writable ext4 whose journal the mount replays after a machine was killed (no fsck).
 * Volumes are synced and unmounted before the machine powers off.
 * Probes run here, inside the machine, so they see the app itself and never the host's port
 * forwarder (which accepts connections before anything listens behind it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* From <linux/random.h>, which musl does not ship. */
#define RNDADDENTROPY _IOW('R', 0x03, int[2])
#define RNDRESEEDCRNG _IO('R', 0x07)
struct rand_pool_info {
	int entropy_count;
	int buf_size;
	unsigned char buf[];
};

#define CONTROL_TTY "/dev/ttyS1"
#define APP_CONTROL_FD 3
#define APP_NOTICE_FD 4
#define MAX_ENV 512
#define LINE_MAX_LEN 8192
/* Lines on the app's control pipe that are not messages, before init reports the app. */
#define APP_GARBAGE_LIMIT 64
#define CONFIG_TIMEOUT_MS 10000
#define PROBE_INTERVAL_MS 20

static int control = -1;
static int sigchld_pipe[2];

static long long uptime_us(void) {
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void send_line(const char *fmt, ...) {
	char buf[LINE_MAX_LEN];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0) return;
	if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
	buf[n++] = '\n';
	if (control < 0) {
		(void)!write(2, buf, n);
		return;
	}
	for (int off = 0; off < n;) {
		ssize_t w = write(control, buf + off, n - off);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) return;
		off += w;
	}
}

#define MAX_VOLUMES 8
static char volume_dirs[MAX_VOLUMES][256];
static int volume_count;

/*
 * A volume outlives the machine: unmount it so its journal is clean for the next one. If
 * something still holds it open, read-only is the next best thing (no write is left half-done).
 */
static void unmount_volumes(void) {
	for (int i = volume_count - 1; i >= 0; i--) {
		if (umount(volume_dirs[i]) == 0) continue;
		if (mount(NULL, volume_dirs[i], NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
			fprintf(stderr, "pith-init: unmount %s: %s\n", volume_dirs[i], strerror(errno));
	}
}

/* Reboot is how a machine without ACPI ends: QEMU runs with -no-reboot, so the reset exits it. */
static void power_off(void) {
	if (control >= 0) tcdrain(control);
	sync();
	unmount_volumes();
	reboot(RB_AUTOBOOT);
	for (;;) pause();
}

static void fail(const char *what) {
	fprintf(stderr, "pith-init: %s: %s\n", what, strerror(errno));
	send_line("error %s: %s", what, strerror(errno));
	power_off();
}

/* Reads a file of NUL-terminated strings into a NULL-terminated vector; missing file: empty. */
static int read_strings(const char *path, char **out, int max) {
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) return 0;
	struct stat st;
	if (fstat(fd, &st) < 0) fail(path);
	char *buf = malloc(st.st_size + 1);
	if (!buf) fail("malloc");
	ssize_t got = 0;
	while (got < st.st_size) {
		ssize_t r = read(fd, buf + got, st.st_size - got);
		if (r <= 0) fail(path);
		got += r;
	}
	close(fd);
	buf[got] = 0;
	int n = 0;
	for (char *p = buf; p < buf + got && n < max - 1; p += strlen(p) + 1) out[n++] = p;
	out[n] = NULL;
	return n;
}

static void set_env(char **env, int *count, char *entry) {
	size_t key_len = strcspn(entry, "=");
	for (int i = 0; i < *count; i++) {
		if (strncmp(env[i], entry, key_len) == 0 && env[i][key_len] == '=') {
			env[i] = entry;
			return;
		}
	}
	if (*count < MAX_ENV - 1) env[(*count)++] = entry;
	env[*count] = NULL;
}

static int hexval(char c) {
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	return -1;
}

static void add_entropy(const char *hex, int reseed_now) {
	struct {
		struct rand_pool_info info;
		unsigned char bytes[256];
	} seed;
	_Static_assert(sizeof seed.info == 8, "rand_pool_info layout");
	int n = 0;
	for (; hex[0] && hex[1] && n < (int)sizeof seed.bytes; hex += 2) {
		int hi = hexval(hex[0]), lo = hexval(hex[1]);
		if (hi < 0 || lo < 0) break;
		seed.bytes[n++] = (unsigned char)(hi << 4 | lo);
	}
	seed.info.entropy_count = n * 8;
	seed.info.buf_size = n;
	int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, RNDADDENTROPY, &seed) < 0)
		fprintf(stderr, "pith-init: cannot seed the random pool: %s\n", strerror(errno));
	/* Mixed in is not yet used: after a restore, two machines from one snapshot would draw the
	 * same numbers until the kernel's next scheduled reseed. Make the generator use it now. */
	else if (reseed_now && ioctl(fd, RNDRESEEDCRNG) < 0)
		fprintf(stderr, "pith-init: cannot reseed the random generator: %s\n", strerror(errno));
	if (fd >= 0) close(fd);
}

/*
 * The host's time reaches init tens of milliseconds after the host read it (serial port, the tty
 * layer's work queue, a vCPU translating init's code for the first time). Anchored to the uptime
 * init reported, the time is carried forward by the guest's own clock over that delay; what is
 * left is the report's way to the host, a millisecond or two.
 */
static void set_clock(const char *text) {
	char *rest;
	long long us = strtoll(text, &rest, 10) * 1000;
	long long anchor_us = strtoll(rest, NULL, 10);
	long long since_anchor_us = uptime_us() - anchor_us;
	if (anchor_us > 0 && since_anchor_us > 0) us += since_anchor_us;
	struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
	if (us > 0 && clock_settime(CLOCK_REALTIME, &ts) < 0)
		fprintf(stderr, "pith-init: cannot set the clock: %s\n", strerror(errno));
	/* A restored machine's time comes before it runs again, with no uptime the host could know:
	   ask for it again, anchored to now. */
	else if (us > 0 && anchor_us <= 0)
		send_line("clock %lld", uptime_us());
}

/* A line reader over a non-blocking fd: returns complete lines one at a time. */
struct line_reader {
	int fd;
	char buf[LINE_MAX_LEN];
	size_t len;
	unsigned dropped; /* over-long lines thrown away */
};

/* Returns 1 with a line in out, 0 when no complete line is buffered, -1 at end of input. */
static int next_line(struct line_reader *r, char *out, size_t out_size) {
	for (;;) {
		char *nl = memchr(r->buf, '\n', r->len);
		if (nl) {
			size_t n = nl - r->buf;
			if (n >= out_size) n = out_size - 1;
			memcpy(out, r->buf, n);
			out[n] = 0;
			if (n && out[n - 1] == '\r') out[n - 1] = 0;
			r->len -= (nl - r->buf) + 1;
			memmove(r->buf, nl + 1, r->len);
			return 1;
		}
		if (r->len == sizeof r->buf) { /* an over-long line: drop it */
			r->len = 0;
			r->dropped++;
		}
		ssize_t got = read(r->fd, r->buf + r->len, sizeof r->buf - r->len);
		if (got > 0) {
			r->len += got;
			continue;
		}
		if (got == 0) return -1;
		if (errno == EINTR) continue;
		return 0;
	}
}


enum readiness_kind { READY_CALL, READY_NONE, READY_TCP, READY_HTTP };
struct readiness {
	enum readiness_kind kind;
	int port;
	char path[512];
};

static void read_readiness(struct readiness *r) {
	r->kind = READY_CALL;
	char text[600] = {0};
	int fd = open("/pith/readiness", O_RDONLY | O_CLOEXEC);
	if (fd < 0) return;
	(void)!read(fd, text, sizeof text - 1);
	close(fd);
	if (strncmp(text, "none", 4) == 0) r->kind = READY_NONE;
	else if (sscanf(text, "tcp %d", &r->port) == 1) r->kind = READY_TCP;
	else if (sscanf(text, "http %d %511s", &r->port, r->path) == 2) r->kind = READY_HTTP;
}

/* One attempt of a tcp or http probe against the app on this machine's loopback. */
static int probe_once(const struct readiness *r) {
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) return 0;
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(r->port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int ok = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
	if (ok && r->kind == READY_HTTP) {
		char request[640];
		int n = snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: localhost\r\nUser-Agent: pith-probe\r\n\r\n", r->path);
		struct timeval tv = {.tv_sec = 1};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		char status[16] = {0};
		ok = write(fd, request, n) == n && read(fd, status, sizeof status - 1) >= 12 && strncmp(status, "HTTP/1.", 7) == 0 &&
		     (status[9] == '2' || status[9] == '3');
	}
	close(fd);
	return ok;
}

/* Blocking writes of a few lines to the app's socket; the app may be slow to read them. */
static void write_all(int fd, const char *buf, size_t len) {
	while (len > 0) {
		ssize_t w = write(fd, buf, len);
		if (w < 0 && errno == EINTR) continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			poll(&p, 1, 100);
			continue;
		}
		if (w <= 0) return;
		buf += w;
		len -= w;
	}
}

static void on_sigchld(int sig) {
	(void)sig;
	int saved = errno;
	(void)!write(sigchld_pipe[1], "c", 1);
	errno = saved;
}

static void mount_or_warn(const char *source, const char *target, const char *type) {
	mkdir(target, 0755);
	if (mount(source, target, type, MS_NOSUID, NULL) < 0 && errno != EBUSY && errno != ENODEV)
		fprintf(stderr, "pith-init: mount %s: %s\n", target, strerror(errno));
}

/* Mounts the image's disks; without them the app cannot run (or would lose data), so a failure is fatal. */
static void mount_disks(void) {
	FILE *f = fopen("/pith/mounts", "re");
	if (!f) return;
	char line[512], device[64], dir[256], fstype[32], mode[8];
	while (fgets(line, sizeof line, f)) {
		int fields = sscanf(line, "%63s %255s %31s %7s", device, dir, fstype, mode);
		if (fields < 3) continue;
		int writable = fields == 4 && strcmp(mode, "rw") == 0;
		char path[80];
		snprintf(path, sizeof path, "/dev/%s", device);
		mkdir(dir, 0755);
		unsigned long flags = MS_NOSUID | MS_NODEV | (writable ? 0 : MS_RDONLY);
		if (mount(path, dir, fstype, flags, NULL) < 0) fail(path);
		if (writable && volume_count < MAX_VOLUMES) snprintf(volume_dirs[volume_count++], sizeof volume_dirs[0], "%s", dir);
	}
	fclose(f);
}

static int open_control_tty(void) {
	int fd = open(CONTROL_TTY, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) return -1;
	struct termios t;
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		cfsetispeed(&t, B115200);
		cfsetospeed(&t, B115200);
		tcsetattr(fd, TCSANOW, &t);
	}
	return fd;
}

int main(void) {
	mount_or_warn("devtmpfs", "/dev", "devtmpfs");
	mount_or_warn("proc", "/proc", "proc");
	mount_or_warn("tmpfs", "/tmp", "tmpfs");
	if (access("/sys", F_OK) == 0) mount_or_warn("sysfs", "/sys", "sysfs");

	control = open_control_tty();
	if (control < 0) fprintf(stderr, "pith-init: no control channel (%s): %s\n", CONTROL_TTY, strerror(errno));
	send_line("init %lld", uptime_us());
	mount_disks();

	static char *argv[256];
	static char *env[MAX_ENV];
	if (read_strings("/pith/argv", argv, 256) == 0) {
		errno = ENOENT;
		fail("/pith/argv");
	}
	int env_count = read_strings("/pith/env", env, MAX_ENV);

	/* The runtime config: everything until "end". A host that says nothing gets the image's env. */
	struct line_reader host = {.fd = control};
	long long deadline = uptime_us() + CONFIG_TIMEOUT_MS * 1000LL;
	int configured = control < 0;
	while (!configured) {
		char line[LINE_MAX_LEN];
		int got = next_line(&host, line, sizeof line);
		if (got < 0) break;
		if (got == 0) {
			long long left_ms = (deadline - uptime_us()) / 1000;
			if (left_ms <= 0) {
				fprintf(stderr, "pith-init: no config from the host in %d ms; starting with the image's\n", CONFIG_TIMEOUT_MS);
				break;
			}
			struct pollfd p = {.fd = control, .events = POLLIN};
			poll(&p, 1, (int)left_ms);
			continue;
		}
		if (strcmp(line, "end") == 0) configured = 1;
		else if (strncmp(line, "time ", 5) == 0) set_clock(line + 5);
		else if (strncmp(line, "seed ", 5) == 0) add_entropy(line + 5, 0);
		else if (strncmp(line, "env ", 4) == 0 && strchr(line + 4, '=')) {
			char *entry = strdup(line + 4);
			if (!entry) fail("strdup");
			set_env(env, &env_count, entry);
		}
	}

	int app_pipe[2], notice_pipe[2];
	if (pipe2(sigchld_pipe, O_CLOEXEC | O_NONBLOCK) < 0) fail("pipe");
	if (pipe2(app_pipe, O_CLOEXEC) < 0 || pipe2(notice_pipe, O_CLOEXEC) < 0) fail("pipe");
	fcntl(app_pipe[0], F_SETFL, O_NONBLOCK);
	static char control_fd_env[] = "PITH_CONTROL_FD=3";
	static char notice_fd_env[] = "PITH_NOTICE_FD=4";
	set_env(env, &env_count, control_fd_env);
	set_env(env, &env_count, notice_fd_env);

	struct sigaction sa = {.sa_handler = on_sigchld, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
	sigaction(SIGCHLD, &sa, NULL);

	send_line("start %lld", uptime_us());
	pid_t app = fork();
	if (app < 0) fail("fork");
	if (app == 0) {
		setsid();
		/* notice_pipe[0] may itself be fd 3: move it out of the way first. */
		int notice = fcntl(notice_pipe[0], F_DUPFD_CLOEXEC, 10);
		if (notice < 0 || dup2(app_pipe[1], APP_CONTROL_FD) < 0 || dup2(notice, APP_NOTICE_FD) < 0) _exit(127);
		if (chdir("/app") < 0) chdir("/");
		execve(argv[0], argv, env);
		fprintf(stderr, "pith-init: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(app_pipe[1]);
	close(notice_pipe[0]);

	struct line_reader from_app = {.fd = app_pipe[0]};
	unsigned app_garbage = 0;
	long long kill_at = 0;
	struct readiness readiness;
	read_readiness(&readiness);
	int probing = readiness.kind == READY_TCP || readiness.kind == READY_HTTP;
	int app_ready = 0;
	int app_restore_aware = 0;
	int restoring = 0; /* told the app it was restored; waiting for its answer */
	static char restore_env[LINE_MAX_LEN * 4];
	size_t restore_env_len = 0;
	if (readiness.kind == READY_NONE) {
		app_ready = 1;
		send_line("ready");
	}
	for (;;) {
		struct pollfd fds[3] = {
			{.fd = sigchld_pipe[0], .events = POLLIN},
			{.fd = from_app.fd, .events = POLLIN},
			{.fd = control, .events = POLLIN},
		};
		int timeout = probing ? PROBE_INTERVAL_MS : -1;
		if (kill_at) {
			long long left = (kill_at - uptime_us()) / 1000;
			if (timeout < 0 || left < timeout) timeout = left > 0 ? (int)left : 0;
		}
		int n = poll(fds, 3, timeout);
		if (n < 0 && errno != EINTR) fail("poll");
		if (kill_at && uptime_us() >= kill_at) {
			kill(-app, SIGKILL);
			kill(app, SIGKILL);
			kill_at = 0;
		}
		if (probing && probe_once(&readiness)) {
			probing = 0;
			app_ready = 1;
			send_line("ready");
		}
		char line[LINE_MAX_LEN];
		if (fds[1].revents) {
			int got;
			while ((got = next_line(&from_app, line, sizeof line)) > 0) {
				if (strcmp(line, "ready") == 0 && readiness.kind == READY_CALL && !app_ready) {
					app_ready = 1;
					send_line("ready");
				} else if (strcmp(line, "restore-aware") == 0) app_restore_aware = 1;
				else if (strcmp(line, "restored") == 0 && restoring) {
					restoring = 0;
					send_line("ready");
				} else if (strcmp(line, "ready") != 0) app_garbage++;
			}
			if (got < 0) from_app.fd = -1; /* the app closed its end: nothing more will come */
			/* An app that floods its pipe with what is not a message is told on, once, and the host
			   fails the machine; init stops reading, so the flood costs it nothing more. */
			if (from_app.fd >= 0 && app_garbage + from_app.dropped > APP_GARBAGE_LIMIT) {
				send_line("abuse the app wrote %u lines that are not messages (%u of them over %d bytes) to its control pipe", app_garbage + from_app.dropped, from_app.dropped, LINE_MAX_LEN);
				from_app.fd = -1;
			}
		}
		if (control >= 0 && fds[2].revents) {
			while (next_line(&host, line, sizeof line) > 0) {
				if (strcmp(line, "status") == 0) send_line("status %s", app_ready && !restoring ? "ready" : "starting");
				else if (strncmp(line, "time ", 5) == 0) set_clock(line + 5);
				else if (strncmp(line, "seed ", 5) == 0) add_entropy(line + 5, 1);
				else if (strncmp(line, "env ", 4) == 0) {
					size_t n = strlen(line);
					if (restore_env_len + n + 1 < sizeof restore_env) {
						memcpy(restore_env + restore_env_len, line, n);
						restore_env[restore_env_len + n] = '\n';
						restore_env_len += n + 1;
					}
				} else if (strcmp(line, "restored") == 0) {
					if (app_restore_aware && from_app.fd >= 0) {
						restoring = 1;
						write_all(notice_pipe[1], restore_env, restore_env_len);
						write_all(notice_pipe[1], "restored\n", 9);
					} else if (app_ready) send_line("ready");
					restore_env_len = 0;
				}
				else if (strncmp(line, "shutdown", 8) == 0) {
					long long grace_ms = line[8] == ' ' ? atoll(line + 9) : 5000;
					kill(app, SIGTERM);
					kill_at = uptime_us() + grace_ms * 1000;
				}
			}
		}
		if (fds[0].revents) {
			char drain[64];
			while (read(sigchld_pipe[0], drain, sizeof drain) > 0) {}
			int status;
			pid_t pid;
			while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
				if (pid != app) continue;
				int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
				send_line("exit %d", code);
				power_off();
			}
		}
	}
}
