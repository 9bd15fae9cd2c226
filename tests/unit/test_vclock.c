/* test_vclock.c - version vectors (order, join, canonical text, parsing)
 * and the hybrid logical clock (lib/storage/vclock.h). */
#include "harness.h"

#include "storage/vclock.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A vector from its text, failing the test if it does not parse. */
static cv_vclock vc(const char *text)
{
    cv_vclock v;
    char err[256];
    if (cv_vclock_parse(&v, text, strlen(text), err, sizeof err) < 0)
        cvt_fail(__FILE__, __LINE__, "%s: %s", text, err);
    return v;
}

static const char *fmt(const cv_vclock *v)
{
    static char buf[4096];
    size_t n = cv_vclock_format(v, buf, sizeof buf);
    if (n != strlen(buf))
        cvt_fail(__FILE__, __LINE__, "format returned %zu for \"%s\"", n, buf);
    return buf;
}

/* The reason text is refused with, or "(parsed)". */
static const char *refusal(const char *text)
{
    static char err[256];
    cv_vclock v;
    cv_vclock_init(&v);
    cv_vclock_set(&v, "untouched", 7);
    if (cv_vclock_parse(&v, text, strlen(text), err, sizeof err) == 0)
        return "(parsed)";
    if (v.len != 1 || cv_vclock_get(&v, "untouched") != 7)
        return "(a refused parse changed the vector)";
    return err;
}

TEST(vclock_device_names)
{
    CHECK(cv_vclock_device_name_ok("phone"));
    CHECK(cv_vclock_device_name_ok("Laptop-2.home_x"));
    CHECK(cv_vclock_device_name_ok("a"));
    CHECK(cv_vclock_device_name_ok("abcdefghijklmnopqrstuvwxyz012345")); /* 32 */
    CHECK(!cv_vclock_device_name_ok("abcdefghijklmnopqrstuvwxyz0123456"));
    CHECK(!cv_vclock_device_name_ok(""));
    CHECK(!cv_vclock_device_name_ok(NULL));
    CHECK(!cv_vclock_device_name_ok("my phone"));
    CHECK(!cv_vclock_device_name_ok("a/b"));
    CHECK(!cv_vclock_device_name_ok("caf\xc3\xa9"));
    CHECK(!cv_vclock_device_name_ok("a\"b"));
}

TEST(vclock_set_get_and_keep_sorted)
{
    cv_vclock v;
    cv_vclock_init(&v);
    CHECK_INT(cv_vclock_get(&v, "x"), 0);
    CHECK_INT(cv_vclock_set(&v, "phone", 3), 0);
    CHECK_INT(cv_vclock_set(&v, "Laptop", 1), 0);
    CHECK_INT(cv_vclock_set(&v, "tablet", 9), 0);
    CHECK_INT(cv_vclock_set(&v, "phone", 4), 0);
    CHECK_INT(v.len, 3);
    CHECK_STR(v.e[0].dev, "Laptop"); /* bytewise: upper case first */
    CHECK_STR(v.e[1].dev, "phone");
    CHECK_STR(v.e[2].dev, "tablet");
    CHECK_INT(cv_vclock_get(&v, "phone"), 4);
    CHECK_INT(cv_vclock_get(&v, "laptop"), 0);
    /* refused: v unchanged */
    CHECK_INT(cv_vclock_set(&v, "bad name", 1), -1);
    CHECK_INT(cv_vclock_set(&v, "phone", -1), -1);
    CHECK_INT(cv_vclock_set(&v, "phone", CV_VCLOCK_N_MAX + 1), -1);
    CHECK_INT(cv_vclock_set(&v, "phone", CV_VCLOCK_N_MAX), 0);
    CHECK_INT(cv_vclock_get(&v, "phone"), CV_VCLOCK_N_MAX);
    /* zero removes, so the text stays canonical */
    CHECK_INT(cv_vclock_set(&v, "phone", 0), 0);
    CHECK_INT(cv_vclock_set(&v, "nobody", 0), 0);
    CHECK_STR(fmt(&v), "{\"Laptop\":1,\"tablet\":9}");
}

TEST(vclock_set_refuses_a_65th_device)
{
    cv_vclock v;
    cv_vclock_init(&v);
    char dev[16];
    for (int i = 0; i < CV_VCLOCK_MAX; i++) {
        snprintf(dev, sizeof dev, "d%02d", i);
        CHECK_INT(cv_vclock_set(&v, dev, i + 1), 0);
    }
    CHECK_INT(cv_vclock_set(&v, "extra", 1), -1);
    CHECK_INT(cv_vclock_set(&v, "d05", 100), 0); /* existing ones still */
    CHECK_INT(v.len, CV_VCLOCK_MAX);
    CHECK_INT(cv_vclock_get(&v, "d05"), 100);
}

TEST(vclock_compare_each_order)
{
    cv_vclock a = vc("{\"a\":1,\"b\":2}"), b;
    b = vc("{\"b\":2,\"a\":1}");
    CHECK_INT(cv_vclock_compare(&a, &b), CV_VC_EQUAL);
    b = vc("{\"a\":1,\"b\":3}");
    CHECK_INT(cv_vclock_compare(&a, &b), CV_VC_BEFORE);
    CHECK_INT(cv_vclock_compare(&b, &a), CV_VC_AFTER);
    b = vc("{\"a\":1,\"b\":2,\"c\":1}"); /* a device a has not seen */
    CHECK_INT(cv_vclock_compare(&a, &b), CV_VC_BEFORE);
    CHECK_INT(cv_vclock_compare(&b, &a), CV_VC_AFTER);
    b = vc("{\"a\":2,\"b\":1}");
    CHECK_INT(cv_vclock_compare(&a, &b), CV_VC_CONCURRENT);
    CHECK_INT(cv_vclock_compare(&b, &a), CV_VC_CONCURRENT);
    b = vc("{\"c\":1}"); /* disjoint */
    CHECK_INT(cv_vclock_compare(&a, &b), CV_VC_CONCURRENT);
    cv_vclock e = vc("{}"), e2 = vc("{}");
    CHECK_INT(cv_vclock_compare(&e, &e2), CV_VC_EQUAL);
    CHECK_INT(cv_vclock_compare(&e, &a), CV_VC_BEFORE);
    CHECK_INT(cv_vclock_compare(&a, &e), CV_VC_AFTER);
    CHECK_STR(cv_vclock_order_name(CV_VC_CONCURRENT), "concurrent");
    CHECK_STR(cv_vclock_order_name(CV_VC_BEFORE), "before");
}

TEST(vclock_join_is_the_pointwise_max)
{
    cv_vclock a = vc("{\"a\":1,\"b\":5,\"d\":2}");
    cv_vclock b = vc("{\"b\":3,\"c\":7,\"d\":4}");
    cv_vclock j = a;
    CHECK_INT(cv_vclock_join(&j, &b), 0);
    CHECK_STR(fmt(&j), "{\"a\":1,\"b\":5,\"c\":7,\"d\":4}");
    /* after and equal to both inputs' order */
    CHECK_INT(cv_vclock_compare(&j, &a), CV_VC_AFTER);
    CHECK_INT(cv_vclock_compare(&j, &b), CV_VC_AFTER);
    cv_vclock k = b;
    CHECK_INT(cv_vclock_join(&k, &a), 0);
    CHECK_INT(cv_vclock_compare(&j, &k), CV_VC_EQUAL);
    /* joining with the empty vector or itself changes nothing */
    cv_vclock e = vc("{}");
    CHECK_INT(cv_vclock_join(&k, &e), 0);
    CHECK_INT(cv_vclock_join(&k, &k), 0);
    CHECK_STR(fmt(&k), "{\"a\":1,\"b\":5,\"c\":7,\"d\":4}");
    CHECK_INT(cv_vclock_join(&e, &a), 0);
    CHECK_STR(fmt(&e), "{\"a\":1,\"b\":5,\"d\":2}");
}

/* Equal entry by entry: a memcmp would read the unset bytes after each
 * device name (valgrind's "uninitialised value"). */
static bool same_clock(const cv_vclock *x, const cv_vclock *y)
{
    if (x->len != y->len)
        return false;
    for (size_t i = 0; i < x->len; i++)
        if (strcmp(x->e[i].dev, y->e[i].dev) || x->e[i].n != y->e[i].n)
            return false;
    return true;
}

TEST(vclock_join_refuses_more_than_64_devices)
{
    cv_vclock a, b;
    cv_vclock_init(&a);
    cv_vclock_init(&b);
    char dev[16];
    for (int i = 0; i < 40; i++) {
        snprintf(dev, sizeof dev, "a%02d", i);
        cv_vclock_set(&a, dev, 1);
        snprintf(dev, sizeof dev, "b%02d", i);
        cv_vclock_set(&b, dev, 2);
    }
    cv_vclock before = a;
    CHECK_INT(cv_vclock_join(&a, &b), -1);
    CHECK(same_clock(&a, &before));
    /* 24 of b's fit exactly */
    b.len = 24;
    CHECK_INT(cv_vclock_join(&a, &b), 0);
    CHECK_INT(a.len, 64);
}

TEST(vclock_format_is_canonical_and_sized_like_snprintf)
{
    cv_vclock v = vc("{ \"zeta\" : 1 , \"Alpha\":20, \"beta\": 3,"
                     "\"a.b-c_d\": 9007199254740992 }");
    const char *want = "{\"Alpha\":20,\"a.b-c_d\":9007199254740992,"
                       "\"beta\":3,\"zeta\":1}";
    CHECK_STR(fmt(&v), want);
    cv_vclock e;
    cv_vclock_init(&e);
    CHECK_STR(fmt(&e), "{}");
    /* truncated like snprintf: the length needed, a NUL within len */
    char small[8];
    memset(small, 'x', sizeof small);
    CHECK_INT(cv_vclock_format(&v, small, sizeof small), strlen(want));
    CHECK_STR(small, "{\"Alpha");
    CHECK_INT(cv_vclock_format(&v, NULL, 0), strlen(want));
    char one[1] = {'x'};
    CHECK_INT(cv_vclock_format(&v, one, 1), strlen(want));
    CHECK_INT(one[0], 0);
    /* the text parses back to the same vector */
    char buf[128];
    cv_vclock_format(&v, buf, sizeof buf);
    cv_vclock w = vc(buf);
    CHECK_INT(cv_vclock_compare(&v, &w), CV_VC_EQUAL);
}

TEST(vclock_parse_refuses_with_a_reason)
{
    CHECK(strstr(refusal("[1,2]"), "not a JSON object"));
    CHECK(strstr(refusal("{\"a\":1"), "not valid JSON"));
    CHECK(strstr(refusal("{\"a\":1} x"), "not valid JSON"));    /* trailing */
    CHECK(strstr(refusal("{\"a\":1}{}"), "not valid JSON"));
    CHECK(strstr(refusal("{\"a\":1,\"a\":2}"), "not valid JSON")); /* dup */
    CHECK(strstr(refusal("{\"a b\":1}"), "device name 'a b' is not 1 to 32"));
    CHECK(strstr(refusal("{\"\":1}"), "device name '' is not"));
    CHECK(strstr(refusal("{\"abcdefghijklmnopqrstuvwxyz0123456\":1}"),
                 "is not 1 to 32"));
    CHECK(strstr(refusal("{\"a\":1.0}"), "counter of 'a' is not an integer"));
    CHECK(strstr(refusal("{\"a\":\"1\"}"), "not an integer"));
    CHECK(strstr(refusal("{\"a\":null}"), "not an integer"));
    CHECK(strstr(refusal("{\"a\":0}"), "counter of 'a' is 0, not from 1 to 2^53"));
    CHECK(strstr(refusal("{\"a\":-5}"), "is -5, not from 1"));
    CHECK(strstr(refusal("{\"a\":9007199254740993}"), "not from 1 to 2^53"));
    CHECK_STR(refusal("{\"a\":9007199254740992}"), "(parsed)");
    CHECK_STR(refusal(" {\"b\":2,\"a\":1}\n"), "(parsed)");
    /* 64 devices parse, 65 do not */
    char text[2048];
    size_t o = 0;
    o += (size_t)snprintf(text + o, sizeof text - o, "{");
    for (int i = 0; i < 65; i++)
        o += (size_t)snprintf(text + o, sizeof text - o, "%s\"d%02d\":1",
                              i ? "," : "", i);
    snprintf(text + o, sizeof text - o, "}");
    CHECK(strstr(refusal(text), "has 65 devices, more than 64"));
    char *last = strrchr(text, ',');
    strcpy(last, "}");
    CHECK_STR(refusal(text), "(parsed)");
    /* the length is honoured: text after it is not read */
    cv_vclock v;
    char err[128];
    CHECK_INT(cv_vclock_parse(&v, "{\"a\":1}garbage", 7, err, sizeof err), 0);
    CHECK_INT(cv_vclock_get(&v, "a"), 1);
}

TEST(vclock_json_round_trip)
{
    cv_vclock v = vc("{\"b\":2,\"a\":1}");
    json_t *j = cv_vclock_to_json(&v);
    CHECK(json_is_object(j));
    CHECK_INT(json_object_size(j), 2);
    CHECK_INT(json_integer_value(json_object_get(j, "b")), 2);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK_STR(s, "{\"a\":1,\"b\":2}");
    free(s);
    cv_vclock w;
    char err[128];
    CHECK_INT(cv_vclock_from_json(&w, j, err, sizeof err), 0);
    CHECK_INT(cv_vclock_compare(&v, &w), CV_VC_EQUAL);
    json_object_set_new(j, "c", json_real(2.5));
    CHECK_INT(cv_vclock_from_json(&w, j, err, sizeof err), -1);
    CHECK(strstr(err, "counter of 'c' is not an integer"));
    CHECK_INT(cv_vclock_from_json(&w, json_object_get(j, "a"), err, sizeof err),
              -1);
    CHECK(strstr(err, "not a JSON object"));
    /* err may be left out */
    CHECK_INT(cv_vclock_from_json(&w, j, NULL, 0), -1);
    json_decref(j);
}

/* ---- hybrid logical clock --------------------------------------------- */

#define T0 INT64_C(1796000000000)

TEST(hlc_packs_ms_and_logical)
{
    uint64_t h = cv_vclock_hlc_make(T0, 7);
    CHECK(h == ((uint64_t)T0 << 16 | 7));
    CHECK_INT(cv_vclock_hlc_ms(h), T0);
    CHECK_INT(h & 0xffff, 7);
    CHECK(cv_vclock_hlc_make(T0, 0x10005) == cv_vclock_hlc_make(T0, 5)); /* 16 bits */
    CHECK(cv_vclock_hlc_make(-5, 1) == 1);
    CHECK(cv_vclock_hlc_make(T0 + 1, 0) > cv_vclock_hlc_make(T0, 0xffff));
}

TEST(hlc_follows_the_wall_clock_and_stays_monotonic_when_it_goes_back)
{
    cv_hlc c = {0};
    uint64_t a = cv_vclock_hlc_now(&c, T0);
    CHECK(a == cv_vclock_hlc_make(T0, 0));
    uint64_t b = cv_vclock_hlc_now(&c, T0); /* same ms: the logical part */
    CHECK(b == cv_vclock_hlc_make(T0, 1));
    uint64_t d = cv_vclock_hlc_now(&c, T0 - 5000); /* the wall clock went back */
    CHECK(d == cv_vclock_hlc_make(T0, 2));
    uint64_t e = cv_vclock_hlc_now(&c, T0 - 4000);
    CHECK(e == cv_vclock_hlc_make(T0, 3));
    uint64_t f = cv_vclock_hlc_now(&c, T0 + 10); /* forward again: the wall clock */
    CHECK(f == cv_vclock_hlc_make(T0 + 10, 0));
    /* strictly increasing over a wall clock that jumps about */
    static const int64_t walls[] = {0, 3, -100, -100, 50, 49, 49, -1000, 51};
    uint64_t prev = f;
    for (size_t i = 0; i < sizeof walls / sizeof *walls; i++) {
        uint64_t h = cv_vclock_hlc_now(&c, T0 + walls[i]);
        CHECK(h > prev);
        prev = h;
    }
    CHECK(prev == cv_vclock_hlc_make(T0 + 51, 0));
}

TEST(hlc_logical_overflow_carries_into_the_ms)
{
    cv_hlc c = {cv_vclock_hlc_make(T0, 0xfffe)};
    uint64_t a = cv_vclock_hlc_now(&c, T0);
    CHECK(a == cv_vclock_hlc_make(T0, 0xffff));
    uint64_t b = cv_vclock_hlc_now(&c, T0);
    CHECK(b > a);
    CHECK_INT(cv_vclock_hlc_ms(b), T0 + 1);
    CHECK_INT(b & 0xffff, 0);
    uint64_t d = cv_vclock_hlc_now(&c, T0 + 1); /* the wall clock caught up */
    CHECK(d == cv_vclock_hlc_make(T0 + 1, 1));
}

TEST(hlc_observe_makes_later_stamps_exceed_the_remote)
{
    cv_hlc c = {0};
    uint64_t a = cv_vclock_hlc_now(&c, T0);
    uint64_t remote = cv_vclock_hlc_make(T0 + 2000, 5); /* 2 s ahead: fine */
    CHECK_INT(cv_vclock_hlc_observe(&c, remote, T0), 0);
    uint64_t b = cv_vclock_hlc_now(&c, T0);
    CHECK(b > remote && b > a);
    CHECK(b == cv_vclock_hlc_make(T0 + 2000, 6));
    /* an older remote changes nothing */
    CHECK_INT(cv_vclock_hlc_observe(&c, cv_vclock_hlc_make(T0 - 9000, 0), T0), 0);
    CHECK(cv_vclock_hlc_now(&c, T0) == cv_vclock_hlc_make(T0 + 2000, 7));
    /* exactly the allowed skew is fine; a ms more is reported */
    CHECK_INT(cv_vclock_hlc_observe(&c, cv_vclock_hlc_make(T0 + CV_HLC_MAX_SKEW_MS, 0), T0),
              0);
    CHECK_INT(cv_vclock_hlc_observe(&c, cv_vclock_hlc_make(T0 + CV_HLC_MAX_SKEW_MS + 1, 0),
                             T0), -1);
}

TEST(hlc_a_remote_far_in_the_future_is_still_observed)
{
    cv_hlc c = {0};
    uint64_t future = cv_vclock_hlc_make(T0 + 86400000, 3); /* a day ahead */
    CHECK_INT(cv_vclock_hlc_observe(&c, future, T0), -1);
    uint64_t a = cv_vclock_hlc_now(&c, T0);
    CHECK(a > future);
    CHECK(a == cv_vclock_hlc_make(T0 + 86400000, 4));
    /* once the wall clock passes it, stamps follow the wall clock again */
    uint64_t b = cv_vclock_hlc_now(&c, T0 + 86400001);
    CHECK(b == cv_vclock_hlc_make(T0 + 86400001, 0));
    /* a corrupt stamp at the very top: the clock saturates, never wraps */
    CHECK_INT(cv_vclock_hlc_observe(&c, UINT64_MAX, T0), -1);
    CHECK(cv_vclock_hlc_now(&c, T0) == UINT64_MAX);
}
