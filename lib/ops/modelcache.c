/* modelcache.c - model caches: cache.put, cache.get, expiry (modelcache.h). */
#include "ops/modelcache.h"

#include "storage/audit.h"
#include "net/control.h"
#include "ops/query.h"
#include "base/time.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a bad request's reply (a macro, so each call's format is checked) */
#define bad(...) cv_control_error(CV_ERR_BAD_REQUEST, 0, __VA_ARGS__)

/* "ns", checked (NULL when absent): NULL or the error reply. */
static json_t *check_ns(json_t *req, const char **ns)
{
    json_t *err = cv_control_string_arg(req, "ns", ns);
    if (!err && *ns && (strlen(*ns) > CV_MODELCACHE_NS_MAX ||
                 strspn(*ns, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(*ns)))
        err = bad("\"ns\" must be 1 to %d of a-z, 0-9, '_', '.' or '-'",
                  CV_MODELCACHE_NS_MAX);
    return err;
}

/* "ns" and "key", checked: NULL or the error reply. */
static json_t *ns_key(json_t *req, const char **ns, const char **key)
{
    json_t *err = check_ns(req, ns);
    if (!err && !*ns)
        err = bad("\"ns\" is required, a non-empty string");
    if (!err)
        err = cv_control_string_arg(req, "key", key);
    if (!err && !*key)
        err = bad("\"key\" is required, a non-empty string");
    if (!err && strlen(*key) > CV_MODELCACHE_KEY_MAX)
        err = cv_control_error(CV_ERR_TOO_LARGE, 0, "\"key\" is longer than %d bytes",
                             CV_MODELCACHE_KEY_MAX);
    return err;
}

json_t *cv_modelcache_put(cv_writer *m, json_t *req)
{
    static const char *const members[] = {"ns", "key", "value", "ttl", "user", NULL};
    const char *ns, *key, *user;
    json_t *err = cv_control_check_members(req, members);
    if (!err)
        err = ns_key(req, &ns, &key);
    if (!err)
        err = cv_control_string_arg(req, "user", &user);
    if (err)
        return err;
    json_t *value = json_object_get(req, "value");
    json_t *ttl = json_object_get(req, "ttl");
    if (!value)
        return bad("\"value\" is required (any JSON)");
    if (!json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
        json_integer_value(ttl) > CV_MODELCACHE_TTL_MAX)
        return bad("\"ttl\" must be a whole number of seconds from 1 to %lld",
                   CV_MODELCACHE_TTL_MAX);
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return cv_control_error(CV_ERR_INTERNAL, 0, "cannot encode the value");
    if (strlen(text) > CV_MODELCACHE_VALUE_MAX) {
        free(text);
        return cv_control_error(CV_ERR_TOO_LARGE, 0, "\"value\" is longer than %d "
                              "bytes as JSON", CV_MODELCACHE_VALUE_MAX);
    }
    int64_t uid = -1;
    if (user && (err = cv_query_user_uid(m->db, m->pol, m->kr, user, &uid, NULL,
                                       NULL))) {
        free(text);
        return err;
    }
    int64_t now = cv_now_ms();
    int64_t expires = now + json_integer_value(ttl) * 1000;
    sqlite3_stmt *st;
    if (cv_db_begin(m->db) != SQLITE_OK)
        goto dberr;
    /* prepared each time, not cached: the connection's statement cache
     * is for the per-event statements */
    if (sqlite3_prepare_v2(cv_db_handle(m->db),
            "INSERT INTO mlcache(ns, key, value, uid, created_at, expires_at)"
            " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(ns, key) DO UPDATE SET"
            " value = ?3, uid = ?4, created_at = ?5, expires_at = ?6", -1, &st,
            NULL) != SQLITE_OK)
        goto rollback;
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
    if (uid >= 0)
        sqlite3_bind_int64(st, 4, uid);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_int64(st, 6, expires);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        goto rollback;
    if (cv_db_commit(m->db) != SQLITE_OK)
        goto rollback;
    free(text);
    m->cache_puts++;
    return json_pack("{s:b, s:o}", "ok", 1, "expires_at", cv_control_time_json(expires));
rollback:
    cv_err("cannot put a cache entry in %s: %s", cv_db_path(m->db),
           cv_db_errmsg(m->db));
    cv_db_rollback(m->db);
    free(text);
    return cv_control_error(CV_ERR_INTERNAL, 0, "cannot store the entry; see store's "
                          "log");
dberr:
    free(text);
    cv_err("cannot begin a cache transaction in %s: %s", cv_db_path(m->db),
           cv_db_errmsg(m->db));
    return cv_control_error(CV_ERR_INTERNAL, 0, "cannot store the entry; see store's "
                          "log");
}

json_t *cv_modelcache_delete(cv_writer *m, json_t *req)
{
    static const char *const members[] = {"user", "ns", "key", NULL};
    const char *user, *ns = NULL, *key = NULL;
    json_t *err = cv_control_check_members(req, members);
    if (!err)
        err = cv_control_string_arg(req, "user", &user);
    if (!err && !user)
        err = bad("\"user\" is required, a non-empty string");
    /* ns and key as cache.put checks them (null: absent); a key is only
     * one within a ns */
    if (!err)
        err = cv_control_string_arg(req, "key", &key);
    if (!err)
        err = key ? ns_key(req, &ns, &key) : check_ns(req, &ns);
    if (err)
        return err;
    /* every number the user is stored under: an entry may have been put
     * under any of them */
    int64_t uid, uids[CV_USER_UIDS_MAX];
    size_t nid = 0;
    if ((err = cv_query_user_uid(m->db, m->pol, m->kr, user, &uid, uids, &nid)))
        return err;
    char sql[1024];
    size_t n = (size_t)snprintf(sql, sizeof sql, "DELETE FROM mlcache WHERE uid IN (");
    n += cv_query_uid_list(sql + n, sizeof sql - n, nid);
    snprintf(sql + n, sizeof sql - n, ")%s%s", ns ? " AND ns = ?" : "",
             key ? " AND key = ?" : "");
    char why[512];
    if (cv_db_begin(m->db) != SQLITE_OK) {
        snprintf(why, sizeof why, "%s", cv_db_errmsg(m->db));
        cv_err("cache.delete failed, nothing deleted: %s", why);
        return cv_control_error(CV_ERR_INTERNAL, 0, "nothing deleted: %s", why);
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(m->db), sql, -1, &st, NULL) != SQLITE_OK)
        goto failed;
    int b = 1;
    for (size_t i = 0; i < nid; i++)
        sqlite3_bind_int64(st, b++, uids[i]);
    if (ns)
        sqlite3_bind_text(st, b++, ns, -1, SQLITE_STATIC);
    if (key)
        sqlite3_bind_text(st, b++, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        goto failed;
    int64_t deleted = sqlite3_changes(cv_db_handle(m->db));
    if (deleted == 0) {
        cv_db_rollback(m->db);
        if (key)
            return cv_control_error(CV_ERR_NOT_FOUND, 0, "the user has no cache entry "
                                  "%s with that key", ns ? ns : "");
        if (ns)
            return cv_control_error(CV_ERR_NOT_FOUND, 0, "the user has no cache "
                                  "entry in %s", ns);
        return cv_control_error(CV_ERR_NOT_FOUND, 0, "the user has no cache entry");
    }
    /* audited as context.delete is: the namespace is the application's
     * own word, the key may be personal (a user id, a query): neither */
    const char *actor = json_string_value(json_object_get(req, "actor"));
    json_t *detail = json_pack("{s:s}", "by", key ? "key" : ns ? "ns" : "all");
    cv_audit_entry e = {.actor = actor && *actor ? actor : "control",
                        .action = "cache-delete", .subject = user,
                        .rows = deleted, .detail = detail};
    rc = cv_audit_append(m->db, m->kr, m->pol, cv_now_ms(), &e, why, sizeof why);
    json_decref(detail);
    if (rc < 0) {
        cv_db_rollback(m->db);
        cv_err("cache.delete failed, nothing deleted: %s", why);
        return cv_control_error(CV_ERR_INTERNAL, 0, "nothing deleted: %s", why);
    }
    if (cv_db_commit(m->db) != SQLITE_OK)
        goto failed;
    m->audit_entries++;
    m->cache_deleted += (uint64_t)deleted;
    /* what was deleted leaves the file and the WAL, as an erasure's does */
    cv_writer_compact(m->db);
    return json_pack("{s:b, s:I}", "ok", 1, "deleted", (json_int_t)deleted);
failed:
    snprintf(why, sizeof why, "%s", cv_db_errmsg(m->db));
    cv_db_rollback(m->db);
    cv_err("cache.delete failed, nothing deleted: %s", why);
    return cv_control_error(CV_ERR_INTERNAL, 0, "nothing deleted: %s", why);
}

json_t *cv_modelcache_get(cv_db *db, json_t *req, cv_modelcache_counters *c)
{
    static const char *const members[] = {"ns", "key", NULL};
    const char *ns, *key;
    json_t *err = cv_control_check_members(req, members);
    if (!err)
        err = ns_key(req, &ns, &key);
    if (err)
        return err;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(db),
            "SELECT value, created_at, expires_at FROM mlcache"
            " WHERE ns = ? AND key = ? AND expires_at > ?", -1, &st,
            NULL) != SQLITE_OK) {
        cv_err("cannot read the cache in %s: %s", cv_db_path(db), cv_db_errmsg(db));
        return cv_control_error(CV_ERR_INTERNAL, 0, "cannot read the cache; see "
                              "store's log");
    }
    sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, cv_now_ms());
    json_t *r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        json_error_t je;
        json_t *v = json_loadb((const char *)sqlite3_column_text(st, 0),
                               (size_t)sqlite3_column_bytes(st, 0),
                               JSON_DECODE_ANY, &je);
        r = json_pack("{s:b, s:b, s:o, s:o, s:o}", "ok", 1, "hit", 1, "value",
                      v ? v : json_null(), "created_at",
                      cv_control_time_json(sqlite3_column_int64(st, 1)), "expires_at",
                      cv_control_time_json(sqlite3_column_int64(st, 2)));
        if (c)
            c->hits++;
    } else if (rc == SQLITE_DONE) {
        /* a miss is an answer, not an error: caches miss */
        r = json_pack("{s:b, s:b, s:n}", "ok", 1, "hit", 0, "value");
        if (c)
            c->misses++;
    } else {
        cv_err("cannot read the cache in %s: %s", cv_db_path(db), cv_db_errmsg(db));
        r = cv_control_error(CV_ERR_INTERNAL, 0, "cannot read the cache; see store's "
                           "log");
    }
    sqlite3_finalize(st);
    return r;
}

int64_t cv_modelcache_expire(cv_db *db, int64_t now, int64_t batch)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(db),
            "DELETE FROM mlcache WHERE rowid IN (SELECT rowid FROM mlcache"
            " WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)", -1, &st,
            NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, batch);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? sqlite3_changes(cv_db_handle(db)) : -1;
}

json_t *cv_modelcache_stats(cv_db *db, int64_t now, const cv_modelcache_counters *c)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(db),
            "SELECT ns, count(*), sum(expires_at <= ?), sum(length(value))"
            " FROM mlcache GROUP BY ns ORDER BY ns", -1, &st, NULL) != SQLITE_OK) {
        cv_err("cannot read the cache in %s: %s", cv_db_path(db), cv_db_errmsg(db));
        return NULL;
    }
    sqlite3_bind_int64(st, 1, now);
    json_t *by_ns = json_object();
    int64_t entries = 0, expired = 0, bytes = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t n = sqlite3_column_int64(st, 1);
        json_object_set_new(by_ns, (const char *)sqlite3_column_text(st, 0),
                            json_integer(n));
        entries += n;
        expired += sqlite3_column_int64(st, 2);
        bytes += sqlite3_column_int64(st, 3);
    }
    sqlite3_finalize(st);
    return json_pack("{s:I, s:I, s:I, s:o, s:I, s:I, s:I}", "entries",
                     (json_int_t)entries, "expired", (json_int_t)expired,
                     "bytes", (json_int_t)bytes, "by_ns", by_ns, "hits",
                     (json_int_t)(c ? c->hits : 0), "misses",
                     (json_int_t)(c ? c->misses : 0), "puts",
                     (json_int_t)(c ? c->puts : 0));
}
