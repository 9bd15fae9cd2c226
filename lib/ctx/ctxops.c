/* ctxops.c - stats for a period, meta and cache.get (ctxops.h). */
#include "ctx/ctxops.h"

#include "ctx/ctxapi.h"
#include "ops/query.h"
#include "base/time.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *db_error(cv_db *db, const char *what)
{
    cv_err("cannot %s in %s: %s", what, cv_db_path(db), cv_db_errmsg(db));
    return cv_control_error(CV_ERR_INTERNAL, 0, "cannot %s; see store's log", what);
}

/* --- stats for a period ------------------------------------------------ */

/* Rows whose ts is in [since, until): counts per kind and type, bytes,
 * and the users with any. Each user's rows of the period are one range
 * of events_user_ts (uid, ts), reached from users: the cost follows the
 * users and the rows in the period, not the table (events has no index
 * on ts alone, and one would slow every insert). bytes: the bodies'. */
static json_t *period_stats(cv_db *db, int64_t since, int64_t until)
{
    sqlite3 *h = cv_db_handle(db);
    int64_t lo = since >= 0 ? since : INT64_MIN;
    int64_t hi = until >= 0 ? until : INT64_MAX;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h,
            "SELECT e.kind, coalesce(e.type, ''), count(*),"
            " sum(length(CAST(e.body AS BLOB)))"
            " FROM users u CROSS JOIN events e INDEXED BY events_user_ts"
            " ON e.uid = u.uid AND e.ts >= ?1 AND e.ts < ?2"
            " GROUP BY e.kind, e.type ORDER BY 1, 2", -1, &st, NULL) != SQLITE_OK)
        return db_error(db, "count the period's rows");
    sqlite3_bind_int64(st, 1, lo);
    sqlite3_bind_int64(st, 2, hi);
    json_t *kinds = json_object();
    int64_t events = 0, bytes = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(st, 0);
        int64_t n = sqlite3_column_int64(st, 2), b = sqlite3_column_int64(st, 3);
        json_t *k = json_object_get(kinds, kind);
        if (!k) {
            k = json_pack("{s:I, s:I, s:{}}", "events", (json_int_t)0, "bytes",
                          (json_int_t)0, "by_type");
            json_object_set_new(kinds, kind, k);
        }
        json_object_set_new(k, "events", json_integer(
            json_integer_value(json_object_get(k, "events")) + n));
        json_object_set_new(k, "bytes", json_integer(
            json_integer_value(json_object_get(k, "bytes")) + b));
        json_object_set_new(json_object_get(k, "by_type"),
                            (const char *)sqlite3_column_text(st, 1),
                            json_integer(n));
        events += n;
        bytes += b;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(kinds);
        return db_error(db, "count the period's rows");
    }
    /* index only: one probe per user */
    int64_t active = -1;
    if (sqlite3_prepare_v2(h,
            "SELECT count(*) FROM users u WHERE EXISTS (SELECT 1 FROM events e"
            " INDEXED BY events_user_ts WHERE e.uid = u.uid AND e.ts >= ?1"
            " AND e.ts < ?2)", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, lo);
        sqlite3_bind_int64(st, 2, hi);
        if (sqlite3_step(st) == SQLITE_ROW)
            active = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    if (active < 0) {
        json_decref(kinds);
        return db_error(db, "count the period's users");
    }
    return json_pack("{s:b, s:{s:o, s:o}, s:I, s:I, s:I, s:o}", "ok", 1,
                     "period", "since", cv_control_time_json(since), "until",
                     cv_control_time_json(until), "events", (json_int_t)events,
                     "bytes", (json_int_t)bytes, "active_users",
                     (json_int_t)active, "by_kind", kinds);
}

static json_t *stats(const cv_ctxops *o, json_t *req)
{
    static const char *const members[] = {"since", "until", NULL};
    json_t *err = cv_control_check_members(req, members);
    if (err)
        return err;
    int64_t since, until;
    if (!cv_ctxapi_time_arg(json_object_get(req, "since"), &since))
        return cv_control_error(CV_ERR_BAD_REQUEST, 0, "\"since\" must be an RFC 3339 "
                              "time or ms since the epoch");
    if (!cv_ctxapi_time_arg(json_object_get(req, "until"), &until))
        return cv_control_error(CV_ERR_BAD_REQUEST, 0, "\"until\" must be an RFC 3339 "
                              "time or ms since the epoch");
    if (since < 0 && until < 0) {
        /* the reply of control API version 1, as it was */
        json_t *r = cv_query_stats_json(o->db);
        if (!r)
            return cv_control_error(CV_ERR_INTERNAL, 0, "cannot read the database");
        json_object_set_new(r, "ok", json_true());
        return r;
    }
    return period_stats(o->db, since, until);
}

/* --- meta --------------------------------------------------------------- */

/* The newest audit entry of an action (a plain column), or -1. */
static int64_t last_action(cv_db *db, const char *action)
{
    sqlite3_stmt *st;
    int64_t at = -1;
    if (sqlite3_prepare_v2(cv_db_handle(db), "SELECT max(at) FROM audit "
                           "WHERE action = ?", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, action, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        at = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return at;
}

static json_t *meta(const cv_ctxops *o, json_t *req)
{
    static const char *const members[] = {NULL};
    json_t *err = cv_control_check_members(req, members);
    if (err)
        return err;
    cv_modelcache_counters c = *o->cache;
    c.puts = o->puts;
    json_t *cache = cv_modelcache_stats(o->db, cv_now_ms(), &c);
    if (!cache)
        return cv_control_error(CV_ERR_INTERNAL, 0, "cannot read the cache table");
    return json_pack("{s:b, s:I, s:I, s:o, s:o, s:o}", "ok", 1,
        "schema_version", (json_int_t)cv_db_scalar(o->db,
            "SELECT value FROM meta WHERE key = 'schema_version'"),
        "journal_batch", (json_int_t)cv_db_scalar(o->db,
            "SELECT coalesce(max(value), 0) FROM meta WHERE key = 'journal_lsn'"),
        "last_sweep", cv_control_time_json(last_action(o->db, "sweep")),
        "last_backup", cv_control_time_json(last_action(o->db, "backup")),
        "cache", cache);
}

/* The rows' handlers: each reads through o's connection. */
static json_t *ready(const cv_ctxops *o)
{
    return o->db ? NULL
                 : cv_control_error(CV_ERR_INTERNAL, 0, "cannot open the "
                                    "database for reading");
}

static json_t *op_stats(void *state, cv_control_request *r)
{
    json_t *err = ready(state);
    return err ? err : stats(state, r->req);
}

static json_t *op_meta(void *state, cv_control_request *r)
{
    json_t *err = ready(state);
    return err ? err : meta(state, r->req);
}

static json_t *op_cache_get(void *state, cv_control_request *r)
{
    const cv_ctxops *o = state;
    json_t *err = ready(o);
    return err ? err : cv_modelcache_get(o->db, r->req, o->cache);
}

static const cv_control_op ops[] = {
    {"stats", CV_CONTROL_READ, op_stats, NULL},
    {"meta", CV_CONTROL_READ, op_meta, NULL},
    {"cache.get", CV_CONTROL_READ, op_cache_get, NULL},
    {NULL, 0, NULL, NULL},
};

const cv_control_family cv_ctxops_family = {ops, 0};

json_t *cv_ctxops_answer(const cv_ctxops *o, json_t *req)
{
    cv_control_request r = {.req = req};
    return cv_control_answer(&cv_ctxops_family, (void *)o, &r);
}
