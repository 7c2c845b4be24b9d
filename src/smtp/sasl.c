/*
 * sasl.c - SASL client message builders; see sasl.h.
 *
 * Formats (before base64; ^A is 0x01, \0 is NUL):
 *   PLAIN        \0 user \0 password                        (RFC 4616)
 *   LOGIN        user, then password, one per 334 prompt
 *   XOAUTH2      "user=" U ^A "auth=Bearer " T ^A ^A
 *   OAUTHBEARER  "n,a=" U' "," ^A "host=" H ^A "port=" P ^A
 *                "auth=Bearer " T ^A ^A                     (RFC 7628)
 *                where U' is U with "," as "=2C" and "=" as "=3D"
 *   CRAM-MD5     U " " hex(HMAC-MD5(password, challenge))   (RFC 2195)
 *   SCRAM-*      "n,,n=" U' ",r=" CNONCE; then
 *                "c=biws,r=" NONCE ",p=" base64(proof); then "" after
 *                checking the server's "v=" signature       (RFC 5802)
 *                where U' escapes "," and "=" as for OAUTHBEARER
 */
#include "sasl.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "buf.h"
#include "transport.h"	/* transport_tls_init() */
#include "util.h"

/* SCRAM: the decoded salt, the AuthMessage and client-final, the server signature */
#define SCRAM_SALT_MAX 1024
#define SCRAM_MSG_MAX 8192
#define SCRAM_SIG_MAX 256

static MUST_CHECK enum err
fail(enum err e, struct errinfo *reterr)
{
	if (e == ERR_NOMEM) {
		return errinfo_set(reterr, e, "out of memory");
	}
	return errinfo_set(reterr, e, "authentication data too long");
}

static int
has_byte(const char *s, size_t n, char c)
{
	return memchr(s, c, n) != NULL;
}

static MUST_CHECK enum err
build_plain(const struct sasl_cred *c, unsigned step, struct buf *out,
	struct errinfo *reterr)
{
	enum err e;

	if (has_byte(c->user, strlen(c->user), '\0') ||
	    has_byte(c->secret, c->secret_len, '\0')) {
		return errinfo_set(reterr, ERR_DATA, "PLAIN cannot carry a "
			"NUL byte in the user name or password");
	}
	e = buf_putc(out, '\0');
	if (e == ERR_OK) {
		e = buf_append_str(out, c->user);
	}
	if (e == ERR_OK) {
		e = buf_putc(out, '\0');
	}
	if (e == ERR_OK) {
		e = buf_append(out, c->secret, c->secret_len);
	}
	return e == ERR_OK ? ERR_OK : fail(e, reterr);
}

static MUST_CHECK enum err
build_login(const struct sasl_cred *c, unsigned step, struct buf *out,
	struct errinfo *reterr)
{
	enum err e;

	if (step == 0) {
		e = buf_append_str(out, c->user);
	} else {
		e = buf_append(out, c->secret, c->secret_len);
	}
	return e == ERR_OK ? ERR_OK : fail(e, reterr);
}

static int
token_ok(const struct sasl_cred *c)
{
	size_t i;

	for (i = 0; i < c->secret_len; i++) {
		unsigned char ch = (unsigned char)c->secret[i];

		if (ch <= 0x20 || ch >= 0x7f) {
			return 0;
		}
	}
	return c->secret_len > 0;
}

/* The end both bearer mechanisms share: "auth=Bearer TOKEN^A^A". */
static MUST_CHECK enum err
append_bearer(const struct sasl_cred *c, struct buf *out)
{
	enum err e = buf_append_str(out, "auth=Bearer ");

	if (e == ERR_OK) {
		e = buf_append(out, c->secret, c->secret_len);
	}
	if (e == ERR_OK) {
		e = buf_append_str(out, "\x01\x01");
	}
	return e;
}

static MUST_CHECK enum err
build_xoauth2(const struct sasl_cred *c, unsigned step, struct buf *out,
	struct errinfo *reterr)
{
	enum err e;

	if (!token_ok(c)) {
		return errinfo_set(reterr, ERR_DATA, "the access token is "
			"empty or contains spaces or control characters");
	}
	if (has_byte(c->user, strlen(c->user), '\x01')) {
		return errinfo_set(reterr, ERR_DATA, "user name contains ^A");
	}
	e = buf_append_str(out, "user=");
	if (e == ERR_OK) {
		e = buf_append_str(out, c->user);
	}
	if (e == ERR_OK) {
		e = buf_putc(out, '\x01');
	}
	if (e == ERR_OK) {
		e = append_bearer(c, out);
	}
	return e == ERR_OK ? ERR_OK : fail(e, reterr);
}

static MUST_CHECK enum err
build_oauthbearer(const struct sasl_cred *c, unsigned step, struct buf *out,
	struct errinfo *reterr)
{
	const char *u;
	enum err e;

	if (!token_ok(c)) {
		return errinfo_set(reterr, ERR_DATA, "the access token is "
			"empty or contains spaces or control characters");
	}
	if (has_byte(c->user, strlen(c->user), '\x01') ||
	    (c->host != NULL && has_byte(c->host, strlen(c->host), '\x01'))) {
		return errinfo_set(reterr, ERR_DATA, "user or host name "
			"contains ^A");
	}
	e = buf_append_str(out, "n,a=");
	for (u = c->user; *u != '\0' && e == ERR_OK; u++) {
		if (*u == ',') {
			e = buf_append_str(out, "=2C");
		} else if (*u == '=') {
			e = buf_append_str(out, "=3D");
		} else {
			e = buf_putc(out, *u);
		}
	}
	if (e == ERR_OK) {
		e = buf_append_str(out, ",\x01");
	}
	if (e == ERR_OK && c->host != NULL && c->host[0] != '\0') {
		e = buf_printf(out, "host=%s\x01", c->host);
	}
	if (e == ERR_OK && c->port > 0) {
		e = buf_printf(out, "port=%d\x01", c->port);
	}
	if (e == ERR_OK) {
		e = append_bearer(c, out);
	}
	return e == ERR_OK ? ERR_OK : fail(e, reterr);
}

/* ---- challenge-driven mechanisms ---- */

/*
 * OpenSSL started as transport_tls_init() starts it (the system
 * configuration, no exit-time clean-up), before the first HMAC, random
 * nonce or PBKDF2 of a session without TLS would start it with defaults.
 */
static MUST_CHECK enum err
crypto_ready(const char *mech, struct errinfo *reterr)
{
	if (!transport_tls_init()) {
		return errinfo_set(reterr, ERR_INTERNAL, "%s: cannot "
			"initialise OpenSSL", mech);
	}
	return ERR_OK;
}

static MUST_CHECK enum err
hmac_of(const EVP_MD *md, const void *key, size_t key_len, const void *data,
	size_t n, unsigned char *out, unsigned *ret_len)
{
	if (HMAC(md, key, (int)key_len, data, n, out, ret_len) == NULL) {
		return ERR_NOMEM;
	}
	return ERR_OK;
}

static MUST_CHECK enum err
respond_cram_md5(const struct sasl_cred *c, struct sasl_state *st,
	unsigned step, const char *chal, size_t chal_len, struct buf *out,
	struct errinfo *reterr)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	unsigned mac_len = 0;
	enum err e;

	if (chal == NULL || chal_len == 0) {
		return errinfo_set(reterr, ERR_PROTO, "CRAM-MD5: the server "
			"sent an empty challenge");
	}
	e = crypto_ready("CRAM-MD5", reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (hmac_of(EVP_md5(), c->secret, c->secret_len, chal, chal_len, mac,
		&mac_len) != ERR_OK) {
		return errinfo_set(reterr, ERR_NOMEM, "CRAM-MD5: HMAC failed");
	}
	util_hex(hex, mac, mac_len);
	e = buf_append_str(out, c->user);
	if (e == ERR_OK) {
		e = buf_putc(out, ' ');
	}
	if (e == ERR_OK) {
		e = buf_append_str(out, hex);
	}
	util_wipe(mac, sizeof(mac));
	util_wipe(hex, sizeof(hex));
	return e == ERR_OK ? ERR_OK : fail(e, reterr);
}

/* Append U with "," as "=2C" and "=" as "=3D" (RFC 5802 saslname). */
static MUST_CHECK enum err
append_saslname(struct buf *out, const char *u)
{
	enum err e = ERR_OK;

	for (; *u != '\0' && e == ERR_OK; u++) {
		if (*u == ',') {
			e = buf_append_str(out, "=2C");
		} else if (*u == '=') {
			e = buf_append_str(out, "=3D");
		} else {
			e = buf_putc(out, *u);
		}
	}
	return e;
}

static MUST_CHECK enum err
scram_client_first_bare(const struct sasl_cred *c,
	const struct sasl_state *st, struct buf *out)
{
	enum err e = buf_append_str(out, "n=");

	if (e == ERR_OK) {
		e = append_saslname(out, c->user);
	}
	if (e == ERR_OK) {
		e = buf_printf(out, ",r=%s", st->nonce);
	}
	return e;
}

/* Value of attribute `name` (one letter) in a SCRAM message, or NULL. */
static const char *
scram_attr(const char *msg, char name, size_t *ret_len)
{
	const char *p = msg;

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, ',');

		if (p[0] == name && p[1] == '=') {
			*ret_len = (end != NULL ? (size_t)(end - p)
				: strlen(p)) - 2;
			return p + 2;
		}
		p = end != NULL ? end + 1 : NULL;
	}
	return NULL;
}

static MUST_CHECK enum err
scram_step0(const struct sasl_cred *c, struct sasl_state *st,
	struct buf *out, struct errinfo *reterr)
{
	enum err e;

	if (st->nonce[0] == '\0') {
		unsigned char rnd[24];
		struct buf b;

		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			return errinfo_set(reterr, ERR_INTERNAL, "SCRAM: cannot "
				"draw a random nonce");
		}
		buf_init(&b, sizeof(st->nonce));
		e = util_base64_encode(&b, rnd, sizeof(rnd));
		if (e == ERR_OK) {
			util_strlcpy(st->nonce, buf_cstr(&b),
				sizeof(st->nonce));
		}
		buf_release(&b);
		if (e != ERR_OK) {
			return fail(e, reterr);
		}
	}
	if (strchr(st->nonce, ',') != NULL) {
		return errinfo_set(reterr, ERR_INTERNAL, "SCRAM: bad nonce");
	}
	e = buf_append_str(out, "n,,");
	if (e == ERR_OK) {
		e = scram_client_first_bare(c, st, out);
	}
	return e == ERR_OK ? ERR_OK : fail(e, reterr);
}

/* Text of a challenge for messages: cut short, no control bytes. */
static const char *
shown(const char *chal, size_t n, char *tmp, size_t size)
{
	size_t i, k = 0;

	for (i = 0; i < n && k + 1 < size; i++) {
		unsigned char ch = (unsigned char)chal[i];

		tmp[k++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	tmp[k] = '\0';
	return tmp;
}

static MUST_CHECK enum err
scram_step1(const struct sasl_mech *m, const EVP_MD *md,
	const struct sasl_cred *c, struct sasl_state *st, const char *chal,
	size_t chal_len, struct buf *out, struct errinfo *reterr)
{
	unsigned char salted[EVP_MAX_MD_SIZE], ckey[EVP_MAX_MD_SIZE];
	unsigned char skey[EVP_MAX_MD_SIZE], stored[EVP_MAX_MD_SIZE];
	unsigned char csig[EVP_MAX_MD_SIZE];
	unsigned int hlen = (unsigned)EVP_MD_size(md), n = 0, i;
	const char *r, *salt_b64, *iter;
	size_t r_len = 0, salt_len = 0, iter_len = 0;
	char server_first[2048], num[16], tmp[80];
	struct buf salt, auth_msg, final;
	long iterations = 0;
	enum err e = ERR_OK;

	if (chal == NULL || chal_len == 0 || chal_len >= sizeof(server_first)
		|| memchr(chal, '\0', chal_len) != NULL) {
		return errinfo_set(reterr, ERR_PROTO, "%s: unexpected server "
			"challenge", m->name);
	}
	memcpy(server_first, chal, chal_len);
	server_first[chal_len] = '\0';
	if (server_first[0] == 'm') {
		return errinfo_set(reterr, ERR_PROTO, "%s: the server demands "
			"an extension oasmtp does not know", m->name);
	}
	r = scram_attr(server_first, 'r', &r_len);
	salt_b64 = scram_attr(server_first, 's', &salt_len);
	iter = scram_attr(server_first, 'i', &iter_len);
	if (r == NULL || salt_b64 == NULL || iter == NULL || iter_len == 0
		|| iter_len >= sizeof(num)) {
		return errinfo_set(reterr, ERR_PROTO, "%s: malformed server "
			"challenge '%s'", m->name,
			shown(chal, chal_len, tmp, sizeof(tmp)));
	}
	if (r_len <= strlen(st->nonce)
		|| strncmp(r, st->nonce, strlen(st->nonce)) != 0) {
		return errinfo_set(reterr, ERR_PROTO, "%s: the server's nonce "
			"does not extend ours", m->name);
	}
	memcpy(num, iter, iter_len);
	num[iter_len] = '\0';
	/* RFC 7677 asks for 4096 or more; 10 million bounds the work */
	if (util_parse_long(num, 1, 10000000L, &iterations) != 0) {
		return errinfo_set(reterr, ERR_PROTO, "%s: bad iteration count "
			"'%s'", m->name, num);
	}
	buf_init(&salt, SCRAM_SALT_MAX);
	if (util_base64_decode(&salt, salt_b64, salt_len) != ERR_OK
		|| salt.len == 0) {
		buf_release(&salt);
		return errinfo_set(reterr, ERR_PROTO, "%s: bad salt", m->name);
	}
	if (PKCS5_PBKDF2_HMAC(c->secret, (int)c->secret_len,
		(const unsigned char *)salt.data,
		(int)salt.len, (int)iterations, md, (int)hlen, salted) != 1) {
		buf_release(&salt);
		return errinfo_set(reterr, ERR_NOMEM, "%s: PBKDF2 failed",
			m->name);
	}
	buf_release(&salt);

	buf_init_secret(&auth_msg, SCRAM_MSG_MAX);
	buf_init_secret(&final, SCRAM_MSG_MAX);
	e = scram_client_first_bare(c, st, &auth_msg);
	if (e == ERR_OK) {
		e = buf_printf(&auth_msg, ",%s,", server_first);
	}
	if (e == ERR_OK) {
		e = buf_printf(&final, "c=biws,r=%.*s", (int)r_len, r);
	}
	if (e == ERR_OK) {
		e = buf_append(&auth_msg, final.data, final.len);
	}
	if (e == ERR_OK) {
		e = hmac_of(md, salted, hlen, "Client Key", 10, ckey, &n);
	}
	if (e == ERR_OK && EVP_Digest(ckey, hlen, stored, &n, md, NULL) != 1) {
		e = ERR_NOMEM;
	}
	if (e == ERR_OK) {
		e = hmac_of(md, stored, hlen, auth_msg.data, auth_msg.len,
			csig, &n);
	}
	if (e == ERR_OK) {
		e = hmac_of(md, salted, hlen, "Server Key", 10, skey, &n);
	}
	if (e == ERR_OK) {
		e = hmac_of(md, skey, hlen, auth_msg.data, auth_msg.len,
			st->server_sig, &n);
		st->server_sig_len = hlen;
	}
	for (i = 0; i < hlen; i++) {
		ckey[i] ^= csig[i];	/* ClientProof */
	}
	if (e == ERR_OK) {
		e = buf_append(out, final.data, final.len);
	}
	if (e == ERR_OK) {
		e = buf_append_str(out, ",p=");
	}
	if (e == ERR_OK) {
		e = util_base64_encode(out, ckey, hlen);
	}
	util_wipe(salted, sizeof(salted));
	util_wipe(ckey, sizeof(ckey));
	util_wipe(skey, sizeof(skey));
	util_wipe(stored, sizeof(stored));
	util_wipe(csig, sizeof(csig));
	buf_release(&auth_msg);
	buf_release(&final);
	return e == ERR_OK ? ERR_OK : fail(e, reterr);
}

static MUST_CHECK enum err
scram_step2(const struct sasl_mech *m, struct sasl_state *st,
	const char *chal, size_t chal_len, struct errinfo *reterr)
{
	struct buf sig;
	char tmp[80];
	int match;

	if (chal != NULL && chal_len > 2 && chal[0] == 'e' && chal[1] == '=') {
		return errinfo_set(reterr, ERR_AUTH, "%s: the server refused: "
			"%s", m->name, shown(chal + 2, chal_len - 2, tmp,
			sizeof(tmp)));
	}
	if (chal == NULL || chal_len < 2 || chal[0] != 'v' || chal[1] != '='
		|| st->server_sig_len == 0) {
		return errinfo_set(reterr, ERR_PROTO, "%s: unexpected server "
			"final message", m->name);
	}
	buf_init(&sig, SCRAM_SIG_MAX);
	match = util_base64_decode(&sig, chal + 2, chal_len - 2) == ERR_OK
		&& sig.len == st->server_sig_len
		&& CRYPTO_memcmp(sig.data, st->server_sig, sig.len) == 0;
	buf_release(&sig);
	if (!match) {
		return errinfo_set(reterr, ERR_AUTH, "%s: the server signature "
			"is wrong: this server does not know the password (a "
			"server in the middle?)", m->name);
	}
	st->verified = 1;
	return ERR_OK;
}

static MUST_CHECK enum err
respond_scram(const struct sasl_mech *m, const EVP_MD *md,
	const struct sasl_cred *c, struct sasl_state *st, unsigned step,
	const char *chal, size_t chal_len, struct buf *out,
	struct errinfo *reterr)
{
	enum err e = crypto_ready(m->name, reterr);

	if (e != ERR_OK) {
		return e;
	}
	switch (step) {
	case 0:
		return scram_step0(c, st, out, reterr);
	case 1:
		return scram_step1(m, md, c, st, chal, chal_len, out, reterr);
	case 2:
		return scram_step2(m, st, chal, chal_len, reterr);
	default:
		return errinfo_set(reterr, ERR_PROTO, "%s: unexpected server "
			"challenge", m->name);
	}
}


static MUST_CHECK enum err
respond_scram_sha1(const struct sasl_cred *c, struct sasl_state *st,
	unsigned step, const char *chal, size_t chal_len, struct buf *out,
	struct errinfo *reterr)
{
	return respond_scram(sasl_by_method(AUTH_SCRAM_SHA_1), EVP_sha1(), c,
		st, step, chal, chal_len, out, reterr);
}

static MUST_CHECK enum err
respond_scram_sha256(const struct sasl_cred *c, struct sasl_state *st,
	unsigned step, const char *chal, size_t chal_len, struct buf *out,
	struct errinfo *reterr)
{
	return respond_scram(sasl_by_method(AUTH_SCRAM_SHA_256),
		EVP_sha256(), c, st, step, chal, chal_len, out, reterr);
}

/*
 * Preference order for `auth on`: token mechanisms, then password ones
 * from the strongest (the password never leaves, the server proves it
 * knows it) to the weakest.
 */
static const struct sasl_mech mechs[] = {
	{ "XOAUTH2", AUTH_XOAUTH2, SASL_TOKEN | SASL_INITIAL, 1,
		build_xoauth2, "", 0, NULL },
	{ "OAUTHBEARER", AUTH_OAUTHBEARER, SASL_TOKEN | SASL_INITIAL, 1,
		build_oauthbearer, "\x01", 1, NULL },
	{ "SCRAM-SHA-256", AUTH_SCRAM_SHA_256,
		SASL_INITIAL | SASL_SERVER_FINAL, 3, NULL, NULL, 0,
		respond_scram_sha256 },
	{ "SCRAM-SHA-1", AUTH_SCRAM_SHA_1, SASL_INITIAL | SASL_SERVER_FINAL,
		3, NULL, NULL, 0, respond_scram_sha1 },
	{ "CRAM-MD5", AUTH_CRAM_MD5, 0, 1, NULL, NULL, 0, respond_cram_md5 },
	{ "PLAIN", AUTH_PLAIN, SASL_INITIAL, 1, build_plain, NULL, 0, NULL },
	{ "LOGIN", AUTH_LOGIN, 0, 2, build_login, NULL, 0, NULL },
};

size_t
sasl_count(void)
{
	return sizeof(mechs) / sizeof(mechs[0]);
}

const struct sasl_mech *
sasl_at(size_t i)
{
	return i < sasl_count() ? &mechs[i] : NULL;
}

const struct sasl_mech *
sasl_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sasl_count(); i++) {
		if (strlen(mechs[i].name) == len &&
		    util_strncasecmp(mechs[i].name, name, len) == 0) {
			return &mechs[i];
		}
	}
	return NULL;
}

const struct sasl_mech *
sasl_by_method(enum auth_method m)
{
	size_t i;

	for (i = 0; i < sasl_count(); i++) {
		if (mechs[i].method == m) {
			return &mechs[i];
		}
	}
	return NULL;
}
