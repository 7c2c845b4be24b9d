/*
 * eval.c - run a configuration command through /bin/sh; see eval.h.
 *
 * The child gets its own process group so that a timeout also reaches
 * whatever the shell started (a token helper's own children, `sleep`...):
 * proc kills the group, not just the shell.
 */
#include "eval.h"

#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "proc.h"

/*
 * Run cmd and collect its stdout into out.  The child is always reaped
 * (its group killed first on timeout or error).  Errors: ERR_TIMEOUT,
 * ERR_CONFIG (output too long; failed), ERR_IO, ERR_NOMEM, each with its
 * message.
 */
static MUST_CHECK enum err
run_child(const char *cmd, int timeout_s, struct buf *out, int *ret_config,
	struct errinfo *reterr)
{
	const char *argv[] = { "sh", "-c", cmd, NULL };
	struct proc p;
	enum err e;

	memset(&p, 0, sizeof(p));
	p.argv = argv;
	p.file = "/bin/sh";
	p.name = "the command";		/* never the command: it may hold a secret */
	p.in = PROC_IN_NULL;
	p.out = PROC_OUT_CAPTURE;
	p.out_buf = out;
	p.err = PROC_OUT_INHERIT;
	p.new_group = 1;
	p.timeout_ms = timeout_s > 0 ? (int64_t)timeout_s * 1000 : 0;
	p.stop_on_overflow = 1;
	e = proc_run(&p, reterr);
	switch (e) {
	case ERR_TIMEOUT:
		return errinfo_set(reterr, ERR_TIMEOUT,
			"the command timed out after %d s and was killed",
			timeout_s);
	case ERR_LIMIT:
		*ret_config = 1;
		return errinfo_set(reterr, ERR_CONFIG,
			"the output of the command is longer than %zu bytes",
			out->max);
	case ERR_CONFIG:
		if (p.end == PROC_NOTFOUND || p.end == PROC_NOEXEC ||
		    (p.end == PROC_EXITED && p.code == 127)) {
			/* the shell could not run it (or itself) */
			*ret_config = 1;
			return errinfo_set(reterr, ERR_CONFIG,
				"the command failed with exit status 127 "
				"(command not found?)");
		}
		if (p.end == PROC_EXITED && p.code == 126) {
			/* the shell found it but could not execute it */
			*ret_config = 1;
			return errinfo_set(reterr, ERR_CONFIG,
				"the command failed with exit status 126 "
				"(not executable?)");
		}
		return e;	/* "the command failed with exit status N" ... */
	default:
		return e;
	}
}

enum err
eval_run(const char *cmd, int timeout_s, size_t max_out, struct buf *ret_line,
	struct errinfo *reterr)
{
	return eval_run_classed(cmd, timeout_s, max_out, ret_line, NULL,
		reterr);
}

enum err
eval_run_classed(const char *cmd, int timeout_s, size_t max_out,
	struct buf *ret_line, int *ret_config, struct errinfo *reterr)
{
	struct buf out;
	const char *nl;
	size_t len;
	int config = 0;
	enum err e;

	if (ret_config == NULL) {
		ret_config = &config;
	}
	*ret_config = 0;
	buf_init_secret(&out, max_out);
	e = run_child(cmd, timeout_s, &out, ret_config, reterr);
	if (e == ERR_OK && memchr(out.data, '\0', out.len) != NULL) {
		*ret_config = 1;
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
		*ret_config = 1;
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
