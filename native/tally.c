/* Per-entry loops of the consensus tally and of leave-one-out evaluation (nydus_top.runs).
 *
 * Pure functions over arrays the caller owns (Python's array.array, passed with ffi.from_buffer):
 * no global state, no I/O. Ids come from lists on disk, so every id and every computed index is
 * checked against the length it indexes before anything is read or written through it; a bad one
 * returns NT_TALLY_EBOUNDS (the caller then takes its plain Python path, whose result stands). */
#include "native.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int nt_ids_ok(const int32_t *ids, long n, long files)
{
    for (long i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= files)
            return 0;
    return 1;
}

int nt_count_ids(const int32_t *ids, long n, int64_t *counts, long files)
{
    if (n < 0 || files < 0 || !nt_ids_ok(ids, n, files))
        return NT_TALLY_EBOUNDS;
    for (long i = 0; i < n; i++)
        counts[ids[i]]++;
    return 0;
}

int nt_scatter(const int32_t *ids, const int64_t *times, const int64_t *sizes, long n, int64_t *cursor, long files,
               int32_t *positions, int64_t *times_out, int64_t *sizes_out, long total)
{
    if (n < 0 || n > INT32_MAX || files < 0 || total < 0 || !nt_ids_ok(ids, n, files))
        return NT_TALLY_EBOUNDS;
    for (long i = 0; i < n; i++) {
        int64_t at = cursor[ids[i]];
        if (at < 0 || at >= total)
            return NT_TALLY_EBOUNDS;
        cursor[ids[i]] = at + 1;
        positions[at] = (int32_t)i;
        times_out[at] = times[i];
        sizes_out[at] = sizes[i];
    }
    return 0;
}

int nt_bounds(const int64_t *values, long n, int64_t *lo, int64_t *hi)
{
    if (n <= 0)
        return NT_TALLY_EBOUNDS;
    int64_t a = values[0], b = values[0];
    for (long i = 1; i < n; i++) {
        a = values[i] < a ? values[i] : a;
        b = values[i] > b ? values[i] : b;
    }
    *lo = a;
    *hi = b;
    return 0;
}

static int nt_cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int nt_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* starts[0..files] must rise from 0 to total: checked before anything is sorted. */
static int nt_groups_ok(const int64_t *starts, long files, long total)
{
    if (files < 0 || total < 0 || starts[0] != 0 || starts[files] != total)
        return 0;
    for (long f = 0; f < files; f++)
        if (starts[f + 1] < starts[f])
            return 0;
    return 1;
}

int nt_sort_groups(const int64_t *starts, long files, void *values, long total, int width)
{
    if ((width != 4 && width != 8) || !nt_groups_ok(starts, files, total))
        return NT_TALLY_EBOUNDS;
    for (long f = 0; f < files; f++) {
        int64_t a = starts[f], n = starts[f + 1] - a;
        if (n > 1)
            qsort((char *)values + a * width, (size_t)n, (size_t)width, width == 4 ? nt_cmp_i32 : nt_cmp_i64);
    }
    return 0;
}

int nt_median_keys(const int64_t *starts, long files, int32_t *positions, long total, long min_seen, int32_t *keys)
{
    if (!nt_groups_ok(starts, files, total))
        return NT_TALLY_EBOUNDS;
    for (long f = 0; f < files; f++) {
        int64_t a = starts[f], n = starts[f + 1] - a;
        keys[f] = -1;
        if (n == 0 || n < min_seen)
            continue;
        qsort(positions + a, (size_t)n, sizeof *positions, nt_cmp_i32);
        int64_t mid = a + n / 2;
        int64_t key = n % 2 ? 2 * (int64_t)positions[mid] : (int64_t)positions[mid - 1] + positions[mid];
        if (key < 0 || key > INT32_MAX)
            return NT_TALLY_EBOUNDS;
        keys[f] = (int32_t)key;
    }
    return 0;
}

long nt_order_by_key(const int32_t *keys, long files, int32_t *out, long cap)
{
    if (files < 0 || files > (long)INT32_MAX + 1)
        return NT_TALLY_EBOUNDS;
    int32_t top = -1;
    for (long f = 0; f < files; f++)
        top = keys[f] > top ? keys[f] : top;
    int64_t *firsts = calloc((size_t)top + 2, sizeof *firsts); /* key k's files: from firsts[k] on */
    if (!firsts)
        return NT_TALLY_ENOMEM;
    for (long f = 0; f < files; f++)
        if (keys[f] >= 0)
            firsts[(int64_t)keys[f] + 1]++; /* 64-bit index: a key of INT32_MAX has room too */
    for (int64_t k = 1; k <= (int64_t)top + 1; k++)
        firsts[k] += firsts[k - 1];
    long n = top >= 0 ? (long)firsts[(int64_t)top + 1] : 0;
    if (n > cap) {
        free(firsts);
        return NT_TALLY_EBOUNDS;
    }
    for (long f = 0; f < files; f++)
        if (keys[f] >= 0)
            out[firsts[keys[f]]++] = (int32_t)f;
    free(firsts);
    return n;
}
