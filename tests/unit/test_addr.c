/*
 * test_addr.c - the RFC 5322 address-list parser and the aliases file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "aliases.h"
#include "buf.h"
#include "tap.h"

/*
 * Each good case: input, then the expected mailboxes rendered as
 * "name|addr" joined by " ; " (name empty when NULL).
 */
struct good {
	const char *in;
	const char *want;
};

static const struct good goods[] = {
	{ "a@example.com", "|a@example.com" },
	{ "  a@example.com  ", "|a@example.com" },
	{ "root", "|root" },
	{ "John Doe <j@x.org>", "John Doe|j@x.org" },
	{ "\"Doe, J\" <j@x>, k@y", "Doe, J|j@x ; |k@y" },
	{ "\"Quote \\\" inside\" <q@x>", "Quote \" inside|q@x" },
	{ "<j@x.org>", "|j@x.org" },
	{ "undisclosed-recipients:;", "" },
	{ "undisclosed-recipients: ;, z@z", "|z@z" },
	{ "a:b@c,d@e;", "|b@c ; |d@e" },
	{ "team: \"B\" <b@c>, d@e;, f@g", "B|b@c ; |d@e ; |f@g" },
	{ "list: x@y", "|x@y" },
	{ "a@b (comment)", "|a@b" },
	{ "(lead) a(in)@(x)b.c (trail (nested))", "|a@b.c" },
	{ "Name (c) <a@b>", "Name|a@b" },
	{ "\"john doe\"@example.com", "|\"john doe\"@example.com" },
	{ "\"a\\\"b\"@x", "|\"a\\\"b\"@x" },
	{ "<@r1.example,@r2.example:a@b>", "|a@b" },
	{ "a@b,,c@d", "|a@b ; |c@d" },
	{ ", a@b ,", "|a@b" },
	{ "j . doe @ x . org", "|j.doe@x.org" },
	{ "J. Doe <j@x>", "J. Doe|j@x" },
	{ "Jörg Müller <jörg@bücher.de>", "Jörg Müller|jörg@bücher.de" },
	{ "\"\" <a@b>", "|a@b" },
	{ "a@[192.0.2.1]", "|a@[192.0.2.1]" },
	{ "\"(Cron Daemon)\" <root>", "(Cron Daemon)|root" },
	{ "mdadm monitoring <root>", "mdadm monitoring|root" },
	{ "a.b+tag@sub.example.com", "|a.b+tag@sub.example.com" },
	{ "", "" },
	{ "\t", "" },
};

struct bad {
	const char *in;
	const char *msg;	/* a substring of the error message */
};

static const struct bad bads[] = {
	{ "\"unterminated", "unterminated quoted string" },
	{ "a@b (open", "unterminated comment" },
	{ "a@[1.2.3.4", "unterminated domain literal" },
	{ "Name <a@b", "missing '>'" },
	{ "Name <a@b, c@d", "missing '>'" },
	{ "<>", "empty address '<>'" },
	{ "@example.com", "missing local part" },
	{ "a@", "expected a domain" },
	{ "a@b.", "expected a domain" },
	{ "John Doe", "unexpected 'Doe'" },
	{ "a@b c@d", "unexpected 'c'" },
	{ "a@b>", "unexpected '>'" },
	{ "a\\b@c", "unexpected character '\\'" },
	{ "a)b", "unexpected character ')'" },
	{ "g1: g2: a@b;;", "nested group" },
	{ "a@b\x01", "control character 0x01" },
	{ "<@r1 a@b>", "malformed source route" },
	{ ":", "expected an address" },
	{ "a.@b", "expected an address" },
	{ "team: d@e; f@g", "unexpected 'f' after group" },
};

static void
render(const struct addr_list *l, struct buf *b)
{
	size_t i;

	buf_reset(b);
	for (i = 0; i < l->n; i++) {
		setup(buf_printf(b, "%s%s|%s", i > 0 ? " ; " : "",
			l->v[i].name != NULL ? l->v[i].name : "", l->v[i].addr));
	}
}

static void
test_parse(void)
{
	struct buf b;
	struct errinfo ei = ERRINFO_INIT;
	size_t i;

	buf_init(&b, 1 << 20);
	for (i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		struct addr_list l;
		enum err rc;

		addr_list_init(&l);
		errinfo_init(&ei);
		rc = addr_parse_list(goods[i].in, strlen(goods[i].in), &l, &ei);
		is_int(rc, ERR_OK, "parse [%s] succeeds", goods[i].in);
		if (rc != ERR_OK) {
			diag("error: %s", errinfo_msg(&ei));
		}
		render(&l, &b);
		is_str(b.data, goods[i].want, "parse [%s]", goods[i].in);
		addr_list_release(&l);
	}
	for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct addr_list l;
		enum err rc;

		addr_list_init(&l);
		errinfo_init(&ei);
		rc = addr_parse_list(bads[i].in, strlen(bads[i].in), &l, &ei);
		is_int(rc, ERR_DATA, "parse [%s] fails with ERR_DATA",
			bads[i].in);
		contains(errinfo_msg(&ei), bads[i].msg, "error for [%s] names the problem",
			bads[i].in);
		addr_list_release(&l);
	}
	buf_release(&b);
}

static void
test_embedded_controls(void)
{
	struct addr_list l;
	struct errinfo ei = ERRINFO_INIT;
	static const char nul[] = "a@b\0c@d";
	static const char crlf[] = "a@b\r\nRCPT TO:<x@y>";

	addr_list_init(&l);
	errinfo_init(&ei);
	is_int(addr_parse_list(nul, sizeof(nul) - 1, &l, &ei), ERR_DATA,
		"NUL inside the value is rejected");
	contains(errinfo_msg(&ei), "0x00", "NUL is named");
	is_int(addr_parse_list(crlf, sizeof(crlf) - 1, &l, &ei), ERR_DATA,
		"CRLF inside the value is rejected");
	is_int(l.n, 0, "nothing was added");
	addr_list_release(&l);
}

static void
test_helpers(void)
{
	ok(addr_is_local("root"), "root is local");
	ok(!addr_is_local("a@b"), "a@b is not local");
	ok(addr_is_local("\"a@b\""), "a quoted @ does not count");
	is_str(addr_domain("\"x@y\"@Example.COM"), "Example.COM",
		"domain after the last unquoted @");
	ok(addr_domain("root") == NULL, "no domain for a local name");
	ok(addr_equal("J@Example.com", "J@example.COM"),
		"domains compare case-insensitively");
	ok(!addr_equal("j@example.com", "J@example.com"),
		"local parts compare exactly");
	ok(addr_equal("root", "root"), "local names compare");
	ok(!addr_equal("root", "root@x"), "local name differs from address");
}

static char *
write_file(const char *text)
{
	char *path = strdup("/tmp/test_addr_aliases_XXXXXX");
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		diag("cannot write a temporary file");
	}
	close(fd);
	return path;
}

static void
expand_to(const struct aliases *a, const char *name, struct buf *b,
	enum err *ret_rc, struct errinfo *ei)
{
	struct addr_list l;

	addr_list_init(&l);
	errinfo_init(ei);
	*ret_rc = aliases_expand(a, name, &l, ei);
	render(&l, b);
	addr_list_release(&l);
}

static void
test_aliases(void)
{
	char *path;
	struct aliases *a = NULL;
	struct errinfo ei = ERRINFO_INIT;
	struct buf b;
	enum err rc;

	buf_init(&b, 1 << 20);
	path = write_file(
		"# system aliases\n"
		"\n"
		"root: admin@example.com\n"
		"  postmaster : root, \"Ops\" <ops@example.com>\r\n"
		"staff: postmaster, boss\n"
		"boss: ceo@example.com\n"
		"loop1: loop2\n"
		"loop2: loop1\n"
		"self: self, other@example.com\n"
		"default: catchall@example.com\n");
	rc = aliases_load(path, &a, &ei);
	is_int(rc, ERR_OK, "aliases file loads");
	if (rc != ERR_OK) {
		diag("%s", errinfo_msg(&ei));
	}
	expand_to(a, "root", &b, &rc, &ei);
	is_str(b.data, "|admin@example.com", "root maps to admin");
	expand_to(a, "ROOT", &b, &rc, &ei);
	is_str(b.data, "|admin@example.com", "names are case-insensitive");
	expand_to(a, "postmaster", &b, &rc, &ei);
	is_str(b.data, "|admin@example.com ; |ops@example.com",
		"recursive expansion, display names dropped");
	expand_to(a, "staff", &b, &rc, &ei);
	is_str(b.data, "|admin@example.com ; |ops@example.com ; "
		"|ceo@example.com", "two levels");
	expand_to(a, "nobody", &b, &rc, &ei);
	is_str(b.data, "|catchall@example.com", "default catches the rest");
	expand_to(a, "x@example.org", &b, &rc, &ei);
	is_str(b.data, "|x@example.org", "addresses with @ are untouched");
	expand_to(a, "self", &b, &rc, &ei);
	is_str(b.data, "|self ; |other@example.com",
		"an alias naming itself stops there");
	expand_to(a, "loop1", &b, &rc, &ei);
	is_int(rc, ERR_CONFIG, "a loop is an error");
	contains(errinfo_msg(&ei), "deeper than", "loop message");
	aliases_free(a);
	unlink(path);
	free(path);

	path = write_file("root admin@example.com\n");
	is_int(aliases_load(path, &a, &ei), ERR_CONFIG, "missing colon");
	contains(errinfo_msg(&ei), ":1: missing ':'", "error has file:line");
	unlink(path);
	free(path);

	path = write_file("# c\nroot: \"unterminated\n");
	is_int(aliases_load(path, &a, &ei), ERR_CONFIG, "bad address list");
	contains(errinfo_msg(&ei), ":2: alias 'root': unterminated quoted string",
		"bad address message has file:line and the alias");
	unlink(path);
	free(path);

	path = write_file("root:\n");
	is_int(aliases_load(path, &a, &ei), ERR_CONFIG, "empty target");
	contains(errinfo_msg(&ei), "no address", "empty target message");
	unlink(path);
	free(path);

	is_int(aliases_load("/nonexistent/aliases", &a, &ei), ERR_CONFIG,
		"missing file");
	contains(errinfo_msg(&ei), "/nonexistent/aliases", "missing file is named");

	/* aliases(5): continuation lines, comments, quoted names */
	path = write_file(
		"root: a@example.com,\n"
		"  b@example.com,\n"
		"# a comment between continuation lines\n"
		"\t\"C\" <c@example.com>\n"
		"\"john smith\": js@example.com\n"
		"  indented: i@example.com\n"
		"pipe: ok@example.com, |/usr/local/bin/x\n"
		"quotedpipe: \"|/bin/sh -c x\"\n"
		"file: /var/mail/x\n"
		"lists: :include:/etc/mail/lists\n"
		"after: z@example.com\n");
	rc = aliases_load(path, &a, &ei);
	is_int(rc, ERR_OK, "aliases(5) file loads");
	if (rc != ERR_OK) {
		diag("%s", errinfo_msg(&ei));
	}
	expand_to(a, "root", &b, &rc, &ei);
	is_str(b.data, "|a@example.com ; |b@example.com ; |c@example.com",
		"continuation lines join the alias");
	expand_to(a, "john smith", &b, &rc, &ei);
	is_str(b.data, "|js@example.com", "quoted name");
	expand_to(a, "indented", &b, &rc, &ei);
	is_str(b.data, "|i@example.com",
		"an indented NAME: line is an alias (msmtp files)");
	expand_to(a, "after", &b, &rc, &ei);
	is_str(b.data, "|z@example.com", "refused aliases do not stop the rest");
	expand_to(a, "pipe", &b, &rc, &ei);
	is_int(rc, ERR_CONFIG, "a |command target is refused");
	is_str(b.data, "", "nothing of it is expanded");
	contains(errinfo_msg(&ei), ":7: alias 'pipe': '|/usr/local/bin/x' is a "
		"command", "pipe message names file:line");
	expand_to(a, "quotedpipe", &b, &rc, &ei);
	is_int(rc, ERR_CONFIG, "a quoted |command target is refused");
	contains(errinfo_msg(&ei), ":8: alias 'quotedpipe'", "quoted pipe line");
	expand_to(a, "file", &b, &rc, &ei);
	is_int(rc, ERR_CONFIG, "a /file target is refused");
	contains(errinfo_msg(&ei), ":9: alias 'file': '/var/mail/x' is a file",
		"file message");
	expand_to(a, "lists", &b, &rc, &ei);
	is_int(rc, ERR_CONFIG, ":include: is refused");
	contains(errinfo_msg(&ei), ":10: alias 'lists': ':include:' is not "
		"supported", "include message names file:line");
	aliases_free(a);
	unlink(path);
	free(path);

	path = write_file("root: a@example.com,\n  |/bin/x\n");
	is_int(aliases_load(path, &a, &ei), ERR_OK, "pipe on a continuation");
	expand_to(a, "root", &b, &rc, &ei);
	is_int(rc, ERR_CONFIG, "pipe on a continuation refused");
	contains(errinfo_msg(&ei), ":1: alias 'root'", "the alias's first line");
	aliases_free(a);
	unlink(path);
	free(path);

	path = write_file("\"open: a@example.com\n");
	is_int(aliases_load(path, &a, &ei), ERR_CONFIG, "unterminated name");
	contains(errinfo_msg(&ei), ":1: unterminated quoted alias name",
		"unterminated name message");
	unlink(path);
	free(path);

	path = write_file("  b@example.com\nroot: a@example.com\n");
	is_int(aliases_load(path, &a, &ei), ERR_CONFIG,
		"a continuation without an alias before it");
	contains(errinfo_msg(&ei), ":1: a continuation line without an alias",
		"stray continuation message");
	unlink(path);
	free(path);

	/* no default: unknown names stay as they are */
	path = write_file("root: a@b\n");
	is_int(aliases_load(path, &a, &ei), ERR_OK, "small file loads");
	expand_to(a, "daemon", &b, &rc, &ei);
	is_str(b.data, "|daemon", "unknown name without default is kept");
	aliases_free(a);
	unlink(path);
	free(path);
	buf_release(&b);
}

int
main(void)
{
	test_parse();
	test_embedded_controls();
	test_helpers();
	test_aliases();
	return tap_done();
}
