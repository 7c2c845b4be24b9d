/*
 * test_cli.c - the sendmail command line (cli.c) and logging (log.c).
 *
 * Every caller in oasmtp(1), EXAMPLES gets a case with its exact argv and
 * every field of the result is compared, so a flag that leaks into the
 * wrong field fails too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>
#include <syslog.h>

#include "buf.h"
#include "cli.h"
#include "err.h"
#include "log.h"
#include "tap.h"

#define MAX_ARGS 64

static struct errinfo ei;
static char *argv_store[MAX_ARGS + 1];
static int argc_store;

#define ARGV(...) ((const char *const []){ __VA_ARGS__, NULL })

static enum err
parse(const char *const *args, struct cli_opts *o)
{
	int n = 0;

	while (args[n] != NULL && n < MAX_ARGS) {
		argv_store[n] = (char *)args[n];
		n++;
	}
	argv_store[n] = NULL;
	argc_store = n;
	errinfo_init(&ei);
	return cli_parse(n, argv_store, o, &ei);
}

/* Everything a parse may produce; zero means "not set". */
struct want {
	enum cli_mode mode;
	const char *progname;
	int read_recipients;
	int ignore_dots;
	int has_envelope_from;
	const char *envelope_from;
	int read_envelope_from;
	const char *full_name;
	unsigned int dsn_notify_flags;
	enum cli_dsn_return dsn_return;
	const char *dsn_envid;
	const char *config_file;
	const char *account;
	int verbose;
	const char *logfile;
	int pretend;
	const char *queue_interval;
	enum cli_queue_filter queue_filter;
	const char *queue_filter_value;
	const char *rcpt[8];	/* NULL-terminated */
};

static void
expect(const char *name, const char *const *args, const struct want *w)
{
	struct cli_opts o;
	enum err e;
	size_t n, i;

	e = parse(args, &o);
	if (!is_int(e, ERR_OK, "%s: parses", name)) {
		diag("error: %s", errinfo_msg(&ei));
		return;
	}
	is_str(cli_mode_name(o.mode), cli_mode_name(w->mode), "%s: mode", name);
	is_str(o.progname, w->progname != NULL ? w->progname : "sendmail",
		"%s: progname", name);
	is_int(o.read_recipients, w->read_recipients, "%s: -t", name);
	is_int(o.ignore_dots, w->ignore_dots, "%s: ignore dots", name);
	is_int(o.has_envelope_from, w->has_envelope_from,
		"%s: has envelope from", name);
	is_str(o.envelope_from, w->envelope_from, "%s: envelope from", name);
	is_int(o.read_envelope_from, w->read_envelope_from,
		"%s: --read-envelope-from", name);
	is_str(o.full_name, w->full_name, "%s: full name", name);
	is_int(o.dsn_notify_flags, w->dsn_notify_flags, "%s: -N", name);
	is_int(o.dsn_return, w->dsn_return, "%s: -R", name);
	is_str(o.dsn_envid, w->dsn_envid, "%s: -V", name);
	is_str(o.config_file, w->config_file, "%s: -C", name);
	is_str(o.account, w->account, "%s: -a", name);
	is_int(o.verbose, w->verbose, "%s: verbose", name);
	is_str(o.logfile, w->logfile, "%s: -X", name);
	is_int(o.pretend, w->pretend, "%s: pretend", name);
	is_str(o.queue_interval, w->queue_interval, "%s: queue interval",
		name);
	is_int(o.queue_filter, w->queue_filter, "%s: queue filter", name);
	is_str(o.queue_filter_value, w->queue_filter_value,
		"%s: queue filter value", name);
	for (n = 0; w->rcpt[n] != NULL; n++) {
		continue;
	}
	is_int((long long)o.recipient_count, (long long)n,
		"%s: recipient count", name);
	for (i = 0; i < n && i < o.recipient_count; i++) {
		is_str(o.recipients[i], w->rcpt[i], "%s: recipient %zu", name,
			i);
	}
	ok(o.recipients != NULL && o.recipients[o.recipient_count] == NULL,
		"%s: recipients NULL-terminated", name);
	cli_opts_release(&o);
}

static void
expect_error(const char *name, const char *const *args, const char *needle)
{
	struct cli_opts o;
	unsigned char before[sizeof(o)];
	enum err e;

	memset(&o, 0xab, sizeof(o));
	memcpy(before, &o, sizeof(o));
	e = parse(args, &o);
	is_int(e, ERR_USAGE, "%s: usage error", name);
	is_int(ei.code, ERR_USAGE, "%s: errinfo code", name);
	contains(errinfo_msg(&ei), needle, "%s: message", name);
	ok(memcmp(before, &o, sizeof(o)) == 0, "%s: result untouched", name);
}

/* msmtp's configuration options: key and value as a file line would. */
static void
test_settings(void)
{
	static const struct {
		const char *arg;
		const char *option, *key, *value;
	} cases[] = {
		{ "--host=h.example", "host", "host", "h.example" },
		{ "--port=2525", "port", "port", "2525" },
		{ "--tls", "tls", "tls", "" },
		{ "--tls=off", "tls", "tls", "off" },
		{ "--auth", "auth", "auth", "" },
		{ "--auth=plain", "auth", "auth", "plain" },
		{ "--tls-starttls=off", "tls-starttls", "tls_starttls", "off" },
		{ "--connect-timeout=9", "connect-timeout", "timeout", "9" },
		{ "--set-from-header", "set-from-header", "set_from_header",
			"auto" },
		{ "--set-to-header", "set-to-header", "set_to_header", "on" },
		{ "--user=", "user", "user", "" },
	};
	struct cli_opts o;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!is_int(parse(ARGV("oasmtp", cases[i].arg, "a@x"), &o),
		    ERR_OK, "%s parses", cases[i].arg)) {
			continue;
		}
		if (is_int((long long)o.n_settings, 1, "%s: one setting",
		    cases[i].arg)) {
			is_str(o.settings[0].option, cases[i].option,
				"%s: option", cases[i].arg);
			is_str(o.settings[0].key, cases[i].key, "%s: key",
				cases[i].arg);
			is_str(o.settings[0].value, cases[i].value,
				"%s: value", cases[i].arg);
		}
		is_int((long long)o.recipient_count, 1, "%s: recipient",
			cases[i].arg);
		cli_opts_release(&o);
	}
	/* separate value, order kept, --host remembered */
	if (is_int(parse(ARGV("oasmtp", "--user", "u", "a@x", "--host",
	    "h", "--port", "25"), &o), ERR_OK, "separate values parse")) {
		is_int((long long)o.n_settings, 3, "three settings");
		is_str(o.settings[0].value, "u", "first: user");
		is_str(o.settings[1].key, "host", "second: host");
		is_str(o.settings[2].value, "25", "third: port");
		is_str(o.host, "h", "host remembered");
		is_int((long long)o.recipient_count, 1, "one recipient");
		cli_opts_release(&o);
	}
}

static void
test_callers(void)
{
	expect("git send-email", ARGV("/usr/sbin/sendmail", "-a", "work",
		"-f", "dev@example.com", "-i", "list@example.org",
		"cc@example.org"), &(struct want){
		.account = "work", .has_envelope_from = 1,
		.envelope_from = "dev@example.com", .ignore_dots = 1,
		.rcpt = { "list@example.org", "cc@example.org" } });
	expect("git send-email (captured)", ARGV("/usr/bin/oasmtp", "-a",
		"work", "-f", "dev@example.com", "-i", "list@example.org",
		"cc@example.org", "dev@example.com", "bcc@example.org"),
		&(struct want){ .progname = "oasmtp", .account = "work",
		.has_envelope_from = 1, .envelope_from = "dev@example.com",
		.ignore_dots = 1, .rcpt = { "list@example.org",
		"cc@example.org", "dev@example.com", "bcc@example.org" } });
	expect("Debian cron", ARGV("/usr/sbin/sendmail", "-FCronDaemon", "-i",
		"-B8BITMIME", "-oem", "root"), &(struct want){
		.full_name = "CronDaemon", .ignore_dots = 1,
		.rcpt = { "root" } });
	expect("cronie", ARGV("/usr/sbin/sendmail", "-FCronDaemon", "-i",
		"-odi", "-oem", "-oi", "-t", "-f", "user"), &(struct want){
		.full_name = "CronDaemon", .ignore_dots = 1,
		.read_recipients = 1, .has_envelope_from = 1,
		.envelope_from = "user" });
	expect("anacron", ARGV("/usr/sbin/sendmail", "-FAnacron", "-odi",
		"root"), &(struct want){ .full_name = "Anacron",
		.rcpt = { "root" } });
	expect("systemd-cron", ARGV("sendmail", "-i", "-B8BITMIME", "root"),
		&(struct want){ .ignore_dots = 1, .rcpt = { "root" } });
	expect("systemd-cron upstream", ARGV("sendmail", "-i", "-B",
		"8BITMIME", "admin@example.org"), &(struct want){
		.ignore_dots = 1, .rcpt = { "admin@example.org" } });
	expect("bsd-mailx", ARGV("sendmail", "-i", "-t"), &(struct want){
		.ignore_dots = 1, .read_recipients = 1 });
	expect("bsd-mailx -r", ARGV("sendmail", "-i", "-t", "-f", "x"),
		&(struct want){ .ignore_dots = 1, .read_recipients = 1,
		.has_envelope_from = 1, .envelope_from = "x" });
	expect("mailutils", ARGV("sendmail", "-oi", "-f", "root@host", "-t"),
		&(struct want){ .ignore_dots = 1, .read_recipients = 1,
		.has_envelope_from = 1, .envelope_from = "root@host" });
	expect("s-nail", ARGV("sendmail", "-i", "-f", "a@b", "--", "rcpt1",
		"-weird@x"), &(struct want){ .ignore_dots = 1,
		.has_envelope_from = 1, .envelope_from = "a@b",
		.rcpt = { "rcpt1", "-weird@x" } });
	expect("PHP mail()", ARGV("/usr/sbin/sendmail", "-t", "-i"),
		&(struct want){ .read_recipients = 1, .ignore_dots = 1 });
	expect("PHP mail() with -f", ARGV("/usr/sbin/sendmail", "-t", "-i",
		"-fbounce@x"), &(struct want){ .read_recipients = 1,
		.ignore_dots = 1, .has_envelope_from = 1,
		.envelope_from = "bounce@x" });
	expect("mdadm", ARGV("/usr/sbin/sendmail", "-t"),
		&(struct want){ .read_recipients = 1 });
	expect("logwatch", ARGV("/usr/sbin/sendmail", "-t"),
		&(struct want){ .read_recipients = 1 });
	expect("mdadm upstream", ARGV("/usr/lib/sendmail", "-t",
		"-fmdadm@host"), &(struct want){ .read_recipients = 1,
		.has_envelope_from = 1, .envelope_from = "mdadm@host" });
	expect("unattended-upgrades", ARGV("/usr/sbin/sendmail", "-oi", "-t"),
		&(struct want){ .ignore_dots = 1, .read_recipients = 1 });
	expect("Rails", ARGV("/usr/sbin/sendmail", "-i", "-t", "a@x", "b@y"),
		&(struct want){ .ignore_dots = 1, .read_recipients = 1,
		.rcpt = { "a@x", "b@y" } });
}

static void
test_argv0(void)
{
	expect("mailq", ARGV("/usr/bin/mailq"), &(struct want){
		.mode = CLI_MODE_LIST_QUEUE, .progname = "mailq" });
	expect("mailq -v", ARGV("mailq", "-v"), &(struct want){
		.mode = CLI_MODE_LIST_QUEUE, .progname = "mailq",
		.verbose = 1 });
	expect("newaliases", ARGV("/usr/sbin/newaliases"), &(struct want){
		.mode = CLI_MODE_NEWALIASES, .progname = "newaliases" });
	expect("sendmail", ARGV("sendmail", "a@x"), &(struct want){
		.rcpt = { "a@x" } });
	expect("/usr/sbin/sendmail", ARGV("/usr/sbin/sendmail", "a@x"),
		&(struct want){ .rcpt = { "a@x" } });
	expect("oasmtp", ARGV("oasmtp", "a@x"), &(struct want){
		.progname = "oasmtp", .rcpt = { "a@x" } });
	expect("mailq overridden by -q", ARGV("mailq", "-q"), &(struct want){
		.mode = CLI_MODE_FLUSH_QUEUE, .progname = "mailq" });
	expect_error("mailq with arguments", ARGV("mailq", "a@x"),
		"'mailq' takes no recipient arguments");
}

static void
test_modes(void)
{
	expect("-bm", ARGV("sendmail", "-bm", "a@x"), &(struct want){
		.rcpt = { "a@x" } });
	expect("-b m", ARGV("sendmail", "-b", "m", "a@x"), &(struct want){
		.rcpt = { "a@x" } });
	expect("-bp", ARGV("sendmail", "-bp"), &(struct want){
		.mode = CLI_MODE_LIST_QUEUE });
	expect("-bi", ARGV("sendmail", "-bi"), &(struct want){
		.mode = CLI_MODE_NEWALIASES });
	expect("-I", ARGV("sendmail", "-I"), &(struct want){
		.mode = CLI_MODE_NEWALIASES });
	expect("-q", ARGV("sendmail", "-q"), &(struct want){
		.mode = CLI_MODE_FLUSH_QUEUE });
	expect("-q30m", ARGV("sendmail", "-q30m"), &(struct want){
		.mode = CLI_MODE_FLUSH_QUEUE, .queue_interval = "30m" });
	expect("-q1h30m", ARGV("sendmail", "-q1h30m"), &(struct want){
		.mode = CLI_MODE_FLUSH_QUEUE, .queue_interval = "1h30m" });
	expect("-qIabc", ARGV("sendmail", "-qIabc"), &(struct want){
		.mode = CLI_MODE_FLUSH_QUEUE, .queue_filter = CLI_QUEUE_ID,
		.queue_filter_value = "abc" });
	expect("-qI abc", ARGV("sendmail", "-qI", "abc"), &(struct want){
		.mode = CLI_MODE_FLUSH_QUEUE, .queue_filter = CLI_QUEUE_ID,
		.queue_filter_value = "abc" });
	expect("-qRexample.org", ARGV("sendmail", "-v", "-qRexample.org"),
		&(struct want){ .mode = CLI_MODE_FLUSH_QUEUE, .verbose = 1,
		.queue_filter = CLI_QUEUE_RECIPIENT,
		.queue_filter_value = "example.org" });
	expect("-qSroot", ARGV("sendmail", "-qSroot"), &(struct want){
		.mode = CLI_MODE_FLUSH_QUEUE, .queue_filter = CLI_QUEUE_SENDER,
		.queue_filter_value = "root" });
	/* oasmtp-token runs this after storing a new grant */
	expect("-C f -a work -q", ARGV("oasmtp", "-C", "f", "-a", "work",
		"-q"), &(struct want){ .mode = CLI_MODE_FLUSH_QUEUE,
		.progname = "oasmtp", .config_file = "f", .account = "work" });
	expect("-q --account=work -qRx", ARGV("sendmail", "-q",
		"--account=work", "-qRx"), &(struct want){
		.mode = CLI_MODE_FLUSH_QUEUE, .account = "work",
		.queue_filter = CLI_QUEUE_RECIPIENT, .queue_filter_value = "x" });
	expect_error("-q -a work with a recipient", ARGV("oasmtp", "-q", "-a",
		"work", "x@y"), "takes no recipient arguments");
	expect("--version", ARGV("oasmtp", "--version"), &(struct want){
		.mode = CLI_MODE_VERSION, .progname = "oasmtp" });
	expect("--help", ARGV("oasmtp", "--help"), &(struct want){
		.mode = CLI_MODE_HELP, .progname = "oasmtp" });
	expect("--help wins", ARGV("oasmtp", "--version", "-bp", "--help"),
		&(struct want){ .mode = CLI_MODE_HELP, .progname = "oasmtp" });
	expect("--serverinfo", ARGV("oasmtp", "-a", "gmail", "--serverinfo"),
		&(struct want){ .mode = CLI_MODE_SERVERINFO,
		.progname = "oasmtp", .account = "gmail" });
	expect("-S", ARGV("oasmtp", "-S"), &(struct want){
		.mode = CLI_MODE_SERVERINFO, .progname = "oasmtp" });
	expect("--check", ARGV("oasmtp", "--check"), &(struct want){
		.mode = CLI_MODE_CHECK, .progname = "oasmtp" });
	expect("--check ACCOUNT", ARGV("oasmtp", "--check", "work"),
		&(struct want){ .mode = CLI_MODE_CHECK, .progname = "oasmtp",
		.account = "work" });
	expect("--check=ACCOUNT", ARGV("oasmtp", "-C", "rc", "--check=work"),
		&(struct want){ .mode = CLI_MODE_CHECK, .progname = "oasmtp",
		.config_file = "rc", .account = "work" });
	expect("--check with the same -a", ARGV("oasmtp", "-a", "work",
		"--check", "work"), &(struct want){ .mode = CLI_MODE_CHECK,
		.progname = "oasmtp", .account = "work" });
	expect("--pretend without recipients", ARGV("oasmtp", "--pretend"),
		&(struct want){ .progname = "oasmtp", .pretend = 1 });
	expect("-P", ARGV("oasmtp", "-P", "-a", "x"), &(struct want){
		.progname = "oasmtp", .pretend = 1, .account = "x" });
}

static void
test_options(void)
{
	expect("cluster -ti", ARGV("sendmail", "-ti"), &(struct want){
		.read_recipients = 1, .ignore_dots = 1 });
	expect("cluster -toi", ARGV("sendmail", "-toi"), &(struct want){
		.read_recipients = 1, .ignore_dots = 1 });
	expect("cluster -tf addr", ARGV("sendmail", "-tf", "a@b"),
		&(struct want){ .read_recipients = 1, .has_envelope_from = 1,
		.envelope_from = "a@b" });
	expect("-o i separate", ARGV("sendmail", "-o", "i", "-t"),
		&(struct want){ .ignore_dots = 1, .read_recipients = 1 });
	expect("-oem does not set -i", ARGV("sendmail", "-oem", "-odb", "-t"),
		&(struct want){ .read_recipients = 1 });
	expect("-r", ARGV("sendmail", "-r", "a@b", "c@d"), &(struct want){
		.has_envelope_from = 1, .envelope_from = "a@b",
		.rcpt = { "c@d" } });
	expect("-f '<>'", ARGV("sendmail", "-f", "<>", "c@d"), &(struct want){
		.has_envelope_from = 1, .envelope_from = "",
		.rcpt = { "c@d" } });
	expect("-f ''", ARGV("sendmail", "-f", "", "c@d"), &(struct want){
		.has_envelope_from = 1, .envelope_from = "",
		.rcpt = { "c@d" } });
	expect("-f<>", ARGV("sendmail", "-f<>", "c@d"), &(struct want){
		.has_envelope_from = 1, .envelope_from = "",
		.rcpt = { "c@d" } });
	expect("--from=", ARGV("oasmtp", "--from=x@y", "c@d"), &(struct want){
		.progname = "oasmtp", .has_envelope_from = 1,
		.envelope_from = "x@y", .rcpt = { "c@d" } });
	expect("-F separate", ARGV("sendmail", "-F", "Jane Doe", "c@d"),
		&(struct want){ .full_name = "Jane Doe", .rcpt = { "c@d" } });
	expect("DSN", ARGV("sendmail", "-N", "success,failure", "-R", "hdrs",
		"-V", "env+id=1", "c@d"), &(struct want){
		.dsn_notify_flags = CLI_DSN_NOTIFY_SUCCESS |
		CLI_DSN_NOTIFY_FAILURE, .dsn_return = CLI_DSN_RET_HDRS,
		.dsn_envid = "env+id=1", .rcpt = { "c@d" } });
	expect("DSN glued", ARGV("sendmail", "-Nnever", "-Rfull", "c@d"),
		&(struct want){ .dsn_notify_flags = CLI_DSN_NOTIFY_NEVER,
		.dsn_return = CLI_DSN_RET_FULL, .rcpt = { "c@d" } });
	expect("DSN Postfix spelling", ARGV("sendmail", "-N",
		"delay, FAILURE", "-R", "headers", "c@d"), &(struct want){
		.dsn_notify_flags = CLI_DSN_NOTIFY_DELAY |
		CLI_DSN_NOTIFY_FAILURE, .dsn_return = CLI_DSN_RET_HDRS,
		.rcpt = { "c@d" } });
	expect("DSN long options", ARGV("oasmtp", "--dsn-notify=delay",
		"--dsn-return", "full", "c@d"), &(struct want){
		.progname = "oasmtp", .dsn_notify_flags = CLI_DSN_NOTIFY_DELAY,
		.dsn_return = CLI_DSN_RET_FULL, .rcpt = { "c@d" } });
	expect("-N off", ARGV("sendmail", "-N", "delay", "-N", "off", "c@d"),
		&(struct want){ .rcpt = { "c@d" } });
	expect("config, account, log", ARGV("oasmtp", "-C", "/etc/rc", "-a",
		"acct", "-X", "/tmp/log", "c@d"), &(struct want){
		.progname = "oasmtp", .config_file = "/etc/rc",
		.account = "acct", .logfile = "/tmp/log", .rcpt = { "c@d" } });
	expect("long config, account, log", ARGV("oasmtp", "--file=/etc/rc",
		"--account", "acct", "--logfile=-", "c@d"), &(struct want){
		.progname = "oasmtp", .config_file = "/etc/rc",
		.account = "acct", .logfile = "-", .rcpt = { "c@d" } });
	expect("glued -Cfile -aacct", ARGV("oasmtp", "-C/etc/rc", "-aacct",
		"c@d"), &(struct want){ .progname = "oasmtp",
		.config_file = "/etc/rc", .account = "acct",
		.rcpt = { "c@d" } });
	expect("-v counting", ARGV("sendmail", "-v", "-vv", "-d", "--debug",
		"--debug=1", "c@d"), &(struct want){ .verbose = 6,
		.rcpt = { "c@d" } });
	expect("-d0.1 eats its cluster", ARGV("sendmail", "-d0.1t", "c@d"),
		&(struct want){ .verbose = 1, .rcpt = { "c@d" } });
	expect("--read-envelope-from", ARGV("oasmtp", "--read-envelope-from",
		"-t"), &(struct want){ .progname = "oasmtp",
		.read_envelope_from = 1, .read_recipients = 1 });
	expect("--read-recipients", ARGV("oasmtp", "--read-recipients"),
		&(struct want){ .progname = "oasmtp", .read_recipients = 1 });
	expect("ignored flags with values", ARGV("sendmail", "-Am", "-A", "c",
		"-B", "7BIT", "-ee", "-e", "m", "-G", "-h", "17", "-h17",
		"-L", "tag", "-Ltag", "-m", "-n", "-O", "DeliveryMode=b",
		"-ODeliveryMode=b", "-o", "em", "-U", "-p", "smtp", "-psmtp",
		"c@d"), &(struct want){ .rcpt = { "c@d" } });
	expect("options after recipients", ARGV("sendmail", "a@x", "-i",
		"b@y", "-f", "s@z", "-t"), &(struct want){ .ignore_dots = 1,
		.has_envelope_from = 1, .envelope_from = "s@z",
		.read_recipients = 1, .rcpt = { "a@x", "b@y" } });
	expect("--", ARGV("sendmail", "-i", "--", "-t", "--", "-fx"),
		&(struct want){ .ignore_dots = 1,
		.rcpt = { "-t", "--", "-fx" } });
	expect("lone dash is a recipient", ARGV("sendmail", "-"),
		&(struct want){ .rcpt = { "-" } });
	expect("address list argument", ARGV("sendmail",
		"\"Doe, J\" <j@x>, k@y"), &(struct want){
		.rcpt = { "\"Doe, J\" <j@x>, k@y" } });
	expect("option value starting with '-'", ARGV("sendmail", "-f",
		"-odd@x", "c@d"), &(struct want){ .has_envelope_from = 1,
		.envelope_from = "-odd@x", .rcpt = { "c@d" } });
}

static void
release_null(void *arg)
{
	(void)arg;
	cli_opts_release(NULL);
}

static void
test_borrowed_strings(void)
{
	struct cli_opts o;

	is_int(parse(ARGV("/usr/sbin/sendmail", "-fa@b", "c@d"), &o), ERR_OK,
		"borrowed: parses");
	ok(o.recipients[0] == argv_store[2], "recipient points into argv");
	ok(o.envelope_from == argv_store[1] + 2,
		"glued -f value points into argv");
	ok(o.progname == argv_store[0] + strlen("/usr/sbin/"),
		"progname points into argv[0]");
	cli_opts_release(&o);
	ok(o.recipients == NULL && o.recipient_count == 0,
		"release resets the struct");
	survives(release_null, NULL, "release accepts NULL");
	cli_opts_release(&o);
	ok(o.recipients == NULL && o.recipient_count == 0 &&
		o.envelope_from == NULL, "a second release finds it reset");
	is_int(cli_parse(0, NULL, &o, &ei), ERR_USAGE,
		"argc 0: no recipients is a usage error");
}

static void
test_errors(void)
{
	expect_error("LF in recipient", ARGV("sendmail", "a@x\nRCPT TO:<b@y>"),
		"argument 1 contains a line break");
	expect_error("CR in -f", ARGV("sendmail", "-f", "a@x\r", "b@y"),
		"argument 2 contains a line break");
	expect_error("LF after --", ARGV("sendmail", "--", "b@y", "c\n"),
		"argument 3 contains a line break");
	expect_error("LF in -F", ARGV("sendmail", "-FCron\nBcc: x@y", "b@y"),
		"line break");
	expect_error("-bs", ARGV("sendmail", "-bs"),
		"-bs (SMTP on standard input) is not supported");
	expect_error("-bd", ARGV("sendmail", "-bd"),
		"-bd (run as a daemon) is not supported");
	expect_error("-bv", ARGV("sendmail", "-bv", "a@x"),
		"-bv (verify addresses) is not supported");
	expect_error("-bt", ARGV("sendmail", "-bt"), "not supported");
	expect_error("-bz", ARGV("sendmail", "-bz"), "-bz is not a supported");
	expect_error("unknown short option", ARGV("sendmail", "-t", "-Z"),
		"unknown option '-Z'; see oasmtp --help");
	expect_error("unknown option in cluster", ARGV("sendmail", "-tiK"),
		"unknown option '-K'");
	expect_error("unknown long option", ARGV("oasmtp", "--hots=x", "a@x"),
		"unknown option '--hots'; see oasmtp --help");
	expect_error("--host with -a", ARGV("oasmtp", "--host=x", "-a", "w",
		"a@x"), "'--host' and '-a' cannot be combined");
	expect_error("settings with --system", ARGV("oasmtp", "--system",
		"--tls=off", "a@x"), "'--tls' cannot be combined with "
		"'--system'");
	expect_error("--rmqs", ARGV("oasmtp", "--rmqs=h"),
		"'--rmqs' is not supported");
	expect_error("--port without value", ARGV("oasmtp", "a@x", "--port"),
		"option '--port' requires an argument");
	expect_error("long option without value", ARGV("oasmtp", "--help=x"),
		"option '--help' takes no argument");
	expect_error("missing -f value", ARGV("sendmail", "a@x", "-f"),
		"option '-f' requires an argument");
	expect_error("missing -C value", ARGV("sendmail", "-t", "-C"),
		"option '-C' requires an argument");
	expect_error("missing -o value", ARGV("sendmail", "-t", "-o"),
		"option '-o' requires an argument");
	expect_error("missing -B value", ARGV("sendmail", "-t", "-B"),
		"option '-B' requires an argument");
	expect_error("missing --account value", ARGV("oasmtp", "--account"),
		"option '--account' requires an argument");
	expect_error("missing -qI value", ARGV("sendmail", "-qI"),
		"option '-qI' requires an argument");
	expect_error("-f with --read-envelope-from", ARGV("sendmail", "-f",
		"a@b", "--read-envelope-from", "c@d"),
		"'-f' and '--read-envelope-from' cannot be combined");
	expect_error("-r with --read-envelope-from", ARGV("sendmail",
		"--read-envelope-from", "-ra@b", "c@d"),
		"'-r' and '--read-envelope-from' cannot be combined");
	expect_error("no recipients", ARGV("sendmail", "-i"),
		"no recipients given");
	expect_error("no recipients, only options after --",
		ARGV("sendmail", "--"), "no recipients given");
	expect_error("bad -N word", ARGV("sendmail", "-N", "sometimes", "a@x"),
		"invalid -N value 'sometimes'");
	expect_error("-N never combined", ARGV("sendmail", "-N",
		"never,delay", "a@x"), "invalid -N value");
	expect_error("-N duplicate", ARGV("sendmail", "-N", "delay,delay",
		"a@x"), "invalid -N value");
	expect_error("-N empty item", ARGV("sendmail", "-N", "delay,", "a@x"),
		"invalid -N value");
	expect_error("bad -R", ARGV("sendmail", "-R", "body", "a@x"),
		"invalid -R value 'body'");
	expect_error("-V with space", ARGV("sendmail", "-V", "a b", "a@x"),
		"invalid -V value");
	expect_error("-V too long", ARGV("sendmail", "-V",
		"0123456789012345678901234567890123456789012345678901234567890"
		"1234567890123456789012345678901234567890", "a@x"),
		"1 to 100 characters");
	expect_error("bad queue interval", ARGV("sendmail", "-qsoon"),
		"invalid queue interval '-qsoon'");
	expect_error("negated queue filter", ARGV("sendmail", "-q!Rx"),
		"not supported");
	expect_error("quarantine queue", ARGV("sendmail", "-qQ"),
		"not supported");
	expect_error("two queue filters", ARGV("sendmail", "-qIa", "-qRb"),
		"only one queue filter");
	expect_error("-bp with -q", ARGV("sendmail", "-bp", "-q"),
		"'-q' cannot be combined with '-bp'");
	expect_error("-bp with recipients", ARGV("sendmail", "-bp", "a@x"),
		"'-bp' takes no recipient arguments");
	expect_error("-q with recipients", ARGV("sendmail", "-q", "a@x"),
		"'-q' takes no recipient arguments");
	expect_error("--serverinfo with -bi", ARGV("oasmtp", "--serverinfo",
		"-bi"), "'-bi' cannot be combined with '--serverinfo'");
	expect_error("--check with two accounts", ARGV("oasmtp", "--check",
		"a", "b"), "at most one account name");
	expect_error("--check=a with an argument", ARGV("oasmtp",
		"--check=a", "b"), "at most one account name");
	expect_error("--check and a different -a", ARGV("oasmtp", "--check",
		"a", "-a", "b"), "name different accounts");
	expect_error("--check with -q", ARGV("oasmtp", "--check", "-q"),
		"cannot be combined");
	expect_error("--check=", ARGV("oasmtp", "--check="),
		"needs an account name");
}

static void
test_help(void)
{
	const char *h = cli_help_text();

	contains(h, "oasmtp [options] [--] recipient...", "help: synopsis");
	contains(h, "-t, --read-recipients", "help: -t");
	contains(h, "--read-envelope-from", "help: --read-envelope-from");
	contains(h, "-bp", "help: -bp");
	contains(h, "Not supported: -bs", "help: unsupported modes");
	ok(h[strlen(h) - 1] == '\n', "help ends in a newline");
	is_str(cli_mode_name(CLI_MODE_MAX), "unknown", "mode name out of range");
	is_str(cli_dsn_return_text(CLI_DSN_RET_HDRS), "HDRS", "-R hdrs: RET=HDRS");
	is_str(cli_dsn_return_text(CLI_DSN_RET_FULL), "FULL", "-R full: RET=FULL");
	ok(cli_dsn_return_text(CLI_DSN_RET_UNSET) == NULL, "no -R: no RET");
}

/* ---- log ---- */

static char tmpdir[] = "/tmp/oasmtp-test-cli-XXXXXX";
static int saved_fd = -1;
static char capture_path[256];

static void
capture_begin(int fd)
{
	int tmp;

	fflush(fd == 1 ? stdout : stderr);
	snprintf(capture_path, sizeof(capture_path), "%s/capture", tmpdir);
	tmp = open(capture_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	saved_fd = dup(fd);
	dup2(tmp, fd);
	close(tmp);
}

/* Restore fd and return what was written to it (static storage). */
static const char *
capture_end(int fd)
{
	static char text[8192];
	FILE *f;
	size_t n;

	fflush(fd == 1 ? stdout : stderr);
	dup2(saved_fd, fd);
	close(saved_fd);
	f = fopen(capture_path, "r");
	n = f != NULL ? fread(text, 1, sizeof(text) - 1, f) : 0;
	text[n] = '\0';
	if (f != NULL) {
		fclose(f);
	}
	return text;
}

static const char *
read_file(const char *path)
{
	static char text[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL) {
		return NULL;
	}
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

static void
test_log_stderr(void)
{
	const char *out;

	log_init("oasmtp", 1);
	is_int(log_verbosity(), 1, "log_verbosity");
	capture_begin(2);
	errno = EPIPE;
	log_error("cannot connect to '%s': %s", "smtp.example.org", "refused");
	log_warn("queued %s", "id1");
	log_debug(1, "level one");
	log_debug(2, "level two hidden");
	log_error("escape \x1b[31m and\ttab");
	out = capture_end(2);
	is_int(errno, EPIPE, "logging keeps errno");
	is_str(out, "oasmtp: cannot connect to 'smtp.example.org': refused\n"
		"oasmtp: warning: queued id1\n"
		"oasmtp: level one\n"
		"oasmtp: escape \\x1b[31m and\ttab\n",
		"error, warning, debug gating, control characters escaped");

	log_init("sendmail", 0);
	capture_begin(2);
	log_debug(1, "hidden");
	log_transcript(1, "EHLO x\r\n", 8);
	log_error("shown");
	out = capture_end(2);
	is_str(out, "sendmail: shown\n", "verbosity 0: no debug, no transcript");
}

static void
test_log_transcript(void)
{
	static const char ir[] = "AUTH XOAUTH2 dXNlcj1hQGIBYXV0aD1CZWFyZXIgeWEyOS5zZWNyZXQBAQ==\r\n";
	static const char plain[] = "AUTH PLAIN AGFAYgBwYXNzd29yZA==";
	const char *out;

	log_init("oasmtp", 1);
	ok(log_line_is_secret(ir, strlen(ir)), "AUTH with initial response "
		"is secret");
	ok(!log_line_is_secret("AUTH XOAUTH2", 12), "AUTH without initial "
		"response is not secret");
	ok(!log_line_is_secret("AUTH PLAIN =", 12), "AUTH with empty initial "
		"response is not secret");
	ok(!log_line_is_secret("AUTH XOAUTH2 <redacted, 1532 bytes>", 35),
		"caller-redacted AUTH is not secret");
	ok(!log_line_is_secret("MAIL FROM:<a@b>", 15), "MAIL is not secret");
	ok(log_line_is_secret("auth login dXNlcg==", 19),
		"lower-case auth is recognised");

	capture_begin(2);
	log_transcript(0, "220 mx.example.org ESMTP\r\n", 26);
	log_transcript(1, "EHLO host\r\n", 11);
	log_transcript(0, "250-mx\r\n250 AUTH XOAUTH2", 6);
	log_transcript(1, ir, strlen(ir));
	log_transcript(1, plain, strlen(plain));
	log_transcript(1, "AUTH XOAUTH2 <redacted, 1532 bytes>", 35);
	log_transcript(1, "AUTH LOGIN", 10);
	log_transcript(0, "334 VXNlcm5hbWU6", 16);
	log_transcript(1, "dXNlcm5hbWU=\r\n", 14);
	log_transcript(0, "334 UGFzc3dvcmQ6", 16);
	log_transcript(1, "c2VjcmV0cGFzcw==", 16);
	log_transcript(0, "334 UGFzc3dvcmQ6", 16);
	log_transcript(1, "<redacted, 1532 bytes>", 22);
	log_transcript(0, "334 eyJzdGF0dXMiOiI0MDAifQ==", 28);
	log_transcript(1, "", 0);
	log_transcript(0, "535 5.7.8 rejected", 18);
	log_transcript(1, "QUIT", 4);
	log_transcript(0, "221 bye\x1b]0;pwned\x07", 17);
	out = capture_end(2);
	is_str(out,
		"<-- 220 mx.example.org ESMTP\n"
		"--> EHLO host\n"
		"<-- 250-mx\n"
		"--> AUTH XOAUTH2 <redacted, 48 bytes>\n"
		"--> AUTH PLAIN <redacted, 20 bytes>\n"
		"--> AUTH XOAUTH2 <redacted, 1532 bytes>\n"
		"--> AUTH LOGIN\n"
		"<-- 334 VXNlcm5hbWU6\n"
		"--> <redacted, 12 bytes>\n"
		"<-- 334 UGFzc3dvcmQ6\n"
		"--> <redacted, 16 bytes>\n"
		"<-- 334 UGFzc3dvcmQ6\n"
		"--> <redacted, 1532 bytes>\n"
		"<-- 334 eyJzdGF0dXMiOiI0MDAifQ==\n"
		"--> <redacted, 0 bytes>\n"
		"<-- 535 5.7.8 rejected\n"
		"--> QUIT\n"
		"<-- 221 bye\\x1b]0;pwned\\x07\n",
		"transcript: directions, redaction, escaping");
	ok(strstr(out, "dXNlcj1") == NULL && strstr(out, "AGFAYgBw") == NULL &&
		strstr(out, "c2VjcmV0") == NULL && strstr(out, "dXNlcm5h") ==
		NULL, "no credential reaches the transcript");
}

static const char *const rcpts[] = { "a@example.org", "b@example.net" };

static void
test_log_format(void)
{
	struct buf b;
	struct log_mail_record ok_rec = {
		.host = "smtp.gmail.com", .tls = 1, .auth = 1,
		.user = "me@gmail.com", .from = "me@gmail.com",
		.recipients = rcpts, .recipient_count = 2, .mailsize = 1234,
		.exit_code = 0,
	};
	struct log_mail_record fail_rec = {
		.host = "smtp.office365.com", .tls = 1, .auth = 0,
		.user = "not-logged", .from = "", .recipients = rcpts,
		.recipient_count = 1, .mailsize = 99, .smtp_status = 554,
		.smtp_msg = "554-5.2.0 it's\r\n554 5.2.0 SendAsDenied\r\n",
		.error_msg = "the server refused 'x'\nfor good",
		.exit_code = 69,
	};

	buf_init(&b, 65536);
	is_int(log_format_mail(&ok_rec, &b, &ei), ERR_OK, "format success");
	is_str(b.data, "host=smtp.gmail.com tls=on auth=on user=me@gmail.com "
		"from=me@gmail.com recipients=a@example.org,b@example.net "
		"mailsize=1234 exitcode=EX_OK", "success line");
	buf_reset(&b);
	is_int(log_format_mail(&fail_rec, &b, &ei), ERR_OK, "format failure");
	is_str(b.data, "host=smtp.office365.com tls=on auth=off from= "
		"recipients=a@example.org smtpstatus=554 "
		"smtpmsg='554-5.2.0 it?s\\n554 5.2.0 SendAsDenied' "
		"errormsg='the server refused ?x?\\nfor good' "
		"exitcode=EX_UNAVAILABLE", "failure line");
	buf_reset(&b);
	fail_rec.host = "evil\nhost";
	fail_rec.error_msg = "";
	fail_rec.smtp_msg = NULL;
	fail_rec.exit_code = 75;
	is_int(log_format_mail(&fail_rec, &b, &ei), ERR_OK, "format tempfail");
	is_str(b.data, "host=evil?host tls=on auth=off from= "
		"recipients=a@example.org smtpstatus=554 exitcode=EX_TEMPFAIL",
		"control characters in fields, empty errormsg left out, "
		"status without a reply text kept");
	buf_reset(&b);
	fail_rec.smtp_status = 0;
	is_int(log_format_mail(&fail_rec, &b, &ei), ERR_OK, "format, no status");
	is_str(b.data, "host=evil?host tls=on auth=off from= "
		"recipients=a@example.org exitcode=EX_TEMPFAIL",
		"no reply at all: no smtpstatus");
	buf_release(&b);
	buf_init(&b, 16);
	is_int(log_format_mail(&ok_rec, &b, &ei), ERR_LIMIT,
		"format into a too small buffer fails");
	buf_release(&b);

	is_str(log_exit_code_name(0), "EX_OK", "EX_OK");
	is_str(log_exit_code_name(75), "EX_TEMPFAIL", "EX_TEMPFAIL");
	is_str(log_exit_code_name(78), "EX_CONFIG", "EX_CONFIG");
	is_str(log_exit_code_name(1), "EX_UNKNOWN", "unknown exit code");
}

static int
looks_like_default_time(const char *s)
{
	/* "Mar 01 12:34:56 " */
	return strlen(s) > 16 && s[3] == ' ' && s[6] == ' ' && s[9] == ':' &&
		s[12] == ':' && s[15] == ' ' && s[4] >= '0' && s[4] <= '3' &&
		s[7] >= '0' && s[7] <= '2';
}

static void
test_log_mail(void)
{
	struct log_mail_record rec = {
		.host = "mx", .tls = 0, .auth = 0, .from = "a@b",
		.recipients = rcpts, .recipient_count = 2, .mailsize = 10,
		.exit_code = 0,
	};
	static const char line[] = "host=mx tls=off auth=off from=a@b "
		"recipients=a@example.org,b@example.net mailsize=10 "
		"exitcode=EX_OK\n";
	char path[256], bad[256];
	const char *text;
	struct stat st;
	int facility;
	enum err e;

	snprintf(path, sizeof(path), "%s/mail.log", tmpdir);
	is_int(log_mail(&rec, path, "none", NULL, &ei), ERR_OK,
		"log_mail to file, no time");
	is_int(log_mail(&rec, path, "none", "off", &ei), ERR_OK,
		"log_mail appends, syslog off");
	text = read_file(path);
	ok(text != NULL && strlen(text) == 2 * strlen(line) &&
		strncmp(text, line, strlen(line)) == 0 &&
		strcmp(text + strlen(line), line) == 0,
		"two identical lines appended");
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
		"new log file is created 0600");
	unlink(path);

	is_int(log_mail(&rec, path, NULL, NULL, &ei), ERR_OK,
		"log_mail default time format");
	text = read_file(path);
	ok(text != NULL && looks_like_default_time(text),
		"default prefix looks like 'Mon DD HH:MM:SS '");
	ok(text != NULL && strlen(text) > 16 && strcmp(text + 16, line) == 0,
		"line follows the time prefix");
	unlink(path);

	is_int(log_mail(&rec, path, "%Y", NULL, &ei), ERR_OK,
		"log_mail custom time format");
	text = read_file(path);
	ok(text != NULL && strlen(text) > 5 && text[0] == '2' &&
		text[4] == ' ' && strcmp(text + 5, line) == 0,
		"custom prefix '%%Y '");
	unlink(path);

	capture_begin(1);
	e = log_mail(&rec, "-", "none", NULL, &ei);
	text = capture_end(1);
	is_int(e, ERR_OK, "log_mail to stdout");
	is_str(text, line, "'-' writes the line to stdout");

	is_int(log_mail(&rec, path, "none", "LOG_NEWS", &ei), ERR_CONFIG,
		"unknown syslog facility is a config error");
	contains(errinfo_msg(&ei), "invalid syslog setting 'LOG_NEWS'",
		"facility message");
	ok(access(path, F_OK) != 0, "nothing written when facility is bad");

	snprintf(bad, sizeof(bad), "%s/no/such/dir/log", tmpdir);
	errinfo_init(&ei);
	is_int(log_mail(&rec, bad, "none", NULL, &ei), ERR_IO,
		"unwritable log file is ERR_IO");
	is_int(ei.sys_errno, ENOENT, "errno recorded");
	contains(errinfo_msg(&ei), "cannot write log file", "I/O message");

	is_int(log_mail(&rec, NULL, NULL, NULL, &ei), ERR_OK,
		"nothing configured: nothing to do");

	is_int(log_syslog_facility("on", &facility, &ei), ERR_OK, "'on'");
	is_int(facility, LOG_MAIL, "'on' is LOG_MAIL");
	is_int(log_syslog_facility("off", &facility, &ei), ERR_OK, "'off'");
	is_int(facility, -1, "'off' is -1");
	is_int(log_syslog_facility("LOG_USER", &facility, &ei), ERR_OK,
		"LOG_USER");
	is_int(facility, LOG_USER, "LOG_USER value");
	is_int(log_syslog_facility("LOG_LOCAL7", &facility, &ei), ERR_OK,
		"LOG_LOCAL7");
	is_int(facility, LOG_LOCAL7, "LOG_LOCAL7 value");
	is_int(log_syslog_facility("LOG_LOCAL8", &facility, &ei), ERR_CONFIG,
		"LOG_LOCAL8 rejected");
}

int
main(void)
{
	test_callers();
	test_settings();
	test_argv0();
	test_modes();
	test_options();
	test_borrowed_strings();
	test_errors();
	test_help();

	if (mkdtemp(tmpdir) == NULL) {
		ok(0, "mkdtemp: %s", strerror(errno));
		return tap_done();
	}
	test_log_stderr();
	test_log_transcript();
	test_log_format();
	test_log_mail();
	unlink(capture_path);
	rmdir(tmpdir);
	return tap_done();
}
