/* test_rewrap.c - retiring a version, the per-envelope decision and the
 * body walk that rewrap and verify share. */
#include "harness.h"

#include "crypto/fieldcrypt.h"
#include "crypto/keyring.h"
#include "crypto/envcheck.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

/* Records each path and value seen; replaces "enc:v1:..." by "X". */
static char seen[1024];
static int note(void *arg, const char *path, const char *value, size_t len,
                char **repl)
{
    (void)arg, (void)len;
    size_t n = strlen(seen);
    snprintf(seen + n, sizeof seen - n, "%s=%.6s;", path, value);
    if (!strncmp(value, "enc:v1", 6))
        *repl = cv_strdup("X");
    return 0;
}

TEST(rewrap_body_walk_paths_and_replacement)
{
    const char *body = "{\"id\":\"e1\",\"a\":{\"b\":\"enc:v1:q\",\"c\":[\"hash:v1:z\","
                       "{\"d\\u0065\":\"enc:v2:r\"}]},\"e\":\"plain\",\"f\":\"enc:v1:s\"}";
    char *out = NULL, err[128];
    size_t len;
    seen[0] = '\0';
    CHECK_INT(cv_envcheck_fields(body, strlen(body), note, NULL, &out, &len, err,
                             sizeof err), 2);
    /* dotted below the top, arrays share their path, names unescaped */
    CHECK_STR(seen, "a.b=enc:v1;a.c=hash:v;a.c.de=enc:v2;f=enc:v1;");
    CHECK(out);
    CHECK_STR(out, "{\"id\":\"e1\",\"a\":{\"b\":\"X\",\"c\":[\"hash:v1:z\","
                   "{\"d\\u0065\":\"enc:v2:r\"}]},\"e\":\"plain\",\"f\":\"X\"}");
    CHECK_INT((int)len, (int)strlen(out));
    free(out);
    CHECK_INT(cv_envcheck_fields("{\"a\":", 5, note, NULL, &out, &len, err,
                             sizeof err), -1);
}

TEST(rewrap_retire_refuses_to_decrypt_and_verify)
{
    char err[256];
    char *path = cv_fmt("%s/keyring", cvt_tmpdir());
    CHECK_INT(cv_keyring_create(path, err, sizeof err), 0);
    cv_keyring *kr = cv_keyring_load(path, err, sizeof err);
    CHECK(kr);
    char *env = cv_fieldcrypt_seal(kr, "\"v\"", 3, "e1", "a.b", err, sizeof err);
    CHECK(env);
    uint8_t sum[CV_CHECKSUM_BYTES];
    CHECK_INT(cv_fieldcrypt_row_checksum(kr, 1, "e1", "u", "k", 5, "{}", 2, sum), 0);
    uint32_t v, nv;
    CHECK_INT(cv_envcheck_classify(kr, env, strlen(env), &v), CV_ENV_CURRENT);
    CHECK_INT(cv_keyring_retire(path, 1, err, sizeof err), -1); /* the primary */
    CHECK(strstr(err, "primary"));
    CHECK_INT(cv_keyring_rotate(path, &nv, err, sizeof err), 0);
    CHECK_INT(cv_keyring_retire(path, 7, err, sizeof err), -1);
    CHECK_INT(cv_keyring_retire(path, 1, err, sizeof err), 0);
    cv_keyring_destroy(&kr);
    kr = cv_keyring_load(path, err, sizeof err);
    CHECK(kr);
    CHECK(cv_keyring_retired(kr, 1));
    CHECK(!cv_keyring_retired(kr, 2));
    CHECK_INT(cv_envcheck_classify(kr, env, strlen(env), &v), CV_ENV_OLD);
    CHECK_INT(v, 1);
    CHECK_INT(cv_envcheck_classify(kr, "hash:v1:x", 9, &v), CV_ENV_PSEUDONYM);
    CHECK_INT(cv_envcheck_classify(kr, "enc:d3:x", 8, &v), CV_ENV_DATAKEY);
    CHECK_INT(cv_envcheck_classify(kr, "enc:v1:hello", 12, &v), CV_ENV_NONE);
    char *plain = NULL;
    size_t len;
    CHECK_INT(cv_fieldcrypt_unseal(kr, env, "e1", "a.b", &plain, &len, err, sizeof err), -1);
    CHECK_STR(err, "key version 1 is retired");
    CHECK_INT(cv_fieldcrypt_row_checksum_check(kr, sum, sizeof sum, "e1", "u", "k", 5, "{}", 2), -2);
    /* pseudonyms still derive: lookups recognise old ones */
    char ps[CV_PSEUDONYM_MAX];
    CHECK_INT(cv_fieldcrypt_pseudonym(kr, 1, "user_id", "u", 1, ps), 0);
    free(env);
    free(path);
    cv_keyring_destroy(&kr);
}
