/*
 * fail_read.h - a disk that fails reads, on demand, for the unit tests (fail_read.c).
 */
#ifndef SL_TEST_FAIL_READ_H
#define SL_TEST_FAIL_READ_H

/* From now on, read(2) and pread(2) of a regular file whose path holds `part` ("" for every
 * regular file) fail with EIO; NULL: they work again. */
void test_fail_reads(const char *part);

#endif
