/*
 * account.h - one fully resolved account: every msmtprc key oasmtp knows,
 * after `defaults`, parent accounts and built-in defaults were applied.
 *
 * This struct is the contract between config.c (which fills it), and the
 * modules that read it (message, token, queue, the modes in src/cmd/).
 * The submission layer (src/smtp/) never sees it: account_submit_server()
 * turns it into plain values.
 * Strings are heap-owned by the account, NULL when unset; account_free()
 * releases them (secrets are wiped first).
 *
 * Built-in defaults (oasmtprc(5); deliberately safer than msmtp's):
 * tls on, tls_starttls on, port 587 (465 with tls_starttls off, 25 with tls
 * off), timeout 60, auth on when a user is set, domain "localhost".  An
 * account with an oauth2_provider preset and no host gets the preset's
 * submission server (config.c) and auth xoauth2.
 *
 * msmtp's defaults (account_use_msmtp_defaults), for files read from
 * msmtp's own places: tls off, port 25 (465 with tls on and tls_starttls
 * off), auth off even when a user is set; timeout stays 60.
 */
#ifndef OASMTP_ACCOUNT_H
#define OASMTP_ACCOUNT_H

#include "err.h"
#include "sasl.h"	/* enum auth_method */

struct submit_server;

enum header_policy {
	HDR_AUTO = 0,		/* add when missing */
	HDR_ON,			/* always replace */
	HDR_OFF,		/* never touch */
	HDR_UNDISCLOSED,	/* set_to_header undisclosed_recipients only */
};

enum oauth2_provider {
	OAUTH2_NONE = 0,
	OAUTH2_GOOGLE,
	OAUTH2_MICROSOFT,
	OAUTH2_CUSTOM,		/* also spelt "generic" */
	OAUTH2_YAHOO,
	OAUTH2_AOL,
	OAUTH2_FASTMAIL,
	OAUTH2_YANDEX,
	OAUTH2_MAILRU,
	OAUTH2_COMCAST,
};

/* from_rewrite_header: how a rewritten From: keeps the original sender. */
enum from_original {
	FROM_ORIG_X_ORIGINAL_FROM = 0,	/* X-Original-From: (default) */
	FROM_ORIG_SENDER,		/* Sender: */
	FROM_ORIG_OFF,			/* dropped */
};

/* transport: how a message leaves (oasmtprc(5), TRANSPORTS). */
enum send_via {
	VIA_SMTP = 0,		/* SMTP submission (default) */
	VIA_GRAPH,		/* Microsoft Graph sendMail over HTTPS */
	VIA_GMAIL_API,		/* Gmail API messages.send over HTTPS */
	VIA_AUTO,		/* SMTP, else the provider's API */
};

enum queue_mode {
	QUEUE_OFF = 0,
	QUEUE_ON_FAILURE,
	QUEUE_ALWAYS,
};

struct account {
	char *name;
	char *file;		/* where the `account` line is (or "defaults") */
	unsigned line;

	/* server */
	char *host;
	int port;		/* resolved: never 0 after config_load */
	char *source_ip;
	char *proxy_host;	/* SOCKS5 proxy (msmtp's proxy_host), NULL: none */
	int proxy_port;		/* 0: 1080 when proxy_host is set */
	char *domain;		/* EHLO argument and Message-ID domain */
	int timeout;		/* seconds; 0 = no timeout */

	/* authentication */
	enum auth_method auth;
	char *user;
	char *password;		/* literal secret: wipe on free */
	char *passwordeval;	/* shell command printing the secret */

	/* TLS */
	int tls;
	int tls_starttls;
	char *tls_trust_file;	/* NULL or "system": system store */
	char *tls_crl_file;
	char *tls_fingerprint;	/* as written: hex bytes with colons */
	char *tls_cert_file;
	char *tls_key_file;
	int tls_certcheck;
	char *tls_host_override;

	/* envelope and headers */
	char *from;		/* may hold msmtp wildcards and %U %H %C %M */
	char *from_full_name;
	int allow_from_override;
	char *dsn_notify;	/* NULL = off */
	char *dsn_return;	/* NULL = off; "HDRS" or "FULL" */
	enum header_policy set_from_header;
	enum header_policy set_date_header;
	enum header_policy set_msgid_header;
	enum header_policy set_to_header;	/* OFF, ON, UNDISCLOSED */
	int remove_bcc_headers;
	int from_rewrite;
	enum from_original from_rewrite_header;	/* where the old From goes */
	char *aliases;

	/* logging */
	char *logfile;
	char *logfile_time_format;
	char *syslog;		/* NULL = off, else facility name ("LOG_MAIL") */

	/* OAuth2 (oasmtp extensions) */
	enum oauth2_provider oauth2_provider;
	char *oauth2_client_id;
	char *oauth2_client_secret;	/* literal secret: wipe on free */
	char *oauth2_client_secret_eval;
	char *oauth2_tenant;
	char *oauth2_auth_endpoint;
	char *oauth2_token_endpoint;
	char *oauth2_device_endpoint;
	char *oauth2_scope;
	char *oauth2_revocation_endpoint;	/* RFC 7009, for forget */
	char *oauth2_token_store;	/* "secret-service", "file:PATH", "command:CMD" */
	char *oauth2_token_store_write;	/* command:CMD write-back, or NULL */
	char *oauth2_token_cache;	/* path, or "off" */
	char *oauth2_ca_file;
	long oauth2_refresh_margin;	/* seconds, default 600 */
	char *notify_command;

	/* queue (oasmtp extensions) */
	enum queue_mode queue;
	char *queue_dir;
	long queue_max_age;	/* seconds, default 5 days */

	/* the network phase runs confined (src/cmd/sandbox.h); default on */
	int confine;
	/* sessions kept between invocations (oasmtp extensions) */
	long session_persist;	/* idle seconds, 0 = off; default 5 */
	long session_max_age;	/* seconds, default 300 */
	long session_max_messages;	/* default 100 */
	enum header_policy message_id_fix;	/* HDR_AUTO or HDR_OFF */

	/* obsolete msmtp keys, folded into `from` when the account is resolved */
	int auto_from;
	char *maildomain;

	/* HTTPS submission (oasmtp extensions) */
	enum send_via transport;
	char *api_url;		/* NULL: the API's documented endpoint */

	/* system mode: the callers whose -f counts (oasmtprc(5)) */
	char *system_from_override;
	/* system mode: how much STATE/rejected/ may keep (oasmtprc(5)) */
	long system_rejected_max_age;	/* seconds, default 30 days */
	long system_rejected_max_count;	/* entries, default 1000 */
	long system_rejected_max_size;	/* bytes, default 256 MiB */

	/*
	 * Not a configuration key: set by config_load() for the accounts of
	 * a system-mode load (config_params.system_state_dir), so helpers
	 * started for the account (oasmtp-token) load it the same way.
	 */
	int system;

	/*
	 * Not a configuration key: the account was read from a file at
	 * msmtp's places and so started from msmtp's defaults (see the top
	 * of this file); --pretend says so.
	 */
	int msmtp_defaults;

	/*
	 * Bookkeeping for config.c: set[ACCF_x] is non-zero when field x was
	 * given in the file (ACC_SET_EXPLICIT: in the account itself or
	 * copied from a parent; ACC_SET_DEFAULTS: from a `defaults` section).
	 * Unset fields receive the built-in defaults when the account is
	 * resolved; host, port and tls_starttls filled from the
	 * oauth2_provider preset are then marked ACC_SET_PRESET, so --pretend
	 * can say where they came from.
	 */
	unsigned char set[128];
};

#define ACC_SET_EXPLICIT 1
#define ACC_SET_DEFAULTS 2
#define ACC_SET_PRESET 3	/* not in the file: the provider preset's value */
#define ACC_SET_CMDLINE 4	/* an msmtp option of the command line (--port) */

/* Field ids for account.set[]; one per field, not per msmtprc key. */
enum account_field {
	ACCF_HOST = 0,
	ACCF_PORT,
	ACCF_SOURCE_IP,
	ACCF_DOMAIN,
	ACCF_TIMEOUT,
	ACCF_AUTH,
	ACCF_USER,
	ACCF_PASSWORD,
	ACCF_PASSWORDEVAL,
	ACCF_TLS,
	ACCF_TLS_STARTTLS,
	ACCF_TLS_TRUST_FILE,
	ACCF_TLS_CRL_FILE,
	ACCF_TLS_FINGERPRINT,
	ACCF_TLS_CERT_FILE,
	ACCF_TLS_KEY_FILE,
	ACCF_TLS_CERTCHECK,
	ACCF_TLS_HOST_OVERRIDE,
	ACCF_FROM,
	ACCF_FROM_FULL_NAME,
	ACCF_ALLOW_FROM_OVERRIDE,
	ACCF_DSN_NOTIFY,
	ACCF_DSN_RETURN,
	ACCF_SET_FROM_HEADER,
	ACCF_SET_DATE_HEADER,
	ACCF_SET_MSGID_HEADER,
	ACCF_SET_TO_HEADER,
	ACCF_REMOVE_BCC_HEADERS,
	ACCF_FROM_REWRITE,
	ACCF_ALIASES,
	ACCF_LOGFILE,
	ACCF_LOGFILE_TIME_FORMAT,
	ACCF_SYSLOG,
	ACCF_OAUTH2_PROVIDER,
	ACCF_OAUTH2_CLIENT_ID,
	ACCF_OAUTH2_CLIENT_SECRET,
	ACCF_OAUTH2_CLIENT_SECRET_EVAL,
	ACCF_OAUTH2_TENANT,
	ACCF_OAUTH2_AUTH_ENDPOINT,
	ACCF_OAUTH2_TOKEN_ENDPOINT,
	ACCF_OAUTH2_DEVICE_ENDPOINT,
	ACCF_OAUTH2_SCOPE,
	ACCF_OAUTH2_TOKEN_STORE,
	ACCF_OAUTH2_TOKEN_CACHE,
	ACCF_OAUTH2_CA_FILE,
	ACCF_OAUTH2_REFRESH_MARGIN,
	ACCF_NOTIFY_COMMAND,
	ACCF_QUEUE,
	ACCF_QUEUE_DIR,
	ACCF_QUEUE_MAX_AGE,
	ACCF_AUTO_FROM,
	ACCF_MAILDOMAIN,
	ACCF_OAUTH2_REVOCATION_ENDPOINT,
	ACCF_FROM_REWRITE_HEADER,
	ACCF_SYSTEM_FROM_OVERRIDE,
	ACCF_TRANSPORT,
	ACCF_API_URL,
	ACCF_PROXY_HOST,
	ACCF_PROXY_PORT,
	ACCF_SYSTEM_REJECTED_MAX_AGE,
	ACCF_SYSTEM_REJECTED_MAX_COUNT,
	ACCF_SYSTEM_REJECTED_MAX_SIZE,
	ACCF_CONFINE,
	ACCF_OAUTH2_TOKEN_STORE_WRITE,
	ACCF_SESSION_PERSIST,
	ACCF_SESSION_MAX_AGE,
	ACCF_SESSION_MAX_MESSAGES,
	ACCF_MESSAGE_ID_FIX,
	ACCF_MAX
};

/*
 * A new account holding the built-in defaults (see the top of this file),
 * with name and file NULL and nothing marked as set.  NULL when out of
 * memory.  Free with account_free().
 */
struct account *account_new(void);

/* The deadline of a helper command when `timeout` is 0 (none). */
#define ACCOUNT_HELPER_TIMEOUT_S 60

/* Built-in limits of STATE/rejected/ in system mode (oasmtprc(5)). */
#define ACCOUNT_REJECTED_MAX_AGE (30L * 86400)
#define ACCOUNT_REJECTED_MAX_COUNT 1000L
#define ACCOUNT_REJECTED_MAX_SIZE (256L * 1024 * 1024)

/*
 * Seconds a helper of acc may take (passwordeval, notify_command,
 * oauth2_*_eval, the token endpoint, oasmtp-token): its `timeout`, or
 * ACCOUNT_HELPER_TIMEOUT_S when that is 0: a helper never runs unbounded.
 */
int account_helper_timeout_s(const struct account *acc);

/*
 * Switch a fresh account (nothing set yet) to msmtp's defaults: tls off,
 * auth off whatever the user, msmtp_defaults set so that the port and auth
 * are resolved as msmtp resolves them.
 */
void account_use_msmtp_defaults(struct account *acc);

/*
 * A deep copy of src (strings duplicated, set[] copied).  NULL when out of
 * memory.
 */
struct account *account_dup(const struct account *src);

/*
 * Copy every field that is marked as set in src into dst (msmtp's
 * `account a : b` semantics), marking it ACC_SET_EXPLICIT in dst.
 * ERR_NOMEM leaves dst partly updated but consistent (still freeable).
 */
MUST_CHECK enum err account_inherit(struct account *dst, const struct account *src);

/*
 * Store a number in a scalar field (int, long or enum); ERR_INTERNAL when
 * f is a string field.
 */
MUST_CHECK enum err account_set_num(struct account *acc, enum account_field f, long v);

/*
 * Replace a string field (freeing, and wiping when it is a secret, the old
 * value); value NULL unsets it.  ERR_NOMEM keeps the old value.
 */
MUST_CHECK enum err account_set_str(struct account *acc, enum account_field f,
	const char *value);

/* Release every string (wiping secrets) and the struct itself; NULL is fine. */
void account_free(struct account *acc);

/* True when the account uses an OAuth2 mechanism or has oauth2_* settings. */
int account_is_oauth(const struct account *acc);

/* The name of an auth method as msmtp prints it ("xoauth2", "on", ...). */
const char *account_auth_name(enum auth_method m);

/*
 * The server part of acc as the submission layer takes it; strings are
 * borrowed from acc (which must outlive ret).
 */
void account_submit_server(const struct account *acc,
	struct submit_server *ret);

#endif
