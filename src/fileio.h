/*
 * fileio.h - files that must never be seen half-written.
 */
#ifndef OASMTP_FILEIO_H
#define OASMTP_FILEIO_H

#include <stddef.h>

#include "err.h"

/*
 * Replace the file at path atomically with data (mode 0600): write a
 * temporary file in the same directory, fsync it, rename it over path and
 * fsync the directory.  durable == 0 skips both fsyncs, for data whose loss
 * costs nothing but time (a cache).
 * Errors: ERR_IO (errno in reterr->sys_errno), ERR_NOMEM.
 */
enum err fileio_write_atomic(const char *path, const void *data, size_t len,
	int durable, struct errinfo *reterr);

/*
 * Create dir with mode 0700 unless it exists; then check it is a directory
 * (not a link) owned by the effective user and not writable by everyone.
 * Errors: ERR_IO (cannot create), ERR_CONFIG (exists but not ours, or
 * world-writable: the message has the chmod fix).
 */
enum err fileio_mkdir_private(const char *dir, struct errinfo *reterr);

#endif
