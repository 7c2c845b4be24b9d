/*
 * fuzz_der.c - der_without() (src/base/der.c) fed arbitrary bytes, as if
 * OpenSSL's session encoding were anything at all.  The first byte picks
 * the tag to drop (0xa3, the session's certificate, when it is even).
 * Whatever it accepts must be one whole SEQUENCE in its shortest header,
 * shorter than the input, holding exactly the input's other elements in
 * order (the first one first) and none of that tag (a second pass refuses
 * it), appended after what out held; whatever it refuses is ERR_DATA and
 * leaves out untouched.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "der.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char v1[] = { 0x02, 0x01, 0x01 };

/*
 * The body der_without() must have made: der's top-level elements after
 * the header, all but the one tagged tag, into want.  0, or -1 when der is
 * not something it may accept.
 */
static int
expected_body(const unsigned char *der, size_t n, unsigned char tag,
	struct buf *want)
{
	size_t pos, h, el;
	int dropped = 0;

	if (der_element(der, n, &pos) != n) {
		return -1;
	}
	while (pos < n && (el = der_element(der + pos, n - pos, &h)) != 0) {
		if (der[pos] == tag) {
			dropped++;
		} else if (buf_append(want, der + pos, el) != ERR_OK) {
			return -1;
		}
		pos += el;
	}
	return pos == n && dropped == 1 ? 0 : -1;
}

/* The shortest SEQUENCE header for a body of n bytes: its size. */
static size_t
header_size(size_t n)
{
	return n < 0x80 ? 2 : n < 0x100 ? 3 : 4;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char tag;
	struct buf b, again, want;
	size_t whole, hdr;
	enum err e;

	if (size < 1) {
		return 0;
	}
	tag = data[0] % 2 == 0 ? 0xa3 : data[0];
	data++;
	size--;
	/* out holds something already: it must stay, and only it on error */
	buf_init(&b, 1 << 20);
	if (buf_append(&b, "x", 1) != ERR_OK) {
		abort();
	}
	e = der_without(data, size, v1, sizeof(v1), tag, &b);
	if (e != ERR_OK) {
		if (e != ERR_DATA || b.len != 1 || b.data[0] != 'x') {
			abort();
		}
		buf_release(&b);
		return 0;
	}
	buf_init(&want, 1 << 20);
	whole = der_element((const unsigned char *)b.data + 1, b.len - 1, &hdr);
	if (expected_body(data, size, tag, &want) != 0 || b.data[0] != 'x'
	    || whole != b.len - 1 || b.len - 1 >= size
	    || (unsigned char)b.data[1] != 0x30
	    || hdr != header_size(want.len) || want.len < sizeof(v1)
	    || memcmp(want.data, v1, sizeof(v1)) != 0
	    || memcmp(b.data + 1 + hdr, want.data, want.len) != 0) {
		abort();
	}
	buf_init(&again, 1 << 20);
	if (der_without((const unsigned char *)b.data + 1, b.len - 1, v1,
	    sizeof(v1), tag, &again) != ERR_DATA) {
		abort();	/* no element of that tag is left */
	}
	buf_release(&again);
	buf_release(&want);
	buf_release(&b);
	return 0;
}
