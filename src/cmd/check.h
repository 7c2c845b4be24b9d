/*
 * check.h - `oasmtp --check [ACCOUNT]`: try every step of a submission
 * except the message itself, and say which one fails and what to do.
 *
 * The steps, in order, one report line each ("ok", "FAIL" or "--" for a
 * step that does not apply or was not reached):
 *   config   load the configuration, select and validate the account
 *   token    obtain the secret AUTH will use: for OAuth2 accounts a fresh
 *            cached access token (with its expiry), else the token store's
 *            state from `oasmtp-token status` and a refresh through
 *            `oasmtp-token print`; passwordeval is run; a literal
 *            password is only noted
 *   connect  TCP connection, the server's greeting and EHLO
 *   tls      implicit TLS or STARTTLS, with certificate verification
 *   auth     AUTH with that secret, then QUIT: no MAIL command is sent
 * The first failing step ends the check; its line is followed by advice
 * (explain_error(), else a hint for that step) and the steps after it are
 * listed as not run.
 *
 * Ownership: the report goes to out (the caller's stream, flushed after
 * each line so a slow step shows where it waits); the -v transcript and
 * configuration warnings go to stderr through log.h.  Nothing else is
 * printed.  oasmtp-token runs as a child with the same -C file; secrets are
 * never printed (only their length and expiry).
 *
 * Errors: the first failing step's code (so the exit status is that of the
 * same failure in a real send: 78 configuration, 75 network, TLS or token
 * endpoint, 77 refused authentication or re-authorization needed, ...);
 * reterr then says which step failed, the detail is in the report.
 */
#ifndef OASMTP_CHECK_H
#define OASMTP_CHECK_H

#include <stdio.h>

#include "err.h"

struct cli_opts;

MUST_CHECK enum err check_run(const struct cli_opts *o, FILE *out,
	struct errinfo *reterr);

#endif
