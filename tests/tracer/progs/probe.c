/* Test-only workload run inside home-made containers. Each argument is one step, in order:
 *   signal:FD  write one byte to FD        wait:FD     read one byte from FD (EOF: exit 3)
 *   read:PATH  open, read all, close       open:PATH   open and close
 *   rm:PATH    unlink                      exec:PATH   exec PATH with the remaining steps
 *   mkmany:DIR:N  create DIR/0..N-1        openmany:DIR:N  open and close DIR/0..N-1
 *   readmany:DIR:N  read one byte of each of DIR/0..N-1
 *   pids:FD    write the names of /proc's numeric entries to FD, space separated
 *   spam:DIR:K  K processes create DIR/<pid>-0, 1, ... forever (never returns)
 *   pread:PATH:OFF:LEN  one pread     readv:PATH:OFF:LEN,LEN...  one preadv of those buffers
 *   mmap:PATH  map the file and touch every page
 *   maptouch:PATH:OFF,OFF...  map the file, touch the byte at each offset, keep the mapping
 *   mapburst:PATH:OFF,OFF...  fork one child per offset that maps the file, touches that byte and
 *               exits at once; wait for them all
 *   scatter:PATH:STRIDE:LEN:COUNT  COUNT preads of LEN bytes at 0, STRIDE, 2*STRIDE, ...
 *   deep:N:create|read  create, or read, /deep/<N directories of 255 characters>/f: a path
 *               longer than PATH_MAX, reached by chdir one directory at a time
 *   run:PATH   fork; the child execs PATH (no steps: it exits at once); wait for it
 *   spawn:PATH:FILE  fork; the child execs PATH with the one step read:FILE; wait for it
 * Any failing step exits with status 4. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static int many(const char *arg, int create) /* 1: create, 0: open, 2: read a byte */
{
    char dir[512], path[600];
    const char *colon = strrchr(arg, ':');
    if (!colon || (size_t)(colon - arg) >= sizeof dir)
        return -1;
    memcpy(dir, arg, colon - arg);
    dir[colon - arg] = 0;
    long n = atol(colon + 1);
    if (create == 1)
        mkdir(dir, 0755);
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%ld", dir, i);
        int fd = open(path, create == 1 ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0644);
        char byte;
        if (fd < 0 || (create == 2 && pread(fd, &byte, 1, 0) != 1))
            return -1;
        close(fd);
    }
    return 0;
}

static int spam(const char *arg)
{
    char dir[512], path[600];
    const char *colon = strrchr(arg, ':');
    if (!colon || (size_t)(colon - arg) >= sizeof dir)
        return -1;
    memcpy(dir, arg, colon - arg);
    dir[colon - arg] = 0;
    mkdir(dir, 0755);
    for (int k = atoi(colon + 1); k > 1; k--)
        if (fork() == 0)
            break;
    for (unsigned long i = 0;; i++) {
        snprintf(path, sizeof path, "%s/%d-%lu", dir, (int)getpid(), i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            return -1;
        close(fd);
    }
}

/* pread:PATH:OFF:LEN and readv:PATH:OFF:LEN,LEN,... (up to 8 buffers of 64 KiB at most) */
static int ranged(char *v, int vectored)
{
    static char bufs[8][65536];
    struct iovec iov[8];
    int n = 0;
    char *lens = strrchr(v, ':');
    if (!lens)
        return -1;
    *lens++ = 0;
    char *off = strrchr(v, ':');
    if (!off)
        return -1;
    *off++ = 0;
    for (char *s = strtok(lens, ","); s && n < 8; s = strtok(NULL, ",")) {
        iov[n].iov_base = bufs[n];
        iov[n].iov_len = (size_t)atol(s) > sizeof bufs[n] ? sizeof bufs[n] : (size_t)atol(s);
        n++;
    }
    int fd = open(v, O_RDONLY);
    if (fd < 0 || n == 0 || (!vectored && n != 1))
        return -1;
    ssize_t r = vectored ? preadv(fd, iov, n, atoll(off)) : pread(fd, iov[0].iov_base, iov[0].iov_len, atoll(off));
    close(fd);
    return r < 0 ? -1 : 0;
}

static int mapped(const char *path)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return -1;
    volatile unsigned char *p = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return -1;
    unsigned sum = 0;
    for (off_t o = 0; o < st.st_size; o += 4096)
        sum += p[o];
    munmap((void *)p, st.st_size);
    return sum == 0xffffffffu ? -1 : 0;
}

static int maptouch(char *v)
{
    char *offs = strchr(v, ':');
    if (!offs)
        return -1;
    *offs++ = 0;
    int fd = open(v, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return -1;
    volatile unsigned char *p = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return -1;
    unsigned sum = 0;
    for (char *o = strtok(offs, ","); o; o = strtok(NULL, ","))
        sum += p[atoll(o)];
    return sum == 0xffffffffu ? -1 : 0; /* the mapping stays until the process exits */
}

static int mapburst(char *v)
{
    char *offs = strchr(v, ':');
    if (!offs)
        return -1;
    *offs++ = 0;
    int n = 0, ok = 1;
    for (char *o = strtok(offs, ","); o; o = strtok(NULL, ","), n++) {
        char step[600];
        snprintf(step, sizeof step, "%s:%s", v, o);
        pid_t child = fork();
        if (child == 0)
            _exit(maptouch(step) ? 4 : 0);
        if (child < 0)
            return -1;
    }
    for (int status; n > 0; n--)
        ok &= wait(&status) > 0 && WIFEXITED(status) && !WEXITSTATUS(status);
    return ok ? 0 : -1;
}

static int scatter(char *v)
{
    static char buf[65536];
    long n[3];
    for (int k = 2; k >= 0; k--) {
        char *c = strrchr(v, ':');
        if (!c)
            return -1;
        *c = 0;
        n[k] = atol(c + 1);
    }
    int fd = open(v, O_RDONLY);
    if (fd < 0 || n[1] > (long)sizeof buf)
        return -1;
    for (long k = 0; k < n[2]; k++)
        if (pread(fd, buf, n[1], (off_t)k * n[0]) < 0)
            return -1;
    return close(fd);
}

static int deep(const char *arg)
{
    char name[256];
    const char *op = strchr(arg, ':');
    if (!op)
        return -1;
    int create = !strcmp(op + 1, "create");
    memset(name, 'd', 255);
    name[255] = 0;
    if (create && mkdir("/deep", 0755) < 0 && errno != EEXIST)
        return -1;
    if (chdir("/deep") < 0)
        return -1;
    for (long i = atol(arg); i > 0; i--) {
        if (create && mkdir(name, 0755) < 0 && errno != EEXIST)
            return -1;
        if (chdir(name) < 0)
            return -1;
    }
    int fd = open("f", create ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0644);
    if (fd < 0)
        return -1;
    if ((create ? write(fd, "deep", 4) : read(fd, name, sizeof name)) < 0)
        return -1;
    close(fd);
    return chdir("/");
}

static int step(int i, int argc, char **argv)
{
    char *a = argv[i], buf[65536];
    char *v = strchr(a, ':');
    if (!v)
        return -1;
    *v++ = 0;
    if (!strcmp(a, "signal"))
        return write(atoi(v), "x", 1) == 1 ? 0 : -1;
    if (!strcmp(a, "wait")) {
        if (read(atoi(v), buf, 1) != 1)
            exit(3);
        return 0;
    }
    if (!strcmp(a, "read") || !strcmp(a, "open")) {
        int fd = open(v, O_RDONLY);
        if (fd < 0)
            return -1;
        if (!strcmp(a, "read"))
            while (read(fd, buf, sizeof buf) > 0)
                ;
        return close(fd);
    }
    if (!strcmp(a, "pread") || !strcmp(a, "readv"))
        return ranged(v, a[1] == 'e');
    if (!strcmp(a, "mmap"))
        return mapped(v);
    if (!strcmp(a, "scatter"))
        return scatter(v);
    if (!strcmp(a, "maptouch"))
        return maptouch(v);
    if (!strcmp(a, "mapburst"))
        return mapburst(v);
    if (!strcmp(a, "rm"))
        return unlink(v);
    if (!strcmp(a, "exec")) {
        argv[i] = v;
        execv(v, argv + i);
        return -1;
    }
    if (!strcmp(a, "run")) {
        pid_t child = fork();
        if (child == 0) {
            execl(v, v, (char *)NULL);
            _exit(127);
        }
        int status;
        return child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -1;
    }
    if (!strcmp(a, "spawn")) {
        char prog[512], step[600];
        const char *colon = strchr(v, ':');
        if (!colon || (size_t)(colon - v) >= sizeof prog)
            return -1;
        memcpy(prog, v, colon - v);
        prog[colon - v] = 0;
        snprintf(step, sizeof step, "read:%s", colon + 1);
        pid_t child = fork();
        if (child == 0) {
            execl(prog, prog, step, (char *)NULL);
            _exit(127);
        }
        int status;
        return child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -1;
    }
    if (!strcmp(a, "mkmany"))
        return many(v, 1);
    if (!strcmp(a, "openmany"))
        return many(v, 0);
    if (!strcmp(a, "readmany"))
        return many(v, 2);
    if (!strcmp(a, "spam"))
        return spam(v);
    if (!strcmp(a, "deep"))
        return deep(v);
    if (!strcmp(a, "pids")) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        if (!d)
            return -1;
        FILE *out = fdopen(atoi(v), "w");
        while ((e = readdir(d)))
            if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
                fprintf(out, "%s ", e->d_name);
        closedir(d);
        return fclose(out);
    }
    (void)argc;
    return -1;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (step(i, argc, argv) < 0) {
            perror(argv[i]);
            return 4;
        }
    return 0;
}
