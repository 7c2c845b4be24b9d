/* test_reply.c - the strict SMTP reply parser. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "smtp_reply.h"
#include "tap.h"

static struct errinfo ei;

static enum err
feed(struct smtp_reply *r, const char *line, int enh, int *done)
{
	errinfo_release(&ei);
	return smtp_reply_feed(r, line, strlen(line), enh, done, &ei);
}

/*
 * One reply line (after prev, when given, which must be accepted): the
 * result, and for accepted lines the code and the enhanced status parsed
 * (with or without ENHANCEDSTATUSCODES); for refused ones what the error
 * names.  len 0: strlen(line).
 */
static const struct {
	const char *prev;
	const char *line;
	size_t len;
	int enh;
	enum err want;
	int code;
	const char *enhanced;
	const char *has;
	const char *what;
} cases[] = {
	{ NULL, "550 5.1.1 <x@y>: no such user", 0, 1, ERR_OK, 550, "5.1.1",
		NULL, "enhanced parsed" },
	{ NULL, "550 5.1.1 no", 0, 0, ERR_OK, 550, "", NULL,
		"not parsed without ENHANCEDSTATUSCODES" },
	{ NULL, "550 4.1.1 class mismatch", 0, 1, ERR_OK, 550, "", NULL,
		"class must match the code" },
	{ NULL, "250 2.1.5", 0, 1, ERR_OK, 250, "2.1.5", NULL,
		"enhanced at end of line" },
	{ NULL, "250 2.1234.5 x", 0, 1, ERR_OK, 250, "", NULL,
		"four-digit subject is not a code" },
	{ "250-a", "251 b", 0, 0, ERR_PROTO, 0, NULL, "251 b",
		"code mismatch in a multi-line reply" },
	{ NULL, "2x0 hi", 0, 0, ERR_PROTO, 0, NULL, "2x0 hi",
		"non-digit code" },
	{ NULL, "650 hi", 0, 0, ERR_PROTO, 0, NULL, "650 hi",
		"first digit 6" },
	{ NULL, "260 hi", 0, 0, ERR_PROTO, 0, NULL, "260 hi",
		"second digit 6" },
	{ NULL, "25", 0, 0, ERR_PROTO, 0, NULL, "25", "short line" },
	{ NULL, "250x", 0, 0, ERR_PROTO, 0, NULL, "250x",
		"bad separator" },
	{ NULL, "250 a\0b", 7, 0, ERR_PROTO, 0, NULL, "\\x00",
		"NUL refused, escaped in the message" },
	{ NULL, "250 a\rb", 0, 0, ERR_PROTO, 0, NULL, "\\x0d",
		"bare CR refused, escaped in the message" },
	{ NULL, "250 tab\there \xc3\xa9", 0, 0, ERR_OK, 250, "", NULL,
		"tab and UTF-8 accepted" },
};

static void
one_line_cases(struct smtp_reply *r)
{
	size_t i;
	int done;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *line = cases[i].line;
		size_t len = cases[i].len > 0 ? cases[i].len : strlen(line);
		enum err e;

		/* a fresh parser: a refused line leaves the reply undefined */
		smtp_reply_release(r);
		smtp_reply_init(r);
		if (cases[i].prev != NULL) {
			is_int(feed(r, cases[i].prev, 0, &done), ERR_OK,
				"%s: first line", cases[i].what);
		}
		errinfo_init(&ei);
		e = smtp_reply_feed(r, line, len, cases[i].enh, &done, &ei);
		is_int(e, cases[i].want, "%s", cases[i].what);
		if (cases[i].want == ERR_OK) {
			ok(done && r->code == cases[i].code, "  complete, "
				"code %d", cases[i].code);
			is_str(r->enhanced, cases[i].enhanced,
				"  enhanced status");
		} else {
			contains(errinfo_msg(&ei), cases[i].has, "  the error shows "
				"'%s'", cases[i].has);
		}
	}
}

int
main(void)
{
	struct smtp_reply r;
	struct buf b;
	const char *l;
	size_t n;
	int done = -1;
	char *big;

	smtp_reply_init(&r);

	is_int(feed(&r, "250-mx.example.com hello", 0, &done), ERR_OK,
		"first line");
	is_int(done, 0, "continuation does not complete");
	is_int(feed(&r, "250-PIPELINING", 0, &done), ERR_OK, "second line");
	is_int(feed(&r, "250 SIZE 1000", 0, &done), ERR_OK, "last line");
	is_int(done, 1, "space ends the reply");
	is_int(r.code, 250, "code");
	is_int((long long)r.n_lines, 3, "three lines");
	l = smtp_reply_line(&r, 1, &n);
	is_mem(l, n, "PIPELINING", 10, "line text without prefix");
	ok(smtp_reply_line(&r, 3, &n) == NULL, "out of range line");
	buf_init(&b, 4096);
	setup(smtp_reply_format(&r, &b));
	is_str(buf_cstr(&b), "250-mx.example.com hello / 250-PIPELINING / "
		"250 SIZE 1000", "formatted reply");

	/* a new reply starts after a complete one */
	is_int(feed(&r, "220", 0, &done), ERR_OK, "bare code");
	ok(done && r.code == 220 && r.n_lines == 1, "bare code completes");
	l = smtp_reply_line(&r, 0, &n);
	is_int((long long)n, 0, "bare code has empty text");

	one_line_cases(&r);

	/*
	 * issue 13 (8): any number of lines within the size bound (an EHLO
	 * of 200 lines), and a reply over the total bound is a protocol
	 * error that says so
	 */
	{
		int i;
		enum err e = ERR_OK;
		char *line = malloc(60 * 1024 + 1);

		for (i = 0; i < 199 && e == ERR_OK; i++) {
			e = feed(&r, "250-X-EXTENSION-NUMBER-MANY", 0, &done);
		}
		is_int(e, ERR_OK, "199 continuation lines are fine");
		is_int(feed(&r, "250 SIZE 1000", 0, &done), ERR_OK,
			"the 200th line ends the reply");
		ok(done && r.n_lines == 200, "200 lines read");
		l = smtp_reply_line(&r, 199, &n);
		ok(l != NULL && n == 9 && memcmp(l, "SIZE 1000", 9) == 0,
			"the last line is there");
		for (i = 0; i < 20000 && e == ERR_OK; i++) {
			e = feed(&r, "250-x", 0, &done);
		}
		is_int(e, ERR_OK, "20000 short lines are fine too");
		feed(&r, "250 x", 0, &done);
		/* 60 KiB lines: the fifth passes 256 KiB */
		memset(line, 'y', 60 * 1024);
		memcpy(line, "250-", 4);
		line[60 * 1024] = '\0';
		for (i = 0; i < 4; i++) {
			e = feed(&r, line, 0, &done);
		}
		is_int(e, ERR_OK, "four 60 KiB lines fit");
		is_int(feed(&r, line, 0, &done), ERR_PROTO,
			"the fifth goes over the total bound");
		contains(errinfo_msg(&ei), "longer than 262144 bytes in total",
			"says why (%s)", errinfo_msg(&ei));
		contains(errinfo_msg(&ei), "(4 lines read)", "and how far");
		is_int(feed(&r, "250 ok", 0, &done), ERR_OK,
			"the parser is usable again");
		free(line);
	}

	/* a 70 KiB line is refused and shown */
	big = malloc(70 * 1024 + 1);
	memset(big, 'A', 70 * 1024);
	memcpy(big, "554 5.2.252 SendAsDenied; ", 26);
	big[70 * 1024] = '\0';
	is_int(feed(&r, big, 1, &done), ERR_PROTO, "70 KiB line refused");
	contains(errinfo_msg(&ei), "554 5.2.252 SendAsDenied; AAAA",
		"error shows the line");
	/* a 60 KiB line is fine and kept whole */
	big[60 * 1024] = '\0';
	is_int(feed(&r, big, 1, &done), ERR_OK, "60 KiB line accepted");
	is_int((long long)r.text.len, 60 * 1024, "kept whole");
	free(big);

	buf_release(&b);
	smtp_reply_release(&r);
	return tap_done();
}
