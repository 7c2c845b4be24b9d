/* api.c - which API, URL and scope an account's HTTPS submission uses
 * (api.h). */
#include "api.h"

#include <string.h>

#include "buf.h"
#include "provider.h"
#include "util.h"

#define GRAPH_SCOPE_PATH "/Mail.Send offline_access"
#define GMAIL_SCOPE "https://www.googleapis.com/auth/gmail.send"

/* The path of an http(s) URL (after the authority), "" when none. */
static const char *
url_path(const char *url)
{
	const char *p = strstr(url, "://");

	if (p == NULL) {
		return "";
	}
	p = strchr(p + 3, '/');
	return p != NULL ? p : "";
}

static enum api_kind
kind_by_url(const char *url)
{
	const char *path, *q;
	size_t n;

	if (url == NULL) {
		return API_NONE;
	}
	path = url_path(url);
	q = strchr(path, '?');
	n = q != NULL ? (size_t)(q - path) : strlen(path);
	if (n >= 9 && memcmp(path + n - 9, "/sendMail", 9) == 0) {
		return API_GRAPH;
	}
	if (strstr(path, "/gmail/") != NULL) {
		return API_GMAIL;
	}
	return API_NONE;
}

enum api_kind
api_kind_of(const struct account *acc)
{
	switch (acc->transport) {
	case VIA_GRAPH:
		return API_GRAPH;
	case VIA_GMAIL_API:
		return API_GMAIL;
	default:
		break;
	}
	if (acc->oauth2_provider == OAUTH2_MICROSOFT) {
		return API_GRAPH;
	}
	if (acc->oauth2_provider == OAUTH2_GOOGLE) {
		return API_GMAIL;
	}
	return kind_by_url(acc->api_url);
}

const char *
api_kind_name(enum api_kind k)
{
	switch (k) {
	case API_GRAPH:
		return "graph";
	case API_GMAIL:
		return "gmail-api";
	default:
		return "smtp";
	}
}

const char *
api_transport_name(enum send_via v)
{
	switch (v) {
	case VIA_GRAPH:
		return "graph";
	case VIA_GMAIL_API:
		return "gmail-api";
	case VIA_AUTO:
		return "auto";
	default:
		return "smtp";
	}
}

const char *
api_url_of(const struct account *acc, enum api_kind kind)
{
	if (kind == API_NONE) {
		return NULL;
	}
	if (acc->api_url != NULL && acc->api_url[0] != '\0') {
		return acc->api_url;
	}
	return kind == API_GRAPH ? API_GRAPH_URL : API_GMAIL_URL;
}

enum err
api_scope(const struct account *acc, enum api_kind kind,
	struct buf *ret_scope, struct errinfo *reterr)
{
	const char *url = api_url_of(acc, kind);
	const char *path;
	enum err e = ERR_OK;

	buf_reset(ret_scope);
	if (kind == API_NONE) {
		return errinfo_set(reterr, ERR_CONFIG, "account '%s' has no "
			"HTTPS API (set transport and api_url, see oasmtprc(5))",
			acc->name);
	}
	if (acc->oauth2_provider != OAUTH2_MICROSOFT &&
	    acc->oauth2_provider != OAUTH2_GOOGLE) {
		e = buf_append_str(ret_scope, acc->oauth2_scope != NULL ?
			acc->oauth2_scope : "");
	} else if (kind == API_GRAPH) {
		/* the scope names the resource: the origin of the API URL */
		path = url_path(url);
		e = buf_append(ret_scope, url, (size_t)(path - url));
		if (e == ERR_OK) {
			e = buf_append_str(ret_scope, GRAPH_SCOPE_PATH);
		}
	} else {
		e = buf_append_str(ret_scope, GMAIL_SCOPE);
	}
	return e == ERR_OK ? ERR_OK :
		errinfo_set(reterr, e, "API scope too long");
}

enum err
api_grant_scope(const struct account *acc, struct buf *ret_scope,
	struct errinfo *reterr)
{
	struct buf api;
	enum err e;

	if (acc->transport == VIA_GRAPH || acc->transport == VIA_GMAIL_API) {
		return api_scope(acc, api_kind_of(acc), ret_scope, reterr);
	}
	e = provider_scope(acc, ret_scope, reterr);
	if (e != ERR_OK || acc->transport != VIA_AUTO ||
	    api_kind_of(acc) == API_NONE) {
		return e;
	}
	buf_init(&api, PROVIDER_SCOPE_MAX);
	e = api_scope(acc, api_kind_of(acc), &api, reterr);
	/* custom: oauth2_scope is both, already there */
	if (e == ERR_OK && api.len > 0 &&
	    strstr(buf_cstr(ret_scope), buf_cstr(&api)) == NULL) {
		if ((ret_scope->len > 0 && buf_putc(ret_scope, ' ') != ERR_OK)
		    || buf_append(ret_scope, api.data, api.len) != ERR_OK) {
			e = errinfo_set(reterr, ERR_LIMIT, "scope too long");
		}
	}
	buf_release(&api);
	return e;
}

enum err
api_check_account(const struct account *acc, struct errinfo *reterr)
{
	const char *where = acc->file != NULL ? acc->file : "(config)";

	if (acc->transport == VIA_SMTP) {
		return ERR_OK;
	}
	if (acc->oauth2_provider == OAUTH2_NONE) {
		return errinfo_set(reterr, ERR_CONFIG, "%s:%u: account '%s': "
			"transport %s needs OAuth2; add 'oauth2_provider "
			"microsoft' or 'google' (or custom with its endpoints)",
			where, acc->line, acc->name,
			api_transport_name(acc->transport));
	}
	if (api_kind_of(acc) == API_NONE) {
		return errinfo_set(reterr, ERR_CONFIG, "%s:%u: account '%s': "
			"transport auto has no API to fall back to; set api_url "
			"to a Graph .../sendMail or a Gmail API .../gmail/... URL",
			where, acc->line, acc->name);
	}
	return ERR_OK;
}

enum err
api_account_scope(const struct account *acc, struct buf *ret_scope,
	struct errinfo *reterr)
{
	if (acc->transport == VIA_GRAPH || acc->transport == VIA_GMAIL_API) {
		return api_scope(acc, api_kind_of(acc), ret_scope, reterr);
	}
	return provider_scope(acc, ret_scope, reterr);
}
