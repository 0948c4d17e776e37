/* nydus-top native core: the fanotify hot loop of the tracer.
 *
 * The caller (a single-threaded process) opens a host procfs directory fd, joins the target's
 * mount namespace with nt_join_mntns(), arms a mark with nt_open() and then calls nt_drain()
 * whenever the fanotify fd is readable. nt_drain() emits one JSON line per newly seen regular
 * file (de-duplicated by device and inode before any path work), plus overflow lines. */
#ifndef NYDUS_TOP_NATIVE_H
#define NYDUS_TOP_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#define NT_BOUNDED 1 /* test knob: default (bounded) kernel queue instead of FAN_UNLIMITED_QUEUE */
#define NT_COMPAT 2  /* optimizer-server compatibility: size clamped to uint32, no paths with CR/LF */
#define NT_SMALL_SET 4 /* test knob: the set of seen files stops at 8192 (then a "limit" overflow) */

/* Longest line nt_drain() may emit; it stops early when less than this is left in `out`. */
#define NT_MAX_LINE 32768

struct nt_tracer;

/* Join the mount namespace of `pid` through host procfs dir fd `procfd`. 0 or -errno. */
int nt_join_mntns(int procfd, int pid);

/* fanotify_init + FAN_MARK_MOUNT on `target` (resolved in the current mount namespace).
 * Returns a tracer or NULL with *err = errno. The elapsed clock starts when the mark is in place. */
struct nt_tracer *nt_open(int procfd, const char *target, int flags, int *err);

/* The same with `target` resolved relative to `dirfd` (as openat). */
struct nt_tracer *nt_open_at(int procfd, int dirfd, const char *target, int flags, int *err);

/* Look names up in `rootfd` (an O_PATH fd of the traced root, now the tracer's) rather than in our
 * own root: for a tracer that does not join the container's mount namespace. */
void nt_set_root(struct nt_tracer *t, int rootfd);

int nt_fd(const struct nt_tracer *t);

/* Read one batch of what the kernel has queued (non-blocking) and write JSON lines to `out` (cap
 * >= 2 * NT_MAX_LINE). Returns the bytes written (0: the queue was empty or the batch had
 * nothing new) or -errno on a read error. Bounded work per call, so the caller can watch for a
 * stop in between; events of a batch that did not fit stay for the next call. */
long nt_drain(struct nt_tracer *t, char *out, size_t cap);

/* Remove the mark: nothing more is queued; what is queued can still be drained. 0 or -errno. */
int nt_unmark(struct nt_tracer *t);

void nt_close(struct nt_tracer *t);

/* Hash of a file's (device, inode) for the open-addressing tables of both tracers. */
static inline uint64_t nt_mix(uint64_t dev, uint64_t ino)
{
    uint64_t h = dev * 0x9e3779b97f4a7c15ULL ^ ino;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

/* JSON string body for arbitrary bytes: valid UTF-8 copied, control characters (C0, DEL, C1),
 * quote and backslash escaped, every byte of an invalid sequence as \udcXX (Python's surrogateescape).
 * `out` needs 6 * n bytes. Returns the bytes written. */
size_t nt_json_escape(const char *s, size_t n, char *out);
/* Output helpers of the JSON-line writers: append s (its bytes as they are) or v in decimal at o;
 * both return the end. */
char *nt_put_str(char *o, const char *s);
char *nt_put_u64(char *o, unsigned long long v);

/* ---- range tracer (native/range_tracer.c): FAN_PRE_ACCESS byte ranges, host mount namespace ---- */

#define NT_RANGE_OUT_CAP 8388608      /* `out` of nt_ranges_drain()/serve() must hold this many bytes */
#define NT_RANGE_WAIT_MAX 8            /* fds nt_ranges_serve() watches besides its own */
#define NT_RANGES_PER_FILE 1024        /* distinct ranges of one file before it counts as whole */
#define NT_RANGE_FILES_MAX (1 << 18)   /* files per trace (a 24 MiB table, 36 MiB while it grows); then a "limit" notice */
/* The page cache of a file the range tracer sees first (nt_ranges_cache): runs of cached pages
 * then ("cache0") and at the end ("cache1"), within these bounds; a file past one is counted in a
 * closing "cache_missed" line. */
#define NT_CACHE_FILES 4096       /* files whose fd is kept for the end's look */
#define NT_CACHE_FILES_SMALL 16   /* the same with NT_SMALL_SET (a test knob) */
#define NT_CACHE_RUNS_FIRST 256   /* runs of cached pages when a file is first seen */
#define NT_CACHE_RUNS_END 1024    /* and at the end */
#define NT_CACHE_CALLS_FIRST 256  /* cachestat calls for a file first seen (its reader waits) */
#define NT_CACHE_CALLS_END 4096   /* and at the end (no one waits) */
#define NT_RANGE_INTERVALS_MAX (1 << 20) /* ranges over all files (16 MiB, 52 MiB with slack); then files go whole */

struct nt_ranges;

/* A FAN_CLASS_PRE_CONTENT group recording reads by processes whose mount namespace is the
 * nsfs inode (ns_dev, ns_ino). NULL with *err = errno (EINVAL: kernel before 6.14). Keeps
 * `procfd` (host procfs) open while it lives; the caller closes it after nt_ranges_close(). */
/* Follow the page cache of files seen (see NT_CACHE_FILES); off by default. */
void nt_ranges_cache(struct nt_ranges *t, int on);
/* After nt_ranges_unmark: the "cache1" lines of the files whose fd was kept (their fds closed) and
 * a "cache_missed" line, into `out`; call until it returns 0 (a full `out` stops it early). */
long nt_ranges_cache_end(struct nt_ranges *t, char *out, size_t cap);

struct nt_ranges *nt_ranges_open(int procfd, unsigned long long ns_dev, unsigned long long ns_ino, int flags,
                                 int *err);

/* With `granularity` > 0, a file whose read ranges, rounded out to multiples of it, cover the
 * whole file counts whole ("chunks") and goes quiet: nothing it reads later changes its prefetch. */
void nt_ranges_set_granularity(struct nt_ranges *t, unsigned long long granularity);

/* Mark `dir` and every directory below it for FAN_PRE_ACCESS on their children. Returns the
 * marks placed, or -errno (-ENOSPC: more than `max_marks` directories; -EOPNOTSUPP or -EINVAL:
 * the filesystem has no pre-content events). */
long nt_ranges_mark_tree(struct nt_ranges *t, const char *dir, long max_marks);

int nt_ranges_fd(const struct nt_ranges *t);

/* Answer one batch of queued events (FAN_ALLOW: other processes' at once, the container's each
 * right after its bookkeeping) and write
 * JSON lines for the container's reads: {"file":id,"path":...,"size":n} the first time,
 * {"file":id,"off":o,"len":l} for a read that adds bytes, {"file":id,"whole":"read|chunks|mapped|
 * bound|unknown"} once the file counts as read whole (its events stop), {"notice":"limit"}.
 * Returns the bytes written (0: nothing new or nothing queued) or -errno. */
long nt_ranges_drain(struct nt_ranges *t, char *out, size_t cap);

/* Answer events in a loop until one of `wait_fds` (at most NT_RANGE_WAIT_MAX) is readable or
 * hung up, `write_fd` (if >= 0: where the caller has lines waiting) is writable, a signal arrives, `flush_ms` passed since the first line of this call, or `out` (cap
 * >= NT_RANGE_OUT_CAP) is nearly full. Returns the bytes of lines written or -errno. Keeps the
 * readers' wait free of any Python between events. */
long nt_ranges_serve(struct nt_ranges *t, const int *wait_fds, int nwait, int write_fd, char *out, size_t cap,
                     int flush_ms);

/* Remove every mark (and ignore mark) of the group. 0 or -errno. */
int nt_ranges_unmark(struct nt_ranges *t);

/* Events answered so far (foreign: those of processes outside the container). */
unsigned long long nt_ranges_events(const struct nt_ranges *t, int foreign);

void nt_ranges_close(struct nt_ranges *t);

/* ---- the range tracer's watchdog (native/range_watchdog.c) ---- */

/* The page a range tracer shares with its watchdog (a memfd it maps). */
struct nt_range_beat {
    long long busy_since;         /* CLOCK_MONOTONIC ns before reading the batch being answered; 0 between batches */
    unsigned long long batches;   /* batches answered so far */
};

/* Map `memfd` (at least sizeof(struct nt_range_beat) bytes) and publish every batch in it.
 * 0 or -errno. */
int nt_ranges_share(struct nt_ranges *t, int memfd);

/* A timerfd (CLOEXEC, non-blocking) that becomes readable once, `ms` from now; -errno. */
int nt_ranges_timer(long long ms);

struct nt_watchdog;

/* Start a watchdog thread (all signals blocked) in this process. It owns `sock` (a socket whose
 * peer is the range tracer) and waits there for the tracer's fanotify fd, shared page and pidfd
 * (one message with three fds). Once they came, an event unanswered for more than `bound_ms`
 * (a batch read and not answered, or events queued while no batch was read) SIGKILLs the tracer
 * and closes our copy of its group: every pending event is allowed. NULL with *err set. */
struct nt_watchdog *nt_watchdog_start(int sock, int bound_ms, int *err);

/* The wait (ms, >= 1) that made the watchdog end the tracer; 0 if it has not. */
long long nt_watchdog_fired(const struct nt_watchdog *w);

/* 1 once the tracer's fds arrived. */
int nt_watchdog_armed(const struct nt_watchdog *w);

/* Stop the thread (at once) and free everything. */
void nt_watchdog_stop(struct nt_watchdog *w);

/* The runs of `fd`'s cached pages among its first `pages` pages (of `page` bytes), from cachestat(2):
 * (first, end) page pairs into `out` (room for `cap` pairs), adjacent runs joined. At most *calls
 * cachestat calls (what is left is written back). Returns the pairs, or -errno: -ENOSPC (more
 * runs than cap), -E2BIG (calls spent), -ENOSYS (no cachestat), ... */
long nt_cached_runs(int fd, unsigned long long pages, unsigned long long page, unsigned long long *out,
                    long cap, long *calls);

/* ---- per-entry loops of the tally and of leave-one-out (native/tally.c) ---- */

#define NT_TALLY_EBOUNDS (-1) /* an id or index outside the array it indexes: nothing read or written there */
#define NT_TALLY_EOVERFLOW (-2) /* a sum beyond 64 bits (Python's integers go on) */
#define NT_TALLY_ENOMEM (-3)

/* counts[ids[i]] += 1 for each of the `n` ids (each checked to be in [0, files) first). */
int nt_count_ids(const int32_t *ids, long n, int64_t *counts, long files);

/* A counting sort's second pass over one run (ids, times, sizes: `n` each): entry i goes to
 * at = cursor[id]++ (checked to be in [0, total)): positions[at] = i, times_out[at] = times[i] and
 * sizes_out[at] = sizes[i]. */
int nt_scatter(const int32_t *ids, const int64_t *times, const int64_t *sizes, long n, int64_t *cursor, long files,
               int32_t *positions, int64_t *times_out, int64_t *sizes_out, long total);

/* The smallest and largest of `n` >= 1 values. */
int nt_bounds(const int64_t *values, long n, int64_t *lo, int64_t *hi);

/* Sort each group values[starts[f]:starts[f + 1]] (f below `files`; starts rising from 0 to
 * `total`, checked first) in place, ascending; `width` 4 (int32_t values) or 8 (int64_t). */
int nt_sort_groups(const int64_t *starts, long files, void *values, long total, int width);

/* The consensus' key of each file f below `files`: twice the median of its positions
 * positions[starts[f]:starts[f + 1]] (each group sorted in place; starts checked as above), -1
 * for a file fewer than `min_seen` runs read. */
int nt_median_keys(const int64_t *starts, long files, int32_t *positions, long total, long min_seen, int32_t *keys);

/* A counting sort of the files by key (keys[f] >= 0; -1: left out), files of one key in id order,
 * into `out` (room for `cap`). Returns how many, or an NT_TALLY_E* code. */
long nt_order_by_key(const int32_t *keys, long files, int32_t *out, long cap);

/* ---- per-entry loops of evaluating runs (native/loo.c) ---- */

/* What a run scored against a list adds up (evaluate._score_whole): the rest is Python's. */
struct nt_score {
    int64_t read_total, covered_total, held_files;
    double stall;
};

/* Run (ids, sizes, times: `n` each) against a list without ranges (file ids `order` with their
 * prefetch sizes `osizes`, `norder` each) as evaluate._score_whole scores it; every id is below
 * `files`. 0, or an NT_TALLY_E* code (nothing in *out to use). */
int nt_score_whole(const int32_t *order, const int64_t *osizes, long norder, const int32_t *ids, const int64_t *sizes,
                   const int64_t *times, long n, long files, double bw, double rtt, double held, struct nt_score *out);

/* One file as leaving one run out sees it (evaluate._held_out); seen 0: fewer than two runs read
 * it. u1, u2: INT64_MAX where Python has math.inf. */
struct nt_held {
    int64_t seen, t1, t2, u1, u2, z0, z1;
    double vlo, vmid, vhi, wlo, wmid, whi, whole_time;
};

/* The nt_held rows of the files two or more runs read: file f's is rows[row_of[f]] (row_of has
 * `files` entries, -1: no row; each checked to be below `count`). */
struct nt_held_rows {
    const struct nt_held *rows;
    long count;
    const int32_t *row_of;
};

/* A file in a consensus order: (pos, time, path, fid, seen, size), Python's tuple order. */
struct nt_key {
    double pos, time;
    int64_t fid, seen, size;
};

/* A PathTable's paths: path `fid` is blob[ends[fid - 1] (0 for the first) : ends[fid]]. */
struct nt_paths {
    const char *blob;
    long bloblen;
    const int64_t *ends;
    long count;
};

/* evaluate._order_without: the `base` keys whose file the run (ids, sizes, times: `n` each) did
 * not read, and a key for each file of the run read by `least` or more runs (its row in `held`,
 * whose row_of has `files` entries), sorted; their ids, seen and sizes into the out arrays (room
 * for `cap` >= n + nbase). Returns how many, or an NT_TALLY_E* code. */
long nt_order_without(const struct nt_held_rows *held, long files, const int32_t *ids, const int64_t *sizes,
                      const int64_t *times, long n, long least, const struct nt_key *base, long nbase,
                      const struct nt_paths *paths, int32_t *out_ids, int64_t *out_seen, int64_t *out_size, long cap);

#endif
