/*
 * oauth_http.h - the RFC 6749 section 6 refresh_token grant: build the form,
 * POST it to the token endpoint over verified HTTPS (libcurl), parse and
 * classify the JSON answer (json-c).
 *
 * Secrets: the refresh token, the client secret and the request body only
 * ever live in secret bufs (wiped on release); the response body is read into
 * a secret buf too, because it carries the new tokens.  Nothing here logs or
 * prints; error messages never contain a token.
 *
 * Error classification (doc/design.md, Tokens):
 *   ERR_TOKEN_TEMP  network, DNS, TLS, timeout, HTTP 408/429/5xx, a body that
 *                   is not JSON (proxies), a malformed success answer, an
 *                   oversized (> 64 KiB) body, "temporarily_unavailable"
 *   ERR_REAUTH      invalid_grant: the message names
 *                   `oasmtp-token authorize ACCOUNT` and the provider's
 *                   error_description
 *   ERR_CONFIG      invalid_client, unauthorized_client, invalid_scope,
 *                   invalid_request, unsupported_grant_type, other 4xx, a
 *                   missing client id or endpoint, a non-Bearer token type;
 *                   the message names the key to fix
 *   ERR_NOMEM       allocation failure
 *
 * Thread safety: oauth_refresh() may run in several threads at once (each
 * call uses its own curl handle).  oauth_http_set_post() is a test hook and
 * must be called before any thread uses this module.
 */
#ifndef OASMTP_OAUTH_HTTP_H
#define OASMTP_OAUTH_HTTP_H

#include <stddef.h>

#include "buf.h"
#include "err.h"

/* Largest token endpoint answer we accept. */
#define OAUTH_BODY_MAX (64 * 1024)

/* An account's oauth2_client_secret. */
#define OAUTH_CLIENT_SECRET_MAX 4096

/* What one refresh needs.  All strings are borrowed for the call. */
struct oauth_request {
	const char *account;		/* for messages ("oasmtp-token authorize X") */
	const char *token_endpoint;	/* https URL */
	const char *client_id;		/* required */
	const char *client_secret;	/* NULL or "": public client, not sent */
	const char *refresh_token;	/* required by oauth_refresh() */
	const char *scope;		/* NULL or "": not sent */
	const char *ca_file;		/* NULL: system trust only; else added to it */
	long connect_timeout_ms;	/* <= 0: 15 s */
	long timeout_ms;		/* whole request; <= 0: 60 s */
	/* authorization_code grant (oauth_exchange_code()) only */
	const char *code;		/* secret */
	const char *code_verifier;	/* secret; PKCE (RFC 7636) */
	const char *redirect_uri;	/* exactly as sent to the auth endpoint */
};

/*
 * The result of a successful refresh.  Initialise with oauth_tokens_init()
 * and release with oauth_tokens_release() (wipes the tokens).
 */
struct oauth_tokens {
	struct buf access_token;	/* secret; never empty on success */
	struct buf refresh_token;	/* secret; empty when not rotated */
	struct buf scope;		/* granted scope, empty when not sent */
	struct buf id_token;		/* secret; OpenID Connect ID token, empty
					   when not sent */
	long expires_in;		/* seconds; 3600 when the server sent none */
};

void oauth_tokens_init(struct oauth_tokens *t);
void oauth_tokens_release(struct oauth_tokens *t);

/*
 * One POST as the transport sees it.  form is a secret buf holding the
 * application/x-www-form-urlencoded body; it must not be copied anywhere that
 * is not wiped, and never logged.
 */
struct oauth_post {
	const char *url;
	const struct buf *form;
	const char *ca_file;
	long connect_timeout_ms;
	long timeout_ms;
};

/*
 * The transport: perform the POST and return ERR_OK once an HTTP answer of
 * any status arrived, with the status in *ret_status and the body appended to
 * ret_body (a secret buf capped at OAUTH_BODY_MAX).  Transport failures
 * (connect, TLS, timeout, oversized body) return ERR_TOKEN_TEMP with a
 * message; a refused URL scheme returns ERR_CONFIG.
 */
typedef enum err (*oauth_post_fn)(void *ctx, const struct oauth_post *req,
	long *ret_status, struct buf *ret_body, struct errinfo *reterr);

/*
 * Replace the transport (tests).  fn == NULL restores the libcurl transport.
 * ctx is passed to fn unchanged.  Not thread-safe: call it before anything
 * else runs.
 */
void oauth_http_set_post(oauth_post_fn fn, void *ctx);

/*
 * The libcurl transport itself (the default).  It calls curl_global_init()
 * once per process, on first use only, so processes that find a cached
 * token never initialise libcurl.  Only https is allowed, for the request
 * and for redirects (redirects are not followed: a token request must not be
 * re-posted to another origin).  The peer and host name are verified against
 * the system trust store plus req->ca_file when set.  Proxy environment
 * variables are honoured as libcurl does by default.
 */
MUST_CHECK enum err oauth_http_curl_post(void *ctx, const struct oauth_post *req,
	long *ret_status, struct buf *ret_body, struct errinfo *reterr);

/*
 * Run the refresh_token grant described by req and fill ret (which must be
 * initialised; it is reset first and left empty on failure).  Error codes:
 * see the top of this file.
 */
MUST_CHECK enum err oauth_refresh(const struct oauth_request *req,
	struct oauth_tokens *ret, struct errinfo *reterr);

/*
 * The authorization_code grant (RFC 6749 section 4.1.3 with PKCE, RFC 7636
 * section 4.5): req->code, req->redirect_uri and req->code_verifier (may be
 * NULL: not sent) instead of a refresh token; client_id, client_secret
 * (public clients: NULL) as for oauth_refresh().  Fills ret like
 * oauth_refresh() (refresh_token and id_token when the server sent them).
 * Errors as oauth_refresh(), except that invalid_grant (the code expired,
 * was used, or verifier / redirect URI mismatch) is ERR_AUTH.
 */
MUST_CHECK enum err oauth_exchange_code(const struct oauth_request *req,
	struct oauth_tokens *ret, struct errinfo *reterr);

/*
 * POST a form through the current transport (libcurl or the test hook):
 * for the other grants of an interactive authorization (device, revocation)
 * that parse their answers themselves.  Same contract as oauth_post_fn.
 */
MUST_CHECK enum err oauth_http_post_form(const struct oauth_post *req, long *ret_status,
	struct buf *ret_body, struct errinfo *reterr);

/*
 * Append "name=value" (value form-escaped, "&" first unless form is empty)
 * to form.  ERR_LIMIT / ERR_NOMEM.
 */
MUST_CHECK enum err oauth_form_field(struct buf *form, const char *name,
	const char *value);

/*
 * Classify and parse one token endpoint answer (exposed for tests and the
 * fuzzer).  body need not be NUL-terminated.  account is used in messages.
 * Same errors as oauth_refresh().
 */
MUST_CHECK enum err oauth_parse_response(const char *account, long status,
	const char *body, size_t len, struct oauth_tokens *ret,
	struct errinfo *reterr);

/*
 * Append s to out, percent-encoded for a form body (RFC 3986 unreserved
 * characters kept, everything else %XX).  ERR_LIMIT/ERR_NOMEM from buf.
 */
MUST_CHECK enum err oauth_form_escape(struct buf *out, const char *s);

#endif
