/* confine.c - Landlock and seccomp with raw system calls; see confine.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* O_PATH */
#endif
#include "confine.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>

/*
 * Sanitizer builds (the test suite's ASan + UBSan run): LeakSanitizer
 * inspects the process when it ends, from a helper that ptrace()s it and
 * reads /proc/self.  Such a build leaves those two open; everything else
 * (files, exec, sockets, connect) is confined as in a release build.
 */
#if defined(__SANITIZE_ADDRESS__)
#define FOR_LEAK_CHECKER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FOR_LEAK_CHECKER 1
#endif
#endif
#ifndef FOR_LEAK_CHECKER
#define FOR_LEAK_CHECKER 0
#endif

/*
 * The parts of the Landlock ABI newer than some distributions' headers
 * (kernel ABI, stable; documented in the kernel's userspace-api/landlock).
 */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)		/* ABI 3 */
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)		/* ABI 5 */
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)		/* ABI 4 */
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)	/* ABI 6 */
#endif

/* struct landlock_ruleset_attr as of ABI 6 (the kernel takes its size). */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

#define LL_FS_ABI1 (LANDLOCK_ACCESS_FS_EXECUTE | \
	LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | \
	LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR | \
	LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR | \
	LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | \
	LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | \
	LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM)

/* Rights that a rule on a regular file may carry. */
#define LL_FILE_RIGHTS (LANDLOCK_ACCESS_FS_EXECUTE | \
	LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | \
	LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)

#define LL_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define LL_WRITE (LL_READ | LANDLOCK_ACCESS_FS_WRITE_FILE | \
	LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE | \
	LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | \
	LANDLOCK_ACCESS_FS_REFER | LANDLOCK_ACCESS_FS_TRUNCATE)

void
confine_policy_init(struct confine_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->listen_fd = -1;
}

static enum err
add_path(const char **v, size_t *n, const char *path)
{
	if (path == NULL || path[0] == '\0') {
		return ERR_OK;
	}
	if (*n >= CONFINE_MAX_PATHS) {
		return ERR_LIMIT;
	}
	v[(*n)++] = path;
	return ERR_OK;
}

enum err
confine_allow_read(struct confine_policy *p, const char *path)
{
	return add_path(p->read, &p->n_read, path);
}

enum err
confine_allow_write(struct confine_policy *p, const char *path)
{
	return add_path(p->write, &p->n_write, path);
}

int
confine_landlock_abi(void)
{
#ifdef __NR_landlock_create_ruleset
	long abi = syscall(__NR_landlock_create_ruleset, NULL, 0,
		LANDLOCK_CREATE_RULESET_VERSION);

	return abi > 0 ? (int)abi : 0;
#else
	return 0;
#endif
}

#ifdef __NR_landlock_create_ruleset
/* One path rule; a path that does not exist is skipped. */
static enum err
landlock_path(int ruleset, const char *path, uint64_t rights,
	uint64_t handled, struct errinfo *reterr)
{
	struct landlock_path_beneath_attr pb;
	struct stat st;
	int fd;

	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR || errno == EACCES) {
			return ERR_OK;
		}
		return errinfo_set(reterr, ERR_INTERNAL, "confinement: cannot "
			"open '%s': %s", path, strerror(errno));
	}
	if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) {
		rights &= LL_FILE_RIGHTS;
	}
	memset(&pb, 0, sizeof(pb));
	pb.allowed_access = rights & handled;
	pb.parent_fd = fd;
	if (pb.allowed_access != 0 && syscall(__NR_landlock_add_rule, ruleset,
	    LANDLOCK_RULE_PATH_BENEATH, &pb, 0) != 0) {
		int err = errno;

		close(fd);
		return errinfo_set(reterr, ERR_INTERNAL, "confinement: "
			"landlock_add_rule('%s'): %s", path, strerror(err));
	}
	close(fd);
	return ERR_OK;
}

/* Landlock; *ret_applied stays 0 when the kernel has none. */
static enum err
landlock_apply(const struct confine_policy *p, int abi, struct buf *what,
	struct errinfo *reterr)
{
	struct ll_ruleset_attr ra;
	size_t size = sizeof(uint64_t);
	enum err e = ERR_OK;
	size_t i;
	int ruleset;

	memset(&ra, 0, sizeof(ra));
	ra.handled_access_fs = LL_FS_ABI1;
	if (abi >= 2) {
		ra.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
	}
	if (abi >= 3) {
		ra.handled_access_fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	}
	if (abi >= 4) {
		/* handled and no port allowed: no TCP connect or bind at all */
		ra.handled_access_net = LANDLOCK_ACCESS_NET_BIND_TCP |
			LANDLOCK_ACCESS_NET_CONNECT_TCP;
		size = 2 * sizeof(uint64_t);
	}
	if (abi >= 5) {
		ra.handled_access_fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	}
	if (abi >= 6) {
		/*
		 * Not LANDLOCK_SCOPE_SIGNAL: the process must still be able to
		 * kill the token helper it started before (past its deadline).
		 */
		ra.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET;
		size = sizeof(ra);
	}
	ruleset = (int)syscall(__NR_landlock_create_ruleset, &ra, size, 0);
	if (ruleset < 0) {
		return errinfo_set(reterr, ERR_INTERNAL, "confinement: "
			"landlock_create_ruleset: %s", strerror(errno));
	}
	for (i = 0; e == ERR_OK && i < p->n_read; i++) {
		e = landlock_path(ruleset, p->read[i], LL_READ,
			ra.handled_access_fs, reterr);
	}
	if (e == ERR_OK && FOR_LEAK_CHECKER) {
		e = landlock_path(ruleset, "/proc", LL_READ,
			ra.handled_access_fs, reterr);
	}
	for (i = 0; e == ERR_OK && i < p->n_write; i++) {
		e = landlock_path(ruleset, p->write[i], LL_WRITE,
			ra.handled_access_fs, reterr);
	}
	if (e == ERR_OK && syscall(__NR_landlock_restrict_self, ruleset, 0)
	    != 0) {
		e = errinfo_set(reterr, ERR_INTERNAL, "confinement: "
			"landlock_restrict_self: %s", strerror(errno));
	}
	close(ruleset);
	if (e == ERR_OK) {
		e = buf_printf(what, "landlock ABI %d (files%s%s)", abi,
			abi >= 4 ? ", TCP" : "",
			abi >= 6 ? ", abstract sockets" : "");
	}
	return e;
}
#endif

/* ---- seccomp ---- */

#if defined(__x86_64__)
#define CONFINE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define CONFINE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define CONFINE_AUDIT_ARCH AUDIT_ARCH_RISCV64
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define CONFINE_AUDIT_ARCH AUDIT_ARCH_PPC64LE
#elif defined(__s390x__)
#define CONFINE_AUDIT_ARCH AUDIT_ARCH_S390X
#endif

#ifdef CONFINE_AUDIT_ARCH
/* The system calls refused with EPERM (those this kernel header knows). */
static const int denied[] = {
	__NR_execve,
#ifdef __NR_execveat
	__NR_execveat,
#endif
	__NR_socket,
	__NR_socketpair,
	__NR_connect,
	__NR_bind,
	__NR_listen,
	__NR_accept,
#ifdef __NR_accept4
	__NR_accept4,
#endif
#if !FOR_LEAK_CHECKER
	__NR_ptrace,
#endif
#ifdef __NR_process_vm_readv
	__NR_process_vm_readv,
	__NR_process_vm_writev,
#endif
#ifdef __NR_io_uring_setup
	__NR_io_uring_setup,
	__NR_io_uring_enter,
	__NR_io_uring_register,
#endif
#ifdef __NR_bpf
	__NR_bpf,
#endif
#ifdef __NR_userfaultfd
	__NR_userfaultfd,
#endif
#ifdef __NR_perf_event_open
	__NR_perf_event_open,
#endif
	__NR_keyctl,
	__NR_add_key,
	__NR_request_key,
	__NR_unshare,
	__NR_setns,
	__NR_mount,
	__NR_umount2,
#ifdef __NR_pidfd_getfd
	__NR_pidfd_getfd,
#endif
	__NR_open_by_handle_at,
#ifdef __NR_fsopen
	__NR_fsopen,
	__NR_fsmount,
	__NR_move_mount,
	__NR_open_tree,
#endif
};

#define N_DENIED (sizeof(denied) / sizeof(denied[0]))

/* The calls allowed on listen_fd only (refused by the list above else). */
static const int on_listen_fd[] = {
	__NR_listen,
	__NR_accept,
#ifdef __NR_accept4
	__NR_accept4,
#endif
};

#define N_ON_LISTEN_FD (sizeof(on_listen_fd) / sizeof(on_listen_fd[0]))

/* The low 32 bits of the first argument (an int descriptor). */
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define ARG0_LOW (offsetof(struct seccomp_data, args[0]) + 4)
#else
#define ARG0_LOW offsetof(struct seccomp_data, args[0])
#endif

static enum err
seccomp_apply(int listen_fd, struct buf *what, struct errinfo *reterr)
{
	/*
	 * arch check (2) + x32 check (2) + load nr + 5 per exception
	 * + 2 per call + 2 returns
	 */
	struct sock_filter f[8 + 5 * N_ON_LISTEN_FD + 2 * N_DENIED];
	struct sock_fprog prog;
	size_t n = 0, i;

	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		offsetof(struct seccomp_data, arch));
	/* another ABI (int 0x80 on x86-64 has other numbers): refuse all */
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
		CONFINE_AUDIT_ARCH, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
		SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
	/* x32 system calls share the arch value: refuse them all */
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K,
		0x40000000U, 0, 1);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
		SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
#endif
	/*
	 * listen/accept/accept4 with listen_fd as the first argument: allowed
	 * (the kernel reads that argument as an int, so its low 32 bits are
	 * all that counts).  Any other descriptor falls through to the list
	 * of refused calls, with the call's number loaded again.
	 */
	for (i = 0; listen_fd >= 0 && i < N_ON_LISTEN_FD; i++) {
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
			(unsigned)on_listen_fd[i], 0, 4);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			ARG0_LOW);
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
			(unsigned)listen_fd, 0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
			SECCOMP_RET_ALLOW);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			offsetof(struct seccomp_data, nr));
	}
	for (i = 0; i < N_DENIED; i++) {
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
			(unsigned)denied[i], 0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
			SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
	}
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
		SECCOMP_RET_ALLOW);
	prog.len = (unsigned short)n;
	prog.filter = f;
	if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0 &&
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
		return errinfo_set(reterr, ERR_INTERNAL, "confinement: "
			"cannot install the seccomp filter: %s", strerror(errno));
	}
	if (listen_fd >= 0) {
		return buf_printf(what, "%sseccomp (%zu calls refused; listen "
			"and accept on descriptor %d only)",
			what->len > 0 ? ", " : "", N_DENIED, listen_fd);
	}
	return buf_printf(what, "%sseccomp (%zu calls refused)",
		what->len > 0 ? ", " : "", N_DENIED);
}
#endif

enum err
confine_apply(const struct confine_policy *p, struct buf *ret_what,
	struct errinfo *reterr)
{
	int abi = confine_landlock_abi();
	enum err e = ERR_OK;

	buf_reset(ret_what);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		return errinfo_set(reterr, ERR_INTERNAL, "confinement: "
			"cannot set no_new_privs: %s", strerror(errno));
	}
#ifdef __NR_landlock_create_ruleset
	if (abi > 0) {
		e = landlock_apply(p, abi, ret_what, reterr);
	}
#endif
	if (e == ERR_OK && abi == 0) {
		e = buf_append_str(ret_what, "no landlock (the kernel offers "
			"none: files and TCP unconfined)");
	}
#ifdef CONFINE_AUDIT_ARCH
	if (e == ERR_OK) {
		e = seccomp_apply(p->listen_fd, ret_what, reterr);
	}
#else
	if (e == ERR_OK) {
		e = buf_append_str(ret_what, ", no seccomp filter for this "
			"architecture");
	}
#endif
	return e;
}
