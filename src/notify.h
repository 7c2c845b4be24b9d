/*
 * notify.h - tell a human that an account needs re-authorization.
 *
 * Unattended callers (cron, daemons) only see an exit status, so when the
 * grant of an OAuth2 account is gone (ERR_REAUTH) oasmtp also:
 *   - logs one line to syslog (LOG_MAIL | LOG_WARNING), and
 *   - runs the account's notify_command, if any, through /bin/sh with
 *     OASMTP_ACCOUNT (the account name) and OASMTP_REASON (the error
 *     message on one line, never a secret) in its environment, stdin from
 *     /dev/null, killed after the account timeout.
 * A direct send does this when its grant is found gone; a queue flush
 * (queue_run.c) once per account and run, however many messages wait.
 * Neither may change the outcome of the send: failures are reported
 * through the returned code only, for the caller to show as a warning.
 */
#ifndef OASMTP_NOTIFY_H
#define OASMTP_NOTIFY_H

#include "err.h"

struct account;

/*
 * Do both of the above for acc with reason (line breaks in it become
 * " / ").  Errors:
 * ERR_TIMEOUT / ERR_CONFIG / ERR_IO from running notify_command (see
 * eval_run), with the detail in reterr.
 */
MUST_CHECK enum err notify_reauth(const struct account *acc, const char *reason,
	struct errinfo *reterr);

#endif
