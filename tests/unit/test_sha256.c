/*
 * test_sha256.c - src/base/sha256.c: FIPS 180-4's examples, every length
 * up to three blocks against OpenSSL, and any split into updates.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "sha256.h"
#include "tap.h"

static void
hex(const unsigned char *d, char *out)
{
	for (int i = 0; i < SHA256_LEN; i++) {
		snprintf(out + 2 * i, 3, "%02x", d[i]);
	}
}

static void
known(const char *msg, size_t repeat, const char *want)
{
	unsigned char d[SHA256_LEN];
	char got[2 * SHA256_LEN + 1];
	struct sha256 c;

	sha256_init(&c);
	for (size_t i = 0; i < repeat; i++) {
		sha256_update(&c, msg, strlen(msg));
	}
	sha256_final(&c, d);
	hex(d, got);
	tap_is_str(got, want, "SHA-256 of %zu x \"%.20s\"", repeat, msg);
}

int
main(void)
{
	unsigned char in[200], mine[SHA256_LEN], ref[SHA256_LEN];
	unsigned int rl = 0;
	size_t n, split, bad = 0, badsplit = 0;

	/* FIPS 180-4 examples (NIST CSRC "SHA256.pdf", "SHA2_Additional") */
	known("", 1, "e3b0c44298fc1c149afbf4c8996fb924"
		"27ae41e4649b934ca495991b7852b855");
	known("abc", 1, "ba7816bf8f01cfea414140de5dae2223"
		"b00361a396177a9cb410ff61f20015ad");
	known("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
		"248d6a61d20638b8e5c026930c3e6039"
		"a33ce45964ff2167f6ecedd419db06c1");
	known("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
		"hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu", 1,
		"cf5b16a778af8380036ce59e7b049237"
		"0b249b11e8f07a51afac45037afee9d1");
	known("a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67"
		"f1809a48a497200e046d39ccc7112cd0");

	for (n = 0; n < sizeof(in); n++) {
		in[n] = (unsigned char)(n * 7 + 3);
	}
	/* lengths 0..199: every padding case (55, 56, 63, 64, 119, 120...) */
	for (n = 0; n < sizeof(in); n++) {
		sha256(in, n, mine);
		if (EVP_Digest(in, n, ref, &rl, EVP_sha256(), NULL) != 1
		    || rl != SHA256_LEN || memcmp(mine, ref, SHA256_LEN) != 0) {
			bad++;
			tap_diag("length %zu differs from OpenSSL", n);
		}
		/* the same bytes in two updates, split anywhere */
		for (split = 0; split <= n; split++) {
			struct sha256 c;

			sha256_init(&c);
			sha256_update(&c, in, split);
			sha256_update(&c, in + split, n - split);
			sha256_final(&c, mine);
			badsplit += memcmp(mine, ref, SHA256_LEN) != 0;
		}
	}
	tap_is_int((long long)bad, 0, "lengths 0..199 as OpenSSL computes them");
	tap_is_int((long long)badsplit, 0, "every split into two updates the same");
	return tap_done();
}
