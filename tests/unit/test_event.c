/* test_event.c - the scanner, event validation and normalisation, time. */
#include "harness.h"

#include "base/event.h"
#include "base/jscan.h"
#include "base/time.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t key[32] = {1, 2, 3};
static const cv_event_rules rules = {.max_depth = 64, .id_key = key};

static int norm(const char *line, char **out, char *reason)
{
    size_t n;
    return cv_event_normalise(&rules, line, strlen(line), 1700000000000LL, out,
                              &n, reason, 256);
}

TEST(jscan_extracts_top_level_members_only)
{
    cv_jfield f[2] = {{.name = "kind"}, {.name = "user_id"}};
    const char *t = "{\"a\":{\"kind\":\"inner\"},\"kind\":\"click\",\"user_id\":\"u\\u00e9\"}";
    char err[128], buf[32];
    CHECK_INT(cv_jscan_object(t, strlen(t), 64, true, f, 2, err, sizeof err), 0);
    CHECK_INT(f[0].type, CV_JS_STRING);
    CHECK(cv_jscan_field_string(&f[0], buf, sizeof buf));
    CHECK_STR(buf, "click");
    CHECK(f[1].escaped);
    CHECK(cv_jscan_field_string(&f[1], buf, sizeof buf));
    CHECK_STR(buf, "u\xc3\xa9");
}

TEST(jscan_rejects_what_rfc8259_rejects)
{
    static const char *const bad[] = {
        "{", "{\"a\":}", "{\"a\":1,}", "{\"a\" 1}", "[1]", "{\"a\":01}",
        "{\"a\":1.}", "{\"a\":tru}", "{\"a\":\"\x01\"}", "{\"a\":\"\xff\"}",
        "{\"a\":\"\\u0000\"}", "{\"a\":\"\\ud800\"}", "{\"a\":1} x",
        "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\\x\"}", "",
    };
    char err[128];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (cv_jscan_object(bad[i], strlen(bad[i]), 64, true, NULL, 0, err,
                            sizeof err) >= 0)
            cvt_fail(__FILE__, __LINE__, "accepted bad input #%zu: %s", i, bad[i]);
    const char *good = " {\"a\":[1,-2.5e+3,true,false,null,{},[]],\"b\":\"\\ud83d\\ude00\xe2\x82\xac\"}\r";
    CHECK(cv_jscan_object(good, strlen(good), 64, true, NULL, 0, err, sizeof err) >= 0);
}

TEST(jscan_finds_duplicate_keys_at_any_depth)
{
    char err[128];
    const char *t = "{\"a\":{\"x\":1,\"y\":2,\"x\":3}}";
    CHECK_INT(cv_jscan_object(t, strlen(t), 64, true, NULL, 0, err, sizeof err), -1);
    CHECK(strstr(err, "duplicate key \"x\"") != NULL);
    /* the same key in sibling objects is fine */
    const char *ok = "{\"a\":{\"x\":1},\"b\":{\"x\":1}}";
    CHECK_INT(cv_jscan_object(ok, strlen(ok), 64, true, NULL, 0, err, sizeof err), 0);
    /* an escaped key cannot be compared cheaply: unproven, not accepted */
    const char *esc = "{\"k\\u0069nd\":1,\"kind\":2}";
    CHECK_INT(cv_jscan_object(esc, strlen(esc), 64, true, NULL, 0, err, sizeof err), 1);
}

TEST(jscan_depth_limit_is_exact)
{
    char deep[200], err[128];
    for (int depth = 63; depth <= 65; depth++) {
        size_t n = 0;
        deep[n++] = '{';
        deep[n++] = '"', deep[n++] = 'a', deep[n++] = '"', deep[n++] = ':';
        for (int i = 1; i < depth; i++)
            deep[n++] = '[';
        for (int i = 1; i < depth; i++)
            deep[n++] = ']';
        deep[n++] = '}';
        int rc = cv_jscan_object(deep, n, 64, true, NULL, 0, err, sizeof err);
        CHECK_INT(rc < 0, depth > 64);
    }
}

TEST(event_gets_a_stable_derived_id_and_keeps_producer_bytes)
{
    char *a, *b, *c, reason[256];
    CHECK_INT(norm("{\"kind\":\"click\",\"user_id\":\"u1\",\"ts\":\"2026-11-22T10:00:00Z\",\"x\":1.50}", &a, reason), 0);
    CHECK_INT(norm("{ \"kind\": \"click\", \"user_id\": \"u1\", \"ts\": \"2026-11-22T10:00:00Z\", \"x\": 1.50 }", &b, reason), 0);
    CHECK_INT(norm("{\"kind\":\"click\",\"user_id\":\"u2\",\"ts\":\"2026-11-22T10:00:00Z\",\"x\":1.50}", &c, reason), 0);
    CHECK(strncmp(a, "{\"id\":\"", 7) == 0);
    CHECK(strncmp(a, b, 7 + 26) == 0);   /* whitespace does not change the id */
    CHECK(strncmp(a, c, 7 + 26) != 0);   /* content does */
    CHECK(strncmp(a + 7, c + 7, 10) == 0); /* same time prefix */
    CHECK(strstr(a, "\"x\":1.50}") != NULL); /* producer's number text kept */
    free(a), free(b), free(c);
}

TEST(event_without_id_or_ts_is_a_new_event_each_time_it_is_accepted)
{
    /* two identical clicks: nothing tells them apart but their acceptance */
    const char *line = "{\"kind\":\"click\",\"user_id\":\"u1\"}";
    char *a, *b, reason[256];
    CHECK_INT(norm(line, &a, reason), 0);
    CHECK_INT(norm(line, &b, reason), 0);
    CHECK(strncmp(a, "{\"id\":\"", 7) == 0);
    CHECK(strncmp(a, b, 7 + 26) != 0);       /* two ids */
    CHECK(strncmp(a + 7, b + 7, 10) == 0);   /* both at the time of acceptance */
    char t[CV_EVENT_ID_LEN + 1];
    static const uint8_t zero[10];
    cv_event_make_id(1700000000000LL, zero, t);
    CHECK(strncmp(a + 7, t, 10) == 0);
    CHECK(strstr(a, "\"ts\":\"2023-11-14T22:13:20.000Z\"") != NULL);
    /* a replay of the normalised line keeps its id */
    char *c;
    CHECK_INT(norm(a, &c, reason), 0);
    CHECK_STR(c, a);
    free(a), free(b), free(c);
    /* with a ts, the same line is the same event */
    const char *with_ts = "{\"kind\":\"click\",\"user_id\":\"u1\",\"ts\":\"2026-11-22T10:00:00Z\"}";
    CHECK_INT(norm(with_ts, &a, reason), 0);
    CHECK_INT(norm(with_ts, &b, reason), 0);
    CHECK_STR(a, b);
    free(a), free(b);
}

TEST(event_keeps_producer_id_and_fills_missing_ts)
{
    char *a, reason[256];
    CHECK_INT(norm("{\"id\":\"evt-1\",\"kind\":\"k\",\"user_id\":\"u\"}", &a, reason), 0);
    CHECK_STR(a, "{\"ts\":\"2023-11-14T22:13:20.000Z\",\"id\":\"evt-1\",\"kind\":\"k\",\"user_id\":\"u\"}");
    free(a);
}

TEST(event_rejections_name_the_problem)
{
    static const struct { const char *line, *reason; } cases[] = {
        {"nope", "not a JSON object"},
        {"[1,2]", "not a JSON object"},
        {"{\"user_id\":\"u\"}", "\"kind\" is missing"},
        {"{\"kind\":\"k\"}", "\"user_id\" is missing"},
        {"{\"kind\":\"k\",\"user_id\":\"\"}", "\"user_id\" is empty"},
        {"{\"kind\":\"k\",\"user_id\":7}", "\"user_id\" is a number"},
        {"{\"kind\":true,\"user_id\":\"u\"}", "\"kind\" is a boolean"},
        {"{\"kind\":\"k\",\"user_id\":\"u\",\"ts\":\"yesterday\"}", "RFC 3339"},
        {"{\"kind\":\"k\",\"user_id\":\"u\",\"ts\":\"2026-13-45T99:00:00Z\"}", "RFC 3339"},
        {"{\"kind\":\"a\",\"kind\":\"b\",\"user_id\":\"u\"}", "duplicate key \"kind\""},
        {"{\"kind\":\"k\",\"user_id\":\"u\",\"q\":\"\\u0000\"}", "NUL"},
        {"{\"kind\":\"k\",\"user_id\":\"u\",\"q\":\"\xff\"}", "UTF-8"},
        {"{\"id\":\"has space\",\"kind\":\"k\",\"user_id\":\"u\"}", "\"id\" must be"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out = NULL, reason[256] = "";
        if (norm(cases[i].line, &out, reason) == 0) {
            free(out);
            cvt_fail(__FILE__, __LINE__, "accepted: %s", cases[i].line);
        }
        if (!strstr(reason, cases[i].reason))
            cvt_fail(__FILE__, __LINE__, "%s: reason \"%s\" lacks \"%s\"",
                     cases[i].line, reason, cases[i].reason);
    }
}

TEST(time_parse_accepts_rfc3339_forms)
{
    int64_t a, b, c;
    CHECK(cv_time_parse("2026-11-22T10:00:00Z", 20, &a));
    CHECK(cv_time_parse("2026-11-22T12:00:00.000+02:00", 29, &b));
    CHECK(cv_time_parse("2026-11-22t10:00:00.123456z", 27, &c));
    CHECK_INT(a, b);
    CHECK_INT(c - a, 123);
    char out[40];
    cv_time_format_ms(c, out);
    CHECK_STR(out, "2026-11-22T10:00:00.123Z");
    CHECK(!cv_time_parse("2026-02-29T00:00:00Z", 20, &a)); /* not a leap year */
    CHECK(cv_time_parse("2024-02-29T00:00:00Z", 20, &a));
    CHECK(!cv_time_parse("2026-11-22 10:00:00", 19, &a));  /* no zone */
    CHECK(!cv_time_parse("2026-11-22T24:00:00Z", 20, &a));
}

TEST(derived_id_ignores_key_order_escapes_and_ts_form)
{
    static const char *const same[] = {
        "{\"kind\":\"k\",\"user_id\":\"u\",\"ts\":\"2026-11-22T10:00:00Z\",\"s\":\"\xc3\xa9\",\"o\":{\"b\":1,\"a\":[2,{\"y\":1,\"x\":\"\\/\"}]}}",
        "{\"user_id\":\"u\",\"kind\":\"k\",\"ts\":\"2026-11-22T12:00:00+02:00\",\"o\":{\"a\":[2,{\"x\":\"/\",\"y\":1}],\"b\":1},\"s\":\"\\u00e9\"}",
        " { \"s\" : \"\\u00E9\" , \"o\":{\"a\":[ 2 , {\"x\":\"/\",\"y\":1} ],\"b\":1}, \"ts\":\"2026-11-22T10:00:00.000Z\",\"user_id\":\"u\",\"kind\":\"k\"}",
    };
    char *first = NULL, reason[256];
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        char *out;
        if (norm(same[i], &out, reason) != 0)
            cvt_fail(__FILE__, __LINE__, "rejected #%zu: %s", i, reason);
        if (!first)
            first = out;
        else {
            if (strncmp(first, out, 7 + 26) != 0)
                cvt_fail(__FILE__, __LINE__, "#%zu got another id: %.33s vs %.33s",
                         i, out, first);
            free(out);
        }
    }
    /* but a different value is a different event */
    char *other;
    CHECK_INT(norm("{\"kind\":\"k\",\"user_id\":\"u\",\"ts\":\"2026-11-22T10:00:00Z\",\"s\":\"e\",\"o\":{\"b\":1,\"a\":[2,{\"y\":1,\"x\":\"/\"}]}}", &other, reason), 0);
    CHECK(strncmp(first, other, 7 + 26) != 0);
    free(first);
    free(other);
}
