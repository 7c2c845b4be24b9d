/*
 * eval.c - run a configuration command through /bin/sh; see eval.h.
 *
 * The child gets its own process group so that a timeout also reaches
 * whatever the shell started (a token helper's own children, `sleep`...):
 * we kill the group, not just the shell.  Output is read with poll() so
 * the deadline holds even when the command never writes or never closes
 * its stdout.
 */
#include "eval.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"

/* Milliseconds left before the deadline; -1 = no deadline. */
static int
remaining_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0) {
		return -1;
	}
	left = deadline - util_now_ms();
	if (left < 0) {
		return 0;
	}
	if (left > 60000) {
		return 60000;
	}
	return (int)left;
}

static void
kill_and_reap(pid_t pid)
{
	int status;

	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
		continue;
	}
}

static pid_t
spawn(const char *cmd, int devnull, int out_fd)
{
	pid_t pid = fork();

	if (pid != 0) {
		return pid;
	}
	/* child: only async-signal-safe calls from here on */
	setpgid(0, 0);
	if (dup2(devnull, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0) {
		_exit(126);
	}
	signal(SIGPIPE, SIG_DFL);
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	_exit(127);
}

/*
 * Read the child's stdout into out until EOF.  Returns ERR_OK at EOF,
 * ERR_TIMEOUT at the deadline, ERR_LIMIT when out is full, ERR_IO on a
 * read error.
 */
static MUST_CHECK enum err
collect(int fd, int64_t deadline, struct buf *out)
{
	char chunk[4096];
	enum err e = ERR_OK;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int ms = remaining_ms(deadline);
		ssize_t n;
		int r;

		if (ms == 0) {
			e = ERR_TIMEOUT;
			break;
		}
		r = poll(&pfd, 1, ms);
		if (r < 0) {
			if (errno == EINTR) {
				continue;
			}
			e = ERR_IO;
			break;
		}
		if (r == 0) {
			continue;	/* the deadline is checked above */
		}
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				continue;
			}
			e = ERR_IO;
			break;
		}
		if (n == 0) {
			break;
		}
		e = buf_append(out, chunk, (size_t)n);
		if (e != ERR_OK) {
			break;
		}
	}
	util_wipe(chunk, sizeof(chunk));
	return e;
}

/* Wait for the child until the deadline; 0 with *status, or -1 on timeout. */
static int
reap(pid_t pid, int64_t deadline, int *status)
{
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		int ms;

		if (r == pid) {
			return 0;
		}
		if (r < 0 && errno != EINTR) {
			*status = 0;
			return 0;	/* ECHILD: status lost, treat as success */
		}
		ms = remaining_ms(deadline);
		if (ms == 0) {
			return -1;
		}
		poll(NULL, 0, ms < 0 || ms > 10 ? 10 : ms);
	}
}

/*
 * Run cmd, collect its stdout into out and its wait status into *ret_status.
 * The child is always reaped (killed first on timeout or error).  Errors are
 * ERR_TIMEOUT, ERR_CONFIG (output too long), ERR_IO, ERR_NOMEM, each with
 * its message.
 */
static MUST_CHECK enum err
run_child(const char *cmd, int timeout_s, struct buf *out, int *ret_status,
	struct errinfo *reterr)
{
	int64_t deadline = -1;
	int pfd[2] = { -1, -1 };
	int devnull, saved;
	pid_t pid;
	enum err e;

	if (timeout_s > 0) {
		deadline = util_now_ms() + (int64_t)timeout_s * 1000;
	}
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0) {
		return errinfo_set(reterr, ERR_IO, "cannot open /dev/null: %s",
			strerror(errno));
	}
	if (pipe(pfd) < 0) {
		saved = errno;
		close(devnull);
		return errinfo_set(reterr, ERR_IO,
			"cannot run the command: pipe: %s", strerror(saved));
	}
	fcntl(pfd[0], F_SETFD, FD_CLOEXEC);
	fcntl(pfd[1], F_SETFD, FD_CLOEXEC);
	pid = spawn(cmd, devnull, pfd[1]);
	saved = errno;		/* fork()'s, before close() can change it */
	close(devnull);
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		return errinfo_set(reterr, ERR_IO,
			"cannot run the command: fork: %s", strerror(saved));
	}
	/* also from the parent, so the group exists before any kill */
	setpgid(pid, pid);

	e = collect(pfd[0], deadline, out);
	close(pfd[0]);
	if (e == ERR_OK && reap(pid, deadline, ret_status) < 0) {
		e = ERR_TIMEOUT;
	}
	if (e != ERR_OK) {
		/* the shell and whatever it left behind must not survive */
		kill_and_reap(pid);
	}
	switch (e) {
	case ERR_OK:
		return ERR_OK;
	case ERR_TIMEOUT:
		return errinfo_set(reterr, ERR_TIMEOUT,
			"the command timed out after %d s and was killed",
			timeout_s);
	case ERR_LIMIT:
		return errinfo_set(reterr, ERR_CONFIG,
			"the output of the command is longer than %zu bytes",
			out->max);
	case ERR_NOMEM:
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	default:
		return errinfo_set(reterr, ERR_IO,
			"cannot read the output of the command");
	}
}

/* ERR_OK for a normal exit with status 0, else ERR_CONFIG saying why. */
static MUST_CHECK enum err
check_status(int status, struct errinfo *reterr)
{
	if (WIFSIGNALED(status)) {
		return errinfo_set(reterr, ERR_CONFIG,
			"the command was killed by signal %d",
			WTERMSIG(status));
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
		int code = WEXITSTATUS(status);

		return errinfo_set(reterr, ERR_CONFIG,
			"the command failed with exit status %d%s", code,
			code == 127 ? " (command not found?)" : "");
	}
	return ERR_OK;
}

enum err
eval_run(const char *cmd, int timeout_s, size_t max_out, struct buf *ret_line,
	struct errinfo *reterr)
{
	struct buf out;
	const char *nl;
	size_t len;
	int status = 0;
	enum err e;

	buf_init_secret(&out, max_out);
	e = run_child(cmd, timeout_s, &out, &status, reterr);
	if (e == ERR_OK) {
		e = check_status(status, reterr);
	}
	if (e == ERR_OK && memchr(out.data, '\0', out.len) != NULL) {
		e = errinfo_set(reterr, ERR_CONFIG,
			"the output of the command contains a NUL byte");
	}
	if (e != ERR_OK) {
		buf_release(&out);
		return e;
	}
	nl = memchr(out.data, '\n', out.len);
	len = nl != NULL ? (size_t)(nl - out.data) : out.len;
	if (len > 0 && out.data[len - 1] == '\r') {
		len--;
	}
	if (len == 0) {
		buf_release(&out);
		return errinfo_set(reterr, ERR_CONFIG,
			"the command printed nothing on its first line");
	}
	buf_reset(ret_line);
	e = buf_append(ret_line, out.data, len);
	buf_release(&out);
	if (e != ERR_OK) {
		return errinfo_set(reterr, e == ERR_NOMEM ? ERR_NOMEM : ERR_CONFIG,
			"the output of the command does not fit");
	}
	return ERR_OK;
}
