/* credential.c - the secret behind AUTH; see credential.h. */
#include "credential.h"

#include <string.h>

#include "account.h"
#include "buf.h"
#include "eval.h"
#include "token.h"

/* An access token from Microsoft is ~2 KiB; leave a lot of room. */
#define SECRET_MAX (64 * 1024)

enum credential_kind
credential_kind_of(const struct account *acc)
{
	if (acc->passwordeval != NULL) {
		return CREDENTIAL_EVAL;
	}
	if (acc->password != NULL) {
		return CREDENTIAL_PASSWORD;
	}
	if (account_is_oauth(acc) && (acc->oauth2_provider != OAUTH2_NONE
		|| acc->oauth2_client_id != NULL
		|| acc->oauth2_token_endpoint != NULL)) {
		return CREDENTIAL_OAUTH;
	}
	return CREDENTIAL_NONE;
}

const char *
credential_kind_name(enum credential_kind kind)
{
	switch (kind) {
	case CREDENTIAL_EVAL:
		return "passwordeval";
	case CREDENTIAL_PASSWORD:
		return "password";
	case CREDENTIAL_OAUTH:
		return "oauth2";
	case CREDENTIAL_NONE:
		break;
	}
	return "none";
}

enum err
credential_start(struct credential *c, const struct account *acc,
	int prefetch, struct errinfo *reterr)
{
	memset(c, 0, sizeof(*c));
	c->acc = acc;
	c->kind = credential_kind_of(acc);
	if (prefetch && c->kind == CREDENTIAL_OAUTH) {
		return token_prefetch_start(acc, 0, &c->prefetch, reterr);
	}
	return ERR_OK;
}

static enum err
run_passwordeval(const struct account *acc, struct buf *out,
	struct errinfo *reterr)
{
	int timeout = acc->timeout > 0 ? acc->timeout : 60;
	enum err e;

	e = eval_run(acc->passwordeval, timeout, SECRET_MAX, out, reterr);
	if (e == ERR_OK || e == ERR_NOMEM) {
		return e;
	}
	/*
	 * A token helper that fails or hangs is most often waiting on a
	 * network, a keyring or an expired grant: the mail should wait too.
	 */
	errinfo_prefix(reterr, "account '%s': passwordeval: ", acc->name);
	reterr->code = ERR_TOKEN_TEMP;
	return ERR_TOKEN_TEMP;
}

enum err
credential_get(void *ctx, int force_fresh, struct buf *ret_secret,
	struct errinfo *reterr)
{
	struct credential *c = ctx;
	const struct account *acc = c->acc;
	enum err e;

	buf_reset(ret_secret);
	c->uses++;
	switch (c->kind) {
	case CREDENTIAL_EVAL:
		return run_passwordeval(acc, ret_secret, reterr);
	case CREDENTIAL_PASSWORD:
		if (force_fresh) {
			return errinfo_set(reterr, ERR_AUTH,
				"account '%s': the server refused the password",
				acc->name);
		}
		return buf_append_str(ret_secret, acc->password);
	case CREDENTIAL_OAUTH:
		if (c->prefetch != NULL) {
			struct token_prefetch *pf = c->prefetch;

			c->prefetch = NULL;
			e = token_prefetch_join(pf, ret_secret, reterr);
			if (!force_fresh || e != ERR_OK) {
				return e;
			}
			buf_reset(ret_secret);
		}
		return token_get(acc, force_fresh ? TOKEN_FORCE_REFRESH : 0,
			ret_secret, reterr);
	case CREDENTIAL_NONE:
		break;
	}
	return errinfo_set(reterr, ERR_CONFIG,
		"account '%s' has no credentials: set passwordeval, password or "
		"the oauth2_* keys (see oasmtprc(5))", acc->name);
}

void
credential_release(struct credential *c)
{
	struct buf scratch;

	if (c == NULL || c->prefetch == NULL) {
		return;
	}
	buf_init_secret(&scratch, SECRET_MAX);
	token_prefetch_join(c->prefetch, &scratch, NULL);
	buf_release(&scratch);
	c->prefetch = NULL;
}
