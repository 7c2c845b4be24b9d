/*
 * provider.c - the provider preset table and its lookups (provider.h).
 *
 * Sources for every value: /work/shared/reference/oauth-helpers.md section
 * 3 (provider documentation and the public configuration of other mail
 * clients).  Only endpoints and scopes are taken, never a client id.
 *
 * Submission servers: the providers' settings for mail clients (their help
 * pages, and Thunderbird's provider database).  Google, Microsoft and
 * Comcast on 587 with STARTTLS (Microsoft offers nothing else); Yahoo, AOL,
 * Fastmail, Yandex and Mail.ru on 465 with implicit TLS.  Most offer both
 * ports; the table keeps one.
 */
#include "provider.h"

#include <string.h>

#include "buf.h"
#include "util.h"

#define MS_LOGIN "https://login.microsoftonline.com/{tenant}/oauth2/v2.0"

static const struct provider_preset presets[] = {
	{
		.id = OAUTH2_GOOGLE,
		.name = "google",
		.label = "Google (Gmail, Google Workspace)",
		.auth_endpoint = "https://accounts.google.com/o/oauth2/v2/auth",
		.token_endpoint = "https://oauth2.googleapis.com/token",
		/* exists, but refuses the Gmail scope with invalid_scope */
		.device_endpoint = NULL,
		.revocation_endpoint = "https://oauth2.googleapis.com/revoke",
		.scope = "https://mail.google.com/",
		.id_scope = "openid email",
		.smtp_host = "smtp.gmail.com",
		.smtp_port = 587,
		.smtp_starttls = 1,
		.mechanisms = "oauthbearer xoauth2",
		.flags = PROVIDER_OFFLINE_CONSENT | PROVIDER_SECRET_USUAL,
		.grant_limit_days = 7,
		.idle_limit_days = 180,
		.quirks = "loopback redirect only (no device flow, no OOB); "
			"apps left in \"Testing\" get refresh tokens that die "
			"after 7 days; a password change ends the grant",
	},
	{
		.id = OAUTH2_MICROSOFT,
		.name = "microsoft",
		.label = "Microsoft (Outlook.com, Microsoft 365)",
		.auth_endpoint = MS_LOGIN "/authorize",
		.token_endpoint = MS_LOGIN "/token",
		.device_endpoint = MS_LOGIN "/devicecode",
		.revocation_endpoint = NULL,
		.scope = "https://outlook.office.com/SMTP.Send offline_access",
		.id_scope = "openid profile email",
		/* Microsoft 365; Outlook.com documents its own name */
		.smtp_host = "smtp.office365.com",
		.smtp_port = 587,
		.smtp_starttls = 1,
		.smtp_host_consumers = "smtp-mail.outlook.com",
		.mechanisms = "xoauth2",
		.flags = PROVIDER_DEVICE_FLOW | PROVIDER_TENANT |
			PROVIDER_PUBLIC_USUAL,
		.grant_limit_days = 0,
		.idle_limit_days = 90,
		.quirks = "tenant common, organizations, consumers or a tenant "
			"id; SMTP AUTH must be enabled for the mailbox; refresh "
			"tokens rotate and expire after 90 days unused",
	},
	{
		.id = OAUTH2_YAHOO,
		.name = "yahoo",
		.label = "Yahoo Mail",
		.auth_endpoint = "https://api.login.yahoo.com/oauth2/request_auth",
		.token_endpoint = "https://api.login.yahoo.com/oauth2/get_token",
		.scope = "mail-w",
		.smtp_host = "smtp.mail.yahoo.com",
		.smtp_port = 465,
		.smtp_starttls = 0,
		.mechanisms = "oauthbearer xoauth2",
		.flags = PROVIDER_CLOSED,
		.quirks = "Yahoo accepts no new client registrations for the "
			"mail scope",
	},
	{
		.id = OAUTH2_AOL,
		.name = "aol",
		.label = "AOL Mail",
		.auth_endpoint = "https://api.login.aol.com/oauth2/request_auth",
		.token_endpoint = "https://api.login.aol.com/oauth2/get_token",
		.scope = "mail-w",
		.smtp_host = "smtp.aol.com",
		.smtp_port = 465,
		.smtp_starttls = 0,
		.mechanisms = "oauthbearer xoauth2",
		.flags = PROVIDER_CLOSED,
		.quirks = "AOL accepts no new client registrations for the "
			"mail scope",
	},
	{
		.id = OAUTH2_FASTMAIL,
		.name = "fastmail",
		.label = "Fastmail",
		.auth_endpoint = "https://api.fastmail.com/oauth/authorize",
		.token_endpoint = "https://api.fastmail.com/oauth/refresh",
		.scope = "https://www.fastmail.com/dev/protocol-smtp",
		.smtp_host = "smtp.fastmail.com",
		.smtp_port = 465,
		.smtp_starttls = 0,
		.mechanisms = "xoauth2",
		.flags = PROVIDER_PUBLIC_USUAL,
		.quirks = "clients are registered by Fastmail on request; PKCE, "
			"no client secret",
	},
	{
		.id = OAUTH2_YANDEX,
		.name = "yandex",
		.label = "Yandex Mail",
		.auth_endpoint = "https://oauth.yandex.com/authorize",
		.token_endpoint = "https://oauth.yandex.com/token",
		.scope = "mail:smtp",
		.smtp_host = "smtp.yandex.com",
		.smtp_port = 465,
		.smtp_starttls = 0,
		.mechanisms = "xoauth2",
	},
	{
		.id = OAUTH2_MAILRU,
		.name = "mailru",
		.label = "Mail.ru",
		.auth_endpoint = "https://o2.mail.ru/login",
		.token_endpoint = "https://o2.mail.ru/token",
		.scope = "mail.imap",
		.smtp_host = "smtp.mail.ru",
		.smtp_port = 465,
		.smtp_starttls = 0,
		.mechanisms = "xoauth2",
		.quirks = "the mail.imap scope also covers SMTP",
	},
	{
		.id = OAUTH2_COMCAST,
		.name = "comcast",
		.label = "Comcast (Xfinity)",
		.auth_endpoint = "https://oauth.xfinity.com/oauth/authorize",
		.token_endpoint = "https://oauth.xfinity.com/oauth/token",
		.scope = "https://email.comcast.net/ profile openid",
		.smtp_host = "smtp.comcast.net",
		.smtp_port = 587,
		.smtp_starttls = 1,
		.mechanisms = "xoauth2",
		.flags = PROVIDER_PUBLIC_USUAL,
		.quirks = "PKCE",
	},
};

#define N_PRESETS (sizeof(presets) / sizeof(presets[0]))

const struct provider_preset *
provider_get(enum oauth2_provider p)
{
	unsigned i;

	for (i = 0; i < N_PRESETS; i++) {
		if (presets[i].id == p) {
			return &presets[i];
		}
	}
	return NULL;
}

const struct provider_preset *
provider_by_name(const char *name)
{
	unsigned i;

	for (i = 0; name != NULL && i < N_PRESETS; i++) {
		if (util_strcasecmp(presets[i].name, name) == 0) {
			return &presets[i];
		}
	}
	return NULL;
}

const struct provider_preset *
provider_table(unsigned *ret_n)
{
	*ret_n = (unsigned)N_PRESETS;
	return presets;
}

const char *
provider_endpoint_key(enum provider_endpoint which)
{
	switch (which) {
	case PROVIDER_EP_AUTH:
		return "oauth2_auth_endpoint";
	case PROVIDER_EP_TOKEN:
		return "oauth2_token_endpoint";
	case PROVIDER_EP_DEVICE:
		return "oauth2_device_endpoint";
	case PROVIDER_EP_REVOKE:
		return "oauth2_revocation_endpoint";
	case PROVIDER_EP_MAX:
		break;
	}
	return "(none)";
}

/* A tenant goes into a URL path: keep it to a name, a domain or a GUID. */
static int
tenant_ok(const char *t)
{
	if (t[0] == '\0' || t[0] == '.') {
		return 0;
	}
	for (; *t != '\0'; t++) {
		unsigned char c = (unsigned char)*t;

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '.' ||
			c == '_')) {
			return 0;
		}
	}
	return 1;
}

static const char *
own_endpoint(const struct account *acc, enum provider_endpoint which)
{
	switch (which) {
	case PROVIDER_EP_AUTH:
		return acc->oauth2_auth_endpoint;
	case PROVIDER_EP_TOKEN:
		return acc->oauth2_token_endpoint;
	case PROVIDER_EP_DEVICE:
		return acc->oauth2_device_endpoint;
	case PROVIDER_EP_REVOKE:
		return acc->oauth2_revocation_endpoint;
	case PROVIDER_EP_MAX:
		break;
	}
	return NULL;
}

static const char *
preset_endpoint(const struct provider_preset *p, enum provider_endpoint which)
{
	if (p == NULL) {
		return NULL;
	}
	switch (which) {
	case PROVIDER_EP_AUTH:
		return p->auth_endpoint;
	case PROVIDER_EP_TOKEN:
		return p->token_endpoint;
	case PROVIDER_EP_DEVICE:
		return p->device_endpoint;
	case PROVIDER_EP_REVOKE:
		return p->revocation_endpoint;
	case PROVIDER_EP_MAX:
		break;
	}
	return NULL;
}

enum err
provider_endpoint(const struct account *acc, enum provider_endpoint which,
	struct buf *ret_url, struct errinfo *reterr)
{
	const char *own = own_endpoint(acc, which);
	const char *tmpl, *hole;
	const char *tenant;
	enum err e;

	buf_reset(ret_url);
	if (own != NULL && own[0] != '\0') {
		e = buf_append_str(ret_url, own);
		goto out;
	}
	tmpl = preset_endpoint(provider_get(acc->oauth2_provider), which);
	if (tmpl == NULL) {
		return ERR_OK;
	}
	hole = strstr(tmpl, "{tenant}");
	if (hole == NULL) {
		e = buf_append_str(ret_url, tmpl);
		goto out;
	}
	tenant = acc->oauth2_tenant != NULL ? acc->oauth2_tenant : "common";
	if (!tenant_ok(tenant)) {
		return errinfo_set(reterr, ERR_CONFIG,
			"oauth2_tenant '%s' of account '%s' is not a tenant "
			"name or id", tenant, acc->name);
	}
	e = buf_append(ret_url, tmpl, (size_t)(hole - tmpl));
	if (e == ERR_OK) {
		e = buf_append_str(ret_url, tenant);
	}
	if (e == ERR_OK) {
		e = buf_append_str(ret_url, hole + strlen("{tenant}"));
	}
out:
	if (e != ERR_OK) {
		buf_reset(ret_url);
		return errinfo_set(reterr, e, "%s of account '%s' too long",
			provider_endpoint_key(which), acc->name);
	}
	return ERR_OK;
}

/* The tenant of personal Microsoft accounts, by name and by id. */
static int
tenant_is_consumers(const char *t)
{
	return t != NULL && (util_strcasecmp(t, "consumers") == 0 ||
		util_strcasecmp(t, "9188040d-6c67-4c5b-b112-36a304b66dad") == 0);
}

int
provider_server(const struct account *acc, struct provider_server *ret)
{
	const struct provider_preset *p = provider_get(acc->oauth2_provider);

	memset(ret, 0, sizeof(*ret));
	if (p == NULL || p->smtp_host == NULL) {
		return 0;
	}
	ret->host = p->smtp_host;
	if (p->smtp_host_consumers != NULL &&
	    tenant_is_consumers(acc->oauth2_tenant)) {
		ret->host = p->smtp_host_consumers;
	}
	ret->port = p->smtp_port;
	ret->starttls = p->smtp_starttls;
	return 1;
}

enum err
provider_scope(const struct account *acc, struct buf *ret_scope,
	struct errinfo *reterr)
{
	const struct provider_preset *p = provider_get(acc->oauth2_provider);
	enum err e = ERR_OK;

	buf_reset(ret_scope);
	if (acc->oauth2_scope != NULL) {
		e = buf_append_str(ret_scope, acc->oauth2_scope);
	} else if (p != NULL) {
		e = buf_append_str(ret_scope, p->scope);
	}
	if (e != ERR_OK) {
		buf_reset(ret_scope);
		return errinfo_set(reterr, e, "oauth2_scope of account '%s' "
			"too long", acc->name);
	}
	return ERR_OK;
}

enum err
provider_token_endpoint(const struct account *acc, struct buf *ret_endpoint,
	struct buf *ret_scope, struct errinfo *reterr)
{
	enum err e;

	buf_reset(ret_scope);
	e = provider_endpoint(acc, PROVIDER_EP_TOKEN, ret_endpoint, reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (ret_endpoint->len == 0) {
		return errinfo_set(reterr, ERR_CONFIG,
			"account '%s' has no oauth2_token_endpoint: set it, or "
			"an oauth2_provider with a preset (see oasmtprc(5))",
			acc->name);
	}
	return provider_scope(acc, ret_scope, reterr);
}
