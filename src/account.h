/*
 * account.h - one fully resolved account: every msmtprc key oasmtp knows,
 * after `defaults`, parent accounts and built-in defaults were applied.
 *
 * This struct is the contract between config.c (which fills it), and the
 * modules that read it (message, submit, smtp, transport, token, queue).
 * Strings are heap-owned by the account, NULL when unset; account_free()
 * releases them (secrets are wiped first).
 *
 * Built-in defaults (design.md section 4; deliberately safer than msmtp's):
 * tls on, tls_starttls on, port 587 (465 with tls_starttls off, 25 with tls
 * off), timeout 60, auth on when a user is set, domain "localhost".
 */
#ifndef OASMTP_ACCOUNT_H
#define OASMTP_ACCOUNT_H

#include "err.h"

enum auth_method {
	AUTH_OFF = 0,
	AUTH_ON,		/* choose the best mechanism the server offers */
	AUTH_PLAIN,
	AUTH_LOGIN,
	AUTH_XOAUTH2,
	AUTH_OAUTHBEARER,
	AUTH_MAX
};

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
	OAUTH2_CUSTOM,
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
	char *oauth2_token_store;	/* "secret-service", "file:PATH", "command:CMD" */
	char *oauth2_token_cache;	/* path, or "off" */
	char *oauth2_ca_file;
	long oauth2_refresh_margin;	/* seconds, default 600 */
	char *notify_command;

	/* queue (oasmtp extensions) */
	enum queue_mode queue;
	char *queue_dir;
	long queue_max_age;	/* seconds, default 5 days */

	/* bookkeeping for config.c (which keys were set explicitly) */
	unsigned char set[128];
};

/* Release every string (wiping secrets) and the struct itself; NULL is fine. */
void account_free(struct account *acc);

/* True when the account uses an OAuth2 mechanism or has oauth2_* settings. */
int account_is_oauth(const struct account *acc);

/* The name of an auth method as msmtp prints it ("xoauth2", "on", ...). */
const char *account_auth_name(enum auth_method m);

#endif
