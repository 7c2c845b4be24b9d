/*
 * config.c - msmtprc reader: tokenizer, sorted directive table with one
 * small handler per key, msmtp inheritance, file lookup and merge, the
 * permission check, account resolution and selection.  See config.h.
 *
 * Flow: config_load() finds the files; each is read whole (bounded) and
 * parsed line by line into a per-file account list; the lists are merged
 * (system first, user accounts replacing same-named system ones); finally
 * every account is resolved (built-in defaults that depend on other keys,
 * the provider preset's submission server, obsolete keys folded in,
 * %-patterns expanded).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "oasmtp-config.h"

#include "account.h"
#include "api.h"
#include "buf.h"
#include "cli.h"
#include "eval.h"
#include "paths.h"
#include "provider.h"
#include "util.h"

/* The name of the account a command-line configuration makes ("cmdline"). */
#define CMDLINE_NAME_MAX 256

/* one configuration warning */
#define WARNING_MAX 4096
/* a directory and a name below it */
#define JOINED_PATH_MAX (2 * PATH_MAX)
/* the account names listed in an 'unknown account' message */
#define ACCOUNT_NAMES_MAX 4096

#define KEY_MAX 64

/* directive flags */
#define D_REQUIRED 0x1		/* empty argument is an error */
#define D_PATH 0x2		/* expand a leading ~ */
#define D_SECRET 0x4		/* a literal value makes the file secret */

struct parser {
	const struct config_params *params;
	struct config *cfg;		/* receives warnings */
	const char *home;		/* for ~; may be NULL */
	const char *file;		/* name used in messages */
	unsigned line;
	unsigned defaults_line;		/* first line of a defaults section */
	int in_eval;			/* the line is the output of eval */
	int cmdline;			/* a command-line option: file is
					   "option --NAME", line 0 */
	const char *unsafe;		/* why the file may not run commands */
	int literal_secret;
	struct account *defaults;
	struct account *cur;		/* NULL before the first section */
	int cur_is_defaults;
	struct account **accs;
	size_t n_accs;
	size_t cap_accs;
};

struct directive;
typedef enum err (*handler_fn)(struct parser *ps, const struct directive *d,
	const char *arg, struct errinfo *reterr);

struct choice {
	const char *name;
	long value;
};

struct directive {
	const char *name;
	handler_fn handler;
	int field;			/* enum account_field or -1 */
	unsigned flags;
	const void *aux;		/* choices, message, range... */
};

/* ---------------------------------------------------------------- */
/* messages */

static MUST_CHECK enum err
perr(struct parser *ps, struct errinfo *reterr, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static MUST_CHECK enum err
perr(struct parser *ps, struct errinfo *reterr, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errinfo_vset(reterr, ERR_CONFIG, fmt, ap);
	va_end(ap);
	if (ps->cmdline) {
		return errinfo_prefix(reterr, "%s: ", ps->file);
	}
	return errinfo_prefix(reterr, "%s:%u: ", ps->file, ps->line);
}

static MUST_CHECK enum err
add_warning(struct config *cfg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static MUST_CHECK enum err
add_warning(struct config *cfg, const char *fmt, ...)
{
	struct buf b;
	char **w;
	char *s;
	va_list ap;
	enum err e;

	buf_init(&b, WARNING_MAX);
	va_start(ap, fmt);
	e = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (e == ERR_LIMIT) {
		e = ERR_OK;	/* a cut warning is still a warning */
	}
	if (e != ERR_OK) {
		buf_release(&b);
		return e;
	}
	s = buf_take(&b);
	if (s == NULL) {
		return ERR_NOMEM;
	}
	w = realloc(cfg->warnings, (cfg->n_warnings + 1) * sizeof(*w));
	if (w == NULL) {
		free(s);
		return ERR_NOMEM;
	}
	cfg->warnings = w;
	cfg->warnings[cfg->n_warnings++] = s;
	return ERR_OK;
}

static MUST_CHECK enum err
pwarn(struct parser *ps, struct errinfo *reterr, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static MUST_CHECK enum err
pwarn(struct parser *ps, struct errinfo *reterr, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if ((ps->cmdline ? add_warning(ps->cfg, "%s: %s", ps->file, text) :
	    add_warning(ps->cfg, "%s:%u: %s", ps->file, ps->line, text))
		!= ERR_OK) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	return ERR_OK;
}

static MUST_CHECK enum err
nomem(struct errinfo *reterr)
{
	return errinfo_set(reterr, ERR_NOMEM, "out of memory");
}

static MUST_CHECK enum err
bad_arg(struct parser *ps, const struct directive *d, const char *arg,
	const char *expected, struct errinfo *reterr)
{
	return perr(ps, reterr, "invalid argument '%s' for '%s': expected %s",
		arg, d->name, expected);
}

/* ---------------------------------------------------------------- */
/* small parsers */

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* 1 for on/empty, 0 for off, -1 otherwise */
static int
parse_bool(const char *arg)
{
	if (*arg == '\0' || strcmp(arg, "on") == 0) {
		return 1;
	}
	if (strcmp(arg, "off") == 0) {
		return 0;
	}
	return -1;
}


static void
ascii_lower(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s >= 'A' && *s <= 'Z') {
			*s = (char)(*s - 'A' + 'a');
		}
	}
}

/* ---------------------------------------------------------------- */
/* setting fields */

static unsigned char
set_mark(const struct parser *ps)
{
	if (ps->cmdline) {
		return ACC_SET_CMDLINE;
	}
	return ps->cur_is_defaults ? ACC_SET_DEFAULTS : ACC_SET_EXPLICIT;
}

static MUST_CHECK enum err
store_num(struct parser *ps, int field, long v, struct errinfo *reterr)
{
	if (account_set_num(ps->cur, (enum account_field)field, v) != ERR_OK) {
		return errinfo_set(reterr, ERR_INTERNAL,
			"internal error: field %d is not a number", field);
	}
	ps->cur->set[field] = set_mark(ps);
	return ERR_OK;
}

static MUST_CHECK enum err
store_str(struct parser *ps, int field, const char *v, struct errinfo *reterr)
{
	enum err e = account_set_str(ps->cur, (enum account_field)field, v);

	if (e == ERR_NOMEM) {
		return nomem(reterr);
	}
	if (e != ERR_OK) {
		return errinfo_set(reterr, ERR_INTERNAL,
			"internal error: field %d is not a string", field);
	}
	ps->cur->set[field] = set_mark(ps);
	return ERR_OK;
}

/*
 * Store prefix + arg as a path, expanding a leading "~" or "~/" of arg
 * (prefix is "" for plain paths, "file:" for a token store).
 */
static MUST_CHECK enum err
store_path(struct parser *ps, int field, const char *prefix, const char *arg,
	struct errinfo *reterr)
{
	int tilde = arg[0] == '~' && (arg[1] == '\0' || arg[1] == '/');
	struct buf b;
	enum err e;

	if (!tilde && prefix[0] == '\0') {
		return store_str(ps, field, arg, reterr);
	}
	if (tilde && ps->home == NULL) {
		return perr(ps, reterr, "cannot expand '~': no home directory");
	}
	buf_init(&b, CONFIG_LINE_MAX + 4096);
	e = buf_printf(&b, "%s%s%s", prefix, tilde ? ps->home : "",
		tilde ? arg + 1 : arg);
	if (e == ERR_OK) {
		e = store_str(ps, field, buf_cstr(&b), reterr);
	} else {
		e = nomem(reterr);
	}
	buf_release(&b);
	return e;
}

/* ---------------------------------------------------------------- */
/* handlers */

static MUST_CHECK enum err
h_string(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	if (*arg == '\0') {
		if (d->flags & D_REQUIRED) {
			return perr(ps, reterr, "'%s' needs an argument",
				d->name);
		}
		return store_str(ps, d->field, NULL, reterr);
	}
	if ((d->flags & D_SECRET) && !ps->in_eval) {
		ps->literal_secret = 1;
	}
	if (d->flags & D_PATH) {
		return store_path(ps, d->field, "", arg, reterr);
	}
	return store_str(ps, d->field, arg, reterr);
}

static MUST_CHECK enum err
h_bool(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	int v = parse_bool(arg);

	if (v < 0) {
		return bad_arg(ps, d, arg, "on or off", reterr);
	}
	return store_num(ps, d->field, v, reterr);
}

/* d->aux: a NULL-terminated struct choice list; the expectation text is
 * built from the names. */
static MUST_CHECK enum err
h_choice(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	const struct choice *c;
	char expected[256] = "";
	size_t n = 0;

	for (c = d->aux; c->name != NULL; c++) {
		if (strcmp(arg, c->name) == 0) {
			return store_num(ps, d->field, c->value, reterr);
		}
	}
	for (c = d->aux; c->name != NULL; c++) {
		int last = c[1].name == NULL;
		int r = snprintf(expected + n, sizeof(expected) - n, "%s%s",
			c == d->aux ? "" : (last ? " or " : ", "), c->name);

		if (r < 0 || (size_t)r >= sizeof(expected) - n) {
			break;
		}
		n += (size_t)r;
	}
	return bad_arg(ps, d, arg, expected, reterr);
}

static MUST_CHECK enum err
h_port(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	long v;

	if (*arg == '\0') {
		return perr(ps, reterr, "'%s' needs an argument", d->name);
	}
	if (util_parse_long(arg, 1, 65535, &v) != 0) {
		return bad_arg(ps, d, arg, "a number from 1 to 65535", reterr);
	}
	return store_num(ps, d->field, v, reterr);
}

/* proxy_port: a port, or empty for the default (msmtp: 0 = 1080) */
static MUST_CHECK enum err
h_proxy_port(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	if (*arg == '\0') {
		return store_num(ps, d->field, 0, reterr);
	}
	return h_port(ps, d, arg, reterr);
}

static MUST_CHECK enum err
h_timeout(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	long v;

	if (*arg == '\0') {
		return perr(ps, reterr, "'%s' needs an argument", d->name);
	}
	if (strcmp(arg, "off") == 0) {
		return store_num(ps, ACCF_TIMEOUT, 0, reterr);
	}
	if (util_parse_long(arg, 1, 86400, &v) != 0) {
		return bad_arg(ps, d, arg,
			"off or a number of seconds from 1 to 86400", reterr);
	}
	return store_num(ps, ACCF_TIMEOUT, v, reterr);
}

/* d->aux: long[2] = { min, max } in seconds */
static MUST_CHECK enum err
h_duration(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	const long *range = d->aux;
	char expected[128];
	long v;

	if (util_parse_duration(arg, range[0], range[1], &v) != 0) {
		snprintf(expected, sizeof(expected),
			"a duration from %lds to %lds (suffixes s, m, h, d)",
			range[0], range[1]);
		return bad_arg(ps, d, arg, expected, reterr);
	}
	return store_num(ps, d->field, v, reterr);
}

/* d->aux: long[2] as for h_duration; "off" stores 0. */
static enum err
h_duration_off(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	const long *range = d->aux;
	char expected[128];
	long v;

	if (strcmp(arg, "off") == 0) {
		return store_num(ps, d->field, 0, reterr);
	}
	if (util_parse_duration(arg, range[0], range[1], &v) != 0) {
		snprintf(expected, sizeof(expected),
			"off or a duration from %lds to %lds (suffixes s, m, h, "
			"d)", range[0], range[1]);
		return bad_arg(ps, d, arg, expected, reterr);
	}
	return store_num(ps, d->field, v, reterr);
}

/* d->aux: long[2] = { min, max }; a whole number. */
static enum err
h_count(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	const long *range = d->aux;
	char expected[128];
	long v;

	if (util_parse_long(arg, range[0], range[1], &v) != 0) {
		snprintf(expected, sizeof(expected), "a number from %ld to %ld",
			range[0], range[1]);
		return bad_arg(ps, d, arg, expected, reterr);
	}
	return store_num(ps, d->field, v, reterr);
}

/*
 * d->aux: long[2] = { min, max } in bytes; a whole number of bytes with
 * an optional suffix k, M or G (powers of 1024).
 */
static enum err
h_size(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	const long *range = d->aux;
	char digits[32], expected[160];
	size_t n = strlen(arg);
	long v, unit = 1;

	if (n > 0 && strchr("kKmMgG", arg[n - 1]) != NULL) {
		unit = arg[n - 1] == 'k' || arg[n - 1] == 'K' ? 1024L :
		    arg[n - 1] == 'm' || arg[n - 1] == 'M' ? 1024L * 1024 :
		    1024L * 1024 * 1024;
		n--;
	}
	if (n == 0 || n >= sizeof(digits) || arg[0] == '-') {
		goto bad;
	}
	memcpy(digits, arg, n);
	digits[n] = '\0';
	if (util_parse_long(digits, 0, range[1] / unit, &v) != 0 ||
	    v * unit < range[0]) {
		goto bad;
	}
	return store_num(ps, d->field, v * unit, reterr);
bad:
	snprintf(expected, sizeof(expected), "a size from %ld to %ld bytes "
		"(suffixes k, M, G)", range[0], range[1]);
	return bad_arg(ps, d, arg, expected, reterr);
}

/* d->aux: the reason; the key cannot be honoured. */
static MUST_CHECK enum err
h_reject(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	return perr(ps, reterr, "'%s' is not supported: %s", d->name,
		(const char *)d->aux);
}

/* d->aux: why it is ignored. */
static MUST_CHECK enum err
h_ignore(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	return pwarn(ps, reterr, "'%s' is ignored: %s", d->name,
		(const char *)d->aux);
}

static MUST_CHECK enum err
h_protocol(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	if (strcmp(arg, "smtp") == 0) {
		return ERR_OK;
	}
	if (strcmp(arg, "lmtp") == 0) {
		return perr(ps, reterr,
			"'protocol lmtp' is not supported: oasmtp speaks SMTP "
			"only");
	}
	return bad_arg(ps, d, arg, "smtp", reterr);
}

static MUST_CHECK enum err
h_auth(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	static const struct choice methods[] = {
		{ "", AUTH_ON }, { "on", AUTH_ON }, { "off", AUTH_OFF },
		{ "plain", AUTH_PLAIN }, { "login", AUTH_LOGIN },
		{ "xoauth2", AUTH_XOAUTH2 },
		{ "oauthbearer", AUTH_OAUTHBEARER },
		{ "cram-md5", AUTH_CRAM_MD5 },
		{ "scram-sha-1", AUTH_SCRAM_SHA_1 },
		{ "scram-sha-256", AUTH_SCRAM_SHA_256 },
		{ NULL, 0 },
	};
	static const char *const unsupported[] = {
		"digest-md5", "external", "gssapi", "ntlm",
		"scram-sha-1-plus", "scram-sha-256-plus", NULL,
	};
	const char *use = "use on, scram-sha-256, scram-sha-1, cram-md5, "
		"plain, login, xoauth2 or oauthbearer";
	const char *expected = "on, off, scram-sha-256, scram-sha-1, "
		"cram-md5, plain, login, xoauth2 or oauthbearer";
	char lower[32];
	size_t i;

	if (strlen(arg) >= sizeof(lower)) {
		return bad_arg(ps, d, arg, expected, reterr);
	}
	util_strlcpy(lower, arg, sizeof(lower));
	ascii_lower(lower);
	for (i = 0; methods[i].name != NULL; i++) {
		if (strcmp(lower, methods[i].name) == 0) {
			return store_num(ps, ACCF_AUTH, methods[i].value,
				reterr);
		}
	}
	for (i = 0; unsupported[i] != NULL; i++) {
		if (strcmp(lower, unsupported[i]) == 0) {
			return perr(ps, reterr,
				"auth method '%s' is not supported; %s", arg,
				use);
		}
	}
	return bad_arg(ps, d, arg, expected, reterr);
}

static MUST_CHECK enum err
h_defaults(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	if (*arg != '\0') {
		return perr(ps, reterr, "'defaults' takes no argument");
	}
	if (ps->defaults_line == 0) {
		ps->defaults_line = ps->line;
	}
	ps->cur = ps->defaults;
	ps->cur_is_defaults = 1;
	return ERR_OK;
}

static struct account *
find_in(struct account **accs, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(accs[i]->name, name) == 0) {
			return accs[i];
		}
	}
	return NULL;
}

/* Start a new account named name, from the defaults; it becomes current. */
static MUST_CHECK enum err
new_account(struct parser *ps, const char *name, struct errinfo *reterr)
{
	struct account *acc;
	size_t i;

	if (ps->n_accs == ps->cap_accs) {
		size_t cap = ps->cap_accs ? ps->cap_accs * 2 : 8;
		struct account **a = realloc(ps->accs, cap * sizeof(*a));

		if (a == NULL) {
			return nomem(reterr);
		}
		ps->accs = a;
		ps->cap_accs = cap;
	}
	acc = account_dup(ps->defaults);
	if (acc == NULL) {
		return nomem(reterr);
	}
	acc->name = strdup(name);
	acc->file = strdup(ps->file);
	if (acc->name == NULL || acc->file == NULL) {
		account_free(acc);
		return nomem(reterr);
	}
	acc->line = ps->line;
	for (i = 0; i < ACCF_MAX; i++) {
		if (acc->set[i]) {
			acc->set[i] = ACC_SET_DEFAULTS;
		}
	}
	ps->accs[ps->n_accs++] = acc;
	ps->cur = acc;
	ps->cur_is_defaults = 0;
	return ERR_OK;
}

/* Trim blanks at both ends in place; returns the start. */
static char *
trim(char *s)
{
	size_t n;

	while (is_blank(*s)) {
		s++;
	}
	n = strlen(s);
	while (n > 0 && is_blank(s[n - 1])) {
		s[--n] = '\0';
	}
	return s;
}

static MUST_CHECK enum err
h_account(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	char *copy = strdup(arg);
	char *name, *parents, *p;
	struct account *prev;
	enum err e = ERR_OK;

	if (copy == NULL) {
		return nomem(reterr);
	}
	parents = strchr(copy, ':');
	if (parents != NULL) {
		*parents++ = '\0';
	}
	name = trim(copy);
	if (*name == '\0') {
		e = perr(ps, reterr, "'account' needs a name");
		goto out;
	}
	if (strchr(name, ',') != NULL || strpbrk(name, " \t") != NULL) {
		e = perr(ps, reterr,
			"account name '%s' must not contain commas or blanks",
			name);
		goto out;
	}
	prev = find_in(ps->accs, ps->n_accs, name);
	if (prev != NULL) {
		e = perr(ps, reterr, "account '%s' is already defined at line %u",
			name, prev->line);
		goto out;
	}
	/* check the parents before creating anything */
	if (parents != NULL) {
		char *list = strdup(parents);
		char *next;

		if (list == NULL) {
			e = nomem(reterr);
			goto out;
		}
		for (p = list; p != NULL && e == ERR_OK; p = next) {
			char *pname;

			next = strchr(p, ',');
			if (next != NULL) {
				*next++ = '\0';
			}
			pname = trim(p);
			if (*pname == '\0') {
				e = perr(ps, reterr,
					"missing parent account name after ':'");
			} else if (find_in(ps->accs, ps->n_accs, pname) == NULL) {
				e = perr(ps, reterr,
					"parent account '%s' is not defined "
					"before this line", pname);
			}
		}
		free(list);
		if (e != ERR_OK) {
			goto out;
		}
	}
	e = new_account(ps, name, reterr);
	if (e != ERR_OK || parents == NULL) {
		goto out;
	}
	for (p = parents; p != NULL && e == ERR_OK;) {
		char *next = strchr(p, ',');

		if (next != NULL) {
			*next++ = '\0';
		}
		if (account_inherit(ps->cur,
			find_in(ps->accs, ps->n_accs, trim(p))) != ERR_OK) {
			e = nomem(reterr);
		}
		p = next;
	}
out:
	free(copy);
	return e;
}

static MUST_CHECK enum err process_line(struct parser *ps, const char *text, size_t n,
	struct errinfo *reterr);

static MUST_CHECK enum err
h_eval(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	struct buf out;
	int timeout;
	enum err e;

	if (*arg == '\0') {
		return perr(ps, reterr, "'eval' needs a command");
	}
	if (ps->in_eval) {
		return perr(ps, reterr, "the output of 'eval' cannot be "
			"another 'eval'");
	}
	if (ps->params->no_eval) {
		return perr(ps, reterr, "'eval' is disabled here");
	}
	/* as for passwordeval: "timeout off" still gets 60 s, never forever */
	timeout = ps->params->eval_timeout > 0 ? ps->params->eval_timeout :
		ACCOUNT_HELPER_TIMEOUT_S;
	if (ps->cur != NULL && ps->cur->set[ACCF_TIMEOUT] &&
	    ps->cur->timeout > 0) {
		timeout = ps->cur->timeout;
	}
	buf_init_secret(&out, CONFIG_EVAL_OUTPUT_MAX);
	e = eval_run(arg, timeout, CONFIG_EVAL_OUTPUT_MAX, &out, reterr);
	if (e != ERR_OK) {
		errinfo_prefix(reterr, "%s:%u: eval: ", ps->file, ps->line);
		buf_release(&out);
		/* every eval failure is a configuration error, timeouts too */
		return errinfo_recode(reterr,
			e == ERR_NOMEM ? ERR_NOMEM : ERR_CONFIG);
	}
	ps->in_eval = 1;
	e = process_line(ps, out.data, out.len, reterr);
	ps->in_eval = 0;
	buf_release(&out);
	return e;
}

static MUST_CHECK enum err
h_syslog(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	static const char *const facilities[] = {
		"LOG_USER", "LOG_MAIL", "LOG_LOCAL0", "LOG_LOCAL1",
		"LOG_LOCAL2", "LOG_LOCAL3", "LOG_LOCAL4", "LOG_LOCAL5",
		"LOG_LOCAL6", "LOG_LOCAL7", NULL,
	};
	size_t i;

	switch (parse_bool(arg)) {
	case 1:
		return store_str(ps, ACCF_SYSLOG, "LOG_MAIL", reterr);
	case 0:
		return store_str(ps, ACCF_SYSLOG, NULL, reterr);
	default:
		break;
	}
	for (i = 0; facilities[i] != NULL; i++) {
		if (strcmp(arg, facilities[i]) == 0) {
			return store_str(ps, ACCF_SYSLOG, arg, reterr);
		}
	}
	return bad_arg(ps, d, arg,
		"on, off, LOG_USER, LOG_MAIL or LOG_LOCAL0 to LOG_LOCAL7",
		reterr);
}

static MUST_CHECK enum err
h_dsn_notify(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	const char *expected = "off, never, or a comma-separated list of "
		"success, failure and delay";
	char *copy, *p, *next;
	enum err e = ERR_OK;

	if (*arg == '\0') {
		return perr(ps, reterr, "'%s' needs an argument", d->name);
	}
	if (strcmp(arg, "off") == 0) {
		return store_str(ps, ACCF_DSN_NOTIFY, NULL, reterr);
	}
	copy = strdup(arg);
	if (copy == NULL) {
		return nomem(reterr);
	}
	ascii_lower(copy);
	if (strcmp(copy, "never") != 0) {
		for (p = copy; p != NULL; p = next) {
			next = strchr(p, ',');
			if (next != NULL) {
				*next++ = '\0';
			}
			if (strcmp(p, "success") != 0 && strcmp(p, "failure") != 0
				&& strcmp(p, "delay") != 0) {
				e = bad_arg(ps, d, arg, expected, reterr);
				break;
			}
		}
		/* undo the splitting: the value is stored as written */
		util_strlcpy(copy, arg, strlen(arg) + 1);
	}
	if (e == ERR_OK) {
		for (p = copy; *p != '\0'; p++) {
			*p = (char)toupper((unsigned char)*p);
		}
		e = store_str(ps, ACCF_DSN_NOTIFY, copy, reterr);
	}
	free(copy);
	return e;
}

static MUST_CHECK enum err
h_dsn_return(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	if (strcmp(arg, "off") == 0) {
		return store_str(ps, ACCF_DSN_RETURN, NULL, reterr);
	}
	if (strcmp(arg, "headers") == 0) {
		return store_str(ps, ACCF_DSN_RETURN, "HDRS", reterr);
	}
	if (strcmp(arg, "full") == 0) {
		return store_str(ps, ACCF_DSN_RETURN, "FULL", reterr);
	}
	return bad_arg(ps, d, arg, "off, headers or full", reterr);
}

static MUST_CHECK enum err
h_fingerprint(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	size_t len = strlen(arg);
	size_t bytes = (len + 1) / 3;
	char norm[32 * 3];
	size_t i;

	if (len == 0) {
		return store_str(ps, ACCF_TLS_FINGERPRINT, NULL, reterr);
	}
	if (len % 3 != 2 || bytes * 3 - 1 != len) {
		goto bad;
	}
	for (i = 0; i < len; i++) {
		int sep = i % 3 == 2;

		if (sep ? arg[i] != ':' : !isxdigit((unsigned char)arg[i])) {
			goto bad;
		}
	}
	if (bytes == 20 || bytes == 16) {
		/* msmtp still accepts them, deprecated: so do we */
		enum err e = pwarn(ps, reterr, "a%s 'tls_fingerprint' is "
			"deprecated; pin the SHA-256 fingerprint instead "
			"(openssl x509 -noout -fingerprint -sha256)",
			bytes == 20 ? " SHA-1" : "n MD5");

		if (e != ERR_OK) {
			return e;
		}
	} else if (bytes != 32) {
		goto bad;
	}
	for (i = 0; i < len; i++) {
		norm[i] = (char)toupper((unsigned char)arg[i]);
	}
	norm[len] = '\0';
	return store_str(ps, ACCF_TLS_FINGERPRINT, norm, reterr);
bad:
	return bad_arg(ps, d, arg,
		"a SHA-256 fingerprint (32 hex pairs separated by ':'; SHA-1 "
		"and MD5 are accepted, deprecated)", reterr);
}

static MUST_CHECK enum err
h_trust_file(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	if (*arg == '\0') {
		enum err e = pwarn(ps, reterr, "an empty 'tls_trust_file' "
			"means the system trust store in oasmtp (msmtp would "
			"trust no CA)");

		return e != ERR_OK ? e
			: store_str(ps, ACCF_TLS_TRUST_FILE, NULL, reterr);
	}
	if (strcmp(arg, "system") == 0) {
		return store_str(ps, ACCF_TLS_TRUST_FILE, "system", reterr);
	}
	return store_path(ps, ACCF_TLS_TRUST_FILE, "", arg, reterr);
}

static MUST_CHECK enum err
h_certcheck(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	int v = parse_bool(arg);
	enum err e;

	if (strcmp(d->name, "tls_nocertcheck") == 0) {
		if (*arg != '\0') {
			return perr(ps, reterr, "'%s' takes no argument",
				d->name);
		}
		v = 0;
	} else if (v < 0) {
		return bad_arg(ps, d, arg, "on or off", reterr);
	}
	if (v == 0) {
		e = pwarn(ps, reterr, "'%s': server certificates are not "
			"verified for this account", d->name);
		if (e != ERR_OK) {
			return e;
		}
	}
	return store_num(ps, ACCF_TLS_CERTCHECK, v, reterr);
}

/* tls_nostarttls (obsolete): tls_starttls off */
static MUST_CHECK enum err
h_nostarttls(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	if (*arg != '\0') {
		return perr(ps, reterr, "'%s' takes no argument", d->name);
	}
	return store_num(ps, ACCF_TLS_STARTTLS, 0, reterr);
}

/* keepbcc (obsolete): the inverse of remove_bcc_headers */
static MUST_CHECK enum err
h_keepbcc(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	int v = parse_bool(arg);

	if (v < 0) {
		return bad_arg(ps, d, arg, "on or off", reterr);
	}
	return store_num(ps, ACCF_REMOVE_BCC_HEADERS, !v, reterr);
}

/* undisclosed_recipients, add_missing_*_header: booleans mapped onto the
 * set_*_header policies; d->aux holds { field, value for on, for off }. */
static MUST_CHECK enum err
h_bool_policy(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	const long *map = d->aux;
	int v = parse_bool(arg);

	if (v < 0) {
		return bad_arg(ps, d, arg, "on or off", reterr);
	}
	return store_num(ps, (int)map[0], v ? map[1] : map[2], reterr);
}

static MUST_CHECK enum err
h_force_sslv3(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	int v = parse_bool(arg);

	if (v == 0) {
		return ERR_OK;
	}
	if (v == 1) {
		return perr(ps, reterr, "'tls_force_sslv3' is not supported: "
			"SSLv3 is broken; oasmtp requires TLS 1.2 or later "
			"(remove the line or write 'tls_force_sslv3 off')");
	}
	return bad_arg(ps, d, arg, "off", reterr);
}

static MUST_CHECK enum err
h_min_dh_bits(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	long v;

	if (*arg != '\0' && util_parse_long(arg, 1, 1L << 20, &v) != 0) {
		return bad_arg(ps, d, arg, "a number of bits", reterr);
	}
	return pwarn(ps, reterr, "'%s' is ignored: OpenSSL's own limits "
		"apply and oasmtp requires TLS 1.2 or later", d->name);
}

static int
is_loopback_url(const char *rest)
{
	static const char *const hosts[] = {
		"127.0.0.1", "localhost", "[::1]", NULL,
	};
	size_t i;

	for (i = 0; hosts[i] != NULL; i++) {
		size_t n = strlen(hosts[i]);

		if (strncmp(rest, hosts[i], n) == 0
			&& (rest[n] == ':' || rest[n] == '/'
			|| rest[n] == '\0')) {
			return 1;
		}
	}
	return 0;
}

static MUST_CHECK enum err
h_endpoint(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	if (*arg == '\0') {
		return store_str(ps, d->field, NULL, reterr);
	}
	if (util_strncasecmp(arg, "https://", 8) == 0 && arg[8] != '\0') {
		return store_str(ps, d->field, arg, reterr);
	}
	if (util_strncasecmp(arg, "http://", 7) == 0
		&& is_loopback_url(arg + 7)) {
		return store_str(ps, d->field, arg, reterr);
	}
	return bad_arg(ps, d, arg,
		"an https:// URL (http:// only for a loopback address)", reterr);
}

static MUST_CHECK enum err
h_token_store(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	const char *expected = "secret-service, file:PATH or command:CMD";

	if (*arg == '\0') {
		return store_str(ps, ACCF_OAUTH2_TOKEN_STORE, NULL, reterr);
	}
	if (strcmp(arg, "secret-service") == 0) {
		return store_str(ps, ACCF_OAUTH2_TOKEN_STORE, arg, reterr);
	}
	if (strncmp(arg, "command:", 8) == 0 && arg[8] != '\0') {
		return store_str(ps, ACCF_OAUTH2_TOKEN_STORE, arg, reterr);
	}
	if (strncmp(arg, "file:", 5) != 0 || arg[5] == '\0') {
		return bad_arg(ps, d, arg, expected, reterr);
	}
	return store_path(ps, ACCF_OAUTH2_TOKEN_STORE, "file:", arg + 5,
		reterr);
}

static MUST_CHECK enum err
h_token_cache(struct parser *ps, const struct directive *d, const char *arg,
	struct errinfo *reterr)
{
	if (*arg == '\0') {
		return store_str(ps, ACCF_OAUTH2_TOKEN_CACHE, NULL, reterr);
	}
	if (strcmp(arg, "off") == 0) {
		return store_str(ps, ACCF_OAUTH2_TOKEN_CACHE, "off", reterr);
	}
	return store_path(ps, ACCF_OAUTH2_TOKEN_CACHE, "", arg,
		reterr);
}

/* ---------------------------------------------------------------- */
/* the directive table: sorted by name (checked at run time) */

static const struct choice set_from_choices[] = {
	{ "auto", HDR_AUTO }, { "on", HDR_ON }, { "off", HDR_OFF },
	{ NULL, 0 },
};
static const struct choice auto_off_choices[] = {
	{ "auto", HDR_AUTO }, { "off", HDR_OFF }, { NULL, 0 },
};
static const struct choice set_to_choices[] = {
	{ "on", HDR_ON }, { "off", HDR_OFF },
	{ "undisclosed_recipients", HDR_UNDISCLOSED }, { NULL, 0 },
};
static const struct choice provider_choices[] = {
	/* the presets of src/provider.c; "generic" is "custom" */
	{ "google", OAUTH2_GOOGLE }, { "microsoft", OAUTH2_MICROSOFT },
	{ "yahoo", OAUTH2_YAHOO }, { "aol", OAUTH2_AOL },
	{ "fastmail", OAUTH2_FASTMAIL }, { "yandex", OAUTH2_YANDEX },
	{ "mailru", OAUTH2_MAILRU }, { "comcast", OAUTH2_COMCAST },
	{ "custom", OAUTH2_CUSTOM }, { "generic", OAUTH2_CUSTOM },
	{ "off", OAUTH2_NONE }, { NULL, 0 },
};
static const struct choice queue_choices[] = {
	{ "off", QUEUE_OFF }, { "on-failure", QUEUE_ON_FAILURE },
	{ "always", QUEUE_ALWAYS }, { NULL, 0 },
};
static const struct choice from_original_choices[] = {
	{ "x-original-from", FROM_ORIG_X_ORIGINAL_FROM },
	{ "sender", FROM_ORIG_SENDER }, { "off", FROM_ORIG_OFF },
	{ NULL, 0 },
};
static const struct choice transport_choices[] = {
	{ "smtp", VIA_SMTP }, { "graph", VIA_GRAPH },
	{ "gmail-api", VIA_GMAIL_API }, { "auto", VIA_AUTO }, { NULL, 0 },
};
static const long margin_range[2] = { 0, 86400 };
static const long max_age_range[2] = { 60, 3650L * 86400 };
static const long rejected_age_range[2] = { 60, 3650L * 86400 };
static const long rejected_count_range[2] = { 1, 1000000 };
/* up to 1 TiB where a long holds it, else up to 1 GiB */
#if LONG_MAX > 0x7fffffffL
static const long rejected_size_range[2] = {
	1024, 1024L * 1024 * 1024 * 1024
};
#else
static const long rejected_size_range[2] = { 1024, 1024L * 1024 * 1024 };
#endif
static const long persist_range[2] = { 1, 3600 };
static const long session_age_range[2] = { 1, 86400 };
static const long session_msgs_range[2] = { 1, 100000 };
static const long undisclosed_map[3] = {
	ACCF_SET_TO_HEADER, HDR_UNDISCLOSED, HDR_OFF,
};
static const long missing_from_map[3] = {
	ACCF_SET_FROM_HEADER, HDR_AUTO, HDR_OFF,
};
static const long missing_date_map[3] = {
	ACCF_SET_DATE_HEADER, HDR_AUTO, HDR_OFF,
};

static const struct directive directives[] = {
	{ "account", h_account, -1, 0, NULL },
	{ "add_missing_date_header", h_bool_policy, -1, 0, missing_date_map },
	{ "add_missing_from_header", h_bool_policy, -1, 0, missing_from_map },
	{ "aliases", h_string, ACCF_ALIASES, D_PATH, NULL },
	{ "allow_from_override", h_bool, ACCF_ALLOW_FROM_OVERRIDE, 0, NULL },
	{ "api_url", h_endpoint, ACCF_API_URL, 0, NULL },
	{ "auth", h_auth, ACCF_AUTH, 0, NULL },
	{ "auto_from", h_bool, ACCF_AUTO_FROM, 0, NULL },
	{ "confine", h_bool, ACCF_CONFINE, 0, NULL },
	{ "connect_timeout", h_timeout, ACCF_TIMEOUT, 0, NULL },
	{ "defaults", h_defaults, -1, 0, NULL },
	{ "domain", h_string, ACCF_DOMAIN, 0, NULL },
	{ "dsn_notify", h_dsn_notify, ACCF_DSN_NOTIFY, 0, NULL },
	{ "dsn_return", h_dsn_return, ACCF_DSN_RETURN, 0, NULL },
	{ "eval", h_eval, -1, 0, NULL },
	{ "from", h_string, ACCF_FROM, 0, NULL },
	{ "from_full_name", h_string, ACCF_FROM_FULL_NAME, 0, NULL },
	{ "from_rewrite", h_bool, ACCF_FROM_REWRITE, 0, NULL },
	{ "from_rewrite_header", h_choice, ACCF_FROM_REWRITE_HEADER, 0,
		from_original_choices },
	{ "host", h_string, ACCF_HOST, D_REQUIRED, NULL },
	{ "keepbcc", h_keepbcc, ACCF_REMOVE_BCC_HEADERS, 0, NULL },
	{ "logfile", h_string, ACCF_LOGFILE, D_PATH, NULL },
	{ "logfile_time_format", h_string, ACCF_LOGFILE_TIME_FORMAT, 0,
		NULL },
	{ "maildomain", h_string, ACCF_MAILDOMAIN, 0, NULL },
	{ "message_id_fix", h_choice, ACCF_MESSAGE_ID_FIX, 0,
		auto_off_choices },
	{ "notify_command", h_string, ACCF_NOTIFY_COMMAND, 0, NULL },
	{ "ntlmdomain", h_reject, -1, 0,
		"NTLM authentication is not supported" },
	{ "oauth2_auth_endpoint", h_endpoint, ACCF_OAUTH2_AUTH_ENDPOINT, 0,
		NULL },
	{ "oauth2_ca_file", h_string, ACCF_OAUTH2_CA_FILE, D_PATH, NULL },
	{ "oauth2_client_id", h_string, ACCF_OAUTH2_CLIENT_ID, 0, NULL },
	{ "oauth2_client_secret", h_string, ACCF_OAUTH2_CLIENT_SECRET,
		D_SECRET, NULL },
	{ "oauth2_client_secret_eval", h_string,
		ACCF_OAUTH2_CLIENT_SECRET_EVAL, 0, NULL },
	{ "oauth2_device_endpoint", h_endpoint, ACCF_OAUTH2_DEVICE_ENDPOINT,
		0, NULL },
	{ "oauth2_provider", h_choice, ACCF_OAUTH2_PROVIDER, 0,
		provider_choices },
	{ "oauth2_refresh_margin", h_duration, ACCF_OAUTH2_REFRESH_MARGIN, 0,
		margin_range },
	{ "oauth2_revocation_endpoint", h_endpoint,
		ACCF_OAUTH2_REVOCATION_ENDPOINT, 0, NULL },
	{ "oauth2_scope", h_string, ACCF_OAUTH2_SCOPE, 0, NULL },
	{ "oauth2_tenant", h_string, ACCF_OAUTH2_TENANT, 0, NULL },
	{ "oauth2_token_cache", h_token_cache, ACCF_OAUTH2_TOKEN_CACHE, 0,
		NULL },
	{ "oauth2_token_endpoint", h_endpoint, ACCF_OAUTH2_TOKEN_ENDPOINT, 0,
		NULL },
	{ "oauth2_token_store", h_token_store, ACCF_OAUTH2_TOKEN_STORE, 0,
		NULL },
	{ "oauth2_token_store_write", h_string, ACCF_OAUTH2_TOKEN_STORE_WRITE,
		0, NULL },
	{ "password", h_string, ACCF_PASSWORD, D_SECRET, NULL },
	{ "passwordeval", h_string, ACCF_PASSWORDEVAL, 0, NULL },
	{ "port", h_port, ACCF_PORT, 0, NULL },
	{ "protocol", h_protocol, -1, 0, NULL },
	{ "proxy_host", h_string, ACCF_PROXY_HOST, 0, NULL },
	{ "proxy_port", h_proxy_port, ACCF_PROXY_PORT, 0, NULL },
	{ "queue", h_choice, ACCF_QUEUE, 0, queue_choices },
	{ "queue_dir", h_string, ACCF_QUEUE_DIR, D_PATH, NULL },
	{ "queue_max_age", h_duration, ACCF_QUEUE_MAX_AGE, 0, max_age_range },
	{ "remove_bcc_headers", h_bool, ACCF_REMOVE_BCC_HEADERS, 0, NULL },
	{ "session_max_age", h_duration, ACCF_SESSION_MAX_AGE, 0,
		session_age_range },
	{ "session_max_messages", h_count, ACCF_SESSION_MAX_MESSAGES, 0,
		session_msgs_range },
	{ "session_persist", h_duration_off, ACCF_SESSION_PERSIST, 0,
		persist_range },
	{ "set_date_header", h_choice, ACCF_SET_DATE_HEADER, 0,
		auto_off_choices },
	{ "set_from_header", h_choice, ACCF_SET_FROM_HEADER, 0,
		set_from_choices },
	{ "set_msgid_header", h_choice, ACCF_SET_MSGID_HEADER, 0,
		auto_off_choices },
	{ "set_to_header", h_choice, ACCF_SET_TO_HEADER, 0, set_to_choices },
	{ "socket", h_reject, -1, 0,
		"connecting through a local socket is not supported; use host "
		"and port" },
	{ "source_ip", h_string, ACCF_SOURCE_IP, 0, NULL },
	{ "syslog", h_syslog, ACCF_SYSLOG, 0, NULL },
	{ "system_from_override", h_string, ACCF_SYSTEM_FROM_OVERRIDE, 0,
		NULL },
	{ "system_rejected_max_age", h_duration, ACCF_SYSTEM_REJECTED_MAX_AGE,
		0, rejected_age_range },
	{ "system_rejected_max_count", h_count,
		ACCF_SYSTEM_REJECTED_MAX_COUNT, 0, rejected_count_range },
	{ "system_rejected_max_size", h_size, ACCF_SYSTEM_REJECTED_MAX_SIZE,
		0, rejected_size_range },
	{ "timeout", h_timeout, ACCF_TIMEOUT, 0, NULL },
	{ "tls", h_bool, ACCF_TLS, 0, NULL },
	{ "tls_cert_file", h_string, ACCF_TLS_CERT_FILE, D_PATH, NULL },
	{ "tls_certcheck", h_certcheck, ACCF_TLS_CERTCHECK, 0, NULL },
	{ "tls_crl_file", h_string, ACCF_TLS_CRL_FILE, D_PATH, NULL },
	{ "tls_fingerprint", h_fingerprint, ACCF_TLS_FINGERPRINT, 0, NULL },
	{ "tls_force_sslv3", h_force_sslv3, -1, 0, NULL },
	{ "tls_host_override", h_string, ACCF_TLS_HOST_OVERRIDE, 0, NULL },
	{ "tls_key_file", h_string, ACCF_TLS_KEY_FILE, D_PATH, NULL },
	{ "tls_min_dh_prime_bits", h_min_dh_bits, -1, 0, NULL },
	{ "tls_nocertcheck", h_certcheck, ACCF_TLS_CERTCHECK, 0, NULL },
	{ "tls_nostarttls", h_nostarttls, ACCF_TLS_STARTTLS, 0, NULL },
	{ "tls_priorities", h_ignore, -1, 0,
		"it is GnuTLS syntax; oasmtp uses OpenSSL's defaults with "
		"TLS 1.2 or later" },
	{ "tls_starttls", h_bool, ACCF_TLS_STARTTLS, 0, NULL },
	{ "tls_trust_file", h_trust_file, ACCF_TLS_TRUST_FILE, 0, NULL },
	{ "transport", h_choice, ACCF_TRANSPORT, 0, transport_choices },
	{ "undisclosed_recipients", h_bool_policy, -1, 0, undisclosed_map },
	{ "user", h_string, ACCF_USER, 0, NULL },
};

#define N_DIRECTIVES (sizeof(directives) / sizeof(directives[0]))

static int
table_sorted(void)
{
	size_t i;

	for (i = 1; i < N_DIRECTIVES; i++) {
		if (strcmp(directives[i - 1].name, directives[i].name) >= 0) {
			return 0;
		}
	}
	return 1;
}

static int
cmp_directive(const void *key, const void *elem)
{
	return strcmp(key, ((const struct directive *)elem)->name);
}

/* Optimal string alignment distance (Levenshtein plus transpositions). */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t d[KEY_MAX + 1][KEY_MAX + 1];
	size_t i, j;

	if (la > KEY_MAX || lb > KEY_MAX) {
		return (size_t)-1;
	}
	for (i = 0; i <= la; i++) {
		d[i][0] = i;
	}
	for (j = 0; j <= lb; j++) {
		d[0][j] = j;
	}
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t best = d[i - 1][j] + 1;

			if (d[i][j - 1] + 1 < best) {
				best = d[i][j - 1] + 1;
			}
			if (d[i - 1][j - 1] + cost < best) {
				best = d[i - 1][j - 1] + cost;
			}
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2]
				&& a[i - 2] == b[j - 1]
				&& d[i - 2][j - 2] + 1 < best) {
				best = d[i - 2][j - 2] + 1;
			}
			d[i][j] = best;
		}
	}
	return d[la][lb];
}

static const char *
suggest(const char *key)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1;
	size_t limit = strlen(key) <= 4 ? 1 : 2;
	size_t i;

	for (i = 0; i < N_DIRECTIVES; i++) {
		size_t dist = edit_distance(key, directives[i].name);

		if (dist < best_d) {
			best_d = dist;
			best = directives[i].name;
		}
	}
	return best_d <= limit ? best : NULL;
}

/* ---------------------------------------------------------------- */
/* tokenizer */

/*
 * Decode the argument text[0..n) (already trimmed) into arg: a quoted
 * argument loses its quotes and its \" and \\ escapes.
 */
static MUST_CHECK enum err
decode_arg(struct parser *ps, const char *text, size_t n, struct buf *arg,
	struct errinfo *reterr)
{
	size_t i;
	enum err e = ERR_OK;

	if (n == 0 || text[0] != '"') {
		e = buf_append(arg, text, n);
		return e == ERR_OK ? ERR_OK : nomem(reterr);
	}
	for (i = 1; i < n && e == ERR_OK; i++) {
		char c = text[i];

		if (c == '\\' && i + 1 < n
			&& (text[i + 1] == '"' || text[i + 1] == '\\')) {
			e = buf_putc(arg, text[++i]);
		} else if (c == '"') {
			if (i + 1 != n) {
				return perr(ps, reterr,
					"unexpected text after the closing "
					"quote");
			}
			return ERR_OK;
		} else {
			e = buf_putc(arg, c);
		}
	}
	if (e != ERR_OK) {
		return nomem(reterr);
	}
	return perr(ps, reterr, "missing closing quote");
}

static MUST_CHECK enum err
dispatch(struct parser *ps, const char *key, const char *arg,
	struct errinfo *reterr)
{
	const struct directive *d;

	d = bsearch(key, directives, N_DIRECTIVES, sizeof(directives[0]),
		cmp_directive);
	if (d == NULL) {
		const char *s = suggest(key);

		if (s != NULL) {
			return perr(ps, reterr,
				"unknown key '%s'; did you mean '%s'?", key, s);
		}
		return perr(ps, reterr, "unknown key '%s'", key);
	}
	/*
	 * A key that runs a command (now, or at send time) only from a
	 * file that nobody but its owner (root or the user) can change:
	 * otherwise whoever can write it runs commands as the reader,
	 * root included.
	 */
	if (ps->unsafe != NULL && (d->handler == h_eval ||
	    d->field == ACCF_PASSWORDEVAL ||
	    d->field == ACCF_OAUTH2_CLIENT_SECRET_EVAL ||
	    d->field == ACCF_NOTIFY_COMMAND ||
	    d->field == ACCF_OAUTH2_TOKEN_STORE_WRITE ||
	    (d->field == ACCF_OAUTH2_TOKEN_STORE &&
	    strncmp(arg, "command:", 8) == 0))) {
		return perr(ps, reterr, "refusing '%s': it runs a command, and "
			"this file %s; run: chmod go-w %s (and chown it to "
			"yourself or root)", key, ps->unsafe, ps->file);
	}
	if (ps->cur == NULL && d->handler != h_account
		&& d->handler != h_defaults && d->handler != h_eval) {
		/* msmtp 1.2 compatibility: keys before any section */
		enum err e = new_account(ps, "default", reterr);

		if (e != ERR_OK) {
			return e;
		}
	}
	return d->handler(ps, d, arg, reterr);
}

static MUST_CHECK enum err
process_line(struct parser *ps, const char *text, size_t n,
	struct errinfo *reterr)
{
	char key[KEY_MAX + 1];
	size_t i = 0, k, end;
	struct buf arg;
	enum err e;

	while (i < n && is_blank(text[i])) {
		i++;
	}
	if (i == n || text[i] == '#') {
		return ERR_OK;
	}
	/*
	 * A CR inside a line (or one an eval command printed) would reach
	 * the wire in values such as domain (EHLO): never accept one.
	 */
	if (memchr(text, '\r', n) != NULL) {
		return perr(ps, reterr, "line contains a carriage return "
			"(CR) before its end");
	}
	k = i;
	while (i < n && !is_blank(text[i])) {
		i++;
	}
	if (i - k > KEY_MAX) {
		return perr(ps, reterr, "unknown key '%.*s...'", 40, text + k);
	}
	memcpy(key, text + k, i - k);
	key[i - k] = '\0';
	while (i < n && is_blank(text[i])) {
		i++;
	}
	end = n;
	while (end > i && is_blank(text[end - 1])) {
		end--;
	}
	buf_init_secret(&arg, CONFIG_LINE_MAX + 1);
	e = decode_arg(ps, text + i, end - i, &arg, reterr);
	if (e == ERR_OK) {
		e = dispatch(ps, key, buf_cstr(&arg), reterr);
	}
	buf_release(&arg);
	return e;
}

static MUST_CHECK enum err
parse_text(struct parser *ps, const char *data, size_t len,
	struct errinfo *reterr)
{
	size_t pos = 0;
	enum err e = ERR_OK;

	ps->line = 0;
	while (pos < len && e == ERR_OK) {
		const char *start = data + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - start) : len - pos;

		pos += n + (nl != NULL ? 1 : 0);
		ps->line++;
		if (n > 0 && start[n - 1] == '\r') {
			n--;
		}
		if (n > CONFIG_LINE_MAX) {
			return perr(ps, reterr,
				"line too long (%zu bytes; the limit is %d)", n,
				CONFIG_LINE_MAX);
		}
		if (memchr(start, '\0', n) != NULL) {
			return perr(ps, reterr, "line contains a NUL byte");
		}
		e = process_line(ps, start, n, reterr);
	}
	if (e == ERR_OK && ps->n_accs == 0 && ps->defaults_line != 0) {
		size_t i;
		int any = 0;

		for (i = 0; i < ACCF_MAX; i++) {
			any |= ps->defaults->set[i] != 0;
		}
		if (any) {
			/* only a defaults section: it is the default account */
			ps->line = ps->defaults_line;
			e = new_account(ps, "default", reterr);
		}
	}
	return e;
}

/* ---------------------------------------------------------------- */
/* resolution of %-patterns and dependent defaults */

struct expand_ctx {
	const struct config_params *params;
	char user[256];
	char host[256];
	char canon[256];
	char maildomain[256];
	int have_canon;
	int have_maildomain;
};

static void
ctx_init(struct expand_ctx *ctx, const struct config_params *params)
{
	const char *u = params->user_name;

	memset(ctx, 0, sizeof(*ctx));
	ctx->params = params;
	if (u == NULL) {
		struct passwd *pw = getpwuid(getuid());

		u = pw != NULL ? pw->pw_name : getenv("USER");
	}
	util_strlcpy(ctx->user, u != NULL ? u : "unknown", sizeof(ctx->user));
	if (params->host_name != NULL) {
		util_strlcpy(ctx->host, params->host_name, sizeof(ctx->host));
	} else if (gethostname(ctx->host, sizeof(ctx->host) - 1) != 0) {
		util_strlcpy(ctx->host, "localhost", sizeof(ctx->host));
	}
	ctx->host[sizeof(ctx->host) - 1] = '\0';
}

static const char *
ctx_canon(struct expand_ctx *ctx)
{
	struct addrinfo hints, *res = NULL;

	if (ctx->have_canon) {
		return ctx->canon;
	}
	ctx->have_canon = 1;
	util_strlcpy(ctx->canon, ctx->host, sizeof(ctx->canon));
	if (ctx->params->host_name != NULL) {
		return ctx->canon;	/* injected: do not ask DNS */
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_flags = AI_CANONNAME;
	if (getaddrinfo(ctx->host, NULL, &hints, &res) == 0) {
		if (res != NULL && res->ai_canonname != NULL) {
			util_strlcpy(ctx->canon, res->ai_canonname,
				sizeof(ctx->canon));
		}
		freeaddrinfo(res);
	}
	return ctx->canon;
}

static const char *
ctx_maildomain(struct expand_ctx *ctx)
{
	const char *path = ctx->params->mailname_file;
	FILE *f;

	if (ctx->have_maildomain) {
		return ctx->maildomain;
	}
	ctx->have_maildomain = 1;
	util_strlcpy(ctx->maildomain, ctx->host, sizeof(ctx->maildomain));
	f = fopen(path != NULL ? path : "/etc/mailname", "r");
	if (f != NULL) {
		char line[256];

		if (fgets(line, sizeof(line), f) != NULL) {
			line[strcspn(line, "\r\n")] = '\0';
			if (line[0] != '\0') {
				util_strlcpy(ctx->maildomain, line,
					sizeof(ctx->maildomain));
			}
		}
		fclose(f);
	}
	return ctx->maildomain;
}

/* Replace %U %H %C %M in *field (others, like msmtp's %F, stay). */
static MUST_CHECK enum err
expand_field(struct account *acc, enum account_field f, const char *value,
	struct expand_ctx *ctx)
{
	struct buf b;
	const char *p;
	enum err e = ERR_OK;

	if (value == NULL || strchr(value, '%') == NULL) {
		return ERR_OK;
	}
	buf_init(&b, CONFIG_LINE_MAX + 4096);
	for (p = value; *p != '\0' && e == ERR_OK; p++) {
		const char *rep = NULL;

		if (*p == '%') {
			switch (p[1]) {
			case 'U':
				rep = ctx->user;
				break;
			case 'H':
				rep = ctx->host;
				break;
			case 'C':
				rep = ctx_canon(ctx);
				break;
			case 'M':
				rep = ctx_maildomain(ctx);
				break;
			default:
				break;
			}
		}
		if (rep != NULL) {
			e = buf_append_str(&b, rep);
			p++;
		} else {
			e = buf_putc(&b, *p);
		}
	}
	if (e == ERR_OK) {
		e = account_set_str(acc, f, buf_cstr(&b));
	}
	buf_release(&b);
	return e;
}

/*
 * An account with a provider preset and no host (neither in the account,
 * nor from a parent or `defaults`) sends to the preset's submission server.
 * Keys the file gives win, whatever their order: an explicit port keeps
 * its value and, unless tls_starttls is given too, picks the TLS mode the
 * way the ports are assigned (465 implicit TLS, any other STARTTLS).
 * Fields filled here are marked ACC_SET_PRESET.
 */
static MUST_CHECK enum err
apply_preset_server(struct account *acc)
{
	struct provider_server sv;
	enum err e;

	if (acc->set[ACCF_HOST] || !provider_server(acc, &sv)) {
		return ERR_OK;
	}
	e = account_set_str(acc, ACCF_HOST, sv.host);
	if (e != ERR_OK) {
		return e;
	}
	acc->set[ACCF_HOST] = ACC_SET_PRESET;
	if (!acc->set[ACCF_TLS] && !acc->tls) {
		/* msmtp's defaults: the preset's servers all need TLS */
		acc->tls = 1;
		acc->set[ACCF_TLS] = ACC_SET_PRESET;
	}
	if (!acc->tls) {
		return ERR_OK;	/* tls off: the user's choice, port 25 */
	}
	if (!acc->set[ACCF_TLS_STARTTLS] && acc->set[ACCF_PORT]) {
		acc->tls_starttls = acc->port != 465;
	} else if (!acc->set[ACCF_TLS_STARTTLS]) {
		acc->tls_starttls = sv.starttls;
		acc->set[ACCF_TLS_STARTTLS] = ACC_SET_PRESET;
	}
	if (!acc->set[ACCF_PORT] && acc->tls_starttls == sv.starttls) {
		acc->port = sv.port;
		acc->set[ACCF_PORT] = ACC_SET_PRESET;
	}
	return ERR_OK;
}

static MUST_CHECK enum err
resolve_account(struct account *acc, struct expand_ctx *ctx)
{
	enum err e = apply_preset_server(acc);

	if (e != ERR_OK) {
		return e;
	}
	if (acc->auto_from && !acc->set[ACCF_FROM]) {
		struct buf b;

		buf_init(&b, CONFIG_LINE_MAX + 16);
		e = buf_printf(&b, "%%U@%s",
			acc->maildomain != NULL ? acc->maildomain : "%H");
		if (e == ERR_OK) {
			e = account_set_str(acc, ACCF_FROM, buf_cstr(&b));
		}
		buf_release(&b);
	}
	if (!acc->set[ACCF_PORT] && acc->msmtp_defaults) {
		/* msmtp never picks 587 on its own */
		acc->port = acc->tls && !acc->tls_starttls ? 465 : 25;
	} else if (!acc->set[ACCF_PORT]) {
		acc->port = !acc->tls ? 25 : (acc->tls_starttls ? 587 : 465);
	}
	if (!acc->set[ACCF_AUTH]) {
		if (acc->oauth2_provider != OAUTH2_NONE) {
			acc->auth = AUTH_XOAUTH2;
		} else if (acc->user != NULL && !acc->msmtp_defaults) {
			acc->auth = AUTH_ON;
		}
	}
	if (e == ERR_OK && acc->domain == NULL) {
		e = account_set_str(acc, ACCF_DOMAIN, "localhost");
	}
	if (e == ERR_OK) {
		e = expand_field(acc, ACCF_DOMAIN, acc->domain, ctx);
	}
	if (e == ERR_OK) {
		e = expand_field(acc, ACCF_FROM, acc->from, ctx);
	}
	return e;
}

/* ---------------------------------------------------------------- */
/* files */

static struct config *
config_new(void)
{
	return calloc(1, sizeof(struct config));
}

void
config_free(struct config *cfg)
{
	size_t i;

	if (cfg == NULL) {
		return;
	}
	for (i = 0; i < cfg->n_accounts; i++) {
		account_free(cfg->accounts[i]);
	}
	free(cfg->accounts);
	for (i = 0; i < cfg->n_warnings; i++) {
		free(cfg->warnings[i]);
	}
	free(cfg->warnings);
	free(cfg->system_file);
	free(cfg->user_file);
	free(cfg);
}

static void
parser_release(struct parser *ps)
{
	size_t i;

	for (i = 0; i < ps->n_accs; i++) {
		account_free(ps->accs[i]);
	}
	free(ps->accs);
	account_free(ps->defaults);
	ps->accs = NULL;
	ps->n_accs = 0;
	ps->defaults = NULL;
}

/* Move the parsed accounts into cfg: a same-named one is replaced. */
static MUST_CHECK enum err
merge(struct config *cfg, struct parser *ps, struct errinfo *reterr)
{
	size_t i, j;

	for (i = 0; i < ps->n_accs; i++) {
		struct account *acc = ps->accs[i];

		for (j = 0; j < cfg->n_accounts; j++) {
			if (strcmp(cfg->accounts[j]->name, acc->name) == 0) {
				break;
			}
		}
		if (j == cfg->n_accounts) {
			struct account **a = realloc(cfg->accounts,
				(cfg->n_accounts + 1) * sizeof(*a));

			if (a == NULL) {
				return nomem(reterr);
			}
			cfg->accounts = a;
			cfg->n_accounts++;
		} else {
			account_free(cfg->accounts[j]);
		}
		cfg->accounts[j] = acc;
		ps->accs[i] = NULL;
	}
	ps->n_accs = 0;
	return ERR_OK;
}

/* The home directory: the caller's (tests), else paths_home(); may be NULL. */
static const char *
resolve_home(const struct config_params *params, struct buf *storage)
{
	if (params->home != NULL) {
		return params->home;
	}
	return paths_home(1, storage) == ERR_OK ? buf_cstr(storage) : NULL;
}

/* The configuration base: the caller's (tests), else paths_config_dir_for(). */
static const char *
resolve_xdg(const struct config_params *params, const char *home,
	struct buf *storage)
{
	if (params->xdg_config_home != NULL) {
		return params->xdg_config_home;
	}
	return paths_config_dir_for(home, storage) == ERR_OK ?
		buf_cstr(storage) : NULL;
}

/*
 * 1 when path names one of msmtp's user files: its last component is
 * ".msmtprc" or "msmtprc", or it ends in "msmtp/config" (as
 * $XDG_CONFIG_HOME/msmtp/config does).
 */
static int
is_msmtp_file(const char *path)
{
	const char *base = strrchr(path, '/');
	size_t n = strlen(path);
	static const char xdg[] = "msmtp/config";

	base = base != NULL ? base + 1 : path;
	if (strcmp(base, ".msmtprc") == 0 || strcmp(base, "msmtprc") == 0) {
		return 1;
	}
	return n >= sizeof(xdg) - 1
		&& strcmp(path + n - (sizeof(xdg) - 1), xdg) == 0
		&& (n == sizeof(xdg) - 1 || path[n - sizeof(xdg)] == '/');
}

/*
 * Parse data as file name into cfg (accounts appended/merged); with
 * msmtp_defaults, the accounts start from msmtp's defaults.
 */
static MUST_CHECK enum err
parse_into(struct config *cfg, const struct config_params *params,
	const char *name, const char *data, size_t len, int msmtp_defaults,
	const struct stat *st,
	int *ret_secret, struct errinfo *reterr)
{
	struct parser ps;
	struct buf home;
	enum err e;

	if (!table_sorted()) {
		return errinfo_set(reterr, ERR_INTERNAL,
			"internal error: directive table not sorted");
	}
	memset(&ps, 0, sizeof(ps));
	ps.params = params;
	ps.cfg = cfg;
	buf_init(&home, PATH_MAX);
	ps.home = resolve_home(params, &home);
	ps.file = name;
	if (st != NULL && S_ISREG(st->st_mode)) {
		if (st->st_uid != geteuid() && st->st_uid != 0) {
			ps.unsafe = "belongs to another user";
		} else if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0) {
			ps.unsafe = "is writable by group or others";
		}
	}
	ps.defaults = account_new();
	if (ps.defaults == NULL) {
		buf_release(&home);
		return nomem(reterr);
	}
	if (msmtp_defaults) {
		account_use_msmtp_defaults(ps.defaults);
	}
	e = parse_text(&ps, data, len, reterr);
	if (e == ERR_OK) {
		e = merge(cfg, &ps, reterr);
	}
	if (ret_secret != NULL) {
		*ret_secret = ps.literal_secret;
	}
	parser_release(&ps);
	buf_release(&home);
	return e;
}

/*
 * Apply the command-line settings of params to acc, as lines at the end of
 * its section (config.h).  Messages name the option: "option --port: ...".
 */
static MUST_CHECK enum err
apply_settings(struct config *cfg, const struct config_params *params,
	struct account *acc, struct errinfo *reterr)
{
	struct parser ps;
	struct buf home, name;
	size_t i;
	enum err e = ERR_OK;

	memset(&ps, 0, sizeof(ps));
	ps.params = params;
	ps.cfg = cfg;
	ps.cmdline = 1;
	ps.cur = acc;
	buf_init(&home, PATH_MAX);
	buf_init(&name, CMDLINE_NAME_MAX);
	ps.home = resolve_home(params, &home);
	for (i = 0; i < params->n_settings && e == ERR_OK; i++) {
		const struct cli_setting *st = &params->settings[i];

		buf_reset(&name);
		if (buf_printf(&name, "option --%s", st->option) != ERR_OK) {
			e = nomem(reterr);
			break;
		}
		ps.file = buf_cstr(&name);
		e = dispatch(&ps, st->key, st->value, reterr);
	}
	buf_release(&name);
	buf_release(&home);
	return e;
}

/* 1 when the command line names the server (msmtp's --host). */
static int
settings_have_host(const struct config_params *params)
{
	size_t i;

	for (i = 0; i < params->n_settings; i++) {
		if (strcmp(params->settings[i].key, "host") == 0) {
			return 1;
		}
	}
	return 0;
}

/*
 * msmtp's --host: one account, "cmdline", from msmtp's defaults and the
 * command line only; no file is read.
 */
static MUST_CHECK enum err
load_cmdline_account(struct config *cfg, const struct config_params *params,
	struct errinfo *reterr)
{
	struct account *acc = account_new();
	struct account **a;
	enum err e;

	if (acc == NULL) {
		return nomem(reterr);
	}
	account_use_msmtp_defaults(acc);
	acc->name = strdup("cmdline");
	acc->file = strdup(params->cmdline_source != NULL ?
		params->cmdline_source : "(command line)");
	a = calloc(1, sizeof(*a));
	if (acc->name == NULL || acc->file == NULL || a == NULL) {
		free(a);
		account_free(acc);
		return nomem(reterr);
	}
	a[0] = acc;
	cfg->accounts = a;
	cfg->n_accounts = 1;
	e = apply_settings(cfg, params, acc, reterr);
	return e;
}

static MUST_CHECK enum err
resolve_all(struct config *cfg, const struct config_params *params,
	struct errinfo *reterr)
{
	struct expand_ctx ctx;
	size_t i;

	ctx_init(&ctx, params);
	for (i = 0; i < cfg->n_accounts; i++) {
		if (resolve_account(cfg->accounts[i], &ctx) != ERR_OK) {
			return nomem(reterr);
		}
	}
	return ERR_OK;
}

enum err
config_parse_buffer(const struct config_params *params, const char *name,
	const char *data, size_t len, struct config **ret_cfg,
	struct errinfo *reterr)
{
	static const struct config_params none;
	struct config *cfg = config_new();
	enum err e;

	if (cfg == NULL) {
		return nomem(reterr);
	}
	if (params == NULL) {
		params = &none;
	}
	e = parse_into(cfg, params, name, data, len, 0, NULL, NULL, reterr);
	if (e == ERR_OK) {
		e = resolve_all(cfg, params, reterr);
	}
	if (e != ERR_OK) {
		config_free(cfg);
		return e;
	}
	*ret_cfg = cfg;
	return ERR_OK;
}

/*
 * Read path whole.  Returns ERR_OK, ERR_IO (with errno in reterr; ENOENT
 * is reported as such so the caller can skip missing files) or
 * ERR_CONFIG for a file that is too large.
 */
static MUST_CHECK enum err
read_file(const char *path, struct buf *out, struct stat *ret_st,
	int *ret_errno, struct errinfo *reterr)
{
	char chunk[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	enum err e = ERR_OK;

	*ret_errno = 0;
	if (fd < 0) {
		int saved = errno;

		*ret_errno = saved;
		errinfo_set(reterr, ERR_IO, "cannot read %s: %s", path,
			strerror(saved));
		errinfo_set_errno(reterr, saved);
		return ERR_IO;
	}
	if (fstat(fd, ret_st) != 0) {
		int saved = errno;

		close(fd);
		return errinfo_set(reterr, ERR_IO, "cannot read %s: %s", path,
			strerror(saved));
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			int saved = errno;

			e = errinfo_set(reterr, ERR_IO, "cannot read %s: %s",
				path, strerror(saved));
			errinfo_set_errno(reterr, saved);
			break;
		}
		if (n == 0) {
			break;
		}
		e = buf_append(out, chunk, (size_t)n);
		if (e == ERR_LIMIT) {
			e = errinfo_set(reterr, ERR_CONFIG,
				"%s: file too large (the limit is %d bytes)",
				path, CONFIG_FILE_MAX);
			break;
		}
		if (e != ERR_OK) {
			e = nomem(reterr);
			break;
		}
	}
	util_wipe(chunk, sizeof(chunk));
	close(fd);
	return e;
}

/* is_system for load_file(): the system file, read in system mode. */
#define SYSTEM_MODE_FILE 2

static MUST_CHECK enum err
check_private(const char *path, const struct stat *st, int is_system,
	struct errinfo *reterr)
{
	uid_t me = geteuid();
	int owner_ok = st->st_uid == me || (is_system && st->st_uid == 0);
	mode_t others = S_IRWXG | S_IRWXO;

	/*
	 * In system mode the service reads root's file through its group
	 * (root:oasmtp 0640): readable by the group root chose is private
	 * enough, writable by it or readable by everyone is not.
	 */
	if (is_system == SYSTEM_MODE_FILE && st->st_uid == 0) {
		others = S_IWGRP | S_IXGRP | S_IRWXO;
	}
	if (!owner_ok || (st->st_mode & others) != 0) {
		return errinfo_set(reterr, ERR_CONFIG,
			"%s: contains secrets and is readable by others%s; run: "
			"chmod 600 %s", path,
			owner_ok ? "" : " (and is not owned by you)", path);
	}
	return ERR_OK;
}

/*
 * Load one file into cfg.  must_exist 0: a missing file sets *ret_found 0
 * and is not an error.
 */
static MUST_CHECK enum err
load_file(struct config *cfg, const struct config_params *params,
	const char *path, int is_system, int must_exist, int *ret_found,
	struct errinfo *reterr)
{
	struct buf data;
	struct stat st;
	int secret = 0;
	int err_no = 0;
	enum err e;

	*ret_found = 0;
	buf_init_secret(&data, CONFIG_FILE_MAX);
	e = read_file(path, &data, &st, &err_no, reterr);
	if (e == ERR_IO && !must_exist && err_no == ENOENT) {
		buf_release(&data);
		errinfo_release(reterr);
		return ERR_OK;
	}
	if (e == ERR_IO && is_system && !must_exist && err_no == EACCES) {
		/* a private system file (root's secrets) is not ours to read */
		buf_release(&data);
		errinfo_release(reterr);
		return add_warning(cfg, "%s: not readable, skipped", path)
			== ERR_OK ? ERR_OK : nomem(reterr);
	}
	if (e != ERR_OK) {
		buf_release(&data);
		return e;
	}
	*ret_found = 1;
	e = parse_into(cfg, params, path, data.data, data.len,
		!is_system && is_msmtp_file(path), &st, &secret, reterr);
	buf_release(&data);
	if (e == ERR_OK && secret && S_ISREG(st.st_mode)) {
		e = check_private(path, &st, is_system, reterr);
	}
	return e;
}

static char *
join(const char *a, const char *b)
{
	struct buf p;

	buf_init(&p, JOINED_PATH_MAX);
	if (buf_printf(&p, "%s/%s", a, b) != ERR_OK) {
		buf_release(&p);
		return NULL;
	}
	return buf_take(&p);
}

/* Set string field f of acc to "<prefix>DIR/NAME<suffix>" unless set. */
static MUST_CHECK enum err
default_state_path(struct account *acc, enum account_field f,
	const char *prefix, const char *dir, const char *suffix)
{
	struct buf b;
	enum err e;

	if (acc->set[f]) {
		return ERR_OK;
	}
	buf_init(&b, JOINED_PATH_MAX);
	e = buf_printf(&b, "%s%s/", prefix, dir);
	if (e == ERR_OK && suffix != NULL) {
		e = util_append_file_name(&b, acc->name);
	}
	if (e == ERR_OK) {
		e = buf_append_str(&b, suffix != NULL ? suffix : "queue");
	}
	if (e == ERR_OK) {
		e = account_set_str(acc, f, buf_cstr(&b));
	}
	buf_release(&b);
	return e;
}

/*
 * System mode defaults (config.h): secrets and the queue live in the
 * service's state directory, never under a caller's home.
 */
static MUST_CHECK enum err
apply_system_defaults(struct config *cfg, const char *dir,
	struct errinfo *reterr)
{
	size_t i;
	enum err e = ERR_OK;

	for (i = 0; i < cfg->n_accounts && e == ERR_OK; i++) {
		struct account *acc = cfg->accounts[i];

		acc->system = 1;
		e = default_state_path(acc, ACCF_OAUTH2_TOKEN_STORE, "file:",
			dir, ".refresh");
		if (e == ERR_OK) {
			e = default_state_path(acc, ACCF_OAUTH2_TOKEN_CACHE, "",
				dir, ".token");
		}
		if (e == ERR_OK) {
			e = default_state_path(acc, ACCF_QUEUE_DIR, "", dir,
				NULL);
		}
		if (e == ERR_OK && !acc->set[ACCF_ALIASES] &&
		    access(CONFIG_SYSTEM_ALIASES, R_OK) == 0) {
			e = account_set_str(acc, ACCF_ALIASES,
				CONFIG_SYSTEM_ALIASES);
		}
		if (!acc->set[ACCF_FROM_REWRITE]) {
			acc->from_rewrite = 1;
		}
	}
	return e == ERR_OK ? ERR_OK : nomem(reterr);
}

/* System mode: the one system file, which must exist. */
static MUST_CHECK enum err
load_system_only(struct config *cfg, const struct config_params *params,
	struct errinfo *reterr)
{
	const char *sysdir = params->sysconfdir != NULL ?
		params->sysconfdir : SYSCONFDIR;
	char *path;
	int found = 0;
	enum err e;

	path = params->file != NULL ? strdup(params->file) :
		join(sysdir, "oasmtprc");
	if (path == NULL) {
		return nomem(reterr);
	}
	e = load_file(cfg, params, path, SYSTEM_MODE_FILE, 1, &found,
		reterr);
	if (e == ERR_OK) {
		cfg->system_file = path;
	} else {
		free(path);
	}
	return e;
}

int
config_user_file_exists(const struct config_params *params)
{
	static const char *const rel[4] = {
		"oasmtp/config", ".oasmtprc", ".msmtprc", "msmtp/config",
	};
	static const struct config_params none;
	const char *home, *xdg;
	struct buf p, hb, xb;
	size_t i;
	int found = 0;

	if (params == NULL) {
		params = &none;
	}
	buf_init(&hb, PATH_MAX);
	buf_init(&xb, PATH_MAX);
	home = resolve_home(params, &hb);
	xdg = resolve_xdg(params, home, &xb);
	buf_init(&p, JOINED_PATH_MAX);
	for (i = 0; i < 4 && !found; i++) {
		const char *base = i == 1 || i == 2 ? home : xdg;

		buf_reset(&p);
		if (base == NULL || base[0] != '/' ||
		    buf_printf(&p, "%s/%s", base, rel[i]) != ERR_OK) {
			continue;
		}
		/* present counts, readable or not: it is the user's choice */
		found = access(buf_cstr(&p), F_OK) == 0;
	}
	buf_release(&p);
	buf_release(&hb);
	buf_release(&xb);
	return found;
}

enum err
config_load(const struct config_params *params, struct config **ret_cfg,
	struct errinfo *reterr)
{
	static const struct config_params none;
	struct config *cfg;
	const char *home, *xdg, *sysdir;
	struct buf hb, xb;
	char *cands[4] = { NULL, NULL, NULL, NULL };
	int found = 0;
	size_t i;
	enum err e = ERR_OK;

	if (params == NULL) {
		params = &none;
	}
	buf_init(&hb, PATH_MAX);
	buf_init(&xb, PATH_MAX);
	cfg = config_new();
	if (cfg == NULL) {
		return nomem(reterr);
	}
	if (params->system_state_dir != NULL) {
		e = load_system_only(cfg, params, reterr);
		goto out;
	}
	if (settings_have_host(params)) {
		e = load_cmdline_account(cfg, params, reterr);
		goto resolve;
	}
	if (params->file != NULL) {
		e = load_file(cfg, params, params->file, 0, 1, &found, reterr);
		if (e == ERR_OK) {
			cfg->user_file = strdup(params->file);
			e = cfg->user_file != NULL ? ERR_OK : nomem(reterr);
		}
		goto out;
	}

	home = resolve_home(params, &hb);
	xdg = resolve_xdg(params, home, &xb);
	sysdir = params->sysconfdir != NULL ? params->sysconfdir : SYSCONFDIR;

	if (*sysdir != '\0') {
		char *sys = join(sysdir, "oasmtprc");

		if (sys == NULL) {
			e = nomem(reterr);
			goto out;
		}
		e = load_file(cfg, params, sys, 1, 0, &found, reterr);
		if (e == ERR_OK && found) {
			cfg->system_file = sys;
		} else {
			free(sys);
		}
		if (e != ERR_OK) {
			goto out;
		}
	}

	if (xdg != NULL) {
		cands[0] = join(xdg, "oasmtp/config");
		cands[3] = join(xdg, "msmtp/config");
	}
	if (home != NULL) {
		cands[1] = join(home, ".oasmtprc");
		cands[2] = join(home, ".msmtprc");
	}
	for (i = 0; i < 4; i++) {
		if (cands[i] == NULL) {
			continue;
		}
		e = load_file(cfg, params, cands[i], 0, 0, &found, reterr);
		if (e != ERR_OK) {
			goto out;
		}
		if (found) {
			cfg->user_file = cands[i];
			cands[i] = NULL;
			break;
		}
	}
	if (cfg->system_file == NULL && cfg->user_file == NULL &&
	    !params->allow_no_file) {
		e = errinfo_set(reterr, ERR_CONFIG,
			"no configuration file found; create %s%s (see "
			"msmtprc.example; an existing ~/.msmtprc also works)",
			xdg != NULL ? xdg : "~/.config",
			"/oasmtp/config");
	}
out:
	for (i = 0; i < cfg->n_accounts && e == ERR_OK; i++) {
		e = apply_settings(cfg, params, cfg->accounts[i], reterr);
	}
resolve:
	for (i = 0; i < 4; i++) {
		free(cands[i]);
	}
	buf_release(&hb);
	buf_release(&xb);
	if (e == ERR_OK) {
		e = resolve_all(cfg, params, reterr);
	}
	if (e == ERR_OK && params->system_state_dir != NULL) {
		e = apply_system_defaults(cfg, params->system_state_dir,
			reterr);
	}
	if (e != ERR_OK) {
		config_free(cfg);
		return e;
	}
	*ret_cfg = cfg;
	return ERR_OK;
}

/* ---------------------------------------------------------------- */
/* selection */

static const struct account *
find_account(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->n_accounts; i++) {
		if (strcmp(cfg->accounts[i]->name, name) == 0) {
			return cfg->accounts[i];
		}
	}
	return NULL;
}

static int
from_matches(const char *pattern, const char *addr)
{
	char *p = strdup(pattern);
	char *a = strdup(addr);
	int r = 0;

	if (p != NULL && a != NULL) {
		ascii_lower(p);
		ascii_lower(a);
		r = fnmatch(p, a, 0) == 0;
	}
	free(p);
	free(a);
	return r;
}

static MUST_CHECK enum err
list_accounts(const struct config *cfg, struct buf *b)
{
	enum err e = ERR_OK;
	size_t i;

	for (i = 0; i < cfg->n_accounts && e == ERR_OK; i++) {
		e = buf_printf(b, "%s%s", i ? ", " : "",
			cfg->accounts[i]->name);
	}
	if (cfg->n_accounts == 0) {
		e = buf_append_str(b, "(none)");
	}
	return e;
}

enum err
config_check_account(const struct account *acc, struct errinfo *reterr)
{
	const char *where = acc->file != NULL ? acc->file : "(config)";

	if (acc->host == NULL && (acc->transport == VIA_SMTP ||
	    acc->transport == VIA_AUTO)) {
		return errinfo_set(reterr, ERR_CONFIG,
			"%s:%u: account '%s' has no host; add a line "
			"'host smtp.example.com' (or 'oauth2_provider NAME' for "
			"a provider with a preset, see oasmtprc(5))", where,
			acc->line, acc->name);
	}
	if ((acc->tls_cert_file == NULL) != (acc->tls_key_file == NULL)) {
		return errinfo_set(reterr, ERR_CONFIG,
			"%s:%u: account '%s': tls_cert_file and tls_key_file "
			"must be given together", where, acc->line, acc->name);
	}
	if ((acc->auth == AUTH_XOAUTH2 || acc->auth == AUTH_OAUTHBEARER)
		&& acc->user == NULL) {
		return errinfo_set(reterr, ERR_CONFIG,
			"%s:%u: account '%s': auth %s needs a 'user' (the mail "
			"address of the account)", where, acc->line, acc->name,
			account_auth_name(acc->auth));
	}
	if ((acc->auth == AUTH_PLAIN || acc->auth == AUTH_LOGIN
		|| acc->auth == AUTH_CRAM_MD5 || acc->auth == AUTH_SCRAM_SHA_1
		|| acc->auth == AUTH_SCRAM_SHA_256) && acc->user == NULL) {
		return errinfo_set(reterr, ERR_CONFIG,
			"%s:%u: account '%s': auth %s needs a 'user'", where,
			acc->line, acc->name, account_auth_name(acc->auth));
	}
	if (acc->oauth2_provider == OAUTH2_CUSTOM
		&& acc->oauth2_token_endpoint == NULL) {
		return errinfo_set(reterr, ERR_CONFIG,
			"%s:%u: account '%s': oauth2_provider custom needs "
			"oauth2_token_endpoint", where, acc->line, acc->name);
	}
	if (api_check_account(acc, reterr) != ERR_OK) {
		return ERR_CONFIG;
	}
	if (acc->oauth2_client_secret != NULL
		&& acc->oauth2_client_secret_eval != NULL) {
		return errinfo_set(reterr, ERR_CONFIG,
			"%s:%u: account '%s': give oauth2_client_secret or "
			"oauth2_client_secret_eval, not both", where, acc->line,
			acc->name);
	}
	if (acc->oauth2_token_store_write != NULL &&
	    (acc->oauth2_token_store == NULL ||
		strncmp(acc->oauth2_token_store, "command:", 8) != 0)) {
		return errinfo_set(reterr, ERR_CONFIG,
			"%s:%u: account '%s': oauth2_token_store_write goes with "
			"oauth2_token_store command:READ_CMD only", where,
			acc->line, acc->name);
	}
	return ERR_OK;
}

const struct account *
config_match(const struct config *cfg, const char *envelope_from)
{
	size_t i;

	if (envelope_from != NULL && *envelope_from != '\0') {
		for (i = 0; i < cfg->n_accounts; i++) {
			const struct account *a = cfg->accounts[i];

			if (a->from != NULL && from_matches(a->from,
				envelope_from)) {
				return a;
			}
		}
	}
	return find_account(cfg, "default");
}

enum err
config_select(const struct config *cfg, const char *account_name,
	const char *envelope_from, const struct account **ret,
	struct errinfo *reterr)
{
	const struct account *acc = NULL;
	struct buf names;
	enum err e;

	if (account_name != NULL) {
		acc = find_account(cfg, account_name);
		if (acc == NULL) {
			buf_init(&names, ACCOUNT_NAMES_MAX);
			buf_cut_ok(list_accounts(cfg, &names));
			e = errinfo_set(reterr, ERR_CONFIG,
				"no account named '%s'; available accounts: %s",
				account_name, buf_cstr(&names));
			buf_release(&names);
			return e;
		}
	}
	if (acc == NULL) {
		acc = config_match(cfg, envelope_from);
	}
	if (acc == NULL) {
		buf_init(&names, ACCOUNT_NAMES_MAX);
		buf_cut_ok(list_accounts(cfg, &names));
		e = errinfo_set(reterr, ERR_CONFIG,
			"no account given and none named 'default'; use -a with "
			"one of: %s", buf_cstr(&names));
		buf_release(&names);
		return e;
	}
	e = config_check_account(acc, reterr);
	if (e != ERR_OK) {
		return e;
	}
	*ret = acc;
	return ERR_OK;
}

/* ---------------------------------------------------------------- */
/* --pretend */

static const char *
name_of(const struct choice *c, long v)
{
	for (; c->name != NULL; c++) {
		if (c->value == v) {
			return c->name;
		}
	}
	return "?";
}

static MUST_CHECK enum err
put_str(struct buf *out, const char *key, const char *v)
{
	return buf_printf(out, "%s = %s\n", key, v != NULL ? v : "(not set)");
}

static MUST_CHECK enum err
put_bool(struct buf *out, const char *key, int v)
{
	return buf_printf(out, "%s = %s\n", key, v ? "on" : "off");
}

/* " (from the oauth2_provider NAME preset)" when field f came from it. */
static const char *
preset_note(const struct account *a, enum account_field f, char *note,
	size_t size)
{
	note[0] = '\0';
	if (a->set[f] == ACC_SET_CMDLINE) {
		snprintf(note, size, " (from the command line)");
	} else if (a->set[f] == ACC_SET_PRESET) {
		snprintf(note, size, " (from the oauth2_provider %s preset)",
			name_of(provider_choices, a->oauth2_provider));
	}
	return note;
}

enum err
config_describe_server(const struct account *a, struct buf *out)
{
	enum err e = ERR_OK;

	err_first(&e, buf_printf(out, "%s port %d, %s", a->host != NULL ? a->host :
		"(no host)", a->port, !a->tls ? "no TLS" :
		a->tls_starttls ? "STARTTLS" : "implicit TLS"));
	if (a->set[ACCF_HOST] == ACC_SET_PRESET) {
		err_first(&e, buf_printf(out, " (%sfrom the oauth2_provider "
			"%s preset)", a->set[ACCF_PORT] == ACC_SET_PRESET ? "" :
			"host ", name_of(provider_choices, a->oauth2_provider)));
	}
	if (a->proxy_host != NULL) {
		err_first(&e, buf_printf(out, ", through the SOCKS5 proxy %s "
			"port %d", a->proxy_host, a->proxy_port != 0 ?
			a->proxy_port : 1080));
	}
	return e;
}

enum err
config_print_account(const struct account *a, struct buf *out)
{
	enum err e = ERR_OK;
	static const struct choice hdr[] = {
		{ "auto", HDR_AUTO }, { "on", HDR_ON }, { "off", HDR_OFF },
		{ "undisclosed_recipients", HDR_UNDISCLOSED }, { NULL, 0 },
	};
	char note[128];

	err_first(&e, buf_printf(out, "account = %s\n", a->name != NULL ? a->name : ""));
	if (a->line == 0 && a->file != NULL && a->file[0] == '(') {
		err_first(&e, buf_printf(out, "config file = %s\n", a->file));
	} else {
		err_first(&e, buf_printf(out, "config file = %s:%u\n",
			a->file != NULL ? a->file : "", a->line));
	}
	err_first(&e, buf_printf(out, "defaults = %s\n", !a->msmtp_defaults
		? "oasmtp (tls on, STARTTLS, port 587, auth on with a user)"
		: a->line == 0 ? "msmtp (--host: no file is read; tls off, "
		"port 25, auth off unless set)"
		: "msmtp (the file is at msmtp's place: tls off, port 25, "
		"auth off unless set)"));
	err_first(&e, buf_printf(out, "host = %s%s\n", a->host != NULL ? a->host :
		"(not set)", preset_note(a, ACCF_HOST, note, sizeof(note))));
	err_first(&e, buf_printf(out, "port = %d%s\n", a->port,
		preset_note(a, ACCF_PORT, note, sizeof(note))));
	err_first(&e, put_str(out, "source_ip", a->source_ip));
	err_first(&e, put_str(out, "proxy_host", a->proxy_host));
	err_first(&e, buf_printf(out, "proxy_port = %d\n",
		a->proxy_port != 0 ? a->proxy_port : 1080));
	err_first(&e, put_str(out, "domain", a->domain));
	if (a->timeout == 0) {
		err_first(&e, buf_printf(out, "timeout = off%s\n",
			preset_note(a, ACCF_TIMEOUT, note, sizeof(note))));
	} else {
		err_first(&e, buf_printf(out, "timeout = %d%s\n", a->timeout,
			preset_note(a, ACCF_TIMEOUT, note, sizeof(note))));
	}
	err_first(&e, buf_printf(out, "auth = %s%s\n",
		account_auth_name(a->auth),
		preset_note(a, ACCF_AUTH, note, sizeof(note))));
	err_first(&e, buf_printf(out, "user = %s%s\n", a->user != NULL ?
		a->user : "(not set)",
		preset_note(a, ACCF_USER, note, sizeof(note))));
	err_first(&e, put_str(out, "password", a->password != NULL ? "*" : NULL));
	err_first(&e, put_str(out, "passwordeval", a->passwordeval));
	err_first(&e, buf_printf(out, "tls = %s%s\n", a->tls ? "on" : "off",
		preset_note(a, ACCF_TLS, note, sizeof(note))));
	err_first(&e, buf_printf(out, "tls_starttls = %s%s\n", a->tls_starttls ? "on" : "off",
		preset_note(a, ACCF_TLS_STARTTLS, note, sizeof(note))));
	err_first(&e, put_str(out, "tls_trust_file",
		a->tls_trust_file != NULL ? a->tls_trust_file : "system"));
	err_first(&e, put_str(out, "tls_crl_file", a->tls_crl_file));
	err_first(&e, put_str(out, "tls_fingerprint", a->tls_fingerprint));
	err_first(&e, put_str(out, "tls_cert_file", a->tls_cert_file));
	err_first(&e, put_str(out, "tls_key_file", a->tls_key_file));
	err_first(&e, put_bool(out, "tls_certcheck", a->tls_certcheck));
	err_first(&e, put_str(out, "tls_host_override", a->tls_host_override));
	err_first(&e, put_str(out, "from", a->from));
	err_first(&e, put_str(out, "from_full_name", a->from_full_name));
	err_first(&e, put_bool(out, "allow_from_override", a->allow_from_override));
	err_first(&e, put_str(out, "dsn_notify", a->dsn_notify != NULL ? a->dsn_notify
		: "off"));
	err_first(&e, put_str(out, "dsn_return", a->dsn_return != NULL ? a->dsn_return
		: "off"));
	err_first(&e, put_str(out, "set_from_header", name_of(hdr, a->set_from_header)));
	err_first(&e, put_str(out, "set_date_header", name_of(hdr, a->set_date_header)));
	err_first(&e, put_str(out, "set_msgid_header", name_of(hdr, a->set_msgid_header)));
	err_first(&e, put_str(out, "set_to_header", name_of(hdr, a->set_to_header)));
	err_first(&e, put_bool(out, "remove_bcc_headers", a->remove_bcc_headers));
	err_first(&e, put_bool(out, "from_rewrite", a->from_rewrite));
	err_first(&e, put_str(out, "from_rewrite_header", name_of(from_original_choices,
		a->from_rewrite_header)));
	err_first(&e, put_str(out, "aliases", a->aliases));
	err_first(&e, put_str(out, "system_from_override", a->system_from_override));
	err_first(&e, buf_printf(out, "system_rejected_max_age = %ld\n",
		a->system_rejected_max_age));
	err_first(&e, buf_printf(out, "system_rejected_max_count = %ld\n",
		a->system_rejected_max_count));
	err_first(&e, buf_printf(out, "system_rejected_max_size = %ld\n",
		a->system_rejected_max_size));
	err_first(&e, put_str(out, "logfile", a->logfile));
	err_first(&e, put_str(out, "logfile_time_format", a->logfile_time_format));
	err_first(&e, put_str(out, "syslog", a->syslog != NULL ? a->syslog : "off"));
	err_first(&e, put_str(out, "oauth2_provider",
		name_of(provider_choices, a->oauth2_provider)));
	err_first(&e, put_str(out, "oauth2_client_id", a->oauth2_client_id));
	err_first(&e, put_str(out, "oauth2_client_secret",
		a->oauth2_client_secret != NULL ? "*" : NULL));
	err_first(&e, put_str(out, "oauth2_client_secret_eval", a->oauth2_client_secret_eval));
	err_first(&e, put_str(out, "oauth2_tenant", a->oauth2_tenant));
	err_first(&e, put_str(out, "oauth2_auth_endpoint", a->oauth2_auth_endpoint));
	err_first(&e, put_str(out, "oauth2_token_endpoint", a->oauth2_token_endpoint));
	err_first(&e, put_str(out, "oauth2_device_endpoint", a->oauth2_device_endpoint));
	err_first(&e, put_str(out, "oauth2_scope", a->oauth2_scope));
	err_first(&e, put_str(out, "oauth2_revocation_endpoint",
		a->oauth2_revocation_endpoint));
	err_first(&e, put_str(out, "oauth2_token_store", a->oauth2_token_store));
	err_first(&e, put_str(out, "oauth2_token_store_write",
		a->oauth2_token_store_write));
	err_first(&e, put_str(out, "oauth2_token_cache", a->oauth2_token_cache != NULL
		? a->oauth2_token_cache : "(default)"));
	err_first(&e, put_str(out, "oauth2_ca_file", a->oauth2_ca_file));
	err_first(&e, buf_printf(out, "oauth2_refresh_margin = %ld\n",
		a->oauth2_refresh_margin));
	err_first(&e, put_str(out, "notify_command", a->notify_command));
	err_first(&e, put_str(out, "transport",
		name_of(transport_choices, a->transport)));
	err_first(&e, put_str(out, "api_url", a->api_url));
	err_first(&e, put_str(out, "queue", name_of(queue_choices, a->queue)));
	err_first(&e, put_str(out, "queue_dir", a->queue_dir));
	err_first(&e, buf_printf(out, "queue_max_age = %ld\n", a->queue_max_age));
	err_first(&e, put_str(out, "confine", a->confine ? "on" : "off"));
	if (a->session_persist > 0) {
		err_first(&e, buf_printf(out, "session_persist = %ld\n",
			a->session_persist));
	} else {
		err_first(&e, put_str(out, "session_persist", "off"));
	}
	err_first(&e, buf_printf(out, "session_max_age = %ld\n",
		a->session_max_age));
	err_first(&e, buf_printf(out, "session_max_messages = %ld\n",
		a->session_max_messages));
	err_first(&e, put_str(out, "message_id_fix", name_of(auto_off_choices,
		a->message_id_fix)));
	return e;
}
