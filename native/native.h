/* nydus-top native core: the fanotify hot loop of the tracer.
 *
 * The caller (a single-threaded process) opens a host procfs directory fd, joins the target's
 * mount namespace with nt_join_mntns(), arms a mark with nt_open() and then calls nt_drain()
 * whenever the fanotify fd is readable. nt_drain() emits one JSON line per newly seen regular
 * file (de-duplicated by device and inode before any path work), plus overflow lines. */
#ifndef NYDUS_TOP_NATIVE_H
#define NYDUS_TOP_NATIVE_H

#include <stddef.h>

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

int nt_fd(const struct nt_tracer *t);

/* Read one batch of what the kernel has queued (non-blocking) and write JSON lines to `out` (cap
 * >= 2 * NT_MAX_LINE). Returns the bytes written (0: the queue was empty or the batch had
 * nothing new) or -errno on a read error. Bounded work per call, so the caller can watch for a
 * stop in between; events of a batch that did not fit stay for the next call. */
long nt_drain(struct nt_tracer *t, char *out, size_t cap);

/* Remove the mark: nothing more is queued; what is queued can still be drained. 0 or -errno. */
int nt_unmark(struct nt_tracer *t);

void nt_close(struct nt_tracer *t);

/* JSON string body for arbitrary bytes: valid UTF-8 copied, control characters (C0, DEL, C1),
 * quote and backslash escaped, every byte of an invalid sequence as \udcXX (Python's surrogateescape).
 * `out` needs 6 * n bytes. Returns the bytes written. */
size_t nt_json_escape(const char *s, size_t n, char *out);

#endif
