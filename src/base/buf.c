/* buf.c - bounded growable buffer; see buf.h for the contract. */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static char empty[1];

static void
init(struct buf *b, size_t max, int secret)
{
	b->data = empty;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->secret = secret;
}

void
buf_init(struct buf *b, size_t max)
{
	init(b, max, 0);
}

void
buf_init_secret(struct buf *b, size_t max)
{
	init(b, max, 1);
}

void
buf_release(struct buf *b)
{
	if (b == NULL) {
		return;
	}
	if (b->cap > 0) {
		if (b->secret) {
			util_wipe(b->data, b->cap);
		}
		free(b->data);
	}
	init(b, b->max, b->secret);
}

void
buf_reset(struct buf *b)
{
	if (b->cap > 0) {
		if (b->secret) {
			util_wipe(b->data, b->len);
		}
		b->data[0] = '\0';
	}
	b->len = 0;
}

static MUST_CHECK enum err
grow(struct buf *b, size_t need)
{
	size_t ncap;
	char *p;

	if (need <= b->cap) {
		return ERR_OK;
	}
	ncap = b->cap ? b->cap : 64;
	while (ncap < need) {
		if (ncap > ((size_t)-1) / 2) {
			return ERR_NOMEM;
		}
		ncap *= 2;
	}
	if (ncap > b->max + 1) {
		ncap = b->max + 1;
	}
	if (b->secret) {
		/* never leave a copy of a secret in memory realloc freed */
		p = malloc(ncap);
		if (p == NULL) {
			return ERR_NOMEM;
		}
		if (b->cap > 0) {
			memcpy(p, b->data, b->len + 1);
			util_wipe(b->data, b->cap);
			free(b->data);
		}
	} else {
		p = realloc(b->cap > 0 ? b->data : NULL, ncap);
		if (p == NULL) {
			return ERR_NOMEM;
		}
	}
	if (b->cap == 0) {
		p[0] = '\0';
	}
	b->data = p;
	b->cap = ncap;
	return ERR_OK;
}

enum err
buf_append(struct buf *b, const void *p, size_t n)
{
	enum err e;

	if (n > b->max || b->len > b->max - n) {
		return ERR_LIMIT;
	}
	if (n == 0) {
		return ERR_OK;
	}
	e = grow(b, b->len + n + 1);
	if (e != ERR_OK) {
		return e;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return ERR_OK;
}

enum err
buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

enum err
buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

enum err
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	enum err e;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		return ERR_INTERNAL;
	}
	if ((size_t)n > b->max || b->len > b->max - (size_t)n) {
		return ERR_LIMIT;
	}
	e = grow(b, b->len + (size_t)n + 1);
	if (e != ERR_OK) {
		return e;
	}
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return ERR_OK;
}

enum err
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	enum err e;

	va_start(ap, fmt);
	e = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return e;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	if (b->secret) {
		util_wipe(b->data + b->len, n);
	}
	b->data[b->len] = '\0';
}

void
buf_truncate(struct buf *b, size_t n)
{
	if (n >= b->len) {
		return;
	}
	if (b->secret) {
		util_wipe(b->data + n, b->len - n);
	}
	b->len = n;
	b->data[n] = '\0';
}

char *
buf_take(struct buf *b)
{
	char *p;

	if (b->cap == 0) {
		p = strdup("");
	} else {
		p = b->data;
	}
	init(b, b->max, b->secret);
	return p;
}

enum err
buf_fail(const struct buf *b, enum err e, const char *what,
	struct errinfo *reterr)
{
	if (e == ERR_NOMEM) {
		return errinfo_set(reterr, e, "out of memory");
	}
	return errinfo_set(reterr, e, "%s is too long (more than %zu bytes)",
		what, b->max);
}
