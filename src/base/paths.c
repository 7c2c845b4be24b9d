/* paths.c - the per-user base directories; see paths.h. */
#include "paths.h"

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The value of an XDG variable, or NULL when it must be ignored. */
static const char *
absolute_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] == '/' ? v : NULL;
}

/* out = dir + tail; ERR_CONFIG when dir is NULL; out empty on failure. */
static MUST_CHECK enum err
put(struct buf *out, const char *dir, const char *tail)
{
	enum err e;

	buf_reset(out);
	if (dir == NULL) {
		return ERR_CONFIG;
	}
	e = buf_append_str(out, dir);
	if (e == ERR_OK) {
		e = buf_append_str(out, tail);
	}
	if (e != ERR_OK) {
		buf_reset(out);
	}
	return e;
}

/* $HOME when absolute, else (with passwd) the passwd entry's; or NULL. */
static const char *
home_dir(int passwd)
{
	const char *home = absolute_env("HOME");

	if (home == NULL && passwd) {
		const struct passwd *pw = getpwuid(getuid());

		if (pw != NULL && pw->pw_dir != NULL && pw->pw_dir[0] == '/') {
			home = pw->pw_dir;
		}
	}
	return home;
}

enum err
paths_home(int passwd, struct buf *out)
{
	return put(out, home_dir(passwd), "");
}

/* $var when absolute, else home (with or without passwd) + tail. */
static MUST_CHECK enum err
xdg_dir(const char *var, int passwd, const char *tail, struct buf *out)
{
	const char *v = absolute_env(var);

	return v != NULL ? put(out, v, "") : put(out, home_dir(passwd), tail);
}

enum err
paths_config_dir_for(const char *home, struct buf *out)
{
	const char *v = absolute_env("XDG_CONFIG_HOME");

	if (v == NULL && home != NULL) {
		return put(out, home, "/.config");
	}
	return xdg_dir("XDG_CONFIG_HOME", 1, "/.config", out);
}

enum err
paths_config_dir(struct buf *out)
{
	return paths_config_dir_for(NULL, out);
}

enum err
paths_data_dir(struct buf *out)
{
	return xdg_dir("XDG_DATA_HOME", 0, "/.local/share", out);
}

enum err
paths_state_dir(struct buf *out)
{
	return xdg_dir("XDG_STATE_HOME", 1, "/.local/state", out);
}

enum err
paths_cache_dir(struct buf *out)
{
	return xdg_dir("XDG_CACHE_HOME", 0, "/.cache", out);
}

enum err
paths_runtime_dir(struct buf *out)
{
	return put(out, absolute_env("XDG_RUNTIME_DIR"), "");
}

enum err
paths_volatile_dir(struct buf *out)
{
	enum err e = paths_runtime_dir(out);

	return e == ERR_CONFIG ? paths_cache_dir(out) : e;
}

const char *
paths_service_state_dir(const char *fallback)
{
	const char *s = getenv("STATE_DIRECTORY");

	/* systemd joins several directories with ':' */
	if (s != NULL && s[0] == '/' && strchr(s, ':') == NULL) {
		return s;
	}
	return fallback;
}
