/*
 * test_authorize.c - the pieces of `oasmtp-token authorize`: PKCE (RFC 7636
 * appendix B), the authorization URL, the redirect parsers (bounded, hostile
 * input), the loopback listener over a real socket, the device grant's
 * polling state machine and the code exchange with a fake transport,
 * revocation, ID token identity, provider presets and grant age warnings.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "err.h"
#include "grant_state.h"
#include "oauth_flow.h"
#include "oauth_http.h"
#include "provider.h"
#include "tap.h"
#include "util.h"

static struct errinfo ei;

/* --- PKCE, state, URL -------------------------------------------------------- */

static void
test_pkce(void)
{
	struct buf b, v;
	size_t i;
	int clean = 1;

	buf_init(&b, 256);
	buf_init_secret(&v, 256);
	/* RFC 7636 appendix B */
	is_int(oauth_flow_pkce_challenge(
		"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", &b, &ei), ERR_OK,
		"challenge computed");
	is_str(b.data, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		"RFC 7636 appendix B challenge");
	is_int(oauth_flow_random(&v, 32, &ei), ERR_OK, "verifier");
	is_int((long long)v.len, 43, "32 random bytes -> 43 characters");
	for (i = 0; i < v.len; i++) {
		char c = v.data[i];

		clean &= (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_';
	}
	ok(clean, "verifier uses the base64url alphabet, no padding");
	buf_reset(&b);
	setup(oauth_flow_random(&b, 32, &ei));
	ok(strcmp(b.data, v.data) != 0, "two random values differ");
	is_int(oauth_flow_random(&b, 65, &ei), ERR_INTERNAL,
		"absurd length refused");
	buf_release(&b);
	buf_release(&v);
}

static void
test_auth_url(void)
{
	struct oauth_flow_auth a;
	struct buf u;

	buf_init(&u, 8192);
	memset(&a, 0, sizeof(a));
	a.auth_endpoint = "https://accounts.example/o/auth";
	a.client_id = "id 1";
	a.redirect_uri = "http://127.0.0.1:4711/";
	a.scope = "https://mail.google.com/ openid email";
	a.state = "st4te";
	a.code_challenge = "chal";
	a.login_hint = "joe+x@example.com";
	a.access_type_offline = 1;
	a.prompt_consent = 1;
	is_int(oauth_flow_auth_url(&a, &u, &ei), ERR_OK, "URL built");
	is_str(u.data, "https://accounts.example/o/auth?response_type=code"
		"&client_id=id%201"
		"&redirect_uri=http%3A%2F%2F127.0.0.1%3A4711%2F"
		"&scope=https%3A%2F%2Fmail.google.com%2F%20openid%20email"
		"&state=st4te&code_challenge=chal&code_challenge_method=S256"
		"&access_type=offline&prompt=consent"
		"&login_hint=joe%2Bx%40example.com", "every parameter encoded");
	a.auth_endpoint = "https://login.example/authorize?tenant=x";
	a.access_type_offline = 0;
	a.prompt_consent = 0;
	a.login_hint = NULL;
	a.code_challenge = NULL;
	setup(oauth_flow_auth_url(&a, &u, &ei));
	contains(u.data, "authorize?tenant=x&response_type=code",
		"existing query extended with &");
	ok(strstr(u.data, "prompt") == NULL && strstr(u.data, "access_type") ==
		NULL && strstr(u.data, "code_challenge") == NULL,
		"optional parameters left out");
	buf_release(&u);
}

/* --- the redirect ------------------------------------------------------------- */

static void
test_callback_parse(void)
{
	struct oauth_flow_callback cb;
	const char *ep = "https://op.example:8443/auth";
	char longv[600];

	oauth_flow_callback_init(&cb);
	is_int(oauth_flow_parse_callback("http://127.0.0.1:5000/?code=a%2Fb+c"
		"&state=S1&iss=https%3A%2F%2Fop.example%3A8443&x=1", &cb, &ei),
		ERR_OK, "full URL parsed");
	is_str(cb.code.data, "a/b c", "code percent- and plus-decoded");
	is_str(cb.state, "S1", "state");
	is_str(cb.iss, "https://op.example:8443", "iss");
	is_int(oauth_flow_check_callback(&cb, "S1", ep, 0, &ei), ERR_OK,
		"state and iss match");
	is_int(oauth_flow_check_callback(&cb, "S2", ep, 0, &ei), ERR_AUTH,
		"state mismatch refused");
	contains(errinfo_msg(&ei), "does not belong", "message says why");
	is_int(oauth_flow_check_callback(&cb, "S1",
		"https://evil.example/auth", 0, &ei), ERR_AUTH,
		"iss from another origin refused (RFC 9207)");
	is_int(oauth_flow_check_callback(&cb, "S1", "HTTPS://OP.EXAMPLE:8443/x",
		0, &ei), ERR_OK, "origin compared case-insensitively");

	is_int(oauth_flow_parse_callback("/?state=S1&error=access_denied&"
		"error_description=The+user+said+no", &cb, &ei), ERR_OK,
		"error redirect parsed");
	is_int(oauth_flow_check_callback(&cb, "S1", ep, 0, &ei), ERR_AUTH,
		"access_denied -> ERR_AUTH");
	contains(errinfo_msg(&ei), "access_denied: The user said no", "description kept");
	setup(oauth_flow_parse_callback("?state=S1&error=server_error", &cb, &ei));
	is_int(oauth_flow_check_callback(&cb, "S1", ep, 0, &ei), ERR_AUTH,
		"other provider errors -> ERR_AUTH");

	is_int(oauth_flow_parse_callback("  4/0AbCd-EfG_h \n", &cb, &ei),
		ERR_OK, "bare code parsed");
	ok(cb.bare_code && strcmp(cb.code.data, "4/0AbCd-EfG_h") == 0,
		"a Google-style code with '/' is a bare code");
	is_int(oauth_flow_parse_callback("http://127.0.0.1:5/", &cb, &ei),
		ERR_DATA, "a URL without a query is not a code");
	is_int(oauth_flow_parse_callback("0AbCdEfGh\n", &cb, &ei), ERR_OK,
		"bare code");
	ok(cb.bare_code && strcmp(cb.code.data, "0AbCdEfGh") == 0,
		"bare code kept, white space trimmed");
	is_int(oauth_flow_check_callback(&cb, "S1", ep, 1, &ei), ERR_OK,
		"bare code allowed when pasting");
	is_int(oauth_flow_check_callback(&cb, "S1", ep, 0, &ei), ERR_DATA,
		"bare code not allowed on the listener");

	is_int(oauth_flow_parse_callback("code=x&state=S1", &cb, &ei), ERR_OK,
		"bare query");
	is_int(oauth_flow_parse_callback("?state=S1", &cb, &ei), ERR_OK,
		"query without code parses");
	is_int(oauth_flow_check_callback(&cb, "S1", ep, 0, &ei), ERR_DATA,
		"but is refused: no code");
	is_int(oauth_flow_parse_callback("", &cb, &ei), ERR_DATA, "empty");
	is_int(oauth_flow_parse_callback(" \n", &cb, &ei), ERR_DATA, "blank");
	is_int(oauth_flow_parse_callback("?code=a%zz", &cb, &ei), ERR_DATA,
		"bad escape");
	is_int(oauth_flow_parse_callback("?code=a%0", &cb, &ei), ERR_DATA,
		"truncated escape");
	is_int(oauth_flow_parse_callback("?code=a%0Ab", &cb, &ei), ERR_DATA,
		"encoded control character refused");
	is_int(oauth_flow_parse_callback("?code=a\x01", &cb, &ei), ERR_DATA,
		"raw control character refused");
	is_int(oauth_flow_parse_callback("?code=a&code=b", &cb, &ei), ERR_DATA,
		"duplicate code refused");
	is_int(oauth_flow_parse_callback("?state=a&state=b&code=c", &cb, &ei),
		ERR_DATA, "duplicate state refused");
	memset(longv, 'A', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	{
		char in[700];

		snprintf(in, sizeof(in), "?code=c&state=%s", longv);
		is_int(oauth_flow_parse_callback(in, &cb, &ei), ERR_LIMIT,
			"state longer than the bound refused");
	}
	is_int(oauth_flow_parse_callback("http://x/ y", &cb, &ei), ERR_DATA,
		"junk refused");
	is_int(oauth_flow_parse_callback("?code=c&state=S1#frag=1", &cb, &ei),
		ERR_OK, "fragment ignored");
	is_str(cb.state, "S1", "state before the fragment");
	oauth_flow_callback_release(&cb);
}

static void
test_request_parser(void)
{
	struct buf t;
	char big[OAUTH_FLOW_REQUEST_MAX + 100];
	static const char ok_req[] = "GET /?code=c&state=s HTTP/1.1\r\n"
		"Host: 127.0.0.1:5000\r\nUser-Agent: x\r\n\r\n";

	buf_init(&t, OAUTH_FLOW_REQUEST_MAX);
	is_int(oauth_flow_parse_request(ok_req, strlen(ok_req), &t),
		OAUTH_FLOW_REQ_DONE, "complete request");
	is_str(t.data, "/?code=c&state=s", "target");
	is_int(oauth_flow_parse_request(ok_req, 20, &t), OAUTH_FLOW_REQ_MORE,
		"partial request line: more");
	is_int(oauth_flow_parse_request(ok_req, strlen(ok_req) - 2, &t),
		OAUTH_FLOW_REQ_MORE, "headers not finished: more");
	is_int(oauth_flow_parse_request("GET / HTTP/1.0\n\n", 16, &t),
		OAUTH_FLOW_REQ_DONE, "bare LF and HTTP/1.0 accepted");
	is_int(oauth_flow_parse_request("POST / HTTP/1.1\r\n\r\n", 19, &t),
		OAUTH_FLOW_REQ_BAD, "POST refused");
	is_int(oauth_flow_parse_request("GET x HTTP/1.1\r\n\r\n", 18, &t),
		OAUTH_FLOW_REQ_BAD, "target without / refused");
	is_int(oauth_flow_parse_request("GET / HTTP/2.0\r\n\r\n", 18, &t),
		OAUTH_FLOW_REQ_BAD, "unknown version refused");
	is_int(oauth_flow_parse_request("GET  HTTP/1.1\r\n\r\n", 17, &t),
		OAUTH_FLOW_REQ_BAD, "empty target refused");
	is_int(oauth_flow_parse_request("GET /a b HTTP/1.1\r\n\r\n", 21, &t),
		OAUTH_FLOW_REQ_BAD, "space in target refused");
	is_int(oauth_flow_parse_request("GET /\0 HTTP/1.1\r\n\r\n", 19, &t),
		OAUTH_FLOW_REQ_BAD, "NUL refused");
	is_int(oauth_flow_parse_request("\r\n\r\n", 4, &t), OAUTH_FLOW_REQ_BAD,
		"empty request refused");
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	is_int(oauth_flow_parse_request(big, sizeof(big), &t),
		OAUTH_FLOW_REQ_BAD, "endless head refused at the bound");
	is_int(oauth_flow_parse_request(big, 100, &t), OAUTH_FLOW_REQ_MORE,
		"a long but unfinished head is fine below the bound");
	buf_release(&t);
}

/* A client thread playing the browser against the loopback listener. */
struct browser {
	int port;
	const char *requests[4];
	char answers[4][2048];
};

static void *
browser_main(void *arg)
{
	struct browser *b = arg;
	int i;

	for (i = 0; i < 4 && b->requests[i] != NULL; i++) {
		struct sockaddr_in sa;
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		size_t len = 0;
		ssize_t n;

		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_port = htons((unsigned short)b->port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			close(fd);
			continue;
		}
		(void)util_write_all(fd, b->requests[i], strlen(b->requests[i]));
		while ((n = read(fd, b->answers[i] + len,
			    sizeof(b->answers[i]) - 1 - len)) > 0) {
			len += (size_t)n;
		}
		b->answers[i][len] = '\0';
		close(fd);
	}
	return NULL;
}

static void
test_listener(void)
{
	struct oauth_flow_listener l;
	struct oauth_flow_callback cb;
	struct browser b;
	pthread_t th;
	const char *ep = "https://op.example/auth";
	enum err e;

	memset(&b, 0, sizeof(b));
	oauth_flow_callback_init(&cb);
	is_int(oauth_flow_listen(0, &l, &ei), ERR_OK, "listening");
	ok(l.port > 0, "ephemeral port %d", l.port);
	b.port = l.port;
	b.requests[0] = "GET /favicon.ico HTTP/1.1\r\n\r\n";
	b.requests[1] = "GET /?code=zzz&state=forged HTTP/1.1\r\n\r\n";
	b.requests[2] = "BREW /pot HTTP/1.1\r\n\r\n";
	b.requests[3] = "GET /?code=the-code&state=good&iss=https%3A%2F%2F"
		"op.example HTTP/1.1\r\nHost: x\r\n\r\n";
	pthread_create(&th, NULL, browser_main, &b);
	e = oauth_flow_wait_redirect(&l, 10000, "good", ep, &cb, &ei);
	pthread_join(th, NULL);
	is_int(e, ERR_OK, "our redirect accepted");
	is_str(cb.code.data, "the-code", "code received");
	contains(b.answers[0], "404", "favicon: 404");
	contains(b.answers[1], "400", "foreign state: 400, ignored");
	contains(b.answers[2], "400", "garbage: 400");
	contains(b.answers[3], "HTTP/1.1 200", "redirect: 200");
	contains(b.answers[3], "You may close this tab", "page says close it");
	contains(b.answers[3], "Content-Length:", "page has a length");

	/* denied */
	memset(&b, 0, sizeof(b));
	b.port = l.port;
	b.requests[0] = "GET /?error=access_denied&state=good HTTP/1.1\r\n\r\n";
	pthread_create(&th, NULL, browser_main, &b);
	e = oauth_flow_wait_redirect(&l, 10000, "good", ep, &cb, &ei);
	pthread_join(th, NULL);
	is_int(e, ERR_AUTH, "access_denied ends the wait with ERR_AUTH");
	contains(b.answers[0], "Authorization failed", "browser told");

	/* nobody comes */
	e = oauth_flow_wait_redirect(&l, 300, "good", ep, &cb, &ei);
	is_int(e, ERR_TIMEOUT, "timeout");
	contains(errinfo_msg(&ei), "no answer from the browser", "timeout message");
	oauth_flow_listener_close(&l);
	oauth_flow_listener_close(&l);
	ok(l.fd == -1, "close is idempotent");
	oauth_flow_callback_release(&cb);
}

/* --- a scripted fake transport ------------------------------------------------- */

struct step {
	int netfail;
	long status;
	const char *body;
};

static struct {
	const struct step *steps;
	int n, next;
	char forms[16][2048];
	char urls[16][256];
} fake;

static enum err
fake_post(void *ctx, const struct oauth_post *req, long *ret_status,
	struct buf *ret_body, struct errinfo *reterr)
{
	const struct step *s;
	int i = fake.next++;

	(void)ctx;
	if (i < 16) {
		util_strlcpy(fake.forms[i], req->form->data,
			sizeof(fake.forms[i]));
		util_strlcpy(fake.urls[i], req->url, sizeof(fake.urls[i]));
	}
	if (i >= fake.n) {
		return errinfo_set(reterr, ERR_INTERNAL, "script exhausted");
	}
	s = &fake.steps[i];
	if (s->netfail) {
		return errinfo_set(reterr, ERR_TOKEN_TEMP, "unreachable");
	}
	*ret_status = s->status;
	return buf_append_str(ret_body, s->body);
}

static void
script(const struct step *steps, int n)
{
	memset(&fake, 0, sizeof(fake));
	fake.steps = steps;
	fake.n = n;
	oauth_http_set_post(fake_post, NULL);
}

static long sleeps[32];
static int n_sleeps;

static void
fake_sleep(void *ctx, long ms)
{
	(void)ctx;
	if (n_sleeps < 32) {
		sleeps[n_sleeps] = ms;
	}
	n_sleeps++;
}

#define TOKENS "{\"access_token\":\"at1\",\"token_type\":\"Bearer\"," \
	"\"expires_in\":3600,\"refresh_token\":\"rt1\"}"
#define PENDING "{\"error\":\"authorization_pending\"}"

static void
request_init(struct oauth_request *r, const char *secret)
{
	memset(r, 0, sizeof(*r));
	r->account = "acct";
	r->token_endpoint = "https://op.example/token";
	r->client_id = "cid";
	r->client_secret = secret;
	r->scope = "smtp offline_access";
}

static enum err
run_device(const struct step *steps, int n, long expires, long interval,
	struct oauth_tokens *tok)
{
	struct oauth_request r;
	struct oauth_flow_device d;
	enum err e;

	request_init(&r, NULL);
	oauth_flow_device_init(&d);
	setup(buf_append_str(&d.device_code, "DEV-CODE"));
	d.expires_in = expires;
	d.interval = interval;
	script(steps, n);
	n_sleeps = 0;
	e = oauth_flow_device_wait(&r, &d, fake_sleep, NULL, tok, &ei);
	oauth_flow_device_release(&d);
	return e;
}

static void
test_device(void)
{
	static const struct step start_ms[] = {
		{ 0, 200, "{\"device_code\":\"DC\",\"user_code\":\"ABCD-EFGH\","
		  "\"verification_uri\":\"https://microsoft.com/devicelogin\","
		  "\"expires_in\":900,\"interval\":5,\"message\":\"To sign in, "
		  "use a web browser\"}" },
	};
	static const struct step start_google[] = {
		{ 0, 200, "{\"device_code\":\"DC\",\"user_code\":\"XY\","
		  "\"verification_url\":\"https://www.google.com/device\","
		  "\"verification_uri_complete\":\"https://x/?c=XY\"}" },
	};
	static const struct step start_refused[] = {
		{ 0, 400, "{\"error\":\"invalid_scope\",\"error_description\":"
		  "\"Invalid device flow scope\"}" },
	};
	static const struct step flow[] = {
		{ 0, 400, PENDING },
		{ 0, 400, "{\"error\":\"slow_down\"}" },
		{ 0, 400, PENDING },
		{ 0, 200, TOKENS },
	};
	static const struct step denied[] = {
		{ 0, 400, PENDING },
		{ 0, 400, "{\"error\":\"access_denied\"}" },
	};
	static const struct step declined[] = {
		{ 0, 400, "{\"error\":\"authorization_declined\"}" },
	};
	static const struct step expired[] = {
		{ 0, 400, "{\"error\":\"expired_token\"}" },
	};
	static const struct step badcode[] = {
		{ 0, 400, "{\"error\":\"bad_verification_code\"}" },
	};
	static const struct step flaky[] = {
		{ 1, 0, NULL },
		{ 1, 0, NULL },
		{ 0, 200, TOKENS },
	};
	static const struct step down[] = {
		{ 1, 0, NULL }, { 1, 0, NULL }, { 1, 0, NULL }, { 1, 0, NULL },
	};
	static const struct step badclient[] = {
		{ 0, 401, "{\"error\":\"invalid_client\",\"error_description\":"
		  "\"AADSTS7000218: must contain client_secret\"}" },
	};
	static const struct step forever[] = {
		{ 0, 400, PENDING }, { 0, 400, PENDING }, { 0, 400, PENDING },
		{ 0, 400, PENDING }, { 0, 400, PENDING },
	};
	struct oauth_request r;
	struct oauth_flow_device d;
	struct oauth_tokens tok;
	enum err e;

	oauth_tokens_init(&tok);
	oauth_flow_device_init(&d);
	request_init(&r, NULL);
	script(start_ms, 1);
	is_int(oauth_flow_device_start(&r, "https://op.example/devicecode", &d,
		&ei), ERR_OK, "device start (Microsoft shape)");
	is_str(d.user_code, "ABCD-EFGH", "user code");
	is_str(d.verification_uri, "https://microsoft.com/devicelogin",
		"verification uri");
	is_str(d.verification_uri_complete, "", "no complete uri");
	is_int(d.interval, 5, "interval");
	is_int(d.expires_in, 900, "expires_in");
	is_str(d.device_code.data, "DC", "device code kept (secret buf)");
	is_str(fake.forms[0], "client_id=cid&scope=smtp%20offline_access",
		"public client: no secret sent");
	script(start_google, 1);
	request_init(&r, "sekrit");
	is_int(oauth_flow_device_start(&r, "https://op.example/device", &d,
		&ei), ERR_OK, "device start (Google's spelling)");
	is_str(d.verification_uri, "https://www.google.com/device",
		"verification_url accepted");
	is_str(d.verification_uri_complete, "https://x/?c=XY", "complete uri");
	is_int(d.interval, 5, "interval defaults to 5");
	is_int(d.expires_in, 900, "expires_in defaults to 900");
	contains(fake.forms[0], "client_secret=sekrit",
		"confidential client sends its secret");
	script(start_refused, 1);
	is_int(oauth_flow_device_start(&r, "https://op.example/device", &d,
		&ei), ERR_CONFIG, "refused device request -> ERR_CONFIG");
	contains(errinfo_msg(&ei), "invalid_scope: Invalid device flow scope",
		"provider's reason quoted");
	oauth_flow_device_release(&d);

	e = run_device(flow, 4, 900, 5, &tok);
	is_int(e, ERR_OK, "pending, slow_down, pending, approved");
	is_str(tok.refresh_token.data, "rt1", "tokens returned");
	is_int(n_sleeps, 4, "four waits");
	ok(sleeps[0] == 5000 && sleeps[1] == 5000 && sleeps[2] == 10000 &&
		sleeps[3] == 10000, "slow_down adds 5 s for good (%ld %ld %ld "
		"%ld)", sleeps[0], sleeps[1], sleeps[2], sleeps[3]);
	contains(fake.forms[0], "grant_type=urn%3Aietf%3Aparams%3Aoauth%3A"
		"grant-type%3Adevice_code&device_code=DEV-CODE&client_id=cid",
		"poll form");
	ok(strstr(fake.forms[0], "client_secret") == NULL,
		"public client polls without a secret");
	is_str(fake.urls[0], "https://op.example/token", "polls the token "
		"endpoint");

	is_int(run_device(flow, 4, 900, 0, &tok), ERR_OK, "no interval");
	is_int(sleeps[0], 5000, "RFC 8628 default interval 5 s");
	is_int(run_device(denied, 2, 900, 5, &tok), ERR_AUTH, "access_denied");
	contains(errinfo_msg(&ei), "declined", "denied message");
	is_int(run_device(declined, 1, 900, 5, &tok), ERR_AUTH,
		"authorization_declined (Microsoft)");
	is_int(run_device(expired, 1, 900, 5, &tok), ERR_TIMEOUT,
		"expired_token");
	contains(errinfo_msg(&ei), "expired", "expired message");
	is_int(run_device(badcode, 1, 900, 5, &tok), ERR_TIMEOUT,
		"bad_verification_code (Microsoft)");
	is_int(run_device(flaky, 3, 900, 5, &tok), ERR_OK,
		"two transport failures are retried");
	ok(sleeps[1] == 10000 && sleeps[2] == 20000,
		"with a growing back-off (%ld %ld)", sleeps[1], sleeps[2]);
	is_int(run_device(down, 4, 900, 1, &tok), ERR_TOKEN_TEMP,
		"a fourth failure in a row ends it");
	is_int(run_device(badclient, 1, 900, 5, &tok), ERR_CONFIG,
		"invalid_client -> ERR_CONFIG");
	contains(errinfo_msg(&ei), "AADSTS7000218", "provider text kept for the "
		"explainer");
	is_int(run_device(forever, 5, 12, 5, &tok), ERR_TIMEOUT,
		"gives up after expires_in");
	is_int(n_sleeps, 2, "after two polls (10 of 12 s)");
	oauth_tokens_release(&tok);
	oauth_http_set_post(NULL, NULL);
}

/* --- code exchange, revocation -------------------------------------------------- */

static void
test_exchange(void)
{
	static const struct step okay[] = {
		{ 0, 200, "{\"access_token\":\"at\",\"token_type\":\"Bearer\","
		  "\"expires_in\":3599,\"refresh_token\":\"rt\","
		  "\"id_token\":\"h.eyJlbWFpbCI6ImFAYi5jIn0.s\"}" },
	};
	static const struct step refused[] = {
		{ 0, 400, "{\"error\":\"invalid_grant\",\"error_description\":"
		  "\"code expired\"}" },
	};
	static const struct step rev[] = {
		{ 0, 200, "" }, { 0, 503, "" }, { 0, 400,
		  "{\"error\":\"unsupported_token_type\"}" },
	};
	struct oauth_request r;
	struct oauth_tokens tok;

	oauth_tokens_init(&tok);
	request_init(&r, "sec");
	r.code = "C0DE";
	r.code_verifier = "verif";
	r.redirect_uri = "http://127.0.0.1:999/";
	script(okay, 1);
	is_int(oauth_exchange_code(&r, &tok, &ei), ERR_OK, "code exchanged");
	is_str(fake.forms[0], "grant_type=authorization_code&code=C0DE"
		"&redirect_uri=http%3A%2F%2F127.0.0.1%3A999%2F"
		"&code_verifier=verif&client_id=cid&client_secret=sec",
		"exchange form");
	is_str(tok.refresh_token.data, "rt", "refresh token");
	is_str(tok.id_token.data, "h.eyJlbWFpbCI6ImFAYi5jIn0.s",
		"id token returned");
	script(refused, 1);
	is_int(oauth_exchange_code(&r, &tok, &ei), ERR_AUTH,
		"refused code -> ERR_AUTH, not 're-authorize'");
	contains(errinfo_msg(&ei), "code expired", "provider text kept");
	r.code = "";
	is_int(oauth_exchange_code(&r, &tok, &ei), ERR_INTERNAL, "no code");

	script(rev, 3);
	is_int(oauth_flow_revoke(&r, "https://op/revoke", "RT", &ei), ERR_OK,
		"revoked");
	is_str(fake.forms[0], "token=RT&token_type_hint=refresh_token"
		"&client_id=cid&client_secret=sec", "revocation form");
	is_int(oauth_flow_revoke(&r, "https://op/revoke", "RT", &ei),
		ERR_TOKEN_TEMP, "503 -> temporary");
	is_int(oauth_flow_revoke(&r, "https://op/revoke", "RT", &ei),
		ERR_CONFIG, "400 -> config");
	contains(errinfo_msg(&ei), "unsupported_token_type", "reason quoted");
	oauth_tokens_release(&tok);
	oauth_http_set_post(NULL, NULL);
}

/* base64url of a JSON payload into a JWT-shaped string */
static void
jwt(const char *payload, struct buf *out)
{
	buf_reset(out);
	setup(buf_append_str(out, "eyJhbGciOiJSUzI1NiJ9."));
	setup(util_base64url_encode(out, payload, strlen(payload)));
	setup(buf_append_str(out, ".c2ln"));
}

static void
test_identity(void)
{
	struct buf t, who;

	buf_init(&t, 8192);
	buf_init(&who, 1024);
	jwt("{\"sub\":\"1\",\"email\":\"joe@example.com\","
		"\"name\":\"J\\u00f6\"}", &t);
	is_int(oauth_flow_id_token_identity(t.data, &who, &ei), ERR_OK,
		"google-style token");
	is_str(who.data, "joe@example.com", "email claim");
	jwt("{\"preferred_username\":\"ann@contoso.com\",\"oid\":\"x\"}", &t);
	setup(oauth_flow_id_token_identity(t.data, &who, &ei));
	is_str(who.data, "ann@contoso.com", "preferred_username (Microsoft)");
	jwt("{\"email\":\"not-an-address\",\"upn\":\"u@x.org\"}", &t);
	setup(oauth_flow_id_token_identity(t.data, &who, &ei));
	is_str(who.data, "u@x.org", "a non-address email is skipped");
	jwt("{\"sub\":\"12345\"}", &t);
	is_int(oauth_flow_id_token_identity(t.data, &who, &ei), ERR_OK,
		"no identity claim");
	is_str(who.data, "", "left empty");
	is_int(oauth_flow_id_token_identity("abc", &who, &ei), ERR_DATA,
		"not a JWT");
	is_int(oauth_flow_id_token_identity("a.!!!.b", &who, &ei), ERR_DATA,
		"bad base64");
	jwt("[1,2]", &t);
	is_int(oauth_flow_id_token_identity(t.data, &who, &ei), ERR_DATA,
		"payload not an object");
	buf_release(&t);
	buf_release(&who);
}

/* --- presets, flow choice, grant age ------------------------------------------ */

static void
test_presets(void)
{
	const struct provider_preset *t, *g, *m;
	struct account acc;
	struct buf u;
	unsigned n, i;
	int all_https = 1;

	buf_init(&u, 4096);
	t = provider_table(&n);
	ok(n >= 8, "%u presets", n);
	for (i = 0; i < n; i++) {
		const char *eps[4] = { t[i].auth_endpoint, t[i].token_endpoint,
			t[i].device_endpoint, t[i].revocation_endpoint };

		ok(provider_by_name(t[i].name) == &t[i] &&
			provider_get(t[i].id) == &t[i], "preset %s found",
			t[i].name);
		for (int k = 0; k < 4; k++) {
			all_https &= eps[k] == NULL ||
				strncmp(eps[k], "https://", 8) == 0;
		}
		ok(t[i].token_endpoint != NULL && t[i].scope != NULL &&
			t[i].smtp_host != NULL, "preset %s has endpoint, scope, "
			"host", t[i].name);
	}
	ok(all_https, "every preset endpoint is https");
	ok(provider_get(OAUTH2_CUSTOM) == NULL &&
		provider_get(OAUTH2_NONE) == NULL, "custom and none: no preset");
	ok(provider_by_name("GOOGLE") != NULL, "names are case-insensitive");
	g = provider_get(OAUTH2_GOOGLE);
	m = provider_get(OAUTH2_MICROSOFT);
	ok(g->device_endpoint == NULL && !(g->flags & PROVIDER_DEVICE_FLOW),
		"google: no device flow for Gmail");
	ok(g->flags & PROVIDER_OFFLINE_CONSENT, "google: offline + consent");
	ok(m->flags & PROVIDER_DEVICE_FLOW, "microsoft: device flow");
	is_int(g->grant_limit_days, 7, "google testing limit");
	is_int(m->idle_limit_days, 90, "microsoft idle limit");

	memset(&acc, 0, sizeof(acc));
	acc.name = (char *)"a";
	acc.oauth2_provider = OAUTH2_MICROSOFT;
	is_int(provider_endpoint(&acc, PROVIDER_EP_DEVICE, &u, &ei), ERR_OK,
		"microsoft device endpoint");
	is_str(u.data, "https://login.microsoftonline.com/common/oauth2/v2.0/"
		"devicecode", "tenant common by default");
	acc.oauth2_tenant = (char *)"organizations";
	setup(provider_endpoint(&acc, PROVIDER_EP_AUTH, &u, &ei));
	is_str(u.data, "https://login.microsoftonline.com/organizations/"
		"oauth2/v2.0/authorize", "tenant substituted");
	acc.oauth2_tenant = (char *)"../x";
	is_int(provider_endpoint(&acc, PROVIDER_EP_TOKEN, &u, &ei), ERR_CONFIG,
		"path tricks in the tenant refused");
	acc.oauth2_tenant = NULL;
	is_int(provider_endpoint(&acc, PROVIDER_EP_REVOKE, &u, &ei), ERR_OK,
		"no revocation endpoint is not an error");
	is_str(u.data, "", "but empty");
	acc.oauth2_auth_endpoint = (char *)"https://login.microsoftonline.us/"
		"t/oauth2/v2.0/authorize";
	setup(provider_endpoint(&acc, PROVIDER_EP_AUTH, &u, &ei));
	contains(u.data, "microsoftonline.us", "national cloud by override");
	acc.oauth2_provider = OAUTH2_GOOGLE;
	acc.oauth2_auth_endpoint = NULL;
	setup(provider_endpoint(&acc, PROVIDER_EP_REVOKE, &u, &ei));
	is_str(u.data, "https://oauth2.googleapis.com/revoke",
		"google revocation");
	acc.oauth2_revocation_endpoint = (char *)"https://own/revoke";
	setup(provider_endpoint(&acc, PROVIDER_EP_REVOKE, &u, &ei));
	is_str(u.data, "https://own/revoke", "own revocation endpoint wins");
	setup(provider_scope(&acc, &u, &ei));
	is_str(u.data, "https://mail.google.com/", "preset scope");
	acc.oauth2_scope = (char *)"x y";
	setup(provider_scope(&acc, &u, &ei));
	is_str(u.data, "x y", "own scope wins");

	is_int(oauth_flow_choose(g, 1, 0), OAUTH_FLOW_LOOPBACK,
		"display -> loopback");
	is_int(oauth_flow_choose(g, 0, 0), OAUTH_FLOW_PASTE,
		"google headless -> paste");
	is_int(oauth_flow_choose(g, 0, 1), OAUTH_FLOW_PASTE,
		"google headless, even with a device endpoint -> paste");
	is_int(oauth_flow_choose(m, 0, 1), OAUTH_FLOW_DEVICE,
		"microsoft headless -> device");
	is_int(oauth_flow_choose(NULL, 0, 1), OAUTH_FLOW_DEVICE,
		"custom with a device endpoint -> device");
	is_int(oauth_flow_choose(NULL, 0, 0), OAUTH_FLOW_PASTE,
		"custom without -> paste");
	is_int(oauth_flow_kind_by_name("device"), OAUTH_FLOW_DEVICE, "names");
	is_str(oauth_flow_kind_name(OAUTH_FLOW_PASTE), "paste", "names back");
	buf_release(&u);
}

static void
test_grant_age(void)
{
	const struct provider_preset *g = provider_get(OAUTH2_GOOGLE);
	const struct provider_preset *m = provider_get(OAUTH2_MICROSOFT);
	struct grant_state st;
	char w[512];
	long d;
	time_t day = 86400, t0 = 1700000000;

	is_int(grant_state_parse_duration("30d", &d), 0, "30d");
	is_int(d, 30 * 86400, "30 days");
	ok(grant_state_parse_duration("12h", &d) == 0 && d == 43200, "12h");
	ok(grant_state_parse_duration("2w", &d) == 0 && d == 14 * 86400, "2w");
	ok(grant_state_parse_duration("90m", &d) == 0 && d == 5400, "90m");
	ok(grant_state_parse_duration("3600", &d) == 0 && d == 3600, "plain");
	ok(grant_state_parse_duration("", &d) != 0 &&
		grant_state_parse_duration("d", &d) != 0 &&
		grant_state_parse_duration("1y", &d) != 0 &&
		grant_state_parse_duration("-1d", &d) != 0 &&
		grant_state_parse_duration("99999999999d", &d) != 0,
		"junk refused");

	memset(&st, 0, sizeof(st));
	st.authorized = t0;
	st.refreshed = t0 + 4 * day;
	ok(!grant_state_warning(g, &st, "a", t0 + 4 * day, w, sizeof(w)),
		"google, day 4: quiet");
	ok(grant_state_warning(g, &st, "a", t0 + 5 * day + 1, w, sizeof(w)),
		"google, day 5: warns");
	contains(w, "Testing", "names the Testing limit");
	contains(w, "oasmtp-token authorize a", "and the fix");
	st.refreshed = t0 + 8 * day;
	ok(!grant_state_warning(g, &st, "a", t0 + 9 * day, w, sizeof(w)),
		"refreshed after day 7: a published app, quiet");
	st.authorized = t0;
	st.refreshed = t0;
	ok(!grant_state_warning(m, &st, "a", t0 + 70 * day, w, sizeof(w)),
		"microsoft, 70 idle days: quiet");
	ok(grant_state_warning(m, &st, "a", t0 + 80 * day, w, sizeof(w)),
		"microsoft, 80 idle days: warns");
	contains(w, "90 days without a refresh", "idle limit named");
	ok(!grant_state_warning(NULL, &st, "a", t0 + 800 * day, w, sizeof(w)),
		"custom provider: no known limits");
}

int
main(void)
{
	errinfo_init(&ei);
	test_pkce();
	test_auth_url();
	test_callback_parse();
	test_request_parser();
	test_listener();
	test_device();
	test_exchange();
	test_identity();
	test_presets();
	test_grant_age();
	return tap_done();
}
