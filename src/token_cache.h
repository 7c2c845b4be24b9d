/*
 * token_cache.h - provider presets and the access-token cache: everything of
 * the token module that needs no network, no token store and no libcurl,
 * json-c or libsecret.  The main oasmtp binary links only this part; the
 * refresh itself (token.h) lives in oasmtp-token and the test programs.
 *
 * Nothing here prints.  Paths: the cache is oauth2_token_cache when set,
 * else $XDG_RUNTIME_DIR/oasmtp/<account>.token, else
 * ${XDG_CACHE_HOME:-~/.cache}/oasmtp/<account>.token (directories 0700,
 * files 0600); the refresh lock is the same path with ".lock".  Missing
 * directories are made when something is about to be written there; the
 * directory of an oauth2_token_cache path is checked like that of a token
 * file (fileio_secret_dir).
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

/*
 * The cache file path for acc into ret_path (reset first).  ERR_CONFIG when
 * the cache is "off" or no directory can be determined.
 */
MUST_CHECK enum err token_cache_path(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr);

/* Remove acc's cached access token (for `oasmtp-token forget`). */
MUST_CHECK enum err token_cache_drop(const struct account *acc, struct errinfo *reterr);

/* 1 when the account has oauth2_token_cache off. */
int token_cache_off(const struct account *acc);

/*
 * The cache file (or, for token_lock_file, the lock file) of acc into
 * ret_path.  With create, missing directories are made (0700), and those
 * that exist are checked.
 * Errors: ERR_CONFIG (cache off for token_cache_file, no directory known,
 * directory not ours or writable by others), ERR_IO, ERR_LIMIT.
 */
MUST_CHECK enum err token_cache_file(const struct account *acc, int create,
	struct buf *ret_path, struct errinfo *reterr);
MUST_CHECK enum err token_lock_file(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr);

/* The grant fingerprint stored in the cache (32 hex digits + NUL). */
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
 * *ret_expires, may be NULL) when acc has a fresh cached token; 0 otherwise.
 * No network, no store, no lock.
 */
int token_cache_lookup(const struct account *acc, struct buf *ret_token,
	time_t *ret_expires);

#endif
