/*
 * token_send.h - `oasmtp-token send ACCOUNT`: submit the message on stdin
 * over the account's HTTPS API and answer with a result record on stdout
 * (the exchange is described in src/api_send.h).  oasmtp runs it for
 * accounts with transport graph, gmail-api, or auto after a fall-back;
 * it is not meant to be run by hand.
 *
 * It prints nothing but the record on stdout and, with the request's
 * verbose level above 0, a redacted HTTP transcript on stderr.
 */
#ifndef OASMTP_TOKEN_SEND_H
#define OASMTP_TOKEN_SEND_H

#include "err.h"

struct account;
struct buf;

/* Send, write the outcome; the exit status (0 once a record was written). */
int token_send(const struct account *acc);

/* Write a result record for an error that came before the send. */
int token_send_failed(enum err e, const struct errinfo *ei);

/*
 * An access token for acc valid for kind's API (the scope from
 * api_scope()).  Until the token cache is keyed by grant and scope, this
 * asks the broker for the account with its scope replaced, so the
 * account's one cache and lock are shared with SMTP (no two refreshes of
 * the grant at once; a token of the other scope is a cache miss).
 * flags: token_get() flags.  Errors of token_get().
 */
enum err token_send_api_token(const struct account *acc, int kind,
	unsigned flags, struct buf *ret_token, struct errinfo *reterr);

#endif
