/* test_ctxapi.c - the context API's cursors and request checking
 * (lib/ctx/ctxapi.h), without a store. */
#include "harness.h"

#include "ctx/ctxapi.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The reply cv_ctxapi_parse gives for text: NULL when accepted. */
static json_t *parse(const char *text, cv_ctx_args *a)
{
    json_error_t je;
    json_t *req = json_loads(text, 0, &je);
    if (!req)
        return json_pack("{s:s}", "code", "test: not JSON");
    json_t *r = cv_ctxapi_parse(req, a);
    json_decref(req);
    return r;
}

/* The code of the error text gets, or "accepted". */
static char code_buf[64];
static const char *code_of(const char *text)
{
    cv_ctx_args a;
    json_t *r = parse(text, &a);
    if (!r)
        return "accepted";
    snprintf(code_buf, sizeof code_buf, "%s",
             json_string_value(json_object_get(r, "code")));
    /* every error keeps "error" a string, for older clients */
    if (!json_is_string(json_object_get(r, "error")) ||
        !json_is_false(json_object_get(r, "ok")))
        snprintf(code_buf, sizeof code_buf, "malformed error reply");
    json_decref(r);
    return code_buf;
}

TEST(a_cursor_decodes_to_what_was_encoded)
{
    static const int64_t cases[][2] = {
        {0, 0}, {1, 1}, {1796091882565LL, 2918}, {253402300799999LL, 999999999999LL}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char c[CV_CURSOR_MAX];
        int64_t ts = -1, seq = -1;
        cv_ctxapi_cursor_encode(cases[i][0], cases[i][1], c);
        CHECK(cv_ctxapi_cursor_decode(c, &ts, &seq));
        CHECK_INT(ts, cases[i][0]);
        CHECK_INT(seq, cases[i][1]);
    }
}

TEST(a_cursor_that_no_reply_gave_is_refused)
{
    static const char *const bad[] = {
        "", "c1", "c1.", "c1.5", "c1.5.", "c1..5", "c2.1.2", "C1.1.2",
        "c1.-1.2", "c1.1.-2", "c1.1.2.3", "c1.1.2 ", " c1.1.2", "c1.1x.2",
        "c1.1234567890123456789.1", "c1.1.99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t ts, seq;
        if (cv_ctxapi_cursor_decode(bad[i], &ts, &seq))
            cvt_fail(__FILE__, __LINE__, "cursor \"%s\" was accepted", bad[i]);
    }
    int64_t ts, seq;
    CHECK(!cv_ctxapi_cursor_decode(NULL, &ts, &seq));
}

TEST(requests_are_checked_member_by_member)
{
    CHECK_STR(code_of("{\"op\":\"interactions.query\",\"user\":\"u\"}"), "accepted");
    CHECK_STR(code_of("{\"op\":\"interactions.query\",\"user\":\"u\",\"since\":"
                      "\"2026-11-01T00:00:00Z\",\"until\":1796091882565,"
                      "\"type\":\"click\",\"limit\":5,\"cursor\":\"c1.5.6\","
                      "\"decrypt\":false,\"actor\":\"me\"}"), "accepted");
    CHECK_STR(code_of("{\"op\":\"db.size\"}"), "accepted");
    CHECK_STR(code_of("{\"op\":\"context.load\",\"user\":\"u\",\"name\":\"weekly\"}"),
              "accepted");
    /* a user is required, and a non-empty string */
    CHECK_STR(code_of("{\"op\":\"context.load\"}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"context.load\",\"user\":\"\"}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"context.load\",\"user\":5}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"profile.get\",\"user\":[\"u\"]}"), "bad_request");
    /* wrong types, bad values */
    CHECK_STR(code_of("{\"op\":\"interactions.query\",\"user\":\"u\",\"limit\":\"5\"}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"interactions.query\",\"user\":\"u\",\"limit\":0}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"interactions.query\",\"user\":\"u\",\"limit\":-3}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"interactions.query\",\"user\":\"u\",\"limit\":1.5}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"interactions.query\",\"user\":\"u\",\"since\":\"yesterday\"}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"interactions.query\",\"user\":\"u\",\"until\":-1}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"interactions.query\",\"user\":\"u\",\"type\":7}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"interactions.query\",\"user\":\"u\",\"cursor\":\"c1.x\"}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"interactions.query\",\"user\":\"u\",\"cursor\":12}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"interactions.query\",\"user\":\"u\",\"decrypt\":1}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"interactions.query\",\"user\":\"u\",\"actor\":false}"), "bad_request");
    /* a member the op does not take: a typo would widen the answer */
    CHECK_STR(code_of("{\"op\":\"interactions.query\",\"user\":\"u\",\"limt\":5}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"context.list\",\"user\":\"u\",\"cursor\":\"c1.1.1\"}"), "bad_request");
    CHECK_STR(code_of("{\"op\":\"db.size\",\"user\":\"u\"}"), "bad_request");
    /* not ours */
    CHECK_STR(code_of("{\"op\":\"context.save\",\"user\":\"u\"}"), "unknown_op");
    CHECK_STR(code_of("{\"user\":\"u\"}"), "unknown_op");
}

TEST(arguments_come_out_with_their_defaults_and_caps)
{
    cv_ctx_args a;
    json_t *r = parse("{\"op\":\"interactions.query\",\"user\":\"u\"}", &a);
    CHECK(r == NULL);
    CHECK_INT(a.q.limit, CV_CTXAPI_LIMIT);
    CHECK_INT(a.q.since, -1);
    CHECK_INT(a.q.until, -1);
    CHECK(!a.q.has_after);
    CHECK(!a.decrypt);
    CHECK(a.q.type == NULL);
    r = parse("{\"op\":\"interactions.query\",\"user\":\"u\",\"limit\":5000,"
              "\"since\":\"2026-11-01T00:00:01Z\",\"cursor\":\"c1.77.88\","
              "\"decrypt\":true}", &a);
    CHECK(r == NULL);
    CHECK_INT(a.q.limit, CV_CTXAPI_LIMIT_MAX);
    CHECK_INT(a.q.since, 1793491201000LL);
    CHECK(a.q.has_after);
    CHECK_INT(a.q.after_ts, 77);
    CHECK_INT(a.q.after_seq, 88);
    CHECK(a.decrypt);
    /* context.load's name is matched against the event's type */
    json_error_t je;
    json_t *req = json_loads("{\"op\":\"context.load\",\"user\":\"u\",\"name\":\"weekly\"}", 0, &je);
    r = cv_ctxapi_parse(req, &a);
    CHECK(r == NULL);
    CHECK_STR(a.q.type, "weekly");
    json_decref(req);
}

TEST(oversize_and_forbidden_requests_are_refused_before_any_read)
{
    /* no database at all: the checks come first */
    cv_ctxapi api = {0};
    bool dec = true;
    json_error_t je;
    json_t *req = json_loads("{\"op\":\"context.load\",\"user\":\"u\",\"decrypt\":true}", 0, &je);
    json_t *r = cv_ctxapi_answer(&api, req, CV_CTXAPI_MAX_REQUEST + 1, &dec);
    CHECK_STR(json_string_value(json_object_get(r, "code")), "too_large");
    CHECK(!dec);
    json_decref(r);
    r = cv_ctxapi_answer(&api, req, 100, &dec);
    CHECK_STR(json_string_value(json_object_get(r, "code")), "forbidden");
    json_decref(r);
    api.allow_decrypt = true;
    r = cv_ctxapi_answer(&api, req, 100, &dec);
    CHECK_STR(json_string_value(json_object_get(r, "code")), "internal");
    CHECK(!dec);
    json_decref(r);
    json_decref(req);
}

TEST(the_one_error_builder_formats_its_arguments_and_names_code_and_status)
{
    json_t *r = cv_control_error(CV_ERR_TOO_LARGE, 0, "more than %d events in %s", 1000,
                               "one request");
    CHECK(json_is_false(json_object_get(r, "ok")));
    CHECK_STR(json_string_value(json_object_get(r, "error")),
              "more than 1000 events in one request");
    CHECK_STR(json_string_value(json_object_get(r, "code")), "too_large");
    CHECK(!json_object_get(r, "status"));
    json_decref(r);
    /* a maintenance op's reply: a sysexits status, no class */
    r = cv_control_error(NULL, 65, "archive row %zu is not [seq, sum (hex)]", (size_t)3);
    CHECK_STR(json_string_value(json_object_get(r, "error")),
              "archive row 3 is not [seq, sum (hex)]");
    CHECK(!json_object_get(r, "code"));
    CHECK(json_integer_value(json_object_get(r, "status")) == 65);
    json_decref(r);
    /* the limits in messages are the numbers, not their macros' text */
    cv_ctxapi api = {0};
    bool dec = false;
    json_error_t je;
    json_t *req = json_loads("{\"op\":\"context.load\",\"user\":\"u\"}", 0, &je);
    r = cv_ctxapi_answer(&api, req, CV_CTXAPI_MAX_REQUEST + 1, &dec);
    CHECK_STR(json_string_value(json_object_get(r, "error")),
              "request longer than 1048576 bytes");
    json_decref(r);
    json_decref(req);
}

TEST(raw_members_are_spliced_into_the_printed_reply)
{
    json_t *r = json_pack("{s:b, s:n}", "ok", 1, "cursor");
    cv_ctxapi_set_raw(r, "events", "[{\"a\":1},{\"b\":[2]}]", 19);
    char *text = cv_ctxapi_reply_dump(r);
    CHECK_STR(text, "{\"ok\":true,\"cursor\":null,\"events\":[{\"a\":1},{\"b\":[2]}]}");
    json_error_t je;
    json_t *back = json_loads(text, 0, &je);
    CHECK(json_array_size(json_object_get(back, "events")) == 2);
    json_decref(back);
    free(text);
    json_decref(r);
    /* alone in an object: no leading comma */
    r = json_object();
    cv_ctxapi_set_raw(r, "context", "{\"x\":\"y\"}", 9);
    text = cv_ctxapi_reply_dump(r);
    CHECK_STR(text, "{\"context\":{\"x\":\"y\"}}");
    free(text);
    json_decref(r);
}
