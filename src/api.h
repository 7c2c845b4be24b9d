/*
 * api.h - the facts of HTTPS submission (oasmtprc(5), transport and
 * api_url; doc/design.md, How to add ... A transport): which API an
 * account's mail goes to, at which URL, with which OAuth2 scope.
 *
 * Pure lookups on an account: no I/O, never prints.  The HTTP client
 * itself lives in oasmtp-token (src/token/api_http.h), which oasmtp runs
 * as a child (api_send.h), so the oasmtp binary links no HTTP library.
 */
#ifndef OASMTP_API_H
#define OASMTP_API_H

#include "account.h"
#include "err.h"

struct buf;

enum api_kind {
	API_NONE = 0,
	API_GRAPH,		/* Microsoft Graph POST .../me/sendMail */
	API_GMAIL,		/* Gmail API POST .../messages/send */
};

#define API_GRAPH_URL "https://graph.microsoft.com/v1.0/me/sendMail"
#define API_GMAIL_URL \
	"https://gmail.googleapis.com/upload/gmail/v1/users/me/messages/send"

/* Graph: the whole request (the message base64-encoded) at most 4 MB. */
#define API_GRAPH_MAX_REQUEST (4L * 1024 * 1024)
/* Gmail API: the message at most 35 MB; media uploads above 5 MB go
 * through a resumable upload session. */
#define API_GMAIL_MAX_MESSAGE (35L * 1024 * 1024)
#define API_GMAIL_SIMPLE_MAX (5L * 1024 * 1024)

/*
 * The API acc's mail goes to when it is not SMTP: transport graph or
 * gmail-api name it; for transport auto (and smtp, for --check) it is the
 * preset's (microsoft: Graph, google: Gmail API), else the shape of
 * api_url (a path ending in "/sendMail" is Graph, one containing
 * "/gmail/" the Gmail API), else API_NONE.
 */
enum api_kind api_kind_of(const struct account *acc);

/* "graph", "gmail-api", "smtp" (API_NONE). */
const char *api_kind_name(enum api_kind k);

/* The transport name of a send_via value ("smtp", "graph", ...). */
const char *api_transport_name(enum send_via v);

/* api_url, else the documented endpoint of kind; NULL for API_NONE. */
const char *api_url_of(const struct account *acc, enum api_kind kind);

/*
 * The OAuth2 scope a token for kind needs, into ret_scope (reset first):
 *   Graph      "<origin of the URL>/Mail.Send offline_access"
 *              (https://graph.microsoft.com/Mail.Send for the default)
 *   Gmail API  "https://www.googleapis.com/auth/gmail.send"
 * For oauth2_provider custom the account's oauth2_scope (the custom
 * server decides).  This is the one place that knows the API scopes; the
 * token broker asks for them through it.
 * Errors: ERR_CONFIG (API_NONE), ERR_LIMIT / ERR_NOMEM.
 */
enum err api_scope(const struct account *acc, enum api_kind kind,
	struct buf *ret_scope, struct errinfo *reterr);

/*
 * The scope `oasmtp-token authorize` asks for: the SMTP scope
 * (provider_scope) for transport smtp, the API scope alone for graph and
 * gmail-api (gmail.send is a sensitive scope, https://mail.google.com/ a
 * restricted one), both for auto.  Into ret_scope (reset first).
 */
enum err api_grant_scope(const struct account *acc, struct buf *ret_scope,
	struct errinfo *reterr);

/*
 * The scope of the access tokens the account's own sends use, which is
 * what `oasmtp-token print`, `refresh` and the keep-alive timer ask for
 * when no scope is named: the API's for transport graph or gmail-api (such
 * a grant was never given the SMTP scope), else provider_scope().  Errors:
 * ERR_LIMIT, ERR_CONFIG.
 */
MUST_CHECK enum err api_account_scope(const struct account *acc,
	struct buf *ret_scope, struct errinfo *reterr);

/*
 * The configuration rule of an account with an API transport: the
 * message names file:line and the fix.  ERR_CONFIG or ERR_OK.
 */
enum err api_check_account(const struct account *acc, struct errinfo *reterr);

#endif
