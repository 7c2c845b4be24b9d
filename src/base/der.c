/*
 * der.c - a DER SEQUENCE without one of its elements (der.h).
 */
#include "der.h"

#include <string.h>

/* DER's universal SEQUENCE tag (constructed) */
#define DER_SEQUENCE 0x30

size_t
der_element(const unsigned char *p, size_t n, size_t *ret_hdr)
{
	size_t len = 0, k, i;

	/* 0x1f in the low bits: a tag continued in more bytes */
	if (n < 2 || (p[0] & 0x1f) == 0x1f) {
		return 0;
	}
	if (p[1] < 0x80) {
		*ret_hdr = 2;
		len = p[1];
	} else {
		/* 0x80 alone is the indefinite length, which DER forbids;
		 * more than three length bytes is more than any input here */
		k = p[1] & 0x7f;
		if (k == 0 || k > 3 || n < 2 + k) {
			return 0;
		}
		for (i = 0; i < k; i++) {
			len = (len << 8) | p[2 + i];
		}
		/* DER: the shortest form only (no 0x81 below 0x80, no
		 * leading zero byte) */
		if ((k == 1 && len < 0x80) || (k > 1 && p[2] == 0)) {
			return 0;
		}
		*ret_hdr = 2 + k;
	}
	return len <= n - *ret_hdr ? *ret_hdr + len : 0;
}

/*
 * The size of the body once the element tagged `tag` is left out, or
 * (size_t)-1 when der is not as der_without() wants it.
 */
static size_t
kept_size(const unsigned char *der, size_t n, const unsigned char *first,
	size_t first_len, unsigned char tag)
{
	size_t pos, h, el, kept = 0;
	int dropped = 0;

	if (n == 0 || der[0] != DER_SEQUENCE || der_element(der, n, &pos) != n
	    || n - pos < first_len
	    || memcmp(der + pos, first, first_len) != 0) {
		return (size_t)-1;
	}
	while (pos < n && (el = der_element(der + pos, n - pos, &h)) != 0) {
		if (der[pos] == tag) {
			dropped++;
		} else {
			kept += el;
		}
		pos += el;
	}
	return pos == n && dropped == 1 ? kept : (size_t)-1;
}

enum err
der_without(const unsigned char *der, size_t n, const unsigned char *first,
	size_t first_len, unsigned char tag, struct buf *out)
{
	size_t kept = kept_size(der, n, first, first_len, tag);
	size_t pos, h, el, start = out->len;
	unsigned char hdr[4];
	size_t hl = 0;
	enum err e;

	if (kept > DER_BODY_MAX) {
		return ERR_DATA;	/* (size_t)-1 too */
	}
	hdr[hl++] = DER_SEQUENCE;
	if (kept >= 0x100) {
		hdr[hl++] = 0x82;
		hdr[hl++] = (unsigned char)(kept >> 8);
	} else if (kept >= 0x80) {
		hdr[hl++] = 0x81;
	}
	hdr[hl++] = (unsigned char)kept;
	e = buf_append(out, hdr, hl);
	/* kept_size() walked it already: every element is whole */
	der_element(der, n, &pos);
	while (e == ERR_OK && pos < n) {
		el = der_element(der + pos, n - pos, &h);
		if (el == 0) {
			e = ERR_DATA;	/* cannot be: kept_size() read it */
			break;
		}
		if (der[pos] != tag) {
			e = buf_append(out, der + pos, el);
		}
		pos += el;
	}
	if (e != ERR_OK) {
		buf_truncate(out, start);
	}
	return e;
}
