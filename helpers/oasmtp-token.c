/*
 * oasmtp-token - the OAuth2 side of oasmtp, as its own program.
 *
 *   oasmtp-token [-C FILE] authorize ACCOUNT [--flow loopback|device|paste]
 *                          [--no-browser] [--port N] [--timeout SECONDS]
 *                          [--any-identity]
 *   oasmtp-token [-C FILE] print [--fresh] ACCOUNT
 *   oasmtp-token [-C FILE] refresh ACCOUNT [--if-idle-for DURATION]
 *   oasmtp-token [-C FILE] status [ACCOUNT]
 *   oasmtp-token [-C FILE] import ACCOUNT      (refresh token on stdin)
 *   oasmtp-token [-C FILE] forget ACCOUNT
 *   oasmtp-token [-C FILE] send ACCOUNT        (run by oasmtp: the message
 *                                              on stdin goes out over the
 *                                              account's HTTPS API)
 *
 * --system before the command (oasmtp-token --system authorize ACCOUNT)
 * works on an account of the system configuration, whose grant lives in
 * the service's state directory (doc/system-wide.md).  Run as root, it
 * first becomes the owner of that directory, so every file it writes
 * belongs to the service and stays unreadable to everyone else.
 *
 * `print` is what oasmtp runs when its cached access token is missing or
 * stale, and what mutt, mbsync or msmtp's passwordeval can run: a valid
 * access token on stdout and nothing else.  This program, not oasmtp, links
 * libcurl, json-c and libsecret.  Exit status follows sysexits(3) like
 * oasmtp's (75 temporary, 77 re-authorization needed, 78 configuration).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "oasmtp-config.h"

#include "account.h"
#include "buf.h"
#include "config.h"
#include "err.h"
#include "explain.h"
#include "grant_state.h"
#include "log.h"
#include "proc.h"
#include "queue.h"
#include "provider.h"
#include "sysmode.h"
#include "token_authorize.h"
#include "token_send.h"
#include "token.h"
#include "token_import.h"
#include "tstore.h"
#include "util.h"

#define TOKEN_MAX (64 * 1024)


static const char usage[] =
	"usage: oasmtp-token [-C FILE] [--system] COMMAND [ARGS]\n"
	"\n"
	"  print [--fresh] ACCOUNT  print a valid access token (refreshing it\n"
	"                           when needed; --fresh: always refresh)\n"
	"  refresh ACCOUNT          refresh the access token now\n"
	"    --if-idle-for DURATION only when the last refresh is older\n"
	"                           (30d, 12h, 90m, 3600)\n"
	"  status [ACCOUNT]         show token store, cache and grant age\n"
	"  import ACCOUNT [--no-verify]\n"
	"                           store a refresh token (bare, or a JSON token\n"
	"                           file) read from stdin, checked by one refresh\n"
	"  send ACCOUNT             (run by oasmtp) send the message on stdin\n"
	"                           through the account's HTTPS API\n"
	"  forget ACCOUNT           revoke the grant at the provider (when it\n"
	"                           can) and remove it here\n"
	"  authorize ACCOUNT        sign in and store a new grant\n"
	"    --flow loopback|device|paste   (default: loopback with a\n"
	"                           display, else device where allowed,\n"
	"                           else paste)\n"
	"    --no-browser           print the address, do not run xdg-open\n"
	"    --port N               loopback port (for ssh -L), default any\n"
	"    --timeout SECONDS      how long to wait for the browser (300)\n"
	"    --any-identity         store even if the signed-in address is\n"
	"                           not the account's user\n"
	"\n"
	"  -C FILE                  use FILE as the configuration file\n"
	"  --system                 an account of the system configuration;\n"
	"                           its grant is kept in the service's state\n"
	"                           directory (as root: run as its owner)\n"
	"  --help, --version\n";

static int
fail(enum err e, const struct errinfo *ei)
{
	const char *advice = explain_error(errinfo_msg(ei));

	log_error("%s", errinfo_msg(ei)[0] ? errinfo_msg(ei) : err_name(e));
	if (advice != NULL) {
		log_error("hint: %s", advice);
	}
	return err_exit_code(e);
}

/* Remember a refresh for `status` and `refresh --if-idle-for`. */
static void
note_refresh(const struct account *acc, const struct token_info *info)
{
	if (info->refreshed &&
	    grant_state_note_refreshed(acc, time(NULL), NULL) != ERR_OK) {
		/* best effort: only the status report's age is off */
	}
}

static int
usage_error(const char *what)
{
	log_error("%s (see oasmtp-token --help)", what);
	return EX_USAGE;
}

/*
 * --system as root: become the owner of the state directory (user, its
 * groups), for good, before anything is read or written.
 */
static MUST_CHECK enum err
become_service(struct errinfo *ei)
{
	const char *dir = sysmode_state_dir();
	const struct passwd *pw;
	struct stat st;

	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		return errinfo_set(ei, ERR_CONFIG, "no state directory '%s' "
			"for --system (install the system service: "
			"systemd-tmpfiles --create oasmtp.conf)", dir);
	}
	if (st.st_uid == 0) {
		return errinfo_set(ei, ERR_CONFIG, "the state directory '%s' "
			"belongs to root: it must belong to the service user",
			dir);
	}
	pw = getpwuid(st.st_uid);
	if (pw == NULL || initgroups(pw->pw_name, st.st_gid) != 0 ||
	    setgid(st.st_gid) != 0 || setuid(st.st_uid) != 0 ||
	    getuid() != st.st_uid || geteuid() != st.st_uid) {
		return errinfo_set(ei, ERR_CONFIG, "cannot switch to the "
			"owner (uid %ld) of '%s'", (long)st.st_uid, dir);
	}
	return ERR_OK;
}

static MUST_CHECK enum err
load(const char *file, int system, const char *name,
	struct config **ret_cfg, const struct account **ret_acc,
	struct errinfo *ei)
{
	struct config_params params;
	enum err e;

	memset(&params, 0, sizeof(params));
	params.file = file;
	params.system_state_dir = system ? sysmode_state_dir() : NULL;
	e = config_load(&params, ret_cfg, ei);
	if (e == ERR_OK && name != NULL) {
		e = config_select(*ret_cfg, name, NULL, ret_acc, ei);
	}
	if (e == ERR_OK && name != NULL && !account_is_oauth(*ret_acc)) {
		e = errinfo_set(ei, ERR_CONFIG, "account '%s' has no oauth2 "
			"settings (oauth2_provider or oauth2_client_id)", name);
	}
	return e;
}

static int
cmd_print(const struct account *acc, int fresh, struct errinfo *ei)
{
	struct token_info info;
	struct buf tok;
	enum err e;
	int rc = EX_OK;

	buf_init_secret(&tok, TOKEN_MAX);
	e = token_get_ex(acc, fresh ? TOKEN_FORCE_REFRESH : 0, &tok, &info,
		ei);
	if (e != ERR_OK) {
		rc = fail(e, ei);
	} else {
		note_refresh(acc, &info);
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

static void
print_age(const char *label, time_t t, time_t now)
{
	long d = (long)(now - t);

	if (t == 0) {
		return;
	}
	if (d < 0) {
		d = 0;
	}
	if (d >= 2 * 86400) {
		printf("%s%ld days ago\n", label, d / 86400);
	} else if (d >= 3600) {
		printf("%s%ld hours ago\n", label, d / 3600);
	} else {
		printf("%s%ld minutes ago\n", label, d / 60);
	}
}

static int
cmd_refresh(const struct account *acc, long idle_for,
	struct errinfo *ei)
{
	struct token_info info;
	struct grant_state gs;
	struct buf tok;
	enum err e;

	if (idle_for > 0 && grant_state_read(acc, &gs) && gs.refreshed > 0 &&
	    time(NULL) - gs.refreshed < idle_for) {
		printf("account %s: refreshed less than %ld s ago, nothing to "
			"do\n", acc->name, idle_for);
		return EX_OK;
	}
	buf_init_secret(&tok, TOKEN_MAX);
	e = token_get_ex(acc, TOKEN_FORCE_REFRESH, &tok, &info, ei);
	buf_release(&tok);
	if (e != ERR_OK) {
		return fail(e, ei);
	}
	note_refresh(acc, &info);
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
	struct errinfo sei = ERRINFO_INIT;
	struct buf tok, path;
	struct tstore *ts = NULL;
	time_t expires = 0;
	enum err e;

	const struct provider_preset *p = provider_get(acc->oauth2_provider);
	struct grant_state gs;
	char warning[512];
	time_t now = time(NULL);

	printf("account %s\n", acc->name);
	printf("  provider: %s\n", p != NULL ? p->label : "custom");
	if (acc->user != NULL) {
		printf("  user: %s\n", acc->user);
	}
	printf("  token store: %s\n", acc->oauth2_token_store ?
		acc->oauth2_token_store : "secret-service (default)");
	buf_init_secret(&tok, TOKEN_MAX);
	buf_init(&path, PATH_MAX);
	e = tstore_open(acc, &ts, &sei);
	if (e == ERR_OK) {
		e = tstore_load(ts, &tok, &sei);
	}
	printf("  refresh token: %s\n", e == ERR_OK ? "present" :
		errinfo_msg(&sei));
	errinfo_release(&sei);
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
	if (grant_state_read(acc, &gs)) {
		print_age("  grant obtained: ", gs.authorized, now);
		if (gs.how[0] != '\0' && strcmp(gs.how, "-") != 0) {
			printf("  grant obtained by: %s\n", gs.how);
		}
		print_age("  last refresh: ", gs.refreshed, now);
		if (grant_state_warning(p, &gs, acc->name, now, warning,
			sizeof(warning))) {
			printf("  warning: %s\n", warning);
		}
	} else {
		printf("  grant age: unknown (not authorized by this oasmtp)\n");
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
cmd_import(const struct account *acc, int no_verify, struct errinfo *ei)
{
	struct token_info info;
	struct buf in, rt;
	const char *form = "bare";
	char chunk[4096];
	size_t n;
	enum err e = ERR_OK;

	buf_init_secret(&in, TOKEN_IMPORT_MAX + 1);
	buf_init_secret(&rt, TOKEN_IMPORT_MAX);
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0 && e == ERR_OK) {
		e = buf_append(&in, chunk, n);
	}
	util_wipe(chunk, sizeof(chunk));
	if (e != ERR_OK) {
		e = errinfo_set(ei, ERR_DATA, "import: the input is larger "
			"than %d bytes; expected one refresh token, or a JSON "
			"token file with a \"refresh_token\" member; nothing "
			"was stored", TOKEN_IMPORT_MAX);
	} else {
		e = token_import_parse(in.data, in.len, &rt, &form, ei);
	}
	buf_release(&in);
	if (e == ERR_OK) {
		e = token_import(acc, rt.data, !no_verify, &info, ei);
	}
	buf_release(&rt);
	if (e != ERR_OK) {
		return fail(e, ei);
	}
	if (grant_state_note_authorized(acc, "import", time(NULL), NULL) !=
	    ERR_OK) {
		/* best effort: only the status report's age is off */
	}
	printf("account %s: refresh token stored (%s input, %s)\n", acc->name,
		form, no_verify ? "not verified: --no-verify" :
		info.rotated ? "verified by one refresh, which rotated it: "
		"the new one is stored" : "verified by one refresh");
	return EX_OK;
}

/*
 * Best effort: tell the provider to end the grant (RFC 7009) before the
 * refresh token is dropped here.  A failure is reported, not fatal.
 */
static void
revoke_at_provider(const struct account *acc, struct tstore *ts)
{
	struct errinfo rei = ERRINFO_INIT;
	struct buf rt;
	enum err e;

	buf_init_secret(&rt, TOKEN_MAX);
	e = tstore_load(ts, &rt, &rei);
	if (e == ERR_OK) {
		e = token_revoke(acc, rt.data, &rei);
	}
	buf_release(&rt);
	if (e == ERR_OK) {
		printf("account %s: grant revoked at the provider\n", acc->name);
	} else if (e == ERR_NOTSUPP) {
		printf("account %s: the provider has no revocation endpoint; "
			"remove the app's access in your account's security "
			"settings to end the grant there too\n", acc->name);
	} else if (e != ERR_REAUTH) {
		log_warn("could not revoke the grant at the provider (%s); "
			"removing it here anyway", errinfo_msg(&rei));
	}
	errinfo_release(&rei);
}

static int
cmd_forget(const struct account *acc, struct errinfo *ei)
{
	struct tstore *ts = NULL;
	enum err e;

	e = tstore_open(acc, &ts, ei);
	if (e == ERR_OK) {
		revoke_at_provider(acc, ts);
		e = tstore_erase(ts, ei);
	}
	tstore_free(ts);
	if (e == ERR_OK) {
		e = token_cache_drop(acc, ei);
	}
	if (e == ERR_OK) {
		e = grant_state_drop(acc, ei);
	}
	if (e != ERR_OK) {
		return fail(e, ei);
	}
	printf("account %s: refresh token and cached access token removed\n",
		acc->name);
	return EX_OK;
}

/* Options after the command, in any order around the ACCOUNT. */
struct cmd_args {
	const char *name;
	int fresh;
	int no_verify;
	long idle_for;
	struct authorize_opts auth;
};

static int
option_value(int argc, char **argv, int *i, const char **ret)
{
	if (*i + 1 >= argc) {
		return -1;
	}
	*ret = argv[++*i];
	return 0;
}

/* 0, or an exit status after printing the usage error. */
static int
parse_args(const char *cmd, int argc, char **argv, int i,
	struct cmd_args *a)
{
	int is_auth = strcmp(cmd, "authorize") == 0;
	int only_names = 0;
	const char *v;
	long n;

	memset(a, 0, sizeof(*a));
	for (; i < argc; i++) {
		const char *arg = argv[i];

		if (!only_names && strcmp(arg, "--") == 0) {
			only_names = 1;
		} else if (!only_names && arg[0] == '-' && arg[1] != '\0') {
			if (strcmp(cmd, "print") == 0 &&
			    strcmp(arg, "--fresh") == 0) {
				a->fresh = 1;
			} else if (strcmp(cmd, "import") == 0 &&
			    strcmp(arg, "--no-verify") == 0) {
				a->no_verify = 1;
			} else if (strcmp(cmd, "refresh") == 0 &&
			    strcmp(arg, "--if-idle-for") == 0) {
				if (option_value(argc, argv, &i, &v) != 0 ||
				    grant_state_parse_duration(v, &n) != 0 ||
				    n <= 0) {
					return usage_error("--if-idle-for needs a "
						"duration such as 30d, 12h or 3600");
				}
				a->idle_for = n;
			} else if (is_auth && strcmp(arg, "--flow") == 0) {
				if (option_value(argc, argv, &i, &v) != 0 ||
				    oauth_flow_kind_by_name(v) ==
					OAUTH_FLOW_AUTO) {
					return usage_error("--flow needs loopback, "
						"device or paste");
				}
				a->auth.flow = oauth_flow_kind_by_name(v);
			} else if (is_auth && strcmp(arg, "--no-browser") == 0) {
				a->auth.no_browser = 1;
			} else if (is_auth && strcmp(arg, "--any-identity") == 0) {
				a->auth.any_identity = 1;
			} else if (is_auth && strcmp(arg, "--port") == 0) {
				if (option_value(argc, argv, &i, &v) != 0 ||
				    util_parse_long(v, 1, 65535, &n) != 0) {
					return usage_error("--port needs a number "
						"from 1 to 65535");
				}
				a->auth.port = (int)n;
			} else if (is_auth && strcmp(arg, "--timeout") == 0) {
				if (option_value(argc, argv, &i, &v) != 0 ||
				    util_parse_long(v, 1, 86400, &n) != 0) {
					return usage_error("--timeout needs seconds "
						"(1 to 86400)");
				}
				a->auth.timeout_s = n;
			} else {
				log_error("unknown option '%s' for %s", arg, cmd);
				return usage_error("bad option");
			}
		} else if (a->name == NULL) {
			a->name = arg;
		} else {
			return usage_error("too many arguments");
		}
	}
	return 0;
}

/* How long a flush after a new grant may keep the user waiting. */
#define FLUSH_WAIT_S 300

/*
 * Where oasmtp is: next to this program (the build tree, or the bin
 * directory both were installed to), else BINDIR.  The mirror image of
 * credential_helper_path().
 */
static MUST_CHECK enum err
oasmtp_path(struct buf *ret_path)
{
	return util_find_sibling("oasmtp", BINDIR, NULL, ret_path) < 0 ?
		ERR_NOMEM : ERR_OK;
}

/*
 * A new grant was stored: deliver what was queued for the account while it
 * waited for one (issue 6), and say in one line how that went.  The
 * flush's own warnings reach the user on stderr.  Nothing here changes the
 * exit status: the grant is stored either way, and the next oasmtp -q (the
 * timer) delivers what this one did not.
 */
/* How many of acc's messages wait in its queue, and in failed/. */
struct queue_count {
	int known;
	size_t active, failed;
};

static void
count_queued(const struct account *acc, struct queue_count *ret)
{
	struct queue *q = NULL;
	struct queue_entry *v = NULL;
	struct buf dir;
	size_t n = 0, bad = 0, i;
	int failed;

	memset(ret, 0, sizeof(*ret));
	buf_init(&dir, PATH_MAX);
	if (queue_configured_dir(acc->queue_dir, &dir, NULL) != ERR_OK ||
	    queue_open(dir.data, 0, &q, NULL) != ERR_OK) {
		buf_release(&dir);
		return;
	}
	ret->known = 1;
	for (failed = 0; q != NULL && failed < 2; failed++) {
		if (queue_list(q, failed, &v, &n, &bad, NULL) != ERR_OK) {
			ret->known = 0;
			break;
		}
		for (i = 0; i < n; i++) {
			if (v[i].account != NULL &&
			    strcmp(v[i].account, acc->name) == 0) {
				*(failed ? &ret->failed : &ret->active) += 1;
			}
		}
		queue_entries_free(v, n);
		v = NULL;
	}
	queue_close(q);
	buf_release(&dir);
}

/*
 * Say what the flush after a new grant really did: compare the account's
 * queue before and after (the flush's own warnings went to stderr).
 */
static void
flush_report(const struct account *acc, const struct queue_count *before,
	const struct queue_count *after)
{
	size_t refused, sent;

	if (!before->known || !after->known) {
		printf("account %s: queue flushed (oasmtp -a %s -q)\n",
			acc->name, acc->name);
		return;
	}
	if (before->active == 0) {
		printf("account %s: no mail was queued for it\n", acc->name);
		return;
	}
	refused = after->failed > before->failed ?
		after->failed - before->failed : 0;
	sent = before->active > after->active + refused ?
		before->active - after->active - refused : 0;
	if (after->active == 0 && refused == 0) {
		printf("account %s: queued mail flushed (%zu sent)\n",
			acc->name, sent);
		return;
	}
	printf("account %s: queue flush: %zu sent, %zu still queued, %zu "
		"refused\n", acc->name, sent, after->active, refused);
	if (after->active > 0) {
		log_warn("account %s: %zu queued message%s could not be sent "
			"yet (see oasmtp -bp); the queue timer retries, or run "
			"oasmtp -a %s -q", acc->name, after->active,
			after->active == 1 ? "" : "s", acc->name);
	}
	if (refused > 0) {
		log_warn("account %s: %zu queued message%s refused for good "
			"and moved to failed/ (see oasmtp -bp --failed)",
			acc->name, refused, refused == 1 ? "" : "s");
	}
}

static void
flush_account(const struct account *acc, const char *file, int system)
{
	const char *argv[8];
	struct queue_count before, after;
	struct buf path;
	struct proc p;
	int i = 0;
	enum err e;

	count_queued(acc, &before);
	buf_init(&path, PATH_MAX);
	if (oasmtp_path(&path) != ERR_OK) {
		log_warn("account %s: out of memory; deliver its queued mail "
			"with: oasmtp -a %s -q", acc->name, acc->name);
		buf_release(&path);
		return;
	}
	argv[i++] = "oasmtp";
	if (file != NULL) {
		argv[i++] = "-C";
		argv[i++] = file;
	}
	if (system) {
		argv[i++] = "--system";
	}
	argv[i++] = "-a";
	argv[i++] = acc->name;
	argv[i++] = "-q";
	argv[i] = NULL;
	/* stdin on /dev/null; its stdout and stderr are ours */
	memset(&p, 0, sizeof(p));
	p.argv = argv;
	p.file = path.data;
	p.in = PROC_IN_NULL;
	p.out = PROC_OUT_INHERIT;
	p.err = PROC_OUT_INHERIT;
	p.timeout_ms = (int64_t)FLUSH_WAIT_S * 1000;
	p.keep_on_timeout = 1;
	e = proc_start(&p, NULL);
	if (e != ERR_OK || p.end == PROC_NOTFOUND || p.end == PROC_NOEXEC) {
		log_warn("account %s: cannot run %s to deliver its queued mail "
			"(%s); run oasmtp -a %s -q", acc->name, path.data,
			strerror(e != ERR_OK ? errno : p.code), acc->name);
		buf_release(&path);
		return;
	}
	if (proc_finish(&p, NULL) != ERR_OK) {
		/* p.end says how it ended; a flush still running is fine */
	}
	if (p.end == PROC_RUNNING) {
		log_warn("account %s: delivering its queued mail takes longer "
			"than %d s; it goes on in the background (pid %ld)",
			acc->name, FLUSH_WAIT_S, (long)p.pid);
	} else if (p.end == PROC_EXITED && p.code == 0) {
		count_queued(acc, &after);
		flush_report(acc, &before, &after);
		fflush(stdout);
	} else if (p.end == PROC_EXITED) {
		log_warn("account %s: flushing its queued mail failed (oasmtp "
			"exit status %d); run oasmtp -a %s -q", acc->name,
			p.code, acc->name);
	} else {
		log_warn("account %s: the queue flush was killed by signal %d; "
			"run oasmtp -a %s -q", acc->name,
			p.end == PROC_SIGNALED ? p.code : 0, acc->name);
	}
	buf_release(&path);
}

/*
 * Hidden: `oasmtp-token msmtp-password HOST USER`, run by oasmtp (its
 * credential lookup, credential.h) so that the oasmtp binary never loads
 * GLib: msmtp's Secret Service entry for USER at HOST on stdout.  Exit 0
 * found, EX_UNAVAILABLE not found (silently), else the error's status.
 */
static int
cmd_msmtp_password(int argc, char **argv, int i)
{
	struct errinfo err = ERRINFO_INIT;
	struct buf pw;
	int found = 0, rc = EX_UNAVAILABLE;
	enum err e;

	if (argc - i != 2) {
		return usage_error("msmtp-password takes HOST and USER");
	}
	buf_init_secret(&pw, TOKEN_MAX);
	e = tstore_msmtp_password(argv[i], argv[i + 1], &pw, &found, &err);
	if (e != ERR_OK) {
		rc = fail(e, &err);
	} else if (found) {
		rc = EX_OK;
		if (fwrite(pw.data, 1, pw.len, stdout) != pw.len ||
		    fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
			rc = EX_IOERR;
		}
	}
	buf_release(&pw);
	errinfo_release(&err);
	return rc;
}

static int
cmd_authorize(const struct account *acc, const struct authorize_opts *o,
	struct errinfo *ei)
{
	enum err e = token_authorize(acc, o, ei);

	return e == ERR_OK ? EX_OK : fail(e, ei);
}

int
main(int argc, char **argv)
{
	static const char *const commands[] = {
		"authorize", "print", "refresh", "status", "import", "forget",
		"send", NULL,
	};
	struct errinfo err = ERRINFO_INIT;
	struct errinfo *ei = &err;
	const struct account *acc = NULL;
	struct config *cfg = NULL;
	const char *file = NULL, *cmd;
	struct cmd_args a;
	int i = 1, known = 0, rc, system = 0;
	enum err e;

	util_no_core_dumps();
	log_init("oasmtp-token", 0);
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
	for (;;) {
		if (i + 1 < argc && strcmp(argv[i], "-C") == 0) {
			file = argv[i + 1];
			i += 2;
		} else if (i < argc && strcmp(argv[i], "--system") == 0) {
			system = 1;
			i++;
		} else {
			break;
		}
	}
	if (i >= argc) {
		return usage_error("no command given");
	}
	cmd = argv[i++];
	if (strcmp(cmd, "msmtp-password") == 0 && !system && file == NULL) {
		return cmd_msmtp_password(argc, argv, i);
	}
	for (int k = 0; commands[k] != NULL; k++) {
		known |= strcmp(cmd, commands[k]) == 0;
	}
	if (!known) {
		return usage_error("unknown command");
	}
	rc = parse_args(cmd, argc, argv, i, &a);
	if (rc != 0) {
		return rc;
	}
	if (a.name == NULL && strcmp(cmd, "status") != 0) {
		return usage_error("an ACCOUNT is required");
	}
	e = system && geteuid() == 0 ? become_service(ei) : ERR_OK;
	if (e == ERR_OK) {
		e = load(file, system, a.name, &cfg, &acc, ei);
	}
	if (e != ERR_OK && strcmp(cmd, "send") == 0) {
		/* oasmtp reads the outcome from the record, not stderr */
		config_free(cfg);
		return token_send_failed(e, ei);
	}
	if (e != ERR_OK) {
		config_free(cfg);
		rc = fail(e, ei);
		errinfo_release(ei);
		return rc;
	}
	if (strcmp(cmd, "send") == 0) {
		rc = token_send(acc);
	} else if (strcmp(cmd, "authorize") == 0) {
		rc = cmd_authorize(acc, &a.auth, ei);
	} else if (strcmp(cmd, "print") == 0) {
		rc = cmd_print(acc, a.fresh, ei);
	} else if (strcmp(cmd, "refresh") == 0) {
		rc = cmd_refresh(acc, a.idle_for, ei);
	} else if (strcmp(cmd, "status") == 0) {
		rc = cmd_status(cfg, acc);
	} else if (strcmp(cmd, "import") == 0) {
		rc = cmd_import(acc, a.no_verify, ei);
	} else {
		rc = cmd_forget(acc, ei);
	}
	if (rc == EX_OK && (strcmp(cmd, "authorize") == 0 ||
	    strcmp(cmd, "import") == 0)) {
		/* mail queued while the grant was missing can go now */
		flush_account(acc, file, system);
	}
	config_free(cfg);
	errinfo_release(ei);
	return rc;
}
