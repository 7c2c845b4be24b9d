/*
 * buf.h - bounded, growable byte buffer (curl dynbuf / git strbuf semantics).
 *
 * Invariants: b->data is never NULL after buf_init() (it points at a static
 * empty string until the first append) and is always NUL-terminated, so
 * buf_cstr() can be used directly.  b->len never exceeds b->max; an append
 * that would pass it fails with ERR_LIMIT and leaves the buffer unchanged.
 *
 * A "secret" buffer (buf_init_secret) wipes its memory whenever it is
 * reallocated, reset or released.  Use it for tokens, passwords and SASL
 * payloads; never hand its bytes to a log function.
 *
 * Pointers into b->data are valid only until the next modifying call.
 */
#ifndef OASMTP_BUF_H
#define OASMTP_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "err.h"

struct buf {
	char *data;
	size_t len;
	size_t cap;		/* allocated bytes, 0 while data is static "" */
	size_t max;		/* hard limit on len */
	int secret;
};

/* Common limits. */
#define BUF_LINE_MAX (64 * 1024)

void buf_init(struct buf *b, size_t max);
void buf_init_secret(struct buf *b, size_t max);

/* Free the memory (wiping it if secret); the buffer is re-initialised empty. */
void buf_release(struct buf *b);

/* Drop the contents but keep the allocation (wiped if secret). */
void buf_reset(struct buf *b);

/* Append bytes; ERR_LIMIT past b->max, ERR_NOMEM when allocation fails. */
MUST_CHECK enum err buf_append(struct buf *b, const void *p, size_t n);
MUST_CHECK enum err buf_append_str(struct buf *b, const char *s);
MUST_CHECK enum err buf_putc(struct buf *b, char c);
MUST_CHECK enum err buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
MUST_CHECK enum err buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/*
 * The error for a failed append to b (e is what the append returned):
 * ERR_NOMEM "out of memory", else "WHAT is too long (more than N bytes)".
 * Returns e.
 */
MUST_CHECK enum err buf_fail(const struct buf *b, enum err e, const char *what,
	struct errinfo *reterr);

/*
 * For text that is only shown (part of an error message, a transcript or
 * log note): an append that fails leaves the text cut where it stopped,
 * which is the wanted outcome there.  Names that choice at the call.
 */
static inline void
buf_cut_ok(enum err e)
{
	(void)e;
}

/* Remove the first n bytes (all of them when n >= len). */
void buf_consume(struct buf *b, size_t n);

/* Shorten to n bytes (no-op when n >= len). */
void buf_truncate(struct buf *b, size_t n);

/*
 * Hand the heap string to the caller (free() it; wipe it first if it was a
 * secret) and re-initialise the buffer.  Returns NULL on allocation failure.
 */
char *buf_take(struct buf *b);

static inline const char *
buf_cstr(const struct buf *b)
{
	return b->data;
}

#endif
