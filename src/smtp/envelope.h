/*
 * envelope.h - what the SMTP transaction needs besides the message bytes.
 *
 * Built by message.c (message_prepare), consumed by submit.c/smtp.c and
 * stored by the queue.  All strings are heap-owned by the envelope and freed
 * by envelope_release() (in message.c).
 */
#ifndef OASMTP_ENVELOPE_H
#define OASMTP_ENVELOPE_H

#include <stddef.h>

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

#endif
