/*
 * addr.c - RFC 5322 address-list parser.
 *
 * Two passes over one unfolded value: a lexer turns the text into tokens
 * (atoms, quoted strings, domain literals, single special characters) and
 * drops comments and whitespace, remembering only whether whitespace came
 * before a token; then a small recursive-descent parser walks the tokens:
 *
 *   list     = [element] *("," [element])
 *   element  = group / mailbox
 *   group    = phrase ":" [mailbox *("," [mailbox])] [";"]
 *   mailbox  = [phrase] "<" [route ":"] addr-spec ">" / addr-spec
 *   addr-spec= word *("." word) ["@" domain]
 *
 * Nothing here keeps global state, and every allocation is owned by the
 * output list or freed before returning.
 */
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "buf.h"
#include "util.h"

enum tok_type {
	TOK_ATOM,
	TOK_QSTR,		/* raw span includes the quotes */
	TOK_DLIT,		/* raw span includes the brackets */
	TOK_SPECIAL,		/* one of < > @ , : ; . */
};

struct tok {
	enum tok_type type;
	char ch;		/* for TOK_SPECIAL */
	const char *p;		/* raw span in the input */
	size_t n;
	int space_before;	/* whitespace or a comment precedes it */
};

struct parser {
	struct tok *t;
	size_t n;
	size_t i;
	struct addr_list *out;
	struct errinfo *reterr;
};

/* Bound on one decoded name or address (inputs are bounded by callers). */
#define TEXT_MAX (16 * 1024 * 1024)

/* Upper bound on the text quoted back in error messages. */
#define SHOW_MAX 40

void
addr_list_init(struct addr_list *l)
{
	l->v = NULL;
	l->n = 0;
	l->cap = 0;
}

void
addr_list_release(struct addr_list *l)
{
	size_t i;

	if (l == NULL) {
		return;
	}
	for (i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].addr);
	}
	free(l->v);
	addr_list_init(l);
}

enum err
addr_list_add(struct addr_list *l, const char *name, const char *addr,
	struct errinfo *reterr)
{
	struct addr_mailbox mb;

	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 8;
		struct addr_mailbox *nv;

		nv = realloc(l->v, ncap * sizeof(*nv));
		if (nv == NULL) {
			return errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
		l->v = nv;
		l->cap = ncap;
	}
	mb.name = NULL;
	mb.addr = strdup(addr);
	if (name != NULL) {
		mb.name = strdup(name);
	}
	if (mb.addr == NULL || (name != NULL && mb.name == NULL)) {
		free(mb.addr);
		free(mb.name);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	l->v[l->n++] = mb;
	return ERR_OK;
}

static int
is_atext(unsigned char c)
{
	if (c >= 0x80) {
		return 1;
	}
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9')) {
		return 1;
	}
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Skip a quoted-string or domain literal starting at s[i]; returns the index
 * of the closing character, or len when it is missing. */
static size_t
skip_quoted(const char *s, size_t len, size_t i, char close)
{
	for (i++; i < len; i++) {
		if (s[i] == '\\') {
			i++;
			if (i >= len) {
				break;
			}
		} else if (s[i] == close) {
			return i;
		}
	}
	return len;
}

static MUST_CHECK enum err
push_tok(struct tok **v, size_t *n, size_t *cap, const struct tok *t,
	struct errinfo *reterr)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct tok *nv = realloc(*v, ncap * sizeof(*nv));

		if (nv == NULL) {
			return errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = *t;
	return ERR_OK;
}

static MUST_CHECK enum err
lex(const char *s, size_t len, struct tok **ret_v, size_t *ret_n,
	struct errinfo *reterr)
{
	struct tok *v = NULL;
	size_t n = 0, cap = 0, i = 0;
	int space = 0;
	enum err rc = ERR_OK;

	while (i < len && rc == ERR_OK) {
		unsigned char c = (unsigned char)s[i];
		struct tok t;

		t.space_before = space;
		t.p = s + i;
		t.ch = 0;
		if (c == ' ' || c == '\t') {
			space = 1;
			i++;
			continue;
		}
		if (c == '(') {
			int depth = 1;

			for (i++; i < len && depth > 0; i++) {
				if (s[i] == '\\') {
					i++;
				} else if (s[i] == '(') {
					depth++;
				} else if (s[i] == ')') {
					depth--;
				}
			}
			if (depth > 0) {
				rc = errinfo_set(reterr, ERR_DATA,
					"unterminated comment");
			}
			space = 1;
			continue;
		}
		if (c == '"' || c == '[') {
			size_t end = skip_quoted(s, len, i, c == '"' ? '"' : ']');

			if (end >= len) {
				rc = errinfo_set(reterr, ERR_DATA, c == '"' ?
					"unterminated quoted string" :
					"unterminated domain literal");
				break;
			}
			t.type = c == '"' ? TOK_QSTR : TOK_DLIT;
			t.n = end + 1 - i;
			i = end + 1;
		} else if (strchr("<>@,:;.", c) != NULL) {
			t.type = TOK_SPECIAL;
			t.ch = (char)c;
			t.n = 1;
			i++;
		} else if (is_atext(c)) {
			size_t j = i;

			while (j < len && is_atext((unsigned char)s[j])) {
				j++;
			}
			t.type = TOK_ATOM;
			t.n = j - i;
			i = j;
		} else if (c < 0x20 || c == 0x7f) {
			rc = errinfo_set(reterr, ERR_DATA,
				"control character 0x%02x", c);
			break;
		} else {
			rc = errinfo_set(reterr, ERR_DATA,
				"unexpected character '%c'", c);
			break;
		}
		space = 0;
		rc = push_tok(&v, &n, &cap, &t, reterr);
	}
	if (rc != ERR_OK) {
		free(v);
		return rc;
	}
	*ret_v = v;
	*ret_n = n;
	return ERR_OK;
}

/* How a token is shown in an error message. */
static const char *
show(const struct parser *ps, char *tmp, size_t size)
{
	const struct tok *t;
	size_t n;

	if (ps->i >= ps->n) {
		return "end of input";
	}
	t = &ps->t[ps->i];
	n = t->n < SHOW_MAX ? t->n : SHOW_MAX;
	if (size < n + 3) {
		return "?";
	}
	tmp[0] = '\'';
	memcpy(tmp + 1, t->p, n);
	tmp[n + 1] = '\'';
	tmp[n + 2] = '\0';
	return tmp;
}

static int
at_special(const struct parser *ps, char ch)
{
	return ps->i < ps->n && ps->t[ps->i].type == TOK_SPECIAL &&
	    ps->t[ps->i].ch == ch;
}

static int
is_word(const struct tok *t)
{
	return t->type == TOK_ATOM || t->type == TOK_QSTR;
}

static int
is_phrase_tok(const struct tok *t)
{
	return is_word(t) || (t->type == TOK_SPECIAL && t->ch == '.');
}

/* Append the contents of a quoted string (without quotes, unescaped). */
static MUST_CHECK enum err
append_unquoted(struct buf *b, const struct tok *t)
{
	size_t i;
	enum err rc = ERR_OK;

	for (i = 1; i + 1 < t->n && rc == ERR_OK; i++) {
		if (t->p[i] == '\\' && i + 2 < t->n) {
			i++;
		}
		rc = buf_putc(b, t->p[i]);
	}
	return rc;
}

/* Decode the display-name tokens [from, to) into *ret (NULL when empty). */
static MUST_CHECK enum err
decode_phrase(struct parser *ps, size_t from, size_t to, char **ret)
{
	struct buf b;
	size_t k;
	enum err rc = ERR_OK;

	*ret = NULL;
	buf_init(&b, TEXT_MAX);
	for (k = from; k < to && rc == ERR_OK; k++) {
		const struct tok *t = &ps->t[k];

		if (b.len > 0 && t->space_before) {
			rc = buf_putc(&b, ' ');
		}
		if (rc != ERR_OK) {
			break;
		}
		if (t->type == TOK_QSTR) {
			rc = append_unquoted(&b, t);
		} else {
			rc = buf_append(&b, t->p, t->n);
		}
	}
	if (rc != ERR_OK) {
		buf_release(&b);
		return errinfo_set(ps->reterr, ERR_NOMEM, "out of memory");
	}
	if (b.len > 0) {
		*ret = buf_take(&b);
		if (*ret == NULL) {
			return errinfo_set(ps->reterr, ERR_NOMEM,
				"out of memory");
		}
	}
	buf_release(&b);
	return ERR_OK;
}

/* domain = atom *("." atom) / domain-literal; appended to b when not NULL */
static MUST_CHECK enum err
parse_domain(struct parser *ps, struct buf *b)
{
	char tmp[SHOW_MAX + 3];

	if (ps->i < ps->n && ps->t[ps->i].type == TOK_DLIT) {
		if (b != NULL && buf_append(b, ps->t[ps->i].p,
		    ps->t[ps->i].n) != ERR_OK) {
			return errinfo_set(ps->reterr, ERR_NOMEM,
				"out of memory");
		}
		ps->i++;
		return ERR_OK;
	}
	for (;;) {
		if (ps->i >= ps->n || ps->t[ps->i].type != TOK_ATOM) {
			return errinfo_set(ps->reterr, ERR_DATA,
				"expected a domain at %s",
				show(ps, tmp, sizeof(tmp)));
		}
		if (b != NULL && buf_append(b, ps->t[ps->i].p,
		    ps->t[ps->i].n) != ERR_OK) {
			return errinfo_set(ps->reterr, ERR_NOMEM,
				"out of memory");
		}
		ps->i++;
		if (!at_special(ps, '.')) {
			return ERR_OK;
		}
		ps->i++;
		if (b != NULL && buf_putc(b, '.') != ERR_OK) {
			return errinfo_set(ps->reterr, ERR_NOMEM,
				"out of memory");
		}
	}
}

/* addr-spec, or a bare local name; the address goes to *ret (heap). */
static MUST_CHECK enum err
parse_addr_spec(struct parser *ps, char **ret)
{
	struct buf b;
	char tmp[SHOW_MAX + 3];
	enum err rc;

	*ret = NULL;
	buf_init(&b, TEXT_MAX);
	if (at_special(ps, '@')) {
		return errinfo_set(ps->reterr, ERR_DATA,
			"missing local part before '@'");
	}
	for (;;) {
		if (ps->i >= ps->n || !is_word(&ps->t[ps->i])) {
			buf_release(&b);
			return errinfo_set(ps->reterr, ERR_DATA,
				"expected an address at %s",
				show(ps, tmp, sizeof(tmp)));
		}
		rc = buf_append(&b, ps->t[ps->i].p, ps->t[ps->i].n);
		if (rc != ERR_OK) {
			goto nomem;
		}
		ps->i++;
		if (!at_special(ps, '.')) {
			break;
		}
		ps->i++;
		if (buf_putc(&b, '.') != ERR_OK) {
			goto nomem;
		}
	}
	if (at_special(ps, '@')) {
		ps->i++;
		if (buf_putc(&b, '@') != ERR_OK) {
			goto nomem;
		}
		rc = parse_domain(ps, &b);
		if (rc != ERR_OK) {
			buf_release(&b);
			return rc;
		}
	}
	*ret = buf_take(&b);
	buf_release(&b);
	if (*ret == NULL) {
		return errinfo_set(ps->reterr, ERR_NOMEM, "out of memory");
	}
	return ERR_OK;
nomem:
	buf_release(&b);
	return errinfo_set(ps->reterr, ERR_NOMEM, "out of memory");
}

/* Index just past the phrase (words and dots) starting at ps->i. */
static size_t
phrase_end(const struct parser *ps)
{
	size_t j = ps->i;

	while (j < ps->n && is_phrase_tok(&ps->t[j])) {
		j++;
	}
	return j;
}

static MUST_CHECK enum err
parse_mailbox(struct parser *ps)
{
	size_t start = ps->i, j = phrase_end(ps);
	char *name = NULL, *addr = NULL;
	char tmp[SHOW_MAX + 3];
	enum err rc;

	if (j < ps->n && ps->t[j].type == TOK_SPECIAL && ps->t[j].ch == '<') {
		rc = decode_phrase(ps, start, j, &name);
		if (rc != ERR_OK) {
			return rc;
		}
		ps->i = j + 1;
		if (at_special(ps, '@')) {
			/* obs-route: "@a,@b:" before the address, dropped */
			while (at_special(ps, '@') || at_special(ps, ',')) {
				if (at_special(ps, ',')) {
					ps->i++;
					continue;
				}
				ps->i++;
				rc = parse_domain(ps, NULL);
				if (rc != ERR_OK) {
					free(name);
					return errinfo_prefix(ps->reterr,
						"malformed source route: ");
				}
			}
			if (!at_special(ps, ':')) {
				free(name);
				return errinfo_set(ps->reterr, ERR_DATA,
					"malformed source route: expected "
					"':' at %s", show(ps, tmp, sizeof(tmp)));
			}
			ps->i++;
		}
		if (at_special(ps, '>')) {
			free(name);
			return errinfo_set(ps->reterr, ERR_DATA,
				"empty address '<>'");
		}
		rc = parse_addr_spec(ps, &addr);
		if (rc != ERR_OK) {
			free(name);
			return rc;
		}
		if (!at_special(ps, '>')) {
			rc = errinfo_set(ps->reterr, ERR_DATA,
				"missing '>' after '%.*s'", SHOW_MAX, addr);
			free(name);
			free(addr);
			return rc;
		}
		ps->i++;
	} else {
		rc = parse_addr_spec(ps, &addr);
		if (rc != ERR_OK) {
			return rc;
		}
	}
	rc = addr_list_add(ps->out, name, addr, ps->reterr);
	if (rc == ERR_OK && ps->i < ps->n && !at_special(ps, ',') &&
	    !at_special(ps, ';')) {
		rc = errinfo_set(ps->reterr, ERR_DATA,
			"unexpected %s after address '%.*s' (missing ',' or "
			"'<'?)", show(ps, tmp, sizeof(tmp)), SHOW_MAX, addr);
	}
	free(name);
	free(addr);
	return rc;
}

static MUST_CHECK enum err
parse_element(struct parser *ps)
{
	size_t j = phrase_end(ps);
	char tmp[SHOW_MAX + 3];
	enum err rc;

	if (j == ps->i || j >= ps->n || ps->t[j].type != TOK_SPECIAL ||
	    ps->t[j].ch != ':') {
		return parse_mailbox(ps);
	}
	/* a group: its name is dropped, its members flattened */
	ps->i = j + 1;
	while (ps->i < ps->n) {
		if (at_special(ps, ';')) {
			ps->i++;
			break;
		}
		if (at_special(ps, ',')) {
			ps->i++;
			continue;
		}
		j = phrase_end(ps);
		if (j > ps->i && j < ps->n && ps->t[j].type == TOK_SPECIAL &&
		    ps->t[j].ch == ':') {
			return errinfo_set(ps->reterr, ERR_DATA,
				"nested group at %s",
				show(ps, tmp, sizeof(tmp)));
		}
		rc = parse_mailbox(ps);
		if (rc != ERR_OK) {
			return rc;
		}
	}
	if (ps->i < ps->n && !at_special(ps, ',')) {
		return errinfo_set(ps->reterr, ERR_DATA,
			"unexpected %s after group",
			show(ps, tmp, sizeof(tmp)));
	}
	return ERR_OK;
}

enum err
addr_parse_list(const char *s, size_t len, struct addr_list *out,
	struct errinfo *reterr)
{
	struct parser ps;
	size_t k;
	enum err rc = ERR_OK;

	for (k = 0; k < len; k++) {
		if (s[k] == '\0' || s[k] == '\r' || s[k] == '\n') {
			return errinfo_set(reterr, ERR_DATA,
				"control character 0x%02x",
				(unsigned char)s[k]);
		}
	}
	ps.out = out;
	ps.reterr = reterr;
	ps.i = 0;
	rc = lex(s, len, &ps.t, &ps.n, reterr);
	if (rc != ERR_OK) {
		return rc;
	}
	while (ps.i < ps.n && rc == ERR_OK) {
		if (at_special(&ps, ',')) {
			ps.i++;
			continue;
		}
		rc = parse_element(&ps);
		if (rc == ERR_OK && ps.i < ps.n && !at_special(&ps, ',')) {
			char tmp[SHOW_MAX + 3];

			rc = errinfo_set(reterr, ERR_DATA, "unexpected %s",
				show(&ps, tmp, sizeof(tmp)));
		}
	}
	free(ps.t);
	return rc;
}

/* Index of the '@' separating local part and domain, or -1. */
static long
at_index(const char *addr)
{
	long at = -1;
	int quoted = 0;
	size_t i;

	for (i = 0; addr[i] != '\0'; i++) {
		if (quoted && addr[i] == '\\' && addr[i + 1] != '\0') {
			i++;
		} else if (addr[i] == '"') {
			quoted = !quoted;
		} else if (!quoted && addr[i] == '@') {
			at = (long)i;
		}
	}
	return at;
}

int
addr_is_local(const char *addr)
{
	return at_index(addr) < 0;
}

const char *
addr_domain(const char *addr)
{
	long at = at_index(addr);

	return at < 0 ? NULL : addr + at + 1;
}

int
addr_equal(const char *a, const char *b)
{
	long ia = at_index(a), ib = at_index(b);

	if (ia != ib) {
		return 0;
	}
	if (ia < 0) {
		return strcmp(a, b) == 0;
	}
	return memcmp(a, b, (size_t)ia) == 0 &&
	    util_strcasecmp(a + ia + 1, b + ib + 1) == 0;
}

uint64_t
addr_hash(const char *a)
{
	long at = at_index(a);
	uint64_t h = 14695981039346656037ULL;	/* FNV-1a */
	size_t i;

	for (i = 0; a[i] != '\0'; i++) {
		unsigned char c = (unsigned char)a[i];

		if (at >= 0 && (long)i > at && c >= 'A' && c <= 'Z') {
			c = (unsigned char)(c - 'A' + 'a');
		}
		h = (h ^ c) * 1099511628211ULL;
	}
	return h;
}
