/* ctxapi.c - the context API's read side (ctxapi.h). */
#include "ctx/ctxapi.h"

#include "base/fieldname.h"
#include "base/jscan.h"
#include "base/time.h"
#include "base/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An op of the read side: its reader, and the members it takes besides
 * "op" and "actor" (the row's spec). */
typedef json_t *read_fn(const cv_ctxapi *api, cv_ctx_args *a, bool *decrypted);
typedef struct {
    read_fn *fn;
    const char *members[8];
} read_op;

static cv_control_handler answer;
static read_fn context_load, context_list, interactions_query, profile_get,
    db_size;

static const cv_control_op ops[] = {
    {"context.load", CV_CONTROL_READ, answer,
     &(const read_op){context_load, {"user", "name", "id", "decrypt", NULL}}},
    {"context.list", CV_CONTROL_READ, answer,
     &(const read_op){context_list, {"user", "limit", "decrypt", NULL}}},
    {"interactions.query", CV_CONTROL_READ, answer,
     &(const read_op){interactions_query, {"user", "since", "until", "type",
                                           "limit", "cursor", "decrypt", NULL}}},
    {"profile.get", CV_CONTROL_READ, answer,
     &(const read_op){profile_get, {"user", "decrypt", NULL}}},
    {"db.size", CV_CONTROL_READ, answer, &(const read_op){db_size, {NULL}}},
    {NULL, 0, NULL, NULL},
};

const cv_control_family cv_ctxapi_family = {ops, CV_CTXAPI_MAX_REQUEST};

/* --- replies with text spliced in ------------------------------------- */

/* A raw member is kept under its name behind this prefix until the reply
 * is printed (member names here are plain ASCII). */
#define RAW_PREFIX "\001raw:"

void cv_ctxapi_set_raw(json_t *reply, const char *member, const char *text,
                    size_t len)
{
    char key[64];
    snprintf(key, sizeof key, RAW_PREFIX "%s", member);
    json_object_set_new(reply, key, json_stringn_nocheck(text, len));
}

char *cv_ctxapi_reply_dump(json_t *reply)
{
    json_t *raw = json_object();
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(reply, tmp, key, v) {
        if (strncmp(key, RAW_PREFIX, strlen(RAW_PREFIX)) == 0) {
            json_object_set(raw, key + strlen(RAW_PREFIX), v);
            json_object_del(reply, key);
        }
    }
    char *text = json_dumps(reply, CV_JSON_DUMP);
    if (!text || json_object_size(raw) == 0) {
        json_decref(raw);
        return text;
    }
    size_t len = strlen(text), extra = 0;
    json_object_foreach(raw, key, v)
        extra += strlen(key) + json_string_length(v) + 4;
    char *out = cv_malloc(len + extra + 1);
    size_t at = len - 1; /* the closing brace */
    memcpy(out, text, at);
    json_object_foreach(raw, key, v) {
        at += (size_t)sprintf(out + at, "%s\"%s\":", at > 1 ? "," : "", key);
        memcpy(out + at, json_string_value(v), json_string_length(v));
        at += json_string_length(v);
    }
    out[at++] = '}';
    out[at] = '\0';
    free(text);
    json_decref(raw);
    return out;
}

/* --- cursors ------------------------------------------------------------ */

void cv_ctxapi_cursor_encode(int64_t ts, int64_t seq, char out[CV_CURSOR_MAX])
{
    snprintf(out, CV_CURSOR_MAX, "c1.%" PRId64 ".%" PRId64, ts, seq);
}

/* A decimal number of 1 to 19 digits from *p up to the stop character. */
static bool decimal(const char **p, char stop, int64_t *v)
{
    const char *s = *p;
    int64_t n = 0;
    int digits = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (digits == 18)
            return false; /* keeps n clear of overflow */
        n = n * 10 + (*s - '0');
    }
    if (digits == 0 || *s != stop)
        return false;
    *v = n;
    *p = stop ? s + 1 : s;
    return true;
}

bool cv_ctxapi_cursor_decode(const char *s, int64_t *ts, int64_t *seq)
{
    if (!s || strncmp(s, "c1.", 3) != 0)
        return false;
    s += 3;
    return decimal(&s, '.', ts) && decimal(&s, '\0', seq);
}

/* --- arguments ---------------------------------------------------------- */

bool cv_ctxapi_time_arg(json_t *v, int64_t *ms)
{
    if (!v || json_is_null(v)) {
        *ms = -1;
        return true;
    }
    if (json_is_integer(v)) {
        *ms = json_integer_value(v);
        return *ms >= 0;
    }
    return json_is_string(v) &&
           cv_time_parse(json_string_value(v), json_string_length(v), ms);
}

/* a bad request's reply (a macro, so each call's format is checked) */
#define bad(...) cv_control_error(CV_ERR_BAD_REQUEST, 0, __VA_ARGS__)

json_t *cv_ctxapi_parse(json_t *req, cv_ctx_args *a)
{
    memset(a, 0, sizeof *a);
    a->q = (cv_query){.since = -1, .until = -1, .limit = CV_CTXAPI_LIMIT};
    if (!json_is_object(req))
        return bad("a request is a JSON object");
    const cv_control_op *o = cv_control_find_op(
        &cv_ctxapi_family, json_string_value(json_object_get(req, "op")));
    if (!o)
        return cv_control_error(CV_ERR_UNKNOWN_OP, 0, "not a context API op");
    const char *const *members = ((const read_op *)o->spec)->members;
    /* a member the op does not take is a mistake (a typo in "limit",
     * say) that would otherwise widen the answer silently */
    json_t *err = cv_control_check_members(req, members);
    if (err)
        return err;
    bool takes_user = members[0] && !strcmp(members[0], "user");
    if ((err = cv_control_string_arg(req, "user", &a->q.user)))
        return err;
    if ((err = cv_control_string_arg(req, "id", &a->id)))
        return err;
    /* a context's id names it alone: the user is then a check, not a key */
    if (takes_user && !a->q.user && !a->id)
        return bad("\"user\" is required, a non-empty string");
    if ((err = cv_control_string_arg(req, "name", &a->q.type)) ||
        (a->q.type == NULL && (err = cv_control_string_arg(req, "type", &a->q.type))))
        return err;
    if (!cv_ctxapi_time_arg(json_object_get(req, "since"), &a->q.since))
        return bad("\"since\" must be an RFC 3339 time or ms since the epoch");
    if (!cv_ctxapi_time_arg(json_object_get(req, "until"), &a->q.until))
        return bad("\"until\" must be an RFC 3339 time or ms since the epoch");
    json_t *v = json_object_get(req, "limit");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return bad("\"limit\" must be a whole number from 1 (at most %d "
                       "are returned)", CV_CTXAPI_LIMIT_MAX);
        a->q.limit = json_integer_value(v);
        if (a->q.limit > CV_CTXAPI_LIMIT_MAX)
            a->q.limit = CV_CTXAPI_LIMIT_MAX;
    }
    v = json_object_get(req, "cursor");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) ||
            !cv_ctxapi_cursor_decode(json_string_value(v), &a->q.after_ts,
                                  &a->q.after_seq))
            return bad("\"cursor\" must be a cursor a reply gave");
        a->q.has_after = true;
    }
    v = json_object_get(req, "decrypt");
    if (v && !json_is_boolean(v))
        return bad("\"decrypt\" must be true or false");
    a->decrypt = json_is_true(v);
    return NULL;
}

/* --- reading ------------------------------------------------------------ */

/* The rows a read gathers. Decrypting needs each body as a tree; a read
 * that returns bodies as stored copies their text into the reply instead
 * (rows_into), since parsing and printing them again was most of what a
 * page cost. */
typedef struct {
    const cv_ctxapi *api;
    bool decrypt;
    bool tree;              /* rows as objects even when not decrypting */
    json_t *rows;           /* decrypting (or tree): the events, as objects */
    char *text;             /* else: "[body,body,...]" being built */
    size_t len, cap;
    int64_t n;              /* rows gathered */
    int64_t last_ts, last_seq;
    int64_t undecryptable;
    int64_t keep;           /* rows to keep (0: all); one more sets more */
    bool more;
    const cv_policy *share; /* a public user's rows, not decrypting: open
                               what [public] shares */
    int64_t shared;         /* values opened so */
} gather;

static void text_add(gather *g, const char *p, size_t n)
{
    if (g->len + n + 2 > g->cap) {
        g->cap = (g->len + n + 2) * 2;
        g->text = cv_realloc(g->text, g->cap);
    }
    memcpy(g->text + g->len, p, n);
    g->len += n;
}

static bool shared_path(void *ctx, const char *path)
{
    return cv_policy_shared(ctx, path);
}

static int gather_row(void *arg, const cv_hit *h)
{
    gather *g = arg;
    if (g->keep > 0 && g->n == g->keep) {
        g->more = true;
        return 0;
    }
    g->n++;
    g->last_ts = h->ts;
    g->last_seq = h->seq;
    char why[128];
    if (!g->decrypt && !g->tree && !g->share) {
        text_add(g, g->n == 1 ? "[" : ",", 1);
        if (cv_jscan_object(h->body, h->len, 2048, false, NULL, 0, why,
                            sizeof why) >= 0) {
            text_add(g, h->body, h->len);
        } else {
            /* a body that is no longer JSON (verify says so) goes as
             * stored, as a string */
            json_t *str = json_stringn_nocheck(h->body, h->len);
            char *q = json_dumps(str, JSON_ENCODE_ANY);
            text_add(g, q ? q : "null", q ? strlen(q) : 4);
            free(q);
            json_decref(str);
        }
        return 0;
    }
    json_error_t je;
    json_t *o = json_loadb(h->body, h->len, 0, &je);
    int failed = 0;
    if (o && g->decrypt) {
        cv_query_reveal(g->api->kr, o, &failed);
        g->undecryptable += failed;
    } else if (o && g->share) {
        g->shared += cv_query_reveal_only(g->api->kr, o, &failed, shared_path,
                                    (void *)g->share);
    }
    json_array_append_new(g->rows, o ? o : json_stringn(h->body, h->len));
    return 0;
}

static void gather_free(gather *g)
{
    json_decref(g->rows);
    g->rows = NULL;
    free(g->text);
    g->text = NULL;
}

/* Put the rows into reply as member: the array, or (one) its only row. */
static void rows_into(json_t *reply, const char *member, gather *g, bool one)
{
    if (g->rows) {
        json_object_set(reply, member, one ? json_array_get(g->rows, 0) : g->rows);
    } else if (one) {
        cv_ctxapi_set_raw(reply, member, g->text + 1, g->len - 1);
    } else {
        if (g->n == 0)
            text_add(g, "[", 1);
        text_add(g, "]", 1);
        cv_ctxapi_set_raw(reply, member, g->text, g->len);
    }
    gather_free(g);
}

/* Run q; NULL with the rows in g, or an error reply (not_found when the
 * user was never seen). */
static json_t *select_rows(const cv_ctxapi *api, const cv_query *q, gather *g)
{
    bool known;
    if (g->decrypt || g->tree || g->share)
        g->rows = json_array();
    int rc = cv_query_select(api->db, api->pol, api->kr, q, gather_row, g,
                               &known);
    if (rc) {
        gather_free(g);
        return cv_control_error(CV_ERR_INTERNAL, 0, "the query failed (%s); see "
                              "store's log", rc == EX_CONFIG
                                ? "the policy cannot look users up"
                                : "the database could not be read");
    }
    if (!known) {
        gather_free(g);
        return cv_control_error(CV_ERR_NOT_FOUND, 0, "no such user");
    }
    return NULL;
}

static void mark_decrypted(json_t *reply, const gather *g, bool *decrypted)
{
    if (!g->decrypt && g->share)
        json_object_set_new(reply, "shared", json_integer((json_int_t)g->shared));
    if (!g->decrypt)
        return;
    *decrypted = true;
    json_object_set_new(reply, "decrypted", json_true());
    json_object_set_new(reply, "undecryptable",
                        json_integer((json_int_t)g->undecryptable));
}

json_t *cv_ctxapi_user_uids(cv_db *db, const cv_policy *pol, const cv_keyring *kr,
                         const char *user, int64_t uids[CV_USER_UIDS_MAX],
                         size_t *n)
{
    if (cv_query_user_uids(db, pol, kr, user, uids, CV_USER_UIDS_MAX, n))
        return cv_control_error(CV_ERR_INTERNAL, 0, "cannot look the user up; see "
                              "store's log");
    if (*n == 0)
        return cv_control_error(CV_ERR_NOT_FOUND, 0, "no such user");
    return NULL;
}

/* The policy, when the asked-for user's privacy level is public and the
 * request does not decrypt: their reads show what [public] shares. */
static const cv_policy *share_for(const cv_ctxapi *api, const cv_ctx_args *a)
{
    int64_t uids[CV_USER_UIDS_MAX];
    size_t nid = 0;
    if (a->decrypt || !a->q.user ||
        cv_query_user_uids(api->db, api->pol, api->kr, a->q.user, uids,
                             CV_USER_UIDS_MAX, &nid) || nid == 0)
        return NULL;
    char sql[1024];
    size_t n = (size_t)snprintf(sql, sizeof sql,
        "SELECT privacy_level = 'public' FROM profiles WHERE uid IN (");
    n += cv_query_uid_list(sql + n, sizeof sql - n, nid);
    snprintf(sql + n, sizeof sql - n, ") ORDER BY ts DESC LIMIT 1");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(api->db), sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    for (size_t i = 0; i < nid; i++)
        sqlite3_bind_int64(st, (int)i + 1, uids[i]);
    bool pub = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
    sqlite3_finalize(st);
    return pub ? api->pol : NULL;
}

/* context.load by id: that row, if it is a context (and the user's,
 * when a user is given). */
static json_t *context_by_id(const cv_ctxapi *api, cv_ctx_args *a,
                             bool *decrypted)
{
    if (a->q.type)
        return bad("\"id\" and \"name\" each name a context: give one");
    int64_t uids[CV_USER_UIDS_MAX];
    size_t nid = 0;
    json_t *err;
    if (a->q.user &&
        (err = cv_ctxapi_user_uids(api->db, api->pol, api->kr, a->q.user, uids, &nid)))
        return err;
    char sql[1024];
    size_t n = (size_t)snprintf(sql, sizeof sql,
        "SELECT seq, ts, kind, type, body FROM events "
        "WHERE id = ? AND kind = 'context'"
        " AND (expires_at IS NULL OR expires_at > ?)");
    if (a->q.user) {
        n += (size_t)snprintf(sql + n, sizeof sql - n, " AND uid IN (");
        n += cv_query_uid_list(sql + n, sizeof sql - n, nid);
        snprintf(sql + n, sizeof sql - n, ")");
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(api->db), sql, -1, &st, NULL) != SQLITE_OK) {
        cv_err("cannot read %s: %s", cv_db_path(api->db), cv_db_errmsg(api->db));
        return cv_control_error(CV_ERR_INTERNAL, 0, "the query failed (the database "
                              "could not be read); see store's log");
    }
    sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, cv_now_ms()); /* past its expiry: gone */
    for (size_t i = 0; i < nid; i++)
        sqlite3_bind_int64(st, (int)i + 3, uids[i]);
    gather g = {.api = api, .decrypt = a->decrypt};
    if (g.decrypt)
        g.rows = json_array();
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        cv_hit h = cv_query_hit_of(st);
        gather_row(&g, &h);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        cv_err("cannot read %s: %s", cv_db_path(api->db), cv_db_errmsg(api->db));
        gather_free(&g);
        return cv_control_error(CV_ERR_INTERNAL, 0, "the query failed (the database "
                              "could not be read); see store's log");
    }
    if (g.n == 0) {
        gather_free(&g);
        /* another user's context is not found either: whether an id
         * exists is not told to whoever asks for a different user */
        return cv_control_error(CV_ERR_NOT_FOUND, 0, a->q.user
                              ? "the user has no context with id '%s'"
                              : "no context with id '%s'", a->id);
    }
    json_t *r = json_pack("{s:b}", "ok", 1);
    mark_decrypted(r, &g, decrypted);
    rows_into(r, "context", &g, true);
    return r;
}

static json_t *context_load(const cv_ctxapi *api, cv_ctx_args *a,
                            bool *decrypted)
{
    if (a->id)
        return context_by_id(api, a, decrypted);
    a->q.kind = "context";
    a->q.limit = 1;
    gather g = {.api = api, .decrypt = a->decrypt, .share = share_for(api, a)};
    json_t *err = select_rows(api, &a->q, &g);
    if (err)
        return err;
    if (g.n == 0) {
        gather_free(&g);
        if (a->q.type)
            return cv_control_error(CV_ERR_NOT_FOUND, 0,
                                  "the user has no context named '%s'", a->q.type);
        return cv_control_error(CV_ERR_NOT_FOUND, 0, "the user has no context");
    }
    json_t *r = json_pack("{s:b}", "ok", 1);
    mark_decrypted(r, &g, decrypted);
    rows_into(r, "context", &g, true);
    return r;
}

static json_t *context_list(const cv_ctxapi *api, cv_ctx_args *a,
                            bool *decrypted)
{
    a->q.kind = "context";
    gather g = {.api = api, .decrypt = a->decrypt, .share = share_for(api, a)};
    json_t *err = select_rows(api, &a->q, &g);
    if (err)
        return err;
    json_t *r = json_pack("{s:b}", "ok", 1);
    mark_decrypted(r, &g, decrypted);
    rows_into(r, "contexts", &g, false);
    return r;
}

static json_t *interactions_query(const cv_ctxapi *api, cv_ctx_args *a,
                                  bool *decrypted)
{
    a->q.kind = "interaction";
    /* one row more than asked says whether a next page exists, so the
     * last page ends with a null cursor and not an empty page */
    gather g = {.api = api, .decrypt = a->decrypt, .keep = a->q.limit,
                .share = share_for(api, a)};
    a->q.limit++;
    json_t *err = select_rows(api, &a->q, &g);
    if (err)
        return err;
    json_t *cursor = json_null();
    if (g.more) {
        /* the last row returned, not the one held back */
        char c[CV_CURSOR_MAX];
        cv_ctxapi_cursor_encode(g.last_ts, g.last_seq, c);
        cursor = json_string(c);
    }
    json_t *r = json_pack("{s:b, s:o}", "ok", 1, "cursor", cursor);
    mark_decrypted(r, &g, decrypted);
    rows_into(r, "events", &g, false);
    return r;
}

static json_t *profile_get(const cv_ctxapi *api, cv_ctx_args *a,
                           bool *decrypted)
{
    int64_t uids[CV_USER_UIDS_MAX];
    size_t nid;
    json_t *err = cv_ctxapi_user_uids(api->db, api->pol, api->kr, a->q.user,
                                   uids, &nid);
    if (err)
        return err;
    /* the profile row: under any of the user's numbers, the newest */
    char sql[1024];
    size_t n = (size_t)snprintf(sql, sizeof sql,
        "SELECT privacy_level, retention_days, ts, event_id FROM profiles "
        "WHERE uid IN (");
    n += cv_query_uid_list(sql + n, sizeof sql - n, nid);
    snprintf(sql + n, sizeof sql - n, ") ORDER BY ts DESC LIMIT 1");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(api->db), sql, -1, &st, NULL) != SQLITE_OK) {
        cv_err("cannot read profiles in %s: %s", cv_db_path(api->db),
               cv_db_errmsg(api->db));
        return cv_control_error(CV_ERR_INTERNAL, 0, "cannot read the profile");
    }
    for (size_t i = 0; i < nid; i++)
        sqlite3_bind_int64(st, (int)i + 1, uids[i]);
    json_t *profile = json_null();
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        char t[40];
        cv_time_format_ms(sqlite3_column_int64(st, 2), t);
        const char *lvl = (const char *)sqlite3_column_text(st, 0);
        json_decref(profile);
        profile = json_pack("{s:s?, s:o, s:s, s:s}", "privacy_level", lvl,
                            "retention_days",
                            sqlite3_column_type(st, 1) == SQLITE_NULL
                                ? json_null()
                                : sqlite3_column_int64(st, 1) < 0
                                      ? json_string("forever")
                                      : json_integer(sqlite3_column_int64(st, 1)),
                            "ts", t, "event_id",
                            (const char *)sqlite3_column_text(st, 3));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref(profile);
        return cv_control_error(CV_ERR_INTERNAL, 0, "cannot read the profile");
    }
    /* and the latest profile event, with its preferences */
    a->q.kind = "profile";
    a->q.limit = 1;
    gather g = {.api = api, .decrypt = a->decrypt, .tree = true,
                .share = share_for(api, a)};
    err = select_rows(api, &a->q, &g);
    if (err) {
        json_decref(profile);
        return err;
    }
    json_t *event = json_array_size(g.rows) ? json_incref(json_array_get(g.rows, 0))
                                            : json_null();
    json_decref(g.rows);
    /* the uses the user consented to, for callers to honour: beside the
     * settings, from the profile event that holds them (null: none said) */
    if (json_is_object(profile)) {
        json_t *body = json_object_get(event, "event");
        json_t *c = NULL;
        const char *k;
        json_t *v;
        json_object_foreach(json_is_object(body) ? body : event, k, v)
            if (cv_fieldname_eq(k, strlen(k), "sharing_consent", 15))
                c = v;
        json_object_set(profile, "sharing_consent", c ? c : json_null());
    }
    json_t *r = json_pack("{s:b, s:o, s:o}", "ok", 1, "profile", profile,
                          "event", event);
    mark_decrypted(r, &g, decrypted);
    return r;
}

/* Rows and bytes by kind (a scan of the table: an estimate of what each
 * kind costs, not a page count), the tables' and indexes' bytes from
 * dbstat when SQLite has it, and the files. */
static json_t *db_size(const cv_ctxapi *api, cv_ctx_args *a, bool *decrypted)
{
    (void)a;
    (void)decrypted;
    sqlite3 *h = cv_db_handle(api->db);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h,
            "SELECT kind, count(*), sum(length(body)), "
            "sum(length(id) + length(checksum) + coalesce(length(type), 0) + 48) "
            "FROM events GROUP BY kind ORDER BY kind", -1, &st, NULL) != SQLITE_OK) {
        cv_err("cannot read %s: %s", cv_db_path(api->db), cv_db_errmsg(api->db));
        return cv_control_error(CV_ERR_INTERNAL, 0, "cannot read the database");
    }
    json_t *kinds = json_object();
    int64_t total = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t body = sqlite3_column_int64(st, 2), rest = sqlite3_column_int64(st, 3);
        json_object_set_new(kinds, (const char *)sqlite3_column_text(st, 0),
                            json_pack("{s:I, s:I, s:I}", "rows",
                                      (json_int_t)sqlite3_column_int64(st, 1),
                                      "body_bytes", (json_int_t)body,
                                      "bytes", (json_int_t)(body + rest)));
        total += body + rest;
    }
    sqlite3_finalize(st);
    json_t *r = json_pack("{s:b, s:o, s:I}", "ok", 1, "by_kind", kinds,
                          "rows_bytes", (json_int_t)total);
    /* dbstat is a compile-time option of SQLite: without it, no "tables" */
    if (sqlite3_prepare_v2(h, "SELECT name, sum(pgsize) FROM dbstat GROUP BY name "
                           "ORDER BY name", -1, &st, NULL) == SQLITE_OK) {
        json_t *tables = json_object();
        while (sqlite3_step(st) == SQLITE_ROW)
            json_object_set_new(tables, (const char *)sqlite3_column_text(st, 0),
                                json_integer(sqlite3_column_int64(st, 1)));
        sqlite3_finalize(st);
        json_object_set_new(r, "tables", tables);
    }
    char *wal = cv_fmt("%s-wal", cv_db_path(api->db));
    json_object_set_new(r, "db_bytes", json_integer(cv_db_file_size(cv_db_path(api->db))));
    json_object_set_new(r, "wal_bytes", json_integer(cv_db_file_size(wal)));
    free(wal);
    json_object_set_new(r, "page_size", json_integer(cv_db_scalar(api->db, "PRAGMA page_size")));
    json_object_set_new(r, "pages", json_integer(cv_db_scalar(api->db, "PRAGMA page_count")));
    json_object_set_new(r, "freelist_pages",
                        json_integer(cv_db_scalar(api->db, "PRAGMA freelist_count")));
    return r;
}

/* A row's handler: the checks every op shares, then its reader. */
static json_t *answer(void *state, cv_control_request *r)
{
    const cv_ctxapi *api = state;
    cv_ctx_args a;
    json_t *err = cv_ctxapi_parse(r->req, &a);
    if (err)
        return err;
    if (a.decrypt && !api->allow_decrypt)
        return cv_control_error(CV_ERR_FORBIDDEN, 0, "this control socket is read-only: "
                              "it returns fields as stored ([pipeline] "
                              "control_decrypt = no)");
    if (!api->db)
        return cv_control_error(CV_ERR_INTERNAL, 0, "cannot open the database for "
                              "reading");
    return ((const read_op *)r->op->spec)->fn(api, &a, &r->decrypted);
}

json_t *cv_ctxapi_answer(const cv_ctxapi *api, json_t *req, size_t body_len,
                         bool *decrypted)
{
    cv_control_request r = {.req = req, .len = body_len};
    json_t *reply = cv_control_answer(&cv_ctxapi_family, (void *)api, &r);
    *decrypted = r.decrypted;
    return reply;
}
