/* Byte ranges read from an image's files: FAN_PRE_ACCESS (Linux 6.14+) on the lower directories.
 *
 * Runs in the host mount namespace (the lower directories are host paths). Pre-content events
 * are permission events: the reader waits until we answer, so every event is answered FAN_ALLOW
 * (we never deny) and held no longer than its own bookkeeping. Only the container's processes count:
 * an event is recorded when its pid's mount namespace is the traced container's (checked while
 * the reader is blocked, so the pid cannot have gone). Event fds resolve, in our namespace, to the
 * path inside the lower layer, which is the container path. Other processes' events are answered
 * first; each of the container's right after its bookkeeping (a few microseconds), so an ignore
 * mark it places is in force before the reader goes on.
 *
 * Per file we keep the union of exact ranges read. Once a file is covered whole, is an ELF file
 * (executables and libraries are mapped, and mappings make no events), or holds too many ranges,
 * it is reported whole and an ignore mark stops its cost. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "native.h"

#ifndef FAN_PRE_ACCESS
#define FAN_PRE_ACCESS 0x00100000
#endif
#ifndef FAN_EVENT_INFO_TYPE_RANGE
#define FAN_EVENT_INFO_TYPE_RANGE 6
#endif
#ifndef FAN_MARK_IGNORE
#define FAN_MARK_IGNORE 0x00000400
#endif

struct range_info {
    struct fanotify_event_info_header hdr;
    uint32_t pad;
    uint64_t offset;
    uint64_t count;
};

#define RT_READ_BUF 2048 /* an event with its range record is 56 bytes: ~36 a batch */
#define RT_EVENTS_MAX (RT_READ_BUF / sizeof(struct fanotify_event_metadata))
/* a file line, its page cache line and a range or whole line */
#define RT_LINES_MAX (6 * RT_PATH_BUF + 256 + 64 + 48 * NT_CACHE_RUNS_FIRST)
#define RT_FILES_INIT (1u << 10)
#define RT_PID_SLOTS 64
#define RT_PATH_BUF (PATH_MAX + 64)
#define RT_DEPTH_MAX 256
/* A pid's namespace verdict is reused this long: a pid cannot be recycled that fast (pid_max
 * forks in between), and a check per event (a procfs lookup) would double the readers' wait. */
#define RT_PID_TTL_NS 200000000LL

struct rt_file {
    uint64_t dev, ino; /* ino + 1; 0 marks an empty slot of the table */
    uint64_t size;
    uint64_t *iv;      /* sorted, disjoint, non-adjacent [start, end) pairs */
    uint32_t n, cap;
    uint32_t id;
    int whole;         /* reported whole: nothing more is recorded */
    int cache_fd;      /* fd + 1 of the file kept to read its page cache at the end (0: none) */
};

struct rt_pid {
    int pid;
    int ours;
    long long checked; /* CLOCK_MONOTONIC ns of the check; reused for RT_PID_TTL_NS */
};

struct nt_ranges {
    int fan_fd, procfd, fddir, flags;
    pid_t self;
    uint64_t ns_dev, ns_ino; /* the traced container's mount namespace */
    unsigned char buf[RT_READ_BUF];
    struct rt_file *files;
    size_t cap, count, max_files;
    size_t intervals, max_intervals; /* over all files */
    uint64_t granularity;            /* > 0: a file whose touched chunks cover it is whole */
    long long now; /* CLOCK_MONOTONIC ns at the current batch */
    int limit_reported, no_ignore_marks;
    int cache_on, no_cachestat;    /* page cache looked at when a file is first seen, and at the end */
    size_t cache_kept, cache_next; /* files with a kept fd; the end's cursor in the table */
    size_t cache_files;            /* NT_CACHE_FILES (NT_CACHE_FILES_SMALL with NT_SMALL_SET) */
    unsigned long long cache_missed; /* files seen whose page cache could not be followed */
    unsigned long long runs[2 * NT_CACHE_RUNS_END];
    unsigned long long events, foreign;
    struct nt_range_beat *beat; /* shared with the watchdog (range_watchdog.c), or NULL */
    struct rt_pid pids[RT_PID_SLOTS];
};

static void rt_beat_start(struct nt_ranges *t);
static void rt_beat_end(struct nt_ranges *t, int batch);
static long rt_drain_batch(struct nt_ranges *t, char *out, size_t len);

/* The file (dev, ino), created if new; NULL when the table is at its limit or memory is short. */
static struct rt_file *rt_lookup(struct nt_ranges *t, uint64_t dev, uint64_t ino, int *created)
{
    uint64_t key = ino + 1 ? ino + 1 : 1;
    size_t j = nt_mix(dev, key) & (t->cap - 1);
    *created = 0;
    while (t->files[j].ino) {
        if (t->files[j].dev == dev && t->files[j].ino == key)
            return &t->files[j];
        j = (j + 1) & (t->cap - 1);
    }
    if (t->count >= t->max_files)
        return NULL;
    if ((t->count + 1) * 2 > t->cap) {
        size_t ncap = t->cap * 2;
        struct rt_file *n = calloc(ncap, sizeof *n);
        if (!n)
            return NULL;
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->files[i].ino)
                continue;
            size_t k = nt_mix(t->files[i].dev, t->files[i].ino) & (ncap - 1);
            while (n[k].ino)
                k = (k + 1) & (ncap - 1);
            n[k] = t->files[i];
        }
        free(t->files);
        t->files = n;
        t->cap = ncap;
        j = nt_mix(dev, key) & (ncap - 1);
        while (t->files[j].ino)
            j = (j + 1) & (ncap - 1);
    }
    struct rt_file *f = &t->files[j];
    memset(f, 0, sizeof *f);
    f->dev = dev;
    f->ino = key;
    f->id = (uint32_t)t->count++;
    *created = 1;
    return f;
}

/* Add [start, end) to f's union. Returns the bytes newly covered, or -1 when the file would hold
 * more ranges than allowed. */
static long long rt_add(struct nt_ranges *t, struct rt_file *f, uint64_t start, uint64_t end)
{
    /* first interval whose end reaches start (adjacent ones merge) */
    uint32_t lo = 0, hi = f->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (f->iv[2 * mid + 1] < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint32_t last = lo; /* one past the last interval that overlaps or touches */
    uint64_t before = 0;
    while (last < f->n && f->iv[2 * last] <= end) {
        before += f->iv[2 * last + 1] - f->iv[2 * last];
        last++;
    }
    if (last > lo) {
        if (f->iv[2 * lo] < start)
            start = f->iv[2 * lo];
        if (f->iv[2 * last - 1] > end)
            end = f->iv[2 * last - 1];
        uint32_t removed = last - lo - 1;
        f->iv[2 * lo] = start;
        f->iv[2 * lo + 1] = end;
        memmove(&f->iv[2 * (lo + 1)], &f->iv[2 * last], (size_t)(f->n - last) * 2 * sizeof *f->iv);
        f->n -= removed;
        t->intervals -= removed;
        return (long long)(end - start - before);
    }
    if (f->n >= NT_RANGES_PER_FILE || t->intervals >= t->max_intervals)
        return -1;
    if (f->n == f->cap) {
        uint32_t ncap = f->cap ? f->cap * 2 : 4;
        uint64_t *n = realloc(f->iv, (size_t)ncap * 2 * sizeof *n);
        if (!n)
            return -1;
        f->iv = n;
        f->cap = ncap;
    }
    memmove(&f->iv[2 * (lo + 1)], &f->iv[2 * lo], (size_t)(f->n - lo) * 2 * sizeof *f->iv);
    f->iv[2 * lo] = start;
    f->iv[2 * lo + 1] = end;
    f->n++;
    t->intervals++;
    return (long long)(end - start);
}

/* Do f's ranges, rounded out to the granularity, cover a file of `size` bytes? */
static int rt_chunks_cover(const struct nt_ranges *t, const struct rt_file *f, uint64_t size)
{
    uint64_t g = t->granularity, reach = 0; /* [0, reach) is covered by the rounded ranges */
    if (!g)
        return 0;
    for (uint32_t i = 0; i < f->n; i++) {
        uint64_t start = f->iv[2 * i] - f->iv[2 * i] % g;
        if (start > reach)
            return 0;
        uint64_t end = f->iv[2 * i + 1] % g ? f->iv[2 * i + 1] + (g - f->iv[2 * i + 1] % g) : f->iv[2 * i + 1];
        if (end < f->iv[2 * i + 1]) /* overflow */
            return 1;
        if (end > reach)
            reach = end;
    }
    return reach >= size;
}

void nt_ranges_set_granularity(struct nt_ranges *t, unsigned long long granularity)
{
    t->granularity = granularity;
}

static void rt_forget(struct nt_ranges *t, struct rt_file *f)
{
    t->intervals -= f->n;
    free(f->iv);
    f->iv = NULL;
    f->n = f->cap = 0;
}

struct nt_ranges *nt_ranges_open(int procfd, unsigned long long ns_dev, unsigned long long ns_ino, int flags,
                                 int *err)
{
    struct nt_ranges *t = calloc(1, sizeof *t);
    if (!t) {
        *err = ENOMEM;
        return NULL;
    }
    t->cap = RT_FILES_INIT;
    t->max_files = (flags & NT_SMALL_SET) ? RT_FILES_INIT / 2 : NT_RANGE_FILES_MAX;
    t->max_intervals = NT_RANGE_INTERVALS_MAX;
    t->cache_files = (flags & NT_SMALL_SET) ? NT_CACHE_FILES_SMALL : NT_CACHE_FILES;
    t->files = calloc(t->cap, sizeof *t->files);
    if (!t->files) {
        *err = ENOMEM;
        free(t);
        return NULL;
    }
    /* O_NONBLOCK event fds: opening a FIFO or device for us must not block (see tracer.c). */
    t->fan_fd = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK,
                              O_RDONLY | O_LARGEFILE | O_CLOEXEC | O_NONBLOCK);
    if (t->fan_fd < 0) {
        *err = errno;
        free(t->files);
        free(t);
        return NULL;
    }
    t->fddir = openat(procfd, "self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (t->fddir < 0) {
        *err = errno;
        close(t->fan_fd);
        free(t->files);
        free(t);
        return NULL;
    }
    t->procfd = procfd;
    t->flags = flags;
    t->self = getpid();
    t->ns_dev = ns_dev;
    t->ns_ino = ns_ino;
    return t;
}

int nt_ranges_fd(const struct nt_ranges *t) { return t->fan_fd; }

static int rt_mark(struct nt_ranges *t, int dirfd)
{
    return fanotify_mark(t->fan_fd, FAN_MARK_ADD, FAN_PRE_ACCESS | FAN_EVENT_ON_CHILD, dirfd, NULL) < 0 ? -errno : 0;
}

/* Mark dirfd and every directory below it (never following symlinks), depth first. */
static long rt_walk(struct nt_ranges *t, int dirfd, int depth, long budget)
{
    int rc = rt_mark(t, dirfd);
    if (rc < 0) {
        close(dirfd);
        return rc;
    }
    long marked = 1;
    DIR *d = fdopendir(dirfd);
    if (!d) {
        rc = -errno;
        close(dirfd);
        return rc;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
            continue;
        if (depth >= RT_DEPTH_MAX) {
            closedir(d);
            return -ELOOP;
        }
        if (marked >= budget) {
            closedir(d);
            return -ENOSPC;
        }
        int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0)
            continue; /* not a directory after all, or gone */
        long r = rt_walk(t, sub, depth + 1, budget - marked);
        if (r < 0) {
            closedir(d);
            return r;
        }
        marked += r;
    }
    closedir(d);
    return marked;
}

long nt_ranges_mark_tree(struct nt_ranges *t, const char *dir, long max_marks)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return rt_walk(t, fd, 0, max_marks);
}

/* Is host pid `pid` in the traced container's mount namespace? Cached for the current batch. */
static int rt_ours(struct nt_ranges *t, int pid)
{
    if (pid <= 0 || pid == t->self)
        return 0;
    struct rt_pid *p = &t->pids[(unsigned)pid % RT_PID_SLOTS];
    if (p->pid == pid && t->now - p->checked < RT_PID_TTL_NS)
        return p->ours;
    char rel[32];
    struct stat st;
    snprintf(rel, sizeof rel, "%d/ns/mnt", pid);
    p->checked = t->now;
    p->pid = pid;
    p->ours = fstatat(t->procfd, rel, &st, 0) == 0 && (uint64_t)st.st_dev == t->ns_dev &&
              (uint64_t)st.st_ino == t->ns_ino;
    return p->ours;
}

static char *rt_whole(struct nt_ranges *t, char *o, struct rt_file *f, int fd, const char *why)
{
    f->whole = 1;
    rt_forget(t, f);
    if (!t->no_ignore_marks &&
        fanotify_mark(t->fan_fd, FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY, FAN_PRE_ACCESS,
                      fd, NULL) < 0)
        t->no_ignore_marks = 1;
    o = nt_put_str(o, "{\"file\":");
    o = nt_put_u64(o, f->id);
    o = nt_put_str(o, ",\"whole\":\"");
    o = nt_put_str(o, why);
    return nt_put_str(o, "\"}\n");
}

/* The runs of `fd`'s cached pages into t->runs (at most `cap`): their count, or -1 (too many, or
 * no cachestat). Before our own look at the file (rt_is_elf): its reads are not the container's. */
static long rt_cache_runs(struct nt_ranges *t, int fd, uint64_t size, long cap, long calls)
{
    long page = sysconf(_SC_PAGESIZE);
    long n = nt_cached_runs(fd, (size + page - 1) / page, page, t->runs, cap, &calls);
    if (n == -ENOSYS)
        t->no_cachestat = 1; /* no cachestat here: every file is counted in cache_missed */
    return n;
}

/* Keep a dup of `fd` for the end's look (within NT_CACHE_FILES); 0 when none could be kept. */
static int rt_keep_cache_fd(struct nt_ranges *t, struct rt_file *f, int fd)
{
    if (t->cache_kept >= t->cache_files)
        return 0;
    int kept = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (kept < 0)
        return 0;
    f->cache_fd = kept + 1;
    t->cache_kept++;
    return 1;
}

/* {"file":id,"<key>":[[start,end],...]} of the n runs in t->runs (pages -> bytes, clipped to the
 * file's size); nothing and a miss counted unless `ok`. */
static char *rt_cache_line(struct nt_ranges *t, int ok, const struct rt_file *f, const char *key, long n, char *o)
{
    long page = sysconf(_SC_PAGESIZE);
    if (!ok) {
        t->cache_missed++;
        return o;
    }
    o = nt_put_str(o, "{\"file\":");
    o = nt_put_u64(o, f->id);
    o = nt_put_str(o, ",\"");
    o = nt_put_str(o, key);
    o = nt_put_str(o, "\":[");
    for (long i = 0; i < n; i++) {
        o = nt_put_str(o, i ? ",[" : "[");
        o = nt_put_u64(o, t->runs[2 * i] * (uint64_t)page);
        o = nt_put_str(o, ",");
        uint64_t end = t->runs[2 * i + 1] * (uint64_t)page;
        o = nt_put_u64(o, end < f->size ? end : f->size);
        o = nt_put_str(o, "]");
    }
    return nt_put_str(o, "]}\n");
}

void nt_ranges_cache(struct nt_ranges *t, int on)
{
    t->cache_on = on;
}

long nt_ranges_cache_end(struct nt_ranges *t, char *out, size_t cap)
{
    char *o = out;
    size_t line_max = 64 + 48 * NT_CACHE_RUNS_END;
    for (; t->cache_next < t->cap; t->cache_next++) {
        struct rt_file *f = &t->files[t->cache_next];
        if (!f->ino || !f->cache_fd)
            continue;
        if ((size_t)(o - out) + line_max > cap)
            return o - out; /* the next call goes on from this file */
        int fd = f->cache_fd - 1;
        long n = f->whole ? -1 : rt_cache_runs(t, fd, f->size, NT_CACHE_RUNS_END, NT_CACHE_CALLS_END);
        if (!f->whole)
            o = rt_cache_line(t, n >= 0, f, "cache1", n, o);
        close(fd);
        f->cache_fd = 0;
    }
    if (t->cache_missed && (size_t)(o - out) + 64 <= cap) {
        o = nt_put_str(o, "{\"cache_missed\":");
        o = nt_put_u64(o, t->cache_missed);
        o = nt_put_str(o, "}\n");
        t->cache_missed = 0;
    }
    return o - out;
}

static int rt_is_elf(int fd)
{
    unsigned char magic[4];
    return pread(fd, magic, sizeof magic, 0) == 4 && !memcmp(magic, "\177ELF", 4);
}

/* Bookkeeping of one answered event of the container: at most one file line and one range or
 * whole line. */
static char *rt_record(struct nt_ranges *t, char *o, const struct fanotify_event_metadata *m)
{
    const struct range_info *r = NULL;
    size_t pos = m->metadata_len;
    while (pos + sizeof(struct fanotify_event_info_header) <= m->event_len) {
        const struct fanotify_event_info_header *h = (const void *)((const char *)m + pos);
        if (h->len < sizeof *h || pos + h->len > m->event_len)
            break;
        if (h->info_type == FAN_EVENT_INFO_TYPE_RANGE && h->len >= sizeof *r)
            r = (const void *)h;
        pos += h->len;
    }
    struct stat st;
    if (fstat(m->fd, &st) < 0 || !S_ISREG(st.st_mode))
        return o;
    int created;
    struct rt_file *f = rt_lookup(t, (uint64_t)st.st_dev, (uint64_t)st.st_ino, &created);
    if (!f) { /* never reported, so whole in any list: spare its reader our round trips */
        if (!t->no_ignore_marks &&
            fanotify_mark(t->fan_fd, FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY, FAN_PRE_ACCESS,
                          m->fd, NULL) < 0)
            t->no_ignore_marks = 1;
        if (!t->limit_reported) {
            t->limit_reported = 1;
            o = nt_put_str(o, "{\"notice\":\"limit\"}\n");
        }
        return o;
    }
    if (created) {
        char rel[16], path[RT_PATH_BUF];
        snprintf(rel, sizeof rel, "%d", m->fd);
        ssize_t n = readlinkat(t->fddir, rel, path, sizeof path);
        if (n <= 0 || (size_t)n >= sizeof path || path[0] != '/')
            n = 0;
        f->size = (uint64_t)st.st_size;
        o = nt_put_str(o, "{\"file\":");
        o = nt_put_u64(o, f->id);
        o = nt_put_str(o, ",\"path\":\"");
        o += nt_json_escape(path, (size_t)n, o);
        o = nt_put_str(o, "\",\"size\":");
        o = nt_put_u64(o, f->size);
        o = nt_put_str(o, "}\n");
        /* past the kept files: no fd to look again with */
        int look = t->cache_on && !t->no_cachestat && t->cache_kept < t->cache_files;
        long runs = look ? rt_cache_runs(t, m->fd, f->size, NT_CACHE_RUNS_FIRST, NT_CACHE_CALLS_FIRST) : -1;
        if (rt_is_elf(m->fd))
            return rt_whole(t, o, f, m->fd, "mapped");
        if (runs >= 0)
            o = rt_cache_line(t, rt_keep_cache_fd(t, f, m->fd), f, "cache0", runs, o);
        else if (t->cache_on)
            t->cache_missed++;
    }
    if (f->whole)
        return o; /* an event queued before its ignore mark */
    if (!r) /* no range record: the kernel could not say, so the whole file counts */
        return rt_whole(t, o, f, m->fd, "unknown");
    uint64_t start = r->offset, end = r->offset + r->count;
    if (end < start)
        end = UINT64_MAX;
    if (end == start)
        return o;
    long long added = rt_add(t, f, start, end);
    if (added < 0)
        return rt_whole(t, o, f, m->fd, "bound");
    if (added > 0) {
        o = nt_put_str(o, "{\"file\":");
        o = nt_put_u64(o, f->id);
        o = nt_put_str(o, ",\"off\":");
        o = nt_put_u64(o, start);
        o = nt_put_str(o, ",\"len\":");
        o = nt_put_u64(o, end - start);
        o = nt_put_str(o, "}\n");
    }
    if (f->n == 1 && f->iv[0] == 0 && f->iv[1] >= (uint64_t)st.st_size)
        return rt_whole(t, o, f, m->fd, "read");
    if (added > 0 && rt_chunks_cover(t, f, (uint64_t)st.st_size))
        return rt_whole(t, o, f, m->fd, "chunks");
    return o;
}

static int rt_answer(struct nt_ranges *t, int fd)
{
    struct fanotify_response resp = {.fd = fd, .response = FAN_ALLOW};
    ssize_t w;
    do
        w = write(t->fan_fd, &resp, sizeof resp);
    while (w < 0 && errno == EINTR);
    return w == (ssize_t)sizeof resp ? 0 : -errno;
}

long nt_ranges_drain(struct nt_ranges *t, char *out, size_t cap)
{
    if (cap < RT_EVENTS_MAX * RT_LINES_MAX)
        return -EINVAL;
    ssize_t len;
    rt_beat_start(t);
    do
        len = read(t->fan_fd, t->buf, sizeof t->buf);
    while (len < 0 && errno == EINTR);
    if (len < 0) {
        int e = errno;
        rt_beat_end(t, 0);
        return e == EAGAIN ? 0 : -e;
    }
    long rc_len = rt_drain_batch(t, out, (size_t)len);
    rt_beat_end(t, 1);
    return rc_len;
}

/* Answer and record the batch of `len` bytes just read into t->buf. */
static long rt_drain_batch(struct nt_ranges *t, char *out, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t->now = ts.tv_sec * 1000000000LL + ts.tv_nsec;
    /* Pass 1: answer the events of other processes at once, note which are the container's. */
    unsigned char ours[RT_EVENTS_MAX];
    size_t k = 0, pos = 0;
    int rc = 0;
    while (pos + sizeof(struct fanotify_event_metadata) <= (size_t)len) {
        struct fanotify_event_metadata *m = (void *)(t->buf + pos);
        if (m->event_len < sizeof *m || m->event_len > (size_t)len - pos || m->vers != FANOTIFY_METADATA_VERSION)
            return -EPROTO; /* cannot happen; the fds of a mangled batch are lost with it */
        pos += m->event_len;
        ours[k] = m->fd >= 0 && (m->mask & FAN_PRE_ACCESS) && rt_ours(t, m->pid);
        if (m->fd >= 0 && !ours[k]) {
            int a = rt_answer(t, m->fd);
            if (a < 0 && !rc)
                rc = a;
        }
        k++;
    }
    /* Pass 2: the container's, each answered right after its bookkeeping: a read that makes a
     * file whole (or quiet) has its ignore mark before the reader goes on, so the reader's next
     * read of it (the EOF read after a whole-file read, say) costs no second round trip. */
    char *o = out;
    k = 0;
    pos = 0;
    while (pos + sizeof(struct fanotify_event_metadata) <= (size_t)len) {
        struct fanotify_event_metadata *m = (void *)(t->buf + pos);
        pos += m->event_len;
        if (m->fd >= 0) {
            t->events++;
            if (ours[k]) {
                o = rt_record(t, o, m);
                int a = rt_answer(t, m->fd);
                if (a < 0 && !rc)
                    rc = a;
            } else {
                t->foreign++;
            }
            close(m->fd);
        }
        k++;
    }
    if (rc < 0 && o == out)
        return rc;
    return o - out;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

long nt_ranges_serve(struct nt_ranges *t, const int *wait_fds, int nwait, int write_fd, char *out, size_t cap,
                     int flush_ms)
{
    struct pollfd p[2 + NT_RANGE_WAIT_MAX];
    if (nwait > NT_RANGE_WAIT_MAX || cap < 2 * RT_EVENTS_MAX * RT_LINES_MAX)
        return -EINVAL;
    p[0].fd = t->fan_fd;
    p[0].events = POLLIN;
    for (int i = 0; i < nwait; i++) {
        p[1 + i].fd = wait_fds[i];
        p[1 + i].events = POLLIN;
    }
    p[1 + nwait].fd = write_fd; /* negative: ignored by poll */
    p[1 + nwait].events = POLLOUT;
    size_t used = 0;
    long long first = 0;
    for (;;) {
        int timeout = -1;
        if (used) {
            long long left = first + flush_ms - mono_ms();
            if (left <= 0)
                return (long)used;
            timeout = (int)left;
        }
        int n = poll(p, 2 + nwait, timeout);
        if (n < 0) {
            if (errno == EINTR)
                return (long)used; /* a signal: the caller looks at its stop fds */
            return -errno;
        }
        for (int i = 0; i <= nwait; i++)
            if (p[1 + i].revents)
                return (long)used;
        if (!(p[0].revents & POLLIN))
            continue;
        long r = nt_ranges_drain(t, out + used, cap - used);
        if (r < 0)
            return used ? (long)used : r;
        if (r > 0 && !used)
            first = mono_ms();
        used += (size_t)r;
        if (cap - used < RT_EVENTS_MAX * RT_LINES_MAX)
            return (long)used;
    }
}

int nt_ranges_unmark(struct nt_ranges *t)
{
    return fanotify_mark(t->fan_fd, FAN_MARK_FLUSH, 0, AT_FDCWD, NULL) < 0 ? -errno : 0;
}

unsigned long long nt_ranges_events(const struct nt_ranges *t, int foreign)
{
    return foreign ? t->foreign : t->events;
}

int nt_ranges_timer(long long ms)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    struct itimerspec when = {.it_value = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}};
    if (ms <= 0)
        when.it_value.tv_nsec = 1; /* at once: a zero it_value would disarm the timer */
    if (timerfd_settime(fd, 0, &when, NULL) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int nt_ranges_share(struct nt_ranges *t, int memfd)
{
    void *page = mmap(NULL, sizeof *t->beat, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (page == MAP_FAILED)
        return -errno;
    t->beat = page;
    return 0;
}

static long long rt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The watchdog sees a batch from before its read until every event of it is answered. */
static void rt_beat_start(struct nt_ranges *t)
{
    if (t->beat)
        __atomic_store_n(&t->beat->busy_since, rt_now_ns(), __ATOMIC_RELEASE);
}

static void rt_beat_end(struct nt_ranges *t, int batch)
{
    if (!t->beat)
        return;
    if (batch)
        __atomic_store_n(&t->beat->batches, t->beat->batches + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&t->beat->busy_since, 0, __ATOMIC_RELEASE);
}

void nt_ranges_close(struct nt_ranges *t)
{
    if (!t)
        return;
    if (t->beat)
        munmap(t->beat, sizeof *t->beat);
    close(t->fan_fd); /* events still queued are allowed by the kernel */
    close(t->fddir);
    for (size_t i = 0; i < t->cap; i++) {
        free(t->files[i].iv);
        if (t->files[i].cache_fd)
            close(t->files[i].cache_fd - 1);
    }
    free(t->files);
    free(t);
}
