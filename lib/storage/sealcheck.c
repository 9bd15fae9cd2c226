/* sealcheck.c - verify's pass over sealed fields, and what still needs a
 * key version (sealcheck.h). */
#include "storage/sealcheck.h"

#include "crypto/envcheck.h"
#include "crypto/fieldcrypt.h"
#include "storage/journal.h"
#include "base/time.h"
#include "base/util.h"

#include <dirent.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- verify --------------------------------------------------------------- */

typedef struct {
    const cv_keyring *kr;
    const char *id;
    int64_t seq, fields, bad, max_named;
} verify_ctx;

/* The hook for "enc:d" fields (per-user data keys): NULL when the field
 * opens, else why not. Filled in with the data-key store. */
/* A field under a data key opens, or says why not: the key was destroyed
 * (its user erased, its hour expired), no data-key store is open, or the
 * value was altered. */
static const char *check_datakey_field(const cv_keyring *kr, const char *id,
                                       const char *path, const char *value,
                                       char *why, size_t whylen)
{
    char *plain = NULL;
    size_t plen;
    if (cv_fieldcrypt_unseal(kr, value, id, path, &plain, &plen, why, whylen) < 0)
        return why;
    sodium_memzero(plain, plen);
    free(plain);
    return NULL;
}

static int verify_field(void *arg, const char *path, const char *value,
                        size_t len, char **repl)
{
    verify_ctx *c = arg;
    uint32_t v = 0;
    char why[256];
    const char *bad = NULL;
    (void)repl;
    switch (cv_envcheck_classify(c->kr, value, len, &v)) {
    case CV_ENV_NONE:
    case CV_ENV_PSEUDONYM:
        return 0;
    case CV_ENV_DATAKEY:
        bad = check_datakey_field(c->kr, c->id, path, value, why,
                                  sizeof why);
        break;
    case CV_ENV_MALFORMED:
        bad = "not a well-formed encrypted value (altered)";
        break;
    case CV_ENV_CURRENT:
    case CV_ENV_OLD: {
        uint8_t k[CV_KEY_BYTES];
        int known = cv_keyring_subkey(c->kr, v, "aead", k);
        sodium_memzero(k, sizeof k);
        char *plain = NULL, err[256];
        size_t plen;
        if (known < 0) {
            snprintf(why, sizeof why, "unknown key version %u", v);
            bad = why;
        } else if (cv_keyring_retired(c->kr, v)) {
            snprintf(why, sizeof why, "key version %u is retired", v);
            bad = why;
        } else if (cv_fieldcrypt_unseal(c->kr, value, c->id, path, &plain, &plen, err,
                             sizeof err) < 0) {
            bad = "authentication failed (tampered or wrong key)";
        } else {
            sodium_memzero(plain, plen);
            free(plain);
        }
        break;
    }
    }
    c->fields++;
    if (bad && c->bad++ < c->max_named)
        cv_err("row %lld (event %s): field %s: %s", (long long)c->seq, c->id,
               path, bad);
    return 0;
}

int64_t cv_sealcheck_verify(cv_db *db, const cv_keyring *kr,
                            int64_t max_named, int64_t *fields)
{
    sqlite3_stmt *st;
    *fields = 0;
    if (sqlite3_prepare_v2(cv_db_handle(db),
                           "SELECT seq, id, body FROM events WHERE instr(body, '\"enc:') > 0",
                           -1, &st, NULL) != SQLITE_OK) {
        cv_err("cannot read rows of %s: %s", cv_db_path(db), cv_db_errmsg(db));
        return -1;
    }
    verify_ctx c = {.kr = kr, .max_named = max_named};
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 1);
        const char *body = (const char *)sqlite3_column_text(st, 2);
        char *nb = NULL, err[256];
        size_t nl;
        c.seq = sqlite3_column_int64(st, 0);
        c.id = id ? id : "";
        if (body && cv_envcheck_fields(body, (size_t)sqlite3_column_bytes(st, 2),
                                   verify_field, &c, &nb, &nl, err,
                                   sizeof err) < 0 &&
            c.bad++ < max_named)
            cv_err("row %lld (event %s): body is not JSON: %s",
                   (long long)c.seq, c.id, err);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        cv_err("reading rows of %s failed: %s", cv_db_path(db), cv_db_errmsg(db));
        return -1;
    }
    if (c.bad > max_named)
        cv_err("... and %lld more fields that do not open",
               (long long)(c.bad - max_named));
    *fields = c.fields;
    return c.bad;
}

/* ---- what still needs a version ------------------------------------------ */

/* The finished rewrap, if one is recorded under a primary above version. */
static bool rewrap_mark(cv_db *db, uint32_t version, int64_t *lsn, int64_t *at)
{
    sqlite3_stmt *st;
    bool ok = false;
    if (sqlite3_prepare_v2(cv_db_handle(db),
                           "SELECT value FROM meta WHERE key = 'rewrapped'", -1,
                           &st, NULL) != SQLITE_OK)
        return false;
    if (sqlite3_step(st) == SQLITE_ROW) {
        json_error_t je;
        json_t *j = json_loads((const char *)sqlite3_column_text(st, 0), 0, &je);
        json_int_t p = json_integer_value(json_object_get(j, "primary"));
        *lsn = json_integer_value(json_object_get(j, "lsn"));
        *at = json_integer_value(json_object_get(j, "at"));
        ok = p > (json_int_t)version;
        json_decref(j);
    }
    sqlite3_finalize(st);
    return ok;
}

/* Sealed snapshots in dir (by their sidecars) that may need version:
 * sealed under it, or taken before the rewrap finished (their rows may be
 * under it; *.json sidecars only, so a file without one is not seen). */
static int64_t snapshots_needing(const char *dir, uint32_t version, bool marked,
                                 int64_t lsn, int64_t at)
{
    DIR *d = opendir(dir);
    int64_t n = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 5, ".json"))
            continue;
        char *p = cv_fmt("%s/%s", dir, e->d_name);
        json_error_t je;
        json_t *s = json_load_file(p, 0, &je);
        json_t *man = json_object_get(s, "manifest");
        free(p);
        if (json_is_object(man)) {
            const char *made = json_string_value(json_object_get(man, "created_at"));
            int64_t made_ms = -1;
            if (made)
                (void)cv_time_parse(made, strlen(made), &made_ms);
            json_t *jl = json_object_get(man, "journal_lsn");
            bool before = !marked || made_ms < at ||
                          (json_is_integer(jl) && lsn > 0 &&
                           json_integer_value(jl) < lsn);
            if (json_integer_value(json_object_get(man, "key_version")) ==
                    (json_int_t)version || before)
                n++;
        }
        json_decref(s);
    }
    closedir(d);
    return n;
}

/* Dead letters whose line is sealed under version. */
static int64_t deadletters_needing(const char *dir, uint32_t version)
{
    static const char *const progs[] = {"ingest", "encrypt", "store", NULL};
    char pat[32];
    snprintf(pat, sizeof pat, "\"enc:v%u:", version);
    int64_t n = 0;
    for (int i = 0; progs[i]; i++) {
        char *p = cv_fmt("%s/%s.ndjson", dir, progs[i]);
        FILE *f = fopen(p, "r");
        free(p);
        if (!f)
            continue;
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0)
            n += strstr(line, pat) != NULL;
        free(line);
        fclose(f);
    }
    return n;
}

json_t *cv_sealcheck_key_uses(const cv_config *cfg, cv_db *db, cv_datakeys *ds,
                              uint32_t version, char *err, size_t errlen)
{
    /* an unreadable data-key store counts as needing the version */
    int64_t dks = ds ? cv_datakeys_count_kek(ds, version) : 0;
    if (dks < 0)
        dks = 1;
    sqlite3_stmt *st;
    char pat[32];
    uint8_t vb = (uint8_t)version;
    snprintf(pat, sizeof pat, "\"enc:v%u:", version);
    if (sqlite3_prepare_v2(cv_db_handle(db),
                           "SELECT count(*) FROM events WHERE instr(body, ?1) > 0"
                           " OR (length(checksum) > 0 AND substr(checksum, 1, 1) = ?2)",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot count rows: %s", cv_db_errmsg(db));
        return NULL;
    }
    sqlite3_bind_text(st, 1, pat, -1, SQLITE_STATIC);
    if (version <= 255)
        sqlite3_bind_blob(st, 2, &vb, 1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    int64_t rows = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (rows < 0) {
        snprintf(err, errlen, "cannot count rows: %s", cv_db_errmsg(db));
        return NULL;
    }
    int64_t lsn = 0, at = 0;
    bool marked = rewrap_mark(db, version, &lsn, &at);
    /* The journal's batches hold rows as stored. A batch from before the
     * finished rewrap is replayed only onto a backup older than it, which
     * the backup rule already counts; with no finished rewrap recorded,
     * every batch in the journal counts (conservative: not parsed). */
    int64_t jb = 0;
    cv_journal_info ji;
    if (!marked && cv_journal_stat(cfg->journal_dir, &ji) == 0 && ji.last > 0)
        jb = ji.last - ji.first + 1;
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "rows", (json_int_t)rows,
                     "data_keys", (json_int_t)dks,
                     "backups", (json_int_t)snapshots_needing(cfg->backup_dir,
                                                              version, marked, lsn, at),
                     "archives", (json_int_t)snapshots_needing(cfg->archive_dir,
                                                               version, marked, lsn, at),
                     "journal_batches", (json_int_t)jb, "deadletters",
                     (json_int_t)deadletters_needing(cfg->deadletter_dir, version),
                     "rewrapped", marked);
}
