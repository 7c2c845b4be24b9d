/*
 * handover.c - the session keeper's socket protocol; see handover.h.
 *
 * A frame is "OAK" + version (4 bytes), a type byte, a 32-bit big-endian
 * payload length (at most HANDOVER_FRAME_MAX), then the payload: fields in
 * a fixed order, numbers as 32/64-bit big-endian, strings as a 32-bit
 * length and the bytes (0xffffffff: absent).  A reader that finds a field
 * missing, a string with a NUL, or bytes left over refuses the frame.
 */
#define _GNU_SOURCE
#include "handover.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <stdio.h>

#include <openssl/evp.h>

#include "account.h"
#include "fileio.h"
#include "paths.h"
#include "submit.h"
#include "util.h"

enum frame_type {
	FT_REQUEST = 1,
	FT_READY = 2,
	FT_REFUSE = 3,
	FT_COMMIT = 4,
	FT_RESULT = 5,
};

#define HDR_LEN 9
#define NO_STR 0xffffffffu

/* ---- paths and the session key ---- */

static enum err
key_field(struct buf *key, const char *name, const char *value)
{
	/* length-prefixed, so no value can imitate another field */
	return buf_printf(key, "%s=%zu:%s\n", name, value != NULL ?
		strlen(value) : (size_t)0, value != NULL ? value : "");
}

enum err
handover_paths(const struct account *acc, int create, struct buf *key,
	struct buf *path, struct errinfo *reterr)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	struct buf dir, tkey;
	struct submit_server srv;
	struct stat st;
	char num[64];
	size_t i;
	enum err e = ERR_OK;

	err_first(&e, key_field(key, "version", "1"));
	err_first(&e, key_field(key, "host", acc->host));
	snprintf(num, sizeof(num), "%d", acc->port);
	err_first(&e, key_field(key, "port", num));
	err_first(&e, key_field(key, "source_ip", acc->source_ip));
	err_first(&e, key_field(key, "proxy_host", acc->proxy_host));
	snprintf(num, sizeof(num), "%d", acc->proxy_port);
	err_first(&e, key_field(key, "proxy_port", num));
	err_first(&e, key_field(key, "domain", acc->domain));
	snprintf(num, sizeof(num), "%d/%d/%d", acc->tls, acc->tls_starttls,
		acc->tls_certcheck);
	err_first(&e, key_field(key, "tls", num));
	err_first(&e, key_field(key, "tls_trust_file", acc->tls_trust_file));
	err_first(&e, key_field(key, "tls_crl_file", acc->tls_crl_file));
	err_first(&e, key_field(key, "tls_fingerprint", acc->tls_fingerprint));
	err_first(&e, key_field(key, "tls_cert_file", acc->tls_cert_file));
	err_first(&e, key_field(key, "tls_key_file", acc->tls_key_file));
	err_first(&e, key_field(key, "tls_host_override", acc->tls_host_override));
	/* the trust files by identity, as the TLS session cache: a kept
	   session was verified under them (transport.h) */
	account_submit_server(acc, &srv);
	buf_init(&tkey, TLS_SESSION_KEY_MAX);
	err_first(&e, transport_tls_session_key(&srv.tls_params, &tkey));
	err_first(&e, key_field(key, "tls_verification", buf_cstr(&tkey)));
	buf_release(&tkey);
	snprintf(num, sizeof(num), "%d/%d", (int)acc->auth,
		account_is_oauth(acc));
	err_first(&e, key_field(key, "auth", num));
	err_first(&e, key_field(key, "user", acc->user));
	/* the grant: one refresh token (endpoint, client, store) */
	snprintf(num, sizeof(num), "%d", (int)acc->oauth2_provider);
	err_first(&e, key_field(key, "oauth2_provider", num));
	err_first(&e, key_field(key, "oauth2_tenant", acc->oauth2_tenant));
	err_first(&e, key_field(key, "oauth2_token_endpoint", acc->oauth2_token_endpoint));
	err_first(&e, key_field(key, "oauth2_client_id", acc->oauth2_client_id));
	err_first(&e, key_field(key, "oauth2_token_store", acc->oauth2_token_store));
	err_first(&e, key_field(key, "passwordeval", acc->passwordeval));
	if (e != ERR_OK) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}

	buf_init(&dir, HANDOVER_PATH_MAX);
	if (paths_volatile_dir(&dir) != ERR_OK) {
		buf_release(&dir);
		return errinfo_set(reterr, ERR_CONFIG, "no directory for the "
			"session socket (neither XDG_RUNTIME_DIR nor HOME is "
			"set)");
	}
	e = buf_append_str(&dir, "/oasmtp");
	if (e == ERR_OK) {
		/* checks (and with create makes) the directories on the way */
		e = buf_printf(&dir, "/x");
	}
	if (e == ERR_OK) {
		e = fileio_secret_dir(buf_cstr(&dir), geteuid(), create,
			reterr);
	}
	if (e == ERR_OK) {
		buf_truncate(&dir, dir.len - 2);
		if (lstat(buf_cstr(&dir), &st) != 0) {
			e = errinfo_set(reterr, ERR_IO, "%s: %s",
				buf_cstr(&dir), strerror(errno));
		} else if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
		    (st.st_mode & 077) != 0) {
			e = errinfo_set(reterr, ERR_CONFIG, "%s must be a "
				"directory of yours that nobody else can "
				"enter (chmod 700 %s)", buf_cstr(&dir),
				buf_cstr(&dir));
		}
	}
	if (e == ERR_OK && EVP_Digest(key->data, key->len, md, &md_len,
	    EVP_sha256(), NULL) != 1) {
		e = errinfo_set(reterr, ERR_INTERNAL, "SHA-256 failed");
	}
	if (e == ERR_OK) {
		e = buf_printf(path, "%s/session-", buf_cstr(&dir));
		for (i = 0; i < 16 && e == ERR_OK; i++) {
			e = buf_printf(path, "%02x", md[i]);
		}
	}
	buf_release(&dir);
	return e;
}

/* ---- framing ---- */

static enum err
put_u32(struct buf *b, uint32_t v)
{
	unsigned char x[4] = { (unsigned char)(v >> 24),
		(unsigned char)(v >> 16), (unsigned char)(v >> 8),
		(unsigned char)v };

	return buf_append(b, x, 4);
}

static enum err
put_u64(struct buf *b, uint64_t v)
{
	enum err e = put_u32(b, (uint32_t)(v >> 32));

	return e != ERR_OK ? e : put_u32(b, (uint32_t)v);
}

static enum err
put_bytes(struct buf *b, const void *p, size_t n)
{
	enum err e;

	if (n >= NO_STR) {
		return ERR_LIMIT;
	}
	e = put_u32(b, (uint32_t)n);
	return e != ERR_OK ? e : buf_append(b, p, n);
}

static enum err
put_str(struct buf *b, const char *s)
{
	return s == NULL ? put_u32(b, NO_STR) : put_bytes(b, s, strlen(s));
}

struct rd {
	const unsigned char *p;
	size_t n, off;
	int bad;
};

static uint32_t
get_u32(struct rd *r)
{
	uint32_t v;

	if (r->bad || r->n - r->off < 4) {
		r->bad = 1;
		return 0;
	}
	v = (uint32_t)r->p[r->off] << 24 | (uint32_t)r->p[r->off + 1] << 16 |
		(uint32_t)r->p[r->off + 2] << 8 | r->p[r->off + 3];
	r->off += 4;
	return v;
}

static uint64_t
get_u64(struct rd *r)
{
	uint64_t hi = get_u32(r);

	return hi << 32 | get_u32(r);
}

/* A copy (NUL-terminated, no NUL inside), or NULL when absent or bad. */
static char *
get_str(struct rd *r, int optional)
{
	uint32_t n = get_u32(r);
	char *s;

	if (r->bad) {
		return NULL;
	}
	if (n == NO_STR) {
		if (!optional) {
			r->bad = 1;
		}
		return NULL;
	}
	if (r->n - r->off < n || memchr(r->p + r->off, '\0', n) != NULL) {
		r->bad = 1;
		return NULL;
	}
	s = malloc((size_t)n + 1);
	if (s == NULL) {
		r->bad = 1;
		return NULL;
	}
	memcpy(s, r->p + r->off, n);
	s[n] = '\0';
	r->off += n;
	return s;
}

/* Bytes of a string field, borrowed from the frame (may hold anything). */
static const unsigned char *
get_raw(struct rd *r, size_t *ret_n)
{
	uint32_t n = get_u32(r);
	const unsigned char *p;

	if (r->bad || n == NO_STR || r->n - r->off < n) {
		r->bad = 1;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	*ret_n = n;
	return p;
}

static enum err
wait_fd(int fd, short events, int64_t deadline, struct errinfo *reterr)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int64_t left = deadline > 0 ? deadline - util_now_ms() : -1;
		int r;

		if (deadline > 0 && left <= 0) {
			return errinfo_set(reterr, ERR_TIMEOUT, "the session "
				"keeper did not answer in time");
		}
		r = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (r > 0) {
			return ERR_OK;
		}
		if (r < 0 && errno != EINTR) {
			return errinfo_set(reterr, ERR_NET, "poll: %s",
				strerror(errno));
		}
	}
}

/* Send one frame (with fd attached when fd >= 0). */
static enum err
send_frame(int sock, enum frame_type type, const struct buf *payload,
	int fd, struct errinfo *reterr)
{
	unsigned char hdr[HDR_LEN] = { 'O', 'A', 'K', HANDOVER_VERSION,
		(unsigned char)type };
	size_t len = payload != NULL ? payload->len : 0;
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov[2];
	struct msghdr msg;
	size_t sent = 0, total = HDR_LEN + len;

	hdr[5] = (unsigned char)(len >> 24);
	hdr[6] = (unsigned char)(len >> 16);
	hdr[7] = (unsigned char)(len >> 8);
	hdr[8] = (unsigned char)len;
	while (sent < total) {
		ssize_t n;
		int k = 0;

		memset(&msg, 0, sizeof(msg));
		if (sent < HDR_LEN) {
			iov[k].iov_base = hdr + sent;
			iov[k++].iov_len = HDR_LEN - sent;
		}
		if (len > 0) {
			size_t poff = sent > HDR_LEN ? sent - HDR_LEN : 0;

			iov[k].iov_base = payload->data + poff;
			iov[k++].iov_len = len - poff;
		}
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)k;
		if (sent == 0 && fd >= 0) {
			memset(&ctl, 0, sizeof(ctl));
			msg.msg_control = ctl.space;
			msg.msg_controllen = sizeof(ctl.space);
			ctl.h.cmsg_level = SOL_SOCKET;
			ctl.h.cmsg_type = SCM_RIGHTS;
			ctl.h.cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(&ctl.h), &fd, sizeof(int));
		}
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return errinfo_set(reterr, ERR_NET, "session keeper "
				"socket: %s", n < 0 ? strerror(errno) :
				"closed");
		}
		sent += (size_t)n;
	}
	return ERR_OK;
}

/* Read exactly n bytes; a descriptor that comes along goes to *ret_fd. */
static enum err
read_exact(int sock, void *p, size_t n, int64_t deadline, int *ret_fd,
	struct errinfo *reterr)
{
	size_t got = 0;

	while (got < n) {
		union {
			struct cmsghdr h;
			char space[CMSG_SPACE(4 * sizeof(int))];
		} ctl;
		struct iovec iov = { (char *)p + got, n - got };
		struct msghdr msg;
		struct cmsghdr *c;
		ssize_t r;
		enum err e;

		e = wait_fd(sock, POLLIN, deadline, reterr);
		if (e != ERR_OK) {
			return e;
		}
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.space;
		msg.msg_controllen = sizeof(ctl.space);
		r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
		if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
			continue;
		}
		if (r <= 0) {
			return errinfo_set(reterr, ERR_NET, "session keeper "
				"socket: %s", r < 0 ? strerror(errno) :
				"closed");
		}
		for (c = CMSG_FIRSTHDR(&msg); c != NULL;
		    c = CMSG_NXTHDR(&msg, c)) {
			size_t k, nfd;

			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS) {
				continue;
			}
			nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (k = 0; k < nfd; k++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + k * sizeof(int),
					sizeof(int));
				if (ret_fd != NULL && *ret_fd < 0) {
					*ret_fd = fd;
				} else {
					close(fd);
				}
			}
		}
		got += (size_t)r;
	}
	return ERR_OK;
}

/* Read one frame into payload (reset first). */
static enum err
recv_frame(int sock, int64_t deadline, enum frame_type *ret_type,
	struct buf *payload, int *ret_fd, struct errinfo *reterr)
{
	unsigned char hdr[HDR_LEN];
	uint32_t len;
	enum err e;

	buf_reset(payload);
	e = read_exact(sock, hdr, HDR_LEN, deadline, ret_fd, reterr);
	if (e != ERR_OK) {
		return e;
	}
	if (memcmp(hdr, "OAK", 3) != 0 || hdr[3] != HANDOVER_VERSION) {
		return errinfo_set(reterr, ERR_PROTO, "session keeper: not a "
			"version %d record", HANDOVER_VERSION);
	}
	len = (uint32_t)hdr[5] << 24 | (uint32_t)hdr[6] << 16 |
		(uint32_t)hdr[7] << 8 | hdr[8];
	if (len > HANDOVER_FRAME_MAX) {
		return errinfo_set(reterr, ERR_PROTO, "session keeper: record "
			"of %u bytes is too large", len);
	}
	*ret_type = (enum frame_type)hdr[4];
	while (payload->len < len) {
		unsigned char chunk[16384];
		size_t want = len - payload->len;

		if (want > sizeof(chunk)) {
			want = sizeof(chunk);
		}
		e = read_exact(sock, chunk, want, deadline, ret_fd, reterr);
		if (e == ERR_OK && buf_append(payload, chunk, want) != ERR_OK) {
			e = errinfo_set(reterr, ERR_NOMEM, "out of memory");
		}
		if (e != ERR_OK) {
			return e;
		}
	}
	return ERR_OK;
}

/*
 * The address of the socket at path.  A path too long for sun_path goes
 * through its directory: "/proc/self/fd/N/name", with *ret_dirfd = N to
 * close after bind() or connect().  -1 when that fails too.
 */
static int
sock_addr(const char *path, struct sockaddr_un *sa, int *ret_dirfd)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	int fd;

	*ret_dirfd = -1;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (util_strlcpy(sa->sun_path, path, sizeof(sa->sun_path)) <
	    sizeof(sa->sun_path)) {
		return 0;
	}
	if (slash == NULL || (size_t)(slash - path) >= sizeof(dir)) {
		return -1;
	}
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		return -1;
	}
	if ((size_t)snprintf(sa->sun_path, sizeof(sa->sun_path),
	    "/proc/self/fd/%d%s", fd, slash) >= sizeof(sa->sun_path)) {
		close(fd);
		return -1;
	}
	*ret_dirfd = fd;
	return 0;
}

static int
peer_is_us(int sock)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	return getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
		len == sizeof(cred) && cred.uid == geteuid();
}

/* ---- the caller's side ---- */

enum err
handover_body_fd(enum err (*write)(void *ctx, int fd, struct errinfo *reterr),
	void *ctx, int *ret_fd, struct errinfo *reterr)
{
	int fd = memfd_create("oasmtp-message", MFD_CLOEXEC);
	enum err e;

	*ret_fd = -1;
	if (fd < 0) {
		return errinfo_set(reterr, ERR_IO, "memfd_create: %s",
			strerror(errno));
	}
	e = write(ctx, fd, reterr);
	if (e != ERR_OK) {
		close(fd);
		return e;
	}
	*ret_fd = fd;
	return ERR_OK;
}

static int
connect_keeper(const char *path)
{
	struct sockaddr_un sa;
	int fd, dirfd, ok;

	if (sock_addr(path, &sa, &dirfd) != 0) {
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0
		&& peer_is_us(fd);
	if (dirfd >= 0) {
		close(dirfd);
	}
	if (!ok) {
		if (fd >= 0) {
			close(fd);
		}
		return -1;
	}
	return fd;
}

static enum err
decode_result(struct buf *payload, size_t n_rcpts,
	void (*transcript)(void *, enum smtp_dir, const char *, size_t),
	void *transcript_ctx, struct submit_result *ret,
	struct handover_outcome *out, struct errinfo *reterr)
{
	struct rd r = { (const unsigned char *)payload->data, payload->len,
		0, 0 };
	char *msg, *enhanced, *final, *mech, *tls;
	uint32_t code, known, smtp_code, n, i, lines;

	code = get_u32(&r);
	known = get_u32(&r);
	smtp_code = get_u32(&r);
	enhanced = get_str(&r, 0);
	msg = get_str(&r, 0);
	final = get_str(&r, 0);
	mech = get_str(&r, 1);
	tls = get_str(&r, 0);
	n = get_u32(&r);
	if (!r.bad && n != n_rcpts) {
		r.bad = 1;
	}
	free(ret->rcpt_codes);
	free(ret->rcpt_delivered);
	ret->rcpt_codes = calloc(n_rcpts ? n_rcpts : 1, sizeof(int));
	ret->rcpt_delivered = calloc(n_rcpts ? n_rcpts : 1, 1);
	ret->n_rcpts = n_rcpts;
	if (ret->rcpt_codes == NULL || ret->rcpt_delivered == NULL) {
		r.bad = 1;
	}
	for (i = 0; !r.bad && i < n; i++) {
		ret->rcpt_codes[i] = (int)get_u32(&r);
		ret->rcpt_delivered[i] = get_u32(&r) != 0;
	}
	lines = get_u32(&r);
	for (i = 0; !r.bad && i < lines; i++) {
		uint32_t dir = get_u32(&r);
		size_t len = 0;
		const unsigned char *p = get_raw(&r, &len);

		if (!r.bad && transcript != NULL && dir <= SMTP_DIR_NOTE) {
			transcript(transcript_ctx, (enum smtp_dir)dir,
				(const char *)p, len);
		}
	}
	if (!r.bad && (r.off != r.n || code >= ERR_MAX)) {
		r.bad = 1;
	}
	if (!r.bad) {
		out->e = (enum err)code;
		out->known = known != 0;
		ret->smtp_code = (int)smtp_code;
		buf_reset(&ret->final_reply);
		buf_reset(&ret->tls);
		if (buf_append_str(&ret->final_reply, final) != ERR_OK ||
		    buf_append_str(&ret->tls, tls) != ERR_OK) {
			r.bad = 1;
		}
		/* the engine's mechanism names are static strings */
		ret->auth_mech = mech == NULL ? NULL :
			strcmp(mech, "XOAUTH2") == 0 ? "XOAUTH2" :
			strcmp(mech, "OAUTHBEARER") == 0 ? "OAUTHBEARER" :
			strcmp(mech, "PLAIN") == 0 ? "PLAIN" :
			strcmp(mech, "LOGIN") == 0 ? "LOGIN" : NULL;
		errinfo_init(reterr);
		if (out->e != ERR_OK) {
			errinfo_set(reterr, out->e, "%s", msg);
			if (reterr != NULL) {
				reterr->smtp_code = (int)smtp_code;
				util_strlcpy(reterr->enhanced, enhanced,
					sizeof(reterr->enhanced));
			}
		}
	}
	free(msg);
	free(enhanced);
	free(final);
	free(mech);
	free(tls);
	if (r.bad) {
		return errinfo_set(reterr, ERR_PROTO, "session keeper: bad "
			"RESULT record");
	}
	return ERR_OK;
}

int
handover_send(const char *path, const char *key, const struct envelope *env,
	int body_fd, uint64_t size, int64_t timeout_ms,
	void (*transcript)(void *ctx, enum smtp_dir dir, const char *line,
	size_t len), void *transcript_ctx,
	struct submit_result *ret, struct handover_outcome *ret_out,
	struct errinfo *reterr)
{
	struct buf b;
	enum frame_type type;
	int64_t deadline;
	size_t i;
	int sock, handed = 0;
	enum err e = ERR_OK;

	sock = connect_keeper(path);
	if (sock < 0) {
		return 0;
	}
	buf_init(&b, HANDOVER_FRAME_MAX);
	e = put_str(&b, key);
	if (e == ERR_OK) e = put_str(&b, env->from);
	if (e == ERR_OK) e = put_u32(&b, (uint32_t)env->n_rcpts);
	for (i = 0; e == ERR_OK && i < env->n_rcpts; i++) {
		e = put_str(&b, env->rcpts[i]);
	}
	if (e == ERR_OK) e = put_u32(&b, (uint32_t)env->body_8bit);
	if (e == ERR_OK) e = put_u32(&b, (uint32_t)env->smtputf8);
	if (e == ERR_OK) e = put_str(&b, env->dsn_notify);
	if (e == ERR_OK) e = put_str(&b, env->dsn_return);
	if (e == ERR_OK) e = put_str(&b, env->dsn_envid);
	if (e == ERR_OK) e = put_u64(&b, size);
	if (e == ERR_OK) {
		e = send_frame(sock, FT_REQUEST, &b, body_fd, NULL);
	}
	deadline = util_now_ms() + (timeout_ms < HANDOVER_READY_WAIT_MS ?
		timeout_ms : HANDOVER_READY_WAIT_MS);
	if (e == ERR_OK) {
		e = recv_frame(sock, deadline, &type, &b, NULL, NULL);
	}
	if (e == ERR_OK && type == FT_READY && b.len == 0) {
		/* from here on the keeper owns the attempt */
		handed = 1;
		e = send_frame(sock, FT_COMMIT, NULL, -1, reterr);
		if (e == ERR_OK) {
			e = recv_frame(sock, util_now_ms() + 12 * timeout_ms,
				&type, &b, NULL, reterr);
		}
		if (e == ERR_OK && type != FT_RESULT) {
			e = errinfo_set(reterr, ERR_PROTO, "session keeper: "
				"unexpected record %d", (int)type);
		}
		if (e == ERR_OK) {
			e = decode_result(&b, env->n_rcpts, transcript,
				transcript_ctx, ret, ret_out, reterr);
		}
		if (e != ERR_OK) {
			/* as if our own connection had dropped mid-way */
			ret_out->e = errinfo_prefix(reterr, "the session keeper "
				"was lost while sending the message (the "
				"server may or may not have it): ");
			ret_out->known = 0;
			if (ret_out->e != ERR_NET && ret_out->e != ERR_TIMEOUT) {
				ret_out->e = ERR_NET;
				if (reterr != NULL) {
					reterr->code = ERR_NET;
				}
			}
		}
	}
	buf_release(&b);
	close(sock);
	return handed;
}

/* ---- the keeper's side ---- */

enum err
handover_claim(const char *path, int *ret_sock_fd, int *ret_lock_fd,
	struct errinfo *reterr)
{
	struct sockaddr_un sa;
	struct buf lock;
	int lfd, sfd, dirfd;

	*ret_sock_fd = -1;
	*ret_lock_fd = -1;
	buf_init(&lock, HANDOVER_PATH_MAX);
	if (buf_printf(&lock, "%s.lock", path) != ERR_OK) {
		buf_release(&lock);
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	lfd = open(buf_cstr(&lock), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		0600);
	buf_release(&lock);
	if (lfd < 0) {
		return errinfo_set(reterr, ERR_IO, "%s.lock: %s", path,
			strerror(errno));
	}
	/*
	 * No waiting: a live keeper or a process still sending holds it, and
	 * a keeper that ends lets go before it answers its last caller.
	 */
	if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
		close(lfd);
		return errinfo_set(reterr, ERR_LIMIT, "another process holds "
			"the session keeper's place %s", path);
	}
	/* the lock is ours: a socket file left there is a dead keeper's */
	unlink(path);
	if (sock_addr(path, &sa, &dirfd) != 0) {
		close(lfd);
		return errinfo_set(reterr, ERR_CONFIG, "%s: too long for a "
			"socket path", path);
	}
	sfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sfd < 0 || bind(sfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    chmod(path, 0600) != 0) {
		int err = errno;

		if (sfd >= 0) {
			close(sfd);
			unlink(path);
		}
		if (dirfd >= 0) {
			close(dirfd);
		}
		close(lfd);
		return errinfo_set(reterr, ERR_IO, "%s: %s", path,
			strerror(err));
	}
	if (dirfd >= 0) {
		close(dirfd);
	}
	*ret_sock_fd = sfd;
	*ret_lock_fd = lfd;
	return ERR_OK;
}

void
handover_request_init(struct handover_request *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->key, HANDOVER_KEY_MAX);
	r->body_fd = -1;
}

void
handover_request_release(struct handover_request *r)
{
	buf_release(&r->key);
	envelope_release(&r->env);
	memset(&r->env, 0, sizeof(r->env));
	if (r->body_fd >= 0) {
		close(r->body_fd);
	}
	r->body_fd = -1;
}

enum err
handover_recv_request(int fd, int64_t timeout_ms,
	struct handover_request *ret, struct errinfo *reterr)
{
	struct buf b;
	struct rd r;
	enum frame_type type;
	char *key;
	uint32_t i, n;
	enum err e;

	if (!peer_is_us(fd)) {
		return errinfo_set(reterr, ERR_AUTH, "session keeper: a "
			"process of another user knocked");
	}
	buf_init(&b, HANDOVER_FRAME_MAX);
	e = recv_frame(fd, util_now_ms() + timeout_ms, &type, &b,
		&ret->body_fd, reterr);
	if (e == ERR_OK && type != FT_REQUEST) {
		e = errinfo_set(reterr, ERR_PROTO, "session keeper: "
			"expected a REQUEST record");
	}
	if (e != ERR_OK) {
		buf_release(&b);
		return e;
	}
	r.p = (const unsigned char *)b.data;
	r.n = b.len;
	r.off = 0;
	r.bad = 0;
	key = get_str(&r, 0);
	if (key != NULL && buf_append_str(&ret->key, key) != ERR_OK) {
		r.bad = 1;
	}
	free(key);
	ret->env.from = get_str(&r, 0);
	n = get_u32(&r);
	if (!r.bad && (n == 0 || n > 100000)) {
		r.bad = 1;
	}
	if (!r.bad) {
		ret->env.rcpts = calloc(n, sizeof(char *));
		if (ret->env.rcpts == NULL) {
			r.bad = 1;
		}
	}
	for (i = 0; !r.bad && i < n; i++) {
		ret->env.rcpts[i] = get_str(&r, 0);
		ret->env.n_rcpts = i + 1;
	}
	ret->env.body_8bit = get_u32(&r) != 0;
	ret->env.smtputf8 = get_u32(&r) != 0;
	ret->env.dsn_notify = get_str(&r, 1);
	ret->env.dsn_return = get_str(&r, 1);
	ret->env.dsn_envid = get_str(&r, 1);
	ret->size = get_u64(&r);
	if (!r.bad && (r.off != r.n || ret->body_fd < 0)) {
		r.bad = 1;
	}
	buf_release(&b);
	if (r.bad) {
		return errinfo_set(reterr, ERR_PROTO, "session keeper: bad "
			"REQUEST record");
	}
	return ERR_OK;
}

enum err
handover_send_ready(int fd, const char *refusal, struct errinfo *reterr)
{
	struct buf b;
	enum err e;

	if (refusal == NULL) {
		return send_frame(fd, FT_READY, NULL, -1, reterr);
	}
	buf_init(&b, HANDOVER_REFUSAL_MAX);
	e = put_str(&b, refusal);
	if (e == ERR_OK) {
		e = send_frame(fd, FT_REFUSE, &b, -1, reterr);
	}
	buf_release(&b);
	return e;
}

enum err
handover_recv_commit(int fd, int64_t timeout_ms, struct errinfo *reterr)
{
	struct buf b;
	enum frame_type type;
	enum err e;

	buf_init(&b, HANDOVER_COMMIT_MAX);
	e = recv_frame(fd, util_now_ms() + timeout_ms, &type, &b, NULL,
		reterr);
	if (e == ERR_OK && (type != FT_COMMIT || b.len != 0)) {
		e = errinfo_set(reterr, ERR_PROTO, "session keeper: expected "
			"COMMIT");
	}
	buf_release(&b);
	return e;
}

void
handover_transcript_collect(void *ctx, enum smtp_dir dir, const char *line,
	size_t len)
{
	struct buf *t = ctx;

	if (t->len + len + 8 > HANDOVER_TRANSCRIPT_MAX) {
		return;		/* the caller's -v output stays bounded */
	}
	put_u32(t, (uint32_t)dir);
	put_bytes(t, line, len);
}

enum err
handover_send_result(int fd, enum err e, int known, const struct errinfo *ei,
	const struct submit_result *res, const struct buf *transcript,
	struct errinfo *reterr)
{
	struct buf b;
	size_t i, lines = 0, off = 0;
	enum err pe;

	/* count the collected transcript lines */
	while (transcript != NULL && off + 8 <= transcript->len) {
		const unsigned char *p = (const unsigned char *)
			transcript->data + off + 4;
		uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
			(uint32_t)p[2] << 8 | p[3];

		off += 8 + n;
		lines++;
	}
	buf_init(&b, HANDOVER_FRAME_MAX);
	pe = put_u32(&b, (uint32_t)e);
	if (pe == ERR_OK) pe = put_u32(&b, (uint32_t)(known != 0));
	if (pe == ERR_OK) pe = put_u32(&b, (uint32_t)(e == ERR_OK ? 250 :
		ei->smtp_code));
	if (pe == ERR_OK) pe = put_str(&b, e == ERR_OK ? "" : ei->enhanced);
	if (pe == ERR_OK) pe = put_str(&b, e == ERR_OK ? "" : errinfo_msg(ei));
	if (pe == ERR_OK) pe = put_str(&b, buf_cstr(&res->final_reply));
	if (pe == ERR_OK) pe = put_str(&b, res->auth_mech);
	if (pe == ERR_OK) pe = put_str(&b, buf_cstr(&res->tls));
	if (pe == ERR_OK) pe = put_u32(&b, (uint32_t)res->n_rcpts);
	for (i = 0; pe == ERR_OK && i < res->n_rcpts; i++) {
		pe = put_u32(&b, (uint32_t)res->rcpt_codes[i]);
		if (pe == ERR_OK) {
			pe = put_u32(&b, res->rcpt_delivered[i]);
		}
	}
	if (pe == ERR_OK) pe = put_u32(&b, (uint32_t)lines);
	if (pe == ERR_OK && transcript != NULL) {
		pe = buf_append(&b, transcript->data, transcript->len);
	}
	if (pe == ERR_OK) {
		pe = send_frame(fd, FT_RESULT, &b, -1, reterr);
	} else {
		pe = errinfo_set(reterr, pe, "session keeper: result too large");
	}
	buf_release(&b);
	return pe;
}
