/* syncops.c - the sync ops on store's control socket (syncops.h). */
#include "sync/syncops.h"

#include "ctx/ctxapi.h"
#include "base/util.h"

#include <stdio.h>
#include <string.h>

/* A sync op (its row's spec): what carries it out, and the members it
 * takes besides "op" and "actor". */
typedef json_t *sync_fn(cv_syncops *o, json_t *req);
typedef struct {
    sync_fn *fn;
    const char *members[6];
} sync_op;

static cv_control_handler answer;
static sync_fn state, changes, apply, conflicts;

static const cv_control_op ops[] = {
    {"sync.state", CV_CONTROL_READ, answer,
     &(const sync_op){state, {"checksum", "brief", NULL}}},
    {"sync.changes", CV_CONTROL_READ, answer,
     &(const sync_op){changes, {"knowledge", "after", "limit", NULL}}},
    {"sync.apply", CV_CONTROL_WRITE, answer,
     &(const sync_op){apply, {"versions", "knowledge", "from", NULL}}},
    {"sync.conflicts", CV_CONTROL_READ, answer,
     &(const sync_op){conflicts, {"user", "limit", NULL}}},
    {NULL, 0, NULL, NULL},
};

const cv_control_family cv_syncops_family = {ops, CV_SYNCOPS_MAX_REQUEST};

/* a bad request's reply (a macro, so each call's format is checked) */
#define bad(...) cv_control_error(CV_ERR_BAD_REQUEST, 0, __VA_ARGS__)

static json_t *internal(const char *what, const char *why)
{
    cv_err("sync: %s: %s", what, why);
    return cv_control_error(CV_ERR_INTERNAL, 0, "%s; see store's log", what);
}

static json_t *state(cv_syncops *o, json_t *req)
{
    json_t *sum = json_object_get(req, "checksum");
    json_t *brief = json_object_get(req, "brief");
    if ((sum && !json_is_boolean(sum)) || (brief && !json_is_boolean(brief)))
        return bad("\"checksum\" and \"brief\" must be true or false");
    char err[512];
    /* brief: only what ctxvault-sync polls for, cheaply and often */
    json_t *r = json_is_true(brief)
                    ? json_pack("{s:o}", "knowledge", cv_syncstore_knowledge(o->sync))
                    : cv_syncstore_state(o->sync, json_is_true(sum), err, sizeof err);
    if (!r)
        return internal("cannot read the sync state", err);
    json_object_set_new(r, "ok", json_true());
    json_object_set_new(r, "device", o->device ? json_string(o->device) : json_null());
    json_object_set_new(r, "relay", json_boolean(cv_syncstore_is_relay(o->sync)));
    json_object_set_new(r, "since_start", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
        "applied", (json_int_t)o->applied, "seen", (json_int_t)o->seen,
        "rejected", (json_int_t)o->rejected, "views", (json_int_t)o->views,
        "views_rejected", (json_int_t)o->views_rejected,
        "conflicts", (json_int_t)o->conflicts));
    return r;
}

static json_t *knowledge_arg(json_t *req, cv_vclock *k)
{
    char why[256];
    json_t *kj = json_object_get(req, "knowledge");
    cv_vclock_init(k);
    if (kj && !json_is_null(kj) && cv_vclock_from_json(k, kj, why, sizeof why) < 0)
        return bad("\"knowledge\" is not a version vector: %s", why);
    return NULL;
}

static json_t *changes(cv_syncops *o, json_t *req)
{
    cv_vclock k;
    json_t *err = knowledge_arg(req, &k);
    if (err)
        return err;
    json_t *after = json_object_get(req, "after");
    json_t *lim = json_object_get(req, "limit");
    const char *adev = NULL;
    int64_t an = 0;
    if (after && !json_is_null(after)) {
        adev = json_string_value(json_array_get(after, 0));
        json_t *n = json_array_get(after, 1);
        if (json_array_size(after) != 2 || !adev || !cv_vclock_device_name_ok(adev) ||
            !json_is_integer(n))
            return bad("\"after\" must be [DEVICE, COUNTER] or null");
        an = json_integer_value(n);
    }
    if (lim && (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
                json_integer_value(lim) > 10000))
        return bad("\"limit\" must be a number from 1 to 10000");
    char why[512];
    json_t *r = cv_syncstore_changes(o->sync, &k, adev, an,
                                     lim ? (int)json_integer_value(lim) : 1000,
                                     why, sizeof why);
    if (!r)
        return internal("cannot read the changes", why);
    json_object_set_new(r, "ok", json_true());
    return r;
}

/* A view becomes the user's context (or its deletion) on this device. */
static int64_t put_view(void *arg, const cv_sync_view *v, char *err,
                        size_t errlen)
{
    cv_syncops *o = arg;
    if (v->deleted) {
        if (v->uid < 0 || !v->name)
            return -2;
        return cv_ctxwrite_drop_named(o->write, v->uid, v->name, err, errlen) < 0
                   ? -1 : v->uid;
    }
    int64_t uid;
    int rc = cv_ctxwrite_put_context(o->write, v->view_id, v->user, v->name,
                                     v->fields, v->ts, &uid, err, errlen);
    if (rc == CV_STORE_FAILED)
        return -1;
    if (rc == CV_STORE_REJECTED) {
        /* the peer's fields pass its checks but not ours (a deeper nesting
         * limit, say): the versions are kept, the context is not stored */
        cv_warn("sync: the context of record %s is not valid here, not "
                "stored: %s", v->rid, err);
        o->views_rejected++;
        err[0] = '\0';
        return -2;
    }
    return uid;
}

static json_t *apply(cv_syncops *o, json_t *req)
{
    json_t *versions = json_object_get(req, "versions");
    json_t *kj = json_object_get(req, "knowledge");
    json_t *from = json_object_get(req, "from");
    if (!json_is_array(versions))
        return bad("\"versions\" is required: an array of versions");
    if (from && !json_is_string(from))
        return bad("\"from\" must be the peer's name");
    cv_vclock k;
    json_t *err = knowledge_arg(req, &k);
    if (err)
        return err;
    char why[512];
    if (cv_ctxwrite_begin(o->write, why, sizeof why) < 0)
        return internal("cannot begin applying versions", why);
    cv_sync_apply_stats st = {0};
    uint64_t views_rejected = o->views_rejected;
    json_t *rej = json_array();
    if (cv_syncstore_apply(o->sync, versions, json_is_object(kj) ? kj : NULL,
                           put_view, o, &st, rej, why,
                           sizeof why) < 0 ||
        cv_ctxwrite_commit(o->write, why, sizeof why) < 0) {
        cv_ctxwrite_rollback(o->write);
        json_decref(rej);
        return internal("cannot apply the versions, nothing applied", why);
    }
    o->applied += (uint64_t)st.applied;
    o->seen += (uint64_t)st.seen;
    o->rejected += (uint64_t)st.rejected;
    o->views += (uint64_t)st.views;
    o->conflicts += (uint64_t)st.conflicts;
    size_t i;
    json_t *r;
    json_array_foreach(rej, i, r)
        cv_warn("sync: a version from %s rejected: %s",
                from ? json_string_value(from) : "a peer",
                json_string_value(json_object_get(r, "error")));
    return json_pack("{s:b, s:I, s:I, s:o, s:I, s:I, s:I, s:o}", "ok", 1,
                     "applied", (json_int_t)st.applied, "seen", (json_int_t)st.seen,
                     "rejected", rej, "views", (json_int_t)st.views,
                     "views_rejected", (json_int_t)(o->views_rejected - views_rejected),
                     "conflicts", (json_int_t)st.conflicts,
                     "knowledge", cv_syncstore_knowledge(o->sync));
}

static json_t *conflicts(cv_syncops *o, json_t *req)
{
    const char *user;
    json_t *err = cv_control_string_arg(req, "user", &user);
    if (err)
        return err;
    json_t *lim = json_object_get(req, "limit");
    if (lim && (!json_is_integer(lim) || json_integer_value(lim) < 1))
        return bad("\"limit\" must be a positive number");
    if (cv_syncstore_is_relay(o->sync))
        return cv_control_error(CV_ERR_FORBIDDEN, 0, "a relay cannot read the "
                              "versions it holds; ask a device");
    /* the siblings' fields are the saved ones, before the field policy */
    if (!o->allow_fields)
        return cv_control_error(CV_ERR_FORBIDDEN, 0, "the conflicts show contexts' "
                              "fields in the clear: set [pipeline] "
                              "control_decrypt = yes to allow it");
    char why[512];
    json_t *list = cv_syncstore_conflicts(o->sync, user,
                                          lim ? (int)json_integer_value(lim) : 100,
                                          why, sizeof why);
    if (!list)
        return internal("cannot list the conflicts", why);
    return json_pack("{s:b, s:o}", "ok", 1, "conflicts", list);
}

/* A row's handler: the checks every sync op shares, then its own. */
static json_t *answer(void *arg, cv_control_request *r)
{
    cv_syncops *o = arg;
    const sync_op *op = r->op->spec;
    if (!o->sync)
        return cv_control_error(CV_ERR_FORBIDDEN, 0, "sync is off here: set [sync] "
                              "device or relay in the config");
    json_t *err = cv_control_check_members(r->req, op->members);
    return err ? err : op->fn(o, r->req);
}

json_t *cv_syncops_answer(cv_syncops *o, json_t *req, size_t body_len)
{
    cv_control_request r = {.req = req, .len = body_len};
    return cv_control_answer(&cv_syncops_family, o, &r);
}
