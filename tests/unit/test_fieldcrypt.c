/* test_fieldcrypt.c - envelopes, pseudonyms and row checksums. */
#include "fixtures.h"
#include "harness.h"

#include "crypto/fieldcrypt.h"
#include "base/util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seal and open under each algorithm the CPU has. */
TEST(fieldcrypt_roundtrip_both_algorithms)
{
    CHECK_INT(cv_fieldcrypt_init(), 0);
    cv_keyring *kr = cvt_keyring("kr");
    const char *algs[] = {"xchacha20poly1305", "aes256gcm"};
    for (int i = 0; i < 2; i++) {
        if (cv_fieldcrypt_force_algorithm(algs[i]) < 0) {
            CHECK(i == 1 && !crypto_aead_aes256gcm_is_available());
            continue;
        }
        CHECK_STR(cv_fieldcrypt_algorithm(), algs[i]);
        char err[256];
        const char *plain = "\"what is my bank balance\"";
        char *env = cv_fieldcrypt_seal(kr, plain, strlen(plain), "ev-1", "query", err,
                            sizeof err);
        CHECK(env != NULL);
        char *prefix = cv_fmt("enc:v1:%s:", algs[i]);
        CHECK(strncmp(env, prefix, strlen(prefix)) == 0);
        free(prefix);
        CHECK(cv_fieldcrypt_is_envelope(env));
        CHECK(strstr(env, "bank") == NULL);
        /* two seals of one value differ (random nonce) */
        char *env2 = cv_fieldcrypt_seal(kr, plain, strlen(plain), "ev-1", "query", err,
                             sizeof err);
        CHECK(env2 && strcmp(env, env2) != 0);

        /* unsealing does not depend on the algorithm now chosen */
        CHECK_INT(cv_fieldcrypt_force_algorithm(algs[1 - i]) == 0 ||
                      !crypto_aead_aes256gcm_is_available(), 1);
        char *out = NULL;
        size_t len = 0;
        CHECK_INT(cv_fieldcrypt_unseal(kr, env, "ev-1", "query", &out, &len, err,
                            sizeof err), 0);
        CHECK_INT(len, strlen(plain));
        CHECK_STR(out, plain);
        free(out);
        free(env);
        free(env2);
        cv_fieldcrypt_force_algorithm(NULL);
    }
    CHECK_INT(cv_fieldcrypt_force_algorithm("rot13"), -1);
    cv_keyring_destroy(&kr);
}

TEST(fieldcrypt_sizes)
{
    cv_keyring *kr = cvt_keyring("kr");
    char err[256], *out;
    size_t len;
    /* empty, stack-sized and heap-sized plaintexts; a long id and path
     * (associated data past the stack buffer) */
    size_t sizes[] = {0, 1, 4096, 4097, 100000};
    char *big = cv_malloc(100000);
    for (size_t i = 0; i < 100000; i++)
        big[i] = (char)('a' + i % 26);
    char longid[700], longpath[700];
    memset(longid, 'i', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    memset(longpath, 'p', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        char *env = cv_fieldcrypt_seal(kr, big, sizes[i], longid, longpath, err,
                            sizeof err);
        CHECK(env && cv_fieldcrypt_is_envelope(env));
        CHECK_INT(cv_fieldcrypt_unseal(kr, env, longid, longpath, &out, &len, err,
                            sizeof err), 0);
        CHECK_INT(len, sizes[i]);
        CHECK(memcmp(out, big, len) == 0 && out[len] == '\0');
        free(out);
        longpath[10] = 'q'; /* one byte of the AD changed */
        CHECK_INT(cv_fieldcrypt_unseal(kr, env, longid, longpath, &out, &len, err,
                            sizeof err), -1);
        longpath[10] = 'p';
        free(env);
    }
    free(big);
    cv_keyring_destroy(&kr);
}

TEST(fieldcrypt_binds_event_and_path)
{
    cv_keyring *kr = cvt_keyring("kr");
    char err[256], *out = NULL;
    size_t len;
    char *env = cv_fieldcrypt_seal(kr, "42", 2, "ev-1", "device.name", err, sizeof err);
    CHECK(env);
    CHECK_INT(cv_fieldcrypt_unseal(kr, env, "ev-2", "device.name", &out, &len, err,
                        sizeof err), -1);
    CHECK(out == NULL);
    CHECK(strstr(err, "cannot decrypt") != NULL);
    CHECK_INT(cv_fieldcrypt_unseal(kr, env, "ev-1", "device.model", &out, &len, err,
                        sizeof err), -1);
    /* the NUL separator keeps ("ev-1d", "evice.name") apart */
    CHECK_INT(cv_fieldcrypt_unseal(kr, env, "ev-1d", "evice.name", &out, &len, err,
                        sizeof err), -1);
    CHECK_INT(cv_fieldcrypt_unseal(kr, env, "ev-1", "device.name", &out, &len, err,
                        sizeof err), 0);
    CHECK_STR(out, "42");
    free(out);
    free(env);
    cv_keyring_destroy(&kr);
}

TEST(fieldcrypt_detects_tampering)
{
    cv_keyring *kr = cvt_keyring("kr");
    char err[256], *out = NULL;
    size_t len;
    const char *plain = "\"a secret note\"";
    char *env = cv_fieldcrypt_seal(kr, plain, strlen(plain), "e", "notes", err,
                        sizeof err);
    CHECK(env);
    size_t n = strlen(env);
    /* change every character of the nonce, ciphertext and tag in turn */
    const char *parts = strchr(env + 6, ':') + 1; /* after the version */
    parts = strchr(parts, ':') + 1;                /* after the algorithm */
    for (size_t i = (size_t)(parts - env); i < n; i++) {
        if (env[i] == ':')
            continue;
        char saved = env[i];
        env[i] = saved == 'A' ? 'B' : 'A';
        int rc = cv_fieldcrypt_unseal(kr, env, "e", "notes", &out, &len, err,
                           sizeof err);
        env[i] = saved;
        if (rc == 0) {
            /* the last base64 char of a part may only carry unused bits */
            free(out);
            CHECK(i + 1 == n || env[i + 1] == ':');
            continue;
        }
    }
    /* truncations and garbage */
    char *cut = cv_strdup(env);
    cut[n - 1] = '\0';
    CHECK_INT(cv_fieldcrypt_unseal(kr, cut, "e", "notes", &out, &len, err, sizeof err), -1);
    CHECK(!cv_fieldcrypt_is_envelope(cut));
    free(cut);
    CHECK_INT(cv_fieldcrypt_unseal(kr, "enc:v1:aes256gcm:xx", "e", "notes", &out, &len,
                        err, sizeof err), -1);
    CHECK(strstr(err, "well-formed") != NULL);
    CHECK_INT(cv_fieldcrypt_unseal(kr, env, "e", "notes", &out, &len, err, sizeof err), 0);
    free(out);
    free(env);
    cv_keyring_destroy(&kr);
}

TEST(fieldcrypt_unknown_or_wrong_key)
{
    cv_keyring *a = cvt_keyring("a"), *b = cvt_keyring("b");
    char err[256], *out = NULL;
    size_t len;
    char *env = cv_fieldcrypt_seal(a, "1", 1, "e", "p", err, sizeof err);
    CHECK(env && strncmp(env, "enc:v1:", 7) == 0);
    /* another keyring's version 1 is another key */
    CHECK_INT(cv_fieldcrypt_unseal(b, env, "e", "p", &out, &len, err, sizeof err), -1);
    /* a version the keyring does not have */
    char *v7 = cv_fmt("enc:v7:%s", env + 7);
    CHECK(cv_fieldcrypt_is_envelope(v7));
    CHECK_INT(cv_fieldcrypt_unseal(a, v7, "e", "p", &out, &len, err, sizeof err), -1);
    CHECK(strstr(err, "version 7") != NULL);
    free(v7);
    free(env);
    cv_keyring_destroy(&a);
    cv_keyring_destroy(&b);
}

TEST(fieldcrypt_envelope_recognition)
{
    CHECK(!cv_fieldcrypt_is_envelope("enc:v1 my query"));
    CHECK(!cv_fieldcrypt_is_envelope("enc:v"));
    CHECK(!cv_fieldcrypt_is_envelope("enc:v01:xchacha20poly1305:a:b:c"));
    CHECK(!cv_fieldcrypt_is_envelope("enc:v1:rot13:AAAAAAAAAAAAAAAA:AA:AAAAAAAAAAAAAAAAAAAAAA"));
    CHECK(cv_fieldcrypt_is_envelope(
        "enc:v1:aes256gcm:AAAAAAAAAAAAAAAA::AAAAAAAAAAAAAAAAAAAAAA"));
    CHECK(!cv_fieldcrypt_is_envelope(
        "enc:v1:aes256gcm:AAAAAAAAAAAAAAAA:a b:AAAAAAAAAAAAAAAAAAAAAA"));
    CHECK(!cv_fieldcrypt_is_pseudonym("hash:v1:short"));
    CHECK(!cv_fieldcrypt_is_pseudonym("hash:vx:AAAAAAAAAAAAAAAAAAAAAA"));
    CHECK(cv_fieldcrypt_is_pseudonym("hash:v12:AAAAAAAAAAAAAAAAAAAAAA"));
    CHECK(!cv_fieldcrypt_is_pseudonym("hash:v12:AAAAAAAAAAAAAAAAAAAAAA:"));
}

TEST(fieldcrypt_pseudonyms)
{
    cv_keyring *a = cvt_keyring("a"), *b = cvt_keyring("b");
    const char *email = "alice@example.com";
    char p1[CV_PSEUDONYM_MAX], p2[CV_PSEUDONYM_MAX], p3[CV_PSEUDONYM_MAX],
        p4[CV_PSEUDONYM_MAX];
    CHECK_INT(cv_fieldcrypt_pseudonym(a, 1, "email", email, strlen(email), p1), 0);
    CHECK_INT(cv_fieldcrypt_pseudonym(a, 1, "email", email, strlen(email), p2), 0);
    CHECK_STR(p1, p2);
    CHECK(cv_fieldcrypt_is_pseudonym(p1));
    CHECK(strncmp(p1, "hash:v1:", 8) == 0);
    CHECK_INT(strlen(p1), 8 + 22);
    /* no trace of the input: not even its first characters */
    CHECK(strstr(p1, "ali") == NULL);
    CHECK_INT(cv_fieldcrypt_pseudonym(a, 1, "user", email, strlen(email), p3), 0);
    CHECK(strcmp(p1, p3) != 0);
    CHECK_INT(cv_fieldcrypt_pseudonym(b, 1, "email", email, strlen(email), p4), 0);
    CHECK(strcmp(p1, p4) != 0);
    CHECK_INT(cv_fieldcrypt_pseudonym(a, 1, "email", "alice@example.con", 17, p4), 0);
    CHECK(strcmp(p1, p4) != 0);
    /* it is keyed: not the bare BLAKE2b of the input */
    uint8_t d[16];
    char bare[64];
    crypto_generichash(d, sizeof d, (const uint8_t *)email, strlen(email),
                       NULL, 0);
    sodium_bin2base64(bare, sizeof bare, d, sizeof d,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK(strstr(p1, bare) == NULL);
    CHECK_INT(cv_fieldcrypt_pseudonym(a, 9, "email", email, strlen(email), p4), -1);
    cv_keyring_destroy(&a);
    cv_keyring_destroy(&b);
}

TEST(fieldcrypt_checksum)
{
    cv_keyring *kr = cvt_keyring("kr");
    uint8_t sum[CV_CHECKSUM_BYTES], other[CV_CHECKSUM_BYTES];
    const char *body = "{\"q\":\"enc:v1:...\"}";
    size_t bl = strlen(body);
    CHECK_INT(cv_fieldcrypt_row_checksum(kr, 1, "id1", "u1", "trace", 1000, body, bl,
                              sum), 0);
    CHECK_INT(sum[0], 1);
    CHECK_INT(cv_fieldcrypt_row_checksum_check(kr, sum, sizeof sum, "id1", "u1", "trace",
                                    1000, body, bl), 1);
    /* any change of any field is detected */
    CHECK_INT(cv_fieldcrypt_row_checksum_check(kr, sum, sizeof sum, "id2", "u1", "trace",
                                    1000, body, bl), 0);
    CHECK_INT(cv_fieldcrypt_row_checksum_check(kr, sum, sizeof sum, "id1", "u2", "trace",
                                    1000, body, bl), 0);
    CHECK_INT(cv_fieldcrypt_row_checksum_check(kr, sum, sizeof sum, "id1", NULL, "trace",
                                    1000, body, bl), 0);
    CHECK_INT(cv_fieldcrypt_row_checksum_check(kr, sum, sizeof sum, "id1", "u1", "audit",
                                    1000, body, bl), 0);
    CHECK_INT(cv_fieldcrypt_row_checksum_check(kr, sum, sizeof sum, "id1", "u1", "trace",
                                    1001, body, bl), 0);
    CHECK_INT(cv_fieldcrypt_row_checksum_check(kr, sum, sizeof sum, "id1", "u1", "trace",
                                    1000, body, bl - 1), 0);
    char *copy = cv_strdup(body);
    for (size_t i = 0; i < bl; i++) {
        copy[i] ^= 1;
        CHECK_INT(cv_fieldcrypt_row_checksum_check(kr, sum, sizeof sum, "id1", "u1",
                                        "trace", 1000, copy, bl), 0);
        copy[i] ^= 1;
    }
    free(copy);
    /* a tampered sum, a wrong length, an unknown version */
    memcpy(other, sum, sizeof sum);
    other[5] ^= 0x80;
    CHECK_INT(cv_fieldcrypt_row_checksum_check(kr, other, sizeof other, "id1", "u1",
                                    "trace", 1000, body, bl), 0);
    CHECK_INT(cv_fieldcrypt_row_checksum_check(kr, sum, sizeof sum - 1, "id1", "u1",
                                    "trace", 1000, body, bl), 0);
    other[0] = 9;
    CHECK_INT(cv_fieldcrypt_row_checksum_check(kr, other, sizeof other, "id1", "u1",
                                    "trace", 1000, body, bl), -1);
    /* bytes cannot move between fields */
    CHECK_INT(cv_fieldcrypt_row_checksum(kr, 1, "ab", "c", "k", 0, "", 0, sum), 0);
    CHECK_INT(cv_fieldcrypt_row_checksum(kr, 1, "a", "bc", "k", 0, "", 0, other), 0);
    CHECK(memcmp(sum, other, sizeof sum) != 0);
    CHECK_INT(cv_fieldcrypt_row_checksum(kr, 1, "a", "", "k", 0, "", 0, sum), 0);
    CHECK_INT(cv_fieldcrypt_row_checksum(kr, 1, "a", NULL, "k", 0, "", 0, other), 0);
    CHECK(memcmp(sum, other, sizeof sum) != 0);
    CHECK_INT(cv_fieldcrypt_row_checksum(kr, 256, "a", "b", "k", 0, "", 0, sum), -1);
    cv_keyring_destroy(&kr);
}

TEST(fieldcrypt_sealed_records_roundtrip_and_detect_changes)
{
    CHECK_INT(cv_fieldcrypt_init(), 0);
    cv_keyring *kr = cvt_keyring("kr");
    const char *ev = "{\"id\":\"e1\",\"email\":\"ann@example.org\"}";
    size_t n = strlen(ev);
    uint8_t rec[256], again[256], out[256];
    CHECK_INT(cv_fieldcrypt_seal_record(kr, "spool", ev, n, rec), 0);
    CHECK(cv_fieldcrypt_is_sealed_record(rec, n + CV_SEALED_OVERHEAD));
    CHECK(!cv_fieldcrypt_is_sealed_record(ev, n)); /* a JSON text is not one */
    CHECK(memmem(rec, n + CV_SEALED_OVERHEAD, "example", 7) == NULL);
    CHECK_INT(cv_fieldcrypt_seal_record(kr, "spool", ev, n, again), 0);
    CHECK(memcmp(rec, again, n + CV_SEALED_OVERHEAD) != 0); /* random nonce */
    CHECK_INT(cv_fieldcrypt_open_record(kr, "spool", rec, n + CV_SEALED_OVERHEAD, out), 0);
    CHECK(memcmp(out, ev, n) == 0);
    /* another purpose's key, a flipped byte, or an unknown version fail */
    CHECK_INT(cv_fieldcrypt_open_record(kr, "other", rec, n + CV_SEALED_OVERHEAD, out), -1);
    rec[30] ^= 1;
    CHECK_INT(cv_fieldcrypt_open_record(kr, "spool", rec, n + CV_SEALED_OVERHEAD, out), -1);
    rec[30] ^= 1;
    rec[1] = 9;
    CHECK_INT(cv_fieldcrypt_open_record(kr, "spool", rec, n + CV_SEALED_OVERHEAD, out), -1);
    cv_keyring_destroy(&kr);
}
