/*
 * account.c - the account model: built-in defaults, deep copies, msmtp-style
 * inheritance of explicitly set fields, and release with secrets wiped.
 *
 * Inheritance is driven by one descriptor per field (offset, size, kind) so
 * that adding a key means adding a field, an ACCF_ id and one row here.
 */
#include "account.h"
#include "submit.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

_Static_assert(ACCF_MAX <= 128, "account.set[] is too small");
/* account_set_num() stores enums as int */
_Static_assert(sizeof(enum auth_method) == sizeof(int), "enum size");
_Static_assert(sizeof(enum header_policy) == sizeof(int), "enum size");
_Static_assert(sizeof(enum oauth2_provider) == sizeof(int), "enum size");
_Static_assert(sizeof(enum queue_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum send_via) == sizeof(int), "enum size");

enum field_kind {
	FK_STR,			/* char *, heap-owned */
	FK_SECRET,		/* char *, heap-owned, wiped on free */
	FK_SCALAR,		/* int, long or an enum: copied bytewise */
};

struct field {
	size_t offset;
	size_t size;
	enum field_kind kind;
};

#define STR(m) { offsetof(struct account, m), sizeof(char *), FK_STR }
#define SECRET(m) { offsetof(struct account, m), sizeof(char *), FK_SECRET }
#define SCALAR(m) { offsetof(struct account, m), \
	sizeof(((struct account *)0)->m), FK_SCALAR }

static const struct field fields[ACCF_MAX] = {
	[ACCF_HOST] = STR(host),
	[ACCF_PORT] = SCALAR(port),
	[ACCF_SOURCE_IP] = STR(source_ip),
	[ACCF_DOMAIN] = STR(domain),
	[ACCF_TIMEOUT] = SCALAR(timeout),
	[ACCF_AUTH] = SCALAR(auth),
	[ACCF_USER] = STR(user),
	[ACCF_PASSWORD] = SECRET(password),
	[ACCF_PASSWORDEVAL] = STR(passwordeval),
	[ACCF_TLS] = SCALAR(tls),
	[ACCF_TLS_STARTTLS] = SCALAR(tls_starttls),
	[ACCF_TLS_TRUST_FILE] = STR(tls_trust_file),
	[ACCF_TLS_CRL_FILE] = STR(tls_crl_file),
	[ACCF_TLS_FINGERPRINT] = STR(tls_fingerprint),
	[ACCF_TLS_CERT_FILE] = STR(tls_cert_file),
	[ACCF_TLS_KEY_FILE] = STR(tls_key_file),
	[ACCF_TLS_CERTCHECK] = SCALAR(tls_certcheck),
	[ACCF_TLS_HOST_OVERRIDE] = STR(tls_host_override),
	[ACCF_FROM] = STR(from),
	[ACCF_FROM_FULL_NAME] = STR(from_full_name),
	[ACCF_ALLOW_FROM_OVERRIDE] = SCALAR(allow_from_override),
	[ACCF_DSN_NOTIFY] = STR(dsn_notify),
	[ACCF_DSN_RETURN] = STR(dsn_return),
	[ACCF_SET_FROM_HEADER] = SCALAR(set_from_header),
	[ACCF_SET_DATE_HEADER] = SCALAR(set_date_header),
	[ACCF_SET_MSGID_HEADER] = SCALAR(set_msgid_header),
	[ACCF_SET_TO_HEADER] = SCALAR(set_to_header),
	[ACCF_REMOVE_BCC_HEADERS] = SCALAR(remove_bcc_headers),
	[ACCF_FROM_REWRITE] = SCALAR(from_rewrite),
	[ACCF_FROM_REWRITE_HEADER] = SCALAR(from_rewrite_header),
	[ACCF_ALIASES] = STR(aliases),
	[ACCF_LOGFILE] = STR(logfile),
	[ACCF_LOGFILE_TIME_FORMAT] = STR(logfile_time_format),
	[ACCF_SYSLOG] = STR(syslog),
	[ACCF_OAUTH2_PROVIDER] = SCALAR(oauth2_provider),
	[ACCF_OAUTH2_CLIENT_ID] = STR(oauth2_client_id),
	[ACCF_OAUTH2_CLIENT_SECRET] = SECRET(oauth2_client_secret),
	[ACCF_OAUTH2_CLIENT_SECRET_EVAL] = STR(oauth2_client_secret_eval),
	[ACCF_OAUTH2_TENANT] = STR(oauth2_tenant),
	[ACCF_OAUTH2_AUTH_ENDPOINT] = STR(oauth2_auth_endpoint),
	[ACCF_OAUTH2_TOKEN_ENDPOINT] = STR(oauth2_token_endpoint),
	[ACCF_OAUTH2_DEVICE_ENDPOINT] = STR(oauth2_device_endpoint),
	[ACCF_OAUTH2_SCOPE] = STR(oauth2_scope),
	[ACCF_OAUTH2_TOKEN_STORE] = STR(oauth2_token_store),
	[ACCF_OAUTH2_TOKEN_CACHE] = STR(oauth2_token_cache),
	[ACCF_OAUTH2_CA_FILE] = STR(oauth2_ca_file),
	[ACCF_OAUTH2_REFRESH_MARGIN] = SCALAR(oauth2_refresh_margin),
	[ACCF_NOTIFY_COMMAND] = STR(notify_command),
	[ACCF_QUEUE] = SCALAR(queue),
	[ACCF_QUEUE_DIR] = STR(queue_dir),
	[ACCF_QUEUE_MAX_AGE] = SCALAR(queue_max_age),
	[ACCF_SESSION_PERSIST] = SCALAR(session_persist),
	[ACCF_SESSION_MAX_AGE] = SCALAR(session_max_age),
	[ACCF_SESSION_MAX_MESSAGES] = SCALAR(session_max_messages),
	[ACCF_MESSAGE_ID_FIX] = SCALAR(message_id_fix),
	[ACCF_AUTO_FROM] = SCALAR(auto_from),
	[ACCF_MAILDOMAIN] = STR(maildomain),
	[ACCF_SYSTEM_FROM_OVERRIDE] = STR(system_from_override),
	[ACCF_PROXY_HOST] = STR(proxy_host),
	[ACCF_PROXY_PORT] = SCALAR(proxy_port),
	[ACCF_SYSTEM_REJECTED_MAX_AGE] = SCALAR(system_rejected_max_age),
	[ACCF_SYSTEM_REJECTED_MAX_COUNT] = SCALAR(system_rejected_max_count),
	[ACCF_SYSTEM_REJECTED_MAX_SIZE] = SCALAR(system_rejected_max_size),
	[ACCF_OAUTH2_REVOCATION_ENDPOINT] = STR(oauth2_revocation_endpoint),
	[ACCF_TRANSPORT] = SCALAR(transport),
	[ACCF_API_URL] = STR(api_url),
	[ACCF_CONFINE] = SCALAR(confine),
	[ACCF_OAUTH2_TOKEN_STORE_WRITE] = STR(oauth2_token_store_write),
};

static char **
str_slot(struct account *acc, enum account_field f)
{
	return (char **)(void *)((char *)acc + fields[f].offset);
}

static char *const *
str_slot_const(const struct account *acc, enum account_field f)
{
	return (char *const *)(const void *)((const char *)acc +
		fields[f].offset);
}

static void
free_str(char *s, int secret)
{
	if (s != NULL && secret) {
		util_wipe(s, strlen(s));
	}
	free(s);
}

static char *
dup_or_null(const char *s, int *ret_failed)
{
	char *d;

	if (s == NULL) {
		return NULL;
	}
	d = strdup(s);
	if (d == NULL) {
		*ret_failed = 1;
	}
	return d;
}

int
account_helper_timeout_s(const struct account *acc)
{
	return acc->timeout > 0 ? acc->timeout : ACCOUNT_HELPER_TIMEOUT_S;
}

struct account *
account_new(void)
{
	struct account *acc = calloc(1, sizeof(*acc));

	if (acc == NULL) {
		return NULL;
	}
	/* port stays 0 until resolved: it depends on tls and tls_starttls */
	acc->timeout = 60;
	acc->auth = AUTH_OFF;
	acc->tls = 1;
	acc->tls_starttls = 1;
	acc->tls_certcheck = 1;
	acc->allow_from_override = 1;
	acc->set_from_header = HDR_AUTO;
	acc->set_date_header = HDR_AUTO;
	acc->set_msgid_header = HDR_AUTO;
	acc->set_to_header = HDR_OFF;
	acc->remove_bcc_headers = 1;
	acc->oauth2_provider = OAUTH2_NONE;
	acc->oauth2_refresh_margin = 600;
	acc->queue = QUEUE_OFF;
	acc->queue_max_age = 5L * 24 * 3600;
	acc->system_rejected_max_age = ACCOUNT_REJECTED_MAX_AGE;
	acc->system_rejected_max_count = ACCOUNT_REJECTED_MAX_COUNT;
	acc->system_rejected_max_size = ACCOUNT_REJECTED_MAX_SIZE;
	acc->confine = 1;
	acc->session_persist = 5;
	acc->session_max_age = 300;
	acc->session_max_messages = 100;
	acc->message_id_fix = HDR_AUTO;
	return acc;
}

void
account_use_msmtp_defaults(struct account *acc)
{
	acc->tls = 0;
	acc->auth = AUTH_OFF;
	acc->msmtp_defaults = 1;
}

struct account *
account_dup(const struct account *src)
{
	struct account *acc = malloc(sizeof(*acc));
	int failed = 0;
	size_t i;

	if (acc == NULL) {
		return NULL;
	}
	memcpy(acc, src, sizeof(*acc));
	acc->name = dup_or_null(src->name, &failed);
	acc->file = dup_or_null(src->file, &failed);
	for (i = 0; i < ACCF_MAX; i++) {
		if (fields[i].kind != FK_SCALAR) {
			char **slot = str_slot(acc, (enum account_field)i);

			*slot = dup_or_null(*slot, &failed);
		}
	}
	if (failed) {
		account_free(acc);
		return NULL;
	}
	return acc;
}

enum err
account_set_str(struct account *acc, enum account_field f, const char *value)
{
	char **slot;
	char *copy = NULL;

	if (f >= ACCF_MAX || fields[f].kind == FK_SCALAR) {
		return ERR_INTERNAL;
	}
	if (value != NULL) {
		copy = strdup(value);
		if (copy == NULL) {
			return ERR_NOMEM;
		}
	}
	slot = str_slot(acc, f);
	free_str(*slot, fields[f].kind == FK_SECRET);
	*slot = copy;
	return ERR_OK;
}

enum err
account_inherit(struct account *dst, const struct account *src)
{
	size_t i;

	for (i = 0; i < ACCF_MAX; i++) {
		enum account_field f = (enum account_field)i;

		if (!src->set[i]) {
			continue;
		}
		if (fields[i].kind == FK_SCALAR) {
			memcpy((char *)dst + fields[i].offset,
				(const char *)src + fields[i].offset,
				fields[i].size);
		} else if (account_set_str(dst, f, *str_slot_const(src, f))
			!= ERR_OK) {
			return ERR_NOMEM;
		}
		dst->set[i] = ACC_SET_EXPLICIT;
	}
	return ERR_OK;
}

void
account_free(struct account *acc)
{
	size_t i;

	if (acc == NULL) {
		return;
	}
	for (i = 0; i < ACCF_MAX; i++) {
		if (fields[i].kind != FK_SCALAR) {
			free_str(*str_slot(acc, (enum account_field)i),
				fields[i].kind == FK_SECRET);
		}
	}
	free(acc->name);
	free(acc->file);
	util_wipe(acc, sizeof(*acc));
	free(acc);
}

int
account_is_oauth(const struct account *acc)
{
	if (acc == NULL) {
		return 0;
	}
	return acc->auth == AUTH_XOAUTH2 || acc->auth == AUTH_OAUTHBEARER
		|| acc->oauth2_provider != OAUTH2_NONE
		|| acc->oauth2_client_id != NULL
		|| acc->oauth2_token_endpoint != NULL;
}

const char *
account_auth_name(enum auth_method m)
{
	static const char *const names[AUTH_MAX] = {
		[AUTH_OFF] = "off",
		[AUTH_ON] = "on",
		[AUTH_PLAIN] = "plain",
		[AUTH_LOGIN] = "login",
		[AUTH_XOAUTH2] = "xoauth2",
		[AUTH_OAUTHBEARER] = "oauthbearer",
		[AUTH_CRAM_MD5] = "cram-md5",
		[AUTH_SCRAM_SHA_1] = "scram-sha-1",
		[AUTH_SCRAM_SHA_256] = "scram-sha-256",
	};

	if ((unsigned)m >= AUTH_MAX) {
		return "?";
	}
	return names[m];
}

enum err
account_set_num(struct account *acc, enum account_field f, long v)
{
	char *p;

	if (f >= ACCF_MAX || fields[f].kind != FK_SCALAR) {
		return ERR_INTERNAL;
	}
	p = (char *)acc + fields[f].offset;
	if (fields[f].size == sizeof(int)) {
		int i = (int)v;

		memcpy(p, &i, sizeof(i));
	} else if (fields[f].size == sizeof(long)) {
		memcpy(p, &v, sizeof(v));
	} else {
		return ERR_INTERNAL;
	}
	return ERR_OK;
}

void
account_submit_server(const struct account *acc, struct submit_server *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->name = acc->name;
	ret->host = acc->host;
	ret->port = acc->port;
	ret->source_ip = acc->source_ip;
	ret->proxy_host = acc->proxy_host;
	ret->proxy_port = acc->proxy_port;
	ret->domain = acc->domain;
	ret->timeout = acc->timeout;
	ret->tls = acc->tls;
	ret->starttls = acc->tls_starttls;
	ret->tls_params.host = acc->tls_host_override != NULL ?
		acc->tls_host_override : acc->host;
	ret->tls_params.trust_file = acc->tls_trust_file;
	ret->tls_params.crl_file = acc->tls_crl_file;
	ret->tls_params.fingerprint = acc->tls_fingerprint;
	ret->tls_params.cert_file = acc->tls_cert_file;
	ret->tls_params.key_file = acc->tls_key_file;
	ret->tls_params.certcheck = acc->tls_certcheck;
	ret->auth = acc->auth;
	ret->oauth = account_is_oauth(acc);
	ret->user = acc->user;
}
