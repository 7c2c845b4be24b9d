/*
 * token.c - the token broker: lock, refresh, rotation; contract in token.h.
 * The cache format and paths are in token_cache.c.
 */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "api.h"
#include "provider.h"
#include "buf.h"
#include "eval.h"
#include "fileio.h"
#include "oauth_http.h"
#include "tstore.h"
#include "util.h"

#define LOCK_POLL_MS 20

/* --- the lock ---------------------------------------------------------- */

static MUST_CHECK enum err
lock_take(const char *path, long wait_ms, int *ret_fd, struct errinfo *reterr)
{
	int64_t deadline = util_now_ms() + wait_ms;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
		0600);
	if (fd < 0) {
		return errinfo_set(reterr, ERR_IO, "cannot open lock file '%s': %s",
			path, strerror(errno));
	}
	for (;;) {
		struct timespec ts = { 0, LOCK_POLL_MS * 1000000L };

		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			*ret_fd = fd;
			return ERR_OK;
		}
		if (errno != EWOULDBLOCK && errno != EINTR) {
			enum err e = errinfo_set(reterr, ERR_IO,
				"cannot lock '%s': %s", path, strerror(errno));

			close(fd);
			return e;
		}
		if (util_now_ms() >= deadline) {
			close(fd);
			return errinfo_set(reterr, ERR_TOKEN_TEMP,
				"another oasmtp is refreshing the token and did "
				"not finish within %ld s (lock '%s')",
				wait_ms / 1000, path);
		}
		nanosleep(&ts, NULL);
	}
}

static void
lock_release(int fd)
{
	if (fd >= 0) {
		flock(fd, LOCK_UN);
		close(fd);
	}
}

/* --- the refresh ------------------------------------------------------ */

struct ctx {
	const struct account *acc;
	const char *want_scope;		/* as asked for; NULL: the account's */
	struct buf endpoint;
	struct buf scope;
	struct buf client_secret;	/* secret */
	char key[33];
	long http_timeout_ms;
};

enum err
token_client_secret(const struct account *acc, struct buf *ret_secret,
	struct errinfo *reterr)
{
	enum err e;

	buf_reset(ret_secret);
	if (acc->oauth2_client_secret != NULL) {
		e = buf_append_str(ret_secret, acc->oauth2_client_secret);
		return e == ERR_OK ? ERR_OK :
			errinfo_set(reterr, ERR_CONFIG,
				"oauth2_client_secret too long");
	}
	if (acc->oauth2_client_secret_eval == NULL) {
		return ERR_OK;
	}
	e = eval_run(acc->oauth2_client_secret_eval,
		account_helper_timeout_s(acc), OAUTH_CLIENT_SECRET_MAX,
		ret_secret, reterr);
	if (e != ERR_OK) {
		errinfo_prefix(reterr, "oauth2_client_secret_eval of account "
			"'%s': ", acc->name);
		e = errinfo_recode(reterr, e == ERR_TIMEOUT ? ERR_TOKEN_TEMP :
			e == ERR_NOMEM ? ERR_NOMEM : ERR_CONFIG);
	}
	return e;
}

static MUST_CHECK enum err
client_secret(struct ctx *x, struct errinfo *reterr)
{
	return token_client_secret(x->acc, &x->client_secret, reterr);
}

static MUST_CHECK enum err
refresh_with(struct ctx *x, const char *rt, struct oauth_tokens *ret,
	struct errinfo *reterr)
{
	struct oauth_request req;

	memset(&req, 0, sizeof(req));
	req.account = x->acc->name;
	req.token_endpoint = x->endpoint.data;
	req.client_id = x->acc->oauth2_client_id;
	req.client_secret = x->client_secret.data;
	req.refresh_token = rt;
	req.scope = x->scope.data;
	req.ca_file = x->acc->oauth2_ca_file;
	req.timeout_ms = x->http_timeout_ms;
	req.connect_timeout_ms = x->http_timeout_ms < 15000 ?
		x->http_timeout_ms : 15000;
	return oauth_refresh(&req, ret, reterr);
}

/* Replace the contents of the secret buf dst with src's. */
static MUST_CHECK enum err
copy_token(struct buf *dst, const struct buf *src, struct errinfo *reterr)
{
	buf_reset(dst);
	if (buf_append(dst, src->data, src->len) != ERR_OK) {
		return errinfo_set(reterr, ERR_LIMIT,
			"refresh token too large");
	}
	return ERR_OK;
}

/*
 * After the stored refresh token got invalid_grant: re-read the store
 * (another process or a copy of the store may have rotated it meanwhile)
 * and try its token if it changed, once.  rt is the stored token, updated
 * by the re-read.  A token whose successor we received is never presented
 * again, not even the one we last rotated away: with reuse detection it
 * would end the grant, and with it the successor wherever that still works
 * (doc/design.md, Tokens).
 */
static MUST_CHECK enum err
refresh_again(struct ctx *x, struct tstore *ts, struct buf *rt,
	time_t *ret_issued, struct oauth_tokens *tok, struct errinfo *reterr)
{
	struct buf reread;
	enum err e = ERR_REAUTH;

	buf_init_secret(&reread, OAUTH_BODY_MAX);
	if (tstore_load(ts, &reread, NULL) == ERR_OK &&
	    strcmp(reread.data, rt->data) != 0) {
		if (copy_token(rt, &reread, reterr) != ERR_OK) {
			e = ERR_LIMIT;
			goto out;
		}
		*ret_issued = time(NULL);
		e = refresh_with(x, rt->data, tok, reterr);
	}
out:
	buf_release(&reread);
	return e;
}

/*
 * The rescue file (token_cache.h): a rotated refresh token that the store
 * would not take.  It is newer than what the store holds, so while it
 * exists it is the one presented.
 */
static int
rescue_read(const struct account *acc, struct buf *ret_rt)
{
	struct fileio_private rules = {
		.what = "rescued refresh token", .owner = geteuid(),
		.forbidden = 077, .follow = 0, .max = OAUTH_BODY_MAX,
		.refused = ERR_DATA,
	};
	struct errinfo ei = ERRINFO_INIT;
	struct buf path;
	int exists = 0, ok;

	buf_init(&path, PATH_MAX);
	buf_reset(ret_rt);
	ok = token_rescue_file(acc, &path, &ei) == ERR_OK &&
		fileio_read_private(AT_FDCWD, buf_cstr(&path), &rules, ret_rt,
		&exists, &ei) == ERR_OK && exists && ret_rt->len > 0;
	if (!ok) {
		buf_reset(ret_rt);
	}
	errinfo_release(&ei);
	buf_release(&path);
	return ok;
}

static MUST_CHECK enum err
rescue_write(const struct account *acc, const char *rt, struct buf *ret_path,
	struct errinfo *reterr)
{
	enum err e = token_rescue_file(acc, ret_path, reterr);

	return e != ERR_OK ? e : fileio_write_private(buf_cstr(ret_path), rt,
		strlen(rt), 1, reterr);
}

static void
rescue_drop(const struct account *acc)
{
	struct errinfo ei = ERRINFO_INIT;
	struct buf path;

	buf_init(&path, PATH_MAX);
	if (token_rescue_file(acc, &path, &ei) == ERR_OK) {
		(void)unlink(buf_cstr(&path));
	}
	errinfo_release(&ei);
	buf_release(&path);
}

/*
 * The store would not take the rotated token tok: keep it in the rescue
 * file instead (the one presented must never be sent again) and warn.
 * ERR_OK when it is kept; else the store's error (reterr) stands.
 */
static MUST_CHECK enum err
rescue(struct ctx *x, struct tstore *ts, const char *tok,
	struct token_info *info, struct errinfo *reterr)
{
	struct errinfo rei = ERRINFO_INIT;
	struct buf path;
	enum err e;

	buf_init(&path, PATH_MAX);
	e = rescue_write(x->acc, tok, &path, &rei);
	if (e == ERR_OK) {
		snprintf(info->warning, sizeof(info->warning),
			"the %s store of account '%s' did not take the "
			"rotated refresh token (%s); it is kept in %s and "
			"used from there until the store takes it",
			ts->ops->name, x->acc->name, reterr != NULL ?
			errinfo_msg(reterr) : "read-only", buf_cstr(&path));
		errinfo_release(reterr);
	}
	errinfo_release(&rei);
	buf_release(&path);
	return e;
}

/*
 * Persist what the refresh taught us about the refresh token (used: the
 * stored one, which was presented).  A rotated token replaces it with a
 * plain save, which keeps no previous token: nothing would present that
 * one again.  Unrotated, a previous token an older oasmtp kept is dropped
 * (best effort).
 */
static MUST_CHECK enum err
persist(struct ctx *x, struct tstore *ts, const char *used,
	const struct oauth_tokens *tok,
	struct token_info *info, struct errinfo *reterr)
{
	enum err e;

	if (!tstore_is_writable(ts)) {
		if (tok->refresh_token.len > 0 &&
		    strcmp(tok->refresh_token.data, used) != 0 &&
		    rescue(x, ts, tok->refresh_token.data, info, NULL) !=
		    ERR_OK) {
			snprintf(info->warning, sizeof(info->warning),
				"the token endpoint rotated the refresh token "
				"of account '%s' but its %s store is "
				"read-only: store the new one or the grant "
				"may expire",
				x->acc->name, ts->ops->name);
		}
		return ERR_OK;
	}
	if (tok->refresh_token.len == 0 ||
	    strcmp(tok->refresh_token.data, used) == 0) {
		if (tstore_drop_previous(ts, NULL) != ERR_OK) {
			/* unused anyway; the next save drops it */
		}
		return ERR_OK;
	}
	e = tstore_save(ts, tok->refresh_token.data, reterr);
	if (e != ERR_OK) {
		errinfo_prefix(reterr, "cannot save the rotated refresh token "
			"of account '%s': ", x->acc->name);
		if (rescue(x, ts, tok->refresh_token.data, info, reterr) ==
		    ERR_OK) {
			return ERR_OK;
		}
		return errinfo_recode(reterr, ERR_TOKEN_TEMP);
	}
	rescue_drop(x->acc);
	info->rotated = 1;
	return ERR_OK;
}

/*
 * Holding the lock: load the refresh token, refresh, persist a rotated
 * refresh token (it replaces the one presented, which is never sent again), fill
 * c.  The new access token is put into c only after the rotated refresh
 * token was saved.
 */
static MUST_CHECK enum err
refresh_locked(struct ctx *x, struct token_cached *c, struct token_info *info,
	struct errinfo *reterr)
{
	struct tstore *ts = NULL;
	struct buf rt, rescued;
	struct oauth_tokens tok;
	time_t issued;
	enum err e;

	buf_init_secret(&rt, OAUTH_BODY_MAX);
	buf_init_secret(&rescued, OAUTH_BODY_MAX);
	oauth_tokens_init(&tok);
	e = tstore_open(x->acc, &ts, reterr);
	if (e == ERR_OK) {
		e = tstore_load(ts, &rt, reterr);
	}
	if (e == ERR_OK && rescue_read(x->acc, &rescued)) {
		/* newer than the store's, which was presented already */
		buf_reset(&rt);
		e = buf_append(&rt, rescued.data, rescued.len);
		if (e != ERR_OK) {
			e = errinfo_set(reterr, e, "refresh token too large");
		} else if (tstore_is_writable(ts) &&
		    tstore_save(ts, buf_cstr(&rt), NULL) == ERR_OK) {
			rescue_drop(x->acc);
		}
	}
	if (e == ERR_OK) {
		e = client_secret(x, reterr);
	}
	if (e != ERR_OK) {
		goto out;
	}
	issued = time(NULL);
	e = refresh_with(x, rt.data, &tok, reterr);
	if (e == ERR_REAUTH) {
		e = refresh_again(x, ts, &rt, &issued, &tok, reterr);
	}
	if (e == ERR_OK) {
		e = persist(x, ts, rt.data, &tok, info, reterr);
	}
	if (e != ERR_OK) {
		goto out;
	}
	buf_reset(&c->token);
	e = buf_append(&c->token, tok.access_token.data, tok.access_token.len);
	if (e != ERR_OK) {
		e = errinfo_set(reterr, e, "access token too large");
		goto out;
	}
	c->lifetime = tok.expires_in;
	c->expires_at = issued + (time_t)tok.expires_in;
	info->refreshed = 1;
out:
	oauth_tokens_release(&tok);
	buf_release(&rt);
	buf_release(&rescued);
	tstore_free(ts);
	return e;
}

static MUST_CHECK enum err
ctx_init(struct ctx *x, const struct account *acc, const char *scope,
	struct errinfo *reterr)
{
	enum err e;

	memset(x, 0, sizeof(*x));
	x->acc = acc;
	x->want_scope = scope;
	buf_init(&x->endpoint, PROVIDER_URL_MAX);
	buf_init(&x->scope, PROVIDER_SCOPE_MAX);
	buf_init_secret(&x->client_secret, OAUTH_CLIENT_SECRET_MAX);
	x->http_timeout_ms = (long)account_helper_timeout_s(acc) * 1000;
	if (x->http_timeout_ms > 120000) {
		x->http_timeout_ms = 120000;
	}
	if (acc->oauth2_client_id == NULL || acc->oauth2_client_id[0] == '\0') {
		return errinfo_set(reterr, ERR_CONFIG,
			"account '%s' has no oauth2_client_id", acc->name);
	}
	e = provider_token_endpoint(acc, &x->endpoint, &x->scope, reterr);
	if (e == ERR_OK && scope == NULL) {
		/* an API-only grant has no SMTP scope: its own is the API's */
		e = api_account_scope(acc, &x->scope, reterr);
	}
	if (e == ERR_OK && scope != NULL) {
		buf_reset(&x->scope);
		if (buf_append_str(&x->scope, scope) != ERR_OK) {
			e = errinfo_set(reterr, ERR_CONFIG, "scope too long");
		}
	}
	if (e == ERR_OK) {
		token_grant_key(acc, x->endpoint.data, x->scope.data, x->key);
	}
	return e;
}

static void
ctx_release(struct ctx *x)
{
	buf_release(&x->endpoint);
	buf_release(&x->scope);
	buf_release(&x->client_secret);
}

static MUST_CHECK enum err
hand_over(const struct token_cached *c, struct buf *ret_token,
	struct token_info *info, struct token_info *ret_info,
	struct errinfo *reterr)
{
	buf_reset(ret_token);
	if (buf_append(ret_token, c->token.data, c->token.len) != ERR_OK) {
		buf_reset(ret_token);
		return errinfo_set(reterr, ERR_LIMIT, "access token too large");
	}
	info->expires_at = c->expires_at;
	if (ret_info != NULL) {
		*ret_info = *info;
	}
	return ERR_OK;
}

/*
 * The fast path only: 1 when a fresh cached token was handed over (a 0.1.0
 * cache of the account's own scope counts too).
 */
static int
fast_path(struct ctx *x, unsigned flags, struct buf *ret_token,
	struct token_info *ret_info)
{
	struct token_info info;
	struct token_cached c;
	int hit = 0;

	if ((flags & TOKEN_FORCE_REFRESH) || token_cache_off(x->acc)) {
		return 0;
	}
	memset(&info, 0, sizeof(info));
	buf_init_secret(&c.token, TOKEN_CACHE_MAX);
	c.lifetime = 0;
	if (token_cache_lookup_scope(x->acc, x->want_scope, &c.token,
		&c.expires_at)) {
		hit = hand_over(&c, ret_token, &info, ret_info, NULL) == ERR_OK;
	}
	buf_release(&c.token);
	return hit;
}

enum err
token_get_scope(const struct account *acc, const char *scope, unsigned flags,
	struct buf *ret_token, struct token_info *ret_info,
	struct errinfo *reterr)
{
	struct token_info info;
	struct ctx x;
	struct token_cached c;
	struct buf path, lpath, rejected;
	int use_cache = !token_cache_off(acc);
	int lock_fd = -1;
	enum err e;

	memset(&info, 0, sizeof(info));
	buf_init(&path, PATH_MAX);
	buf_init(&lpath, PATH_MAX);
	buf_init_secret(&rejected, TOKEN_CACHE_MAX);
	buf_init_secret(&c.token, TOKEN_CACHE_MAX);
	c.expires_at = 0;
	c.lifetime = 0;
	e = ctx_init(&x, acc, scope, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	if (fast_path(&x, flags, ret_token, ret_info)) {
		goto out;
	}

	if (use_cache) {
		e = token_cache_file(acc, scope, 1, &path, reterr);
		if (e != ERR_OK) {
			goto out;
		}
		/* remember what we saw, to tell a sibling's new token apart */
		if (token_cache_read(path.data, x.key, &c)) {
			e = buf_append(&rejected, c.token.data, c.token.len);
			if (e != ERR_OK) {
				e = errinfo_set(reterr, e, "token too large");
				goto out;
			}
		}
	}
	e = token_lock_file(acc, &lpath, reterr);
	if (e == ERR_OK) {
		e = lock_take(lpath.data, x.http_timeout_ms * 2 + 10000, &lock_fd,
			reterr);
	}
	if (e != ERR_OK) {
		goto out;
	}
	if (use_cache && token_cache_read(path.data, x.key, &c) &&
	    token_cache_fresh(&c, token_refresh_margin(acc), time(NULL)) &&
	    (!(flags & TOKEN_FORCE_REFRESH) ||
		strcmp(c.token.data, rejected.data) != 0)) {
		info.adopted = strcmp(c.token.data, rejected.data) != 0;
		e = hand_over(&c, ret_token, &info, ret_info, reterr);
		goto out;
	}
	e = refresh_locked(&x, &c, &info, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	if (use_cache &&
	    token_cache_write(path.data, x.key, &c, NULL) == ERR_OK &&
	    scope == NULL) {
		/* best effort: a lost cache only costs another refresh */
		token_cache_drop_legacy(acc);
	}
	e = hand_over(&c, ret_token, &info, ret_info, reterr);
out:
	lock_release(lock_fd);
	ctx_release(&x);
	buf_release(&c.token);
	buf_release(&rejected);
	buf_release(&path);
	buf_release(&lpath);
	return e;
}

enum err
token_get_ex(const struct account *acc, unsigned flags, struct buf *ret_token,
	struct token_info *ret_info, struct errinfo *reterr)
{
	return token_get_scope(acc, NULL, flags, ret_token, ret_info, reterr);
}

enum err
token_get(const struct account *acc, unsigned flags, struct buf *ret_token,
	struct errinfo *reterr)
{
	return token_get_scope(acc, NULL, flags, ret_token, NULL, reterr);
}

/* --- import ----------------------------------------------------------- */

/* Holding the lock: refresh with rt, save what to keep, cache the token. */
static MUST_CHECK enum err
import_verified(struct ctx *x, struct tstore *ts, const char *rt,
	struct token_info *info, struct errinfo *reterr)
{
	struct oauth_tokens tok;
	struct token_cached c;
	struct buf path;
	time_t issued = time(NULL);
	const char *keep;
	enum err e;

	oauth_tokens_init(&tok);
	buf_init(&path, PATH_MAX);
	buf_init_secret(&c.token, TOKEN_CACHE_MAX);
	e = client_secret(x, reterr);
	if (e == ERR_OK) {
		e = refresh_with(x, rt, &tok, reterr);
		if (e != ERR_OK) {
			errinfo_prefix(reterr, "import: the refresh token did not "
				"work, nothing was stored: ");
		}
	}
	if (e != ERR_OK) {
		goto out;
	}
	info->refreshed = 1;
	keep = rt;
	if (tok.refresh_token.len > 0 && strcmp(tok.refresh_token.data, rt) != 0) {
		keep = tok.refresh_token.data;
		info->rotated = 1;
	}
	e = tstore_save(ts, keep, reterr);
	if (e != ERR_OK) {
		if (info->rotated) {
			errinfo_prefix(reterr, "import: the token endpoint "
				"rotated the refresh token, and the new one could "
				"not be saved (authorize again): ");
		}
		goto out;
	}
	if (token_cache_off(x->acc) ||
	    buf_append(&c.token, tok.access_token.data,
		tok.access_token.len) != ERR_OK) {
		goto out;
	}
	c.lifetime = tok.expires_in;
	c.expires_at = issued + (time_t)tok.expires_in;
	info->expires_at = c.expires_at;
	if (token_cache_file(x->acc, NULL, 1, &path, NULL) != ERR_OK ||
	    token_cache_write(path.data, x->key, &c, NULL) != ERR_OK) {
		/* best effort: the next send refreshes */
		if (token_cache_drop(x->acc, NULL) != ERR_OK) {
			/* a stale cache of another grant is a miss anyway */
		}
	}
out:
	oauth_tokens_release(&tok);
	buf_release(&c.token);
	buf_release(&path);
	return e;
}

enum err
token_import(const struct account *acc, const char *rt, int verify,
	struct token_info *ret_info, struct errinfo *reterr)
{
	struct token_info info;
	struct tstore *ts = NULL;
	struct ctx x;
	struct buf lpath;
	int lock_fd = -1;
	enum err e;

	memset(&info, 0, sizeof(info));
	buf_init(&lpath, PATH_MAX);
	e = ctx_init(&x, acc, NULL, reterr);
	if (e == ERR_OK) {
		e = token_lock_file(acc, &lpath, reterr);
	}
	if (e == ERR_OK) {
		e = lock_take(lpath.data, x.http_timeout_ms * 2 + 10000,
			&lock_fd, reterr);
	}
	if (e == ERR_OK) {
		e = tstore_open(acc, &ts, reterr);
	}
	if (e == ERR_OK && !tstore_is_writable(ts)) {
		e = errinfo_set(reterr, ERR_CONFIG, "import: the %s token "
			"store of account '%s' is read-only: store the token "
			"there yourself", ts->ops->name, acc->name);
	}
	if (e == ERR_OK && verify) {
		struct buf old;

		/*
		 * A store that cannot take the token must say so before the
		 * refresh: a rotating provider consumes rt.
		 */
		buf_init_secret(&old, OAUTH_BODY_MAX);
		e = tstore_load(ts, &old, reterr);
		buf_release(&old);
		if (e == ERR_REAUTH) {
			errinfo_release(reterr);
			e = ERR_OK;
		}
		if (e == ERR_OK) {
			e = import_verified(&x, ts, rt, &info, reterr);
		}
	} else if (e == ERR_OK) {
		e = tstore_save(ts, rt, reterr);
		if (e == ERR_OK && token_cache_drop(acc, NULL) != ERR_OK) {
			/* the old grant's token is refused by the server */
		}
	}
	if (e == ERR_OK && ret_info != NULL) {
		*ret_info = info;
	}
	tstore_free(ts);
	lock_release(lock_fd);
	ctx_release(&x);
	buf_release(&lpath);
	return e;
}

/* --- prefetch ----------------------------------------------------------- */

struct token_prefetch {
	const struct account *acc;
	unsigned flags;
	pthread_t thread;
	int threaded;
	enum err result;
	struct buf token;	/* secret */
	struct errinfo ei;
};

static void *
prefetch_main(void *arg)
{
	struct token_prefetch *pf = arg;

	pf->result = token_get(pf->acc, pf->flags, &pf->token, &pf->ei);
	return NULL;
}

enum err
token_prefetch_start(const struct account *acc, unsigned flags,
	struct token_prefetch **ret_pf, struct errinfo *reterr)
{
	struct token_prefetch *pf = calloc(1, sizeof(*pf));
	struct ctx x;
	int rc;

	if (pf == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	pf->acc = acc;
	pf->flags = flags;
	buf_init_secret(&pf->token, TOKEN_CACHE_MAX);
	errinfo_init(&pf->ei);
	/* a fresh cached token needs no thread */
	if (ctx_init(&x, acc, NULL, NULL) == ERR_OK) {
		if (fast_path(&x, flags, &pf->token, NULL)) {
			ctx_release(&x);
			pf->result = ERR_OK;
			*ret_pf = pf;
			return ERR_OK;
		}
	}
	ctx_release(&x);
	rc = pthread_create(&pf->thread, NULL, prefetch_main, pf);
	if (rc != 0) {
		buf_release(&pf->token);
		free(pf);
		return errinfo_set(reterr, ERR_INTERNAL,
			"cannot start the token thread: %s", strerror(rc));
	}
	pf->threaded = 1;
	*ret_pf = pf;
	return ERR_OK;
}

enum err
token_prefetch_join(struct token_prefetch *pf, struct buf *ret_token,
	struct errinfo *reterr)
{
	enum err e;

	if (pf->threaded) {
		pthread_join(pf->thread, NULL);
	}
	e = pf->result;
	if (e == ERR_OK) {
		buf_reset(ret_token);
		if (buf_append(ret_token, pf->token.data, pf->token.len) !=
			ERR_OK) {
			buf_reset(ret_token);
			e = errinfo_set(reterr, ERR_LIMIT, "access token too large");
		}
	} else {
		errinfo_copy(reterr, &pf->ei);
	}
	errinfo_release(&pf->ei);
	buf_release(&pf->token);
	free(pf);
	return e;
}
