/*
 * fuzz_der.c - der_without() (src/base/der.c) fed arbitrary bytes, as if
 * OpenSSL's session encoding were anything at all.  The first byte picks
 * the tag to drop (0xa3, the session's certificate, when it is even).
 * Whatever it accepts must be one whole SEQUENCE, shorter than the input,
 * with the same first element and no element of that tag left (so a
 * second pass refuses it); whatever it refuses leaves out untouched.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "der.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char v1[] = { 0x02, 0x01, 0x01 };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char tag;
	struct buf b, again;
	size_t whole, hdr;
	enum err e;

	if (size < 1) {
		return 0;
	}
	tag = data[0] % 2 == 0 ? 0xa3 : data[0];
	data++;
	size--;
	buf_init(&b, 1 << 20);
	e = der_without(data, size, v1, sizeof(v1), tag, &b);
	if (e != ERR_OK) {
		if (b.len != 0) {
			abort();
		}
		buf_release(&b);
		return 0;
	}
	whole = der_element((const unsigned char *)b.data, b.len, &hdr);
	if (whole != b.len || b.len >= size || (unsigned char)b.data[0] != 0x30
	    || b.len - hdr < sizeof(v1)
	    || memcmp(b.data + hdr, v1, sizeof(v1)) != 0) {
		abort();
	}
	buf_init(&again, 1 << 20);
	if (der_without((const unsigned char *)b.data, b.len, v1, sizeof(v1),
	    tag, &again) != ERR_DATA) {
		abort();
	}
	buf_release(&again);
	buf_release(&b);
	return 0;
}
