/* Benchmark floor (bench only): the least a complete fanotify tracer can do.
 *   tracer_floor MOUNTPOINT READY_FD
 * Unlimited queue, big reads, fstat and (dev, ino) de-duplication before readlink, one path a
 * line on stdout flushed per batch; SIGTERM drains the queue and exits. Overflows go to stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/fanotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static uint64_t *seen;
static size_t cap = 1 << 18, count; /* enough for the bench's 100k files */

static void on_term(int sig) { (void)sig; stop = 1; }

static int add(uint64_t dev, uint64_t ino)
{
    size_t j = (dev * 0x9e3779b97f4a7c15ULL ^ ino * 0xff51afd7ed558ccdULL) & (cap - 1);
    while (seen[2 * j + 1]) {
        if (seen[2 * j] == dev && seen[2 * j + 1] == ino + 1)
            return 0;
        j = (j + 1) & (cap - 1);
    }
    seen[2 * j] = dev;
    seen[2 * j + 1] = ino + 1;
    count++;
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    size_t bufsize = (rl.rlim_cur - 64) * sizeof(struct fanotify_event_metadata);
    if (bufsize > (1 << 20))
        bufsize = 1 << 20;
    char *buf = malloc(bufsize);
    seen = calloc(cap * 2, sizeof *seen);
    signal(SIGTERM, on_term);
    int fd = fanotify_init(FAN_CLASS_NOTIF | FAN_UNLIMITED_QUEUE | FAN_NONBLOCK, O_RDONLY | O_LARGEFILE);
    if (fd < 0 || fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN | FAN_OPEN_EXEC | FAN_ACCESS,
                                AT_FDCWD, argv[1]) < 0)
        return 1;
    if (write(atoi(argv[2]), "R", 1) != 1)
        return 1;
    unsigned long overflows = 0;
    char path[4200], link[64];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (!stop && poll(&p, 1, -1) < 0 && errno != EINTR)
            return 1;
        ssize_t n;
        while ((n = read(fd, buf, bufsize)) > 0) {
            for (struct fanotify_event_metadata *m = (void *)buf; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
                if (m->mask & FAN_Q_OVERFLOW)
                    overflows++;
                if (m->fd < 0)
                    continue;
                struct stat st;
                if (fstat(m->fd, &st) == 0 && add(st.st_dev, st.st_ino)) {
                    snprintf(link, sizeof link, "/proc/self/fd/%d", m->fd);
                    ssize_t l = readlink(link, path, sizeof path - 1);
                    if (l > 0) {
                        path[l] = '\n';
                        fwrite(path, 1, l + 1, stdout);
                    }
                }
                close(m->fd);
            }
            fflush(stdout);
        }
        if (stop)
            break;
    }
    fprintf(stderr, "overflows=%lu\n", overflows);
    return 0;
}
