/* notify.c - re-authorization notices; see notify.h. */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "util.h"

#define REASON_MAX 4096

/* Wait for pid until deadline; kill its process group past it. */
static MUST_CHECK enum err
wait_child(pid_t pid, int64_t deadline, int *ret_status)
{
	for (;;) {
		pid_t r = waitpid(pid, ret_status, WNOHANG);

		if (r == pid) {
			return ERR_OK;
		}
		if (r < 0 && errno != EINTR) {
			return ERR_IO;
		}
		if (util_now_ms() >= deadline) {
			kill(-pid, SIGKILL);
			waitpid(pid, ret_status, 0);
			return ERR_TIMEOUT;
		}
		poll(NULL, 0, 50);
	}
}

static MUST_CHECK enum err
run_command(const struct account *acc, const char *reason,
	struct errinfo *reterr)
{
	int timeout = acc->timeout > 0 ? acc->timeout : 60;
	int status = 0;
	enum err e;
	pid_t pid;

	pid = fork();
	if (pid < 0) {
		return errinfo_set(reterr, ERR_IO, "notify_command: cannot fork: "
			"%s", strerror(errno));
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		setpgid(0, 0);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
		}
		if (setenv("OASMTP_ACCOUNT", acc->name, 1) != 0 ||
		    setenv("OASMTP_REASON", reason, 1) != 0) {
			_exit(127);
		}
		execl("/bin/sh", "sh", "-c", acc->notify_command, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	e = wait_child(pid, util_now_ms() + (int64_t)timeout * 1000, &status);
	if (e == ERR_TIMEOUT) {
		return errinfo_set(reterr, ERR_TIMEOUT, "notify_command of "
			"account '%s' was killed after %d s", acc->name, timeout);
	}
	if (e != ERR_OK) {
		return errinfo_set(reterr, e, "notify_command of account '%s': "
			"%s", acc->name, strerror(errno));
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		return errinfo_set(reterr, ERR_CONFIG, "notify_command of account "
			"'%s' failed (status %d)", acc->name,
			WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	return ERR_OK;
}

/*
 * reason on one line (a hint may follow the error on a line of its own):
 * line breaks become " / ", as in the replies shown in error messages;
 * cut at REASON_MAX bytes.
 */
static void
one_line(const char *reason, struct buf *out)
{
	const char *p = reason;

	while (*p != '\0') {
		size_t n = strcspn(p, "\r\n");

		if (buf_append(out, p, n) != ERR_OK) {
			return;
		}
		p += n;
		while (*p == '\r' || *p == '\n') {
			p++;
		}
		if (*p != '\0' && buf_append_str(out, " / ") != ERR_OK) {
			return;
		}
	}
}

enum err
notify_reauth(const struct account *acc, const char *reason,
	struct errinfo *reterr)
{
	struct buf line;
	enum err e = ERR_OK;

	buf_init(&line, REASON_MAX);
	one_line(reason, &line);
	openlog("oasmtp", LOG_PID, LOG_MAIL);
	syslog(LOG_WARNING, "account %s needs re-authorization: %s", acc->name,
		buf_cstr(&line));
	closelog();
	if (acc->notify_command != NULL && acc->notify_command[0] != '\0') {
		e = run_command(acc, buf_cstr(&line), reterr);
	}
	buf_release(&line);
	return e;
}
