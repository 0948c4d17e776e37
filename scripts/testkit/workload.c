/*
 * Start-up workload for the capture tests: a static binary without libc whose entry point
 * immediately reads the files named on its command line, in order, one about every millisecond.
 *
 *   workload exit|stay INTERVAL_US FILE...
 *
 * Each file is opened, read to the end and closed; a FILE written "+PATH" is first created (one
 * byte written), as a container creates files at runtime. Afterwards it writes DONE_LINE to stdout and
 * exits (status 0, or 1 if some file could not be read) or, with "stay", sleeps until killed. There is no
 * C runtime start-up: the first instructions after exec are the ones below, so any file a
 * tracer sees before FILE 1 came from somewhere else.
 *
 * Build: gcc -static -nostdlib -ffreestanding -fno-stack-protector -O2 -o workload workload.c
 */

#if defined(__x86_64__)
#define SYS_read 0
#define SYS_write 1
#define SYS_openat 257
#define SYS_close 3
#define SYS_nanosleep 35
#define SYS_exit_group 231
static long sys3(long n, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
}
static long sys4(long n, long a, long b, long c, long d)
{
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return ret;
}
__asm__(".text\n.globl _start\n_start:\n"
        "  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call workload_main\n  hlt\n");
#elif defined(__aarch64__)
#define SYS_read 63
#define SYS_write 64
#define SYS_openat 56
#define SYS_close 57
#define SYS_nanosleep 101
#define SYS_exit_group 94
static long sys3(long n, long a, long b, long c)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
static long sys4(long n, long a, long b, long c, long d)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}
__asm__(".text\n.globl _start\n_start:\n  mov x0, sp\n  bl workload_main\n  brk #0\n");
#else
#error "workload.c supports x86_64 and aarch64"
#endif

#define AT_FDCWD (-100)

struct timespec_k {
    long sec;
    long nsec;
};

static char buf[65536];

static void pause_us(long us)
{
    struct timespec_k ts = {us / 1000000, (us % 1000000) * 1000};
    sys3(SYS_nanosleep, (long)&ts, 0, 0);
}

static long parse_long(const char *s)
{
    long v = 0;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (*s++ - '0');
    return v;
}

static int read_whole(const char *path)
{
    long fd = sys3(SYS_openat, AT_FDCWD, (long)path, 0 /* O_RDONLY */);
    if (fd < 0)
        return -1;
    long n;
    while ((n = sys3(SYS_read, fd, (long)buf, sizeof buf)) > 0)
        ;
    sys3(SYS_close, fd, 0, 0);
    return n < 0 ? -1 : 0;
}

static int make_file(const char *path)
{
    long fd = sys4(SYS_openat, AT_FDCWD, (long)path, 01 | 0100 /* O_WRONLY | O_CREAT */, 0644);
    if (fd < 0)
        return -1;
    sys3(SYS_write, fd, (long)"x", 1);
    sys3(SYS_close, fd, 0, 0);
    return 0;
}

__attribute__((noreturn, used)) void workload_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    int failed = 0;
    long interval = argc > 2 ? parse_long(argv[2]) : 1000;
    for (long i = 3; i < argc; i++) {
        const char *path = argv[i];
        if (path[0] == '+' && make_file(++path) < 0)
            failed = 1;
        if (read_whole(path) < 0)
            failed = 1;
        if (i + 1 < argc)
            pause_us(interval);
    }
    static const char done[] = "workload: start-up files read\n";
    sys3(SYS_write, 1, (long)done, sizeof done - 1);
    if (argc > 1 && argv[1][0] == 's')
        for (;;)
            pause_us(3600L * 1000000);
    for (;;)
        sys3(SYS_exit_group, failed, 0, 0);
}
