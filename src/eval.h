/*
 * eval.h - run a configuration command (`eval`, `passwordeval`,
 * `oauth2_client_secret_eval`) and take the first line of its output.
 *
 * This is the one place in oasmtp that uses a shell: msmtprc commands are
 * shell command lines, so they run as `/bin/sh -c CMD`.  Unlike msmtp, the
 * exit status is checked and the output is bounded.
 */
#ifndef OASMTP_EVAL_H
#define OASMTP_EVAL_H

#include <stddef.h>

#include "err.h"

struct buf;

/*
 * Run `/bin/sh -c cmd` with stdin from /dev/null, stdout captured and
 * stderr inherited, in its own process group.  When the command succeeds,
 * ret_line is reset and receives the first output line without its
 * trailing LF / CRLF (pass a secret buffer for passwords); ret_line must
 * be able to hold max_out bytes.
 *
 * timeout_s <= 0 means no deadline.  On timeout the whole process group
 * is killed (SIGTERM, then SIGKILL) and reaped before returning.
 *
 * Errors (reterr quotes neither the command, which may hold a secret as in
 * `passwordeval "echo PASSWORD"`, nor its output; the caller says which
 * key it was):
 *   ERR_TIMEOUT  the command did not finish within timeout_s seconds
 *   ERR_CONFIG   non-zero exit status or death by a signal, empty first
 *                line, more than max_out bytes of output, a NUL byte in
 *                the output
 *   ERR_IO       pipe, fork or /dev/null could not be set up
 *   ERR_NOMEM    ret_line could not grow
 *
 * The caller must not have SIGCHLD set to SIG_IGN (the status would be
 * lost).  Not thread-safe with respect to other fork() users.
 *
 * *ret_config (optional) is set to 1 when the failure is one of the
 * configuration: the command could not be run (not found, not executable:
 * the shell's 127 and 126 too), or its output is unusable (empty, over
 * max_out, a NUL byte); 0 for a command that ran and failed or timed out.
 */
MUST_CHECK enum err eval_run_classed(const char *cmd, int timeout_s,
	size_t max_out, struct buf *ret_line, int *ret_config,
	struct errinfo *reterr);
MUST_CHECK enum err eval_run(const char *cmd, int timeout_s, size_t max_out,
	struct buf *ret_line, struct errinfo *reterr);

#endif
