/*
 * explain.h - turn a provider's or a server's error text into advice.
 *
 * Token endpoints and SMTP servers answer with codes that users otherwise
 * decode from issue trackers (AADSTS numbers, enhanced status codes,
 * Google's JSON challenge, invalid_grant descriptions).  One table in
 * explain.c maps them to a concrete next step.  oasmtp-token uses it for
 * token errors, main.c for SMTP errors.
 *
 * No I/O, no allocation; part of the core library.
 */
#ifndef OASMTP_EXPLAIN_H
#define OASMTP_EXPLAIN_H

/*
 * Advice for the first table entry that matches text (an error message, a
 * server reply, a decoded JSON challenge), or NULL when none does.  The
 * returned string is static: one sentence or two, no trailing newline,
 * lower case start like other messages.  text may be NULL (NULL returned).
 * Matching is ASCII case-insensitive; the more specific entries come first.
 */
const char *explain_error(const char *text);

#endif
