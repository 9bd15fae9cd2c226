/* segment.c - user.segment (segment.h). */
#include "ops/segment.h"

#include "net/control.h"
#include "ops/query.h"
#include "base/time.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cv_segment_classify(const cv_segment_rules *r,
                                const cv_segment_inputs *in)
{
    if (in->last_ts < 0 || in->now - in->last_ts >= r->dormant_ms)
        return "dormant";
    if (in->now - in->first_ts < r->new_ms)
        return "new";
    if (in->interactions >= r->power_count && in->types >= r->power_types)
        return "power";
    if (in->interactions >= r->regular_count)
        return "regular";
    return "casual";
}

json_t *cv_segment_rules_json(const cv_segment_rules *r)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                     "window_ms", (json_int_t)r->window_ms,
                     "dormant_after_ms", (json_int_t)r->dormant_ms,
                     "new_within_ms", (json_int_t)r->new_ms,
                     "power_interactions", (json_int_t)r->power_count,
                     "power_types", (json_int_t)r->power_types,
                     "regular_interactions", (json_int_t)r->regular_count,
                     "stale_after_ms", (json_int_t)r->stale_ms);
}

/* sql with "uid IN (%s)" filled for n numbers, prepared and bound from
 * parameter 1; the caller binds the rest. NULL on error. */
static sqlite3_stmt *prepare_uids(cv_db *db, const char *fmt,
                                  const int64_t *uids, size_t n)
{
    char list[CV_USER_UIDS_MAX * 2 + 1], sql[1024];
    cv_query_uid_list(list, sizeof list, n);
    snprintf(sql, sizeof sql, fmt, list);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    for (size_t i = 0; i < n; i++)
        sqlite3_bind_int64(st, (int)i + 1, uids[i]);
    return st;
}

/* The user's interactions: first and last ts (from the covering index
 * (uid, kind, ts)), then the window's count and types (the window's
 * range of it, with the rows for their type). */
static int gather(cv_db *db, const cv_segment_rules *r, const int64_t *uids,
                  size_t n, cv_segment_inputs *in)
{
    sqlite3_stmt *st = prepare_uids(db,
        "SELECT min(ts), max(ts) FROM events"
        " WHERE uid IN (%s) AND kind = 'interaction'", uids, n);
    if (!st || sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return -1;
    }
    bool any = sqlite3_column_type(st, 0) != SQLITE_NULL;
    in->first_ts = any ? sqlite3_column_int64(st, 0) : -1;
    in->last_ts = any ? sqlite3_column_int64(st, 1) : -1;
    sqlite3_finalize(st);
    st = prepare_uids(db,
        "SELECT count(*), count(DISTINCT type) FROM events"
        " WHERE uid IN (%s) AND kind = 'interaction' AND ts >= ?", uids, n);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, (int)n + 1, in->now - r->window_ms);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        in->interactions = sqlite3_column_int64(st, 0);
        in->types = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* The newest interaction's seq now: a greater one than the stored
 * result's makes it stale. -1 on error. */
static int64_t newest_seq(cv_db *db, const int64_t *uids, size_t n)
{
    sqlite3_stmt *st = prepare_uids(db,
        "SELECT coalesce(max(seq), 0) FROM events"
        " WHERE uid IN (%s) AND kind = 'interaction'", uids, n);
    int64_t seq = st && sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0)
                                                        : -1;
    sqlite3_finalize(st);
    return seq;
}

static json_t *internal(cv_db *db, const char *what)
{
    cv_err("user.segment: cannot %s in %s: %s", what, cv_db_path(db),
           cv_db_errmsg(db));
    return cv_control_error(CV_ERR_INTERNAL, 0, "cannot %s; see store's log", what);
}

static json_t *reply(const char *segment, int64_t computed_at, bool recomputed,
                     json_t *inputs)
{
    return json_pack("{s:b, s:s, s:o, s:b, s:O}", "ok", 1, "segment", segment,
                     "computed_at", cv_control_time_json(computed_at), "recomputed",
                     recomputed, "inputs", inputs);
}

/* The stored result when it is fresh (see segment.h), else NULL. */
static json_t *stored_if_fresh(cv_db *db, int64_t uid, int64_t now,
                               const cv_segment_rules *r, json_t *rules,
                               int64_t seq_now)
{
    sqlite3_stmt *st;
    json_t *out = NULL;
    if (sqlite3_prepare_v2(cv_db_handle(db), "SELECT segment, inputs, last_seq,"
                           " computed_at FROM segments WHERE uid = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_int64(st, 1, uid);
    if (sqlite3_step(st) == SQLITE_ROW) {
        int64_t last_seq = sqlite3_column_int64(st, 2);
        int64_t at = sqlite3_column_int64(st, 3);
        json_error_t je;
        json_t *inputs = json_loads((const char *)sqlite3_column_text(st, 1), 0, &je);
        if (inputs && now - at < r->stale_ms && now >= at && seq_now <= last_seq &&
            json_equal(json_object_get(inputs, "rules"), rules))
            out = reply((const char *)sqlite3_column_text(st, 0), at, false,
                        inputs);
        json_decref(inputs);
    }
    sqlite3_finalize(st);
    return out;
}

json_t *cv_segment_op(cv_writer *m, json_t *req)
{
    static const char *const members[] = {"user", "refresh", NULL};
    const char *user;
    json_t *err = cv_control_check_members(req, members);
    if (!err)
        err = cv_control_string_arg(req, "user", &user);
    if (err)
        return err;
    if (!user)
        return cv_control_error(CV_ERR_BAD_REQUEST, 0, "\"user\" is required, a "
                              "non-empty string");
    json_t *refresh = json_object_get(req, "refresh");
    if (refresh && !json_is_boolean(refresh) && !json_is_null(refresh))
        return cv_control_error(CV_ERR_BAD_REQUEST, 0, "\"refresh\" must be true or "
                              "false");
    if (!m->cfg)
        return cv_control_error(CV_ERR_INTERNAL, 0, "no segment rules configured");
    const cv_segment_rules *r = &m->cfg->segments;
    int64_t uid, uids[CV_USER_UIDS_MAX];
    size_t n;
    if ((err = cv_query_user_uid(m->db, m->pol, m->kr, user, &uid, uids, &n)))
        return err;
    cv_segment_inputs in = {.now = cv_now_ms()};
    json_t *rules = cv_segment_rules_json(r);
    int64_t seq = newest_seq(m->db, uids, n);
    if (seq < 0) {
        json_decref(rules);
        return internal(m->db, "read the user's interactions");
    }
    json_t *fresh = json_is_true(refresh) ? NULL
                    : stored_if_fresh(m->db, uid, in.now, r, rules, seq);
    if (fresh) {
        json_decref(rules);
        return fresh;
    }
    if (gather(m->db, r, uids, n, &in) < 0) {
        json_decref(rules);
        return internal(m->db, "read the user's interactions");
    }
    const char *segment = cv_segment_classify(r, &in);
    json_t *inputs = json_pack("{s:I, s:I, s:o, s:o, s:o, s:o}",
        "interactions", (json_int_t)in.interactions,
        "types", (json_int_t)in.types,
        "first_interaction", cv_control_time_json(in.first_ts),
        "last_interaction", cv_control_time_json(in.last_ts),
        "since_last_ms", in.last_ts < 0 ? json_null()
                                        : json_integer(in.now - in.last_ts),
        "rules", rules);
    char *text = json_dumps(inputs, JSON_COMPACT);
    sqlite3_stmt *st = NULL;
    int rc = text && cv_db_begin(m->db) == SQLITE_OK ? SQLITE_OK : SQLITE_ERROR;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(cv_db_handle(m->db),
            "INSERT OR REPLACE INTO segments(uid, segment, inputs, last_seq,"
            " computed_at) VALUES(?, ?, ?, ?, ?)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, uid);
        sqlite3_bind_text(st, 2, segment, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, seq);
        sqlite3_bind_int64(st, 5, in.now);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = cv_db_commit(m->db);
    free(text);
    json_t *out;
    if (rc != SQLITE_OK) {
        out = internal(m->db, "store the segment");
        cv_db_rollback(m->db);
    } else {
        out = reply(segment, in.now, true, inputs);
    }
    json_decref(inputs);
    return out;
}
