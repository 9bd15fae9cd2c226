/* client.c - the context API's C client (cvclient.h), on cv_control. */
#include "ctxvault/cvclient.h"

#include "base/config.h"
#include "net/control.h"
#include "base/event.h"
#include "base/fieldname.h"
#include "base/jscan.h"
#include "base/jwalk.h"
#include "base/util.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_MS 10000
#define SAVE_ATTEMPTS 2 /* a write is sent again once when no answer came */

struct cv_client {
    cv_config cfg;
    cv_control *ctl;       /* made on first need, again after a timeout */
    int timeout_ms;
    char error[512];
    char code[32];
};

struct cv_client_iter {
    cv_client *c;
    json_t *req;           /* the next page's request */
    json_t *page_rows;     /* the events of the page being read */
    size_t next;           /* index into page */
    char *cursor;          /* NULL: before the first page or after the last */
    bool started, done;
    int pages;
    int page;              /* rows per request */
    long long max, given;  /* events to give at most (0: all); given so far */
};

cv_client *cv_client_open(const char *home, char *err, size_t errlen)
{
    return cv_client_open_config(home, NULL, err, errlen);
}

cv_client *cv_client_open_config(const char *home, const char *config_file,
                                 char *err, size_t errlen)
{
    cv_client *c = cv_calloc(1, sizeof *c);
    c->timeout_ms = TIMEOUT_MS;
    if (cv_config_load(&c->cfg, home, config_file)) {
        snprintf(err, errlen, "cannot load the instance's configuration "
                 "(its problems are on stderr)");
        cv_config_free(&c->cfg);
        free(c);
        return NULL;
    }
    c->ctl = cv_control_new(&c->cfg, err, errlen);
    if (!c->ctl) {
        cv_config_free(&c->cfg);
        free(c);
        return NULL;
    }
    return c;
}

void cv_client_close(cv_client **p)
{
    cv_client *c = *p;
    if (!c)
        return;
    cv_control_destroy(&c->ctl);
    cv_config_free(&c->cfg);
    free(c);
    *p = NULL;
}

void cv_client_set_timeout(cv_client *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : TIMEOUT_MS;
}

const char *cv_client_error(const cv_client *c)
{
    return c->error;
}

const char *cv_client_error_code(const cv_client *c)
{
    return c->code;
}

static void set_error(cv_client *c, const char *code, const char *msg)
{
    snprintf(c->code, sizeof c->code, "%s", code);
    snprintf(c->error, sizeof c->error, "%s", msg);
}

/* One request: the reply object (ok or not), or NULL with the error set. */
static json_t *call(cv_client *c, json_t *req)
{
    char err[512];
    c->error[0] = c->code[0] = '\0';
    /* a timed-out connection may still deliver a late reply: a new one */
    if (!c->ctl && !(c->ctl = cv_control_new(&c->cfg, err, sizeof err))) {
        set_error(c, "transport", err);
        return NULL;
    }
    json_t *reply = cv_control_call(c->ctl, req, c->timeout_ms, err, sizeof err);
    if (!reply) {
        cv_control_destroy(&c->ctl);
        set_error(c, "transport", err);
        return NULL;
    }
    if (!json_is_true(json_object_get(reply, "ok"))) {
        const char *code = json_string_value(json_object_get(reply, "code"));
        const char *msg = json_string_value(json_object_get(reply, "error"));
        set_error(c, code ? code : "other", msg ? msg : "store refused the request");
    }
    return reply;
}

/* call(), sent again with the same request when no answer came (writes:
 * the request carries its ids, so store keeps one copy whatever arrived). */
static json_t *call_write(cv_client *c, json_t *req)
{
    json_t *reply = NULL;
    for (int i = 0; i < SAVE_ATTEMPTS && !reply; i++)
        reply = call(c, req);
    return reply;
}

/* 0 with the member of the reply (or the reply, without "ok") as text in
 * *out, or the status of a refused or failed call. Takes req. */
static int ask_for(cv_client *c, json_t *req, const char *member, char **out,
                   bool resend)
{
    *out = NULL;
    if (!req) { /* json_pack refused a string: not UTF-8 */
        set_error(c, "bad_request", "an argument is not valid UTF-8");
        return CV_CLIENT_REFUSED;
    }
    json_t *reply = resend ? call_write(c, req) : call(c, req);
    json_decref(req);
    if (!reply)
        return CV_CLIENT_FAILED;
    int rc = CV_CLIENT_REFUSED;
    if (json_is_true(json_object_get(reply, "ok"))) {
        if (!member)
            json_object_del(reply, "ok");
        json_t *v = member ? json_object_get(reply, member) : reply;
        *out = v ? json_dumps(v, CV_JSON_DUMP | JSON_ENCODE_ANY) : NULL;
        rc = 0;
        if (!*out) {
            set_error(c, "transport", "store's reply lacks what was asked for");
            rc = CV_CLIENT_FAILED;
        }
    }
    json_decref(reply);
    return rc;
}

static int call_for(cv_client *c, json_t *req, const char *member, char **out)
{
    return ask_for(c, req, member, out, false);
}

/* A write's reply, without "ok", as text in *out. */
static int write_for(cv_client *c, json_t *req, char **out)
{
    return ask_for(c, req, NULL, out, true);
}

/* The request and the reply go as text, checked by the scanners but
 * never built into trees: ctxvault-sync's pages are large, and parsing
 * and printing them again was most of its work. */
int cv_client_call(cv_client *c, const char *request, char **reply)
{
    *reply = NULL;
    char err[512];
    size_t len = strlen(request);
    cv_jwalk w;
    cv_jwalk_init(&w, request, len, CV_JW_MAX_DEPTH, err, sizeof err);
    int tok = cv_jwalk_next(&w);
    if ((tok == CV_JW_OBJECT || tok == CV_JW_ARRAY) && cv_jwalk_skip(&w) == CV_JW_ERROR)
        tok = CV_JW_ERROR;
    if (tok != CV_JW_ERROR && tok != CV_JW_EOF && cv_jwalk_next(&w) != CV_JW_EOF)
        tok = CV_JW_ERROR;
    if (tok == CV_JW_ERROR || tok == CV_JW_EOF) {
        char msg[512];
        snprintf(msg, sizeof msg, "the request is not valid JSON: %.400s",
                 tok == CV_JW_EOF ? "no value" : err);
        set_error(c, "bad_request", msg);
        return CV_CLIENT_REFUSED;
    }
    c->error[0] = c->code[0] = '\0';
    /* a timed-out connection may still deliver a late reply: a new one */
    if (!c->ctl && !(c->ctl = cv_control_new(&c->cfg, err, sizeof err))) {
        set_error(c, "transport", err);
        return CV_CLIENT_FAILED;
    }
    size_t rlen;
    char *text = cv_control_call_text(c->ctl, request, len, c->timeout_ms,
                                      &rlen, err, sizeof err);
    if (!text) {
        cv_control_destroy(&c->ctl);
        set_error(c, "transport", err);
        return CV_CLIENT_FAILED;
    }
    cv_jfield f[] = {{.name = "ok"}, {.name = "code"}, {.name = "error"}};
    if (cv_jscan_object(text, rlen, CV_JW_MAX_DEPTH, false, f, 3, err,
                        sizeof err) < 0) {
        free(text);
        set_error(c, "transport", "store's reply is not a JSON object");
        return CV_CLIENT_FAILED;
    }
    if (f[0].type == CV_JS_TRUE) {
        *reply = text;
        return 0;
    }
    char code[32], msg[512];
    set_error(c, cv_jscan_field_string(&f[1], code, sizeof code) ? code : "other",
              cv_jscan_field_string(&f[2], msg, sizeof msg) ? msg
                                                       : "store refused the request");
    *reply = text;
    return CV_CLIENT_REFUSED;
}

static json_t *user_req(const char *op, const char *user, bool decrypt)
{
    json_t *req = json_pack("{s:s, s:s?}", "op", op, "user", user);
    if (decrypt)
        json_object_set_new(req, "decrypt", json_true());
    return req;
}

int cv_client_context_load(cv_client *c, const char *user, const char *name,
                           bool decrypt, char **context)
{
    json_t *req = user_req("context.load", user, decrypt);
    if (name)
        json_object_set_new(req, "name", json_string(name));
    return call_for(c, req, "context", context);
}

int cv_client_context_by_id(cv_client *c, const char *user, const char *id,
                            bool decrypt, char **context)
{
    json_t *req = user_req("context.load", user, decrypt);
    json_object_set_new(req, "id", json_string(id));
    return call_for(c, req, "context", context);
}

int cv_client_context_list(cv_client *c, const char *user, int limit,
                           bool decrypt, char **contexts)
{
    json_t *req = user_req("context.list", user, decrypt);
    if (limit > 0)
        json_object_set_new(req, "limit", json_integer(limit));
    return call_for(c, req, "contexts", contexts);
}

int cv_client_profile_get(cv_client *c, const char *user, bool decrypt,
                          char **profile)
{
    return call_for(c, user_req("profile.get", user, decrypt), NULL, profile);
}

int cv_client_db_size(cv_client *c, char **sizes)
{
    return call_for(c, json_pack("{s:s}", "op", "db.size"), NULL, sizes);
}

/* --- writes ------------------------------------------------------------- */

/* A new id: the derived ids' layout (time first, so the id index grows at
 * its end), with random bits where ingest has a keyed digest: a client
 * holds no key, and a plain digest of the content would be a guessable
 * fingerprint of personal data, stored in clear. Made once per save and
 * kept for its resends, so those dedupe. */
static void new_id(char out[CV_CLIENT_ID_MAX + 1])
{
    uint8_t bits[10];
    if (sodium_init() < 0)
        abort(); /* no randomness: no id that is safe to use */
    randombytes_buf(bits, sizeof bits);
    char id[CV_EVENT_ID_LEN + 1];
    cv_event_make_id(cv_now_ms(), bits, id);
    snprintf(out, CV_CLIENT_ID_MAX + 1, "%s", id);
}

/* Does o have member m, in any spelling (fieldname.h)? */
static bool has_member(json_t *o, cv_member m)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
        if (cv_fieldname_of(k, strlen(k)) == (int)m)
            return true;
    return false;
}

/* A JSON object's text, or NULL with a bad_request error set. */
static json_t *object_arg(cv_client *c, const char *what, const char *text)
{
    json_error_t je;
    json_t *o = text ? json_loads(text, 0, &je) : NULL;
    if (!json_is_object(o)) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s must be a JSON object%s%s", what,
                 o || !text ? "" : ": ", o || !text ? "" : je.text);
        set_error(c, "bad_request", msg);
        json_decref(o);
        return NULL;
    }
    return o;
}

int cv_client_context_save(cv_client *c, cv_client_context *ctx)
{
    json_t *fields = object_arg(c, "the context's fields", ctx->fields);
    if (!fields)
        return CV_CLIENT_REFUSED;
    if (!ctx->id[0])
        new_id(ctx->id);
    ctx->stored = false;
    json_t *req = json_pack("{s:s, s:s?, s:s?, s:s?, s:s, s:o}", "op",
                            "context.save", "user", ctx->user, "name",
                            ctx->name, "ts", ctx->ts, "id", ctx->id, "fields",
                            fields);
    if (!req) {
        set_error(c, "bad_request", "user, name, ts and id must be UTF-8 text");
        return CV_CLIENT_REFUSED;
    }
    json_t *reply = call_write(c, req);
    json_decref(req);
    if (!reply)
        return CV_CLIENT_FAILED;
    int rc = CV_CLIENT_REFUSED;
    if (json_is_true(json_object_get(reply, "ok"))) {
        ctx->stored = json_is_true(json_object_get(reply, "stored"));
        rc = 0;
    }
    json_decref(reply);
    return rc;
}

int cv_client_interactions_save(cv_client *c, const char *user,
                                const char *const *events, size_t n,
                                char **reply)
{
    *reply = NULL;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_error_t je;
        json_t *e = json_loads(events[i], 0, &je);
        if (json_is_object(e) && !has_member(e, CV_MEMBER_ID) &&
            !has_member(e, CV_MEMBER_TS)) {
            /* store would make it an event of this save alone: an id
             * made once here keeps this call's resends to one row */
            char id[CV_CLIENT_ID_MAX + 1];
            new_id(id);
            json_object_set_new(e, "id", json_string(id));
        }
        if (!json_is_object(e)) {
            /* sent as the text it is (null when not UTF-8), for store to
             * reject by its index while it stores the others */
            json_decref(e);
            e = json_string(events[i]);
            if (!e)
                e = json_null();
        }
        json_array_append_new(arr, e);
    }
    json_t *req = json_pack("{s:s, s:s?, s:o}", "op", "interactions.save",
                            "user", user, "events", arr);
    if (!req) {
        set_error(c, "bad_request", "user and events must be UTF-8 text");
        return CV_CLIENT_REFUSED;
    }
    return write_for(c, req, reply);
}

int cv_client_context_delete(cv_client *c, const char *user, const char *id,
                             const char *name, bool all, long long *deleted)
{
    *deleted = 0;
    json_t *req = json_pack("{s:s, s:s?, s:s?, s:s?}", "op", "context.delete",
                            "user", user, "id", id, "name", name);
    if (!req) {
        set_error(c, "bad_request", "user, id and name must be UTF-8 text");
        return CV_CLIENT_REFUSED;
    }
    if (all)
        json_object_set_new(req, "all", json_true());
    /* deleting twice deletes nothing more: a resend is safe (its reply
     * may then say not_found) */
    json_t *reply = call_write(c, req);
    json_decref(req);
    if (!reply)
        return CV_CLIENT_FAILED;
    int rc = CV_CLIENT_REFUSED;
    if (json_is_true(json_object_get(reply, "ok"))) {
        *deleted = json_integer_value(json_object_get(reply, "deleted"));
        rc = 0;
    }
    json_decref(reply);
    return rc;
}

int cv_client_profile_set(cv_client *c, const char *user, const char *settings,
                          char **profile)
{
    *profile = NULL;
    json_t *set = object_arg(c, "the profile's settings", settings);
    if (!set)
        return CV_CLIENT_REFUSED;
    char id[CV_CLIENT_ID_MAX + 1];
    new_id(id);
    json_t *req = json_pack("{s:s, s:s?, s:s}", "op", "profile.set", "user",
                            user, "id", id);
    if (!req) {
        json_decref(set);
        set_error(c, "bad_request", "user must be UTF-8 text");
        return CV_CLIENT_REFUSED;
    }
    json_object_del(set, "op"); /* the settings cannot make it another op */
    json_object_del(set, "user");
    json_object_update(req, set);
    json_decref(set);
    return write_for(c, req, profile);
}

int cv_client_stats_period(cv_client *c, const char *since, const char *until,
                           char **stats)
{
    return call_for(c, json_pack("{s:s, s:s?, s:s?}", "op", "stats", "since",
                                 since, "until", until), NULL, stats);
}

int cv_client_segment(cv_client *c, const char *user, bool refresh,
                      char **segment)
{
    return call_for(c, json_pack("{s:s, s:s?, s:b}", "op", "user.segment",
                                 "user", user, "refresh", refresh), NULL, segment);
}

int cv_client_compact(cv_client *c, int pages, int max_ms, char **result)
{
    json_t *req = json_pack("{s:s}", "op", "db.compact");
    if (pages > 0)
        json_object_set_new(req, "pages", json_integer(pages));
    if (max_ms > 0)
        json_object_set_new(req, "max_ms", json_integer(max_ms));
    return call_for(c, req, NULL, result);
}

int cv_client_cache_put(cv_client *c, const char *ns, const char *key,
                        const char *value, long long ttl, const char *user)
{
    json_error_t je;
    json_t *v = value ? json_loads(value, JSON_DECODE_ANY, &je) : NULL;
    if (!v) {
        char msg[300];
        snprintf(msg, sizeof msg, "the value is not valid JSON: %s",
                 value ? je.text : "none given");
        set_error(c, "bad_request", msg);
        return CV_CLIENT_REFUSED;
    }
    char *ignored;
    int rc = call_for(c, json_pack("{s:s, s:s?, s:s?, s:o, s:I, s:s?}", "op",
                                   "cache.put", "ns", ns, "key", key, "value",
                                   v, "ttl", (json_int_t)ttl, "user", user),
                      NULL, &ignored);
    free(ignored);
    return rc;
}

int cv_client_cache_delete(cv_client *c, const char *user, const char *ns,
                           const char *key, char **reply)
{
    /* not resent: a delete that was done would then be not_found */
    return call_for(c, json_pack("{s:s, s:s?, s:s?, s:s?}", "op", "cache.delete",
                                 "user", user, "ns", ns, "key", key), NULL, reply);
}

int cv_client_cache_get(cv_client *c, const char *ns, const char *key,
                        char **value)
{
    *value = NULL;
    char *text;
    int rc = call_for(c, json_pack("{s:s, s:s?, s:s?}", "op", "cache.get", "ns",
                                   ns, "key", key), NULL, &text);
    if (rc)
        return rc;
    json_error_t je;
    json_t *r = json_loads(text, 0, &je);
    free(text);
    if (json_is_true(json_object_get(r, "hit")))
        *value = json_dumps(json_object_get(r, "value"),
                            CV_JSON_DUMP | JSON_ENCODE_ANY);
    json_decref(r);
    return 0;
}

int cv_client_meta(cv_client *c, char **meta)
{
    return call_for(c, json_pack("{s:s}", "op", "meta"), NULL, meta);
}

/* --- paging -------------------------------------------------------------- */

cv_client_iter *cv_client_interactions(cv_client *c, const cv_client_filter *f)
{
    cv_client_iter *it = cv_calloc(1, sizeof *it);
    it->c = c;
    it->req = json_pack("{s:s, s:s?, s:s?, s:s?, s:s?}", "op",
                        "interactions.query", "user", f->user, "type", f->type,
                        "since", f->since, "until", f->until);
    if (!it->req) { /* a string that is not UTF-8 */
        free(it);
        return NULL;
    }
    it->page = f->page > 0 ? f->page : 100;
    it->max = f->max > 0 ? f->max : 0;
    if (f->decrypt)
        json_object_set_new(it->req, "decrypt", json_true());
    if (f->cursor)
        it->cursor = cv_strdup(f->cursor);
    return it;
}

/* Fetch the page after the cursor: 0, or the status of the call. */
static int fetch(cv_client_iter *it)
{
    if (it->cursor)
        json_object_set_new(it->req, "cursor", json_string(it->cursor));
    /* the last page ends at max exactly, so its cursor is right after
     * the last event given */
    long long limit = it->page;
    if (it->max && it->max - it->given < limit)
        limit = it->max - it->given;
    json_object_set_new(it->req, "limit", json_integer(limit));
    json_t *reply = call(it->c, it->req);
    if (!reply)
        return CV_CLIENT_FAILED;
    if (!json_is_true(json_object_get(reply, "ok"))) {
        json_decref(reply);
        return CV_CLIENT_REFUSED;
    }
    json_t *events = json_object_get(reply, "events");
    json_t *cursor = json_object_get(reply, "cursor");
    if (!json_is_array(events) || !(json_is_string(cursor) || json_is_null(cursor))) {
        json_decref(reply);
        set_error(it->c, "transport", "store's reply has no events and cursor");
        return CV_CLIENT_FAILED;
    }
    json_decref(it->page_rows);
    it->page_rows = json_incref(events);
    it->next = 0;
    free(it->cursor);
    it->cursor = json_is_string(cursor) ? cv_strdup(json_string_value(cursor)) : NULL;
    it->done = it->cursor == NULL;
    it->started = true;
    it->pages++;
    json_decref(reply);
    return 0;
}

int cv_client_iter_next(cv_client_iter *it, char **event)
{
    *event = NULL;
    for (;;) {
        if (it->max && it->given == it->max)
            return 0;
        if (it->page_rows && it->next < json_array_size(it->page_rows)) {
            json_t *e = json_array_get(it->page_rows, it->next++);
            it->given++;
            *event = json_dumps(e, CV_JSON_DUMP | JSON_ENCODE_ANY);
            return 1;
        }
        if (it->started && it->done)
            return 0;
        int rc = fetch(it);
        if (rc)
            return rc;
    }
}

const char *cv_client_iter_cursor(const cv_client_iter *it)
{
    return it->cursor;
}

int cv_client_iter_pages(const cv_client_iter *it)
{
    return it->pages;
}

void cv_client_iter_destroy(cv_client_iter **p)
{
    cv_client_iter *it = *p;
    if (!it)
        return;
    json_decref(it->req);
    json_decref(it->page_rows);
    free(it->cursor);
    free(it);
    *p = NULL;
}
