/* fanotify hot loop: read batches, de-duplicate by (dev, ino), resolve new files, emit JSON lines.
 *
 * Everything here handles hostile input: event fds and paths belong to another tenant's
 * container. Nothing is ever opened by name inside the container: paths come from readlink of
 * our own fd via the host procfs opened before setns, command names from host procfs too. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/fanotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "native.h"

#define READ_MAX (1 << 20)         /* bytes per read(2) of the fanotify fd, at most */
#define SEEN_INIT (1u << 14)       /* initial slots of the (dev, ino) set */
#define SEEN_MAX (1u << 22)        /* slots at most: 2M files, 68 MiB; then a "limit" overflow */
#define COMM_SLOTS 64              /* per-batch cache of pid -> comm */
#define PATH_BUF (PATH_MAX + 64)
#define IGNORE_AFTER 2             /* repeats of a file's events before an ignore mark */
#define LOST_RESERVE 512           /* room kept in `out` for a batch's lost-file lines */

struct comm_entry {
    int pid;
    unsigned gen;
    int len;
    int gone; /* /proc had no comm for it at the last read */
    char comm[16];
};

struct nt_tracer {
    int fan_fd, procfd, fddir, flags; /* fddir: our own /proc/self/fd, in the host procfs */
    pid_t self;
    struct timespec t0;
    unsigned char *buf;
    size_t buf_size, buf_len, buf_pos;
    unsigned gen;
    unsigned long long elapsed; /* of the current batch, microseconds since the mark */
    uint64_t *seen;             /* pairs (dev, ino + 1); ino + 1 == 0 marks an empty slot */
    unsigned char *hits;        /* per slot: events seen again for that file, saturating */
    size_t seen_cap, seen_count, seen_max;
    int limit_reported;
    unsigned long long lost_long, lost_unreachable, lost_newline; /* files of this batch we could not name */
    int rootfd; /* the traced root, where a name is looked up (live_name); -1: our own root */
    int no_ignore_marks;
    unsigned long long seq;
    struct comm_entry comm[COMM_SLOTS];
};

int nt_join_mntns(int procfd, int pid)
{
    char rel[64];
    snprintf(rel, sizeof rel, "%d/ns/mnt", pid);
    int fd = openat(procfd, rel, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = setns(fd, CLONE_NEWNS) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Insert (dev, ino): 1 if new, 0 if already seen (*hits: its repeat counter), -1 if new but the
 * set is full. */
static int seen_add(struct nt_tracer *t, uint64_t dev, uint64_t ino, unsigned char **hits)
{
    uint64_t key = ino + 1;
    if (key == 0) /* ino == UINT64_MAX: fold, collisions only cost a missed record */
        key = 1;
    size_t j = nt_mix(dev, key) & (t->seen_cap - 1);
    while (t->seen[2 * j + 1]) {
        if (t->seen[2 * j] == dev && t->seen[2 * j + 1] == key) {
            *hits = &t->hits[j];
            return 0;
        }
        j = (j + 1) & (t->seen_cap - 1);
    }
    if ((t->seen_count + 1) * 2 > t->seen_cap) {
        if (t->seen_cap >= t->seen_max)
            return -1;
        size_t ncap = t->seen_cap * 2;
        uint64_t *n = calloc(ncap * 2, sizeof *n);
        unsigned char *nh = calloc(ncap, 1);
        if (!n || !nh) {
            free(n);
            free(nh);
            return -1;
        }
        for (size_t i = 0; i < t->seen_cap; i++) {
            if (!t->seen[2 * i + 1])
                continue;
            size_t k = nt_mix(t->seen[2 * i], t->seen[2 * i + 1]) & (ncap - 1);
            while (n[2 * k + 1])
                k = (k + 1) & (ncap - 1);
            n[2 * k] = t->seen[2 * i];
            n[2 * k + 1] = t->seen[2 * i + 1];
            nh[k] = t->hits[i];
        }
        free(t->seen);
        free(t->hits);
        t->seen = n;
        t->hits = nh;
        t->seen_cap = ncap;
        j = nt_mix(dev, key) & (ncap - 1);
        while (t->seen[2 * j + 1])
            j = (j + 1) & (ncap - 1);
    }
    t->seen[2 * j] = dev;
    t->seen[2 * j + 1] = key;
    t->seen_count++;
    return 1;
}

struct nt_tracer *nt_open(int procfd, const char *target, int flags, int *err)
{
    return nt_open_at(procfd, AT_FDCWD, target, flags, err);
}

struct nt_tracer *nt_open_at(int procfd, int dirfd, const char *target, int flags, int *err)
{
    struct nt_tracer *t = calloc(1, sizeof *t);
    if (!t) {
        *err = ENOMEM;
        return NULL;
    }
    /* Every event in one read(2) holds an fd: keep a batch well inside RLIMIT_NOFILE, or the
     * kernel drops the events it cannot open an fd for. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    size_t fds = rl.rlim_cur > 256 + 170 ? rl.rlim_cur - 256 : 170;
    t->buf_size = fds * sizeof(struct fanotify_event_metadata);
    if (t->buf_size > READ_MAX)
        t->buf_size = READ_MAX;
    t->buf = malloc(t->buf_size);
    t->seen_cap = SEEN_INIT;
    t->seen_max = (flags & NT_SMALL_SET) ? SEEN_INIT : SEEN_MAX;
    t->seen = calloc(t->seen_cap * 2, sizeof *t->seen);
    t->hits = calloc(t->seen_cap, 1);
    if (!t->buf || !t->seen || !t->hits) {
        *err = ENOMEM;
        goto fail;
    }
    t->procfd = procfd;
    t->rootfd = -1;
    t->fddir = openat(procfd, "self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (t->fddir < 0) {
        *err = errno;
        goto fail;
    }
    t->flags = flags;
    t->self = getpid();
    unsigned init = FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK;
    if (!(flags & NT_BOUNDED))
        init |= FAN_UNLIMITED_QUEUE;
    /* O_NONBLOCK: the kernel opens each event's file for us, and a FIFO without a writer (or a
     * device) must not block that open, and with it our read(2), until someone else acts. */
    t->fan_fd = fanotify_init(init, O_RDONLY | O_LARGEFILE | O_CLOEXEC | O_NONBLOCK);
    if (t->fan_fd < 0) {
        *err = errno;
        close(t->fddir);
        goto fail;
    }
    if (fanotify_mark(t->fan_fd, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN | FAN_OPEN_EXEC | FAN_ACCESS,
                      dirfd, target) < 0) {
        *err = errno;
        close(t->fan_fd);
        close(t->fddir);
        goto fail;
    }
    clock_gettime(CLOCK_MONOTONIC, &t->t0);
    return t;
fail:
    free(t->buf);
    free(t->seen);
    free(t->hits);
    free(t);
    return NULL;
}

void nt_set_root(struct nt_tracer *t, int rootfd)
{
    if (t->rootfd >= 0)
        close(t->rootfd);
    t->rootfd = rootfd;
}

int nt_fd(const struct nt_tracer *t) { return t->fan_fd; }

void nt_close(struct nt_tracer *t)
{
    if (!t)
        return;
    /* Close the fds of events read but not processed yet. */
    while (t->buf_pos + sizeof(struct fanotify_event_metadata) <= t->buf_len) {
        struct fanotify_event_metadata *m = (void *)(t->buf + t->buf_pos);
        if (m->event_len < sizeof *m)
            break;
        if (m->fd >= 0)
            close(m->fd);
        t->buf_pos += m->event_len;
    }
    close(t->fan_fd);
    close(t->fddir);
    if (t->rootfd >= 0)
        close(t->rootfd);
    free(t->buf);
    free(t->seen);
    free(t->hits);
    free(t);
}

static char *put_overflow(struct nt_tracer *t, char *o, const char *reason)
{
    o = nt_put_str(o, "{\"path\":\"\",\"size\":0,\"elapsed\":");
    o = nt_put_u64(o, t->elapsed);
    o = nt_put_str(o, ",\"kind\":\"overflow\",\"reason\":\"");
    o = nt_put_str(o, reason);
    if (!strcmp(reason, "open"))
        o = nt_put_str(o, "\",\"lost\":1}\n");
    else
        o = nt_put_str(o, "\"}\n");
    return o;
}

/* Command name of host pid `pid`, read once per batch (as close to the event as we get). A
 * process already gone keeps the name it had in an earlier batch, else it is empty. */
static struct comm_entry *comm_of(struct nt_tracer *t, int pid)
{
    struct comm_entry *e = &t->comm[(unsigned)pid % COMM_SLOTS];
    if (e->gen == t->gen && e->pid == pid)
        return e;
    char name[sizeof e->comm], rel[32];
    ssize_t r = -1;
    snprintf(rel, sizeof rel, "%d/comm", pid);
    int fd = openat(t->procfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        r = read(fd, name, sizeof name);
        close(fd);
    }
    e->gone = r <= 0;
    if (r > 0) {
        if (name[r - 1] == '\n')
            r--;
        memcpy(e->comm, name, (size_t)r);
        e->len = (int)r;
    } else if (e->pid != pid) {
        e->len = 0;
    }
    e->gen = t->gen;
    e->pid = pid;
    return e;
}

/* A name a process has before its exec completes: the container runtime's (runc's init,
 * /proc/self/exe re-executions), or none because it is gone already. */
static int runtime_comm(const struct comm_entry *c)
{
    static const char *const prefixes[] = {"runc", "crun", "youki", "containerd-shim", "exe"};
    if (c->len == 0)
        return 1;
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        size_t n = strlen(prefixes[i]);
        if ((size_t)c->len >= n && !memcmp(c->comm, prefixes[i], n) &&
            ((size_t)c->len == n || strcmp(prefixes[i], "exe")))
            return 1;
    }
    return 0;
}

/* An exec event of a process still named like the runtime, or gone: it is becoming the
 * executed file, so name it after the file (the kernel's comm: basename, 15 bytes at most). The
 * later events of that pid (its reads, in this batch or, once it is gone, in later ones) get
 * the same name. */
static void name_after_exec(struct comm_entry *c, const char *path, size_t n)
{
    if (!c->gone && !runtime_comm(c))
        return;
    const char *base = path;
    for (size_t i = 0; i < n; i++)
        if (path[i] == '/')
            base = path + i + 1;
    size_t len = n - (size_t)(base - path);
    if (len > sizeof c->comm - 1)
        len = sizeof c->comm - 1;
    memcpy(c->comm, base, len);
    c->len = (int)len;
}

/* Ask the kernel to drop further events of the file behind `fd`, which would cost the container
 * an event each and us an fd. Evictable: the mark does not pin the inode (the seen set still
 * de-duplicates if it goes). Kernels before 5.19 refuse; then we stop asking. Execs still come:
 * each names a process (see exec_of_seen), and there is one per process at most. */
static void ignore_further(struct nt_tracer *t, int fd)
{
    if (!t->no_ignore_marks &&
        fanotify_mark(t->fan_fd, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY |
                      FAN_MARK_EVICTABLE, FAN_OPEN | FAN_ACCESS, fd, NULL) < 0)
        t->no_ignore_marks = 1;
}

/* An exec of a file reported already (every busybox applet, a shell's helpers): no line, but
 * the pid is named now, while it may still be alive, or after the file if it is gone already;
 * else a short-lived reader's files would carry no command name. */
static void exec_of_seen(struct nt_tracer *t, const struct fanotify_event_metadata *m)
{
    struct comm_entry *c = comm_of(t, m->pid);
    if (!c->gone && !runtime_comm(c))
        return;
    char rel[16], path[PATH_BUF];
    snprintf(rel, sizeof rel, "%d", m->fd);
    ssize_t n = readlinkat(t->fddir, rel, path, sizeof path);
    if (n > 0 && (size_t)n < sizeof path && path[0] == '/')
        name_after_exec(c, path, (size_t)n);
}

/* Whether *path* (read back for an event fd, ending in " (deleted)") is the live name of the
 * file *st* describes. A link count of 0 says unlinked; but an overlayfs file removed from a
 * lower layer keeps the lower inode's count, so otherwise the name is looked up: without
 * following any symlink (O_PATH opens nothing), it must be that very inode. */
static int live_name(const struct nt_tracer *t, const char *path, const struct stat *st)
{
    if (st->st_nlink == 0)
        return 0;
    struct open_how how = {.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
                           .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    if (t->rootfd >= 0)
        how.resolve |= RESOLVE_IN_ROOT; /* "/" is the traced root, not ours */
    int fd = (int)syscall(SYS_openat2, t->rootfd >= 0 ? t->rootfd : AT_FDCWD, path, &how, sizeof how);
    if (fd < 0)
        return 0; /* gone, or (before Linux 5.6) no openat2: unlinked, as the kernel says */
    struct stat here;
    int same = fstat(fd, &here) == 0 && here.st_dev == st->st_dev && here.st_ino == st->st_ino;
    close(fd);
    return same;
}

/* One event fd: emit a line if it is a regular file not seen before. */
static char *handle_fd(struct nt_tracer *t, char *o, const struct fanotify_event_metadata *m)
{
    struct stat st;
    if (m->pid == t->self || fstat(m->fd, &st) < 0 || !S_ISREG(st.st_mode))
        return o;
    unsigned char *hits = NULL;
    int added = seen_add(t, (uint64_t)st.st_dev, (uint64_t)st.st_ino, &hits);
    if (added == 0) {
        /* A file that keeps coming back (a big file read in chunks, a library every process
         * opens). Not for the first repeat: most files are opened and read once, and the mark
         * would cost more than it saves. */
        if (*hits < 255 && ++*hits == IGNORE_AFTER)
            ignore_further(t, m->fd);
        if (m->mask & FAN_OPEN_EXEC)
            exec_of_seen(t, m);
        return o;
    }
    if (added < 0) {
        ignore_further(t, m->fd); /* never reported: spare the container and us its events */
        if (!t->limit_reported) {
            t->limit_reported = 1;
            o = put_overflow(t, o, "limit");
        }
        return o;
    }
    char rel[16], path[PATH_BUF];
    snprintf(rel, sizeof rel, "%d", m->fd);
    ssize_t n = readlinkat(t->fddir, rel, path, sizeof path);
    if (n < 0 ? errno == ENAMETOOLONG : (size_t)n >= sizeof path) {
        t->lost_long++; /* longer than the kernel names (PATH_MAX): counted, see put_lost */
        return o;
    }
    if (n <= 0 || path[0] != '/') {
        t->lost_unreachable++; /* no path from our root */
        return o;
    }
    /* The kernel appends this to unlinked files; a live file may also be named so (live_name). */
    static const char deleted[] = " (deleted)";
    size_t dl = sizeof deleted - 1;
    if ((size_t)n > dl && memcmp(path + n - dl, deleted, dl) == 0) {
        path[n] = 0;
        if (!live_name(t, path, &st))
            n -= (ssize_t)dl;
    }
    unsigned long long size = (unsigned long long)st.st_size;
    if (t->flags & NT_COMPAT) {
        /* The optimizer's client writes paths one a line and decodes size as uint32. */
        if (memchr(path, '\n', (size_t)n) || memchr(path, '\r', (size_t)n)) {
            t->lost_newline++; /* one path a line: it cannot be listed, but it is said (put_lost) */
            return o;
        }
        if (size > UINT32_MAX)
            size = UINT32_MAX;
    }
    const char *kind = (m->mask & FAN_OPEN_EXEC) ? "exec" : (m->mask & FAN_OPEN) ? "open" : "read";
    struct comm_entry *c = comm_of(t, m->pid);
    if (m->mask & FAN_OPEN_EXEC)
        name_after_exec(c, path, (size_t)n);
    o = nt_put_str(o, "{\"path\":\"");
    o += nt_json_escape(path, (size_t)n, o);
    o = nt_put_str(o, "\",\"size\":");
    o = nt_put_u64(o, size);
    o = nt_put_str(o, ",\"elapsed\":");
    o = nt_put_u64(o, t->elapsed);
    o = nt_put_str(o, ",\"kind\":\"");
    o = nt_put_str(o, kind);
    o = nt_put_str(o, "\",\"pid\":");
    o = nt_put_u64(o, (unsigned long long)(m->pid > 0 ? m->pid : 0));
    o = nt_put_str(o, ",\"comm\":\"");
    o += nt_json_escape(c->comm, (size_t)c->len, o);
    o = nt_put_str(o, "\",\"seq\":");
    o = nt_put_u64(o, t->seq++);
    o = nt_put_str(o, "}\n");
    return o;
}

/* One overflow line per reason for the files of this batch that have no path we can report: never
 * silently gone. */
static char *put_lost(struct nt_tracer *t, char *o)
{
    static const char *const reasons[] = {"path too long", "unreachable", "newline in name"};
    unsigned long long *counts[] = {&t->lost_long, &t->lost_unreachable, &t->lost_newline};
    for (int i = 0; i < 3; i++) {
        if (!*counts[i])
            continue;
        o = nt_put_str(o, "{\"path\":\"\",\"size\":0,\"elapsed\":");
        o = nt_put_u64(o, t->elapsed);
        o = nt_put_str(o, ",\"kind\":\"overflow\",\"reason\":\"");
        o = nt_put_str(o, reasons[i]);
        o = nt_put_str(o, "\",\"lost\":");
        o = nt_put_u64(o, *counts[i]);
        o = nt_put_str(o, "}\n");
        *counts[i] = 0;
    }
    return o;
}

static void stamp(struct nt_tracer *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    t->elapsed = (unsigned long long)((now.tv_sec - t->t0.tv_sec) * 1000000LL +
                                      (now.tv_nsec - t->t0.tv_nsec) / 1000);
}

long nt_drain(struct nt_tracer *t, char *out, size_t cap)
{
    char *o = out;
    if (cap < 2 * NT_MAX_LINE)
        return -EINVAL;
    if (t->buf_pos >= t->buf_len) {
        ssize_t r;
        do
            r = read(t->fan_fd, t->buf, t->buf_size);
        while (r < 0 && errno == EINTR);
        t->buf_pos = t->buf_len = 0;
        if (r < 0) {
            if (errno == EAGAIN)
                return 0;
            if (errno == EBADF || errno == EFAULT || errno == EINVAL)
                return -errno;
            /* Any other error is the kernel failing to open an fd for the next event (a
             * container's own /dev/tty node, EMFILE, ...): that event is gone, say so. */
            stamp(t);
            return put_overflow(t, o, "open") - out;
        }
        t->buf_len = (size_t)r;
        t->gen++;
        stamp(t);
    }
    while (t->buf_pos + sizeof(struct fanotify_event_metadata) <= t->buf_len) {
        if ((size_t)(o - out) + NT_MAX_LINE + LOST_RESERVE > cap)
            return put_lost(t, o) - out;
        struct fanotify_event_metadata *m = (void *)(t->buf + t->buf_pos);
        if (m->event_len < sizeof *m || m->event_len > t->buf_len - t->buf_pos ||
            m->vers != FANOTIFY_METADATA_VERSION) {
            t->buf_pos = t->buf_len; /* cannot happen with a sane kernel; drop the rest */
            return -EPROTO;
        }
        t->buf_pos += m->event_len;
        if (m->mask & FAN_Q_OVERFLOW)
            o = put_overflow(t, o, "queue");
        if (m->fd >= 0) {
            o = handle_fd(t, o, m);
            close(m->fd);
        }
    }
    t->buf_pos = t->buf_len;
    return put_lost(t, o) - out;
}

int nt_unmark(struct nt_tracer *t)
{
    return fanotify_mark(t->fan_fd, FAN_MARK_FLUSH | FAN_MARK_MOUNT, 0, AT_FDCWD, NULL) < 0 ? -errno : 0;
}
