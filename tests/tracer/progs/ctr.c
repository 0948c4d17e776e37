/* Test-only container launcher, built like runc does it (no chroot):
 *   ctr LOWER SCRATCH MERGED PROG [ARGS...]
 * New mount and pid namespaces, a tmpfs on SCRATCH for the upper layer, overlayfs rootfs, /proc,
 * pivot_root, old root detached, then PROG runs as pid 1. Prints the host pid of that pid 1 on
 * stdout, exits with its status. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
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
    if (argc < 5) {
        fprintf(stderr, "usage: ctr LOWER SCRATCH MERGED PROG [ARGS...]\n");
        return 125;
    }
    if (unshare(CLONE_NEWNS | CLONE_NEWPID) < 0)
        die("unshare");
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        char opts[4096];
        snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s/upper,workdir=%s/work", argv[1], argv[2],
                 argv[2]);
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            die("make-private");
        if (mount("tmpfs", argv[2], "tmpfs", 0, "mode=0755") < 0 || chdir(argv[2]) < 0 ||
            mkdir("upper", 0755) < 0 || mkdir("work", 0755) < 0)
            die("scratch tmpfs");
        if (mount("overlay", argv[3], "overlay", 0, opts) < 0)
            die("mount overlay");
        if (chdir(argv[3]) < 0)
            die("chdir rootfs");
        if (mount("proc", "proc", "proc", 0, NULL) < 0)
            die("mount proc");
        if (syscall(SYS_pivot_root, ".", "old") < 0)
            die("pivot_root");
        if (chdir("/") < 0 || umount2("/old", MNT_DETACH) < 0)
            die("detach old root");
        execv(argv[4], argv + 4);
        die("exec");
    }
    printf("%d\n", (int)child);
    fflush(stdout);
    int status;
    if (waitpid(child, &status, 0) < 0)
        die("waitpid");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
