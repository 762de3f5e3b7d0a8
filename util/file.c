/*
 * file.c - sl_open_regular: a regular file, never through a link, never waited for;
 * sl_file_strerror: why such an open failed, in words.
 * Global state: none.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/sl_file.h"

/* sl_open_regular - path, if it is a regular file reached without a link at its end */
int sl_open_regular(const char *path, int flags)
{
    int fd = open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    return fd;
}

/* sl_file_strerror - errno e of an open with O_NONBLOCK as text: ENXIO there means a FIFO
 * with no reader, which strerror calls "No such device or address" */
const char *sl_file_strerror(int e)
{
    return e == ENXIO ? "a FIFO that nobody reads" : strerror(e);
}
