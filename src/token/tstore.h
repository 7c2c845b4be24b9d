/*
 * tstore.h - where an account's refresh token lives (oauth2_token_store).
 *
 *   file:PATH       the refresh token alone, surrounding whitespace ignored
 *                   (as the common helper scripts keep it).  The file must be
 *                   owned by the user and not accessible by group or others.
 *                   Saving rewrites it atomically (temp + fsync + rename +
 *                   fsync of the directory).  A leading "~/" means $HOME.
 *                   The previous refresh token (below) lives beside it in
 *                   PATH.previous, same format and permission rules.
 *   command:CMD     read-only: the first output line of `/bin/sh -c CMD`
 *                   (eval_run(), bounded output, account timeout).
 *   secret-service  the Secret Service via libsecret (built with libsecret
 *                   only; attributes service=oasmtp, account, user; the
 *                   secret is JSON {"refresh_token": "..."}, plus
 *                   "previous_refresh_token" while one is kept).
 *
 * When oauth2_token_store is unset the default is "secret-service" in a
 * build with libsecret and a configuration error otherwise.
 *
 * A store is opened per use and freed afterwards; opening never touches the
 * backing storage (in particular not D-Bus), only load/save/erase do.
 * Stores are not shared between threads.
 *
 * The previous refresh token: oasmtp 0.1.0's broker saved a rotated token
 * N with save_rotated(), keeping the replaced O as "previous" (durable
 * before N replaced it) to try O once should N be refused.  The broker no
 * longer does (a token whose successor was received is never sent again:
 * doc/design.md, Tokens): it saves N with a plain save(), which discards
 * any previous token, as erase() and drop_previous() do; nothing reads
 * one any more.  The command store keeps none.
 *
 * Errors common to all operations:
 *   ERR_CONFIG      bad store spec, unsafe file permissions (message has the
 *                   chmod fix), failing command
 *   ERR_REAUTH      no refresh token stored (load): message names
 *                   `oasmtp-token authorize ACCOUNT`
 *   ERR_TOKEN_TEMP  store temporarily unusable (keyring locked, no D-Bus,
 *                   command timed out)
 *   ERR_IO          local I/O failure
 *   ERR_NOTSUPP     save/erase on a read-only store
 *   ERR_DATA        save of an empty token or one with spaces, control or
 *                   non-ASCII bytes (it could not be read back whole)
 *   ERR_NOMEM
 */
#ifndef OASMTP_TSTORE_H
#define OASMTP_TSTORE_H

#include <stddef.h>

#include "err.h"

struct account;
struct buf;
struct tstore;

/* A backend's operations; load/save/erase get the store they belong to. */
struct tstore_ops {
	const char *name;
	/* append the refresh token to ret_token (a secret buf, reset first) */
	enum err (*load)(struct tstore *ts, struct buf *ret_token,
		struct errinfo *reterr);
	/*
	 * replace the stored refresh token and discard any previous one; NULL
	 * for read-only stores
	 */
	enum err (*save)(struct tstore *ts, const char *token,
		struct errinfo *reterr);
	/* forget the refresh token and the previous one; NULL if read-only */
	enum err (*erase)(struct tstore *ts, struct errinfo *reterr);
	/*
	 * Discard a previous refresh token that oasmtp 0.1.0 kept beside the
	 * current one (none is fine; NULL for stores that never kept one).
	 * Nothing presents such a token again: it was used once already.
	 */
	enum err (*drop_previous)(struct tstore *ts, struct errinfo *reterr);
	void (*close)(struct tstore *ts);
};

struct tstore {
	const struct tstore_ops *ops;
	const struct account *acc;	/* borrowed: must outlive the store */
	char *arg;			/* PATH or CMD (heap, owned) */
};

/*
 * Parse acc->oauth2_token_store and create the matching store.  acc is
 * borrowed for the lifetime of the store.  *ret_store is set on success.
 * Errors: ERR_CONFIG (unknown or unavailable backend), ERR_NOMEM.
 */
MUST_CHECK enum err tstore_open(const struct account *acc, struct tstore **ret_store,
	struct errinfo *reterr);

/* Convenience wrappers; see struct tstore_ops. */
MUST_CHECK enum err tstore_load(struct tstore *ts, struct buf *ret_token,
	struct errinfo *reterr);
MUST_CHECK enum err tstore_save(struct tstore *ts, const char *token,
	struct errinfo *reterr);
MUST_CHECK enum err tstore_erase(struct tstore *ts, struct errinfo *reterr);
int tstore_is_writable(const struct tstore *ts);

/* The 0.1.0 previous token dropped (see above); ERR_OK on a store without. */
MUST_CHECK enum err tstore_drop_previous(struct tstore *ts, struct errinfo *reterr);

/* Release the store (NULL is fine). */
void tstore_free(struct tstore *ts);

/*
 * msmtp's Secret Service entry for user at host (as `secret-tool store
 * --label=msmtp host HOST service smtp user USER` makes it; also the old
 * network-password schema msmtp reads): its secret appended to out (a
 * secret buf) and *ret_found set.  Not found is ERR_OK with *ret_found 0.
 * Errors: ERR_TOKEN_TEMP (no Secret Service, or the entry is in a locked
 * collection: never unlocked here), ERR_CONFIG (built without libsecret),
 * ERR_NOMEM.
 */
MUST_CHECK enum err tstore_msmtp_password(const char *host, const char *user,
	struct buf *out, int *ret_found, struct errinfo *reterr);

/* Backend constructors used by tstore_open() (arg is taken over). */
MUST_CHECK enum err tstore_file_new(const struct account *acc, char *arg,
	struct tstore **ret_store, struct errinfo *reterr);
MUST_CHECK enum err tstore_command_new(const struct account *acc, char *arg,
	struct tstore **ret_store, struct errinfo *reterr);
MUST_CHECK enum err tstore_secret_new(const struct account *acc,
	struct tstore **ret_store, struct errinfo *reterr);

#endif
