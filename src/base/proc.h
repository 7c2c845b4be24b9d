/*
 * proc.h - child processes: the one place that forks, and execs a program
 * or runs a function of ours in the child (proc.fn).
 *
 * Modelled on git's run-command.h: the caller fills a struct proc (argv,
 * optional environment additions, where stdin comes from, where stdout and
 * stderr go, process group, deadline), then either proc_run() or
 * proc_start() ... proc_finish() (so that a child can work while the caller
 * does something else).  libc only; it never prints.
 *
 * Guarantees:
 *   - no shell: argv is executed as given (a caller that wants a shell
 *     passes "/bin/sh", "-c", CMD itself);
 *   - every descriptor proc makes is close-on-exec, so a child only
 *     inherits its three standard streams from us (and whatever the caller
 *     left inheritable);
 *   - a child that cannot be executed is told apart from one that ran and
 *     failed: the exec's errno comes back on a close-on-exec pipe;
 *   - EINTR is retried everywhere; writing to a child that closed its stdin
 *     never raises SIGPIPE in the caller; the child gets SIGPIPE back to
 *     its default action;
 *   - captures are bounded by the caller's buffers; a secret buffer gets
 *     its contents wiped when proc_finish fails, and the read chunks are
 *     wiped always;
 *   - at the deadline the child (its whole process group with new_group)
 *     gets SIGTERM, then SIGKILL PROC_KILL_GRACE_MS later (at once when it
 *     is already gone), and is always reaped unless keep_on_timeout.
 *
 * The caller must not have SIGCHLD set to SIG_IGN (the status would be
 * lost: the child is then taken as having exited with 0).  Not thread-safe
 * with respect to other users of fork() and waitpid(-1).
 */
#ifndef OASMTP_PROC_H
#define OASMTP_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"

/* How long a child has between SIGTERM and SIGKILL. */
#define PROC_KILL_GRACE_MS 1000

enum proc_in {
	PROC_IN_NULL = 0,	/* /dev/null */
	PROC_IN_BUF,		/* in_data/in_len, then end of file */
	PROC_IN_FD,		/* in_fd, duplicated (it stays the caller's) */
	PROC_IN_INHERIT,	/* ours */
};

enum proc_out {
	PROC_OUT_NULL = 0,	/* /dev/null */
	PROC_OUT_INHERIT,	/* ours */
	PROC_OUT_CAPTURE,	/* into out_buf / err_buf */
	PROC_OUT_TO_STDOUT,	/* stderr only: wherever stdout goes */
};

enum proc_end {
	PROC_RUNNING = 0,	/* not finished (or left running at the deadline) */
	PROC_EXITED,		/* code: its exit status */
	PROC_SIGNALED,		/* code: the signal that ended it */
	PROC_TIMEOUT,		/* killed at the deadline */
	PROC_NOTFOUND,		/* not executed: no such file; code: errno */
	PROC_NOEXEC,		/* not executed otherwise (EACCES, ...); code: errno */
};

struct proc {
	/* set by the caller; zero means the default */
	const char *const *argv;	/* argv[0] names it in messages */
	void (*fn)(void *ctx);		/* instead of argv: see below */
	void *fn_ctx;
	const char *file;		/* the program; NULL: argv[0] */
	int search_path;		/* file without '/' is looked up in PATH */
	const char *const *env;		/* "NAME=VALUE" set in the child; NULL-ended */
	const char *name;		/* for messages; NULL: argv[0] */
	enum proc_in in;
	const void *in_data;		/* PROC_IN_BUF */
	size_t in_len;
	int in_fd;			/* PROC_IN_FD */
	enum proc_out out;
	struct buf *out_buf;		/* PROC_OUT_CAPTURE: the caller's, bounded */
	enum proc_out err;
	struct buf *err_buf;		/* PROC_OUT_CAPTURE */
	int new_group;			/* its own process group (killed as one) */
	int64_t timeout_ms;		/* from proc_finish(); <= 0: none */
	int keep_on_timeout;		/* at the deadline leave it running */
	int stop_on_overflow;		/* a full capture ends it (else: dropped) */

	/* set by proc */
	pid_t pid;			/* while running, else -1 */
	enum proc_end end;
	int code;			/* see enum proc_end */
	int overflow;			/* a capture reached its bound */
	int fd_in, fd_out, fd_err;	/* our ends of the pipes, or -1 */
};

/*
 * A function in a child (p->fn set, argv unused, name it with p->name):
 * a fork without exec that runs our own code, for a process that must
 * differ from its parent in what it may do (the confinement broker, a
 * confined sending process: src/cmd/sandbox.h).  The child gets the same
 * set-up as a program (stdin, stdout, stderr, process group, SIGPIPE
 * default; env is ignored), runs fn(fn_ctx), flushes stdio and ends with
 * _exit(0): no atexit handler runs twice.  Nothing is closed for it:
 * descriptors that a program would lose at exec stay open, so fn closes
 * the ones it must not hold (the caller's end of a socket pair).  The
 * parent waits for it with proc_finish() (deadline, TERM then KILL) or
 * ends it with proc_kill() like any other child.
 */

/*
 * Start p.  On ERR_OK the child runs (p->pid), or it could not be executed
 * (p->end is PROC_NOTFOUND or PROC_NOEXEC, already reaped; proc_finish
 * reports it).  Errors (nothing is left running): ERR_IO (pipe, fork or
 * /dev/null failed; errno is left set), ERR_NOMEM.
 */
MUST_CHECK enum err proc_start(struct proc *p, struct errinfo *reterr);

/*
 * Feed stdin, collect the captures until the child closes them, and reap
 * it, all before the deadline (p->timeout_ms counted from now).  Returns
 * the outcome as an error, with a message naming p->name:
 *   ERR_OK       exited with status 0
 *   ERR_CONFIG   PROC_NOTFOUND ("NAME: not found"), PROC_NOEXEC ("cannot
 *                execute NAME: ..."), non-zero exit ("NAME failed with
 *                exit status N"), signal ("NAME was killed by signal N")
 *   ERR_TIMEOUT  killed at the deadline, or left running (PROC_RUNNING,
 *                p->pid still set) with keep_on_timeout
 *   ERR_LIMIT    a capture overflowed with stop_on_overflow (killed)
 *   ERR_IO       reading or polling failed (killed)
 *   ERR_NOMEM    a capture could not grow (killed)
 * Callers that word their own messages look at p->end and p->code.
 */
MUST_CHECK enum err proc_finish(struct proc *p, struct errinfo *reterr);

/* proc_start() then proc_finish(). */
MUST_CHECK enum err proc_run(struct proc *p, struct errinfo *reterr);

/*
 * Non-blocking: 1 when a started child has ended (reaped, p->end set), 0
 * while it runs.  For children nobody waits for (a browser).
 */
int proc_poll(struct proc *p);

/*
 * Kill p (its group with new_group: SIGTERM, then SIGKILL) and reap it;
 * closes our pipe ends.  Does nothing when it is not running.
 */
void proc_kill(struct proc *p);

/*
 * Detach: double fork; the grandchild runs in a new session with its
 * standard streams on /dev/null, orphaned so that nobody has to reap it.
 * Returns 0 in the detached process (which must end with _exit()), 1 in
 * the caller (the intermediate child is reaped), -1 when fork failed
 * (errno set; nothing was started).  stdio is flushed first.
 */
int proc_detach(void);

#endif
