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
 */
#include "sasl.h"

#include <string.h>

#include "buf.h"
#include "util.h"

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
		e = buf_append_str(out, "\x01" "auth=Bearer ");
	}
	if (e == ERR_OK) {
		e = buf_append(out, c->secret, c->secret_len);
	}
	if (e == ERR_OK) {
		e = buf_append_str(out, "\x01\x01");
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
		e = buf_append_str(out, "auth=Bearer ");
	}
	if (e == ERR_OK) {
		e = buf_append(out, c->secret, c->secret_len);
	}
	if (e == ERR_OK) {
		e = buf_append_str(out, "\x01\x01");
	}
	return e == ERR_OK ? ERR_OK : fail(e, reterr);
}

/* Preference order for `auth on`: token mechanisms, then password ones. */
static const struct sasl_mech mechs[] = {
	{ "XOAUTH2", AUTH_XOAUTH2, SASL_TOKEN | SASL_INITIAL, 1,
		build_xoauth2, "", 0 },
	{ "OAUTHBEARER", AUTH_OAUTHBEARER, SASL_TOKEN | SASL_INITIAL, 1,
		build_oauthbearer, "\x01", 1 },
	{ "PLAIN", AUTH_PLAIN, SASL_INITIAL, 1, build_plain, NULL, 0 },
	{ "LOGIN", AUTH_LOGIN, 0, 2, build_login, NULL, 0 },
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
