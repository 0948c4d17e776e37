/* nydus-top native helpers: the C side of the fanotify tracer. */
#ifndef NYDUS_TOP_NATIVE_H
#define NYDUS_TOP_NATIVE_H

/* Join the mount namespace of `pid` through host procfs dir fd `procfd`.
 * Returns 0 or -errno. */
int nt_join_mntns(int procfd, int pid);

#endif
