/*
 * oauth_flow.c - interactive authorization pieces (contract: oauth_flow.h).
 *
 * The loopback listener speaks just enough HTTP/1.1 for one browser
 * redirect:
 *
 *   browser:  GET /?code=C&state=S[&iss=I] HTTP/1.1 <headers> <empty line>
 *   us:       HTTP/1.1 200 OK, Connection: close, a short HTML page
 *
 * It reads the whole request head before answering (closing a socket with
 * unread bytes makes the kernel send a reset, and the browser would show an
 * error instead of our page), and never more than OAUTH_FLOW_REQUEST_MAX.
 */
#include "oauth_flow.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "oauth_http.h"
#include "provider.h"
#include "util.h"

#define CONN_READ_MS 10000
#define TRANSIENT_RETRIES 3

/* --- PKCE and state -------------------------------------------------------- */

enum err
oauth_flow_random(struct buf *ret, size_t nbytes, struct errinfo *reterr)
{
	unsigned char raw[64];
	enum err e;

	if (nbytes > sizeof(raw)) {
		return errinfo_set(reterr, ERR_INTERNAL, "random value too long");
	}
	if (RAND_bytes(raw, (int)nbytes) != 1) {
		return errinfo_set(reterr, ERR_INTERNAL,
			"no random numbers from OpenSSL");
	}
	e = util_base64url_encode(ret, raw, nbytes);
	util_wipe(raw, sizeof(raw));
	return e == ERR_OK ? ERR_OK :
		errinfo_set(reterr, e, "random value does not fit");
}

enum err
oauth_flow_pkce_challenge(const char *verifier, struct buf *ret,
	struct errinfo *reterr)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	enum err e;

	if (EVP_Digest(verifier, strlen(verifier), md, &mdlen, EVP_sha256(),
		    NULL) != 1) {
		return errinfo_set(reterr, ERR_INTERNAL, "SHA-256 failed");
	}
	e = util_base64url_encode(ret, md, mdlen);
	return e == ERR_OK ? ERR_OK :
		errinfo_set(reterr, e, "code challenge does not fit");
}

/* --- the authorization request --------------------------------------------- */

static MUST_CHECK enum err
query_param(struct buf *url, int *first, const char *name, const char *value)
{
	enum err e = buf_putc(url, *first ? '?' : '&');

	*first = 0;
	if (e == ERR_OK) {
		e = buf_append_str(url, name);
	}
	if (e == ERR_OK) {
		e = buf_putc(url, '=');
	}
	if (e == ERR_OK) {
		e = oauth_form_escape(url, value);
	}
	return e;
}

enum err
oauth_flow_auth_url(const struct oauth_flow_auth *a, struct buf *ret_url,
	struct errinfo *reterr)
{
	int first = strchr(a->auth_endpoint, '?') == NULL;
	enum err e;

	buf_reset(ret_url);
	e = buf_append_str(ret_url, a->auth_endpoint);
	if (e == ERR_OK) {
		e = query_param(ret_url, &first, "response_type", "code");
	}
	if (e == ERR_OK) {
		e = query_param(ret_url, &first, "client_id", a->client_id);
	}
	if (e == ERR_OK) {
		e = query_param(ret_url, &first, "redirect_uri", a->redirect_uri);
	}
	if (e == ERR_OK && a->scope != NULL && a->scope[0] != '\0') {
		e = query_param(ret_url, &first, "scope", a->scope);
	}
	if (e == ERR_OK) {
		e = query_param(ret_url, &first, "state", a->state);
	}
	if (e == ERR_OK && a->code_challenge != NULL) {
		e = query_param(ret_url, &first, "code_challenge",
			a->code_challenge);
		if (e == ERR_OK) {
			e = query_param(ret_url, &first,
				"code_challenge_method", "S256");
		}
	}
	if (e == ERR_OK && a->access_type_offline) {
		e = query_param(ret_url, &first, "access_type", "offline");
	}
	if (e == ERR_OK && a->prompt_consent) {
		e = query_param(ret_url, &first, "prompt", "consent");
	}
	if (e == ERR_OK && a->login_hint != NULL && a->login_hint[0] != '\0') {
		e = query_param(ret_url, &first, "login_hint", a->login_hint);
	}
	if (e != ERR_OK) {
		buf_reset(ret_url);
		return errinfo_set(reterr, e, "authorization URL too long");
	}
	return ERR_OK;
}

/* --- the redirect --------------------------------------------------------- */

void
oauth_flow_callback_init(struct oauth_flow_callback *cb)
{
	memset(cb, 0, sizeof(*cb));
	buf_init_secret(&cb->code, OAUTH_FLOW_CODE_MAX);
}

void
oauth_flow_callback_release(struct oauth_flow_callback *cb)
{
	if (cb == NULL) {
		return;
	}
	buf_release(&cb->code);
	memset(cb->state, 0, sizeof(cb->state));
}

static void
callback_reset(struct oauth_flow_callback *cb)
{
	buf_reset(&cb->code);
	cb->state[0] = '\0';
	cb->iss[0] = '\0';
	cb->error[0] = '\0';
	cb->error_description[0] = '\0';
	cb->have_state = 0;
	cb->have_iss = 0;
	cb->bare_code = 0;
}

/*
 * Percent-decode s[0..n) ("+" is a space, as in forms) into out.  Control
 * characters (decoded or not) are refused: no legitimate code, state or
 * issuer has them, and they must never reach a terminal or a file.
 */
static MUST_CHECK enum err
decode(struct buf *out, const char *s, size_t n)
{
	size_t i;
	enum err e = ERR_OK;

	for (i = 0; i < n && e == ERR_OK; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n) {
				return ERR_DATA;
			}
			hi = util_hexval(s[i + 1]);
			lo = util_hexval(s[i + 2]);
			if (hi < 0 || lo < 0) {
				return ERR_DATA;
			}
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (c < 0x20 || c == 0x7f) {
			return ERR_DATA;
		}
		e = buf_putc(out, (char)c);
	}
	return e;
}

static MUST_CHECK enum err
set_field(char *dst, size_t size, int *have, const char *v, size_t n,
	const char *name, struct errinfo *reterr)
{
	struct buf tmp;
	enum err e;

	if (have != NULL && *have) {
		return errinfo_set(reterr, ERR_DATA,
			"the redirect has '%s' twice", name);
	}
	buf_init(&tmp, size - 1);
	e = decode(&tmp, v, n);
	if (e == ERR_OK) {
		memcpy(dst, tmp.data, tmp.len + 1);
		if (have != NULL) {
			*have = 1;
		}
	}
	buf_release(&tmp);
	if (e == ERR_DATA) {
		return errinfo_set(reterr, ERR_DATA, "the redirect's '%s' is "
			"not properly encoded", name);
	}
	if (e != ERR_OK) {
		return errinfo_set(reterr, ERR_LIMIT, "the redirect's '%s' is "
			"too long", name);
	}
	return ERR_OK;
}

static MUST_CHECK enum err
parse_query(const char *q, size_t qlen, struct oauth_flow_callback *cb,
	struct errinfo *reterr)
{
	const char *p = q, *end = q + qlen;
	enum err e = ERR_OK;

	while (p < end && e == ERR_OK) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pe = amp != NULL ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pe - p));
		size_t klen = (size_t)((eq != NULL ? eq : pe) - p);
		const char *v = eq != NULL ? eq + 1 : pe;
		size_t vlen = (size_t)(pe - v);

		if (klen == 4 && memcmp(p, "code", 4) == 0) {
			if (cb->code.len > 0) {
				return errinfo_set(reterr, ERR_DATA,
					"the redirect has 'code' twice");
			}
			e = decode(&cb->code, v, vlen);
			if (e != ERR_OK) {
				buf_reset(&cb->code);
				return errinfo_set(reterr, e, "the redirect's "
					"'code' is %s", e == ERR_DATA ?
					"not properly encoded" : "too long");
			}
		} else if (klen == 5 && memcmp(p, "state", 5) == 0) {
			e = set_field(cb->state, sizeof(cb->state),
				&cb->have_state, v, vlen, "state", reterr);
		} else if (klen == 3 && memcmp(p, "iss", 3) == 0) {
			e = set_field(cb->iss, sizeof(cb->iss), &cb->have_iss, v,
				vlen, "iss", reterr);
		} else if (klen == 5 && memcmp(p, "error", 5) == 0) {
			e = set_field(cb->error, sizeof(cb->error), NULL, v, vlen,
				"error", reterr);
		} else if (klen == 17 &&
		    memcmp(p, "error_description", 17) == 0) {
			/* free text from the provider: keep what fits */
			struct buf tmp;

			buf_init(&tmp, sizeof(cb->error_description) - 1);
			if (decode(&tmp, v, vlen) == ERR_OK) {
				util_strlcpy(cb->error_description, tmp.data,
					sizeof(cb->error_description));
			}
			buf_release(&tmp);
		}
		p = pe + 1;
	}
	return e;
}

static int
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

enum err
oauth_flow_parse_callback(const char *input, struct oauth_flow_callback *cb,
	struct errinfo *reterr)
{
	const char *s = input, *end, *q, *hash;
	size_t i;

	callback_reset(cb);
	while (is_ws(*s)) {
		s++;
	}
	end = s + strlen(s);
	while (end > s && is_ws(end[-1])) {
		end--;
	}
	if (end == s) {
		return errinfo_set(reterr, ERR_DATA, "nothing was pasted");
	}
	for (i = 0; s + i < end; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			return errinfo_set(reterr, ERR_DATA,
				"the input has control characters");
		}
	}
	/* a fragment is never sent to us; drop it if pasted */
	hash = memchr(s, '#', (size_t)(end - s));
	if (hash != NULL) {
		end = hash;
	}
	q = memchr(s, '?', (size_t)(end - s));
	if (q != NULL) {
		return parse_query(q + 1, (size_t)(end - q - 1), cb, reterr);
	}
	if (memchr(s, '=', (size_t)(end - s)) != NULL) {
		return parse_query(s, (size_t)(end - s), cb, reterr);
	}
	/* Google's codes look like "4/0Ab...": a slash alone is fine */
	if (s[0] == '/' || memchr(s, ' ', (size_t)(end - s)) != NULL ||
	    memchr(s, ':', (size_t)(end - s)) != NULL) {
		return errinfo_set(reterr, ERR_DATA, "that is neither the "
			"redirected URL nor a code");
	}
	cb->bare_code = 1;
	if (buf_append(&cb->code, s, (size_t)(end - s)) != ERR_OK) {
		return errinfo_set(reterr, ERR_LIMIT, "the code is too long");
	}
	return ERR_OK;
}

/* "scheme://host[:port]" of url into out; 0, or -1 when url has none. */
static int
origin_of(const char *url, char *out, size_t size)
{
	const char *p = strstr(url, "://");
	size_t n;

	if (p == NULL) {
		return -1;
	}
	p += 3;
	n = strcspn(p, "/?#");
	n += (size_t)(p - url);
	if (n == (size_t)(p - url) || n >= size) {
		return -1;
	}
	memcpy(out, url, n);
	out[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (out[i] >= 'A' && out[i] <= 'Z') {
			out[i] = (char)(out[i] - 'A' + 'a');
		}
	}
	return 0;
}

/* Constant-time string equality (the state is a CSRF token). */
static int
same_secret(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i;
	unsigned char d = la != lb;

	for (i = 0; i < la && i < lb; i++) {
		d |= (unsigned char)(a[i] ^ b[i]);
	}
	return d == 0;
}

enum err
oauth_flow_check_callback(const struct oauth_flow_callback *cb,
	const char *state, const char *auth_endpoint, int allow_bare,
	struct errinfo *reterr)
{
	if (cb->bare_code) {
		if (!allow_bare) {
			return errinfo_set(reterr, ERR_DATA,
				"the redirect has no state");
		}
	} else if (!cb->have_state || !same_secret(cb->state, state)) {
		return errinfo_set(reterr, ERR_AUTH, "the redirect does not "
			"belong to this authorization request (state %s): "
			"start again", cb->have_state ? "differs" : "missing");
	}
	if (cb->error[0] != '\0') {
		if (strcmp(cb->error, "access_denied") == 0) {
			return errinfo_set(reterr, ERR_AUTH, "access was denied "
				"in the browser (access_denied%s%s)",
				cb->error_description[0] ? ": " : "",
				cb->error_description);
		}
		return errinfo_set(reterr, ERR_AUTH, "the provider refused the "
			"authorization: %s%s%s", cb->error,
			cb->error_description[0] ? ": " : "",
			cb->error_description);
	}
	if (cb->have_iss && auth_endpoint != NULL) {
		char want[1024], got[1024];

		if (origin_of(auth_endpoint, want, sizeof(want)) != 0 ||
		    origin_of(cb->iss, got, sizeof(got)) != 0 ||
		    strcmp(want, got) != 0) {
			return errinfo_set(reterr, ERR_AUTH, "the redirect names "
				"issuer '%s', not the origin of the authorization "
				"endpoint (RFC 9207 mix-up protection): refused",
				cb->iss);
		}
	}
	if (cb->code.len == 0) {
		return errinfo_set(reterr, ERR_DATA,
			"the redirect carries no code");
	}
	return ERR_OK;
}

/* --- the loopback listener ------------------------------------------------- */

/* Find the end of the head: an empty line, CRLF or bare LF. */
static const char *
head_end(const char *data, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i++) {
		if (data[i] == '\n' && data[i + 1] == '\n') {
			return data + i + 2;
		}
		if (data[i] == '\n' && data[i + 1] == '\r' && i + 2 < len &&
		    data[i + 2] == '\n') {
			return data + i + 3;
		}
	}
	return NULL;
}

enum oauth_flow_req
oauth_flow_parse_request(const char *data, size_t len, struct buf *ret_target)
{
	const char *end, *line_end, *sp1, *sp2;
	size_t i, llen;

	buf_reset(ret_target);
	for (i = 0; i < len && i < OAUTH_FLOW_REQUEST_MAX; i++) {
		unsigned char c = (unsigned char)data[i];

		if (c == 0 || (c < 0x20 && c != '\r' && c != '\n' &&
			c != '\t') || c == 0x7f) {
			return OAUTH_FLOW_REQ_BAD;
		}
	}
	end = head_end(data, len < OAUTH_FLOW_REQUEST_MAX ? len :
		OAUTH_FLOW_REQUEST_MAX);
	if (end == NULL) {
		return len >= OAUTH_FLOW_REQUEST_MAX ? OAUTH_FLOW_REQ_BAD :
			OAUTH_FLOW_REQ_MORE;
	}
	line_end = memchr(data, '\n', (size_t)(end - data));
	llen = (size_t)(line_end - data);
	if (llen > 0 && data[llen - 1] == '\r') {
		llen--;
	}
	if (llen < 4 || memcmp(data, "GET ", 4) != 0) {
		return OAUTH_FLOW_REQ_BAD;
	}
	sp1 = data + 3;
	sp2 = memchr(sp1 + 1, ' ', llen - 4);
	if (sp2 == NULL || sp2 == sp1 + 1 || sp1[1] != '/') {
		return OAUTH_FLOW_REQ_BAD;
	}
	if ((size_t)(data + llen - (sp2 + 1)) != 8 ||
	    (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 &&
		memcmp(sp2 + 1, "HTTP/1.0", 8) != 0)) {
		return OAUTH_FLOW_REQ_BAD;
	}
	if (memchr(sp1 + 1, '\t', (size_t)(sp2 - sp1 - 1)) != NULL ||
	    buf_append(ret_target, sp1 + 1, (size_t)(sp2 - sp1 - 1)) !=
		ERR_OK) {
		buf_reset(ret_target);
		return OAUTH_FLOW_REQ_BAD;
	}
	return OAUTH_FLOW_REQ_DONE;
}

enum err
oauth_flow_listen(int port, struct oauth_flow_listener *l,
	struct errinfo *reterr)
{
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	int fd, one = 1;

	l->fd = -1;
	l->port = 0;
	if (port < 0 || port > 65535) {
		return errinfo_set(reterr, ERR_USAGE, "bad port %d", port);
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return errinfo_set(reterr, ERR_NET, "cannot create a socket: %s",
			strerror(errno));
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, 8) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &salen) != 0) {
		int err = errno;

		close(fd);
		return errinfo_set(reterr, ERR_NET,
			"cannot listen on 127.0.0.1:%d: %s", port, strerror(err));
	}
	l->fd = fd;
	l->port = ntohs(sa.sin_port);
	return ERR_OK;
}

void
oauth_flow_listener_close(struct oauth_flow_listener *l)
{
	if (l != NULL && l->fd >= 0) {
		close(l->fd);
		l->fd = -1;
	}
}

static void
answer(int fd, int status, const char *title, const char *text)
{
	char body[1024], head[256];
	int blen, hlen;

	blen = snprintf(body, sizeof(body),
		"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
		"<title>oasmtp: %s</title></head>\n<body style=\"font-family:"
		"sans-serif;margin:3em\"><h1>%s</h1>\n<p>%s</p>\n"
		"<p>You may close this tab.</p></body></html>\n",
		title, title, text);
	if (blen < 0 || (size_t)blen >= sizeof(body)) {
		return;
	}
	hlen = snprintf(head, sizeof(head),
		"HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
		"Content-Length: %d\r\nCache-Control: no-store\r\n"
		"Connection: close\r\n\r\n", status,
		status == 200 ? "OK" : status == 404 ? "Not Found" :
		"Bad Request", blen);
	if (hlen < 0 || (size_t)hlen >= sizeof(head)) {
		return;
	}
	(void)util_write_all(fd, head, (size_t)hlen);
	(void)util_write_all(fd, body, (size_t)blen);
}

/*
 * Read one request head from a fresh connection within until_ms
 * (monotonic).  Returns the parser's verdict; OAUTH_FLOW_REQ_MORE means
 * the peer went away or was too slow.
 */
static enum oauth_flow_req
read_request(int fd, int64_t until_ms, struct buf *target)
{
	char data[OAUTH_FLOW_REQUEST_MAX];
	size_t len = 0;
	enum oauth_flow_req r = OAUTH_FLOW_REQ_MORE;

	while (r == OAUTH_FLOW_REQ_MORE && len < sizeof(data)) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int64_t left = until_ms - util_now_ms();
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			break;
		}
		n = read(fd, data + len, sizeof(data) - len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		len += (size_t)n;
		r = oauth_flow_parse_request(data, len, target);
	}
	if (r == OAUTH_FLOW_REQ_MORE && len >= sizeof(data)) {
		r = OAUTH_FLOW_REQ_BAD;
	}
	/* the request line holds the code: do not leave it on the stack */
	util_wipe(data, sizeof(data));
	return r;
}

/* Path of a request target (up to '?'), compared with "/". */
static int
target_is_root(const char *t)
{
	return t[0] == '/' && (t[1] == '\0' || t[1] == '?');
}

enum err
oauth_flow_wait_redirect(struct oauth_flow_listener *l, long timeout_ms,
	const char *state, const char *auth_endpoint,
	struct oauth_flow_callback *cb, struct errinfo *reterr)
{
	int64_t deadline = util_now_ms() + timeout_ms;
	struct buf target;
	enum err e = ERR_TIMEOUT;

	buf_init_secret(&target, OAUTH_FLOW_REQUEST_MAX);
	for (;;) {
		struct pollfd pfd = { l->fd, POLLIN, 0 };
		int64_t left = deadline - util_now_ms();
		int64_t until;
		enum oauth_flow_req r;
		int cfd, pr;

		if (left <= 0) {
			e = errinfo_set(reterr, ERR_TIMEOUT, "no answer from the "
				"browser within %ld s", timeout_ms / 1000);
			break;
		}
		pr = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (pr < 0 && errno != EINTR) {
			e = errinfo_set(reterr, ERR_NET, "poll: %s",
				strerror(errno));
			break;
		}
		if (pr <= 0) {
			continue;
		}
		cfd = accept(l->fd, NULL, NULL);
		if (cfd < 0) {
			continue;
		}
		until = util_now_ms() + CONN_READ_MS;
		if (until > deadline) {
			until = deadline;
		}
		r = read_request(cfd, until, &target);
		if (r == OAUTH_FLOW_REQ_BAD) {
			answer(cfd, 400, "Bad request",
				"This is not a request oasmtp-token understands.");
		} else if (r == OAUTH_FLOW_REQ_DONE &&
		    !target_is_root(target.data)) {
			answer(cfd, 404, "Not found", "Nothing here.");
		} else if (r == OAUTH_FLOW_REQ_DONE) {
			/* a request that is not ours is ignored, and so is why */
			struct errinfo pei = ERRINFO_INIT;

			e = oauth_flow_parse_callback(target.data, cb, &pei);
			errinfo_release(&pei);
			if (e == ERR_OK && !cb->bare_code && cb->have_state &&
			    same_secret(cb->state, state)) {
				e = oauth_flow_check_callback(cb, state,
					auth_endpoint, 0, reterr);
				if (e == ERR_OK) {
					answer(cfd, 200, "Authorization complete",
						"oasmtp-token received the "
						"authorization and is storing it.");
				} else {
					answer(cfd, 400, "Authorization failed",
						"The provider did not grant "
						"access; see the terminal.");
				}
				close(cfd);
				break;
			}
			/* not the answer to our request: ignore it */
			answer(cfd, 400, "Unexpected request", "This request "
				"does not belong to the running authorization.");
			e = ERR_TIMEOUT;
		}
		close(cfd);
	}
	buf_release(&target);
	return e;
}

/* --- the device grant ------------------------------------------------------- */

void
oauth_flow_device_init(struct oauth_flow_device *d)
{
	memset(d, 0, sizeof(*d));
	buf_init_secret(&d->device_code, OAUTH_FLOW_CODE_MAX);
}

void
oauth_flow_device_release(struct oauth_flow_device *d)
{
	if (d != NULL) {
		buf_release(&d->device_code);
	}
}

static struct json_object *
parse_json(const struct buf *body)
{
	struct json_tokener *tok = json_tokener_new_ex(8);
	struct json_object *root = NULL;

	if (tok == NULL) {
		return NULL;
	}
	root = json_tokener_parse_ex(tok, body->data, (int)body->len);
	json_tokener_free(tok);
	if (root != NULL && !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		root = NULL;
	}
	return root;
}

static const char *
jstr(struct json_object *root, const char *key)
{
	struct json_object *v;

	if (root == NULL || !json_object_object_get_ex(root, key, &v) ||
	    !json_object_is_type(v, json_type_string)) {
		return NULL;
	}
	return json_object_get_string(v);
}

static long
jlong(struct json_object *root, const char *key, long dflt)
{
	struct json_object *v;
	long n;

	if (root == NULL || !json_object_object_get_ex(root, key, &v)) {
		return dflt;
	}
	if (json_object_is_type(v, json_type_int)) {
		int64_t i = json_object_get_int64(v);

		return i > 0 && i < 86400 ? (long)i : dflt;
	}
	if (json_object_is_type(v, json_type_string) &&
	    util_parse_long(json_object_get_string(v), 1, 86399, &n) == 0) {
		return n;
	}
	return dflt;
}

/* Printable ASCII copy of provider text. */
static void
copy_text(char *dst, size_t size, const char *src)
{
	size_t i = 0;

	for (; src != NULL && *src != '\0' && i + 1 < size; src++) {
		unsigned char c = (unsigned char)*src;

		dst[i++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
}

static MUST_CHECK enum err
client_form(struct buf *form, const struct oauth_request *req)
{
	enum err e = oauth_form_field(form, "client_id", req->client_id);

	if (e == ERR_OK && req->client_secret != NULL &&
	    req->client_secret[0] != '\0') {
		e = oauth_form_field(form, "client_secret", req->client_secret);
	}
	return e;
}

static void
post_init(struct oauth_post *post, const struct oauth_request *req,
	const char *url, const struct buf *form)
{
	memset(post, 0, sizeof(*post));
	post->url = url;
	post->form = form;
	post->ca_file = req->ca_file;
	post->connect_timeout_ms = req->connect_timeout_ms;
	post->timeout_ms = req->timeout_ms;
}

/* Error code and description of a JSON error answer, for messages. */
static void
error_text(const struct buf *body, long status, char *out, size_t size)
{
	struct json_object *root = parse_json(body);
	const char *code = jstr(root, "error");
	const char *desc = jstr(root, "error_description");
	char c[64], d[400];

	copy_text(c, sizeof(c), code != NULL ? code : "");
	copy_text(d, sizeof(d), desc != NULL ? desc : "");
	snprintf(out, size, "HTTP %ld%s%s%s%s", status, c[0] ? ", " : "", c,
		d[0] ? ": " : "", d);
	if (root != NULL) {
		json_object_put(root);
	}
}

enum err
oauth_flow_device_start(const struct oauth_request *req,
	const char *device_endpoint, struct oauth_flow_device *ret,
	struct errinfo *reterr)
{
	struct oauth_post post;
	struct json_object *root = NULL;
	struct buf form, body;
	const char *dc, *uc, *uri, *complete, *msg;
	long status = 0;
	enum err e;

	buf_init_secret(&form, OAUTH_BODY_MAX);
	buf_init_secret(&body, OAUTH_BODY_MAX);
	e = client_form(&form, req);
	if (e == ERR_OK && req->scope != NULL && req->scope[0] != '\0') {
		e = oauth_form_field(&form, "scope", req->scope);
	}
	if (e != ERR_OK) {
		e = errinfo_set(reterr, e, "device request too large");
		goto out;
	}
	post_init(&post, req, device_endpoint, &form);
	e = oauth_http_post_form(&post, &status, &body, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	if (status == 408 || status == 429 || status >= 500) {
		e = errinfo_set(reterr, ERR_TOKEN_TEMP, "device endpoint failed "
			"temporarily (HTTP %ld)", status);
		goto out;
	}
	root = parse_json(&body);
	dc = jstr(root, "device_code");
	uc = jstr(root, "user_code");
	uri = jstr(root, "verification_uri");
	if (uri == NULL) {
		uri = jstr(root, "verification_url");	/* Google's spelling */
	}
	complete = jstr(root, "verification_uri_complete");
	msg = jstr(root, "message");
	if (status != 200 || dc == NULL || uc == NULL || uri == NULL ||
	    dc[0] == '\0') {
		char text[600];

		error_text(&body, status, text, sizeof(text));
		e = errinfo_set(reterr, ERR_CONFIG, "the device endpoint '%s' "
			"refused the request (%s): check oauth2_client_id, "
			"oauth2_scope and whether this provider allows the device "
			"flow", device_endpoint, text);
		goto out;
	}
	buf_reset(&ret->device_code);
	e = buf_append_str(&ret->device_code, dc);
	if (e != ERR_OK) {
		e = errinfo_set(reterr, ERR_TOKEN_TEMP, "device code too long");
		goto out;
	}
	copy_text(ret->user_code, sizeof(ret->user_code), uc);
	copy_text(ret->verification_uri, sizeof(ret->verification_uri), uri);
	copy_text(ret->verification_uri_complete,
		sizeof(ret->verification_uri_complete), complete);
	copy_text(ret->message, sizeof(ret->message), msg);
	ret->expires_in = jlong(root, "expires_in", 900);
	ret->interval = jlong(root, "interval", 5);
out:
	if (root != NULL) {
		struct json_object *v;

		if (json_object_object_get_ex(root, "device_code", &v) &&
		    json_object_is_type(v, json_type_string)) {
			util_wipe((void *)json_object_get_string(v),
				(size_t)json_object_get_string_len(v));
		}
		json_object_put(root);
	}
	buf_release(&form);
	buf_release(&body);
	return e;
}

static void
real_sleep(void *ctx, long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	(void)ctx;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
		continue;
	}
}

enum err
oauth_flow_device_wait(const struct oauth_request *req,
	const struct oauth_flow_device *dev, oauth_flow_sleep_fn sleep_fn,
	void *sleep_ctx, struct oauth_tokens *ret, struct errinfo *reterr)
{
	long interval = dev->interval > 0 ? dev->interval : 5;
	long limit = dev->expires_in > 0 ? dev->expires_in : 900;
	long waited = 0, wait_s;
	int transient = 0;
	struct buf form, body;
	struct oauth_post post;
	enum err e;

	if (sleep_fn == NULL) {
		sleep_fn = real_sleep;
	}
	buf_init_secret(&form, OAUTH_BODY_MAX);
	buf_init_secret(&body, OAUTH_BODY_MAX);
	e = oauth_form_field(&form, "grant_type",
		"urn:ietf:params:oauth:grant-type:device_code");
	if (e == ERR_OK) {
		e = oauth_form_field(&form, "device_code", dev->device_code.data);
	}
	if (e == ERR_OK) {
		e = client_form(&form, req);
	}
	if (e != ERR_OK) {
		e = errinfo_set(reterr, e, "device token request too large");
		goto out;
	}
	post_init(&post, req, req->token_endpoint, &form);
	for (;;) {
		struct json_object *root;
		const char *code;
		long status = 0;

		wait_s = transient > 0 ? interval << transient : interval;
		if (waited + wait_s > limit) {
			e = errinfo_set(reterr, ERR_TIMEOUT, "the user code "
				"expired unapproved after %ld s: run authorize "
				"again", limit);
			break;
		}
		sleep_fn(sleep_ctx, wait_s * 1000);
		waited += wait_s;
		buf_reset(&body);
		e = oauth_http_post_form(&post, &status, &body, reterr);
		if (e == ERR_TOKEN_TEMP && transient < TRANSIENT_RETRIES) {
			transient++;
			continue;
		}
		if (e != ERR_OK) {
			break;
		}
		transient = 0;
		if (status == 200) {
			e = oauth_parse_response(req->account, status, body.data,
				body.len, ret, reterr);
			break;
		}
		root = parse_json(&body);
		code = jstr(root, "error");
		if (code != NULL && strcmp(code, "authorization_pending") == 0) {
			json_object_put(root);
			continue;
		}
		if (code != NULL && strcmp(code, "slow_down") == 0) {
			interval += 5;	/* RFC 8628 section 3.5: for good */
			json_object_put(root);
			continue;
		}
		if (code != NULL && (strcmp(code, "access_denied") == 0 ||
			strcmp(code, "authorization_declined") == 0)) {
			e = errinfo_set(reterr, ERR_AUTH, "the sign-in was "
				"declined (%s)", code);
		} else if (code != NULL && (strcmp(code, "expired_token") == 0 ||
			strcmp(code, "bad_verification_code") == 0)) {
			e = errinfo_set(reterr, ERR_TIMEOUT, "the user code "
				"expired (%s): run authorize again", code);
		} else {
			e = oauth_parse_response(req->account, status, body.data,
				body.len, ret, reterr);
			if (e == ERR_OK || e == ERR_REAUTH) {
				/* an error status with tokens, or a refused code */
				e = errinfo_set(reterr, ERR_AUTH, "the token "
					"endpoint refused the device code "
					"(HTTP %ld)", status);
			}
		}
		if (root != NULL) {
			json_object_put(root);
		}
		break;
	}
out:
	buf_release(&form);
	buf_release(&body);
	return e;
}

/* --- revocation ------------------------------------------------------------ */

enum err
oauth_flow_revoke(const struct oauth_request *req, const char *endpoint,
	const char *token, struct errinfo *reterr)
{
	struct oauth_post post;
	struct buf form, body;
	long status = 0;
	enum err e;

	buf_init_secret(&form, OAUTH_BODY_MAX);
	buf_init_secret(&body, OAUTH_BODY_MAX);
	e = oauth_form_field(&form, "token", token);
	if (e == ERR_OK) {
		e = oauth_form_field(&form, "token_type_hint", "refresh_token");
	}
	if (e == ERR_OK) {
		e = client_form(&form, req);
	}
	if (e != ERR_OK) {
		e = errinfo_set(reterr, e, "revocation request too large");
		goto out;
	}
	post_init(&post, req, endpoint, &form);
	e = oauth_http_post_form(&post, &status, &body, reterr);
	if (e != ERR_OK) {
		goto out;
	}
	if (status != 200) {
		char text[600];

		error_text(&body, status, text, sizeof(text));
		e = errinfo_set(reterr, status == 408 || status == 429 ||
			status >= 500 ? ERR_TOKEN_TEMP : ERR_CONFIG,
			"the revocation endpoint '%s' answered %s", endpoint,
			text);
	}
out:
	buf_release(&form);
	buf_release(&body);
	return e;
}

/* --- the ID token ----------------------------------------------------------- */

static int
looks_like_address(const char *s)
{
	const char *at = strchr(s, '@');

	return at != NULL && at != s && at[1] != '\0' &&
		strchr(at + 1, '@') == NULL;
}

enum err
oauth_flow_id_token_identity(const char *jwt, struct buf *ret,
	struct errinfo *reterr)
{
	const char *p1 = strchr(jwt, '.');
	const char *p2 = p1 != NULL ? strchr(p1 + 1, '.') : NULL;
	struct json_object *root = NULL;
	struct buf b64, payload;
	const char *id;
	size_t i, n;
	enum err e;

	buf_reset(ret);
	if (p1 == NULL || p2 == NULL || p2 == p1 + 1) {
		return errinfo_set(reterr, ERR_DATA, "the ID token is not a JWT");
	}
	/*
	 * No signature check: this token came straight from the token
	 * endpoint in the answer to our own code exchange, over TLS with a
	 * verified certificate, so it is as trustworthy as the access token
	 * next to it.  OpenID Connect Core section 3.1.3.7 allows exactly this.
	 */
	buf_init(&b64, OAUTH_BODY_MAX);
	buf_init(&payload, OAUTH_BODY_MAX);
	n = (size_t)(p2 - p1 - 1);
	e = ERR_OK;
	for (i = 0; i < n && e == ERR_OK; i++) {
		char c = p1[1 + i];

		e = buf_putc(&b64, c == '-' ? '+' : c == '_' ? '/' : c);
	}
	while (e == ERR_OK && b64.len % 4 != 0) {
		e = buf_putc(&b64, '=');
	}
	if (e == ERR_OK) {
		e = util_base64_decode(&payload, b64.data, b64.len);
	}
	if (e == ERR_OK) {
		root = parse_json(&payload);
	}
	if (root == NULL) {
		e = errinfo_set(reterr, ERR_DATA,
			"the ID token's payload is not a JSON object");
		goto out;
	}
	id = jstr(root, "email");
	if (id == NULL || !looks_like_address(id)) {
		id = jstr(root, "preferred_username");
	}
	if (id == NULL || !looks_like_address(id)) {
		id = jstr(root, "upn");
	}
	if (id != NULL && looks_like_address(id)) {
		e = buf_append_str(ret, id);
		if (e != ERR_OK) {
			e = errinfo_set(reterr, ERR_DATA,
				"the ID token's address is too long");
		}
	}
out:
	if (root != NULL) {
		json_object_put(root);
	}
	buf_release(&b64);
	buf_release(&payload);
	return e;
}

/* --- choosing a flow -------------------------------------------------------- */

enum oauth_flow_kind
oauth_flow_kind_by_name(const char *name)
{
	if (name == NULL) {
		return OAUTH_FLOW_AUTO;
	}
	if (strcmp(name, "loopback") == 0) {
		return OAUTH_FLOW_LOOPBACK;
	}
	if (strcmp(name, "device") == 0) {
		return OAUTH_FLOW_DEVICE;
	}
	if (strcmp(name, "paste") == 0) {
		return OAUTH_FLOW_PASTE;
	}
	return OAUTH_FLOW_AUTO;
}

const char *
oauth_flow_kind_name(enum oauth_flow_kind k)
{
	switch (k) {
	case OAUTH_FLOW_LOOPBACK:
		return "loopback";
	case OAUTH_FLOW_DEVICE:
		return "device";
	case OAUTH_FLOW_PASTE:
		return "paste";
	case OAUTH_FLOW_AUTO:
		break;
	}
	return "auto";
}

enum oauth_flow_kind
oauth_flow_choose(const struct provider_preset *p, int has_display,
	int has_device_endpoint)
{
	if (has_display) {
		return OAUTH_FLOW_LOOPBACK;
	}
	if (has_device_endpoint &&
	    (p == NULL || (p->flags & PROVIDER_DEVICE_FLOW) != 0)) {
		return OAUTH_FLOW_DEVICE;
	}
	return OAUTH_FLOW_PASTE;
}
