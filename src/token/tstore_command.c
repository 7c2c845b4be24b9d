/*
 * tstore_command.c - the command:CMD token store: read-only, the refresh
 * token is the first output line of `/bin/sh -c CMD` (eval_run()).
 * Rotation cannot be saved here; the broker reports that as a warning.
 */
#include "tstore.h"

#include <stdlib.h>

#include "account.h"
#include "buf.h"
#include "eval.h"

#define COMMAND_OUT_MAX (64 * 1024)

static MUST_CHECK enum err
command_load(struct tstore *ts, struct buf *ret_token, struct errinfo *reterr)
{
	int timeout = account_helper_timeout_s(ts->acc);
	enum err e;

	e = eval_run(ts->arg, timeout, COMMAND_OUT_MAX, ret_token, reterr);
	if (e == ERR_OK) {
		return ERR_OK;
	}
	buf_reset(ret_token);
	if (e == ERR_TIMEOUT) {
		/* a hung password manager is worth retrying later */
		e = ERR_TOKEN_TEMP;
	}
	errinfo_prefix(reterr, "token store command of account '%s': ",
		ts->acc->name);
	return errinfo_recode(reterr, e);
}

static const struct tstore_ops command_ops = {
	.name = "command",
	.load = command_load,
	.save = NULL,
	.erase = NULL,
	.load_previous = NULL,	/* read-only: nothing to keep */
	.save_rotated = NULL,
	.drop_previous = NULL,
	.close = NULL,
};

enum err
tstore_command_new(const struct account *acc, char *arg,
	struct tstore **ret_store, struct errinfo *reterr)
{
	struct tstore *ts = calloc(1, sizeof(*ts));

	if (ts == NULL) {
		free(arg);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	ts->ops = &command_ops;
	ts->acc = acc;
	ts->arg = arg;
	*ret_store = ts;
	return ERR_OK;
}
