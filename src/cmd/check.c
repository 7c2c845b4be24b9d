/*
 * check.c - `oasmtp --check`; see check.h.
 *
 * The network steps are one submit_check().  Which of them
 * got how far is read from the engine's transcript (greeting received,
 * STARTTLS sent, EHLO sent again after it, AUTH sent), so a failure can be
 * put on the right step without a second code path through the engine.
 */
#include "check.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "account.h"
#include "provider.h"
#include "buf.h"
#include "cli.h"
#include "config.h"
#include "credential.h"
#include "sandbox.h"
#include "explain.h"
#include "job.h"
#include "proc.h"
#include "report.h"
#include "submit.h"
#include "token_cache.h"
#include "util.h"

#define STATUS_OUT_MAX (16 * 1024)
#define SECRET_MAX (64 * 1024)
#define DETAIL_MAX 300

enum step {
	STEP_CONFIG,
	STEP_TOKEN,
	STEP_CONNECT,
	STEP_TLS,
	STEP_AUTH,
	STEP_MAX
};

static const char *const step_names[STEP_MAX] = {
	[STEP_CONFIG] = "config",
	[STEP_TOKEN] = "token",
	[STEP_CONNECT] = "connect",
	[STEP_TLS] = "tls",
	[STEP_AUTH] = "auth",
};

/* What the transcript showed of the session. */
struct progress {
	int greeted;		/* a first reply line arrived */
	int ehlo_sent;		/* EHLO commands sent */
	int ehlo_ok;		/* a 250 reply after the first EHLO */
	int starttls_sent;
	int tls_ehlo;		/* EHLO sent after STARTTLS: TLS is up */
	int auth_sent;
	int last_was_ehlo;
	char greeting[128];
};

struct check {
	FILE *out;
	struct job job;
	struct credential cred;
	int cred_started;
	struct buf secret;	/* fetched by the token step, reused by AUTH */
	const struct buf *status;	/* oasmtp-token status output, or NULL */
	struct progress pr;
	struct sandbox *sb;	/* the session's confinement, or NULL */
};

/* ---- report lines ---- */

static void report(struct check *c, const char *mark, enum step s,
	const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
report(struct check *c, const char *mark, enum step s, const char *fmt, ...)
{
	va_list ap;

	fprintf(c->out, "%-5s %-8s ", mark, step_names[s]);
	va_start(ap, fmt);
	vfprintf(c->out, fmt, ap);
	va_end(ap);
	fputc('\n', c->out);
	fflush(c->out);
}

/* An indented continuation line under the previous step. */
static void show_status(struct check *c, const struct buf *status);

static void
detail(struct check *c, const char *label, const char *text)
{
	fprintf(c->out, "%-14s %s%s\n", "", label, text);
	fflush(c->out);
}

static const char *
step_hint(enum step s, const struct account *acc, enum err e)
{
	switch (s) {
	case STEP_CONFIG:
		return "oasmtprc(5) describes every key; `oasmtp --pretend` "
			"prints the settings an account ends up with";
	case STEP_TOKEN:
		if (e == ERR_REAUTH) {
			return "run `oasmtp-token authorize ACCOUNT` to sign in "
				"again";
		}
		if (e == ERR_TOKEN_TEMP) {
			return "the token endpoint, the keyring or the "
				"passwordeval command is not available now; "
				"`oasmtp-token status ACCOUNT` shows the store";
		}
		return "check the oauth2_* keys or passwordeval of the account "
			"(oasmtprc(5))";
	case STEP_CONNECT:
		return "check host and port (587 for STARTTLS, 465 with "
			"tls_starttls off) and that outgoing connections to "
			"that port are allowed";
	case STEP_TLS:
		return "check tls_starttls (off for port 465), tls_trust_file "
			"and tls_host_override; the server's certificate must "
			"be valid for the host name";
	case STEP_AUTH:
		if (e == ERR_AUTH && account_is_oauth(acc)) {
			return "the server refused the access token: check that "
				"user is the mailbox the grant belongs to, and "
				"the scope; `oasmtp-token authorize ACCOUNT` "
				"gets a new grant";
		}
		if (e == ERR_AUTH) {
			return "the server refused the user name or password";
		}
		return "see the server's reply above; -v shows the dialogue";
	case STEP_MAX:
		break;
	}
	return NULL;
}

/*
 * The FAIL line of step s with the error's first line, the advice, and
 * "not run" for the steps after it.  Returns e.
 */
static MUST_CHECK enum err
fail_step(struct check *c, enum step s, enum err e, struct errinfo *ei)
{
	const struct account *acc = c->job.acc;
	const char *advice = explain_error(errinfo_msg(ei));
	struct buf first;
	int i;

	buf_init(&first, DETAIL_MAX + 8);
	buf_cut_ok(util_first_line(errinfo_msg(ei)[0] != '\0' ? errinfo_msg(ei) : err_name(e),
		DETAIL_MAX, &first));
	report(c, "FAIL", s, "%s", buf_cstr(&first));
	buf_release(&first);
	if (c->status != NULL) {
		show_status(c, c->status);
	}
	if (advice == NULL) {
		advice = step_hint(s, acc, e);
	}
	if (advice != NULL) {
		detail(c, "advice: ", advice);
	}
	for (i = (int)s + 1; i < STEP_MAX; i++) {
		report(c, "--", (enum step)i, "not run");
	}
	fprintf(c->out, "check failed at the %s step (exit status %d)\n",
		step_names[s], err_exit_code(e));
	fflush(c->out);
	if (acc == NULL) {
		return errinfo_set(ei, e, "the %s check failed (see the report "
			"above)", step_names[s]);
	}
	return errinfo_set(ei, e, "account '%s': the %s check failed (see "
		"the report above)", acc->name, step_names[s]);
}

/* ---- token ---- */

/* "2024-05-01 12:00:00 UTC (52 min left)" for an expiry time. */
static void
format_expiry(time_t at, char *out, size_t n)
{
	char when[64];
	struct tm tm;
	long left = (long)(at - time(NULL));

	if (localtime_r(&at, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", &tm) == 0) {
		util_strlcpy(when, "?", sizeof(when));
	}
	if (left >= 120) {
		snprintf(out, n, "%s (%ld min left)", when, left / 60);
	} else {
		snprintf(out, n, "%s (%ld s left)", when, left > 0 ? left : 0);
	}
}

/*
 * Run `oasmtp-token [--system] [-C FILE] status -- ACCOUNT` and keep its
 * output (stdout and stderr together, bounded) in out.  Best effort: a
 * helper that cannot run or does not finish leaves a note in out instead.
 */
static void
token_status(struct check *c, struct buf *out)
{
	const char *argv[CREDENTIAL_ARGV_MAX];
	struct buf path;
	struct proc p;

	buf_init(&path, PATH_MAX);
	credential_helper_argv(argv, c->job.acc, c->job.o->config_file,
		"status", NULL);
	memset(&p, 0, sizeof(p));
	p.argv = argv;
	p.in = PROC_IN_NULL;
	p.out = PROC_OUT_CAPTURE;
	p.out_buf = out;		/* past the bound the rest is dropped */
	p.err = PROC_OUT_TO_STDOUT;
	p.timeout_ms = 30 * 1000;
	if (credential_helper_path(&path, NULL) != ERR_OK) {
		buf_cut_ok(buf_append_str(out,
			"cannot run oasmtp-token status\n"));
		goto out;
	}
	p.file = path.data;
	if (proc_start(&p, NULL) != ERR_OK) {
		buf_cut_ok(buf_printf(out, "cannot run oasmtp-token status: "
			"%s\n", strerror(errno)));
		goto out;
	}
	if (proc_finish(&p, NULL) != ERR_OK) {
		/* p.end says how it ended: a timeout is reported below */
	}
	if (p.end == PROC_TIMEOUT) {
		buf_cut_ok(buf_append_str(out, "oasmtp-token status did not "
			"finish in time\n"));
	}
out:
	buf_release(&path);
}

/*
 * The lines of `oasmtp-token status` worth showing: where the refresh
 * token is, and warnings (grant about to expire, ...).
 */
static void
show_status(struct check *c, const struct buf *status)
{
	static const char *const keep[] = {
		"refresh token:", "warning:", "grant obtained:", "last refresh:",
		"did not finish", "cannot ",
	};
	const char *p = buf_cstr(status);

	while (*p != '\0') {
		size_t n = strcspn(p, "\n");
		const char *s = p;
		size_t k;

		while (*s == ' ' && s < p + n) {
			s++;
		}
		for (k = 0; k < sizeof(keep) / sizeof(keep[0]); k++) {
			if (strncmp(s, keep[k], strlen(keep[k])) == 0) {
				fprintf(c->out, "%-14s %.*s\n", "",
					(int)(p + n - s), s);
				break;
			}
		}
		p += n;
		if (*p == '\n') {
			p++;
		}
	}
	fflush(c->out);
}

static MUST_CHECK enum err
step_token(struct check *c, struct errinfo *ei)
{
	const struct account *acc = c->job.acc;
	enum credential_kind kind = credential_kind_of(acc);
	char when[128];
	time_t expires = 0;
	enum err e;

	if (acc->auth == AUTH_OFF) {
		report(c, "--", STEP_TOKEN, "not needed (auth off)");
		return ERR_OK;
	}
	e = credential_start(&c->cred, acc, c->job.o->config_file, 0, ei);
	if (e != ERR_OK) {
		return fail_step(c, STEP_TOKEN, e, ei);
	}
	c->cred_started = 1;
	switch (kind) {
	case CREDENTIAL_PASSWORD:
		report(c, "ok", STEP_TOKEN, "password from %s", acc->file ?
			acc->file : "the configuration");
		return ERR_OK;
	case CREDENTIAL_EVAL:
		e = credential_get(&c->cred, 0, &c->secret, ei);
		if (e != ERR_OK) {
			return fail_step(c, STEP_TOKEN, e, ei);
		}
		report(c, "ok", STEP_TOKEN, "passwordeval printed a secret of "
			"%zu bytes", c->secret.len);
		return ERR_OK;
	case CREDENTIAL_OAUTH:
		break;
	case CREDENTIAL_LOOKUP:
		e = credential_get(&c->cred, 0, &c->secret, ei);
		if (e != ERR_OK) {
			return fail_step(c, STEP_TOKEN, e, ei);
		}
		report(c, "ok", STEP_TOKEN, "password for %s at %s from %s",
			acc->user, acc->host, c->cred.origin != NULL ?
			c->cred.origin : "the lookup");
		return ERR_OK;
	case CREDENTIAL_NONE:
		e = credential_get(&c->cred, 0, &c->secret, ei);
		return fail_step(c, STEP_TOKEN, e == ERR_OK ? ERR_CONFIG : e,
			ei);
	}

	if (token_cache_lookup(acc, &c->secret, &expires)) {
		format_expiry(expires, when, sizeof(when));
		report(c, "ok", STEP_TOKEN, "cached access token, valid until %s",
			when);
		return ERR_OK;
	}
	/* No fresh token: show the store, then refresh as a send would. */
	{
		struct buf shown, status;

		/* status: the store's state; then scratch for the cache */
		buf_init(&shown, STATUS_OUT_MAX);
		buf_init_secret(&status, SECRET_MAX);
		token_status(c, &shown);
		e = credential_get(&c->cred, 0, &c->secret, ei);
		if (e != ERR_OK) {
			c->status = &shown;
			e = fail_step(c, STEP_TOKEN, e, ei);
			c->status = NULL;
			buf_release(&shown);
			buf_release(&status);
			return e;
		}
		if (token_cache_lookup(acc, &status, &expires)) {
			format_expiry(expires, when, sizeof(when));
			report(c, "ok", STEP_TOKEN, "new access token from the "
				"token endpoint, valid until %s", when);
		} else {
			report(c, "ok", STEP_TOKEN, "new access token from the "
				"token endpoint (not cached)");
		}
		show_status(c, &shown);
		buf_release(&shown);
		buf_release(&status);
	}
	return ERR_OK;
}

/* ---- the session ---- */

static int
starts_with(const char *line, size_t len, const char *word)
{
	size_t n = strlen(word);

	return len >= n && util_strncasecmp(line, word, n) == 0;
}

static void
check_transcript(void *ctx, enum smtp_dir dir, const char *line, size_t len)
{
	struct check *c = ctx;
	struct progress *pr = &c->pr;

	report_transcript(NULL, dir, line, len);
	if (dir == SMTP_DIR_RECV) {
		if (!pr->greeted) {
			pr->greeted = 1;
			snprintf(pr->greeting, sizeof(pr->greeting), "%.*s",
				(int)(len < sizeof(pr->greeting) ? len :
				sizeof(pr->greeting) - 1), line);
		}
		if (pr->last_was_ehlo && starts_with(line, len, "250")) {
			pr->ehlo_ok = 1;
		}
		return;
	}
	if (dir != SMTP_DIR_SEND) {
		return;
	}
	pr->last_was_ehlo = 0;
	if (starts_with(line, len, "EHLO") || starts_with(line, len, "HELO")) {
		pr->ehlo_sent++;
		pr->last_was_ehlo = 1;
		if (pr->starttls_sent) {
			pr->tls_ehlo = 1;
		}
	} else if (starts_with(line, len, "STARTTLS")) {
		pr->starttls_sent = 1;
	} else if (starts_with(line, len, "AUTH")) {
		pr->auth_sent = 1;
	}
}

static MUST_CHECK enum err
check_secret(void *ctx, int force_fresh, struct buf *ret_secret,
	struct errinfo *reterr)
{
	struct check *c = ctx;

	if (!force_fresh && c->secret.len > 0) {
		buf_reset(ret_secret);
		return buf_append(ret_secret, c->secret.data, c->secret.len);
	}
	if (c->sb != NULL && c->cred_started) {
		/* confined: a fresh token comes from the broker */
		return sandbox_secret(c->sb, force_fresh, ret_secret, reterr);
	}
	return credential_get(&c->cred, force_fresh, ret_secret, reterr);
}

/* Which step a session error belongs to, from how far the session got. */
static enum step
failed_step(const struct check *c, enum err e)
{
	const struct account *acc = c->job.acc;
	const struct progress *pr = &c->pr;

	if (e == ERR_TLS) {
		return STEP_TLS;
	}
	if (!pr->greeted || !pr->ehlo_ok) {
		return STEP_CONNECT;
	}
	if (acc->tls && acc->tls_starttls && !pr->tls_ehlo) {
		return STEP_TLS;
	}
	return STEP_AUTH;
}

static void
report_connect(struct check *c)
{
	report(c, "ok", STEP_CONNECT, "%s port %d: %s", c->job.acc->host,
		c->job.acc->port, c->pr.greeting[0] != '\0' ?
		c->pr.greeting : "connected");
}

static void
report_tls(struct check *c, const struct submit_result *res)
{
	const struct account *acc = c->job.acc;

	if (!acc->tls) {
		report(c, "--", STEP_TLS, "off (tls off in the account: "
			"nothing is encrypted)");
		return;
	}
	report(c, "ok", STEP_TLS, "%s%s, certificate %s",
		acc->tls_starttls ? "STARTTLS, " : "", buf_cstr(&res->tls),
		!acc->tls_certcheck ? "NOT checked (tls_certcheck off)" :
		acc->tls_fingerprint != NULL ? "matches tls_fingerprint" :
		"verified");
}

static MUST_CHECK enum err
step_session(struct check *c, struct errinfo *ei)
{
	const struct account *acc = c->job.acc;
	struct submit_params sp;
	struct submit_result res;
	struct sandbox sb;
	enum step s;
	enum err e;
	int i;

	memset(&sp, 0, sizeof(sp));
	account_submit_server(acc, &sp.srv);
	/* the session runs confined, as a send's (doc/system-wide.md) */
	sandbox_init(&sb, acc, c->job.o->config_file, c->cred_started ?
		&c->cred : NULL);
	e = sandbox_start(&sb, ei);
	if (e != ERR_OK) {
		return fail_step(c, STEP_CONNECT, e, ei);
	}
	sandbox_io(&sb, &sp);
	c->sb = &sb;
	sp.secret.get = check_secret;
	sp.secret.ctx = c;
	sp.transcript = check_transcript;
	sp.transcript_ctx = c;
	submit_result_init(&res);
	e = submit_check(&sp, &res, ei);
	c->sb = NULL;
	sandbox_log_credentials(&sb, acc);
	sandbox_release(&sb);
	if (e != ERR_OK) {
		s = failed_step(c, e);
		for (i = STEP_CONNECT; i < (int)s; i++) {
			if (i == STEP_CONNECT) {
				report_connect(c);
			} else {
				report_tls(c, &res);
			}
		}
		e = fail_step(c, s, e, ei);
		submit_result_release(&res);
		return e;
	}
	report_connect(c);
	report_tls(c, &res);
	if (acc->auth == AUTH_OFF) {
		report(c, "--", STEP_AUTH, "not configured (auth off)");
	} else {
		report(c, "ok", STEP_AUTH, "%s accepted for %s", res.auth_mech ?
			res.auth_mech : "AUTH", acc->user ? acc->user : "?");
	}
	submit_result_release(&res);
	return ERR_OK;
}

/* ---- the whole check ---- */

enum err
check_run(const struct cli_opts *o, FILE *out, struct errinfo *reterr)
{
	struct check c;
	const struct account *acc;
	struct buf server;
	enum err e;

	memset(&c, 0, sizeof(c));
	c.out = out;
	c.job.o = o;
	buf_init_secret(&c.secret, SECRET_MAX);

	e = job_load_account(&c.job, o->has_envelope_from ?
		o->envelope_from : NULL, 1, reterr);
	if (e != ERR_OK) {
		e = fail_step(&c, STEP_CONFIG, e, reterr);
		goto out;
	}
	acc = c.job.acc;
	if (credential_kind_of(acc) == CREDENTIAL_OAUTH &&
	    acc->auth != AUTH_OFF) {
		struct buf ep, scope;

		buf_init(&ep, PROVIDER_URL_MAX);
		buf_init(&scope, PROVIDER_SCOPE_MAX);
		e = provider_token_endpoint(acc, &ep, &scope, reterr);
		buf_release(&ep);
		buf_release(&scope);
		if (e != ERR_OK) {
			e = fail_step(&c, STEP_CONFIG, e, reterr);
			goto out;
		}
	}
	buf_init(&server, CONFIG_SERVER_DESC_MAX);
	buf_cut_ok(config_describe_server(acc, &server));
	report(&c, "ok", STEP_CONFIG, "%s: account '%s' (%s, auth %s)",
		c.job.cfg->user_file ? c.job.cfg->user_file :
		c.job.cfg->system_file ? c.job.cfg->system_file : "?",
		acc->name, buf_cstr(&server), account_auth_name(acc->auth));
	buf_release(&server);

	e = step_token(&c, reterr);
	if (e == ERR_OK) {
		e = step_session(&c, reterr);
	}
	if (e == ERR_OK) {
		fprintf(out, "all checks passed; no mail was sent\n");
		fflush(out);
	}
out:
	if (c.cred_started) {
		credential_release(&c.cred);
	}
	buf_release(&c.secret);
	job_release(&c.job);
	return e;
}
