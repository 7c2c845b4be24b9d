/*
 * token_cache.h - provider presets and the access-token cache: everything of
 * the token module that needs no network, no token store and no libcurl,
 * json-c or libsecret.  The main oasmtp binary links only this part; the
 * refresh itself (token.h) lives in oasmtp-token and the test programs.
 *
 * The grant is the unit (doc/design.md, Tokens): one refresh token, named
 * by its grant id, 32 hex digits of SHA-256 over the token endpoint, the
 * client id, the user and the store (oauth2_token_store; unset counts as
 * "secret-service").  Never by the account name or the environment: two
 * accounts that inherit one grant (`account default : gmail`), and a
 * desktop process, a cron job (even `env -i`), a systemd timer and `sudo -u`
 * of one user all find the same files, in the grant directory:
 *
 *   $XDG_STATE_HOME/oasmtp, else ~/.local/state/oasmtp (paths_state_dir(),
 *   with the password entry's home when HOME is unset), 0700;
 *   system mode (account.system): the service's state directory.
 *
 *   <grant id>.lock             the refresh lock (flock)
 *   <grant id>.grant            the grant record (grant_state.h)
 *   <grant id>-<scope id>.token the access-token cache of one scope
 *
 * The scope id is 16 hex digits of SHA-256 over the scope string: one grant
 * may hold an access token per scope (SMTP, and the Graph or Gmail API
 * through the same grant).  A `scope` argument of NULL below means the
 * account's own scope (oauth2_scope or the provider preset's).
 *
 * oauth2_token_cache PATH moves the cache of the account's own scope to
 * PATH (another scope: PATH-<scope id>); the lock and the grant record stay
 * in the grant directory.  "off" disables the cache (not the lock).
 *
 * oasmtp 0.1.0 kept <account>.token, .lock and .grant in $XDG_RUNTIME_DIR/
 * oasmtp or ${XDG_CACHE_HOME:-~/.cache}/oasmtp (or PATH.lock and PATH.grant
 * beside an oauth2_token_cache PATH): token_legacy_file() names them, a
 * fresh cached token there is still used, the grant record is still read,
 * and both are replaced by the new files at the next write.
 *
 * Missing directories are made when something is about to be written there;
 * the directory of an oauth2_token_cache path is checked like that of a
 * token file (fileio_secret_dir).  Nothing here prints.
 */
#ifndef OASMTP_TOKEN_CACHE_H
#define OASMTP_TOKEN_CACHE_H

#include <time.h>

#include "buf.h"
#include "err.h"

struct account;

/* Largest cache file (and so access token) accepted. */
#define TOKEN_CACHE_MAX (64 * 1024 + 512)

/* One cached access token. */
struct token_cached {
	struct buf token;	/* secret buf, initialised by the caller */
	time_t expires_at;
	long lifetime;		/* expires_in as issued, 0 if unknown */
};

/* The grant id of acc (above) into out (32 hex digits + NUL). */
void token_grant_id(const struct account *acc, char out[33]);

/*
 * The grant directory of acc into ret_dir; with create, made (0700) when
 * missing.  ERR_CONFIG (no home), ERR_IO, ERR_LIMIT.
 */
MUST_CHECK enum err token_grant_dir(const struct account *acc, int create,
	struct buf *ret_dir, struct errinfo *reterr);

/*
 * The cache file of acc's grant for scope (NULL: the account's own) into
 * ret_path.  With create, missing directories are made (0700), and those
 * that exist are checked.  token_cache_path() is the account's own scope,
 * without create.
 * Errors: ERR_CONFIG (cache off, no endpoint, no directory known, directory
 * not ours or writable by others), ERR_IO, ERR_LIMIT.
 */
MUST_CHECK enum err token_cache_file(const struct account *acc, const char *scope,
	int create, struct buf *ret_path, struct errinfo *reterr);
MUST_CHECK enum err token_cache_path(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr);

/* The grant's lock file and grant record (directories made).  As above. */
MUST_CHECK enum err token_lock_file(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr);
MUST_CHECK enum err token_grant_file(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr);

/*
 * The grant's rescue file (directories made): a rotated refresh token
 * that its store would not take is kept there, 0600, until the store
 * takes it, so that the token it replaced is never presented again.
 * As above.
 */
MUST_CHECK enum err token_rescue_file(const struct account *acc,
	struct buf *ret_path, struct errinfo *reterr);

/*
 * Where oasmtp 0.1.0 kept acc's file with suffix (".token", ".lock",
 * ".grant"): which 0 is its runtime-directory place (or the one beside an
 * oauth2_token_cache PATH), 1 its cache-directory place.  1 and the path in
 * ret_path, or 0 when there is no such place.
 */
int token_legacy_file(const struct account *acc, int which,
	const char *suffix, struct buf *ret_path);

/*
 * Remove the cached access tokens of acc's grant, every scope, and those a
 * 0.1.0 left under the account's name (for `oasmtp-token forget`, import).
 */
MUST_CHECK enum err token_cache_drop(const struct account *acc, struct errinfo *reterr);

/* Remove the 0.1.0 caches of acc (best effort; after a new one is written). */
void token_cache_drop_legacy(const struct account *acc);

/* 1 when the account has oauth2_token_cache off. */
int token_cache_off(const struct account *acc);

/*
 * The key stored in a cache (32 hex digits + NUL): the grant and the scope,
 * so a cache file written for anything else is a miss.
 */
void token_grant_key(const struct account *acc, const char *endpoint,
	const char *scope, char out[33]);

/*
 * Read path into c (c->token reset first).  1 for a well-formed cache of
 * this grant owned by us with mode 0600, else 0 (a miss, never an error).
 */
int token_cache_read(const char *path, const char *key,
	struct token_cached *c);

/* 1 when c is valid for longer than margin (capped at lifetime / 2). */
int token_cache_fresh(const struct token_cached *c, long margin, time_t now);

/* Write c to path atomically (0600, no fsync).  ERR_IO, ERR_LIMIT. */
MUST_CHECK enum err token_cache_write(const char *path, const char *key,
	const struct token_cached *c, struct errinfo *reterr);

/* oauth2_refresh_margin, or the default of 600 s. */
long token_refresh_margin(const struct account *acc);

/*
 * The fast path of a send: 1 and the token in ret_token (and its expiry in
 * *ret_expires, may be NULL) when acc's grant has a fresh cached token for
 * scope (NULL: the account's own; then a 0.1.0 cache counts too); 0
 * otherwise.  No network, no store, no lock.  token_cache_lookup() is
 * scope NULL.
 */
int token_cache_lookup_scope(const struct account *acc, const char *scope,
	struct buf *ret_token, time_t *ret_expires);
int token_cache_lookup(const struct account *acc, struct buf *ret_token,
	time_t *ret_expires);

#endif
