/* An LD_PRELOAD shim making fsync and fdatasync fail with EIO, as a dying disk does.
 *
 * While the file named by WCF_FSYNC_FAIL exists, every fsync/fdatasync of a file whose path
 * starts with WCF_FSYNC_MATCH (the database's directory) fails with EIO and syncs nothing; other
 * files sync normally. Compiled by tests/faults/test_fsync.py with gcc.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failing(int fd) {
    const char *trigger = getenv("WCF_FSYNC_FAIL");
    const char *match = getenv("WCF_FSYNC_MATCH");
    if (trigger == NULL || match == NULL || access(trigger, F_OK) != 0) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = '\0';
    return strncmp(path, match, strlen(match)) == 0;
}

int fsync(int fd) {
    static int (*real)(int) = NULL;
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (failing(fd)) {
        errno = EIO;
        return -1;
    }
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int) = NULL;
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (failing(fd)) {
        errno = EIO;
        return -1;
    }
    return real(fd);
}
