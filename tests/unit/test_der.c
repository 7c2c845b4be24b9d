/*
 * test_der.c - src/base/der.c: a SEQUENCE without one element, as the TLS
 * session files use it (a real OpenSSL session loses its certificate and
 * still reads back), every header form, and every input it must refuse
 * with its buffer untouched.
 */
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "der.h"
#include "tap.h"

static const unsigned char v1[] = { 0x02, 0x01, 0x01 };

/* SEQUENCE header for a body of n bytes into h; its size. */
static size_t
seq_header(size_t n, unsigned char *h)
{
	size_t k = 0;

	h[k++] = 0x30;
	if (n >= 0x10000) {
		h[k++] = 0x83;
		h[k++] = (unsigned char)(n >> 16);
		h[k++] = (unsigned char)(n >> 8);
	} else if (n >= 0x100) {
		h[k++] = 0x82;
		h[k++] = (unsigned char)(n >> 8);
	} else if (n >= 0x80) {
		h[k++] = 0x81;
	}
	h[k++] = (unsigned char)n;
	return k;
}

/*
 * A SEQUENCE { INTEGER 1, [3] { OCTET STRING "peer" } (drops times),
 * OCTET STRING of fill bytes } in out; its size.
 */
static size_t
make(unsigned char *out, size_t cap, int drops, size_t fill)
{
	unsigned char body[0x20000];
	size_t n = 0, k, i;
	int d;

	memcpy(body, v1, sizeof(v1));
	n += sizeof(v1);
	for (d = 0; d < drops; d++) {
		static const unsigned char peer[] = { 0xa3, 0x06, 0x04, 0x04,
			'p', 'e', 'e', 'r' };

		memcpy(body + n, peer, sizeof(peer));
		n += sizeof(peer);
	}
	/* OCTET STRING with fill bytes: header by the same rule */
	k = seq_header(fill, body + n);
	body[n] = 0x04;
	n += k;
	for (i = 0; i < fill; i++) {
		body[n++] = (unsigned char)i;
	}
	k = seq_header(n, out);
	if (k + n > cap) {
		return 0;
	}
	memcpy(out + k, body, n);
	return k + n;
}

static void
refused(const unsigned char *der, size_t n, const char *what)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	setup(buf_append_str(&b, "kept"));
	is_int(der_without(der, n, v1, sizeof(v1), 0xa3, &b), ERR_DATA,
		"refused: %s", what);
	is_str(buf_cstr(&b), "kept", "refused: %s leaves out as it was", what);
	buf_release(&b);
}

static void
test_forms(void)
{
	static unsigned char in[0x20010];
	struct buf b;
	/* kept bodies of 0x7f, 0x80 (0x81 form), 0xff, 0x100 (0x82 form)
	 * and DER_BODY_MAX: INTEGER (3 bytes), OCTET STRING header, fill */
	size_t n, fills[] = { 0, 10, 0x7a, 0x7b, 0xf9, 0xfa, 0xfff8 };
	size_t i, k;

	for (i = 0; i < sizeof(fills) / sizeof(fills[0]); i++) {
		n = make(in, sizeof(in), 1, fills[i]);
		buf_init(&b, 1 << 20);
		is_int(der_without(in, n, v1, sizeof(v1), 0xa3, &b), ERR_OK,
			"fill %zu: dropped", fills[i]);
		/* what is kept: INTEGER 1 and the OCTET STRING */
		k = make(in, sizeof(in), 0, fills[i]);
		/* make() writes the shortest length forms, as DER wants */
		is_mem(b.data, b.len, in, k, "fill %zu: the same SEQUENCE "
			"without [3] (header %02x %02x)", fills[i],
			(unsigned)(unsigned char)b.data[0],
			(unsigned)(unsigned char)b.data[1]);
		buf_release(&b);
	}
}

/* The tail of a SEQUENCE after INTEGER 1 and [3] { OCTET STRING "peer" }. */
static const unsigned char inner_indefinite[] = {	/* replaces [3] */
	0xa3, 0x80, 0x04, 0x04, 'p', 'e', 'e', 'r', 0x00, 0x00 };
static const unsigned char inner_four[] = {
	0xa3, 0x06, 0x04, 0x04, 'p', 'e', 'e', 'r',
	0x04, 0x84, 0x00, 0x00, 0x00, 0x03, 'a', 'b', 'c' };
static const unsigned char inner_tag[] = {
	0xa3, 0x06, 0x04, 0x04, 'p', 'e', 'e', 'r', 0x1f, 0x01, 0x00 };
static const unsigned char inner_81[] = {
	0xa3, 0x06, 0x04, 0x04, 'p', 'e', 'e', 'r', 0x04, 0x81, 0x03,
	'a', 'b', 'c' };
static const unsigned char inner_82[] = {
	0xa3, 0x06, 0x04, 0x04, 'p', 'e', 'e', 'r', 0x04, 0x82, 0x00, 0x03,
	'a', 'b', 'c' };

/* SEQUENCE { INTEGER 1, tail } must be refused. */
static void
inner(const unsigned char *tail, size_t n, const char *what)
{
	unsigned char t[64];
	size_t k;

	t[0] = 0x30;
	t[1] = (unsigned char)(sizeof(v1) + n);
	memcpy(t + 2, v1, sizeof(v1));
	memcpy(t + 2 + sizeof(v1), tail, n);
	k = 2 + sizeof(v1) + n;
	refused(t, k, what);
}

static void
test_refusals(void)
{
	static unsigned char in[0x20010];
	unsigned char t[64], *cut;
	struct buf small;
	size_t n;

	n = make(in, sizeof(in), 1, 10);
	refused(in, n - 1, "cut short by a byte");
	memcpy(t, in, n);
	t[n] = 0x00;
	refused(t, n + 1, "a byte after the SEQUENCE");
	refused(in, 0, "nothing");
	refused(in, 1, "a tag alone");
	n = make(in, sizeof(in), 0, 10);
	refused(in, n, "no [3] element");
	n = make(in, sizeof(in), 2, 10);
	refused(in, n, "two [3] elements");
	n = make(in, sizeof(in), 1, 10);
	memcpy(t, in, n);
	t[4] = 0x02;		/* INTEGER 2: another version */
	refused(t, n, "another first element");
	t[0] = 0x31;		/* a SET, not a SEQUENCE */
	t[4] = 0x01;
	refused(t, n, "not a SEQUENCE");
	memcpy(t, in, n);
	t[6] = 0x7f;		/* [3] longer than the SEQUENCE */
	refused(t, n, "an element longer than its SEQUENCE");
	/* each rule of der_element() on an element inside, where it is the
	 * only reason to refuse: without it the walk would go on */
	inner(inner_indefinite, sizeof(inner_indefinite),
		"[3] with an indefinite length");
	inner(inner_four, sizeof(inner_four), "a four-byte length");
	inner(inner_tag, sizeof(inner_tag), "a multi-byte tag");
	inner(inner_81, sizeof(inner_81), "a length of 3 in the 0x81 form");
	inner(inner_82, sizeof(inner_82), "a length with a leading zero byte");
	memcpy(t, in, n);
	t[1] = 0x81;		/* the outer length, not in its shortest form */
	memmove(t + 3, t + 2, n - 2);
	t[2] = in[1];
	refused(t, n + 1, "a SEQUENCE length not in its shortest form");
	/* a length byte that is not there: read past the end, ASan says */
	cut = malloc(3);
	if (cut != NULL) {
		memcpy(cut, "\x30\x82\x00", 3);
		refused(cut, 3, "a length cut short");
		free(cut);
	}
	n = make(in, sizeof(in), 1, 0xfff9);
	refused(in, n, "more than DER_BODY_MAX left");

	/* out's own limit: its error, out unchanged */
	n = make(in, sizeof(in), 1, 200);
	buf_init(&small, 100);
	setup(buf_append_str(&small, "kept"));
	is_int(der_without(in, n, v1, sizeof(v1), 0xa3, &small), ERR_LIMIT,
		"a full buffer: ERR_LIMIT");
	is_str(buf_cstr(&small), "kept", "a full buffer left as it was");
	buf_release(&small);
}

/* OpenSSL's own session (TEST_DATA/data/tls-session-v1.der: a TLS 1.3
 * session of openssl s_client with a test server, certificate included). */
static void
test_real_session(void)
{
	const char *dir = getenv("TEST_DATA");
	unsigned char der[16384];
	const unsigned char *p;
	SSL_SESSION *sess;
	char path[1024];
	struct buf b;
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/data/tls-session-v1.der",
		dir != NULL ? dir : "tests");
	f = fopen(path, "rb");
	if (!ok(f != NULL, "session fixture %s", path)) {
		return;
	}
	n = fread(der, 1, sizeof(der), f);
	fclose(f);
	p = der;
	sess = d2i_SSL_SESSION(NULL, &p, (long)n);
	ok(sess != NULL && SSL_SESSION_get0_peer(sess) != NULL,
		"fixture: a session with the server's certificate");
	SSL_SESSION_free(sess);
	buf_init(&b, sizeof(der));
	is_int(der_without(der, n, v1, sizeof(v1), 0xa3, &b), ERR_OK,
		"session: certificate left out");
	ok(b.len < n - 300, "session: %zu bytes, was %zu", b.len, n);
	p = (const unsigned char *)b.data;
	sess = d2i_SSL_SESSION(NULL, &p, (long)b.len);
	ok(sess != NULL && p == (const unsigned char *)b.data + b.len,
		"session: OpenSSL reads it back whole");
	ok(sess != NULL && SSL_SESSION_get0_peer(sess) == NULL &&
		SSL_SESSION_is_resumable(sess),
		"session: resumable, without a certificate");
	SSL_SESSION_free(sess);
	refused((const unsigned char *)b.data, b.len, "a session already "
		"without its certificate");
	buf_release(&b);
}

int
main(void)
{
	test_forms();
	test_refusals();
	test_real_session();
	return tap_done();
}
