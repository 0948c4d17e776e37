/* Test-only container launcher, built like runc does it (no chroot):
 *   ctr LOWER UPPER WORK MERGED PROG [ARGS...]
 * New mount and pid namespaces, overlayfs rootfs, /proc, pivot_root, old root detached, then
 * PROG runs as pid 1. Prints the host pid of that pid 1 on stdout, exits with its status. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what)
{
    perror(what);
    _exit(125);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: ctr LOWER UPPER WORK MERGED PROG [ARGS...]\n");
        return 125;
    }
    if (unshare(CLONE_NEWNS | CLONE_NEWPID) < 0)
        die("unshare");
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        char opts[4096];
        snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", argv[1], argv[2], argv[3]);
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            die("make-private");
        if (mount("overlay", argv[4], "overlay", 0, opts) < 0)
            die("mount overlay");
        if (chdir(argv[4]) < 0)
            die("chdir rootfs");
        if (mount("proc", "proc", "proc", 0, NULL) < 0)
            die("mount proc");
        if (syscall(SYS_pivot_root, ".", "old") < 0)
            die("pivot_root");
        if (chdir("/") < 0 || umount2("/old", MNT_DETACH) < 0)
            die("detach old root");
        execv(argv[5], argv + 5);
        die("exec");
    }
    printf("%d\n", (int)child);
    fflush(stdout);
    int status;
    if (waitpid(child, &status, 0) < 0)
        die("waitpid");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
