/*
 * test_netrc.c - netrc lookups (src/base/netrc.c): msmtp's matching rule
 * (machine = host exactly; login = user, or no login), quoting, macdef
 * bodies and default entries skipped, private files only, $NETRC.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "netrc.h"
#include "tap.h"

static char dir[] = "/tmp/oasmtp-test-netrc-XXXXXX";
static char path[256];

static void
put(const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		ok(0, "cannot write %s", path);
		return;
	}
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

/* want NULL: no match (ERR_OK, not found). */
static void
expect(const char *text, const char *host, const char *user,
	const char *want, const char *what)
{
	struct errinfo ei = ERRINFO_INIT;
	struct buf pw;
	int found = -1;
	enum err e;

	put(text, 0600);
	buf_init_secret(&pw, 4096);
	e = netrc_lookup(path, 0, host, user, &pw, &found, &ei);
	if (is_int(e, ERR_OK, "%s: ok", what)) {
		is_int(found, want != NULL, "%s: found", what);
		is_str(buf_cstr(&pw), want != NULL ? want : "", "%s: password",
			what);
	} else {
		diag("%s", errinfo_msg(&ei));
	}
	buf_release(&pw);
	errinfo_release(&ei);
}

static void
expect_error(const char *text, mode_t mode, const char *needle,
	const char *what)
{
	struct errinfo ei = ERRINFO_INIT;
	struct buf pw;
	int found = -1;

	put(text, mode);
	buf_init_secret(&pw, 4096);
	is_int(netrc_lookup(path, 0, "h", "u", &pw, &found, &ei), ERR_CONFIG,
		"%s: configuration error", what);
	contains(errinfo_msg(&ei), needle, "%s: message", what);
	is_int(found, 0, "%s: nothing found", what);
	is_int((long long)pw.len, 0, "%s: no password handed out", what);
	buf_release(&pw);
	errinfo_release(&ei);
}

int
main(void)
{
	struct errinfo ei = ERRINFO_INIT;
	struct buf pw, p;
	int found = -1;

	if (mkdtemp(dir) == NULL) {
		ok(0, "mkdtemp");
		return tap_done();
	}
	snprintf(path, sizeof(path), "%s/netrc", dir);

	expect("machine h login u password p1\n", "h", "u", "p1", "one line");
	expect("machine h\n\tlogin u\n\tpassword p1\n", "h", "u", "p1",
		"one entry over lines");
	expect("machine h login v password no\nmachine h login u password "
		"yes\n", "h", "u", "yes", "login must match");
	expect("machine hh login u password no\nmachine h login u password "
		"yes\n", "h", "u", "yes", "host matches exactly");
	expect("machine H login u password no\n", "h", "u", NULL,
		"host case matters (as msmtp)");
	expect("machine h password nologin\n", "h", "u", "nologin",
		"an entry without login matches any user");
	expect("default login u password d\n", "h", "u", NULL,
		"default entries are not used (as msmtp)");
	expect("machine h login u password \"with \\\"quote\\\" and space\"\n",
		"h", "u", "with \"quote\" and space", "quoted password");
	expect("macdef init\nmachine h login u password macro\n\n"
		"machine h login u password real\n", "h", "u", "real",
		"macdef body skipped");
	expect("machine h login u account acct password p\n", "h", "u", "p",
		"account value skipped");
	expect("machine h login u\n", "h", "u", NULL,
		"entry without password");
	expect("", "h", "u", NULL, "empty file");

	expect_error("machine h login u password p\n", 0640,
		"is accessible by others", "group-readable file");
	expect_error("machine h login u password p\n", 0644,
		"is accessible by others", "group- and world-readable file");
	expect_error("machine h login u password p\n", 0604, "chmod 600",
		"world-readable file names the fix");
	expect_error("machine\n", 0600, "'machine' without a host name",
		"machine without name");
	expect_error("machine h login u password\n", 0600,
		"'password' without a value", "password without value");
	expect_error("login u password p\n", 0600,
		"before the first 'machine'", "text before machine");

	/* a missing file is no match */
	unlink(path);
	buf_init_secret(&pw, 4096);
	is_int(netrc_lookup(path, 0, "h", "u", &pw, &found, &ei), ERR_OK,
		"missing file: ok");
	is_int(found, 0, "missing file: nothing found");

	/* $NETRC, else HOME/.netrc */
	buf_init(&p, 4096);
	setenv("NETRC", "/x/my-netrc", 1);
	if (is_int(netrc_user_file(&p), ERR_OK, "NETRC: ok")) {
		is_str(buf_cstr(&p), "/x/my-netrc", "NETRC names the file");
	}
	setenv("NETRC", "", 1);
	setenv("HOME", "/home/someone", 1);
	if (is_int(netrc_user_file(&p), ERR_OK, "empty NETRC: ok")) {
		is_str(buf_cstr(&p), "/home/someone/.netrc",
			"empty NETRC: HOME/.netrc");
	}
	buf_release(&p);
	buf_release(&pw);
	rmdir(dir);
	return tap_done();
}
