/* The range tracer's watchdog: a native thread in the process that started the trace.
 *
 * Readers of the image's files wait for the range tracer's answers, and the kernel has no timeout
 * for permission events. The watchdog shares nothing of the tracer's fate: another process (not
 * its process group or session, untouched by a signal sent to them), a thread of its own that
 * never takes Python's lock. The tracer hands it, over a socket, a duplicate of its fanotify fd,
 * a shared page where it says since when its current batch is unanswered, and a pidfd of itself.
 * Every tick the watchdog looks at both: a batch read and not answered for longer than the
 * bound, or events queued while the tracer read no batch for longer than the bound, and it
 * SIGKILLs the tracer and closes its own duplicate. The group's last fd closes, which answers
 * every pending event (FAN_ALLOW) and removes every mark. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "native.h"

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

struct nt_watchdog {
    pthread_t thread;
    int sock, quit_r, quit_w;
    int bound_ms, tick_ms;
    int fan_fd, pidfd;
    const struct nt_range_beat *beat;
    long long fired_ms; /* the wait that made it fire; 0 while it has not (atomic) */
    int armed;          /* the tracer's fds arrived (atomic) */
};

static long long wd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Wait for the tracer's three fds (fanotify, shared page, pidfd). 0, or -1 when the tracer or
 * the owner went away first. */
static int wd_receive(struct nt_watchdog *w)
{
    struct pollfd p[2] = {{.fd = w->sock, .events = POLLIN}, {.fd = w->quit_r, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (p[1].revents)
            return -1;
        if (p[0].revents)
            break;
    }
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(3 * sizeof(int))];
    } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t n;
    do
        n = recvmsg(w->sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
        return -1;
    }
    size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int fds[3] = {-1, -1, -1};
    memcpy(fds, CMSG_DATA(c), (nfds < 3 ? nfds : 3) * sizeof(int));
    if (nfds != 3) {
        int all[8];
        memcpy(all, CMSG_DATA(c), (nfds < 8 ? nfds : 8) * sizeof(int));
        for (size_t i = 0; i < nfds && i < 8; i++)
            close(all[i]);
        return -1;
    }
    void *page = mmap(NULL, sizeof(struct nt_range_beat), PROT_READ, MAP_SHARED, fds[1], 0);
    close(fds[1]);
    if (page == MAP_FAILED) {
        close(fds[0]);
        close(fds[2]);
        return -1;
    }
    w->fan_fd = fds[0];
    w->pidfd = fds[2];
    w->beat = page;
    __atomic_store_n(&w->armed, 1, __ATOMIC_RELEASE);
    return 0;
}

static int wd_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

static void wd_fire(struct nt_watchdog *w, long long waited_ns)
{
    long long ms = waited_ns / 1000000;
    /* said first: whoever sees the tracer's end must find why */
    __atomic_store_n(&w->fired_ms, ms > 0 ? ms : 1, __ATOMIC_RELEASE);
    syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
    close(w->fan_fd); /* with the tracer gone, the group's last fd: every pending event is allowed */
    w->fan_fd = -1;
}

static void *wd_main(void *arg)
{
    struct nt_watchdog *w = arg;
    if (wd_receive(w) < 0)
        return NULL;
    long long bound = w->bound_ms * 1000000LL;
    unsigned long long seen_batches = 0;
    long long queued_since = 0; /* events queued and no batch read since then */
    struct pollfd p[2] = {{.fd = w->sock, .events = POLLIN}, {.fd = w->quit_r, .events = POLLIN}};
    for (;;) {
        int n = poll(p, 2, w->tick_ms);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && (p[0].revents || p[1].revents))
            break; /* the tracer has ended (its end of the socket closed), or our owner stops us */
        if (w->fan_fd < 0)
            continue; /* fired: wait for the tracer's end */
        long long now = wd_now_ns();
        long long busy = __atomic_load_n(&w->beat->busy_since, __ATOMIC_ACQUIRE);
        unsigned long long batches = __atomic_load_n(&w->beat->batches, __ATOMIC_ACQUIRE);
        if (busy && now - busy > bound) {
            wd_fire(w, now - busy);
            continue;
        }
        if (!wd_readable(w->fan_fd)) {
            queued_since = 0;
            continue;
        }
        if (!queued_since || batches != seen_batches) {
            queued_since = now;
            seen_batches = batches;
        } else if (now - queued_since > bound) {
            wd_fire(w, now - queued_since);
        }
    }
    if (w->fan_fd >= 0)
        close(w->fan_fd);
    w->fan_fd = -1;
    return NULL;
}

struct nt_watchdog *nt_watchdog_start(int sock, int bound_ms, int *err)
{
    struct nt_watchdog *w = calloc(1, sizeof *w);
    if (!w) {
        *err = ENOMEM;
        return NULL;
    }
    int q[2];
    if (pipe2(q, O_CLOEXEC | O_NONBLOCK) < 0) {
        *err = errno;
        free(w);
        return NULL;
    }
    w->sock = sock;
    w->quit_r = q[0];
    w->quit_w = q[1];
    w->bound_ms = bound_ms > 0 ? bound_ms : 1;
    w->tick_ms = w->bound_ms / 4 > 0 ? w->bound_ms / 4 : 1;
    w->fan_fd = w->pidfd = -1;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread takes no signal of the process */
    int rc = pthread_create(&w->thread, NULL, wd_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        *err = rc;
        close(q[0]);
        close(q[1]);
        free(w);
        return NULL;
    }
    return w;
}

long long nt_watchdog_fired(const struct nt_watchdog *w)
{
    return __atomic_load_n(&w->fired_ms, __ATOMIC_ACQUIRE);
}

int nt_watchdog_armed(const struct nt_watchdog *w)
{
    return __atomic_load_n(&w->armed, __ATOMIC_ACQUIRE);
}

void nt_watchdog_stop(struct nt_watchdog *w)
{
    if (!w)
        return;
    char b = 'q';
    if (write(w->quit_w, &b, 1) < 0) {
        /* a full pipe already wakes the thread */
    }
    pthread_join(w->thread, NULL);
    if (w->beat)
        munmap((void *)w->beat, sizeof *w->beat);
    if (w->pidfd >= 0)
        close(w->pidfd);
    close(w->quit_r);
    close(w->quit_w);
    close(w->sock);
    free(w);
}
