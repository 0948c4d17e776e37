/* Benchmark workload (bench only):
 *   tracer_workload make DIR N   create DIR/0 .. DIR/N-1, 100 bytes each
 *   tracer_workload read DIR N   open, read and close each once; prints the elapsed ns */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    long n = atol(argv[3]);
    char path[4096], buf[4096];
    int make = !strcmp(argv[1], "make");
    memset(buf, 'x', 100);
    if (make)
        mkdir(argv[2], 0755);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%ld", argv[2], i);
        int fd = make ? open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : open(path, O_RDONLY);
        if (fd < 0)
            return 1;
        if (make ? write(fd, buf, 100) != 100 : read(fd, buf, sizeof buf) < 0)
            return 1;
        close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%lld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
    return 0;
}
