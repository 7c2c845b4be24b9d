/*
 * addr.h - RFC 5322 address-list parser.
 *
 * Parses one address-list value that is already unfolded (a header value
 * after unfolding, or one command-line recipient argument such as
 * `"Doe, J" <j@x>, k@y`) into a flat list of mailboxes.
 *
 * What it accepts:
 *   - name-addr (`Name <a@b>`) and bare addr-spec (`a@b`);
 *   - bare local names without a domain (`root`), kept as they are, so the
 *     aliases file can map them later;
 *   - groups (`undisclosed-recipients:;`, `team: a@b, c@d;`), flattened; a
 *     missing final ';' at the end of the input is tolerated;
 *   - comments, nested, anywhere whitespace may appear; they are dropped;
 *   - quoted strings: decoded in display names, kept verbatim (with their
 *     quotes) in local parts;
 *   - obsolete forms: source routes (`<@r1,@r2:a@b>`, the route is dropped),
 *     empty list elements (`a@b,,c@d`), whitespace or comments around dots,
 *     dots in unquoted display names (`J. Doe <j@x>`);
 *   - UTF-8 (any byte >= 0x80) in atoms, quoted strings and comments
 *     (RFC 6532).
 *
 * Errors are ERR_DATA with a message naming the problem ("unterminated
 * quoted string", "missing '>' after 'a@b'", ...); callers put context in
 * front with errinfo_prefix().  A NUL, CR or LF anywhere is an error.
 */
#ifndef OASMTP_ADDR_H
#define OASMTP_ADDR_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct addr_mailbox {
	char *name;		/* display name, decoded; NULL when absent */
	char *addr;		/* "local@domain" or a bare local name; never NULL */
};

/* A growable list of mailboxes; every string is heap-owned by the list. */
struct addr_list {
	struct addr_mailbox *v;
	size_t n;
	size_t cap;
};

void addr_list_init(struct addr_list *l);

/* Free every entry; the list is re-initialised empty.  NULL is fine. */
void addr_list_release(struct addr_list *l);

/* Append copies of name (may be NULL) and addr.  ERR_NOMEM. */
MUST_CHECK enum err addr_list_add(struct addr_list *l, const char *name,
	const char *addr, struct errinfo *reterr);

/*
 * Parse s[0..len) and append its mailboxes to out.  On error out keeps the
 * mailboxes appended before the bad one; callers normally release it.
 * An empty list (only whitespace, commas or empty groups) is valid and
 * appends nothing.
 */
MUST_CHECK enum err addr_parse_list(const char *s, size_t len, struct addr_list *out,
	struct errinfo *reterr);

/* True when addr has no '@' outside a quoted local part ("root"). */
int addr_is_local(const char *addr);

/*
 * The domain of addr (the text after its last '@' outside quotes), or NULL
 * for a bare local name.  Points into addr.
 */
const char *addr_domain(const char *addr);

/*
 * True when a and b name the same mailbox: local parts compared exactly,
 * domains compared ASCII case-insensitively.
 */
int addr_equal(const char *a, const char *b);

/* A hash that agrees with addr_equal (equal addresses, equal hashes). */
uint64_t addr_hash(const char *a);

#endif
