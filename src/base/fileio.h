/*
 * fileio.h - files that must never be seen half-written, and the
 * directories that hold secret files.
 */
#ifndef OASMTP_FILEIO_H
#define OASMTP_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

struct buf;

/*
 * Replace the file at path atomically with data (mode 0600): write a
 * temporary file in the same directory, fsync it, rename it over path and
 * fsync the directory.  durable == 0 skips both fsyncs, for data whose loss
 * costs nothing but time (a cache).  A link at path is replaced, not
 * followed.
 * Errors: ERR_IO (errno in reterr->sys_errno), ERR_NOMEM.
 */
MUST_CHECK enum err fileio_write_private(const char *path, const void *data, size_t len,
	int durable, struct errinfo *reterr);

/* fileio_read_private(): the owner that any uid passes. */
#define FILEIO_ANY_OWNER ((uid_t)-1)

/* What a private file must be for fileio_read_private() to read it. */
struct fileio_private {
	const char *what;	/* "token file": names it in messages */
	uid_t owner;		/* its owner, or FILEIO_ANY_OWNER */
	mode_t forbidden;	/* mode bits it must not have (077) */
	int follow;		/* 1: a symbolic link is followed */
	size_t max;		/* the largest size read */
	enum err refused;	/* the code when a check fails: ERR_CONFIG
				   for a file the user keeps, ERR_DATA for
				   one of oasmtp's own */
};

/*
 * Read the file name (relative to dirfd, or AT_FDCWD) into out (appended)
 * after checking it against p: opened without following a symbolic link
 * (unless p->follow) and without blocking on a FIFO, it must be a regular
 * file, owned by p->owner, without any of the mode bits p->forbidden, and
 * at most p->max bytes.  Nothing is read from a file that fails a check.
 * A missing file is ERR_OK with *ret_exists = 0 when ret_exists is given,
 * else ERR_IO.  out may be a secret buffer: the read chunks are wiped.
 * Errors: p->refused (not a regular file, a link, wrong owner or mode: the
 * message has the fix; larger than p->max), ERR_IO (errno in
 * reterr->sys_errno), ERR_NOMEM.
 */
MUST_CHECK enum err fileio_read_private(int dirfd, const char *name,
	const struct fileio_private *p, struct buf *out, int *ret_exists,
	struct errinfo *reterr);

/*
 * Create dir with mode 0700 unless it exists; then check it is a directory
 * (not a link) owned by the effective user and not writable by everyone.
 * Errors: ERR_IO (cannot create), ERR_CONFIG (exists but not ours, or
 * world-writable: the message has the chmod fix).
 */
/*
 * Remove the file at path; a missing one is fine.
 * Errors: ERR_IO ("cannot remove 'PATH': ...").
 */
MUST_CHECK enum err fileio_remove(const char *path, struct errinfo *reterr);

MUST_CHECK enum err fileio_mkdir_private(const char *dir, struct errinfo *reterr);

/*
 * Make sure the directory that is to hold the secret file `file` exists
 * and that nobody else can swap what is in it.  Every directory on the way
 * down from "/" (symbolic links resolved) that exists must be owned by
 * owner (the caller passes geteuid()) or root, and must not be writable by
 * group or others unless it has the sticky bit (/tmp); group write is
 * fine on a directory of owner's in owner's personal group (a group of the
 * user's name with no other member, as umask 002 systems have).  The path
 * as given is checked too, entry by entry: the directories that hold its
 * symbolic links pass the same test, and every such link (also one that
 * appears while the missing directories are made) must be owner's or
 * root's, since whoever controls a link decides where it leads.  With
 * create, the missing directories are made with mode 0700, like `mkdir -p
 * -m 700`; without it a missing directory is fine (nothing to check yet).
 * Existing directories are never changed.
 * Errors: ERR_CONFIG (a directory that fails the checks, or a path
 * component that is not a directory: the message names it and the fix),
 * ERR_IO (cannot create or examine one), ERR_LIMIT (path too long).
 */
MUST_CHECK enum err fileio_secret_dir(const char *file, uid_t owner, int create,
	struct errinfo *reterr);

#endif
