/* test_sasl.c - SASL payload builders against published example vectors. */
#include <stdio.h>
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

/* One step of a challenge-driven mechanism; raw text (not base64) in out. */
static enum err
respond(const char *name, const struct sasl_cred *c, struct sasl_state *st,
	unsigned step, const char *chal, struct buf *out, struct errinfo *ei)
{
	const struct sasl_mech *m = sasl_find(name, strlen(name));

	buf_reset(out);
	if (m == NULL || m->respond == NULL) {
		return ERR_INTERNAL;
	}
	return m->respond(c, st, step, chal, chal != NULL ? strlen(chal) : 0,
		out, ei);
}

/* A SCRAM exchange with a preset client nonce (RFC 5802 / RFC 7677). */
static void
scram_vector(const char *mech, const char *cnonce, const char *server_first,
	const char *client_final, const char *server_final)
{
	struct sasl_cred c;
	struct sasl_state st;
	struct buf raw;
	struct errinfo ei = ERRINFO_INIT;
	char want[256];

	cred(&c, "user", "pencil", NULL, 0);
	memset(&st, 0, sizeof(st));
	util_strlcpy(st.nonce, cnonce, sizeof(st.nonce));
	buf_init_secret(&raw, 4096);
	is_int(respond(mech, &c, &st, 0, NULL, &raw, &ei), ERR_OK,
		"%s client-first", mech);
	snprintf(want, sizeof(want), "n,,n=user,r=%s", cnonce);
	is_str(buf_cstr(&raw), want, "%s client-first matches the RFC", mech);
	is_int(respond(mech, &c, &st, 1, server_first, &raw, &ei), ERR_OK,
		"%s client-final (%s)", mech, errinfo_msg(&ei));
	is_str(buf_cstr(&raw), client_final, "%s proof matches the RFC", mech);
	ok(!st.verified, "%s: not verified before server-final", mech);
	is_int(respond(mech, &c, &st, 2, server_final, &raw, &ei), ERR_OK,
		"%s server-final verified (%s)", mech, errinfo_msg(&ei));
	is_int((int)raw.len, 0, "%s answers server-final with nothing", mech);
	ok(st.verified, "%s: server signature verified", mech);

	/* a server that does not know the password is caught */
	memset(&st, 0, sizeof(st));
	util_strlcpy(st.nonce, cnonce, sizeof(st.nonce));
	respond(mech, &c, &st, 0, NULL, &raw, &ei);
	respond(mech, &c, &st, 1, server_first, &raw, &ei);
	is_int(respond(mech, &c, &st, 2, "v=AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		&raw, &ei), ERR_AUTH, "%s: a wrong server signature is refused",
		mech);
	contains(errinfo_msg(&ei), "server signature", "%s: says why", mech);
	ok(!st.verified, "%s: not verified", mech);

	/* the server must extend our nonce */
	memset(&st, 0, sizeof(st));
	util_strlcpy(st.nonce, "other-nonce", sizeof(st.nonce));
	respond(mech, &c, &st, 0, NULL, &raw, &ei);
	is_int(respond(mech, &c, &st, 1, server_first, &raw, &ei), ERR_PROTO,
		"%s: a server nonce not starting with ours is refused", mech);
	memset(&st, 0, sizeof(st));
	util_strlcpy(st.nonce, cnonce, sizeof(st.nonce));
	respond(mech, &c, &st, 0, NULL, &raw, &ei);
	respond(mech, &c, &st, 1, server_first, &raw, &ei);
	is_int(respond(mech, &c, &st, 2, "e=invalid-proof", &raw, &ei),
		ERR_AUTH, "%s: server error e= refused", mech);
	contains(errinfo_msg(&ei), "invalid-proof", "%s: shows the server's error", mech);
	buf_release(&raw);
}

static void
test_challenge_mechs(void)
{
	struct sasl_cred c;
	struct sasl_state st;
	struct buf raw;
	struct errinfo ei = ERRINFO_INIT;
	const struct sasl_mech *m;
	size_t i;

	/* RFC 2195 section 2 example */
	buf_init_secret(&raw, 4096);
	cred(&c, "tim", "tanstaaftanstaaf", NULL, 0);
	memset(&st, 0, sizeof(st));
	is_int(respond("CRAM-MD5", &c, &st, 0,
		"<1896.697170952@postoffice.reston.mci.net>", &raw, &ei), ERR_OK,
		"cram-md5 responds");
	is_str(buf_cstr(&raw), "tim b913a602c7eda7a495b4e6e7334d3890",
		"cram-md5 matches RFC 2195");
	is_int(respond("CRAM-MD5", &c, &st, 0, "", &raw, &ei), ERR_PROTO,
		"cram-md5: an empty challenge is refused");
	m = sasl_find("cram-md5", 8);
	ok(m && !(m->flags & SASL_INITIAL) && m->n_steps == 1
		&& m->method == AUTH_CRAM_MD5, "cram-md5 table entry");
	buf_release(&raw);

	/* RFC 5802 section 5 */
	scram_vector("SCRAM-SHA-1", "fyko+d2lbbFgONRv9qkxdawL",
		"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
		"s=QSXCR+Q6sek8bf92,i=4096",
		"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
		"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
	/* RFC 7677 section 3 */
	scram_vector("SCRAM-SHA-256", "rOprNGfwEbeRWgbNEkqO",
		"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
		"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
		"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");

	/* a fresh nonce each time, and names escaped (RFC 5802 5.1) */
	buf_init_secret(&raw, 4096);
	cred(&c, "a,b=c", "pw", NULL, 0);
	memset(&st, 0, sizeof(st));
	is_int(respond("SCRAM-SHA-256", &c, &st, 0, NULL, &raw, &ei), ERR_OK,
		"scram: random nonce");
	ok(strncmp(buf_cstr(&raw), "n,,n=a=2Cb=3Dc,r=", 17) == 0
		&& raw.len >= 17 + 24, "scram: escaped name, long nonce: %s",
		buf_cstr(&raw));
	is_int(respond("SCRAM-SHA-256", &c, &st, 1,
		"r=x,s=QSXCR+Q6sek8bf92,i=4096", &raw, &ei), ERR_PROTO,
		"scram: nonce not extended");
	memset(&st, 0, sizeof(st));
	util_strlcpy(st.nonce, "abc", sizeof(st.nonce));
	respond("SCRAM-SHA-1", &c, &st, 0, NULL, &raw, &ei);
	is_int(respond("SCRAM-SHA-1", &c, &st, 1, "r=abcd,s=QSXCR+Q6sek8bf92,"
		"i=0", &raw, &ei), ERR_PROTO, "scram: iteration count 0");
	is_int(respond("SCRAM-SHA-1", &c, &st, 1, "m=ext,r=abcd,s=QQ==,i=1",
		&raw, &ei), ERR_PROTO, "scram: mandatory extension refused");
	buf_release(&raw);

	/* `auth on` prefers the strongest: SCRAM-SHA-256 first */
	static const char *const order[] = {
		"SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN",
	};
	size_t at[5];
	for (i = 0; i < 5; i++) {
		size_t j;

		at[i] = (size_t)-1;
		for (j = 0; j < sasl_count(); j++) {
			if (sasl_at(j) == sasl_find(order[i], strlen(order[i]))) {
				at[i] = j;
			}
		}
	}
	ok(at[0] < at[1] && at[1] < at[2] && at[2] < at[3] && at[3] < at[4],
		"preference: SCRAM-SHA-256 > SCRAM-SHA-1 > CRAM-MD5 > PLAIN > "
		"LOGIN");
	ok(sasl_find("SCRAM-SHA-256", 13)->flags & SASL_SERVER_FINAL,
		"scram needs the server's proof");
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
	ok(sasl_find("DIGEST-MD5", 10) == NULL, "unknown mechanism");
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
	test_challenge_mechs();
	return tap_done();
}
