/*
 * token.c - the token broker; policy and contract in token.h.
 *
 * Cache file format (one per account, mode 0600, written atomically without
 * fsync: losing it only costs one refresh):
 *
 *   oasmtp-token-cache 1
 *   key <32 hex digits>        SHA-256 prefix of endpoint, client id, scope,
 *                              user and store: a cache written for another
 *                              grant is ignored
 *   expires <unix seconds>
 *   lifetime <seconds>         expires_in as issued
 *   token <access token>
 *
 * A cache file that is not ours (wrong owner, group/other bits, bad format)
 * is treated as a miss and replaced at the next refresh.
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

#include <openssl/evp.h>

#include "account.h"
#include "buf.h"
#include "eval.h"
#include "oauth_http.h"
#include "tstore.h"
#include "util.h"

#define CACHE_MAX (OAUTH_BODY_MAX + 512)
#define DEFAULT_MARGIN 600
#define LOCK_POLL_MS 20

/* Provider presets: data only, never another application's client id. */
struct preset {
	enum oauth2_provider provider;
	const char *endpoint_head;	/* tenant (if any) goes between */
	const char *endpoint_tail;	/* NULL: no tenant */
	const char *scope;
};

static const struct preset presets[] = {
	{ OAUTH2_GOOGLE, "https://oauth2.googleapis.com/token", NULL,
	  "https://mail.google.com/" },
	{ OAUTH2_MICROSOFT, "https://login.microsoftonline.com/",
	  "/oauth2/v2.0/token",
	  "https://outlook.office.com/SMTP.Send offline_access" },
};

static const struct preset *
preset_for(enum oauth2_provider p)
{
	size_t i;

	for (i = 0; i < sizeof(presets) / sizeof(presets[0]); i++) {
		if (presets[i].provider == p) {
			return &presets[i];
		}
	}
	return NULL;
}

static int
tenant_ok(const char *t)
{
	if (t[0] == '\0') {
		return 0;
	}
	for (; *t != '\0'; t++) {
		unsigned char c = (unsigned char)*t;

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '.' ||
			c == '_')) {
			return 0;
		}
	}
	return 1;
}

enum err
token_endpoint(const struct account *acc, struct buf *ret_endpoint,
	struct buf *ret_scope, struct errinfo *reterr)
{
	const struct preset *p = preset_for(acc->oauth2_provider);
	enum err e = ERR_OK;

	buf_reset(ret_endpoint);
	buf_reset(ret_scope);
	if (acc->oauth2_token_endpoint != NULL &&
	    acc->oauth2_token_endpoint[0] != '\0') {
		e = buf_append_str(ret_endpoint, acc->oauth2_token_endpoint);
	} else if (p != NULL && p->endpoint_tail == NULL) {
		e = buf_append_str(ret_endpoint, p->endpoint_head);
	} else if (p != NULL) {
		const char *tenant = acc->oauth2_tenant != NULL ?
			acc->oauth2_tenant : "common";

		if (!tenant_ok(tenant)) {
			return errinfo_set(reterr, ERR_CONFIG,
				"oauth2_tenant '%s' of account '%s' is not a "
				"tenant name or id", tenant, acc->name);
		}
		e = buf_printf(ret_endpoint, "%s%s%s", p->endpoint_head,
			tenant, p->endpoint_tail);
	} else {
		return errinfo_set(reterr, ERR_CONFIG,
			"account '%s' has no oauth2_token_endpoint (set it, or "
			"oauth2_provider google|microsoft)", acc->name);
	}
	if (e == ERR_OK) {
		if (acc->oauth2_scope != NULL) {
			e = buf_append_str(ret_scope, acc->oauth2_scope);
		} else if (p != NULL) {
			e = buf_append_str(ret_scope, p->scope);
		}
	}
	if (e != ERR_OK) {
		return errinfo_set(reterr, e, "oauth2 settings of account '%s' "
			"too long", acc->name);
	}
	return ERR_OK;
}

/* --- paths ------------------------------------------------------------ */

static int
cache_off(const struct account *acc)
{
	return acc->oauth2_token_cache != NULL &&
		strcmp(acc->oauth2_token_cache, "off") == 0;
}

static enum err
mkdir_private(const char *dir, struct errinfo *reterr)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		return errinfo_set(reterr, ERR_IO, "cannot create '%s': %s", dir,
			strerror(errno));
	}
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid()) {
		return errinfo_set(reterr, ERR_CONFIG,
			"'%s' is not a directory owned by you", dir);
	}
	return ERR_OK;
}

/*
 * The default state directory: $XDG_RUNTIME_DIR/oasmtp, else
 * ${XDG_CACHE_HOME:-$HOME/.cache}/oasmtp.  With create, missing directories
 * are made with mode 0700.
 */
static enum err
state_dir(int create, struct buf *ret_dir, struct errinfo *reterr)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	const char *ch = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	enum err e;

	buf_reset(ret_dir);
	if (rt != NULL && rt[0] == '/') {
		e = buf_append_str(ret_dir, rt);
	} else if (ch != NULL && ch[0] == '/') {
		e = buf_append_str(ret_dir, ch);
	} else if (home != NULL && home[0] == '/') {
		e = buf_printf(ret_dir, "%s/.cache", home);
	} else {
		return errinfo_set(reterr, ERR_CONFIG,
			"no directory for the token cache (set XDG_RUNTIME_DIR "
			"or HOME, or oauth2_token_cache)");
	}
	if (e == ERR_OK && create) {
		e = mkdir_private(ret_dir->data, reterr);
		if (e != ERR_OK) {
			return e;
		}
	}
	if (e == ERR_OK) {
		e = buf_append_str(ret_dir, "/oasmtp");
	}
	if (e != ERR_OK) {
		return errinfo_set(reterr, e, "cache directory path too long");
	}
	if (create) {
		return mkdir_private(ret_dir->data, reterr);
	}
	return ERR_OK;
}

/* Account names become file names: keep a safe set, %XX the rest. */
static enum err
append_name(struct buf *b, const char *name)
{
	enum err e = ERR_OK;
	const char *s;

	for (s = name; *s != '\0' && e == ERR_OK; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '@' || c == '+' || (c == '.' && s != name)) {
			e = buf_putc(b, (char)c);
		} else {
			e = buf_printf(b, "%%%02X", c);
		}
	}
	return e;
}

static enum err
cache_path(const struct account *acc, int create, struct buf *ret_path,
	struct errinfo *reterr)
{
	enum err e;

	buf_reset(ret_path);
	if (cache_off(acc)) {
		return errinfo_set(reterr, ERR_CONFIG,
			"the token cache of account '%s' is off", acc->name);
	}
	if (acc->oauth2_token_cache != NULL && acc->oauth2_token_cache[0] != '\0') {
		e = buf_append_str(ret_path, acc->oauth2_token_cache);
		return e == ERR_OK ? ERR_OK :
			errinfo_set(reterr, e, "oauth2_token_cache too long");
	}
	e = state_dir(create, ret_path, reterr);
	if (e != ERR_OK) {
		return e;
	}
	e = buf_putc(ret_path, '/');
	if (e == ERR_OK) {
		e = append_name(ret_path, acc->name != NULL ? acc->name : "");
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
	return cache_path(acc, 0, ret_path, reterr);
}

static enum err
lock_path(const struct account *acc, struct buf *ret_path,
	struct errinfo *reterr)
{
	enum err e;

	if (!cache_off(acc)) {
		e = cache_path(acc, 1, ret_path, reterr);
	} else {
		e = state_dir(1, ret_path, reterr);
		if (e == ERR_OK) {
			e = buf_putc(ret_path, '/');
		}
		if (e == ERR_OK) {
			e = append_name(ret_path, acc->name != NULL ?
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

struct cached {
	struct buf token;	/* secret */
	time_t expires_at;
	long lifetime;
};

/* A short fingerprint of everything that identifies the grant. */
static void
grant_key(const struct account *acc, const char *endpoint, const char *scope,
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

static const char *
line_value(const char *p, const char *key)
{
	size_t n = strlen(key);

	if (strncmp(p, key, n) == 0 && p[n] == ' ') {
		return p + n + 1;
	}
	return NULL;
}

/*
 * Read the cache into c.  Returns 1 on a well-formed cache for this grant,
 * 0 otherwise (missing, foreign, malformed: all just a miss).
 */
static int
cache_read(const char *path, const char *key, struct cached *c)
{
	struct buf raw;
	struct stat st;
	char chunk[2048];
	char *p, *nl;
	int have_key = 0, have_exp = 0, have_tok = 0, lineno = 0;
	int fd, ok = 0;

	buf_reset(&c->token);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0) {
		return 0;
	}
	buf_init_secret(&raw, CACHE_MAX);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 || (n > 0 && buf_append(&raw, chunk, (size_t)n) !=
				ERR_OK)) {
			goto out;
		}
		if (n == 0) {
			break;
		}
	}
	if (memchr(raw.data, '\0', raw.len) != NULL) {
		goto out;
	}
	for (p = raw.data; *p != '\0'; p = nl + 1) {
		const char *v;
		long n;

		nl = strchr(p, '\n');
		if (nl == NULL) {
			goto out;	/* every line ends in LF: else truncated */
		}
		*nl = '\0';
		lineno++;
		if (lineno == 1) {
			if (strcmp(p, "oasmtp-token-cache 1") != 0) {
				goto out;
			}
		} else if ((v = line_value(p, "key")) != NULL) {
			have_key = strcmp(v, key) == 0;
		} else if ((v = line_value(p, "expires")) != NULL) {
			if (util_parse_long(v, 0, LONG_MAX, &n) != 0) {
				goto out;
			}
			c->expires_at = (time_t)n;
			have_exp = 1;
		} else if ((v = line_value(p, "lifetime")) != NULL) {
			if (util_parse_long(v, 0, LONG_MAX, &n) != 0) {
				goto out;
			}
			c->lifetime = n;
		} else if ((v = line_value(p, "token")) != NULL) {
			buf_reset(&c->token);
			if (v[0] == '\0' ||
			    buf_append_str(&c->token, v) != ERR_OK) {
				goto out;
			}
			have_tok = 1;
		}
	}
	ok = have_key && have_exp && have_tok;
out:
	util_wipe(chunk, sizeof(chunk));
	buf_release(&raw);
	close(fd);
	if (!ok) {
		buf_reset(&c->token);
	}
	return ok;
}

static int
cache_fresh(const struct cached *c, long margin, time_t now)
{
	long m = margin;

	/* a token issued for less than twice the margin is still usable */
	if (c->lifetime > 0 && m > c->lifetime / 2) {
		m = c->lifetime / 2;
	}
	return c->token.len > 0 && c->expires_at > now &&
		(long)(c->expires_at - now) > m;
}

static enum err
cache_write(const char *path, const char *key, const struct cached *c,
	struct errinfo *reterr)
{
	struct buf data;
	enum err e;

	buf_init_secret(&data, CACHE_MAX);
	e = buf_printf(&data, "oasmtp-token-cache 1\nkey %s\nexpires %lld\n"
		"lifetime %ld\ntoken ", key, (long long)c->expires_at,
		c->lifetime);
	if (e == ERR_OK) {
		e = buf_append(&data, c->token.data, c->token.len);
	}
	if (e == ERR_OK) {
		e = buf_putc(&data, '\n');
	}
	if (e != ERR_OK) {
		buf_release(&data);
		return errinfo_set(reterr, e, "access token too large to cache");
	}
	e = tstore_write_atomic(path, data.data, data.len, 0, reterr);
	buf_release(&data);
	return e;
}

enum err
token_cache_drop(const struct account *acc, struct errinfo *reterr)
{
	struct buf path;
	enum err e;

	buf_init(&path, PATH_MAX);
	e = cache_path(acc, 0, &path, reterr);
	if (e == ERR_OK && unlink(path.data) != 0 && errno != ENOENT) {
		e = errinfo_set(reterr, ERR_IO, "cannot remove '%s': %s",
			path.data, strerror(errno));
	}
	if (e == ERR_CONFIG && cache_off(acc)) {
		e = ERR_OK;
	}
	buf_release(&path);
	return e;
}

/* --- the lock ---------------------------------------------------------- */

static enum err
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
	struct buf endpoint;
	struct buf scope;
	struct buf client_secret;	/* secret */
	char key[33];
	long http_timeout_ms;
};

static enum err
client_secret(struct ctx *x, struct errinfo *reterr)
{
	const struct account *acc = x->acc;
	enum err e;

	buf_reset(&x->client_secret);
	if (acc->oauth2_client_secret != NULL) {
		e = buf_append_str(&x->client_secret, acc->oauth2_client_secret);
		return e == ERR_OK ? ERR_OK :
			errinfo_set(reterr, ERR_CONFIG,
				"oauth2_client_secret too long");
	}
	if (acc->oauth2_client_secret_eval == NULL) {
		return ERR_OK;
	}
	e = eval_run(acc->oauth2_client_secret_eval,
		acc->timeout > 0 ? acc->timeout : 60, 4096, &x->client_secret,
		reterr);
	if (e != ERR_OK) {
		if (e == ERR_TIMEOUT) {
			e = ERR_TOKEN_TEMP;
		} else if (e != ERR_NOMEM) {
			e = ERR_CONFIG;
		}
		if (reterr != NULL) {
			errinfo_prefix(reterr, "oauth2_client_secret_eval of "
				"account '%s': ", acc->name);
			reterr->code = e;
		}
	}
	return e;
}

static enum err
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

/*
 * Holding the lock: load the refresh token, refresh, persist a rotated
 * refresh token, fill c.  The new access token is put into c only after
 * the rotated refresh token was saved.
 */
static enum err
refresh_locked(struct ctx *x, struct cached *c, struct token_info *info,
	struct errinfo *reterr)
{
	struct tstore *ts = NULL;
	struct buf rt, rt2;
	struct oauth_tokens tok;
	time_t issued;
	enum err e;

	buf_init_secret(&rt, OAUTH_BODY_MAX);
	buf_init_secret(&rt2, OAUTH_BODY_MAX);
	oauth_tokens_init(&tok);
	e = tstore_open(x->acc, &ts, reterr);
	if (e == ERR_OK) {
		e = tstore_load(ts, &rt, reterr);
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
		/* someone else may have rotated the stored token meanwhile */
		if (tstore_load(ts, &rt2, NULL) == ERR_OK &&
		    strcmp(rt2.data, rt.data) != 0) {
			buf_reset(&rt);
			e = buf_append(&rt, rt2.data, rt2.len);
			if (e == ERR_OK) {
				issued = time(NULL);
				e = refresh_with(x, rt.data, &tok, reterr);
			}
		}
	}
	if (e != ERR_OK) {
		goto out;
	}
	if (tok.refresh_token.len > 0 &&
	    strcmp(tok.refresh_token.data, rt.data) != 0) {
		if (tstore_is_writable(ts)) {
			e = tstore_save(ts, tok.refresh_token.data, reterr);
			if (e != ERR_OK) {
				if (reterr != NULL) {
					errinfo_prefix(reterr, "cannot save the "
						"rotated refresh token of account "
						"'%s': ", x->acc->name);
					reterr->code = ERR_TOKEN_TEMP;
				}
				e = ERR_TOKEN_TEMP;
				goto out;
			}
			info->rotated = 1;
		} else {
			snprintf(info->warning, sizeof(info->warning),
				"the token endpoint rotated the refresh token of "
				"account '%s' but its %s store is read-only: "
				"store the new one or the grant may expire",
				x->acc->name, ts->ops->name);
		}
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
	buf_release(&rt2);
	tstore_free(ts);
	return e;
}

static enum err
ctx_init(struct ctx *x, const struct account *acc, struct errinfo *reterr)
{
	memset(x, 0, sizeof(*x));
	x->acc = acc;
	buf_init(&x->endpoint, 4096);
	buf_init(&x->scope, 4096);
	buf_init_secret(&x->client_secret, 4096);
	x->http_timeout_ms = (acc->timeout > 0 ? (long)acc->timeout : 60) * 1000;
	if (x->http_timeout_ms > 120000) {
		x->http_timeout_ms = 120000;
	}
	if (acc->oauth2_client_id == NULL || acc->oauth2_client_id[0] == '\0') {
		return errinfo_set(reterr, ERR_CONFIG,
			"account '%s' has no oauth2_client_id", acc->name);
	}
	return token_endpoint(acc, &x->endpoint, &x->scope, reterr);
}

static void
ctx_release(struct ctx *x)
{
	buf_release(&x->endpoint);
	buf_release(&x->scope);
	buf_release(&x->client_secret);
}

static long
margin_of(const struct account *acc)
{
	return acc->oauth2_refresh_margin >= 0 ? acc->oauth2_refresh_margin :
		DEFAULT_MARGIN;
}

static enum err
hand_over(const struct cached *c, struct buf *ret_token,
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

/* The fast path only: 1 when a fresh cached token was handed over. */
static int
fast_path(struct ctx *x, unsigned flags, struct buf *ret_token,
	struct token_info *ret_info)
{
	struct token_info info;
	struct cached c;
	struct buf path;
	int hit = 0;

	if ((flags & TOKEN_FORCE_REFRESH) || cache_off(x->acc)) {
		return 0;
	}
	memset(&info, 0, sizeof(info));
	buf_init(&path, PATH_MAX);
	buf_init_secret(&c.token, CACHE_MAX);
	if (cache_path(x->acc, 0, &path, NULL) == ERR_OK &&
	    cache_read(path.data, x->key, &c) &&
	    cache_fresh(&c, margin_of(x->acc), time(NULL))) {
		hit = hand_over(&c, ret_token, &info, ret_info, NULL) == ERR_OK;
	}
	buf_release(&c.token);
	buf_release(&path);
	return hit;
}

enum err
token_get_ex(const struct account *acc, unsigned flags, struct buf *ret_token,
	struct token_info *ret_info, struct errinfo *reterr)
{
	struct token_info info;
	struct ctx x;
	struct cached c;
	struct buf path, lpath, rejected;
	int use_cache = !cache_off(acc);
	int lock_fd = -1;
	enum err e;

	memset(&info, 0, sizeof(info));
	buf_init(&path, PATH_MAX);
	buf_init(&lpath, PATH_MAX);
	buf_init_secret(&rejected, CACHE_MAX);
	buf_init_secret(&c.token, CACHE_MAX);
	c.expires_at = 0;
	c.lifetime = 0;
	e = ctx_init(&x, acc, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	grant_key(acc, x.endpoint.data, x.scope.data, x.key);
	if (fast_path(&x, flags, ret_token, ret_info)) {
		goto out;
	}

	if (use_cache) {
		e = cache_path(acc, 1, &path, reterr);
		if (e != ERR_OK) {
			goto out;
		}
		/* remember what we saw, to tell a sibling's new token apart */
		if (cache_read(path.data, x.key, &c)) {
			e = buf_append(&rejected, c.token.data, c.token.len);
			if (e != ERR_OK) {
				e = errinfo_set(reterr, e, "token too large");
				goto out;
			}
		}
	}
	e = lock_path(acc, &lpath, reterr);
	if (e == ERR_OK) {
		e = lock_take(lpath.data, x.http_timeout_ms * 2 + 10000, &lock_fd,
			reterr);
	}
	if (e != ERR_OK) {
		goto out;
	}
	if (use_cache && cache_read(path.data, x.key, &c) &&
	    cache_fresh(&c, margin_of(acc), time(NULL)) &&
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
	if (use_cache) {
		/* best effort: a lost cache only costs another refresh */
		(void)cache_write(path.data, x.key, &c, NULL);
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
token_get(const struct account *acc, unsigned flags, struct buf *ret_token,
	struct errinfo *reterr)
{
	return token_get_ex(acc, flags, ret_token, NULL, reterr);
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
	buf_init_secret(&pf->token, CACHE_MAX);
	errinfo_init(&pf->ei);
	/* a fresh cached token needs no thread */
	if (ctx_init(&x, acc, NULL) == ERR_OK) {
		grant_key(acc, x.endpoint.data, x.scope.data, x.key);
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
	} else if (reterr != NULL) {
		*reterr = pf->ei;
	}
	buf_release(&pf->token);
	free(pf);
	return e;
}
