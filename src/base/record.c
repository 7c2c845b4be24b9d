/*
 * record.c - the on-disk record format, its writer and its reader; the
 * format is documented in record.h.
 */
#include "record.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

#define TRAILER "end"

/* 1 when p[0..n) is a well-formed NAME or KEY. */
static int
word_ok(const char *p, size_t n)
{
	size_t i;

	if (n == 0 || n >= RECORD_KEY_MAX) {
		return 0;
	}
	for (i = 0; i < n; i++) {
		char c = p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-')) {
			return 0;
		}
	}
	return 1;
}

/* ---- the writer ---- */

static MUST_CHECK enum err
put_escaped(struct buf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	enum err e = ERR_OK;
	size_t i;

	for (i = 0; i < n && e == ERR_OK; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[4] = { '\\', 0, 0, 0 };
		size_t elen = 2;

		if (c == '\\') {
			esc[1] = '\\';
		} else if (c == '\n') {
			esc[1] = 'n';
		} else if (c == '\r') {
			esc[1] = 'r';
		} else if (c == '\t') {
			esc[1] = 't';
		} else if (c < 0x20 || c == 0x7f) {
			esc[1] = 'x';
			esc[2] = hex[c >> 4];
			esc[3] = hex[c & 15];
			elen = 4;
		} else {
			e = buf_putc(out, (char)c);
			continue;
		}
		e = buf_append(out, esc, elen);
	}
	return e;
}

enum err
record_begin(struct buf *out, const char *name, unsigned version)
{
	if (!word_ok(name, strlen(name))) {
		return ERR_INTERNAL;
	}
	return buf_printf(out, "%s %u\n", name, version);
}

enum err
record_put(struct buf *out, const char *key, const char *value, size_t len)
{
	enum err e;

	if (!word_ok(key, strlen(key)) || strcmp(key, TRAILER) == 0) {
		return ERR_INTERNAL;
	}
	e = buf_append_str(out, key);
	if (e == ERR_OK) {
		e = buf_putc(out, ' ');
	}
	if (e == ERR_OK) {
		e = put_escaped(out, value, len);
	}
	if (e == ERR_OK) {
		e = buf_putc(out, '\n');
	}
	return e;
}

enum err
record_put_str(struct buf *out, const char *key, const char *value)
{
	return record_put(out, key, value != NULL ? value : "",
		value != NULL ? strlen(value) : 0);
}

enum err
record_put_long(struct buf *out, const char *key, long long value)
{
	char num[32];
	size_t n = 0;
	unsigned long long v = value < 0 ? 0ULL - (unsigned long long)value :
		(unsigned long long)value;

	do {
		num[sizeof(num) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	if (value < 0) {
		num[sizeof(num) - 1 - n++] = '-';
	}
	return record_put(out, key, num + sizeof(num) - n, n);
}

enum err
record_finish(struct buf *out)
{
	return buf_append_str(out, TRAILER "\n");
}

/* ---- the reader ---- */

size_t
record_trailer_end(const char *data, size_t len)
{
	const char *p = data, *end = data + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl == NULL) {
			return 0;
		}
		if (p != data && nl - p == 3 && memcmp(p, TRAILER, 3) == 0) {
			return (size_t)(nl + 1 - data);
		}
		p = nl + 1;
	}
	return 0;
}

struct reader {
	const struct record_spec *spec;
	struct record rec;
	unsigned line;
	struct errinfo *reterr;
};

/*
 * Unescape p[0..n) into a new heap string (*ret, *ret_len).  ERR_DATA for
 * a bad escape or a raw control byte, ERR_NOMEM.
 */
static MUST_CHECK enum err
unescape(struct reader *r, const char *p, size_t n, char **ret,
	size_t *ret_len)
{
	char *s = malloc(n + 1);
	size_t i, o = 0;

	if (s == NULL) {
		return errinfo_set(r->reterr, ERR_NOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c < 0x20 || c == 0x7f) {
			goto raw;
		}
		if (c == '\\') {
			char k = i + 1 < n ? p[++i] : '\0';
			int hi, lo;

			if (k == '\\') {
				c = '\\';
			} else if (k == 'n') {
				c = '\n';
			} else if (k == 'r') {
				c = '\r';
			} else if (k == 't') {
				c = '\t';
			} else if (k == 'x' && i + 2 < n &&
			    (hi = util_hexval(p[i + 1])) >= 0 &&
			    (lo = util_hexval(p[i + 2])) >= 0) {
				c = (unsigned char)(hi * 16 + lo);
				i += 2;
			} else {
				goto escape;
			}
		}
		s[o++] = (char)c;
	}
	s[o] = '\0';
	*ret = s;
	*ret_len = o;
	return ERR_OK;
raw:
	util_wipe(s, n + 1);
	free(s);
	return errinfo_set(r->reterr, ERR_DATA, "%s, line %u: a control "
		"character in a value", r->spec->what, r->line);
escape:
	util_wipe(s, n + 1);
	free(s);
	return errinfo_set(r->reterr, ERR_DATA, "%s, line %u: a bad escape "
		"(only \\\\, \\n, \\r, \\t and \\xHH)", r->spec->what, r->line);
}

/* The spec entry for key p[0..n), or NULL. */
static const struct record_key *
find_key(const struct record_spec *spec, const char *p, size_t n)
{
	const struct record_key *k;

	for (k = spec->keys; k->key != NULL; k++) {
		if (strlen(k->key) == n && memcmp(k->key, p, n) == 0) {
			return k;
		}
	}
	return NULL;
}

static size_t
count_of(const struct record *rec, const char *key)
{
	size_t i, c = 0;

	for (i = 0; i < rec->n; i++) {
		c += rec->fields[i].key == key;
	}
	return c;
}

/* The first line: "NAME VERSION". */
static MUST_CHECK enum err
first_line(struct reader *r, const char *p, size_t n)
{
	const struct record_spec *spec = r->spec;
	size_t nl = strlen(spec->name);
	char num[16];
	long v;

	if (n <= nl || memcmp(p, spec->name, nl) != 0 || p[nl] != ' ') {
		return errinfo_set(r->reterr, ERR_DATA, "%s, line 1: not a "
			"'%s' record", spec->what, spec->name);
	}
	p += nl + 1;
	n -= nl + 1;
	if (n == 0 || n >= sizeof(num) || strspn(p, "0123456789") < n) {
		return errinfo_set(r->reterr, ERR_DATA, "%s, line 1: a bad "
			"version number", spec->what);
	}
	memcpy(num, p, n);
	num[n] = '\0';
	if (util_parse_long(num, 0, LONG_MAX, &v) != 0 ||
	    v < (long)spec->min_version || v > (long)spec->max_version) {
		return errinfo_set(r->reterr, ERR_DATA, "%s, line 1: version "
			"'%s' is not known (this oasmtp reads %u to %u)",
			spec->what, num, spec->min_version, spec->max_version);
	}
	r->rec.version = (unsigned)v;
	return ERR_OK;
}

/* One "KEY VALUE" line, p[0..n) without its LF. */
static MUST_CHECK enum err
field_line(struct reader *r, const char *p, size_t n)
{
	const char *sp = memchr(p, ' ', n);
	size_t klen = sp != NULL ? (size_t)(sp - p) : n;
	const struct record_key *k;
	struct record_field *f;
	char shown[RECORD_KEY_MAX];
	enum err e;

	if (sp == NULL || !word_ok(p, klen)) {
		return errinfo_set(r->reterr, ERR_DATA, "%s, line %u: not a "
			"'key value' line", r->spec->what, r->line);
	}
	memcpy(shown, p, klen);
	shown[klen] = '\0';
	k = find_key(r->spec, p, klen);
	if (k == NULL) {
		return errinfo_set(r->reterr, ERR_DATA, "%s, line %u: unknown "
			"key '%s'", r->spec->what, r->line, shown);
	}
	if ((k->flags & RECORD_REPEAT) == 0 && count_of(&r->rec, k->key) > 0) {
		return errinfo_set(r->reterr, ERR_DATA, "%s, line %u: key '%s' "
			"repeated", r->spec->what, r->line, shown);
	}
	f = realloc(r->rec.fields, (r->rec.n + 1) * sizeof(*f));
	if (f == NULL) {
		return errinfo_set(r->reterr, ERR_NOMEM, "out of memory");
	}
	r->rec.fields = f;
	f = &r->rec.fields[r->rec.n];
	memset(f, 0, sizeof(*f));
	f->key = k->key;
	f->line = r->line;
	e = unescape(r, sp + 1, n - klen - 1, &f->value, &f->len);
	if (e == ERR_OK) {
		r->rec.n++;
	}
	return e;
}

/* After the last line: the trailer, the body rule, required keys. */
static MUST_CHECK enum err
finish(struct reader *r, int trailer, size_t rest)
{
	const struct record_spec *spec = r->spec;
	const struct record_key *k;

	if (!trailer && r->rec.version >= spec->trailer_since) {
		return errinfo_set(r->reterr, ERR_DATA, "%s: incomplete (no "
			"'end' line after line %u)", spec->what, r->line);
	}
	if (rest > 0 && !spec->body_follows) {
		return errinfo_set(r->reterr, ERR_DATA, "%s, line %u: text "
			"after the 'end' line", spec->what, r->line + 1);
	}
	for (k = spec->keys; k->key != NULL; k++) {
		if ((k->flags & RECORD_REQUIRED) != 0 &&
		    count_of(&r->rec, k->key) == 0) {
			return errinfo_set(r->reterr, ERR_DATA, "%s: key '%s' "
				"is missing", spec->what, k->key);
		}
	}
	return ERR_OK;
}

enum err
record_parse(const struct record_spec *spec, const char *data, size_t len,
	struct record *ret, struct errinfo *reterr)
{
	struct reader r;
	const char *p = data, *end = data + len;
	int trailer = 0;
	enum err e = ERR_OK;

	memset(&r, 0, sizeof(r));
	r.spec = spec;
	r.reterr = reterr;
	while (e == ERR_OK && p < end && !trailer) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		r.line++;
		if (nl == NULL) {
			e = errinfo_set(reterr, ERR_DATA, "%s, line %u: "
				"incomplete (no line end)", spec->what, r.line);
		} else if (r.line == 1) {
			e = first_line(&r, p, (size_t)(nl - p));
		} else if (nl - p == 3 && memcmp(p, TRAILER, 3) == 0) {
			trailer = 1;
		} else {
			e = field_line(&r, p, (size_t)(nl - p));
		}
		if (nl != NULL) {
			p = nl + 1;
		}
	}
	if (e == ERR_OK && r.line == 0) {
		e = errinfo_set(reterr, ERR_DATA, "%s: empty", spec->what);
	}
	if (e == ERR_OK) {
		e = finish(&r, trailer, (size_t)(end - p));
	}
	if (e != ERR_OK) {
		record_release(&r.rec);
		return e;
	}
	r.rec.length = (size_t)(p - data);
	*ret = r.rec;
	return ERR_OK;
}

void
record_release(struct record *r)
{
	size_t i;

	if (r == NULL) {
		return;
	}
	for (i = 0; i < r->n; i++) {
		util_wipe(r->fields[i].value, r->fields[i].len);
		free(r->fields[i].value);
	}
	free(r->fields);
	memset(r, 0, sizeof(*r));
}

const char *
record_get(const struct record *r, const char *key)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		if (strcmp(r->fields[i].key, key) == 0) {
			return r->fields[i].value;
		}
	}
	return NULL;
}

enum err
record_field_str(const struct record_spec *spec, const struct record_field *f,
	const char **ret, struct errinfo *reterr)
{
	if (memchr(f->value, '\0', f->len) != NULL) {
		return errinfo_set(reterr, ERR_DATA, "%s, line %u: '%s' holds "
			"a NUL byte", spec->what, f->line, f->key);
	}
	*ret = f->value;
	return ERR_OK;
}

enum err
record_field_long(const struct record_spec *spec,
	const struct record_field *f, long min, long max, long *ret,
	struct errinfo *reterr)
{
	if (memchr(f->value, '\0', f->len) != NULL ||
	    util_parse_long(f->value, min, max, ret) != 0) {
		return errinfo_set(reterr, ERR_DATA, "%s, line %u: '%s' is not "
			"a number from %ld to %ld", spec->what, f->line, f->key,
			min, max);
	}
	return ERR_OK;
}
