/*
 * aliases.h - the msmtp aliases file: maps local names to addresses.
 *
 * Format, one alias per line:
 *
 *   # comment (only at the start of a line, after optional blanks)
 *   root: admin@example.com, "Ops" <ops@example.com>
 *   default: fallback@example.com
 *
 * The right-hand side is an RFC 5322 address list (addr.h).  Names are
 * matched ASCII case-insensitively; the first line naming an alias wins.
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

/*
 * Append the expansion of addr to out: addr itself when it contains '@' or
 * no alias (and no default) matches, else the alias targets, recursively.
 * Display names are dropped.  ERR_CONFIG when expansion nests deeper than
 * ALIASES_DEPTH_MAX (a loop) or yields more than ALIASES_EXPAND_MAX
 * addresses, ERR_NOMEM.
 */
MUST_CHECK enum err aliases_expand(const struct aliases *a, const char *addr,
	struct addr_list *out, struct errinfo *reterr);

/* NULL is fine. */
void aliases_free(struct aliases *a);

#endif
