/*
 * resolve.c - getaddrinfo(3) with a deadline: a detached helper thread does
 * the lookup, the caller waits on a condition variable (CLOCK_MONOTONIC, as
 * util_now_ms()) until the answer or the deadline.  See resolve.h for who
 * owns what.
 */
#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "util.h"

/* One lookup, shared by the caller and the helper thread. */
struct request {
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* signalled when done is set */
	int refs;			/* under lock: caller + thread */
	int done;			/* under lock */
	int rc;				/* getaddrinfo() result, once done */
	int sys_errno;			/* errno after it, for EAI_SYSTEM */
	struct addrinfo *list;		/* under lock; freed here unless taken */
	/* Written before the thread starts, read-only afterwards. */
	struct addrinfo hints;
	char name[NI_MAXHOST];
	char service[NI_MAXSERV];
};

static atomic_ulong threads_started;
static atomic_ulong threads_running;

void
resolve_thread_counts(unsigned long *ret_started, unsigned long *ret_running)
{
	*ret_started = atomic_load(&threads_started);
	*ret_running = atomic_load(&threads_running);
}

/*
 * Whether name does not exist at all, after getaddrinfo() said EAI_NONAME
 * (or EAI_NODATA) for hints: that also means "no address of the family
 * asked for" (AF_INET with only an AAAA record, AI_ADDRCONFIG), so the name
 * is asked once more for any family and any address, numeric service.  Only
 * a second "no such name" is the DNS's NXDOMAIN (or no /etc/hosts entry).
 */
static int
name_missing(const char *name)
{
	struct addrinfo any, *list = NULL;
	int rc;

	memset(&any, 0, sizeof(any));
	any.ai_family = AF_UNSPEC;
	any.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(name, NULL, &any, &list);
	if (rc == 0) {
		freeaddrinfo(list);
	}
	return rc == EAI_NONAME;
}

static MUST_CHECK enum err
lookup_failed(const char *name, int rc, int sys_errno,
	struct errinfo *reterr)
{
	if ((rc == EAI_NONAME
#ifdef EAI_NODATA
		|| rc == EAI_NODATA
#endif
		) && name_missing(name)) {
		return errinfo_set(reterr, ERR_NOHOST,
			"host %s does not exist (no such name in the DNS); "
			"check the spelling", name);
	}
	if (rc == EAI_SYSTEM) {
		errinfo_set_errno(reterr, sys_errno);
	}
	if (rc == EAI_AGAIN) {
		return errinfo_set(reterr, ERR_NET,
			"temporary failure resolving host %s: %s "
			"(try again later)", name, gai_strerror(rc));
	}
	if (rc == EAI_MEMORY) {
		return errinfo_set(reterr, ERR_NOMEM,
			"out of memory resolving host %s", name);
	}
	return errinfo_set(reterr, ERR_NET, "cannot resolve host %s: %s",
		name, rc == EAI_SYSTEM ? strerror(sys_errno)
		: gai_strerror(rc));
}

static void
request_free(struct request *rq)
{
	if (rq->list != NULL) {
		freeaddrinfo(rq->list);
	}
	pthread_cond_destroy(&rq->cond);
	pthread_mutex_destroy(&rq->lock);
	free(rq);
}

/* Drop one reference; the last one frees the request and any result. */
static void
request_put(struct request *rq)
{
	int last;

	pthread_mutex_lock(&rq->lock);
	last = --rq->refs == 0;
	pthread_mutex_unlock(&rq->lock);
	if (last) {
		request_free(rq);
	}
}

static void *
lookup_thread(void *arg)
{
	struct request *rq = arg;
	struct addrinfo *list = NULL;
	int rc, saved;

	rc = getaddrinfo(rq->name, rq->service, &rq->hints, &list);
	saved = errno;
	pthread_mutex_lock(&rq->lock);
	rq->rc = rc;
	rq->sys_errno = saved;
	rq->list = rc == 0 ? list : NULL;
	rq->done = 1;
	pthread_cond_signal(&rq->cond);
	pthread_mutex_unlock(&rq->lock);
	request_put(rq);
	atomic_fetch_sub(&threads_running, 1);
	return NULL;
}

static struct request *
request_new(const char *name, const char *service,
	const struct addrinfo *hints)
{
	struct request *rq;
	pthread_condattr_t ca;

	rq = calloc(1, sizeof(*rq));
	if (rq == NULL) {
		return NULL;
	}
	util_strlcpy(rq->name, name, sizeof(rq->name));
	util_strlcpy(rq->service, service, sizeof(rq->service));
	rq->hints.ai_flags = hints->ai_flags;
	rq->hints.ai_family = hints->ai_family;
	rq->hints.ai_socktype = hints->ai_socktype;
	rq->hints.ai_protocol = hints->ai_protocol;
	rq->refs = 2;
	if (pthread_condattr_init(&ca) != 0) {
		free(rq);
		return NULL;
	}
	if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0
		|| pthread_cond_init(&rq->cond, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		free(rq);
		return NULL;
	}
	pthread_condattr_destroy(&ca);
	if (pthread_mutex_init(&rq->lock, NULL) != 0) {
		pthread_cond_destroy(&rq->cond);
		free(rq);
		return NULL;
	}
	return rq;
}

/* Start the detached helper with every signal blocked; 0 or an errno. */
static int
start_thread(struct request *rq)
{
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t all, old;
	int rc;

	rc = pthread_attr_init(&attr);
	if (rc != 0) {
		return rc;
	}
	rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (rc == 0) {
		/* The thread inherits the mask in force when it is created. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		/* Counted first: the thread may be done before create returns. */
		atomic_fetch_add(&threads_running, 1);
		rc = pthread_create(&tid, &attr, lookup_thread, rq);
		if (rc != 0) {
			atomic_fetch_sub(&threads_running, 1);
		} else {
			atomic_fetch_add(&threads_started, 1);
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	pthread_attr_destroy(&attr);
	return rc;
}

enum err
resolve_host(const char *name, const char *service,
	const struct addrinfo *hints, int64_t deadline,
	struct addrinfo **ret_list, struct errinfo *reterr)
{
	struct addrinfo numeric;
	struct request *rq;
	struct timespec ts;
	int64_t left;
	int rc, saved, done;

	*ret_list = NULL;
	if (strlen(name) >= NI_MAXHOST || strlen(service) >= NI_MAXSERV) {
		return errinfo_set(reterr, ERR_CONFIG, "host name too long");
	}

	/* An address literal needs no resolver, and no thread. */
	numeric = *hints;
	numeric.ai_flags |= AI_NUMERICHOST;
	rc = getaddrinfo(name, service, &numeric, ret_list);
	if (rc == 0) {
		return ERR_OK;
	}
	if (rc != EAI_NONAME || (hints->ai_flags & AI_NUMERICHOST) != 0) {
		return lookup_failed(name, rc, errno, reterr);
	}

	if (deadline == 0) {
		rc = getaddrinfo(name, service, hints, ret_list);
		return rc == 0 ? ERR_OK : lookup_failed(name, rc, errno, reterr);
	}
	left = deadline - util_now_ms();
	if (left <= 0) {
		return errinfo_set(reterr, ERR_TIMEOUT,
			"timed out before resolving host %s", name);
	}

	rq = request_new(name, service, hints);
	if (rq == NULL) {
		return errinfo_set(reterr, ERR_NOMEM, "out of memory");
	}
	if (start_thread(rq) != 0) {
		/* No thread to be had: look up here, without the deadline. */
		request_free(rq);
		rc = getaddrinfo(name, service, hints, ret_list);
		return rc == 0 ? ERR_OK : lookup_failed(name, rc, errno, reterr);
	}

	ts.tv_sec = (time_t)(deadline / 1000);
	ts.tv_nsec = (long)(deadline % 1000) * 1000000L;
	pthread_mutex_lock(&rq->lock);
	while (!rq->done) {
		/* 0 is a wake-up (maybe spurious); anything else ends it. */
		if (pthread_cond_timedwait(&rq->cond, &rq->lock, &ts) != 0) {
			break;
		}
	}
	done = rq->done;
	rc = rq->rc;
	saved = rq->sys_errno;
	if (done) {
		*ret_list = rq->list;
		rq->list = NULL;
	}
	pthread_mutex_unlock(&rq->lock);
	/* When not done, the thread's reference is now the last one. */
	request_put(rq);

	if (!done) {
		return errinfo_set(reterr, ERR_TIMEOUT,
			"cannot resolve %s within %lld s: no answer from the "
			"DNS server (check the network and the nameservers "
			"in /etc/resolv.conf, or raise 'timeout')", name,
			(long long)((left + 999) / 1000));
	}
	return rc == 0 ? ERR_OK : lookup_failed(name, rc, saved, reterr);
}
