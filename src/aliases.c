/*
 * aliases.c - the msmtp aliases file (format in aliases.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aliases.h"
#include "buf.h"
#include "util.h"

/* Longest line accepted in an aliases file. */
#define ALIASES_LINE_MAX (64 * 1024)

struct alias {
	char *name;
	struct addr_list targets;
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

/* Parse one line (already stripped of its newline); blank lines are fine. */
static MUST_CHECK enum err
parse_line(struct aliases *a, char *line, size_t len, unsigned lineno,
	struct errinfo *reterr)
{
	size_t i = 0, colon, name_end;
	struct alias al;
	enum err rc;

	while (i < len && is_blank(line[i])) {
		i++;
	}
	if (i == len || line[i] == '#') {
		return ERR_OK;
	}
	for (colon = i; colon < len && line[colon] != ':'; colon++) {
		;
	}
	if (colon == len) {
		return errinfo_set(reterr, ERR_CONFIG,
			"%s:%u: missing ':' after the alias name", a->path,
			lineno);
	}
	name_end = colon;
	while (name_end > i && is_blank(line[name_end - 1])) {
		name_end--;
	}
	if (name_end == i) {
		return errinfo_set(reterr, ERR_CONFIG,
			"%s:%u: missing alias name before ':'", a->path, lineno);
	}
	for (size_t k = i; k < name_end; k++) {
		if (is_blank(line[k]) || line[k] == '@' ||
		    (unsigned char)line[k] < 0x20) {
			return errinfo_set(reterr, ERR_CONFIG,
				"%s:%u: invalid alias name '%.*s'", a->path,
				lineno, (int)(name_end - i), line + i);
		}
	}
	addr_list_init(&al.targets);
	rc = addr_parse_list(line + colon + 1, len - colon - 1, &al.targets,
		reterr);
	if (rc == ERR_OK && al.targets.n == 0) {
		rc = errinfo_set(reterr, ERR_CONFIG, "no address");
	}
	if (rc != ERR_OK) {
		addr_list_release(&al.targets);
		if (rc == ERR_NOMEM) {
			return rc;
		}
		errinfo_prefix(reterr, "%s:%u: alias '%.*s': ", a->path,
			lineno, (int)(name_end - i), line + i);
		/* an address-list error in this file is a config error */
		return errinfo_recode(reterr, ERR_CONFIG);
	}
	al.name = strndup(line + i, name_end - i);
	if (al.name == NULL) {
		addr_list_release(&al.targets);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	if (a->n == a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 16;
		struct alias *nv = realloc(a->v, ncap * sizeof(*nv));

		if (nv == NULL) {
			free(al.name);
			addr_list_release(&al.targets);
			return errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
		a->v = nv;
		a->cap = ncap;
	}
	a->v[a->n++] = al;
	return ERR_OK;
}

enum err
aliases_load(const char *path, struct aliases **ret, struct errinfo *reterr)
{
	struct aliases *a;
	FILE *f;
	char *line = NULL;
	size_t linecap = 0;
	ssize_t got;
	unsigned lineno = 0;
	enum err rc = ERR_OK;

	*ret = NULL;
	a = calloc(1, sizeof(*a));
	if (a == NULL || (a->path = strdup(path)) == NULL) {
		free(a);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	f = fopen(path, "r");
	if (f == NULL) {
		rc = errinfo_set(reterr, ERR_CONFIG,
			"aliases file %s: cannot open: %s", path,
			strerror(errno));
		aliases_free(a);
		return rc;
	}
	while (rc == ERR_OK && (got = getline(&line, &linecap, f)) >= 0) {
		size_t len = (size_t)got;

		lineno++;
		if (len > ALIASES_LINE_MAX) {
			rc = errinfo_set(reterr, ERR_CONFIG,
				"%s:%u: line longer than %d bytes", path,
				lineno, ALIASES_LINE_MAX);
			break;
		}
		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r')) {
			len--;
		}
		if (memchr(line, '\0', len) != NULL) {
			rc = errinfo_set(reterr, ERR_CONFIG,
				"%s:%u: NUL byte in line", path, lineno);
			break;
		}
		rc = parse_line(a, line, len, lineno, reterr);
	}
	if (rc == ERR_OK && ferror(f)) {
		rc = errinfo_set(reterr, ERR_CONFIG,
			"aliases file %s: read error: %s", path,
			strerror(errno));
	}
	free(line);
	fclose(f);
	if (rc != ERR_OK) {
		aliases_free(a);
		return rc;
	}
	*ret = a;
	return ERR_OK;
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
