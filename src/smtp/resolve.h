/*
 * resolve.h - getaddrinfo(3) that gives up at a deadline.
 *
 * The resolver in libc cannot be interrupted: with a DNS server that never
 * answers, getaddrinfo() waits out its own timeouts and retries (resolv.conf
 * "options timeout:N attempts:N", again for each search domain), which can
 * be minutes, far beyond the account's timeout.  So a name is looked up in
 * a helper thread, and the caller waits for that thread only until its
 * deadline.
 *
 * Cost: numeric addresses (127.0.0.1, ::1) are parsed in the calling thread
 * with AI_NUMERICHOST, and without a deadline every lookup runs in the
 * calling thread as before; only names with a deadline start a thread.  The
 * queries sent are the same either way: nothing is added on the network.
 *
 * Ownership: a lookup is one heap-allocated request holding copies of the
 * name, the service and the hints, the result, and a count of references:
 * one for the caller, one for the helper thread, under the request's own
 * mutex.  Whoever drops the last reference frees the request, and the
 * result list with freeaddrinfo() unless the caller took it.  Normally that
 * is the caller, which takes the list and returns it.  When the deadline
 * passes first, the caller drops its reference and returns at once; the
 * thread, still inside getaddrinfo(), then owns the request alone, and when
 * the resolver finally returns it frees the list and the request itself.
 * The thread uses nothing but the request, so nothing can be freed under
 * it.  It is detached (never joined), blocks all signals (they keep going
 * to the caller's threads), and ends with the process if that exits first.
 * Should a thread not be startable, the lookup runs in the calling thread,
 * without the deadline.
 *
 * Thread safety: any thread may call resolve_host(); getaddrinfo() is
 * thread-safe in glibc.
 */
#ifndef OASMTP_RESOLVE_H
#define OASMTP_RESOLVE_H

#include <stdint.h>

#include "err.h"

struct addrinfo;

/*
 * Look up name and service as getaddrinfo(name, service, hints) does,
 * giving up at deadline (absolute util_now_ms() milliseconds, 0 for none).
 * On success *ret_list is a list the caller frees with freeaddrinfo().
 * Only ai_flags, ai_family, ai_socktype and ai_protocol of hints are used.
 *
 * Errors: ERR_TIMEOUT when the deadline passes first ("cannot resolve NAME
 * within N s", N being the time the call had); ERR_NET when the lookup
 * fails (the message says whether the failure is temporary); ERR_CONFIG
 * for a name longer than NI_MAXHOST; ERR_NOMEM.
 */
MUST_CHECK enum err resolve_host(const char *name, const char *service,
	const struct addrinfo *hints, int64_t deadline,
	struct addrinfo **ret_list, struct errinfo *reterr);

/*
 * Helper threads started since the process began, and those of them still
 * running (inside getaddrinfo(), or freeing after it).  For tests and
 * diagnostics.
 */
void resolve_thread_counts(unsigned long *ret_started,
	unsigned long *ret_running);

#endif
