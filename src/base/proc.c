/*
 * proc.c - child processes; see proc.h.
 *
 * The child side runs only async-signal-safe calls between fork() and
 * exec (the environment array is built before the fork).  The parent
 * polls all its pipe ends at once, so a child that writes a lot while we
 * feed it a lot never deadlocks against us, and the deadline holds when
 * the child never writes or never closes its output.
 */
#define _GNU_SOURCE		/* pipe2 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

#define CHUNK 4096

static void
close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static const char *
name_of(const struct proc *p)
{
	if (p->name != NULL) {
		return p->name;
	}
	return p->argv != NULL && p->argv[0] != NULL ? p->argv[0] : "child";
}

/* Milliseconds left before deadline (-1: none), capped at max. */
static int
left_ms(int64_t deadline, int max)
{
	int64_t left;

	if (deadline < 0) {
		return max;
	}
	left = deadline - util_now_ms();
	if (left <= 0) {
		return 0;
	}
	return left > max ? max : (int)left;
}

static void
nap_ms(int ms)
{
	struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };

	(void)nanosleep(&t, NULL);
}

/* ---- starting ---- */

/* Length of the NAME= part of "NAME=VALUE" (whole string without '='). */
static size_t
name_len(const char *kv)
{
	const char *eq = strchr(kv, '=');

	return eq != NULL ? (size_t)(eq - kv) + 1 : strlen(kv);
}

/*
 * environ with p->env set (replacing same-named entries); NULL when there
 * is nothing to add (*ret stays NULL) or on ENOMEM (returns -1).
 */
static int
build_env(const struct proc *p, char ***ret)
{
	size_t n = 0, k = 0, i, j, m = 0;
	char **v;

	*ret = NULL;
	if (p->env == NULL || p->env[0] == NULL) {
		return 0;
	}
	while (environ != NULL && environ[n] != NULL) {
		n++;
	}
	while (p->env[k] != NULL) {
		k++;
	}
	v = calloc(n + k + 1, sizeof(*v));
	if (v == NULL) {
		return -1;
	}
	for (i = 0; i < n; i++) {
		int replaced = 0;

		for (j = 0; j < k && !replaced; j++) {
			size_t l = name_len(p->env[j]);

			replaced = strncmp(environ[i], p->env[j], l) == 0;
		}
		if (!replaced) {
			v[m++] = environ[i];
		}
	}
	for (j = 0; j < k; j++) {
		v[m++] = (char *)p->env[j];
	}
	v[m] = NULL;
	*ret = v;
	return 0;
}

/*
 * Child: put fd on target (0, 1 or 2); fd < 0 leaves target alone.  The
 * duplicate is inheritable; fd itself is close-on-exec or one of ours.
 */
static int
move_fd(int fd, int target)
{
	if (fd < 0) {
		return 0;
	}
	if (fd == target) {
		return fcntl(fd, F_SETFD, 0);
	}
	return dup2(fd, target) < 0 ? -1 : 0;
}

static void __attribute__((noreturn))
child(const struct proc *p, int fds[3], int report, char **envp)
{
	const char *file;
	int code, i;

	if (p->new_group) {
		(void)setpgid(0, 0);
	}
	(void)signal(SIGPIPE, SIG_DFL);
	/* a source among 0..2 that is not its own target moves up first */
	for (i = 0; i < 3; i++) {
		if (fds[i] >= 0 && fds[i] <= 2 && fds[i] != i) {
			fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
			if (fds[i] < 0) {
				goto fail;
			}
		}
	}
	if (move_fd(fds[0], 0) < 0 || move_fd(fds[1], 1) < 0 ||
	    move_fd(fds[2], 2) < 0) {
		goto fail;
	}
	if (p->fn != NULL) {
		close(report);		/* nothing will be executed */
		p->fn(p->fn_ctx);
		fflush(NULL);
		_exit(0);
	}
	if (envp != NULL) {
		environ = envp;
	}
	file = p->file != NULL ? p->file : p->argv[0];
	if (p->search_path) {
		execvp(file, (char *const *)p->argv);
	} else {
		execv(file, (char *const *)p->argv);
	}
fail:
	code = errno;
	if (write(report, &code, sizeof(code)) < 0) {
		_exit(127);
	}
	_exit(127);
}

/* A pipe with both ends close-on-exec; ours non-blocking. */
static int
make_pipe(int fds[2], int ours)
{
	if (pipe2(fds, O_CLOEXEC) != 0) {
		return -1;
	}
	return fcntl(fds[ours], F_SETFL, O_NONBLOCK);
}

static void
reap(struct proc *p)
{
	int status = 0;

	while (waitpid(p->pid, &status, 0) < 0) {
		if (errno != EINTR) {
			status = 0;	/* ECHILD: lost, taken as success */
			break;
		}
	}
	if (WIFSIGNALED(status)) {
		p->end = PROC_SIGNALED;
		p->code = WTERMSIG(status);
	} else {
		p->end = PROC_EXITED;
		p->code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
	}
	p->pid = -1;
}

enum err
proc_start(struct proc *p, struct errinfo *reterr)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	int report[2] = { -1, -1 };
	int null = -1, cfd[3] = { -1, -1, -1 };
	char **envp = NULL;
	int code = 0, saved;
	ssize_t n;
	pid_t pid;

	p->pid = -1;
	p->end = PROC_RUNNING;
	p->code = 0;
	p->overflow = 0;
	p->fd_in = p->fd_out = p->fd_err = -1;
	if (p->fn == NULL && build_env(p, &envp) < 0) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	if (p->in == PROC_IN_NULL || p->out == PROC_OUT_NULL ||
	    p->err == PROC_OUT_NULL) {
		null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null < 0) {
			saved = errno;
			free(envp);
			(void)errinfo_set(reterr, ERR_IO, "cannot open /dev/null: "
				"%s", strerror(saved));
			errno = saved;
			return ERR_IO;
		}
	}
	if ((p->in == PROC_IN_BUF && make_pipe(in, 1) != 0) ||
	    (p->out == PROC_OUT_CAPTURE && make_pipe(out, 0) != 0) ||
	    (p->err == PROC_OUT_CAPTURE && make_pipe(err, 0) != 0) ||
	    pipe2(report, O_CLOEXEC) != 0) {
		saved = errno;
		pid = -2;
		goto fail;
	}
	cfd[0] = p->in == PROC_IN_NULL ? null : p->in == PROC_IN_BUF ? in[0] :
		p->in == PROC_IN_FD ? p->in_fd : -1;
	cfd[1] = p->out == PROC_OUT_NULL ? null :
		p->out == PROC_OUT_CAPTURE ? out[1] : -1;
	cfd[2] = p->err == PROC_OUT_NULL ? null :
		p->err == PROC_OUT_CAPTURE ? err[1] :
		p->err == PROC_OUT_TO_STDOUT ? (cfd[1] >= 0 ? cfd[1] : 1) : -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		child(p, cfd, report[1], envp);
	}
	saved = errno;
	if (pid < 0) {
		goto fail;
	}
	if (p->new_group) {
		/* also from here, so the group exists before any kill */
		(void)setpgid(pid, pid);
	}
	p->pid = pid;
	close_fd(&report[1]);
	do {
		n = read(report[0], &code, sizeof(code));
	} while (n < 0 && errno == EINTR);
	close_fd(&report[0]);
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	close_fd(&null);
	free(envp);
	if (n == (ssize_t)sizeof(code)) {
		/* not executed: the child has exited already */
		reap(p);
		p->end = code == ENOENT || code == ENOTDIR ? PROC_NOTFOUND :
			PROC_NOEXEC;
		p->code = code;
		close_fd(&in[1]);
		close_fd(&out[0]);
		close_fd(&err[0]);
		return ERR_OK;
	}
	p->fd_in = in[1];
	p->fd_out = out[0];
	p->fd_err = err[0];
	if (p->in == PROC_IN_BUF && p->in_len == 0) {
		close_fd(&p->fd_in);
	}
	return ERR_OK;
fail:
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&err[0]);
	close_fd(&err[1]);
	close_fd(&report[0]);
	close_fd(&report[1]);
	close_fd(&null);
	free(envp);
	(void)errinfo_set(reterr, ERR_IO, "cannot run %s: %s: %s", name_of(p),
		pid == -2 ? "pipe" : "fork", strerror(saved));
	errno = saved;
	return ERR_IO;
}

/* ---- finishing ---- */

/* 1 when the child has exited (left as a zombie, not reaped). */
static int
has_exited(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
		return errno != EINTR;
	}
	return si.si_pid == pid;
}

void
proc_kill(struct proc *p)
{
	pid_t target;
	int64_t until;

	close_fd(&p->fd_in);
	close_fd(&p->fd_out);
	close_fd(&p->fd_err);
	if (p->pid <= 0) {
		return;
	}
	target = p->new_group ? -p->pid : p->pid;
	(void)kill(target, SIGTERM);
	until = util_now_ms() + PROC_KILL_GRACE_MS;
	while (!has_exited(p->pid) && util_now_ms() < until) {
		nap_ms(10);
	}
	/* the leader is at worst a zombie: its group id is not reused yet */
	(void)kill(target, SIGKILL);
	reap(p);
}

/* Append what fits of data to b; 1 when some was dropped. */
static MUST_CHECK enum err
capture(struct proc *p, struct buf *b, const char *data, size_t n)
{
	size_t room = b->max - b->len;
	enum err e;

	if (n > room) {
		p->overflow = 1;
		n = room;
	}
	e = n > 0 ? buf_append(b, data, n) : ERR_OK;
	if (e == ERR_OK && p->overflow && p->stop_on_overflow) {
		e = ERR_LIMIT;
	}
	return e;
}

/* Read once from *fd into b; closes *fd at end of file or error. */
static MUST_CHECK enum err
drain(struct proc *p, int *fd, struct buf *b, char *chunk)
{
	ssize_t r = read(*fd, chunk, CHUNK);

	if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
		return ERR_OK;
	}
	if (r <= 0) {
		close_fd(fd);
		return ERR_OK;
	}
	return capture(p, b, chunk, (size_t)r);
}

/* Write the next part of stdin; closes fd_in when done or refused. */
static void
feed(struct proc *p, size_t *done)
{
	const char *d = p->in_data;
	ssize_t w = write(p->fd_in, d + *done, p->in_len - *done);

	if (w < 0) {
		if (errno != EINTR && errno != EAGAIN) {
			close_fd(&p->fd_in);	/* EPIPE: it does not want more */
		}
		return;
	}
	*done += (size_t)w;
	if (*done >= p->in_len) {
		close_fd(&p->fd_in);
	}
}

/*
 * Move data until every pipe is closed.  ERR_OK, ERR_TIMEOUT (deadline),
 * ERR_LIMIT, ERR_NOMEM, ERR_IO.
 */
static MUST_CHECK enum err
pump(struct proc *p, int64_t deadline)
{
	char chunk[CHUNK];
	size_t done = 0;
	enum err e = ERR_OK;

	while (e == ERR_OK && (p->fd_in >= 0 || p->fd_out >= 0 ||
	    p->fd_err >= 0)) {
		struct pollfd pfd[3];
		int n = 0, k, ms = left_ms(deadline, 1000);

		if (ms == 0) {
			e = ERR_TIMEOUT;
			break;
		}
		if (p->fd_in >= 0) {
			pfd[n].fd = p->fd_in;
			pfd[n++].events = POLLOUT;
		}
		if (p->fd_out >= 0) {
			pfd[n].fd = p->fd_out;
			pfd[n++].events = POLLIN;
		}
		if (p->fd_err >= 0) {
			pfd[n].fd = p->fd_err;
			pfd[n++].events = POLLIN;
		}
		k = poll(pfd, (nfds_t)n, ms);
		if (k < 0) {
			e = errno == EINTR ? ERR_OK : ERR_IO;
			continue;
		}
		for (k = 0; k < n && e == ERR_OK; k++) {
			int fd = pfd[k].fd;

			if (pfd[k].revents == 0) {
				continue;
			}
			if (fd == p->fd_in) {
				feed(p, &done);
			} else if (fd == p->fd_out) {
				e = drain(p, &p->fd_out, p->out_buf, chunk);
			} else if (fd == p->fd_err) {
				e = drain(p, &p->fd_err, p->err_buf, chunk);
			}
		}
	}
	util_wipe(chunk, sizeof(chunk));
	return e;
}

/* Wait for the child until deadline; ERR_TIMEOUT past it. */
static MUST_CHECK enum err
wait_until(struct proc *p, int64_t deadline)
{
	while (!has_exited(p->pid)) {
		int ms = left_ms(deadline, 10);

		if (ms == 0) {
			return ERR_TIMEOUT;
		}
		nap_ms(ms);
	}
	reap(p);
	return ERR_OK;
}

/*
 * SIGPIPE is blocked while we write to the child, and one raised by our
 * writes is taken off the pending set before it is unblocked.
 */
static void
pipe_guard(int on, sigset_t *old, int *was_pending)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGPIPE);
	if (on) {
		sigset_t pending;

		(void)sigprocmask(SIG_BLOCK, &s, old);
		*was_pending = sigpending(&pending) == 0 &&
			sigismember(&pending, SIGPIPE);
		return;
	}
	if (!*was_pending) {
		struct timespec zero = { 0, 0 };
		sigset_t pending;

		while (sigpending(&pending) == 0 &&
		    sigismember(&pending, SIGPIPE) &&
		    sigtimedwait(&s, NULL, &zero) < 0 && errno == EINTR) {
		}
	}
	(void)sigprocmask(SIG_SETMASK, old, NULL);
}

static MUST_CHECK enum err
outcome(const struct proc *p, enum err e, int64_t timeout_ms,
	struct errinfo *reterr)
{
	const char *name = name_of(p);

	switch (e) {
	case ERR_OK:
		break;
	case ERR_TIMEOUT:
		return errinfo_set(reterr, ERR_TIMEOUT, "%s did not finish "
			"within %lld ms%s", name, (long long)timeout_ms,
			p->end == PROC_RUNNING ? "" : " and was killed");
	case ERR_LIMIT:
		return errinfo_set(reterr, ERR_LIMIT, "the output of %s is "
			"too long", name);
	case ERR_NOMEM:
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	default:
		return errinfo_set(reterr, ERR_IO, "cannot read the output of "
			"%s", name);
	}
	switch (p->end) {
	case PROC_NOTFOUND:
		return errinfo_set(reterr, ERR_CONFIG, "%s: not found", name);
	case PROC_NOEXEC:
		return errinfo_set(reterr, ERR_CONFIG, "cannot execute %s: %s",
			name, strerror(p->code));
	case PROC_SIGNALED:
		return errinfo_set(reterr, ERR_CONFIG, "%s was killed by signal "
			"%d", name, p->code);
	case PROC_EXITED:
		if (p->code != 0) {
			return errinfo_set(reterr, ERR_CONFIG, "%s failed with "
				"exit status %d", name, p->code);
		}
		return ERR_OK;
	default:
		return errinfo_set(reterr, ERR_INTERNAL, "%s: lost", name);
	}
}

enum err
proc_finish(struct proc *p, struct errinfo *reterr)
{
	int64_t deadline = p->timeout_ms > 0 ?
		util_now_ms() + p->timeout_ms : -1;
	sigset_t old;
	int was_pending = 0;
	enum err e = ERR_OK;

	if (p->pid > 0) {
		pipe_guard(1, &old, &was_pending);
		e = pump(p, deadline);
		pipe_guard(0, &old, &was_pending);
		if (e == ERR_OK) {
			e = wait_until(p, deadline);
		}
		if (e == ERR_TIMEOUT && p->keep_on_timeout) {
			close_fd(&p->fd_in);
			close_fd(&p->fd_out);
			close_fd(&p->fd_err);
		} else if (e != ERR_OK) {
			proc_kill(p);
			if (e == ERR_TIMEOUT) {
				p->end = PROC_TIMEOUT;
			}
		}
	}
	e = outcome(p, e, p->timeout_ms, reterr);
	if (e != ERR_OK && p->out_buf != NULL && p->out_buf->secret) {
		buf_reset(p->out_buf);
	}
	return e;
}

enum err
proc_run(struct proc *p, struct errinfo *reterr)
{
	enum err e = proc_start(p, reterr);

	return e != ERR_OK ? e : proc_finish(p, reterr);
}

int
proc_poll(struct proc *p)
{
	if (p->pid <= 0) {
		return 1;
	}
	if (!has_exited(p->pid)) {
		return 0;
	}
	reap(p);
	return 1;
}

int
proc_detach(void)
{
	pid_t pid;
	int fd;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		return -1;
	}
	if (pid > 0) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
		}
		return 1;
	}
	(void)setsid();
	pid = fork();
	if (pid != 0) {
		_exit(0);
	}
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		(void)dup2(fd, STDIN_FILENO);
		(void)dup2(fd, STDOUT_FILENO);
		(void)dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO) {
			close(fd);
		}
	}
	return 0;
}
