/*
 * sha256.h - SHA-256 (FIPS 180-4) for names, not for secrets.
 *
 * It names files and sockets after what they are for: the TLS session
 * file and the keeper's socket after the session key, the Message-ID map
 * after its account, the token cache after its grant.  Computing those
 * names must not start OpenSSL: a send that a keeper serves never touches
 * TLS, and starting OpenSSL 3 for a digest (4.4 M instructions) cost more
 * than the whole rest of such a send (doc/design.md section "Per-process
 * cost").  Anything that protects a secret, or checks what a peer sent,
 * uses OpenSSL (SASL, certificate fingerprints, PKCE).
 *
 * No allocation, no errors; the state holds no secret worth wiping.
 * tests/unit/test_sha256.c checks it against FIPS 180-4's examples and
 * against OpenSSL on every length up to three blocks.
 */
#ifndef OASMTP_SHA256_H
#define OASMTP_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32
/* A name takes the first 16 bytes of the digest, as 32 hex digits
 * (util_hex()) */
#define SHA256_NAME_BYTES 16

struct sha256 {
	uint32_t h[8];
	uint64_t bytes;			/* message length so far */
	unsigned char block[64];	/* a partial block */
	size_t fill;			/* bytes of it in use */
};

void sha256_init(struct sha256 *c);
void sha256_update(struct sha256 *c, const void *p, size_t n);
/* The digest; c must be initialised again before further use. */
void sha256_final(struct sha256 *c, unsigned char out[SHA256_LEN]);

/* The digest of p[0..n) in one call. */
void sha256(const void *p, size_t n, unsigned char out[SHA256_LEN]);

#endif
