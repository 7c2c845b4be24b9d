/*
 * ttypass.h - asking for a password on the controlling terminal, as msmtp
 * does when no other source has one: only through /dev/tty (never
 * standard input, which holds the mail), with echo off, and never without
 * a terminal (cron, services, a detached session: the caller reports its
 * usual error instead).
 *
 * The prompt and the line break after the answer are written to the
 * terminal itself; nothing goes to standard output or standard error.
 */
#ifndef OASMTP_TTYPASS_H
#define OASMTP_TTYPASS_H

#include "buf.h"
#include "err.h"

/*
 * Write prompt to /dev/tty, read one line with echo off (restored before
 * returning, also when the read fails or is interrupted by a signal that
 * does not end the process) and append it, without its newline, to
 * ret_secret (a secret buf).  *ret_asked is 0 when there is no terminal to
 * ask on (nothing was done, ERR_OK).  timeout_s bounds the wait for the
 * answer (0: 300 s).
 * Signals: while the prompt is up, SIGINT, SIGTERM, SIGHUP and SIGQUIT
 * first restore echo, then act as they would have (the previous handlers
 * are put back and the signal raised again; when that returns, ERR_IO);
 * SIGTSTP (^Z) restores echo, stops the process, and asks again once it
 * is continued.  The previous handlers are back when this returns.
 * Errors: ERR_TIMEOUT (no answer in time), ERR_IO (the terminal failed,
 * or end of input before a newline: nothing was typed), ERR_LIMIT (longer
 * than ret_secret's bound), ERR_NOMEM.
 */
MUST_CHECK enum err ttypass_ask(const char *prompt, int timeout_s,
	struct buf *ret_secret, int *ret_asked, struct errinfo *reterr);

#endif
