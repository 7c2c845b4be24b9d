/*
 * der.h - the one DER operation oasmtp needs: a SEQUENCE without one of
 * its elements.
 *
 * OpenSSL offers no call to drop the server's certificate from a TLS
 * session, so transport_tls.c leaves its element out of the session's
 * encoding (doc/design.md, "Per-process cost").  The input is OpenSSL's
 * own i2d output, but the reader is strict and bounded all the same (and
 * fuzzed: tests/fuzz/fuzz_der.c): definite lengths in their shortest form
 * of at most three bytes, one-byte tags, every length within what contains
 * it, the whole input one SEQUENCE.
 *
 * libc only; no allocation but the caller's buffer.
 */
#ifndef OASMTP_DER_H
#define OASMTP_DER_H

#include <stddef.h>

#include "buf.h"
#include "err.h"

/* The largest SEQUENCE body written: the two-byte long form. */
#define DER_BODY_MAX 0xffff

/*
 * The element at p (at most n bytes): its whole size (tag, length and
 * contents), and in *ret_hdr the size of its tag and length; 0 when it is
 * not an element as described above that fits in n.
 */
size_t der_element(const unsigned char *p, size_t n, size_t *ret_hdr);

/*
 * der[0..n) must be exactly one SEQUENCE whose first element is the bytes
 * first[0..first_len) and that holds exactly one element (at its top
 * level) with tag `tag`.  Appends to out the same SEQUENCE without that
 * element.  Errors: ERR_DATA (der is not such a SEQUENCE, or what is left
 * is longer than DER_BODY_MAX; out unchanged), or out's append error.
 */
MUST_CHECK enum err der_without(const unsigned char *der, size_t n,
	const unsigned char *first, size_t first_len, unsigned char tag,
	struct buf *out);

#endif
