/*
 * netrc.h - passwords from a netrc file, as msmtp looks them up (its
 * password lookup, after the Secret Service): the first `machine` entry
 * whose name is the server's host name exactly and whose `login` is the
 * account's user, or which has no `login`.  `default` entries are not used
 * (msmtp does not use them either); `macdef` bodies are skipped.
 *
 * Tokens are separated by blanks and newlines; a token may be written in
 * double quotes (with \" and \\ inside), as curl and inetutils accept.
 *
 * The file holds passwords, so it must be private: owned by the user (or
 * root, for the system file) and without group or other permissions; else
 * ERR_CONFIG naming the fix ("chmod 600 FILE").  Nothing here prints.
 */
#ifndef OASMTP_NETRC_H
#define OASMTP_NETRC_H

#include "buf.h"
#include "err.h"

/* The largest netrc file read. */
#define NETRC_FILE_MAX (1024 * 1024)
/* One word of the file: a machine name, a login, a password. */
#define NETRC_TOKEN_MAX 4096

/*
 * Look host/user up in the file path.  On success *ret_found says whether
 * an entry matched, and its password was appended to ret_password (a
 * secret buf).  A missing file is ERR_OK with *ret_found 0.  owner_root: the
 * file may belong to root instead of the effective user (the system file).
 * Errors: ERR_CONFIG (not private; not a regular file; a syntax error:
 * "FILE: ..."), ERR_IO, ERR_LIMIT (larger than NETRC_FILE_MAX), ERR_NOMEM.
 */
MUST_CHECK enum err netrc_lookup(const char *path, int owner_root,
	const char *host, const char *user, struct buf *ret_password,
	int *ret_found, struct errinfo *reterr);

/*
 * The user's netrc file: $NETRC when set and not empty (as curl and
 * inetutils use it), else HOME/.netrc.  Into out (reset first).
 * ERR_CONFIG when there is no home directory, ERR_LIMIT.
 */
MUST_CHECK enum err netrc_user_file(struct buf *out);

#endif
