/*
 * oauth_http.c - refresh_token grant over libcurl, answer parsed with json-c.
 *
 * Wire format (RFC 6749 section 6, client authentication in the body as
 * Google and Microsoft accept it):
 *
 *   POST <token endpoint>
 *   Content-Type: application/x-www-form-urlencoded
 *   Accept: application/json
 *
 *   grant_type=refresh_token&refresh_token=RT&client_id=ID
 *       [&client_secret=SECRET][&scope=SCOPE]
 *
 * Success: 200 {"access_token": "...", "token_type": "Bearer",
 * "expires_in": 3599 | "3599", ["refresh_token": "..."], ["scope": "..."]}.
 * Failure: 4xx {"error": "invalid_grant", ["error_description": "..."]}.
 */
#include "oauth_http.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "http_curl.h"
#include "provider.h"
#include "util.h"

/* A token answer is a flat object; anything deeper is not one of ours. */
#define JSON_DEPTH_MAX 8
/* How much of a provider's error_description we quote. */
#define DESC_MAX 400

static oauth_post_fn post_fn = oauth_http_curl_post;
static void *post_ctx;

void
oauth_http_set_post(oauth_post_fn fn, void *ctx)
{
	post_fn = fn != NULL ? fn : oauth_http_curl_post;
	post_ctx = fn != NULL ? ctx : NULL;
}

void
oauth_tokens_init(struct oauth_tokens *t)
{
	buf_init_secret(&t->access_token, OAUTH_BODY_MAX);
	buf_init_secret(&t->refresh_token, OAUTH_BODY_MAX);
	buf_init(&t->scope, PROVIDER_SCOPE_MAX);
	buf_init_secret(&t->id_token, OAUTH_BODY_MAX);
	t->expires_in = 0;
}

void
oauth_tokens_release(struct oauth_tokens *t)
{
	if (t == NULL) {
		return;
	}
	buf_release(&t->access_token);
	buf_release(&t->refresh_token);
	buf_release(&t->scope);
	buf_release(&t->id_token);
	t->expires_in = 0;
}

static void
tokens_reset(struct oauth_tokens *t)
{
	buf_reset(&t->access_token);
	buf_reset(&t->refresh_token);
	buf_reset(&t->scope);
	buf_reset(&t->id_token);
	t->expires_in = 0;
}

enum err
oauth_form_escape(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t start = out->len;
	enum err e = ERR_OK;

	for (; *s != '\0' && e == ERR_OK; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			e = buf_putc(out, (char)c);
		} else {
			char q[3] = { '%', hex[c >> 4], hex[c & 15] };

			e = buf_append(out, q, 3);
		}
	}
	if (e != ERR_OK) {
		buf_truncate(out, start);
	}
	return e;
}

static MUST_CHECK enum err
form_field(struct buf *form, const char *name, const char *value)
{
	enum err e;

	if (form->len > 0) {
		e = buf_putc(form, '&');
		if (e != ERR_OK) {
			return e;
		}
	}
	e = buf_append_str(form, name);
	if (e == ERR_OK) {
		e = buf_putc(form, '=');
	}
	if (e == ERR_OK) {
		e = oauth_form_escape(form, value);
	}
	return e;
}

/*
 * Copy provider text into a message safely: printable ASCII only, bounded.
 * The text is not a secret but it is untrusted.
 */
static void
sanitize(char *dst, size_t size, const char *src)
{
	size_t i = 0;

	for (; src != NULL && *src != '\0' && i + 1 < size; src++) {
		unsigned char c = (unsigned char)*src;

		dst[i++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (size > 0) {
		dst[i] = '\0';
	}
}

/* --- the libcurl transport ------------------------------------------- */

struct sink {
	struct buf *body;
	int overflow;
};

static size_t
on_write(char *p, size_t size, size_t n, void *ud)
{
	struct sink *s = ud;
	size_t len = size * n;

	if (buf_append(s->body, p, len) != ERR_OK) {
		s->overflow = 1;
		return 0;	/* makes libcurl stop with CURLE_WRITE_ERROR */
	}
	return len;
}

enum err
oauth_http_curl_post(void *ctx, const struct oauth_post *req,
	long *ret_status, struct buf *ret_body, struct errinfo *reterr)
{
	char errbuf[CURL_ERROR_SIZE];
	struct curl_slist *hdrs = NULL;
	struct sink sink = { ret_body, 0 };
	struct http_ca ca = { req->ca_file, 0 };
	CURL *h = NULL;
	CURLcode rc;
	long status = 0;
	long cto = req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 15000;
	long to = req->timeout_ms > 0 ? req->timeout_ms : 60000;
	enum err e = ERR_OK;

	(void)ctx;
	if (http_curl_init(reterr) != ERR_OK) {
		return ERR_INTERNAL;
	}
	h = curl_easy_init();
	if (h == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "cannot create a curl handle");
	}
	errbuf[0] = '\0';
	hdrs = curl_slist_append(hdrs,
		"Content-Type: application/x-www-form-urlencoded");
	if (hdrs != NULL) {
		struct curl_slist *t = curl_slist_append(hdrs,
			"Accept: application/json");

		if (t == NULL) {
			curl_slist_free_all(hdrs);
			hdrs = NULL;
		}
	}
	if (hdrs == NULL) {
		e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
		goto out;
	}

	/* the common options first; a failing setopt aborts the request */
#define SETOPT(opt, val) HTTP_SETOPT(rc, h, opt, val)
	rc = http_curl_secure(h, req->url, cto, to, errbuf, &ca);
	SETOPT(CURLOPT_HTTPHEADER, hdrs);
	SETOPT(CURLOPT_POST, 1L);
	/* libcurl reads the body from our (wiped) buffer; no copy is made */
	SETOPT(CURLOPT_POSTFIELDS, buf_cstr(req->form));
	SETOPT(CURLOPT_POSTFIELDSIZE, (long)req->form->len);
	SETOPT(CURLOPT_WRITEFUNCTION, on_write);
	SETOPT(CURLOPT_WRITEDATA, &sink);
#undef SETOPT
	if (rc != CURLE_OK) {
		e = errinfo_set(reterr, ERR_INTERNAL,
			"cannot configure the token request: %s",
			curl_easy_strerror(rc));
		goto out;
	}

	rc = curl_easy_perform(h);
	if (rc == CURLE_UNSUPPORTED_PROTOCOL) {
		e = errinfo_set(reterr, ERR_CONFIG,
			"token endpoint '%s' is not an https URL "
			"(check oauth2_token_endpoint)", req->url);
		goto out;
	}
	if (rc == CURLE_SSL_CACERT_BADFILE && ca.blame_file) {
		/* on_ssl_ctx failed, or the file was the only bundle */
		e = errinfo_set(reterr, ERR_CONFIG,
			"cannot load oauth2_ca_file '%s'", req->ca_file);
		goto out;
	}
	if (rc == CURLE_SSL_CACERT_BADFILE) {
		e = errinfo_set(reterr, ERR_CONFIG,
			"cannot load the system's CA certificates for the token "
			"endpoint: %s (install ca-certificates, or set "
			"oauth2_ca_file)", errbuf[0] != '\0' ? errbuf :
			curl_easy_strerror(rc));
		goto out;
	}
	if (rc == CURLE_WRITE_ERROR && sink.overflow) {
		e = errinfo_set(reterr, ERR_TOKEN_TEMP,
			"token endpoint '%s' sent more than %d bytes",
			req->url, OAUTH_BODY_MAX);
		goto out;
	}
	if (rc != CURLE_OK) {
		e = errinfo_set(reterr, ERR_TOKEN_TEMP,
			"token endpoint '%s' unreachable: %s", req->url,
			errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	*ret_status = status;
out:
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	return e;
}

/* --- the answer ------------------------------------------------------- */

/* Wipe a JSON string value that held a secret before json-c frees it. */
static void
wipe_json_string(struct json_object *o)
{
	if (o != NULL && json_object_is_type(o, json_type_string)) {
		util_wipe((void *)json_object_get_string(o),
			(size_t)json_object_get_string_len(o));
	}
}

static const char *
get_string(struct json_object *root, const char *key, int *ret_bad)
{
	struct json_object *v;

	if (!json_object_object_get_ex(root, key, &v) || v == NULL) {
		return NULL;
	}
	if (!json_object_is_type(v, json_type_string)) {
		*ret_bad = 1;
		return NULL;
	}
	return json_object_get_string(v);
}

/*
 * A token we would store must be visible ASCII without spaces (RFC 6749
 * appendix A.12/A.17 allow VSCHAR; providers never send spaces): a control
 * character or an embedded NUL would break the cache file's line format and
 * the SASL payload framing (^A separators).  Absent keys pass.
 */
static int
token_text_ok(struct json_object *root, const char *key)
{
	struct json_object *v;
	const char *s;
	int i, n;

	if (!json_object_object_get_ex(root, key, &v) ||
	    !json_object_is_type(v, json_type_string)) {
		return 1;
	}
	s = json_object_get_string(v);
	n = json_object_get_string_len(v);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f) {
			return 0;
		}
	}
	return 1;
}

/* expires_in as an integer or a decimal string; -1 when malformed. */
static long
get_expires(struct json_object *root)
{
	struct json_object *v;
	long n;

	if (!json_object_object_get_ex(root, "expires_in", &v) || v == NULL) {
		return 3600;	/* RECOMMENDED, not required: assume an hour */
	}
	if (json_object_is_type(v, json_type_int)) {
		int64_t i = json_object_get_int64(v);

		return (i >= 0 && i <= 10L * 366 * 86400) ? (long)i : -1;
	}
	if (json_object_is_type(v, json_type_string) &&
	    util_parse_long(json_object_get_string(v), 0, 10L * 366 * 86400,
		    &n) == 0) {
		return n;
	}
	return -1;
}

static MUST_CHECK enum err
error_answer(const char *account, long status, const char *code,
	const char *desc_raw, struct errinfo *reterr)
{
	char desc[DESC_MAX + 8];
	char sep[3] = "";
	char c[64];

	sanitize(c, sizeof(c), code);
	sanitize(desc, sizeof(desc), desc_raw);
	if (desc[0] != '\0') {
		util_strlcpy(sep, ": ", sizeof(sep));
	}
	if (strcmp(code, "invalid_grant") == 0) {
		return errinfo_set(reterr, ERR_REAUTH,
			"re-authorization needed: run `oasmtp-token authorize %s` "
			"(token endpoint said invalid_grant%s%s)",
			account, sep, desc);
	}
	if (strcmp(code, "invalid_client") == 0 ||
	    strcmp(code, "unauthorized_client") == 0) {
		return errinfo_set(reterr, ERR_CONFIG,
			"token endpoint rejected the client (%s%s%s): check "
			"oauth2_client_id and oauth2_client_secret of account '%s'",
			c, sep, desc, account);
	}
	if (strcmp(code, "invalid_scope") == 0) {
		return errinfo_set(reterr, ERR_CONFIG,
			"token endpoint rejected the scope (invalid_scope%s%s): "
			"check oauth2_scope of account '%s'", sep, desc, account);
	}
	if (strcmp(code, "temporarily_unavailable") == 0 ||
	    strcmp(code, "server_error") == 0 || status >= 500) {
		return errinfo_set(reterr, ERR_TOKEN_TEMP,
			"token endpoint failed temporarily (%s%s%s)", c, sep, desc);
	}
	return errinfo_set(reterr, ERR_CONFIG,
		"token endpoint refused the request (HTTP %ld, %s%s%s): check "
		"oauth2_token_endpoint and oauth2_client_id of account '%s'",
		status, c, sep, desc, account);
}

static int
status_is_temporary(long status)
{
	return status == 408 || status == 429 || status >= 500;
}

enum err
oauth_parse_response(const char *account, long status, const char *body,
	size_t len, struct oauth_tokens *ret, struct errinfo *reterr)
{
	struct json_tokener *tok = NULL;
	struct json_object *root = NULL;
	struct json_object *v;
	const char *at, *rt, *type, *scope, *code;
	int bad = 0;
	enum err e;

	tokens_reset(ret);
	if (account == NULL) {
		account = "ACCOUNT";
	}
	if (len > OAUTH_BODY_MAX) {
		return errinfo_set(reterr, ERR_TOKEN_TEMP,
			"token endpoint answer too large (%zu bytes)", len);
	}
	tok = json_tokener_new_ex(JSON_DEPTH_MAX);
	if (tok == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	root = json_tokener_parse_ex(tok, body, (int)len);
	if (root != NULL) {
		/* only whitespace may follow the object */
		size_t end = json_tokener_get_parse_end(tok);

		while (end < len && (body[end] == ' ' || body[end] == '\t' ||
			    body[end] == '\r' || body[end] == '\n')) {
			end++;
		}
		if (end != len) {
			json_object_put(root);
			root = NULL;
		}
	}
	json_tokener_free(tok);

	if (status_is_temporary(status)) {
		code = NULL;
		if (root != NULL && json_object_is_type(root, json_type_object)) {
			code = get_string(root, "error", &bad);
		}
		e = errinfo_set(reterr, ERR_TOKEN_TEMP,
			"token endpoint failed temporarily (HTTP %ld%s%s)", status,
			code != NULL ? ", " : "", code != NULL ? code : "");
		goto out;
	}
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		if (status == 404 || status == 405) {
			e = errinfo_set(reterr, ERR_CONFIG,
				"token endpoint answered HTTP %ld: check "
				"oauth2_token_endpoint of account '%s'",
				status, account);
		} else {
			e = errinfo_set(reterr, ERR_TOKEN_TEMP,
				"token endpoint sent a non-JSON answer (HTTP %ld); "
				"a proxy or an outage?", status);
		}
		goto out;
	}

	code = get_string(root, "error", &bad);
	if (code != NULL) {
		int dbad = 0;
		const char *desc = get_string(root, "error_description", &dbad);

		e = error_answer(account, status, code, desc, reterr);
		goto out;
	}
	if (status < 200 || status > 299) {
		e = errinfo_set(reterr, ERR_CONFIG,
			"token endpoint answered HTTP %ld without an error code: "
			"check oauth2_token_endpoint of account '%s'",
			status, account);
		goto out;
	}

	at = get_string(root, "access_token", &bad);
	type = get_string(root, "token_type", &bad);
	rt = get_string(root, "refresh_token", &bad);
	scope = get_string(root, "scope", &bad);
	ret->expires_in = get_expires(root);
	if (bad || at == NULL || at[0] == '\0' || type == NULL ||
	    ret->expires_in < 0 || (rt != NULL && rt[0] == '\0')) {
		e = errinfo_set(reterr, ERR_TOKEN_TEMP,
			"token endpoint sent a malformed answer (missing or "
			"mistyped access_token, token_type, expires_in or "
			"refresh_token)");
		goto out;
	}
	if (!token_text_ok(root, "access_token") ||
	    !token_text_ok(root, "refresh_token")) {
		e = errinfo_set(reterr, ERR_TOKEN_TEMP,
			"token endpoint sent a token with spaces, control "
			"characters or non-ASCII bytes");
		goto out;
	}
	if (util_strcasecmp(type, "Bearer") != 0) {
		char t[64];

		sanitize(t, sizeof(t), type);
		e = errinfo_set(reterr, ERR_CONFIG,
			"token endpoint issued a '%s' token, only Bearer is "
			"supported: check oauth2_token_endpoint of account '%s'",
			t, account);
		goto out;
	}
	e = buf_append_str(&ret->access_token, at);
	if (e == ERR_OK && rt != NULL) {
		e = buf_append_str(&ret->refresh_token, rt);
	}
	if (e == ERR_OK && scope != NULL) {
		e = buf_append_str(&ret->scope, scope);
	}
	if (e == ERR_OK) {
		int ibad = 0;
		const char *idt = get_string(root, "id_token", &ibad);

		if (idt != NULL) {
			e = buf_append_str(&ret->id_token, idt);
		}
	}
	if (e != ERR_OK) {
		e = errinfo_set(reterr, e == ERR_LIMIT ? ERR_TOKEN_TEMP : e,
			"token endpoint answer does not fit");
	}
out:
	if (e != ERR_OK) {
		tokens_reset(ret);
	}
	if (root != NULL) {
		if (json_object_object_get_ex(root, "access_token", &v)) {
			wipe_json_string(v);
		}
		if (json_object_object_get_ex(root, "refresh_token", &v)) {
			wipe_json_string(v);
		}
		if (json_object_object_get_ex(root, "id_token", &v)) {
			wipe_json_string(v);
		}
		json_object_put(root);
	}
	return e;
}

/* Empty ret and check what every grant needs: the endpoint, the client id. */
static MUST_CHECK enum err
begin_grant(const struct oauth_request *req, struct oauth_tokens *ret,
	struct errinfo *reterr)
{
	tokens_reset(ret);
	if (req->token_endpoint == NULL || req->token_endpoint[0] == '\0') {
		return errinfo_set(reterr, ERR_CONFIG,
			"account '%s' has no oauth2_token_endpoint: set it, or "
			"an oauth2_provider with a preset (see oasmtprc(5))",
			req->account);
	}
	if (req->client_id == NULL || req->client_id[0] == '\0') {
		return errinfo_set(reterr, ERR_CONFIG,
			"account '%s' has no oauth2_client_id", req->account);
	}
	return ERR_OK;
}

/* The client's fields of a grant's form: client_id, client_secret if any. */
static MUST_CHECK enum err
client_fields(struct buf *form, const struct oauth_request *req)
{
	enum err e = form_field(form, "client_id", req->client_id);

	if (e == ERR_OK && req->client_secret != NULL &&
	    req->client_secret[0] != '\0') {
		e = form_field(form, "client_secret", req->client_secret);
	}
	return e;
}

/*
 * POST a grant's form to req's token endpoint and parse the answer;
 * built is the status of building the form (ERR_LIMIT: it did not fit).
 */
static MUST_CHECK enum err
post_grant(const struct oauth_request *req, enum err built,
	const struct buf *form, struct oauth_tokens *ret, struct errinfo *reterr)
{
	struct oauth_post post;
	struct buf body;
	long status = 0;
	enum err e;

	if (built != ERR_OK) {
		return errinfo_set(reterr, built == ERR_LIMIT ? ERR_CONFIG :
			built, "token request for account '%s' too large",
			req->account);
	}
	buf_init_secret(&body, OAUTH_BODY_MAX);
	post.url = req->token_endpoint;
	post.form = form;
	post.ca_file = req->ca_file;
	post.connect_timeout_ms = req->connect_timeout_ms;
	post.timeout_ms = req->timeout_ms;
	e = post_fn(post_ctx, &post, &status, &body, reterr);
	if (e == ERR_OK) {
		e = oauth_parse_response(req->account, status, buf_cstr(&body),
			body.len, ret, reterr);
	}
	buf_release(&body);
	return e;
}

enum err
oauth_refresh(const struct oauth_request *req, struct oauth_tokens *ret,
	struct errinfo *reterr)
{
	struct buf form;
	enum err e;

	e = begin_grant(req, ret, reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (req->refresh_token == NULL || req->refresh_token[0] == '\0') {
		return errinfo_set(reterr, ERR_REAUTH,
			"re-authorization needed: run `oasmtp-token authorize %s` "
			"(no refresh token stored)", req->account);
	}
	buf_init_secret(&form, OAUTH_BODY_MAX);
	e = form_field(&form, "grant_type", "refresh_token");
	if (e == ERR_OK) {
		e = form_field(&form, "refresh_token", req->refresh_token);
	}
	if (e == ERR_OK) {
		e = client_fields(&form, req);
	}
	if (e == ERR_OK && req->scope != NULL && req->scope[0] != '\0') {
		e = form_field(&form, "scope", req->scope);
	}
	e = post_grant(req, e, &form, ret, reterr);
	buf_release(&form);
	return e;
}

/* --- the authorization_code grant and generic posts ------------------------- */

enum err
oauth_form_field(struct buf *form, const char *name, const char *value)
{
	return form_field(form, name, value);
}

enum err
oauth_http_post_form(const struct oauth_post *req, long *ret_status,
	struct buf *ret_body, struct errinfo *reterr)
{
	return post_fn(post_ctx, req, ret_status, ret_body, reterr);
}

enum err
oauth_exchange_code(const struct oauth_request *req, struct oauth_tokens *ret,
	struct errinfo *reterr)
{
	struct buf form;
	enum err e;

	e = begin_grant(req, ret, reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (req->code == NULL || req->code[0] == '\0' ||
	    req->redirect_uri == NULL) {
		return errinfo_set(reterr, ERR_INTERNAL,
			"authorization code exchange without a code");
	}
	buf_init_secret(&form, OAUTH_BODY_MAX);
	e = form_field(&form, "grant_type", "authorization_code");
	if (e == ERR_OK) {
		e = form_field(&form, "code", req->code);
	}
	if (e == ERR_OK) {
		e = form_field(&form, "redirect_uri", req->redirect_uri);
	}
	if (e == ERR_OK && req->code_verifier != NULL) {
		e = form_field(&form, "code_verifier", req->code_verifier);
	}
	if (e == ERR_OK) {
		e = client_fields(&form, req);
	}
	e = post_grant(req, e, &form, ret, reterr);
	if (e == ERR_REAUTH) {
		/* not a lost grant: this code itself was refused */
		const char *said = strstr(errinfo_msg(reterr),
			"(token endpoint said");
		char detail[DESC_MAX + 64];

		util_strlcpy(detail, said != NULL ? said : "", sizeof(detail));
		e = errinfo_set(reterr, ERR_AUTH,
			"the token endpoint refused the authorization code: it "
			"expired or was used already, or the PKCE verifier or "
			"redirect URI did not match; run authorize again %s",
			detail);
	}
	buf_release(&form);
	return e;
}
