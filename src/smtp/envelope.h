/*
 * envelope.h - what the SMTP transaction needs besides the message bytes.
 *
 * Built by message.c (message_prepare), consumed by submit.c/smtp.c and
 * stored by the queue.  All strings are heap-owned by the envelope and freed
 * by envelope_release().
 *
 * Partial deliveries (a 452 split, then a failure) are described by one
 * flag per rcpts[i] ("delivered"; NULL: none set); the functions below take
 * the recipients whose flag is set (want = 1) or clear (want = 0).
 */
#ifndef OASMTP_ENVELOPE_H
#define OASMTP_ENVELOPE_H

#include <stddef.h>

#include "err.h"

struct buf;

/* envelope_rcpt_list() names at most this many recipients. */
#define ENVELOPE_LIST_MAX 10
/* Room for what envelope_rcpt_list() writes. */
#define ENVELOPE_LIST_TEXT_MAX 4096

struct envelope {
	char *from;		/* reverse-path without brackets; "" = null sender */
	char **rcpts;		/* forward-paths without brackets, de-duplicated */
	size_t n_rcpts;
	int body_8bit;		/* a byte >= 0x80 in the message: BODY=8BITMIME */
	int smtputf8;		/* an address is non-ASCII: SMTPUTF8 */
	char *dsn_notify;	/* NULL, or "NEVER" / "SUCCESS,FAILURE,DELAY" */
	char *dsn_return;	/* NULL, "HDRS" or "FULL" */
	char *dsn_envid;	/* NULL or xtext-ready ENVID */
};

void envelope_release(struct envelope *env);

/* How many recipients have delivered[i] == want. */
size_t envelope_rcpt_count(const struct envelope *env,
	const unsigned char *delivered, int want);

/*
 * "<a@x>, <b@y>" for those recipients, appended to out; after
 * ENVELOPE_LIST_MAX of them "and N more".  Errors: those of buf_printf().
 */
MUST_CHECK enum err envelope_rcpt_list(const struct envelope *env,
	const unsigned char *delivered, int want, struct buf *out);

/*
 * A shallow copy of env with only those recipients: the strings stay env's
 * and only ret->rcpts is allocated (free() it, never envelope_release()).
 * Errors: ERR_NOMEM.
 */
MUST_CHECK enum err envelope_part(const struct envelope *env,
	const unsigned char *delivered, int want, struct envelope *ret,
	struct errinfo *reterr);

#endif
