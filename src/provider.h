/*
 * provider.h - OAuth2 provider presets: one data table (provider.c) with
 * the public facts about each mail provider that offers OAuth2 for SMTP,
 * and the lookups that merge a preset with an account's own oauth2_* keys.
 *
 * The table holds endpoints, scopes, the submission server (host, port and
 * TLS mode), SASL mechanisms, whether the device grant works for the mail
 * scope, and quirks.  It never holds a client id or secret: every user
 * registers their own client (doc/gmail.md, doc/microsoft365.md); other
 * applications' registrations get disabled or rate-limited by their
 * owners.
 *
 * An account's own keys always win over the preset, which is how national
 * Microsoft clouds are configured (oauth2_auth_endpoint,
 * oauth2_token_endpoint, oauth2_device_endpoint and oauth2_scope on the
 * cloud's hosts).
 *
 * Nothing here does I/O; the module is part of the core library.
 */
#ifndef OASMTP_PROVIDER_H
#define OASMTP_PROVIDER_H

#include "account.h"
#include "err.h"

struct buf;

/* An endpoint URL and a scope list, as provider_endpoint() and
 * provider_token_endpoint() write them. */
#define PROVIDER_URL_MAX 4096
#define PROVIDER_SCOPE_MAX 4096

/* Preset flags. */
#define PROVIDER_DEVICE_FLOW	0x01u	/* device grant allowed for the mail scope */
#define PROVIDER_TENANT		0x02u	/* endpoints contain "{tenant}" */
#define PROVIDER_OFFLINE_CONSENT 0x04u	/* send access_type=offline and
					   prompt=consent (Google) */
#define PROVIDER_SECRET_USUAL	0x08u	/* its desktop clients have a secret
					   that the token endpoint wants */
#define PROVIDER_PUBLIC_USUAL	0x10u	/* its native clients are public: never
					   send a secret (Microsoft) */
#define PROVIDER_CLOSED		0x20u	/* no new client registrations for the
					   mail scope */

struct provider_preset {
	enum oauth2_provider id;
	const char *name;		/* as in oauth2_provider */
	const char *label;		/* for messages */
	const char *auth_endpoint;	/* NULL: unknown */
	const char *token_endpoint;
	const char *device_endpoint;	/* NULL: no device grant */
	const char *revocation_endpoint; /* NULL: no RFC 7009 endpoint */
	const char *scope;		/* the SMTP scope (space separated) */
	const char *id_scope;		/* added by authorize to learn who
					   signed in, or NULL */
	const char *smtp_host;		/* submission server */
	int smtp_port;			/* its port: 587 or 465 */
	int smtp_starttls;		/* 1: STARTTLS, 0: implicit TLS */
	const char *smtp_host_consumers; /* for oauth2_tenant consumers
					   (personal Microsoft accounts), or
					   NULL: smtp_host for every tenant */
	const char *mechanisms;		/* SASL mechanisms, preferred first */
	unsigned flags;
	int grant_limit_days;		/* grant dies this many days after
					   authorization in some setups (Google
					   "Testing" apps), 0 = none known */
	int idle_limit_days;		/* grant dies after this many days
					   without a refresh, 0 = none known */
	const char *quirks;		/* one line for `status` and docs */
};

/* The preset for p; NULL for OAUTH2_NONE, OAUTH2_CUSTOM and unknown values. */
const struct provider_preset *provider_get(enum oauth2_provider p);

/* The preset called name (case-insensitive), NULL when there is none. */
const struct provider_preset *provider_by_name(const char *name);

/* The whole table (for docs and tests); *ret_n gets the entry count. */
const struct provider_preset *provider_table(unsigned *ret_n);

enum provider_endpoint {
	PROVIDER_EP_AUTH = 0,
	PROVIDER_EP_TOKEN,
	PROVIDER_EP_DEVICE,
	PROVIDER_EP_REVOKE,
	PROVIDER_EP_MAX
};

/* The config key that overrides an endpoint ("oauth2_token_endpoint"). */
const char *provider_endpoint_key(enum provider_endpoint which);

/*
 * The URL of one endpoint for acc into ret_url (reset first): the account's
 * key when set, else the preset's, with "{tenant}" replaced by
 * oauth2_tenant ("common" when unset).  An endpoint nobody knows leaves
 * ret_url empty and returns ERR_OK: the caller decides whether that is an
 * error.
 * Errors: ERR_CONFIG (oauth2_tenant is not a tenant name or id),
 * ERR_LIMIT / ERR_NOMEM from buf.
 */
MUST_CHECK enum err provider_endpoint(const struct account *acc,
	enum provider_endpoint which, struct buf *ret_url,
	struct errinfo *reterr);

/* The submission server of a preset, as chosen for one account. */
struct provider_server {
	const char *host;
	int port;
	int starttls;			/* 1: STARTTLS, 0: implicit TLS */
};

/*
 * The submission server the preset of acc names: 1 and *ret filled, or 0
 * when acc has no preset (OAUTH2_NONE, OAUTH2_CUSTOM).  A Microsoft
 * account whose oauth2_tenant is "consumers" (or that tenant's id) gets
 * the Outlook.com host; every other tenant, "common" included, gets the
 * Microsoft 365 host.  Only the preset and the tenant are looked at, never
 * the account's own host or port.
 */
int provider_server(const struct account *acc, struct provider_server *ret);

/*
 * Token endpoint and scope for acc: the account's own values, else the
 * provider preset (provider.h; microsoft: tenant from oauth2_tenant,
 * "common" by default).  Results go to ret_endpoint / ret_scope (reset
 * first; scope may end up empty).  ERR_CONFIG when no endpoint is known.
 */
MUST_CHECK enum err provider_token_endpoint(const struct account *acc,
	struct buf *ret_endpoint, struct buf *ret_scope,
	struct errinfo *reterr);

/*
 * The scope for acc into ret_scope (reset first): oauth2_scope when set,
 * else the preset's, else empty.  ERR_LIMIT / ERR_NOMEM.
 */
MUST_CHECK enum err provider_scope(const struct account *acc, struct buf *ret_scope,
	struct errinfo *reterr);

#endif
