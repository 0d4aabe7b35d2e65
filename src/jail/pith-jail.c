/*
 * pith-jail [OPTIONS] -- PROGRAM [ARGS...]
 *
 * Confines a program the way Firecracker's jailer confines Firecracker, then executes it: Pith
 * runs every QEMU (and its network helper) through this, so nothing a guest reaches in them runs
 * as root, sees the host's files or reaches the host's network.
 *
 * In this order, all before PROGRAM runs:
 *   --cgroup DIR          join DIR (write our pid to DIR/cgroup.procs); repeat for v1 hierarchies
 *   --root DIR            a new mount namespace whose root is a fresh, read-only tmpfs mounted on
 *                         DIR, holding only the paths given by:
 *   --ro PATH             PATH bound read-only at the same path (file or directory)
 *   --rw PATH             PATH bound read-write at the same path
 *   --dev PATH            a device node bound at the same path (e.g. /dev/kvm)
 *   --link PATH           a symlink copied from the host (merged-/usr's /lib, /lib64, /bin)
 *   --netns               a new network namespace: no interface but a loopback that is down
 *   --rlimit NAME=N       nofile, fsize, nproc, core or memlock (soft and hard)
 *   --uid N --gid N       drop to this uid and gid, with no supplementary groups
 *   --seccomp             a seccomp filter of our own, kept across exec: the kernel interfaces
 *                         no VMM or network helper needs (namespaces, mounts, tracing, modules,
 *                         keyrings, BPF, io_uring, changing uid...) fail with EPERM, and any other
 *                         system call ABI than x86-64's kills the process
 * Always: no_new_privs (setuid binaries and file capabilities grant nothing afterwards).
 *
 * Run as an ordinary user without --uid, the namespaces come from a new user namespace that
 * maps only the caller's uid and gid; capabilities in it end at execve.
 *
 * Any failure exits 125 with one line on stderr naming the step, before PROGRAM runs: a jail
 * that cannot be built is never silently skipped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#define MAX_ITEMS 64

enum kind { RO, RW, DEV, LINK };
struct bind { enum kind kind; const char *path; };

static struct bind binds[MAX_ITEMS];
static int nbinds;
static const char *cgroups[MAX_ITEMS];
static int ncgroups;
static struct { int resource; rlim_t value; } limits[MAX_ITEMS];
static int nlimits;

static void die(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	fputs("pith-jail: ", stderr);
	vfprintf(stderr, fmt, ap);
	if (errno) fprintf(stderr, ": %s", strerror(errno));
	fputc('\n', stderr);
	va_end(ap);
	_exit(125);
}

static void write_file(const char *path, const char *text) {
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) die("open %s", path);
	size_t n = strlen(text);
	if (write(fd, text, n) != (ssize_t)n) die("write %s", path);
	close(fd);
}

static unsigned long number(const char *text, const char *what) {
	char *end;
	errno = 0;
	unsigned long v = strtoul(text, &end, 10);
	if (errno || *end || end == text) die("%s is not a number: %s", what, text);
	return v;
}

static int rlimit_named(const char *name) {
	if (!strcmp(name, "nofile")) return RLIMIT_NOFILE;
	if (!strcmp(name, "fsize")) return RLIMIT_FSIZE;
	if (!strcmp(name, "nproc")) return RLIMIT_NPROC;
	if (!strcmp(name, "core")) return RLIMIT_CORE;
	if (!strcmp(name, "memlock")) return RLIMIT_MEMLOCK;
	errno = 0;
	die("unknown rlimit %s", name);
	return -1;
}

/* mkdir -p for the directories leading to PATH inside the new root (and PATH itself if dir). */
static void make_path(const char *root, const char *path, int last_is_dir) {
	char buf[4096];
	if (snprintf(buf, sizeof buf, "%s%s", root, path) >= (int)sizeof buf) { errno = 0; die("path too long: %s", path); }
	for (char *p = buf + strlen(root) + 1; *p; p++) {
		if (*p != '/') continue;
		*p = 0;
		if (mkdir(buf, 0755) && errno != EEXIST) die("mkdir %s", buf);
		*p = '/';
	}
	if (last_is_dir) {
		if (mkdir(buf, 0755) && errno != EEXIST) die("mkdir %s", buf);
	} else {
		int fd = open(buf, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0) die("create %s", buf);
		close(fd);
	}
}

static void bind_into(const char *root, const struct bind *b) {
	char target[4096];
	snprintf(target, sizeof target, "%s%s", root, b->path);
	if (b->kind == LINK) {
		char dest[4096];
		ssize_t n = readlink(b->path, dest, sizeof dest - 1);
		if (n < 0) die("readlink %s", b->path);
		dest[n] = 0;
		make_path(root, b->path, 0);
		unlink(target);
		if (symlink(dest, target)) die("symlink %s", target);
		return;
	}
	struct stat st;
	if (stat(b->path, &st)) die("stat %s", b->path);
	make_path(root, b->path, S_ISDIR(st.st_mode));
	if (mount(b->path, target, NULL, MS_BIND | MS_REC, NULL)) die("bind %s", b->path);
	unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID;
	if (b->kind != RW) flags |= MS_RDONLY;
	if (b->kind != DEV) flags |= MS_NODEV;
	if (mount(NULL, target, NULL, flags, NULL)) die("remount %s", b->path);
}

static void enter_root(const char *root) {
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) die("make mounts private");
	if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")) die("mount tmpfs on %s", root);
	for (int i = 0; i < nbinds; i++) bind_into(root, &binds[i]);
	/* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only ours. */
	if (chdir(root)) die("chdir %s", root);
	if (syscall(SYS_pivot_root, ".", ".")) die("pivot_root %s", root);
	if (umount2(".", MNT_DETACH)) die("detach the old root");
	if (chdir("/")) die("chdir /");
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL)) die("make the root read-only");
}

/*
 * The filter, as classic BPF (musl has no linux/seccomp.h, so the few constants are here). It
 * is a deny-list: QEMU's own -sandbox filter and pith-net's needs decide what remains allowed.
 */
struct sock_filter { uint16_t code; uint8_t jt, jf; uint32_t k; };
struct sock_fprog { unsigned short len; struct sock_filter *filter; };
#define BPF_LD_W_ABS 0x20
#define BPF_JEQ_K 0x15
#define BPF_JGE_K 0x35
#define BPF_RET_K 0x06
#define SECCOMP_MODE_FILTER 2
#define SECCOMP_RET_KILL_PROCESS 0x80000000U
#define SECCOMP_RET_ERRNO 0x00050000U
#define SECCOMP_RET_ALLOW 0x7fff0000U
#define AUDIT_ARCH_X86_64 0xc000003eU
#define X32_SYSCALL_BIT 0x40000000U
#define DATA_NR 0
#define DATA_ARCH 4

static const int denied[] = {
	SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_pidfd_getfd,
	SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot, SYS_setns, SYS_unshare,
	SYS_open_tree, SYS_move_mount, SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_fspick, SYS_mount_setattr,
	SYS_init_module, SYS_finit_module, SYS_delete_module, SYS_kexec_load, SYS_kexec_file_load,
	SYS_bpf, SYS_perf_event_open, SYS_userfaultfd, SYS_keyctl, SYS_add_key, SYS_request_key,
	SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
	SYS_open_by_handle_at, SYS_name_to_handle_at, SYS_fanotify_init, SYS_lookup_dcookie,
	SYS_swapon, SYS_swapoff, SYS_reboot, SYS_acct, SYS_quotactl, SYS_syslog, SYS_vhangup,
	SYS_settimeofday, SYS_clock_settime, SYS_adjtimex, SYS_clock_adjtime, SYS_iopl, SYS_ioperm,
	SYS_uselib, SYS_personality, SYS_setuid, SYS_setgid, SYS_setreuid, SYS_setregid, SYS_setresuid,
	SYS_setresgid, SYS_setfsuid, SYS_setfsgid, SYS_setgroups,
};

static void install_seccomp(void) {
	enum { N = sizeof denied / sizeof denied[0] };
	/* 0 arch, 1 is x86-64?, 2 kill, 3 nr, 4 x32?, 5.. a pair per denied call, then allow, then kill */
	struct sock_filter prog[7 + 2 * N];
	int n = 0;
	prog[n++] = (struct sock_filter){BPF_LD_W_ABS, 0, 0, DATA_ARCH};
	prog[n++] = (struct sock_filter){BPF_JEQ_K, 1, 0, AUDIT_ARCH_X86_64};
	prog[n++] = (struct sock_filter){BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS};
	prog[n++] = (struct sock_filter){BPF_LD_W_ABS, 0, 0, DATA_NR};
	prog[n++] = (struct sock_filter){BPF_JGE_K, 2 * N + 1, 0, X32_SYSCALL_BIT};
	for (int i = 0; i < N; i++) {
		prog[n++] = (struct sock_filter){BPF_JEQ_K, 0, 1, (uint32_t)denied[i]};
		prog[n++] = (struct sock_filter){BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM};
	}
	prog[n++] = (struct sock_filter){BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW};
	prog[n++] = (struct sock_filter){BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS};
	_Static_assert(2 * N + 1 < 256, "the x32 jump must fit in a byte");
	struct sock_fprog fprog = {(unsigned short)n, prog};
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0)) die("install the seccomp filter");
}

static void map_own_ids(uid_t uid, gid_t gid) {
	char text[64];
	snprintf(text, sizeof text, "%u %u 1\n", uid, uid);
	write_file("/proc/self/uid_map", text);
	write_file("/proc/self/setgroups", "deny\n");
	snprintf(text, sizeof text, "%u %u 1\n", gid, gid);
	write_file("/proc/self/gid_map", text);
}

int main(int argc, char **argv) {
	const char *root = NULL;
	long uid = -1, gid = -1;
	int netns = 0, seccomp = 0, i;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) { i++; break; }
		if (i + 1 >= argc && strcmp(a, "--netns") && strcmp(a, "--seccomp")) { errno = 0; die("%s needs a value", a); }
		if (nbinds >= MAX_ITEMS || ncgroups >= MAX_ITEMS || nlimits >= MAX_ITEMS) { errno = 0; die("too many options"); }
		if (!strcmp(a, "--netns")) netns = 1;
		else if (!strcmp(a, "--seccomp")) seccomp = 1;
		else if (!strcmp(a, "--root")) root = argv[++i];
		else if (!strcmp(a, "--ro")) binds[nbinds++] = (struct bind){RO, argv[++i]};
		else if (!strcmp(a, "--rw")) binds[nbinds++] = (struct bind){RW, argv[++i]};
		else if (!strcmp(a, "--dev")) binds[nbinds++] = (struct bind){DEV, argv[++i]};
		else if (!strcmp(a, "--link")) binds[nbinds++] = (struct bind){LINK, argv[++i]};
		else if (!strcmp(a, "--cgroup")) cgroups[ncgroups++] = argv[++i];
		else if (!strcmp(a, "--uid")) uid = (long)number(argv[++i], "--uid");
		else if (!strcmp(a, "--gid")) gid = (long)number(argv[++i], "--gid");
		else if (!strcmp(a, "--rlimit")) {
			char *spec = argv[++i], *eq = strchr(spec, '=');
			if (!eq) { errno = 0; die("--rlimit takes NAME=N: %s", spec); }
			*eq = 0;
			limits[nlimits].resource = rlimit_named(spec);
			limits[nlimits++].value = number(eq + 1, spec);
		} else { errno = 0; die("unknown option %s", a); }
	}
	if (i >= argc) { errno = 0; die("usage: pith-jail [OPTIONS] -- PROGRAM [ARGS...]"); }
	if ((uid < 0) != (gid < 0)) { errno = 0; die("--uid and --gid go together"); }
	if (uid == 0 || gid == 0) { errno = 0; die("refusing to run a jailed program as root"); }
	for (int b = 0; b < nbinds; b++) {
		if (binds[b].path[0] != '/' || strstr(binds[b].path, "/../") || strstr(binds[b].path, "\n")) { errno = 0; die("not an absolute, plain path: %s", binds[b].path); }
	}

	/* Joined first, so everything that follows (and every thread QEMU makes) is accounted there. */
	char pid[32];
	snprintf(pid, sizeof pid, "%d\n", getpid());
	for (int c = 0; c < ncgroups; c++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/cgroup.procs", cgroups[c]);
		write_file(path, pid);
	}

	int flags = (root ? CLONE_NEWNS : 0) | (netns ? CLONE_NEWNET : 0);
	if (flags) {
		uid_t ruid = getuid();
		gid_t rgid = getgid();
		if (ruid != 0) flags |= CLONE_NEWUSER; /* an ordinary user gets namespaces through a user namespace */
		if (unshare(flags)) die("unshare namespaces");
		if (ruid != 0) map_own_ids(ruid, rgid);
	}
	if (root) enter_root(root);

	for (int l = 0; l < nlimits; l++) {
		struct rlimit rl = {limits[l].value, limits[l].value};
		if (setrlimit(limits[l].resource, &rl)) die("setrlimit");
	}
	if (uid > 0) {
		if (setgroups(0, NULL)) die("setgroups");
		if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid)) die("setresgid %ld", gid);
		if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid)) die("setresuid %ld", uid);
		if (getuid() == 0 || geteuid() == 0) { errno = 0; die("still root after dropping"); }
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) die("no_new_privs");
	if (seccomp) install_seccomp();
	execvp(argv[i], &argv[i]);
	die("exec %s", argv[i]);
	return 125;
}
