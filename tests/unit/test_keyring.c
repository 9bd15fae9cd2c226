/* test_keyring.c - keyring files: creation, loading, refusals, subkeys. */
#include "harness.h"

#include "keyring.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *kr_path(const char *name)
{
    return cv_fmt("%s/%s", cvt_tmpdir(), name);
}

/* Base64 of a 32-byte key made of one repeated character: 42 of c, then
 * 'A' so the two unused bits are zero, then the padding. */
static const char *key_b64(char c)
{
    static char buf[8][48];
    static int i;
    char *b = buf[i++ % 8];
    memset(b, c, 42);
    b[42] = 'A';
    b[43] = '=';
    b[44] = '\0';
    return b;
}

static int write_text(const char *path, const char *text, int mode)
{
    return cv_write_file_atomic(path, text, strlen(text), mode, false);
}

TEST(keyring_create_load_roundtrip)
{
    char err[256] = "";
    char *path = kr_path("keyring");
    CHECK_INT(cv_keyring_create(path, err, sizeof err), 0);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_INT(st.st_mode & 0777, 0600);

    cv_keyring *a = cv_keyring_load(path, err, sizeof err);
    cv_keyring *b = cv_keyring_load(path, err, sizeof err);
    CHECK(a && b);
    CHECK_INT(cv_keyring_primary(a), 1);
    uint32_t v[4];
    CHECK_INT(cv_keyring_versions(a, v, 4), 1);
    CHECK_INT(v[0], 1);

    /* the same file gives the same keys; purposes give different keys */
    uint8_t k1[CV_KEY_BYTES], k2[CV_KEY_BYTES], k3[CV_KEY_BYTES];
    CHECK_INT(cv_keyring_subkey(a, 1, "aead", k1), 0);
    CHECK_INT(cv_keyring_subkey(b, 1, "aead", k2), 0);
    CHECK_INT(cv_keyring_subkey(a, 1, "hash:email", k3), 0);
    CHECK(memcmp(k1, k2, sizeof k1) == 0);
    CHECK(memcmp(k1, k3, sizeof k1) != 0);
    CHECK(memcmp(cv_keyring_id_key(a), cv_keyring_id_key(b), CV_KEY_BYTES) == 0);
    CHECK_INT(cv_keyring_subkey(a, 2, "aead", k1), -1);

    /* a second keyring has other keys */
    char *path2 = kr_path("keyring2");
    CHECK_INT(cv_keyring_create(path2, err, sizeof err), 0);
    cv_keyring *c = cv_keyring_load(path2, err, sizeof err);
    CHECK(c);
    CHECK_INT(cv_keyring_subkey(c, 1, "aead", k3), 0);
    CHECK(memcmp(k1, k3, sizeof k1) != 0);
    CHECK(memcmp(cv_keyring_id_key(a), cv_keyring_id_key(c), CV_KEY_BYTES) != 0);
    cv_keyring_destroy(&a);
    cv_keyring_destroy(&b);
    cv_keyring_destroy(&c);
    CHECK(a == NULL);
    free(path);
    free(path2);
}

TEST(keyring_refuses_overwrite)
{
    char err[256] = "";
    char *path = kr_path("keyring");
    CHECK_INT(cv_keyring_create(path, err, sizeof err), 0);
    size_t len1, len2;
    char *before = cv_read_file(path, 4096, &len1);
    errno = 0;
    CHECK_INT(cv_keyring_create(path, err, sizeof err), -1);
    CHECK_INT(errno, EEXIST);
    CHECK(strstr(err, "refusing to overwrite") != NULL);
    char *after = cv_read_file(path, 4096, &len2);
    CHECK(before && after && len1 == len2 && memcmp(before, after, len1) == 0);
    free(before);
    free(after);
    free(path);
}

TEST(keyring_refuses_wide_mode)
{
    char err[256] = "";
    char *path = kr_path("keyring");
    CHECK_INT(cv_keyring_create(path, err, sizeof err), 0);
    CHECK(chmod(path, 0644) == 0);
    CHECK(cv_keyring_load(path, err, sizeof err) == NULL);
    CHECK(strstr(err, "0644") != NULL);
    CHECK(strstr(err, "0600") != NULL);
    CHECK(chmod(path, 0640) == 0);
    CHECK(cv_keyring_load(path, err, sizeof err) == NULL);
    CHECK(chmod(path, 0400) == 0); /* narrower is fine */
    cv_keyring *kr = cv_keyring_load(path, err, sizeof err);
    CHECK(kr != NULL);
    cv_keyring_destroy(&kr);
    free(path);
}

TEST(keyring_rejects_bad_files)
{
    char err[256] = "";
    char *path = kr_path("kr");
    CHECK(cv_keyring_load(path, err, sizeof err) == NULL);
    CHECK(strstr(err, "does not exist") != NULL);

    static const char *const bad[] = {
        "not json",
        "{\"format\":2,\"primary\":1,\"id_key\":\"%s\",\"keys\":[{\"version\":1,"
        "\"status\":\"active\",\"key\":\"%s\"}]}",
        /* primary names a version that is not there */
        "{\"format\":1,\"primary\":2,\"id_key\":\"%s\",\"keys\":[{\"version\":1,"
        "\"status\":\"active\",\"key\":\"%s\"}]}",
        /* a short key */
        "{\"format\":1,\"primary\":1,\"id_key\":\"%s\",\"keys\":[{\"version\":1,"
        "\"status\":\"active\",\"key\":\"%.20s\"}]}",
        /* no keys */
        "{\"format\":1,\"primary\":1,\"id_key\":\"%s\",\"keys\":[]%.0s}",
        /* duplicate member */
        "{\"format\":1,\"format\":1,\"primary\":1,\"id_key\":\"%s\",\"keys\":"
        "[{\"version\":1,\"status\":\"active\",\"key\":\"%s\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *text = cv_fmt(bad[i], key_b64('B'), key_b64('C'));
        CHECK_INT(write_text(path, text, 0600), 0);
        free(text);
        err[0] = '\0';
        cv_keyring *kr = cv_keyring_load(path, err, sizeof err);
        if (kr)
            cvt_fail(__FILE__, __LINE__, "bad keyring %zu was loaded", i);
        CHECK(err[0] != '\0');
    }
    free(path);
}

TEST(keyring_versions_and_cache)
{
    char err[256] = "";
    char *path = kr_path("kr");
    char *text = cv_fmt(
        "{\"format\":1,\"primary\":3,\"id_key\":\"%s\",\"keys\":["
        "{\"version\":3,\"created\":\"2026-01-01T00:00:00.000Z\","
        "\"status\":\"active\",\"key\":\"%s\"},"
        "{\"version\":1,\"created\":\"2025-01-01T00:00:00.000Z\","
        "\"status\":\"retired\",\"key\":\"%s\"}]}",
        key_b64('A'), key_b64('B'), key_b64('C'));
    CHECK_INT(write_text(path, text, 0600), 0);
    free(text);
    cv_keyring *kr = cv_keyring_load(path, err, sizeof err);
    if (!kr)
        cvt_fail(__FILE__, __LINE__, "load: %s", err);
    CHECK_INT(cv_keyring_primary(kr), 3);
    uint32_t v[4];
    CHECK_INT(cv_keyring_versions(kr, v, 4), 2);
    CHECK_INT(v[0], 1);
    CHECK_INT(v[1], 3);
    CHECK_INT(cv_keyring_versions(kr, v, 1), 1);

    /* more purposes than cache slots: evictions must not change results */
    uint8_t first[80][CV_KEY_BYTES], k[CV_KEY_BYTES];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 80; i++) {
            char purpose[32];
            snprintf(purpose, sizeof purpose, "p%d", i);
            CHECK_INT(cv_keyring_subkey(kr, i % 2 ? 1 : 3, purpose, k), 0);
            if (round == 0)
                memcpy(first[i], k, sizeof k);
            else
                CHECK(memcmp(first[i], k, sizeof k) == 0);
        }
    }
    /* version separates keys; a long purpose (not cached) still derives */
    uint8_t a[CV_KEY_BYTES], b[CV_KEY_BYTES];
    CHECK_INT(cv_keyring_subkey(kr, 1, "aead", a), 0);
    CHECK_INT(cv_keyring_subkey(kr, 3, "aead", b), 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
    char longp[200];
    memset(longp, 'x', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    CHECK_INT(cv_keyring_subkey(kr, 3, longp, a), 0);
    CHECK_INT(cv_keyring_subkey(kr, 3, longp, b), 0);
    CHECK(memcmp(a, b, sizeof a) == 0);
    cv_keyring_destroy(&kr);
    free(path);
}
