/*
 * sasl.h - the SASL mechanisms oasmtp speaks, as a table of payload
 * builders.  A mechanism only builds client messages; the SMTP engine owns
 * the exchange (AUTH line, 334 continuations, 235/535, the 512-octet
 * initial-response rule) and the base64 layer.
 *
 * Mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login),
 * XOAUTH2 (Google/Microsoft), OAUTHBEARER (RFC 7628), CRAM-MD5 (RFC 2195),
 * SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677), without channel
 * binding; the digests are OpenSSL's.
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
	AUTH_CRAM_MD5,
	AUTH_SCRAM_SHA_1,
	AUTH_SCRAM_SHA_256,
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
	/*
	 * The server proves it knows the password (SCRAM server-final): a
	 * 235 before respond() set sasl_state.verified is a failure.
	 */
	SASL_SERVER_FINAL = 1 << 2,
};

#define SASL_NONCE_MAX 64

/*
 * What a challenge-driven mechanism keeps between its steps.  Owned by
 * the caller, zeroed before step 0 and wiped (util_wipe) afterwards.  A
 * non-empty nonce before step 0 is used as the SCRAM client nonce (test
 * vectors); otherwise step 0 draws one from OpenSSL's RAND_bytes.
 */
struct sasl_state {
	char nonce[SASL_NONCE_MAX + 1];
	unsigned char server_sig[64];	/* expected ServerSignature */
	size_t server_sig_len;
	int verified;			/* server-final checked */
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
	/*
	 * Challenge-driven mechanisms (CRAM-MD5, SCRAM) have respond instead
	 * of build: client message number step from the decoded server
	 * challenge chal[0..chal_len) (NULL for an initial response).
	 * Errors: ERR_PROTO for a malformed or unexpected challenge (the
	 * message says what), ERR_AUTH when the server fails to prove it
	 * knows the password or reports an error (SCRAM e=), ERR_DATA,
	 * ERR_LIMIT, ERR_NOMEM, ERR_INTERNAL when no random nonce can be
	 * drawn.
	 */
	enum err (*respond)(const struct sasl_cred *cred,
		struct sasl_state *st, unsigned step, const char *chal,
		size_t chal_len, struct buf *ret_raw, struct errinfo *reterr);
};

/* The mechanism named name (ASCII case-insensitive), or NULL. */
const struct sasl_mech *sasl_find(const char *name, size_t len);

/* The mechanism for an explicit auth method, NULL for AUTH_OFF/AUTH_ON. */
const struct sasl_mech *sasl_by_method(enum auth_method m);

/* Table access: index 0..n-1, NULL past the end.  Order is preference. */
const struct sasl_mech *sasl_at(size_t i);
size_t sasl_count(void);

#endif
