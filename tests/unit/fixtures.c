/* fixtures.c - set-up shared by the unit tests. */
#include "fixtures.h"

#include "harness.h"
#include "crypto/fieldcrypt.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

cv_keyring *cvt_keyring(const char *name)
{
    char err[256];
    char *path = cv_fmt("%s/%s", cvt_tmpdir(), name);
    if (cv_keyring_create(path, err, sizeof err) < 0)
        cvt_fail(__FILE__, __LINE__, "create: %s", err);
    cv_keyring *kr = cv_keyring_load(path, err, sizeof err);
    if (!kr)
        cvt_fail(__FILE__, __LINE__, "load: %s", err);
    free(path);
    return kr;
}

json_t *cvt_json(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        cvt_fail(__FILE__, __LINE__, "bad test JSON: %s", e.text);
    return j;
}

cv_policy *cvt_policy(const char *text)
{
    int problems = -1;
    cv_policy *p = cv_policy_parse("test", text, &problems);
    if (!p || problems != 0)
        cvt_fail(__FILE__, __LINE__, "policy has %d problems", problems);
    return p;
}

const char cvt_typical_event[] =
    "{\"id\":\"ev-42\",\"user_id\":\"alice\",\"kind\":\"interaction\","
    "\"ts\":\"2026-11-22T10:04:05.123Z\",\"type\":\"search\","
    "\"email\":\"alice@example.com\",\"ip\":\"203.0.113.9\","
    "\"device\":{\"os\":\"linux\",\"browser\":\"firefox\","
    "\"screen_size\":\"1920x1080\",\"name\":\"Alice's laptop\","
    "\"device_id\":\"d-123\"},"
    "\"location\":{\"lat\":48.8566,\"lon\":2.3522,\"city\":\"Paris\","
    "\"country\":\"FR\",\"street\":\"1 rue de Rivoli\"},"
    "\"payload\":{\"search\":{\"query\":\"divorce lawyer\"},"
    "\"contact\":{\"email\":\"bob@example.com\"}},"
    "\"results\":[{\"text\":\"hello\"}]}";

/* A policy that keeps user_id, so events can be written by hand. */
const char cvt_keep_users_policy[] =
    "[retention]\nother = 30d\naudit = 365d\nsnapshot = 7d\nprofile = user\n"
    "[scrub]\nother = 90d\n[privacy]\nephemeral = 1h\n"
    "[fields]\nuser_id = keep\n";

int cvt_store_setup(cvt_store *f, const char *policy)
{
    return cvt_store_setup_in(f, cvt_tmpdir(), policy);
}

int cvt_store_setup_in(cvt_store *f, const char *dir, const char *policy)
{
    memset(f, 0, sizeof *f);
    if (cv_mkdir_p(dir, 0700, false) < 0)
        return -1;
    cv_config_load(&f->cfg, dir, NULL);
    char err[512];
    int code, problems = 0;
    cv_fieldcrypt_init();
    char *keys = cv_fmt("%s/keys", dir);
    cv_mkdir_p(keys, 0700, false);
    free(keys);
    if (cv_keyring_create(f->cfg.keyring_file, err, sizeof err) < 0)
        return -1;
    f->kr = cv_keyring_load(f->cfg.keyring_file, err, sizeof err);
    f->pol = cv_policy_parse("test", policy ? policy : cvt_keep_users_policy,
                             &problems);
    cv_recovery rec;
    f->db = cv_db_open_writer(&f->cfg, "unit", &rec, &code, err, sizeof err);
    if (!f->kr || !f->pol || problems || !f->db)
        return -1;
    f->st = cv_store_new(f->db, f->pol, f->kr, 64);
    return 0;
}

void cvt_store_teardown(cvt_store *f)
{
    cv_store_destroy(&f->st);
    cv_db_close(&f->db);
    cv_policy_destroy(&f->pol);
    cv_keyring_destroy(&f->kr);
    cv_config_free(&f->cfg);
}

int cvt_store_add(cvt_store *f, const char *line)
{
    char reason[256];
    return cv_store_add(f->st, line, strlen(line), reason, sizeof reason);
}

int64_t cvt_q(cvt_store *f, const char *sql)
{
    sqlite3_stmt *s;
    int64_t v = -99;
    if (sqlite3_prepare_v2(cv_db_handle(f->db), sql, -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW)
            v = sqlite3_column_type(s, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    }
    return v;
}

