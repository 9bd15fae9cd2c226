/* test_syncmerge.c - the per-field merge of concurrent context versions
 * (lib/privacy/merge.h): its rules, each rule's result and tie-breaks, and
 * the policy's [merge] section that holds the rules (lib/privacy/policy.c). */
#include "fixtures.h"
#include "harness.h"

#include "privacy/policy.h"
#include "privacy/merge.h"
#include "base/util.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A version as test text: fields, clock (NULL: none) and device. */
typedef struct {
    const char *fields;
    const char *clock;
    const char *device;
} ver;

typedef struct {
    int rc;
    char *fields;    /* compact, sorted keys */
    char *clock;
    char *unsettled; /* NULL when none */
} result;

static char *dump(const json_t *j)
{
    return j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

/* Merge the versions in the order given by idx (NULL: as they are). */
static result merge_in(const cv_merge_rules *r, const ver *v, size_t n,
                       const size_t *idx)
{
    cv_merge_input in[8];
    json_t *owned[16];
    size_t no = 0;
    for (size_t i = 0; i < n; i++) {
        const ver *x = &v[idx ? idx[i] : i];
        json_t *f = owned[no++] = cvt_json(x->fields);
        json_t *c = x->clock ? (owned[no++] = cvt_json(x->clock)) : NULL;
        in[i] = (cv_merge_input){f, c, x->device};
    }
    /* outputs start as something else: the merge must set them all */
    json_t *junk = json_string("not set"), *fo = junk, *co = junk, *un = junk;
    result res;
    res.rc = cv_merge_versions(r, in, n, &fo, &co, &un);
    json_decref(junk);
    /* the outputs are copies: the inputs may go first */
    for (size_t i = 0; i < no; i++)
        json_decref(owned[i]);
    res.fields = dump(fo);
    res.clock = dump(co);
    res.unsettled = dump(un);
    json_decref(fo);
    json_decref(co);
    json_decref(un);
    return res;
}

static result merge(const cv_merge_rules *r, const ver *v, size_t n)
{
    return merge_in(r, v, n, NULL);
}

static void result_free(result *r)
{
    free(r->fields);
    free(r->clock);
    free(r->unsettled);
}

static cv_merge_rules *rules(const char *const *lines)
{
    cv_merge_rules *r = cv_merge_rules_new();
    char err[256];
    for (; lines && lines[0]; lines += 2)
        if (cv_merge_rules_add(r, lines[0], lines[1], err, sizeof err) < 0)
            cvt_fail(__FILE__, __LINE__, "%s = %s: %s", lines[0], lines[1],
                     err);
    return r;
}

/* The reason the rule is refused with, or "(added)". */
static const char *refusal(cv_merge_rules *r, const char *field,
                           const char *value)
{
    static char err[256];
    return cv_merge_rules_add(r, field, value, err, sizeof err) < 0 ? err
                                                                    : "(added)";
}

/* ---- rules ------------------------------------------------------------ */

TEST(merge_rules_default_to_lww)
{
    cv_merge_rules *r = cv_merge_rules_new();
    int cap = -1;
    CHECK_INT(cv_merge_rule_for(r, "anything", &cap), CV_MERGE_LWW);
    CHECK_INT(cap, 0);
    CHECK_STR(cv_merge_kind_name(CV_MERGE_LWW), "lww");
    CHECK_STR(cv_merge_kind_name(CV_MERGE_UNION), "union");
    CHECK_STR(cv_merge_kind_name(CV_MERGE_MAX), "max");
    CHECK_STR(cv_merge_kind_name(CV_MERGE_SIBLINGS), "siblings");
    cv_merge_rules_destroy(&r);
    CHECK(r == NULL);
    cv_merge_rules_destroy(&r); /* twice is fine */
}

TEST(merge_rules_by_folded_field_name_and_the_default)
{
    cv_merge_rules *r = rules((const char *const[]){
        "recentSearches", "union 100", "sessionCount", "max", "notes",
        "siblings", "theme", "lww", "default", "union  7", NULL});
    int cap = -1;
    CHECK_INT(cv_merge_rule_for(r, "recentSearches", &cap), CV_MERGE_UNION);
    CHECK_INT(cap, 100);
    CHECK_INT(cv_merge_rule_for(r, "sessionCount", &cap), CV_MERGE_MAX);
    CHECK_INT(cap, 0);
    CHECK_INT(cv_merge_rule_for(r, "notes", NULL), CV_MERGE_SIBLINGS);
    CHECK_INT(cv_merge_rule_for(r, "theme", &cap), CV_MERGE_LWW);
    /* names match ignoring case, '_' and '-' */
    CHECK_INT(cv_merge_rule_for(r, "recent_searches", &cap), CV_MERGE_UNION);
    CHECK_INT(cap, 100);
    CHECK_INT(cv_merge_rule_for(r, "RECENT-SEARCHES", &cap), CV_MERGE_UNION);
    CHECK_INT(cap, 100);
    CHECK_INT(cv_merge_rule_for(r, "session_count", &cap), CV_MERGE_MAX);
    /* not named: the default */
    CHECK_INT(cv_merge_rule_for(r, "recentsearchez", &cap), CV_MERGE_UNION);
    CHECK_INT(cap, 7);
    CHECK_INT(cv_merge_rule_for(r, "sessionCount.x", NULL), CV_MERGE_UNION);
    cv_merge_rules_destroy(&r);
}

TEST(merge_rules_refuse_with_a_reason)
{
    cv_merge_rules *r = cv_merge_rules_new();
    CHECK_STR(refusal(r, "a", "union"),
              "union needs a cap: union N, N from 1 to 100000");
    CHECK_STR(refusal(r, "a", "union 0"),
              "union cap '0' is not a number from 1 to 100000");
    CHECK_STR(refusal(r, "a", "union 100001"),
              "union cap '100001' is not a number from 1 to 100000");
    CHECK_STR(refusal(r, "a", "union -5"),
              "union cap '-5' is not a number from 1 to 100000");
    CHECK_STR(refusal(r, "a", "union 10x"),
              "union cap '10x' is not a number from 1 to 100000");
    CHECK_STR(refusal(r, "a", "union 99999999999999999999"),
              "union cap '99999999999999999999' is not a number from 1 to "
              "100000");
    CHECK_STR(refusal(r, "a", "max 3"),
              "merge rule 'max' takes no argument (got '3')");
    CHECK_STR(refusal(r, "a", "newest"), "unknown merge rule 'newest' "
              "(expected lww, union N, max or siblings)");
    CHECK_STR(refusal(r, "a", "LWW"), "unknown merge rule 'LWW' "
              "(expected lww, union N, max or siblings)");
    CHECK_STR(refusal(r, "a", ""), "unknown merge rule '' "
              "(expected lww, union N, max or siblings)");
    CHECK_STR(refusal(r, "", "lww"), "a merge rule needs a field name");
    /* none of these was added */
    CHECK_INT(cv_merge_rule_for(r, "a", NULL), CV_MERGE_LWW);
    CHECK_STR(refusal(r, "a", "union 100000"), "(added)");
    CHECK_STR(refusal(r, "a", "max"), "rule for 'a' given twice");
    CHECK_STR(refusal(r, "A", "max"), "rule for 'A' given twice (as 'a': names "
              "match ignoring case, '_' and '-')");
    CHECK_STR(refusal(r, "default", "siblings"), "(added)");
    CHECK_STR(refusal(r, "default", "lww"), "rule for 'default' given twice");
    int cap;
    CHECK_INT(cv_merge_rule_for(r, "a", &cap), CV_MERGE_UNION);
    CHECK_INT(cap, 100000);
    CHECK_INT(cv_merge_rule_for(r, "b", &cap), CV_MERGE_SIBLINGS);
    cv_merge_rules_destroy(&r);
}

/* ---- lww -------------------------------------------------------------- */

TEST(merge_lww_takes_the_greatest_clock)
{
    cv_merge_rules *r = cv_merge_rules_new();
    ver v[] = {
        {"{\"theme\":\"dark\",\"lang\":\"en\"}", "{\"theme\":5,\"lang\":9}", "zz"},
        {"{\"theme\":\"light\",\"lang\":\"fr\"}", "{\"theme\":7,\"lang\":2}", "aa"},
    };
    result m = merge(r, v, 2);
    CHECK_INT(m.rc, 0);
    CHECK_STR(m.fields, "{\"lang\":\"en\",\"theme\":\"light\"}");
    CHECK_STR(m.clock, "{\"lang\":9,\"theme\":7}");
    CHECK(m.unsettled == NULL);
    result_free(&m);
    cv_merge_rules_destroy(&r);
}

TEST(merge_lww_ties_go_to_the_greater_device_then_the_greater_text)
{
    cv_merge_rules *r = cv_merge_rules_new();
    ver v[] = {
        {"{\"a\":\"from-b\"}", "{\"a\":4}", "phone-b"},
        {"{\"a\":\"from-a\"}", "{\"a\":4}", "phone-a"},
        {"{\"a\":\"from-B\"}", "{\"a\":4}", "phone-B"}, /* 'B' < 'a' */
    };
    result m = merge(r, v, 3);
    CHECK_STR(m.fields, "{\"a\":\"from-b\"}");
    result_free(&m);
    /* the same device twice with the same clock: the greater text */
    ver w[] = {
        {"{\"a\":{\"x\":1,\"y\":2}}", "{\"a\":4}", "d"},
        {"{\"a\":{\"y\":2,\"x\":3}}", "{\"a\":4}", "d"},
        {"{\"a\":[9]}", "{\"a\":4}", "d"},
    };
    m = merge(r, w, 3);
    CHECK_STR(m.fields, "{\"a\":{\"x\":3,\"y\":2}}"); /* {"x":3 > {"x":1 > [ */
    result_free(&m);
    ver s[] = {{"{\"a\":\"10\"}", NULL, "d"}, {"{\"a\":10}", NULL, "d"}};
    m = merge(r, s, 2);
    CHECK_STR(m.fields, "{\"a\":10}"); /* '1' (49) > '"' (34) */
    result_free(&m);
    cv_merge_rules_destroy(&r);
}

TEST(merge_a_missing_field_is_not_a_deletion)
{
    cv_merge_rules *r = cv_merge_rules_new();
    ver v[] = {
        {"{\"a\":1,\"b\":2}", "{\"a\":3,\"b\":3}", "x"},
        {"{\"a\":5,\"c\":6}", "{\"a\":1}", "y"}, /* c: no clock, 0 */
        {"{}", "{\"a\":99,\"b\":99}", "z"},      /* clocks of fields it lacks */
    };
    result m = merge(r, v, 3);
    CHECK_INT(m.rc, 0);
    CHECK_STR(m.fields, "{\"a\":1,\"b\":2,\"c\":6}");
    CHECK_STR(m.clock, "{\"a\":3,\"b\":3,\"c\":0}");
    result_free(&m);
    /* one version: itself */
    m = merge(r, v, 1);
    CHECK_STR(m.fields, "{\"a\":1,\"b\":2}");
    CHECK_STR(m.clock, "{\"a\":3,\"b\":3}");
    result_free(&m);
    cv_merge_rules_destroy(&r);
}

/* ---- union ------------------------------------------------------------ */

TEST(merge_union_winner_first_then_the_rest_in_lww_order_deduplicated)
{
    cv_merge_rules *r = rules((const char *const[]){"s", "union 100", NULL});
    ver v[] = {
        {"{\"s\":[\"c\",\"d\",\"e\"]}", "{\"s\":5}", "b"},
        {"{\"s\":[\"a\",\"b\",\"c\"]}", "{\"s\":9}", "a"},
        {"{\"s\":[\"f\",\"a\",\"g\"]}", "{\"s\":5}", "a"},
    };
    result m = merge(r, v, 3);
    CHECK_INT(m.rc, 0);
    /* 9 first; then clock 5 on device b before device a */
    CHECK_STR(m.fields, "{\"s\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\"]}");
    CHECK_STR(m.clock, "{\"s\":9}");
    result_free(&m);
    cv_merge_rules_destroy(&r);
}

TEST(merge_union_cuts_to_its_cap)
{
    cv_merge_rules *r = rules((const char *const[]){"s", "union 4", NULL});
    ver v[] = {
        {"{\"s\":[1,2,3]}", "{\"s\":2}", "a"},
        {"{\"s\":[3,4,5,6]}", "{\"s\":1}", "b"},
    };
    result m = merge(r, v, 2);
    CHECK_STR(m.fields, "{\"s\":[1,2,3,4]}");
    result_free(&m);
    /* the winner's own array is cut too */
    ver w[] = {{"{\"s\":[1,2,3,4,5,6]}", "{\"s\":2}", "a"},
               {"{\"s\":[7]}", "{\"s\":1}", "b"}};
    m = merge(r, w, 2);
    CHECK_STR(m.fields, "{\"s\":[1,2,3,4]}");
    result_free(&m);
    cv_merge_rules_destroy(&r);
}

TEST(merge_union_dedupes_by_json_equality)
{
    cv_merge_rules *r = rules((const char *const[]){"s", "union 100", NULL});
    ver v[] = {
        {"{\"s\":[{\"q\":\"x\",\"n\":1},1,0.0,[1,2],null]}", "{\"s\":2}", "a"},
        /* equal: keys in another order, -0.0, the same array, null;
         * different: 1.0 (a real, not the integer 1), [2,1] */
        {"{\"s\":[{\"n\":1,\"q\":\"x\"},-0.0,1.0,[1,2],[2,1],null,true]}",
         "{\"s\":1}", "b"},
    };
    result m = merge(r, v, 2);
    CHECK_STR(m.fields,
              "{\"s\":[{\"n\":1,\"q\":\"x\"},1,0.0,[1,2],null,1.0,[2,1],true]}");
    result_free(&m);
    /* the winner's array is taken as it is, duplicates and all */
    ver w[] = {{"{\"s\":[\"a\",\"a\"]}", "{\"s\":2}", "a"},
               {"{\"s\":[\"a\",\"b\",\"b\"]}", "{\"s\":1}", "b"}};
    m = merge(r, w, 2);
    CHECK_STR(m.fields, "{\"s\":[\"a\",\"a\",\"b\"]}");
    result_free(&m);
    cv_merge_rules_destroy(&r);
}

TEST(merge_union_of_a_non_array_is_lww)
{
    cv_merge_rules *r = rules((const char *const[]){"s", "union 100", NULL});
    ver v[] = {
        {"{\"s\":[1,2]}", "{\"s\":1}", "a"},
        {"{\"s\":\"oops\"}", "{\"s\":2}", "b"},
    };
    result m = merge(r, v, 2);
    CHECK_INT(m.rc, 0);
    CHECK_STR(m.fields, "{\"s\":\"oops\"}");
    result_free(&m);
    ver w[] = {{"{\"s\":[1,2]}", "{\"s\":3}", "a"},
               {"{\"s\":{\"0\":1}}", "{\"s\":2}", "b"}};
    m = merge(r, w, 2);
    CHECK_STR(m.fields, "{\"s\":[1,2]}"); /* lww's pick, not a union */
    result_free(&m);
    cv_merge_rules_destroy(&r);
}

TEST(merge_union_of_long_lists)
{
    /* three lists of 30000 with 10000 in common: the set, not pairwise
     * comparisons, keeps this quick */
    cv_merge_rules *r = rules((const char *const[]){"s", "union 100000", NULL});
    cv_merge_input in[3];
    json_t *f[3], *c[3];
    static const char *const devs[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        json_t *a = json_array();
        for (int k = 0; k < 30000; k++)
            json_array_append_new(a, json_integer(k < 10000 ? k
                                                            : i * 100000 + k));
        f[i] = json_pack("{s:o}", "s", a);
        c[i] = json_pack("{s:i}", "s", 10 - i);
        in[i] = (cv_merge_input){f[i], c[i], devs[i]};
    }
    json_t *fo, *co, *un;
    CHECK_INT(cv_merge_versions(r, in, 3, &fo, &co, &un), 0);
    json_t *s = json_object_get(fo, "s");
    CHECK_INT(json_array_size(s), 70000);
    CHECK_INT(json_integer_value(json_array_get(s, 0)), 0);
    CHECK_INT(json_integer_value(json_array_get(s, 30000)), 110000);
    CHECK_INT(json_integer_value(json_array_get(s, 69999)), 229999);
    json_decref(fo);
    json_decref(co);
    for (int i = 0; i < 3; i++) {
        json_decref(f[i]);
        json_decref(c[i]);
    }
    cv_merge_rules_destroy(&r);
}

/* ---- max -------------------------------------------------------------- */

TEST(merge_max_takes_the_greatest_number)
{
    cv_merge_rules *r = rules((const char *const[]){"n", "max", NULL});
    ver v[] = {
        {"{\"n\":12}", "{\"n\":9}", "a"},
        {"{\"n\":40.5}", "{\"n\":1}", "b"},
        {"{\"n\":-3}", "{\"n\":20}", "c"},
    };
    result m = merge(r, v, 3);
    CHECK_INT(m.rc, 0);
    CHECK_STR(m.fields, "{\"n\":40.5}");
    CHECK_STR(m.clock, "{\"n\":20}"); /* the greatest clock, not the value's */
    result_free(&m);
    /* equal values: the integer, whatever the clocks */
    ver w[] = {{"{\"n\":7.0}", "{\"n\":9}", "a"}, {"{\"n\":7}", "{\"n\":1}", "b"}};
    m = merge(r, w, 2);
    CHECK_STR(m.fields, "{\"n\":7}");
    result_free(&m);
    /* integers beyond a double's precision still compare exactly */
    ver x[] = {{"{\"n\":9007199254740993}", "{\"n\":1}", "a"},
               {"{\"n\":9007199254740992}", "{\"n\":9}", "b"}};
    m = merge(r, x, 2);
    CHECK_STR(m.fields, "{\"n\":9007199254740993}");
    result_free(&m);
    cv_merge_rules_destroy(&r);
}

TEST(merge_max_of_a_non_number_is_lww)
{
    cv_merge_rules *r = rules((const char *const[]){"n", "max", NULL});
    ver v[] = {{"{\"n\":100}", "{\"n\":1}", "a"},
               {"{\"n\":\"3\"}", "{\"n\":2}", "b"}};
    result m = merge(r, v, 2);
    CHECK_STR(m.fields, "{\"n\":\"3\"}");
    result_free(&m);
    ver w[] = {{"{\"n\":100}", "{\"n\":1}", "a"}, {"{\"n\":true}", "{\"n\":2}", "b"},
               {"{\"n\":200}", "{\"n\":3}", "c"}};
    m = merge(r, w, 3);
    CHECK_STR(m.fields, "{\"n\":200}"); /* lww's pick */
    result_free(&m);
    cv_merge_rules_destroy(&r);
}

/* ---- siblings --------------------------------------------------------- */

TEST(merge_siblings_settle_only_when_equal)
{
    cv_merge_rules *r = rules((const char *const[]){
        "notes", "siblings", "bio", "siblings", "theme", "lww", NULL});
    ver same[] = {
        {"{\"notes\":{\"a\":1,\"b\":[1]},\"theme\":\"x\"}", "{\"notes\":1}", "a"},
        {"{\"notes\":{\"b\":[1],\"a\":1}}", "{\"notes\":8}", "b"},
    };
    result m = merge(r, same, 2);
    CHECK_INT(m.rc, 0);
    CHECK(m.unsettled == NULL);
    CHECK_STR(m.fields, "{\"notes\":{\"a\":1,\"b\":[1]},\"theme\":\"x\"}");
    result_free(&m);
    ver differ[] = {
        {"{\"notes\":\"mine\",\"bio\":\"old\",\"theme\":\"x\"}",
         "{\"notes\":3,\"bio\":1,\"theme\":1}", "a"},
        {"{\"notes\":\"yours\",\"bio\":\"new\",\"theme\":\"y\"}",
         "{\"notes\":2,\"bio\":2,\"theme\":2}", "b"},
    };
    m = merge(r, differ, 2);
    CHECK_INT(m.rc, 1);
    CHECK_STR(m.unsettled, "[\"bio\",\"notes\"]"); /* sorted */
    /* the best guess (lww) is there for the unsettled fields */
    CHECK_STR(m.fields, "{\"bio\":\"new\",\"notes\":\"mine\",\"theme\":\"y\"}");
    CHECK_STR(m.clock, "{\"bio\":2,\"notes\":3,\"theme\":2}");
    result_free(&m);
    /* a field only one version has is settled */
    ver one[] = {{"{\"notes\":\"mine\"}", NULL, "a"}, {"{}", NULL, "b"}};
    m = merge(r, one, 2);
    CHECK_INT(m.rc, 0);
    CHECK_STR(m.fields, "{\"notes\":\"mine\"}");
    result_free(&m);
    cv_merge_rules_destroy(&r);
}

/* ---- the whole merge -------------------------------------------------- */

TEST(merge_does_not_depend_on_the_order_of_the_versions)
{
    cv_merge_rules *r = rules((const char *const[]){
        "recentSearches", "union 5", "sessionCount", "max", "notes",
        "siblings", NULL});
    ver v[] = {
        {"{\"recentSearches\":[\"a\",\"b\"],\"sessionCount\":4,\"theme\":\"x\","
         "\"notes\":\"n1\",\"t\":1}",
         "{\"recentSearches\":5,\"sessionCount\":5,\"theme\":5,\"notes\":1,"
         "\"t\":3}", "dev1"},
        {"{\"recentSearches\":[\"c\",\"a\",\"d\"],\"sessionCount\":4.0,"
         "\"theme\":\"y\",\"notes\":\"n2\",\"t\":2}",
         "{\"recentSearches\":5,\"sessionCount\":5,\"theme\":5,\"notes\":1,"
         "\"t\":3}", "dev2"},
        {"{\"recentSearches\":[\"e\",\"f\",\"g\"],\"sessionCount\":3,"
         "\"theme\":\"z\",\"t\":0}",
         "{\"recentSearches\":5,\"theme\":5,\"t\":3}", "dev2"},
    };
    static const size_t perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                       {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    result first = merge_in(r, v, 3, perms[0]);
    CHECK_INT(first.rc, 1);
    /* dev2 beats dev1 at equal clocks; of dev2's two, "z"'s text is the
     * greater; union: dev2's greater text first ({"e"... > {"c"...) */
    CHECK_STR(first.fields,
              "{\"notes\":\"n2\",\"recentSearches\":[\"e\",\"f\",\"g\",\"c\","
              "\"a\"],\"sessionCount\":4,\"t\":2,\"theme\":\"z\"}");
    CHECK_STR(first.clock, "{\"notes\":1,\"recentSearches\":5,"
                           "\"sessionCount\":5,\"t\":3,\"theme\":5}");
    CHECK_STR(first.unsettled, "[\"notes\"]");
    for (int p = 1; p < 6; p++) {
        result m = merge_in(r, v, 3, perms[p]);
        CHECK_INT(m.rc, first.rc);
        CHECK_STR(m.fields, first.fields);
        CHECK_STR(m.clock, first.clock);
        CHECK_STR(m.unsettled, first.unsettled);
        result_free(&m);
    }
    result_free(&first);
    cv_merge_rules_destroy(&r);
}

TEST(merge_refuses_bad_input)
{
    cv_merge_rules *r = cv_merge_rules_new();
    json_t *ok = cvt_json("{\"a\":1}"), *arr = cvt_json("[1]");
    json_t *neg = cvt_json("{\"a\":-1}"), *str = cvt_json("{\"a\":\"5\"}");
    json_t *junk = json_object(), *fo = junk, *co = junk, *un = junk;
    cv_merge_input in[2] = {{ok, NULL, "a"}, {arr, NULL, "b"}};
    CHECK_INT(cv_merge_versions(r, in, 2, &fo, &co, &un), -1);
    CHECK(fo == NULL && co == NULL && un == NULL);
    json_decref(junk);
    CHECK_INT(cv_merge_versions(r, in, 0, &fo, &co, &un), -1);
    in[1] = (cv_merge_input){ok, arr, "b"}; /* clock not an object */
    CHECK_INT(cv_merge_versions(r, in, 2, &fo, &co, &un), -1);
    in[1] = (cv_merge_input){ok, neg, "b"};
    CHECK_INT(cv_merge_versions(r, in, 2, &fo, &co, &un), -1);
    in[1] = (cv_merge_input){ok, str, "b"};
    CHECK_INT(cv_merge_versions(r, in, 2, &fo, &co, &un), -1);
    in[1] = (cv_merge_input){ok, NULL, NULL};
    CHECK_INT(cv_merge_versions(r, in, 2, &fo, &co, &un), -1);
    in[1] = (cv_merge_input){NULL, NULL, "b"};
    CHECK_INT(cv_merge_versions(r, in, 2, &fo, &co, &un), -1);
    in[1] = (cv_merge_input){ok, NULL, "b"};
    CHECK_INT(cv_merge_versions(r, in, 2, &fo, &co, &un), 0);
    CHECK(fo && co && un == NULL);
    json_decref(fo);
    json_decref(co);
    json_decref(ok);
    json_decref(arr);
    json_decref(neg);
    json_decref(str);
    cv_merge_rules_destroy(&r);
}

/* ---- the policy's [merge] --------------------------------------------- */

/* Parse policy text with stderr caught: the policy, the problem count and
 * what was reported (free both). */
static cv_policy *parse_caught(const char *text, int *problems, char **msgs)
{
    char *log = cv_fmt("%s/stderr", cvt_tmpdir());
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        cvt_fail(__FILE__, __LINE__, "cannot open %s", log);
    int saved = dup(2);
    dup2(fd, 2);
    cv_policy *p = cv_policy_parse("my.conf", text, problems);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    *msgs = cv_read_file(log, 1 << 20, NULL);
    free(log);
    return p;
}

TEST(policy_merge_section_sets_the_rules)
{
    cv_policy *p = cvt_policy("[merge]\n"
                              "recentSearches = union 100\n"
                              "sessionCount = max   # counted per device\n"
                              "notes = siblings\n"
                              "default = union 3\n"
                              "[fields]\n"
                              "**.email = hash email\n");
    const cv_merge_rules *r = cv_policy_merge_rules(p);
    int cap;
    CHECK_INT(cv_merge_rule_for(r, "recentSearches", &cap), CV_MERGE_UNION);
    CHECK_INT(cap, 100);
    CHECK_INT(cv_merge_rule_for(r, "sessionCount", NULL), CV_MERGE_MAX);
    CHECK_INT(cv_merge_rule_for(r, "notes", NULL), CV_MERGE_SIBLINGS);
    CHECK_INT(cv_merge_rule_for(r, "other", &cap), CV_MERGE_UNION);
    CHECK_INT(cap, 3);
    cv_policy_destroy(&p);
    /* no section: every field lww */
    p = cvt_policy("[fields]\n**.email = hash email\n");
    CHECK_INT(cv_merge_rule_for(cv_policy_merge_rules(p), "recentSearches",
                                &cap), CV_MERGE_LWW);
    cv_policy_destroy(&p);
}

TEST(policy_merge_section_of_the_shipped_policy)
{
    int problems = -1;
    cv_policy *p = cv_policy_load(NULL, true, &problems);
    CHECK(p);
    CHECK_INT(problems, 0);
    const cv_merge_rules *r = cv_policy_merge_rules(p);
    int cap;
    CHECK_INT(cv_merge_rule_for(r, "recentSearches", &cap), CV_MERGE_UNION);
    CHECK_INT(cap, 100);
    CHECK_INT(cv_merge_rule_for(r, "recentVisits", &cap), CV_MERGE_UNION);
    CHECK_INT(cap, 100);
    CHECK_INT(cv_merge_rule_for(r, "sessionCount", NULL), CV_MERGE_MAX);
    CHECK_INT(cv_merge_rule_for(r, "theme", &cap), CV_MERGE_LWW);
    CHECK_INT(cap, 0);
    cv_policy_destroy(&p);
}

TEST(policy_merge_errors_name_the_line)
{
    const char *text =
        "[merge]\n"
        "a = union\n"          /* 2: no cap */
        "b = union 0\n"        /* 3: cap out of range */
        "c = newest\n"         /* 4: unknown rule */
        "d = max\n"
        "d = lww\n"            /* 6: given twice */
        "default = siblings\n"
        "default = lww\n"      /* 8: given twice */
        "e = lww please\n"     /* 9: stray argument */
        "[mergers]\n"
        "f = lww\n";           /* 11: unknown section */
    int problems = 0;
    char *msgs;
    cv_policy *p = parse_caught(text, &problems, &msgs);
    CHECK(p);
    CHECK(msgs);
    CHECK_INT(problems, 7);
    static const char *const want[] = {
        "my.conf:2: union needs a cap: union N, N from 1 to 100000",
        "my.conf:3: union cap '0' is not a number from 1 to 100000",
        "my.conf:4: unknown merge rule 'newest' (expected lww, union N, max "
        "or siblings)",
        "my.conf:6: rule for 'd' given twice",
        "my.conf:8: rule for 'default' given twice",
        "my.conf:9: merge rule 'lww' takes no argument (got 'please')",
        "my.conf:11: unknown section [mergers] (expected retention, scrub, "
        "privacy, merge, public, fields, scrub fields or scrub fields KIND)",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(msgs, want[i]))
            cvt_fail(__FILE__, __LINE__, "no \"%s\" in:\n%s", want[i], msgs);
    /* the good lines still count; the first of a repeated one wins */
    const cv_merge_rules *r = cv_policy_merge_rules(p);
    CHECK_INT(cv_merge_rule_for(r, "d", NULL), CV_MERGE_MAX);
    CHECK_INT(cv_merge_rule_for(r, "a", NULL), CV_MERGE_SIBLINGS);
    free(msgs);
    cv_policy_destroy(&p);
}
