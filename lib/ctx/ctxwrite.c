/* ctxwrite.c - the context API's write side (ctxwrite.h). */
#include "ctx/ctxwrite.h"

#include "storage/audit.h"
#include "base/event.h"
#include "base/fieldname.h"
#include "ops/query.h"
#include "storage/writer.h"
#include "privacy/fieldpolicy.h"
#include "base/time.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cv_ctxwrite {
    cv_ctxwrite_opts o;
    cv_protect *pr;
    cv_event_rules rules;
    cv_ctxwrite_stats st;
};

/* An op of the write side (its row's spec): the kind of the one event
 * its request describes (NULL: none; interactions.save's events carry
 * their own), and the members it takes besides "op" and "actor". */
typedef struct {
    const char *kind;
    const char *members[8];
} write_op;

static cv_control_handler op_context_save, op_interactions_save,
    op_context_delete, op_profile_set;

static const cv_control_op ops[] = {
    {"context.save", CV_CONTROL_WRITE, op_context_save,
     &(const write_op){"context", {"user", "name", "id", "ts", "fields", NULL}}},
    {"interactions.save", CV_CONTROL_WRITE, op_interactions_save,
     &(const write_op){NULL, {"user", "events", NULL}}},
    {"context.delete", CV_CONTROL_WRITE, op_context_delete,
     &(const write_op){NULL, {"user", "id", "name", "all", NULL}}},
    {"profile.set", CV_CONTROL_WRITE, op_profile_set,
     &(const write_op){"profile", {"user", "id", "ts", "privacy_level",
                                   "retention_days", "preferences", "fields",
                                   NULL}}},
    {NULL, 0, NULL, NULL},
};

const cv_control_family cv_ctxwrite_family = {ops, CV_CTXAPI_MAX_REQUEST};

/* The member of o that names the reserved member m, however it is
 * spelled (fieldname.h), or NULL; its key in *key. */
static json_t *member_of(json_t *o, cv_member m, const char **key)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (cv_fieldname_of(k, strlen(k)) == (int)m) {
            if (key)
                *key = k;
            return v;
        }
    }
    return NULL;
}

cv_ctxwrite *cv_ctxwrite_new(const cv_ctxwrite_opts *o)
{
    cv_ctxwrite *w = cv_calloc(1, sizeof *w);
    w->o = *o;
    w->pr = cv_fieldpolicy_new(o->pol, o->kr, o->ds);
    /* ids derived as ingest derives them: the same key, the same layout */
    w->rules = (cv_event_rules){.max_depth = o->max_depth,
                                .id_key = cv_keyring_id_key(o->kr)};
    return w;
}

void cv_ctxwrite_destroy(cv_ctxwrite **p)
{
    cv_ctxwrite *w = *p;
    if (!w)
        return;
    cv_fieldpolicy_destroy(&w->pr);
    free(w);
    *p = NULL;
}

const cv_ctxwrite_stats *cv_ctxwrite_stats_get(const cv_ctxwrite *w)
{
    return &w->st;
}

/* --- the request -------------------------------------------------------- */

/* a bad request's reply (a macro, so each call's format is checked) */
#define bad(...) cv_control_error(CV_ERR_BAD_REQUEST, 0, __VA_ARGS__)

static json_t *need_user(json_t *req, const char **user)
{
    json_t *err = cv_control_string_arg(req, "user", user);
    if (!err && !*user)
        err = bad("\"user\" is required, a non-empty string");
    return err;
}

/* "fields": an object none of whose members is reserved. */
static json_t *fields_arg(json_t *req, bool required, json_t **fields)
{
    *fields = json_object_get(req, "fields");
    if (!*fields || json_is_null(*fields)) {
        *fields = NULL;
        return required ? bad("\"fields\" is required: an object of the "
                              "context's members") : NULL;
    }
    if (!json_is_object(*fields))
        return bad("\"fields\" must be an object");
    for (int m = 0; m < CV_MEMBER_COUNT; m++) {
        const char *key;
        if (member_of(*fields, (cv_member)m, &key))
            return bad("\"%s\" cannot be a field: the request's own member "
                       "(or store) sets it", key);
    }
    return NULL;
}

/* An application sends its own object as "fields": an an application's context
 * or profile carries its user, time, id, name and settings inside, as
 * userId, timestamp and so on. Those members move to the request's own
 * (user, ts, id, name, privacy_level, retention_days), which must agree
 * where both are given; the kind must be the op's. A new request, or NULL
 * with *err set. */
static json_t *lift_members(json_t *req, const char *kind, json_t **err)
{
    static const char *const to[CV_MEMBER_COUNT] = {
        [CV_MEMBER_ID] = "id",     [CV_MEMBER_TS] = "ts",
        [CV_MEMBER_KIND] = NULL,   [CV_MEMBER_USER] = "user",
        [CV_MEMBER_TYPE] = "name", [CV_MEMBER_LEVEL] = "privacy_level",
        [CV_MEMBER_DAYS] = "retention_days"};
    *err = NULL;
    json_t *out = json_copy(req);
    /* the request's own members, as the application spells them
     * (privacyLevel for privacy_level): renamed, once */
    const char *rk;
    json_t *rv;
    void *tmp;
    json_object_foreach_safe(req, tmp, rk, rv) {
        int m = cv_fieldname_of(rk, strlen(rk));
        const char *want = m >= 0 ? to[m] : NULL;
        if (!want || !strcmp(rk, want))
            continue;
        if (json_object_get(out, want)) {
            char msg[300];
            snprintf(msg, sizeof msg, "\"%.100s\" and \"%s\" are one member, "
                     "given twice", rk, want);
            *err = bad("%s", msg);
            json_decref(out);
            return NULL;
        }
        json_object_set(out, want, rv);
        json_object_del(out, rk);
    }
    json_t *fields = json_object_get(req, "fields");
    if (!json_is_object(fields))
        goto done;
    fields = json_copy(fields);
    json_object_set_new(out, "fields", fields);
    for (int m = 0; m < CV_MEMBER_COUNT; m++) {
        const char *key;
        json_t *v;
        while ((v = member_of(fields, (cv_member)m, &key))) {
            if (!to[m]) {
                if (!json_is_string(v) || strcmp(json_string_value(v), kind)) {
                    *err = bad("\"%s\" in \"fields\" must be this op's kind "
                               "(or left out)", key);
                    break;
                }
            } else {
                json_t *have = json_object_get(out, to[m]);
                int64_t a, b;
                bool same = have && (json_equal(have, v) ||
                                     (m == CV_MEMBER_TS &&
                                      cv_ctxapi_time_arg(have, &a) &&
                                      cv_ctxapi_time_arg(v, &b) && a == b));
                if (have && !same) {
                    char msg[300];
                    snprintf(msg, sizeof msg, "\"%.100s\" in \"fields\" and the "
                             "request's \"%s\" differ", key, to[m]);
                    *err = bad("%s", msg);
                    break;
                }
                json_object_set(out, to[m], v);
            }
            json_object_del(fields, key);
        }
        if (*err) {
            json_decref(out);
            return NULL;
        }
    }
done:;
    /* what the application calls forever, and the validator takes */
    json_t *days = json_object_get(out, "retention_days");
    if (json_is_string(days) && !strcmp(json_string_value(days), "forever"))
        json_object_set_new(out, "retention_days", json_null());
    return out;
}

json_t *cv_ctxwrite_event(json_t *req, int64_t now_ms, json_t **err)
{
    *err = NULL;
    const cv_control_op *o = cv_control_find_op(
        &cv_ctxwrite_family, json_string_value(json_object_get(req, "op")));
    const write_op *op = o ? o->spec : NULL;
    if (!op || !op->kind) {
        *err = cv_control_error(CV_ERR_UNKNOWN_OP, 0, "not an op that saves one "
                              "event");
        return NULL;
    }
    bool profile = strcmp(op->kind, "profile") == 0;
    const char *user, *name, *id;
    json_t *fields;
    int64_t ts;
    json_t *lifted = lift_members(req, op->kind, err);
    if (!lifted)
        return NULL;
    req = lifted;
    json_t *ev = NULL;
    if ((*err = cv_control_check_members(req, op->members)) ||
        (*err = need_user(req, &user)) ||
        (*err = cv_control_string_arg(req, "name", &name)) ||
        (*err = cv_control_string_arg(req, "id", &id)) ||
        (*err = fields_arg(req, !profile, &fields)))
        goto out;
    if (!cv_ctxapi_time_arg(json_object_get(req, "ts"), &ts)) {
        *err = bad("\"ts\" must be an RFC 3339 time or ms since the epoch");
        goto out;
    }
    json_t *lvl = json_object_get(req, "privacy_level");
    json_t *days = json_object_get(req, "retention_days");
    json_t *prefs = json_object_get(req, "preferences");
    if (profile) {
        /* the values themselves are the validator's (cv_profile_from_fields) */
        if (lvl && !json_is_string(lvl) && !json_is_null(lvl))
            *err = bad("\"privacy_level\" must be a string or null");
        else if (days && !json_is_integer(days) && !json_is_null(days))
            *err = bad("\"retention_days\" must be a whole number of days or "
                       "null (kept until erased)");
        else if (prefs && !json_is_object(prefs))
            *err = bad("\"preferences\" must be an object");
        else if (!lvl && !days && !prefs && !fields)
            *err = bad("nothing to set: give privacy_level, retention_days, "
                       "preferences or fields");
        if (*err)
            goto out;
    }
    /* id and ts first, as ingest writes them; without a ts, store's clock,
     * so the derived id tells this save from an earlier one of the same
     * content (a context saved again after another must become the
     * newest, not a duplicate of its first save) */
    char tsbuf[40];
    cv_time_format_ms(ts >= 0 ? ts : now_ms, tsbuf);
    ev = json_object();
    if (id)
        json_object_set_new(ev, "id", json_string(id));
    json_object_set_new(ev, "ts", json_string(tsbuf));
    json_object_set_new(ev, "kind", json_string(op->kind));
    if (name)
        json_object_set_new(ev, "type", json_string(name));
    json_object_set_new(ev, "user_id", json_string(user));
    if (lvl)
        json_object_set(ev, "privacy_level", lvl);
    if (days)
        json_object_set(ev, "retention_days", days);
    if (prefs)
        json_object_set(ev, "preferences", prefs);
    if (fields)
        json_object_update(ev, fields);
out:
    json_decref(lifted);
    return ev;
}

/* --- the durable path --------------------------------------------------- */

/* One event into the open batch, as an ingested one goes: ingest's
 * validator (and its id, derived when the event has none), encrypt's
 * policy, store's add. CV_STORE_INSERTED or _DUPLICATE with its id in
 * id; CV_STORE_REJECTED (the event is bad) or CV_STORE_FAILED (the
 * database or the data keys failed: roll back) with reason filled. */
static int add_event(cv_ctxwrite *w, json_t *ev, char id[CV_ID_MAX + 1],
                     char *reason, size_t rlen)
{
    id[0] = '\0';
    char *text = json_dumps(ev, CV_JSON_DUMP);
    if (!text) {
        snprintf(reason, rlen, "cannot encode the event as JSON");
        return CV_STORE_REJECTED;
    }
    char *norm = NULL;
    size_t nlen;
    int rc = cv_event_normalise(&w->rules, text, strlen(text), cv_now_ms(),
                                &norm, &nlen, reason, rlen);
    free(text);
    if (rc < 0)
        return CV_STORE_REJECTED;
    const char *out;
    size_t outlen;
    char pid[CV_ID_MAX + 1];
    rc = cv_fieldpolicy_line(w->pr, norm, nlen, &out, &outlen, pid, sizeof pid,
                         reason, rlen);
    free(norm);
    if (rc == 1)
        return CV_STORE_REJECTED;
    if (rc != 0)
        return CV_STORE_FAILED;
    rc = cv_store_add(w->o.store, out, outlen, reason, rlen);
    snprintf(id, CV_ID_MAX + 1, "%s", cv_store_last_id(w->o.store));
    return rc;
}

/* Make the batch durable: the data keys its fields are sealed under
 * first (a row must never be committed without its key), then the rows,
 * in one journaled transaction. 0, or -1 rolled back with reason. */
static int commit(cv_ctxwrite *w, char *reason, size_t rlen)
{
    if (cv_fieldpolicy_commit(w->pr, reason, rlen) < 0 ||
        cv_store_commit(w->o.store, reason, rlen) < 0) {
        cv_store_rollback(w->o.store);
        return -1;
    }
    return 0;
}

static json_t *failed(cv_ctxwrite *w, const char *reason)
{
    cv_store_rollback(w->o.store);
    cv_err("a context API write failed, nothing stored: %s", reason);
    return cv_control_error(CV_ERR_INTERNAL, 0, "nothing stored: %s", reason);
}

/* A context saved here is a change for the sync peers too, in the same
 * transaction: both are stored, or neither. */
static int sync_saved(cv_ctxwrite *w, json_t *req, char *reason, size_t rlen)
{
    if (!w->o.sync || !req)
        return 0;
    const char *name = json_string_value(json_object_get(req, "name"));
    return cv_syncstore_local_change(
        w->o.sync, cv_store_last_uid(w->o.store),
        json_string_value(json_object_get(req, "user")), name ? name : "",
        json_object_get(req, "fields"), cv_now_ms(), reason, rlen) < 0 ? -1 : 0;
}

/* Save one event (context.save with its request in sync_req, profile.set):
 * {"ok":true,"id":..,"stored":..} or an error reply. */
static json_t *save_one(cv_ctxwrite *w, json_t *ev, json_t *sync_req)
{
    char id[CV_ID_MAX + 1], reason[512];
    int rc = add_event(w, ev, id, reason, sizeof reason);
    if (rc == CV_STORE_REJECTED) {
        cv_store_rollback(w->o.store); /* an add may have opened the batch */
        w->st.rejected++;
        return bad("the event is not valid: %s", reason);
    }
    if (rc == CV_STORE_FAILED || sync_saved(w, sync_req, reason, sizeof reason) < 0 ||
        commit(w, reason, sizeof reason) < 0)
        return failed(w, reason);
    if (rc == CV_STORE_INSERTED)
        w->st.stored++;
    else
        w->st.duplicates++;
    return json_pack("{s:b, s:s, s:b}", "ok", 1, "id", id, "stored",
                     rc == CV_STORE_INSERTED);
}

/* --- the ops ------------------------------------------------------------ */

static json_t *context_save(cv_ctxwrite *w, json_t *req)
{
    json_t *err;
    json_t *ev = cv_ctxwrite_event(req, cv_now_ms(), &err);
    if (!ev)
        return err;
    json_t *r = save_one(w, ev, req);
    json_decref(ev);
    return r;
}

/* profile.get's reply for user, from committed data. */
static json_t *profile_get(const cv_ctxapi *read, const char *user)
{
    json_t *q = json_pack("{s:s, s:s}", "op", "profile.get", "user", user);
    bool decrypted;
    json_t *r = cv_ctxapi_answer(read, q, 0, &decrypted);
    json_decref(q);
    return r;
}

/* A profile event replaces the user's profile (lib/storage/store.c), so a setting
 * the request leaves out keeps its current value: profile.set
 * {"preferences":...} must not reset retention_days to "forever". */
static json_t *profile_set(cv_ctxwrite *w, const cv_ctxapi *read, json_t *req)
{
    json_t *err;
    json_t *ev = cv_ctxwrite_event(req, cv_now_ms(), &err);
    if (!ev)
        return err;
    const char *user = json_string_value(json_object_get(ev, "user_id"));
    json_t *cur = profile_get(read, user);
    const char *code = json_string_value(json_object_get(cur, "code"));
    json_t *r = NULL;
    if (!json_is_true(json_object_get(cur, "ok")) &&
        !(code && !strcmp(code, CV_ERR_NOT_FOUND))) {
        r = cur; /* the current profile could not be read */
        cur = NULL;
        goto out;
    }
    json_t *p = json_object_get(cur, "profile");
    static const char *const settings[] = {"privacy_level", "retention_days", NULL};
    /* null in the current profile: never chosen, so left out here too
     * (retention_days null in a request is forever) */
    for (int i = 0; json_is_object(p) && settings[i]; i++)
        if (!json_object_get(ev, settings[i]) &&
            !json_is_null(json_object_get(p, settings[i])))
            json_object_set(ev, settings[i], json_object_get(p, settings[i]));
    r = save_one(w, ev, NULL);
    if (!json_is_true(json_object_get(r, "ok")))
        goto out;
    /* the reply: the profile as it now stands */
    json_t *now = profile_get(read, user);
    json_object_set(now, "id", json_object_get(r, "id"));
    json_object_set(now, "stored", json_object_get(r, "stored"));
    json_decref(r);
    r = now;
out:
    json_decref(cur);
    json_decref(ev);
    return r;
}

typedef struct {
    size_t index;
    char *reason;
    char *raw;
} rejection;

static json_t *interactions_save(cv_ctxwrite *w, const write_op *op,
                                 json_t *req)
{
    json_t *err;
    const char *user;
    json_t *events = json_object_get(req, "events");
    if ((err = cv_control_check_members(req, op->members)) ||
        (err = cv_control_string_arg(req, "user", &user)))
        return err;
    if (!json_is_array(events) || json_array_size(events) == 0)
        return bad("\"events\" is required: an array of interaction events");
    if (json_array_size(events) > CV_CTXWRITE_BATCH_MAX)
        return cv_control_error(CV_ERR_TOO_LARGE, 0, "more than %d events in one "
                              "request", CV_CTXWRITE_BATCH_MAX);
    size_t n = json_array_size(events), nrej = 0;
    rejection *rej = cv_calloc(n, sizeof *rej);
    json_t *ids = json_array(), *r = NULL;
    int64_t stored = 0, dups = 0;
    char id[CV_ID_MAX + 1], reason[512];
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e) {
        int rc;
        json_t *ev = NULL;
        if (!json_is_object(e)) {
            snprintf(reason, sizeof reason, "not a JSON object");
            rc = CV_STORE_REJECTED;
        } else {
            /* the event's own members take their places (user_id from
             * the request only where the event has none); the id, when
             * it has one, first, as ingest writes it. An event without
             * one gets ingest's: derived from its content when it has a
             * ts (sent again, it dedupes), else unique to this save (two
             * identical clicks are two events; a client that resends
             * gives each event an id: cvclient does) */
            ev = json_object();
            if (member_of(e, CV_MEMBER_ID, NULL))
                json_object_set_new(ev, "id", json_null());
            json_t *kind = member_of(e, CV_MEMBER_KIND, NULL);
            if (!kind)
                json_object_set_new(ev, "kind", json_string("interaction"));
            if (user && !member_of(e, CV_MEMBER_USER, NULL))
                json_object_set_new(ev, "user_id", json_string(user));
            json_object_update(ev, e);
            if (kind && (!json_is_string(kind) ||
                         strcmp(json_string_value(kind), "interaction"))) {
                snprintf(reason, sizeof reason,
                         "\"kind\" must be \"interaction\" (or left out)");
                rc = CV_STORE_REJECTED;
            } else {
                rc = add_event(w, ev, id, reason, sizeof reason);
            }
        }
        json_decref(ev);
        if (rc == CV_STORE_FAILED) {
            r = failed(w, reason);
            goto out;
        }
        if (rc == CV_STORE_REJECTED) {
            rej[nrej].index = i;
            rej[nrej].reason = cv_strdup(reason);
            rej[nrej].raw = json_dumps(e, CV_JSON_DUMP | JSON_ENCODE_ANY);
            nrej++;
            json_array_append_new(ids, json_null());
            continue;
        }
        json_array_append_new(ids, json_string(id));
        if (rc == CV_STORE_INSERTED)
            stored++;
        else
            dups++;
    }
    if (commit(w, reason, sizeof reason) < 0) {
        r = failed(w, reason);
        goto out;
    }
    w->st.stored += (uint64_t)stored;
    w->st.duplicates += (uint64_t)dups;
    /* dead-lettered once stored: a batch that failed is sent again whole,
     * and its bad events would be recorded twice */
    json_t *rejected = json_array();
    for (size_t k = 0; k < nrej; k++) {
        const char *raw = rej[k].raw ? rej[k].raw : "";
        w->st.rejected++;
        if (w->o.dl)
            cv_deadletter_put(w->o.dl, "interactions.save", w->st.rejected,
                              rej[k].reason, raw, strlen(raw), false);
        json_array_append_new(rejected, json_pack("{s:I, s:s}", "index",
                                                  (json_int_t)rej[k].index,
                                                  "error", rej[k].reason));
    }
    r = json_pack("{s:b, s:I, s:I, s:o, s:O}", "ok", 1, "stored",
                  (json_int_t)stored, "duplicates", (json_int_t)dups,
                  "rejected", rejected, "ids", ids);
out:
    for (size_t k = 0; k < nrej; k++) {
        free(rej[k].reason);
        free(rej[k].raw);
    }
    free(rej);
    json_decref(ids);
    return r;
}

/* "SELECT what FROM events WHERE kind = 'context' AND cond AND uid IN
 * (uids)", with text bound to cond's "?", prepared; NULL when it cannot be. */
static sqlite3_stmt *context_select(cv_db *db, const char *what,
                                    const char *cond, const char *text,
                                    const int64_t *uids, size_t nid)
{
    char sql[1024];
    size_t n = (size_t)snprintf(sql, sizeof sql, "SELECT %s FROM events WHERE "
                                "kind = 'context' AND %s AND uid IN (", what,
                                cond);
    n += cv_query_uid_list(sql + n, sizeof sql - n, nid);
    snprintf(sql + n, sizeof sql - n, ")");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    for (size_t i = 0; i < nid; i++)
        sqlite3_bind_int64(st, (int)i + 2, uids[i]);
    return st;
}

/* The name (type) of the user's context id, malloc'ed; "" unnamed,
 * NULL when there is none. */
static char *context_name(cv_db *db, const int64_t *uids, size_t nid,
                          const char *id)
{
    sqlite3_stmt *st = context_select(db, "coalesce(type, '')", "id = ?", id,
                                      uids, nid);
    char *name = NULL;
    if (st && sqlite3_step(st) == SQLITE_ROW)
        name = cv_strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return name;
}

/* Deleted contexts are changes for the sync peers: a tombstone for a
 * name none of whose versions is left (all: every record of the user's
 * this device holds). */
static int sync_deleted(cv_ctxwrite *w, const char *user, const int64_t *uids,
                        size_t nid, const char *id_name, const char *name,
                        char *why, size_t whylen)
{
    if (!id_name && !name)
        return cv_syncstore_local_delete_uids(w->o.sync, uids, nid,
                                              cv_now_ms(), why, whylen);
    const char *nm = name ? name : id_name;
    sqlite3_stmt *st = context_select(w->o.db, "count(*)",
                                      "coalesce(type, '') = ?", nm, uids, nid);
    if (!st) {
        snprintf(why, whylen, "%s", cv_db_errmsg(w->o.db));
        return -1;
    }
    int64_t left = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (left != 0)
        return left < 0 ? (snprintf(why, whylen, "%s", cv_db_errmsg(w->o.db)), -1) : 0;
    return cv_syncstore_local_change(w->o.sync, uids[0], user, nm, NULL,
                                     cv_now_ms(), why, whylen) < 0 ? -1 : 0;
}

/* Delete the user's contexts: one id, every version of a name, or all,
 * in one journaled transaction with its audit entry. */
static json_t *context_delete(cv_ctxwrite *w, const write_op *op,
                              json_t *req)
{
    json_t *err;
    const char *user, *id, *name;
    json_t *all = json_object_get(req, "all");
    if ((err = cv_control_check_members(req, op->members)) ||
        (err = need_user(req, &user)) ||
        (err = cv_control_string_arg(req, "id", &id)) ||
        (err = cv_control_string_arg(req, "name", &name)))
        return err;
    if (all && !json_is_boolean(all))
        return bad("\"all\" must be true or false");
    /* all of a user's contexts only when asked in so many words */
    if ((id != NULL) + (name != NULL) + json_is_true(all) != 1)
        return bad("say which contexts: \"id\", \"name\" or \"all\":true "
                   "(exactly one)");
    cv_db *db = w->o.db;
    int64_t uids[CV_USER_UIDS_MAX];
    size_t nid;
    json_t *uerr = cv_ctxapi_user_uids(db, w->o.pol, w->o.kr, user, uids, &nid);
    if (uerr)
        return uerr;
    char sql[1024];
    size_t n = (size_t)snprintf(sql, sizeof sql,
        "DELETE FROM events WHERE kind = 'context' AND uid IN (");
    n += cv_query_uid_list(sql + n, sizeof sql - n, nid);
    snprintf(sql + n, sizeof sql - n, ")%s", id ? " AND id = ?"
                                             : name ? " AND type = ?" : "");
    if (cv_db_begin(db) != SQLITE_OK)
        return cv_control_error(CV_ERR_INTERNAL, 0, "cannot begin the deletion: %s",
                              cv_db_errmsg(db));
    sqlite3_stmt *st;
    char why[512], *id_name = NULL;
    if (id && w->o.sync)
        id_name = context_name(db, uids, nid, id);
    if (sqlite3_prepare_v2(cv_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        goto db_failed;
    for (size_t i = 0; i < nid; i++)
        sqlite3_bind_int64(st, (int)i + 1, uids[i]);
    if (id || name)
        sqlite3_bind_text(st, (int)nid + 1, id ? id : name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        goto db_failed;
    int64_t deleted = sqlite3_changes(cv_db_handle(db));
    if (deleted > 0 && w->o.sync &&
        sync_deleted(w, user, uids, nid, id_name, name, why, sizeof why) < 0) {
        free(id_name);
        cv_db_rollback(db);
        return cv_control_error(CV_ERR_INTERNAL, 0, "nothing deleted: %s", why);
    }
    free(id_name);
    id_name = NULL;
    if (deleted == 0) {
        cv_db_rollback(db);
        if (id || name)
            return cv_control_error(CV_ERR_NOT_FOUND, 0, "the user has no context %s '%s'",
                                  id ? "with id" : "named", id ? id : name);
        return cv_control_error(CV_ERR_NOT_FOUND, 0, "the user has no context");
    }
    /* the audit entry holds neither the id nor the name: both are the
     * producer's and may say something about the user */
    const char *actor = json_string_value(json_object_get(req, "actor"));
    json_t *detail = json_pack("{s:s}", "by", id ? "id" : name ? "name" : "all");
    cv_audit_entry e = {.actor = actor && *actor ? actor : "control",
                        .action = "context-delete", .subject = user,
                        .rows = deleted, .detail = detail};
    rc = cv_audit_append(db, w->o.kr, w->o.pol, cv_now_ms(), &e, why, sizeof why);
    json_decref(detail);
    if (rc < 0) {
        cv_db_rollback(db);
        return cv_control_error(CV_ERR_INTERNAL, 0, "nothing deleted: %s", why);
    }
    if (cv_db_commit(db) != SQLITE_OK)
        goto db_failed;
    w->st.deleted += (uint64_t)deleted;
    /* what was deleted leaves the file and the WAL, as an erasure's does */
    cv_writer_compact(db);
    return json_pack("{s:b, s:I}", "ok", 1, "deleted", (json_int_t)deleted);
db_failed:
    free(id_name);
    snprintf(why, sizeof why, "%s", cv_db_errmsg(db));
    cv_db_rollback(db);
    cv_err("context.delete failed, nothing deleted: %s", why);
    return cv_control_error(CV_ERR_INTERNAL, 0, "nothing deleted: %s", why);
}

/* --- for sync ------------------------------------------------------------ */

int cv_ctxwrite_put_context(cv_ctxwrite *w, const char *id, const char *user,
                            const char *name, const json_t *fields, int64_t ts,
                            int64_t *uid, char *reason, size_t rlen)
{
    char tsbuf[40], got[CV_ID_MAX + 1];
    cv_time_format_ms(ts, tsbuf);
    json_t *ev = json_pack("{s:s, s:s, s:s}", "id", id, "ts", tsbuf, "kind",
                           "context");
    if (name && *name)
        json_object_set_new(ev, "type", json_string(name));
    json_object_set_new(ev, "user_id", json_string(user));
    /* the fields were checked for reserved members where they were saved;
     * a peer's may not have been, and store reads these */
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)fields, k, v) {
        if (cv_fieldname_of(k, strlen(k)) < 0)
            json_object_set(ev, k, v);
    }
    int rc = add_event(w, ev, got, reason, rlen);
    json_decref(ev);
    *uid = cv_store_last_uid(w->o.store);
    if (rc == CV_STORE_INSERTED)
        w->st.stored++;
    else if (rc == CV_STORE_DUPLICATE)
        w->st.duplicates++;
    return rc;
}

int64_t cv_ctxwrite_drop_named(cv_ctxwrite *w, int64_t uid, const char *name,
                               char *reason, size_t rlen)
{
    sqlite3_stmt *st = cv_db_stmt(w->o.db, "DELETE FROM events WHERE kind = "
                                  "'context' AND uid = ? AND coalesce(type, '') = ?");
    if (!st) {
        snprintf(reason, rlen, "%s", cv_db_errmsg(w->o.db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, uid);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        snprintf(reason, rlen, "%s", cv_db_errmsg(w->o.db));
        return -1;
    }
    int64_t n = sqlite3_changes(cv_db_handle(w->o.db));
    w->st.deleted += (uint64_t)n;
    return n;
}

int cv_ctxwrite_begin(cv_ctxwrite *w, char *reason, size_t rlen)
{
    return cv_store_begin(w->o.store, reason, rlen);
}

int cv_ctxwrite_commit(cv_ctxwrite *w, char *reason, size_t rlen)
{
    return commit(w, reason, rlen);
}

void cv_ctxwrite_rollback(cv_ctxwrite *w)
{
    cv_store_rollback(w->o.store);
}

/* The rows' handlers: the state is a cv_ctxwrite_state. */
static json_t *op_context_save(void *state, cv_control_request *r)
{
    return context_save(((cv_ctxwrite_state *)state)->w, r->req);
}

static json_t *op_interactions_save(void *state, cv_control_request *r)
{
    return interactions_save(((cv_ctxwrite_state *)state)->w, r->op->spec,
                             r->req);
}

static json_t *op_context_delete(void *state, cv_control_request *r)
{
    return context_delete(((cv_ctxwrite_state *)state)->w, r->op->spec,
                          r->req);
}

static json_t *op_profile_set(void *state, cv_control_request *r)
{
    cv_ctxwrite_state *st = state;
    if (!st->read || !st->read->db)
        return cv_control_error(CV_ERR_INTERNAL, 0, "cannot open the database for "
                              "reading");
    return profile_set(st->w, st->read, r->req);
}

json_t *cv_ctxwrite_answer(cv_ctxwrite *w, const cv_ctxapi *read, json_t *req,
                           size_t body_len)
{
    cv_ctxwrite_state st = {.w = w, .read = read};
    cv_control_request r = {.req = req, .len = body_len};
    return cv_control_answer(&cv_ctxwrite_family, &st, &r);
}
