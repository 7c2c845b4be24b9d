/*
 * aliases.h - the aliases file: maps local names to addresses.  One reader
 * for msmtp's format (the `aliases` key) and aliases(5)'s (/etc/aliases,
 * the system default), which msmtp's is a subset of:
 *
 *   # comment (only at the start of a line, after optional blanks)
 *   root: admin@example.com, "Ops" <ops@example.com>
 *   staff: a@example.com,
 *       b@example.com            <- aliases(5): a line starting with a
 *                                   blank continues the alias above
 *   "john smith": js@example.com <- aliases(5): a quoted name
 *   default: fallback@example.com
 *
 * An indented line of the form "NAME:" is an alias of its own (msmtp files
 * may indent), not a continuation.  The right-hand side is an RFC 5322
 * address list (addr.h).  Targets that are not addresses (aliases(5)'s
 * "|command", "/file" and ":include:FILE") are refused: such an alias
 * loads, but expanding it is an ERR_CONFIG naming FILE:LINE, so it never
 * becomes a recipient and the other aliases still work.  Names are matched
 * ASCII case-insensitively; the first line naming an alias wins.
 * `default` applies to every local name that has no line of its own.
 * Expansion is recursive: a target without '@' is looked up again, up to
 * ALIASES_DEPTH_MAX levels; an alias expanding to its own name stops there.
 * Only addresses without '@' are ever looked up.
 */
#ifndef OASMTP_ALIASES_H
#define OASMTP_ALIASES_H

#include "addr.h"
#include "err.h"

#define ALIASES_DEPTH_MAX 16
/* Most addresses one name may expand to (fan-out at every level). */
#define ALIASES_EXPAND_MAX 10000

struct aliases;

/*
 * Read the file at path.  Errors: ERR_CONFIG ("FILE: cannot open: ..." or
 * "FILE:LINE: problem"), ERR_NOMEM.  *ret is owned by the caller.
 */
MUST_CHECK enum err aliases_load(const char *path, struct aliases **ret,
	struct errinfo *reterr);

/* The same for the text data[0..size), with path used in messages. */
MUST_CHECK enum err aliases_parse_buffer(const char *path, const char *data,
	size_t size, struct aliases **ret, struct errinfo *reterr);

/*
 * Append the expansion of addr to out: addr itself when it contains '@' or
 * no alias (and no default) matches, else the alias targets, recursively.
 * Display names are dropped.  ERR_CONFIG for an alias with a refused
 * target (the message says which, and FILE:LINE), when expansion nests
 * deeper than ALIASES_DEPTH_MAX (a loop) or yields more than
 * ALIASES_EXPAND_MAX addresses, ERR_NOMEM.
 */
MUST_CHECK enum err aliases_expand(const struct aliases *a, const char *addr,
	struct addr_list *out, struct errinfo *reterr);

/* NULL is fine. */
void aliases_free(struct aliases *a);

#endif
