/*
 * support.c - the helpers the fuzz targets share (see support.h): a private
 * temporary directory removed at exit, whole-file writes, NUL-terminated
 * copies of the input, and the abort of a broken promise.
 *
 * Concurrency: one thread; the directory is made once per process.
 * Trust boundary: none of its own; it only moves the input around.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>

#include "support.h"

static char tmpdir[4096];

/* remove_one - nftw's callback: one entry of the private directory, depth first */
static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* remove_tmpdir - at exit: the private directory and all it holds */
static void remove_tmpdir(void)
{
    if (tmpdir[0] != '\0')
        nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* fuzz_tmpdir - the private directory, made at the first call */
const char *fuzz_tmpdir(void)
{
    const char *base = getenv("TMPDIR");

    if (tmpdir[0] != '\0')
        return tmpdir;
    snprintf(tmpdir, sizeof tmpdir, "%s/sluice-fuzz.XXXXXX", base != NULL && *base ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    atexit(remove_tmpdir);
    return tmpdir;
}

/* fuzz_write_file - the whole buffer as the file's new content */
void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0) {
        perror(path);
        abort();
    }
    while (size > 0) {
        ssize_t n = write(fd, data, size);
        if (n <= 0) {
            perror(path);
            abort();
        }
        data += n;
        size -= (size_t)n;
    }
    close(fd);
}

/* fuzz_cstr - the input with a NUL after it */
char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s == NULL)
        abort();
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* fuzz_broken - a promise of the code under test does not hold: say which, and crash */
void fuzz_broken(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: broken: %s\n", file, line, what);
    abort();
}
