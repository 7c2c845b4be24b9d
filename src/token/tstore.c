/* tstore.c - token store dispatch; see tstore.h. */
#include "tstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "oasmtp-config.h"
#include "util.h"

enum err
tstore_open(const struct account *acc, struct tstore **ret_store,
	struct errinfo *reterr)
{
	const char *spec = acc->oauth2_token_store;
	char *arg;

	if (spec == NULL || spec[0] == '\0') {
#if HAVE_LIBSECRET
		spec = "secret-service";
#else
		return errinfo_set(reterr, ERR_CONFIG,
			"account '%s' has no oauth2_token_store (this build has "
			"no secret-service support: use file:PATH or command:CMD)",
			acc->name);
#endif
	}
	if (strcmp(spec, "secret-service") == 0) {
		return tstore_secret_new(acc, ret_store, reterr);
	}
	if (strncmp(spec, "file:", 5) == 0 || strncmp(spec, "command:", 8) == 0) {
		int file = spec[0] == 'f';
		const char *a = spec + (file ? 5 : 8);

		if (a[0] == '\0') {
			return errinfo_set(reterr, ERR_CONFIG,
				"oauth2_token_store '%s' of account '%s' lacks %s",
				spec, acc->name, file ? "a path" : "a command");
		}
		arg = strdup(a);
		if (arg == NULL) {
			return errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
		return file ? tstore_file_new(acc, arg, ret_store, reterr) :
			tstore_command_new(acc, arg, ret_store, reterr);
	}
	return errinfo_set(reterr, ERR_CONFIG,
		"unknown oauth2_token_store '%s' in account '%s' (expected "
		"secret-service, file:PATH or command:CMD)", spec, acc->name);
}

enum err
tstore_load(struct tstore *ts, struct buf *ret_token, struct errinfo *reterr)
{
	buf_reset(ret_token);
	return ts->ops->load(ts, ret_token, reterr);
}

/* 1 when token can be stored and read back whole. */
static int
storable(const char *token)
{
	const unsigned char *p = (const unsigned char *)token;

	for (; *p > 0x20 && *p < 0x7f; p++) {
		;
	}
	return token[0] != '\0' && *p == '\0';
}

static MUST_CHECK enum err
not_storable(struct tstore *ts, struct errinfo *reterr)
{
	return errinfo_set(reterr, ERR_DATA, "refusing to store a refresh "
		"token for account '%s' that is empty or holds spaces, control "
		"or non-ASCII bytes", ts->acc->name);
}

static MUST_CHECK enum err
read_only(struct tstore *ts, struct errinfo *reterr)
{
	return errinfo_set(reterr, ERR_NOTSUPP,
		"token store '%s' of account '%s' is read-only",
		ts->ops->name, ts->acc->name);
}

enum err
tstore_save(struct tstore *ts, const char *token, struct errinfo *reterr)
{
	if (!storable(token)) {
		return not_storable(ts, reterr);
	}
	if (ts->ops->save == NULL) {
		return read_only(ts, reterr);
	}
	return ts->ops->save(ts, token, reterr);
}

enum err
tstore_drop_previous(struct tstore *ts, struct errinfo *reterr)
{
	if (ts->ops->drop_previous == NULL) {
		return ERR_OK;
	}
	return ts->ops->drop_previous(ts, reterr);
}

enum err
tstore_erase(struct tstore *ts, struct errinfo *reterr)
{
	if (ts->ops->erase == NULL) {
		return read_only(ts, reterr);
	}
	return ts->ops->erase(ts, reterr);
}

int
tstore_is_writable(const struct tstore *ts)
{
	return ts->ops->save != NULL;
}

void
tstore_free(struct tstore *ts)
{
	if (ts == NULL) {
		return;
	}
	if (ts->ops->close != NULL) {
		ts->ops->close(ts);
	}
	free(ts->arg);
	free(ts);
}

#if !HAVE_LIBSECRET
enum err
tstore_msmtp_password(const char *host, const char *user, struct buf *out,
	int *ret_found, struct errinfo *reterr)
{
	(void)host;
	(void)user;
	(void)out;
	*ret_found = 0;
	return errinfo_set(reterr, ERR_CONFIG, "this build has no Secret "
		"Service support (built without libsecret)");
}

enum err
tstore_secret_new(const struct account *acc, struct tstore **ret_store,
	struct errinfo *reterr)
{
	(void)ret_store;
	return errinfo_set(reterr, ERR_CONFIG,
		"account '%s': the secret-service token store is not available "
		"in this build (built without libsecret): use file:PATH or "
		"command:CMD", acc->name);
}
#endif
