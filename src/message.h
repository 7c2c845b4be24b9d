/*
 * message.h - the message to submit: spooling, headers, envelope.
 *
 * Reading (sendmail semantics, doc/design.md, The message):
 *   - all input is read before anything else happens; the header block is
 *     kept in memory (at most MESSAGE_HEADER_MAX bytes, each physical header
 *     line at most MESSAGE_LINE_MAX bytes), the body goes to an unlinked
 *     temporary file (mkstemp in $TMPDIR, else /tmp), so memory use does
 *     not grow with the message;
 *   - a first line starting with "From " (mbox separator) is dropped;
 *   - line endings LF, CRLF and a lone CR all become CRLF; a last line
 *     without a newline gets one.  A lone CR is treated as a line end
 *     because a bare CR must never reach the wire (RFC 5321 section 2.3.8;
 *     it is the raw material of SMTP smuggling), and dropping it would
 *     glue lines together;
 *   - without ignore_dots (no -i/-oi) a line holding only "." ends the
 *     input, and the rest is not read; with it, such a line is content;
 *   - the header block ends at the first empty line (dropped; the wire
 *     always gets exactly one empty line after the headers) or at the
 *     first line that is neither a field ("Name:") nor a continuation, which
 *     then starts the body (input without headers is all body);
 *   - a byte >= 0x80 anywhere sets the 8-bit flag.
 *
 * The body is never changed after normalisation.  The wire form is the
 * (possibly rewritten) header block, one empty line, and the body; it is
 * CRLF throughout and NOT dot-stuffed (the SMTP engine does that for DATA).
 *
 * Reading is push/pull: message_reader_push() takes bytes as they come,
 * message_header_*() pull the parsed fields afterwards.  message_read()
 * wraps the push side for a file descriptor.
 */
#ifndef OASMTP_MESSAGE_H
#define OASMTP_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "account.h"
#include "buf.h"
#include "envelope.h"
#include "err.h"

#define MESSAGE_HEADER_MAX (1024 * 1024)	/* whole header block */
#define MESSAGE_LINE_MAX (64 * 1024)		/* one physical header line */

struct message;
struct message_reader;

/*
 * Start reading a message; creates the unlinked spool file.
 * Errors: ERR_IO (cannot create the temporary file), ERR_NOMEM.
 */
MUST_CHECK enum err message_reader_new(int ignore_dots, struct message_reader **ret,
	struct errinfo *reterr);

/*
 * Feed n more input bytes.  Once the terminating "." line was seen, further
 * bytes are ignored and *ret_done (when not NULL) is set to 1.
 * Errors: ERR_DATA (header block or header line too long, NUL in a header),
 * ERR_IO (writing the spool file), ERR_NOMEM.  After an error only
 * message_reader_free() may be called.
 */
MUST_CHECK enum err message_reader_push(struct message_reader *r, const void *p,
	size_t n, int *ret_done, struct errinfo *reterr);

/*
 * End of input: finish the last line and hand over the message, which the
 * caller owns (message_free).  The reader is freed in every case.
 */
MUST_CHECK enum err message_reader_finish(struct message_reader *r,
	struct message **ret, struct errinfo *reterr);

/* NULL is fine. */
void message_reader_free(struct message_reader *r);

/*
 * Read fd to its end (or to the "." line without ignore_dots) into a new
 * message.  Errors as above, plus ERR_IO for a read error.
 */
MUST_CHECK enum err message_read(int fd, int ignore_dots, struct message **ret,
	struct errinfo *reterr);

/* NULL is fine.  Closes the spool file. */
void message_free(struct message *m);

/* Header fields in input order (fields removed by message_prepare excluded
 * from the wire but still listed here). */
size_t message_header_count(const struct message *m);

/* Name of field i, NUL-terminated, owned by m (no trailing blanks). */
const char *message_header_name(const struct message *m, size_t i);

/*
 * Append the unfolded value of field i to out: line breaks before
 * continuation lines removed, leading and trailing blanks trimmed.
 * ERR_LIMIT / ERR_NOMEM from the buffer.
 */
MUST_CHECK enum err message_header_value(const struct message *m, size_t i,
	struct buf *out, struct errinfo *reterr);

/*
 * The (first) address in From:, or in the first Resent-From: when the
 * message has Resent- fields (a resent message; From: if it has none).
 * NULL when absent or unparsable.
 * Owned by m.  For --read-envelope-from and for picking an account by -f.
 */
const char *message_header_from(const struct message *m);

/* 1 when a byte >= 0x80 was read (header or body). */
int message_is_8bit(const struct message *m);

struct message_opts {
	const struct account *acc;	/* required */
	const char *envelope_from;	/* -f/-r; NULL = not given; "" or "<>" = null sender */
	const char *full_name;		/* -F; NULL = not given */
	int read_recipients;		/* -t */
	int read_envelope_from;		/* --read-envelope-from */
	char *const *rcpt_args;		/* command-line recipients (address lists) */
	size_t n_rcpt_args;
	const char *dsn_notify;		/* -N; NULL = use the account's */
	const char *dsn_return;		/* -R; NULL = use the account's */
	const char *dsn_envid;		/* -V; NULL = none */
	time_t now;			/* for Date: and Message-ID */
	const char *hostname;		/* for %H and as Message-ID domain fallback */
	const char *trace_user;		/* system pickup: the caller; NULL = none */
	long trace_uid;			/* ... and their uid */
	size_t max_rcpts;		/* more recipients: ERR_LIMIT; 0 = no cap */
};

/*
 * Decide the envelope and rewrite the header block; call it once.
 *
 * Envelope sender, first that applies:
 *   1. -f (or the From: address with --read-envelope-from) when the
 *      account allows it (allow_from_override) or has no usable `from`;
 *   2. the account's `from`, with %U (user), %H and %C (hostname), %M
 *      (/etc/mailname, else hostname) and %F (From: address) expanded; a
 *      `from` with wildcards (*, ?, [) is a pattern, not an address;
 *   otherwise ERR_CONFIG "no envelope sender: ...".
 * Recipients: every command-line argument (an address list each), plus
 * with -t To/Cc/Bcc, or Resent-To/Resent-Cc/Resent-Bcc of the first
 * Resent- block when the message has Resent- fields.  Local names (no '@')
 * go through the account's aliases file.  Duplicates are dropped (domain
 * compared case-insensitively; linear time), order kept.  None: ERR_USAGE
 * "no recipients found"; more than max_rcpts: ERR_LIMIT.
 * Headers (the body is never touched), new fields go first in this order:
 *   Received: with trace_user, "Received: by HOST (oasmtp pickup, from
 *          userid UID (USER)); DATE", as Postfix's pickup does, so that
 *          a message from the system queue names the local caller.
 *   From:  set_from_header auto adds "Name <sender>" when missing, on
 *          replaces every From:, off leaves it; the name is -F, else
 *          from_full_name, else none.  from_rewrite replaces a From: whose
 *          address is local-looking (no '@', or @localhost, @hostname),
 *          keeping its display name.  Nothing is added for a null sender.
 *   To:    set_to_header on replaces To/Cc/Bcc with a To: listing the
 *          envelope recipients; undisclosed_recipients with
 *          "To: undisclosed-recipients:;"; auto and off leave them.
 *   Date:  auto adds when missing, on replaces, off leaves; local time.
 *   Message-ID: auto adds when missing, on replaces, off leaves;
 *          "<time.random@domain>", domain = account `domain` unless it is
 *          "localhost", else the sender's domain, else hostname.
 *   Bcc: and Resent-Bcc: are removed when remove_bcc_headers is set.
 * Every envelope address is checked: CR, LF, NUL, other controls, '<' or
 * '>' give ERR_USAGE (command line) or ERR_DATA (header); non-ASCII sets
 * smtputf8.
 *
 * ret_env is filled only on success and owned by the caller
 * (envelope_release).  Errors: ERR_USAGE, ERR_DATA, ERR_CONFIG (no sender,
 * aliases file), ERR_NOMEM, ERR_INTERNAL (acc NULL).
 */
MUST_CHECK enum err message_prepare(struct message *m, const struct message_opts *o,
	struct envelope *ret_env, struct errinfo *reterr);

/* Exact byte count of the wire form (headers as rewritten by
 * message_prepare, if called). */
uint64_t message_wire_size(const struct message *m);

/*
 * Copy up to cap bytes of the wire form starting at offset into p;
 * *ret_n = 0 means offset is at (or past) the end.  Errors: ERR_IO.
 */
MUST_CHECK enum err message_read_wire(struct message *m, uint64_t offset, void *p,
	size_t cap, size_t *ret_n, struct errinfo *reterr);

/*
 * The message's own Message-ID as it goes on the wire (after
 * message_prepare), without the angle brackets, appended to out; nothing
 * when it has none.  Errors: those of the buffer.
 */
enum err message_own_id(const struct message *m, struct buf *out);

/*
 * Whether In-Reply-To: or References: cite any <id>: only then is there
 * anything for message_rewrite_refs() to do (and a Message-ID map to read).
 */
int message_cites_ids(const struct message *m);

/*
 * Threading repair (oasmtprc(5) message_id_fix): every <id> cited in
 * In-Reply-To: and References: is offered to lookup, which appends the
 * replacement (without brackets) to ret and returns 1, or returns 0 to
 * keep it.  *ret_changed: whether anything was replaced.  The body is
 * never touched.  Errors: ERR_LIMIT (header block too large), ERR_NOMEM.
 */
enum err message_rewrite_refs(struct message *m,
	int (*lookup)(void *ctx, const char *id, size_t len, struct buf *ret),
	void *ctx, int *ret_changed, struct errinfo *reterr);

/* Write the whole wire form to fd.  Errors: ERR_IO. */
MUST_CHECK enum err message_write_wire(struct message *m, int fd,
	struct errinfo *reterr);

#endif
