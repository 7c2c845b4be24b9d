/* notify.c - re-authorization notices; see notify.h. */
#include "notify.h"

#include <stdint.h>
#include <string.h>
#include <syslog.h>

#include "account.h"
#include "buf.h"
#include "proc.h"

/* room for a variable name and "=" in the child's environment */
#define ENV_NAME_ROOM 64

#define REASON_MAX 4096

static MUST_CHECK enum err
run_command(const struct account *acc, const char *reason,
	struct errinfo *reterr)
{
	const char *argv[] = { "sh", "-c", acc->notify_command, NULL };
	const char *env[3];
	int timeout = account_helper_timeout_s(acc);
	struct buf account, why;
	struct proc p;
	enum err e;

	buf_init(&account, ENV_NAME_ROOM + strlen(acc->name));
	buf_init(&why, ENV_NAME_ROOM + REASON_MAX);
	if (buf_printf(&account, "OASMTP_ACCOUNT=%s", acc->name) != ERR_OK ||
	    buf_printf(&why, "OASMTP_REASON=%s", reason) != ERR_OK) {
		buf_release(&account);
		buf_release(&why);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	env[0] = buf_cstr(&account);
	env[1] = buf_cstr(&why);
	env[2] = NULL;
	memset(&p, 0, sizeof(p));
	p.argv = argv;
	p.file = "/bin/sh";
	p.name = "notify_command";
	p.env = env;
	p.in = PROC_IN_NULL;
	p.out = PROC_OUT_NULL;
	p.err = PROC_OUT_INHERIT;
	p.new_group = 1;
	p.timeout_ms = (int64_t)timeout * 1000;
	e = proc_run(&p, reterr);
	buf_release(&account);
	buf_release(&why);
	if (e == ERR_TIMEOUT) {
		return errinfo_set(reterr, ERR_TIMEOUT, "notify_command of "
			"account '%s' was killed after %d s", acc->name, timeout);
	}
	if (e == ERR_CONFIG) {
		/* not run (no /bin/sh) counts as the shell's 127 */
		return errinfo_set(reterr, ERR_CONFIG, "notify_command of account "
			"'%s' failed (status %d)", acc->name,
			p.end == PROC_EXITED ? p.code :
			p.end == PROC_SIGNALED ? -1 : 127);
	}
	return e;
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
