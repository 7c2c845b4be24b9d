/* keeper.c - the session keeper process; see keeper.h. */
#include "keeper.h"

#define _GNU_SOURCE	/* accept4 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "handover.h"
#include "job.h"
#include "log.h"
#include "msgid_map.h"
#include "proc.h"
#include "submit.h"
#include "util.h"

/* How long a caller may take between connecting and COMMIT. */
#define REQUEST_TIMEOUT_MS 5000

void (*keeper_test_hook)(const char *step);

struct keeper {
	struct submit_conn *c;
	char *path;		/* the socket */
	char *key;
	int lfd, lockfd;	/* the place; -1 once given up */
	int64_t idle_ms;	/* session_persist */
	int64_t end_at;		/* session_max_age reached */
	unsigned max_messages;
	int timeout_s;		/* the account's step timeout */
	struct msgid_map ids;	/* Message-IDs the server renamed */
};

static void
test_stop(const struct keeper *k, const char *step)
{
	(void)k;
	if (keeper_test_hook != NULL) {
		keeper_test_hook(step);
	}
}

/*
 * Give the place up: the socket file goes while the lock is still held
 * (confined, the unlink is refused: the next claim removes the file), then
 * the socket and the lock.  Done before the last answer to a caller, so
 * that a caller refused (or served for the last time) finds it free.
 */
static void
give_up_place(struct keeper *k)
{
	if (k->lfd < 0) {
		return;
	}
	(void)unlink(k->path);
	close(k->lfd);
	close(k->lockfd);
	k->lfd = k->lockfd = -1;
}

/* 0 when the session can take no further message. */
static int
still_usable(const struct keeper *k)
{
	return submit_conn_usable(k->c) &&
		submit_conn_transactions(k->c) < k->max_messages &&
		util_now_ms() < k->end_at;
}

/* Every descriptor but the keep ones (0-2 become /dev/null). */
/*
 * close_range(2) over everything above stderr but keep..keep3 (-1: none);
 * 0, or -1 where the kernel or the filter has no close_range.  A confined
 * keeper cannot list /proc/self/fd (Landlock), and closing 3..4095 one by
 * one cost it ~4,000 system calls.
 */
static int
close_ranges(int keep, int keep2, int keep3)
{
#ifdef SYS_close_range
	int k[3] = { keep, keep2, keep3 }, t;
	unsigned int lo = STDERR_FILENO + 1;
	size_t i, j;

	for (i = 0; i < 3; i++) {	/* ascending */
		for (j = i + 1; j < 3; j++) {
			if (k[j] < k[i]) {
				t = k[i];
				k[i] = k[j];
				k[j] = t;
			}
		}
	}
	for (i = 0; i < 3; i++) {
		if (k[i] < 0 || (unsigned int)k[i] < lo) {
			continue;
		}
		if ((unsigned int)k[i] > lo &&
		    syscall(SYS_close_range, lo, (unsigned int)k[i] - 1, 0) != 0) {
			return -1;
		}
		lo = (unsigned int)k[i] + 1;
	}
	return syscall(SYS_close_range, lo, ~0U, 0) == 0 ? 0 : -1;
#else
	(void)keep;
	(void)keep2;
	(void)keep3;
	return -1;
#endif
}

static void
detach_fds(int keep, int keep2, int keep3)
{
	DIR *d;
	struct dirent *de;
	int null = open("/dev/null", O_RDWR);
	int fd, *fds = NULL;
	size_t n = 0, cap = 0, i;

	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO) {
			close(null);
		}
	}
	if (close_ranges(keep, keep2, keep3) == 0) {
		return;
	}
	d = opendir("/proc/self/fd");
	if (d == NULL) {
		for (fd = STDERR_FILENO + 1; fd < 4096; fd++) {
			if (fd != keep && fd != keep2 && fd != keep3) {
				close(fd);
			}
		}
		return;
	}
	while ((de = readdir(d)) != NULL) {
		long v;

		if (util_parse_long(de->d_name, STDERR_FILENO + 1, 1 << 30,
		    &v) != 0 || (int)v == keep || (int)v == keep2 ||
		    (int)v == keep3 || (int)v == dirfd(d)) {
			continue;
		}
		if (n == cap) {
			int *nf = realloc(fds, (cap = cap ? 2 * cap : 64) *
				sizeof(int));

			if (nf == NULL) {
				break;
			}
			fds = nf;
		}
		fds[n++] = (int)v;
	}
	closedir(d);
	for (i = 0; i < n; i++) {
		close(fds[i]);
	}
	free(fds);
}

static enum err
keeper_body_read(void *ctx, uint64_t off, void *p, size_t cap, size_t *ret_n,
	struct errinfo *reterr)
{
	const int *fd = ctx;
	ssize_t n;

	do {
		n = pread(*fd, p, cap, (off_t)off);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		return errinfo_set(reterr, ERR_IO, "reading the message: %s",
			strerror(errno));
	}
	*ret_n = (size_t)n;
	return ERR_OK;
}

/*
 * The server renamed the message own (its final reply in res)?  Keep the
 * pair for the later callers (READY), whatever the state file can take.
 */
static void
remember_id(struct keeper *k, const char *own, const struct submit_result *res)
{
	struct buf assigned;

	buf_init(&assigned, MSGID_MAP_ID_MAX);
	if (msgid_map_assigned(buf_cstr(&res->final_reply), own, &assigned) &&
	    k->ids.data.len + strlen(own) + assigned.len + 32 <=
	    HANDOVER_IDS_MAX &&
	    msgid_map_add(&k->ids, own, buf_cstr(&assigned), time(NULL)) !=
	    ERR_OK) {
		/* out of memory: this one is not threaded through the keeper */
	}
	buf_release(&assigned);
}

/* One caller, start to end.  Returns 0 when the keeper must end. */
static int
serve(struct keeper *k, int fd)
{
	struct errinfo ei = ERRINFO_INIT;
	struct handover_request req;
	struct submit_result res;
	struct buf transcript;
	struct submit_body body;
	const char *refusal = NULL;
	int known = 0, go_on = 1;
	enum err e;

	errinfo_init(&ei);
	handover_request_init(&req);
	test_stop(k, "accepted");
	if (handover_recv_request(fd, REQUEST_TIMEOUT_MS, &req, &ei) !=
	    ERR_OK) {
		handover_request_release(&req);
		return 1;	/* not a caller of ours: keep waiting */
	}
	if (strcmp(buf_cstr(&req.key), k->key) != 0) {
		refusal = "another session";
	} else if (!submit_conn_usable(k->c)) {
		refusal = "the session is closed";
		go_on = 0;
	} else if (submit_conn_transactions(k->c) >= k->max_messages ||
	    util_now_ms() >= k->end_at) {
		refusal = "the session is used up";
		go_on = 0;
	}
	test_stop(k, "request");
	if (!go_on) {
		give_up_place(k);
	}
	if (handover_send_ready(fd, refusal, &k->ids, &ei) != ERR_OK ||
	    refusal != NULL) {
		handover_request_release(&req);
		return go_on;
	}
	test_stop(k, "ready");
	if (handover_recv_commit(fd, REQUEST_TIMEOUT_MS, &req, &ei) !=
	    ERR_OK) {
		/* the caller went away before COMMIT: it sends by itself */
		handover_request_release(&req);
		return 1;
	}
	test_stop(k, "committed");
	submit_result_init(&res);
	buf_init(&transcript, HANDOVER_TRANSCRIPT_MAX);
	submit_conn_set_transcript(k->c, handover_transcript_collect,
		&transcript);
	body.size = req.size;
	/* the body: the caller's file, read where it stands */
	body.read = keeper_body_read;
	body.ctx = &req.body_fd;
	errinfo_init(&ei);
	e = submit_conn_message(k->c, &req.env, &body, &res, &known, &ei);
	submit_conn_set_transcript(k->c, NULL, NULL);
	if (e == ERR_OK && req.msgid.len > 0) {
		remember_id(k, buf_cstr(&req.msgid), &res);
	}
	test_stop(k, "sent");
	/* used up: give the place to the next session before it asks */
	go_on = still_usable(k);
	if (!go_on) {
		give_up_place(k);
	}
	(void)handover_send_result(fd, e, known, &ei, &res, &transcript,
		NULL);
	test_stop(k, "result");
	buf_release(&transcript);
	submit_result_release(&res);
	handover_request_release(&req);
	errinfo_release(&ei);
	return go_on;
}

static void
run_keeper(struct keeper *k)
{
	int sfd = submit_conn_fd(k->c);
	int64_t idle_until = util_now_ms() + k->idle_ms;

	test_stop(k, "listening");
	while (k->lfd >= 0) {
		struct pollfd pfd[2];
		int64_t now = util_now_ms();
		int64_t until = idle_until < k->end_at ? idle_until : k->end_at;
		int r;

		if (now >= until) {
			break;
		}
		pfd[0].fd = k->lfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = sfd;
		pfd[1].events = POLLIN;
		pfd[0].revents = pfd[1].revents = 0;
		r = poll(pfd, 2, (int)(until - now));
		if (r < 0 && errno != EINTR) {
			break;
		}
		if (r <= 0) {
			continue;
		}
		if (pfd[1].revents != 0) {
			/* a 421 or a close while idle: the session is over */
			break;
		}
		if (pfd[0].revents & POLLIN) {
			/* the one accept() the confinement allows (listen_fd) */
			int cfd = accept4(k->lfd, NULL, NULL, SOCK_CLOEXEC);
			int go_on = 1;

			if (cfd >= 0) {
				go_on = serve(k, cfd);
				close(cfd);
			}
			idle_until = util_now_ms() + k->idle_ms;
			if (!go_on) {
				break;
			}
		}
	}
	/* give the place up before the QUIT round trip */
	give_up_place(k);
	submit_conn_close(k->c);
}

void
keeper_place_init(struct keeper_place *pl)
{
	pl->sock = pl->lock = -1;
	buf_init(&pl->key, HANDOVER_KEY_MAX);
	buf_init(&pl->path, HANDOVER_PATH_MAX);
}

enum err
keeper_place_paths(const struct job *job, struct keeper_place *pl,
	struct errinfo *reterr)
{
	enum err e;

	if (pl->path.len > 0) {
		return ERR_OK;		/* computed for this send already */
	}
	buf_reset(&pl->key);
	e = handover_paths(job->acc, 1, &pl->key, &pl->path, reterr);
	if (e != ERR_OK) {
		buf_reset(&pl->key);
		buf_reset(&pl->path);	/* a later call tries again */
	}
	return e;
}

int
keeper_claim(const struct job *job, struct keeper_place *pl)
{
	struct errinfo ei = ERRINFO_INIT;

	errinfo_init(&ei);
	if (keeper_place_paths(job, pl, &ei) != ERR_OK ||
	    handover_claim(buf_cstr(&pl->path), &pl->sock, &pl->lock, &ei) !=
	    ERR_OK) {
		log_debug(1, "no session keeper after this send: %s",
			errinfo_msg(&ei));
		pl->sock = pl->lock = -1;
	}
	errinfo_release(&ei);
	return pl->sock >= 0;
}

void
keeper_place_release(struct keeper_place *pl)
{
	if (pl->sock >= 0) {
		(void)unlink(buf_cstr(&pl->path));
		close(pl->sock);
		close(pl->lock);
	}
	pl->sock = pl->lock = -1;
	buf_release(&pl->key);
	buf_release(&pl->path);
}

void
keeper_start(struct job *job, struct submit_conn *c, struct keeper_place *pl,
	const char *own_id, const struct submit_result *res)
{
	const struct account *acc = job->acc;
	struct keeper k;
	int pid;

	/*
	 * Listening from now on, before the caller gets its exit status, so
	 * that the next invocation (git starts it at once) finds the keeper.
	 */
	if (pl->sock < 0 || listen(pl->sock, 16) != 0) {
		submit_conn_close(c);
		return;
	}
	memset(&k, 0, sizeof(k));
	k.c = c;
	k.lfd = pl->sock;
	k.lockfd = pl->lock;
	k.idle_ms = (int64_t)acc->session_persist * 1000;
	k.end_at = util_now_ms() + (int64_t)acc->session_max_age * 1000;
	k.max_messages = (unsigned)acc->session_max_messages;
	k.timeout_s = acc->timeout;
	msgid_map_init(&k.ids);
	if (own_id != NULL) {
		remember_id(&k, own_id, res);
	}
	/* detached: its own session, stdio on /dev/null, nobody reaps it */
	pid = proc_detach();
	if (pid != 0) {
		msgid_map_release(&k.ids);	/* the keeper's own copy */
	}
	if (pid < 0) {
		submit_conn_close(c);
		return;		/* the caller's keeper_place_release() cleans up */
	}
	if (pid > 0) {
		/* the child holds the socket and the lock now */
		close(pl->sock);
		close(pl->lock);
		pl->sock = pl->lock = -1;
		log_debug(1, "session kept for %lds by a detached process",
			acc->session_persist);
		submit_conn_forget(c);
		return;
	}
	/* the keeper */
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	detach_fds(submit_conn_fd(c), k.lfd, k.lockfd);
	k.key = strdup(buf_cstr(&pl->key));
	k.path = strdup(buf_cstr(&pl->path));
	buf_release(&pl->key);
	buf_release(&pl->path);
	/* no secret stays behind: the configuration is wiped and freed */
	job_release(job);
	if (k.key != NULL && k.path != NULL) {
		run_keeper(&k);
	} else {
		give_up_place(&k);
		submit_conn_close(c);
	}
	_exit(0);
}
