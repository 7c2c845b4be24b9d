/*
 * test_paths.c - the per-user base directories (src/paths.c): each
 * variable set, unset, empty and relative (the XDG Base Directory
 * Specification says a relative value is ignored), and the defaults.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "paths.h"
#include "tap.h"

static const char *const vars[] = {
	"HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
	"XDG_CACHE_HOME", "XDG_RUNTIME_DIR", "STATE_DIRECTORY",
};

static void
clear(void)
{
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		unsetenv(vars[i]);
	}
}

/* Check f's result: want NULL means ERR_CONFIG and an empty out. */
static void
expect(enum err (*f)(struct buf *), const char *want, const char *what)
{
	struct buf out;
	enum err e;

	buf_init(&out, 4096);
	if (buf_append_str(&out, "junk") != ERR_OK) {
		tap_ok(0, "%s: setup", what);
	}
	e = f(&out);
	if (want == NULL) {
		tap_ok(e == ERR_CONFIG && out.len == 0, "%s: none (%s)", what,
			err_name(e));
	} else {
		tap_is_int(e, ERR_OK, "%s: ERR_OK", what);
		tap_is_str(buf_cstr(&out), want, "%s", what);
	}
	buf_release(&out);
}

static enum err
home_nopw(struct buf *out)
{
	return paths_home(0, out);
}

static enum err
home_pw(struct buf *out)
{
	return paths_home(1, out);
}

static void
test_defaults(void)
{
	clear();
	setenv("HOME", "/home/u", 1);
	expect(home_nopw, "/home/u", "HOME");
	expect(paths_config_dir, "/home/u/.config", "config: default");
	expect(paths_data_dir, "/home/u/.local/share", "data: default");
	expect(paths_state_dir, "/home/u/.local/state", "state: default");
	expect(paths_cache_dir, "/home/u/.cache", "cache: default");
	expect(paths_runtime_dir, NULL, "runtime: no default");
	expect(paths_volatile_dir, "/home/u/.cache", "volatile: the cache");
}

static void
test_set(void)
{
	clear();
	setenv("HOME", "/home/u", 1);
	setenv("XDG_CONFIG_HOME", "/c", 1);
	setenv("XDG_DATA_HOME", "/d", 1);
	setenv("XDG_STATE_HOME", "/s", 1);
	setenv("XDG_CACHE_HOME", "/k", 1);
	expect(paths_config_dir, "/c", "config: set");
	expect(paths_data_dir, "/d", "data: set");
	expect(paths_state_dir, "/s", "state: set");
	expect(paths_cache_dir, "/k", "cache: set");
	expect(paths_volatile_dir, "/k", "volatile: XDG_CACHE_HOME without a "
		"runtime directory");
	setenv("XDG_RUNTIME_DIR", "/run/user/1", 1);
	expect(paths_runtime_dir, "/run/user/1", "runtime: set");
	expect(paths_volatile_dir, "/run/user/1", "volatile: the runtime "
		"directory first");
}

static void
test_ignored(void)
{
	static const char *const bad[] = { "", "relative/dir", "./x", "~/x" };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		clear();
		setenv("HOME", "/home/u", 1);
		setenv("XDG_CONFIG_HOME", bad[i], 1);
		setenv("XDG_DATA_HOME", bad[i], 1);
		setenv("XDG_STATE_HOME", bad[i], 1);
		setenv("XDG_CACHE_HOME", bad[i], 1);
		setenv("XDG_RUNTIME_DIR", bad[i], 1);
		tap_diag("value '%s'", bad[i]);
		expect(paths_config_dir, "/home/u/.config", "config: ignored");
		expect(paths_data_dir, "/home/u/.local/share", "data: ignored");
		expect(paths_state_dir, "/home/u/.local/state",
			"state: ignored");
		expect(paths_cache_dir, "/home/u/.cache", "cache: ignored");
		expect(paths_runtime_dir, NULL, "runtime: ignored");
		expect(paths_volatile_dir, "/home/u/.cache",
			"volatile: ignored runtime");
	}
}

static void
test_no_home(void)
{
	const struct passwd *pw = getpwuid(getuid());
	struct buf out;
	static const char *const bad[] = { NULL, "", "rel" };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		clear();
		if (bad[i] != NULL) {
			setenv("HOME", bad[i], 1);
		}
		tap_diag("HOME %s%s%s", bad[i] ? "'" : "", bad[i] ? bad[i] :
			"unset", bad[i] ? "'" : "");
		expect(home_nopw, NULL, "no HOME: none without the fallback");
		expect(paths_data_dir, NULL, "no HOME: no data directory");
		expect(paths_cache_dir, NULL, "no HOME: no cache directory");
		expect(paths_volatile_dir, NULL, "no HOME: no volatile one");
		setenv("XDG_DATA_HOME", "/d", 1);
		expect(paths_data_dir, "/d", "no HOME: XDG_DATA_HOME still "
			"counts");
		unsetenv("XDG_DATA_HOME");
		if (pw != NULL && pw->pw_dir != NULL && pw->pw_dir[0] == '/') {
			char want[4096];

			expect(home_pw, pw->pw_dir, "no HOME: password entry");
			snprintf(want, sizeof(want), "%s/.config", pw->pw_dir);
			expect(paths_config_dir, want, "no HOME: config from "
				"the password entry");
			snprintf(want, sizeof(want), "%s/.local/state",
				pw->pw_dir);
			expect(paths_state_dir, want, "no HOME: state from the "
				"password entry (cron with env -i finds the "
				"grant locks)");
		} else {
			expect(home_pw, NULL, "no HOME, no password entry");
		}
	}
	clear();
	buf_init(&out, 64);
	setenv("XDG_CONFIG_HOME", "/c", 1);
	tap_is_int(paths_config_dir_for("/elsewhere", &out), ERR_OK,
		"config_for: ERR_OK");
	tap_is_str(buf_cstr(&out), "/c", "config_for: the variable wins");
	unsetenv("XDG_CONFIG_HOME");
	tap_is_int(paths_config_dir_for("/elsewhere", &out), ERR_OK,
		"config_for: ERR_OK");
	tap_is_str(buf_cstr(&out), "/elsewhere/.config",
		"config_for: the given home");
	buf_release(&out);
}

static void
test_limits(void)
{
	char big[200];
	struct buf out;

	clear();
	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	setenv("XDG_CACHE_HOME", big, 1);
	buf_init(&out, 100);
	tap_is_int(paths_cache_dir(&out), ERR_LIMIT, "too long: ERR_LIMIT");
	tap_is_int((long long)out.len, 0, "too long: out empty");
	buf_release(&out);
}

static void
test_service(void)
{
	clear();
	tap_is_str(paths_service_state_dir("/var/lib/x"), "/var/lib/x",
		"STATE_DIRECTORY unset: the fallback");
	setenv("STATE_DIRECTORY", "/var/lib/oasmtp", 1);
	tap_is_str(paths_service_state_dir("/var/lib/x"), "/var/lib/oasmtp",
		"STATE_DIRECTORY: used");
	setenv("STATE_DIRECTORY", "/a:/b", 1);
	tap_is_str(paths_service_state_dir("/var/lib/x"), "/var/lib/x",
		"STATE_DIRECTORY with two directories: the fallback");
	setenv("STATE_DIRECTORY", "rel", 1);
	tap_is_str(paths_service_state_dir("/var/lib/x"), "/var/lib/x",
		"STATE_DIRECTORY relative: the fallback");
	clear();
}

int
main(void)
{
	test_defaults();
	test_set();
	test_ignored();
	test_no_home();
	test_limits();
	test_service();
	return tap_done();
}
