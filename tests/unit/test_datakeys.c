/* test_datakeys.c - the data-key store: one key per user, stable across
 * opens; sealing and opening through it; destroying a user's key and an
 * expired hour's; rewrapping under a new primary; a wrapped key moved to
 * another owner does not open. */
#include "crypto/datakeys.h"
#include "crypto/fieldcrypt.h"
#include "fixtures.h"
#include "harness.h"
#include "base/time.h"
#include "base/util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HOUR 3600000LL

static char *path_in(const char *name)
{
    return cv_fmt("%s/%s", cvt_tmpdir(), name);
}

static int64_t count(const char *path, const char *sql)
{
    sqlite3 *h;
    sqlite3_stmt *st;
    int64_t n = -1;
    if (sqlite3_open(path, &h) == SQLITE_OK &&
        sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return n;
}

TEST(datakeys_one_key_per_user_kept_across_opens)
{
    cv_keyring *kr = cvt_keyring("kr");
    char *path = path_in("dk.db"), err[256], id[CV_DATAKEY_ID_LEN + 1];
    cv_datakeys *ds = cv_datakeys_open(path, kr, true, HOUR, err, sizeof err);
    CHECK(ds);
    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    CHECK_INT(sb.st_mode & 0777, 0600);
    const cv_datakey *a = cv_datakeys_for_user(ds, "alice", 5, NULL, err, sizeof err);
    CHECK(a);
    memcpy(id, a->id, sizeof id);
    const cv_datakey *b = cv_datakeys_for_user(ds, "bob", 3, NULL, err, sizeof err);
    CHECK(b && strcmp(b->id, id) != 0);
    CHECK_INT(cv_datakeys_commit(ds, err, sizeof err), 0);
    a = cv_datakeys_for_user(ds, "alice", 5, NULL, err, sizeof err);
    CHECK_STR(a->id, id);
    cv_datakey saved = *a;
    cv_datakeys_destroy(&ds);
    CHECK(!ds);

    ds = cv_datakeys_open(path, kr, false, HOUR, err, sizeof err);
    CHECK(ds);
    a = cv_datakeys_for_user(ds, "alice", 5, NULL, err, sizeof err);
    CHECK(a);
    CHECK_STR(a->id, id);
    CHECK(memcmp(a->key, saved.key, CV_KEY_BYTES) == 0);
    CHECK_INT(count(path, "SELECT count(*) FROM keys"), 2);
    /* the raw id is nowhere in the file */
    CHECK_INT(count(path, "SELECT count(*) FROM keys WHERE owner LIKE '%alice%'"), 0);
    cv_datakeys_destroy(&ds);
    cv_keyring_destroy(&kr);
    free(path);
}

TEST(datakeys_seal_open_and_shred)
{
    cv_keyring *kr = cvt_keyring("kr");
    char *path = path_in("dk.db"), err[256], *plain = NULL;
    size_t len;
    cv_datakeys *ds = cv_datakeys_open(path, kr, true, HOUR, err, sizeof err);
    CHECK(ds);
    cv_datakeys_attach(ds, kr);
    const cv_datakey *a = cv_datakeys_for_user(ds, "alice", 5, NULL, err, sizeof err);
    CHECK(a);
    char *env = cv_fieldcrypt_seal_dk(a, "\"secret\"", 8, "ev1", "note", err, sizeof err);
    CHECK(env && strncmp(env, "enc:d", 5) == 0);
    CHECK(cv_fieldcrypt_is_envelope(env));
    char ps[CV_PSEUDONYM_MAX];
    CHECK_INT(cv_fieldcrypt_pseudonym_dk(a, "email", "a@x", 3, ps), 0);
    CHECK(cv_fieldcrypt_is_pseudonym(ps) && strncmp(ps, "hash:d", 6) == 0);
    CHECK_INT(cv_datakeys_commit(ds, err, sizeof err), 0);
    CHECK_INT(cv_fieldcrypt_unseal(kr, env, "ev1", "note", &plain, &len, err, sizeof err), 0);
    CHECK_STR(plain, "\"secret\"");
    free(plain);
    plain = NULL;
    /* bound to its event and field, like any envelope */
    CHECK_INT(cv_fieldcrypt_unseal(kr, env, "ev2", "note", &plain, &len, err, sizeof err), -1);

    CHECK_INT(cv_datakeys_forget_user(ds, "alice", err, sizeof err), 1);
    CHECK_INT(cv_datakeys_forget_user(ds, "alice", err, sizeof err), 0);
    CHECK_INT(cv_fieldcrypt_unseal(kr, env, "ev1", "note", &plain, &len, err, sizeof err), -1);
    CHECK(strstr(err, "was destroyed"));
    /* a new key for a returning user: the old envelope stays shut */
    const cv_datakey *a2 = cv_datakeys_for_user(ds, "alice", 5, NULL, err, sizeof err);
    CHECK(a2);
    CHECK_INT(cv_datakeys_commit(ds, err, sizeof err), 0);
    CHECK_INT(cv_fieldcrypt_unseal(kr, env, "ev1", "note", &plain, &len, err, sizeof err), -1);
    free(env);
    cv_datakeys_destroy(&ds);
    cv_keyring_destroy(&kr);
    free(path);
}

TEST(datakeys_ephemeral_users_share_the_hour_key_until_it_expires)
{
    cv_keyring *kr = cvt_keyring("kr");
    char *path = path_in("dk.db"), err[256];
    cv_datakeys *ds = cv_datakeys_open(path, kr, true, HOUR, err, sizeof err);
    CHECK(ds);
    int64_t now = cv_now_ms(), ts = now - 3 * HOUR;
    char t1[40], t2[40];
    cv_time_format_ms(ts, t1);
    cv_time_format_ms(ts + 1000, t2);
    CHECK_INT(cv_datakeys_set_ephemeral(ds, "eve", 3, true, err, sizeof err), 0);
    const cv_datakey *e = cv_datakeys_for_user(ds, "eve", 3, t1, err, sizeof err);
    CHECK(e);
    char hid[CV_DATAKEY_ID_LEN + 1];
    memcpy(hid, e->id, sizeof hid);
    const cv_datakey *u = cv_datakeys_for_user(ds, "ursula", 6, t1, err, sizeof err);
    CHECK(u && strcmp(u->id, hid) != 0); /* not ephemeral: her own */
    CHECK_INT(cv_datakeys_set_ephemeral(ds, "ursula", 6, true, err, sizeof err), 0);
    u = cv_datakeys_for_user(ds, "ursula", 6, t2, err, sizeof err);
    CHECK(u);
    CHECK_STR(u->id, hid);
    CHECK_INT(cv_datakeys_commit(ds, err, sizeof err), 0);
    /* the hour ended 2 h ago; its rows live an hour: not yet at +1h59 */
    int64_t hour_end = (ts / HOUR + 1) * HOUR;
    CHECK_INT(cv_datakeys_expire(ds, hour_end + HOUR - 1, err, sizeof err), 0);
    CHECK_INT(cv_datakeys_expire(ds, hour_end + 2 * HOUR, err, sizeof err), 1);
    cv_datakey out;
    CHECK_INT(cv_datakeys_find(ds, hid, &out, err, sizeof err), 0);
    cv_datakeys_destroy(&ds);
    cv_keyring_destroy(&kr);
    free(path);
}

TEST(datakeys_rewrap_and_a_moved_key)
{
    char *krpath = path_in("kr"), *path = path_in("dk.db"), err[256];
    cv_keyring *kr = cvt_keyring("kr");
    cv_datakeys *ds = cv_datakeys_open(path, kr, true, HOUR, err, sizeof err);
    CHECK(ds);
    CHECK(cv_datakeys_for_user(ds, "alice", 5, NULL, err, sizeof err));
    CHECK(cv_datakeys_for_user(ds, "bob", 3, NULL, err, sizeof err));
    CHECK_INT(cv_datakeys_commit(ds, err, sizeof err), 0);
    cv_datakeys_destroy(&ds);
    cv_keyring_destroy(&kr);

    uint32_t v;
    CHECK_INT(cv_keyring_rotate(krpath, &v, err, sizeof err), 0);
    kr = cv_keyring_load(krpath, err, sizeof err);
    CHECK(kr);
    ds = cv_datakeys_open(path, kr, false, HOUR, err, sizeof err);
    CHECK(ds);
    CHECK_INT(cv_datakeys_count_kek(ds, 1), 2);
    CHECK_INT(cv_datakeys_rewrap(ds, err, sizeof err), 2);
    CHECK_INT(cv_datakeys_count_kek(ds, 1), 0);
    CHECK_INT(cv_datakeys_count_kek(ds, 2), 2);
    CHECK_INT(cv_datakeys_rewrap(ds, err, sizeof err), 0);
    CHECK(cv_datakeys_for_user(ds, "alice", 5, NULL, err, sizeof err));
    cv_datakeys_destroy(&ds);

    /* bob's wrapped key given to alice does not open */
    sqlite3 *h;
    CHECK(sqlite3_open(path, &h) == SQLITE_OK);
    CHECK(sqlite3_exec(h, "UPDATE keys SET wrapped = (SELECT wrapped FROM keys "
                          "ORDER BY id DESC LIMIT 1) WHERE id = "
                          "(SELECT id FROM keys ORDER BY id LIMIT 1)",
                       NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(h);
    ds = cv_datakeys_open(path, kr, false, HOUR, err, sizeof err);
    CHECK(ds);
    int bad = 0;
    if (!cv_datakeys_for_user(ds, "alice", 5, NULL, err, sizeof err))
        bad++;
    if (!cv_datakeys_for_user(ds, "bob", 3, NULL, err, sizeof err))
        bad++;
    CHECK_INT(bad, 1);
    CHECK(strstr(err, "does not unwrap"));
    cv_datakeys_destroy(&ds);
    cv_keyring_destroy(&kr);
    free(path);
    free(krpath);
}
