/* tstore.c - token store dispatch and the shared atomic file writer. */
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

enum err
tstore_save(struct tstore *ts, const char *token, struct errinfo *reterr)
{
	if (ts->ops->save == NULL) {
		return errinfo_set(reterr, ERR_NOTSUPP,
			"token store '%s' of account '%s' is read-only",
			ts->ops->name, ts->acc->name);
	}
	return ts->ops->save(ts, token, reterr);
}

enum err
tstore_erase(struct tstore *ts, struct errinfo *reterr)
{
	if (ts->ops->erase == NULL) {
		return errinfo_set(reterr, ERR_NOTSUPP,
			"token store '%s' of account '%s' is read-only",
			ts->ops->name, ts->acc->name);
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

static enum err
io_error(struct errinfo *reterr, const char *what, const char *path)
{
	int saved = errno;
	enum err e = errinfo_set(reterr, ERR_IO, "cannot %s '%s': %s", what,
		path, strerror(saved));

	if (reterr != NULL) {
		reterr->sys_errno = saved;
	}
	return e;
}

enum err
tstore_write_atomic(const char *path, const void *data, size_t len,
	int durable, struct errinfo *reterr)
{
	struct buf tmp, dir;
	const char *slash;
	int fd = -1;
	int created = 0;
	enum err e = ERR_OK;

	buf_init(&tmp, 8192);
	buf_init(&dir, 8192);
	if (buf_printf(&tmp, "%s.XXXXXX", path) != ERR_OK) {
		e = errinfo_set(reterr, ERR_IO, "path too long: '%s'", path);
		goto out;
	}
	slash = strrchr(path, '/');
	if (slash == NULL) {
		e = buf_append_str(&dir, ".");
	} else if (slash == path) {
		e = buf_append_str(&dir, "/");
	} else {
		e = buf_append(&dir, path, (size_t)(slash - path));
	}
	if (e != ERR_OK) {
		e = errinfo_set(reterr, e, "path too long: '%s'", path);
		goto out;
	}
	/* mkstemp creates the file with mode 0600 */
	fd = mkstemp(tmp.data);
	if (fd < 0) {
		e = io_error(reterr, "create a file beside", path);
		goto out;
	}
	created = 1;
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (fchmod(fd, 0600) != 0 || util_write_all(fd, data, len) != 0 ||
	    (durable && fsync(fd) != 0)) {
		e = io_error(reterr, "write", tmp.data);
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		e = io_error(reterr, "write", tmp.data);
		goto out;
	}
	fd = -1;
	if (rename(tmp.data, path) != 0) {
		e = io_error(reterr, "replace", path);
		goto out;
	}
	created = 0;
	if (durable) {
		int dfd = open(dir.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd < 0 || fsync(dfd) != 0) {
			e = io_error(reterr, "sync directory", dir.data);
		}
		if (dfd >= 0) {
			close(dfd);
		}
	}
out:
	if (fd >= 0) {
		close(fd);
	}
	if (created) {
		unlink(tmp.data);
	}
	buf_release(&tmp);
	buf_release(&dir);
	return e;
}

#if !HAVE_LIBSECRET
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
