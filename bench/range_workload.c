/* Range benchmark workload (bench only), run inside a home-made container:
 *   range_workload NOTE_FD GO_FD BIG BLOCKS SEED SMALL... [-- PYTHON ARGS...]
 * Waits for a byte on GO_FD, then: BLOCKS preads of 4 KiB at distinct random blocks of BIG
 * (xorshift from SEED), each timed; reads every SMALL file whole; runs PYTHON ARGS (if given)
 * and waits for it. Writes one line to NOTE_FD:
 *   "<scatter ns> <small ns> <python ns> <p99 pread ns> <max pread ns> <offsets, comma separated>"
 * then waits for GO_FD to close. Static, so the image needs no libc. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 6)
        return 2;
    int note = atoi(argv[1]), go = atoi(argv[2]);
    const char *big = argv[3];
    long blocks = atol(argv[4]);
    uint64_t x = strtoull(argv[5], NULL, 10) | 1;
    char c, buf[65536];
    if (read(go, &c, 1) != 1)
        return 3;
    int fd = open(big, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return 4;
    long nblk = st.st_size / 4096;
    long long *lat = calloc(blocks, sizeof *lat), *offs = calloc(blocks, sizeof *offs);
    unsigned char *used = calloc(nblk, 1);
    long long t0 = now_ns();
    for (long i = 0; i < blocks; i++) {
        long b;
        do {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b = (long)(x % (uint64_t)nblk);
        } while (used[b]);
        used[b] = 1;
        offs[i] = (long long)b * 4096;
        long long a = now_ns();
        if (pread(fd, buf, 4096, offs[i]) != 4096)
            return 5;
        lat[i] = now_ns() - a;
    }
    long long t1 = now_ns();
    close(fd);
    int i = 6;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        int f = open(argv[i], O_RDONLY);
        if (f < 0)
            return 6;
        while (read(f, buf, sizeof buf) > 0)
            ;
        close(f);
    }
    long long t2 = now_ns(), t3 = t2;
    if (i < argc && i + 1 < argc) {
        pid_t p = fork();
        if (p == 0) {
            execv(argv[i + 1], argv + i + 1);
            _exit(127);
        }
        int status;
        waitpid(p, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status))
            return 7;
        t3 = now_ns();
    }
    qsort(lat, blocks, sizeof *lat, cmp_ll);
    FILE *out = fdopen(note, "w");
    fprintf(out, "%lld %lld %lld %lld %lld ", t1 - t0, t2 - t1, t3 - t2, blocks ? lat[(blocks * 99) / 100] : 0,
            blocks ? lat[blocks - 1] : 0);
    for (long k = 0; k < blocks; k++)
        fprintf(out, k ? ",%lld" : "%lld", offs[k]);
    fprintf(out, "\n");
    fclose(out);
    while (read(go, &c, 1) > 0)
        ;
    return 0;
}
