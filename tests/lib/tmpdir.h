/*
 * tmpdir.h - the unit tests' private directories (tmpdir.c).
 */
#ifndef SL_TEST_TMPDIR_H
#define SL_TEST_TMPDIR_H

/* Remove dir and everything below it (symlinks are removed, never followed). */
void test_rmtree(const char *dir);

#endif
