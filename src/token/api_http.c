/* api_http.c - Microsoft Graph sendMail and Gmail messages.send over
 * libcurl (api_http.h). */
#include "api_http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "http_curl.h"
#include "provider.h"
#include "util.h"

#define DETAIL_MAX 300

void
api_http_answer_init(struct api_http_answer *a)
{
	a->status = 0;
	a->retry_after = 0;
	buf_init(&a->body, API_BODY_MAX);
}

void
api_http_answer_release(struct api_http_answer *a)
{
	buf_release(&a->body);
}

static uint64_t
graph_request_size(uint64_t size)
{
	return (size + 2) / 3 * 4;
}

enum err
api_http_check_size(enum api_kind kind, uint64_t size, struct errinfo *reterr)
{
	if (kind == API_GRAPH && graph_request_size(size) >
	    (uint64_t)API_GRAPH_MAX_REQUEST) {
		return errinfo_set(reterr, ERR_SMTP_PERM, "the message "
			"(%llu bytes, %llu as base64) is above Microsoft "
			"Graph's 4 MB request limit for sendMail; nothing was "
			"sent (send it over SMTP, or make it smaller)",
			(unsigned long long)size,
			(unsigned long long)graph_request_size(size));
	}
	if (kind == API_GMAIL && size > (uint64_t)API_GMAIL_MAX_MESSAGE) {
		return errinfo_set(reterr, ERR_SMTP_PERM, "the message "
			"(%llu bytes) is above the Gmail API's 35 MB limit; "
			"nothing was sent", (unsigned long long)size);
	}
	return ERR_OK;
}

/* ---- one request ---- */

struct xfer {
	const struct api_http_request *rq;
	const char *mem;		/* body from memory, or NULL: from fd */
	uint64_t len, pos;
	struct api_http_answer *ans;
	int overflow;
	int read_error;
	char location[2048];
};

static size_t
on_read(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t want = size * n;
	ssize_t r;

	if (x->len - x->pos < want) {
		want = (size_t)(x->len - x->pos);
	}
	if (want == 0) {
		return 0;
	}
	if (x->mem != NULL) {
		memcpy(p, x->mem + x->pos, want);
		x->pos += want;
		return want;
	}
	do {
		r = pread(x->rq->fd, p, want, (off_t)(x->rq->offset + x->pos));
	} while (r < 0 && errno == EINTR);
	if (r <= 0) {
		x->read_error = r < 0 ? errno : EIO;
		return CURL_READFUNC_ABORT;
	}
	x->pos += (uint64_t)r;
	return (size_t)r;
}

static size_t
on_write(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;

	if (buf_append(&x->ans->body, p, len) != ERR_OK) {
		x->overflow = 1;
		return 0;
	}
	return len;
}

/* Retry-After (seconds; an HTTP date counts as a minute) and Location. */
static size_t
on_header(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n, k = len;

	while (k > 0 && (p[k - 1] == '\r' || p[k - 1] == '\n')) {
		k--;
	}
	if (k > 12 && util_strncasecmp(p, "retry-after:", 12) == 0) {
		size_t i = 12;
		long v = 0;

		while (i < k && p[i] == ' ') {
			i++;
		}
		if (i < k && p[i] >= '0' && p[i] <= '9') {
			for (; i < k && p[i] >= '0' && p[i] <= '9' && v < 864000;
			    i++) {
				v = v * 10 + (p[i] - '0');
			}
		} else {
			v = 60;
		}
		x->ans->retry_after = v;
	} else if (k > 9 && util_strncasecmp(p, "location:", 9) == 0) {
		size_t i = 9;

		while (i < k && p[i] == ' ') {
			i++;
		}
		if (k - i < sizeof(x->location)) {
			memcpy(x->location, p + i, k - i);
			x->location[k - i] = '\0';
		}
	} else if (k >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		/* a new answer (after 100 Continue): forget the last one's */
		x->ans->retry_after = 0;
		x->location[0] = '\0';
	}
	return len;
}

static void
api_trace(const struct api_http_request *rq, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
api_trace(const struct api_http_request *rq, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (rq->trace == NULL) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	rq->trace(rq->trace_ctx, line);
}

static enum err
transport_error(CURLcode rc, const char *url, const char *errbuf,
	const struct xfer *x, const struct http_ca *ca, struct errinfo *reterr)
{
	const char *why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);

	switch (rc) {
	case CURLE_UNSUPPORTED_PROTOCOL:
		return errinfo_set(reterr, ERR_CONFIG, "api_url '%s' is not an "
			"https URL", url);
	case CURLE_SSL_CACERT_BADFILE:
		if (ca->blame_file) {
			return errinfo_set(reterr, ERR_CONFIG, "cannot load "
				"oauth2_ca_file '%s'", ca->file);
		}
		return errinfo_set(reterr, ERR_TLS, "cannot load the system's "
			"CA certificates for %s: %s", url, why);
	case CURLE_OPERATION_TIMEDOUT:
		return errinfo_set(reterr, ERR_TIMEOUT, "%s: no answer in "
			"time: %s", url, why);
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
#if LIBCURL_VERSION_NUM < 0x073e00
	case CURLE_SSL_CACERT:
#endif
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
		return errinfo_set(reterr, ERR_TLS, "TLS with %s failed: %s",
			url, why);
	case CURLE_ABORTED_BY_CALLBACK:
	case CURLE_READ_ERROR:
		return errinfo_set(reterr, ERR_IO, "cannot read the message: "
			"%s", strerror(x->read_error ? x->read_error : EIO));
	case CURLE_WRITE_ERROR:
		if (x->overflow) {
			return errinfo_set(reterr, ERR_PROTO, "%s answered with "
				"more than %d bytes", url, API_BODY_MAX);
		}
		break;
	default:
		break;
	}
	return errinfo_set(reterr, ERR_NET, "cannot reach %s: %s", url, why);
}

/*
 * One request: method ("POST" or "PUT") to url with extra headers, the
 * body x->len bytes (from x->mem or the message file).  ERR_OK when an
 * answer arrived.
 */
static enum err
perform(const struct api_http_request *rq, const char *method, const char *url,
	const char *const *headers, const char *token, struct xfer *x,
	struct errinfo *reterr)
{
	char errbuf[CURL_ERROR_SIZE];
	struct http_ca ca = { rq->ca_file, 0 };
	struct curl_slist *hdrs = NULL, *t;
	struct buf auth;
	CURL *h;
	CURLcode rc;
	enum err e = ERR_OK;
	size_t i;

	if (http_curl_init(reterr) != ERR_OK) {
		return ERR_INTERNAL;
	}
	h = curl_easy_init();
	if (h == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "cannot create a curl "
			"handle");
	}
	errbuf[0] = '\0';
	buf_init_secret(&auth, strlen(token) + 64);
	if (buf_printf(&auth, "Authorization: Bearer %s", token) != ERR_OK) {
		e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
		goto out;
	}
	/* libcurl copies header strings; its copy is freed, ours wiped */
	for (i = 0; headers[i] != NULL && e == ERR_OK; i++) {
		t = curl_slist_append(hdrs, headers[i]);
		if (t == NULL) {
			e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
		hdrs = t != NULL ? t : hdrs;
	}
	t = e == ERR_OK ? curl_slist_append(hdrs, auth.data) : NULL;
	if (t == NULL) {
		e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
		goto out;
	}
	hdrs = t;
	x->ans->status = 0;
	x->ans->retry_after = 0;
	buf_reset(&x->ans->body);
	x->pos = 0;
	x->location[0] = '\0';
	rc = http_curl_secure(h, url, rq->connect_timeout_ms,
		rq->timeout_ms > 0 ? rq->timeout_ms : 300000, errbuf, &ca);
#define SETOPT(opt, val) HTTP_SETOPT(rc, h, opt, val)
	SETOPT(CURLOPT_HTTPHEADER, hdrs);
	SETOPT(CURLOPT_CUSTOMREQUEST, method);
	SETOPT(CURLOPT_UPLOAD, 1L);
	SETOPT(CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->len);
	SETOPT(CURLOPT_READFUNCTION, on_read);
	SETOPT(CURLOPT_READDATA, x);
	SETOPT(CURLOPT_WRITEFUNCTION, on_write);
	SETOPT(CURLOPT_WRITEDATA, x);
	SETOPT(CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(CURLOPT_HEADERDATA, x);
#undef SETOPT
	if (rc != CURLE_OK) {
		e = errinfo_set(reterr, ERR_INTERNAL, "cannot configure the "
			"request: %s", curl_easy_strerror(rc));
		goto out;
	}
	api_trace(rq, "API> %s %s (%llu bytes; Authorization: Bearer <redacted, "
		"%zu bytes>)", method, url, (unsigned long long)x->len,
		strlen(token));
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		e = transport_error(rc, url, errbuf, x, &ca, reterr);
		api_trace(rq, "API! %s", reterr != NULL ? reterr->msg : "failed");
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->ans->status);
	if (x->ans->retry_after > 0) {
		api_trace(rq, "API< %ld (Retry-After: %ld) %.300s", x->ans->status,
			x->ans->retry_after, buf_cstr(&x->ans->body));
	} else {
		api_trace(rq, "API< %ld %.300s", x->ans->status,
			buf_cstr(&x->ans->body));
	}
out:
	curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	buf_release(&auth);
	return e;
}

static enum err
send_graph(const struct api_http_request *rq, const char *token,
	struct api_http_answer *ans, struct errinfo *reterr)
{
	static const char *const headers[] = {
		"Content-Type: text/plain", "Accept: application/json",
		"Expect:", NULL,
	};
	struct xfer x;
	unsigned char *raw = NULL;
	char *b64 = NULL;
	size_t got = 0;
	ssize_t r;
	enum err e;

	memset(&x, 0, sizeof(x));
	raw = malloc(rq->size > 0 ? (size_t)rq->size : 1);
	b64 = malloc((size_t)graph_request_size(rq->size) + 1);
	if (raw == NULL || b64 == NULL) {
		e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
		goto out;
	}
	while (got < rq->size) {
		r = pread(rq->fd, raw + got, (size_t)rq->size - got,
			(off_t)(rq->offset + got));
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			e = errinfo_set(reterr, ERR_IO, "cannot read the "
				"message: %s", r < 0 ? strerror(errno) :
				"unexpected end of file");
			goto out;
		}
		got += (size_t)r;
	}
	x.len = (uint64_t)EVP_EncodeBlock((unsigned char *)b64, raw,
		(int)rq->size);
	x.mem = b64;
	x.rq = rq;
	x.ans = ans;
	e = perform(rq, "POST", rq->url, headers, token, &x, reterr);
out:
	free(raw);
	free(b64);
	return e;
}

static enum err
with_query(const char *url, const char *query, struct buf *out,
	struct errinfo *reterr)
{
	if (buf_printf(out, "%s%c%s", url, strchr(url, '?') != NULL ? '&' :
	    '?', query) != ERR_OK) {
		return errinfo_set(reterr, ERR_CONFIG, "api_url too long");
	}
	return ERR_OK;
}

static enum err
send_gmail(const struct api_http_request *rq, const char *token,
	struct api_http_answer *ans, struct errinfo *reterr)
{
	static const char *const media[] = {
		"Content-Type: message/rfc822", "Accept: application/json",
		"Expect:", NULL,
	};
	char type_len[64];
	const char *start[] = {
		"Content-Type: application/json; charset=UTF-8",
		"X-Upload-Content-Type: message/rfc822", type_len,
		"Accept: application/json", "Expect:", NULL,
	};
	struct xfer x;
	struct buf url;
	enum err e;

	memset(&x, 0, sizeof(x));
	x.rq = rq;
	x.ans = ans;
	buf_init(&url, PROVIDER_URL_MAX * 2);
	if (rq->size <= (uint64_t)API_GMAIL_SIMPLE_MAX) {
		e = with_query(rq->url, "uploadType=media", &url, reterr);
		x.len = rq->size;
		if (e == ERR_OK) {
			e = perform(rq, "POST", url.data, media, token, &x,
				reterr);
		}
		goto out;
	}
	/* resumable: open the session (no metadata), then PUT the bytes */
	snprintf(type_len, sizeof(type_len), "X-Upload-Content-Length: %llu",
		(unsigned long long)rq->size);
	e = with_query(rq->url, "uploadType=resumable", &url, reterr);
	x.mem = "";
	x.len = 0;
	if (e == ERR_OK) {
		e = perform(rq, "POST", url.data, start, token, &x, reterr);
	}
	if (e != ERR_OK || ans->status < 200 || ans->status > 299) {
		goto out;
	}
	if (x.location[0] == '\0' ||
	    util_strncasecmp(x.location, "https://", 8) != 0) {
		e = errinfo_set(reterr, ERR_PROTO, "the Gmail API opened no "
			"https upload session (no Location in its answer)");
		goto out;
	}
	buf_reset(&url);
	if (buf_append_str(&url, x.location) != ERR_OK) {
		e = errinfo_set(reterr, ERR_PROTO, "upload session URL too long");
		goto out;
	}
	x.mem = NULL;
	x.len = rq->size;
	e = perform(rq, "PUT", url.data, media, token, &x, reterr);
out:
	buf_release(&url);
	return e;
}

enum err
api_http_send(const struct api_http_request *rq, const char *token,
	struct api_http_answer *ans, struct errinfo *reterr)
{
	enum err e = api_http_check_size(rq->kind, rq->size, reterr);

	if (e != ERR_OK) {
		return e;
	}
	switch (rq->kind) {
	case API_GRAPH:
		return send_graph(rq, token, ans, reterr);
	case API_GMAIL:
		return send_gmail(rq, token, ans, reterr);
	default:
		return errinfo_set(reterr, ERR_INTERNAL, "no API to send to");
	}
}

/* ---- the answer ---- */

/* The error object: Graph {"error":{"code":"X","message":"..."}}, Google
 * {"error":{"code":403,"message":"...","errors":[{"reason":"..."}],
 * "status":"PERMISSION_DENIED"}}.  code/reason/message into the bufs. */
static void
error_fields(const struct api_http_answer *ans, char *code, size_t code_len,
	char *reason, size_t reason_len, char *msg, size_t msg_len)
{
	struct json_tokener *tok = json_tokener_new_ex(8);
	struct json_object *root = NULL, *err, *v, *arr;

	code[0] = reason[0] = msg[0] = '\0';
	if (tok == NULL) {
		return;
	}
	if (ans->body.len > 0) {
		root = json_tokener_parse_ex(tok, ans->body.data,
			(int)ans->body.len);
	}
	json_tokener_free(tok);
	if (root == NULL || !json_object_object_get_ex(root, "error", &err) ||
	    !json_object_is_type(err, json_type_object)) {
		json_object_put(root);
		return;
	}
	if (json_object_object_get_ex(err, "code", &v) &&
	    json_object_is_type(v, json_type_string)) {
		util_strlcpy(code, json_object_get_string(v), code_len);
	} else if (json_object_object_get_ex(err, "status", &v) &&
	    json_object_is_type(v, json_type_string)) {
		util_strlcpy(code, json_object_get_string(v), code_len);
	}
	if (json_object_object_get_ex(err, "message", &v) &&
	    json_object_is_type(v, json_type_string)) {
		util_strlcpy(msg, json_object_get_string(v), msg_len);
	}
	if (json_object_object_get_ex(err, "errors", &arr) &&
	    json_object_is_type(arr, json_type_array) &&
	    json_object_array_length(arr) > 0 &&
	    json_object_object_get_ex(json_object_array_get_idx(arr, 0),
	    "reason", &v) && json_object_is_type(v, json_type_string)) {
		util_strlcpy(reason, json_object_get_string(v), reason_len);
	}
	json_object_put(root);
	/* one line, printable */
	for (char *p = msg; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20) {
			*p = ' ';
		}
	}
}

enum err
api_http_classify(enum api_kind kind, const char *account,
	const struct api_http_answer *ans, struct errinfo *reterr)
{
	const char *api = kind == API_GRAPH ? "Microsoft Graph" : "the Gmail API";
	char code[128], reason[128], msg[DETAIL_MAX], detail[DETAIL_MAX + 300];
	long s = ans->status;

	if (s >= 200 && s <= 299) {
		errinfo_init(reterr);
		return ERR_OK;
	}
	error_fields(ans, code, sizeof(code), reason, sizeof(reason), msg,
		sizeof(msg));
	snprintf(detail, sizeof(detail), "%s%s%s%s%s", code,
		reason[0] != '\0' ? "/" : "", reason, code[0] != '\0' ||
		reason[0] != '\0' ? ": " : "", msg[0] != '\0' ? msg :
		"(no message)");
	if (s == 401) {
		return errinfo_set(reterr, ERR_AUTH, "%s refused the access "
			"token (HTTP 401 %s); run 'oasmtp-token authorize %s'",
			api, detail, account);
	}
	if (s == 403 && kind == API_GMAIL && util_strcasecmp(reason,
	    "rateLimitExceeded") != 0 && util_strcasecmp(reason,
	    "userRateLimitExceeded") != 0 && util_strcasecmp(reason,
	    "dailyLimitExceeded") != 0) {
		return errinfo_set(reterr, ERR_AUTH, "the Gmail API refused "
			"to send (HTTP 403 %s): the grant lacks the gmail.send "
			"scope or the Gmail API is not enabled for the client; "
			"enable it and run 'oasmtp-token authorize %s' "
			"(doc/gmail.md)", detail, account);
	}
	if (s == 403 && kind == API_GRAPH) {
		return errinfo_set(reterr, ERR_AUTH, "Microsoft Graph refused "
			"to send (HTTP 403 %s): the grant lacks the Mail.Send "
			"permission, or its consent, or the mailbox may not send "
			"as this sender; have an administrator grant consent and "
			"run 'oasmtp-token authorize %s' (doc/microsoft365.md)",
			detail, account);
	}
	if (s == 408 || s == 429 || s == 403 || s >= 500) {
		if (ans->retry_after > 0) {
			return errinfo_set(reterr, ERR_SMTP_TEMP, "%s is busy "
				"(HTTP %ld %s); try again in %ld s", api, s,
				detail, ans->retry_after);
		}
		return errinfo_set(reterr, ERR_SMTP_TEMP, "%s is not "
			"available (HTTP %ld %s); try again later", api, s,
			detail);
	}
	if (s == 413) {
		return errinfo_set(reterr, ERR_SMTP_PERM, "%s refused the "
			"message as too large (HTTP 413 %s)", api, detail);
	}
	if (s == 400 && strstr(code, "SendAs") == NULL &&
	    strstr(code, "Quota") == NULL &&
	    util_strcasecmp(code, "FAILED_PRECONDITION") != 0 &&
	    util_strcasecmp(reason, "failedPrecondition") != 0) {
		return errinfo_set(reterr, ERR_DATA, "%s refused the message "
			"(HTTP 400 %s)", api, detail);
	}
	return errinfo_set(reterr, ERR_SMTP_PERM, "%s refused the message "
		"(HTTP %ld %s)", api, s, detail);
}
