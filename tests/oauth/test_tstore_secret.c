/*
 * test_tstore_secret.c - the secret-service store against a real
 * gnome-keyring (argument "keyring", run by run_keyring.sh inside a private
 * D-Bus session) or with no reachable bus at all (argument "nobus").
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "err.h"
#include "tap.h"
#include "tstore.h"

static struct errinfo ei;

static int
run(char *const argv[])
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		/* keep the TAP stream clean */
		if (freopen("/dev/null", "w", stdout) == NULL) {
			_exit(126);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		return -1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_nobus(struct tstore *ts, struct buf *b)
{
	enum err e = tstore_load(ts, b, &ei);

	is_int(e, ERR_TOKEN_TEMP, "no session bus -> ERR_TOKEN_TEMP");
	contains(errinfo_msg(&ei), "no Secret Service reachable", "message says why (%s)",
		errinfo_msg(&ei));
}

/*
 * A previous refresh token 0.1.0 kept in the item's JSON
 * ("previous_refresh_token"): loading ignores it, drop_previous and a
 * plain save (import, a rotation) remove it.
 */
static void
test_previous(struct tstore *ts, struct buf *b)
{
	enum err e;
	char *plant[] = { (char *)"sh", (char *)"-c",
		(char *)"printf '%s' '{\"refresh_token\":\"rt-3\","
		"\"previous_refresh_token\":\"rt-2\"}' | secret-tool store "
		"--label=x service oasmtp account kr user joe@example.com",
		NULL };
	char *alone[] = { (char *)"sh", (char *)"-c",
		(char *)"test \"$(secret-tool lookup service oasmtp "
		"account kr user joe@example.com)\" = "
		"'{\"refresh_token\":\"rt-3\"}'", NULL };

	is_int(tstore_erase(ts, &ei), ERR_OK, "erase (%s)", errinfo_msg(&ei));
	is_int(run(plant), 0, "a 0.1.0 item with a previous token");
	e = tstore_load(ts, b, &ei);
	is_int(e, ERR_OK, "load (%s)", errinfo_msg(&ei));
	is_str(buf_cstr(b), "rt-3", "load gives the current token");
	e = tstore_drop_previous(ts, &ei);
	is_int(e, ERR_OK, "drop_previous (%s)", errinfo_msg(&ei));
	is_int(run(alone), 0, "JSON without the previous field");
	e = tstore_load(ts, b, &ei);
	is_str(buf_cstr(b), "rt-3", "current token kept");
	is_int(tstore_drop_previous(ts, &ei), ERR_OK,
		"drop_previous without one is fine");
	is_int(tstore_erase(ts, &ei), ERR_OK, "erase (%s)", errinfo_msg(&ei));
	is_int(run(plant), 0, "the 0.1.0 item again");
	e = tstore_save(ts, "rt-3", &ei);
	is_int(e, ERR_OK, "plain save (import) (%s)", errinfo_msg(&ei));
	is_int(run(alone), 0, "a plain save drops the previous token");
}

static void
test_keyring(struct tstore *ts, struct buf *b)
{
	enum err e;

	errinfo_init(&ei);
	e = tstore_load(ts, b, &ei);
	is_int(e, ERR_REAUTH, "absent item -> ERR_REAUTH (%s)", errinfo_msg(&ei));
	contains(errinfo_msg(&ei), "oasmtp-token authorize kr", "names the command");

	e = tstore_save(ts, "rt-\"quoted\"\\1", &ei);
	is_int(e, ERR_OK, "save (%s)", errinfo_msg(&ei));
	e = tstore_load(ts, b, &ei);
	is_int(e, ERR_OK, "load after save (%s)", errinfo_msg(&ei));
	is_str(buf_cstr(b), "rt-\"quoted\"\\1", "round trip through JSON");
	e = tstore_save(ts, "rt-2", &ei);
	e = tstore_load(ts, b, &ei);
	is_str(buf_cstr(b), "rt-2", "save replaces the item (same attributes)");
	test_previous(ts, b);
	{
		/* one item only: a search with secret-tool finds exactly one */
		char *argv[] = { (char *)"sh", (char *)"-c",
			(char *)"test \"$(secret-tool search --all service oasmtp "
			"account kr 2>&1 | grep -c '^\\[')\" = 1", NULL };

		is_int(run(argv), 0, "no duplicate items");
	}
	{
		/*
		 * A bare token stored by hand with secret-tool, the way 0.1.0
		 * items look (no grant attribute), is accepted when the grant
		 * has no item of its own, and migrated: it gets the grant's
		 * attributes.
		 */
		char *argv[] = { (char *)"sh", (char *)"-c",
			(char *)"printf 'rt-bare\\n' | secret-tool store "
			"--label=x service oasmtp account kr user joe@example.com",
			NULL };
		char *migrated[] = { (char *)"sh", (char *)"-c",
			(char *)"secret-tool search --all service oasmtp account "
			"kr 2>&1 | grep -c '^attribute.grant = [0-9a-f]\\{32\\}$'",
			NULL };

		is_int(tstore_erase(ts, &ei), ERR_OK, "erase (%s)", errinfo_msg(&ei));
		is_int(run(argv), 0, "secret-tool store");
		e = tstore_load(ts, b, &ei);
		is_str(buf_cstr(b), "rt-bare", "bare secret taken as the token");
		is_int(run(migrated), 0, "and migrated to the grant's attributes");
	}
	{
		/*
		 * `account default : kr`: a 0.1.0 item stored under kr is the
		 * alias's too (issue 13: no second grant for one mailbox); it
		 * is found by the user and migrated once, for both names.
		 */
		char *argv[] = { (char *)"sh", (char *)"-c",
			(char *)"printf 'rt-alias\\n' | secret-tool store "
			"--label=x service oasmtp account kr user joe@example.com",
			NULL };
		struct account alias = *ts->acc;
		struct tstore *as = NULL;

		is_int(tstore_erase(ts, &ei), ERR_OK, "erase (%s)", errinfo_msg(&ei));
		is_int(run(argv), 0, "a 0.1.0 item of account kr");
		alias.name = (char *)"default";
		is_int(tstore_open(&alias, &as, &ei), ERR_OK, "alias store");
		errinfo_init(&ei);
		e = tstore_load(as, b, &ei);
		is_int(e, ERR_OK, "the alias finds it (%s)", errinfo_msg(&ei));
		is_str(buf_cstr(b), "rt-alias", "kr's token");
		e = tstore_save(as, "rt-alias-2", &ei);
		is_int(e, ERR_OK, "the alias saves (%s)", errinfo_msg(&ei));
		e = tstore_load(ts, b, &ei);
		is_str(buf_cstr(b), "rt-alias-2", "kr reads what the alias saved: "
			"one item for the grant");
		tstore_free(as);
		is_int(tstore_save(ts, "rt-bare", &ei), ERR_OK, "restore");
	}
	{
		char *argv[] = { (char *)"gdbus", (char *)"call", (char *)"--session",
			(char *)"--dest", (char *)"org.freedesktop.secrets",
			(char *)"--object-path", (char *)"/org/freedesktop/secrets",
			(char *)"--method",
			(char *)"org.freedesktop.Secret.Service.Lock",
			(char *)"['/org/freedesktop/secrets/collection/login']",
			NULL };

		is_int(run(argv), 0, "lock the login collection");
		errinfo_init(&ei);
		e = tstore_load(ts, b, &ei);
		is_int(e, ERR_TOKEN_TEMP, "locked keyring -> ERR_TOKEN_TEMP");
		contains(errinfo_msg(&ei), "is locked", "message says locked (%s)", errinfo_msg(&ei));
		e = tstore_save(ts, "rt-3", &ei);
		is_int(e, ERR_TOKEN_TEMP, "save into a locked keyring refused");
	}
	{
		char *argv[] = { (char *)"sh", (char *)"-c",
			(char *)"printf test-keyring-pw | gnome-keyring-daemon "
			"--replace --unlock --components=secrets >/dev/null && "
			"sleep 1", NULL };

		run(argv);
		e = tstore_load(ts, b, &ei);
		is_str(buf_cstr(b), "rt-bare", "readable again once unlocked");
		e = tstore_save(ts, "rt-5", &ei);
		is_int(e, ERR_OK, "save over a bare secret (%s)",
			errinfo_msg(&ei));
		e = tstore_erase(ts, &ei);
		is_int(e, ERR_OK, "erase (%s)", errinfo_msg(&ei));
		e = tstore_load(ts, b, &ei);
		is_int(e, ERR_REAUTH, "absent after erase");
	}
}

int
main(int argc, char **argv)
{
	struct account acc;
	struct tstore *ts = NULL;
	struct buf b;

	memset(&acc, 0, sizeof(acc));
	acc.name = (char *)"kr";
	acc.user = (char *)"joe@example.com";
	acc.oauth2_token_store = (char *)"secret-service";
	buf_init_secret(&b, 65536);
	is_int(tstore_open(&acc, &ts, &ei), ERR_OK, "secret-service store opens");
	if (ts == NULL) {
		return tap_done();
	}
	if (argc > 1 && strcmp(argv[1], "keyring") == 0) {
		test_keyring(ts, &b);
	} else {
		test_nobus(ts, &b);
	}
	tstore_free(ts);
	buf_release(&b);
	return tap_done();
}
