/* test_synckeys.c - ctxvault-sync's certificate and end-to-end key
 * (lib/net/synckeys.h): made once, kept, and refused when unsafe or bad. */
#include "harness.h"

#include "base/config.h"
#include "net/synckeys.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A config for a fresh instance in the test's directory, quiet. */
static void setup(cv_config *c, const char *conf)
{
    const char *dir = cvt_tmpdir();
    char *path = cv_fmt("%s/ctxvault.conf", dir);
    cv_write_file_atomic(path, conf, strlen(conf), 0600, false);
    cv_config_load(c, dir, NULL);
    free(path);
}

static int mode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

TEST(synckeys_made_once_and_kept)
{
    cv_config c;
    setup(&c, "");
    char err[512] = "";
    CHECK_INT(cv_synckeys_make(&c, false, err, sizeof err), 0);
    char *cert = cv_fmt("%s/keys/curve/sync.cert", c.home);
    char *secret = cv_fmt("%s_secret", cert);
    char *keydir = cv_fmt("%s/keys", c.home);
    CHECK_INT(mode_of(cert), 0600);
    CHECK_INT(mode_of(secret), 0600);
    CHECK_INT(mode_of(c.sync_key_file), 0600);
    CHECK_INT(mode_of(keydir), 0700);
    size_t n;
    char *text = cv_read_file(c.sync_key_file, 1024, &n);
    CHECK(text);
    CHECK_INT(n, 65);
    CHECK(text[64] == '\n');

    unsigned char k1[32], k2[32];
    CHECK_INT(cv_synckeys_load_e2e(&c, k1, err, sizeof err), 0);
    char hex1[65], hex2[65];
    CHECK_INT(cv_synckeys_public_hex(&c, hex1, err, sizeof err), 0);
    CHECK_INT(strlen(hex1), 64);
    zcert_t *z = cv_synckeys_cert(&c, err, sizeof err);
    CHECK(z);
    /* the secret is there, not the zeros of a public-only load */
    static const byte zeros[32];
    CHECK(memcmp(zcert_secret_key(z), zeros, 32) != 0);
    zcert_destroy(&z);

    /* again: nothing changes */
    CHECK_INT(cv_synckeys_make(&c, false, err, sizeof err), 0);
    CHECK_INT(cv_synckeys_load_e2e(&c, k2, err, sizeof err), 0);
    CHECK(memcmp(k1, k2, 32) == 0);
    CHECK_INT(cv_synckeys_public_hex(&c, hex2, err, sizeof err), 0);
    CHECK_STR(hex1, hex2);
    free(text);
    free(cert);
    free(secret);
    free(keydir);
    cv_config_free(&c);
}

TEST(synckeys_e2e_refused_when_unsafe_or_bad)
{
    cv_config c;
    setup(&c, "[sync]\nkey_file = other/e2e.key\n");
    char err[512] = "";
    unsigned char k[32];
    CHECK_INT(cv_synckeys_load_e2e(&c, k, err, sizeof err), -1);
    CHECK(strstr(err, "e2e.key does not exist"));
    CHECK_INT(cv_synckeys_make(&c, false, err, sizeof err), 0);
    CHECK(strstr(c.sync_key_file, "/other/e2e.key"));
    CHECK_INT(cv_synckeys_load_e2e(&c, k, err, sizeof err), 0);

    chmod(c.sync_key_file, 0640);
    CHECK_INT(cv_synckeys_load_e2e(&c, k, err, sizeof err), -1);
    CHECK(strstr(err, "has mode 0640"));
    CHECK(strstr(err, "chmod 600"));
    /* init says so too, instead of keeping an unsafe key quietly */
    CHECK_INT(cv_synckeys_make(&c, false, err, sizeof err), -1);
    CHECK(strstr(err, "chmod 600"));

    const char *bad[] = {"", "abcd\n", "zz" "0123456789abcdef0123456789abcdef"
                         "0123456789abcdef0123456789abcd\n",
                         "0123456789abcdef0123456789abcdef0123456789abcdef"
                         "0123456789abcdef00\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        unlink(c.sync_key_file);
        CHECK_INT(cv_write_file_atomic(c.sync_key_file, bad[i], strlen(bad[i]),
                                       0600, false), 0);
        CHECK_INT(cv_synckeys_load_e2e(&c, k, err, sizeof err), -1);
        CHECK(strstr(err, "is not an end-to-end sync key"));
    }
    /* without the newline, and in capitals, it is still the key */
    const char *ok = "0123456789ABCDEF0123456789abcdef0123456789abcdef"
                     "0123456789abcdef";
    unlink(c.sync_key_file);
    cv_write_file_atomic(c.sync_key_file, ok, strlen(ok), 0600, false);
    CHECK_INT(cv_synckeys_load_e2e(&c, k, err, sizeof err), 0);
    CHECK(k[0] == 0x01 && k[7] == 0xef && k[31] == 0xef);
    cv_config_free(&c);
}

TEST(synckeys_relay_gets_no_e2e_key)
{
    cv_config c;
    setup(&c, "[sync]\nrelay = yes\n");
    char err[512] = "";
    CHECK_INT(cv_synckeys_make(&c, false, err, sizeof err), 0);
    CHECK(access(c.sync_key_file, F_OK) != 0);
    char hex[65];
    CHECK_INT(cv_synckeys_public_hex(&c, hex, err, sizeof err), 0);
    cv_config_free(&c);
}

TEST(synckeys_missing_cert_is_named)
{
    cv_config c;
    setup(&c, "");
    char err[512] = "";
    char hex[65];
    CHECK_INT(cv_synckeys_public_hex(&c, hex, err, sizeof err), -1);
    CHECK(strstr(err, "sync.cert_secret"));
    CHECK(strstr(err, "ctxvault init"));
    cv_config_free(&c);
}
