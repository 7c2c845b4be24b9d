/*
 * token_cache.c - the part of the token module that needs no network: the
 * access-token cache and its paths (provider presets: provider.c).  It is
 * linked into the main oasmtp binary, which never loads libcurl, json-c or
 * libsecret: a fresh cached token is read here, and a refresh is left to
 * oasmtp-token.
 *
 * Cache file format (one per account, mode 0600, written atomically without
 * fsync: losing it only costs one refresh; the record format of record.h):
 *
 *   oasmtp-token-cache 2
 *   key <32 hex digits>        SHA-256 prefix of endpoint, client id, scope,
 *                              user and store: a cache written for another
 *                              grant is ignored
 *   expires <unix seconds>
 *   lifetime <seconds>         expires_in as issued
 *   token <access token>
 *   end
 *
 * Version 1 (oasmtp 0.1.0) had no "end" line; it is still read.
 * A cache file that is not ours (wrong owner, group/other bits, bad format)
 * is treated as a miss and replaced at the next refresh.
 */
#include "token_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "account.h"
#include "buf.h"
#include "fileio.h"
#include "paths.h"
#include "provider.h"
#include "record.h"
#include "util.h"

#define DEFAULT_MARGIN 600

/* --- paths ------------------------------------------------------------ */

int
token_cache_off(const struct account *acc)
{
	return acc->oauth2_token_cache != NULL &&
		strcmp(acc->oauth2_token_cache, "off") == 0;
}

/*
 * The default state directory: $XDG_RUNTIME_DIR/oasmtp, else
 * ${XDG_CACHE_HOME:-$HOME/.cache}/oasmtp.  With create, missing directories
 * (the parent too, and any above it) are made with mode 0700.
 */
static MUST_CHECK enum err
state_dir(int create, struct buf *ret_dir, struct errinfo *reterr)
{
	int missing;
	enum err e;

	e = paths_volatile_dir(ret_dir);
	if (e == ERR_CONFIG) {
		return errinfo_set(reterr, ERR_CONFIG,
			"no directory for the token cache (set XDG_RUNTIME_DIR "
			"or HOME, or oauth2_token_cache)");
	}
	/*
	 * The parent may be shared or set up by someone else (a 0775 ~/.cache
	 * under umask 002): when it exists it is left as it is, and the checks
	 * that matter are on our own oasmtp directory.  When it is missing
	 * (a fresh home), it and any missing directory above it are made as
	 * for a secret file: mode 0700 under directories nobody else controls.
	 */
	missing = e == ERR_OK && create && access(ret_dir->data, F_OK) != 0 &&
		errno == ENOENT;
	if (e == ERR_OK) {
		e = buf_append_str(ret_dir, "/oasmtp");
	}
	if (e != ERR_OK) {
		return errinfo_set(reterr, e, "cache directory path too long");
	}
	if (missing) {
		/* the directory of ".../oasmtp" is the parent */
		e = fileio_secret_dir(ret_dir->data, geteuid(), 1, reterr);
		if (e != ERR_OK) {
			return e;
		}
	}
	return create ? fileio_mkdir_private(ret_dir->data, reterr) : ERR_OK;
}

enum err
token_cache_file(const struct account *acc, int create, struct buf *ret_path,
	struct errinfo *reterr)
{
	enum err e;

	buf_reset(ret_path);
	if (token_cache_off(acc)) {
		return errinfo_set(reterr, ERR_CONFIG,
			"the token cache of account '%s' is off", acc->name);
	}
	if (acc->oauth2_token_cache != NULL && acc->oauth2_token_cache[0] != '\0') {
		e = buf_append_str(ret_path, acc->oauth2_token_cache);
		if (e != ERR_OK) {
			return errinfo_set(reterr, e,
				"oauth2_token_cache too long");
		}
		/* its directory, made when missing (the lock lives there too) */
		return create ? fileio_secret_dir(ret_path->data, geteuid(), 1,
			reterr) : ERR_OK;
	}
	e = state_dir(create, ret_path, reterr);
	if (e != ERR_OK) {
		return e;
	}
	e = buf_putc(ret_path, '/');
	if (e == ERR_OK) {
		e = util_append_file_name(ret_path,
			acc->name != NULL ? acc->name : "");
	}
	if (e == ERR_OK) {
		e = buf_append_str(ret_path, ".token");
	}
	return e == ERR_OK ? ERR_OK :
		errinfo_set(reterr, e, "cache path too long");
}

enum err
token_cache_path(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr)
{
	return token_cache_file(acc, 0, ret_path, reterr);
}

enum err
token_lock_file(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr)
{
	enum err e;

	if (!token_cache_off(acc)) {
		e = token_cache_file(acc, 1, ret_path, reterr);
	} else {
		e = state_dir(1, ret_path, reterr);
		if (e == ERR_OK) {
			e = buf_putc(ret_path, '/');
		}
		if (e == ERR_OK) {
			e = util_append_file_name(ret_path, acc->name != NULL ?
				acc->name : "");
		}
		if (e != ERR_OK && e != ERR_CONFIG && e != ERR_IO) {
			e = errinfo_set(reterr, e, "lock path too long");
		}
	}
	if (e == ERR_OK && buf_append_str(ret_path, ".lock") != ERR_OK) {
		e = errinfo_set(reterr, ERR_LIMIT, "lock path too long");
	}
	return e;
}

/* --- the cache -------------------------------------------------------- */

/* A short fingerprint of everything that identifies the grant. */
void
token_grant_key(const struct account *acc, const char *endpoint, const char *scope,
	char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const char *parts[5];
	size_t i;

	parts[0] = endpoint;
	parts[1] = acc->oauth2_client_id != NULL ? acc->oauth2_client_id : "";
	parts[2] = scope;
	parts[3] = acc->user != NULL ? acc->user : "";
	parts[4] = acc->oauth2_token_store != NULL ? acc->oauth2_token_store : "";
	memset(md, 0, sizeof(md));
	if (ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
		for (i = 0; i < 5; i++) {
			EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]) + 1);
		}
		EVP_DigestFinal_ex(ctx, md, &mdlen);
	}
	EVP_MD_CTX_free(ctx);
	for (i = 0; i < 16; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[32] = '\0';
}

static const struct record_key cache_keys[] = {
	{ "key", RECORD_REQUIRED }, { "expires", RECORD_REQUIRED },
	{ "lifetime", 0 }, { "token", RECORD_REQUIRED }, { NULL, 0 },
};

/* Version 1 (oasmtp 0.1.0) had no trailer and no escapes. */
static const struct record_spec cache_spec = {
	.name = "oasmtp-token-cache", .what = "token cache",
	.min_version = 1, .max_version = 2, .trailer_since = 2,
	.keys = cache_keys,
};

/* Fill c from a parsed cache record of grant key; 1 when it fits. */
static int
take_cache(const struct record *rec, const char *key, struct token_cached *c)
{
	size_t i;
	long n;

	for (i = 0; i < rec->n; i++) {
		const struct record_field *f = &rec->fields[i];

		if (strcmp(f->key, "key") == 0) {
			if (f->len != strlen(key) || strcmp(f->value, key) != 0) {
				return 0;
			}
		} else if (strcmp(f->key, "token") == 0) {
			if (f->len == 0 || buf_append(&c->token, f->value,
				f->len) != ERR_OK) {
				return 0;
			}
		} else if (record_field_long(&cache_spec, f, 0, LONG_MAX, &n,
			NULL) != ERR_OK) {
			return 0;
		} else if (strcmp(f->key, "expires") == 0) {
			c->expires_at = (time_t)n;
		} else {
			c->lifetime = n;
		}
	}
	return 1;
}

/*
 * Read the cache into c.  Returns 1 on a well-formed cache for this grant,
 * 0 otherwise (missing, foreign, malformed: all just a miss).
 */
int
token_cache_read(const char *path, const char *key, struct token_cached *c)
{
	const struct fileio_private rules = {
		.what = "token cache", .owner = geteuid(), .forbidden = 077,
		.max = TOKEN_CACHE_MAX, .refused = ERR_CONFIG,
	};
	struct record rec;
	struct buf raw;
	int ok = 0;

	buf_reset(&c->token);
	buf_init_secret(&raw, TOKEN_CACHE_MAX);
	if (fileio_read_private(AT_FDCWD, path, &rules, &raw, NULL, NULL) ==
		ERR_OK && record_parse(&cache_spec, raw.data, raw.len, &rec,
		NULL) == ERR_OK) {
		ok = take_cache(&rec, key, c);
		record_release(&rec);
	}
	buf_release(&raw);
	if (!ok) {
		buf_reset(&c->token);
	}
	return ok;
}

int
token_cache_fresh(const struct token_cached *c, long margin, time_t now)
{
	long m = margin;

	/* a token issued for less than twice the margin is still usable */
	if (c->lifetime > 0 && m > c->lifetime / 2) {
		m = c->lifetime / 2;
	}
	return c->token.len > 0 && c->expires_at > now &&
		(long)(c->expires_at - now) > m;
}

enum err
token_cache_write(const char *path, const char *key, const struct token_cached *c,
	struct errinfo *reterr)
{
	struct buf data;
	size_t i;
	enum err e;

	/* the cache is line based: a token must be one printable line */
	for (i = 0; i < c->token.len; i++) {
		unsigned char ch = (unsigned char)c->token.data[i];

		if (ch <= ' ' || ch == 0x7f) {
			return errinfo_set(reterr, ERR_DATA, "the access token "
				"contains a control character or a blank; not "
				"cached");
		}
	}
	buf_init_secret(&data, TOKEN_CACHE_MAX);
	e = record_begin(&data, cache_spec.name, 2);
	if (e == ERR_OK) {
		e = record_put_str(&data, "key", key);
	}
	if (e == ERR_OK) {
		e = record_put_long(&data, "expires", (long long)c->expires_at);
	}
	if (e == ERR_OK) {
		e = record_put_long(&data, "lifetime", c->lifetime);
	}
	if (e == ERR_OK) {
		e = record_put(&data, "token", c->token.data, c->token.len);
	}
	if (e == ERR_OK) {
		e = record_finish(&data);
	}
	if (e != ERR_OK) {
		buf_release(&data);
		return errinfo_set(reterr, e, "access token too large to cache");
	}
	e = fileio_write_private(path, data.data, data.len, 0, reterr);
	buf_release(&data);
	return e;
}

enum err
token_cache_drop(const struct account *acc, struct errinfo *reterr)
{
	struct buf path;
	enum err e;

	buf_init(&path, PATH_MAX);
	e = token_cache_file(acc, 0, &path, reterr);
	if (e == ERR_OK && unlink(path.data) != 0 && errno != ENOENT) {
		e = errinfo_set(reterr, ERR_IO, "cannot remove '%s': %s",
			path.data, strerror(errno));
	}
	if (e == ERR_CONFIG && token_cache_off(acc)) {
		e = ERR_OK;
	}
	buf_release(&path);
	return e;
}


long
token_refresh_margin(const struct account *acc)
{
	return acc->oauth2_refresh_margin >= 0 ? acc->oauth2_refresh_margin :
		DEFAULT_MARGIN;
}

int
token_cache_lookup(const struct account *acc, struct buf *ret_token,
	time_t *ret_expires)
{
	struct token_cached c;
	struct buf path, endpoint, scope;
	char key[33];
	int hit = 0;

	if (token_cache_off(acc)) {
		return 0;
	}
	buf_init(&path, PATH_MAX);
	buf_init(&endpoint, PROVIDER_URL_MAX);
	buf_init(&scope, PROVIDER_SCOPE_MAX);
	buf_init_secret(&c.token, TOKEN_CACHE_MAX);
	c.expires_at = 0;
	c.lifetime = 0;
	if (provider_token_endpoint(acc, &endpoint, &scope, NULL) == ERR_OK &&
	    token_cache_file(acc, 0, &path, NULL) == ERR_OK) {
		token_grant_key(acc, endpoint.data, scope.data, key);
		if (token_cache_read(path.data, key, &c) &&
		    token_cache_fresh(&c, token_refresh_margin(acc), time(NULL))) {
			buf_reset(ret_token);
			hit = buf_append(ret_token, c.token.data, c.token.len) ==
				ERR_OK;
			if (hit && ret_expires != NULL) {
				*ret_expires = c.expires_at;
			}
		}
	}
	buf_release(&c.token);
	buf_release(&path);
	buf_release(&endpoint);
	buf_release(&scope);
	return hit;
}
