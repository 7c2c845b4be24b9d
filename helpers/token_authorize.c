/*
 * token_authorize.c - `oasmtp-token authorize ACCOUNT`: obtain a grant
 * interactively and store its refresh token (contract: token_authorize.h).
 *
 * Flows (oauth_flow.h has the pieces):
 *   loopback  authorization code + PKCE, redirect to http://127.0.0.1:PORT/
 *             served by us; the browser is opened with xdg-open when there
 *             is a display
 *   device    RFC 8628: the user enters a code on another device
 *   paste     the same authorization request as loopback, but the user
 *             copies the address the browser ends on (it fails to load on a
 *             host without our listener) back into this terminal
 *
 * Every secret (client secret, verifier, code, tokens) stays in secret
 * bufs; xdg-open gets the URL (state and code challenge are not secrets)
 * and nothing else.
 */
#include "token_authorize.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "api.h"
#include "buf.h"
#include "eval.h"
#include "grant_state.h"
#include "oauth_http.h"
#include "proc.h"
#include "provider.h"
#include "token_cache.h"
#include "token.h"
#include "tstore.h"
#include "util.h"

/* PKCE verifier, challenge and state (RFC 7636 allows 128 characters) */
#define PKCE_PARAM_MAX 128
/* http://127.0.0.1:PORT/ of the loopback listener */
#define REDIRECT_URI_MAX 128
/* the authorization URL shown and opened */
#define AUTH_URL_MAX (16 * 1024)
/* "user@example.com (account 'x')" for messages */
#define WHO_MAX 1024

#define DEFAULT_TIMEOUT_S 300
#define PASTE_MAX (16 * 1024)

/* Everything one authorization needs, resolved from the account. */
struct auth_ctx {
	const struct account *acc;
	const struct provider_preset *preset;
	struct buf auth_ep, token_ep, device_ep;
	struct buf scope;		/* what is stored and refreshed */
	struct buf request_scope;	/* scope + identity scopes */
	struct buf consent_scope;	/* what the transport needs (SMTP, the
					   API, both for auto) + identity
					   scopes: asked in the browser or
					   the device request */
	struct buf client_secret;	/* secret */
	struct oauth_request req;
};

/* Does the space-separated list have word? */
static int
has_word(const char *list, const char *word, size_t n)
{
	const char *p = list;

	while (*p != '\0') {
		size_t len = strcspn(p, " ");

		if (len == n && memcmp(p, word, n) == 0) {
			return 1;
		}
		p += len;
		while (*p == ' ') {
			p++;
		}
	}
	return 0;
}

/* Append to out each word of list that out lacks. */
static MUST_CHECK enum err
add_words(struct buf *out, const char *list)
{
	enum err e = ERR_OK;

	while (e == ERR_OK && list != NULL && *list != '\0') {
		size_t n = strcspn(list, " ");

		if (n > 0 && !has_word(buf_cstr(out), list, n)) {
			if (out->len > 0) {
				e = buf_putc(out, ' ');
			}
			if (e == ERR_OK) {
				e = buf_append(out, list, n);
			}
		}
		list += n;
		while (*list == ' ') {
			list++;
		}
	}
	return e;
}

/*
 * request_scope = scope plus the preset's identity scopes it lacks (the
 * token requests: one resource, as Microsoft requires); consent_scope =
 * api_grant_scope() plus them (the authorization request may name several
 * resources, so one consent covers SMTP and the API).
 */
static MUST_CHECK enum err
make_request_scope(struct auth_ctx *x, struct errinfo *reterr)
{
	const char *id = x->preset != NULL ? x->preset->id_scope : NULL;
	struct buf grant;
	enum err e;

	e = add_words(&x->request_scope, buf_cstr(&x->scope));
	if (e == ERR_OK) {
		e = add_words(&x->request_scope, id);
	}
	if (e != ERR_OK) {
		return errinfo_set(reterr, ERR_CONFIG, "oauth2_scope too long");
	}
	buf_init(&grant, PROVIDER_SCOPE_MAX);
	e = api_grant_scope(x->acc, &grant, reterr);
	if (e == ERR_OK && (add_words(&x->consent_scope, buf_cstr(&grant)) !=
	    ERR_OK || add_words(&x->consent_scope, id) != ERR_OK)) {
		e = errinfo_set(reterr, ERR_CONFIG, "oauth2_scope too long");
	}
	buf_release(&grant);
	return e;
}

static void
ctx_release(struct auth_ctx *x)
{
	buf_release(&x->auth_ep);
	buf_release(&x->token_ep);
	buf_release(&x->device_ep);
	buf_release(&x->scope);
	buf_release(&x->request_scope);
	buf_release(&x->consent_scope);
	buf_release(&x->client_secret);
}

static MUST_CHECK enum err
ctx_init(struct auth_ctx *x, const struct account *acc, struct errinfo *reterr)
{
	enum err e;
	long t;

	memset(x, 0, sizeof(*x));
	x->acc = acc;
	x->preset = provider_get(acc->oauth2_provider);
	buf_init(&x->auth_ep, PROVIDER_URL_MAX);
	buf_init(&x->token_ep, PROVIDER_URL_MAX);
	buf_init(&x->device_ep, PROVIDER_URL_MAX);
	buf_init(&x->scope, PROVIDER_SCOPE_MAX);
	buf_init(&x->request_scope, PROVIDER_SCOPE_MAX);
	buf_init(&x->consent_scope, PROVIDER_SCOPE_MAX);
	buf_init_secret(&x->client_secret, OAUTH_CLIENT_SECRET_MAX);
	if (acc->oauth2_client_id == NULL || acc->oauth2_client_id[0] == '\0') {
		return errinfo_set(reterr, ERR_CONFIG, "account '%s' has no "
			"oauth2_client_id: register a client with the provider "
			"first (see doc/gmail.md, doc/microsoft365.md)", acc->name);
	}
	e = provider_token_endpoint(acc, &x->token_ep, &x->scope, reterr);
	if (e == ERR_OK) {
		e = provider_endpoint(acc, PROVIDER_EP_AUTH, &x->auth_ep, reterr);
	}
	if (e == ERR_OK) {
		e = provider_endpoint(acc, PROVIDER_EP_DEVICE, &x->device_ep,
			reterr);
	}
	if (e == ERR_OK && (acc->transport == VIA_GRAPH ||
	    acc->transport == VIA_GMAIL_API)) {
		/* no SMTP: the grant and its tokens are the API's */
		e = api_scope(acc, api_kind_of(acc), &x->scope, reterr);
	}
	if (e == ERR_OK) {
		e = make_request_scope(x, reterr);
	}
	if (e == ERR_OK) {
		e = token_client_secret(x->acc, &x->client_secret, reterr);
	}
	t = (long)account_helper_timeout_s(acc) * 1000;
	x->req.account = acc->name;
	x->req.token_endpoint = x->token_ep.data;
	x->req.client_id = acc->oauth2_client_id;
	x->req.client_secret = x->client_secret.data;
	x->req.scope = x->request_scope.data;
	x->req.ca_file = acc->oauth2_ca_file;
	x->req.timeout_ms = t > 120000 ? 120000 : t;
	x->req.connect_timeout_ms = x->req.timeout_ms < 15000 ?
		x->req.timeout_ms : 15000;
	return e;
}

static int
has_display(void)
{
	const char *d = getenv("DISPLAY");
	const char *w = getenv("WAYLAND_DISPLAY");

	return (d != NULL && d[0] != '\0') || (w != NULL && w[0] != '\0');
}

/*
 * Start xdg-open URL without a shell and without waiting for the browser.
 * Its output goes to /dev/null (browsers are chatty); the child is reaped
 * by reap_opener() if it has ended by then.  p->pid is -1 when it could not
 * be started.
 */
static void
open_browser(struct proc *p, const char *url)
{
	static const char *argv[3];

	argv[0] = "xdg-open";
	argv[1] = url;
	argv[2] = NULL;
	memset(p, 0, sizeof(*p));
	p->argv = argv;
	p->search_path = 1;
	p->in = PROC_IN_NULL;
	p->out = PROC_OUT_NULL;
	p->err = PROC_OUT_NULL;
	if (proc_start(p, NULL) != ERR_OK) {
		p->pid = -1;
	}
}

static void
reap_opener(struct proc *p)
{
	(void)proc_poll(p);
}

static void
say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* The pieces of one authorization code request. */
struct code_request {
	struct buf verifier;	/* secret */
	struct buf challenge;
	struct buf state;
	struct buf redirect_uri;
	struct buf url;
};

static void
code_request_release(struct code_request *c)
{
	buf_release(&c->verifier);
	buf_release(&c->challenge);
	buf_release(&c->state);
	buf_release(&c->redirect_uri);
	buf_release(&c->url);
}

static MUST_CHECK enum err
code_request_make(struct auth_ctx *x, int port, struct code_request *c,
	struct errinfo *reterr)
{
	struct oauth_flow_auth a;
	const struct provider_preset *p = x->preset;
	enum err e;

	buf_init_secret(&c->verifier, PKCE_PARAM_MAX);
	buf_init(&c->challenge, PKCE_PARAM_MAX);
	buf_init(&c->state, PKCE_PARAM_MAX);
	buf_init(&c->redirect_uri, REDIRECT_URI_MAX);
	buf_init(&c->url, AUTH_URL_MAX);
	if (x->auth_ep.len == 0) {
		return errinfo_set(reterr, ERR_CONFIG, "account '%s' has no "
			"oauth2_auth_endpoint (needed for the loopback and paste "
			"flows)", x->acc->name);
	}
	e = oauth_flow_random(&c->verifier, 32, reterr);
	if (e == ERR_OK) {
		e = oauth_flow_pkce_challenge(c->verifier.data, &c->challenge,
			reterr);
	}
	if (e == ERR_OK) {
		e = oauth_flow_random(&c->state, 24, reterr);
	}
	if (e == ERR_OK && buf_printf(&c->redirect_uri, "http://127.0.0.1:%d/",
		    port) != ERR_OK) {
		e = errinfo_set(reterr, ERR_LIMIT, "redirect URI too long");
	}
	if (e != ERR_OK) {
		return e;
	}
	memset(&a, 0, sizeof(a));
	a.auth_endpoint = x->auth_ep.data;
	a.client_id = x->acc->oauth2_client_id;
	a.redirect_uri = c->redirect_uri.data;
	a.scope = x->consent_scope.data;
	a.state = c->state.data;
	a.code_challenge = c->challenge.data;
	a.login_hint = x->acc->user;
	a.access_type_offline = p != NULL &&
		(p->flags & PROVIDER_OFFLINE_CONSENT) != 0;
	/*
	 * Google needs prompt=consent to hand out a new refresh token; OpenID
	 * providers issue offline_access only with it (OIDC Core 11).
	 * Microsoft needs neither, and forcing consent there breaks tenants
	 * where only administrators may consent.
	 */
	a.prompt_consent = a.access_type_offline ||
		(x->acc->oauth2_provider != OAUTH2_MICROSOFT &&
		 has_word(x->consent_scope.data, "offline_access", 14));
	return oauth_flow_auth_url(&a, &c->url, reterr);
}

static MUST_CHECK enum err
exchange(struct auth_ctx *x, struct code_request *c,
	const struct oauth_flow_callback *cb, struct oauth_tokens *ret,
	struct errinfo *reterr)
{
	struct oauth_request req = x->req;

	req.code = cb->code.data;
	req.code_verifier = c->verifier.data;
	req.redirect_uri = c->redirect_uri.data;
	return oauth_exchange_code(&req, ret, reterr);
}

static MUST_CHECK enum err
flow_loopback(struct auth_ctx *x, const struct authorize_opts *o,
	struct oauth_tokens *ret, struct errinfo *reterr)
{
	struct oauth_flow_listener l = { -1, 0 };
	struct oauth_flow_callback cb;
	struct code_request c;
	long timeout_s = o->timeout_s > 0 ? o->timeout_s : DEFAULT_TIMEOUT_S;
	struct proc opener;
	enum err e;

	memset(&c, 0, sizeof(c));
	memset(&opener, 0, sizeof(opener));
	opener.pid = -1;
	oauth_flow_callback_init(&cb);
	e = oauth_flow_listen(o->port, &l, reterr);
	if (e == ERR_OK) {
		e = code_request_make(x, l.port, &c, reterr);
	}
	if (e != ERR_OK) {
		goto out;
	}
	say("Sign in as %s in your browser%s:\n\n  %s\n\n",
		x->acc->user != NULL ? x->acc->user : "the account's user",
		(has_display() && !o->no_browser) ?
		" (opening it now; if nothing happens, open this address)" :
		" by opening this address", c.url.data);
	say("Waiting up to %ld s for the browser on http://127.0.0.1:%d/ ...\n"
		"(On a remote host: ssh -L %d:127.0.0.1:%d HOST from the "
		"machine with the browser, or use --flow paste.)\n",
		timeout_s, l.port, l.port, l.port);
	if (has_display() && !o->no_browser) {
		open_browser(&opener, c.url.data);
	}
	e = oauth_flow_wait_redirect(&l, timeout_s * 1000, c.state.data,
		x->auth_ep.data, &cb, reterr);
	oauth_flow_listener_close(&l);
	if (e == ERR_OK) {
		e = exchange(x, &c, &cb, ret, reterr);
	}
out:
	reap_opener(&opener);
	oauth_flow_listener_close(&l);
	oauth_flow_callback_release(&cb);
	code_request_release(&c);
	return e;
}

/*
 * One line from stdin into a secret buf, at most PASTE_MAX bytes, giving up
 * after timeout_s.  ERR_TIMEOUT, ERR_DATA (end of input), ERR_LIMIT.
 */
static MUST_CHECK enum err
read_paste(struct buf *line, long timeout_s, struct errinfo *reterr)
{
	int64_t deadline = util_now_ms() + timeout_s * 1000;
	char c;

	buf_reset(line);
	for (;;) {
		struct pollfd pfd = { 0, POLLIN, 0 };
		int64_t left = deadline - util_now_ms();
		ssize_t n;
		int r;

		if (left <= 0) {
			return errinfo_set(reterr, ERR_TIMEOUT, "nothing was "
				"pasted within %ld s", timeout_s);
		}
		r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (r <= 0) {
			continue;
		}
		n = read(0, &c, 1);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			if (line->len > 0) {
				return ERR_OK;
			}
			return errinfo_set(reterr, ERR_DATA, "end of input "
				"before anything was pasted");
		}
		if (c == '\n') {
			if (line->len == 0) {
				continue;	/* an empty line: keep waiting */
			}
			return ERR_OK;
		}
		if (buf_putc(line, c) != ERR_OK) {
			return errinfo_set(reterr, ERR_LIMIT, "the pasted line is "
				"longer than %d bytes", PASTE_MAX);
		}
	}
}

/* Pick a port for the paste flow's redirect URI (nobody listens there). */
static int
paste_port(int wanted)
{
	struct oauth_flow_listener l;
	int port;

	if (wanted > 0) {
		return wanted;
	}
	if (oauth_flow_listen(0, &l, NULL) != ERR_OK) {
		return 8080;
	}
	port = l.port;
	oauth_flow_listener_close(&l);
	return port;
}

static MUST_CHECK enum err
flow_paste(struct auth_ctx *x, const struct authorize_opts *o,
	struct oauth_tokens *ret, struct errinfo *reterr)
{
	struct oauth_flow_callback cb;
	struct code_request c;
	struct buf line;
	long timeout_s = o->timeout_s > 0 ? o->timeout_s : DEFAULT_TIMEOUT_S;
	enum err e;

	memset(&c, 0, sizeof(c));
	oauth_flow_callback_init(&cb);
	buf_init_secret(&line, PASTE_MAX);
	e = code_request_make(x, paste_port(o->port), &c, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	say("Open this address in a browser on any machine and sign in as "
		"%s:\n\n  %s\n\n"
		"The browser then goes to %s... and shows an error page (nothing "
		"listens there).  Copy that page's whole address from the address "
		"bar and paste it here, then press Enter:\n",
		x->acc->user != NULL ? x->acc->user : "the account's user",
		c.url.data, c.redirect_uri.data);
	e = read_paste(&line, timeout_s, reterr);
	if (e == ERR_OK) {
		e = oauth_flow_parse_callback(line.data, &cb, reterr);
	}
	if (e == ERR_OK) {
		e = oauth_flow_check_callback(&cb, c.state.data, x->auth_ep.data,
			1, reterr);
	}
	if (e == ERR_OK) {
		e = exchange(x, &c, &cb, ret, reterr);
	}
out:
	buf_release(&line);
	oauth_flow_callback_release(&cb);
	code_request_release(&c);
	return e;
}

static MUST_CHECK enum err
flow_device(struct auth_ctx *x, struct oauth_tokens *ret,
	struct errinfo *reterr)
{
	struct oauth_flow_device dev;
	struct oauth_request start = x->req;
	enum err e;

	if (x->device_ep.len == 0) {
		return errinfo_set(reterr, ERR_CONFIG, "account '%s' has no "
			"oauth2_device_endpoint%s", x->acc->name,
			x->acc->oauth2_provider == OAUTH2_GOOGLE ?
			" (Google does not allow the device flow for Gmail: use "
			"--flow loopback or paste)" : "");
	}
	oauth_flow_device_init(&dev);
	/* the consent covers every scope the transport needs */
	start.scope = x->consent_scope.data;
	e = oauth_flow_device_start(&start, x->device_ep.data, &dev, reterr);
	if (e == ERR_OK) {
		say("On any device, open\n\n  %s\n\nand enter the code\n\n  %s"
			"\n\n", dev.verification_uri, dev.user_code);
		if (dev.verification_uri_complete[0] != '\0') {
			say("(or open %s , which has the code filled in)\n",
				dev.verification_uri_complete);
		}
		say("Sign in as %s.  Waiting up to %ld s ...\n",
			x->acc->user != NULL ? x->acc->user : "the account's user",
			dev.expires_in);
		e = oauth_flow_device_wait(&x->req, &dev, NULL, NULL, ret,
			reterr);
	}
	oauth_flow_device_release(&dev);
	return e;
}

/* Refuse a grant for someone else; ret_who gets the signed-in address. */
static MUST_CHECK enum err
check_identity(struct auth_ctx *x, const struct authorize_opts *o,
	const struct oauth_tokens *tok, struct buf *ret_who,
	struct errinfo *reterr)
{
	const char *user = x->acc->user;
	enum err e;

	if (tok->id_token.len == 0) {
		return ERR_OK;
	}
	e = oauth_flow_id_token_identity(tok->id_token.data, ret_who, reterr);
	if (e != ERR_OK || ret_who->len == 0 || user == NULL) {
		return e;
	}
	if (util_strcasecmp(ret_who->data, user) != 0 && !o->any_identity) {
		return errinfo_set(reterr, ERR_AUTH, "signed in as '%s', but "
			"account '%s' has user '%s': not storing this grant.  Run "
			"authorize again and sign in as '%s' (for a shared mailbox "
			"or an alias, add --any-identity)", ret_who->data,
			x->acc->name, user, user);
	}
	return ERR_OK;
}

static MUST_CHECK enum err
store_grant(struct auth_ctx *x, const struct oauth_tokens *tok,
	const char *how, struct errinfo *reterr)
{
	struct tstore *ts = NULL;
	enum err e;

	e = tstore_open(x->acc, &ts, reterr);
	if (e == ERR_OK && !tstore_is_writable(ts)) {
		e = errinfo_set(reterr, ERR_CONFIG, "the %s token store of "
			"account '%s' is read-only: use secret-service or "
			"file:PATH to let authorize store the grant",
			ts->ops->name, x->acc->name);
	}
	if (e == ERR_OK) {
		e = tstore_save(ts, tok->refresh_token.data, reterr);
	}
	tstore_free(ts);
	if (e != ERR_OK) {
		return e;
	}
	/* the old access token belongs to the old grant */
	if (token_cache_drop(x->acc, NULL) != ERR_OK) {
		/* best effort: the provider refuses the old token anyway */
	}
	if (grant_state_note_authorized(x->acc, how, time(NULL), NULL) !=
	    ERR_OK || grant_state_note_scopes(x->acc, x->consent_scope.data,
	    tok->scope.data, NULL) != ERR_OK) {
		/* best effort: only the status report is off */
	}
	return ERR_OK;
}

enum err
token_authorize(const struct account *acc, const struct authorize_opts *o,
	struct errinfo *reterr)
{
	struct auth_ctx x;
	struct oauth_tokens tok;
	struct buf who;
	enum oauth_flow_kind flow;
	enum err e;

	oauth_tokens_init(&tok);
	buf_init(&who, WHO_MAX);
	e = ctx_init(&x, acc, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	flow = o->flow;
	if (flow == OAUTH_FLOW_AUTO) {
		flow = oauth_flow_choose(x.preset, has_display(),
			x.device_ep.len > 0);
	}
	if (x.preset != NULL && (x.preset->flags & PROVIDER_CLOSED) != 0) {
		say("Note: %s\n", x.preset->quirks);
	}
	say("Authorizing account %s (%s flow, %s)\n", acc->name,
		oauth_flow_kind_name(flow),
		x.preset != NULL ? x.preset->label : "custom provider");
	if (flow == OAUTH_FLOW_DEVICE) {
		e = flow_device(&x, &tok, reterr);
	} else if (flow == OAUTH_FLOW_PASTE) {
		e = flow_paste(&x, o, &tok, reterr);
	} else {
		e = flow_loopback(&x, o, &tok, reterr);
	}
	if (e != ERR_OK) {
		goto out;
	}
	if (tok.refresh_token.len == 0) {
		e = errinfo_set(reterr, ERR_CONFIG, "the provider returned no "
			"refresh token: add offline_access to oauth2_scope "
			"(Microsoft, OpenID providers) or check that the client is "
			"allowed offline access");
		goto out;
	}
	e = check_identity(&x, o, &tok, &who, reterr);
	if (e == ERR_OK) {
		e = store_grant(&x, &tok, oauth_flow_kind_name(flow), reterr);
	}
	if (e != ERR_OK) {
		goto out;
	}
	say("\naccount %s: authorized%s%s; refresh token stored (%s)\n",
		acc->name, who.len > 0 ? " as " : "", who.data,
		acc->oauth2_token_store != NULL ? acc->oauth2_token_store :
		"secret-service");
	if (who.len == 0 && x.preset != NULL && x.preset->id_scope != NULL) {
		say("(the provider sent no ID token naming the account, so the "
			"signed-in identity was not checked)\n");
	}
	say("Next:\n  oasmtp-token status %s\n"
		"  printf 'Subject: oasmtp test\\n\\nIt works.\\n' | "
		"oasmtp -a %s %s\n", acc->name, acc->name,
		acc->user != NULL ? acc->user : "you@example.org");
out:
	oauth_tokens_release(&tok);
	buf_release(&who);
	ctx_release(&x);
	return e;
}

enum err
token_revoke(const struct account *acc, const char *refresh_token,
	struct errinfo *reterr)
{
	struct auth_ctx x;
	struct buf ep;
	enum err e;

	buf_init(&ep, PROVIDER_URL_MAX);
	e = ctx_init(&x, acc, reterr);
	if (e == ERR_OK) {
		e = provider_endpoint(acc, PROVIDER_EP_REVOKE, &ep, reterr);
	}
	if (e == ERR_OK && ep.len == 0) {
		e = ERR_NOTSUPP;
	} else if (e == ERR_OK) {
		e = oauth_flow_revoke(&x.req, ep.data, refresh_token, reterr);
	}
	buf_release(&ep);
	ctx_release(&x);
	return e;
}
