/*
 * oauth_flow.h - the pieces of an interactive OAuth2 authorization that
 * `oasmtp-token authorize` puts together: PKCE and state (RFC 7636), the
 * authorization URL, the loopback redirect listener (RFC 8252 section 7.3)
 * with its bounded one-request HTTP parser, the redirect's query (code,
 * state, RFC 9207 iss, error), the device authorization grant (RFC 8628),
 * token revocation (RFC 7009) and reading the signed-in identity from an
 * ID token.
 *
 * Secrets (code, verifier, device code, tokens) live in secret bufs and are
 * never put into messages.  Network requests go through oauth_http (its
 * transport can be replaced in tests: oauth_http_set_post()).  Nothing here
 * prints; the helper program does the talking.
 */
#ifndef OASMTP_OAUTH_FLOW_H
#define OASMTP_OAUTH_FLOW_H

#include <stddef.h>

#include "buf.h"
#include "err.h"

struct oauth_request;
struct oauth_tokens;
struct provider_preset;

/* Bounds of what we accept from the browser or the terminal. */
#define OAUTH_FLOW_REQUEST_MAX 8192	/* one HTTP request head */
#define OAUTH_FLOW_CODE_MAX 4096	/* authorization code */
#define OAUTH_FLOW_STATE_MAX 256

/* --- PKCE and state -------------------------------------------------------- */

/*
 * Append the base64url (no padding) form of nbytes random bytes from
 * OpenSSL's CSPRNG to ret (use a secret buf for verifiers).  32 bytes make a
 * 43-character PKCE verifier.  ERR_INTERNAL (no randomness), ERR_LIMIT,
 * ERR_NOMEM.
 */
MUST_CHECK enum err oauth_flow_random(struct buf *ret, size_t nbytes,
	struct errinfo *reterr);

/*
 * The S256 code challenge of verifier (BASE64URL(SHA256(verifier)), no
 * padding) appended to ret.  ERR_INTERNAL, ERR_LIMIT, ERR_NOMEM.
 */
MUST_CHECK enum err oauth_flow_pkce_challenge(const char *verifier, struct buf *ret,
	struct errinfo *reterr);

/* --- the authorization request --------------------------------------------- */

struct oauth_flow_auth {
	const char *auth_endpoint;	/* may already carry a query */
	const char *client_id;
	const char *redirect_uri;
	const char *scope;
	const char *state;
	const char *code_challenge;	/* S256; NULL: no PKCE */
	const char *login_hint;		/* NULL: not sent */
	int access_type_offline;	/* access_type=offline (Google) */
	int prompt_consent;		/* prompt=consent */
};

/* The authorization URL for a into ret_url (reset first).  ERR_LIMIT, ERR_NOMEM. */
MUST_CHECK enum err oauth_flow_auth_url(const struct oauth_flow_auth *a,
	struct buf *ret_url, struct errinfo *reterr);

/* --- the redirect --------------------------------------------------------- */

/* What came back on the redirect URI.  Init / release (wipes the code). */
struct oauth_flow_callback {
	struct buf code;		/* secret; empty when absent */
	char state[OAUTH_FLOW_STATE_MAX];
	char iss[1024];
	char error[64];
	char error_description[512];
	int have_state;
	int have_iss;
	int bare_code;			/* input was just a code (paste) */
};

void oauth_flow_callback_init(struct oauth_flow_callback *cb);
void oauth_flow_callback_release(struct oauth_flow_callback *cb);

/*
 * Parse what the user pasted or the browser requested: a whole redirect URL
 * ("http://127.0.0.1:8080/?code=...&state=..."), a request target
 * ("/?code=..."), a query ("?code=..." or "code=...&state=..."), or just the
 * code.  Surrounding white space is ignored; parameters are percent-decoded;
 * unknown parameters are ignored.  cb is reset first.
 * Errors: ERR_DATA (empty, bad escape, control characters, duplicate
 * parameter), ERR_LIMIT (a value too long).
 */
MUST_CHECK enum err oauth_flow_parse_callback(const char *input,
	struct oauth_flow_callback *cb, struct errinfo *reterr);

/*
 * Check a parsed redirect against the request: the provider's error
 * (access_denied and others) -> ERR_AUTH; state must equal state (a bare
 * pasted code, without state, is accepted only with allow_bare); an iss
 * parameter (RFC 9207), when present, must have the origin of
 * auth_endpoint; a code must be present.  Errors: ERR_AUTH, ERR_DATA.
 */
MUST_CHECK enum err oauth_flow_check_callback(const struct oauth_flow_callback *cb,
	const char *state, const char *auth_endpoint, int allow_bare,
	struct errinfo *reterr);

/*
 * Parse the head of one HTTP request the browser sent to the loopback
 * listener: data[0..len) is everything read so far.  Returns
 *   OAUTH_FLOW_REQ_MORE  the head is incomplete (read more)
 *   OAUTH_FLOW_REQ_DONE  a complete "GET <target> HTTP/1.x" head ending in
 *                        an empty line; the target is in ret_target
 *   OAUTH_FLOW_REQ_BAD   anything else: another method, a target not
 *                        starting with "/", control bytes, a head longer
 *                        than OAUTH_FLOW_REQUEST_MAX
 */
enum oauth_flow_req {
	OAUTH_FLOW_REQ_MORE = 0,
	OAUTH_FLOW_REQ_DONE,
	OAUTH_FLOW_REQ_BAD,
};
enum oauth_flow_req oauth_flow_parse_request(const char *data, size_t len,
	struct buf *ret_target);

/* The loopback listener: 127.0.0.1 only. */
struct oauth_flow_listener {
	int fd;
	int port;
};

/*
 * Listen on 127.0.0.1:port (0: an ephemeral port); l->port is the real
 * port.  ERR_NET (in use, no loopback) with errno in the message.
 */
MUST_CHECK enum err oauth_flow_listen(int port, struct oauth_flow_listener *l,
	struct errinfo *reterr);

/* Close the listener (idempotent). */
void oauth_flow_listener_close(struct oauth_flow_listener *l);

/*
 * Serve the browser until the redirect for this request arrives: each
 * connection gets one bounded request (at most 10 s to send it) and one
 * small HTML answer.  Requests for other paths (a favicon) get 404; a
 * redirect whose state does not match is answered and ignored (it is not
 * ours).  The matching redirect is parsed into cb and checked as
 * oauth_flow_check_callback() does; the browser is told whether it worked
 * and that the tab may be closed.  Waits at most timeout_ms in total.
 * Errors: ERR_TIMEOUT, ERR_AUTH (denied or provider error), ERR_DATA,
 * ERR_NET.
 */
MUST_CHECK enum err oauth_flow_wait_redirect(struct oauth_flow_listener *l,
	long timeout_ms, const char *state, const char *auth_endpoint,
	struct oauth_flow_callback *cb, struct errinfo *reterr);

/* --- the device authorization grant (RFC 8628) ------------------------------ */

struct oauth_flow_device {
	struct buf device_code;		/* secret */
	char user_code[128];
	char verification_uri[1024];
	char verification_uri_complete[2048];	/* "" when not sent */
	char message[1024];		/* the provider's own text, or "" */
	long expires_in;		/* seconds (900 when not sent) */
	long interval;			/* seconds (5 when not sent) */
};

void oauth_flow_device_init(struct oauth_flow_device *d);
void oauth_flow_device_release(struct oauth_flow_device *d);

/*
 * Ask the device endpoint for a user code: POST client_id (client_secret
 * only when req has one: public clients send none) and req->scope.  Accepts
 * Google's "verification_url" spelling.  Errors: ERR_TOKEN_TEMP (network,
 * 5xx), ERR_CONFIG (the provider refused the client or scope, with its
 * error text), ERR_NOMEM.
 */
MUST_CHECK enum err oauth_flow_device_start(const struct oauth_request *req,
	const char *device_endpoint, struct oauth_flow_device *ret,
	struct errinfo *reterr);

/* How the poll loop waits (tests record the calls instead of sleeping). */
typedef void (*oauth_flow_sleep_fn)(void *ctx, long ms);

/*
 * Poll the token endpoint (req->token_endpoint) until the user approves:
 * wait interval seconds before each poll; authorization_pending -> poll
 * again; slow_down -> the interval grows by 5 s for good; a transport
 * failure -> retry (at most 3 in a row) with the interval doubled; stop
 * after expires_in seconds of waiting.  sleep_fn NULL: nanosleep.
 * Errors: ERR_AUTH (access_denied, Microsoft's authorization_declined),
 * ERR_TIMEOUT (expired_token, bad_verification_code, time is up), the
 * oauth_refresh() classes for everything else.
 */
MUST_CHECK enum err oauth_flow_device_wait(const struct oauth_request *req,
	const struct oauth_flow_device *dev, oauth_flow_sleep_fn sleep_fn,
	void *sleep_ctx, struct oauth_tokens *ret, struct errinfo *reterr);

/* --- revocation and identity ---------------------------------------------- */

/*
 * RFC 7009: ask endpoint to revoke token (hint "refresh_token"), as the
 * client req->client_id (+ secret when set).  ERR_OK on HTTP 200.
 * Errors: ERR_TOKEN_TEMP (network, 5xx), ERR_CONFIG (other answers).
 */
MUST_CHECK enum err oauth_flow_revoke(const struct oauth_request *req,
	const char *endpoint, const char *token, struct errinfo *reterr);

/*
 * The signed-in identity from an ID token's payload (its "email", else
 * "preferred_username" when it looks like an address, else "upn"), into
 * ret (reset first; left empty when the token names none).  The signature
 * is NOT checked: only call this on an ID token that came straight from the
 * token endpoint over verified TLS.  ERR_DATA for a malformed token.
 */
MUST_CHECK enum err oauth_flow_id_token_identity(const char *jwt, struct buf *ret,
	struct errinfo *reterr);

/* --- choosing a flow -------------------------------------------------------- */

enum oauth_flow_kind {
	OAUTH_FLOW_AUTO = 0,
	OAUTH_FLOW_LOOPBACK,
	OAUTH_FLOW_DEVICE,
	OAUTH_FLOW_PASTE,
};

/* "loopback", "device", "paste" -> the kind; OAUTH_FLOW_AUTO otherwise. */
enum oauth_flow_kind oauth_flow_kind_by_name(const char *name);
const char *oauth_flow_kind_name(enum oauth_flow_kind k);

/*
 * The automatic choice: loopback with a display; else the device grant when
 * there is a device endpoint and the provider allows it for the mail scope
 * (p NULL: a custom provider, allowed when it has a device endpoint); else
 * paste.
 */
enum oauth_flow_kind oauth_flow_choose(const struct provider_preset *p,
	int has_display, int has_device_endpoint);

#endif
