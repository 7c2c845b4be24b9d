/*
 * token.h - the token broker: a valid OAuth2 access token for an account.
 *
 * Policy (doc/design.md, Tokens):
 *  - The grant (token endpoint, client id, user, store) is the unit, not
 *    the account name: accounts inheriting one grant and every context of
 *    the user share its lock and caches (paths in token_cache.h).
 *  - An access-token cache file per grant and scope (0600, in the grant
 *    directory $XDG_STATE_HOME/oasmtp, default ~/.local/state/oasmtp;
 *    oauth2_token_cache PATH moves the account's own scope's cache,
 *    "off" disables caching) holds the token and its expiry
 *    (token_cache.h; that part is linked into the main binary).  A cached
 *    token valid for longer than oauth2_refresh_margin (capped at half the
 *    token's lifetime) is returned without any network, token store,
 *    libcurl or libsecret access.
 *  - Otherwise the grant's lock file (<grant dir>/<grant id>.lock, flock)
 *    serialises read -> decide -> refresh -> write across processes and
 *    threads.  After taking the lock the cache is read again and a token
 *    another process wrote meanwhile is adopted; the refresh token is read
 *    from the store only under the lock.  The wait is bounded.
 *  - A rotated refresh token is saved (atomically) before the new access
 *    token is cached or returned.
 *  - invalid_grant: the store is read again once; if it now holds a
 *    different refresh token (rotated by another program) the refresh is
 *    retried once with it, otherwise ERR_REAUTH.
 *  - Provider presets (google, microsoft) fill the token endpoint and scope
 *    when the account does not set them.
 *
 * Errors of token_get() and token_prefetch_join():
 *   ERR_TOKEN_TEMP  endpoint down / 5xx / 429 / timeout, keyring locked,
 *                   lock wait timed out, rotated token could not be saved
 *   ERR_REAUTH      grant gone or never stored (message names
 *                   `oasmtp-token authorize ACCOUNT`)
 *   ERR_CONFIG      missing/invalid oauth2_* keys, unsafe token file mode,
 *                   invalid_client/invalid_scope (message names the key)
 *   ERR_IO, ERR_NOMEM, ERR_INTERNAL
 *
 * Thread safety: token_get() may run in several threads at once, for the
 * same or different accounts (curl is initialised once under pthread_once;
 * the cross-process lock also excludes threads).  The account must not be
 * modified while a call or a prefetch runs.  Nothing here prints.
 */
#ifndef OASMTP_TOKEN_H
#define OASMTP_TOKEN_H

#include <time.h>

#include "err.h"
#include "token_cache.h"

struct account;
struct buf;

/* Ignore a still-valid cached token (the server rejected it). */
#define TOKEN_FORCE_REFRESH 0x1u

/* Optional details of a token_get_ex() call. */
struct token_info {
	time_t expires_at;	/* wall-clock expiry of the returned token */
	int refreshed;		/* 1 if this call talked to the endpoint */
	int adopted;		/* 1 if another process refreshed for us */
	int rotated;		/* 1 if a new refresh token was saved */
	char warning[512];	/* non-fatal problem to show the user, or "" */
};

/*
 * acc's OAuth2 client secret into ret_secret (a secret buffer, reset
 * first): oauth2_client_secret, else the output of
 * oauth2_client_secret_eval, else nothing (a public client).
 * Errors: ERR_CONFIG (too long; the command failed or is not found),
 * ERR_TOKEN_TEMP (the command timed out), ERR_NOMEM.
 */
MUST_CHECK enum err token_client_secret(const struct account *acc,
	struct buf *ret_secret, struct errinfo *reterr);

/*
 * Put a valid access token for acc into ret_token (a caller-initialised
 * secret buf; reset first, untouched on failure).  flags: 0 or
 * TOKEN_FORCE_REFRESH.  A TOKEN_FORCE_REFRESH call still adopts a token
 * that another process refreshed while this one waited for the lock.
 */
MUST_CHECK enum err token_get(const struct account *acc, unsigned flags,
	struct buf *ret_token, struct errinfo *reterr);

/* Same, and fill *ret_info (may be NULL) on success. */
MUST_CHECK enum err token_get_ex(const struct account *acc, unsigned flags,
	struct buf *ret_token, struct token_info *ret_info,
	struct errinfo *reterr);

/*
 * An access token of acc's grant for another scope or audience, e.g. the
 * Microsoft Graph or Gmail API through the grant made for SMTP: the refresh
 * request asks for scope (space-separated, as the provider spells it), and
 * the token is cached apart from the other scopes' (one cache file per
 * grant and scope, token_cache.h), under the same grant lock.  scope NULL
 * is the account's own scope: token_get_ex().  The provider must have
 * granted the scope at authorization (else ERR_CONFIG, invalid_scope).
 */
MUST_CHECK enum err token_get_scope(const struct account *acc, const char *scope,
	unsigned flags, struct buf *ret_token, struct token_info *ret_info,
	struct errinfo *reterr);

/*
 * `oasmtp-token import`: store the refresh token rt for acc's grant, under
 * the grant's lock.  With verify, rt is first used for one refresh: if the
 * token endpoint refuses it (or cannot be reached) nothing is stored and
 * the error is returned (ERR_REAUTH, ERR_TOKEN_TEMP, ERR_CONFIG ...); if
 * it rotates it, the new refresh token is what is stored, and the access
 * token is cached.  Without verify rt is stored as it is and the cached
 * access token dropped.  A read-only store is ERR_CONFIG.  *ret_info (may
 * be NULL): refreshed, rotated, expires_at.
 */
MUST_CHECK enum err token_import(const struct account *acc, const char *rt,
	int verify, struct token_info *ret_info, struct errinfo *reterr);

/*
 * Prefetch: start getting a token in a background thread so a refresh
 * overlaps the SMTP connect.  A fresh cached token is picked up at once,
 * without a thread.  acc is borrowed until token_prefetch_join().
 * *ret_pf is set on success; ERR_NOMEM / ERR_INTERNAL (thread creation).
 */
struct token_prefetch;
MUST_CHECK enum err token_prefetch_start(const struct account *acc, unsigned flags,
	struct token_prefetch **ret_pf, struct errinfo *reterr);

/*
 * Wait for the prefetch, hand over its result exactly as token_get() would
 * have, and free pf.  Must be called once for every successful start.
 */
MUST_CHECK enum err token_prefetch_join(struct token_prefetch *pf, struct buf *ret_token,
	struct errinfo *reterr);

#endif
