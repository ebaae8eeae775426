/* Shared by the libFuzzer targets (tests/fuzz/fuzz_*.c, built by `make fuzz`): the
 * loaders under test take file names, so each input is written to a file of this
 * process first. */
#ifndef TESTS_FUZZ_UTIL_H
#define TESTS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A private folder for this process ("/tmp/deep3d_fuzz_XXXXXX", made once, removed at
 * exit) and the path of a file in it. */
const char *fuzz_dir(void);

/* Writes data to the file `name` in fuzz_dir() and returns its path (a static buffer). */
const char *fuzz_write(const char *name, const uint8_t *data, size_t size);

#endif
