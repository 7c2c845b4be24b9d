/*
 * test_token.c - the token broker, oauth_http's parser and the file and
 * command stores, with the HTTP transport replaced by a fake endpoint; the
 * directories of token files and caches (made when missing, refused when
 * others control them).
 */
#define _XOPEN_SOURCE 700	/* nftw() */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "provider.h"
#include "buf.h"
#include "err.h"
#include "fileio.h"
#include "oauth_http.h"
#include "tap.h"
#include "token.h"
#include "tstore.h"
#include "util.h"

/* --- a scripted fake token endpoint ---------------------------------- */

enum mode {
	M_OK,		/* 200, access token "at-N", no rotation */
	M_ROTATE,	/* 200, access token "at-N", refresh token "rt-N" */
	M_STATUS,	/* status and body from fake.status / fake.body */
	M_NETFAIL,	/* transport error */
	M_SIBLING,	/* invalid_grant for "rt-old" after rotating the store
			   to "rt-other" behind our back; ok for "rt-other" */
	M_ONLY,		/* invalid_grant unless the refresh token is fake.good;
			   then as M_ROTATE when fake.rotate, else as M_OK */
};

struct fake {
	atomic_int calls;	/* in shared memory: counts across fork() */
	enum mode mode;
	long status;
	char body[4096];
	long expires_in;
	int delay_ms;
	char last_form[4096];
	char store_path[PATH_MAX];
	char good[64];
	int rotate;
};

static struct fake *fake;

static enum err
fake_post(void *ctx, const struct oauth_post *req, long *ret_status,
	struct buf *ret_body, struct errinfo *reterr)
{
	int n = atomic_fetch_add(&fake->calls, 1) + 1;

	(void)ctx;
	util_strlcpy(fake->last_form, buf_cstr(req->form),
		sizeof(fake->last_form));
	if (fake->delay_ms > 0) {
		struct timespec ts = { fake->delay_ms / 1000,
			(fake->delay_ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	switch (fake->mode) {
	case M_NETFAIL:
		return errinfo_set(reterr, ERR_TOKEN_TEMP,
			"token endpoint '%s' unreachable: timeout", req->url);
	case M_STATUS:
		*ret_status = fake->status;
		return buf_append_str(ret_body, fake->body);
	case M_SIBLING:
		if (strstr(buf_cstr(req->form), "refresh_token=rt-old&")) {
			FILE *f = fopen(fake->store_path, "w");

			fputs("rt-other\n", f);
			fclose(f);
			*ret_status = 400;
			return buf_append_str(ret_body,
				"{\"error\":\"invalid_grant\"}");
		}
		*ret_status = 200;
		return buf_printf(ret_body, "{\"access_token\":\"at-%d\","
			"\"token_type\":\"Bearer\",\"expires_in\":3600}", n);
	case M_ONLY: {
		char want[128];

		snprintf(want, sizeof(want), "refresh_token=%s&", fake->good);
		if (strstr(buf_cstr(req->form), want) == NULL) {
			*ret_status = 400;
			return buf_append_str(ret_body,
				"{\"error\":\"invalid_grant\"}");
		}
		if (!fake->rotate) {
			*ret_status = 200;
			return buf_printf(ret_body, "{\"access_token\":"
				"\"at-%d\",\"token_type\":\"Bearer\","
				"\"expires_in\":3600}", n);
		}
	}
		/* fall through */
	case M_ROTATE:
		*ret_status = 200;
		return buf_printf(ret_body, "{\"access_token\":\"at-%d\","
			"\"token_type\":\"Bearer\",\"expires_in\":%ld,"
			"\"refresh_token\":\"rt-%d\"}", n, fake->expires_in, n);
	case M_OK:
	default:
		*ret_status = 200;
		return buf_printf(ret_body, "{\"access_token\":\"at-%d\","
			"\"token_type\":\"bearer\",\"expires_in\":%ld,"
			"\"scope\":\"smtp\"}", n, fake->expires_in);
	}
}

static void
fake_reset(enum mode m)
{
	atomic_store(&fake->calls, 0);
	fake->mode = m;
	fake->status = 200;
	fake->body[0] = '\0';
	fake->expires_in = 3600;
	fake->delay_ms = 0;
	fake->last_form[0] = '\0';
	fake->good[0] = '\0';
	fake->rotate = 0;
}

/* --- fixtures --------------------------------------------------------- */

static char tmpdir[256];
static char store_path[PATH_MAX];
static char store_spec[PATH_MAX + 8];
static char cache_file[PATH_MAX];
static char prev_path[PATH_MAX + 16];	/* the file store's sidecar */

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		diag("cannot write %s: %s", path, strerror(errno));
	}
	fchmod(fd, mode);
	close(fd);
}

static char *
read_text(const char *path, char *out, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	out[0] = '\0';
	if (f != NULL) {
		n = fread(out, 1, size - 1, f);
		fclose(f);
	}
	out[n] = '\0';
	return out;
}

/* The default cache file of acc's grant and scope. */
static void
cache_path_of(const struct account *acc, char *out, size_t size)
{
	struct buf b;

	buf_init(&b, PATH_MAX);
	out[0] = '\0';
	if (token_cache_path(acc, &b, NULL) == ERR_OK) {
		util_strlcpy(out, buf_cstr(&b), size);
	}
	buf_release(&b);
}

static void
account_setup(struct account *acc, const char *name)
{
	memset(acc, 0, sizeof(*acc));
	acc->name = (char *)name;
	acc->user = (char *)"joe@example.com";
	acc->timeout = 5;
	acc->oauth2_provider = OAUTH2_CUSTOM;
	acc->oauth2_client_id = (char *)"client-1";
	acc->oauth2_token_endpoint = (char *)"https://token.test/token";
	acc->oauth2_token_store = store_spec;
	acc->oauth2_refresh_margin = 600;
	/*
	 * The accounts share one grant (same endpoint, client, user, store):
	 * one cache file, named by the grant, not by the account.
	 */
	cache_path_of(acc, cache_file, sizeof(cache_file));
	/* every account starts without a previous refresh token or a cache */
	unlink(prev_path);
	unlink(cache_file);
}

static enum err
get(const struct account *acc, unsigned flags, char *out, size_t size,
	struct errinfo *ei)
{
	struct buf tok;
	enum err e;

	buf_init_secret(&tok, 65536);
	errinfo_init(ei);
	e = token_get(acc, flags, &tok, ei);
	util_strlcpy(out, buf_cstr(&tok), size);
	buf_release(&tok);
	return e;
}

static int mode_is(const char *path, mode_t mode);

static enum err
get_info(const struct account *acc, unsigned flags, char *out, size_t size,
	struct token_info *info, struct errinfo *ei)
{
	struct buf tok;
	enum err e;

	buf_init_secret(&tok, 65536);
	errinfo_release(ei);
	e = token_get_ex(acc, flags, &tok, info, ei);
	util_strlcpy(out, buf_cstr(&tok), size);
	buf_release(&tok);
	return e;
}

/* Rewrite the cached expiry to now + secs. */
static void
set_cache_expiry(long secs)
{
	char text[8192], out[8192];
	char *p, *line;
	size_t o = 0;

	read_text(cache_file, text, sizeof(text));
	for (p = text; (line = strsep(&p, "\n")) != NULL && *line != '\0';) {
		if (strncmp(line, "expires ", 8) == 0) {
			o += (size_t)snprintf(out + o, sizeof(out) - o,
				"expires %lld\n", (long long)time(NULL) + secs);
		} else {
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s\n",
				line);
		}
	}
	write_file(cache_file, out, 0600);
}

static struct errinfo ei;

/* --- tests ------------------------------------------------------------ */

static void
test_cache(void)
{
	struct account acc;
	struct stat st;
	char tok[256], text[4096];
	enum err e;

	account_setup(&acc, "cache");
	write_file(store_path, "rt-1\n", 0600);
	fake_reset(M_OK);
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_OK, "first token_get refreshes (%s)", errinfo_msg(&ei));
	is_str(tok, "at-1", "access token from the endpoint");
	is_int(atomic_load(&fake->calls), 1, "one HTTP call");
	ok(strstr(fake->last_form, "grant_type=refresh_token") != NULL &&
		strstr(fake->last_form, "refresh_token=rt-1") != NULL &&
		strstr(fake->last_form, "client_id=client-1") != NULL,
		"form carries grant_type, refresh_token and client_id");
	ok(strstr(fake->last_form, "client_secret") == NULL,
		"no client_secret sent for a public client");
	ok(stat(cache_file, &st) == 0 && (st.st_mode & 0777) == 0600,
		"cache file exists with mode 0600");
	snprintf(text, sizeof(text), "%s/oasmtp", tmpdir);
	ok(stat(text, &st) == 0 && (st.st_mode & 0777) == 0700,
		"cache directory has mode 0700");

	/* the store is now unreadable: a cache hit must not notice */
	chmod(store_path, 0644);
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_OK, "cached token returned (%s)", errinfo_msg(&ei));
	is_str(tok, "at-1", "same token from the cache");
	is_int(atomic_load(&fake->calls), 1, "cache hit costs no HTTP call");
	chmod(store_path, 0600);

	/* inside the margin: refresh */
	set_cache_expiry(300);
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_str(tok, "at-2", "a token expiring within the margin is refreshed");
	is_int(atomic_load(&fake->calls), 2, "one more HTTP call");
	/* outside the margin: hit */
	set_cache_expiry(900);
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_str(tok, "at-2", "a token valid beyond the margin is used");
	is_int(atomic_load(&fake->calls), 2, "no HTTP call");

	/* forced refresh ignores the cache */
	e = get(&acc, TOKEN_FORCE_REFRESH, tok, sizeof(tok), &ei);
	is_str(tok, "at-3", "TOKEN_FORCE_REFRESH refreshes a valid token");

	/* short-lived tokens do not refresh on every call */
	fake->expires_in = 60;
	e = get(&acc, TOKEN_FORCE_REFRESH, tok, sizeof(tok), &ei);
	is_str(tok, "at-4", "60 s token fetched");
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_str(tok, "at-4", "a 60 s token is reused despite a 600 s margin");

	/* a cache written for another client id is ignored */
	acc.oauth2_client_id = (char *)"client-2";
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_str(tok, "at-5", "cache of another grant is not used");

	/* cache off: nothing written, every call refreshes */
	account_setup(&acc, "nocache");
	acc.oauth2_token_cache = (char *)"off";
	fake_reset(M_OK);
	get(&acc, 0, tok, sizeof(tok), &ei);
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_OK, "cache off works (%s)", errinfo_msg(&ei));
	is_int(atomic_load(&fake->calls), 2, "cache off: every call refreshes");
	ok(access(cache_file, F_OK) != 0, "cache off: no cache file");

	/* explicit cache path */
	account_setup(&acc, "custom");
	snprintf(text, sizeof(text), "%s/my.cache", tmpdir);
	acc.oauth2_token_cache = text;
	fake_reset(M_OK);
	get(&acc, 0, tok, sizeof(tok), &ei);
	ok(stat(text, &st) == 0 && (st.st_mode & 0777) == 0600,
		"oauth2_token_cache PATH is used, mode 0600");

	/* a cache file readable by others is not trusted */
	account_setup(&acc, "cache");
	chmod(cache_file, 0644);
	fake_reset(M_OK);
	get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(atomic_load(&fake->calls), 1, "group-readable cache is ignored");
}

static void
test_rotation(void)
{
	struct account acc;
	char tok[256], text[4096];
	char longname[PATH_MAX];
	char longspec[PATH_MAX + 8];
	enum err e;

	account_setup(&acc, "rotate");
	write_file(store_path, "rt-0\n", 0600);
	fake_reset(M_ROTATE);
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_OK, "rotating refresh works (%s)", errinfo_msg(&ei));
	is_str(read_text(store_path, text, sizeof(text)), "rt-1\n",
		"rotated refresh token persisted to the file store");
	e = get(&acc, TOKEN_FORCE_REFRESH, tok, sizeof(tok), &ei);
	ok(strstr(fake->last_form, "refresh_token=rt-1&") != NULL,
		"next refresh uses the rotated token");
	is_str(read_text(store_path, text, sizeof(text)), "rt-2\n",
		"second rotation persisted");

	/*
	 * Saving fails (temp name too long): the rotated token is kept in
	 * the grant's rescue file (never lost: the presented one must not
	 * be sent again) and the next refresh presents it.
	 */
	memset(longname, 0, sizeof(longname));
	snprintf(longname, sizeof(longname), "%s/", tmpdir);
	memset(longname + strlen(longname), 'r', 250);
	write_file(longname, "rt-long\n", 0600);
	snprintf(longspec, sizeof(longspec), "file:%s", longname);
	account_setup(&acc, "rotfail");
	acc.oauth2_token_store = longspec;
	fake_reset(M_ROTATE);
	{
		struct token_info ti;

		memset(&ti, 0, sizeof(ti));
		e = get_info(&acc, 0, tok, sizeof(tok), &ti, &ei);
		is_int(e, ERR_OK, "unsaveable rotation: rescued (%s)",
			errinfo_msg(&ei));
		contains(ti.warning, "cannot save the rotated refresh token",
			"the warning says the store did not take it (%s)",
			ti.warning);
		ok(tok[0] != '\0', "the access token is handed out");
		is_str(read_text(longname, text, sizeof(text)), "rt-long\n",
			"the store is unchanged");
		e = get(&acc, TOKEN_FORCE_REFRESH, tok, sizeof(tok), &ei);
		is_int(e, ERR_OK, "next refresh (%s)", errinfo_msg(&ei));
		ok(strstr(fake->last_form, "refresh_token=rt-1&") != NULL,
			"presents the rescued rt-1, never rt-long again");
	}
	unlink(longname);

	/* read-only command store: rotation only warns */
	account_setup(&acc, "rotcmd");
	acc.oauth2_token_store = (char *)"command:printf 'rt-cmd\\n'";
	fake_reset(M_ROTATE);
	{
		struct token_info info;
		struct buf b;

		buf_init_secret(&b, 65536);
		errinfo_init(&ei);
		e = token_get_ex(&acc, 0, &b, &info, &ei);
		is_int(e, ERR_OK, "command store works (%s)", errinfo_msg(&ei));
		ok(strstr(fake->last_form, "refresh_token=rt-cmd&") != NULL,
			"command store output used as refresh token");
		contains(info.warning, "read-only",
			"rotation with a read-only store warns");
		ok(info.refreshed && !info.rotated, "info: refreshed, not rotated");
		buf_release(&b);
	}

	/*
	 * issue 13 (5): command: with oauth2_token_store_write, as with
	 * `pass`: the rotated token goes to the write command's stdin, under
	 * the lock, before the new access token is used; the second cold
	 * refresh uses it.
	 */
	{
		char rd[PATH_MAX + 64], wr[3 * PATH_MAX + 64], db[PATH_MAX];

		snprintf(db, sizeof(db), "%s/pass-entry", tmpdir);
		write_file(db, "rt-pass\n", 0600);
		snprintf(rd, sizeof(rd), "command:cat '%s'", db);
		snprintf(wr, sizeof(wr), "cat > '%s.new' && mv '%s.new' '%s'",
			db, db, db);
		account_setup(&acc, "rotpass");
		acc.oauth2_token_store = rd;
		acc.oauth2_token_store_write = wr;
		/* the store is part of the grant: its own cache */
		cache_path_of(&acc, cache_file, sizeof(cache_file));
		fake_reset(M_ROTATE);
		e = get(&acc, 0, tok, sizeof(tok), &ei);
		is_int(e, ERR_OK, "command store with a write command (%s)",
			errinfo_msg(&ei));
		ok(strstr(fake->last_form, "refresh_token=rt-pass&") != NULL,
			"the read command's token is used");
		is_str(read_text(db, text, sizeof(text)), "rt-1\n",
			"the rotated token went through the write command");
		unlink(cache_file);
		e = get(&acc, 0, tok, sizeof(tok), &ei);
		is_int(e, ERR_OK, "second cold refresh (%s)", errinfo_msg(&ei));
		ok(strstr(fake->last_form, "refresh_token=rt-1&") != NULL,
			"uses the written token");
		is_str(read_text(db, text, sizeof(text)), "rt-2\n",
			"and writes the next one");

		/*
		 * A write command that stores nothing: caught; the rotated
		 * token (rt-3) is kept in the grant's rescue file, never lost,
		 * and rt-2 (presented already) is never sent again.
		 */
		acc.oauth2_token_store_write = (char *)"cat >/dev/null";
		unlink(cache_file);
		{
			struct token_info ti;
			struct buf rpath;
			struct errinfo rei = ERRINFO_INIT;

			memset(&ti, 0, sizeof(ti));
			buf_init(&rpath, PATH_MAX);
			e = get_info(&acc, 0, tok, sizeof(tok), &ti, &ei);
			is_int(e, ERR_OK, "a write that stores nothing: the "
				"token is rescued (%s)", errinfo_msg(&ei));
			ok(strstr(fake->last_form, "refresh_token=rt-2&") !=
				NULL, "rt-2 presented");
			contains(ti.warning, "did not take the rotated refresh "
				"token", "warns (%s)", ti.warning);
			contains(ti.warning, "does not print the new refresh "
				"token", "with the store's reason");
			ok(token_rescue_file(&acc, &rpath, &rei) == ERR_OK &&
				mode_is(buf_cstr(&rpath), 0600) &&
				strcmp(read_text(buf_cstr(&rpath), text,
				sizeof(text)), "rt-3") == 0,
				"rt-3 kept in the rescue file, 0600");
			/* a failing write command: the next refresh presents
			   the rescued rt-3, not the store's rt-2 */
			acc.oauth2_token_store_write = (char *)"exit 3";
			unlink(cache_file);
			memset(&ti, 0, sizeof(ti));
			e = get_info(&acc, 0, tok, sizeof(tok), &ti, &ei);
			is_int(e, ERR_OK, "failing write: rescued again (%s)",
				errinfo_msg(&ei));
			ok(strstr(fake->last_form, "refresh_token=rt-3&") !=
				NULL, "the rescued token is presented");
			contains(ti.warning, "oauth2_token_store_write failed "
				"with exit status 3", "names the key (%s)",
				ti.warning);
			/* the store works again: it takes the rescued token
			   (rt-4) before the refresh, the file goes */
			acc.oauth2_token_store_write = wr;
			unlink(cache_file);
			e = get(&acc, 0, tok, sizeof(tok), &ei);
			is_int(e, ERR_OK, "store works again (%s)",
				errinfo_msg(&ei));
			ok(strstr(fake->last_form, "refresh_token=rt-4&") !=
				NULL, "rt-4 presented");
			is_str(read_text(db, text, sizeof(text)), "rt-5\n",
				"the store holds the newest");
			ok(access(buf_cstr(&rpath), F_OK) != 0,
				"the rescue file is gone");
			errinfo_release(&rei);
			buf_release(&rpath);
		}
		unlink(db);
	}
}

static int
mode_is(const char *path, mode_t mode)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		(st.st_mode & 0777) == mode;
}

/* The previous refresh token: file store sidecar and broker fallback. */
static void
test_previous(void)
{
	struct account acc;
	struct tstore *ts = NULL;
	struct buf b;
	char tok[256], text[4096];
	enum err e;

	/* rotation replaces the token; the one presented is not kept: it is
	   never sent again (doc/design.md, Tokens) */
	account_setup(&acc, "prev");
	write_file(store_path, "rt-0\n", 0600);
	fake_reset(M_ROTATE);
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_OK, "rotation (%s)", errinfo_msg(&ei));
	is_str(read_text(store_path, text, sizeof(text)), "rt-1\n",
		"rotated token stored");
	ok(access(prev_path, F_OK) != 0, "the replaced token is not kept");
	ok(mode_is(store_path, 0600), "the store stays mode 0600");

	/* a previous token an older oasmtp kept: never presented */
	account_setup(&acc, "prevok");
	acc.oauth2_token_cache = (char *)"off";
	write_file(store_path, "rt-new\n", 0600);
	write_file(prev_path, "rt-old\n", 0600);
	fake_reset(M_ONLY);
	util_strlcpy(fake->good, "rt-old", sizeof(fake->good));
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_REAUTH, "invalid_grant: re-authorization, even with a "
		"previous token that would work");
	contains(errinfo_msg(&ei), "oasmtp-token authorize prevok",
		"  names the command");
	is_int(atomic_load(&fake->calls), 1, "  one token request");
	ok(strstr(fake->last_form, "refresh_token=rt-new&") != NULL,
		"  with the stored token only");
	is_str(read_text(store_path, text, sizeof(text)), "rt-new\n",
		"  store untouched");
	ok(strstr(errinfo_msg(&ei), "rt-new") == NULL && strstr(errinfo_msg(&ei), "rt-old") == NULL,
		"  no token in the message");

	/* the stored token works: a leftover previous token goes */
	fake_reset(M_ONLY);
	util_strlcpy(fake->good, "rt-new", sizeof(fake->good));
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_OK, "stored token works (%s)", errinfo_msg(&ei));
	ok(access(prev_path, F_OK) != 0, "  and the leftover sidecar goes");

	/* a token rotated by another process meanwhile is tried (it is new) */
	snprintf(fake->store_path, sizeof(fake->store_path), "%s", store_path);
	write_file(store_path, "rt-old\n", 0600);
	write_file(prev_path, "rt-prev\n", 0600);
	fake_reset(M_SIBLING);
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_OK, "sibling rotation still wins (%s)", errinfo_msg(&ei));
	ok(atomic_load(&fake->calls) == 2 &&
		strstr(fake->last_form, "refresh_token=rt-other&") != NULL,
		"  the re-read token is tried, once");
	ok(access(prev_path, F_OK) != 0,
		"  it worked, so the leftover previous token goes");

	/*
	 * A previous token 0.1.0 kept beside the store (PATH.previous):
	 * a plain save (import, a rotation) and forget (erase) drop it.
	 */
	buf_init_secret(&b, 65536);
	e = tstore_open(&acc, &ts, &ei);
	is_int(e, ERR_OK, "file store opens");
	write_file(prev_path, "rt-a\n", 0600);
	e = tstore_save(ts, "rt-imported", &ei);
	ok(e == ERR_OK && access(prev_path, F_OK) != 0,
		"a plain save (import) drops the previous token");
	write_file(prev_path, "rt-a\n", 0600);
	e = tstore_erase(ts, &ei);
	ok(e == ERR_OK && access(store_path, F_OK) != 0 &&
		access(prev_path, F_OK) != 0, "erase (forget) removes both");
	is_int(tstore_drop_previous(ts, &ei), ERR_OK,
		"drop_previous without one is fine");
	tstore_free(ts);

	/* a symlinked store's sidecar is beside the target */
	{
		char target[PATH_MAX], tprev[PATH_MAX + 16];

		snprintf(target, sizeof(target), "%s/real-refresh", tmpdir);
		snprintf(tprev, sizeof(tprev), "%s.previous", target);
		write_file(target, "rt-l0\n", 0600);
		write_file(tprev, "rt-old\n", 0600);
		symlink(target, store_path);
		e = tstore_open(&acc, &ts, &ei);
		if (e == ERR_OK) {
			e = tstore_drop_previous(ts, &ei);
		}
		ok(e == ERR_OK && access(tprev, F_OK) != 0 &&
			strcmp(read_text(target, text, sizeof(text)),
			"rt-l0\n") == 0,
			"symlinked store: the sidecar beside the target goes");
		tstore_free(ts);
		unlink(store_path);
		unlink(target);
	}

	/* the command store keeps nothing */
	acc.oauth2_token_store = (char *)"command:printf 'rt-cmd\\n'";
	e = tstore_open(&acc, &ts, &ei);
	ok(e == ERR_OK && tstore_drop_previous(ts, &ei) == ERR_OK,
		"command store: no previous token to drop");
	tstore_free(ts);
	buf_release(&b);
}

static void
test_errors(void)
{
	static const struct {
		long status;
		const char *body;
		enum err want;
		const char *msg;
	} rows[] = {
		{ 500, "oops", ERR_TOKEN_TEMP, "HTTP 500" },
		{ 503, "{\"error\":\"invalid_grant\"}", ERR_TOKEN_TEMP, "503" },
		{ 429, "{\"error\":\"slow down\"}", ERR_TOKEN_TEMP, "429" },
		{ 408, "", ERR_TOKEN_TEMP, "408" },
		{ 200, "{\"access_token\":\"x\",", ERR_TOKEN_TEMP, "non-JSON" },
		{ 200, "<html>proxy</html>", ERR_TOKEN_TEMP, "non-JSON" },
		{ 200, "{\"access_token\":\"x\",\"token_type\":\"Bearer\"} x",
		  ERR_TOKEN_TEMP, "non-JSON" },
		{ 200, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
		  ERR_TOKEN_TEMP, "non-JSON" },
		{ 200, "{\"token_type\":\"Bearer\"}", ERR_TOKEN_TEMP, "malformed" },
		{ 200, "{\"access_token\":7,\"token_type\":\"Bearer\"}",
		  ERR_TOKEN_TEMP, "malformed" },
		{ 200, "{\"access_token\":\"a\",\"token_type\":\"Bearer\","
		  "\"expires_in\":\"soon\"}", ERR_TOKEN_TEMP, "malformed" },
		{ 200, "{\"access_token\":\"a\",\"token_type\":\"mac\"}",
		  ERR_CONFIG, "only Bearer" },
		/* a token must fit the cache's line format and SASL framing */
		{ 200, "{\"access_token\":\"a\\nexpires 9999999999\","
		  "\"token_type\":\"Bearer\"}", ERR_TOKEN_TEMP,
		  "control characters" },
		{ 200, "{\"access_token\":\"a\\u0000b\",\"token_type\":\"Bearer\"}",
		  ERR_TOKEN_TEMP, "control characters" },
		{ 200, "{\"access_token\":\"a\",\"token_type\":\"Bearer\","
		  "\"refresh_token\":\"r\\u0001t\"}", ERR_TOKEN_TEMP,
		  "control characters" },
		{ 400, "{\"error\":\"invalid_client\"}", ERR_CONFIG,
		  "oauth2_client_id" },
		{ 401, "{\"error\":\"unauthorized_client\"}", ERR_CONFIG,
		  "oauth2_client_secret" },
		{ 400, "{\"error\":\"invalid_scope\"}", ERR_CONFIG, "oauth2_scope" },
		{ 400, "{\"error\":\"unsupported_grant_type\"}", ERR_CONFIG,
		  "oauth2_token_endpoint" },
		{ 404, "<html>not found</html>", ERR_CONFIG,
		  "oauth2_token_endpoint" },
		{ 400, "{\"error\":\"invalid_grant\",\"error_description\":"
		  "\"AADSTS700082: expired\\u0007\"}", ERR_REAUTH,
		  "re-authorization needed: run `oasmtp-token authorize errs`" },
	};
	struct account acc;
	char tok[256];
	size_t i;
	enum err e;

	account_setup(&acc, "errs");
	acc.oauth2_token_cache = (char *)"off";
	write_file(store_path, "rt-e\n", 0600);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		fake_reset(M_STATUS);
		fake->status = rows[i].status;
		util_strlcpy(fake->body, rows[i].body, sizeof(fake->body));
		e = get(&acc, 0, tok, sizeof(tok), &ei);
		is_int(e, rows[i].want, "HTTP %ld %.40s -> %s", rows[i].status,
			rows[i].body, err_name(rows[i].want));
		contains(errinfo_msg(&ei), rows[i].msg, "  message mentions '%s'",
			rows[i].msg);
		is_str(tok, "", "  no token on failure");
	}
	contains(errinfo_msg(&ei), "AADSTS700082: expired?",
		"provider description quoted, control characters replaced");
	{
		/* the parser also judges the code exchange of authorize */
		static const char body[] = "{\"error\":\"invalid_request\"}";
		struct oauth_tokens t;

		oauth_tokens_init(&t);
		e = oauth_parse_response("code", 400, body, sizeof(body) - 1,
			&t, &ei);
		is_int(e, ERR_CONFIG, "refused request: ERR_CONFIG");
		ok(strstr(errinfo_msg(&ei), "refresh") == NULL, "a refused request is "
			"not called a refresh (it may be the code exchange): %s",
			errinfo_msg(&ei));
		oauth_tokens_release(&t);
	}
	ok(atomic_load(&fake->calls) == 1,
		"invalid_grant with an unchanged store is not retried");

	fake_reset(M_NETFAIL);
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_TOKEN_TEMP, "network failure / timeout -> ERR_TOKEN_TEMP");

	/* invalid_grant, but another program rotated the store: retry once */
	snprintf(fake->store_path, sizeof(fake->store_path), "%s", store_path);
	write_file(store_path, "rt-old\n", 0600);
	fake_reset(M_SIBLING);
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_OK, "invalid_grant after a sibling rotation recovers (%s)",
		errinfo_msg(&ei));
	is_int(atomic_load(&fake->calls), 2, "exactly one retry");
	ok(strstr(fake->last_form, "refresh_token=rt-other&") != NULL,
		"retry uses the re-read refresh token");

	/* configuration problems found before any HTTP */
	fake_reset(M_OK);
	acc.oauth2_client_id = NULL;
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_CONFIG, "missing client id -> ERR_CONFIG");
	contains(errinfo_msg(&ei), "oauth2_client_id", "message names oauth2_client_id");
	acc.oauth2_client_id = (char *)"client-1";
	acc.oauth2_token_endpoint = NULL;
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_CONFIG, "no endpoint, no provider -> ERR_CONFIG");
	contains(errinfo_msg(&ei), "oauth2_token_endpoint", "message names the key");
	acc.oauth2_token_endpoint = (char *)"https://token.test/token";
	acc.oauth2_token_store = (char *)"keyring";
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_CONFIG, "unknown store -> ERR_CONFIG");
	is_int(atomic_load(&fake->calls), 0, "none of these made an HTTP call");

	/* the client secret is sent when configured, url-encoded */
	acc.oauth2_token_store = store_spec;
	acc.oauth2_client_secret = (char *)"s e&c=r+t";
	write_file(store_path, "rt/+=x\n", 0600);
	fake_reset(M_OK);
	get(&acc, 0, tok, sizeof(tok), &ei);
	ok(strstr(fake->last_form, "client_secret=s%20e%26c%3Dr%2Bt") != NULL,
		"client_secret sent, form-encoded");
	ok(strstr(fake->last_form, "refresh_token=rt%2F%2B%3Dx&") != NULL,
		"refresh token form-encoded");
	acc.oauth2_client_secret = NULL;
	acc.oauth2_client_secret_eval = (char *)"echo from-eval";
	get(&acc, 0, tok, sizeof(tok), &ei);
	ok(strstr(fake->last_form, "client_secret=from-eval") != NULL,
		"oauth2_client_secret_eval output sent as client_secret");
}

static void
test_file_store(void)
{
	struct account acc;
	struct tstore *ts = NULL;
	struct buf b;
	char text[256];
	enum err e;

	account_setup(&acc, "store");
	buf_init_secret(&b, 65536);
	e = tstore_open(&acc, &ts, &ei);
	is_int(e, ERR_OK, "file store opens");
	ok(tstore_is_writable(ts), "file store is writable");

	write_file(store_path, "  \n\trt-spaces \r\n\n", 0600);
	e = tstore_load(ts, &b, &ei);
	is_str(buf_cstr(&b), "rt-spaces", "surrounding whitespace ignored");

	write_file(store_path, "rt-x\n", 0640);
	errinfo_init(&ei);
	e = tstore_load(ts, &b, &ei);
	is_int(e, ERR_CONFIG, "group-readable token file -> ERR_CONFIG");
	contains(errinfo_msg(&ei), "chmod 600", "message has the chmod fix");
	is_int((long long)b.len, 0, "nothing loaded");

	write_file(store_path, "rt a\nb\n", 0600);
	e = tstore_load(ts, &b, &ei);
	is_int(e, ERR_CONFIG, "two words in the token file -> ERR_CONFIG");

	/* a FIFO in place of the file is refused, not waited on forever */
	unlink(store_path);
	if (mkfifo(store_path, 0600) == 0) {
		alarm(10);
		e = tstore_load(ts, &b, &ei);
		alarm(0);
		is_int(e, ERR_CONFIG, "FIFO token file -> ERR_CONFIG, no hang");
		contains(errinfo_msg(&ei), "not a regular file", "FIFO message");
	} else {
		ok(0, "mkfifo %s: %s", store_path, strerror(errno));
	}
	unlink(store_path);

	write_file(store_path, " \n", 0600);
	e = tstore_load(ts, &b, &ei);
	is_int(e, ERR_REAUTH, "empty token file -> ERR_REAUTH");
	unlink(store_path);
	e = tstore_load(ts, &b, &ei);
	is_int(e, ERR_REAUTH, "missing token file -> ERR_REAUTH");
	contains(errinfo_msg(&ei), "oasmtp-token authorize store", "names the command");

	e = tstore_save(ts, "rt\nsecond-line", &ei);
	is_int(e, ERR_DATA, "token with a newline is not saved");
	ok(access(store_path, F_OK) != 0, "  and nothing was written");
	is_int(tstore_save(ts, "", &ei), ERR_DATA, "empty token is not saved");
	e = tstore_save(ts, "rt-saved", &ei);
	is_int(e, ERR_OK, "save works");
	is_str(read_text(store_path, text, sizeof(text)), "rt-saved\n",
		"saved as the token and a newline");
	{
		struct stat st;

		ok(stat(store_path, &st) == 0 && (st.st_mode & 0777) == 0600,
			"saved file has mode 0600");
	}
	e = tstore_erase(ts, &ei);
	ok(e == ERR_OK && access(store_path, F_OK) != 0, "erase removes it");
	tstore_free(ts);
	buf_release(&b);
}

static void
test_presets(void)
{
	struct account acc;
	struct buf ep, sc;
	enum err e;

	account_setup(&acc, "preset");
	buf_init(&ep, 4096);
	buf_init(&sc, 4096);
	acc.oauth2_token_endpoint = NULL;
	acc.oauth2_provider = OAUTH2_GOOGLE;
	e = provider_token_endpoint(&acc, &ep, &sc, &ei);
	is_str(buf_cstr(&ep), "https://oauth2.googleapis.com/token",
		"google endpoint");
	is_str(buf_cstr(&sc), "https://mail.google.com/", "google scope");
	acc.oauth2_provider = OAUTH2_MICROSOFT;
	e = provider_token_endpoint(&acc, &ep, &sc, &ei);
	is_str(buf_cstr(&ep),
		"https://login.microsoftonline.com/common/oauth2/v2.0/token",
		"microsoft endpoint, tenant common by default");
	contains(buf_cstr(&sc), "SMTP.Send", "microsoft scope");
	acc.oauth2_tenant = (char *)"contoso.onmicrosoft.com";
	e = provider_token_endpoint(&acc, &ep, &sc, &ei);
	contains(buf_cstr(&ep), "/contoso.onmicrosoft.com/oauth2", "tenant used");
	acc.oauth2_tenant = (char *)"x/../y";
	e = provider_token_endpoint(&acc, &ep, &sc, &ei);
	is_int(e, ERR_CONFIG, "bad tenant -> ERR_CONFIG");
	acc.oauth2_tenant = NULL;
	acc.oauth2_token_endpoint = (char *)"https://own/token";
	acc.oauth2_scope = (char *)"own";
	e = provider_token_endpoint(&acc, &ep, &sc, &ei);
	ok(e == ERR_OK && strcmp(buf_cstr(&ep), "https://own/token") == 0 &&
		strcmp(buf_cstr(&sc), "own") == 0, "account values win");
	buf_release(&ep);
	buf_release(&sc);
}

static void
test_prefetch(void)
{
	struct token_prefetch *pf = NULL;
	struct account acc;
	struct buf b;
	enum err e;

	account_setup(&acc, "prefetch");
	write_file(store_path, "rt-p\n", 0600);
	buf_init_secret(&b, 65536);
	fake_reset(M_OK);
	fake->delay_ms = 100;
	e = token_prefetch_start(&acc, 0, &pf, &ei);
	is_int(e, ERR_OK, "prefetch starts");
	e = token_prefetch_join(pf, &b, &ei);
	is_int(e, ERR_OK, "prefetch joins (%s)", errinfo_msg(&ei));
	is_str(buf_cstr(&b), "at-1", "prefetched token");
	e = token_prefetch_start(&acc, 0, &pf, &ei);
	e = token_prefetch_join(pf, &b, &ei);
	ok(e == ERR_OK && strcmp(buf_cstr(&b), "at-1") == 0 &&
		atomic_load(&fake->calls) == 1, "cached prefetch: no HTTP call");

	fake_reset(M_STATUS);
	fake->status = 400;
	util_strlcpy(fake->body, "{\"error\":\"invalid_grant\"}",
		sizeof(fake->body));
	e = token_prefetch_start(&acc, TOKEN_FORCE_REFRESH, &pf, &ei);
	errinfo_init(&ei);
	e = token_prefetch_join(pf, &b, &ei);
	is_int(e, ERR_REAUTH, "prefetch reports the refresh error");
	contains(errinfo_msg(&ei), "oasmtp-token authorize prefetch", "with its message");
	buf_release(&b);
}

/*
 * mkdir(2) as fileio_secret_dir() sees it: when asked for mkdir_trap, a
 * symbolic link to mkdir_trap_to (owned by mkdir_trap_uid) appears there
 * first, as if another process had been quicker.  Used once, then cleared.
 */
static char mkdir_trap[1024];
static char mkdir_trap_to[1024];
static uid_t mkdir_trap_uid;

int
mkdir(const char *path, mode_t mode)
{
	if (mkdir_trap[0] != '\0' && strcmp(path, mkdir_trap) == 0) {
		mkdir_trap[0] = '\0';
		if (symlink(mkdir_trap_to, path) != 0 ||
		    lchown(path, mkdir_trap_uid, (gid_t)-1) != 0) {
			diag("cannot make the link %s: %s", path,
				strerror(errno));
		}
	}
	return (int)syscall(SYS_mkdirat, AT_FDCWD, path, mode);
}

/* 1 when path is a directory with exactly mode 0700 */
static int
is_dir_0700(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
		(st.st_mode & 07777) == 0700;
}

static int
mode_of(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

/* make tmpdir/name with mode (chmod: umask aside) */
static void
make_dir(char *path, size_t size, const char *name, mode_t mode)
{
	snprintf(path, size, "%s/%s", tmpdir, name);
	if (mkdir(path, 0700) != 0 || chmod(path, mode) != 0) {
		diag("cannot make %s: %s", path, strerror(errno));
	}
}

/*
 * Give path a group that is not the caller's personal group (root: 65534,
 * nogroup; others: a supplementary group of another name), so that group
 * write on it lets in other users.  0 when there is none to use.
 */
static int
share_with_a_group(const char *path)
{
	const struct passwd *pw = getpwuid(geteuid());
	gid_t groups[64];
	int i, n;

	if (geteuid() == 0) {
		return chown(path, (uid_t)-1, 65534) == 0;
	}
	n = getgroups(64, groups);
	for (i = 0; pw != NULL && i < n; i++) {
		const struct group *gr = getgrgid(groups[i]);

		if (gr != NULL && strcmp(gr->gr_name, pw->pw_name) != 0 &&
		    chown(path, (uid_t)-1, groups[i]) == 0) {
			return 1;
		}
	}
	diag("no group other than the user's own to test with");
	return 0;
}

static void
test_secret_dirs(void)
{
	char d[512], p[1024], f[2048];
	mode_t old_umask = umask(002);	/* as under a per-user group */
	enum err e;

	/* missing directories are made, 0700 each, existing ones kept */
	snprintf(f, sizeof(f), "%s/n1/n2/n3/token", tmpdir);
	errinfo_init(&ei);
	e = fileio_secret_dir(f, geteuid(), 0, &ei);
	snprintf(p, sizeof(p), "%s/n1", tmpdir);
	ok(e == ERR_OK && access(p, F_OK) != 0,
		"without create: a missing directory is fine, none made (%s)",
		errinfo_msg(&ei));
	e = fileio_secret_dir(f, geteuid(), 1, &ei);
	is_int(e, ERR_OK, "nested missing directories made (%s)", errinfo_msg(&ei));
	ok(is_dir_0700(p), "n1 has mode 0700");
	snprintf(p, sizeof(p), "%s/n1/n2", tmpdir);
	ok(is_dir_0700(p), "n1/n2 has mode 0700");
	snprintf(p, sizeof(p), "%s/n1/n2/n3", tmpdir);
	ok(is_dir_0700(p), "n1/n2/n3 has mode 0700");
	snprintf(p, sizeof(p), "%s/n1/n2/n3/token", tmpdir);
	ok(access(p, F_OK) != 0, "the file itself is not made");
	is_int(fileio_secret_dir(f, geteuid(), 1, &ei), ERR_OK,
		"again: all there, nothing to do");
	is_int(mode_of(tmpdir), 0700, "the existing parent is left as it was");

	/* "." and ".." and doubled slashes in the missing part */
	snprintf(f, sizeof(f), "%s/m1//./m2/../m3/token", tmpdir);
	e = fileio_secret_dir(f, geteuid(), 1, &ei);
	snprintf(p, sizeof(p), "%s/m1/m3", tmpdir);
	ok(e == ERR_OK && is_dir_0700(p), "odd path components (%s)", errinfo_msg(&ei));

	/* a relative path starts at the working directory */
	{
		int cwd = open(".", O_RDONLY | O_DIRECTORY);

		if (cwd >= 0 && chdir(tmpdir) == 0) {
			e = fileio_secret_dir("r1/r2/token", geteuid(), 1, &ei);
			ok(e == ERR_OK && is_dir_0700("r1/r2"),
				"relative path (%s)", errinfo_msg(&ei));
			is_int(fileio_secret_dir("token", geteuid(), 1, &ei),
				ERR_OK, "a bare file name: the working directory");
			if (fchdir(cwd) != 0) {
				diag("cannot go back: %s", strerror(errno));
			}
		} else {
			ok(0, "chdir %s: %s", tmpdir, strerror(errno));
		}
		if (cwd >= 0) {
			close(cwd);
		}
	}

	/*
	 * Group-writable in the user's personal group (umask 002 with user
	 * private groups): nobody else can write there, so it is fine.
	 */
	make_dir(d, sizeof(d), "upg", 0770);
	{
		const struct passwd *pw = getpwuid(geteuid());
		const struct group *gr = pw != NULL ? getgrnam(pw->pw_name) : NULL;

		if (gr != NULL && gr->gr_mem[0] == NULL &&
		    chown(d, (uid_t)-1, gr->gr_gid) == 0) {
			snprintf(f, sizeof(f), "%s/sub/token", d);
			errinfo_init(&ei);
			e = fileio_secret_dir(f, geteuid(), 1, &ei);
			ok(e == ERR_OK, "group-writable in the user's own group "
				"'%s' is fine (%s)", gr->gr_name, errinfo_msg(&ei));
		} else {
			ok(0, "no personal group named after the user to test "
				"with");
		}
	}

	/* group- or world-writable without the sticky bit: refused */
	make_dir(d, sizeof(d), "gw", 0770);
	ok(share_with_a_group(d), "gw shared with another group");
	snprintf(f, sizeof(f), "%s/sub/token", d);
	errinfo_init(&ei);
	e = fileio_secret_dir(f, geteuid(), 1, &ei);
	is_int(e, ERR_CONFIG, "group-writable parent refused");
	contains(errinfo_msg(&ei), "writable by its group (mode 0770)", "says why");
	contains(errinfo_msg(&ei), "chmod go-w", "and the fix");
	snprintf(p, sizeof(p), "%s/sub", d);
	ok(access(p, F_OK) != 0, "nothing made under it");
	is_int(mode_of(d), 0770, "its mode is not changed");
	errinfo_init(&ei);
	is_int(fileio_secret_dir(f, geteuid(), 0, &ei), ERR_CONFIG,
		"refused without create too");
	make_dir(p, sizeof(p), "gw/ok", 0700);
	snprintf(f, sizeof(f), "%s/token", p);
	errinfo_init(&ei);
	is_int(fileio_secret_dir(f, geteuid(), 1, &ei), ERR_CONFIG,
		"a group-writable directory further up is refused as well");
	make_dir(d, sizeof(d), "ww", 0777);
	snprintf(f, sizeof(f), "%s/sub/token", d);
	errinfo_init(&ei);
	is_int(fileio_secret_dir(f, geteuid(), 1, &ei), ERR_CONFIG,
		"world-writable parent refused");
	contains(errinfo_msg(&ei), "writable by everyone", "world-writable message");
	make_dir(d, sizeof(d), "sticky", 01777);
	snprintf(f, sizeof(f), "%s/sub/token", d);
	snprintf(p, sizeof(p), "%s/sub", d);
	e = fileio_secret_dir(f, geteuid(), 1, &ei);
	ok(e == ERR_OK && is_dir_0700(p),
		"world-writable with the sticky bit (as /tmp) is fine (%s)",
		errinfo_msg(&ei));

	/* a symbolic link is judged by where it leads */
	snprintf(p, sizeof(p), "%s/to-gw", tmpdir);
	snprintf(d, sizeof(d), "%s/gw", tmpdir);
	if (symlink(d, p) == 0) {
		snprintf(f, sizeof(f), "%s/token", p);
		errinfo_init(&ei);
		is_int(fileio_secret_dir(f, geteuid(), 1, &ei), ERR_CONFIG,
			"a link to a group-writable directory is refused");
		contains(errinfo_msg(&ei), d, "the message names the real directory");
	} else {
		ok(0, "symlink: %s", strerror(errno));
	}

	/*
	 * A link is also judged by where it is: whoever may write in its
	 * directory, or owns it in a sticky one, can point it elsewhere
	 * between the check and the write.
	 */
	make_dir(d, sizeof(d), "private", 0700);
	make_dir(p, sizeof(p), "ww-links", 0777);
	snprintf(f, sizeof(f), "%s/ww-links/to-private", tmpdir);
	if (symlink(d, f) == 0) {
		snprintf(f, sizeof(f), "%s/ww-links/to-private/token", tmpdir);
		errinfo_init(&ei);
		is_int(fileio_secret_dir(f, geteuid(), 1, &ei), ERR_CONFIG,
			"a link in a world-writable directory is refused, "
			"wherever it leads");
		contains(errinfo_msg(&ei), "writable by everyone", "says why (%s)", errinfo_msg(&ei));
		contains(errinfo_msg(&ei), p, "and names the link's directory");
	} else {
		ok(0, "symlink: %s", strerror(errno));
	}
	make_dir(p, sizeof(p), "sticky-links", 01777);
	snprintf(f, sizeof(f), "%s/sticky-links/mine", tmpdir);
	if (symlink(d, f) == 0) {
		snprintf(f, sizeof(f), "%s/sticky-links/mine/token", tmpdir);
		errinfo_init(&ei);
		is_int(fileio_secret_dir(f, geteuid(), 1, &ei), ERR_OK,
			"one's own link in a sticky directory is fine (%s)",
			errinfo_msg(&ei));
	} else {
		ok(0, "symlink: %s", strerror(errno));
	}
	snprintf(f, sizeof(f), "%s/sticky-links/theirs", tmpdir);
	if (geteuid() != 0) {
		diag("SKIP: a link owned by another user needs root to make");
	} else if (symlink(d, f) == 0 && lchown(f, 65534, 65534) == 0) {
		snprintf(f, sizeof(f), "%s/sticky-links/theirs/token", tmpdir);
		errinfo_init(&ei);
		is_int(fileio_secret_dir(f, 0, 1, &ei), ERR_CONFIG,
			"another user's link in a sticky directory is refused");
		contains(errinfo_msg(&ei), "belongs to uid 65534", "names the link's "
			"owner (%s)", errinfo_msg(&ei));
	} else {
		ok(0, "symlink/lchown %s: %s", f, strerror(errno));
	}

	/*
	 * A link that appears where a missing directory is about to be made
	 * (mkdir says EEXIST): judged as the link it is, not by its target.
	 */
	make_dir(p, sizeof(p), "race", 01777);
	snprintf(mkdir_trap, sizeof(mkdir_trap), "%s/race/sub", tmpdir);
	util_strlcpy(mkdir_trap_to, d, sizeof(mkdir_trap_to));
	mkdir_trap_uid = geteuid() == 0 ? 65534 : geteuid();
	snprintf(f, sizeof(f), "%s/race/sub/deeper/token", tmpdir);
	errinfo_init(&ei);
	e = fileio_secret_dir(f, geteuid(), 1, &ei);
	ok(mkdir_trap[0] == '\0', "the link appeared during the call");
	if (geteuid() == 0) {
		is_int(e, ERR_CONFIG, "a link made by another user meanwhile "
			"is refused");
		contains(errinfo_msg(&ei), "belongs to uid 65534", "names its owner (%s)",
			errinfo_msg(&ei));
		snprintf(p, sizeof(p), "%s/deeper", d);
		ok(access(p, F_OK) != 0, "nothing made through the link");
	} else {
		is_int(e, ERR_OK, "one's own link made meanwhile is fine (%s)",
			errinfo_msg(&ei));
	}
	mkdir_trap[0] = '\0';

	/* a directory of someone else (not root) is refused */
	make_dir(d, sizeof(d), "foreign", 0755);
	snprintf(f, sizeof(f), "%s/sub/token", d);
	errinfo_init(&ei);
	if (geteuid() == 0) {
		if (chown(d, 65534, 65534) != 0) {
			diag("chown %s: %s", d, strerror(errno));
		}
		e = fileio_secret_dir(f, 0, 1, &ei);
		contains(errinfo_msg(&ei), "belongs to uid 65534", "names the owner");
	} else {
		/* as another user, our own directories are someone else's */
		e = fileio_secret_dir(f, geteuid() + 1, 1, &ei);
		contains(errinfo_msg(&ei), "belongs to uid", "names the owner");
	}
	is_int(e, ERR_CONFIG, "a directory owned by another user is refused");
	contains(errinfo_msg(&ei), "not to you or root", "says who may own it");
	snprintf(p, sizeof(p), "%s/sub", d);
	ok(access(p, F_OK) != 0, "nothing made in it");
	if (geteuid() != 0) {
		/* root's directories are fine for everyone: "/" and /tmp */
		is_int(fileio_secret_dir("/tmp/x", geteuid() + 1, 0, &ei),
			ERR_OK, "root-owned directories are accepted");
	} else {
		is_int(fileio_secret_dir("/tmp/x", 12345, 0, &ei), ERR_OK,
			"root-owned directories are accepted");
	}

	/* a file in the way */
	snprintf(p, sizeof(p), "%s/plain", tmpdir);
	write_file(p, "x\n", 0600);
	snprintf(f, sizeof(f), "%s/plain/token", tmpdir);
	errinfo_init(&ei);
	is_int(fileio_secret_dir(f, geteuid(), 1, &ei), ERR_CONFIG,
		"a file where a directory should be");
	contains(errinfo_msg(&ei), "is not a directory", "not-a-directory message");
	snprintf(f, sizeof(f), "%s/plain/more/token", tmpdir);
	errinfo_init(&ei);
	is_int(fileio_secret_dir(f, geteuid(), 1, &ei), ERR_CONFIG,
		"a file further up the path");
	contains(errinfo_msg(&ei), "not a directory", "not-a-directory message, deeper");
	umask(old_umask);
}

/* The file store and the cache make their directories; unsafe ones stop them. */
static void
test_store_dirs(void)
{
	struct account acc;
	struct tstore *ts = NULL;
	struct buf b;
	char spec[2560], dir[512], cache[1024], path[2048], tok[256];
	enum err e;

	/* oauth2_token_store file:PATH under missing directories */
	account_setup(&acc, "deep");
	snprintf(spec, sizeof(spec), "file:%s/s1/s2/refresh", tmpdir);
	acc.oauth2_token_store = spec;
	buf_init_secret(&b, 65536);
	e = tstore_open(&acc, &ts, &ei);
	is_int(e, ERR_OK, "deep store opens");
	errinfo_init(&ei);
	e = tstore_load(ts, &b, &ei);
	is_int(e, ERR_REAUTH, "missing directories: nothing stored yet");
	e = tstore_save(ts, "rt-deep", &ei);
	is_int(e, ERR_OK, "save makes the directories (%s)", errinfo_msg(&ei));
	snprintf(dir, sizeof(dir), "%s/s1", tmpdir);
	ok(is_dir_0700(dir), "s1 made with mode 0700");
	snprintf(dir, sizeof(dir), "%s/s1/s2", tmpdir);
	ok(is_dir_0700(dir), "s1/s2 made with mode 0700");
	snprintf(path, sizeof(path), "%s/refresh", dir);
	is_str(read_text(path, tok, sizeof(tok)), "rt-deep\n", "token saved");
	is_int(mode_of(path), 0600, "token file mode 0600");
	e = tstore_load(ts, &b, &ei);
	is_str(buf_cstr(&b), "rt-deep", "and read back");
	tstore_free(ts);
	ts = NULL;

	/* a group-writable directory: neither read nor written */
	make_dir(dir, sizeof(dir), "shared", 0775);
	ok(share_with_a_group(dir), "shared with another group");
	snprintf(path, sizeof(path), "%s/refresh", dir);
	write_file(path, "rt-shared\n", 0600);
	snprintf(spec, sizeof(spec), "file:%s", path);
	e = tstore_open(&acc, &ts, &ei);
	is_int(e, ERR_OK, "store in a shared directory opens");
	errinfo_init(&ei);
	e = tstore_load(ts, &b, &ei);
	is_int(e, ERR_CONFIG, "its token is not read");
	contains(errinfo_msg(&ei), "chmod go-w", "with the fix");
	is_int((long long)b.len, 0, "nothing loaded");
	errinfo_init(&ei);
	is_int(tstore_save(ts, "rt-other", &ei), ERR_CONFIG, "nor written");
	is_str(read_text(path, tok, sizeof(tok)), "rt-shared\n",
		"the file is unchanged");
	is_int(mode_of(dir), 0775, "the directory's mode is unchanged");
	tstore_free(ts);
	ts = NULL;

	/*
	 * An existing token reached through a link in a world-writable
	 * directory: anyone can repoint the link, so neither read nor written.
	 */
	make_dir(dir, sizeof(dir), "store-private", 0700);
	snprintf(path, sizeof(path), "%s/refresh", dir);
	write_file(path, "rt-linked\n", 0600);
	make_dir(cache, sizeof(cache), "store-ww", 0777);
	snprintf(path, sizeof(path), "%s/link", cache);
	if (symlink(dir, path) != 0) {
		ok(0, "symlink %s: %s", path, strerror(errno));
	}
	snprintf(spec, sizeof(spec), "file:%s/link/refresh", cache);
	e = tstore_open(&acc, &ts, &ei);
	is_int(e, ERR_OK, "store through a link opens");
	buf_reset(&b);
	errinfo_init(&ei);
	e = tstore_load(ts, &b, &ei);
	is_int(e, ERR_CONFIG, "a token behind a link in a world-writable "
		"directory is not read");
	contains(errinfo_msg(&ei), cache, "the message names that directory (%s)",
		errinfo_msg(&ei));
	is_int((long long)b.len, 0, "nothing loaded");
	errinfo_init(&ei);
	is_int(tstore_save(ts, "rt-other", &ei), ERR_CONFIG, "nor written");
	snprintf(path, sizeof(path), "%s/refresh", dir);
	is_str(read_text(path, tok, sizeof(tok)), "rt-linked\n",
		"the file is unchanged");
	tstore_free(ts);
	buf_release(&b);

	/* oauth2_token_cache PATH under missing directories */
	account_setup(&acc, "deepcache");
	snprintf(cache, sizeof(cache), "%s/c1/c2/access.token", tmpdir);
	acc.oauth2_token_cache = cache;
	write_file(store_path, "rt-1\n", 0600);
	fake_reset(M_OK);
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_OK, "refresh with a deep cache path (%s)", errinfo_msg(&ei));
	snprintf(dir, sizeof(dir), "%s/c1", tmpdir);
	ok(is_dir_0700(dir), "c1 made with mode 0700");
	snprintf(dir, sizeof(dir), "%s/c1/c2", tmpdir);
	ok(is_dir_0700(dir), "c1/c2 made with mode 0700");
	is_int(mode_of(cache), 0600, "the cache file is there, mode 0600");
	snprintf(path, sizeof(path), "%s.lock", cache);
	ok(access(path, F_OK) != 0, "no lock beside it: the lock is the "
		"grant's, not the cache path's");
	{
		char id[33];

		token_grant_id(&acc, id);
		snprintf(path, sizeof(path), "%s/oasmtp/%s.lock", tmpdir, id);
		ok(access(path, F_OK) == 0, "the grant's lock in the state "
			"directory");
	}
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(atomic_load(&fake->calls), 1, "then a cache hit");

	make_dir(dir, sizeof(dir), "sharedcache", 0777);
	snprintf(cache, sizeof(cache), "%s/sub/access.token", dir);
	fake_reset(M_OK);
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_CONFIG, "a cache under a world-writable directory: "
		"refused");
	is_int(atomic_load(&fake->calls), 0, "before any refresh");

	/* the default cache on a fresh home: every directory made */
	account_setup(&acc, "fresh");
	snprintf(dir, sizeof(dir), "%s/fresh-home/.local/state", tmpdir);
	setenv("XDG_STATE_HOME", dir, 1);
	cache_path_of(&acc, path, sizeof(path));
	fake_reset(M_OK);
	e = get(&acc, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_OK, "default cache on a fresh home (%s)", errinfo_msg(&ei));
	snprintf(cache, sizeof(cache), "%s/fresh-home", tmpdir);
	ok(is_dir_0700(cache), "the missing home part made with mode 0700");
	ok(is_dir_0700(dir), ".local/state made with mode 0700");
	snprintf(cache, sizeof(cache), "%s/oasmtp", dir);
	ok(is_dir_0700(cache), ".local/state/oasmtp made with mode 0700");
	ok(strncmp(path, cache, strlen(cache)) == 0, "the cache is there "
		"(%s)", path);
	is_int(mode_of(path), 0600, "the cache file is there");
	setenv("XDG_STATE_HOME", tmpdir, 1);
}


/*
 * The grant is the unit (issue 13): an alias of an account, another
 * environment (XDG_RUNTIME_DIR, XDG_CACHE_HOME) and another scope, and
 * the caches oasmtp 0.1.0 left under the account's name.
 */
static void
test_grant_unit(void)
{
	struct account gmail, alias;
	char p1[PATH_MAX], p2[PATH_MAX], l1[PATH_MAX], l2[PATH_MAX];
	char tok[256], legacy[PATH_MAX], text[1024];
	struct buf b;
	char key[33];
	enum err e;

	account_setup(&gmail, "gmail");
	account_setup(&alias, "default");
	cache_path_of(&gmail, p1, sizeof(p1));
	cache_path_of(&alias, p2, sizeof(p2));
	ok(p1[0] != '\0' && strcmp(p1, p2) == 0, "an alias has the same cache "
		"(%s, %s)", p1, p2);
	buf_init(&b, PATH_MAX);
	l1[0] = l2[0] = '\0';
	if (token_lock_file(&gmail, &b, NULL) == ERR_OK) {
		util_strlcpy(l1, buf_cstr(&b), sizeof(l1));
	}
	setenv("XDG_RUNTIME_DIR", "/run/user/oasmtp-test-nowhere", 1);
	setenv("XDG_CACHE_HOME", "/nonexistent/cache", 1);
	if (token_lock_file(&alias, &b, NULL) == ERR_OK) {
		util_strlcpy(l2, buf_cstr(&b), sizeof(l2));
	}
	cache_path_of(&alias, p2, sizeof(p2));
	unsetenv("XDG_RUNTIME_DIR");
	unsetenv("XDG_CACHE_HOME");
	ok(l1[0] != '\0' && strcmp(l1, l2) == 0, "and the same lock, whatever "
		"XDG_RUNTIME_DIR says (%s, %s)", l1, l2);
	is_str(p2, p1, "and the same cache");
	snprintf(text, sizeof(text), "%s/oasmtp/", tmpdir);
	ok(strncmp(l1, text, strlen(text)) == 0, "in the state directory");

	/* one refresh for both names */
	write_file(store_path, "rt-1\n", 0600);
	fake_reset(M_OK);
	e = get(&gmail, 0, tok, sizeof(tok), &ei);
	is_int(e, ERR_OK, "gmail refreshes (%s)", errinfo_msg(&ei));
	e = get(&alias, 0, tok, sizeof(tok), &ei);
	is_str(tok, "at-1", "the alias uses gmail's token");
	is_int(atomic_load(&fake->calls), 1, "one token request for both");

	/* another scope of the same grant: its own cache, its own request */
	{
		struct buf t;

		buf_init_secret(&t, 65536);
		e = token_get_scope(&alias, "https://graph.test/.default", 0,
			&t, NULL, &ei);
		is_int(e, ERR_OK, "another scope (%s)", errinfo_msg(&ei));
		is_str(buf_cstr(&t), "at-2", "gets a token of its own");
		ok(strstr(fake->last_form,
			"scope=https%3A%2F%2Fgraph.test%2F.default") != NULL,
			"asked for that scope (%s)", fake->last_form);
		e = token_get_scope(&gmail, "https://graph.test/.default", 0,
			&t, NULL, &ei);
		is_str(buf_cstr(&t), "at-2", "cached per scope");
		e = get(&gmail, 0, tok, sizeof(tok), &ei);
		is_str(tok, "at-1", "the SMTP token is still cached apart");
		is_int(atomic_load(&fake->calls), 2, "no more requests");
		ok(token_cache_lookup_scope(&gmail,
			"https://graph.test/.default", &t, NULL) &&
			strcmp(buf_cstr(&t), "at-2") == 0,
			"the fast path finds the scope's token too");
		buf_release(&t);
	}
	unlink(p1);

	/* a fresh 0.1.0 cache under the account's name is used, then moved */
	token_grant_key(&gmail, "https://token.test/token", "", key);
	snprintf(text, sizeof(text), "oasmtp-token-cache 2\nkey %s\nexpires "
		"%lld\nlifetime 3600\ntoken at-legacy\nend\n", key,
		(long long)time(NULL) + 3000);
	snprintf(legacy, sizeof(legacy), "%s/legacy-run", tmpdir);
	mkdir(legacy, 0700);
	snprintf(legacy, sizeof(legacy), "%s/legacy-run/oasmtp", tmpdir);
	mkdir(legacy, 0700);
	snprintf(legacy, sizeof(legacy), "%s/legacy-run/oasmtp/gmail.token",
		tmpdir);
	write_file(legacy, text, 0600);
	snprintf(text, sizeof(text), "%s/legacy-run", tmpdir);
	setenv("XDG_RUNTIME_DIR", text, 1);
	fake_reset(M_OK);
	e = get(&gmail, 0, tok, sizeof(tok), &ei);
	is_str(tok, "at-legacy", "a 0.1.0 cache is still used");
	is_int(atomic_load(&fake->calls), 0, "without a request");
	e = get(&gmail, TOKEN_FORCE_REFRESH, tok, sizeof(tok), &ei);
	is_str(tok, "at-1", "a refresh");
	ok(access(legacy, F_OK) != 0, "replaces the 0.1.0 cache");
	ok(access(p1, F_OK) == 0, "by the grant's");
	unsetenv("XDG_RUNTIME_DIR");
	buf_release(&b);
}

#define NPROC 20

static void
test_concurrency(void)
{
	struct account acc;
	char path[PATH_MAX], tok[256], first[256];
	pid_t pids[NPROC];
	int i, same = 1, exits_ok = 1;

	account_setup(&acc, "race");
	write_file(store_path, "rt-0\n", 0600);
	fake_reset(M_ROTATE);
	fake->delay_ms = 200;
	fflush(stdout);
	for (i = 0; i < NPROC; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			struct errinfo *cei = calloc(1, sizeof(*cei));
			enum err e = get(&acc, 0, tok, sizeof(tok), cei);
			FILE *f;

			snprintf(path, sizeof(path), "%s/out.%d", tmpdir, i);
			f = fopen(path, "w");
			fprintf(f, "%s", e == ERR_OK ? tok : errinfo_msg(cei));
			fclose(f);
			_exit(e == ERR_OK ? 0 : 1);
		}
	}
	for (i = 0; i < NPROC; i++) {
		int status = 0;

		waitpid(pids[i], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			exits_ok = 0;
		}
	}
	ok(exits_ok, "all %d processes got a token", NPROC);
	is_int(atomic_load(&fake->calls), 1,
		"%d concurrent token_get at expiry: exactly one refresh", NPROC);
	for (i = 0; i < NPROC; i++) {
		snprintf(path, sizeof(path), "%s/out.%d", tmpdir, i);
		read_text(path, tok, sizeof(tok));
		if (i == 0) {
			util_strlcpy(first, tok, sizeof(first));
		} else if (strcmp(tok, first) != 0) {
			same = 0;
			diag("process %d got '%s', process 0 '%s'", i, tok, first);
		}
	}
	ok(same && strcmp(first, "at-1") == 0, "all got the same token");
	is_str(read_text(store_path, tok, sizeof(tok)), "rt-1\n",
		"the rotated refresh token was saved once");
	ok(access(prev_path, F_OK) != 0,
		"the replaced one is not kept (never sent again)");
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	(void)remove(path);
	return 0;
}

int
main(void)
{
	char tmpl[] = "/tmp/oasmtp-token-test.XXXXXX";

	fake = mmap(NULL, sizeof(*fake), PROT_READ | PROT_WRITE,
		MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (fake == MAP_FAILED || mkdtemp(tmpl) == NULL) {
		printf("Bail out! setup failed\n");
		return 1;
	}
	util_strlcpy(tmpdir, tmpl, sizeof(tmpdir));
	snprintf(store_path, sizeof(store_path), "%s/refresh", tmpdir);
	snprintf(store_spec, sizeof(store_spec), "file:%s", store_path);
	snprintf(prev_path, sizeof(prev_path), "%s.previous", store_path);
	setenv("XDG_STATE_HOME", tmpdir, 1);
	unsetenv("XDG_RUNTIME_DIR");
	oauth_http_set_post(fake_post, NULL);

	test_cache();
	test_grant_unit();
	test_rotation();
	test_previous();
	test_errors();
	test_file_store();
	test_secret_dirs();
	test_store_dirs();
	test_presets();
	test_prefetch();
	test_concurrency();

	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
