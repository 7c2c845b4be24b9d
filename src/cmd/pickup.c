/* pickup.c - moving maildrop entries into the system queue; see pickup.h. */
#include "pickup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "cli.h"
#include "envelope.h"
#include "job.h"
#include "log.h"
#include "maildrop.h"
#include "message.h"
#include "queue.h"
#include "sysmode.h"
#include "util.h"

/* a file in the state directory */
#define STATE_PATH_MAX (2 * PATH_MAX)

/*
 * The most recipients one message from the system queue may have (as
 * Postfix's smtpd_recipient_limit): more is rejected, so a local user
 * cannot make the service do unbounded work for one cheap drop.
 */
#define PICKUP_MAX_RCPTS 1000

/* What one entry came to. */
enum outcome {
	PICKED_UP,		/* queued and removed from the maildrop */
	REJECTED,		/* can never be sent: moved to rejected/ */
	KEPT,			/* left for the next run (error returned) */
};

static enum err
io_err(struct errinfo *reterr, const char *what, const char *name)
{
	int err = errno;

	errinfo_set(reterr, ERR_IO, "maildrop: cannot %s '%s': %s", what,
		name, strerror(err));
	reterr->sys_errno = err;
	return ERR_IO;
}

/*
 * Open the maildrop.  It must belong to us: the service user owns it, and
 * root running a flush by hand would leave root-owned files behind.
 */
static MUST_CHECK enum err
open_dir(const char *dir, int *ret_dfd, struct errinfo *reterr)
{
	struct stat st;
	int dfd;

	*ret_dfd = -1;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0 && errno == ENOENT) {
		log_debug(1, "no maildrop at %s", dir);
		return ERR_OK;
	}
	if (dfd < 0) {
		return io_err(reterr, "open", dir);
	}
	if (fstat(dfd, &st) != 0) {
		close(dfd);
		return io_err(reterr, "stat", dir);
	}
	if (st.st_uid != geteuid()) {
		close(dfd);
		return errinfo_set(reterr, ERR_CONFIG, "the maildrop '%s' "
			"belongs to uid %ld: run the system flush as that user "
			"(systemctl start oasmtp-system.service)", dir,
			(long)st.st_uid);
	}
	*ret_dfd = dfd;
	return ERR_OK;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * An ID.tmp is an entry oasmtp-drop is still writing, or the leftover of
 * one that was killed.  The writer holds an flock on it until the rename,
 * however long the caller takes to write the message; the file is removed
 * only when that lock is free (the writer is gone) and the file has not
 * changed for MAILDROP_LEFTOVER_AGE seconds either way of the clock.
 */
static void
remove_if_dead(int dfd, const char *name, time_t now)
{
	struct stat st;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		O_CLOEXEC);

	if (fd < 0) {
		return;		/* renamed meanwhile, or not ours to judge */
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (now - st.st_mtime <= MAILDROP_LEFTOVER_AGE &&
	    st.st_mtime - now <= MAILDROP_LEFTOVER_AGE)) {
		close(fd);
		return;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		log_debug(1, "maildrop file %s is still being written", name);
		close(fd);
		return;
	}
	log_info("maildrop: removing %s, left by a writer that died", name);
	unlinkat(dfd, name, 0);
	close(fd);
}

/*
 * The complete entries, oldest first; stale ID.tmp files (a drop that
 * was killed) are removed on the way.
 */
static MUST_CHECK enum err
list_entries(int dfd, char ***ret, size_t *ret_n, struct errinfo *reterr)
{
	struct dirent *de;
	char **v = NULL;
	size_t n = 0, cap = 0;
	time_t now = time(NULL);
	DIR *d;
	int fd = dup(dfd);

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0) {
			close(fd);
		}
		return io_err(reterr, "read", ".");
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		int kind = maildrop_name_kind(de->d_name);

		if (kind == 1) {
			remove_if_dead(dfd, de->d_name, now);
			continue;
		}
		if (kind != 2) {
			continue;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			char **nv = realloc(v, nc * sizeof(*nv));

			if (nv == NULL) {
				goto nomem;
			}
			v = nv;
			cap = nc;
		}
		v[n] = strdup(de->d_name);
		if (v[n] == NULL) {
			goto nomem;
		}
		n++;
	}
	closedir(d);
	if (n > 1) {
		qsort(v, n, sizeof(*v), cmp_names);
	}
	*ret = v;
	*ret_n = n;
	return ERR_OK;
nomem:
	closedir(d);
	while (n > 0) {
		free(v[--n]);
	}
	free(v);
	return errinfo_set(reterr, ERR_NOMEM, "out of memory");
}

/* Read the header record of fd into e. */
static MUST_CHECK enum err
read_header(int fd, struct maildrop_entry *e, struct errinfo *reterr)
{
	struct buf b;
	char chunk[8192];
	enum err r = ERR_OK;
	off_t off = 0;

	buf_init(&b, MAILDROP_HEADER_MAX + sizeof(chunk));
	while (b.len <= MAILDROP_HEADER_MAX) {
		ssize_t n = pread(fd, chunk, sizeof(chunk), off);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			r = errinfo_set(reterr, ERR_IO, "cannot read: %s",
				strerror(errno));
			break;
		}
		if (n == 0 || buf_append(&b, chunk, (size_t)n) != ERR_OK) {
			break;
		}
		off += n;
		if (maildrop_header_end(b.data, b.len) > 0) {
			break;
		}
	}
	if (r == ERR_OK) {
		r = maildrop_parse_header(b.data, b.len, e, reterr);
	}
	buf_release(&b);
	return r;
}

static MUST_CHECK enum err
write_message(void *ctx, int fd, struct errinfo *reterr)
{
	return message_write_wire(ctx, fd, reterr);
}

/*
 * 1 when the caller uid is named by list, an account's
 * system_from_override: user names, %GROUP (primary or supplementary
 * group), or "*" for everyone, separated by blanks or commas.
 */
static int
may_override(const char *list, long uid)
{
	const struct passwd *pw;
	char name[256];
	char user[256];
	gid_t gid;
	const char *p = list;

	if (list == NULL || (pw = getpwuid((uid_t)uid)) == NULL ||
	    strlen(pw->pw_name) >= sizeof(user)) {
		return 0;
	}
	util_strlcpy(user, pw->pw_name, sizeof(user));
	gid = pw->pw_gid;
	while (*p != '\0') {
		size_t n = strcspn(p, " \t,");

		if (n > 0 && n < sizeof(name)) {
			memcpy(name, p, n);
			name[n] = '\0';
			if (strcmp(name, "*") == 0 || strcmp(name, user) == 0) {
				return 1;
			}
			if (name[0] == '%') {
				const struct group *gr = getgrnam(name + 1);
				size_t i;

				if (gr != NULL && gr->gr_gid == gid) {
					return 1;
				}
				for (i = 0; gr != NULL && gr->gr_mem[i] != NULL;
				    i++) {
					if (strcmp(gr->gr_mem[i], user) == 0) {
						return 1;
					}
				}
			}
		}
		p += n;
		p += strspn(p, " \t,");
	}
	return 0;
}

/*
 * Prepare the message of fd (an entry by e) with the system configuration
 * and store it in the account's queue; *ret_id gets the queue id.
 * ERR_USAGE and ERR_DATA mean the entry can never be sent.
 */
static MUST_CHECK enum err
queue_entry_of(const struct cli_opts *svc, int fd, const char *name,
	const struct maildrop_entry *e, char *ret_id, struct errinfo *reterr)
{
	struct cli_opts co;
	struct job job = { .o = &co };
	struct message *m = NULL;
	struct message_opts mo;
	struct envelope env;
	struct queue_entry qe;
	struct queue *q = NULL;
	struct buf dir;
	char hostname[256] = "localhost";
	char *config = NULL;
	const char *from;
	int64_t now = (int64_t)time(NULL);
	int override = 0;
	enum err x;

	memset(&env, 0, sizeof(env));
	buf_init(&dir, PATH_MAX);
	x = cli_parse(e->argc, e->argv, &co, reterr);
	if (x != ERR_OK) {
		buf_release(&dir);
		return x;
	}
	x = maildrop_check_opts(&co, reterr);
	if (x != ERR_OK) {
		goto out;
	}
	/* the service's own choices, never the caller's */
	co.system = 1;
	co.config_file = svc->config_file;
	co.verbose = svc->verbose;
	if (lseek(fd, (off_t)e->body_offset, SEEK_SET) < 0) {
		x = errinfo_set(reterr, ERR_IO, "cannot seek: %s",
			strerror(errno));
		goto out;
	}
	/* the "." rule was applied by oasmtp-drop */
	x = message_read(fd, 1, &m, reterr);
	if (x != ERR_OK) {
		goto out;
	}
	from = co.has_envelope_from ? co.envelope_from : NULL;
	if (co.read_envelope_from) {
		from = message_header_from(m);
	}
	/*
	 * The system configuration decides the account and the envelope
	 * sender: the default account and its `from`.  -f (and
	 * --read-envelope-from) count only for the callers that the
	 * default account's system_from_override names; for them -f also
	 * picks the account whose `from` matches, as for a direct send.
	 */
	x = job_load_account(&job, NULL, 0, reterr);
	if (x == ERR_OK && from != NULL &&
	    may_override(job.acc->system_from_override, e->uid)) {
		override = 1;
		job_release(&job);
		x = job_load_account(&job, from, 0, reterr);
	} else if (x == ERR_OK && from != NULL) {
		log_debug(1, "maildrop: uid %ld may not choose the sender; "
			"'%s' ignored", e->uid, from);
	}
	if (x == ERR_USAGE || x == ERR_DATA) {
		/* never a reason to reject the caller's message */
		x = ERR_CONFIG;
	}
	if (x != ERR_OK) {
		goto out;
	}
	gethostname(hostname, sizeof(hostname) - 1);
	memset(&mo, 0, sizeof(mo));
	mo.acc = job.acc;
	mo.envelope_from = override && co.has_envelope_from ?
	    co.envelope_from : NULL;
	mo.full_name = co.full_name;
	mo.read_recipients = co.read_recipients;
	mo.read_envelope_from = override && co.read_envelope_from;
	mo.trace_user = e->user != NULL ? e->user : "";
	mo.trace_uid = e->uid;
	mo.max_rcpts = PICKUP_MAX_RCPTS;
	mo.rcpt_args = co.recipients;
	mo.n_rcpt_args = co.recipient_count;
	mo.dsn_notify = co.dsn_notify;
	mo.dsn_return = cli_dsn_return_text(co.dsn_return);
	mo.dsn_envid = co.dsn_envid;
	mo.now = (time_t)e->time;
	mo.hostname = hostname;
	x = message_prepare(m, &mo, &env, reterr);
	if (x != ERR_OK) {
		goto out;
	}
	if (co.config_file != NULL) {
		config = realpath(co.config_file, NULL);
		if (config == NULL) {
			x = errinfo_set(reterr, ERR_CONFIG, "cannot resolve "
				"'%s': %s", co.config_file, strerror(errno));
			goto out;
		}
	}
	x = queue_configured_dir(job.acc->queue_dir, &dir, reterr);
	if (x == ERR_OK) {
		x = queue_open(buf_cstr(&dir), 1, &q, reterr);
	}
	if (x == ERR_OK) {
		queue_entry_init(&qe);
		/* borrowed for the write */
		qe.account = job.acc->name;
		qe.config = config != NULL ? config : "";
		qe.env = env;
		qe.created = e->time;
		qe.queued = now;
		qe.next_attempt = now;
		x = queue_add(q, &qe, write_message, m, reterr);
		if (x == ERR_OK) {
			memcpy(ret_id, qe.id, sizeof(qe.id));
			log_info("maildrop: %s from %s (uid %ld) queued as %s: "
				"account %s, sender <%s>, %zu recipient%s",
				name, e->user, e->uid, qe.id, job.acc->name,
				env.from != NULL ? env.from : "",
				env.n_rcpts, env.n_rcpts == 1 ? "" : "s");
		}
	}
	if (x == ERR_USAGE || x == ERR_DATA) {
		/* a queue problem is ours, not the message's */
		x = ERR_IO;
	}
out:
	queue_close(q);
	free(config);
	envelope_release(&env);
	message_free(m);
	job_release(&job);
	buf_release(&dir);
	cli_opts_release(&co);
	return x;
}

/* Move the entry name to STATE/rejected/ (a copy, then the unlink). */
static MUST_CHECK enum err
reject(int dfd, int fd, const char *name, struct errinfo *reterr)
{
	struct buf path;
	char chunk[16384];
	enum err e = ERR_OK;
	size_t base;
	int out = -1, i;
	off_t off = 0;

	buf_init(&path, STATE_PATH_MAX);
	if (buf_printf(&path, "%s/rejected", sysmode_state_dir()) != ERR_OK) {
		buf_release(&path);
		return errinfo_set(reterr, ERR_LIMIT, "path too long");
	}
	if (mkdir(buf_cstr(&path), 0700) != 0 && errno != EEXIST) {
		e = io_err(reterr, "create", buf_cstr(&path));
		buf_release(&path);
		return e;
	}
	/*
	 * A name already taken (a run that copied the entry but could not
	 * remove it) must not keep this entry in the maildrop forever: the
	 * copy gets a suffix instead.
	 */
	base = path.len;
	for (i = 1; i <= 9; i++) {
		path.len = base;
		if ((i == 1 ? buf_printf(&path, "/%s", name) :
		    buf_printf(&path, "/%s.%d", name, i)) != ERR_OK) {
			buf_release(&path);
			return errinfo_set(reterr, ERR_LIMIT, "path too long");
		}
		out = open(buf_cstr(&path), O_WRONLY | O_CREAT | O_EXCL |
			O_NOFOLLOW | O_CLOEXEC, 0600);
		if (out >= 0 || errno != EEXIST) {
			break;
		}
	}
	if (out < 0) {
		e = io_err(reterr, "create", buf_cstr(&path));
		buf_release(&path);
		return e;
	}
	for (;;) {
		ssize_t n = pread(fd, chunk, sizeof(chunk), off);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			if (n < 0) {
				e = io_err(reterr, "read", name);
			}
			break;
		}
		if (util_write_all(out, chunk, (size_t)n) != 0) {
			e = io_err(reterr, "write", buf_cstr(&path));
			break;
		}
		off += n;
	}
	if (e == ERR_OK && fsync(out) != 0) {
		e = io_err(reterr, "sync", buf_cstr(&path));
	}
	close(out);
	if (e != ERR_OK) {
		unlink(buf_cstr(&path));
	} else if (unlinkat(dfd, name, 0) != 0) {
		e = io_err(reterr, "remove", name);
	}
	buf_release(&path);
	return e;
}

/* Handle one entry; see enum outcome. */
static enum outcome
pickup_one(const struct cli_opts *o, int dfd, const char *name,
	struct errinfo *reterr)
{
	struct errinfo why = ERRINFO_INIT;
	struct maildrop_entry e;
	struct stat st;
	char id[QUEUE_ID_LEN + 1];
	enum outcome out = KEPT;
	enum err x;
	int fd;

	memset(&e, 0, sizeof(e));
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		return PICKED_UP;	/* another run took it */
	}
	if (fd < 0 && errno != ELOOP) {
		io_err(reterr, "open", name);
		return KEPT;
	}
	if (fd >= 0 && fstat(fd, &st) != 0) {
		io_err(reterr, "stat", name);
		close(fd);
		return KEPT;
	}
	/*
	 * Only what oasmtp-drop makes: a regular file with one link.  Anything
	 * else (a symbolic link, a FIFO, a hard link) is never read; removed.
	 */
	if (fd < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		log_error("maildrop: rejected %s: not a regular file with one "
			"link; removed", name);
		if (fd >= 0) {
			close(fd);
		}
		if (unlinkat(dfd, name, 0) != 0 && errno != ENOENT) {
			io_err(reterr, "remove", name);
			return KEPT;
		}
		return REJECTED;
	}
	x = read_header(fd, &e, &why);
	if (x == ERR_OK && (uid_t)e.uid != st.st_uid) {
		x = errinfo_set(&why, ERR_DATA, "the record names uid %ld but "
			"the file belongs to uid %ld", e.uid, (long)st.st_uid);
	}
	if (x == ERR_OK) {
		x = queue_entry_of(o, fd, name, &e, id, &why);
	}
	if (x == ERR_OK) {
		if (unlinkat(dfd, name, 0) != 0 && errno != ENOENT) {
			/* queued; a second copy may go out next time */
			log_warn("maildrop: cannot remove '%s' after queueing "
				"it as %s: %s", name, id, strerror(errno));
		}
		out = PICKED_UP;
	} else if (x == ERR_USAGE || x == ERR_DATA || x == ERR_LIMIT) {
		log_error("maildrop: rejected %s from %s (uid %ld): %s; kept "
			"in %s/rejected", name, e.user != NULL ? e.user : "?",
			(long)st.st_uid, errinfo_msg(&why), sysmode_state_dir());
		if (reject(dfd, fd, name, reterr) == ERR_OK) {
			out = REJECTED;
		}
	} else {
		errinfo_copy(reterr, &why);
		errinfo_prefix(reterr, "maildrop entry %s: ", name);
	}
	errinfo_release(&why);
	maildrop_entry_release(&e);
	close(fd);
	return out;
}

/* One file of STATE/rejected/. */
struct rejected_file {
	char *name;
	struct timespec mtime;
	long long size;
	int gone;
};

/* Oldest first; the name breaks a tie (entry names grow with time). */
static int
cmp_rejected(const void *a, const void *b)
{
	const struct rejected_file *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec) {
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	}
	if (x->mtime.tv_nsec != y->mtime.tv_nsec) {
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	}
	return strcmp(x->name, y->name);
}

/* Remove f from rfd (STATE/rejected) and say why in the journal. */
static int
drop_rejected(int rfd, struct rejected_file *f, const char *why, long limit)
{
	if (unlinkat(rfd, f->name, 0) != 0 && errno != ENOENT) {
		log_warn("maildrop: cannot remove rejected/%s: %s", f->name,
			strerror(errno));
		return -1;
	}
	f->gone = 1;
	if (strcmp(why, "age") == 0) {
		log_info("maildrop: removed rejected/%s (%lld bytes): older "
			"than system_rejected_max_age (%ld s)", f->name,
			f->size, limit);
	} else if (strcmp(why, "count") == 0) {
		log_info("maildrop: removed rejected/%s (%lld bytes): more "
			"than system_rejected_max_count (%ld) entries", f->name,
			f->size, limit);
	} else {
		log_info("maildrop: removed rejected/%s (%lld bytes): "
			"rejected/ over system_rejected_max_size (%ld bytes)",
			f->name, f->size, limit);
	}
	return 0;
}

/*
 * Keep STATE/rejected/ bounded, so that a local user cannot fill the
 * service's disk with messages that are never sent: entries older than
 * max_age go, then the oldest until at most max_count entries and
 * max_size bytes are left.  An entry dated in the future (the clock was
 * set back) is not expired by age, but counts for both limits.  Problems
 * are warnings: they never stop the pickup.
 */
static void
prune_rejected(long max_age, long max_count, long max_size, time_t now)
{
	struct rejected_file *v = NULL;
	struct dirent *de;
	struct buf path;
	size_t n = 0, cap = 0, i, left;
	long long bytes = 0;
	DIR *d = NULL;
	int rfd, fd;

	buf_init(&path, PATH_MAX);
	if (buf_printf(&path, "%s/rejected", sysmode_state_dir()) != ERR_OK) {
		buf_release(&path);
		return;
	}
	rfd = open(buf_cstr(&path), O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		O_CLOEXEC);
	if (rfd < 0) {
		if (errno != ENOENT) {
			log_warn("maildrop: cannot open '%s': %s",
				buf_cstr(&path), strerror(errno));
		}
		buf_release(&path);
		return;
	}
	buf_release(&path);
	fd = dup(rfd);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0) {
			close(fd);
		}
		log_warn("maildrop: cannot read rejected/: %s", strerror(errno));
		close(rfd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (fstatat(rfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode)) {
			continue;	/* ".", "..", gone meanwhile: not ours */
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct rejected_file *nv = realloc(v, nc * sizeof(*nv));

			if (nv == NULL) {
				break;
			}
			v = nv;
			cap = nc;
		}
		v[n].name = strdup(de->d_name);
		if (v[n].name == NULL) {
			break;
		}
		v[n].mtime = st.st_mtim;
		v[n].size = (long long)st.st_size;
		v[n].gone = 0;
		bytes += v[n].size;
		n++;
	}
	closedir(d);
	if (n > 1) {
		qsort(v, n, sizeof(*v), cmp_rejected);
	}
	left = n;
	for (i = 0; i < n; i++) {
		/* a difference, so no overflow near the ends of time_t */
		if (now - v[i].mtime.tv_sec > max_age &&
		    drop_rejected(rfd, &v[i], "age", max_age) == 0) {
			bytes -= v[i].size;
			left--;
		}
	}
	for (i = 0; i < n && (left > (size_t)max_count || bytes > max_size);
	    i++) {
		if (v[i].gone) {
			continue;
		}
		if (drop_rejected(rfd, &v[i], left > (size_t)max_count ?
		    "count" : "size", left > (size_t)max_count ? max_count :
		    max_size) == 0) {
			bytes -= v[i].size;
			left--;
		}
	}
	for (i = 0; i < n; i++) {
		free(v[i].name);
	}
	free(v);
	close(rfd);
}

/*
 * The limits of rejected/ are those of the system configuration's default
 * account; the built-in ones when it cannot be loaded now.
 */
static void
prune_rejected_of(const struct cli_opts *o)
{
	struct errinfo ei;
	struct cli_opts co = *o;	/* shallow: only read by the job */
	struct job job = { .o = &co };
	long age = ACCOUNT_REJECTED_MAX_AGE;
	long count = ACCOUNT_REJECTED_MAX_COUNT;
	long size = ACCOUNT_REJECTED_MAX_SIZE;

	co.account = NULL;
	errinfo_init(&ei);
	if (job_load_account(&job, NULL, 0, &ei) == ERR_OK) {
		age = job.acc->system_rejected_max_age;
		count = job.acc->system_rejected_max_count;
		size = job.acc->system_rejected_max_size;
	} else {
		log_debug(1, "rejected/: the built-in limits (%s)",
			errinfo_msg(&ei));
	}
	errinfo_release(&ei);
	job_release(&job);
	prune_rejected(age, count, size, time(NULL));
}

/*
 * The pickup is exclusive: two runs at once (the timer and the path unit,
 * or oasmtp-token's flush after a new grant) would both queue an entry
 * before either removed it.  The lock is STATE/pickup.lock; a second run
 * waits for the first, then finds what is left.  *ret_fd gets the
 * descriptor that holds the lock.
 */
static MUST_CHECK enum err
lock_pickup(int *ret_fd, struct errinfo *reterr)
{
	struct buf path;
	enum err e = ERR_OK;
	int fd;

	*ret_fd = -1;
	buf_init(&path, STATE_PATH_MAX);
	if (buf_printf(&path, "%s/pickup.lock", sysmode_state_dir()) !=
	    ERR_OK) {
		buf_release(&path);
		return errinfo_set(reterr, ERR_LIMIT, "path too long");
	}
	fd = open(buf_cstr(&path), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		0600);
	if (fd < 0) {
		e = io_err(reterr, "open", buf_cstr(&path));
	} else {
		while (flock(fd, LOCK_EX) != 0) {
			if (errno != EINTR) {
				e = io_err(reterr, "lock", buf_cstr(&path));
				close(fd);
				fd = -1;
				break;
			}
		}
	}
	buf_release(&path);
	*ret_fd = fd;
	return e;
}

enum err
pickup_run(const struct cli_opts *o, size_t *ret_moved,
	struct errinfo *reterr)
{
	struct buf dir;
	char **names = NULL;
	size_t n = 0, i, moved = 0;
	enum err e, first = ERR_OK;
	int dfd = -1, lockfd = -1;

	buf_init(&dir, PATH_MAX);
	e = sysmode_maildrop_dir(&dir, reterr);
	if (e == ERR_OK) {
		e = open_dir(buf_cstr(&dir), &dfd, reterr);
	}
	if (e == ERR_OK && dfd >= 0) {
		e = lock_pickup(&lockfd, reterr);
	}
	if (e == ERR_OK && dfd >= 0) {
		e = list_entries(dfd, &names, &n, reterr);
	}
	/*
	 * One entry that cannot be handled now (unreadable, a full disk)
	 * stays for the next run, reported; the others still flow.  The
	 * first such error is returned.
	 */
	for (i = 0; i < n && e == ERR_OK; i++) {
		struct errinfo one = ERRINFO_INIT;
		enum outcome oc;

		oc = pickup_one(o, dfd, names[i], &one);
		if (oc == KEPT) {
			log_error("maildrop: %s kept for the next run: %s",
				names[i], errinfo_msg(&one)[0] != '\0' ?
				errinfo_msg(&one) : "unknown error");
			if (first == ERR_OK) {
				first = one.code != ERR_OK ? one.code : ERR_IO;
				errinfo_copy(reterr, &one);
			}
		} else if (oc == PICKED_UP) {
			moved++;
		}
		errinfo_release(&one);
	}
	if (lockfd >= 0) {
		prune_rejected_of(o);
	}
	if (e == ERR_OK) {
		e = first;
	}
	if (moved > 0 && fsync(dfd) != 0 && errno != EINVAL) {
		log_warn("maildrop: cannot sync '%s': %s", buf_cstr(&dir),
			strerror(errno));
	}
	for (i = 0; i < n; i++) {
		free(names[i]);
	}
	free(names);
	if (dfd >= 0) {
		close(dfd);
	}
	if (lockfd >= 0) {
		close(lockfd);	/* the lock goes with it */
	}
	buf_release(&dir);
	if (ret_moved != NULL) {
		*ret_moved = moved;
	}
	return e;
}

long
pickup_pending(void)
{
	struct errinfo scratch = ERRINFO_INIT;
	struct buf dir;
	struct dirent *de;
	long n = 0;
	DIR *d;

	buf_init(&dir, PATH_MAX);
	if (sysmode_maildrop_dir(&dir, &scratch) != ERR_OK) {
		buf_release(&dir);
		errinfo_release(&scratch);
		return -1;
	}
	d = opendir(buf_cstr(&dir));
	buf_release(&dir);
	if (d == NULL) {
		return errno == ENOENT ? 0 : -1;
	}
	while ((de = readdir(d)) != NULL) {
		n += maildrop_name_kind(de->d_name) == 2;
	}
	closedir(d);
	return n;
}
