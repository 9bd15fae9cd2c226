/* maint.c - sweep, erase, rectify and audit requests on the writer's
 * connection, and the sessions commands use to send them. See maint.h. */
#include "ops/maint.h"

#include "storage/audit.h"
#include "crypto/datakeys.h"
#include "net/control.h"
#include "privacy/erasure.h"
#include "crypto/fieldcrypt.h"
#include "ops/query.h"
#include "ops/modelcache.h"
#include "ops/rewrap.h"
#include "ops/segment.h"
#include "storage/store.h"
#include "storage/syncstore.h"
#include "base/util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BATCH 100000

/* A request refused: bad arguments, a reserved field (EX_DATAERR). */
#define fail(...) cv_control_error(NULL, EX_DATAERR, __VA_ARGS__)

/* An integer, or -1 for null (a time that is not set). */
static int64_t int_or(json_t *v)
{
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

static int64_t int_arg(json_t *req, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(req, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static const char *actor_of(json_t *req)
{
    const char *a = json_string_value(json_object_get(req, "actor"));
    return a && *a ? a : "unknown";
}

static bool compact(cv_writer *m)
{
    return cv_writer_compact(m->db);
}

/* ---- sweep ------------------------------------------------------------- */

static void incr_kind(json_t *by_kind, const char *kind)
{
    json_t *c = json_object_get(by_kind, kind ? kind : "");
    json_object_set_new(by_kind, kind ? kind : "",
                        json_integer(json_integer_value(c) + 1));
}


static json_t *do_sweep(cv_writer *m, json_t *req)
{
    int64_t now = int_arg(req, "now", cv_now_ms());
    int64_t batch = int_arg(req, "batch", 1000);
    if (batch < 1 || batch > MAX_BATCH)
        return fail("\"batch\" must be from 1 to %d", MAX_BATCH);
    if (cv_db_begin(m->db) != SQLITE_OK)
        return cv_control_db_fail(m->db, "cannot begin a sweep batch");
    sqlite3_stmt *st = cv_db_stmt(m->db,
        "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
        " WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2) RETURNING kind");
    if (!st)
        return cv_control_db_fail(m->db, "cannot prepare the sweep");
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, batch);
    json_t *by_kind = json_object();
    int64_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        incr_kind(by_kind, (const char *)sqlite3_column_text(st, 0));
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        json_decref(by_kind);
        return cv_control_db_fail(m->db, "sweep failed");
    }
    /* model cache entries past their ttl go with the rows */
    int64_t cache = cv_modelcache_expire(m->db, now, batch);
    if (cache < 0) {
        json_decref(by_kind);
        return cv_control_db_fail(m->db, "cannot delete expired cache entries");
    }
    char err[512];
    int64_t audit = cv_audit_expire(m->db, m->kr, now, batch, err, sizeof err);
    if (audit < 0 || cv_db_commit(m->db) != SQLITE_OK) {
        json_decref(by_kind);
        return audit < 0 ? (cv_db_rollback(m->db), fail("%s", err))
                         : cv_control_db_fail(m->db, "cannot commit a sweep batch");
    }
    m->deleted += (uint64_t)n;
    return json_pack("{s:b, s:I, s:o, s:I, s:I, s:b}", "ok", 1, "deleted",
                     (json_int_t)n, "by_kind", by_kind, "audit",
                     (json_int_t)audit, "cache", (json_int_t)cache, "more",
                     n == batch || audit == batch || cache == batch);
}

static json_t *append_audit(cv_writer *m, const cv_audit_entry *e, int64_t now)
{
    char err[512];
    if (cv_db_begin(m->db) != SQLITE_OK)
        return cv_control_db_fail(m->db, "cannot begin");
    if (cv_audit_append(m->db, m->kr, m->pol, now, e, err, sizeof err) < 0) {
        cv_db_rollback(m->db);
        return fail("%s", err);
    }
    if (cv_db_commit(m->db) != SQLITE_OK)
        return cv_control_db_fail(m->db, "cannot commit the audit entry");
    m->audit_entries++;
    return NULL;
}

static json_t *do_sweep_done(cv_writer *m, json_t *req)
{
    int64_t now = int_arg(req, "now", cv_now_ms());
    json_t *by_kind = json_object_get(req, "by_kind");
    json_t *detail = json_pack("{s:O, s:I}", "by_kind",
                               json_is_object(by_kind) ? by_kind : json_object(),
                               "ms", (json_int_t)int_arg(req, "ms", 0));
    cv_audit_entry e = {.actor = actor_of(req), .action = "sweep",
                        .rows = int_arg(req, "deleted", 0), .detail = detail};
    json_t *err = append_audit(m, &e, now);
    json_decref(detail);
    if (err)
        return err;
    bool truncated = compact(m);
    /* the hours whose rows have all expired: their keys go too, so a copy
     * taken meanwhile cannot be read */
    char why[512];
    int keys = m->ds ? cv_datakeys_expire(m->ds, now, why, sizeof why) : 0;
    if (keys < 0)
        cv_warn("cannot destroy expired hour keys: %s", why);
    return json_pack("{s:b, s:I, s:b, s:i}", "ok", 1, "backlog",
                     (json_int_t)cv_db_expired(m->db, now), "wal_truncated",
                     truncated, "hour_keys_destroyed", keys < 0 ? 0 : keys);
}

/* ---- erase ------------------------------------------------------------- */

static json_t *do_erase(cv_writer *m, json_t *req)
{
    const char *user = json_string_value(json_object_get(req, "user"));
    if (!user || !*user)
        return fail("erase needs \"user\", a non-empty string");
    int64_t uids[CV_USER_UIDS_MAX];
    size_t n;
    char err[512];
    /* the key first: whatever copy of the user's fields is left anywhere
     * (a backup, an archive, the journal, a row not yet deleted) can no
     * longer be read */
    int destroyed = m->ds ? cv_datakeys_forget_user(m->ds, user, err,
                                                    sizeof err) : 0;
    if (destroyed < 0)
        return fail("cannot destroy the user's data key: %s", err);
    if (cv_db_begin(m->db) != SQLITE_OK)
        return cv_control_db_fail(m->db, "cannot begin the erasure");
    int rc = cv_query_user_uids(m->db, m->pol, m->kr, user, uids,
                                  CV_USER_UIDS_MAX, &n);
    if (rc == EX_CONFIG) {
        cv_db_rollback(m->db);
        return fail("the policy neither keeps nor hashes user_id: cannot "
                    "look up users");
    }
    if (rc)
        return cv_control_db_fail(m->db, "cannot look the user up");
    int64_t now = cv_now_ms();
    for (size_t i = 0; i < n; i++) { /* the tombstone first: it needs the id */
        sqlite3_stmt *st = cv_db_stmt(m->db, "SELECT user_id FROM users WHERE uid = ?");
        if (!st)
            return cv_control_db_fail(m->db, "cannot prepare the erasure");
        sqlite3_bind_int64(st, 1, uids[i]);
        int src = sqlite3_step(st);
        int trc = src == SQLITE_ROW
                      ? cv_erasure_record(cv_db_handle(m->db), m->kr,
                                          (const char *)sqlite3_column_text(st, 0), now)
                      : 0;
        sqlite3_reset(st);
        if ((src != SQLITE_ROW && src != SQLITE_DONE) || trc < 0)
            return cv_control_db_fail(m->db, "cannot record the erasure");
    }
    /* the user's synced contexts: tombstones for the peers, which replace
     * the sealed versions here */
    if (m->sync && cv_syncstore_local_delete_uids(m->sync, uids, n, now, err,
                                                  sizeof err) < 0) {
        cv_db_rollback(m->db);
        return fail("cannot record the erasure for sync: %s", err);
    }
    static const char *const sql[] = {
        "DELETE FROM sync_local WHERE uid = ?",
        "DELETE FROM events WHERE uid = ?",
        "DELETE FROM profiles WHERE uid = ?",
        "DELETE FROM anon_past WHERE uid = ?",
        "DELETE FROM segments WHERE uid = ?",
        "DELETE FROM mlcache WHERE uid = ?",
        "DELETE FROM users WHERE uid = ?",
    };
    /* the receipt's rows by kind, counted before they go */
    json_t *by_kind = json_object();
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st = cv_db_stmt(m->db, "SELECT kind, count(*) FROM events "
                                             "WHERE uid = ? GROUP BY kind");
        if (!st) {
            json_decref(by_kind);
            return cv_control_db_fail(m->db, "cannot prepare the erasure");
        }
        sqlite3_bind_int64(st, 1, uids[i]);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *kind = (const char *)sqlite3_column_text(st, 0);
            json_t *had = json_object_get(by_kind, kind);
            json_object_set_new(by_kind, kind,
                                json_integer(json_integer_value(had) +
                                             sqlite3_column_int64(st, 1)));
        }
        sqlite3_reset(st);
    }
    int64_t deleted = 0, counts[sizeof sql / sizeof *sql] = {0};
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < (int)(sizeof sql / sizeof *sql); k++) {
            sqlite3_stmt *st = cv_db_stmt(m->db, sql[k]);
            if (!st)
                return cv_control_db_fail(m->db, "cannot prepare the erasure");
            sqlite3_bind_int64(st, 1, uids[i]);
            if (sqlite3_step(st) != SQLITE_DONE) {
                sqlite3_reset(st);
                json_decref(by_kind);
                return cv_control_db_fail(m->db, "erasure failed");
            }
            sqlite3_reset(st);
            counts[k] += sqlite3_changes(cv_db_handle(m->db));
        }
    deleted = counts[1];
    cv_audit_entry e = {.actor = actor_of(req), .action = "erase",
                        .subject = user, .rows = deleted};
    if (cv_audit_append(m->db, m->kr, m->pol, now, &e, err, sizeof err) < 0) {
        json_decref(by_kind);
        cv_db_rollback(m->db);
        return fail("%s", err);
    }
    /* the entry just appended: the chain's head, in this transaction */
    int64_t audit_id = cv_db_scalar(m->db, "SELECT max(seq) FROM audit");
    if (cv_db_commit(m->db) != SQLITE_OK) {
        json_decref(by_kind);
        return cv_control_db_fail(m->db, "cannot commit the erasure");
    }
    int64_t done_at = cv_now_ms();
    m->deleted += (uint64_t)deleted;
    m->erased_users++;
    m->audit_entries++;
    if (m->store)
        cv_store_forget_users(m->store); /* its numbers are gone */
    bool truncated = compact(m);
    /* the receipt an application can show the user */
    json_t *r = json_pack("{s:s, s:o, s:I, s:o, s:I, s:I, s:I, s:I, s:b, s:b}",
                          "user", user, "completed_at", cv_control_time_json(done_at),
                          "deleted", (json_int_t)deleted, "by_kind", by_kind,
                          "profiles", (json_int_t)counts[2],
                          "segments", (json_int_t)counts[3],
                          "cache_entries", (json_int_t)counts[4],
                          "audit_id", (json_int_t)audit_id,
                          "key_destroyed", destroyed > 0,
                          "wal_truncated", truncated);
    /* the erasure stands whatever the notification does */
    const char *notify = m->cfg ? m->cfg->erasure_notify : NULL;
    const char *outcome = "none";
    if (notify) {
        char *text = json_dumps(r, CV_JSON_DUMP);
        if (text && cv_erasure_notify(notify, text, err, sizeof err) == 0) {
            outcome = "ok";
        } else {
            outcome = "failed";
            m->notify_failures++;
            cv_warn("erasure done (audit entry %lld), but its notification "
                    "failed: %s", (long long)audit_id,
                    text ? err : "cannot encode the receipt");
        }
        free(text);
    }
    json_object_set_new(r, "notify", json_string(outcome));
    json_object_set_new(r, "ok", json_true());
    return r;
}

/* Tombstones of another database (the one a restore replaced): its
 * erasures stay done here. */
static json_t *do_erasures_merge(cv_writer *m, json_t *req)
{
    const char *from = json_string_value(json_object_get(req, "from"));
    if (!from || !*from)
        return fail("erasures_merge needs \"from\", a database file");
    char err[512];
    int64_t users, rows;
    sqlite3 *h = cv_db_handle(m->db);
    if (cv_erasure_attach(h, from, err, sizeof err) < 0)
        return cv_control_error(NULL, EX_IOERR, "%s", err);
    json_t *failed = NULL;
    if (cv_db_begin(m->db) != SQLITE_OK) {
        failed = cv_control_db_fail(m->db, "cannot begin");
    } else if (cv_erasure_reapply(h, m->kr, &users, &rows, err, sizeof err) < 0) {
        cv_db_rollback(m->db);
        failed = cv_control_error(NULL, EX_IOERR, "%s", err);
    } else if (cv_db_commit(m->db) != SQLITE_OK) {
        failed = cv_control_db_fail(m->db, "cannot commit the erasures");
    }
    cv_erasure_detach(h);
    if (failed)
        return failed;
    m->deleted += (uint64_t)rows;
    if (rows && m->store)
        cv_store_forget_users(m->store);
    return json_pack("{s:b, s:I, s:I}", "ok", 1, "users", (json_int_t)users,
                     "rows", (json_int_t)rows);
}

/* ---- rectify ----------------------------------------------------------- */

/* Members store reads, or that decide where and how long a row lives:
 * changing them is a new event, not a correction. */
static bool reserved(const char *path)
{
    static const char *const names[] = {"id", "kind", "type", "ts", "user_id",
                                        "privacy_level", "retention_days", NULL};
    for (int i = 0; names[i]; i++)
        if (strcmp(path, names[i]) == 0)
            return true;
    return false;
}

/* Set the dotted path in obj to value (taken), making objects on the way. */
static bool set_path(json_t *obj, const char *path, json_t *value)
{
    char *copy = cv_strdup(path), *save = NULL;
    char *key = strtok_r(copy, ".", &save);
    bool ok = false;
    while (key) {
        char *next = strtok_r(NULL, ".", &save);
        if (!next) {
            ok = json_object_set_new(obj, key, value) == 0;
            value = NULL;
            break;
        }
        json_t *child = json_object_get(obj, key);
        if (!child) {
            child = json_object();
            json_object_set_new(obj, key, child);
        }
        if (!json_is_object(child))
            break;
        obj = child;
        key = next;
    }
    json_decref(value);
    free(copy);
    return ok;
}

static json_t *do_rectify(cv_writer *m, json_t *req)
{
    const char *id = json_string_value(json_object_get(req, "id"));
    json_t *set = json_object_get(req, "set");
    if (!id || !*id)
        return fail("rectify needs \"id\", a non-empty string");
    if (!json_is_object(set) || json_object_size(set) == 0)
        return fail("rectify needs \"set\", an object of path: value");
    const char *path;
    json_t *v;
    json_object_foreach(set, path, v) {
        if (!*path || path[0] == '.' || path[strlen(path) - 1] == '.' ||
            strstr(path, ".."))
            return fail("'%s' is not a dotted path of member names", path);
        if (reserved(path))
            return fail("'%s' cannot be rectified: send a new event (or "
                        "delete and resend) to change it", path);
    }
    if (cv_db_begin(m->db) != SQLITE_OK)
        return cv_control_db_fail(m->db, "cannot begin the rectification");
    sqlite3_stmt *st = cv_db_stmt(m->db,
        "SELECT e.seq, e.kind, e.ts, e.body, u.user_id, e.scrubbed_at IS NOT NULL"
        " FROM events e JOIN users u ON u.uid = e.uid WHERE e.id = ?");
    if (!st)
        return cv_control_db_fail(m->db, "cannot prepare the rectification");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_reset(st);
        cv_db_rollback(m->db);
        return cv_control_error(NULL, EX_NOINPUT, "no event with id '%s'", id);
    }
    int64_t seq = sqlite3_column_int64(st, 0), ts = sqlite3_column_int64(st, 2);
    char *kind = cv_strdup((const char *)sqlite3_column_text(st, 1));
    char *user = cv_strdup((const char *)sqlite3_column_text(st, 4));
    bool scrubbed = sqlite3_column_int(st, 5);
    json_error_t je;
    /* new values go under the key the row's fields are under, so they die
     * with it (a row with no such field: the keyring's) */
    cv_datakey *dk = sodium_malloc(sizeof *dk);
    if (dk && !cv_datakeys_of_body(m->ds, (const char *)sqlite3_column_text(st, 3), dk)) {
        sodium_free(dk);
        dk = NULL;
    }
    json_t *ev = json_loads((const char *)sqlite3_column_text(st, 3), 0, &je);
    sqlite3_reset(st);
    json_t *reply = NULL;
    char *body = NULL, err[512];
    json_t *paths = json_array();
    if (!json_is_object(ev)) {
        reply = fail("event '%s' is stored as malformed JSON", id);
        goto out;
    }
    json_object_foreach(set, path, v) {
        if (!set_path(ev, path, json_deep_copy(v))) {
            reply = fail("'%s' crosses a member that is not an object", path);
            goto out;
        }
        json_array_append_new(paths, json_string(path));
    }
    /* the rules protect only what is still plain: the new values */
    if (cv_policy_apply(m->pol, m->kr, dk, ev, err, sizeof err) < 0) {
        reply = fail("cannot apply the field policy: %s", err);
        goto out;
    }
    /* a scrubbed row stays scrubbed: the new values are scrubbed too */
    if (scrubbed && cv_policy_scrub(m->pol, m->kr, kind, ev, NULL, NULL, err,
                                    sizeof err) < 0) {
        reply = fail("cannot apply the scrub rules: %s", err);
        goto out;
    }
    body = json_dumps(ev, CV_JSON_DUMP);
    uint8_t sum[CV_CHECKSUM_BYTES];
    if (!body || cv_fieldcrypt_row_checksum(m->kr, cv_keyring_primary(m->kr), id, user,
                                 kind, ts, body, strlen(body), sum) < 0) {
        reply = fail("cannot checksum the corrected event");
        goto out;
    }
    st = cv_db_stmt(m->db, "UPDATE events SET body = ?, checksum = ? WHERE seq = ?");
    if (!st) {
        reply = cv_control_db_fail(m->db, "cannot prepare the update");
        goto out_rolledback;
    }
    sqlite3_bind_text(st, 1, body, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, sum, sizeof sum, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, seq);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        reply = cv_control_db_fail(m->db, "cannot update the event");
        goto out_rolledback;
    }
    json_t *detail = json_pack("{s:s, s:s, s:O}", "id", id, "kind", kind,
                               "fields", paths);
    cv_audit_entry e = {.actor = actor_of(req), .action = "rectify",
                        .rows = 1, .detail = detail};
    rc = cv_audit_append(m->db, m->kr, m->pol, cv_now_ms(), &e, err, sizeof err);
    json_decref(detail);
    if (rc < 0) {
        reply = fail("%s", err);
        goto out;
    }
    if (cv_db_commit(m->db) != SQLITE_OK) {
        reply = cv_control_db_fail(m->db, "cannot commit the rectification");
        goto out_rolledback;
    }
    m->rectified++;
    m->audit_entries++;
    /* the old value is overwritten in the file, and leaves the WAL too */
    compact(m);
    reply = json_pack("{s:b, s:I}", "ok", 1, "fields",
                      (json_int_t)json_object_size(set));
    goto out_rolledback; /* committed: nothing to roll back */
out:
    cv_db_rollback(m->db);
out_rolledback:
    if (dk)
        sodium_free(dk);
    json_decref(paths);
    json_decref(ev);
    free(body);
    free(kind);
    free(user);
    return reply;
}

/* ---- scrub -------------------------------------------------------------- */

/* A row's checksum as ctxvault-scrub read it: hex, as long as any. */
static bool sum_arg(json_t *v, uint8_t *sum, size_t *len)
{
    const char *hex = json_string_value(v);
    return hex && sodium_hex2bin(sum, CV_CHECKSUM_BYTES, hex, strlen(hex),
                                 NULL, len, NULL) == 0;
}

/* A scrub row's new body: a string, or the index of a blob. false when
 * it is neither; *len 0 and *body NULL when the row keeps its body. */
static bool body_arg(json_t *b, const cv_blob *blobs, size_t nblobs,
                     const char **body, size_t *len)
{
    *body = NULL;
    *len = 0;
    if (!b)
        return true;
    if (json_is_string(b)) {
        *body = json_string_value(b);
        *len = json_string_length(b);
        return true;
    }
    json_int_t i = json_integer_value(b);
    if (!json_is_integer(b) || i < 0 || (size_t)i >= nblobs)
        return false;
    *body = blobs[i].data;
    *len = blobs[i].len;
    return *len > 0 && !memchr(*body, '\0', *len);
}

/* Conditional updates, one statement per row: it applies only while the
 * row is unscrubbed and its checksum is still the one scrub read (which
 * covers the id, user, kind, ts and body scrub sends back), so a row
 * rectified, erased or scrubbed meanwhile is a conflict, left for scrub
 * to read again. The new checksum is store's own. */
static json_t *do_scrub(cv_writer *m, json_t *req, const cv_blob *blobs,
                        size_t nblobs)
{
    json_t *rows = json_object_get(req, "rows");
    int64_t now = int_arg(req, "now", cv_now_ms());
    if (!json_is_array(rows) || json_array_size(rows) > MAX_BATCH)
        return fail("scrub needs \"rows\", an array of at most %d rows",
                    MAX_BATCH);
    if (cv_db_begin(m->db) != SQLITE_OK)
        return cv_control_db_fail(m->db, "cannot begin a scrub batch");
    json_t *by_kind = json_object(), *conflicts = json_array(), *item;
    json_t *reply = NULL;
    int64_t n = 0, fields = 0;
    size_t i;
    json_array_foreach(rows, i, item) {
        uint8_t sum[CV_CHECKSUM_BYTES], new_sum[CV_CHECKSUM_BYTES];
        size_t sumlen = 0, blen;
        const char *body;
        /* [seq, sum, id, kind, user, ts, moved, fields, body?] */
        json_t *seqv = json_array_get(item, 0), *tsv = json_array_get(item, 5);
        bool moved = json_is_true(json_array_get(item, 6));
        const char *id = json_string_value(json_array_get(item, 2));
        const char *kind = json_string_value(json_array_get(item, 3));
        const char *user = json_string_value(json_array_get(item, 4));
        if (!json_is_integer(seqv) || !json_is_integer(tsv) || !id || !kind ||
            !user || !sum_arg(json_array_get(item, 1), sum, &sumlen) ||
            !json_is_boolean(json_array_get(item, 6)) ||
            !body_arg(json_array_get(item, 8), blobs, nblobs, &body, &blen)) {
            reply = fail("scrub row %zu is not [seq, sum (hex), id, kind, user, "
                         "ts, moved, fields, body (a string or a blob's index; "
                         "none: unchanged)]", i);
            goto rollback;
        }
        sqlite3_stmt *st;
        if (body) {
            if (cv_fieldcrypt_row_checksum(m->kr, cv_keyring_primary(m->kr), id, user,
                                kind, json_integer_value(tsv), body, blen,
                                new_sum) < 0) {
                reply = fail("cannot checksum: no primary key");
                goto rollback;
            }
            /* a rule that rounded ts takes the row's schedule to the hour
             * with it (earlier, never later), or its times would still
             * tell the minute; the columns not set keep their indexes
             * untouched, which is most of a scrub's cost otherwise */
            st = cv_db_stmt(m->db, moved
                ? "UPDATE events SET scrubbed_at = ?1, checksum = ?2,"
                  " body = ?4, ts = ?3,"
                  " created_at = created_at - created_at % 3600000,"
                  " expires_at = expires_at - expires_at % 3600000,"
                  " scrub_after = scrub_after - scrub_after % 3600000"
                  " WHERE seq = ?5 AND checksum = ?6 AND scrubbed_at IS NULL"
                : "UPDATE events SET scrubbed_at = ?1, checksum = ?2,"
                  " body = ?4 WHERE seq = ?5 AND checksum = ?6"
                  " AND scrubbed_at IS NULL AND ?3 IS NOT NULL");
        } else {
            st = cv_db_stmt(m->db,
                "UPDATE events SET scrubbed_at = ?1 WHERE seq = ?5"
                " AND checksum = ?6 AND scrubbed_at IS NULL");
        }
        if (!st) {
            reply = cv_control_db_fail(m->db, "cannot prepare the scrub");
            goto out;
        }
        sqlite3_bind_int64(st, 1, now);
        if (body) {
            sqlite3_bind_blob(st, 2, new_sum, sizeof new_sum, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, json_integer_value(tsv));
            sqlite3_bind_text(st, 4, body, (int)blen, SQLITE_STATIC);
        }
        sqlite3_bind_int64(st, 5, json_integer_value(seqv));
        sqlite3_bind_blob(st, 6, sum, (int)sumlen, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) {
            reply = cv_control_db_fail(m->db, "scrub batch failed");
            goto out;
        }
        if (sqlite3_changes(cv_db_handle(m->db)) == 0) {
            json_array_append(conflicts, seqv);
            continue;
        }
        incr_kind(by_kind, kind);
        n++;
        fields += json_integer_value(json_array_get(item, 7));
    }
    char err[512];
    json_t *detail = json_pack("{s:O, s:I, s:I}", "by_kind", by_kind,
                               "fields", (json_int_t)fields, "conflicts",
                               (json_int_t)json_array_size(conflicts));
    cv_audit_entry e = {.actor = actor_of(req), .action = "scrub",
                        .rows = n, .detail = detail};
    int rc = n ? cv_audit_append(m->db, m->kr, m->pol, cv_now_ms(), &e, err,
                                 sizeof err) : 0;
    json_decref(detail);
    if (rc < 0) {
        reply = fail("%s", err);
        goto rollback;
    }
    if (cv_db_commit(m->db) != SQLITE_OK) {
        reply = cv_control_db_fail(m->db, "cannot commit a scrub batch");
        goto out;
    }
    m->scrubbed += (uint64_t)n;
    m->audit_entries += n > 0;
    reply = json_pack("{s:b, s:I, s:O}", "ok", 1, "scrubbed", (json_int_t)n,
                      "conflicts", conflicts);
    goto out;
rollback:
    cv_db_rollback(m->db);
out:
    json_decref(by_kind);
    json_decref(conflicts);
    return reply;
}

static json_t *do_scrub_done(cv_writer *m, json_t *req)
{
    int64_t now = int_arg(req, "now", cv_now_ms());
    bool truncated = compact(m);
    int64_t due = cv_db_scrub_due(m->db, now);
    return json_pack("{s:b, s:I, s:b}", "ok", 1, "backlog", (json_int_t)due,
                     "wal_truncated", truncated);
}

/* ---- archive ----------------------------------------------------------- */

/* Rows an archive holds, deleted only while unchanged since it was taken:
 * a row rectified or scrubbed meanwhile stays (the archive's copy is then
 * the older one, and a restore of it finds the id already there). */
static json_t *do_archive_delete(cv_writer *m, json_t *req)
{
    json_t *rows = json_object_get(req, "rows");
    if (!json_is_array(rows) || json_array_size(rows) > MAX_BATCH)
        return fail("archive_delete needs \"rows\", at most %d [seq, sum]", MAX_BATCH);
    if (cv_db_begin(m->db) != SQLITE_OK)
        return cv_control_db_fail(m->db, "cannot begin an archive batch");
    sqlite3_stmt *st = cv_db_stmt(m->db,
        "DELETE FROM events WHERE seq = ? AND checksum = ?");
    if (!st)
        return cv_control_db_fail(m->db, "cannot prepare the deletion");
    int64_t deleted = 0, changed = 0;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) {
        uint8_t sum[CV_CHECKSUM_BYTES];
        size_t len;
        json_t *seq = json_array_get(r, 0);
        if (!json_is_integer(seq) || !sum_arg(json_array_get(r, 1), sum, &len)) {
            cv_db_rollback(m->db);
            return fail("archive row %zu is not [seq, sum (hex)]", i);
        }
        sqlite3_bind_int64(st, 1, json_integer_value(seq));
        sqlite3_bind_blob(st, 2, sum, (int)len, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            return cv_control_db_fail(m->db, "archive deletion failed");
        if (sqlite3_changes(cv_db_handle(m->db)))
            deleted++;
        else
            changed++;
    }
    if (cv_db_commit(m->db) != SQLITE_OK)
        return cv_control_db_fail(m->db, "cannot commit an archive batch");
    m->deleted += (uint64_t)deleted;
    return json_pack("{s:b, s:I, s:I}", "ok", 1, "deleted", (json_int_t)deleted,
                     "changed", (json_int_t)changed);
}

/* users.uid of a stored user id, added when new. -1 on error. */
static int64_t uid_of(cv_writer *m, const char *user)
{
    sqlite3_stmt *ins = cv_db_stmt(m->db, "INSERT INTO users(user_id) VALUES(?)"
                                          " ON CONFLICT(user_id) DO NOTHING");
    sqlite3_stmt *get = cv_db_stmt(m->db, "SELECT uid FROM users WHERE user_id = ?");
    if (!ins || !get)
        return -1;
    sqlite3_bind_text(ins, 1, user, -1, SQLITE_STATIC);
    int rc = sqlite3_step(ins);
    sqlite3_reset(ins);
    sqlite3_bind_text(get, 1, user, -1, SQLITE_STATIC);
    int64_t uid = rc == SQLITE_DONE && sqlite3_step(get) == SQLITE_ROW
                      ? sqlite3_column_int64(get, 0) : -1;
    sqlite3_reset(get);
    return uid;
}

/* Rows of an archive put back as they were stored, except those past
 * their retention (a sweep would take them again) and those of a user
 * erased after they were created (erasure.h). */
static json_t *do_archive_restore(cv_writer *m, json_t *req, const cv_blob *blobs,
                                  size_t nblobs)
{
    json_t *rows = json_object_get(req, "rows");
    int64_t now = int_arg(req, "now", cv_now_ms());
    if (!json_is_array(rows) || json_array_size(rows) > MAX_BATCH)
        return fail("archive_restore needs \"rows\", at most %d", MAX_BATCH);
    if (cv_db_begin(m->db) != SQLITE_OK)
        return cv_control_db_fail(m->db, "cannot begin an archive batch");
    int64_t restored = 0, dups = 0, expired = 0, erased = 0;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) {
        /* [ID, USER, KIND, TYPE, TS, CREATED, EXPIRES, SCRUB_AFTER,
         *  SCRUBBED_AT, BODY, SUM] */
        uint8_t sum[CV_CHECKSUM_BYTES];
        size_t sumlen;
        cv_row row = {
            .id = json_string_value(json_array_get(r, 0)),
            .kind = json_string_value(json_array_get(r, 2)),
            .type = json_string_value(json_array_get(r, 3)),
            .ts = json_integer_value(json_array_get(r, 4)),
            .created_at = json_integer_value(json_array_get(r, 5)),
            .expires_at = int_or(json_array_get(r, 6)),
            .scrub_after = int_or(json_array_get(r, 7)),
            .scrubbed_at = int_or(json_array_get(r, 8)),
        };
        const char *user = json_string_value(json_array_get(r, 1));
        if (!row.id || !user || !row.kind || !json_is_integer(json_array_get(r, 4)) ||
            !body_arg(json_array_get(r, 9), blobs, nblobs, &row.body, &row.body_len) ||
            !row.body || !sum_arg(json_array_get(r, 10), sum, &sumlen)) {
            cv_db_rollback(m->db);
            return fail("archive row %zu is not [id, user, kind, type, ts, created, "
                        "expires, scrub_after, scrubbed_at, body, sum]", i);
        }
        if (row.expires_at >= 0 && row.expires_at <= now) {
            expired++;
            continue;
        }
        int64_t gone = cv_erasure_erased_at(cv_db_handle(m->db), m->kr, user);
        if (gone >= 0 && gone >= row.created_at) {
            erased++;
            continue;
        }
        row.checksum = sum;
        row.checksum_len = sumlen;
        if ((row.uid = uid_of(m, user)) < 0)
            return cv_control_db_fail(m->db, "cannot add the row's user");
        int rc = cv_db_insert(m->db, &row);
        if (rc < 0)
            return cv_control_db_fail(m->db, "cannot put a row back");
        if (rc)
            restored++;
        else
            dups++;
    }
    if (cv_db_commit(m->db) != SQLITE_OK)
        return cv_control_db_fail(m->db, "cannot commit an archive batch");
    return json_pack("{s:b, s:I, s:I, s:I, s:I}", "ok", 1, "restored",
                     (json_int_t)restored, "duplicates", (json_int_t)dups,
                     "expired", (json_int_t)expired, "erased", (json_int_t)erased);
}

/* ---- audit ------------------------------------------------------------- */

static json_t *do_audit(cv_writer *m, json_t *req)
{
    const char *action = json_string_value(json_object_get(req, "action"));
    json_t *detail = json_object_get(req, "detail");
    if (!action || !*action)
        return fail("audit needs \"action\", a non-empty string");
    if (detail && !json_is_object(detail))
        return fail("\"detail\" must be an object");
    cv_audit_entry e = {.actor = actor_of(req), .action = action,
                        .subject = json_string_value(json_object_get(req, "subject")),
                        .rows = int_arg(req, "rows", 0), .detail = detail};
    json_t *err = append_audit(m, &e, cv_now_ms());
    return err ? err : json_pack("{s:b}", "ok", 1);
}

/* ---- db.compact --------------------------------------------------------- */

static json_t *do_compact(cv_writer *m, json_t *req)
{
    static const char *const members[] = {"pages", "max_ms", NULL};
    json_t *err = cv_control_check_members(req, members);
    if (err)
        return err;
    json_t *pv = json_object_get(req, "pages"), *tv = json_object_get(req, "max_ms");
    if ((pv && !json_is_null(pv) && (!json_is_integer(pv) ||
         json_integer_value(pv) < 1 || json_integer_value(pv) > 100000)) ||
        (tv && !json_is_null(tv) && (!json_is_integer(tv) ||
         json_integer_value(tv) < 1 || json_integer_value(tv) > 10000)))
        return cv_control_error(CV_ERR_BAD_REQUEST, 0, "\"pages\" (per step) must be "
                              "from 1 to 100000 and \"max_ms\" from 1 to 10000");
    cv_db_compaction c;
    if (cv_db_compact_step(m->db, json_is_integer(pv) ? json_integer_value(pv) : 256,
                           json_is_integer(tv) ? json_integer_value(tv) : 50,
                           &c) < 0) {
        cv_err("db.compact: %s: %s", cv_db_path(m->db), cv_db_errmsg(m->db));
        return cv_control_error(CV_ERR_INTERNAL, 0, "incremental vacuum failed; see "
                              "store's log");
    }
    static const char *const modes[] = {"none", "full", "incremental"};
    json_t *r = json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
        "ok", 1, "auto_vacuum",
        c.auto_vacuum >= 0 && c.auto_vacuum <= 2 ? modes[c.auto_vacuum] : "none",
        "freed", (json_int_t)(c.freelist_before - c.freelist_after),
        "freelist_before", (json_int_t)c.freelist_before,
        "freelist_after", (json_int_t)c.freelist_after,
        "pages_before", (json_int_t)c.pages_before,
        "pages_after", (json_int_t)c.pages_after,
        "steps", (json_int_t)c.steps, "ms", (json_int_t)c.ms,
        "more", c.auto_vacuum == 2 && c.freelist_after > 0);
    if (c.auto_vacuum != 2)
        /* not an error to retry: the file must be rebuilt once, offline */
        json_object_set_new(r, "message", json_string(
            "the database was created without auto_vacuum=INCREMENTAL, so its "
            "free pages cannot be given back in steps; convert it once, with "
            "store stopped: sqlite3 DB 'PRAGMA auto_vacuum=INCREMENTAL; VACUUM' "
            "(a full rewrite: it needs the database's size free on disk)"));
    return r;
}

/* The rows' handlers: each hands the request to its carrier. */
#define ON(name, call)                                          \
    static json_t *name(void *m, cv_control_request *r)         \
    {                                                           \
        return call;                                            \
    }
ON(op_sweep, do_sweep(m, r->req))
ON(op_sweep_done, do_sweep_done(m, r->req))
ON(op_erase, do_erase(m, r->req))
ON(op_erasures_merge, do_erasures_merge(m, r->req))
ON(op_rectify, do_rectify(m, r->req))
ON(op_audit, do_audit(m, r->req))
ON(op_scrub, do_scrub(m, r->req, r->blobs, r->nblobs))
ON(op_scrub_done, do_scrub_done(m, r->req))
ON(op_archive_delete, do_archive_delete(m, r->req))
ON(op_archive_restore, do_archive_restore(m, r->req, r->blobs, r->nblobs))
ON(op_rewrap, cv_rewrap_batch(m, r->req))
ON(op_segment, cv_segment_op(m, r->req))
ON(op_cache_put, cv_modelcache_put(m, r->req))
ON(op_cache_delete, cv_modelcache_delete(m, r->req))
ON(op_compact, do_compact(m, r->req))
#undef ON

/* user.segment and the cache's changes store what an application asks
 * for (write); the rest keep the store as a whole (admin) */
static const cv_control_op ops[] = {
    {"sweep", CV_CONTROL_ADMIN, op_sweep, NULL},
    {"sweep_done", CV_CONTROL_ADMIN, op_sweep_done, NULL},
    {"erase", CV_CONTROL_ADMIN, op_erase, NULL},
    {"erasures_merge", CV_CONTROL_ADMIN, op_erasures_merge, NULL},
    {"rectify", CV_CONTROL_ADMIN, op_rectify, NULL},
    {"audit", CV_CONTROL_ADMIN, op_audit, NULL},
    {"scrub", CV_CONTROL_ADMIN, op_scrub, NULL},
    {"scrub_done", CV_CONTROL_ADMIN, op_scrub_done, NULL},
    {"archive_delete", CV_CONTROL_ADMIN, op_archive_delete, NULL},
    {"archive_restore", CV_CONTROL_ADMIN, op_archive_restore, NULL},
    {"rewrap", CV_CONTROL_ADMIN, op_rewrap, NULL},
    {"db.compact", CV_CONTROL_ADMIN, op_compact, NULL},
    {"user.segment", CV_CONTROL_WRITE, op_segment, NULL},
    {"cache.put", CV_CONTROL_WRITE, op_cache_put, NULL},
    {"cache.delete", CV_CONTROL_WRITE, op_cache_delete, NULL},
    {NULL, 0, NULL, NULL},
};

const cv_control_family cv_maint_family = {ops, 0};

json_t *cv_maint_do(cv_writer *m, json_t *req)
{
    return cv_maint_do_blobs(m, req, NULL, 0);
}

json_t *cv_maint_do_blobs(cv_writer *m, json_t *req, const cv_blob *blobs,
                          size_t nblobs)
{
    cv_control_request r = {
        .op = cv_control_find_op(&cv_maint_family,
                                 json_string_value(json_object_get(req, "op"))),
        .req = req, .blobs = blobs, .nblobs = nblobs};
    return r.op ? cv_control_run(&cv_maint_family, m, &r) : NULL;
}
