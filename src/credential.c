/* credential.c - the secret behind AUTH; see credential.h. */
#include "credential.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "account.h"
#include "eval.h"
#include "netrc.h"
#include "oasmtp-config.h"
#include "token_cache.h"
#include "ttypass.h"
#include "util.h"

/* "password for USER at HOST: " */
#define PROMPT_MAX 1024

/* An access token from Microsoft is ~2 KiB; leave a lot of room. */
#define SECRET_MAX (64 * 1024)
#define HELPER_ERR_MAX (8 * 1024)

enum credential_kind
credential_kind_of(const struct account *acc)
{
	/*
	 * Both given: msmtp uses the literal password and never runs
	 * passwordeval, wherever the lines are; a file read with msmtp's
	 * defaults gets that order, oasmtp's own files the documented
	 * opposite (oasmtprc(5), password).
	 */
	if (acc->password != NULL &&
	    (acc->passwordeval == NULL || acc->msmtp_defaults)) {
		return CREDENTIAL_PASSWORD;
	}
	if (acc->passwordeval != NULL) {
		return CREDENTIAL_EVAL;
	}
	if (acc->oauth2_provider != OAUTH2_NONE ||
	    acc->oauth2_client_id != NULL ||
	    acc->oauth2_token_endpoint != NULL) {
		return CREDENTIAL_OAUTH;
	}
	if (acc->user != NULL && acc->host != NULL) {
		return CREDENTIAL_LOOKUP;
	}
	return CREDENTIAL_NONE;
}

const char *
credential_kind_name(enum credential_kind kind)
{
	switch (kind) {
	case CREDENTIAL_EVAL:
		return "passwordeval";
	case CREDENTIAL_PASSWORD:
		return "password";
	case CREDENTIAL_OAUTH:
		return "oauth2 (built-in refresh)";
	case CREDENTIAL_LOOKUP:
		return "lookup (Secret Service, netrc, terminal prompt)";
	case CREDENTIAL_NONE:
		break;
	}
	return "none";
}

enum err
credential_helper_path(struct buf *ret_path, struct errinfo *reterr)
{
	if (util_find_sibling("oasmtp-token", BINDIR, NULL, ret_path) < 0) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	return ERR_OK;
}

void
credential_helper_argv(const char *argv[CREDENTIAL_ARGV_MAX],
	const struct account *acc, const char *config_file, const char *verb,
	const char *option)
{
	int i = 0;

	argv[i++] = "oasmtp-token";
	if (acc->system) {
		/* the same system-mode load, so the same store and cache */
		argv[i++] = "--system";
	}
	if (config_file != NULL) {
		argv[i++] = "-C";
		argv[i++] = config_file;
	}
	argv[i++] = verb;
	if (option != NULL) {
		argv[i++] = option;
	}
	argv[i++] = "--";
	argv[i++] = acc->name;
	argv[i] = NULL;
}

/* Deadline for the helper: its HTTP timeout, lock wait and some slack. */
static int64_t
helper_timeout_ms(const struct account *acc)
{
	int64_t t = account_helper_timeout_s(acc);

	if (t > 120) {
		t = 120;
	}
	return (3 * t + 30) * 1000;
}

static MUST_CHECK enum err
spawn_helper(struct credential *c, int fresh, struct errinfo *reterr)
{
	const char *argv[CREDENTIAL_ARGV_MAX];
	struct proc *p = &c->helper;
	struct buf path;
	enum err e;

	buf_init(&path, PATH_MAX);
	e = credential_helper_path(&path, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	credential_helper_argv(argv, c->acc, c->config_file, "print",
		fresh ? "--fresh" : NULL);
	memset(p, 0, sizeof(*p));
	p->argv = argv;
	p->file = path.data;
	p->in = PROC_IN_NULL;
	p->out = PROC_OUT_CAPTURE;
	p->err = PROC_OUT_CAPTURE;
	e = proc_start(p, NULL);
	if (e == ERR_NOMEM) {
		e = errinfo_set(reterr, e, "out of memory");
	} else if (e != ERR_OK) {
		e = errinfo_set(reterr, ERR_INTERNAL, "cannot start oasmtp-token: "
			"%s", strerror(errno));
	}
	p->argv = NULL;		/* the strings were for the exec only */
	p->file = NULL;
out:
	buf_release(&path);
	return e;
}

/*
 * Collect the helper's stdout into tok and stderr into msg until both
 * close, then reap it (killed past its deadline, counted from now).
 * Returns c->helper with end and code set.
 */
static const struct proc *
collect_helper(struct credential *c, struct buf *tok, struct buf *msg)
{
	struct proc *p = &c->helper;

	/* past the bounds the rest is dropped, never grown */
	p->out_buf = tok;
	p->err_buf = msg;
	p->name = "oasmtp-token";
	p->timeout_ms = helper_timeout_ms(c->acc);
	if (proc_finish(p, NULL) != ERR_OK) {
		/* the caller reads p->end and p->code */
	}
	p->out_buf = NULL;
	p->err_buf = NULL;
	return p;
}

/* The helper's exit status as our error code. */
static MUST_CHECK enum err
status_error(const struct proc *p)
{
	if (p->end != PROC_EXITED) {
		return ERR_TOKEN_TEMP;
	}
	switch (p->code) {
	case EX_NOPERM:
		return ERR_REAUTH;
	case EX_CONFIG:
		return ERR_CONFIG;
	case EX_IOERR:
		return ERR_IO;
	case EX_USAGE:
	case EX_SOFTWARE:
		return ERR_INTERNAL;
	default:
		return ERR_TOKEN_TEMP;
	}
}

/* Drop "oasmtp-token: " and trailing newlines from the helper's message. */
static const char *
helper_message(struct buf *msg)
{
	static const char prefix[] = "oasmtp-token: ";
	const char *m;

	while (msg->len > 0 && (msg->data[msg->len - 1] == '\n' ||
	    msg->data[msg->len - 1] == '\r')) {
		buf_truncate(msg, msg->len - 1);
	}
	m = msg->data;
	if (strncmp(m, prefix, sizeof(prefix) - 1) == 0) {
		m += sizeof(prefix) - 1;
	}
	return m;
}

static MUST_CHECK enum err
run_helper(struct credential *c, int fresh, struct buf *ret_secret,
	struct errinfo *reterr)
{
	const struct proc *p;
	struct buf tok, msg;
	enum err e = ERR_OK;

	c->decision = fresh ? "oasmtp-token print --fresh: a refresh "
		"forced (the server refused the token)" : "oasmtp-token print: "
		"the helper's token, refreshed with the stored grant when it "
		"was stale";
	if (c->helper.pid <= 0) {
		e = spawn_helper(c, fresh, reterr);
		if (e != ERR_OK) {
			return e;
		}
	}
	buf_init_secret(&tok, SECRET_MAX);
	buf_init(&msg, HELPER_ERR_MAX);
	p = collect_helper(c, &tok, &msg);
	if (p->end == PROC_EXITED && p->code == 0) {
		size_t n = strcspn(tok.data, "\r\n");

		if (n == 0) {
			e = errinfo_set(reterr, ERR_TOKEN_TEMP,
				"account '%s': oasmtp-token printed no token",
				c->acc->name);
		} else {
			e = buf_append(ret_secret, tok.data, n);
			if (msg.len > 0) {
				buf_reset(&c->warnings);
				buf_cut_ok(buf_append_str(&c->warnings,
					helper_message(&msg)));
			}
		}
	} else if (p->end == PROC_TIMEOUT) {
		e = errinfo_set(reterr, ERR_TOKEN_TEMP, "account '%s': "
			"oasmtp-token did not finish in time", c->acc->name);
	} else if (msg.len > 0) {
		e = errinfo_set(reterr, status_error(p), "%s",
			helper_message(&msg));
	} else {
		/* not executed: as its exit status EX_UNAVAILABLE always was */
		e = errinfo_set(reterr, status_error(p), "account '%s': "
			"oasmtp-token failed (status %d)", c->acc->name,
			p->end == PROC_EXITED ? p->code :
			p->end == PROC_SIGNALED ? -1 : EX_UNAVAILABLE);
	}
	buf_release(&tok);
	buf_release(&msg);
	return e;
}

enum err
credential_start(struct credential *c, const struct account *acc,
	const char *config_file, int prefetch, struct errinfo *reterr)
{
	memset(c, 0, sizeof(*c));
	c->acc = acc;
	c->config_file = config_file;
	c->kind = credential_kind_of(acc);
	c->helper.pid = -1;
	buf_init_secret(&c->cached, SECRET_MAX);
	buf_init(&c->warnings, HELPER_ERR_MAX);
	if (c->kind != CREDENTIAL_OAUTH || acc->auth == AUTH_OFF) {
		return ERR_OK;
	}
	if (token_cache_lookup(acc, &c->cached, NULL)) {
		c->decision = "access token from the cache (cache hit: still "
			"valid past the refresh margin)";
		return ERR_OK;
	}
	c->decision = prefetch ? "no fresh access token in the cache (cache "
		"miss): oasmtp-token print started while connecting" :
		"no fresh access token in the cache (cache miss)";
	return prefetch ? spawn_helper(c, 0, reterr) : ERR_OK;
}

static MUST_CHECK enum err
run_passwordeval(const struct account *acc, struct buf *out,
	struct errinfo *reterr)
{
	int config = 0;
	enum err e;

	e = eval_run_classed(acc->passwordeval, account_helper_timeout_s(acc),
		SECRET_MAX, out, &config, reterr);
	if (e == ERR_OK || e == ERR_NOMEM) {
		return e;
	}
	if (config) {
		/* not found, not executable, nothing or too much printed:
		   waiting does not help, a fix of the configuration does */
		errinfo_prefix(reterr, "account '%s': passwordeval (%s:%u): ",
			acc->name, acc->file != NULL ? acc->file : "?",
			acc->line);
		return errinfo_recode(reterr, ERR_CONFIG);
	}
	/*
	 * A token helper that fails or hangs is most often waiting on a
	 * network, a keyring or an expired grant: the mail should wait too.
	 */
	errinfo_prefix(reterr, "account '%s': passwordeval: ", acc->name);
	return errinfo_recode(reterr, ERR_TOKEN_TEMP);
}

/*
 * msmtp's Secret Service entry through oasmtp-token (credential.h).
 * *ret_found 0 when there is none or no Secret Service to ask: msmtp
 * then goes on to netrc quietly, and so do we.
 */
static MUST_CHECK enum err
lookup_keyring(struct credential *c, struct buf *out, int *ret_found,
	struct errinfo *reterr)
{
	const char *argv[] = { "oasmtp-token", "msmtp-password", c->acc->host,
		c->acc->user, NULL };
	struct proc p;
	struct buf path, pw, msg;
	enum err e;

	*ret_found = 0;
	buf_init(&path, PATH_MAX);
	buf_init_secret(&pw, SECRET_MAX);
	buf_init(&msg, HELPER_ERR_MAX);
	e = credential_helper_path(&path, reterr);
	if (e == ERR_OK) {
		memset(&p, 0, sizeof(p));
		p.argv = argv;
		p.file = path.data;
		p.name = "oasmtp-token";
		p.in = PROC_IN_NULL;
		p.out = PROC_OUT_CAPTURE;
		p.err = PROC_OUT_CAPTURE;
		p.out_buf = &pw;
		p.err_buf = &msg;
		p.timeout_ms = 1000LL * account_helper_timeout_s(c->acc);
		if (proc_run(&p, NULL) == ERR_OK && p.end == PROC_EXITED &&
		    p.code == 0) {
			size_t n = strcspn(pw.data, "\r\n");

			if (n > 0) {
				e = buf_append(out, pw.data, n);
				*ret_found = e == ERR_OK;
			}
		}
	}
	buf_release(&path);
	buf_release(&pw);
	buf_release(&msg);
	return e;
}

/* The user's netrc file, then the system's. */
static MUST_CHECK enum err
lookup_netrc(struct credential *c, struct buf *out, int *ret_found,
	struct errinfo *reterr)
{
	struct buf path;
	enum err e;

	*ret_found = 0;
	buf_init(&path, PATH_MAX);
	if (netrc_user_file(&path) == ERR_OK) {
		e = netrc_lookup(path.data, 0, c->acc->host, c->acc->user, out,
			ret_found, reterr);
		if (e != ERR_OK || *ret_found) {
			c->origin = "the netrc file";
			goto out;
		}
	}
	buf_reset(&path);
	e = buf_printf(&path, "%s/netrc", SYSCONFDIR);
	if (e == ERR_OK) {
		e = netrc_lookup(path.data, 1, c->acc->host, c->acc->user,
			out, ret_found, reterr);
		c->origin = "the system netrc file";
	}
out:
	buf_release(&path);
	return e;
}

/* msmtp's password lookup (credential.h); the answer is kept. */
static MUST_CHECK enum err
run_lookup(struct credential *c, struct buf *ret_secret,
	struct errinfo *reterr)
{
	const struct account *acc = c->acc;
	struct buf prompt;
	int found = 0;
	enum err e;

	if (c->cached.len > 0) {
		return buf_append(ret_secret, c->cached.data, c->cached.len);
	}
	e = lookup_keyring(c, &c->cached, &found, reterr);
	if (e == ERR_OK && found) {
		c->origin = "the Secret Service";
	}
	if (e == ERR_OK && !found) {
		e = lookup_netrc(c, &c->cached, &found, reterr);
	}
	if (e == ERR_OK && !found) {
		buf_init(&prompt, PROMPT_MAX);
		e = buf_printf(&prompt, "password for %s at %s: ", acc->user,
			acc->host);
		if (e == ERR_OK) {
			e = ttypass_ask(prompt.data, 0, &c->cached, &found,
				reterr);
		}
		buf_release(&prompt);
		if (e != ERR_OK && e != ERR_NOMEM) {
			errinfo_prefix(reterr, "account '%s': ", acc->name);
		}
		c->origin = "the terminal";
	}
	if (e == ERR_OK && !found) {
		c->origin = NULL;
		return errinfo_set(reterr, ERR_CONFIG, "account '%s' has no "
			"password for %s at %s: set passwordeval or password, "
			"or store it with `secret-tool store --label=msmtp "
			"host %s service smtp user %s`, or in ~/.netrc "
			"(machine %s login %s password ...; chmod 600), or "
			"run oasmtp on a terminal to be asked", acc->name,
			acc->user, acc->host, acc->host, acc->user, acc->host,
			acc->user);
	}
	if (e != ERR_OK) {
		buf_reset(&c->cached);
		c->origin = NULL;
		return e;
	}
	return buf_append(ret_secret, c->cached.data, c->cached.len);
}

enum err
credential_get(void *ctx, int force_fresh, struct buf *ret_secret,
	struct errinfo *reterr)
{
	struct credential *c = ctx;
	const struct account *acc = c->acc;

	buf_reset(ret_secret);
	switch (c->kind) {
	case CREDENTIAL_EVAL:
		return run_passwordeval(acc, ret_secret, reterr);
	case CREDENTIAL_PASSWORD:
		if (force_fresh) {
			return errinfo_set(reterr, ERR_AUTH,
				"account '%s': the server refused the password",
				acc->name);
		}
		return buf_append_str(ret_secret, acc->password);
	case CREDENTIAL_OAUTH:
		if (!force_fresh && c->cached.len > 0) {
			return buf_append(ret_secret, c->cached.data,
				c->cached.len);
		}
		if (force_fresh && c->helper.pid > 0) {
			/* a plain fetch is under way: let it end first */
			struct buf scratch;

			buf_init_secret(&scratch, SECRET_MAX);
			if (run_helper(c, 0, &scratch, NULL) != ERR_OK) {
				/* only its end mattered: now ours */
			}
			buf_release(&scratch);
		}
		return run_helper(c, force_fresh, ret_secret, reterr);
	case CREDENTIAL_LOOKUP:
		if (force_fresh) {
			return errinfo_set(reterr, ERR_AUTH,
				"account '%s': the server refused the password "
				"from %s", acc->name, c->origin != NULL ?
				c->origin : "the lookup");
		}
		return run_lookup(c, ret_secret, reterr);
	case CREDENTIAL_NONE:
		break;
	}
	return errinfo_set(reterr, ERR_CONFIG,
		"account '%s' has no credentials: set passwordeval, password or "
		"the oauth2_* keys (see oasmtprc(5))", acc->name);
}

enum err
credential_describe(const struct credential *c, struct buf *out)
{
	const struct account *acc = c->acc;
	const char *d = c->decision;

	if (c->kind == CREDENTIAL_LOOKUP) {
		d = c->origin != NULL ? c->origin : "none found";
		return buf_printf(out, "credentials: password lookup: %s", d);
	}
	if (c->kind != CREDENTIAL_OAUTH) {
		return buf_printf(out, "credentials: %s",
			credential_kind_name(c->kind));
	}
	return buf_printf(out, "credentials: %s; token store: %s; token "
		"cache: %s", d != NULL ? d : "not needed",
		acc->oauth2_token_store != NULL ? acc->oauth2_token_store :
		"secret-service (default)", acc->oauth2_token_cache != NULL ?
		acc->oauth2_token_cache : "(default)");
}

void
credential_release(struct credential *c)
{
	if (c == NULL) {
		return;
	}
	if (c->helper.pid > 0) {
		struct buf tok, msg;

		buf_init_secret(&tok, SECRET_MAX);
		buf_init(&msg, HELPER_ERR_MAX);
		(void)collect_helper(c, &tok, &msg);
		buf_release(&tok);
		buf_release(&msg);
	}
	buf_release(&c->cached);
	buf_release(&c->warnings);
}
