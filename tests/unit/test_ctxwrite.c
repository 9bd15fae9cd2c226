/* test_ctxwrite.c - the context API's write side (lib/ctx/ctxwrite.h) on a
 * store without sockets: the event a request makes, the refusals, and
 * each op's rows. */
#include "harness.h"
#include "fixtures.h"

#include "ctx/ctxwrite.h"
#include "base/util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The keep-users policy, sealing "summary" too. */
static const char policy[] =
    "[retention]\nother = 30d\naudit = 365d\nsnapshot = 7d\nprofile = user\n"
    "[scrub]\nother = 90d\n[privacy]\nephemeral = 1h\n"
    "[fields]\nuser_id = keep\nsummary = encrypt\n";

/* The event text a request makes (now: 2026-11-01T00:00:00Z), or the
 * error's code prefixed with "!". Freed by the caller. */
static char *event_of(const char *text)
{
    json_t *req = cvt_json(text), *err;
    json_t *ev = cv_ctxwrite_event(req, 1793491200000LL, &err);
    json_decref(req);
    char *out;
    if (ev) {
        out = json_dumps(ev, CV_JSON_DUMP);
        json_decref(ev);
    } else {
        out = cv_fmt("!%s", json_string_value(json_object_get(err, "code")));
        json_decref(err);
    }
    return out;
}

#define CHECK_EVENT(req, want)                                            \
    do {                                                                  \
        char *got_ = event_of(req);                                       \
        if (strcmp(got_, want) != 0)                                      \
            cvt_fail(__FILE__, __LINE__, "%s\n  gave %s\n  want %s", req, \
                     got_, want);                                         \
        free(got_);                                                       \
    } while (0)

TEST(a_save_request_becomes_an_event_with_store_s_members_first)
{
    CHECK_EVENT("{\"op\":\"context.save\",\"user\":\"u1\",\"name\":\"weekly\","
                "\"id\":\"c-1\",\"ts\":\"2026-10-01T10:00:00Z\",\"actor\":\"me\","
                "\"fields\":{\"summary\":\"s\",\"n\":[1,2]}}",
                "{\"id\":\"c-1\",\"ts\":\"2026-10-01T10:00:00.000Z\",\"kind\":"
                "\"context\",\"type\":\"weekly\",\"user_id\":\"u1\",\"summary\":"
                "\"s\",\"n\":[1,2]}");
    /* no ts: the clock's; no id: none yet (the validator derives it) */
    CHECK_EVENT("{\"op\":\"context.save\",\"user\":\"u1\",\"fields\":{}}",
                "{\"ts\":\"2026-11-01T00:00:00.000Z\",\"kind\":\"context\","
                "\"user_id\":\"u1\"}");
    CHECK_EVENT("{\"op\":\"profile.set\",\"user\":\"u1\",\"ts\":1793491200000,"
                "\"retention_days\":7,\"privacy_level\":null,"
                "\"preferences\":{\"lang\":\"en\"}}",
                "{\"ts\":\"2026-11-01T00:00:00.000Z\",\"kind\":\"profile\","
                "\"user_id\":\"u1\",\"privacy_level\":null,\"retention_days\":7,"
                "\"preferences\":{\"lang\":\"en\"}}");
    /* an application's own object as the fields: its user, time, id and
     * settings, however spelled, become the request's */
    CHECK_EVENT("{\"op\":\"context.save\",\"fields\":{\"id\":\"9f1c\",\"userId\":\"u1\","
                "\"timestamp\":1796637600000,\"recentSearches\":[\"q\"]}}",
                "{\"id\":\"9f1c\",\"ts\":\"2026-12-07T10:00:00.000Z\",\"kind\":"
                "\"context\",\"user_id\":\"u1\",\"recentSearches\":[\"q\"]}");
    CHECK_EVENT("{\"op\":\"profile.set\",\"user\":\"u1\",\"fields\":{\"userId\":\"u1\","
                "\"privacyLevel\":\"anonymous\",\"dataRetentionDays\":\"forever\","
                "\"language\":\"en\"}}",
                "{\"ts\":\"2026-11-01T00:00:00.000Z\",\"kind\":\"profile\","
                "\"user_id\":\"u1\",\"privacy_level\":\"anonymous\","
                "\"retention_days\":null,\"language\":\"en\"}");
}

TEST(a_request_that_cannot_make_its_event_is_refused)
{
    static const char *const bad[] = {
        "{\"op\":\"context.save\",\"fields\":{}}",
        "{\"op\":\"context.save\",\"user\":\"\",\"fields\":{}}",
        "{\"op\":\"context.save\",\"user\":\"u\"}",
        "{\"op\":\"context.save\",\"user\":\"u\",\"fields\":[]}",
        "{\"op\":\"context.save\",\"user\":\"u\",\"fields\":{},\"limit\":3}",
        "{\"op\":\"context.save\",\"user\":\"u\",\"fields\":{\"kind\":\"profile\"}}",
        "{\"op\":\"context.save\",\"user\":\"u\",\"name\":\"y\",\"fields\":{\"type\":\"x\"}}",
        "{\"op\":\"context.save\",\"user\":\"u\",\"fields\":{\"userId\":\"v\"}}",
        "{\"op\":\"context.save\",\"user\":\"u\",\"ts\":\"2026-01-01T00:00:00Z\","
        "\"fields\":{\"timestamp\":1796637600000}}",
        "{\"op\":\"profile.set\",\"user\":\"u\",\"fields\":{\"privacyLevel\":3}}",
        "{\"op\":\"context.save\",\"user\":\"u\",\"fields\":{\"retention_days\":1}}",
        "{\"op\":\"context.save\",\"user\":\"u\",\"fields\":{},\"ts\":\"soon\"}",
        "{\"op\":\"context.save\",\"user\":\"u\",\"fields\":{},\"id\":5}",
        "{\"op\":\"context.save\",\"user\":\"u\",\"fields\":{},\"actor\":1}",
        "{\"op\":\"profile.set\",\"user\":\"u\"}",
        "{\"op\":\"profile.set\",\"user\":\"u\",\"privacy_level\":3}",
        "{\"op\":\"profile.set\",\"user\":\"u\",\"retention_days\":\"7\"}",
        "{\"op\":\"profile.set\",\"user\":\"u\",\"preferences\":\"dark\"}",
        "{\"op\":\"profile.set\",\"user\":\"u\",\"name\":\"n\",\"retention_days\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *got = event_of(bad[i]);
        if (strcmp(got, "!bad_request") != 0)
            cvt_fail(__FILE__, __LINE__, "%s gave %s", bad[i], got);
        free(got);
    }
    char *got = event_of("{\"op\":\"interactions.save\",\"user\":\"u\",\"events\":[]}");
    CHECK_STR(got, "!unknown_op");
    free(got);
}

typedef struct {
    cvt_store f;
    cv_ctxwrite *w;
    cv_deadletter *dl;
    cv_db *reader;
    cv_ctxapi read;
} fixture;

static int setup(fixture *x)
{
    memset(x, 0, sizeof *x);
    if (cvt_store_setup(&x->f, policy) < 0)
        return -1;
    x->dl = cv_deadletter_open(cvt_tmpdir(), "store", x->f.kr);
    x->w = cv_ctxwrite_new(&(cv_ctxwrite_opts){
        .store = x->f.st, .db = x->f.db, .pol = x->f.pol, .kr = x->f.kr,
        .dl = x->dl, .max_depth = 64});
    char err[512];
    int code;
    x->reader = cv_db_open_reader(cv_db_path(x->f.db), &code, err, sizeof err);
    x->read = (cv_ctxapi){.db = x->reader, .pol = x->f.pol, .kr = x->f.kr};
    return x->dl && x->reader ? 0 : -1;
}

static void teardown(fixture *x)
{
    cv_ctxwrite_destroy(&x->w);
    cv_db_close(&x->reader);
    cv_deadletter_close(&x->dl);
    cvt_store_teardown(&x->f);
}

/* The reply to text; freed by the caller. */
static json_t *ask(fixture *x, const char *text)
{
    json_t *req = cvt_json(text);
    json_t *r = cv_ctxwrite_answer(x->w, &x->read, req, strlen(text));
    json_decref(req);
    return r;
}

static const char *code(json_t *r)
{
    const char *c = json_string_value(json_object_get(r, "code"));
    return c ? c : json_is_true(json_object_get(r, "ok")) ? "ok" : "(none)";
}

TEST(a_context_is_stored_once_per_id_and_sealed)
{
    fixture x;
    CHECK(setup(&x) == 0);
    const char *req = "{\"op\":\"context.save\",\"user\":\"u1\",\"id\":\"c-1\","
                      "\"name\":\"weekly\",\"fields\":{\"summary\":\"private words\"}}";
    json_t *r = ask(&x, req);
    CHECK_STR(code(r), "ok");
    CHECK(json_is_true(json_object_get(r, "stored")));
    CHECK_STR(json_string_value(json_object_get(r, "id")), "c-1");
    json_decref(r);
    r = ask(&x, req);
    CHECK(json_is_false(json_object_get(r, "stored")));
    json_decref(r);
    CHECK_INT(cvt_q(&x.f, "SELECT COUNT(*) FROM events"), 1);
    CHECK_INT(cvt_q(&x.f, "SELECT COUNT(*) FROM events WHERE kind = 'context' "
                          "AND type = 'weekly' AND body LIKE '%\"summary\":\"enc:%'"), 1);
    CHECK_INT(cvt_q(&x.f, "SELECT COUNT(*) FROM events WHERE body LIKE '%private%'"), 0);
    /* committed: nothing left open */
    CHECK_INT(cv_store_pending(x.f.st), 0);
    /* without an id, one derived as ingest derives it: 26 characters */
    r = ask(&x, "{\"op\":\"context.save\",\"user\":\"u1\",\"fields\":{}}");
    CHECK_INT(strlen(json_string_value(json_object_get(r, "id"))), 26);
    json_decref(r);
    teardown(&x);
}

TEST(a_batch_stores_the_good_events_and_reports_the_bad_by_index)
{
    fixture x;
    CHECK(setup(&x) == 0);
    json_t *r = ask(&x, "{\"op\":\"interactions.save\",\"user\":\"u1\",\"events\":["
                        "{\"id\":\"i-0\",\"type\":\"click\"},"
                        "{\"type\":\"click\",\"ts\":12},"
                        "[1],"
                        "{\"kind\":\"context\"},"
                        "{\"id\":\"i-4\",\"type\":\"search\",\"user_id\":\"u2\"}]}");
    CHECK_STR(code(r), "ok");
    CHECK_INT(json_integer_value(json_object_get(r, "stored")), 2);
    json_t *rej = json_object_get(r, "rejected");
    CHECK_INT(json_array_size(rej), 3);
    static const int want[] = {1, 2, 3};
    for (int i = 0; i < 3; i++)
        CHECK_INT(json_integer_value(json_object_get(json_array_get(rej, i), "index")),
                  want[i]);
    CHECK(strstr(json_string_value(json_object_get(json_array_get(rej, 0), "error")),
                 "\"ts\""));
    CHECK(json_is_null(json_array_get(json_object_get(r, "ids"), 1)));
    json_decref(r);
    CHECK_INT(cvt_q(&x.f, "SELECT COUNT(*) FROM events_v WHERE user_id = 'u2'"), 1);
    CHECK_INT(cv_deadletter_count(x.dl), 3);
    /* bounded */
    size_t cap = 1001 * 3 + 64, n = 0;
    char *many = cv_malloc(cap);
    n += (size_t)snprintf(many, cap, "{\"op\":\"interactions.save\",\"events\":[");
    for (int i = 0; i < 1001; i++)
        n += (size_t)snprintf(many + n, cap - n, "%s{}", i ? "," : "");
    snprintf(many + n, cap - n, "]}");
    r = ask(&x, many);
    CHECK_STR(code(r), "too_large");
    json_decref(r);
    free(many);
    teardown(&x);
}

TEST(context_delete_takes_one_selector_and_is_audited)
{
    fixture x;
    CHECK(setup(&x) == 0);
    static const char *const saves[] = {
        "{\"op\":\"context.save\",\"user\":\"u1\",\"id\":\"a1\",\"name\":\"a\",\"fields\":{}}",
        "{\"op\":\"context.save\",\"user\":\"u1\",\"id\":\"a2\",\"name\":\"a\",\"fields\":{}}",
        "{\"op\":\"context.save\",\"user\":\"u1\",\"id\":\"b1\",\"name\":\"b\",\"fields\":{}}",
    };
    for (size_t i = 0; i < 3; i++)
        json_decref(ask(&x, saves[i]));
    json_t *r = ask(&x, "{\"op\":\"context.delete\",\"user\":\"u1\",\"name\":\"a\","
                        "\"id\":\"b1\"}");
    CHECK_STR(code(r), "bad_request");
    json_decref(r);
    r = ask(&x, "{\"op\":\"context.delete\",\"user\":\"u1\",\"name\":\"a\"}");
    CHECK_STR(code(r), "ok");
    CHECK_INT(json_integer_value(json_object_get(r, "deleted")), 2);
    json_decref(r);
    r = ask(&x, "{\"op\":\"context.delete\",\"user\":\"u1\",\"name\":\"a\"}");
    CHECK_STR(code(r), "not_found");
    json_decref(r);
    CHECK_INT(cvt_q(&x.f, "SELECT COUNT(*) FROM events"), 1);
    CHECK_INT(cvt_q(&x.f, "SELECT rows FROM audit WHERE action = 'context-delete'"), 2);
    CHECK_INT(cvt_q(&x.f, "SELECT COUNT(*) FROM audit"), 1);
    teardown(&x);
}

TEST(profile_set_keeps_the_settings_it_leaves_out)
{
    fixture x;
    CHECK(setup(&x) == 0);
    json_t *r = ask(&x, "{\"op\":\"profile.set\",\"user\":\"u1\",\"retention_days\":5,"
                        "\"privacy_level\":\"private\"}");
    CHECK_STR(code(r), "ok");
    CHECK_INT(json_integer_value(json_object_get(json_object_get(r, "profile"),
                                                 "retention_days")), 5);
    json_decref(r);
    r = ask(&x, "{\"op\":\"profile.set\",\"user\":\"u1\",\"preferences\":{\"a\":1}}");
    CHECK_STR(code(r), "ok");
    json_t *p = json_object_get(r, "profile");
    CHECK_INT(json_integer_value(json_object_get(p, "retention_days")), 5);
    CHECK_STR(json_string_value(json_object_get(p, "privacy_level")), "private");
    json_decref(r);
    /* null is forever: kept until erased, as far as each kind's cap allows */
    r = ask(&x, "{\"op\":\"profile.set\",\"user\":\"u1\",\"retention_days\":null}");
    CHECK_STR(json_string_value(json_object_get(json_object_get(r, "profile"),
                                                "retention_days")), "forever");
    json_decref(r);
    CHECK_INT(cvt_q(&x.f, "SELECT retention_days FROM profiles"), -1);
    /* and stays forever when a later request leaves it out */
    r = ask(&x, "{\"op\":\"profile.set\",\"user\":\"u1\",\"privacyLevel\":\"public\"}");
    CHECK_STR(json_string_value(json_object_get(json_object_get(r, "profile"),
                                                "retention_days")), "forever");
    json_decref(r);
    CHECK_INT(cvt_q(&x.f, "SELECT retention_days FROM profiles"), -1);
    teardown(&x);
}
