/*
 * confine.h - confine the calling process once it is connected: Landlock
 * (files and TCP) plus a seccomp filter, with raw system calls only (no
 * library).  See doc/oasmtprc.5 ("confine") and doc/system-wide.md
 * ("Confinement").
 *
 * What a confined process may still do:
 *   - read, write and close the descriptors it already holds (its SMTP
 *     connection, the spool file, stdin/stdout/stderr, a syslog socket
 *     opened before, pipes to children started before);
 *   - read files and list directories under the paths given with
 *     confine_allow_read() (the trust store, the TLS client key);
 *   - create, write, rename and remove files and directories under the
 *     paths given with confine_allow_write() (its queue, the TLS session
 *     cache directory, the log file);
 *   - fork, wait for and signal its children, allocate memory, use
 *     clocks and getrandom().
 * What it may not do (Landlock denies the first three on every path not
 * listed, seccomp the rest in any case; a denied call fails with EPERM or
 * EACCES, it does not kill the process):
 *   - open any other file for reading or writing (~/.ssh, the token
 *     store, other users' files), create or remove anything elsewhere;
 *   - execute a program (execve, execveat; Landlock's execute right is
 *     never granted either);
 *   - make a TCP connection or listen (Landlock ABI >= 4 network rules
 *     with no port allowed), create any socket (socket, socketpair),
 *     connect or bind an existing one, listen or accept on one (except
 *     listen, accept and accept4 on the one descriptor named in
 *     listen_fd: a session keeper's Unix socket, bound before; the filter
 *     compares the call's first argument with it);
 *   - ptrace, process_vm_readv/writev, io_uring (whose operations would
 *     bypass the filter), bpf, userfaultfd, perf_event_open, keyctl,
 *     unshare, setns, mount, pidfd_getfd, open_by_handle_at;
 *   - connect to abstract UNIX sockets (Landlock ABI >= 6 scope);
 *   - undo any of this (no_new_privs is set; both are irreversible and
 *     inherited by children).
 * System calls of another ABI than the build's (32-bit calls on a 64-bit
 * kernel, x32) are refused as a whole.
 *
 * A kernel without Landlock (or with it disabled) still gets the seccomp
 * filter; confine_apply() says what was applied in ret_what, for -v.
 * Errors: ERR_LIMIT (too many paths), ERR_INTERNAL (a step the kernel
 * offers failed: the process may be partly confined, and should not go on
 * as if it were not).  Not thread-safe: confines only the calling thread
 * (call it before starting threads).  libc only.
 */
#ifndef OASMTP_CONFINE_H
#define OASMTP_CONFINE_H

#include <stddef.h>

#include "buf.h"
#include "err.h"

#define CONFINE_MAX_PATHS 32

struct confine_policy {
	const char *read[CONFINE_MAX_PATHS];	/* borrowed until apply */
	size_t n_read;
	const char *write[CONFINE_MAX_PATHS];
	size_t n_write;
	int listen_fd;		/* listen/accept allowed on it; -1: none */
};

/* Empty: no path, no listen_fd. */
void confine_policy_init(struct confine_policy *p);

/*
 * Allow reading path (a file, or a directory and everything beneath it).
 * NULL or "" is ignored; a path that does not exist when the policy is
 * applied is skipped.  Errors: ERR_LIMIT.
 */
MUST_CHECK enum err confine_allow_read(struct confine_policy *p, const char *path);

/* Allow writing as above (a directory: create and remove beneath it too). */
MUST_CHECK enum err confine_allow_write(struct confine_policy *p, const char *path);

/*
 * The Landlock ABI version the kernel offers: 0 when it has none (not
 * built, not enabled at boot, or refused).
 */
int confine_landlock_abi(void);

/*
 * Confine the calling thread and its future children to p, for good.
 * ret_what gets one line saying what was applied ("landlock ABI 7 (files,
 * TCP, abstract sockets), seccomp") or what was not and why.
 */
MUST_CHECK enum err confine_apply(const struct confine_policy *p, struct buf *ret_what,
	struct errinfo *reterr);

#endif
