/*
 * cli.c - sendmail command line parser.  See cli.h for the accepted syntax.
 *
 * getopt(3) is not used: its state is global (optind), GNU permutation is
 * not POSIX, and it cannot express sendmail's mix of glued-only values
 * (-q30m, -d0.1) and glued-or-separate ones (-f addr, -fADDR).  The parser
 * below walks argv once, left to right.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* RFC 3461 section 4.4: ENVID is at most 100 characters. */
#define ENVID_MAX 100

enum longopt_id {
	LO_ACCOUNT,
	LO_CHECK,
	LO_DEBUG,
	LO_DSN_NOTIFY,
	LO_DSN_RETURN,
	LO_FILE,
	LO_FROM,
	LO_HELP,
	LO_LOGFILE,
	LO_PRETEND,
	LO_QUEUE_DROP,
	LO_QUEUE_RETRY,
	LO_READ_ENVELOPE_FROM,
	LO_READ_RECIPIENTS,
	LO_SERVERINFO,
	LO_SETTING,		/* an msmtp configuration option: see key */
	LO_SYSTEM,
	LO_UNSUPPORTED,		/* an msmtp mode oasmtp does not have */
	LO_VERSION,
};

enum arg_kind {
	ARG_NONE,
	ARG_REQUIRED,
	ARG_OPTIONAL,		/* only as --name=value */
};

/*
 * key: for LO_SETTING, the configuration key the option sets (msmtp's
 * command-line configuration options, oasmtp(1)); for LO_UNSUPPORTED, why
 * the option is refused.  dflt: the value of an ARG_OPTIONAL setting given
 * without one ("" means on, as an empty argument does in the file).
 */
struct longopt {
	const char *name;
	enum arg_kind arg;
	enum longopt_id id;
	const char *key;
	const char *dflt;
};

#define SETTING(name, arg, key) { name, arg, LO_SETTING, key, "" }

/* Sorted by name. */
static const struct longopt longopts[] = {
	{ "account", ARG_REQUIRED, LO_ACCOUNT, NULL, NULL },
	SETTING("add-missing-date-header", ARG_OPTIONAL,
		"add_missing_date_header"),
	SETTING("add-missing-from-header", ARG_OPTIONAL,
		"add_missing_from_header"),
	SETTING("aliases", ARG_REQUIRED, "aliases"),
	SETTING("auth", ARG_OPTIONAL, "auth"),
	SETTING("auto-from", ARG_OPTIONAL, "auto_from"),
	{ "check", ARG_OPTIONAL, LO_CHECK, NULL, NULL },
	{ "configure", ARG_REQUIRED, LO_UNSUPPORTED,
		"generating a configuration from DNS SRV records is not "
		"supported; see msmtprc.example and oasmtprc(5)", NULL },
	SETTING("connect-timeout", ARG_REQUIRED, "timeout"),
	{ "debug", ARG_OPTIONAL, LO_DEBUG, NULL, NULL },
	SETTING("domain", ARG_REQUIRED, "domain"),
	{ "dsn-notify", ARG_REQUIRED, LO_DSN_NOTIFY, NULL, NULL },
	{ "dsn-return", ARG_REQUIRED, LO_DSN_RETURN, NULL, NULL },
	{ "file", ARG_REQUIRED, LO_FILE, NULL, NULL },
	{ "from", ARG_REQUIRED, LO_FROM, NULL, NULL },
	{ "help", ARG_NONE, LO_HELP, NULL, NULL },
	SETTING("host", ARG_REQUIRED, "host"),
	SETTING("keepbcc", ARG_OPTIONAL, "keepbcc"),
	{ "logfile", ARG_REQUIRED, LO_LOGFILE, NULL, NULL },
	SETTING("logfile-time-format", ARG_REQUIRED, "logfile_time_format"),
	SETTING("maildomain", ARG_REQUIRED, "maildomain"),
	SETTING("passwordeval", ARG_REQUIRED, "passwordeval"),
	SETTING("port", ARG_REQUIRED, "port"),
	{ "pretend", ARG_NONE, LO_PRETEND, NULL, NULL },
	SETTING("protocol", ARG_REQUIRED, "protocol"),
	SETTING("proxy-host", ARG_REQUIRED, "proxy_host"),
	SETTING("proxy-port", ARG_REQUIRED, "proxy_port"),
	{ "queue-drop", ARG_REQUIRED, LO_QUEUE_DROP, NULL, NULL },
	{ "queue-retry", ARG_REQUIRED, LO_QUEUE_RETRY, NULL, NULL },
	{ "read-envelope-from", ARG_NONE, LO_READ_ENVELOPE_FROM, NULL, NULL },
	{ "read-recipients", ARG_NONE, LO_READ_RECIPIENTS, NULL, NULL },
	SETTING("remove-bcc-headers", ARG_OPTIONAL, "remove_bcc_headers"),
	{ "rmqs", ARG_REQUIRED, LO_UNSUPPORTED,
		"remote message queue starting (ETRN) is not supported", NULL },
	{ "serverinfo", ARG_NONE, LO_SERVERINFO, NULL, NULL },
	{ "set-date-header", ARG_OPTIONAL, LO_SETTING, "set_date_header",
		"auto" },
	{ "set-from-header", ARG_OPTIONAL, LO_SETTING, "set_from_header",
		"auto" },
	{ "set-msgid-header", ARG_OPTIONAL, LO_SETTING, "set_msgid_header",
		"auto" },
	{ "set-to-header", ARG_OPTIONAL, LO_SETTING, "set_to_header", "on" },
	SETTING("socket", ARG_REQUIRED, "socket"),
	SETTING("source-ip", ARG_REQUIRED, "source_ip"),
	SETTING("syslog", ARG_OPTIONAL, "syslog"),
	{ "system", ARG_NONE, LO_SYSTEM, NULL, NULL },
	SETTING("timeout", ARG_REQUIRED, "timeout"),
	SETTING("tls", ARG_OPTIONAL, "tls"),
	SETTING("tls-cert-file", ARG_REQUIRED, "tls_cert_file"),
	SETTING("tls-certcheck", ARG_OPTIONAL, "tls_certcheck"),
	SETTING("tls-crl-file", ARG_REQUIRED, "tls_crl_file"),
	SETTING("tls-fingerprint", ARG_REQUIRED, "tls_fingerprint"),
	SETTING("tls-force-sslv3", ARG_OPTIONAL, "tls_force_sslv3"),
	SETTING("tls-host-override", ARG_REQUIRED, "tls_host_override"),
	SETTING("tls-key-file", ARG_REQUIRED, "tls_key_file"),
	SETTING("tls-min-dh-prime-bits", ARG_REQUIRED,
		"tls_min_dh_prime_bits"),
	SETTING("tls-priorities", ARG_REQUIRED, "tls_priorities"),
	SETTING("tls-starttls", ARG_OPTIONAL, "tls_starttls"),
	SETTING("tls-trust-file", ARG_REQUIRED, "tls_trust_file"),
	SETTING("undisclosed-recipients", ARG_OPTIONAL,
		"undisclosed_recipients"),
	SETTING("user", ARG_REQUIRED, "user"),
	{ "version", ARG_NONE, LO_VERSION, NULL, NULL },
};

struct parser {
	int argc;
	char **argv;
	int next;		/* index of the next unread argument */
	struct cli_opts o;
	const char *mode_opt;	/* option that set o.mode explicitly, or NULL */
	const char *from_opt;	/* spelling of the last -f/-r/--from */
	const char *check_account;	/* --check=NAME */
	int want_help;
	int want_version;
	struct errinfo *reterr;
};

static const char *const mode_names[CLI_MODE_MAX] = {
	[CLI_MODE_SEND] = "send",
	[CLI_MODE_LIST_QUEUE] = "list-queue",
	[CLI_MODE_FLUSH_QUEUE] = "flush-queue",
	[CLI_MODE_NEWALIASES] = "newaliases",
	[CLI_MODE_VERSION] = "version",
	[CLI_MODE_HELP] = "help",
	[CLI_MODE_SERVERINFO] = "serverinfo",
	[CLI_MODE_QUEUE_DROP] = "queue-drop",
	[CLI_MODE_QUEUE_RETRY] = "queue-retry",
	[CLI_MODE_CHECK] = "check",
};

const char *
cli_mode_name(enum cli_mode mode)
{
	if ((int)mode < 0 || mode >= CLI_MODE_MAX) {
		return "unknown";
	}
	return mode_names[mode];
}

const char *
cli_dsn_return_text(enum cli_dsn_return r)
{
	switch (r) {
	case CLI_DSN_RET_HDRS:
		return "HDRS";
	case CLI_DSN_RET_FULL:
		return "FULL";
	default:
		return NULL;
	}
}

static MUST_CHECK enum err usage(struct parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static MUST_CHECK enum err
usage(struct parser *p, const char *fmt, ...)
{
	va_list ap;
	enum err e;

	va_start(ap, fmt);
	e = errinfo_vset(p->reterr, ERR_USAGE, fmt, ap);
	va_end(ap);
	return e;
}

static const char *
basename_of(const char *path)
{
	const char *slash;

	if (path == NULL || path[0] == '\0') {
		return "oasmtp";
	}
	slash = strrchr(path, '/');
	return slash != NULL ? slash + 1 : path;
}

static MUST_CHECK enum err
set_mode(struct parser *p, enum cli_mode mode, const char *opt)
{
	if (p->mode_opt != NULL && p->o.mode != mode) {
		return errinfo_set(p->reterr, ERR_USAGE,
			"'%s' cannot be combined with '%s'", opt, p->mode_opt);
	}
	p->o.mode = mode;
	p->mode_opt = opt;
	return ERR_OK;
}

static MUST_CHECK enum err
set_from(struct parser *p, const char *value, const char *opt)
{
	p->o.has_envelope_from = 1;
	p->from_opt = opt;
	if (strcmp(value, "<>") == 0) {
		p->o.envelope_from = "";
	} else {
		p->o.envelope_from = value;
	}
	return ERR_OK;
}

/* "never" | "off" | comma list of success, failure, delay (any case). */
static MUST_CHECK enum err
set_dsn_notify(struct parser *p, const char *value)
{
	static const struct {
		const char *word;
		unsigned int bit;
	} words[] = {
		{ "success", CLI_DSN_NOTIFY_SUCCESS },
		{ "failure", CLI_DSN_NOTIFY_FAILURE },
		{ "delay", CLI_DSN_NOTIFY_DELAY },
		{ "never", CLI_DSN_NOTIFY_NEVER },
	};
	unsigned int flags = 0;
	const char *s = value;
	size_t i, n;

	if (util_strcasecmp(value, "off") == 0) {
		p->o.dsn_notify = NULL;
		p->o.dsn_notify_flags = 0;
		return ERR_OK;
	}
	for (;;) {
		while (*s == ' ') {
			s++;
		}
		n = strcspn(s, ", ");
		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
			if (strlen(words[i].word) == n &&
			    util_strncasecmp(s, words[i].word, n) == 0) {
				break;
			}
		}
		if (n == 0 || i == sizeof(words) / sizeof(words[0]) ||
		    (flags & words[i].bit) != 0) {
			goto bad;
		}
		flags |= words[i].bit;
		s += n;
		while (*s == ' ') {
			s++;
		}
		if (*s == '\0') {
			break;
		}
		if (*s != ',') {
			goto bad;
		}
		s++;
	}
	if ((flags & CLI_DSN_NOTIFY_NEVER) != 0 &&
	    flags != CLI_DSN_NOTIFY_NEVER) {
		goto bad;
	}
	p->o.dsn_notify = value;
	p->o.dsn_notify_flags = flags;
	return ERR_OK;
bad:
	return usage(p, "invalid -N value '%s': use 'never' or a comma "
		"list of success, failure, delay", value);
}

static MUST_CHECK enum err
set_dsn_return(struct parser *p, const char *value)
{
	if (util_strcasecmp(value, "hdrs") == 0 ||
	    util_strcasecmp(value, "headers") == 0) {
		p->o.dsn_return = CLI_DSN_RET_HDRS;
	} else if (util_strcasecmp(value, "full") == 0) {
		p->o.dsn_return = CLI_DSN_RET_FULL;
	} else if (util_strcasecmp(value, "off") == 0) {
		p->o.dsn_return = CLI_DSN_RET_UNSET;
	} else {
		return usage(p, "invalid -R value '%s': use 'hdrs' or 'full'",
			value);
	}
	return ERR_OK;
}

static MUST_CHECK enum err
set_dsn_envid(struct parser *p, const char *value)
{
	size_t i, n = strlen(value);

	if (n == 0 || n > ENVID_MAX) {
		return usage(p, "invalid -V value '%s': an envelope id has "
			"1 to 100 characters", value);
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c <= ' ' || c >= 0x7f) {
			return usage(p, "invalid -V value '%s': only printable "
				"ASCII without spaces is allowed", value);
		}
	}
	p->o.dsn_envid = value;
	return ERR_OK;
}

/* sendmail queue interval: one or more <digits>[smhdw], e.g. "1h30m". */
static int
valid_interval(const char *s)
{
	if (*s == '\0') {
		return 0;
	}
	while (*s != '\0') {
		if (*s < '0' || *s > '9') {
			return 0;
		}
		while (*s >= '0' && *s <= '9') {
			s++;
		}
		if (*s != '\0' && strchr("smhdw", *s) != NULL) {
			s++;
		}
	}
	return 1;
}

/*
 * -q with its glued rest: "" flush all, "<interval>", "I<id>", "R<site>",
 * "S<sender>".  A filter letter with nothing glued takes the next argument.
 */
static MUST_CHECK enum err
set_queue(struct parser *p, const char *rest)
{
	enum cli_queue_filter filter;
	char letter;
	enum err e;

	e = set_mode(p, CLI_MODE_FLUSH_QUEUE, "-q");
	if (e != ERR_OK) {
		return e;
	}
	switch (rest[0]) {
	case '\0':
		return ERR_OK;
	case 'I':
		filter = CLI_QUEUE_ID;
		break;
	case 'R':
		filter = CLI_QUEUE_RECIPIENT;
		break;
	case 'S':
		filter = CLI_QUEUE_SENDER;
		break;
	case '!':
		return usage(p, "negated queue filters ('-q%s') are not "
			"supported", rest);
	case 'Q':
	case 'L':
		return usage(p, "quarantined and lost queues ('-q%s') are not "
			"supported", rest);
	default:
		if (!valid_interval(rest)) {
			return usage(p, "invalid queue interval '-q%s'", rest);
		}
		p->o.queue_interval = rest;
		return ERR_OK;
	}
	if (p->o.queue_filter != CLI_QUEUE_ALL) {
		return usage(p, "only one queue filter may be given ('-q%s')",
			rest);
	}
	letter = rest[0];
	rest++;
	if (rest[0] == '\0') {
		if (p->next >= p->argc) {
			return usage(p, "option '-q%c' requires an argument",
				letter);
		}
		rest = p->argv[p->next++];
	}
	if (rest[0] == '\0') {
		return usage(p, "option '-q%c' requires a non-empty argument",
			letter);
	}
	p->o.queue_filter = filter;
	p->o.queue_filter_value = rest;
	return ERR_OK;
}

static MUST_CHECK enum err
set_b_mode(struct parser *p, const char *value)
{
	if (strcmp(value, "m") == 0) {
		return set_mode(p, CLI_MODE_SEND, "-bm");
	}
	if (strcmp(value, "p") == 0) {
		return set_mode(p, CLI_MODE_LIST_QUEUE, "-bp");
	}
	if (strcmp(value, "i") == 0) {
		return set_mode(p, CLI_MODE_NEWALIASES, "-bi");
	}
	if (strcmp(value, "s") == 0) {
		return usage(p, "-b%s (SMTP on standard input) is not supported",
			value);
	}
	if (strcmp(value, "d") == 0 || strcmp(value, "D") == 0) {
		return usage(p, "-b%s (run as a daemon) is not supported",
			value);
	}
	if (strcmp(value, "v") == 0) {
		return usage(p, "-b%s (verify addresses) is not supported",
			value);
	}
	if (strcmp(value, "t") == 0) {
		return usage(p, "-b%s (address test mode) is not supported",
			value);
	}
	return usage(p, "-b%s is not a supported mode; oasmtp knows -bm, "
		"-bp and -bi", value);
}

/*
 * Apply one option that carries a value.  opt is the option's spelling for
 * messages ("-f", "--from"); c is its short letter (long options map onto
 * their short equivalent).
 */
static MUST_CHECK enum err
apply_valued(struct parser *p, char c, const char *opt, const char *value)
{
	switch (c) {
	case 'C':
		p->o.config_file = value;
		return ERR_OK;
	case 'F':
		p->o.full_name = value;
		return ERR_OK;
	case 'N':
		return set_dsn_notify(p, value);
	case 'R':
		return set_dsn_return(p, value);
	case 'V':
		return set_dsn_envid(p, value);
	case 'X':
		p->o.logfile = value;
		return ERR_OK;
	case 'a':
		p->o.account = value;
		return ERR_OK;
	case 'b':
		return set_b_mode(p, value);
	case 'f':
	case 'r':
		return set_from(p, value, opt);
	case 'o':
		/* -oi is the one -o option with a meaning for us. */
		if (strcmp(value, "i") == 0) {
			p->o.ignore_dots = 1;
		}
		/* -oQDIR (queue directory): kept so oasmtp-drop can refuse it */
		if (value[0] == 'Q') {
			p->o.queue_dir_option = value;
		}
		return ERR_OK;
	case 'O':
		if (util_strncasecmp(value, "QueueDirectory", 14) == 0) {
			p->o.queue_dir_option = value;
		}
		return ERR_OK;
	/*
	 * Accepted and ignored for sendmail compatibility, value included:
	 * -A (submission mode), -B (body type), -e (error mode), -h (hop
	 * count), -L (syslog tag), -p (protocol).
	 */
	case 'A':
	case 'B':
	case 'L':
	case 'e':
	case 'h':
	case 'p':
		return ERR_OK;
	default:
		return errinfo_set(p->reterr, ERR_INTERNAL,
			"unhandled option '%s'", opt);
	}
}

/* Short options that take a value, glued or as the next argument. */
static int
takes_value(char c)
{
	return c != '\0' && strchr("ABCFLNORVXabefhopr", c) != NULL;
}

/* Spelling of a short option for messages; static storage per letter. */
static const char *
short_name(char c)
{
	static const char names[] =
		"-A\0-B\0-C\0-F\0-L\0-N\0-O\0-R\0-V\0-X\0"
		"-a\0-b\0-e\0-f\0-h\0-o\0-p\0-r\0";
	const char *s;

	for (s = names; *s != '\0'; s += 3) {
		if (s[1] == c) {
			return s;
		}
	}
	return "-?";
}

static MUST_CHECK enum err
parse_short(struct parser *p, const char *arg)
{
	const char *s = arg + 1;
	const char *value;
	enum err e;

	for (; *s != '\0'; s++) {
		char c = *s;

		if (takes_value(c)) {
			value = s + 1;
			if (*value == '\0') {
				if (p->next >= p->argc) {
					return errinfo_set(p->reterr, ERR_USAGE,
						"option '-%c' requires an "
						"argument", c);
				}
				value = p->argv[p->next++];
			}
			return apply_valued(p, c, short_name(c), value);
		}
		switch (c) {
		case 'G':
		case 'U':
		case 'm':
		case 'n':
			/* ignored: gateway, initial submission, me too,
			 * no aliasing */
			break;
		case 'I':
			e = set_mode(p, CLI_MODE_NEWALIASES, "-I");
			if (e != ERR_OK) {
				return e;
			}
			break;
		case 'P':
			p->o.pretend = 1;
			break;
		case 'S':
			e = set_mode(p, CLI_MODE_SERVERINFO, "-S");
			if (e != ERR_OK) {
				return e;
			}
			break;
		case 'd':
			/* -d and sendmail's -dX.Y debug flags (rest of the
			 * cluster) all mean "more verbose". */
			p->o.verbose++;
			return ERR_OK;
		case 'i':
			p->o.ignore_dots = 1;
			break;
		case 'q':
			return set_queue(p, s + 1);
		case 't':
			p->o.read_recipients = 1;
			break;
		case 'v':
			p->o.verbose++;
			break;
		default:
			if ((unsigned char)c < 0x21 || (unsigned char)c > 0x7e) {
				return errinfo_set(p->reterr, ERR_USAGE,
					"unknown option character 0x%02x in "
					"'%s'; see oasmtp --help",
					(unsigned char)c, arg);
			}
			return errinfo_set(p->reterr, ERR_USAGE,
				"unknown option '-%c'; see oasmtp --help", c);
		}
	}
	return ERR_OK;
}

static const struct longopt *
find_longopt(const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(longopts) / sizeof(longopts[0]); i++) {
		if (strlen(longopts[i].name) == n &&
		    memcmp(longopts[i].name, name, n) == 0) {
			return &longopts[i];
		}
	}
	return NULL;
}

/*
 * An msmtp configuration option: kept, in command-line order, for
 * config_load() (which checks the value as it checks the file's).
 */
static MUST_CHECK enum err
add_setting(struct parser *p, const struct longopt *lo, const char *value)
{
	struct cli_setting *s = &p->o.settings[p->o.n_settings++];

	s->option = lo->name;
	s->key = lo->key;
	s->value = value != NULL ? value : lo->dflt;
	if (strcmp(lo->key, "host") == 0) {
		p->o.host = s->value;
	}
	return ERR_OK;
}

static MUST_CHECK enum err
parse_long(struct parser *p, const char *arg)
{
	const char *name = arg + 2;
	const char *eq = strchr(name, '=');
	size_t n = eq != NULL ? (size_t)(eq - name) : strlen(name);
	const struct longopt *lo = find_longopt(name, n);
	const char *value = eq != NULL ? eq + 1 : NULL;

	if (lo == NULL) {
		return errinfo_set(p->reterr, ERR_USAGE,
			"unknown option '--%.*s'; see oasmtp --help",
			(int)n, name);
	}
	if (lo->arg == ARG_NONE && value != NULL) {
		return errinfo_set(p->reterr, ERR_USAGE,
			"option '--%s' takes no argument", lo->name);
	}
	if (lo->arg == ARG_REQUIRED && value == NULL) {
		if (p->next >= p->argc) {
			return errinfo_set(p->reterr, ERR_USAGE,
				"option '--%s' requires an argument", lo->name);
		}
		value = p->argv[p->next++];
	}
	switch (lo->id) {
	case LO_ACCOUNT:
		return apply_valued(p, 'a', "--account", value);
	case LO_CHECK:
		if (value != NULL) {
			if (value[0] == '\0') {
				return usage(p, "'--check=' needs an account "
					"name");
			}
			p->check_account = value;
		}
		return set_mode(p, CLI_MODE_CHECK, "--check");
	case LO_DEBUG:
		p->o.verbose++;
		return ERR_OK;
	case LO_DSN_NOTIFY:
		return apply_valued(p, 'N', "--dsn-notify", value);
	case LO_DSN_RETURN:
		return apply_valued(p, 'R', "--dsn-return", value);
	case LO_FILE:
		return apply_valued(p, 'C', "--file", value);
	case LO_FROM:
		return apply_valued(p, 'f', "--from", value);
	case LO_HELP:
		p->want_help = 1;
		return ERR_OK;
	case LO_LOGFILE:
		return apply_valued(p, 'X', "--logfile", value);
	case LO_PRETEND:
		p->o.pretend = 1;
		return ERR_OK;
	case LO_QUEUE_DROP:
		p->o.queue_id = value;
		return set_mode(p, CLI_MODE_QUEUE_DROP, "--queue-drop");
	case LO_QUEUE_RETRY:
		p->o.queue_id = value;
		return set_mode(p, CLI_MODE_QUEUE_RETRY, "--queue-retry");
	case LO_READ_ENVELOPE_FROM:
		p->o.read_envelope_from = 1;
		return ERR_OK;
	case LO_READ_RECIPIENTS:
		p->o.read_recipients = 1;
		return ERR_OK;
	case LO_SERVERINFO:
		return set_mode(p, CLI_MODE_SERVERINFO, "--serverinfo");
	case LO_SETTING:
		return add_setting(p, lo, value);
	case LO_SYSTEM:
		p->o.system = 1;
		return ERR_OK;
	case LO_UNSUPPORTED:
		return usage(p, "'--%s' is not supported: %s", lo->name,
			lo->key);
	case LO_VERSION:
		p->want_version = 1;
		return ERR_OK;
	}
	return errinfo_set(p->reterr, ERR_INTERNAL, "unhandled option '%s'",
		arg);
}

static MUST_CHECK enum err
check_arguments(struct parser *p)
{
	int i;

	for (i = 1; i < p->argc; i++) {
		if (strpbrk(p->argv[i], "\r\n") != NULL) {
			return errinfo_set(p->reterr, ERR_USAGE,
				"argument %d contains a line break (CR or LF)",
				i);
		}
	}
	return ERR_OK;
}

/*
 * --check [ACCOUNT]: the account comes from --check=NAME, a single
 * argument, or -a; naming two different ones is an error.
 */
static MUST_CHECK enum err
finish_check(struct parser *p)
{
	const char *name = p->check_account;

	if (p->o.recipient_count > 1 ||
	    (p->o.recipient_count == 1 && name != NULL)) {
		return usage(p, "'--check' takes at most one account name "
			"(got '%s')", p->o.recipients[p->o.recipient_count - 1]);
	}
	if (p->o.recipient_count == 1) {
		name = p->o.recipients[0];
		p->o.recipients[0] = NULL;
		p->o.recipient_count = 0;
	}
	if (name != NULL && p->o.account != NULL &&
	    strcmp(name, p->o.account) != 0) {
		return usage(p, "'--check %s' and '-a %s' name different "
			"accounts", name, p->o.account);
	}
	if (name != NULL) {
		p->o.account = name;
	}
	return ERR_OK;
}

/* Cross-option rules, checked once everything has been read. */
static MUST_CHECK enum err
finish(struct parser *p)
{
	const char *who;

	if (p->o.has_envelope_from && p->o.read_envelope_from) {
		return errinfo_set(p->reterr, ERR_USAGE,
			"'%s' and '--read-envelope-from' cannot be combined",
			p->from_opt);
	}
	if (p->o.n_settings > 0 && p->o.system) {
		return usage(p, "'--%s' cannot be combined with '--system': "
			"the system accounts are set in the system "
			"configuration file only", p->o.settings[0].option);
	}
	if (p->o.host != NULL && p->o.account != NULL) {
		return usage(p, "'--host' and '-a' cannot be combined: --host "
			"names a server without a configuration file");
	}
	if (p->want_help) {
		p->o.mode = CLI_MODE_HELP;
		return ERR_OK;
	}
	if (p->want_version) {
		p->o.mode = CLI_MODE_VERSION;
		return ERR_OK;
	}
	if (p->o.mode == CLI_MODE_CHECK) {
		return finish_check(p);
	}
	if (p->o.mode != CLI_MODE_SEND) {
		if (p->o.recipient_count > 0) {
			who = p->mode_opt != NULL ? p->mode_opt : p->o.progname;
			return errinfo_set(p->reterr, ERR_USAGE,
				"'%s' takes no recipient arguments (got '%s')",
				who, p->o.recipients[0]);
		}
		return ERR_OK;
	}
	if (p->o.recipient_count == 0 && !p->o.read_recipients &&
	    !p->o.pretend) {
		return errinfo_set(p->reterr, ERR_USAGE,
			"no recipients given: name them as arguments or use -t");
	}
	return ERR_OK;
}

enum err
cli_parse(int argc, char **argv, struct cli_opts *ret, struct errinfo *reterr)
{
	struct parser p;
	int after_dashes = 0;
	enum err e;

	memset(&p, 0, sizeof(p));
	p.argc = argc > 0 ? argc : 0;
	p.argv = argv;
	p.next = 1;
	p.reterr = reterr;
	p.o.progname = basename_of(argc > 0 ? argv[0] : NULL);
	if (strcmp(p.o.progname, "mailq") == 0) {
		p.o.mode = CLI_MODE_LIST_QUEUE;
	} else if (strcmp(p.o.progname, "newaliases") == 0) {
		p.o.mode = CLI_MODE_NEWALIASES;
	}

	e = check_arguments(&p);
	if (e != ERR_OK) {
		return e;
	}
	p.o.recipients = calloc((size_t)p.argc + 1, sizeof(char *));
	p.o.settings = calloc((size_t)p.argc + 1, sizeof(p.o.settings[0]));
	if (p.o.recipients == NULL || p.o.settings == NULL) {
		free(p.o.recipients);
		free(p.o.settings);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}

	while (p.next < p.argc) {
		char *arg = argv[p.next++];

		if (after_dashes || arg[0] != '-' || arg[1] == '\0') {
			p.o.recipients[p.o.recipient_count++] = arg;
		} else if (strcmp(arg, "--") == 0) {
			after_dashes = 1;
		} else if (arg[1] == '-') {
			e = parse_long(&p, arg);
		} else {
			e = parse_short(&p, arg);
		}
		if (e != ERR_OK) {
			goto fail;
		}
	}
	e = finish(&p);
	if (e != ERR_OK) {
		goto fail;
	}
	*ret = p.o;
	return ERR_OK;
fail:
	free(p.o.recipients);
	free(p.o.settings);
	return e;
}

void
cli_opts_release(struct cli_opts *o)
{
	if (o == NULL) {
		return;
	}
	free(o->recipients);
	free(o->settings);
	memset(o, 0, sizeof(*o));
}

const char *
cli_help_text(void)
{
	return
	"Usage:\n"
	"  oasmtp [options] [--] recipient...\n"
	"  oasmtp [options] -t [--] [recipient...]\n"
	"      Read a mail from standard input and submit it.\n"
	"  oasmtp -bp | mailq        List the queue.\n"
	"  oasmtp -q[interval] [-qI id | -qR rcpt | -qS sender] [-a ID]\n"
	"                            Deliver queued mail now.\n"
	"  oasmtp --queue-drop ID    Delete a queued message for good.\n"
	"  oasmtp --queue-retry ID   Queue a failed message again.\n"
	"  oasmtp [options] --serverinfo\n"
	"                            Show what the server offers.\n"
	"  oasmtp [options] --check [ACCOUNT]\n"
	"                            Test configuration, token, connection,\n"
	"                            TLS and login without sending.\n"
	"  oasmtp --version | --help\n"
	"\n"
	"Recipients are address lists: \"Doe, J\" <j@x>, k@y\n"
	"\n"
	"Options:\n"
	"  -t, --read-recipients  add recipients from To, Cc and Bcc\n"
	"  -i, -oi                a line with a lone '.' does not end input\n"
	"  -f ADDR, -r ADDR       envelope sender ('<>' = null sender);\n"
	"                         also picks the account whose 'from' matches\n"
	"  --read-envelope-from   envelope sender from the From header\n"
	"  -F NAME                full name for a From header oasmtp adds\n"
	"  -N never|success,failure,delay\n"
	"                         DSN notify conditions\n"
	"  -R hdrs|full           DSN return amount\n"
	"  -V ENVID               DSN envelope id\n"
	"  -C FILE, --file=FILE   configuration file\n"
	"  -a ID, --account=ID    account to use\n"
	"  -v, -d, --debug        print the SMTP dialogue (credentials\n"
	"                         redacted); repeat for more detail\n"
	"  -X FILE, --logfile=FILE\n"
	"                         append a line per mail to FILE ('-' = stdout)\n"
	"  -P, --pretend          print the effective configuration and exit\n"
	"  -S, --serverinfo       print what the server offers and exit\n"
	"  --host=H, --port=N, --tls[=on|off], --auth[=M], --user=U, ...\n"
	"                         msmtp's configuration options: set the key of\n"
	"                         the same name; --host reads no file (oasmtp(1))\n"
	"  --system               use the system configuration, queue and\n"
	"                         token state (the system service, root)\n"
	"  -bm                    deliver (the default)\n"
	"  -bp                    list the queue (same as mailq)\n"
	"  -bi, -I                do nothing (newaliases)\n"
	"  --                     end of options\n"
	"  --version, --help\n"
	"\n"
	"Accepted and ignored: -A X, -B X, -e X, -G, -h X, -L X, -m, -n,\n"
	"-O X, -o X, -p X, -U.  Not supported: -bs, -bd, -bv, -bt.\n";
}
