/* Simulates a network file system whose locks do not work (NFS without a lock daemon, Lustre
 * mounted without flock): every fcntl() lock request on a file under $NO_LOCKS_UNDER fails with
 * ENOLCK, as such a mount answers. Built and loaded with LD_PRELOAD by tests/local/test_hashing.py and tests/s3/test_upload_aws.py. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int refused(int fd, int cmd) {
    if (cmd != F_SETLK && cmd != F_SETLKW && cmd != F_GETLK && cmd != F_OFD_SETLK && cmd != F_OFD_SETLKW
        && cmd != F_OFD_GETLK)
        return 0;
    const char *under = getenv("NO_LOCKS_UNDER");
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (!under || n <= 0)
        return 0;
    target[n] = 0;
    return strncmp(target, under, strlen(under)) == 0;
}

static int forward(const char *name, int fd, int cmd, void *arg) {
    int (*real)(int, int, ...) = (int (*)(int, int, ...))dlsym(RTLD_NEXT, name);
    return real(fd, cmd, arg);
}

int fcntl(int fd, int cmd, ...) {
    va_list args;
    va_start(args, cmd);
    void *arg = va_arg(args, void *);
    va_end(args);
    if (refused(fd, cmd)) {
        errno = ENOLCK;
        return -1;
    }
    return forward("fcntl", fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) {
    va_list args;
    va_start(args, cmd);
    void *arg = va_arg(args, void *);
    va_end(args);
    if (refused(fd, cmd)) {
        errno = ENOLCK;
        return -1;
    }
    return forward("fcntl64", fd, cmd, arg);
}
