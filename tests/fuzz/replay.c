/*
 * replay.c - a main() for a fuzz target without libFuzzer: each file named on
 * the command line (or each file in a directory so named, in name order) is
 * read whole and given once to LLVMFuzzerTestOneInput, as `fuzz_NAME FILE...`
 * would.  Linked by the normal build as $(BUILD)/t/replay_NAME, it lets
 * `make check` (tests/e2e/fuzz_regress.sh) replay the regression inputs and
 * the seed corpus with gcc and no libFuzzer; under SAN=1 with the sanitizers.
 * Prints one line per input; exits 1 when an input cannot be read, and a
 * target that breaks a promise aborts.
 * Concurrency: one input at a time.  Trust boundary: the files are test data.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support.h"

/* LLVMFuzzerInitialize is optional: a target without a set-up leaves this NULL. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

/* slurp - the whole file, or NULL with errno */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t cap = 0, n;

    *len = 0;
    if (f == NULL)
        return NULL;
    do {
        if (*len == cap) {
            cap = cap ? cap * 2 : 65536;
            if ((buf = realloc(buf, cap)) == NULL)
                abort();
        }
        n = fread(buf + *len, 1, cap - *len, f);
        *len += n;
    } while (n > 0);
    if (ferror(f)) {
        int err = errno;
        fclose(f);
        free(buf);
        errno = err;
        return NULL;
    }
    fclose(f);
    return buf != NULL ? buf : malloc(1);
}

/* run_file - one input, once */
static int run_file(const char *path)
{
    size_t len;
    uint8_t *data = slurp(path, &len);

    if (data == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    printf("replayed %s (%zu bytes)\n", path, len);
    fflush(stdout);
    return 0;
}

/* visible - scandir's filter: no dot files */
static int visible(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* run_dir - every file of a directory, in name order */
static int run_dir(const char *dir)
{
    struct dirent **list;
    int n = scandir(dir, &list, visible, alphasort), rc = 0;

    if (n < 0) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
        if (run_file(path) < 0)
            rc = -1;
        free(list[i]);
    }
    free(list);
    return rc;
}

/* main - the target's set-up, then every input named, once each */
int main(int argc, char **argv)
{
    int rc = 0;

    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            rc |= run_dir(argv[i]) < 0;
        else
            rc |= run_file(argv[i]) < 0;
    }
    return rc;
}
