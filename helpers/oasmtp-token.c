/*
 * oasmtp-token - the OAuth2 side of oasmtp, as its own program.
 *
 *   oasmtp-token [-C FILE] print [--fresh] ACCOUNT
 *   oasmtp-token [-C FILE] refresh ACCOUNT
 *   oasmtp-token [-C FILE] status [ACCOUNT]
 *   oasmtp-token [-C FILE] import ACCOUNT      (refresh token on stdin)
 *   oasmtp-token [-C FILE] forget ACCOUNT
 *
 * `print` is what oasmtp runs when its cached access token is missing or
 * stale, and what mutt, mbsync or msmtp's passwordeval can run: a valid
 * access token on stdout and nothing else.  This program, not oasmtp, links
 * libcurl, json-c and libsecret.  Exit status follows sysexits(3) like
 * oasmtp's (75 temporary, 77 re-authorization needed, 78 configuration).
 */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "oasmtp-config.h"

#include "account.h"
#include "buf.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "token.h"
#include "tstore.h"

#define TOKEN_MAX (64 * 1024)

static struct errinfo ei;

static const char usage[] =
	"usage: oasmtp-token [-C FILE] COMMAND [ARGS]\n"
	"\n"
	"  print [--fresh] ACCOUNT  print a valid access token (refreshing it\n"
	"                           when needed; --fresh: always refresh)\n"
	"  refresh ACCOUNT          refresh the access token now\n"
	"  status [ACCOUNT]         show token store and cache state\n"
	"  import ACCOUNT           store a refresh token read from stdin\n"
	"  forget ACCOUNT           remove the refresh token and cached token\n"
	"  authorize ACCOUNT        (not available yet: use import)\n"
	"\n"
	"  -C FILE                  use FILE as the configuration file\n"
	"  --help, --version\n";

static int
fail(enum err e)
{
	log_error("%s", ei.msg[0] ? ei.msg : err_name(e));
	return err_exit_code(e);
}

static int
usage_error(const char *what)
{
	log_error("%s (see oasmtp-token --help)", what);
	return EX_USAGE;
}

static enum err
load(const char *file, const char *name, struct config **ret_cfg,
	const struct account **ret_acc)
{
	struct config_params params;
	enum err e;

	memset(&params, 0, sizeof(params));
	params.file = file;
	e = config_load(&params, ret_cfg, &ei);
	if (e == ERR_OK && name != NULL) {
		e = config_select(*ret_cfg, name, NULL, ret_acc, &ei);
	}
	if (e == ERR_OK && name != NULL && !account_is_oauth(*ret_acc)) {
		e = errinfo_set(&ei, ERR_CONFIG, "account '%s' has no oauth2 "
			"settings (oauth2_provider or oauth2_client_id)", name);
	}
	return e;
}

static int
cmd_print(const struct account *acc, int fresh)
{
	struct token_info info;
	struct buf tok;
	enum err e;
	int rc = EX_OK;

	buf_init_secret(&tok, TOKEN_MAX);
	e = token_get_ex(acc, fresh ? TOKEN_FORCE_REFRESH : 0, &tok, &info,
		&ei);
	if (e != ERR_OK) {
		rc = fail(e);
	} else {
		if (info.warning[0] != '\0') {
			log_warn("%s", info.warning);
		}
		if (fwrite(tok.data, 1, tok.len, stdout) != tok.len ||
		    fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
			log_error("cannot write the token to standard output");
			rc = EX_IOERR;
		}
	}
	buf_release(&tok);
	return rc;
}

static void
print_time(const char *label, time_t t)
{
	char when[64];
	struct tm tm;

	if (localtime_r(&t, &tm) != NULL &&
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %z", &tm) > 0) {
		printf("%s%s\n", label, when);
	}
}

static int
cmd_refresh(const struct account *acc)
{
	struct token_info info;
	struct buf tok;
	enum err e;

	buf_init_secret(&tok, TOKEN_MAX);
	e = token_get_ex(acc, TOKEN_FORCE_REFRESH, &tok, &info, &ei);
	buf_release(&tok);
	if (e != ERR_OK) {
		return fail(e);
	}
	if (info.warning[0] != '\0') {
		log_warn("%s", info.warning);
	}
	printf("account %s: access token refreshed%s\n", acc->name,
		info.rotated ? ", new refresh token stored" : "");
	print_time("  valid until: ", info.expires_at);
	return EX_OK;
}

static void
status_one(const struct account *acc)
{
	static struct errinfo sei;
	struct buf tok, path;
	struct tstore *ts = NULL;
	time_t expires = 0;
	enum err e;

	printf("account %s\n", acc->name);
	printf("  token store: %s\n", acc->oauth2_token_store ?
		acc->oauth2_token_store : "secret-service (default)");
	buf_init_secret(&tok, TOKEN_MAX);
	buf_init(&path, 4096);
	errinfo_init(&sei);
	e = tstore_open(acc, &ts, &sei);
	if (e == ERR_OK) {
		e = tstore_load(ts, &tok, &sei);
	}
	printf("  refresh token: %s\n", e == ERR_OK ? "present" : sei.msg);
	buf_reset(&tok);
	if (token_cache_off(acc)) {
		printf("  access token cache: off\n");
	} else if (token_cache_path(acc, &path, NULL) == ERR_OK) {
		printf("  access token cache: %s\n", path.data);
		if (token_cache_lookup(acc, &tok, &expires)) {
			print_time("  access token valid until: ", expires);
		} else {
			printf("  access token: none fresh (refreshed at the "
				"next send)\n");
		}
	}
	tstore_free(ts);
	buf_release(&tok);
	buf_release(&path);
}

static int
cmd_status(const struct config *cfg, const struct account *only)
{
	size_t i;
	int shown = 0;

	for (i = 0; i < cfg->n_accounts; i++) {
		const struct account *acc = cfg->accounts[i];

		if ((only != NULL && acc != only) || !account_is_oauth(acc)) {
			continue;
		}
		if (shown++ > 0) {
			putchar('\n');
		}
		status_one(acc);
	}
	if (shown == 0) {
		printf("no account uses OAuth2\n");
	}
	return fflush(stdout) == 0 ? EX_OK : EX_IOERR;
}

static int
cmd_import(const struct account *acc)
{
	struct tstore *ts = NULL;
	struct buf rt;
	char chunk[4096];
	size_t n;
	enum err e = ERR_OK;

	buf_init_secret(&rt, TOKEN_MAX);
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0 && e == ERR_OK) {
		e = buf_append(&rt, chunk, n);
	}
	memset(chunk, 0, sizeof(chunk));
	while (rt.len > 0 && strchr(" \t\r\n", rt.data[rt.len - 1]) != NULL) {
		buf_truncate(&rt, rt.len - 1);
	}
	if (e != ERR_OK || rt.len == 0 || strpbrk(rt.data, " \t\r\n") != NULL) {
		buf_release(&rt);
		return usage_error("import: expected one refresh token on "
			"standard input");
	}
	e = tstore_open(acc, &ts, &ei);
	if (e == ERR_OK) {
		e = tstore_save(ts, rt.data, &ei);
	}
	if (e == ERR_OK) {
		(void)token_cache_drop(acc, NULL);
	}
	tstore_free(ts);
	buf_release(&rt);
	if (e != ERR_OK) {
		return fail(e);
	}
	printf("account %s: refresh token stored\n", acc->name);
	return EX_OK;
}

static int
cmd_forget(const struct account *acc)
{
	struct tstore *ts = NULL;
	enum err e;

	e = tstore_open(acc, &ts, &ei);
	if (e == ERR_OK) {
		e = tstore_erase(ts, &ei);
	}
	tstore_free(ts);
	if (e == ERR_OK) {
		e = token_cache_drop(acc, &ei);
	}
	if (e != ERR_OK) {
		return fail(e);
	}
	printf("account %s: refresh token and cached access token removed\n",
		acc->name);
	return EX_OK;
}

int
main(int argc, char **argv)
{
	const struct account *acc = NULL;
	struct config *cfg = NULL;
	const char *file = NULL, *cmd, *name = NULL;
	int i = 1, fresh = 0, rc;
	enum err e;

	log_init("oasmtp-token", 0);
	errinfo_init(&ei);
	for (int k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--help") == 0) {
			fputs(usage, stdout);
			return EX_OK;
		}
		if (strcmp(argv[k], "--version") == 0) {
			printf("oasmtp-token version %s\n", OASMTP_VERSION);
			return EX_OK;
		}
	}
	if (i + 1 < argc && strcmp(argv[i], "-C") == 0) {
		file = argv[i + 1];
		i += 2;
	}
	if (i >= argc) {
		return usage_error("no command given");
	}
	cmd = argv[i++];
	if (strcmp(cmd, "print") == 0 && i < argc &&
	    strcmp(argv[i], "--fresh") == 0) {
		fresh = 1;
		i++;
	}
	if (i < argc && strcmp(argv[i], "--") == 0) {
		i++;
	}
	if (i < argc) {
		name = argv[i++];
	}
	if (i < argc) {
		return usage_error("too many arguments");
	}
	if (name == NULL && strcmp(cmd, "status") != 0) {
		return usage_error("an ACCOUNT is required");
	}
	if (strcmp(cmd, "authorize") == 0) {
		log_error("authorize is not available in this version; get a "
			"refresh token elsewhere and run: oasmtp-token import %s",
			name);
		return EX_UNAVAILABLE;
	}
	if (strcmp(cmd, "print") != 0 && strcmp(cmd, "refresh") != 0 &&
	    strcmp(cmd, "status") != 0 && strcmp(cmd, "import") != 0 &&
	    strcmp(cmd, "forget") != 0) {
		return usage_error("unknown command");
	}
	e = load(file, name, &cfg, &acc);
	if (e != ERR_OK) {
		config_free(cfg);
		return fail(e);
	}
	if (strcmp(cmd, "print") == 0) {
		rc = cmd_print(acc, fresh);
	} else if (strcmp(cmd, "refresh") == 0) {
		rc = cmd_refresh(acc);
	} else if (strcmp(cmd, "status") == 0) {
		rc = cmd_status(cfg, acc);
	} else if (strcmp(cmd, "import") == 0) {
		rc = cmd_import(acc);
	} else {
		rc = cmd_forget(acc);
	}
	config_free(cfg);
	return rc;
}
