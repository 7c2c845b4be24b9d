/*
 * tstore_command.c - the command:CMD token store: the refresh token is the
 * first output line of `/bin/sh -c CMD` (eval_run()).
 *
 * Read-only, unless the account has oauth2_token_store_write WCMD: then a
 * save runs `/bin/sh -c WCMD` (through proc, own process group, the
 * account's helper timeout) with the new refresh token and a line feed on
 * its standard input (as `pass insert -m -f NAME` or `gpg -e -r ID -o FILE
 * --yes` take it), and it must exit 0; then CMD is run again and must
 * print the new token, so a write command that silently stored nothing is
 * caught while the new token is still in memory.  The broker saves a
 * rotated token this way under the grant's lock before the new access
 * token is used (token.h).  No previous token is kept; erase is not
 * supported (remove the entry yourself).
 */
#include "tstore.h"

#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "buf.h"
#include "eval.h"
#include "proc.h"

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

static MUST_CHECK enum err
command_save(struct tstore *ts, const char *token, struct errinfo *reterr)
{
	const char *argv[] = { "sh", "-c", ts->acc->oauth2_token_store_write,
		NULL };
	struct buf in, back;
	struct proc p;
	enum err e;

	buf_init_secret(&in, COMMAND_OUT_MAX + 2);
	buf_init_secret(&back, COMMAND_OUT_MAX);
	e = buf_append_str(&in, token);
	if (e == ERR_OK) {
		e = buf_putc(&in, '\n');
	}
	if (e != ERR_OK) {
		buf_release(&in);
		buf_release(&back);
		return errinfo_set(reterr, ERR_LIMIT, "refresh token too large");
	}
	memset(&p, 0, sizeof(p));
	p.argv = argv;
	p.file = "/bin/sh";
	p.name = "oauth2_token_store_write";
	p.in = PROC_IN_BUF;
	p.in_data = in.data;
	p.in_len = in.len;
	p.out = PROC_OUT_NULL;
	p.err = PROC_OUT_INHERIT;
	p.new_group = 1;
	p.timeout_ms = (int64_t)account_helper_timeout_s(ts->acc) * 1000;
	e = proc_run(&p, reterr);
	buf_release(&in);
	if (e == ERR_OK) {
		e = command_load(ts, &back, reterr);
		if (e == ERR_OK && strcmp(back.data, token) != 0) {
			e = errinfo_set(reterr, ERR_CONFIG, "oauth2_token_store_"
				"write exited 0, but the token store command "
				"does not print the new refresh token: check "
				"that both name the same entry");
		}
	} else {
		errinfo_prefix(reterr, "account '%s': ", ts->acc->name);
		e = errinfo_recode(reterr, e == ERR_TIMEOUT ? ERR_TOKEN_TEMP :
			e == ERR_NOMEM ? ERR_NOMEM : ERR_CONFIG);
	}
	buf_release(&back);
	return e;
}

static const struct tstore_ops command_ops = {
	.name = "command",
	.load = command_load,
	.save = NULL,
	.erase = NULL,
	.drop_previous = NULL,	/* it never kept a previous token */
	.close = NULL,
};

/* With oauth2_token_store_write: saves go through the write command. */
static const struct tstore_ops command_write_ops = {
	.name = "command",
	.load = command_load,
	.save = command_save,
	.erase = NULL,
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
	ts->ops = acc->oauth2_token_store_write != NULL ? &command_write_ops :
		&command_ops;
	ts->acc = acc;
	ts->arg = arg;
	*ret_store = ts;
	return ERR_OK;
}
