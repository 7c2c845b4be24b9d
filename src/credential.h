/*
 * credential.h - where the secret for AUTH comes from.
 *
 * Per account, first that applies (doc/design.md, Tokens):
 *   passwordeval   a command printing the password or access token (msmtp
 *                  compatible; exit status checked, output bounded, killed
 *                  after the account timeout);
 *   password       a literal secret from the configuration file;
 *   oauth2_*       the built-in token module: a fresh cached access token is
 *                  read directly (no network, no token store); otherwise
 *                  `oasmtp-token print ACCOUNT` runs as a child process, started
 *                  by credential_start() so the refresh overlaps the SMTP
 *                  connect and handshake, and joined when AUTH needs it.  The
 *                  oasmtp binary itself never loads libcurl or libsecret.
 *   lookup         no password, passwordeval or oauth2_* key, but a user:
 *                  msmtp's password lookup for user at host, in msmtp's
 *                  order: its Secret Service entry (`secret-tool store
 *                  --label=msmtp host H service smtp user U`), read by
 *                  `oasmtp-token msmtp-password H U` so this binary never
 *                  loads GLib; the user's netrc file ($NETRC, else
 *                  ~/.netrc), then SYSCONFDIR/netrc (netrc.h: must be
 *                  private); a prompt on the terminal (ttypass.h: only
 *                  with one, never under cron).  The answer is kept for
 *                  the rest of the run;
 *   nothing        AUTH that needs a secret fails with ERR_CONFIG.
 *
 * Secrets never travel in argv or the environment: the helper gets the
 * configuration file and the account name, and answers on a pipe.
 */
#ifndef OASMTP_CREDENTIAL_H
#define OASMTP_CREDENTIAL_H

#include "buf.h"
#include "err.h"

/* credential_describe()'s line for -vv. */
#define CREDENTIAL_DESC_MAX 2048
#include "proc.h"

struct account;

enum credential_kind {
	CREDENTIAL_NONE = 0,
	CREDENTIAL_EVAL,
	CREDENTIAL_PASSWORD,
	CREDENTIAL_OAUTH,
	CREDENTIAL_LOOKUP,
};

struct credential {
	const struct account *acc;	/* borrowed; outlives the credential */
	const char *config_file;	/* -C FILE given to oasmtp, or NULL */
	enum credential_kind kind;
	struct buf cached;		/* secret: token read from the cache */
	struct proc helper;		/* oasmtp-token; running when helper.pid > 0 */
	struct buf warnings;		/* helper's remarks on success, for main */
	const char *origin;		/* CREDENTIAL_LOOKUP: where the password
					   was found (static), NULL before */
	const char *decision;		/* the last decision, for -vv (static):
					   cache hit or miss, refresh, source */
};

/*
 * Append "credentials: DECISION" and, for OAuth2, the token store the
 * helper uses, for -vv.  Nothing secret.
 */
MUST_CHECK enum err credential_describe(const struct credential *c,
	struct buf *out);

/*
 * Which source an account uses (no side effects).  passwordeval wins over
 * password, except in a file read with msmtp's defaults: there, as in
 * msmtp, a literal password is used and passwordeval is never run.
 */
enum credential_kind credential_kind_of(const struct account *acc);

/* A short name for logs and --pretend: "passwordeval", "password", ... */
const char *credential_kind_name(enum credential_kind kind);

/*
 * Prepare c for acc.  For an OAuth account read the token cache and, when
 * it has no fresh token, start oasmtp-token now (with prefetch set).
 * config_file is passed on to the helper (borrowed).  Errors: ERR_INTERNAL
 * (cannot start the helper), ERR_NOMEM.
 */
MUST_CHECK enum err credential_start(struct credential *c, const struct account *acc,
	const char *config_file, int prefetch, struct errinfo *reterr);

/*
 * The secret source for submit: write the secret into ret_secret (a secret
 * buf owned by the caller).  force_fresh asks for a new token after the
 * server refused the previous one; a literal password cannot change, so it
 * fails with ERR_AUTH then.
 * Errors: ERR_CONFIG (no secret configured or found; bad oauth2
 * settings; a netrc file that is not private),
 * ERR_TOKEN_TEMP (passwordeval failed or timed out; token endpoint down;
 * keyring locked), ERR_REAUTH, ERR_AUTH, ERR_NOMEM, ERR_INTERNAL.
 * ctx is a struct credential *.
 */
MUST_CHECK enum err credential_get(void *ctx, int force_fresh, struct buf *ret_secret,
	struct errinfo *reterr);

/*
 * Wait for a running helper (bounded; it is killed past its deadline) and
 * free everything; c may be NULL.  An unfinished refresh is allowed to
 * complete, so its token is cached for the next attempt.
 */
void credential_release(struct credential *c);

/*
 * The oasmtp-token program to run: the one next to the running executable
 * when it exists, else the installed one.  Into ret_path.
 */
MUST_CHECK enum err credential_helper_path(struct buf *ret_path, struct errinfo *reterr);

/* Room for the longest command line credential_helper_argv() builds. */
#define CREDENTIAL_ARGV_MAX 10

/*
 * The one builder of an oasmtp-token command line:
 *   oasmtp-token [--system] [-C config_file] verb [option] -- ACCOUNT
 * --system whenever acc comes from a system-mode load, so the helper loads
 * the same configuration and uses the same store and cache; config_file
 * and option may be NULL.  argv (CREDENTIAL_ARGV_MAX entries) is filled
 * with borrowed pointers and NULL-terminated.
 */
void credential_helper_argv(const char *argv[CREDENTIAL_ARGV_MAX],
	const struct account *acc, const char *config_file, const char *verb,
	const char *option);

#endif
