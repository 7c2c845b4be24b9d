/* util.c - see util.h. */
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

void
util_wipe(void *p, size_t n)
{
	/*
	 * explicit_bzero(3) (glibc 2.25) is never removed as a dead store,
	 * and keeps this file, and so oasmtp-drop, free of libcrypto.
	 */
	if (p != NULL && n > 0) {
		explicit_bzero(p, n);
	}
}

static const char b64std[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static MUST_CHECK enum err
encode(struct buf *out, const unsigned char *in, size_t n, const char *alpha,
	int pad)
{
	size_t start = out->len;
	char q[4];
	size_t i;
	enum err e = ERR_OK;

	for (i = 0; i + 2 < n && e == ERR_OK; i += 3) {
		q[0] = alpha[in[i] >> 2];
		q[1] = alpha[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		q[2] = alpha[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		q[3] = alpha[in[i + 2] & 63];
		e = buf_append(out, q, 4);
	}
	if (e == ERR_OK && i < n) {
		size_t k = 2;

		q[0] = alpha[in[i] >> 2];
		if (i + 1 < n) {
			q[1] = alpha[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
			q[2] = alpha[(in[i + 1] & 15) << 2];
			k = 3;
		} else {
			q[1] = alpha[(in[i] & 3) << 4];
		}
		if (pad) {
			while (k < 4) {
				q[k++] = '=';
			}
		}
		e = buf_append(out, q, k);
	}
	if (e != ERR_OK) {
		buf_truncate(out, start);
	}
	util_wipe(q, sizeof(q));
	return e;
}

enum err
util_base64_encode(struct buf *out, const void *p, size_t n)
{
	return encode(out, p, n, b64std, 1);
}

enum err
util_base64url_encode(struct buf *out, const void *p, size_t n)
{
	return encode(out, p, n, b64url, 0);
}

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z') {
		return c - 'A';
	}
	if (c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	}
	if (c >= '0' && c <= '9') {
		return c - '0' + 52;
	}
	if (c == '+') {
		return 62;
	}
	if (c == '/') {
		return 63;
	}
	return -1;
}

enum err
util_base64_decode(struct buf *out, const char *s, size_t n)
{
	size_t start = out->len;
	unsigned long acc = 0;
	int bits = 0;
	size_t i;
	enum err e = ERR_OK;

	while (n > 0 && s[n - 1] == '=') {
		n--;
	}
	if (n % 4 == 1) {
		return ERR_DATA;
	}
	for (i = 0; i < n && e == ERR_OK; i++) {
		int v = b64val((unsigned char)s[i]);

		if (v < 0) {
			e = ERR_DATA;
			break;
		}
		acc = (acc << 6) | (unsigned long)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			e = buf_putc(out, (char)((acc >> bits) & 0xff));
		}
	}
	if (e != ERR_OK) {
		buf_truncate(out, start);
	}
	return e;
}

int
util_parse_long(const char *s, long min, long max, long *ret_val)
{
	char *end;
	long v;

	/* strtol() would also take leading blanks and a '+' */
	if (s == NULL || !((s[0] >= '0' && s[0] <= '9') ||
	    (s[0] == '-' && s[1] >= '0' && s[1] <= '9'))) {
		return -1;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max) {
		return -1;
	}
	*ret_val = v;
	return 0;
}

enum err
util_escape_ctl(struct buf *out, const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	enum err e = ERR_OK;
	size_t i;

	for (i = 0; i < n && e == ERR_OK; i++) {
		unsigned char c = (unsigned char)p[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			char esc[4] = { '\\', 'x', hex[c >> 4], hex[c & 0xf] };

			e = buf_append(out, esc, sizeof(esc));
		} else {
			e = buf_putc(out, (char)c);
		}
	}
	return e;
}

int
util_parse_duration(const char *s, long min, long max, long *ret_seconds)
{
	static const struct {
		char suffix;
		long seconds;
	} units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
		{ 'w', 7 * 86400 },
	};
	char num[32];
	size_t n = s != NULL ? strlen(s) : 0;
	long mult = 1, v;
	size_t i;

	if (n == 0 || n >= sizeof(num)) {
		return -1;
	}
	memcpy(num, s, n + 1);
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (num[n - 1] == units[i].suffix) {
			mult = units[i].seconds;
			num[n - 1] = '\0';
			break;
		}
	}
	if (max < 0 || util_parse_long(num, 0, max / mult, &v) != 0) {
		return -1;
	}
	v *= mult;
	if (v < min) {
		return -1;
	}
	*ret_seconds = v;
	return 0;
}

enum err
util_append_file_name(struct buf *out, const char *name)
{
	enum err e = ERR_OK;
	const char *s;

	for (s = name; *s != '\0' && e == ERR_OK; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '@' || c == '+' || (c == '.' && s != name)) {
			e = buf_putc(out, (char)c);
		} else {
			e = buf_printf(out, "%%%02X", c);
		}
	}
	return e;
}

int
util_hexval(int c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

void
util_hex(char *out, const void *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 0xf];
	}
	out[2 * n] = '\0';
}

size_t
util_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size > 0) {
		size_t k = n < size - 1 ? n : size - 1;

		memcpy(dst, src, k);
		dst[k] = '\0';
	}
	return n;
}

static int
lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

int
util_strncasecmp(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		int ca = lower((unsigned char)a[i]);
		int cb = lower((unsigned char)b[i]);

		if (ca != cb || ca == '\0') {
			return ca - cb;
		}
	}
	return 0;
}

int
util_strcasecmp(const char *a, const char *b)
{
	return util_strncasecmp(a, b, (size_t)-1);
}

int
util_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int64_t
util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
util_no_core_dumps(void)
{
	struct rlimit rl = { 0, 0 };

	(void)setrlimit(RLIMIT_CORE, &rl);
}

static int
is_executable(const char *path)
{
	return access(path, X_OK) == 0;
}

int
util_find_sibling(const char *name, const char *fallback_dir,
	int (*ok)(const char *path), struct buf *out)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (ok == NULL) {
		ok = is_executable;
	}
	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash != NULL) {
			slash[1] = '\0';
			buf_reset(out);
			if (buf_printf(out, "%s%s", self, name) == ERR_OK &&
			    ok(buf_cstr(out))) {
				return 1;
			}
		}
	}
	buf_reset(out);
	return buf_printf(out, "%s/%s", fallback_dir, name) == ERR_OK ? 0 : -1;
}

enum err
util_first_line(const char *msg, size_t max, struct buf *out)
{
	size_t n = strcspn(msg, "\r\n");
	enum err e;

	if (n > max) {
		e = buf_append(out, msg, max);
		return e != ERR_OK ? e : buf_append_str(out, "...");
	}
	e = buf_append(out, msg, n);
	if (e == ERR_OK && msg[n] != '\0') {
		e = buf_append_str(out, " ...");
	}
	return e;
}
