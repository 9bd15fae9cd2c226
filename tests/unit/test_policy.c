/* test_policy.c - policy parsing, pattern matching and the field
 * operators, and the shipped default policy. */
#include "fixtures.h"
#include "harness.h"

#include "crypto/fieldcrypt.h"
#include "privacy/policy.h"
#include "base/util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DAY (86400000LL)

/* Apply p to the event text and return the result as compact JSON. */
static char *apply(const cv_policy *p, const cv_keyring *kr, const char *text)
{
    char err[256];
    json_t *ev = cvt_json(text);
    if (cv_policy_apply(p, kr, NULL, ev, err, sizeof err) < 0)
        cvt_fail(__FILE__, __LINE__, "apply: %s", err);
    char *out = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(ev);
    return out;
}

static const char *sget(json_t *o, const char *path)
{
    char *copy = cv_strdup(path), *save = NULL;
    json_t *v = o;
    for (char *k = strtok_r(copy, ".", &save); k && v;
         k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    free(copy);
    return json_string_value(v);
}

TEST(policy_default_parses)
{
    int problems = -1;
    cv_policy *p = cv_policy_parse("etc/policy.conf", cv_default_policy_text,
                                   &problems);
    CHECK(p != NULL);
    CHECK_INT(problems, 0);
    CHECK_INT(cv_policy_keep_ms(p, "snapshot"), 7 * DAY);
    CHECK_INT(cv_policy_keep_ms(p, "trace"), 30 * DAY);
    CHECK_INT(cv_policy_keep_ms(p, "replay"), 90 * DAY);
    CHECK_INT(cv_policy_keep_ms(p, "audit"), 365 * DAY);
    CHECK_INT(cv_policy_keep_ms(p, "profile"), CV_USER_DEFINED);
    CHECK_INT(cv_policy_keep_ms(p, "no-such-kind"), 30 * DAY);
    CHECK_INT(cv_policy_keep_ms(p, NULL), 30 * DAY);
    CHECK_INT(cv_policy_scrub_ms(p, "audit"), 90 * DAY);
    CHECK_INT(cv_policy_scrub_ms(p, "no-such-kind"), 90 * DAY);
    CHECK_INT(cv_policy_ephemeral_ms(p), 3600000);
    /* a user may keep interactions and contexts as long as they choose;
     * snapshots and traces only as long as the operator keeps them */
    CHECK_INT(cv_policy_cap_ms(p, "interaction"), CV_FOREVER);
    CHECK_INT(cv_policy_cap_ms(p, "context"), CV_FOREVER);
    CHECK_INT(cv_policy_cap_ms(p, "snapshot"), 7 * DAY);
    CHECK_INT(cv_policy_cap_ms(p, "trace"), 30 * DAY);
    const char *arg = NULL;
    CHECK_INT(cv_policy_op_for(p, "user_id", &arg), CV_OP_HASH);
    CHECK_STR(arg, "user");
    CHECK_INT(cv_policy_op_for(p, "a.b.email", &arg), CV_OP_HASH);
    CHECK_STR(arg, "email");
    CHECK_INT(cv_policy_op_for(p, "query", NULL), CV_OP_ENCRYPT);
    CHECK_INT(cv_policy_op_for(p, "device.name", &arg), CV_OP_HASH);
    CHECK_STR(arg, "device-name");
    /* deny by default: a string no rule names is sealed, a number kept */
    CHECK_INT(cv_policy_op_for(p, "no_rule_names_this", NULL), CV_OP_ENCRYPT);
    /* names match as people write them */
    CHECK_INT(cv_policy_op_for(p, "recentSearches", NULL), CV_OP_ENCRYPT);
    CHECK_INT(cv_policy_op_for(p, "emailAddress", &arg), CV_OP_HASH);
    CHECK_STR(arg, "email");
    CHECK_INT(cv_policy_op_for(p, "deviceInfo.deviceId", &arg), CV_OP_HASH);
    CHECK_STR(arg, "device");
    CHECK_INT(cv_policy_op_for(p, "location", NULL), CV_OP_GENERALISE);
    cv_policy_destroy(&p);
    CHECK(p == NULL);
    /* a missing instance file falls back to the built-in policy */
    char *path = cv_fmt("%s/none.conf", cvt_tmpdir());
    p = cv_policy_load(path, true, &problems);
    CHECK(p && problems == 0);
    cv_policy_destroy(&p);
    int devnull = open("/dev/null", O_WRONLY), saved = dup(2);
    dup2(devnull, 2); /* the expected "cannot read policy" */
    p = cv_policy_load(path, false, &problems);
    dup2(saved, 2);
    close(saved);
    close(devnull);
    CHECK(p == NULL && problems == 1);
    free(path);
}

/* Every problem counted and reported as SOURCE:LINE: reason. */
TEST(policy_parse_errors)
{
    const char *text =
        "[retention]\n"
        "trace = 30 days\n"          /* 2: bad duration */
        "audit = 0s\n"               /* 3: zero retention */
        "trace = 30d\n"              /* ok: line 2 failed, so not a repeat */
        "[scrub]\n"
        "audit = user\n"             /* 6: user is not a scrub age */
        "[privacy]\n"
        "anonymous = 1h\n"           /* 8: unknown setting */
        "[fields]\n"
        "**.x = scramble\n"          /* 10: unknown operator */
        "**.y = hash\n"              /* 11: hash without purpose */
        "ts = round\n"               /* 12: reserved member */
        "a*b = keep\n"               /* 13: partial wildcard */
        "a..b = keep\n"              /* 14: empty segment */
        "**.z = drop now\n"          /* 15: stray argument */
        "**.w = hash Bad Purpose\n"  /* 16: bad purpose */
        "**.v = keep\n"
        "**.v = drop\n"              /* 18: duplicate pattern */
        "* = encrypt\n"              /* 19: would encrypt user_id */
        "[colours]\n"
        "red = 1\n";                 /* 21: unknown section */
    static const int lines[] = {2, 3, 6, 8, 10, 11, 12, 13, 14, 15, 16, 18,
                                19, 21};
    char *log = cv_fmt("%s/stderr", cvt_tmpdir());
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    int saved = dup(2);
    dup2(fd, 2);
    int problems = 0;
    cv_policy *p = cv_policy_parse("my.conf", text, &problems);
    dup2(saved, 2);
    close(saved);
    close(fd);
    CHECK(p != NULL);
    CHECK_INT(problems, (int)(sizeof lines / sizeof *lines));
    char *out = cv_read_file(log, 1 << 20, NULL);
    CHECK(out);
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        char *want = cv_fmt("my.conf:%d: ", lines[i]);
        if (!strstr(out, want))
            cvt_fail(__FILE__, __LINE__, "no report for line %d in:\n%s",
                     lines[i], out);
        free(want);
    }
    CHECK(strstr(out, "user_id") != NULL);
    CHECK(strstr(out, "needs a purpose") != NULL);
    free(out);
    free(log);
    cv_policy_destroy(&p);

    /* user_id: keep and hash are fine, anything else is not */
    problems = 0;
    int fd2 = open("/dev/null", O_WRONLY);
    saved = dup(2);
    dup2(fd2, 2);
    p = cv_policy_parse("t", "[fields]\nuser_id = drop\n", &problems);
    cv_policy_destroy(&p);
    int p1 = problems;
    p = cv_policy_parse("t", "[fields]\ndefault = encrypt\n", &problems);
    cv_policy_destroy(&p);
    int p2 = problems;
    p = cv_policy_parse("t", "[fields]\nuser_id = keep\ndefault = encrypt\n",
                        &problems);
    cv_policy_destroy(&p);
    int p3 = problems;
    dup2(saved, 2);
    close(saved);
    close(fd2);
    CHECK_INT(p1, 1);
    CHECK_INT(p2, 1);
    CHECK_INT(p3, 0);
}

TEST(policy_pattern_matching)
{
    cv_policy *p = cvt_policy("[fields]\n"
                            "a.b = drop\n"
                            "**.b = hash p\n"
                            "*.x = mask\n"
                            "m.**.n = round\n"
                            "z.** = encrypt\n"
                            "**.deep.**.er = generalise\n");
    const char *arg;
    CHECK_INT(cv_policy_op_for(p, "a.b", NULL), CV_OP_DROP); /* first wins */
    CHECK_INT(cv_policy_op_for(p, "b", &arg), CV_OP_HASH);    /* ** is none */
    CHECK_STR(arg, "p");
    CHECK_INT(cv_policy_op_for(p, "c.a.b", NULL), CV_OP_HASH);
    CHECK_INT(cv_policy_op_for(p, "q.x", NULL), CV_OP_MASK);
    CHECK_INT(cv_policy_op_for(p, "x", NULL), CV_OP_KEEP);    /* * is one */
    CHECK_INT(cv_policy_op_for(p, "q.r.x", NULL), CV_OP_KEEP);
    CHECK_INT(cv_policy_op_for(p, "m.n", NULL), CV_OP_ROUND);
    CHECK_INT(cv_policy_op_for(p, "m.1.2.3.n", NULL), CV_OP_ROUND);
    CHECK_INT(cv_policy_op_for(p, "m.n.o", NULL), CV_OP_KEEP);
    CHECK_INT(cv_policy_op_for(p, "z", NULL), CV_OP_ENCRYPT);
    CHECK_INT(cv_policy_op_for(p, "z.y.w", NULL), CV_OP_ENCRYPT);
    CHECK_INT(cv_policy_op_for(p, "deep.er", NULL), CV_OP_GENERALISE);
    CHECK_INT(cv_policy_op_for(p, "a.deep.k.deep.l.er", NULL),
              CV_OP_GENERALISE);
    CHECK_INT(cv_policy_op_for(p, "a.deep.er.x", NULL), CV_OP_KEEP);
    CHECK_INT(cv_policy_op_for(p, "xb", NULL), CV_OP_KEEP); /* whole keys */
    cv_policy_destroy(&p);
}

TEST(policy_arrays_are_transparent)
{
    cv_keyring *kr = cvt_keyring("keyring");
    cv_policy *p = cvt_policy("[fields]\n"
                            "**.email = hash email\n"
                            "tags = mask\n"
                            "secret = encrypt\n"
                            "gone = drop\n");
    char *out = apply(p, kr,
                      "{\"id\":\"e\",\"people\":[{\"email\":\"a@x\"},"
                      "{\"email\":\"b@x\"},[{\"email\":\"a@x\"}]],"
                      "\"email\":[\"a@x\",[\"b@x\"],7],"
                      "\"tags\":[\"abcdef\",[\"xy\"],1,{\"k\":1}],"
                      "\"secret\":[1,2,3],\"gone\":[1]}");
    json_t *j = cvt_json(out);
    char pa[CV_PSEUDONYM_MAX], pb[CV_PSEUDONYM_MAX], p7[CV_PSEUDONYM_MAX];
    cv_fieldcrypt_pseudonym(kr, 1, "email", "a@x", 3, pa);
    cv_fieldcrypt_pseudonym(kr, 1, "email", "b@x", 3, pb);
    cv_fieldcrypt_pseudonym(kr, 1, "email", "7", 1, p7);
    json_t *people = json_object_get(j, "people");
    CHECK_STR(sget(json_array_get(people, 0), "email"), pa);
    CHECK_STR(sget(json_array_get(people, 1), "email"), pb);
    CHECK_STR(sget(json_array_get(json_array_get(people, 2), 0), "email"), pa);
    json_t *em = json_object_get(j, "email");
    CHECK_STR(json_string_value(json_array_get(em, 0)), pa);
    CHECK_STR(json_string_value(json_array_get(json_array_get(em, 1), 0)), pb);
    CHECK_STR(json_string_value(json_array_get(em, 2)), p7);
    /* mask per element; what cannot be masked leaves the array */
    json_t *tags = json_object_get(j, "tags");
    CHECK_INT(json_array_size(tags), 2);
    CHECK_STR(json_string_value(json_array_get(tags, 0)), "**cdef");
    CHECK_STR(json_string_value(json_array_get(json_array_get(tags, 1), 0)),
              "**");
    /* encrypt takes the array whole; drop removes the member */
    const char *env = json_string_value(json_object_get(j, "secret"));
    CHECK(env && cv_fieldcrypt_is_envelope(env));
    char *plain, err[256];
    size_t len;
    CHECK_INT(cv_fieldcrypt_unseal(kr, env, "e", "secret", &plain, &len, err, sizeof err),
              0);
    CHECK_STR(plain, "[1,2,3]");
    free(plain);
    CHECK(json_object_get(j, "gone") == NULL);
    json_decref(j);
    free(out);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}

TEST(policy_operators)
{
    cv_keyring *kr = cvt_keyring("keyring");
    cv_policy *p = cvt_policy("[fields]\n"
                            "enc = encrypt\n"
                            "h = hash thing\n"
                            "g.* = generalise\n"
                            "r.* = round\n"
                            "m.* = mask\n"
                            "d = drop\n"
                            "k = keep\n");
    char *out = apply(
        p, kr,
        "{\"id\":\"ev9\",\"enc\":{\"a\":[1,true,null]},\"h\":42,"
        "\"g\":{\"obj\":{\"lat\":52.5201,\"lon\":-13.46,\"city\":\"Berlin\","
        "\"country\":\"DE\",\"street\":\"Unter den Linden 1\",\"zip\":\"10117\","
        "\"latitude\":1.25,\"region\":7},\"num\":13.4049,\"int\":13,"
        "\"str\":\"1 Main St, Springfield, USA \",\"one\":\"France\","
        "\"bool\":true},"
        "\"r\":{\"iso\":\"2026-03-04T05:06:07.891+01:00\",\"s\":1772600767,"
        "\"ms\":1772600767891,\"bad\":\"yesterday\",\"neg\":-5,\"obj\":{}},"
        "\"m\":{\"long\":\"4111111111111111\",\"short\":\"abcd\","
        "\"utf\":\"h\xc3\xa9llo w\xc3\xb6rld\",\"tail\":\"ab\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\","
        "\"num\":5},"
        "\"d\":\"x\",\"k\":\"plain\"}");
    json_t *j = cvt_json(out);
    char err[256], *plain;
    size_t len;

    CHECK_INT(cv_fieldcrypt_unseal(kr, sget(j, "enc"), "ev9", "enc", &plain, &len, err,
                        sizeof err), 0);
    CHECK_STR(plain, "{\"a\":[1,true,null]}");
    free(plain);

    char ps[CV_PSEUDONYM_MAX];
    cv_fieldcrypt_pseudonym(kr, 1, "thing", "42", 2, ps);
    CHECK_STR(sget(j, "h"), ps);

    json_t *g = json_object_get(j, "g");
    char *gobj = json_dumps(json_object_get(g, "obj"),
                            JSON_COMPACT | JSON_SORT_KEYS);
    CHECK_STR(gobj, "{\"city\":\"Berlin\",\"country\":\"DE\","
                    "\"lat\":52.5,\"latitude\":1.3,\"lon\":-13.5}");
    free(gobj);
    CHECK(json_real_value(json_object_get(g, "num")) == 13.4);
    CHECK_INT(json_integer_value(json_object_get(g, "int")), 13);
    CHECK_STR(sget(g, "str"), "USA");
    CHECK_STR(sget(g, "one"), "France");
    CHECK(json_object_get(g, "bool") == NULL);

    json_t *r = json_object_get(j, "r");
    CHECK_STR(sget(r, "iso"), "2026-03-04T04:00:00.000Z");
    CHECK_INT(json_integer_value(json_object_get(r, "s")), 1772600400);
    CHECK_INT(json_integer_value(json_object_get(r, "ms")), 1772600400000LL);
    CHECK(json_object_get(r, "bad") == NULL);
    CHECK(json_object_get(r, "neg") == NULL);
    CHECK(json_object_get(r, "obj") == NULL);

    json_t *m = json_object_get(j, "m");
    CHECK_STR(sget(m, "long"), "************1111");
    CHECK_STR(sget(m, "short"), "****");
    /* 11 characters in 13 bytes: 7 stars and the last 4 characters */
    CHECK_STR(sget(m, "utf"), "*******\xc3\xb6rld");
    CHECK_STR(sget(m, "tail"), "**\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    CHECK(json_object_get(m, "num") == NULL);

    CHECK(json_object_get(j, "d") == NULL);
    CHECK_STR(sget(j, "k"), "plain");
    json_decref(j);
    free(out);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}

TEST(policy_reserved_members_untouched)
{
    cv_keyring *kr = cvt_keyring("keyring");
    /* everything else is dropped or encrypted; store's members stay */
    cv_policy *p = cvt_policy("[fields]\n"
                            "user_id = keep\n"
                            "** = drop\n");
    const char *ev = "{\"id\":\"e1\",\"kind\":\"trace\",\"type\":\"click\","
                     "\"ts\":\"2026-01-01T00:00:00Z\",\"privacy_level\":"
                     "\"standard\",\"retention_days\":30,\"user_id\":\"u\","
                     "\"other\":1,\"nested\":{\"id\":2,\"ts\":3}}";
    char *out = apply(p, kr, ev);
    CHECK_STR(out, "{\"id\":\"e1\",\"kind\":\"trace\",\"privacy_level\":"
                   "\"standard\",\"retention_days\":30,\"ts\":"
                   "\"2026-01-01T00:00:00Z\",\"type\":\"click\","
                   "\"user_id\":\"u\"}");
    free(out);
    cv_policy_destroy(&p);

    p = cvt_policy("[fields]\nuser_id = keep\ndefault = encrypt\n");
    out = apply(p, kr, ev);
    json_t *j = cvt_json(out);
    CHECK_STR(sget(j, "kind"), "trace");
    CHECK_STR(sget(j, "type"), "click");
    CHECK_INT(json_integer_value(json_object_get(j, "retention_days")), 30);
    CHECK_STR(sget(j, "user_id"), "u");
    CHECK(cv_fieldcrypt_is_envelope(sget(j, "other")));
    /* the default reaches leaves: nested.id is not the reserved id */
    CHECK(cv_fieldcrypt_is_envelope(sget(j, "nested.id")));
    json_decref(j);
    free(out);
    cv_policy_destroy(&p);

    /* the event must carry a string id */
    char err[256];
    p = cvt_policy("");
    json_t *noid = cvt_json("{\"a\":1}");
    CHECK_INT(cv_policy_apply(p, kr, NULL, noid, err, sizeof err), -1);
    json_decref(noid);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}

TEST(policy_default_operator)
{
    cv_keyring *kr = cvt_keyring("keyring");
    cv_policy *p = cvt_policy("[fields]\n"
                            "user_id = keep\n"
                            "**.keepme = keep\n"
                            "default = drop\n");
    char *out = apply(p, kr,
                      "{\"id\":\"e\",\"a\":{\"keepme\":1,\"x\":2,\"l\":[1,"
                      "{\"keepme\":3}]},\"b\":\"x\"}");
    CHECK_STR(out, "{\"a\":{\"keepme\":1,\"l\":[{\"keepme\":3}]},\"id\":\"e\"}");
    free(out);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}

/* The shipped policy on a typical event: nested fields are found. */
TEST(policy_default_on_typical_event)
{
    cv_keyring *kr = cvt_keyring("keyring");
    int problems;
    cv_policy *p = cv_policy_load(NULL, true, &problems);
    CHECK(p && problems == 0);
    const char *ev = cvt_typical_event;
    char *out = apply(p, kr, ev);
    CHECK(strstr(out, "alice") == NULL);
    CHECK(strstr(out, "divorce") == NULL);
    CHECK(strstr(out, "bob@") == NULL);
    CHECK(strstr(out, "203.0") == NULL);
    CHECK(strstr(out, "Rivoli") == NULL);
    CHECK(strstr(out, "laptop") == NULL);
    json_t *j = cvt_json(out);
    CHECK(cv_fieldcrypt_is_pseudonym(sget(j, "user_id")));
    CHECK(cv_fieldcrypt_is_pseudonym(sget(j, "email")));
    CHECK(cv_fieldcrypt_is_pseudonym(sget(j, "payload.contact.email")));
    CHECK(cv_fieldcrypt_is_pseudonym(sget(j, "ip")));
    CHECK(cv_fieldcrypt_is_pseudonym(sget(j, "device.device_id")));
    CHECK(cv_fieldcrypt_is_pseudonym(sget(j, "device.name")));
    CHECK_STR(sget(j, "device.os"), "linux");
    CHECK_STR(sget(j, "location.city"), "Paris");
    CHECK_STR(sget(j, "kind"), "interaction");
    CHECK_STR(sget(j, "ts"), "2026-11-22T10:04:05.123Z");
    char err[256], *plain;
    size_t len;
    CHECK_INT(cv_fieldcrypt_unseal(kr, sget(j, "payload.search.query"), "ev-42",
                        "payload.search.query", &plain, &len, err, sizeof err),
              0);
    CHECK_STR(plain, "\"divorce lawyer\"");
    free(plain);
    /* inside an array the path has no index */
    const char *t = json_string_value(
        json_object_get(json_array_get(json_object_get(j, "results"), 0),
                        "text"));
    CHECK_INT(cv_fieldcrypt_unseal(kr, t, "ev-42", "results.text", &plain, &len, err,
                        sizeof err), 0);
    CHECK_STR(plain, "\"hello\"");
    free(plain);

    /* a second run changes nothing: sealed and hashed values stay */
    char *again = apply(p, kr, out);
    CHECK_STR(again, out);
    free(again);

    /* stored_value gives what apply stored for user_id */
    char *sv = cv_policy_stored_value(p, kr, 1, "user_id", "alice");
    CHECK_STR(sv, sget(j, "user_id"));
    free(sv);
    sv = cv_policy_stored_value(p, kr, 1, "device.os", "linux");
    CHECK_STR(sv, "linux");
    free(sv);
    CHECK(cv_policy_stored_value(p, kr, 1, "query", "x") == NULL);
    CHECK(cv_policy_stored_value(p, kr, 5, "user_id", "alice") == NULL);
    json_decref(j);
    free(out);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}

/* A value that merely looks sealed or hashed is still protected. */
TEST(policy_lookalikes_are_protected)
{
    cv_keyring *kr = cvt_keyring("keyring");
    cv_policy *p = cvt_policy("[fields]\nq = encrypt\nu = hash user\n");
    char *out = apply(p, kr,
                      "{\"id\":\"e\",\"q\":\"enc:v1: my secret\","
                      "\"u\":\"hash:v1:not-a-digest\"}");
    CHECK(strstr(out, "my secret") == NULL);
    CHECK(strstr(out, "not-a-digest") == NULL);
    free(out);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}

TEST(policy_depth_limit)
{
    cv_keyring *kr = cvt_keyring("keyring");
    cv_policy *p = cvt_policy("");
    /* built by hand: the parser's own limit is 2048 too */
    json_t *ev = json_object();
    json_object_set_new(ev, "id", json_string("e"));
    json_t *cur = ev;
    for (int i = 0; i < 2100; i++) {
        json_t *o = json_object();
        json_object_set_new(cur, "a", o);
        cur = o;
    }
    char err[256];
    CHECK_INT(cv_policy_apply(p, kr, NULL, ev, err, sizeof err), -1);
    CHECK(strstr(err, "deeper") != NULL);
    json_decref(ev);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}
