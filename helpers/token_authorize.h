/*
 * token_authorize.h - `oasmtp-token authorize` and the provider-side halves
 * of `forget` (revocation), kept apart from the dispatcher in oasmtp-token.c.
 *
 * These functions talk to the user: instructions and results on stdout,
 * nothing secret anywhere.  Errors are returned in reterr for the caller to
 * print (with explain_error() advice).
 */
#ifndef OASMTP_TOKEN_AUTHORIZE_H
#define OASMTP_TOKEN_AUTHORIZE_H

#include "err.h"
#include "oauth_flow.h"

struct account;

struct authorize_opts {
	enum oauth_flow_kind flow;	/* OAUTH_FLOW_AUTO: choose */
	int no_browser;			/* never run xdg-open */
	int port;			/* loopback port, 0: ephemeral */
	long timeout_s;			/* loopback / paste wait, 0: 300 */
	int any_identity;		/* store even when the ID token names
					   another address (shared mailboxes) */
};

/*
 * Run the interactive authorization for acc and store the refresh token in
 * its token store; the access-token cache is dropped and the grant's
 * sidecar (grant_state.h) records the time.  Errors: ERR_CONFIG (missing
 * client id or endpoints), ERR_AUTH (denied, identity mismatch, code
 * refused), ERR_TIMEOUT, ERR_TOKEN_TEMP, ERR_DATA (bad paste), ERR_NET,
 * ERR_IO and the token store's errors.
 */
MUST_CHECK enum err token_authorize(const struct account *acc,
	const struct authorize_opts *o, struct errinfo *reterr);

/*
 * Revoke refresh_token at acc's revocation endpoint (RFC 7009).  Returns
 * ERR_NOTSUPP when the provider has none; other errors as
 * oauth_flow_revoke().
 */
MUST_CHECK enum err token_revoke(const struct account *acc, const char *refresh_token,
	struct errinfo *reterr);

#endif
