/* sweep.c - one run of the TTL sweep. See sweep.h. */
#include "ops/sweep.h"

#include "storage/db.h"
#include "ops/session.h"
#include "base/progress.h"
#include "base/util.h"

#include <string.h>

static void add_counts(json_t *into, json_t *from)
{
    const char *k;
    json_t *v;
    json_object_foreach(from, k, v) {
        json_int_t have = json_integer_value(json_object_get(into, k));
        json_object_set_new(into, k, json_integer(have + json_integer_value(v)));
    }
}

static int dry_run(const cv_config *cfg, int64_t now, json_t **result)
{
    char err[1024];
    int code;
    cv_db *db = cv_db_open_reader(cfg->db_file, &code, err, sizeof err);
    if (!db) {
        cv_err("%s", err);
        return code;
    }
    sqlite3_stmt *st;
    int status = 0;
    json_t *by_kind = json_object();
    int64_t total = 0, audit = 0;
    if (sqlite3_prepare_v2(cv_db_handle(db),
                           "SELECT kind, count(*) FROM events WHERE expires_at <= ?"
                           " GROUP BY kind", -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_int64(st, 1, now);
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t n = sqlite3_column_int64(st, 1);
        json_object_set_new(by_kind, (const char *)sqlite3_column_text(st, 0),
                            json_integer(n));
        total += n;
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(cv_db_handle(db),
                           "SELECT count(*) FROM audit WHERE expires_at <= ?",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_int64(st, 1, now);
    if (sqlite3_step(st) == SQLITE_ROW)
        audit = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    *result = json_pack("{s:b, s:I, s:O, s:I}", "dry_run", 1, "would_delete",
                        (json_int_t)total, "by_kind", by_kind, "audit_expired",
                        (json_int_t)audit);
    goto out;
dberr:
    cv_err("cannot count expired rows in %s: %s", cv_db_path(db), cv_db_errmsg(db));
    status = EX_IOERR;
out:
    json_decref(by_kind);
    cv_db_close(&db);
    return status;
}

/* One request; the reply when ok, else NULL with the reason logged. */
static json_t *call(cv_session *s, json_t *req)
{
    char err[512];
    json_t *r = cv_session_call(s, req, err, sizeof err);
    json_decref(req);
    return cv_session_ok(r, err, "sweep");
}

int cv_sweep_run(const cv_config *cfg, const cv_run_opts *o, json_t **result)
{
    int64_t now = cv_now_ms(), t0 = cv_mono_ms();
    *result = NULL;
    if (o->dry_run)
        return dry_run(cfg, now, result);

    int status = 0;
    cv_session *s = cv_session_open(cfg, "ctxvault-ttl-sweep", o->via_store_only,
                                         &status);
    if (!s)
        return status;
    json_t *by_kind = json_object();
    int64_t deleted = 0, audit = 0, cache = 0;
    cv_progress progress;
    cv_progress_init(&progress, "sweep");
    bool more = true;
    while (more && !cv_stop_requested) {
        json_t *r = call(s, json_pack("{s:s, s:I, s:i}", "op", "sweep", "now",
                                      (json_int_t)now, "batch", o->batch));
        if (!r) {
            status = EX_SOFTWARE;
            break;
        }
        deleted += json_integer_value(json_object_get(r, "deleted"));
        audit += json_integer_value(json_object_get(r, "audit"));
        cache += json_integer_value(json_object_get(r, "cache"));
        add_counts(by_kind, json_object_get(r, "by_kind"));
        more = json_is_true(json_object_get(r, "more"));
        json_decref(r);
        cv_progress_update(&progress, (uint64_t)deleted, NULL);
        if (more)
            cv_nap_ms(o->pause_ms);
    }
    cv_progress_done(&progress);
    int64_t ms = cv_mono_ms() - t0;
    /* recorded even when cut short: what went, went */
    json_t *r = call(s, json_pack("{s:s, s:I, s:I, s:O, s:I, s:s}", "op",
                                  "sweep_done", "now", (json_int_t)now,
                                  "deleted", (json_int_t)deleted, "by_kind",
                                  by_kind, "ms", (json_int_t)ms, "actor",
                                  o->actor));
    if (!r && !status)
        status = EX_SOFTWARE;
    *result = json_pack("{s:I, s:O, s:I, s:I, s:I, s:I, s:I, s:b, s:b}",
        "deleted", (json_int_t)deleted, "by_kind", by_kind,
        "audit_expired", (json_int_t)audit, "cache_expired", (json_int_t)cache,
        "ms", (json_int_t)ms,
        "rows_per_s", (json_int_t)(ms > 0 ? deleted * 1000 / ms : deleted),
        "backlog", (json_int_t)(r ? json_integer_value(json_object_get(r, "backlog")) : -1),
        "wal_truncated", r && json_is_true(json_object_get(r, "wal_truncated")),
        "complete", !status && !cv_stop_requested);
    json_decref(r);
    json_decref(by_kind);
    cv_session_close(&s);
    return status;
}
