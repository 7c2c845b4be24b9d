/*
 * token_import.h - what `oasmtp-token import` accepts on standard input.
 *
 *   - a bare refresh token: one word of visible ASCII (0x21-0x7e), without
 *     quotes or braces, surrounding white space ignored;
 *   - a JSON object with a non-empty string member "refresh_token" at the
 *     top level, as the token files of mutt_oauth2.py, oama (its auth
 *     record, decrypted), sasl-xoauth2, Google's "authorized_user" files
 *     and oasmtp's own Secret Service secret hold it.  Other members are
 *     ignored.
 *
 * Anything else is refused with ERR_DATA (exit 65) and a message saying
 * what was expected; nothing is stored by this module (the caller stores
 * only what it returns).  Nothing here prints.
 */
#ifndef OASMTP_TOKEN_IMPORT_H
#define OASMTP_TOKEN_IMPORT_H

#include <stddef.h>

#include "err.h"

struct buf;

/* Largest input accepted. */
#define TOKEN_IMPORT_MAX (64 * 1024)

/*
 * The refresh token in text (len bytes) into ret_rt (a secret buf, reset
 * first), and into *ret_form (may be NULL) "bare" or "JSON".
 * Errors: ERR_DATA (see above), ERR_LIMIT, ERR_NOMEM.
 */
MUST_CHECK enum err token_import_parse(const char *text, size_t len,
	struct buf *ret_rt, const char **ret_form, struct errinfo *reterr);

#endif
