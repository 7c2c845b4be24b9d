/*
 * sendmail.h - the top-level flows of the sendmail-compatible modes:
 * send a message, --pretend, --serverinfo.  main.c dispatches here and
 * turns the returned code into an exit status.
 *
 * These flows may write to stderr through log.h (warnings, the -v
 * transcript); the final error message is left in reterr for main.c.
 */
#ifndef OASMTP_SENDMAIL_H
#define OASMTP_SENDMAIL_H

#include "err.h"

struct buf;
struct cli_opts;

/*
 * Read the message from fd, load the configuration, pick the account,
 * rewrite the headers, submit, and write the log line when configured.
 * With `queue on-failure`, a temporary failure or ERR_REAUTH stores the
 * message instead, warns once on stderr and returns ERR_OK; with `queue
 * always` the message is stored and delivered by a detached process, and
 * ERR_OK returned at once.  Usage, data and configuration errors never
 * queue.  When a 452 split the recipients and the rest failed after a
 * part was delivered, only the rest is queued (ERR_OK, one warning naming
 * both sides); without the queue, or after a permanent failure, the error
 * stays and its message says who has the message and who has not.
 * Errors: every code of message_read/config_load/config_select/
 * message_prepare/submit_message.
 */
MUST_CHECK enum err sendmail_send(const struct cli_opts *o, int fd,
	struct errinfo *reterr);

/* --pretend: the effective account settings, secrets masked, into out. */
MUST_CHECK enum err sendmail_pretend(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr);

/* --serverinfo: connect, STARTTLS, EHLO, describe the server into out. */
MUST_CHECK enum err sendmail_serverinfo(const struct cli_opts *o, struct buf *out,
	struct errinfo *reterr);

#endif
