/*
 * credential.h - where the secret for AUTH comes from.
 *
 * Per account, first that applies (design.md section 7):
 *   passwordeval   a command printing the password or access token (msmtp
 *                  compatible; exit status checked, output bounded, killed
 *                  after the account timeout);
 *   password       a literal secret from the configuration file;
 *   oauth2_*       the built-in token module (cache, refresh, stores);
 *   nothing        AUTH that needs a secret fails with ERR_CONFIG.
 *
 * For the token module the fetch is started in the background by
 * credential_start(), so that a refresh overlaps the SMTP connect and
 * handshake; credential_get() joins it when AUTH needs the token.
 */
#ifndef OASMTP_CREDENTIAL_H
#define OASMTP_CREDENTIAL_H

#include "err.h"

struct account;
struct buf;
struct token_prefetch;

enum credential_kind {
	CREDENTIAL_NONE = 0,
	CREDENTIAL_EVAL,
	CREDENTIAL_PASSWORD,
	CREDENTIAL_OAUTH,
};

struct credential {
	const struct account *acc;	/* borrowed; outlives the credential */
	enum credential_kind kind;
	struct token_prefetch *prefetch;	/* running fetch, or NULL */
	int uses;			/* how many secrets were handed out */
};

/* Which source an account uses (no side effects). */
enum credential_kind credential_kind_of(const struct account *acc);

/* A short name for logs and --pretend: "passwordeval", "password", ... */
const char *credential_kind_name(enum credential_kind kind);

/*
 * Prepare c for acc.  With prefetch set and an OAuth account, start fetching
 * the access token in a background thread now.  Never fails for the other
 * kinds; for OAuth the errors of token_prefetch_start() (ERR_NOMEM,
 * ERR_INTERNAL).
 */
enum err credential_start(struct credential *c, const struct account *acc,
	int prefetch, struct errinfo *reterr);

/*
 * The secret source for submit: write the secret into ret_secret (a secret
 * buf owned by the caller).  force_fresh asks for a new token after the
 * server refused the previous one; sources that cannot produce a different
 * secret (a literal password) fail with ERR_AUTH then.
 * Errors: ERR_CONFIG (no secret configured; eval produced nothing),
 * ERR_TOKEN_TEMP (passwordeval failed or timed out; token endpoint down),
 * ERR_REAUTH, ERR_AUTH, ERR_NOMEM, and the token module's errors.
 * ctx is a struct credential *.
 */
enum err credential_get(void *ctx, int force_fresh, struct buf *ret_secret,
	struct errinfo *reterr);

/* Join a running prefetch (discarding its result); c may be NULL. */
void credential_release(struct credential *c);

#endif
