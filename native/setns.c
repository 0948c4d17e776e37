#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

#include "native.h"

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
