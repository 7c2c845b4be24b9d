/*
 * test_credential.c - where the AUTH secret comes from (credential.h):
 * the choice of source, a literal password, passwordeval (output, failure,
 * timeout), no credentials at all, the OAuth fast path that reads a
 * fresh cached token without starting oasmtp-token, and the oasmtp-token
 * runs: the fake of tests/unit/credential/oasmtp-token, which meson puts
 * beside this program (and beside no other), is the helper it finds.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "credential.h"
#include "provider.h"
#include "err.h"
#include "tap.h"
#include "token_cache.h"
#include "util.h"

static char tmp_dir[] = "/tmp/test_credential_XXXXXX";

static void
acc_init(struct account *a)
{
	memset(a, 0, sizeof(*a));
	a->name = (char *)"test";
	a->host = (char *)"smtp.example.com";
	a->user = (char *)"u@example.com";
	a->auth = AUTH_ON;
	a->timeout = 10;
}

static void
test_kind(void)
{
	static const struct {
		const char *password, *eval, *client_id, *endpoint;
		enum oauth2_provider provider;
		enum credential_kind want;
		const char *name;
	} cases[] = {
		/* a user and nothing else: msmtp's lookup */
		{ NULL, NULL, NULL, NULL, OAUTH2_NONE, CREDENTIAL_LOOKUP,
			"lookup (Secret Service, netrc, terminal prompt)" },
		{ "pw", NULL, NULL, NULL, OAUTH2_NONE, CREDENTIAL_PASSWORD,
			"password" },
		{ NULL, "echo pw", NULL, NULL, OAUTH2_NONE, CREDENTIAL_EVAL,
			"passwordeval" },
		/* passwordeval first, then password, then oauth2_* */
		{ "pw", "echo pw", "id", NULL, OAUTH2_NONE, CREDENTIAL_EVAL,
			"passwordeval" },
		{ "pw", NULL, "id", NULL, OAUTH2_NONE, CREDENTIAL_PASSWORD,
			"password" },
		{ NULL, NULL, "id", NULL, OAUTH2_NONE, CREDENTIAL_OAUTH,
			"oauth2 (built-in refresh)" },
		{ NULL, NULL, NULL, "https://e.example/token", OAUTH2_NONE,
			CREDENTIAL_OAUTH, "oauth2 (built-in refresh)" },
		{ NULL, NULL, NULL, NULL, OAUTH2_GOOGLE, CREDENTIAL_OAUTH,
			"oauth2 (built-in refresh)" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct account a;
		enum credential_kind k;

		acc_init(&a);
		a.password = (char *)cases[i].password;
		a.passwordeval = (char *)cases[i].eval;
		a.oauth2_client_id = (char *)cases[i].client_id;
		a.oauth2_token_endpoint = (char *)cases[i].endpoint;
		a.oauth2_provider = cases[i].provider;
		k = credential_kind_of(&a);
		is_int(k, cases[i].want, "kind case %zu", i);
		is_str(credential_kind_name(k), cases[i].name,
			"kind case %zu: name", i);
	}
	{
		struct account a;

		acc_init(&a);
		a.user = NULL;
		is_int(credential_kind_of(&a), CREDENTIAL_NONE,
			"no user, no secret: none");
		is_str(credential_kind_name(CREDENTIAL_NONE), "none",
			"  named none");
	}
}

/*
 * credential_start + credential_get once; the secret or the error.
 * *ret_helper: 1 when credential_start started oasmtp-token (running, or
 * already found not executable), else -1.
 */
static enum err
get_once(const struct account *a, int fresh, struct buf *secret,
	struct errinfo *ei, pid_t *ret_helper)
{
	struct credential c;
	enum err e;

	errinfo_init(ei);
	e = credential_start(&c, a, NULL, 1, ei);
	if (e == ERR_OK) {
		*ret_helper = c.helper.pid > 0 ||
			c.helper.end != PROC_RUNNING ? 1 : -1;
		e = credential_get(&c, fresh, secret, ei);
	}
	credential_release(&c);
	return e;
}

static void
test_password_and_none(void)
{
	struct account a;
	struct errinfo ei = ERRINFO_INIT;
	struct buf s;
	pid_t helper = 0;

	buf_init_secret(&s, 4096);
	acc_init(&a);
	a.password = (char *)"hunter2";
	is_int(get_once(&a, 0, &s, &ei, &helper), ERR_OK, "password: ok");
	is_str(buf_cstr(&s), "hunter2", "  the literal secret");
	is_int(helper, -1, "  no helper started");
	is_int(get_once(&a, 1, &s, &ei, &helper), ERR_AUTH,
		"password refused by the server: a fresh one cannot exist");
	contains(errinfo_msg(&ei), "refused the password", "  says so");
	is_int((long long)s.len, 0, "  nothing handed out");

	acc_init(&a);
	a.user = NULL;
	is_int(get_once(&a, 0, &s, &ei, &helper), ERR_CONFIG,
		"no credentials: configuration error");
	contains(errinfo_msg(&ei), "account 'test' has no credentials", "  names the "
		"account");
	contains(errinfo_msg(&ei), "passwordeval, password or the oauth2_* keys",
		"  and the fix");
	buf_release(&s);
}

/* msmtp's lookup: the netrc file ($NETRC here; no terminal is asked). */
static void
test_lookup_netrc(void)
{
	struct account a;
	struct errinfo ei = ERRINFO_INIT;
	struct buf s;
	char path[256];
	pid_t helper = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/netrc", tmp_dir);
	f = fopen(path, "w");
	if (!ok(f != NULL, "netrc written")) {
		return;
	}
	fputs("machine smtp.example.com login u@example.com password "
		"from-netrc\n", f);
	fclose(f);
	chmod(path, 0600);
	setenv("NETRC", path, 1);
	buf_init_secret(&s, 4096);
	acc_init(&a);
	is_int(get_once(&a, 0, &s, &ei, &helper), ERR_OK, "lookup: netrc");
	is_str(buf_cstr(&s), "from-netrc", "  its password");
	is_int(get_once(&a, 1, &s, &ei, &helper), ERR_AUTH,
		"refused by the server: no other password is tried");
	contains(errinfo_msg(&ei), "refused the password from", "  says so");
	chmod(path, 0644);
	is_int(get_once(&a, 0, &s, &ei, &helper), ERR_CONFIG,
		"a netrc file readable by others is refused");
	contains(errinfo_msg(&ei), "chmod 600", "  with the fix");
	is_int((long long)s.len, 0, "  nothing handed out");
	unsetenv("NETRC");
	unlink(path);
	buf_release(&s);
	errinfo_release(&ei);
}

static void
test_passwordeval(void)
{
	struct account a;
	struct errinfo ei = ERRINFO_INIT;
	struct buf s;
	pid_t helper = 0;
	int64_t t0;

	buf_init_secret(&s, 1 << 20);
	acc_init(&a);
	a.passwordeval = (char *)"printf 's3cret\\n'";
	is_int(get_once(&a, 0, &s, &ei, &helper), ERR_OK, "passwordeval: ok");
	is_str(buf_cstr(&s), "s3cret", "  its output, without the newline");
	is_int(helper, -1, "  no helper");
	is_int(get_once(&a, 1, &s, &ei, &helper), ERR_OK,
		"  asked again for a fresh one: runs the command again");
	is_str(buf_cstr(&s), "s3cret", "  same output");

	a.passwordeval = (char *)"echo oops >&2; exit 3";
	is_int(get_once(&a, 0, &s, &ei, &helper), ERR_TOKEN_TEMP,
		"failing passwordeval: temporary (the mail waits)");
	contains(errinfo_msg(&ei), "account 'test': passwordeval: ", "  names account "
		"and source");
	is_int((long long)s.len, 0, "  no secret");

	a.passwordeval = (char *)"exec sleep 30";
	a.timeout = 1;
	t0 = util_now_ms();
	is_int(get_once(&a, 0, &s, &ei, &helper), ERR_TOKEN_TEMP,
		"hanging passwordeval: temporary");
	ok(util_now_ms() - t0 < 10000, "  killed after the account timeout "
		"(%lld ms)", (long long)(util_now_ms() - t0));
	contains(errinfo_msg(&ei), "passwordeval", "  says which source");
	buf_release(&s);
}

/* The directory of this program, with its final '/'. */
static void
self_dir(struct buf *out)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	buf_reset(out);
	self[n > 0 ? n : 0] = '\0';
	slash = strrchr(self, '/');
	if (slash != NULL) {
		slash[1] = '\0';
	}
	setup(buf_append_str(out, self));
}

static void
test_helper_path(void)
{
	struct buf p, want;
	struct errinfo ei = ERRINFO_INIT;

	buf_init(&p, 4096);
	buf_init(&want, 4096);
	self_dir(&want);
	setup(buf_append_str(&want, "oasmtp-token"));
	is_int(credential_helper_path(&p, &ei), ERR_OK, "helper path");
	is_str(buf_cstr(&p), buf_cstr(&want),
		"  the oasmtp-token beside this program (the fake)");
	buf_release(&p);
	buf_release(&want);
}

/* The fast path: a fresh cached token, no helper process. */
static void
test_oauth_cached(void)
{
	struct account a;
	struct errinfo ei = ERRINFO_INIT;
	struct buf path, endpoint, scope, s;
	struct token_cached tc;
	char key[33];
	pid_t helper = 0;
	enum err e;

	acc_init(&a);
	a.auth = AUTH_XOAUTH2;
	a.oauth2_client_id = (char *)"client-1";
	a.oauth2_token_endpoint = (char *)"https://idp.example/token";
	a.oauth2_scope = (char *)"https://mail.example/";
	buf_init(&path, 4096);
	buf_init(&endpoint, 4096);
	buf_init(&scope, 4096);
	buf_init_secret(&s, 1 << 16);
	buf_init_secret(&tc.token, 1 << 16);
	errinfo_init(&ei);
	e = token_cache_file(&a, NULL, 1, &path, &ei);
	is_int(e, ERR_OK, "cache file under XDG_CACHE_HOME (%s)", errinfo_msg(&ei));
	is_int(provider_token_endpoint(&a, &endpoint, &scope, &ei), ERR_OK,
		"token endpoint");
	token_grant_key(&a, buf_cstr(&endpoint), buf_cstr(&scope), key);
	is_int(buf_append_str(&tc.token, "cached-access-token"), ERR_OK,
		"token text");
	tc.expires_at = time(NULL) + 3600;
	tc.lifetime = 3600;
	is_int(token_cache_write(buf_cstr(&path), key, &tc, &ei), ERR_OK,
		"cache written");

	is_int(get_once(&a, 0, &s, &ei, &helper), ERR_OK,
		"oauth, fresh cache: ok");
	is_str(buf_cstr(&s), "cached-access-token", "  the cached token");
	is_int(helper, -1, "  oasmtp-token not started");

	/* no cached token: the helper runs (prefetch starts it early) */
	is_int(unlink(buf_cstr(&path)), 0, "cache removed");
	setenv("FAKE_TOKEN_MODE", "token", 1);
	e = get_once(&a, 0, &s, &ei, &helper);
	ok(helper > 0, "oauth, no cache: oasmtp-token started at once");
	is_int(e, ERR_OK, "  it answered (%s)", errinfo_msg(&ei));
	is_str(buf_cstr(&s), "fake-access-token", "  with its token");
	unsetenv("FAKE_TOKEN_MODE");
	e = get_once(&a, 0, &s, &ei, &helper);
	ok(e != ERR_OK && s.len == 0, "  its failure is the error, no "
		"secret");
	contains(errinfo_msg(&ei), "fake: FAKE_TOKEN_MODE is not set",
		"  with its message");

	/* auth off: nothing is read or started */
	a.auth = AUTH_OFF;
	{
		struct credential c;

		is_int(credential_start(&c, &a, NULL, 1, &ei), ERR_OK,
			"auth off: start");
		ok(c.helper.pid == -1 && c.helper.end == PROC_RUNNING &&
			c.cached.len == 0, "  no cache read, no "
			"helper");
		credential_release(&c);
	}
	buf_release(&tc.token);
	buf_release(&path);
	buf_release(&endpoint);
	buf_release(&scope);
	buf_release(&s);
}

/*
 * One OAuth fetch through the fake helper in mode: the error, the secret,
 * the warnings kept for main, and the command lines of its runs.
 */
static enum err
fetch(const struct account *a, const char *config_file, int fresh,
	const char *mode, struct buf *secret, struct buf *warnings,
	struct buf *argv_lines, struct errinfo *ei)
{
	struct credential c;
	char argv_file[256];
	enum err e;

	snprintf(argv_file, sizeof(argv_file), "%s/argv", tmp_dir);
	unlink(argv_file);
	setenv("FAKE_TOKEN_ARGV", argv_file, 1);
	setenv("FAKE_TOKEN_MODE", mode, 1);
	buf_reset(secret);
	buf_reset(warnings);
	buf_reset(argv_lines);
	errinfo_init(ei);
	e = credential_start(&c, a, config_file, 1, ei);
	if (e == ERR_OK) {
		e = credential_get(&c, fresh, secret, ei);
		setup(buf_append(warnings, c.warnings.data, c.warnings.len));
	}
	credential_release(&c);
	{
		FILE *f = fopen(argv_file, "r");
		char line[512];

		while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
			setup(buf_append_str(argv_lines, line));
		}
		if (f != NULL) {
			fclose(f);
		}
	}
	unsetenv("FAKE_TOKEN_MODE");
	unsetenv("FAKE_TOKEN_ARGV");
	return e;
}

/* The helper's answers: its token, its warnings, its exit status. */
static void
test_helper_runs(void)
{
	static const struct {
		const char *mode;
		enum err want;
		const char *msg;	/* the error message (exactly) */
	} fails[] = {
		{ "empty", ERR_TOKEN_TEMP,
			"account 'test': oasmtp-token printed no token" },
		{ "fail:77:run oasmtp-token authorize test", ERR_REAUTH,
			"run oasmtp-token authorize test" },
		{ "fail:78:bad oauth2_scope", ERR_CONFIG, "bad oauth2_scope" },
		{ "fail:74:cannot write the cache", ERR_IO,
			"cannot write the cache" },
		{ "fail:64:usage", ERR_INTERNAL, "usage" },
		{ "fail:70:internal", ERR_INTERNAL, "internal" },
		{ "fail:75:token endpoint down", ERR_TOKEN_TEMP,
			"token endpoint down" },
		{ "fail:1:odd status", ERR_TOKEN_TEMP, "odd status" },
		{ "quiet:77", ERR_REAUTH,
			"account 'test': oasmtp-token failed (status 77)" },
		{ "quiet:3", ERR_TOKEN_TEMP,
			"account 'test': oasmtp-token failed (status 3)" },
		{ "signal", ERR_TOKEN_TEMP,
			"account 'test': oasmtp-token failed (status -1)" },
	};
	struct account a;
	struct errinfo ei = ERRINFO_INIT;
	struct buf s, warn, args;
	size_t i;

	buf_init_secret(&s, 1 << 16);
	buf_init(&warn, 4096);
	buf_init(&args, 4096);
	acc_init(&a);
	a.name = (char *)"test";
	a.auth = AUTH_XOAUTH2;
	a.oauth2_client_id = (char *)"client-2";
	a.oauth2_token_endpoint = (char *)"https://idp.example/token2";

	is_int(fetch(&a, NULL, 0, "token", &s, &warn, &args, &ei), ERR_OK,
		"helper: token");
	is_str(buf_cstr(&s), "fake-access-token", "  the token, no newline");
	is_str(buf_cstr(&warn), "", "  no warnings");
	is_str(buf_cstr(&args), "print -- test\n", "  argv: print -- ACCOUNT");

	is_int(fetch(&a, "/x/my rc", 0, "warn", &s, &warn, &args, &ei),
		ERR_OK, "helper: token with a warning");
	is_str(buf_cstr(&s), "fake-access-token", "  the token, no CRLF");
	is_str(buf_cstr(&warn), "the refresh token expires in 2 days",
		"  the warning kept for main, without the program name");
	is_str(buf_cstr(&args), "-C /x/my rc print -- test\n",
		"  argv: -C CONFIG passed on");

	/* a refused token: the prefetched plain run ends, then --fresh */
	is_int(fetch(&a, NULL, 1, "token", &s, &warn, &args, &ei), ERR_OK,
		"helper: fresh token");
	is_str(buf_cstr(&args), "print -- test\nprint --fresh -- test\n",
		"  argv: the prefetch, then print --fresh");

	a.system = 1;
	is_int(fetch(&a, NULL, 0, "token", &s, &warn, &args, &ei), ERR_OK,
		"helper, system mode: token");
	is_str(buf_cstr(&args), "--system print -- test\n",
		"  argv: --system");
	a.system = 0;

	for (i = 0; i < sizeof(fails) / sizeof(fails[0]); i++) {
		is_int(fetch(&a, NULL, 0, fails[i].mode, &s, &warn, &args,
			&ei), fails[i].want, "helper '%s': %s", fails[i].mode,
			err_name(fails[i].want));
		is_str(errinfo_msg(&ei), fails[i].msg, "  message");
		is_int((long long)s.len, 0, "  no secret");
	}
	buf_release(&s);
	buf_release(&warn);
	buf_release(&args);
}

int
main(void)
{
	char cmd[128];

	if (mkdtemp(tmp_dir) == NULL) {
		ok(0, "mkdtemp");
		return tap_done();
	}
	/* an installed oasmtp-token finds no configuration here */
	setenv("HOME", tmp_dir, 1);
	setenv("XDG_CONFIG_HOME", tmp_dir, 1);
	setenv("XDG_CACHE_HOME", tmp_dir, 1);
	setenv("XDG_STATE_HOME", tmp_dir, 1);
	setenv("XDG_RUNTIME_DIR", tmp_dir, 1);
	test_kind();
	test_password_and_none();
	test_lookup_netrc();
	test_passwordeval();
	test_helper_path();
	test_oauth_cached();
	test_helper_runs();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
	is_int(system(cmd), 0, "temporary directory removed");
	return tap_done();
}
