/*
 * fuzz_token_json.c - oauth_parse_response() fed arbitrary token endpoint
 * answers.  The first two bytes pick the HTTP status (from a table of the
 * statuses the classifier treats differently, or a raw value); the rest is
 * the body.  On success the tokens must be non-empty and free of control
 * characters, since they go into the token cache and the SASL payload.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "oauth_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_token(const struct buf *b, int required)
{
	size_t i;

	if (required && b->len == 0) {
		abort();
	}
	for (i = 0; i < b->len; i++) {
		unsigned char c = (unsigned char)buf_cstr(b)[i];

		if (c <= 0x20 || c >= 0x7f) {
			abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = { 200, 201, 204, 301, 400, 401, 403,
		404, 405, 408, 429, 500, 503, 0, -1, 599 };
	struct oauth_tokens t;
	struct errinfo *ei;
	long status;
	enum err e;

	if (size < 2) {
		return 0;
	}
	if (data[0] < 0xf0) {
		status = statuses[data[0] % 16];
	} else {
		status = (long)data[1] * 4 - 100;
	}
	ei = malloc(sizeof(*ei));
	if (ei == NULL) {
		return 0;
	}
	errinfo_init(ei);
	oauth_tokens_init(&t);
	e = oauth_parse_response(data[1] & 1 ? "acct" : NULL, status,
		(const char *)data + 2, size - 2, &t, ei);
	if (e == ERR_OK) {
		check_token(&t.access_token, 1);
		check_token(&t.refresh_token, 0);
		if (t.expires_in < 0) {
			abort();
		}
	} else if (t.access_token.len != 0 || t.refresh_token.len != 0 ||
	    errinfo_msg(ei)[0] == '\0') {
		abort();
	}
	oauth_tokens_release(&t);
	errinfo_release(ei);
	free(ei);
	return 0;
}
