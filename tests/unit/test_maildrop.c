/*
 * test_maildrop.c - the maildrop entry format (round trip, escaping,
 * malformed input), entry names, and the option policy that oasmtp-drop
 * and the service share.
 */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "err.h"
#include "maildrop.h"
#include "tap.h"

static struct errinfo ei;

static void
round_trip(void)
{
	char *args[] = { "-FCron\tDaemon", "-i", "a\\b", "x\x01y", "root", NULL };
	struct maildrop_entry e;
	struct buf b;
	const char *body = "Subject: x\n\nbody\n";

	buf_init(&b, MAILDROP_HEADER_MAX + 1);
	is_int(maildrop_format_header(&b, 1001, "alice", 1700000000, 5, args,
		&ei), ERR_OK, "format");
	contains(b.data, "oasmtp-maildrop 2\n", "version 2");
	contains(b.data, "arg -FCron\\tDaemon\n", "TAB escaped");
	contains(b.data, "arg a\\\\b\n", "backslash escaped");
	contains(b.data, "arg x\\x01y\n", "control byte escaped");
	setup(buf_append_str(&b, body));
	is_int(maildrop_parse_header(b.data, b.len, &e, &ei), ERR_OK, "parse");
	is_int(e.uid, 1001, "uid");
	is_str(e.user, "alice", "user");
	is_int(e.time, 1700000000, "time");
	is_int(e.argc, 6, "argv: sendmail + 5");
	is_str(e.argv[0], "sendmail", "argv[0]");
	is_str(e.argv[1], "-FCron\tDaemon", "arg 1 unescaped");
	is_str(e.argv[3], "a\\b", "arg 3 unescaped");
	is_str(e.argv[4], "x\x01y", "arg 4 unescaped");
	ok(e.argv[6] == NULL, "argv NULL-terminated");
	is_str(b.data + e.body_offset, body, "body offset");
	maildrop_entry_release(&e);
	buf_release(&b);
}

static void
malformed(void)
{
	static const char *const bad[] = {
		"",
		"oasmtp-maildrop 3\nuid 1\nuser a\ntime 1\nend\n",
		"oasmtp-maildrop 1\nuser a\ntime 1\nend\n",	/* no uid */
		"oasmtp-maildrop 1\nuid 1\nuid 2\nuser a\ntime 1\nend\n",
		"oasmtp-maildrop 1\nuid -1\nuser a\ntime 1\nend\n",
		"oasmtp-maildrop 1\nuid 1\nuser a\ntime 1\nconfig /x\nend\n",
		"oasmtp-maildrop 1\nuid 1\nuser a\ntime 1\narg \\x00\nend\n",
		"oasmtp-maildrop 1\nuid 1\nuser a\ntime 1\narg \\q\nend\n",
		"oasmtp-maildrop 1\nuid 1\nuser a\ntime 1\narg a\tb\nend\n",
		"oasmtp-maildrop 1\nuid 1\nuser a\ntime 1\n",	/* no end */
	};
	struct maildrop_entry e;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		is_int(maildrop_parse_header(bad[i], strlen(bad[i]), &e, &ei),
			ERR_DATA, "malformed record %zu refused", i);
	}
}

static void
names(void)
{
	is_int(maildrop_name_kind("0123456789abcdef01234567"), 2, "entry");
	is_int(maildrop_name_kind("0123456789abcdef01234567.tmp"), 1, "tmp");
	is_int(maildrop_name_kind("0123456789abcdef0123456"), 0, "short");
	is_int(maildrop_name_kind("0123456789ABCDEF01234567"), 0, "upper");
	is_int(maildrop_name_kind("0123456789abcdef01234567.x"), 0, "other");
	is_int(maildrop_name_kind(".."), 0, "dot-dot");
}

static int
policy(const char *a1, const char *a2, const char *a3)
{
	char *argv[] = { "sendmail", (char *)a1, (char *)a2, (char *)a3,
		NULL };
	int argc = a3 != NULL ? 4 : (a2 != NULL ? 3 : 2);
	struct cli_opts o;
	enum err e;

	if (cli_parse(argc, argv, &o, &ei) != ERR_OK) {
		return -1;
	}
	e = maildrop_check_opts(&o, &ei);
	cli_opts_release(&o);
	return e;
}

static void
options(void)
{
	is_int(policy("-i", "-FCronDaemon", "root"), ERR_OK, "cron ok");
	is_int(policy("-t", "-oem", "-odi"), ERR_OK, "-t -oem -odi ok");
	is_int(policy("-C", "/x", "root"), ERR_USAGE, "-C refused");
	is_int(policy("-tiC/x", "root", NULL), ERR_USAGE,
		"-C in a cluster refused");
	is_int(policy("-oQ/x", "root", NULL), ERR_USAGE, "-oQ refused");
	is_int(policy("-o", "Q/x", "root"), ERR_USAGE, "-o Q refused");
	is_int(policy("-OQueueDirectory=/x", "root", NULL), ERR_USAGE,
		"-OQueueDirectory refused");
	is_int(policy("-a", "x", "root"), ERR_USAGE, "-a refused");
	is_int(policy("-X", "/x", "root"), ERR_USAGE, "-X refused");
	is_int(policy("--pretend", "root", NULL), ERR_USAGE, "--pretend");
	is_int(policy("--system", "root", NULL), ERR_USAGE, "--system");
	is_int(policy("-q", NULL, NULL), ERR_USAGE, "-q refused");
	is_int(policy("-bp", NULL, NULL), ERR_USAGE, "-bp refused");
	contains(errinfo_msg(&ei), "mode", "the mode is named");
}

int
main(void)
{
	round_trip();
	malformed();
	names();
	options();
	return tap_done();
}
