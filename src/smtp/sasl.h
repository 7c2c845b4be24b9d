/*
 * sasl.h - the SASL mechanisms oasmtp speaks, as a table of payload
 * builders.  A mechanism only builds client messages; the SMTP engine owns
 * the exchange (AUTH line, 334 continuations, 235/535, the 512-octet
 * initial-response rule) and the base64 layer.
 *
 * Mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login),
 * XOAUTH2 (Google/Microsoft), OAUTHBEARER (RFC 7628).
 *
 * Payloads are raw (not base64) and always go into a caller-owned secret
 * buffer (buf_init_secret): they contain the password or the access token.
 */
#ifndef OASMTP_SASL_H
#define OASMTP_SASL_H

#include <stddef.h>

#include "err.h"

struct buf;

/* How an account authenticates (the msmtprc `auth` key). */
enum auth_method {
	AUTH_OFF = 0,
	AUTH_ON,		/* choose the best mechanism the server offers */
	AUTH_PLAIN,
	AUTH_LOGIN,
	AUTH_XOAUTH2,
	AUTH_OAUTHBEARER,
	AUTH_MAX
};

/* Credentials and connection facts a builder may use; all borrowed. */
struct sasl_cred {
	const char *user;	/* authentication identity, never NULL */
	const char *secret;	/* password or access token */
	size_t secret_len;
	const char *host;	/* OAUTHBEARER host=, may be NULL */
	int port;		/* OAUTHBEARER port=, 0 = omit */
};

enum sasl_flags {
	SASL_TOKEN = 1 << 0,	/* the secret is an OAuth2 access token */
	SASL_INITIAL = 1 << 1,	/* first message may ride on the AUTH line */
};

struct sasl_mech {
	const char *name;		/* as in the EHLO AUTH list */
	enum auth_method method;
	unsigned flags;
	unsigned n_steps;		/* client messages in a successful run */
	/*
	 * Build client message number step (0-based) into ret_raw (appended;
	 * a secret buffer).  Errors: ERR_LIMIT, ERR_NOMEM, ERR_DATA when the
	 * credentials contain bytes the mechanism cannot carry.
	 */
	enum err (*build)(const struct sasl_cred *cred, unsigned step,
		struct buf *ret_raw, struct errinfo *reterr);
	/*
	 * Raw answer to an error challenge (a 334 after the last message):
	 * "" for XOAUTH2, "\x01" for OAUTHBEARER (RFC 7628 section 3.2.3).
	 * NULL when the mechanism has no error challenges.
	 */
	const char *error_ack;
	size_t error_ack_len;
};

/* The mechanism named name (ASCII case-insensitive), or NULL. */
const struct sasl_mech *sasl_find(const char *name, size_t len);

/* The mechanism for an explicit auth method, NULL for AUTH_OFF/AUTH_ON. */
const struct sasl_mech *sasl_by_method(enum auth_method m);

/* Table access: index 0..n-1, NULL past the end.  Order is preference. */
const struct sasl_mech *sasl_at(size_t i);
size_t sasl_count(void);

#endif
