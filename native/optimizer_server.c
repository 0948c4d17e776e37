/* nydus-top-tracer: the server_path of nydus-snapshotter's optimizer NRI plugin, as a native
 * executable. That plugin answers containerd as soon as it has started its server, so the mark
 * must be in place before the container's entry point runs: no interpreter may start first.
 *
 * Protocol of the plugin: the server gets only _MNTNS_PID and _TARGET in its environment, writes
 * one JSON object a line to stdout ("path", "size" as uint32, "elapsed" in microseconds; more
 * fields are ignored), never writes to stderr (the plugin dies on stderr output where there is no
 * syslog) and ends on SIGTERM to its process group, or by itself when the container exits.
 * Lines come from the tracer core with NT_COMPAT: paths with CR or LF left out (one path a line in
 * the plugin's list) and said by an overflow line (reason "newline in name"), sizes clamped to
 * uint32, an overflow as a line with an empty path. Names are checked in the container's root.
 * Optional NYDUS_TOP_READY_FD: an inherited fd that gets the status protocol of
 * nydus_top/trace_session.py ("R" + pid as 4 bytes little endian once the mark is in place, then
 * "S" stopped, "X" target exited, or "E" + a message on failure).
 *
 * Unlike nydus-top's own tracers it never joins the container's mount namespace (see mark_dir).
 *
 * Exit status: 0 after a drained stop or target exit, 1 if stdout's reader went away (noticed
 * while idle too), 2 on failure (stdout closed at the start among them: nobody could read a line). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "native.h"

#define OUT_CAP (1 << 20)
#define MSG_MAX 1024
/* Arming races the container's entry point: it runs at NICE_ARM (as nydus-top's own tracers
 * do), then streams at NICE_STREAM like any other process on the node. */
#define NICE_ARM (-10)
#define NICE_STREAM 0

static int ready_fd = -1;

static void status(const char *data, size_t n)
{
    if (ready_fd >= 0 && write(ready_fd, data, n) < 0) {
        /* nobody listens any more: nothing to do about it */
    }
}

static int fail(const char *what, int err)
{
    char msg[MSG_MAX];
    int n = snprintf(msg, sizeof msg, "E%s: %s", what, strerror(err));
    status(msg, n < 0 ? 0 : (size_t)n >= sizeof msg ? sizeof msg - 1 : (size_t)n);
    return 2;
}

/* A decimal int in [0, INT_MAX], or -1. */
static int parse_nonneg(const char *s)
{
    if (!s || !*s)
        return -1;
    long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return (int)v;
}

static void close_from(unsigned lo, unsigned hi)
{
    if (lo > hi)
        return;
    if (syscall(SYS_close_range, lo, hi, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = lo; fd <= (long)hi && fd < max; fd++)
        close((int)fd);
}

/* The plugin may leak its own fds (its NRI socket among them): none goes along into the
 * container's mount namespace. stderr goes to /dev/null, so not even the C library can write
 * there. */
static void tidy_fds(void)
{
    if (ready_fd > 2) {
        close_from(3, (unsigned)ready_fd - 1);
        close_from((unsigned)ready_fd + 1, ~0u);
    } else
        close_from(3, ~0u);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0 && null != 2) {
        dup2(null, 2);
        if (null > 2)
            close(null);
    }
}

static int write_all(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(1, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One batch of queued events to stdout: 1 if it had lines, 0 if not, -errno on failure. */
static int drain_batch(struct nt_tracer *t, char *buf)
{
    long n = nt_drain(t, buf, OUT_CAP);
    if (n < 0)
        return (int)n;
    int rc = write_all(buf, (size_t)n);
    return rc < 0 ? rc : n > 0;
}

static int readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}

/* Remove the mark, then drain what the kernel had queued. */
static int finish(struct nt_tracer *t, char *buf)
{
    int rc = nt_unmark(t);
    if (rc < 0)
        return rc;
    while ((rc = drain_batch(t, buf)) > 0 || (rc == 0 && readable(nt_fd(t))))
        ;
    return rc;
}

/* Stream until SIGTERM/SIGINT, the target's exit or stdout's reader going away (a pipe's write
 * end polls POLLERR once its reader is gone: seen even while no event comes), one batch between
 * looks at all three. */
static int pump(struct nt_tracer *t, int sigfd, int pidfd, char *buf, char *end)
{
    struct pollfd p[4] = {{nt_fd(t), POLLIN, 0}, {sigfd, POLLIN, 0}, {pidfd, POLLIN, 0}, {1, 0, 0}};
    int more = 0; /* the last batch had lines: more may be buffered without the fd readable */
    for (;;) {
        if (poll(p, 4, more ? 0 : -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (p[3].revents & (POLLERR | POLLHUP | POLLNVAL)) {
            int rc = nt_unmark(t);
            return rc < 0 ? rc : -EPIPE;
        }
        if (p[1].revents || p[2].revents) {
            *end = p[1].revents ? 'S' : 'X';
            return finish(t, buf);
        }
        int rc = drain_batch(t, buf);
        if (rc < 0)
            return rc;
        more = rc;
    }
}

/* The directory whose mount gets the mark: the container's root, or _TARGET resolved inside it.
 * Reached through /proc/PID/root instead of joining the container's mount namespace: setns
 * blocked 5-20 ms in the starts a joining server lost, while the entry point was being exec'd.
 * The paths of the events read back through our /proc/self/fd are relative to the container's
 * root all the same, its mounts being out of our root's reach. An fd or -errno. */
static int mark_dir(int procfd, int pid, const char *target)
{
    char rel[32];
    snprintf(rel, sizeof rel, "%d/root", pid);
    int root = openat(procfd, rel, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    if (!strcmp(target, "/"))
        return root;
    struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, root, target, &how, sizeof how);
    int e = errno;
    close(root);
    return fd < 0 ? -e : fd;
}

static int serve(void)
{
    setpriority(PRIO_PROCESS, 0, NICE_ARM);
    int pid = parse_nonneg(getenv("_MNTNS_PID"));
    const char *ready = getenv("NYDUS_TOP_READY_FD");
    ready_fd = ready ? parse_nonneg(ready) : -1;
    const char *target = getenv("_TARGET");
    if (!target || !*target)
        target = "/";
    if (ready && ready_fd < 0)
        return 2;
    /* Checked before tidy_fds, whose /dev/null would take a closed fd 1: lines into nothing. */
    int stdout_open = fcntl(1, F_GETFD) >= 0 && ready_fd != 1;
    tidy_fds();
    if (!stdout_open)
        return fail("stdout", EBADF);
    if (pid <= 0)
        return fail("_MNTNS_PID", EINVAL);

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sigfd = signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0)
        return fail("signalfd", errno);

    char what[64];
    snprintf(what, sizeof what, "pid %d", pid);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return fail(what, errno);
    /* The host procfs: the container's root, paths and command names are reached through it;
     * nothing is looked up by name inside the container but _TARGET, confined to its root. */
    int procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (procfd < 0)
        return fail("/proc", errno);
    int at = mark_dir(procfd, pid, target);
    if (at < 0)
        return fail(at == -ESRCH ? what : "_TARGET", -at);
    if (readable(pidfd)) /* the root we opened may belong to a recycled pid */
        return fail(what, ESRCH);
    int err = 0;
    struct nt_tracer *t = nt_open_at(procfd, at, ".", NT_COMPAT, &err);
    if (!t)
        return fail("fanotify mark on _TARGET", err);
    close(at);
    snprintf(what, sizeof what, "%d/root", pid);
    int root = openat(procfd, what, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0 || readable(pidfd)) /* names are checked in its root: the same process's */
        return fail("pid root", root < 0 ? errno : ESRCH);
    nt_set_root(t, root);

    char msg[5] = {'R'};
    uint32_t self = (uint32_t)getpid();
    for (int i = 0; i < 4; i++)
        msg[1 + i] = (char)(self >> (8 * i));
    status(msg, sizeof msg);
    setpriority(PRIO_PROCESS, 0, NICE_STREAM);

    char *buf = malloc(OUT_CAP);
    if (!buf)
        return fail("tracer", ENOMEM);
    char end = 'S';
    int rc = pump(t, sigfd, pidfd, buf, &end);
    if (rc == -EPIPE) {
        status("S", 1);
        return 1;
    }
    if (rc < 0)
        return fail("tracer", -rc);
    status(&end, 1);
    return 0;
}

int main(void)
{
    _exit(serve());
}
