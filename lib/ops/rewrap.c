/* rewrap.c - re-seal old-version fields under the primary, and keys list's rows per version. See rewrap.h. */
#include "ops/rewrap.h"

#include "crypto/envcheck.h"
#include "crypto/datakeys.h"
#include "crypto/fieldcrypt.h"
#include "net/control.h"
#include "base/time.h"
#include "base/util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BATCH 100000
#define NAMED_SKIPS 10

/* ---- rewrap --------------------------------------------------------------- */

typedef struct {
    const cv_keyring *kr;
    const char *id;
    int fields;
    char err[256];
} rewrap_ctx;

static int rewrap_field(void *arg, const char *path, const char *value,
                        size_t len, char **repl)
{
    rewrap_ctx *c = arg;
    uint32_t v;
    if (cv_envcheck_classify(c->kr, value, len, &v) != CV_ENV_OLD)
        return 0;
    char *plain = NULL;
    size_t plen;
    if (cv_fieldcrypt_unseal(c->kr, value, c->id, path, &plain, &plen, c->err,
                  sizeof c->err) < 0)
        return -1;
    *repl = cv_fieldcrypt_seal(c->kr, plain, plen, c->id, path, c->err, sizeof c->err);
    sodium_memzero(plain, plen);
    free(plain);
    if (!*repl)
        return -1;
    c->fields++;
    return 0;
}

typedef struct {
    int64_t seq;
    char *body; /* NULL: the body stays */
    size_t len;
    uint8_t sum[CV_CHECKSUM_BYTES];
} pending;

/* After a pass that left nothing under another version: the primary then
 * and the journal batch from which every row is under it (a backup that
 * holds that batch holds no older version; ctxvault keys retire). */
static int mark_done(cv_writer *m)
{
    char *v = cv_fmt("{\"primary\":%u,\"lsn\":%lld,\"at\":%lld}",
                     cv_keyring_primary(m->kr),
                     (long long)cv_db_journal_batch(m->db) + 1,
                     (long long)cv_now_ms());
    sqlite3_stmt *st = cv_db_stmt(m->db, "INSERT OR REPLACE INTO meta(key, value)"
                                         " VALUES('rewrapped', ?)");
    int rc = -1;
    if (st) {
        sqlite3_bind_text(st, 1, v, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
        sqlite3_reset(st);
    }
    free(v);
    return rc;
}

json_t *cv_rewrap_batch(cv_writer *m, json_t *req)
{
    json_t *v = json_object_get(req, "after"), *b = json_object_get(req, "batch");
    int64_t after = json_is_integer(v) ? json_integer_value(v) : 0;
    int64_t batch = json_is_integer(b) ? json_integer_value(b) : 1000;
    if (batch < 1 || batch > MAX_BATCH)
        return cv_control_error(NULL, EX_DATAERR, "\"batch\" must be from 1 to %d",
                              MAX_BATCH);
    uint32_t primary = cv_keyring_primary(m->kr);
    if (cv_db_begin(m->db) != SQLITE_OK)
        return cv_control_db_fail(m->db, "cannot begin a rewrap batch");
    sqlite3_stmt *st = cv_db_stmt(m->db,
        "SELECT e.seq, e.id, u.user_id, e.kind, e.ts, e.body, e.checksum"
        " FROM events e LEFT JOIN users u ON u.uid = e.uid"
        " WHERE e.seq > ? ORDER BY e.seq LIMIT ?");
    if (!st)
        return cv_control_db_fail(m->db, "cannot prepare the rewrap");
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, batch);
    pending *todo = cv_malloc((size_t)batch * sizeof *todo);
    size_t ntodo = 0;
    int64_t examined = 0, fields = 0, skipped = 0, next = after;
    json_t *skips = json_array(), *reply = NULL;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        examined++;
        next = sqlite3_column_int64(st, 0);
        const char *id = (const char *)sqlite3_column_text(st, 1);
        const char *user = (const char *)sqlite3_column_text(st, 2);
        const char *kind = (const char *)sqlite3_column_text(st, 3);
        int64_t ts = sqlite3_column_int64(st, 4);
        const char *body = (const char *)sqlite3_column_text(st, 5);
        size_t blen = (size_t)sqlite3_column_bytes(st, 5);
        const uint8_t *sum = sqlite3_column_blob(st, 6);
        size_t slen = (size_t)sqlite3_column_bytes(st, 6);
        id = id ? id : "", user = user ? user : "", kind = kind ? kind : "";
        body = body ? body : "";
        bool old_sum = slen != CV_CHECKSUM_BYTES || sum[0] != primary;
        /* a fast path for the common case: nothing old in the row */
        if (!old_sum && !strstr(body, "\"enc:v"))
            continue;
        rewrap_ctx c = {.kr = m->kr, .id = id};
        char *nb = NULL, err[256];
        size_t nlen = 0;
        /* a fresh checksum must never launder a row changed outside
         * ctxvault: it is checked under its own version first */
        int n = cv_fieldcrypt_row_checksum_check(m->kr, sum, slen, id, user, kind, ts,
                                      body, blen) == 1
                    ? cv_envcheck_fields(body, blen, rewrap_field, &c, &nb, &nlen,
                                         err, sizeof err)
                    : -2;
        if (n < 0) {
            if (skipped++ < NAMED_SKIPS)
                json_array_append_new(skips, json_pack("{s:I, s:s, s:s}", "seq",
                    (json_int_t)next, "id", id, "why",
                    n == -2 ? "checksum does not verify" : *c.err ? c.err : err));
            continue;
        }
        if (n == 0 && !old_sum)
            continue;
        pending *p = &todo[ntodo++];
        p->seq = next;
        p->body = nb;
        p->len = nlen;
        fields += c.fields;
        if (cv_fieldcrypt_row_checksum(m->kr, primary, id, user, kind, ts, nb ? nb : body,
                            nb ? nlen : blen, p->sum) < 0) {
            sqlite3_reset(st);
            reply = cv_control_error(NULL, EX_SOFTWARE, "cannot checksum: no primary key");
            cv_db_rollback(m->db);
            goto out;
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        reply = cv_control_db_fail(m->db, "rewrap read failed");
        goto out;
    }
    /* written after the read: no update under a running scan */
    for (size_t i = 0; i < ntodo; i++) {
        pending *p = &todo[i];
        sqlite3_stmt *up = cv_db_stmt(m->db, p->body
            ? "UPDATE events SET checksum = ?1, body = ?3 WHERE seq = ?2"
            : "UPDATE events SET checksum = ?1 WHERE seq = ?2");
        if (!up) {
            reply = cv_control_db_fail(m->db, "cannot prepare the rewrap");
            goto out;
        }
        sqlite3_bind_blob(up, 1, p->sum, sizeof p->sum, SQLITE_STATIC);
        sqlite3_bind_int64(up, 2, p->seq);
        if (p->body)
            sqlite3_bind_text(up, 3, p->body, (int)p->len, SQLITE_STATIC);
        rc = sqlite3_step(up);
        sqlite3_reset(up);
        if (rc != SQLITE_DONE) {
            reply = cv_control_db_fail(m->db, "rewrap update failed");
            goto out;
        }
    }
    bool done = examined < batch;
    if (cv_db_commit(m->db) != SQLITE_OK) {
        reply = cv_control_db_fail(m->db, "cannot commit a rewrap batch");
        goto out;
    }
    /* the mark only when the whole pass left nothing behind: the command
     * sends "clean" while no batch skipped a row */
    if (done && json_is_true(json_object_get(req, "clean")) && !skipped) {
        if (cv_db_begin(m->db) != SQLITE_OK || mark_done(m) < 0 ||
            cv_db_commit(m->db) != SQLITE_OK) {
            reply = cv_control_db_fail(m->db, "cannot record the finished rewrap");
            goto out;
        }
    }
    /* the data keys are wrapped under a version too: rewrapping them is
     * cheap (one per user), so the pass's last batch does all of them */
    int keys = 0;
    if (done && m->ds) {
        char why[512];
        if ((keys = cv_datakeys_rewrap(m->ds, why, sizeof why)) < 0) {
            reply = cv_control_error(NULL, EX_IOERR, "cannot rewrap the data keys: %s",
                                   why);
            goto out;
        }
    }
    reply = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:O, s:I, s:b, s:i}",
                      "ok", 1, "examined", (json_int_t)examined, "rewrapped",
                      (json_int_t)ntodo, "fields", (json_int_t)fields,
                      "checksums", (json_int_t)ntodo, "skipped",
                      (json_int_t)skipped, "skipped_rows", skips, "next",
                      (json_int_t)next, "done", done, "data_keys", keys);
out:
    for (size_t i = 0; i < ntodo; i++)
        free(todo[i].body);
    free(todo);
    json_decref(skips);
    return reply;
}

/* ---- rows per version, for keys list ------------------------------------- */

void cv_rewrap_count_rows(cv_db *db, json_t *versions)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(db), "SELECT substr(checksum, 1, 1),"
                           " count(*) FROM events GROUP BY 1", -1, &st,
                           NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const uint8_t *v = sqlite3_column_blob(st, 0);
        size_t i;
        json_t *e;
        json_array_foreach(versions, i, e)
            if (v && sqlite3_column_bytes(st, 0) == 1 &&
                json_integer_value(json_object_get(e, "version")) == v[0])
                json_object_set_new(e, "rows", json_integer(
                    sqlite3_column_int64(st, 1)));
    }
    sqlite3_finalize(st);
}
