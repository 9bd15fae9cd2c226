/* test_keyring.c - keyring files: creation, loading, refusals, subkeys. */
#include "harness.h"

#include "base/config.h"
#include "crypto/keyring.h"
#include "base/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ---- passphrases --------------------------------------------------------- */

/* A fresh keyring at path; its first version's "aead" subkey and id key. */
static int fresh(const char *path, uint8_t sub[CV_KEY_BYTES],
                 uint8_t id[CV_KEY_BYTES])
{
    char err[256];
    if (cv_keyring_create(path, err, sizeof err) < 0)
        return -1;
    cv_keyring *kr = cv_keyring_load(path, err, sizeof err);
    if (!kr)
        return -1;
    cv_keyring_subkey(kr, 1, "aead", sub);
    memcpy(id, cv_keyring_id_key(kr), CV_KEY_BYTES);
    cv_keyring_destroy(&kr);
    return 0;
}

/* Does the keyring at path load with the same subkey and id key? */
static int same_keys(const char *path, const uint8_t sub[CV_KEY_BYTES],
                     const uint8_t id[CV_KEY_BYTES], char *err, size_t errlen)
{
    cv_keyring *kr = cv_keyring_load(path, err, errlen);
    if (!kr)
        return -1;
    uint8_t k[CV_KEY_BYTES];
    int rc = cv_keyring_subkey(kr, 1, "aead", k) == 0 &&
             memcmp(k, sub, sizeof k) == 0 &&
             memcmp(cv_keyring_id_key(kr), id, CV_KEY_BYTES) == 0 ? 0 : 1;
    cv_keyring_destroy(&kr);
    return rc;
}

TEST(keyring_passphrase_wraps_and_loads)
{
    char err[256] = "";
    char *path = kr_path("keyring");
    uint8_t sub[CV_KEY_BYTES], id[CV_KEY_BYTES];
    CHECK_INT(fresh(path, sub, id), 0);
    size_t len;
    char *plain = cv_read_file(path, 4096, &len);
    CHECK(plain);
    CHECK_INT(cv_keyring_file_protected(path, err, sizeof err), 0);
    /* the default (interactive) cost, once */
    CHECK_INT(cv_keyring_passphrase_set(path, "correct horse", err, sizeof err), 0);
    CHECK_INT(cv_keyring_file_protected(path, err, sizeof err), 1);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_INT(st.st_mode & 0777, 0600);
    char *sealed = cv_read_file(path, 8192, &len);
    CHECK(sealed);
    CHECK(strstr(sealed, "\"format\":2") != NULL);
    CHECK(strstr(sealed, "\"alg\":\"argon2id13\"") != NULL);
    /* no key's base64 is left in the file */
    for (char *k = strstr(plain, "key\":\""); k; k = strstr(k + 1, "key\":\"")) {
        char b64[45];
        memcpy(b64, k + 6, 44);
        b64[44] = '\0';
        CHECK(strstr(sealed, b64) == NULL);
    }
    /* no source: a clear refusal that says what to set */
    unsetenv("CTXVAULT_PASSPHRASE_FD");
    cv_config_set_key_command(NULL);
    errno = 0;
    CHECK(cv_keyring_load(path, err, sizeof err) == NULL);
    CHECK_INT(errno, CV_KEYRING_UNAVAILABLE);
    CHECK(strstr(err, "is protected by a passphrase; set key_command or "
                      "CTXVAULT_PASSPHRASE_FD") != NULL);
    cv_config_set_key_command("printf 'correct horse\\n'");
    CHECK_INT(same_keys(path, sub, id, err, sizeof err), 0);
    /* the same keys through a descriptor, which comes first */
    cv_config_set_key_command("exit 9");
    char *pf = kr_path("pass");
    CHECK_INT(write_text(pf, "correct horse\nnext line\n", 0600), 0);
    FILE *f = fopen(pf, "r");
    CHECK(f);
    char fdv[16];
    snprintf(fdv, sizeof fdv, "%d", fileno(f));
    setenv("CTXVAULT_PASSPHRASE_FD", fdv, 1);
    CHECK_INT(same_keys(path, sub, id, err, sizeof err), 0);
    /* a file is read from its start each time: another process (or a
     * forgotten passphrase) reads the same line */
    cv_config_set_key_command("exit 8");
    CHECK_INT(same_keys(path, sub, id, err, sizeof err), 0);
    fclose(f);
    unsetenv("CTXVAULT_PASSPHRASE_FD");
    free(plain);
    free(sealed);
    free(pf);
    free(path);
}

TEST(keyring_wrong_passphrase_and_failed_command)
{
    char err[256] = "";
    char *path = kr_path("keyring");
    uint8_t sub[CV_KEY_BYTES], id[CV_KEY_BYTES];
    CHECK_INT(fresh(path, sub, id), 0);
    cv_keyring_set_kdf_limits(crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN);
    CHECK_INT(cv_keyring_passphrase_set(path, "right", err, sizeof err), 0);
    cv_config_set_key_command("echo wrong");
    errno = 0;
    CHECK(cv_keyring_load(path, err, sizeof err) == NULL);
    CHECK_INT(errno, CV_KEYRING_REJECTED);
    char *want = cv_fmt("%s: wrong passphrase (or the file was altered)", path);
    CHECK_STR(err, want);
    free(want);
    CHECK(strstr(err, "wrong\n") == NULL);
    /* a command that fails: its status, and the key is unavailable */
    cv_config_set_key_command("echo right; exit 3");
    errno = 0;
    CHECK(cv_keyring_load(path, err, sizeof err) == NULL);
    CHECK_INT(errno, CV_KEYRING_UNAVAILABLE);
    CHECK(strstr(err, "key_command 'echo right; exit 3' failed with exit "
                      "status 3") != NULL);
    cv_config_set_key_command("true");
    CHECK(cv_keyring_load(path, err, sizeof err) == NULL);
    CHECK_INT(errno, CV_KEYRING_UNAVAILABLE);
    CHECK(strstr(err, "printed nothing") != NULL);
    /* a remembered passphrase that stops working is forgotten */
    cv_config_set_key_command("echo right");
    CHECK_INT(same_keys(path, sub, id, err, sizeof err), 0);
    CHECK_INT(cv_keyring_passphrase_change(path, "right", "other", err, sizeof err), 0);
    CHECK(cv_keyring_load(path, err, sizeof err) == NULL);
    CHECK_INT(errno, CV_KEYRING_REJECTED);
    free(path);
}

TEST(keyring_altered_sealed_file_fails)
{
    char err[256] = "";
    char *path = kr_path("keyring");
    uint8_t sub[CV_KEY_BYTES], id[CV_KEY_BYTES];
    CHECK_INT(fresh(path, sub, id), 0);
    cv_keyring_set_kdf_limits(crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN);
    CHECK_INT(cv_keyring_passphrase_set(path, "pw", err, sizeof err), 0);
    cv_config_set_key_command("echo pw");
    CHECK_INT(same_keys(path, sub, id, err, sizeof err), 0);
    size_t len;
    char *good = cv_read_file(path, 8192, &len);
    CHECK(good);
    /* one character of the sealed text, then the KDF's cost */
    char *text = cv_strdup(good);
    char *s = strstr(text, "\"sealed\":\"") + 20;
    *s = *s == 'A' ? 'B' : 'A';
    CHECK_INT(write_text(path, text, 0600), 0);
    errno = 0;
    CHECK(cv_keyring_load(path, err, sizeof err) == NULL);
    CHECK_INT(errno, CV_KEYRING_REJECTED);
    CHECK(strstr(err, "wrong passphrase (or the file was altered)") != NULL);
    free(text);
    text = cv_strdup(good);
    s = strstr(text, "\"opslimit\":") + 11;
    CHECK(*s == '1');
    *s = '2';
    CHECK_INT(write_text(path, text, 0600), 0);
    CHECK(cv_keyring_load(path, err, sizeof err) == NULL);
    CHECK_INT(errno, CV_KEYRING_REJECTED);
    free(text);
    /* a broken envelope says what is missing */
    text = cv_strdup(good);
    s = strstr(text, "\"nonce\":\"") + 9;
    *s = '!';
    CHECK_INT(write_text(path, text, 0600), 0);
    CHECK(cv_keyring_load(path, err, sizeof err) == NULL);
    CHECK(strstr(err, "\"nonce\"") != NULL);
    free(text);
    /* and the original still loads */
    CHECK_INT(write_text(path, good, 0600), 0);
    CHECK_INT(same_keys(path, sub, id, err, sizeof err), 0);
    free(good);
    free(path);
}

TEST(keyring_rotate_keeps_the_seal)
{
    char err[256] = "";
    char *path = kr_path("keyring");
    uint8_t sub[CV_KEY_BYTES], id[CV_KEY_BYTES];
    CHECK_INT(fresh(path, sub, id), 0);
    cv_keyring_set_kdf_limits(crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN);
    CHECK_INT(cv_keyring_passphrase_set(path, "pw", err, sizeof err), 0);
    uint32_t v = 0;
    cv_config_set_key_command(NULL);
    CHECK_INT(cv_keyring_rotate(path, &v, err, sizeof err), -1);
    CHECK_INT(errno, CV_KEYRING_UNAVAILABLE);
    cv_config_set_key_command("echo pw");
    CHECK_INT(cv_keyring_rotate(path, &v, err, sizeof err), 0);
    CHECK_INT(v, 2);
    CHECK_INT(cv_keyring_file_protected(path, err, sizeof err), 1);
    CHECK_INT(cv_keyring_rotate(path, &v, err, sizeof err), 0);
    CHECK_INT(v, 3);
    cv_keyring *kr = cv_keyring_load(path, err, sizeof err);
    if (!kr)
        cvt_fail(__FILE__, __LINE__, "load: %s", err);
    CHECK(kr);
    CHECK_INT(cv_keyring_primary(kr), 3);
    uint32_t vs[4];
    CHECK_INT(cv_keyring_versions(kr, vs, 4), 3);
    cv_keyring_destroy(&kr);
    CHECK_INT(same_keys(path, sub, id, err, sizeof err), 0);
    /* the rotated keyring comes out plain again, all versions there */
    CHECK_INT(cv_keyring_passphrase_remove(path, "pw", err, sizeof err), 0);
    CHECK_INT(cv_keyring_file_protected(path, err, sizeof err), 0);
    cv_config_set_key_command(NULL);
    kr = cv_keyring_load(path, err, sizeof err);
    CHECK(kr);
    CHECK_INT(cv_keyring_primary(kr), 3);
    cv_keyring_destroy(&kr);
    free(path);
}

TEST(keyring_passphrase_change_and_remove)
{
    char err[256] = "";
    char *path = kr_path("keyring");
    uint8_t sub[CV_KEY_BYTES], id[CV_KEY_BYTES];
    CHECK_INT(fresh(path, sub, id), 0);
    cv_keyring_set_kdf_limits(crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN);
    /* change and remove need a sealed file; set a plain one */
    CHECK_INT(cv_keyring_passphrase_change(path, "a", "b", err, sizeof err), -1);
    CHECK(strstr(err, "is not protected by a passphrase") != NULL);
    CHECK_INT(cv_keyring_passphrase_remove(path, "a", err, sizeof err), -1);
    CHECK_INT(cv_keyring_passphrase_set(path, "", err, sizeof err), -1);
    CHECK_INT(cv_keyring_passphrase_set(path, "one", err, sizeof err), 0);
    CHECK_INT(cv_keyring_passphrase_set(path, "two", err, sizeof err), -1);
    CHECK_INT(errno, EALREADY);
    CHECK(strstr(err, "already protected") != NULL);
    size_t len1, len2;
    char *before = cv_read_file(path, 8192, &len1);
    CHECK_INT(cv_keyring_passphrase_change(path, "wrong", "two", err, sizeof err), -1);
    CHECK_INT(errno, CV_KEYRING_REJECTED);
    char *after = cv_read_file(path, 8192, &len2);
    CHECK(before && after && len1 == len2 && memcmp(before, after, len1) == 0);
    CHECK_INT(cv_keyring_passphrase_change(path, "one", "two", err, sizeof err), 0);
    cv_config_set_key_command("echo one");
    CHECK(cv_keyring_load(path, err, sizeof err) == NULL);
    cv_config_set_key_command("echo two");
    CHECK_INT(same_keys(path, sub, id, err, sizeof err), 0);
    CHECK_INT(cv_keyring_passphrase_remove(path, "one", err, sizeof err), -1);
    CHECK_INT(cv_keyring_passphrase_remove(path, "two", err, sizeof err), 0);
    cv_config_set_key_command(NULL);
    CHECK_INT(same_keys(path, sub, id, err, sizeof err), 0);
    free(before);
    free(after);
    free(path);
}

TEST(keyring_passphrase_read_lines)
{
    char err[256] = "";
    int p[2];
    CHECK(pipe(p) == 0);
    const char *in = "old one\r\nnew one\n\n";
    CHECK(write(p[1], in, strlen(in)) == (ssize_t)strlen(in));
    close(p[1]);
    char *a = cv_keyring_passphrase_read(p[0], "x: ", err, sizeof err);
    char *b = cv_keyring_passphrase_read(p[0], "x: ", err, sizeof err);
    CHECK_STR(a, "old one");
    CHECK_STR(b, "new one");
    CHECK(cv_keyring_passphrase_read(p[0], NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "empty") != NULL);
    CHECK(cv_keyring_passphrase_read(p[0], NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "end of input") != NULL);
    cv_keyring_passphrase_free(&a);
    cv_keyring_passphrase_free(&b);
    CHECK(a == NULL);
    close(p[0]);
}
