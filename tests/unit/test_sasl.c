/* test_sasl.c - SASL payload builders against published example vectors. */
#include <string.h>

#include "buf.h"
#include "sasl.h"
#include "tap.h"
#include "util.h"

/* Build step `step` of mechanism name and return its base64 in out. */
static enum err
b64_of(const char *name, const struct sasl_cred *c, unsigned step,
	struct buf *out)
{
	const struct sasl_mech *m = sasl_find(name, strlen(name));
	struct buf raw;
	struct errinfo ei = ERRINFO_INIT;
	enum err e;

	if (m == NULL) {
		return ERR_INTERNAL;
	}
	buf_init_secret(&raw, 65536);
	e = m->build(c, step, &raw, &ei);
	if (e == ERR_OK) {
		e = util_base64_encode(out, raw.data, raw.len);
	}
	buf_release(&raw);
	return e;
}

static void
cred(struct sasl_cred *c, const char *user, const char *secret,
	const char *host, int port)
{
	c->user = user;
	c->secret = secret;
	c->secret_len = strlen(secret);
	c->host = host;
	c->port = port;
}

int
main(void)
{
	struct sasl_cred c;
	struct buf out;
	struct buf raw;
	struct errinfo ei = ERRINFO_INIT;
	const struct sasl_mech *m;

	buf_init(&out, 65536);

	/* Google's XOAUTH2 protocol page example */
	cred(&c, "someuser@example.com",
		"ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg", NULL, 0);
	is_int(b64_of("XOAUTH2", &c, 0, &out), ERR_OK, "xoauth2 builds");
	is_str(buf_cstr(&out), "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJl"
		"YXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZ"
		"Mjl0Q2cBAQ==", "xoauth2 matches Google's example");

	/* RFC 7628 section 4.1 example (IMAP, port 143) */
	buf_reset(&out);
	cred(&c, "user@example.com",
		"vF9dft4qmTrc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
		"server.example.com", 143);
	is_int(b64_of("oauthbearer", &c, 0, &out), ERR_OK,
		"oauthbearer builds (case-insensitive lookup)");
	is_str(buf_cstr(&out), "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVy"
		"LmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRy"
		"YzJOdmIzUmxja0JoYkhSaGRtbHpkR0V1WTI5dENnPT0BAQ==",
		"oauthbearer matches RFC 7628 example");

	/* gs2 escaping of , and = in the authzid */
	buf_init_secret(&raw, 4096);
	cred(&c, "a,b=c@x", "tok", "h", 587);
	m = sasl_find("OAUTHBEARER", 11);
	is_int(m->build(&c, 0, &raw, &ei), ERR_OK, "oauthbearer escaping");
	is_mem(raw.data, raw.len, "n,a=a=2Cb=3Dc@x,\001host=h\001port=587"
		"\001auth=Bearer tok\001\001", 50, "',' and '=' escaped");
	is_mem(m->error_ack, m->error_ack_len, "\001", 1,
		"oauthbearer answers an error challenge with ^A");
	buf_release(&raw);

	/* RFC 4616 section 4 example */
	buf_reset(&out);
	cred(&c, "tim", "tanstaaftanstaaf", NULL, 0);
	is_int(b64_of("PLAIN", &c, 0, &out), ERR_OK, "plain builds");
	is_str(buf_cstr(&out), "AHRpbQB0YW5zdGFhZnRhbnN0YWFm",
		"plain matches RFC 4616 example");

	/* LOGIN: user, then password */
	buf_reset(&out);
	is_int(b64_of("LOGIN", &c, 0, &out), ERR_OK, "login step 0");
	is_str(buf_cstr(&out), "dGlt", "login sends the user first");
	buf_reset(&out);
	is_int(b64_of("LOGIN", &c, 1, &out), ERR_OK, "login step 1");
	is_str(buf_cstr(&out), "dGFuc3RhYWZ0YW5zdGFhZg==",
		"login sends the password second");

	/* table facts the engine relies on */
	m = sasl_find("xoauth2", 7);
	ok(m != NULL && (m->flags & SASL_TOKEN) && m->error_ack != NULL &&
		m->error_ack_len == 0, "xoauth2 is a token mech, acks with "
		"an empty line");
	ok(sasl_by_method(AUTH_LOGIN) == sasl_find("LOGIN", 5),
		"by method");
	ok(sasl_by_method(AUTH_ON) == NULL, "AUTH_ON has no mechanism");
	ok(sasl_find("CRAM-MD5", 8) == NULL, "unknown mechanism");
	ok(sasl_find("PLAINX", 5) == sasl_find("PLAIN", 5) &&
		sasl_find("PLAINX", 6) == NULL, "length-bounded lookup");
	ok(!(sasl_find("LOGIN", 5)->flags & SASL_INITIAL),
		"login has no initial response");

	/* refusals */
	buf_init_secret(&raw, 4096);
	cred(&c, "u", "bad token", NULL, 0);
	is_int(sasl_find("XOAUTH2", 7)->build(&c, 0, &raw, &ei), ERR_DATA,
		"a token with a space is refused");
	c.secret = "";
	c.secret_len = 0;
	is_int(sasl_find("XOAUTH2", 7)->build(&c, 0, &raw, &ei), ERR_DATA,
		"an empty token is refused");
	c.secret = "a\0b";
	c.secret_len = 3;
	is_int(sasl_find("PLAIN", 5)->build(&c, 0, &raw, &ei), ERR_DATA,
		"PLAIN refuses a NUL in the password");
	buf_release(&raw);
	buf_release(&out);
	return tap_done();
}
