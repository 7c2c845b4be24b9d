/*
 * api_http.h - submit a message over HTTPS to Microsoft Graph or the
 * Gmail API (oasmtprc(5), transport), with libcurl; classify the answer
 * with json-c.  Part of oasmtp-token (`oasmtp-token send ACCOUNT`).
 *
 * Requests (as documented by Microsoft and Google):
 *   Graph   POST {api_url}                       Content-Type: text/plain
 *           body: the MIME message, base64       202 Accepted = sent
 *           A request above 4 MB (the base64 text) is refused before
 *           anything is sent (ERR_SMTP_PERM, exit 69): the large-message
 *           path of Graph (a draft plus attachment upload sessions) would
 *           rebuild the message, and oasmtp sends the bytes it was given.
 *   Gmail   POST {api_url}?uploadType=media      Content-Type: message/rfc822
 *           body: the message as is              200 OK = sent
 *           Above 5 MB a resumable upload: POST ?uploadType=resumable
 *           with X-Upload-Content-Type/-Length, 200 + Location, then PUT
 *           the bytes to that Location.  Above 35 MB refused before
 *           anything is sent (ERR_SMTP_PERM).
 *   Both    Authorization: Bearer TOKEN; https only; the peer verified
 *           against the system trust plus oauth2_ca_file (http_curl.h).
 *
 * Answers (api_http_classify):
 *   2xx                 ERR_OK
 *   401                 ERR_AUTH (the caller refreshes once and retries)
 *   403                 ERR_AUTH naming the missing permission (Mail.Send,
 *                       gmail.send) - except Gmail's rate-limit reasons,
 *                       which are ERR_SMTP_TEMP
 *   400                 ERR_DATA (the message: MIME, headers, recipients)
 *                       or ERR_SMTP_PERM (the mailbox may not send it),
 *                       with the API's own message
 *   413, other 4xx      ERR_SMTP_PERM
 *   408, 429, 5xx       ERR_SMTP_TEMP, Retry-After kept
 * Transport failures: ERR_NET (connect, DNS, reset), ERR_TIMEOUT,
 * ERR_TLS (handshake, verification) - all temporary; ERR_CONFIG for a
 * URL that is not https or an unreadable oauth2_ca_file.
 *
 * The token is only put in the Authorization header; nothing here logs it.
 * Nothing here prints: -v lines go to the caller's trace callback.
 */
#ifndef OASMTP_API_HTTP_H
#define OASMTP_API_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "buf.h"
#include "err.h"

/* The largest answer body kept (error JSON, the message resource). */
#define API_BODY_MAX (64 * 1024)

struct api_http_request {
	enum api_kind kind;
	const char *url;
	const char *ca_file;		/* NULL: system trust only */
	int fd;				/* the message: size bytes at offset */
	uint64_t offset;
	uint64_t size;
	long connect_timeout_ms;	/* <= 0: 15 s */
	long timeout_ms;		/* each request; <= 0: 300 s */
	/* -v: one line per request and answer, no secret; may be NULL */
	void (*trace)(void *ctx, const char *line);
	void *trace_ctx;
};

struct api_http_answer {
	long status;			/* 0: no HTTP answer */
	long retry_after;		/* seconds, 0 when none */
	struct buf body;		/* at most API_BODY_MAX */
};

void api_http_answer_init(struct api_http_answer *a);
void api_http_answer_release(struct api_http_answer *a);

/*
 * Refuse a message the API cannot take, before anything is sent:
 * ERR_SMTP_PERM naming the limit, else ERR_OK.
 */
enum err api_http_check_size(enum api_kind kind, uint64_t size,
	struct errinfo *reterr);

/*
 * Send the message with token.  ERR_OK when an HTTP answer arrived (ans
 * holds it, whatever its status; classify it); else the transport error.
 */
enum err api_http_send(const struct api_http_request *rq, const char *token,
	struct api_http_answer *ans, struct errinfo *reterr);

/*
 * Turn an answer into an error code and a one-line message for account
 * (see the top of this file).  Pure: exposed for tests.
 */
enum err api_http_classify(enum api_kind kind, const char *account,
	const struct api_http_answer *ans, struct errinfo *reterr);

#endif
