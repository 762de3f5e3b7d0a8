/*
 * fail_read.c - a disk that fails reads, on demand, for the unit tests.
 *
 * A failing disk (a bad sector, a lost network disk: EIO) cannot be had here, and the spool
 * must tell it from a damaged file.  The unit test programs are linked with ld --wrap=read
 * and --wrap=pread64 (pread's symbol under _FILE_OFFSET_BITS=64), so that every read of the
 * code under test comes through the wrappers below: they fail the reads the test named with
 * test_fail_reads, and pass on every other.  Off, they cost a test one branch per read.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "tests/lib/fail_read.h"

static const char *fail_part; /* NULL: off; else the path part of the files whose reads fail */

ssize_t __real_read(int fd, void *buf, size_t n);
ssize_t __real_pread64(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_read(int fd, void *buf, size_t n);
ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t off);

/* test_fail_reads - reads of the regular files whose path holds part fail from now on */
void test_fail_reads(const char *part)
{
    fail_part = part;
}

/* failing - does the fault apply to fd: a regular file, its path holding fail_part */
static bool failing(int fd)
{
    char link[64], path[4096];
    struct stat st;
    ssize_t n;

    if (fail_part == NULL || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    if (fail_part[0] == '\0')
        return true;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    if ((n = readlink(link, path, sizeof path - 1)) < 0)
        return false;
    path[n] = '\0';
    return strstr(path, fail_part) != NULL;
}

ssize_t __wrap_read(int fd, void *buf, size_t n)
{
    if (failing(fd)) {
        errno = EIO;
        return -1;
    }
    return __real_read(fd, buf, n);
}

ssize_t __wrap_pread64(int fd, void *buf, size_t n, off_t off)
{
    if (failing(fd)) {
        errno = EIO;
        return -1;
    }
    return __real_pread64(fd, buf, n, off);
}
