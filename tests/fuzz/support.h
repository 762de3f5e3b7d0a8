/*
 * support.h - what every fuzz target of tests/fuzz defines, and the few
 * helpers they share (support.c).
 *
 * A target is one file, tests/fuzz/fuzz_NAME.c, defining LLVMFuzzerTestOneInput
 * (and LLVMFuzzerInitialize when it needs a set-up).  It is linked twice: with
 * libFuzzer by `make fuzz` (clang, build/fuzz/f/fuzz_NAME), and with replay.c's
 * main by the normal build ($(BUILD)/t/replay_NAME), which runs the files it
 * is given once each, so `make check` replays the regression inputs without clang.
 * A target aborts (a crash to libFuzzer, a failed replay) when a parser breaks
 * one of its own promises, not only on memory errors.
 * Concurrency: a target runs one input at a time, in one thread.
 * Trust boundary: the input is arbitrary bytes standing for outside input.
 */
#ifndef FUZZ_SUPPORT_H
#define FUZZ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/* The entry points libFuzzer calls (and replay.c's main). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A private directory made at the first call (under $TMPDIR, else /tmp) and removed with
 * everything in it when the process exits normally. */
const char *fuzz_tmpdir(void);
/* Write size bytes to path, replacing the file; aborts on failure (the harness's own). */
void fuzz_write_file(const char *path, const uint8_t *data, size_t size);
/* A NUL-terminated copy of the input (caller frees); NUL bytes inside stay in place. */
char *fuzz_cstr(const uint8_t *data, size_t size);
/* Abort with a line on stderr when a promise of the code under test is broken. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_broken(__FILE__, __LINE__, #cond);                                                \
    } while (0)
_Noreturn void fuzz_broken(const char *file, int line, const char *what);

#endif
