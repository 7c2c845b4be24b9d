/*
 * paths.h - the per-user base directories (XDG Base Directory
 * Specification) and the home directory.
 *
 * This module is the only reader of HOME, XDG_CONFIG_HOME, XDG_DATA_HOME,
 * XDG_STATE_HOME, XDG_CACHE_HOME and XDG_RUNTIME_DIR: everything else asks it, so that the
 * rules below hold everywhere.  libc only; it never prints and never
 * creates a directory.
 *
 * The rules (XDG Base Directory Specification 0.8):
 *   - a variable that is unset, empty or not an absolute path is ignored
 *     ("If an implementation encounters a relative path in any of these
 *     variables it should consider the path invalid and ignore it");
 *   - the defaults are built on the home directory: $HOME when it is an
 *     absolute path, else (paths_home only, see there) the password entry.
 *
 * System mode (oasmtp --system, oasmtp-token --system, the system queue
 * runner) uses none of the per-user directories: everything it keeps is
 * under paths_service_state_dir() (see sysmode.h), never under a caller's
 * home, whoever runs it.
 *
 * Every function writes the directory, without a trailing '/', into out
 * (reset first) and returns ERR_OK, or ERR_CONFIG when there is no such
 * directory (the caller words the error: it knows which setting fixes it),
 * or ERR_LIMIT / ERR_NOMEM when out cannot hold it (out is then empty).
 */
#ifndef OASMTP_PATHS_H
#define OASMTP_PATHS_H

#include "buf.h"
#include "err.h"

/*
 * The home directory: $HOME when it is an absolute path.  With passwd set,
 * an unset, empty or relative HOME falls back to the password entry of the
 * real user (getpwuid), as the configuration file search always did; the
 * data, cache and state directories do not fall back (a service without
 * HOME is told to set the path it needs instead).
 */
MUST_CHECK enum err paths_home(int passwd, struct buf *out);

/*
 * The configuration base: $XDG_CONFIG_HOME, else ~/.config (home with the
 * password fallback).  The oasmtp files are oasmtp/config below it.
 */
MUST_CHECK enum err paths_config_dir(struct buf *out);

/* The same with another home directory for the default (NULL: as above). */
MUST_CHECK enum err paths_config_dir_for(const char *home, struct buf *out);

/*
 * The data base: $XDG_DATA_HOME, else $HOME/.local/share.  The personal
 * queue is oasmtp/queue below it.
 */
MUST_CHECK enum err paths_data_dir(struct buf *out);

/* The cache base: $XDG_CACHE_HOME, else $HOME/.cache. */
MUST_CHECK enum err paths_cache_dir(struct buf *out);

/*
 * The runtime base: $XDG_RUNTIME_DIR (per login, private, memory-backed,
 * removed at logout); there is no default: ERR_CONFIG when it is not set.
 */
MUST_CHECK enum err paths_runtime_dir(struct buf *out);

/*
 * The state base: $XDG_STATE_HOME, else ~/.local/state (data that should
 * outlive a reboot but is not worth a backup), with the home directory's
 * password fallback: every context of one user (a desktop session, cron,
 * `env -i`, a systemd timer, `sudo -u`) must reach the same directory,
 * since the OAuth2 grants' refresh locks and token caches live there
 * (token_cache.h).
 */
MUST_CHECK enum err paths_state_dir(struct buf *out);

/*
 * Where oasmtp keeps per-user state that may be lost (the access token
 * cache and its lock, the TLS session cache): the runtime base when there
 * is one, else the cache base; "/oasmtp" is NOT appended.
 *
 * Until 0.1.0 the TLS session cache ignored XDG_CACHE_HOME and used
 * $HOME/.cache when there was no runtime directory; it now follows this
 * rule like the token cache.  A session saved at the old place is not
 * read: the only effect is one full TLS handshake.
 */
MUST_CHECK enum err paths_volatile_dir(struct buf *out);

/*
 * The system service's state directory: $STATE_DIRECTORY (set by systemd
 * for oasmtp-system.service) when it is one absolute path, else fallback.
 * Environment or the caller's storage; used by system mode only.
 */
const char *paths_service_state_dir(const char *fallback);

#endif
