/*
 * tstore_file.c - the file:PATH token store.
 *
 * Format: the refresh token alone; leading and trailing whitespace (a final
 * newline, usually) is ignored on reading.  We write the token followed by
 * one "\n".  The file must be a regular file owned by the effective user with
 * no group or other permission bits; anything else is refused before a byte
 * is read, with the chmod fix in the message.  Symbolic links are followed,
 * and a save replaces the link's target, not the link.
 *
 * The directory of the file (of the link's target, and of the path as
 * given, links and all) and every directory above it must be the user's
 * or root's and closed to others' writes (fileio_secret_dir): checked
 * before the token is read, so that a refresh never starts when its
 * rotated token could not be saved, and again on every save, which first
 * creates missing directories with mode 0700.
 */
#include "tstore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "fileio.h"
#include "paths.h"
#include "util.h"

#define FILE_MAX (64 * 1024)

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
		c == '\v';
}

/*
 * Read the token file at path into ret_token.  A missing or empty file is
 * ERR_REAUTH unless optional, where it leaves ret_token empty (ERR_OK).
 */
static MUST_CHECK enum err
read_token(struct tstore *ts, const char *path, int optional,
	struct buf *ret_token, struct errinfo *reterr)
{
	const struct fileio_private rules = {
		.what = "token file", .owner = geteuid(), .forbidden = 077,
		.follow = 1, .max = FILE_MAX, .refused = ERR_CONFIG,
	};
	size_t start, end;
	int exists;
	enum err e;

	e = fileio_read_private(AT_FDCWD, path, &rules, ret_token, &exists,
		reterr);
	if (e != ERR_OK || (!exists && optional)) {
		goto out;
	}
	if (!exists) {
		return errinfo_set(reterr, ERR_REAUTH,
			"re-authorization needed: run `oasmtp-token "
			"authorize %s` (token file '%s' does not exist)",
			ts->acc->name, path);
	}
	start = 0;
	end = ret_token->len;
	while (start < end && is_space(ret_token->data[start])) {
		start++;
	}
	while (end > start && is_space(ret_token->data[end - 1])) {
		end--;
	}
	buf_truncate(ret_token, end);
	buf_consume(ret_token, start);
	if (ret_token->len == 0 && optional) {
		goto out;
	}
	if (ret_token->len == 0) {
		e = errinfo_set(reterr, ERR_REAUTH,
			"re-authorization needed: run `oasmtp-token authorize %s` "
			"(token file '%s' is empty)", ts->acc->name, path);
		goto out;
	}
	if (memchr(ret_token->data, '\0', ret_token->len) != NULL ||
	    strpbrk(ret_token->data, " \t\r\n") != NULL) {
		e = errinfo_set(reterr, ERR_CONFIG,
			"token file '%s' must hold the refresh token alone", path);
	}
out:
	if (e != ERR_OK) {
		buf_reset(ret_token);
	}
	return e;
}

/*
 * The file a save replaces (the target of a symbolic link) into ret_path;
 * with previous != 0 its sidecar PATH.previous instead.
 */
static MUST_CHECK enum err
target_path(struct tstore *ts, int previous, struct buf *ret_path,
	struct errinfo *reterr)
{
	char real[PATH_MAX];
	const char *path = ts->arg;

	/* keep a symlinked token file a symlink: replace its target */
	if (realpath(ts->arg, real) != NULL) {
		path = real;
	}
	buf_reset(ret_path);
	if (buf_printf(ret_path, "%s%s", path, previous ? ".previous" : "") !=
	    ERR_OK) {
		return errinfo_set(reterr, ERR_IO, "token path too long: '%s'",
			ts->arg);
	}
	return ERR_OK;
}

/*
 * Check the directories of the token file (creating missing ones with
 * create), as fileio_secret_dir() does: those of the file a save replaces
 * and, when the path as given differs (links on the way), those of that
 * path too, which reads and saves go through.
 */
static MUST_CHECK enum err
check_dirs(struct tstore *ts, int create, struct errinfo *reterr)
{
	struct buf path;
	enum err e;

	buf_init(&path, PATH_MAX + 16);
	e = target_path(ts, 0, &path, reterr);
	if (e == ERR_OK) {
		e = fileio_secret_dir(path.data, geteuid(), create, reterr);
	}
	if (e == ERR_OK && strcmp(path.data, ts->arg) != 0) {
		e = fileio_secret_dir(ts->arg, geteuid(), 0, reterr);
	}
	buf_release(&path);
	return e;
}

static MUST_CHECK enum err
file_load(struct tstore *ts, struct buf *ret_token, struct errinfo *reterr)
{
	enum err e = check_dirs(ts, 0, reterr);

	if (e != ERR_OK) {
		return e;
	}
	return read_token(ts, ts->arg, 0, ret_token, reterr);
}

/* Write token and a newline to path, atomically and durably. */
static MUST_CHECK enum err
write_token(const char *path, const char *token, struct errinfo *reterr)
{
	struct buf data;
	enum err e;

	buf_init_secret(&data, FILE_MAX + 2);
	e = buf_append_str(&data, token);
	if (e == ERR_OK) {
		e = buf_putc(&data, '\n');
	}
	if (e != ERR_OK) {
		buf_release(&data);
		return errinfo_set(reterr, e, "refresh token too large");
	}
	e = fileio_write_private(path, data.data, data.len, 1, reterr);
	buf_release(&data);
	return e;
}

static MUST_CHECK enum err
file_drop_previous(struct tstore *ts, struct errinfo *reterr)
{
	struct buf path;
	enum err e;

	buf_init(&path, PATH_MAX + 16);
	e = target_path(ts, 1, &path, reterr);
	if (e == ERR_OK) {
		e = fileio_remove(path.data, reterr);
	}
	buf_release(&path);
	return e;
}

static MUST_CHECK enum err
file_save(struct tstore *ts, const char *token, struct errinfo *reterr)
{
	struct buf path;
	enum err e;

	e = check_dirs(ts, 1, reterr);
	if (e != ERR_OK) {
		return e;
	}
	/* a previous token must never outlive the token it belongs to */
	e = file_drop_previous(ts, reterr);
	if (e != ERR_OK) {
		return e;
	}
	buf_init(&path, PATH_MAX + 16);
	e = target_path(ts, 0, &path, reterr);
	if (e == ERR_OK) {
		e = write_token(path.data, token, reterr);
	}
	buf_release(&path);
	return e;
}

static MUST_CHECK enum err
file_erase(struct tstore *ts, struct errinfo *reterr)
{
	struct buf path;
	enum err e;

	/* find the sidecar while a symbolic link can still be followed */
	buf_init(&path, PATH_MAX + 16);
	e = target_path(ts, 1, &path, reterr);
	if (e == ERR_OK) {
		e = fileio_remove(ts->arg, reterr);
	}
	if (e == ERR_OK) {
		e = fileio_remove(path.data, reterr);
	}
	buf_release(&path);
	return e;
}

static const struct tstore_ops file_ops = {
	.name = "file",
	.load = file_load,
	.save = file_save,
	.erase = file_erase,
	.drop_previous = file_drop_previous,
	.close = NULL,
};

enum err
tstore_file_new(const struct account *acc, char *arg,
	struct tstore **ret_store, struct errinfo *reterr)
{
	struct tstore *ts;

	if (arg[0] == '~' && arg[1] == '/') {
		struct buf p;
		enum err e;

		buf_init(&p, PATH_MAX);
		e = paths_home(0, &p);
		if (e == ERR_CONFIG) {
			free(arg);
			buf_release(&p);
			return errinfo_set(reterr, ERR_CONFIG,
				"oauth2_token_store of account '%s' starts with "
				"'~/' but HOME is not set", acc->name);
		}
		if (e != ERR_OK || buf_append_str(&p, arg + 1) != ERR_OK) {
			free(arg);
			buf_release(&p);
			return errinfo_set(reterr, ERR_CONFIG, "token path too long");
		}
		free(arg);
		arg = buf_take(&p);
		if (arg == NULL) {
			return errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
	}
	ts = calloc(1, sizeof(*ts));
	if (ts == NULL) {
		free(arg);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	ts->ops = &file_ops;
	ts->acc = acc;
	ts->arg = arg;
	*ret_store = ts;
	return ERR_OK;
}
