/*
 * oasmtp-drop - hand one message to the system mail queue.
 *
 *   oasmtp-drop [sendmail options] [--] recipient...   < message
 *
 * Installed setgid to the group oasmtp-queue (mode 2755).  oasmtp runs it
 * (as sendmail) for callers who have no configuration of their own; it
 * can also be run directly.  Its one job: write the message and the
 * sendmail arguments that shape the envelope as a new entry of the system
 * maildrop (format: src/maildrop.c), fsync it, exit 0.  Everything else
 * (configuration, aliases, header rewriting, tokens, SMTP) happens later
 * in the system service, which alone can read the token store.
 *
 * This program runs with a privilege its caller lacks (the group that may
 * write the maildrop), so it is kept small, and every decision that
 * touches the privilege is commented with "PRIV:".  It reads no
 * configuration file, no environment variable and runs no other program.
 *
 * Exit status: 0 the entry is durable; 64 a refused or invalid option;
 * 65 message too large; 71 bad stdin/stdout/stderr; 74 cannot read the
 * message; 75 cannot write the entry (try later); 78 the maildrop
 * directory is missing or not set up as expected.  One line on stderr
 * for every failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "oasmtp-config.h"

#include "buf.h"
#include "cli.h"
#include "err.h"
#include "maildrop.h"
#include "util.h"

/*
 * PRIV: the directory and its owner are compiled in; no option, file or
 * environment variable can point this program at another directory.
 */
#ifndef DROP_MAILDROP_DIR
#error "DROP_MAILDROP_DIR must be defined by the build"
#endif
#ifndef DROP_SERVICE_USER
#error "DROP_SERVICE_USER must be defined by the build"
#endif

/* The only mode the maildrop directory may have: rwxrwx--T. */
#define MAILDROP_MODE 01770

extern char **environ;

static int
die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("oasmtp-drop: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/*
 * PRIV: a setgid program inherits whatever its caller set up.  Start from
 * a known state: no environment (locale, TMPDIR, OASMTP_* and every other
 * variable are gone before anything could read them), a private umask,
 * file descriptors 0-2 open (so no file we open can become "stderr"), and
 * SIGXFSZ ignored so a caller's RLIMIT_FSIZE makes write() fail cleanly.
 */
static int
sanitize(void)
{
	static char *empty[] = { NULL };
	int fd;

	environ = empty;
	umask(077);
	signal(SIGXFSZ, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	for (fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
			int n = open("/dev/null", O_RDWR);

			if (n != fd) {
				return -1;
			}
		}
	}
	return 0;
}

/*
 * PRIV: open the maildrop directory without following a symbolic link in
 * its last component, then check the directory we actually got: owned by
 * the service user, group = our privileged group, mode exactly 1770.  A
 * directory an ordinary user created or could change is refused, so the
 * group privilege only ever writes into the one directory made for it.
 */
static int
open_maildrop(int *ret_dfd)
{
	const struct passwd *svc;
	struct stat st;
	uid_t svc_uid;
	int dfd;

	svc = getpwnam(DROP_SERVICE_USER);
	if (svc == NULL) {
		return die(EX_CONFIG, "the service user '%s' does not exist; "
			"install the oasmtp system service (see "
			"doc/system-wide.md)", DROP_SERVICE_USER);
	}
	svc_uid = svc->pw_uid;
	dfd = open(DROP_MAILDROP_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		O_CLOEXEC);
	if (dfd < 0) {
		int err = errno;

		if (err == ELOOP || err == ENOTDIR) {
			return die(EX_CONFIG, "refusing the maildrop '%s': it "
				"is a symbolic link or not a directory",
				DROP_MAILDROP_DIR);
		}
		return die(EX_CONFIG, "cannot open the maildrop '%s': %s%s",
			DROP_MAILDROP_DIR, strerror(err), err == EACCES ?
			" (oasmtp-drop must be setgid oasmtp-queue)" : "");
	}
	if (fstat(dfd, &st) != 0) {
		close(dfd);
		return die(EX_CONFIG, "cannot stat the maildrop '%s': %s",
			DROP_MAILDROP_DIR, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != svc_uid ||
	    st.st_gid != getegid() || (st.st_mode & 07777) != MAILDROP_MODE) {
		close(dfd);
		return die(EX_CONFIG, "refusing the maildrop '%s': it must be "
			"a directory owned by %s, group %ld, mode 1770 (found "
			"uid %ld, gid %ld, mode %04o)", DROP_MAILDROP_DIR,
			DROP_SERVICE_USER, (long)getegid(), (long)st.st_uid,
			(long)st.st_gid, (unsigned)(st.st_mode & 07777));
	}
	*ret_dfd = dfd;
	return EX_OK;
}

/* Output side of the copy: a small buffer in front of the entry file. */
struct out {
	int fd;
	size_t len;
	uint64_t total;
	int too_large;
	int failed;
	char buf[16384];
};

static void
flush_out(struct out *o)
{
	if (o->len > 0 && !o->failed &&
	    util_write_all(o->fd, o->buf, o->len) != 0) {
		o->failed = errno != 0 ? errno : EIO;
	}
	o->len = 0;
}

static void
put(struct out *o, const char *p, size_t n)
{
	if (o->total + n > (uint64_t)MAILDROP_MESSAGE_MAX) {
		o->too_large = 1;
		return;
	}
	o->total += n;
	while (n > 0) {
		size_t k = sizeof(o->buf) - o->len;

		if (k > n) {
			k = n;
		}
		memcpy(o->buf + o->len, p, k);
		o->len += k;
		p += k;
		n -= k;
		if (o->len == sizeof(o->buf)) {
			flush_out(o);
		}
	}
}

/*
 * Copy stdin to o.  Without ignore_dots a line holding a lone "." (LF or
 * CRLF) ends the message, as sendmail does; it is not stored.
 */
static int
copy_message(struct out *o, int ignore_dots)
{
	enum { BOL, MID, DOT, DOTCR } st = BOL;
	char in[16384];

	for (;;) {
		ssize_t n = read(STDIN_FILENO, in, sizeof(in));
		ssize_t i;

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return die(EX_IOERR, "cannot read the message: %s",
				strerror(errno));
		}
		if (n == 0) {
			break;
		}
		for (i = 0; i < n && !o->too_large; i++) {
			char c = in[i];

			if (!ignore_dots && st == BOL && c == '.') {
				st = DOT;
				continue;
			}
			if (st == DOT && c == '\n') {
				return EX_OK;
			}
			if (st == DOT && c == '\r') {
				st = DOTCR;
				continue;
			}
			if (st == DOTCR && c == '\n') {
				return EX_OK;
			}
			if (st == DOT || st == DOTCR) {
				put(o, st == DOT ? "." : ".\r", st == DOT ?
					1 : 2);
			}
			put(o, &c, 1);
			st = c == '\n' ? BOL : MID;
		}
		if (o->too_large) {
			return die(EX_DATAERR, "message too large for the "
				"system queue (more than %ld MiB)",
				MAILDROP_MESSAGE_MAX / (1024 * 1024));
		}
	}
	if (st == DOT || st == DOTCR) {
		put(o, st == DOT ? "." : ".\r", st == DOT ? 1 : 2);
	}
	return EX_OK;
}

/* Write the entry as ID.tmp, make it durable, rename it to ID. */
static int
write_entry(int dfd, const struct buf *header, int ignore_dots)
{
	static struct out o;
	char id[MAILDROP_ID_LEN + 1], tmp[MAILDROP_ID_LEN + 8];
	int rc;

	maildrop_new_id(id, (int64_t)time(NULL));
	snprintf(tmp, sizeof(tmp), "%s.tmp", id);
	/*
	 * PRIV: a new file only (O_EXCL), never through a symbolic link
	 * (O_NOFOLLOW), relative to the checked directory.  Group-readable
	 * (oasmtp-queue) from the start so that the service can open it to
	 * test the lock below; it reads only renamed (complete) entries.
	 */
	o.fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		O_CLOEXEC, 0640);
	if (o.fd < 0) {
		return die(EX_TEMPFAIL, "cannot create an entry in the "
			"maildrop '%s': %s", DROP_MAILDROP_DIR, strerror(errno));
	}
	/*
	 * The liveness lock: held until the entry is renamed (or removed).
	 * The service removes a leftover ID.tmp only when it can take this
	 * lock, so a slow writer (a cron job printing for hours) is never
	 * mistaken for a dead one.
	 */
	/* PRIV: group-readable (oasmtp-queue) despite the umask of 077 */
	if (fchmod(o.fd, 0640) != 0 || flock(o.fd, LOCK_EX) != 0) {
		rc = die(EX_TEMPFAIL, "cannot lock the entry: %s",
			strerror(errno));
		close(o.fd);
		unlinkat(dfd, tmp, 0);
		return rc;
	}
	put(&o, header->data, header->len);
	o.total = 0;
	rc = copy_message(&o, ignore_dots);
	flush_out(&o);
	if (rc == EX_OK && o.failed) {
		rc = die(EX_TEMPFAIL, "cannot write the entry: %s",
			strerror(o.failed));
	}
	if (rc == EX_OK && fsync(o.fd) != 0) {
		rc = die(EX_TEMPFAIL, "cannot sync the entry: %s",
			strerror(errno));
	}
	if (rc == EX_OK && renameat(dfd, tmp, dfd, id) != 0) {
		rc = die(EX_TEMPFAIL, "cannot commit the entry: %s",
			strerror(errno));
	}
	if (rc != EX_OK) {
		/* PRIV: removes only the file this run created */
		unlinkat(dfd, tmp, 0);
		close(o.fd);
		return rc;
	}
	/*
	 * The lock goes with the descriptor, after the rename.  fsync
	 * succeeded, so the entry is durable whatever close says; failing
	 * now would make the caller send it again.
	 */
	close(o.fd);
	if (fsync(dfd) != 0 && errno != EINVAL) {
		/* the entry exists but may not survive a crash: say so */
		return die(EX_TEMPFAIL, "cannot sync the maildrop: %s",
			strerror(errno));
	}
	return EX_OK;
}

int
main(int argc, char **argv)
{
	struct errinfo ei = ERRINFO_INIT;
	const struct passwd *pw;
	struct cli_opts o;
	struct buf header;
	char user[64];
	uid_t uid;
	int dfd = -1, rc;

	if (sanitize() != 0) {
		return EX_OSERR;
	}
	/*
	 * The arguments are parsed by the same parser oasmtp uses, then
	 * every option that would choose a configuration, account, log file
	 * or queue is refused (maildrop_check_opts); the service applies the
	 * same check again.
	 */
	if (cli_parse(argc, argv, &o, &ei) != ERR_OK) {
		rc = die(EX_USAGE, "%s", errinfo_msg(&ei));
		errinfo_release(&ei);
		return rc;
	}
	if (o.mode == CLI_MODE_HELP || o.mode == CLI_MODE_VERSION) {
		cli_opts_release(&o);
		printf("oasmtp-drop %s: hands a message to the system queue "
			"at %s\n", OASMTP_VERSION, DROP_MAILDROP_DIR);
		return EX_OK;
	}
	if (maildrop_check_opts(&o, &ei) != ERR_OK) {
		cli_opts_release(&o);
		rc = die(EX_USAGE, "%s", errinfo_msg(&ei));
		errinfo_release(&ei);
		return rc;
	}
	/*
	 * PRIV: the caller is who the kernel says (the real uid), never
	 * $USER or $LOGNAME.
	 */
	uid = getuid();
	pw = getpwuid(uid);
	if (pw != NULL && strlen(pw->pw_name) < sizeof(user)) {
		snprintf(user, sizeof(user), "%s", pw->pw_name);
	} else {
		snprintf(user, sizeof(user), "#%ld", (long)uid);
	}
	buf_init(&header, MAILDROP_HEADER_MAX + 1);
	if (maildrop_format_header(&header, (long)uid, user,
	    (int64_t)time(NULL), argc - 1, argv + 1, &ei) != ERR_OK) {
		rc = die(EX_USAGE, "%s", errinfo_msg(&ei));
		goto out;
	}
	rc = open_maildrop(&dfd);
	if (rc == EX_OK) {
		rc = write_entry(dfd, &header, o.ignore_dots);
	}
out:
	if (dfd >= 0) {
		close(dfd);
	}
	buf_release(&header);
	cli_opts_release(&o);
	errinfo_release(&ei);
	return rc;
}
