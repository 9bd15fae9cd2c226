/* fuzzutil.h - what the fuzz targets share: a scratch directory and a
 * keyring made once per process, and the damage a target does to a file
 * its input describes (truncation, flipped bytes).
 *
 * Each target defines LLVMFuzzerTestOneInput. Built with clang's
 * -fsanitize=fuzzer it is a fuzzer (make fuzz); linked with replay.c it
 * is a program that runs its corpus once (make check), so every crash the
 * fuzzer found stays a regression test in both builds. */
#ifndef CV_FUZZUTIL_H
#define CV_FUZZUTIL_H

#include "crypto/keyring.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A private directory for this process's files (made on first call). */
const char *fuzz_dir(void);
/* A keyring in fuzz_dir(), made and loaded on first call. */
const cv_keyring *fuzz_keyring(void);
/* data as a NUL-terminated malloc'ed string. */
char *fuzz_text(const uint8_t *data, size_t size);

/* The damage an input asks for, read from its front:
 *   u8 n (taken mod 9), then n times (u32 offset, u8 xor), then a u32
 *   length to truncate to (0xffffffff: none).
 * Offsets and the length are taken mod the file's size. Returns the
 * bytes left after the spec (the rest of the input). */
typedef struct {
    int n;
    uint32_t off[8];
    uint8_t xr[8];
    uint32_t cut;
} fuzz_damage;
size_t fuzz_damage_read(const uint8_t *data, size_t size, fuzz_damage *d);
/* Apply d to the file at path. */
void fuzz_damage_file(const char *path, const fuzz_damage *d);
/* Each file in dir (not starting with "."): damaged by d, or removed when
 * d is NULL. */
void fuzz_each_file(const char *dir, const fuzz_damage *d);
/* Write n bytes to path (0600), replacing it. */
void fuzz_write_file(const char *path, const void *p, size_t n);

#endif
