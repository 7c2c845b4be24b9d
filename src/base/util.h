/*
 * util.h - small helpers with no other home: wiping memory, base64, number
 * parsing, bounded string copies, whole-buffer fd I/O, clocks.
 *
 * libc only: the setgid oasmtp-drop links this file, and must not pull in
 * OpenSSL (tests/integration/test_system.py checks its dynamic section).
 */
#ifndef OASMTP_UTIL_H
#define OASMTP_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct buf;

/* Overwrite n bytes in a way the compiler cannot optimise out. */
void util_wipe(void *p, size_t n);

/* Append the standard padded base64 (RFC 4648 section 4) of p[0..n) to out. */
MUST_CHECK enum err util_base64_encode(struct buf *out, const void *p, size_t n);

/* Append base64url without padding (RFC 4648 section 5), as PKCE wants. */
MUST_CHECK enum err util_base64url_encode(struct buf *out, const void *p, size_t n);

/*
 * Decode standard base64 (padding optional, no whitespace) and append the
 * bytes to out.  ERR_DATA for a character outside the alphabet or a bad
 * length; out is then unchanged.
 */
MUST_CHECK enum err util_base64_decode(struct buf *out, const char *s, size_t n);

/*
 * Parse a whole decimal string into [min, max].  Returns 0 and writes
 * *ret_val on success, -1 for an empty string, junk, or a value out of range.
 */
int util_parse_long(const char *s, long min, long max, long *ret_val);

/*
 * Append p[0..n) to out with control characters other than TAB, and DEL,
 * shown as \xNN (lower-case hex), so untrusted text (a server reply, a
 * provider message) cannot drive a terminal or forge a log line.
 * ERR_LIMIT / ERR_NOMEM from the buffer.
 */
MUST_CHECK enum err util_escape_ctl(struct buf *out, const char *p, size_t n);

/*
 * Parse a duration: a whole number of seconds with an optional suffix s, m,
 * h, d or w ("90m", "5d").  Returns 0 and writes *ret_seconds when the value
 * lies in [min, max] seconds, -1 otherwise (empty, junk, sign, overflow).
 */
int util_parse_duration(const char *s, long min, long max, long *ret_seconds);

/*
 * Append name to out as a safe file name: letters, digits and - _ @ + .
 * are kept (a leading dot is not), every other byte becomes %XX.  Used for
 * account names in cache, lock and state file names.
 */
MUST_CHECK enum err util_append_file_name(struct buf *out, const char *name);

/* The value of the hex digit c (either case), or -1. */
int util_hexval(int c);

/* p[0..n) as 2n lowercase hex digits into out (room for 2n + 1, NUL). */
void util_hex(char *out, const void *p, size_t n);

/* Copy at most size-1 bytes and NUL-terminate; returns strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t size);

/*
 * The first line of msg, at most max bytes (then "..."; " ..." when more
 * lines follow), appended to out: for one-line reports of multi-line
 * replies.  Errors: those of buf_append().
 */
MUST_CHECK enum err util_first_line(const char *msg, size_t max, struct buf *out);

/* ASCII case-insensitive comparisons that do not depend on the locale. */
int util_strcasecmp(const char *a, const char *b);
int util_strncasecmp(const char *a, const char *b, size_t n);

/* write(2) until all of p is written, retrying on EINTR; 0 or -1 (errno). */
int util_write_all(int fd, const void *p, size_t n);

/* Never write a core dump: it would put passwords and tokens on disk. */
void util_no_core_dumps(void);

/* Milliseconds from CLOCK_MONOTONIC. */
int64_t util_now_ms(void);

/*
 * Find the companion program `name`: first in the directory of this
 * executable (through /proc/self/exe: the build tree, or the directory
 * both were installed to), accepted when ok(path) is true (ok NULL: an
 * executable file); else fallback_dir/name, unchecked.  *out holds the
 * path either way.  Returns 1 for the one next to us, 0 for the fallback,
 * -1 when the path does not fit in out (ERR_NOMEM/ERR_LIMIT class).
 */
int util_find_sibling(const char *name, const char *fallback_dir,
	int (*ok)(const char *path), struct buf *out);

#endif
