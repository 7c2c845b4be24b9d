/*
 * token_cache.c - the part of the token module that needs no network: the
 * access-token cache and its paths (provider presets: provider.c).  It is
 * linked into the main oasmtp binary, which never loads libcurl, json-c or
 * libsecret: a fresh cached token is read here, and a refresh is left to
 * oasmtp-token.
 *
 * Cache file format (one per grant and scope, paths in token_cache.h, mode
 * 0600, written atomically without
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

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "fileio.h"
#include "paths.h"
#include "provider.h"
#include "record.h"
#include "sha256.h"
#include "sysmode.h"
#include "util.h"

#define DEFAULT_MARGIN 600

/* --- paths ------------------------------------------------------------ */

int
token_cache_off(const struct account *acc)
{
	return acc->oauth2_token_cache != NULL &&
		strcmp(acc->oauth2_token_cache, "off") == 0;
}

/* digits (even, at most 64) hex digits of the SHA-256 of the NUL-terminated
 * parts: a name (sha256.h), so OpenSSL is not started for it. */
static void
digest_hex(const char *const *parts, size_t n, char *out, size_t digits)
{
	unsigned char md[SHA256_LEN];
	struct sha256 ctx;
	size_t i;

	sha256_init(&ctx);
	for (i = 0; i < n; i++) {
		sha256_update(&ctx, parts[i], strlen(parts[i]) + 1);
	}
	sha256_final(&ctx, md);
	util_hex(out, md, digits / 2 < sizeof(md) ? digits / 2 : sizeof(md));
}

/* The store as the grant id sees it: the default has one spelling. */
static const char *
store_spec(const struct account *acc)
{
	return acc->oauth2_token_store != NULL &&
		acc->oauth2_token_store[0] != '\0' ? acc->oauth2_token_store :
		"secret-service";
}

void
token_grant_id(const struct account *acc, char out[33])
{
	struct buf endpoint, scope;
	const char *parts[5];

	buf_init(&endpoint, PROVIDER_URL_MAX);
	buf_init(&scope, PROVIDER_SCOPE_MAX);
	if (provider_token_endpoint(acc, &endpoint, &scope, NULL) != ERR_OK) {
		/* a broken configuration has no grant to share: "" will do */
		buf_reset(&endpoint);
	}
	parts[0] = "oasmtp-grant";
	parts[1] = buf_cstr(&endpoint);
	parts[2] = acc->oauth2_client_id != NULL ? acc->oauth2_client_id : "";
	parts[3] = acc->user != NULL ? acc->user : "";
	parts[4] = store_spec(acc);
	digest_hex(parts, 5, out, 32);
	buf_release(&endpoint);
	buf_release(&scope);
}

/*
 * Make the oasmtp directory dir (the last component of a path whose
 * parent may be missing).  The parent may be shared or set up by someone
 * else (a 0775 ~/.local under umask 002): when it exists it is left as it
 * is, and the checks that matter are on our own directory.  When it is
 * missing (a fresh home), it and any missing directory above it are made
 * as for a secret file: mode 0700 under directories nobody else controls.
 */
static MUST_CHECK enum err
make_dir(struct buf *dir, struct errinfo *reterr)
{
	size_t cut = dir->len;
	int missing;
	enum err e;

	while (cut > 1 && dir->data[cut - 1] != '/') {
		cut--;
	}
	dir->data[cut - 1] = '\0';
	missing = access(dir->data, F_OK) != 0 && errno == ENOENT;
	dir->data[cut - 1] = '/';
	if (missing) {
		/* the directory of ".../oasmtp" is the parent */
		e = fileio_secret_dir(dir->data, geteuid(), 1, reterr);
		if (e != ERR_OK) {
			return e;
		}
	}
	return fileio_mkdir_private(dir->data, reterr);
}

enum err
token_grant_dir(const struct account *acc, int create, struct buf *ret_dir,
	struct errinfo *reterr)
{
	enum err e;

	buf_reset(ret_dir);
	if (acc->system) {
		/* the service's own directory, made by systemd-tmpfiles */
		e = buf_append_str(ret_dir, sysmode_state_dir());
		return e == ERR_OK ? ERR_OK :
			errinfo_set(reterr, e, "state directory path too long");
	}
	e = paths_state_dir(ret_dir);
	if (e == ERR_CONFIG) {
		return errinfo_set(reterr, ERR_CONFIG,
			"no directory for the OAuth2 grant's lock and token "
			"cache (set HOME or XDG_STATE_HOME)");
	}
	if (e == ERR_OK) {
		e = buf_append_str(ret_dir, "/oasmtp");
	}
	if (e != ERR_OK) {
		return errinfo_set(reterr, e, "state directory path too long");
	}
	return create ? make_dir(ret_dir, reterr) : ERR_OK;
}

/* dir + "/" + the grant id + tail into ret_path. */
static MUST_CHECK enum err
grant_file(const struct account *acc, int create, const char *tail,
	struct buf *ret_path, struct errinfo *reterr)
{
	char id[33];
	enum err e;

	e = token_grant_dir(acc, create, ret_path, reterr);
	if (e != ERR_OK) {
		return e;
	}
	token_grant_id(acc, id);
	e = buf_printf(ret_path, "/%s%s", id, tail);
	return e == ERR_OK ? ERR_OK :
		errinfo_set(reterr, e, "state file path too long");
}

/* The scope a cache is for: scope, else the account's own. */
static MUST_CHECK enum err
effective_scope(const struct account *acc, const char *scope,
	struct buf *ret_scope, struct errinfo *reterr)
{
	struct buf endpoint;
	enum err e;

	buf_reset(ret_scope);
	if (scope != NULL) {
		e = buf_append_str(ret_scope, scope);
		return e == ERR_OK ? ERR_OK :
			errinfo_set(reterr, e, "scope too long");
	}
	buf_init(&endpoint, PROVIDER_URL_MAX);
	e = provider_token_endpoint(acc, &endpoint, ret_scope, reterr);
	buf_release(&endpoint);
	return e;
}

enum err
token_cache_file(const struct account *acc, const char *scope, int create,
	struct buf *ret_path, struct errinfo *reterr)
{
	struct buf own, want;
	const char *parts[2];
	char sid[17];
	int other = 0;
	enum err e;

	buf_reset(ret_path);
	if (token_cache_off(acc)) {
		return errinfo_set(reterr, ERR_CONFIG,
			"the token cache of account '%s' is off", acc->name);
	}
	buf_init(&own, PROVIDER_SCOPE_MAX);
	buf_init(&want, PROVIDER_SCOPE_MAX);
	e = effective_scope(acc, NULL, &own, reterr);
	if (e == ERR_OK) {
		e = effective_scope(acc, scope, &want, reterr);
	}
	if (e == ERR_OK) {
		other = strcmp(buf_cstr(&own), buf_cstr(&want)) != 0;
		parts[0] = "oasmtp-scope";
		parts[1] = buf_cstr(&want);
		digest_hex(parts, 2, sid, 16);
	}
	buf_release(&own);
	buf_release(&want);
	if (e != ERR_OK) {
		return e;
	}
	if (acc->oauth2_token_cache != NULL && acc->oauth2_token_cache[0] != '\0') {
		e = buf_append_str(ret_path, acc->oauth2_token_cache);
		if (e == ERR_OK && other) {
			/* another scope of the grant: beside the given file */
			e = buf_printf(ret_path, "-%s", sid);
		}
		if (e != ERR_OK) {
			return errinfo_set(reterr, e,
				"oauth2_token_cache too long");
		}
		/* its directory, made when missing */
		return create ? fileio_secret_dir(ret_path->data, geteuid(), 1,
			reterr) : ERR_OK;
	}
	e = grant_file(acc, create, "-", ret_path, reterr);
	if (e == ERR_OK) {
		e = buf_printf(ret_path, "%s.token", sid);
		if (e != ERR_OK) {
			e = errinfo_set(reterr, e, "cache path too long");
		}
	}
	return e;
}

enum err
token_cache_path(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr)
{
	return token_cache_file(acc, NULL, 0, ret_path, reterr);
}

enum err
token_lock_file(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr)
{
	return grant_file(acc, 1, ".lock", ret_path, reterr);
}

enum err
token_grant_file(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr)
{
	return grant_file(acc, 1, ".grant", ret_path, reterr);
}

enum err
token_rescue_file(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr)
{
	return grant_file(acc, 1, ".rescue", ret_path, reterr);
}

int
token_legacy_file(const struct account *acc, int which, const char *suffix,
	struct buf *ret_path)
{
	const char *name = acc->name != NULL ? acc->name : "";
	int explicit_cache = acc->oauth2_token_cache != NULL &&
		acc->oauth2_token_cache[0] != '\0' && !token_cache_off(acc);
	enum err e;

	buf_reset(ret_path);
	if (explicit_cache) {
		/* 0.1.0 kept the lock and the grant record beside the cache */
		if (which != 0 || strcmp(suffix, ".token") == 0) {
			return 0;
		}
		e = buf_append_str(ret_path, acc->oauth2_token_cache);
		if (e == ERR_OK) {
			e = buf_append_str(ret_path, suffix);
		}
		return e == ERR_OK;
	}
	if (acc->system) {
		return 0;
	}
	e = which == 0 ? paths_runtime_dir(ret_path) :
		which == 1 ? paths_cache_dir(ret_path) : ERR_CONFIG;
	if (e == ERR_OK) {
		e = buf_append_str(ret_path, "/oasmtp/");
	}
	if (e == ERR_OK) {
		e = util_append_file_name(ret_path, name);
	}
	if (e == ERR_OK) {
		e = buf_append_str(ret_path, suffix);
	}
	if (e != ERR_OK) {
		buf_reset(ret_path);
	}
	return e == ERR_OK;
}

/* --- the cache -------------------------------------------------------- */

/* The key stored in a cache: the grant and the scope (as in 0.1.0). */
void
token_grant_key(const struct account *acc, const char *endpoint, const char *scope,
	char out[33])
{
	const char *parts[5];

	parts[0] = endpoint;
	parts[1] = acc->oauth2_client_id != NULL ? acc->oauth2_client_id : "";
	parts[2] = scope;
	parts[3] = acc->user != NULL ? acc->user : "";
	parts[4] = acc->oauth2_token_store != NULL ? acc->oauth2_token_store : "";
	digest_hex(parts, 5, out, 32);
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

void
token_cache_drop_legacy(const struct account *acc)
{
	struct buf path;
	int i;

	buf_init(&path, PATH_MAX);
	for (i = 0; i < 2; i++) {
		if (token_legacy_file(acc, i, ".token", &path)) {
			if (fileio_remove(path.data, NULL) != ERR_OK) {
				/* best effort: it is never read again */
			}
		}
	}
	buf_release(&path);
}

/* Remove every scope's cache of the grant in the state directory. */
static MUST_CHECK enum err
drop_scopes(const struct account *acc, struct errinfo *reterr)
{
	struct buf dir, path;
	struct dirent *de;
	char id[33];
	DIR *d;
	enum err e = ERR_OK;

	buf_init(&dir, PATH_MAX);
	buf_init(&path, PATH_MAX);
	token_grant_id(acc, id);
	if (token_grant_dir(acc, 0, &dir, NULL) != ERR_OK ||
	    (d = opendir(dir.data)) == NULL) {
		goto out;
	}
	while ((de = readdir(d)) != NULL && e == ERR_OK) {
		size_t n = strlen(de->d_name);

		if (strncmp(de->d_name, id, 32) != 0 || de->d_name[32] != '-' ||
		    n < 6 || strcmp(de->d_name + n - 6, ".token") != 0) {
			continue;
		}
		buf_reset(&path);
		if (buf_printf(&path, "%s/%s", dir.data, de->d_name) == ERR_OK) {
			e = fileio_remove(path.data, reterr);
		}
	}
	closedir(d);
out:
	buf_release(&dir);
	buf_release(&path);
	return e;
}

enum err
token_cache_drop(const struct account *acc, struct errinfo *reterr)
{
	struct buf path;
	enum err e;

	token_cache_drop_legacy(acc);
	if (token_cache_off(acc)) {
		return ERR_OK;
	}
	buf_init(&path, PATH_MAX);
	e = token_cache_file(acc, NULL, 0, &path, reterr);
	if (e == ERR_OK) {
		e = fileio_remove(path.data, reterr);
	}
	if (e == ERR_OK && (acc->oauth2_token_cache == NULL ||
		acc->oauth2_token_cache[0] == '\0')) {
		e = drop_scopes(acc, reterr);
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
token_cache_lookup_scope(const struct account *acc, const char *scope,
	struct buf *ret_token, time_t *ret_expires)
{
	struct token_cached c;
	struct buf path, endpoint, own, want;
	char key[33];
	int hit = 0, i;

	if (token_cache_off(acc)) {
		return 0;
	}
	buf_init(&path, PATH_MAX);
	buf_init(&endpoint, PROVIDER_URL_MAX);
	buf_init(&own, PROVIDER_SCOPE_MAX);
	buf_init(&want, PROVIDER_SCOPE_MAX);
	buf_init_secret(&c.token, TOKEN_CACHE_MAX);
	c.expires_at = 0;
	c.lifetime = 0;
	if (provider_token_endpoint(acc, &endpoint, &own, NULL) != ERR_OK ||
	    effective_scope(acc, scope, &want, NULL) != ERR_OK) {
		goto out;
	}
	token_grant_key(acc, endpoint.data, want.data, key);
	hit = token_cache_file(acc, scope, 0, &path, NULL) == ERR_OK &&
		token_cache_read(path.data, key, &c) &&
		token_cache_fresh(&c, token_refresh_margin(acc), time(NULL));
	/* 0.1.0 kept the account's own scope under the account's name */
	for (i = 0; !hit && i < 2 && strcmp(own.data, want.data) == 0; i++) {
		hit = token_legacy_file(acc, i, ".token", &path) &&
			token_cache_read(path.data, key, &c) &&
			token_cache_fresh(&c, token_refresh_margin(acc),
				time(NULL));
	}
	if (hit) {
		buf_reset(ret_token);
		hit = buf_append(ret_token, c.token.data, c.token.len) ==
			ERR_OK;
		if (hit && ret_expires != NULL) {
			*ret_expires = c.expires_at;
		}
	}
out:
	buf_release(&c.token);
	buf_release(&path);
	buf_release(&endpoint);
	buf_release(&own);
	buf_release(&want);
	return hit;
}

int
token_cache_lookup(const struct account *acc, struct buf *ret_token,
	time_t *ret_expires)
{
	return token_cache_lookup_scope(acc, NULL, ret_token, ret_expires);
}
