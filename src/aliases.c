/*
 * aliases.c - the aliases file, msmtp's and aliases(5)'s (format in
 * aliases.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aliases.h"
#include "buf.h"
#include "util.h"

/* Longest alias (with its continuation lines) accepted. */
#define ALIASES_LINE_MAX (64 * 1024)
/* Largest aliases file read. */
#define ALIASES_FILE_MAX (16 * 1024 * 1024)

struct alias {
	char *name;
	struct addr_list targets;
	char *refused;		/* why it cannot be used (file:line: ...) */
};

struct aliases {
	char *path;
	struct alias *v;
	size_t n;
	size_t cap;
};

void
aliases_free(struct aliases *a)
{
	size_t i;

	if (a == NULL) {
		return;
	}
	for (i = 0; i < a->n; i++) {
		free(a->v[i].name);
		free(a->v[i].refused);
		addr_list_release(&a->v[i].targets);
	}
	free(a->v);
	free(a->path);
	free(a);
}

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The characters of an unquoted alias name, up to ':'. */
static int
is_name_char(char c)
{
	return !is_blank(c) && c != ':' && c != '@' && c != '<' && c != '"' &&
	    c != ',' && (unsigned char)c >= 0x20;
}

/*
 * 1 when line (a line that starts with a blank) is "NAME:" after the
 * blanks: an indented alias of an msmtp file, not a continuation.
 */
static int
is_indented_alias(const char *line, size_t len)
{
	size_t i = 0, start;

	while (i < len && is_blank(line[i])) {
		i++;
	}
	start = i;
	while (i < len && is_name_char(line[i])) {
		i++;
	}
	if (i == start) {
		return 0;
	}
	while (i < len && is_blank(line[i])) {
		i++;
	}
	return i < len && line[i] == ':';
}

/*
 * The first target of the list p[0..n) that names something other than an
 * address: a "|command", a "/file" or an ":include:" (aliases(5)), quoted
 * or not.  *ret_kind: 1 command, 2 file, 3 include.  NULL when none.
 */
static const char *
refused_target(const char *p, size_t n, size_t *ret_len, int *ret_kind)
{
	size_t i = 0;

	while (i < n) {
		size_t start, end, k;
		int quoted = 0, angle = 0;
		const char *t;

		while (i < n && (is_blank(p[i]) || p[i] == ',')) {
			i++;
		}
		start = i;
		for (; i < n; i++) {
			if (quoted && p[i] == '\\' && i + 1 < n) {
				i++;
			} else if (p[i] == '"') {
				quoted = !quoted;
			} else if (!quoted && p[i] == '<') {
				angle = 1;
			} else if (!quoted && p[i] == '>') {
				angle = 0;
			} else if (!quoted && !angle && p[i] == ',') {
				break;
			}
		}
		end = i;
		while (end > start && is_blank(p[end - 1])) {
			end--;
		}
		t = p + start;
		k = end - start;
		if (k > 0 && t[0] == '"') {
			t++;
			k--;
		}
		if (k > 0 && (t[0] == '|' || t[0] == '/' ||
		    (k >= 9 && util_strncasecmp(t, ":include:", 9) == 0))) {
			*ret_kind = t[0] == '|' ? 1 : t[0] == '/' ? 2 : 3;
			*ret_len = end - start;
			return p + start;
		}
	}
	return NULL;
}

static enum err
add_alias(struct aliases *a, struct alias *al, struct errinfo *reterr)
{
	if (a->n == a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 16;
		struct alias *nv = realloc(a->v, ncap * sizeof(*nv));

		if (nv == NULL) {
			return errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
		a->v = nv;
		a->cap = ncap;
	}
	a->v[a->n++] = *al;
	return ERR_OK;
}

/*
 * Parse one alias: the line starting at lineno with its continuation
 * lines joined (newlines already gone).
 */
static MUST_CHECK enum err
parse_line(struct aliases *a, const char *line, size_t len, unsigned lineno,
	struct errinfo *reterr)
{
	size_t i = 0, colon, kind_len = 0;
	struct alias al;
	struct buf name;
	const char *bad;
	int kind = 0;
	enum err rc = ERR_OK;

	memset(&al, 0, sizeof(al));
	addr_list_init(&al.targets);
	buf_init(&name, ALIASES_LINE_MAX);
	while (i < len && is_blank(line[i])) {
		i++;
	}
	if (i < len && line[i] == '"') {
		/* aliases(5): a quoted name may hold blanks */
		for (i++; i < len && line[i] != '"' && rc == ERR_OK; i++) {
			if (line[i] == '\\' && i + 1 < len) {
				i++;
			}
			rc = buf_putc(&name, line[i]);
		}
		if (rc == ERR_OK && i == len) {
			buf_release(&name);
			return errinfo_set(reterr, ERR_CONFIG, "%s:%u: "
				"unterminated quoted alias name", a->path,
				lineno);
		}
		for (i++; i < len && is_blank(line[i]); i++) {
			;
		}
		colon = i;
		if (colon == len || line[colon] != ':') {
			buf_release(&name);
			return errinfo_set(reterr, ERR_CONFIG, "%s:%u: missing "
				"':' after the alias name", a->path, lineno);
		}
	} else {
		size_t name_end;

		for (colon = i; colon < len && line[colon] != ':'; colon++) {
			;
		}
		if (colon == len) {
			buf_release(&name);
			return errinfo_set(reterr, ERR_CONFIG,
				"%s:%u: missing ':' after the alias name",
				a->path, lineno);
		}
		name_end = colon;
		while (name_end > i && is_blank(line[name_end - 1])) {
			name_end--;
		}
		for (size_t k = i; k < name_end; k++) {
			if (!is_name_char(line[k])) {
				buf_release(&name);
				return errinfo_set(reterr, ERR_CONFIG,
					"%s:%u: invalid alias name '%.*s'",
					a->path, lineno, (int)(name_end - i),
					line + i);
			}
		}
		rc = buf_append(&name, line + i, name_end - i);
	}
	if (rc == ERR_OK && name.len == 0) {
		buf_release(&name);
		return errinfo_set(reterr, ERR_CONFIG,
			"%s:%u: missing alias name before ':'", a->path, lineno);
	}
	if (rc != ERR_OK || (al.name = buf_take(&name)) == NULL) {
		buf_release(&name);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	buf_release(&name);
	bad = refused_target(line + colon + 1, len - colon - 1, &kind_len,
		&kind);
	if (bad != NULL) {
		/*
		 * Refused when used, not when loaded: one such alias (a
		 * mailing-list program in /etc/aliases) must not stop the
		 * others.  It is never expanded into an address.
		 */
		struct errinfo why = ERRINFO_INIT;

		int shown = kind_len > 200 ? 200 : (int)kind_len;

		if (kind == 3) {
			errinfo_set(&why, ERR_CONFIG, "%s:%u: alias '%s': "
				"':include:' is not supported: list the "
				"addresses in the alias itself", a->path, lineno,
				al.name);
		} else if (kind == 1) {
			errinfo_set(&why, ERR_CONFIG, "%s:%u: alias '%s': "
				"'%.*s' is a command: oasmtp sends mail to "
				"addresses only and runs no program for an "
				"alias; point the alias at an address", a->path,
				lineno, al.name, shown, bad);
		} else {
			errinfo_set(&why, ERR_CONFIG, "%s:%u: alias '%s': "
				"'%.*s' is a file: oasmtp sends mail to "
				"addresses only and writes no file for an alias; "
				"point the alias at an address", a->path, lineno,
				al.name, shown, bad);
		}
		al.refused = strdup(errinfo_msg(&why));
		errinfo_release(&why);
		if (al.refused == NULL) {
			free(al.name);
			return errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
	} else {
		rc = addr_parse_list(line + colon + 1, len - colon - 1,
			&al.targets, reterr);
		if (rc == ERR_OK && al.targets.n == 0) {
			rc = errinfo_set(reterr, ERR_CONFIG, "no address");
		}
		if (rc != ERR_OK) {
			addr_list_release(&al.targets);
			if (rc != ERR_NOMEM) {
				errinfo_prefix(reterr, "%s:%u: alias '%s': ",
					a->path, lineno, al.name);
				/* an address-list error here is a config error */
				rc = errinfo_recode(reterr, ERR_CONFIG);
			}
			free(al.name);
			return rc;
		}
	}
	rc = add_alias(a, &al, reterr);
	if (rc != ERR_OK) {
		free(al.name);
		free(al.refused);
		addr_list_release(&al.targets);
	}
	return rc;
}

enum err
aliases_parse_buffer(const char *path, const char *data, size_t size,
	struct aliases **ret, struct errinfo *reterr)
{
	struct aliases *a;
	struct buf logical;
	size_t off = 0;
	unsigned lineno = 0, first = 0;
	enum err rc = ERR_OK;

	*ret = NULL;
	a = calloc(1, sizeof(*a));
	if (a == NULL || (a->path = strdup(path)) == NULL) {
		free(a);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	buf_init(&logical, ALIASES_LINE_MAX);
	while (rc == ERR_OK && off < size) {
		const char *line = data + off;
		const char *nl = memchr(line, '\n', size - off);
		size_t len = nl != NULL ? (size_t)(nl - line) : size - off;
		size_t i = 0;

		off += len + (nl != NULL);
		lineno++;
		while (len > 0 && line[len - 1] == '\r') {
			len--;
		}
		if (memchr(line, '\0', len) != NULL) {
			rc = errinfo_set(reterr, ERR_CONFIG,
				"%s:%u: NUL byte in line", path, lineno);
			break;
		}
		while (i < len && is_blank(line[i])) {
			i++;
		}
		if (i == len || line[i] == '#') {
			continue;	/* blank or comment: continuation goes on */
		}
		if (i > 0 && !is_indented_alias(line, len)) {
			/* aliases(5): a line starting with a blank continues */
			if (first == 0) {
				rc = errinfo_set(reterr, ERR_CONFIG, "%s:%u: a "
					"continuation line without an alias "
					"before it", path, lineno);
				break;
			}
			if (buf_putc(&logical, ' ') != ERR_OK ||
			    buf_append(&logical, line + i, len - i) != ERR_OK) {
				rc = errinfo_set(reterr, ERR_CONFIG, "%s:%u: "
					"alias longer than %d bytes", path,
					first, ALIASES_LINE_MAX);
			}
			continue;
		}
		if (first != 0) {
			rc = parse_line(a, logical.data, logical.len, first,
				reterr);
			buf_reset(&logical);
		}
		first = lineno;
		if (rc == ERR_OK && buf_append(&logical, line, len) != ERR_OK) {
			rc = errinfo_set(reterr, ERR_CONFIG, "%s:%u: line "
				"longer than %d bytes", path, lineno,
				ALIASES_LINE_MAX);
		}
	}
	if (rc == ERR_OK && first != 0) {
		rc = parse_line(a, logical.data, logical.len, first, reterr);
	}
	buf_release(&logical);
	if (rc != ERR_OK) {
		aliases_free(a);
		return rc;
	}
	*ret = a;
	return ERR_OK;
}

enum err
aliases_load(const char *path, struct aliases **ret, struct errinfo *reterr)
{
	struct buf data;
	char chunk[16384];
	enum err rc = ERR_OK;
	FILE *f;
	size_t n;

	*ret = NULL;
	f = fopen(path, "r");
	if (f == NULL) {
		return errinfo_set(reterr, ERR_CONFIG,
			"aliases file %s: cannot open: %s", path,
			strerror(errno));
	}
	buf_init(&data, ALIASES_FILE_MAX);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_append(&data, chunk, n) != ERR_OK) {
			rc = errinfo_set(reterr, ERR_CONFIG, "aliases file %s: "
				"larger than %d bytes", path, ALIASES_FILE_MAX);
			break;
		}
	}
	if (rc == ERR_OK && ferror(f)) {
		rc = errinfo_set(reterr, ERR_CONFIG,
			"aliases file %s: read error: %s", path,
			strerror(errno));
	}
	fclose(f);
	if (rc == ERR_OK) {
		rc = aliases_parse_buffer(path, data.data != NULL ? data.data :
			"", data.len, ret, reterr);
	}
	buf_release(&data);
	return rc;
}

static const struct alias *
find(const struct aliases *a, const char *name)
{
	size_t i;

	for (i = 0; i < a->n; i++) {
		if (util_strcasecmp(a->v[i].name, name) == 0) {
			return &a->v[i];
		}
	}
	return NULL;
}

static MUST_CHECK enum err
expand(const struct aliases *a, const char *addr, struct addr_list *out,
	unsigned depth, int via_default, struct errinfo *reterr)
{
	const struct alias *al;
	size_t i;
	enum err rc = ERR_OK;

	if (a == NULL || !addr_is_local(addr)) {
		return addr_list_add(out, NULL, addr, reterr);
	}
	if (depth >= ALIASES_DEPTH_MAX) {
		return errinfo_set(reterr, ERR_CONFIG,
			"%s: expanding alias '%s' nests deeper than %d levels "
			"(a loop?)", a->path, addr, ALIASES_DEPTH_MAX);
	}
	al = find(a, addr);
	if (al == NULL && !via_default) {
		al = find(a, "default");
		via_default = 1;
	} else if (al == NULL) {
		return addr_list_add(out, NULL, addr, reterr);
	}
	if (al == NULL) {
		return addr_list_add(out, NULL, addr, reterr);
	}
	if (al->refused != NULL) {
		return errinfo_set(reterr, ERR_CONFIG, "%s", al->refused);
	}
	for (i = 0; i < al->targets.n && rc == ERR_OK; i++) {
		const char *t = al->targets.v[i].addr;

		/* fan-out at each level grows exponentially with depth */
		if (out->n >= ALIASES_EXPAND_MAX) {
			return errinfo_set(reterr, ERR_CONFIG,
				"%s: alias '%s' expands to more than %d "
				"addresses", a->path, addr, ALIASES_EXPAND_MAX);
		}
		if (util_strcasecmp(t, addr) == 0) {
			rc = addr_list_add(out, NULL, t, reterr);
		} else {
			rc = expand(a, t, out, depth + 1, via_default, reterr);
		}
	}
	return rc;
}

enum err
aliases_expand(const struct aliases *a, const char *addr,
	struct addr_list *out, struct errinfo *reterr)
{
	return expand(a, addr, out, 0, 0, reterr);
}
