/*
 * tmpdir.c - the unit tests' private directories: a case that made one under /tmp removes it
 * whole when it ends.
 */
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

#include "tests/lib/tmpdir.h"

/* rm_one - one entry, children before their directory (FTW_DEPTH) */
static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* test_rmtree - dir and everything below it */
void test_rmtree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
