/*
 * fileio.c - durable file replacement and the directories of secret
 * files; see fileio.h.
 */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"

/* the temporary file beside a target, and its directory */
#define TEMP_PATH_MAX (2 * PATH_MAX)

static MUST_CHECK enum err
io_error(struct errinfo *reterr, const char *what, const char *path)
{
	int saved = errno;
	enum err e = errinfo_set(reterr, ERR_IO, "cannot %s '%s': %s", what,
		path, strerror(saved));

	errinfo_set_errno(reterr, saved);
	return e;
}

enum err
fileio_write_private(const char *path, const void *data, size_t len,
	int durable, struct errinfo *reterr)
{
	struct buf tmp, dir;
	const char *slash;
	int fd = -1;
	int created = 0;
	enum err e = ERR_OK;

	buf_init(&tmp, TEMP_PATH_MAX);
	buf_init(&dir, TEMP_PATH_MAX);
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


/* "cannot read token file 'x': ..." */
static MUST_CHECK enum err
private_io_error(struct errinfo *reterr, const char *verb,
	const struct fileio_private *p, const char *name)
{
	int saved = errno;
	enum err e = errinfo_set(reterr, ERR_IO, "cannot %s %s '%s': %s", verb,
		p->what, name, strerror(saved));

	errinfo_set_errno(reterr, saved);
	return e;
}

static MUST_CHECK enum err
too_large(const char *name, const struct fileio_private *p,
	struct errinfo *reterr)
{
	return errinfo_set(reterr, p->refused, "%s '%s' is larger than %zu "
		"bytes", p->what, name, p->max);
}

/* The checks of fileio_read_private() on the open file fd. */
static MUST_CHECK enum err
check_private(int fd, const char *name, const struct fileio_private *p,
	struct errinfo *reterr)
{
	struct stat st;

	if (fstat(fd, &st) != 0) {
		return private_io_error(reterr, "stat", p, name);
	}
	if (!S_ISREG(st.st_mode)) {
		return errinfo_set(reterr, p->refused,
			"%s '%s' is not a regular file", p->what, name);
	}
	if (p->owner != FILEIO_ANY_OWNER && st.st_uid != p->owner) {
		return errinfo_set(reterr, p->refused,
			"%s '%s' is not owned by you (uid %ld): run `chown %ld "
			"'%s'` and `chmod 600 '%s'`", p->what, name,
			(long)st.st_uid, (long)p->owner, name, name);
	}
	if ((st.st_mode & p->forbidden) != 0) {
		return errinfo_set(reterr, p->refused,
			"%s '%s' is accessible by others (mode %03o): run "
			"`chmod 600 '%s'`", p->what, name,
			(unsigned)(st.st_mode & 0777), name);
	}
	if ((uintmax_t)st.st_size > (uintmax_t)p->max) {
		return too_large(name, p, reterr);
	}
	return ERR_OK;
}

enum err
fileio_read_private(int dirfd, const char *name,
	const struct fileio_private *p, struct buf *out, int *ret_exists,
	struct errinfo *reterr)
{
	char chunk[4096];
	size_t total = 0;
	enum err e;
	int fd;

	if (ret_exists != NULL) {
		*ret_exists = 1;
	}
	/* O_NONBLOCK: a FIFO planted at name must not hang us in open() */
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
		(p->follow ? 0 : O_NOFOLLOW));
	if (fd < 0 && errno == ENOENT && ret_exists != NULL) {
		*ret_exists = 0;
		return ERR_OK;
	}
	if (fd < 0 && errno == ELOOP && !p->follow) {
		return errinfo_set(reterr, p->refused, "%s '%s' is a symbolic "
			"link; it must be the file itself", p->what, name);
	}
	if (fd < 0) {
		return private_io_error(reterr, "open", p, name);
	}
	e = check_private(fd, name, p, reterr);
	while (e == ERR_OK) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			e = private_io_error(reterr, "read", p, name);
		} else if (n == 0) {
			break;
		} else if ((total += (size_t)n) > p->max) {
			e = too_large(name, p, reterr);	/* it grew meanwhile */
		} else if (buf_append(out, chunk, (size_t)n) != ERR_OK) {
			e = too_large(name, p, reterr);	/* out is smaller */
		}
	}
	util_wipe(chunk, sizeof(chunk));
	close(fd);
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

/*
 * Whether gid is the user private group of uid (Debian's and Ubuntu's
 * USERGROUPS_ENAB scheme, where a umask of 002 makes directories such as
 * ~/.config group-writable): a group of the user's own name with no member
 * but the user.  Group write on such a directory lets in nobody else.
 */
static int
is_personal_group(gid_t gid, uid_t uid)
{
	const struct passwd *pw = getpwuid(uid);
	char name[256];
	const struct group *gr;
	size_t i;

	if (pw == NULL || strlen(pw->pw_name) >= sizeof(name)) {
		return 0;
	}
	/* getgrgid may reuse the storage getpwuid returned */
	memcpy(name, pw->pw_name, strlen(pw->pw_name) + 1);
	gr = getgrgid(gid);
	if (gr == NULL || strcmp(gr->gr_name, name) != 0) {
		return 0;
	}
	for (i = 0; gr->gr_mem != NULL && gr->gr_mem[i] != NULL; i++) {
		if (strcmp(gr->gr_mem[i], name) != 0) {
			return 0;
		}
	}
	return 1;
}

/*
 * One existing directory on the way to a secret file: it must be ours or
 * root's, and nobody else may be able to rename what is in it (write
 * permission for group or others, unless the sticky bit limits that to
 * the owners of the entries, as on /tmp).
 */
static MUST_CHECK enum err
check_secret_dir(const char *dir, const struct stat *st, uid_t owner,
	const char *file, struct errinfo *reterr)
{
	mode_t m = st->st_mode;

	if (!S_ISDIR(m)) {
		return errinfo_set(reterr, ERR_CONFIG,
			"cannot use '%s': '%s' is not a directory", file, dir);
	}
	if (st->st_uid != owner && st->st_uid != 0) {
		return errinfo_set(reterr, ERR_CONFIG,
			"refusing '%s': its directory '%s' belongs to uid %ld, "
			"not to you or root; keep the file in a directory of "
			"your own", file, dir, (long)st->st_uid);
	}
	if ((m & S_IWOTH) == 0 && (m & S_IWGRP) != 0 &&
	    st->st_uid == owner && is_personal_group(st->st_gid, owner)) {
		return ERR_OK;	/* umask 002 with a group of one's own */
	}
	if ((m & (S_IWGRP | S_IWOTH)) != 0 && (m & S_ISVTX) == 0) {
		return errinfo_set(reterr, ERR_CONFIG,
			"refusing '%s': its directory '%s' is writable by %s "
			"(mode %04o), who could replace the file; run "
			"`chmod go-w '%s'`", file, dir,
			(m & S_IWOTH) != 0 ? "everyone" : "its group",
			(unsigned)(m & 07777), dir);
	}
	return ERR_OK;
}

/*
 * A symbolic link on the way to a secret file: its owner can point it
 * elsewhere at any time (also in a sticky directory), so it must be ours
 * or root's, like a directory.
 */
static MUST_CHECK enum err
check_secret_link(const char *link, const struct stat *lst, uid_t owner,
	const char *file, struct errinfo *reterr)
{
	if (lst->st_uid != owner && lst->st_uid != 0) {
		return errinfo_set(reterr, ERR_CONFIG,
			"refusing '%s': its directory '%s' belongs to uid %ld, "
			"not to you or root; keep the file in a directory of "
			"your own", file, link, (long)lst->st_uid);
	}
	return ERR_OK;
}

/*
 * An existing path as given, each entry judged as itself (lstat: a link
 * as a link, not by where it leads): the realpath() chain misses the
 * directories that hold the symbolic links, and the links themselves, and
 * whoever controls either decides where the path leads.
 */
static MUST_CHECK enum err
check_given_path(char *dir, uid_t owner, const char *file,
	struct errinfo *reterr)
{
	struct stat st;
	size_t i = 0, len = strlen(dir);
	enum err e = ERR_OK;

	while (e == ERR_OK && i < len) {
		size_t start;
		char saved;

		while (i < len && dir[i] == '/') {
			i++;
		}
		start = i;
		while (i < len && dir[i] != '/') {
			i++;
		}
		if (i == start || (i - start == 1 && dir[start] == '.')) {
			continue;
		}
		saved = dir[i];
		dir[i] = '\0';
		if (lstat(dir, &st) != 0) {
			e = io_error(reterr, "examine", dir);
		} else if (S_ISLNK(st.st_mode)) {
			e = check_secret_link(dir, &st, owner, file, reterr);
		} else if (S_ISDIR(st.st_mode)) {
			e = check_secret_dir(dir, &st, owner, file, reterr);
		}
		dir[i] = saved;
	}
	return e;
}

/* Append "/" (unless p ends in one) and the n bytes of name to p. */
static MUST_CHECK enum err
add_component(struct buf *p, const char *name, size_t n,
	struct errinfo *reterr)
{
	enum err e = ERR_OK;

	if (p->len == 0 || p->data[p->len - 1] != '/') {
		e = buf_putc(p, '/');
	}
	if (e == ERR_OK) {
		e = buf_append(p, name, n);
	}
	if (e != ERR_OK) {
		return errinfo_set(reterr, ERR_LIMIT, "path too long: '%s/%.*s'",
			p->data, (int)n, name);
	}
	return ERR_OK;
}

/* Check every directory of the absolute, resolved path real, from "/". */
static MUST_CHECK enum err
check_secret_chain(const char *real, uid_t owner, const char *file,
	struct errinfo *reterr)
{
	struct buf p;
	struct stat st;
	const char *c = real;
	enum err e = ERR_OK;

	buf_init(&p, PATH_MAX);
	if (buf_putc(&p, '/') != ERR_OK) {
		buf_release(&p);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	for (;;) {
		size_t n;

		if (stat(p.data, &st) != 0) {
			e = io_error(reterr, "examine", p.data);
		} else {
			e = check_secret_dir(p.data, &st, owner, file, reterr);
		}
		while (*c == '/') {
			c++;
		}
		if (e != ERR_OK || *c == '\0') {
			break;
		}
		n = strcspn(c, "/");
		e = add_component(&p, c, n, reterr);
		if (e != ERR_OK) {
			break;
		}
		c += n;
	}
	buf_release(&p);
	return e;
}

/* The length of the longest leading part of dir that exists (0: none). */
static MUST_CHECK enum err
existing_prefix(struct buf *dir, const char *file, size_t *ret_n,
	struct errinfo *reterr)
{
	struct stat st;
	size_t n = dir->len;

	for (;;) {
		char saved = dir->data[n];
		enum err e = ERR_OK;
		int r;

		dir->data[n] = '\0';
		r = stat(dir->data, &st);
		if (r != 0 && errno == ENOTDIR) {
			e = errinfo_set(reterr, ERR_CONFIG, "cannot use '%s': "
				"a part of '%s' is not a directory", file,
				dir->data);
		} else if (r != 0 && errno != ENOENT) {
			e = io_error(reterr, "examine", dir->data);
		}
		dir->data[n] = saved;
		if (e != ERR_OK) {
			return e;
		}
		if (r == 0) {
			break;
		}
		/* drop the last component and the slashes before it */
		while (n > 0 && dir->data[n - 1] == '/') {
			n--;
		}
		while (n > 0 && dir->data[n - 1] != '/') {
			n--;
		}
		while (n > 1 && dir->data[n - 1] == '/') {
			n--;
		}
		if (n == 0) {
			break;	/* relative, and none of it exists */
		}
	}
	*ret_n = n;
	return ERR_OK;
}

enum err
fileio_secret_dir(const char *file, uid_t owner, int create,
	struct errinfo *reterr)
{
	char real[PATH_MAX];
	const char *slash = strrchr(file, '/');
	const char *rest;
	struct buf dir, path;
	struct stat st;
	size_t n = 0;
	char saved;
	enum err e;

	buf_init(&dir, PATH_MAX);
	buf_init(&path, PATH_MAX);
	if (slash == NULL) {
		e = buf_append_str(&dir, ".");
	} else if (slash == file) {
		e = buf_append_str(&dir, "/");
	} else {
		e = buf_append(&dir, file, (size_t)(slash - file));
	}
	if (e != ERR_OK) {
		e = errinfo_set(reterr, ERR_LIMIT, "path too long: '%s'", file);
		goto out;
	}
	e = existing_prefix(&dir, file, &n, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	saved = dir.data[n];
	dir.data[n] = '\0';
	if (realpath(n > 0 ? dir.data : ".", real) == NULL) {
		e = io_error(reterr, "examine", n > 0 ? dir.data : ".");
		goto out;
	}
	e = check_given_path(dir.data, owner, file, reterr);
	dir.data[n] = saved;
	rest = dir.data + n;	/* the missing part */
	if (e == ERR_OK) {
		e = check_secret_chain(real, owner, file, reterr);
	}
	if (e != ERR_OK || !create) {
		goto out;
	}
	if (buf_append_str(&path, real) != ERR_OK) {
		e = errinfo_set(reterr, ERR_LIMIT, "path too long: '%s'", real);
		goto out;
	}
	while (*rest != '\0' && e == ERR_OK) {
		size_t len;

		while (*rest == '/') {
			rest++;
		}
		len = strcspn(rest, "/");
		if (len == 0 || (len == 1 && rest[0] == '.')) {
			rest += len;
			continue;
		}
		e = add_component(&path, rest, len, reterr);
		rest += len;
		if (e != ERR_OK || mkdir(path.data, 0700) == 0) {
			continue;
		}
		if (errno != EEXIST) {
			e = io_error(reterr, "create directory", path.data);
		} else if (lstat(path.data, &st) != 0) {
			e = io_error(reterr, "examine", path.data);
		} else if (S_ISLNK(st.st_mode)) {
			/*
			 * A link made meanwhile: judged as one, then by where
			 * it leads (stat follows it).
			 */
			e = check_secret_link(path.data, &st, owner, file,
				reterr);
			if (e == ERR_OK && stat(path.data, &st) != 0) {
				e = io_error(reterr, "examine", path.data);
			}
			if (e == ERR_OK) {
				e = check_secret_dir(path.data, &st, owner,
					file, reterr);
			}
		} else {
			/* made meanwhile by someone else: check it like the rest */
			e = check_secret_dir(path.data, &st, owner, file,
				reterr);
		}
	}
out:
	buf_release(&dir);
	buf_release(&path);
	return e;
}

enum err
fileio_remove(const char *path, struct errinfo *reterr)
{
	if (unlink(path) != 0 && errno != ENOENT) {
		return errinfo_set(reterr, ERR_IO, "cannot remove '%s': %s",
			path, strerror(errno));
	}
	return ERR_OK;
}
