/* fileio.c - durable file replacement; see fileio.h. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"

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
fileio_write_atomic(const char *path, const void *data, size_t len,
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


enum err
fileio_mkdir_private(const char *dir, struct errinfo *reterr)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		return io_error(reterr, "create", dir);
	}
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid()) {
		return errinfo_set(reterr, ERR_CONFIG,
			"'%s' is not a directory owned by you", dir);
	}
	/*
	 * Anyone who may write here could swap our files for symlinks.  Group
	 * write is let through: with per-user groups (umask 002) it is the
	 * norm for directories such as ~/.cache.
	 */
	if ((st.st_mode & S_IWOTH) != 0) {
		return errinfo_set(reterr, ERR_CONFIG,
			"'%s' is writable by everyone (mode %03o): run "
			"`chmod 700 '%s'`", dir, (unsigned)(st.st_mode & 0777),
			dir);
	}
	return ERR_OK;
}
