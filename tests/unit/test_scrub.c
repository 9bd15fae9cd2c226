/* test_scrub.c - the scrub operators, the shipped scrub rules on a
 * typical event, idempotence, rule errors, scrubbing on arrival, and the
 * conditional update store makes (a rectification or erasure between
 * scrub's read and its write wins), against real SQLite files. */
#include "fixtures.h"
#include "harness.h"

#include "crypto/fieldcrypt.h"
#include "ops/maint.h"
#include "privacy/policy.h"
#include "ops/scrub.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *at(json_t *o, const char *path)
{
    char *copy = cv_strdup(path), *save = NULL;
    for (char *k = strtok_r(copy, ".", &save); k && o;
         k = strtok_r(NULL, ".", &save))
        o = json_object_get(o, k);
    free(copy);
    return o;
}

static const char *str(json_t *o, const char *path)
{
    return json_string_value(at(o, path));
}

static const char operators_policy[] =
    "[fields]\n"
    "user_id = keep\n"
    "**.secret = encrypt\n"
    "**.sealed_keep = encrypt\n"
    "[scrub fields]\n"
    "ts = round\n"
    "**.email = hash email\n"
    "**.loc = generalise\n"
    "**.loc_city = generalise city\n"
    "**.loc_country = generalise country\n"
    "**.when = round\n"
    "**.when_s = round\n"
    "**.gone = drop\n"
    "**.card = mask\n"
    "**.name = anonymise\n"
    "**.kept = keep\n"
    "**.secret = hash secret\n"
    "**.sealed_keep = encrypt\n"
    "**.plain = encrypt\n"
    "[scrub fields audit]\n"
    "**.extra = drop\n";

static const char operators_event[] =
    "{\"id\":\"e1\",\"user_id\":\"u\",\"kind\":\"interaction\","
    "\"ts\":\"2026-01-01T10:23:45Z\",\"email\":\"a@example.com\","
    "\"loc\":{\"city\":\"Paris\",\"region\":\"IDF\",\"country\":\"FR\","
    "\"lat\":48.8566,\"lon\":2.3522},"
    "\"loc_city\":{\"city\":\"Paris\",\"region\":\"IDF\",\"country\":\"FR\","
    "\"lat\":48.8566,\"lon\":2.3522},"
    "\"loc_country\":\"1 rue de Rivoli, Paris, France\","
    "\"when\":\"2026-01-01T10:23:45.5Z\",\"when_s\":1767263025,"
    "\"gone\":{\"a\":1},\"card\":\"4111111111111111\","
    "\"name\":{\"first\":\"Ann\"},\"kept\":\"k\",\"extra\":\"x\","
    "\"secret\":\"s3cret\",\"sealed_keep\":\"sk\",\"plain\":\"p\","
    "\"list\":[{\"email\":\"b@example.com\"},{\"email\":\"c@example.com\"}]}";

typedef struct {
    int n;
    char paths[32][64];
} notes;

static void note(void *ctx, const char *path, cv_op op)
{
    notes *n = ctx;
    if (n->n < 32)
        snprintf(n->paths[n->n++], 64, "%s=%s", path, cv_policy_op_name(op));
}

static bool noted(const notes *n, const char *what)
{
    for (int i = 0; i < n->n; i++)
        if (strcmp(n->paths[i], what) == 0)
            return true;
    return false;
}

TEST(scrub_operators_each_do_what_they_say)
{
    cv_keyring *kr = cvt_keyring("keys");
    cv_policy *p = cvt_policy(operators_policy);
    char err[256];
    json_t *ev = cvt_json(operators_event);
    CHECK_INT(cv_policy_apply(p, kr, NULL, ev, err, sizeof err), 0);
    CHECK(cv_fieldcrypt_is_envelope(str(ev, "secret")));
    char *sealed_keep = cv_strdup(str(ev, "sealed_keep"));
    notes n = {0};
    int changed = cv_policy_scrub(p, kr, "interaction", ev, note, &n, err,
                                  sizeof err);
    CHECK(changed > 0);
    CHECK_INT(changed, n.n);
    CHECK_STR(str(ev, "ts"), "2026-01-01T10:00:00.000Z");
    CHECK(cv_fieldcrypt_is_pseudonym(str(ev, "email")));
    CHECK(cv_fieldcrypt_is_pseudonym(json_string_value(
        json_object_get(json_array_get(at(ev, "list"), 1), "email"))));
    /* generalise: city, region, country, coordinates to 1 place */
    CHECK_STR(str(ev, "loc.region"), "IDF");
    CHECK(json_real_value(at(ev, "loc.lat")) == 48.9);
    /* generalise city: city and country, no coordinates */
    CHECK_STR(str(ev, "loc_city.city"), "Paris");
    CHECK_STR(str(ev, "loc_city.country"), "FR");
    CHECK(at(ev, "loc_city.region") == NULL);
    CHECK(at(ev, "loc_city.lat") == NULL);
    CHECK_STR(str(ev, "loc_country"), "France");
    CHECK_STR(str(ev, "when"), "2026-01-01T10:00:00.000Z");
    CHECK_INT(json_integer_value(at(ev, "when_s")), 1767261600);
    CHECK(at(ev, "gone") == NULL);
    CHECK_STR(str(ev, "card"), "************1111");
    CHECK_STR(str(ev, "name"), CV_ANONYMISED);
    CHECK_STR(str(ev, "kept"), "k");
    CHECK_STR(str(ev, "extra"), "x"); /* only audit rows lose it */
    /* a sealed value named by a rule other than keep or encrypt goes */
    CHECK(at(ev, "secret") == NULL);
    CHECK_STR(str(ev, "sealed_keep"), sealed_keep);
    CHECK(cv_fieldcrypt_is_envelope(str(ev, "plain")));
    CHECK(str(ev, "user_id") && strcmp(str(ev, "user_id"), "u") == 0);
    CHECK(noted(&n, "secret=hash"));
    CHECK(noted(&n, "gone=drop"));
    CHECK(noted(&n, "list.email=hash"));
    CHECK(!noted(&n, "kept=keep"));
    CHECK(!noted(&n, "sealed_keep=encrypt"));

    /* a kind's own rules come first, the rules for every kind still apply */
    json_t *au = cvt_json(operators_event);
    json_object_set_new(au, "kind", json_string("audit"));
    CHECK(cv_policy_scrub(p, kr, "audit", au, NULL, NULL, err, sizeof err) > 0);
    CHECK(at(au, "extra") == NULL);
    CHECK(at(au, "gone") == NULL);

    /* twice changes nothing */
    char *once = json_dumps(ev, JSON_COMPACT);
    CHECK_INT(cv_policy_scrub(p, kr, "interaction", ev, NULL, NULL, err,
                              sizeof err), 0);
    char *twice = json_dumps(ev, JSON_COMPACT);
    CHECK_STR(twice, once);
    free(once);
    free(twice);
    free(sealed_keep);
    json_decref(au);
    json_decref(ev);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}

TEST(shipped_scrub_rules_on_a_typical_event)
{
    cv_keyring *kr = cvt_keyring("keys");
    cv_policy *p = cvt_policy(cv_default_policy_text);
    char err[256];
    json_t *ev = cvt_json(cvt_typical_event);
    CHECK_INT(cv_policy_apply(p, kr, NULL, ev, err, sizeof err), 0);
    char *email = cv_strdup(str(ev, "email"));
    CHECK(cv_policy_scrub(p, kr, "interaction", ev, NULL, NULL, err,
                          sizeof err) > 0);
    /* a pseudonym from arrival stays: counts per person still join up */
    CHECK_STR(str(ev, "email"), email);
    CHECK_STR(str(ev, "ts"), "2026-11-22T10:04:05.123Z"); /* the row's own */
    CHECK_STR(str(ev, "location.city"), "Paris");
    CHECK_STR(str(ev, "location.country"), "FR");
    CHECK(at(ev, "location.lat") == NULL);
    CHECK(at(ev, "location.street") == NULL);
    CHECK(at(ev, "device.name") == NULL);
    CHECK(cv_fieldcrypt_is_pseudonym(str(ev, "device.device_id")));
    CHECK_STR(str(ev, "device.os"), "linux");
    CHECK(at(ev, "payload.search.query") == NULL); /* was sealed */
    CHECK(cv_fieldcrypt_is_pseudonym(str(ev, "payload.contact.email")));
    CHECK(json_object_get(json_array_get(at(ev, "results"), 0), "text") == NULL);
    char *text = json_dumps(ev, JSON_COMPACT);
    CHECK(strstr(text, "enc:") == NULL); /* nothing sealed is left */
    CHECK_INT(cv_policy_scrub(p, kr, "interaction", ev, NULL, NULL, err,
                              sizeof err), 0);
    free(text);
    free(email);
    json_decref(ev);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}

static int problems_of(const char *text)
{
    int problems = 0;
    cv_policy *p = cv_policy_parse("test", text, &problems);
    cv_policy_destroy(&p);
    return problems;
}

TEST(bad_scrub_rules_are_problems)
{
    CHECK_INT(problems_of("[scrub fields]\n**.x = vanish\n"), 1);
    CHECK_INT(problems_of("[scrub fields]\n**..x = drop\n"), 1);
    CHECK_INT(problems_of("[scrub fields]\na.b* = drop\n"), 1);
    CHECK_INT(problems_of("[scrub fields]\nuser_id = hash u\n"), 1);
    CHECK_INT(problems_of("[scrub fields]\nts = drop\n"), 1);
    CHECK_INT(problems_of("[scrub fields]\nkind = drop\n"), 1);
    CHECK_INT(problems_of("[scrub fields]\n**.l = generalise street\n"), 1);
    CHECK_INT(problems_of("[scrub fields Bad Kind]\n**.x = drop\n"), 1);
    CHECK_INT(problems_of("[scrub fields trace]\n**.x = drop\n**.x = keep\n"), 1);
    CHECK_INT(problems_of("[scrub fields trace]\n**.x = drop\n"
                          "[scrub fields]\n**.x = keep\nts = round\n"), 0);
}

/* ---- store: on arrival, and the conditional update ---------------------- */

static const char store_policy[] =
    "[retention]\nother = 30d\naudit = 365d\n"
    "[scrub]\nother = 90d\n"
    "[fields]\nuser_id = keep\n"
    "[scrub fields]\n**.custom = drop\n**.email = hash email\n";

static json_t *maint(cv_writer *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_error_t e;
    json_t *req = json_vpack_ex(&e, 0, fmt, ap);
    va_end(ap);
    if (!req)
        cvt_fail(__FILE__, __LINE__, "bad request: %s", e.text);
    json_t *r = cv_maint_do(m, req);
    json_decref(req);
    return r;
}

/* What scrub sends for the row id: [seq, the checksum it read, id, kind,
 * user, ts, whether ts moved, fields, the scrubbed body]. */
static json_t *scrub_item(cvt_store *f, const char *id)
{
    sqlite3_stmt *st;
    char *sql = cv_fmt("SELECT e.seq, e.kind, e.body, hex(e.checksum), e.ts,"
                       " u.user_id FROM events e JOIN users u USING(uid)"
                       " WHERE e.id = '%s'", id);
    json_t *item = NULL;
    if (sqlite3_prepare_v2(cv_db_handle(f->db), sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        char err[256];
        cv_policy_scrub_buf out = {0};
        int64_t ts = sqlite3_column_int64(st, 4), old_ts = ts;
        const char *kind = (const char *)sqlite3_column_text(st, 1);
        const char *body = (const char *)sqlite3_column_text(st, 2);
        int n = cv_policy_scrub_body(f->pol, f->kr, kind, body, strlen(body), &out,
                                     &ts, NULL, NULL, err, sizeof err);
        item = json_pack("[I, s, s, s, s, I, b, i]", sqlite3_column_int64(st, 0),
                         (const char *)sqlite3_column_text(st, 3), id, kind,
                         (const char *)sqlite3_column_text(st, 5), ts,
                         ts != old_ts, n);
        if (n > 0)
            json_array_append_new(item, json_string(out.text));
        free(out.text);
    }
    sqlite3_finalize(st);
    free(sql);
    return item;
}

static char *body_of(cvt_store *f, const char *id)
{
    sqlite3_stmt *st;
    char *sql = cv_fmt("SELECT body FROM events WHERE id = '%s'", id);
    char *body = NULL;
    if (sqlite3_prepare_v2(cv_db_handle(f->db), sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        body = cv_strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    free(sql);
    return body;
}

/* A store holding the one row event, stored at stored_at; the clock then
 * moves on to 2026-06-01, when the row is past its scrub age. */
static int one_aged_row(cvt_store *f, const char *policy,
                        const char *stored_at, const char *event)
{
    char err[256];
    setenv("CTXVAULT_NOW", stored_at, 1);
    if (cvt_store_setup(f, policy) < 0 || cvt_store_add(f, event) != 1 ||
        cv_store_commit(f->st, err, sizeof err) < 0)
        return -1;
    setenv("CTXVAULT_NOW", "2026-06-01T00:00:00Z", 1);
    return 0;
}

TEST(a_rectification_between_read_and_write_wins_and_is_scrubbed_later)
{
    cvt_store f;
    CHECK_INT(one_aged_row(&f, store_policy, "2026-01-01T00:00:00Z",
                           "{\"id\":\"a1\",\"kind\":\"audit\",\"user_id\":\"u\","
                           "\"ts\":\"2026-01-01T00:00:00Z\",\"page\":\"/old\","
                           "\"email\":\"u@example.com\",\"custom\":{\"c\":1}}"), 0);
    cv_writer m = {.db = f.db, .kr = f.kr, .pol = f.pol, .store = f.st};

    json_t *item = scrub_item(&f, "a1"); /* scrub reads */
    CHECK(item != NULL);
    json_t *r = maint(&m, "{s:s, s:s, s:{s:s}, s:s}", "op", "rectify", "id",
                      "a1", "set", "page", "/new", "actor", "test");
    CHECK(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    r = maint(&m, "{s:s, s:[O], s:s}", "op", "scrub", "rows", item, "actor",
              "test"); /* scrub writes: refused */
    CHECK(json_is_true(json_object_get(r, "ok")));
    CHECK_INT(json_integer_value(json_object_get(r, "scrubbed")), 0);
    CHECK_INT(json_array_size(json_object_get(r, "conflicts")), 1);
    json_decref(r);
    json_decref(item);
    char *body = body_of(&f, "a1");
    CHECK(strstr(body, "/new") && strstr(body, "custom"));
    free(body);
    CHECK_INT(cvt_q(&f, "SELECT scrubbed_at FROM events WHERE id='a1'"), -1);

    item = scrub_item(&f, "a1"); /* read again: applied */
    r = maint(&m, "{s:s, s:[O], s:s}", "op", "scrub", "rows", item, "actor",
              "test");
    CHECK_INT(json_integer_value(json_object_get(r, "scrubbed")), 1);
    CHECK_INT(json_array_size(json_object_get(r, "conflicts")), 0);
    json_decref(r);
    body = body_of(&f, "a1");
    CHECK(strstr(body, "/new") && !strstr(body, "custom") &&
          !strstr(body, "u@example.com"));
    free(body);
    CHECK(cvt_q(&f, "SELECT scrubbed_at FROM events WHERE id='a1'") > 0);
    CHECK_INT(cvt_q(&f, "SELECT count(*) FROM audit WHERE action='scrub'"), 1);
    int64_t rows;
    CHECK_INT(cv_db_check_checksums(f.db, f.kr, 10, &rows), 0);

    /* the same write again: the row is scrubbed, so a conflict */
    r = maint(&m, "{s:s, s:[O], s:s}", "op", "scrub", "rows", item, "actor",
              "test");
    CHECK_INT(json_integer_value(json_object_get(r, "scrubbed")), 0);
    json_decref(r);
    json_decref(item);

    /* a later correction of a scrubbed row is scrubbed too */
    r = maint(&m, "{s:s, s:s, s:{s:{s:i}, s:s}, s:s}", "op", "rectify", "id",
              "a1", "set", "custom", "x", 1, "email", "v@example.com",
              "actor", "test");
    CHECK(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    body = body_of(&f, "a1");
    CHECK(!strstr(body, "custom") && !strstr(body, "v@example.com"));
    free(body);
    CHECK_INT(cv_db_check_checksums(f.db, f.kr, 10, &rows), 0);
    cvt_store_teardown(&f);
}

TEST(an_erasure_between_read_and_write_wins)
{
    cvt_store f;
    CHECK_INT(one_aged_row(&f, store_policy, "2026-01-01T00:00:00Z",
                           "{\"id\":\"a1\",\"kind\":\"audit\",\"user_id\":\"u\","
                           "\"ts\":\"2026-01-01T00:00:00Z\",\"custom\":1}"), 0);
    cv_writer m = {.db = f.db, .kr = f.kr, .pol = f.pol, .store = f.st};
    json_t *item = scrub_item(&f, "a1");
    json_t *r = maint(&m, "{s:s, s:s, s:s}", "op", "erase", "user", "u",
                      "actor", "test");
    CHECK(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    r = maint(&m, "{s:s, s:[O], s:s}", "op", "scrub", "rows", item, "actor",
              "test");
    CHECK_INT(json_integer_value(json_object_get(r, "scrubbed")), 0);
    CHECK_INT(json_array_size(json_object_get(r, "conflicts")), 1);
    json_decref(r);
    json_decref(item);
    CHECK_INT(cvt_q(&f, "SELECT count(*) FROM events"), 0);
    cvt_store_teardown(&f);
}

TEST(an_anonymous_users_rows_are_scrubbed_on_arrival)
{
    cvt_store f;
    char err[256];
    setenv("CTXVAULT_NOW", "2026-01-01T00:00:00Z", 1);
    CHECK_INT(cvt_store_setup(&f, store_policy), 0);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"p\",\"kind\":\"profile\",\"user_id\":\"w\","
                            "\"ts\":\"2026-01-01T00:00:00Z\",\"privacy_level\":\"anonymous\"}"), 1);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"w1\",\"kind\":\"audit\",\"user_id\":\"w\","
                            "\"ts\":\"2026-01-01T00:00:00Z\",\"custom\":\"secret-ish\","
                            "\"email\":\"w@example.com\"}"), 1);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"x1\",\"kind\":\"audit\",\"user_id\":\"x\","
                            "\"ts\":\"2026-01-01T00:00:00Z\",\"custom\":\"kept\"}"), 1);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    /* w's audit row is anonymised too: under a pseudonym of the day, with
     * an id of its own (anon.h) */
    CHECK_INT(cvt_q(&f, "SELECT count(*) FROM events WHERE id='w1'"), 0);
    char *body = body_of(&f, "' OR uid IN (SELECT uid FROM users WHERE user_id LIKE 'anon:%') OR id = '");
    CHECK(body != NULL);
    CHECK(body && !strstr(body, "custom") && !strstr(body, "w@example.com") &&
          strstr(body, "\"user_id\":\"anon:20260101:"));
    free(body);
    CHECK(cvt_q(&f, "SELECT scrubbed_at FROM events e JOIN users u USING(uid) "
                    "WHERE u.user_id LIKE 'anon:%'") > 0);
    CHECK_INT(cvt_q(&f, "SELECT scrubbed_at FROM events WHERE id='x1'"), -1);
    body = body_of(&f, "x1");
    CHECK(strstr(body, "kept") != NULL);
    free(body);
    int64_t rows;
    CHECK_INT(cv_db_check_checksums(f.db, f.kr, 10, &rows), 0);
    CHECK_INT(cv_store_stats_get(f.st)->scrubbed_on_arrival, 2);
    cvt_store_teardown(&f);
}

TEST(a_ts_rule_takes_the_rows_time_and_schedule_to_the_hour)
{
    static const char policy[] =
        "[retention]\nother = 30d\naudit = 365d\n[scrub]\nother = 90d\n"
        "[fields]\nuser_id = keep\n[scrub fields]\nts = round\n";
    cvt_store f;
    CHECK_INT(one_aged_row(&f, policy, "2026-01-01T10:30:15.250Z",
                           "{\"id\":\"a1\",\"kind\":\"audit\",\"user_id\":\"u\","
                           "\"ts\":\"2026-01-01T10:23:45.678Z\"}"), 0);
    CHECK(cvt_q(&f, "SELECT ts % 3600000 FROM events") != 0);
    cv_writer m = {.db = f.db, .kr = f.kr, .pol = f.pol, .store = f.st};
    json_t *item = scrub_item(&f, "a1");
    json_t *r = maint(&m, "{s:s, s:[O], s:s}", "op", "scrub", "rows", item,
                      "actor", "test");
    CHECK_INT(json_integer_value(json_object_get(r, "scrubbed")), 1);
    json_decref(r);
    json_decref(item);
    CHECK_INT(cvt_q(&f, "SELECT ts FROM events"), 1767261600000LL);
    CHECK_INT(cvt_q(&f, "SELECT created_at FROM events"), 1767261600000LL);
    CHECK_INT(cvt_q(&f, "SELECT expires_at % 3600000 FROM events"), 0);
    CHECK_INT(cvt_q(&f, "SELECT scrub_after % 3600000 FROM events"), 0);
    CHECK(cvt_q(&f, "SELECT expires_at FROM events") <= 1767261600000LL + 365 * 86400000LL);
    char *body = body_of(&f, "a1");
    CHECK(strstr(body, "\"ts\":\"2026-01-01T10:00:00.000Z\"") != NULL);
    free(body);
    int64_t rows;
    CHECK_INT(cv_db_check_checksums(f.db, f.kr, 10, &rows), 0);
    cvt_store_teardown(&f);
}
