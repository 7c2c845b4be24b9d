/*
 * record.h - the one line format of every small file oasmtp keeps on disk
 * (queue entries, maildrop entries, the access-token cache, the grant
 * record, TLS sessions), its writer and its one strict reader.
 *
 * A record is text with LF line ends:
 *
 *   NAME VERSION        first line: the format's name and a decimal version
 *   KEY VALUE           zero or more fields, a single space between the two
 *   end                 the trailer: a record without it is incomplete
 *
 * NAME and KEY are 1 to RECORD_KEY_MAX - 1 bytes of [a-z0-9-]; "end" is
 * never a key.  A VALUE may be empty and holds any bytes, escaped by the
 * one rule: a backslash is written "\\", LF "\n", CR "\r", TAB "\t", NUL
 * and every other byte below 0x20 and 0x7f "\xHH" (lower-case hex on
 * writing, either case on reading); every other byte, 0x80-0xff included,
 * stands for itself.  So a value never holds a line break, and UTF-8 text
 * stays readable.
 *
 * Each format declares its fields (struct record_spec): the reader refuses
 * a record of another name or of an unknown version, an unknown, repeated
 * (unless RECORD_REPEAT) or missing (RECORD_REQUIRED) key, a bad escape, a
 * raw control byte, a missing final LF or trailer, and bytes after the
 * trailer (unless the format carries a body there, as a maildrop entry
 * does).  Its messages name the format and the line ("queue record, line
 * 3: unknown key 'x'").  Formats that 0.1.0 wrote without a trailer (the
 * token cache, the grant record) say from which version one is required.
 *
 * Everything here works on memory: no I/O (fileio.h reads and writes the
 * files), never prints, libc only.  Values are wiped when released, so a
 * record may hold a secret.
 */
#ifndef OASMTP_RECORD_H
#define OASMTP_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct buf;

#define RECORD_KEY_MAX 32	/* longest NAME or KEY + 1 */

/* Flags of a field in a spec. */
#define RECORD_REQUIRED 1u	/* must appear */
#define RECORD_REPEAT 2u	/* may appear more than once */

struct record_key {
	const char *key;
	unsigned flags;
};

struct record_spec {
	const char *name;	/* "oasmtp-queue" */
	const char *what;	/* "queue record", for messages */
	unsigned min_version, max_version;
	unsigned trailer_since;	/* versions below it may end without "end" */
	int body_follows;	/* bytes after the trailer are not ours */
	const struct record_key *keys;	/* ended by { NULL, 0 } */
};

struct record_field {
	const char *key;	/* the spec's string */
	char *value;		/* unescaped, heap, NUL-terminated */
	size_t len;		/* bytes in value (it may hold NULs) */
	unsigned line;
};

/* A parsed record; heap-owned, record_release(). */
struct record {
	unsigned version;
	struct record_field *fields;	/* in file order */
	size_t n;
	size_t length;		/* bytes up to and including the trailer */
};

/*
 * Parse data[0..len) as a record of spec.  On success *ret is filled (the
 * caller releases it); ret->length tells where a body starts.
 * Errors: ERR_DATA (what is wrong, and the line), ERR_NOMEM.
 */
MUST_CHECK enum err record_parse(const struct record_spec *spec, const char *data,
	size_t len, struct record *ret, struct errinfo *reterr);

/* Wipe and free what r owns and zero it.  NULL is fine. */
void record_release(struct record *r);

/* The first value of key as a C string, or NULL when absent. */
const char *record_get(const struct record *r, const char *key);

/*
 * f's value as a C string (ERR_DATA when it holds a NUL byte) or as a
 * whole number in [min, max] (ERR_DATA otherwise).  The message names the
 * key and the line; spec gives the format's name for it.
 */
MUST_CHECK enum err record_field_str(const struct record_spec *spec,
	const struct record_field *f, const char **ret, struct errinfo *reterr);
MUST_CHECK enum err record_field_long(const struct record_spec *spec,
	const struct record_field *f, long min, long max, long *ret,
	struct errinfo *reterr);

/*
 * Where the first trailer line ("end\n") of a record at the start of
 * data[0..len) ends, or 0 when there is none yet: a reader of a file with
 * a body uses it to know when it has read the whole record.
 */
size_t record_trailer_end(const char *data, size_t len);

/*
 * The writer: record_begin() puts the first line, record_put() one field
 * (len bytes of value; record_put_str() a C string, NULL as empty;
 * record_put_long() a number), record_finish() the trailer.  Each appends
 * to out and returns the buffer's error (ERR_LIMIT when out is full,
 * ERR_NOMEM); a name or key outside the rule above is ERR_INTERNAL.
 */
MUST_CHECK enum err record_begin(struct buf *out, const char *name, unsigned version);
MUST_CHECK enum err record_put(struct buf *out, const char *key, const char *value,
	size_t len);
MUST_CHECK enum err record_put_str(struct buf *out, const char *key, const char *value);
MUST_CHECK enum err record_put_long(struct buf *out, const char *key, long long value);
MUST_CHECK enum err record_finish(struct buf *out);

#endif
