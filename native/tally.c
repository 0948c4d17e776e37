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
        if (sizes_out)
            sizes_out[at] = sizes[i];
    }
    return 0;
}

int nt_raise_max(const int32_t *ids, const int64_t *values, long n, int64_t *maxes, long files)
{
    if (n < 0 || files < 0 || !nt_ids_ok(ids, n, files))
        return NT_TALLY_EBOUNDS;
    for (long i = 0; i < n; i++)
        if (values[i] > maxes[ids[i]])
            maxes[ids[i]] = values[i];
    return 0;
}
