/*
 * api_send.h - submit one message over an HTTPS API (Microsoft Graph or
 * the Gmail API) by running `oasmtp-token send ACCOUNT`, the program that
 * links the HTTP client (doc/design.md, How to add ... A transport).
 *
 * The exchange, both sides records (record.h):
 *
 *   stdin of the helper: an unlinked temporary file holding
 *     oasmtp-api-send 1
 *     api graph|gmail-api
 *     size N              bytes of the message that follows
 *     verbose N           -v level: the helper writes its redacted HTTP
 *                         transcript to stderr (ours) when > 0
 *     end
 *     <N bytes: the message as it would go over SMTP, with a Bcc: field
 *      first naming every envelope recipient that is not in To/Cc (the
 *      APIs take the recipients from the header and drop the Bcc:)>
 *
 *   stdout of the helper: the outcome
 *     oasmtp-api-result 1
 *     err N               enum err (0: the API accepted the message)
 *     status N            HTTP status of the last answer, 0 when none
 *     retry-after N       seconds the API asked to wait, 0 when none
 *     id ID               (optional) the API's id of the sent message
 *     message TEXT        one line saying what happened (no secret)
 *     end
 *
 * The access token never leaves the helper: no secret in argv, the
 * environment, the request file or the answer.  Nothing here prints.
 */
#ifndef OASMTP_API_SEND_H
#define OASMTP_API_SEND_H

#include "account.h"
#include "api.h"
#include "err.h"

/* The result record oasmtp-token send writes (outcome, reply, error). */
#define API_SEND_RESULT_MAX 8192

struct buf;
struct envelope;
struct record_spec;
struct submit_body;

extern const struct record_spec api_send_request_spec;
extern const struct record_spec api_send_result_spec;

struct api_send_result {
	int status;		/* HTTP status of the last answer, 0 when none */
	long retry_after;	/* seconds, 0 when none */
	char id[128];		/* the API's message id, "" when none */
};

/*
 * The recipients of env that are in neither To: nor Cc: of the header
 * block head[0..len), as a "Bcc: a, b" field with CRLF (folded) appended
 * to out; nothing when there are none.  ERR_NOTSUPP when To: or Cc: names
 * an address that is not an envelope recipient (the API would deliver to
 * it); ERR_LIMIT / ERR_NOMEM.
 */
enum err api_send_bcc_field(const char *head, size_t len,
	const struct envelope *env, struct buf *out, struct errinfo *reterr);

/*
 * Send body (the wire form of a prepared message: a send's spool, or a
 * queue entry) to env's recipients through kind's API for acc.
 * config_file is passed on to the helper (-C), verbose is the -v level.
 * ERR_OK: the API accepted it (ret->status 202 or 200).  Errors: the
 * helper's classification (api_http.h in src/token: ERR_AUTH,
 * ERR_REAUTH, ERR_SMTP_PERM, ERR_DATA, ERR_SMTP_TEMP, ERR_NET,
 * ERR_TIMEOUT, ERR_TLS, ERR_TOKEN_TEMP, ERR_CONFIG ...); ERR_TIMEOUT when
 * the helper ran past its deadline; ERR_INTERNAL when it could not be
 * run or answered nonsense; ERR_IO for the temporary file.
 */
enum err api_send_message(const struct account *acc, const char *config_file,
	enum api_kind kind, const struct submit_body *body,
	const struct envelope *env, int verbose, struct api_send_result *ret,
	struct errinfo *reterr);

#endif
