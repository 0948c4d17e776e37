/* Page-cache residency of a file, as runs of cached pages, from cachestat(2) (Linux 6.5+).
 *
 * cachestat counts the cached pages of a byte range without touching the file's data (no read,
 * no fault, no event for a fanotify group). Runs are found by halving: a range counted all cached
 * or none is one answer; a mixed one is split. The calls a file costs are bounded by the caller. */
#include "native.h"

#include <errno.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif

struct nt_cs_range { uint64_t off, len; };
struct nt_cs { uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; };

struct nt_cs_walk {
    int fd;
    uint64_t page;
    unsigned long long *out; /* pairs: first page, end page */
    long cap;                /* pairs */
    long n;
    long calls_left;
};

static int nt_cs_count(struct nt_cs_walk *w, uint64_t first, uint64_t pages, uint64_t *cached)
{
    struct nt_cs_range r = { first * w->page, pages * w->page };
    struct nt_cs cs;
    if (w->calls_left-- <= 0)
        return -E2BIG;
    if (syscall(__NR_cachestat, w->fd, &r, &cs, 0) != 0)
        return -errno;
    *cached = cs.nr_cache;
    return 0;
}

static int nt_cs_put(struct nt_cs_walk *w, uint64_t first, uint64_t end)
{
    if (w->n > 0 && w->out[2 * w->n - 1] == first) { /* joins the run before it */
        w->out[2 * w->n - 1] = end;
        return 0;
    }
    if (w->n >= w->cap)
        return -ENOSPC;
    w->out[2 * w->n] = first;
    w->out[2 * w->n + 1] = end;
    w->n++;
    return 0;
}

static int nt_cs_walk(struct nt_cs_walk *w, uint64_t first, uint64_t pages)
{
    uint64_t cached;
    int err = nt_cs_count(w, first, pages, &cached);
    if (err)
        return err;
    if (cached == 0)
        return 0;
    if (cached >= pages)
        return nt_cs_put(w, first, first + pages);
    uint64_t half = pages / 2;
    err = nt_cs_walk(w, first, half);
    return err ? err : nt_cs_walk(w, first + half, pages - half);
}

long nt_cached_runs(int fd, unsigned long long pages, unsigned long long page, unsigned long long *out,
                    long cap, long *calls)
{
    struct nt_cs_walk w = { fd, page, out, cap, 0, *calls };
    int err = pages ? nt_cs_walk(&w, 0, pages) : 0;
    *calls = w.calls_left < 0 ? 0 : w.calls_left;
    return err ? err : w.n;
}
