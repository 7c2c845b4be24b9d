/*
 * message_prepare.c - turning a read message into what is submitted: the
 * recipients (-t, arguments, aliases), the envelope sender, the fields
 * added (From, Date, Message-ID, To) and removed (Bcc), and the envelope
 * (semantics in message.h).
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "aliases.h"
#include "message.h"
#include "message_int.h"
#include "util.h"

/* the From address made from a from template (%U, %H, ...) */
#define FROM_TEMPLATE_MAX 4096
/* a DSN envelope id (at most 100 characters) as xtext, 3 bytes per character */
#define ENVID_XTEXT_MAX 512

struct prep {
	struct message *m;
	const struct message_opts *o;
	struct aliases *aliases;
	struct addr_list rcpts;		/* final, de-duplicated */
	size_t *seen;			/* hash set: rcpts index + 1, 0 = free */
	size_t seen_cap;		/* a power of two, or 0 */
	char *sender;
	char *orig_sender;		/* a local -f that from_rewrite replaced */
	int smtputf8;
	struct errinfo *reterr;
};

static int local_looking(const char *addr, const char *hostname);

/* 0 when addr may go into MAIL FROM / RCPT TO, else the reason. */
static const char *
bad_env_addr(const char *addr, int *utf8)
{
	const unsigned char *p;

	if (addr[0] == '\0') {
		return "empty address";
	}
	for (p = (const unsigned char *)addr; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			return "control character";
		}
		if (*p == '<' || *p == '>') {
			return "'<' or '>' inside the address";
		}
		if (*p >= 0x80) {
			*utf8 = 1;
		}
	}
	return NULL;
}

/*
 * The slot of pp->seen that holds addr, or the free one where it goes
 * (open addressing, linear probing).  Keeps the table at most half full,
 * so de-duplicating n recipients takes O(n), not O(n^2): a message with
 * 150 000 addresses costs a fraction of a second.  Returns (size_t)-1
 * when the table cannot grow.
 */
static size_t
seen_find(struct prep *pp, const char *addr)
{
	size_t mask, i;

	if (pp->rcpts.n + 1 > pp->seen_cap / 2) {
		size_t cap = pp->seen_cap ? pp->seen_cap * 2 : 64, k;
		size_t *t = calloc(cap, sizeof(*t));

		if (t == NULL) {
			return (size_t)-1;
		}
		for (k = 0; k < pp->rcpts.n; k++) {
			i = (size_t)addr_hash(pp->rcpts.v[k].addr) & (cap - 1);
			while (t[i] != 0) {
				i = (i + 1) & (cap - 1);
			}
			t[i] = k + 1;
		}
		free(pp->seen);
		pp->seen = t;
		pp->seen_cap = cap;
	}
	mask = pp->seen_cap - 1;
	i = (size_t)addr_hash(addr) & mask;
	while (pp->seen[i] != 0 &&
	    !addr_equal(pp->rcpts.v[pp->seen[i] - 1].addr, addr)) {
		i = (i + 1) & mask;
	}
	return i;
}

static MUST_CHECK enum err
add_rcpt(struct prep *pp, const char *addr, enum err badcode,
	const char *what)
{
	const char *why;
	size_t slot;
	enum err rc;

	why = bad_env_addr(addr, &pp->smtputf8);
	if (why != NULL) {
		return errinfo_set(pp->reterr, badcode,
			"%s: invalid recipient '%s': %s", what, addr, why);
	}
	slot = seen_find(pp, addr);
	if (slot == (size_t)-1) {
		return errinfo_set(pp->reterr, ERR_NOMEM, "out of memory");
	}
	if (pp->seen[slot] != 0) {
		return ERR_OK;		/* a duplicate */
	}
	if (pp->o->max_rcpts > 0 && pp->rcpts.n >= pp->o->max_rcpts) {
		return errinfo_set(pp->reterr, ERR_LIMIT, "too many recipients "
			"(more than %zu)", pp->o->max_rcpts);
	}
	rc = addr_list_add(&pp->rcpts, NULL, addr, pp->reterr);
	if (rc == ERR_OK) {
		pp->seen[slot] = pp->rcpts.n;
	}
	return rc;
}

/* Run parsed addresses through the aliases and into the final list. */
static MUST_CHECK enum err
collect(struct prep *pp, const struct addr_list *l, enum err badcode,
	const char *what)
{
	size_t i, k;
	enum err rc = ERR_OK;

	for (i = 0; i < l->n && rc == ERR_OK; i++) {
		struct addr_list exp;

		if (pp->aliases == NULL || !addr_is_local(l->v[i].addr)) {
			rc = add_rcpt(pp, l->v[i].addr, badcode, what);
			continue;
		}
		addr_list_init(&exp);
		rc = aliases_expand(pp->aliases, l->v[i].addr, &exp,
			pp->reterr);
		for (k = 0; k < exp.n && rc == ERR_OK; k++) {
			rc = add_rcpt(pp, exp.v[k].addr, ERR_CONFIG,
				"aliases file");
		}
		addr_list_release(&exp);
	}
	return rc;
}

static MUST_CHECK enum err
recipients_from_args(struct prep *pp)
{
	size_t i;
	enum err rc = ERR_OK;

	for (i = 0; i < pp->o->n_rcpt_args && rc == ERR_OK; i++) {
		const char *arg = pp->o->rcpt_args[i];
		struct addr_list l;

		addr_list_init(&l);
		rc = addr_parse_list(arg, strlen(arg), &l, pp->reterr);
		if (rc == ERR_DATA) {
			errinfo_prefix(pp->reterr, "recipient '%.200s': ", arg);
			rc = errinfo_recode(pp->reterr, ERR_USAGE);
		}
		if (rc == ERR_OK) {
			rc = collect(pp, &l, ERR_USAGE, "command line");
		}
		addr_list_release(&l);
	}
	return rc;
}

static MUST_CHECK enum err
recipients_from_headers(struct prep *pp)
{
	static const char *const plain[] = { "To", "Cc", "Bcc" };
	static const char *const resent[] = {
		"Resent-To", "Resent-Cc", "Resent-Bcc"
	};
	const struct message *m = pp->m;
	const char *const *names = plain;
	size_t from = 0, to = m->n_f, i, k;
	struct buf v;
	enum err rc = ERR_OK;

	if (msg_first_resent(m) < m->n_f) {
		/* only the first (newest) block of Resent- fields counts */
		names = resent;
		from = msg_first_resent(m);
		for (to = from; to < m->n_f && msg_is_resent(&m->f[to]); to++) {
			;
		}
	}
	buf_init(&v, HEAD_MAX);
	for (i = from; i < to && rc == ERR_OK; i++) {
		struct addr_list l;

		for (k = 0; k < 3; k++) {
			if (util_strcasecmp(m->f[i].name, names[k]) == 0) {
				break;
			}
		}
		if (k == 3) {
			continue;
		}
		buf_reset(&v);
		addr_list_init(&l);
		rc = message_header_value(m, i, &v, pp->reterr);
		if (rc == ERR_OK) {
			rc = addr_parse_list(v.data, v.len, &l, pp->reterr);
			if (rc == ERR_DATA) {
				errinfo_prefix(pp->reterr, "header %s: ",
					m->f[i].name);
			}
		}
		if (rc == ERR_OK) {
			rc = collect(pp, &l, ERR_DATA, m->f[i].name);
		}
		addr_list_release(&l);
	}
	buf_release(&v);
	return rc;
}

static int
has_wildcard(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* The first line of /etc/mailname, else the hostname. */
static MUST_CHECK enum err
append_mailname(struct buf *b, const char *hostname)
{
	FILE *f = fopen("/etc/mailname", "r");
	char line[256];

	if (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		size_t n = strcspn(line, "\r\n \t");

		fclose(f);
		if (n > 0) {
			return buf_append(b, line, n);
		}
		return buf_append_str(b, hostname);
	}
	if (f != NULL) {
		fclose(f);
	}
	return buf_append_str(b, hostname);
}

static MUST_CHECK enum err
expand_from(struct prep *pp, const char *tmpl, const char *hostname,
	char **ret)
{
	struct buf b;
	const char *p;
	enum err rc = ERR_OK;

	buf_init(&b, FROM_TEMPLATE_MAX);
	for (p = tmpl; *p != '\0' && rc == ERR_OK; p++) {
		if (*p != '%' || p[1] == '\0') {
			rc = buf_putc(&b, *p);
			continue;
		}
		p++;
		switch (*p) {
		case 'U': {
			const struct passwd *pw = getpwuid(geteuid());
			const char *u = pw != NULL ? pw->pw_name :
			    getenv("LOGNAME");

			rc = buf_append_str(&b, u != NULL ? u : "");
			break;
		}
		case 'H':
		case 'C':
			rc = buf_append_str(&b, hostname);
			break;
		case 'M':
			rc = append_mailname(&b, hostname);
			break;
		case 'F':
			rc = buf_append_str(&b, pp->m->header_from != NULL ?
			    pp->m->header_from : "");
			break;
		case '%':
			rc = buf_putc(&b, '%');
			break;
		default:
			rc = buf_putc(&b, '%');
			if (rc == ERR_OK) {
				rc = buf_putc(&b, *p);
			}
			break;
		}
	}
	if (rc != ERR_OK || (*ret = buf_take(&b)) == NULL) {
		buf_release(&b);
		return errinfo_set(pp->reterr, ERR_CONFIG,
			"account from '%.200s' is too long", tmpl);
	}
	buf_release(&b);
	return ERR_OK;
}

/* -f argument: "", "<>", "<a@b>", "a@b" or "Name <a@b>". */
static MUST_CHECK enum err
parse_sender_arg(struct prep *pp, const char *arg, char **ret)
{
	struct addr_list l;
	size_t n = strlen(arg);
	enum err rc;

	while (n > 0 && msg_is_wsp(*arg)) {
		arg++;
		n--;
	}
	while (n > 0 && msg_is_wsp(arg[n - 1])) {
		n--;
	}
	if (n == 0 || (n == 2 && memcmp(arg, "<>", 2) == 0)) {
		*ret = strdup("");
		return *ret != NULL ? ERR_OK :
		    errinfo_set(pp->reterr, ERR_NOMEM, "out of memory");
	}
	addr_list_init(&l);
	rc = addr_parse_list(arg, n, &l, pp->reterr);
	if (rc == ERR_OK && l.n != 1) {
		rc = errinfo_set(pp->reterr, ERR_USAGE,
			"not exactly one address");
	}
	if (rc == ERR_OK) {
		*ret = strdup(l.v[0].addr);
		if (*ret == NULL) {
			rc = errinfo_set(pp->reterr, ERR_NOMEM,
				"out of memory");
		}
	}
	addr_list_release(&l);
	if (rc == ERR_DATA || rc == ERR_USAGE) {
		errinfo_prefix(pp->reterr, "invalid envelope sender '%.*s': ",
			(int)(n > 200 ? 200 : n), arg);
		rc = errinfo_recode(pp->reterr, ERR_USAGE);
	}
	return rc;
}

static MUST_CHECK enum err
decide_sender(struct prep *pp, const char *hostname)
{
	const struct account *acc = pp->o->acc;
	const char *cand = pp->o->envelope_from;
	int usable = acc->from != NULL && acc->from[0] != '\0' &&
	    !has_wildcard(acc->from);
	enum err rc;
	const char *why;

	if (cand == NULL && pp->o->read_envelope_from) {
		cand = pp->m->header_from;
	}
	if (cand != NULL && (acc->allow_from_override || !usable)) {
		rc = parse_sender_arg(pp, cand, &pp->sender);
		if (rc != ERR_OK) {
			return rc;
		}
		if (pp->sender[0] == '\0') {
			return ERR_OK;
		}
		if (acc->from_rewrite && usable &&
		    local_looking(pp->sender, hostname)) {
			/* root, www-data@host: the account's address instead */
			struct buf q;

			buf_init(&q, HEAD_MAX);
			rc = buf_printf(&q, strchr(pp->sender, '@') != NULL ?
			    "%s" : "%s@%s", pp->sender, hostname);
			free(pp->sender);
			pp->sender = NULL;
			if (rc != ERR_OK) {
				buf_release(&q);
				return errinfo_set(pp->reterr, rc,
					"envelope sender too long");
			}
			pp->orig_sender = buf_take(&q);
			if (pp->orig_sender == NULL) {
				return errinfo_set(pp->reterr, ERR_NOMEM,
					"out of memory");
			}
			goto account_from;
		}
		why = bad_env_addr(pp->sender, &pp->smtputf8);
		if (why != NULL) {
			return errinfo_set(pp->reterr, ERR_USAGE,
				"invalid envelope sender '%s': %s",
				pp->sender, why);
		}
		return ERR_OK;
	}
	if (!usable) {
		return errinfo_set(pp->reterr, ERR_CONFIG,
			"no envelope sender: set 'from' in account %s or pass "
			"-f ADDR", acc->name != NULL ? acc->name : "default");
	}
account_from:
	rc = expand_from(pp, acc->from, hostname, &pp->sender);
	if (rc != ERR_OK) {
		return rc;
	}
	why = bad_env_addr(pp->sender, &pp->smtputf8);
	if (why != NULL) {
		return errinfo_set(pp->reterr, ERR_CONFIG,
			"account %s: invalid from '%s': %s",
			acc->name != NULL ? acc->name : "default", pp->sender,
			why);
	}
	return ERR_OK;
}

static int
needs_quotes(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s != ' ' && !((unsigned char)*s >= 0x80) &&
		    strchr("()<>[]:;@\\,.\"", *s) != NULL) {
			return 1;
		}
	}
	return 0;
}

static int
is_ascii(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s >= 0x80) {
			return 0;
		}
	}
	return 1;
}

/* Append a display name as a phrase: atoms, a quoted string, or RFC 2047
 * encoded words (UTF-8, base64) when it is not ASCII. */
static MUST_CHECK enum err
append_phrase(struct buf *b, const char *name)
{
	size_t len = strlen(name), i = 0;
	enum err rc = ERR_OK;

	if (is_ascii(name)) {
		if (!needs_quotes(name)) {
			return buf_append(b, name, len);
		}
		rc = buf_putc(b, '"');
		for (; name[i] != '\0' && rc == ERR_OK; i++) {
			if (name[i] == '"' || name[i] == '\\') {
				rc = buf_putc(b, '\\');
			}
			if (rc == ERR_OK) {
				rc = buf_putc(b, name[i]);
			}
		}
		return rc == ERR_OK ? buf_putc(b, '"') : rc;
	}
	while (i < len && rc == ERR_OK) {
		/* at most 45 bytes per word (60 base64 chars), whole
		 * UTF-8 sequences only */
		size_t n = len - i > 45 ? 45 : len - i;

		while (i + n < len && n > 1 &&
		    ((unsigned char)name[i + n] & 0xc0) == 0x80) {
			n--;
		}
		if (i > 0) {
			rc = buf_putc(b, ' ');
		}
		if (rc == ERR_OK) {
			rc = buf_append_str(b, "=?UTF-8?B?");
		}
		if (rc == ERR_OK) {
			rc = util_base64_encode(b, name + i, n);
		}
		if (rc == ERR_OK) {
			rc = buf_append_str(b, "?=");
		}
		i += n;
	}
	return rc;
}

static MUST_CHECK enum err
append_mailbox(struct buf *b, const char *name, const char *addr)
{
	enum err rc;

	if (name == NULL || name[0] == '\0') {
		return buf_append_str(b, addr);
	}
	rc = append_phrase(b, name);
	if (rc == ERR_OK) {
		rc = buf_printf(b, " <%s>", addr);
	}
	return rc;
}

static void
remove_fields(struct message *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->n_f; i++) {
		if (util_strcasecmp(m->f[i].name, name) == 0) {
			m->f[i].removed = 1;
		}
	}
}

static int
has_field(const struct message *m, const char *name)
{
	return msg_find_field(m, name, 0) < m->n_f;
}

static int
local_looking(const char *addr, const char *hostname)
{
	const char *d = addr_domain(addr);

	return d == NULL || util_strcasecmp(d, "localhost") == 0 ||
	    util_strcasecmp(d, "localhost.localdomain") == 0 ||
	    util_strcasecmp(d, hostname) == 0;
}

/*
 * from_rewrite_header: keep the sender that a rewrite replaced, as
 * X-Original-From: or Sender: (not when the message has a Sender: of its
 * own: one is the most a message may have).
 */
static MUST_CHECK enum err
add_original(struct prep *pp, struct buf *added, const char *value,
	size_t len)
{
	enum from_original how = pp->o->acc->from_rewrite_header;
	const char *field = how == FROM_ORIG_SENDER ? "Sender" :
	    "X-Original-From";
	enum err rc;

	if (how == FROM_ORIG_OFF || has_field(pp->m, field)) {
		return ERR_OK;
	}
	rc = buf_printf(added, "%s: ", field);
	if (rc == ERR_OK) {
		rc = buf_append(added, value, len);
	}
	return rc == ERR_OK ? buf_append_str(added, "\r\n") : rc;
}

static MUST_CHECK enum err
add_from(struct prep *pp, struct buf *added, const char *hostname)
{
	const struct account *acc = pp->o->acc;
	struct message *m = pp->m;
	const char *name = pp->o->full_name != NULL ? pp->o->full_name :
	    acc->from_full_name;
	struct buf v;
	struct addr_list l;
	size_t i;
	enum err rc;

	if (name != NULL) {
		for (i = 0; name[i] != '\0'; i++) {
			if ((unsigned char)name[i] < 0x20 && name[i] != '\t') {
				return errinfo_set(pp->reterr, ERR_USAGE,
					"full name contains a control "
					"character");
			}
		}
	}
	if (pp->sender[0] == '\0' || acc->set_from_header == HDR_OFF) {
		return ERR_OK;
	}
	if (acc->set_from_header == HDR_ON || !has_field(m, "From")) {
		int had_from = has_field(m, "From");

		remove_fields(m, "From");
		rc = buf_append_str(added, "From: ");
		if (rc == ERR_OK) {
			rc = append_mailbox(added, name, pp->sender);
		}
		if (rc == ERR_OK) {
			rc = buf_append_str(added, "\r\n");
		}
		if (rc == ERR_OK && !had_from && pp->orig_sender != NULL) {
			rc = add_original(pp, added, pp->orig_sender,
				strlen(pp->orig_sender));
		}
		return rc;
	}
	if (!acc->from_rewrite) {
		return ERR_OK;
	}
	/* from_rewrite: a local-looking From: gets the sender's address */
	i = msg_find_field(m, "From", 0);
	buf_init(&v, HEAD_MAX);
	addr_list_init(&l);
	rc = message_header_value(m, i, &v, NULL);
	if (rc == ERR_OK && addr_parse_list(v.data, v.len, &l, NULL) ==
	    ERR_OK && l.n == 1 && local_looking(l.v[0].addr, hostname)) {
		remove_fields(m, "From");
		rc = buf_append_str(added, "From: ");
		if (rc == ERR_OK) {
			rc = append_mailbox(added, l.v[0].name != NULL ?
			    l.v[0].name : name, pp->sender);
		}
		if (rc == ERR_OK) {
			rc = buf_append_str(added, "\r\n");
		}
		if (rc == ERR_OK) {
			rc = add_original(pp, added, v.data, v.len);
		}
	}
	addr_list_release(&l);
	buf_release(&v);
	return rc;
}

static MUST_CHECK enum err
add_to(struct prep *pp, struct buf *added)
{
	enum header_policy pol = pp->o->acc->set_to_header;
	size_t i, linelen;
	enum err rc;

	if (pol != HDR_ON && pol != HDR_UNDISCLOSED) {
		return ERR_OK;
	}
	remove_fields(pp->m, "To");
	remove_fields(pp->m, "Cc");
	remove_fields(pp->m, "Bcc");
	if (pol == HDR_UNDISCLOSED) {
		return buf_append_str(added, "To: undisclosed-recipients:;\r\n");
	}
	rc = buf_append_str(added, "To:");
	linelen = 3;
	for (i = 0; i < pp->rcpts.n && rc == ERR_OK; i++) {
		size_t n = strlen(pp->rcpts.v[i].addr);

		if (i > 0) {
			rc = buf_putc(added, ',');
			linelen++;
		}
		if (rc == ERR_OK && i > 0 && linelen + n > 76) {
			rc = buf_append_str(added, "\r\n");
			linelen = 0;
		}
		if (rc == ERR_OK) {
			rc = buf_printf(added, " %s", pp->rcpts.v[i].addr);
			linelen += n + 1;
		}
	}
	return rc == ERR_OK ? buf_append_str(added, "\r\n") : rc;
}

/* "FIELD: " then the RFC 5322 date of pp's now (local time) and CRLF. */
static MUST_CHECK enum err
put_date(struct prep *pp, struct buf *added, const char *field)
{
	static const char *const days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	time_t now = pp->o->now;
	struct tm tm;
	long off;

	if (localtime_r(&now, &tm) == NULL) {
		return errinfo_set(pp->reterr, ERR_INTERNAL,
			"cannot convert the time for the Date header");
	}
	off = tm.tm_gmtoff / 60;
	return buf_printf(added, "%s%s, %02d %s %04d %02d:%02d:%02d "
		"%c%02ld%02ld\r\n", field, days[tm.tm_wday % 7], tm.tm_mday,
		months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
		tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+',
		(off < 0 ? -off : off) / 60, (off < 0 ? -off : off) % 60);
}

static MUST_CHECK enum err
add_date(struct prep *pp, struct buf *added)
{
	enum header_policy pol = pp->o->acc->set_date_header;

	if (pol == HDR_OFF || (pol != HDR_ON && has_field(pp->m, "Date"))) {
		return ERR_OK;
	}
	remove_fields(pp->m, "Date");
	return put_date(pp, added, "Date: ");
}

/*
 * The trace field of the system pickup (message.h).  The user name comes
 * from the password database; one that needs quoting in a comment is
 * left out rather than escaped.
 */
static MUST_CHECK enum err
add_received(struct prep *pp, struct buf *added, const char *hostname)
{
	const char *user = pp->o->trace_user;
	enum err rc;
	size_t i;

	if (user == NULL) {
		return ERR_OK;
	}
	for (i = 0; user[i] != '\0'; i++) {
		unsigned char c = (unsigned char)user[i];

		if (c < 33 || c > 126 || strchr("()\\", c) != NULL) {
			user = "";
			break;
		}
	}
	rc = buf_printf(added, "Received: by %s (oasmtp pickup, from userid "
		"%ld%s%s%s);\r\n\t", hostname, pp->o->trace_uid,
		user[0] != '\0' ? " (" : "", user, user[0] != '\0' ? ")" : "");
	if (rc == ERR_OK) {
		rc = put_date(pp, added, "");
	}
	return rc;
}

static MUST_CHECK enum err
add_msgid(struct prep *pp, struct buf *added, const char *hostname)
{
	enum header_policy pol = pp->o->acc->set_msgid_header;
	const char *dom = pp->o->acc->domain;
	static unsigned long counter;
	unsigned char rnd[8];
	unsigned long long r = 0;
	time_t now = pp->o->now;
	struct tm tm;
	size_t i;

	if (pol == HDR_OFF ||
	    (pol != HDR_ON && has_field(pp->m, "Message-ID"))) {
		return ERR_OK;
	}
	remove_fields(pp->m, "Message-ID");
	if (dom == NULL || dom[0] == '\0' ||
	    util_strcasecmp(dom, "localhost") == 0) {
		dom = addr_domain(pp->sender);
	}
	if (dom == NULL || dom[0] == '\0') {
		dom = hostname;
	}
	if (getentropy(rnd, sizeof(rnd)) != 0) {
		/* unique enough without entropy: pid, time, a counter */
		r = ((unsigned long long)getpid() << 32) ^
		    (unsigned long long)now ^ ++counter;
	} else {
		for (i = 0; i < sizeof(rnd); i++) {
			r = (r << 8) | rnd[i];
		}
	}
	if (gmtime_r(&now, &tm) == NULL) {
		memset(&tm, 0, sizeof(tm));
	}
	return buf_printf(added, "Message-ID: <%04d%02d%02d%02d%02d%02d.%016llx"
		"@%s>\r\n", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		tm.tm_hour, tm.tm_min, tm.tm_sec, r, dom);
}

/* DSN values: checked, upper-cased copies (NULL stays NULL). */
static MUST_CHECK enum err
dsn_copy(struct prep *pp, const char *v, int is_notify, char **ret)
{
	size_t i;
	char *c;

	*ret = NULL;
	if (v == NULL) {
		return ERR_OK;
	}
	c = strdup(v);
	if (c == NULL) {
		return errinfo_set(pp->reterr, ERR_NOMEM, "out of memory");
	}
	for (i = 0; c[i] != '\0'; i++) {
		if (c[i] >= 'a' && c[i] <= 'z') {
			c[i] = (char)(c[i] - 'a' + 'A');
		}
		if (!((c[i] >= 'A' && c[i] <= 'Z') || c[i] == ',')) {
			break;
		}
	}
	if (c[i] != '\0' || i == 0 || (!is_notify && strcmp(c, "HDRS") != 0 &&
	    strcmp(c, "FULL") != 0)) {
		free(c);
		return errinfo_set(pp->reterr, ERR_USAGE, "invalid DSN %s "
			"value '%.100s'", is_notify ? "notify" : "return", v);
	}
	*ret = c;
	return ERR_OK;
}

/* ENVID as xtext (RFC 3461): '+', '=' and bytes outside 33..126 as +XX. */
static MUST_CHECK enum err
envid_copy(struct prep *pp, const char *v, char **ret)
{
	struct buf b;
	const unsigned char *p;
	enum err rc = ERR_OK;

	*ret = NULL;
	if (v == NULL) {
		return ERR_OK;
	}
	if (strlen(v) > 100) {
		return errinfo_set(pp->reterr, ERR_USAGE,
			"DSN envelope id longer than 100 characters");
	}
	buf_init(&b, ENVID_XTEXT_MAX);
	for (p = (const unsigned char *)v; *p != '\0' && rc == ERR_OK; p++) {
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=') {
			rc = buf_printf(&b, "+%02X", *p);
		} else {
			rc = buf_putc(&b, (char)*p);
		}
	}
	if (rc != ERR_OK || (*ret = buf_take(&b)) == NULL) {
		buf_release(&b);
		return errinfo_set(pp->reterr, ERR_NOMEM, "out of memory");
	}
	buf_release(&b);
	return ERR_OK;
}

static MUST_CHECK enum err
fill_envelope(struct prep *pp, struct envelope *env)
{
	const struct message_opts *o = pp->o;
	const struct account *acc = o->acc;
	size_t i;
	enum err rc;

	memset(env, 0, sizeof(*env));
	env->rcpts = calloc(pp->rcpts.n, sizeof(char *));
	if (env->rcpts == NULL) {
		return errinfo_set(pp->reterr, ERR_NOMEM, "out of memory");
	}
	/* move the strings over */
	for (i = 0; i < pp->rcpts.n; i++) {
		env->rcpts[i] = pp->rcpts.v[i].addr;
		pp->rcpts.v[i].addr = NULL;
	}
	env->n_rcpts = pp->rcpts.n;
	env->from = pp->sender;
	pp->sender = NULL;
	env->body_8bit = pp->m->is_8bit;
	env->smtputf8 = pp->smtputf8;
	rc = dsn_copy(pp, o->dsn_notify != NULL ? o->dsn_notify :
	    acc->dsn_notify, 1, &env->dsn_notify);
	if (rc == ERR_OK) {
		rc = dsn_copy(pp, o->dsn_return != NULL ? o->dsn_return :
		    acc->dsn_return, 0, &env->dsn_return);
	}
	if (rc == ERR_OK) {
		rc = envid_copy(pp, o->dsn_envid, &env->dsn_envid);
	}
	return rc;
}

static void
prep_release(struct prep *pp)
{
	/* fill_envelope may have moved addresses out, leaving NULLs */
	addr_list_release(&pp->rcpts);
	free(pp->seen);
	aliases_free(pp->aliases);
	free(pp->sender);
	free(pp->orig_sender);
}

enum err
message_prepare(struct message *m, const struct message_opts *o,
	struct envelope *ret_env, struct errinfo *reterr)
{
	struct prep pp;
	struct buf added;
	char hostbuf[256];
	const char *hostname = o->hostname;
	enum err rc = ERR_OK;

	memset(ret_env, 0, sizeof(*ret_env));
	errinfo_release(reterr);
	if (o->acc == NULL) {
		return errinfo_set(reterr, ERR_INTERNAL,
			"message_prepare without an account");
	}
	if (hostname == NULL) {
		if (gethostname(hostbuf, sizeof(hostbuf)) != 0) {
			util_strlcpy(hostbuf, "localhost", sizeof(hostbuf));
		}
		hostbuf[sizeof(hostbuf) - 1] = '\0';
		hostname = hostbuf;
	}
	memset(&pp, 0, sizeof(pp));
	pp.m = m;
	pp.o = o;
	pp.reterr = reterr;
	addr_list_init(&pp.rcpts);
	buf_init(&added, HEAD_MAX);

	if (o->acc->aliases != NULL && o->acc->aliases[0] != '\0') {
		rc = aliases_load(o->acc->aliases, &pp.aliases, reterr);
	}
	if (rc == ERR_OK) {
		rc = recipients_from_args(&pp);
	}
	if (rc == ERR_OK && o->read_recipients) {
		rc = recipients_from_headers(&pp);
	}
	if (rc == ERR_OK && pp.rcpts.n == 0) {
		rc = errinfo_set(reterr, ERR_USAGE, "no recipients found");
	}
	if (rc == ERR_OK) {
		rc = decide_sender(&pp, hostname);
	}
	/* header edits, in msmtp's order of the added fields */
	if (rc == ERR_OK) {
		rc = add_received(&pp, &added, hostname);
	}
	if (rc == ERR_OK) {
		rc = add_from(&pp, &added, hostname);
	}
	if (rc == ERR_OK) {
		rc = add_to(&pp, &added);
	}
	if (rc == ERR_OK) {
		rc = add_date(&pp, &added);
	}
	if (rc == ERR_OK) {
		rc = add_msgid(&pp, &added, hostname);
	}
	if ((rc == ERR_LIMIT || rc == ERR_NOMEM) &&
	    errinfo_code(reterr) != rc) {
		/* from the buffer calls, which leave reterr alone */
		rc = errinfo_set(reterr, rc, "preparing the message: %s",
			rc == ERR_LIMIT ? "header block too large" :
			"out of memory");
	}
	if (rc == ERR_OK && o->acc->remove_bcc_headers) {
		remove_fields(m, "Bcc");
		remove_fields(m, "Resent-Bcc");
	}
	if (rc == ERR_OK) {
		rc = msg_build_head(m, &added, reterr);
	}
	if (rc == ERR_OK) {
		rc = fill_envelope(&pp, ret_env);
		if (rc != ERR_OK) {
			envelope_release(ret_env);
		}
	}
	buf_release(&added);
	prep_release(&pp);
	return rc;
}

