/* Benchmark floor (bench only): an optimizer server that does nothing but say it is ready.
 *   NYDUS_TOP_READY_FD=N ready_floor
 * Static, like nydus-top-tracer: spawn -> its ready byte is what exec and scheduling cost before
 * any server can place a mark. Waits for SIGTERM. */
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
    const char *fd = getenv("NYDUS_TOP_READY_FD");
    unsigned pid = (unsigned)getpid();
    char msg[5] = {'R', (char)pid, (char)(pid >> 8), (char)(pid >> 16), (char)(pid >> 24)};
    if (!fd || write(atoi(fd), msg, sizeof msg) != sizeof msg)
        return 2;
    pause();
    return 0;
}
