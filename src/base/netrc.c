/* netrc.c - passwords from a netrc file; see netrc.h. */
#include "netrc.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "paths.h"

/* One token of the file: [*pos, end) after blanks, unquoted into tok. */
static MUST_CHECK enum err
next_token(const char *data, size_t len, size_t *pos, struct buf *tok,
	int *ret_line_end, int *ret_have)
{
	size_t i = *pos;
	enum err e = ERR_OK;

	buf_reset(tok);
	*ret_have = 0;
	*ret_line_end = 0;
	while (i < len && strchr(" \t\r\n,", data[i]) != NULL) {
		i++;
	}
	if (i >= len) {
		*pos = i;
		return ERR_OK;
	}
	*ret_have = 1;
	if (data[i] == '"') {
		for (i++; i < len && data[i] != '"' && e == ERR_OK; i++) {
			if (data[i] == '\\' && i + 1 < len) {
				i++;
			}
			e = buf_putc(tok, data[i]);
		}
		i += i < len;	/* the closing quote */
	} else {
		for (; i < len && strchr(" \t\r\n,", data[i]) == NULL &&
		    e == ERR_OK; i++) {
			e = buf_putc(tok, data[i]);
		}
	}
	*ret_line_end = i >= len || data[i] == '\n';
	*pos = i;
	return e;
}

/* Skip a macdef body: everything up to the next empty line. */
static size_t
skip_macdef(const char *data, size_t len, size_t pos)
{
	const char *p = data + pos;

	while ((size_t)(p - data) < len) {
		const char *nl = memchr(p, '\n', len - (size_t)(p - data));

		if (nl == NULL) {
			return len;
		}
		if ((size_t)(nl + 1 - data) < len && nl[1] == '\n') {
			return (size_t)(nl + 2 - data);
		}
		p = nl + 1;
	}
	return len;
}

/*
 * Walk the entries of data; the first that matches host and user leaves
 * its password in ret_password.
 */
static MUST_CHECK enum err
search(const char *path, const char *data, size_t len, const char *host,
	const char *user, struct buf *ret_password, int *ret_found,
	struct errinfo *reterr)
{
	struct buf tok, machine, login, password;
	size_t pos = 0;
	int have, line_end, in_entry = 0, is_default = 0, has_login = 0;
	int has_password = 0;
	enum err e = ERR_OK;

	buf_init(&machine, NETRC_TOKEN_MAX);
	buf_init(&login, NETRC_TOKEN_MAX);
	buf_init_secret(&password, NETRC_TOKEN_MAX);
	buf_init_secret(&tok, NETRC_TOKEN_MAX);
	*ret_found = 0;
	for (;;) {
		int end_entry;

		e = next_token(data, len, &pos, &tok, &line_end, &have);
		if (e != ERR_OK) {
			break;
		}
		end_entry = !have || strcmp(tok.data, "machine") == 0 ||
			strcmp(tok.data, "default") == 0;
		if (end_entry && in_entry && !is_default && has_password &&
		    strcmp(machine.data, host) == 0 &&
		    (!has_login || strcmp(login.data, user) == 0)) {
			e = buf_append(ret_password, password.data,
				password.len);
			*ret_found = e == ERR_OK;
			break;
		}
		if (!have) {
			break;
		}
		if (end_entry) {
			in_entry = 1;
			is_default = tok.data[0] == 'd';
			has_login = has_password = 0;
			buf_reset(&machine);
			buf_reset(&login);
			buf_reset(&password);
			if (is_default) {
				continue;
			}
			e = next_token(data, len, &pos, &machine, &line_end,
				&have);
			if (e == ERR_OK && !have) {
				e = errinfo_set(reterr, ERR_CONFIG, "%s: "
					"'machine' without a host name; write "
					"machine HOST login USER password "
					"PASSWORD", path);
			}
		} else if (strcmp(tok.data, "macdef") == 0) {
			pos = skip_macdef(data, len, pos);
		} else if (!in_entry) {
			e = errinfo_set(reterr, ERR_CONFIG, "%s: unexpected "
				"'%.40s' before the first 'machine'", path,
				tok.data);
		} else if (strcmp(tok.data, "login") == 0 ||
		    strcmp(tok.data, "password") == 0 ||
		    strcmp(tok.data, "account") == 0) {
			int is_login = tok.data[0] == 'l';
			int is_password = tok.data[0] == 'p';

			e = next_token(data, len, &pos, is_password ?
				&password : is_login ? &login : &tok,
				&line_end, &have);
			if (e == ERR_OK && !have) {
				e = errinfo_set(reterr, ERR_CONFIG, "%s: '%s' "
					"without a value", path, is_login ?
					"login" : is_password ? "password" :
					"account");
			}
			has_login |= is_login;
			has_password |= is_password;
		}
		/* other words (e.g. "port N" of some tools) are skipped */
		if (e != ERR_OK) {
			break;
		}
	}
	buf_release(&tok);
	buf_release(&machine);
	buf_release(&login);
	buf_release(&password);
	return e;
}

enum err
netrc_lookup(const char *path, int owner_root, const char *host,
	const char *user, struct buf *ret_password, int *ret_found,
	struct errinfo *reterr)
{
	struct fileio_private rules = {
		.what = "netrc file",
		.owner = owner_root ? FILEIO_ANY_OWNER : geteuid(),
		.forbidden = 077,
		.follow = 1,
		.max = NETRC_FILE_MAX,
		.refused = ERR_CONFIG,
	};
	struct buf data;
	int exists = 0;
	enum err e;

	*ret_found = 0;
	buf_init_secret(&data, NETRC_FILE_MAX + 1);
	e = fileio_read_private(AT_FDCWD, path, &rules, &data, &exists,
		reterr);
	if (e == ERR_OK && exists) {
		e = search(path, data.data, data.len, host,
			user != NULL ? user : "", ret_password, ret_found,
			reterr);
		if (e == ERR_NOMEM || e == ERR_LIMIT) {
			e = errinfo_set(reterr, e, "%s: out of memory", path);
		}
	}
	buf_release(&data);
	return e;
}

enum err
netrc_user_file(struct buf *out)
{
	const char *env = getenv("NETRC");
	enum err e;

	buf_reset(out);
	if (env != NULL && env[0] != '\0') {
		return buf_append_str(out, env);
	}
	e = paths_home(1, out);
	if (e == ERR_OK) {
		e = buf_append_str(out, "/.netrc");
	}
	return e;
}
