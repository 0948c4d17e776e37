/* Per-entry loops of evaluating runs against lists (nydus_top.runs.evaluate): a run scored
 * against a list without ranges, and the consensus order of the other runs when one is left out.
 *
 * Same rules as tally.c: pure functions over the caller's arrays, every id checked against the
 * array it indexes before use, sums checked for overflow; an error code leaves the caller to its
 * plain Python path. Floating point follows Python's evaluation order term by term (built with
 * -ffp-contract=off), so the results are bit for bit those of the Python code. */
#include "native.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NT_NONE (-1) /* a size or time the run did not give */

/* Each file of the list: where its prefetch ends (bytes from the list's start) and its size. */
static int nt_arrivals(const int32_t *order, const int64_t *osizes, long norder, long files, int64_t *arrive,
                       int64_t *lsize, unsigned char *listed)
{
    int64_t end = 0;
    for (long i = 0; i < norder; i++) {
        int32_t f = order[i];
        if (f < 0 || f >= files)
            return NT_TALLY_EBOUNDS;
        if (__builtin_add_overflow(end, osizes[i], &end))
            return NT_TALLY_EOVERFLOW;
        arrive[f] = end;
        lsize[f] = osizes[i];
        listed[f] = 1;
    }
    return 0;
}

/* One access of the run (size > 0 of it wanted) to a file the list holds: 1 with what it adds to
 * the stall in *add, 0 when Python adds nothing (adding 0.0 would turn a stall of -0.0 into 0.0). */
static int nt_listed_wait(int64_t end, int64_t rsize, int64_t covered, int64_t time, double bw, double rtt,
                          double held, double *add)
{
    double wait = (double)end / bw - held - (double)(time > 0 ? time : 0) / 1e6;
    if (covered < rsize) { /* the rest on demand, alongside */
        double missing = rtt + (double)(rsize - covered) / bw;
        wait = missing > wait ? missing : wait;
    }
    if (wait > 0 && rsize) {
        double whole = rtt + (double)rsize / bw;
        *add = whole < wait ? whole : wait;
        return 1;
    }
    return 0;
}

static int nt_score_loop(const int32_t *ids, const int64_t *sizes, const int64_t *times, long n, long files,
                         const int64_t *arrive, const int64_t *lsize, const unsigned char *listed, double bw,
                         double rtt, double held, struct nt_score *out)
{
    out->read_total = out->covered_total = out->held_files = 0;
    out->stall = held;
    for (long i = 0; i < n; i++) {
        int32_t f = ids[i];
        if (f < 0 || f >= files)
            return NT_TALLY_EBOUNDS;
        int64_t rsize = sizes[i] > 0 ? sizes[i] : 0, covered, rest;
        if (__builtin_add_overflow(out->read_total, rsize, &out->read_total))
            return NT_TALLY_EOVERFLOW;
        if (!listed[f]) {
            if (rsize)
                out->stall += rtt + (double)rsize / bw;
            continue;
        }
        out->held_files++;
        covered = lsize[f] < rsize ? lsize[f] : rsize;
        if (__builtin_add_overflow(out->covered_total, covered, &out->covered_total) ||
            __builtin_sub_overflow(rsize, covered, &rest))
            return NT_TALLY_EOVERFLOW;
        double add;
        if (nt_listed_wait(arrive[f], rsize, covered, times[i], bw, rtt, held, &add))
            out->stall += add;
    }
    return 0;
}

int nt_score_whole(const int32_t *order, const int64_t *osizes, long norder, const int32_t *ids, const int64_t *sizes,
                   const int64_t *times, long n, long files, double bw, double rtt, double held, struct nt_score *out)
{
    if (norder < 0 || n < 0 || files < 0)
        return NT_TALLY_EBOUNDS;
    int64_t *arrive = calloc((size_t)files + 1, sizeof *arrive);
    int64_t *lsize = calloc((size_t)files + 1, sizeof *lsize);
    unsigned char *listed = calloc((size_t)files + 1, 1);
    int rc = NT_TALLY_ENOMEM;
    if (arrive && lsize && listed) {
        rc = nt_arrivals(order, osizes, norder, files, arrive, lsize, listed);
        if (rc == 0)
            rc = nt_score_loop(ids, sizes, times, n, files, arrive, lsize, listed, bw, rtt, held, out);
    }
    free(arrive);
    free(lsize);
    free(listed);
    return rc;
}

/* ---- the consensus of the other runs ---- */

static int nt_path_of(const struct nt_paths *p, int64_t fid, const char **at, size_t *len)
{
    if (fid < 0 || fid >= p->count)
        return 0;
    int64_t start = fid ? p->ends[fid - 1] : 0, end = p->ends[fid];
    if (start < 0 || start > end || end > p->bloblen)
        return 0;
    *at = p->blob + start;
    *len = (size_t)(end - start);
    return 1;
}

/* Python's order of (pos, time, path, fid, seen, size) tuples; paths were checked before the sort. */
static int nt_key_cmp(const void *a, const void *b, void *ctx)
{
    const struct nt_key *x = a, *y = b;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    const char *px = NULL, *py = NULL;
    size_t lx = 0, ly = 0;
    nt_path_of(ctx, x->fid, &px, &lx);
    nt_path_of(ctx, y->fid, &py, &ly);
    int c = memcmp(px, py, lx < ly ? lx : ly); /* UTF-8 bytes sort as the code points they encode */
    if (c || lx != ly)
        return c ? c : lx < ly ? -1 : 1;
    if (x->fid != y->fid)
        return x->fid < y->fid ? -1 : 1;
    if (x->seen != y->seen)
        return x->seen < y->seen ? -1 : 1;
    return x->size < y->size ? -1 : x->size > y->size;
}

/* The key run entry i gives its file without the run (seen, thresholds: see evaluate._held_out). */
static struct nt_key nt_held_key(const struct nt_held *h, int32_t fid, long position, int64_t size, int64_t time)
{
    struct nt_key k;
    k.pos = position > h->t2 ? h->vhi : position > h->t1 ? h->vmid : h->vlo;
    k.time = time == NT_NONE ? h->whole_time : time > h->u2 ? h->whi : time > h->u1 ? h->wmid : h->wlo;
    k.fid = fid;
    k.seen = h->seen - 1;
    k.size = size >= h->z0 ? h->z1 : h->z0;
    return k;
}

/* The keys of the order without the run: base files it did not read, then its own files' keys. */
static long nt_gather(const struct nt_held_rows *held, long files, const int32_t *ids, const int64_t *sizes,
                      const int64_t *times, long n, long least, const struct nt_key *base, long nbase,
                      unsigned char *mine, struct nt_key *keys)
{
    long m = 0;
    for (long i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= files)
            return NT_TALLY_EBOUNDS;
        mine[ids[i]] = 1;
    }
    for (long j = 0; j < nbase; j++) {
        if (base[j].fid < 0 || base[j].fid >= files)
            return NT_TALLY_EBOUNDS;
        if (!mine[base[j].fid])
            keys[m++] = base[j];
    }
    for (long i = 0; i < n; i++) {
        int32_t r = held->row_of[ids[i]];
        if (r < 0)
            continue; /* fewer than two runs read it */
        if (r >= held->count)
            return NT_TALLY_EBOUNDS;
        const struct nt_held *h = &held->rows[r];
        if (h->seen >= 2 && h->seen >= least)
            keys[m++] = nt_held_key(h, ids[i], i, sizes[i], times[i]);
    }
    return m;
}

static int nt_keys_ok(const struct nt_key *keys, long m, const struct nt_paths *paths)
{
    const char *at;
    size_t len;
    for (long j = 0; j < m; j++)
        if (isnan(keys[j].pos) || isnan(keys[j].time) || !nt_path_of(paths, keys[j].fid, &at, &len) ||
            keys[j].fid > INT32_MAX)
            return 0;
    return 1;
}

long nt_order_without(const struct nt_held_rows *held, long files, const int32_t *ids, const int64_t *sizes,
                      const int64_t *times, long n, long least, const struct nt_key *base, long nbase,
                      const struct nt_paths *paths, int32_t *out_ids, int64_t *out_seen, int64_t *out_size, long cap)
{
    if (files < 0 || n < 0 || nbase < 0 || cap < n + nbase)
        return NT_TALLY_EBOUNDS;
    unsigned char *mine = calloc((size_t)files + 1, 1);
    struct nt_key *keys = malloc(((size_t)n + (size_t)nbase + 1) * sizeof *keys);
    long m = NT_TALLY_ENOMEM;
    if (mine && keys) {
        m = nt_gather(held, files, ids, sizes, times, n, least, base, nbase, mine, keys);
        if (m >= 0 && !nt_keys_ok(keys, m, paths))
            m = NT_TALLY_EBOUNDS;
    }
    if (m > 0) {
        qsort_r(keys, (size_t)m, sizeof *keys, nt_key_cmp, (void *)paths);
        for (long j = 0; j < m; j++) {
            out_ids[j] = (int32_t)keys[j].fid;
            out_seen[j] = keys[j].seen;
            out_size[j] = keys[j].size;
        }
    }
    free(mine);
    free(keys);
    return m;
}
