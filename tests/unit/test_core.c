/* test_core.c - err, buf and util. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "fileio.h"
#include "tap.h"
#include "util.h"

static void
test_exit_codes(void)
{
	static const struct {
		enum err e;
		int code;
	} rows[] = {
		{ ERR_OK, 0 }, { ERR_USAGE, 64 }, { ERR_DATA, 65 },
		{ ERR_RCPT_UNKNOWN, 67 }, { ERR_SMTP_PERM, 69 },
		{ ERR_NOTSUPP, 69 }, { ERR_INTERNAL, 70 }, { ERR_NOMEM, 70 },
		{ ERR_IO, 74 }, { ERR_NET, 75 }, { ERR_TIMEOUT, 75 },
		{ ERR_TLS, 75 }, { ERR_SMTP_TEMP, 75 }, { ERR_TOKEN_TEMP, 75 },
		{ ERR_PROTO, 76 }, { ERR_AUTH, 77 }, { ERR_REAUTH, 77 },
		{ ERR_CONFIG, 78 },
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		is_int(err_exit_code(rows[i].e), rows[i].code, "%s exits %d",
			err_name(rows[i].e), rows[i].code);
	}
	ok(err_is_temporary(ERR_TLS) && !err_is_temporary(ERR_AUTH),
		"TLS failures are temporary, auth failures are not");
	is_int(err_exit_code((enum err)999), EX_SOFTWARE, "unknown code is 70");
}

static void
test_errinfo(void)
{
	struct errinfo ei = ERRINFO_INIT;
	struct errinfo cp = ERRINFO_INIT;
	static char big[100000];
	char reply[3000];

	ok(sizeof(struct errinfo) < 2 * ERRINFO_MSG_MAX,
		"errinfo is small enough for the stack");
	is_int(errinfo_set(&ei, ERR_CONFIG, "%s:%d: bad", "f", 3), ERR_CONFIG,
		"errinfo_set returns the code");
	is_str(ei.msg, "f:3: bad", "message formatted");
	ok(ei.full == NULL, "a short message owns no heap text");
	errinfo_prefix(&ei, "loading '%s': ", "x");
	is_str(errinfo_msg(&ei), "loading 'x': f:3: bad", "prefix added");

	/* a Microsoft-sized reply: cut in msg, whole in errinfo_msg() */
	memset(reply, 'r', sizeof(reply) - 1);
	reply[sizeof(reply) - 1] = '\0';
	errinfo_set(&ei, ERR_AUTH, "AUTH: 535 5.7.139 %s", reply);
	errinfo_set_status(&ei, 535, "5.7.139");
	is_int((long long)strlen(ei.msg), ERRINFO_MSG_MAX - 1,
		"msg is cut to ERRINFO_MSG_MAX");
	ok(strcmp(ei.msg + strlen(ei.msg) - 3, "...") == 0,
		"the cut is marked");
	ok(ei.full != NULL, "a long message is kept on the heap");
	is_int((long long)strlen(errinfo_msg(&ei)),
		(long long)(strlen("AUTH: 535 5.7.139 ") + strlen(reply)),
		"errinfo_msg() shows the whole reply");
	errinfo_prefix(&ei, "authentication failed: ");
	ok(strncmp(errinfo_msg(&ei), "authentication failed: AUTH: 535 ",
		33) == 0, "prefix keeps the long message");
	is_int((long long)strlen(errinfo_msg(&ei)),
		(long long)(strlen("authentication failed: AUTH: 535 5.7.139 ")
		+ strlen(reply)), "nothing lost by the prefix");

	/* copies are deep */
	errinfo_init(&cp);
	is_int(errinfo_copy(&cp, &ei), ERR_AUTH, "copy returns the code");
	ok(cp.full != NULL && cp.full != ei.full, "copy owns its own text");
	is_str(errinfo_msg(&cp), errinfo_msg(&ei), "copy has the same text");
	is_int(cp.smtp_code, 535, "copy keeps the SMTP code");
	is_str(cp.enhanced, "5.7.139", "copy keeps the enhanced code");

	/* recode keeps the message and codes */
	is_int(errinfo_recode(&cp, ERR_PROTO), ERR_PROTO,
		"recode returns the new code");
	is_int(cp.code, ERR_PROTO, "recode changes the code");
	is_int(cp.smtp_code, 535, "recode keeps the SMTP code");
	is_str(errinfo_msg(&cp), errinfo_msg(&ei), "recode keeps the text");

	/* a new error replaces the long one */
	errinfo_set(&cp, ERR_IO, "short");
	ok(cp.full == NULL, "a short message frees the long one");
	is_str(errinfo_msg(&cp), "short", "and is the message");
	errinfo_release(&cp);
	is_int(cp.code, ERR_OK, "release resets the code");
	is_str(errinfo_msg(&cp), "", "release empties the message");

	/* the total is bounded */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	errinfo_set(&ei, ERR_PROTO, "%s", big);
	is_int((long long)strlen(errinfo_msg(&ei)), ERRINFO_TEXT_MAX - 1,
		"long message truncated at ERRINFO_TEXT_MAX");
	ok(strcmp(errinfo_msg(&ei) + strlen(errinfo_msg(&ei)) - 3, "...") == 0,
		"truncation is marked");
	errinfo_release(&ei);
	ok(ei.full == NULL, "release frees the heap text");

	is_int(errinfo_set(NULL, ERR_IO, "x"), ERR_IO, "NULL errinfo tolerated");
	is_int(errinfo_recode(NULL, ERR_NET), ERR_NET, "NULL recode tolerated");
}

/* A buffer with content, released twice (run in a child). */
static void
release_twice(void *arg)
{
	struct buf b;

	(void)arg;
	buf_init_secret(&b, 64);
	if (buf_append_str(&b, "secret") != ERR_OK) {
		abort();
	}
	buf_release(&b);
	buf_release(&b);
}

static void
test_buf(void)
{
	struct buf b;
	char *s;

	buf_init(&b, 8);
	is_str(buf_cstr(&b), "", "new buffer is an empty string");
	is_int(buf_append_str(&b, "abcd"), ERR_OK, "append within limit");
	is_int(buf_printf(&b, "%d", 1234), ERR_OK, "printf to the limit");
	is_str(buf_cstr(&b), "abcd1234", "contents");
	is_int(buf_putc(&b, 'x'), ERR_LIMIT, "append past max is ERR_LIMIT");
	is_str(buf_cstr(&b), "abcd1234", "failed append leaves it unchanged");
	buf_consume(&b, 3);
	is_str(buf_cstr(&b), "d1234", "consume drops the front");
	buf_truncate(&b, 2);
	is_str(buf_cstr(&b), "d1", "truncate");
	s = buf_take(&b);
	is_str(s, "d1", "take hands the string over");
	is_int((long long)b.len, 0, "and empties the buffer");
	free(s);
	buf_release(&b);

	buf_init_secret(&b, 1 << 20);
	for (int i = 0; i < 1000; i++) {
		setup(buf_append_str(&b, "secret"));
	}
	is_int((long long)b.len, 6000, "secret buffer grows");
	buf_release(&b);
	is_int((long long)b.len, 0, "release empties");
	survives(release_twice, NULL, "double release is safe");
	ok(b.data != NULL && b.len == 0, "released buffer still reads as "
		"empty (data never NULL)");
}

static void
test_base64(void)
{
	struct buf b;
	static const struct {
		const char *plain, *enc;
	} rows[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	size_t i;

	buf_init(&b, 1024);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		buf_reset(&b);
		setup(util_base64_encode(&b, rows[i].plain, strlen(rows[i].plain)));
		is_str(buf_cstr(&b), rows[i].enc, "encode '%s'", rows[i].plain);
		buf_reset(&b);
		is_int(util_base64_decode(&b, rows[i].enc, strlen(rows[i].enc)),
			ERR_OK, "decode '%s'", rows[i].enc);
		is_str(buf_cstr(&b), rows[i].plain, "round trip '%s'",
			rows[i].plain);
	}
	buf_reset(&b);
	is_int(util_base64_decode(&b, "Zm9v!", 5), ERR_DATA, "bad character");
	is_int(util_base64_decode(&b, "Z", 1), ERR_DATA, "bad length");
	buf_reset(&b);
	setup(util_base64url_encode(&b, "\xfb\xff", 2));
	is_str(buf_cstr(&b), "-_8", "base64url, no padding");
	buf_release(&b);
}

static void
test_util(void)
{
	static const unsigned char bytes[] = { 0x00, 0x0f, 0xa5, 0xff };
	long v = 0;
	char small[4], hex[2 * sizeof(bytes) + 1];

	util_hex(hex, bytes, sizeof(bytes));
	is_str(hex, "000fa5ff", "util_hex: lowercase, two digits a byte");
	util_hex(hex, bytes, 0);
	is_str(hex, "", "util_hex: nothing");
	is_int(util_hexval('f') * 16 + util_hexval('A'), 0xfa,
		"util_hexval: either case");
	is_int(util_parse_long("587", 1, 65535, &v), 0, "parse port");
	is_int(v, 587, "value");
	is_int(util_parse_long("70000", 1, 65535, &v), -1, "out of range");
	is_int(util_parse_long("12x", 0, 100, &v), -1, "junk");
	is_int(util_parse_long("", 0, 100, &v), -1, "empty");
	is_int(util_parse_long(" 5", 0, 100, &v), -1, "leading blank");
	is_int(util_parse_long("+5", 0, 100, &v), -1, "plus sign");
	is_int(util_parse_long("-5", -10, 100, &v), 0, "negative number");
	is_int(v, -5, "negative value");
	is_int((long long)util_strlcpy(small, "abcdef", sizeof(small)), 6,
		"strlcpy returns source length");
	is_str(small, "abc", "strlcpy truncates");
	is_int(util_strcasecmp("EHLO", "ehlo"), 0, "case-insensitive equal");
	ok(util_strncasecmp("AUTH PLAIN", "auth", 4) == 0, "prefix compare");
	ok(util_now_ms() > 0, "monotonic clock");
	is_int(util_parse_duration("5d", 0, 10L * 86400, &v), 0, "5d");
	is_int(v, 5L * 86400, "5d in seconds");
	ok(util_parse_duration("90m", 0, 86400, &v) == 0 && v == 5400, "90m");
	ok(util_parse_duration("2w", 0, 30L * 86400, &v) == 0 &&
		v == 14L * 86400, "2w");
	ok(util_parse_duration("3600", 0, 86400, &v) == 0 && v == 3600,
		"no suffix: seconds");
	ok(util_parse_duration("2d", 0, 86400, &v) != 0, "above max");
	ok(util_parse_duration("5s", 10, 86400, &v) != 0, "below min");
	ok(util_parse_duration("", 0, 86400, &v) != 0 &&
		util_parse_duration("d", 0, 86400, &v) != 0 &&
		util_parse_duration("-1d", 0, 86400, &v) != 0 &&
		util_parse_duration("1x", 0, 86400, &v) != 0 &&
		util_parse_duration("99999999999999999999d", 0, 86400, &v) != 0,
		"junk, sign, bad suffix and overflow refused");
	{
		char tmpl[] = "/tmp/oasmtp-core.XXXXXX";
		char sub[64], link[64];
		struct errinfo ei = ERRINFO_INIT;
		struct stat st;

		if (mkdtemp(tmpl) == NULL) {
			ok(0, "mkdtemp");
			return;
		}
		snprintf(sub, sizeof(sub), "%s/d", tmpl);
		snprintf(link, sizeof(link), "%s/l", tmpl);
		is_int(fileio_mkdir_private(sub, &ei), ERR_OK, "private dir made");
		ok(stat(sub, &st) == 0 && (st.st_mode & 0777) == 0700,
			"  with mode 0700");
		chmod(sub, 0777);
		is_int(fileio_mkdir_private(sub, &ei), ERR_CONFIG,
			"world-writable dir refused");
		contains(ei.msg, "chmod 700", "  message has the fix");
		chmod(sub, 0700);
		ok(symlink(sub, link) == 0, "symlink made");
		is_int(fileio_mkdir_private(link, &ei), ERR_CONFIG,
			"symlink to a dir refused");
		unlink(link);
		rmdir(sub);
		rmdir(tmpl);
	}
	{
		struct buf b;

		buf_init(&b, 256);
		is_int(util_escape_ctl(&b, "a\tb\r\n\x1b[1m\x7f\0z", 12),
			ERR_OK, "escape_ctl");
		is_str(buf_cstr(&b), "a\tb\\x0d\\x0a\\x1b[1m\\x7f\\x00z",
			"controls but TAB escaped, NUL included");
		buf_release(&b);
	}
}

/*
 * The exit-status table in doc/oasmtp.1.scd must list every status that
 * err_exit_code() can return, with the sysexits name of that status.
 */
static void
test_man_page_table(void)
{
	static const struct {
		int code;
		const char *name;
	} names[] = {
		{ 0, "EX_OK" }, { 64, "EX_USAGE" }, { 65, "EX_DATAERR" },
		{ 67, "EX_NOUSER" }, { 68, "EX_NOHOST" }, { 69, "EX_UNAVAILABLE" },
		{ 70, "EX_SOFTWARE" }, { 74, "EX_IOERR" }, { 75, "EX_TEMPFAIL" },
		{ 76, "EX_PROTOCOL" }, { 77, "EX_NOPERM" }, { 78, "EX_CONFIG" },
	};
	char path[4096], line[512], row[64];
	int listed[256] = { 0 };
	const char *dir = getenv("TEST_DATA");
	FILE *f;
	int e;

	snprintf(path, sizeof(path), "%s/../doc/oasmtp.1.scd",
		dir ? dir : "tests");
	f = fopen(path, "r");
	if (!ok(f != NULL, "man page %s readable", path)) {
		return;
	}
	/* rows look like "|  75" followed by ":  EX_TEMPFAIL" */
	while (fgets(line, sizeof(line), f) != NULL) {
		long code;

		if (line[0] != '|') {
			continue;
		}
		if (sscanf(line, "| %63s", row) != 1 ||
			util_parse_long(row, 0, 255, &code) != 0) {
			continue;
		}
		if (fgets(line, sizeof(line), f) == NULL) {
			break;
		}
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			if (names[i].code == code) {
				contains(line, names[i].name,
					"man page row %ld is %s", code,
					names[i].name);
				listed[code] = 1;
			}
		}
	}
	fclose(f);
	for (e = 0; e < ERR_MAX; e++) {
		ok(listed[err_exit_code((enum err)e)],
			"exit status %d of %s is documented",
			err_exit_code((enum err)e), err_name((enum err)e));
	}
}

int
main(void)
{
	test_man_page_table();
	test_exit_codes();
	test_errinfo();
	test_buf();
	test_base64();
	test_util();
	return tap_done();
}
