/*
 * tstore_file.c - the file:PATH token store.
 *
 * Format: the refresh token alone; leading and trailing whitespace (a final
 * newline, usually) is ignored on reading.  We write the token followed by
 * one "\n".  The file must be a regular file owned by the effective user with
 * no group or other permission bits; anything else is refused before a byte
 * is read, with the chmod fix in the message.  Symbolic links are followed,
 * and a save replaces the link's target, not the link.
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
#include "util.h"

#define FILE_MAX (64 * 1024)

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
		c == '\v';
}

static enum err
file_load(struct tstore *ts, struct buf *ret_token, struct errinfo *reterr)
{
	const char *path = ts->arg;
	struct stat st;
	char chunk[4096];
	size_t start, end;
	int fd;
	enum err e = ERR_OK;

	/* O_NONBLOCK: a FIFO planted at path must not hang us in open() */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT) {
			return errinfo_set(reterr, ERR_REAUTH,
				"re-authorization needed: run `oasmtp-token "
				"authorize %s` (token file '%s' does not exist)",
				ts->acc->name, path);
		}
		e = errinfo_set(reterr, ERR_IO, "cannot open token file '%s': %s",
			path, strerror(errno));
		return e;
	}
	if (fstat(fd, &st) != 0) {
		e = errinfo_set(reterr, ERR_IO, "cannot stat token file '%s': %s",
			path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		e = errinfo_set(reterr, ERR_CONFIG,
			"token file '%s' is not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid()) {
		e = errinfo_set(reterr, ERR_CONFIG,
			"token file '%s' is not owned by you (uid %ld): "
			"run `chown %ld '%s'` and `chmod 600 '%s'`", path,
			(long)st.st_uid, (long)geteuid(), path, path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		e = errinfo_set(reterr, ERR_CONFIG,
			"token file '%s' is accessible by others (mode %03o): "
			"run `chmod 600 '%s'`", path,
			(unsigned)(st.st_mode & 0777), path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			e = errinfo_set(reterr, ERR_IO,
				"cannot read token file '%s': %s", path,
				strerror(errno));
			goto out;
		}
		if (n == 0) {
			break;
		}
		if (buf_append(ret_token, chunk, (size_t)n) != ERR_OK) {
			e = errinfo_set(reterr, ERR_CONFIG,
				"token file '%s' is larger than %d bytes", path,
				FILE_MAX);
			goto out;
		}
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
	util_wipe(chunk, sizeof(chunk));
	if (e != ERR_OK) {
		buf_reset(ret_token);
	}
	close(fd);
	return e;
}

static enum err
file_save(struct tstore *ts, const char *token, struct errinfo *reterr)
{
	char real[PATH_MAX];
	const char *path = ts->arg;
	struct buf data;
	enum err e;

	/* keep a symlinked token file a symlink: replace its target */
	if (realpath(ts->arg, real) != NULL) {
		path = real;
	}
	buf_init_secret(&data, FILE_MAX + 2);
	e = buf_append_str(&data, token);
	if (e == ERR_OK) {
		e = buf_putc(&data, '\n');
	}
	if (e != ERR_OK) {
		buf_release(&data);
		return errinfo_set(reterr, e, "refresh token too large");
	}
	e = fileio_write_atomic(path, data.data, data.len, 1, reterr);
	buf_release(&data);
	return e;
}

static enum err
file_erase(struct tstore *ts, struct errinfo *reterr)
{
	if (unlink(ts->arg) != 0 && errno != ENOENT) {
		return errinfo_set(reterr, ERR_IO, "cannot remove '%s': %s",
			ts->arg, strerror(errno));
	}
	return ERR_OK;
}

static const struct tstore_ops file_ops = {
	.name = "file",
	.load = file_load,
	.save = file_save,
	.erase = file_erase,
	.close = NULL,
};

enum err
tstore_file_new(const struct account *acc, char *arg,
	struct tstore **ret_store, struct errinfo *reterr)
{
	struct tstore *ts;

	if (arg[0] == '~' && arg[1] == '/') {
		const char *home = getenv("HOME");
		struct buf p;

		if (home == NULL || home[0] == '\0') {
			free(arg);
			return errinfo_set(reterr, ERR_CONFIG,
				"oauth2_token_store of account '%s' starts with "
				"'~/' but HOME is not set", acc->name);
		}
		buf_init(&p, PATH_MAX);
		if (buf_printf(&p, "%s%s", home, arg + 1) != ERR_OK) {
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
