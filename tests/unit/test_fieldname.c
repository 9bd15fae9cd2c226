/* test_fieldname.c - member names as people write them: folding, the
 * reserved members and their other names, and what ingest makes of an
 * object sent with an application's own spellings. */
#include "harness.h"
#include "fixtures.h"

#include "base/event.h"
#include "base/fieldname.h"
#include "base/jscan.h"
#include "privacy/policy.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t key[32] = {7};

static int norm_kind(const char *kind, const char *line, char **out,
                     char *reason)
{
    cv_event_rules r = {.max_depth = 64, .id_key = key, .default_kind = kind};
    size_t n;
    *out = NULL;
    return cv_event_normalise(&r, line, strlen(line), 1800000000000LL, out, &n,
                              reason, 256);
}

static int norm(const char *line, char **out, char *reason)
{
    return norm_kind(NULL, line, out, reason);
}

TEST(names_fold_case_underscores_and_dashes)
{
    static const char *const same[] = {"recent_searches", "recentSearches",
                                       "RecentSearches", "recent-searches",
                                       "RECENT_SEARCHES", "recentsearches"};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++)
        for (size_t j = 0; j < sizeof same / sizeof *same; j++)
            if (!cv_fieldname_eq(same[i], strlen(same[i]), same[j], strlen(same[j])))
                cvt_fail(__FILE__, __LINE__, "%s != %s", same[i], same[j]);
    CHECK(!cv_fieldname_eq("recent", 6, "recents", 7));
    CHECK(!cv_fieldname_eq("email", 5, "e.mail", 6)); /* dots are paths */
    /* non-ASCII bytes compare as they are */
    CHECK(!cv_fieldname_eq("caf\xc3\xa9", 5, "CAF\xc3\x89", 5));
    char out[32];
    size_t n = cv_fieldname_fold("Device-ID_x", 11, out);
    CHECK_INT(n, 9);
    CHECK(memcmp(out, "deviceidx", 9) == 0);
    CHECK(cv_fieldname_is("deviceId", 8, "deviceid", 8));
    CHECK(!cv_fieldname_is("deviceIds", 9, "deviceid", 8));
    CHECK_INT(cv_fieldname_hash("ipAddress", 9), cv_fieldname_hash("ip_address", 10));
}

TEST(reserved_members_are_found_by_any_spelling_and_alias)
{
    CHECK_INT(cv_fieldname_of("userId", 6), CV_MEMBER_USER);
    CHECK_INT(cv_fieldname_of("USER-ID", 7), CV_MEMBER_USER);
    CHECK_INT(cv_fieldname_of("timestamp", 9), CV_MEMBER_TS);
    CHECK_INT(cv_fieldname_of("Ts", 2), CV_MEMBER_TS);
    CHECK_INT(cv_fieldname_of("privacyLevel", 12), CV_MEMBER_LEVEL);
    CHECK_INT(cv_fieldname_of("dataRetentionDays", 17), CV_MEMBER_DAYS);
    CHECK_INT(cv_fieldname_of("retentionDays", 13), CV_MEMBER_DAYS);
    CHECK_INT(cv_fieldname_of("user", 4), -1);
    CHECK_INT(cv_fieldname_of("timestamps", 10), -1);
    CHECK_STR(cv_fieldname_member(CV_MEMBER_DAYS), "retention_days");
}

TEST(jscan_keeps_a_second_spelling_apart_when_asked)
{
    cv_jmember again;
    cv_jfield f = {.name = "user_id", .again = &again};
    const char *t = "{\"userId\":\"a\",\"x\":{\"user_id\":1},\"user_id\":\"b\"}";
    char err[160];
    CHECK_INT(cv_jscan_object(t, strlen(t), 64, true, &f, 1, err, sizeof err), 0);
    CHECK(f.keylen == 6 && memcmp(f.key, "userId", 6) == 0);
    CHECK(again.keylen == 7 && memcmp(again.key, "user_id", 7) == 0);
    CHECK(again.len == 1 && again.val[0] == 'b');
    /* the member's bytes, from its name to the end of its value */
    CHECK(f.at == t + 1 && f.end == t + 13);
    /* without room for it, a second spelling is a duplicate */
    cv_jfield g = {.name = "user_id"};
    CHECK_INT(cv_jscan_object(t, strlen(t), 64, true, &g, 1, err, sizeof err), -1);
    CHECK(strstr(err, "duplicate key \"user_id\"") != NULL);
    /* a container member ends at its closing bracket */
    cv_jfield h = {.name = "list"};
    const char *u = "{\"List\":[1,[2]],\"z\":0}";
    CHECK_INT(cv_jscan_object(u, strlen(u), 64, true, &h, 1, err, sizeof err), 0);
    CHECK(h.end == u + 15);
}

TEST(seed_spellings_become_the_canonical_members)
{
    char *out, reason[256];
    CHECK_INT(norm("{\"kind\":\"context\",\"userId\":\"alice\","
                   "\"timestamp\":\"2026-12-07T10:00:00Z\","
                   "\"recentSearches\":[\"hiv test clinic near me\"]}", &out, reason), 0);
    CHECK_STR(out + 34, ",\"ts\":\"2026-12-07T10:00:00.000Z\",\"kind\":\"context\","
              "\"user_id\":\"alice\",\"recentSearches\":[\"hiv test clinic near me\"]}");
    /* the id's time part is the event's time */
    char *again;
    CHECK_INT(norm("{\"kind\":\"context\",\"user_id\":\"alice\","
                   "\"ts\":\"2026-12-07T10:00:00Z\","
                   "\"recentSearches\":[\"hiv test clinic near me\"]}", &again, reason), 0);
    /* the same event however its members are spelled: the same id */
    CHECK(strncmp(out, again, 34) == 0);
    free(again);
    free(out);
    /* epoch ms, as JavaScript sends a Date */
    CHECK_INT(norm("{\"kind\":\"c\",\"userId\":\"a\",\"timestamp\":1796637600000,\"x\":1}",
                   &out, reason), 0);
    CHECK(strstr(out, "\"ts\":\"2026-12-07T10:00:00.000Z\",\"kind\":\"c\","
                      "\"user_id\":\"a\",\"x\":1}") != NULL);
    free(out);
    /* a profile's settings; "forever" is a retention */
    CHECK_INT(norm("{\"kind\":\"profile\",\"user_id\":\"a\",\"privacyLevel\":\"anonymous\","
                   "\"dataRetentionDays\":30}", &out, reason), 0);
    CHECK(strstr(out, "\"user_id\":\"a\",\"privacy_level\":\"anonymous\","
                      "\"retention_days\":30}") != NULL);
    free(out);
    CHECK_INT(norm("{\"kind\":\"profile\",\"user_id\":\"a\",\"dataRetentionDays\":\"forever\"}",
                   &out, reason), 0);
    CHECK(strstr(out, "\"retention_days\":\"forever\"") != NULL);
    free(out);
    /* a UUID is the producer's id, kept first */
    CHECK_INT(norm(" { \"id\" : \"1b4e28ba-2fa1-11d2-883f-0016d3cca427\" , \"userId\":\"a\","
                   " \"kind\":\"c\" , \"n\": [1, 2] } ", &out, reason), 0);
    CHECK(strncmp(out, "{\"ts\":\"", 7) == 0);
    CHECK(strstr(out, "\",\"id\":\"1b4e28ba-2fa1-11d2-883f-0016d3cca427\",\"kind\":\"c\","
                      "\"user_id\":\"a\",\"n\": [1, 2]}") != NULL);
    free(out);
    /* canonical spellings keep the producer's bytes as they were */
    const char *plain = "{\"id\":\"e\",\"ts\":\"2026-12-07T10:00:00Z\",\"kind\":\"c\","
                        "\"user_id\":\"a\",\"n\":1.50}";
    CHECK_INT(norm(plain, &out, reason), 0);
    CHECK_STR(out, plain);
    free(out);
}

TEST(two_spellings_of_one_member_must_agree)
{
    char *out, reason[256];
    CHECK_INT(norm("{\"kind\":\"c\",\"userId\":\"a\",\"user_id\":\"b\"}", &out, reason), -1);
    CHECK_STR(reason, "\"userId\" and \"user_id\" are both \"user_id\", with "
              "different values");
    /* the same value twice is said twice, not contradicted */
    CHECK_INT(norm("{\"kind\":\"c\",\"userId\":\"a\",\"x\":0,\"user_id\":\"a\"}", &out, reason), 0);
    CHECK(strstr(out, "\"kind\":\"c\",\"user_id\":\"a\",\"x\":0}") != NULL);
    free(out);
    /* one instant in two forms */
    CHECK_INT(norm("{\"kind\":\"c\",\"user_id\":\"a\",\"ts\":\"2026-12-07T10:00:00Z\","
                   "\"timestamp\":1796637600000}", &out, reason), 0);
    free(out);
    CHECK_INT(norm("{\"kind\":\"c\",\"user_id\":\"a\",\"ts\":\"2026-12-07T10:00:00Z\","
                   "\"timestamp\":1796637600001}", &out, reason), -1);
    CHECK(strstr(reason, "\"ts\", with different values") != NULL);
    /* three spellings: a duplicate */
    CHECK_INT(norm("{\"kind\":\"c\",\"userId\":\"a\",\"user_id\":\"a\",\"UserID\":\"a\"}",
                   &out, reason), -1);
    CHECK(strstr(reason, "duplicate key") != NULL);
}

TEST(an_object_without_kind_takes_the_stream_s)
{
    char *out, reason[256];
    CHECK_INT(norm("{\"userId\":\"a\",\"x\":1}", &out, reason), -1);
    CHECK(strstr(reason, "\"kind\" is missing") && strstr(reason, "--kind"));
    CHECK_INT(norm_kind("profile", "{\"userId\":\"a\",\"privacyLevel\":\"private\"}",
                        &out, reason), 0);
    CHECK(strstr(out, "\"kind\":\"profile\",\"user_id\":\"a\",\"privacy_level\":\"private\"}"));
    free(out);
    /* an object's own kind wins over the stream's */
    CHECK_INT(norm_kind("profile", "{\"kind\":\"context\",\"user_id\":\"a\"}", &out, reason), 0);
    CHECK(strstr(out, "\"kind\":\"context\"") && !strstr(out, "profile"));
    free(out);
    /* and an empty object gets nothing it lacks but its members */
    CHECK_INT(norm_kind("context", "{\"userId\":\"a\"}", &out, reason), 0);
    CHECK(strstr(out, "\"kind\":\"context\",\"user_id\":\"a\"}"));
    free(out);
}

TEST(numeric_times_are_ms_and_seconds_are_refused)
{
    char *out, reason[256];
    CHECK_INT(norm("{\"kind\":\"c\",\"user_id\":\"a\",\"timestamp\":1796637600}", &out, reason), -1);
    CHECK(strstr(reason, "seconds must be given as ms") != NULL);
    CHECK_INT(norm("{\"kind\":\"c\",\"user_id\":\"a\",\"ts\":1.5e12}", &out, reason), -1);
    CHECK_INT(norm("{\"kind\":\"c\",\"user_id\":\"a\",\"ts\":true}", &out, reason), -1);
    CHECK(strstr(reason, "\"ts\" is a boolean") != NULL);
}

TEST(policy_rules_match_names_as_written_and_warn_on_twins)
{
    const char *text = "[fields]\ndefault = encrypt\ndefault number = keep\n"
                       "default boolean = drop\n"
                       "**.user_id = hash user\n**.recent_searches = encrypt\n"
                       "**.device_info.screen_size = keep\n**.device_id = hash device\n"
                       "**.Device-Id = drop\n";
    int problems = -1;
    cv_policy *p = cv_policy_parse("t", text, &problems);
    CHECK(p != NULL);
    CHECK_INT(problems, 0); /* a twin warns, it is not an error */
    const char *arg;
    CHECK_INT(cv_policy_op_for(p, "recentSearches", NULL), CV_OP_ENCRYPT);
    CHECK_INT(cv_policy_op_for(p, "deviceInfo.screenSize", NULL), CV_OP_KEEP);
    CHECK_INT(cv_policy_op_for(p, "a.DEVICE_ID", &arg), CV_OP_HASH);
    CHECK_STR(arg, "device");
    cv_policy_destroy(&p);
    /* a rule for another name of a reserved member is an error */
    p = cv_policy_parse("t", "[fields]\ntimestamp = round\n", &problems);
    CHECK_INT(problems, 1);
    cv_policy_destroy(&p);
    p = cv_policy_parse("t", "[fields]\nKind = drop\n", &problems);
    CHECK_INT(problems, 1);
    cv_policy_destroy(&p);
    p = cv_policy_parse("t", "[fields]\ndefault string = drop\n", &problems);
    CHECK_INT(problems, 1);
    cv_policy_destroy(&p);
}

TEST(typed_defaults_seal_strings_and_keep_numbers)
{
    cv_keyring *kr = cvt_keyring("keyring");
    cv_policy *p = cv_policy_parse("t", "[fields]\ndefault = encrypt\n"
                                   "default number = keep\ndefault boolean = keep\n"
                                   "**.user_id = hash user\n**.os = keep\n", NULL);
    const char *ev = "{\"id\":\"e1\",\"user_id\":\"u\",\"detail\":\"free text\","
                     "\"n\":1.50,\"ok\":true,\"none\":null,\"list\":[\"a\",2],"
                     "\"deviceInfo\":{\"OS\":\"linux\",\"name\":\"x\"}}";
    char err[256], *out = NULL;
    size_t len = 0, cap = 0;
    CHECK_INT(cv_policy_apply_text(p, kr, NULL, ev, strlen(ev), NULL, &out, &len,
                                   &cap, err, sizeof err), 0);
    CHECK(strstr(out, "\"detail\":\"enc:") != NULL);
    CHECK(strstr(out, "\"n\":1.50,\"ok\":true,") != NULL);
    CHECK(strstr(out, "\"list\":[\"enc:") != NULL && strstr(out, ",2]") != NULL);
    CHECK(strstr(out, "\"OS\":\"linux\"") != NULL);
    CHECK(strstr(out, "\"name\":\"enc:") != NULL);
    CHECK(strstr(out, "free text") == NULL);
    /* the tree walk agrees */
    json_t *j = cvt_json(ev);
    CHECK_INT(cv_policy_apply(p, kr, NULL, j, err, sizeof err), 0);
    CHECK(json_is_string(json_object_get(j, "detail")) &&
          !strncmp(json_string_value(json_object_get(j, "detail")), "enc:", 4));
    CHECK(json_is_real(json_object_get(j, "n")));
    CHECK(json_is_true(json_object_get(j, "ok")));
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "deviceInfo"), "OS")),
              "linux");
    json_decref(j);
    free(out);
    cv_policy_destroy(&p);
    /* without typed defaults, "default" covers every leaf as before */
    p = cv_policy_parse("t", "[fields]\ndefault = drop\nuser_id = keep\n", NULL);
    out = NULL, len = cap = 0;
    CHECK_INT(cv_policy_apply_text(p, kr, NULL, ev, strlen(ev), NULL, &out, &len,
                                   &cap, err, sizeof err), 0);
    CHECK_STR(out, "{\"id\":\"e1\",\"user_id\":\"u\",\"list\":[],\"deviceInfo\":{}}");
    free(out);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}
