/* test_syncstore.c - sync records, their versions and views
 * (lib/storage/syncstore.h), against real SQLite files: each instance (device or
 * relay) is a store of its own in a subdirectory of the test's directory,
 * and versions go between them as the wire JSON of changes() and apply(). */
#include "fixtures.h"
#include "harness.h"

#include "storage/db.h"
#include "privacy/merge.h"
#include "storage/syncstore.h"
#include "base/util.h"
#include "storage/vclock.h"

#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 (1796000000000LL)

static const unsigned char KEY[CV_SYNC_KEY_BYTES] = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const unsigned char OTHER_KEY[CV_SYNC_KEY_BYTES] = {
    9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
    9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};

/* j as sorted compact text, in a static buffer (one of 4). */
static const char *json_dumps_k(const json_t *j)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    b[0] = '\0';
    if (j) {
        char *t = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        snprintf(b, 512, "%s", t);
        free(t);
    }
    return b;
}

/* --- instances ----------------------------------------------------------- */

typedef struct {
    cvt_store f;
    cv_syncstore *s;
} inst;

/* A device (key set) or a relay (device and key NULL) in its own dir;
 * rules NULL: the policy's. */
static void inst_open(inst *i, const char *dir, const char *device,
                      const unsigned char *key, const cv_merge_rules *rules)
{
    char *path = cv_fmt("%s/%s", cvt_tmpdir(), dir);
    if (cvt_store_setup_in(&i->f, path, NULL) < 0)
        cvt_fail(__FILE__, __LINE__, "cannot set up the store in %s", path);
    free(path);
    /* as store does: the policy's [merge] rules (all lww here) */
    i->s = cv_syncstore_new(i->f.db, device, key,
                            rules ? rules : cv_policy_merge_rules(i->f.pol));
}

static void inst_close(inst *i)
{
    cv_syncstore_destroy(&i->s);
    cvt_store_teardown(&i->f);
}

static void begin(inst *i)
{
    if (cv_db_begin(i->f.db) != 0)
        cvt_fail(__FILE__, __LINE__, "begin: %s", cv_db_errmsg(i->f.db));
}

static void commit(inst *i)
{
    if (cv_db_commit(i->f.db) != 0)
        cvt_fail(__FILE__, __LINE__, "commit: %s", cv_db_errmsg(i->f.db));
}

/* A local change (fields_text NULL: a deletion) in its own transaction. */
static int local(inst *i, int64_t uid, const char *user, const char *name,
                 const char *fields_text, int64_t now)
{
    char err[256] = "";
    json_t *fields = fields_text ? cvt_json(fields_text) : NULL;
    begin(i);
    int rc = cv_syncstore_local_change(i->s, uid, user, name, fields, now,
                                       err, sizeof err);
    if (rc < 0)
        cvt_fail(__FILE__, __LINE__, "local change: %s", err);
    commit(i);
    json_decref(fields);
    return rc;
}

/* changes() with knowledge given as text ("{}": none). */
static json_t *changes(inst *i, const char *ktext, const char *after_dev,
                       int64_t after_n, int limit)
{
    cv_vclock k;
    char err[256] = "";
    if (cv_vclock_parse(&k, ktext, strlen(ktext), err, sizeof err) < 0)
        cvt_fail(__FILE__, __LINE__, "bad knowledge %s: %s", ktext, err);
    json_t *r = cv_syncstore_changes(i->s, &k, after_dev, after_n, limit, err,
                                     sizeof err);
    if (!r)
        cvt_fail(__FILE__, __LINE__, "changes: %s", err);
    return r;
}

/* --- a view fn that records what it is given ----------------------------- */

typedef struct {
    int calls;
    int deletes;
    bool deleted;
    int64_t uid;           /* the uid it was handed */
    int64_t ret;           /* what it returns: >= 0 a uid, -2 nothing */
    char rid[CV_SYNC_RID_HEX + 1];
    char user[64], name[64], view_id[64];
    char fields[1024];     /* sorted compact JSON, "" when NULL */
    char unsettled[256];   /* likewise */
    int64_t ts;
} recorder;

static void dump(const json_t *j, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!j)
        return;
    char *t = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    snprintf(buf, len, "%s", t);
    free(t);
}

static int64_t record_view(void *arg, const cv_sync_view *v, char *err,
                           size_t errlen)
{
    (void)err, (void)errlen;
    recorder *r = arg;
    r->calls++;
    r->deleted = v->deleted;
    if (v->deleted)
        r->deletes++;
    r->uid = v->uid;
    snprintf(r->rid, sizeof r->rid, "%s", v->rid);
    snprintf(r->user, sizeof r->user, "%s", v->user ? v->user : "(null)");
    snprintf(r->name, sizeof r->name, "%s", v->name ? v->name : "(null)");
    snprintf(r->view_id, sizeof r->view_id, "%s", v->view_id);
    dump(v->fields, r->fields, sizeof r->fields);
    dump(v->unsettled, r->unsettled, sizeof r->unsettled);
    r->ts = v->ts;
    return r->ret;
}

/* apply() in its own transaction; the stats back in *st (zeroed first). */
static void apply(inst *i, const json_t *versions, const json_t *knowledge,
                  recorder *r, cv_sync_apply_stats *st, json_t *rejections)
{
    char err[256] = "";
    memset(st, 0, sizeof *st);
    begin(i);
    if (cv_syncstore_apply(i->s, versions, knowledge, r ? record_view : NULL,
                           r, st, rejections, err, sizeof err) < 0)
        cvt_fail(__FILE__, __LINE__, "apply: %s", err);
    commit(i);
}

/* A full pull: everything from has that to lacks, every page, then to's
 * knowledge grows by from's. */
static void pull(inst *to, inst *from, recorder *r, cv_sync_apply_stats *st)
{
    json_t *k = cv_syncstore_knowledge(to->s);
    char *ktext = json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS);
    json_t *page = changes(from, ktext, NULL, 0, 1000);
    if (!json_is_null(json_object_get(page, "next")))
        cvt_fail(__FILE__, __LINE__, "more than one page");
    apply(to, json_object_get(page, "versions"),
          json_object_get(page, "knowledge"), r, st, NULL);
    json_decref(page);
    free(ktext);
    json_decref(k);
}

/* The state's checksum (a static buffer per call site's slot). */
static const char *checksum(inst *i, int slot)
{
    static char sums[4][65];
    char err[256] = "";
    json_t *st = cv_syncstore_state(i->s, true, err, sizeof err);
    if (!st)
        cvt_fail(__FILE__, __LINE__, "state: %s", err);
    snprintf(sums[slot], sizeof sums[slot], "%s",
             json_string_value(json_object_get(st, "checksum")));
    json_decref(st);
    return sums[slot];
}

static int64_t state_int(inst *i, const char *key)
{
    char err[256] = "";
    json_t *st = cv_syncstore_state(i->s, false, err, sizeof err);
    if (!st)
        cvt_fail(__FILE__, __LINE__, "state: %s", err);
    int64_t v = json_integer_value(json_object_get(st, key));
    json_decref(st);
    return v;
}

/* The first column of the first row of sql as text ("" for none). */
static const char *qs(inst *i, const char *sql)
{
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ % 8];
    b[0] = '\0';
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(i->f.db), sql, -1, &st, NULL) != SQLITE_OK)
        cvt_fail(__FILE__, __LINE__, "bad SQL: %s", sql);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(b, 1024, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return b;
}

/* The current version vectors, sorted, joined by ' '. */
static const char *vvs(inst *i)
{
    return qs(i, "SELECT group_concat(vv, ' ') FROM "
                 "(SELECT vv FROM sync_versions ORDER BY vv)");
}

static const char *knowledge_text(inst *i, int slot)
{
    static char bufs[4][256];
    json_t *k = cv_syncstore_knowledge(i->s);
    dump(k, bufs[slot], sizeof bufs[slot]);
    json_decref(k);
    return bufs[slot];
}

static cv_merge_rules *test_rules(void)
{
    char err[256];
    cv_merge_rules *r = cv_merge_rules_new();
    if (cv_merge_rules_add(r, "recentSearches", "union 3", err, sizeof err) < 0 ||
        cv_merge_rules_add(r, "count", "max", err, sizeof err) < 0 ||
        cv_merge_rules_add(r, "notes", "siblings", err, sizeof err) < 0 ||
        cv_merge_rules_add(r, "default", "lww", err, sizeof err) < 0)
        cvt_fail(__FILE__, __LINE__, "rules: %s", err);
    return r;
}

/* --- 1. local changes --------------------------------------------------- */

TEST(syncstore_local_change_makes_one_version_per_record)
{
    inst a;
    inst_open(&a, "a", "a", KEY, NULL);
    CHECK(!cv_syncstore_is_relay(a.s));
    char rid[CV_SYNC_RID_HEX + 1], rid2[CV_SYNC_RID_HEX + 1];
    cv_syncstore_rid(a.s, "alice", "prefs", rid);
    CHECK_INT(strlen(rid), CV_SYNC_RID_HEX);
    cv_syncstore_rid(a.s, "alice", "prefsx", rid2);
    CHECK(strcmp(rid, rid2) != 0);
    cv_syncstore_rid(a.s, "alicep", "refs", rid2); /* no ambiguity */
    CHECK(strcmp(rid, rid2) != 0);

    CHECK_INT(local(&a, 1, "alice", "prefs", "{\"theme\":\"dark\",\"n\":1}", T0), 1);
    CHECK_INT(cvt_q(&a.f, "SELECT count(*) FROM sync_versions"), 1);
    CHECK_STR(vvs(&a), "{\"a\":1}");
    CHECK_STR(qs(&a, "SELECT rid FROM sync_versions"), rid);
    CHECK_STR(qs(&a, "SELECT dev || ':' || n || ':' || deleted FROM sync_versions"),
              "a:1:0");
    CHECK_STR(knowledge_text(&a, 0), "{\"a\":1}");
    CHECK_INT(cvt_q(&a.f, "SELECT n FROM sync_knowledge WHERE dev = 'a'"), 1);
    CHECK_INT(cvt_q(&a.f, "SELECT uid FROM sync_local"), 1);
    CHECK_STR(qs(&a, "SELECT rid FROM sync_local"), rid);
    CHECK_STR(qs(&a, "SELECT name FROM sync_local"), "prefs");
    /* the payload is sealed: no field value shows in the blob */
    CHECK_INT(cvt_q(&a.f, "SELECT instr(payload, 'dark') FROM sync_versions"), 0);
    CHECK_INT(cvt_q(&a.f, "SELECT instr(payload, 'alice') FROM sync_versions"), 0);

    /* the same fields again (keys in another order): no version */
    CHECK_INT(local(&a, 1, "alice", "prefs", "{\"n\":1,\"theme\":\"dark\"}", T0 + 5), 0);
    CHECK_INT(cvt_q(&a.f, "SELECT count(*) FROM sync_versions"), 1);
    CHECK_STR(knowledge_text(&a, 0), "{\"a\":1}");

    /* a field changed: {"a":2} replaces {"a":1} */
    int64_t hlc1 = cvt_q(&a.f, "SELECT hlc FROM sync_versions");
    CHECK_INT(local(&a, 1, "alice", "prefs", "{\"theme\":\"light\",\"n\":1}", T0 + 10), 1);
    CHECK_INT(cvt_q(&a.f, "SELECT count(*) FROM sync_versions"), 1);
    CHECK_STR(vvs(&a), "{\"a\":2}");
    CHECK_STR(qs(&a, "SELECT dev || ':' || n FROM sync_versions"), "a:2");
    CHECK(cvt_q(&a.f, "SELECT hlc FROM sync_versions") > hlc1);
    CHECK_STR(knowledge_text(&a, 0), "{\"a\":2}");

    /* another record: a row of its own, the device's counter goes on */
    CHECK_INT(local(&a, 1, "alice", "draft", "{\"x\":1}", T0 + 20), 1);
    CHECK_INT(cvt_q(&a.f, "SELECT count(*) FROM sync_versions"), 2);
    CHECK_INT(cvt_q(&a.f, "SELECT count(DISTINCT rid) FROM sync_versions"), 2);
    CHECK_STR(vvs(&a), "{\"a\":2} {\"a\":3}");
    CHECK_INT(state_int(&a, "records"), 2);
    CHECK_INT(state_int(&a, "versions"), 2);
    CHECK_INT(state_int(&a, "tombstones"), 0);
    CHECK_INT(state_int(&a, "conflicts"), 0);
    inst_close(&a);
}

TEST(syncstore_a_relay_makes_no_local_change)
{
    inst r;
    inst_open(&r, "r", NULL, NULL, NULL);
    CHECK(cv_syncstore_is_relay(r.s));
    char err[256] = "";
    json_t *f = cvt_json("{\"x\":1}");
    begin(&r);
    CHECK_INT(cv_syncstore_local_change(r.s, 1, "alice", "prefs", f, T0, err,
                                        sizeof err), -1);
    commit(&r);
    CHECK(err[0] != '\0');
    CHECK_INT(cvt_q(&r.f, "SELECT count(*) FROM sync_versions"), 0);
    json_decref(f);
    inst_close(&r);
}

/* --- 2. changes() --------------------------------------------------------- */

TEST(syncstore_changes_follow_knowledge_and_pages)
{
    inst a;
    inst_open(&a, "a", "a", KEY, NULL);
    CHECK_INT(local(&a, 1, "alice", "one", "{\"v\":1}", T0), 1);
    CHECK_INT(local(&a, 1, "alice", "two", "{\"v\":2}", T0 + 1), 1);
    CHECK_INT(local(&a, 1, "alice", "three", "{\"v\":3}", T0 + 2), 1);

    json_t *all = changes(&a, "{}", NULL, 0, 100);
    json_t *vs = json_object_get(all, "versions");
    CHECK_INT(json_array_size(vs), 3);
    CHECK(json_is_null(json_object_get(all, "next")));
    CHECK_STR(json_dumps_k(json_object_get(all, "knowledge")), "{\"a\":3}");
    for (size_t k = 0; k < 3; k++) {
        json_t *v = json_array_get(vs, k);
        json_t *dot = json_object_get(v, "dot");
        CHECK_STR(json_string_value(json_array_get(dot, 0)), "a");
        CHECK_INT(json_integer_value(json_array_get(dot, 1)), (int64_t)k + 1);
        CHECK_INT(json_integer_value(json_object_get(json_object_get(v, "vv"), "a")),
                  (int64_t)k + 1);
        CHECK_INT(strlen(json_string_value(json_object_get(v, "rid"))), CV_SYNC_RID_HEX);
        CHECK(json_is_false(json_object_get(v, "deleted")));
        CHECK(strtoull(json_string_value(json_object_get(v, "hlc")), NULL, 10) > 0);
        CHECK(json_string_length(json_object_get(v, "payload")) > 0);
    }
    json_decref(all);

    /* knowledge {"a":2}: only the third; {"a":3}: none */
    json_t *some = changes(&a, "{\"a\":2}", NULL, 0, 100);
    CHECK_INT(json_array_size(json_object_get(some, "versions")), 1);
    CHECK_INT(json_integer_value(json_array_get(json_object_get(
        json_array_get(json_object_get(some, "versions"), 0), "dot"), 1)), 3);
    json_decref(some);
    json_t *none = changes(&a, "{\"a\":3}", NULL, 0, 100);
    CHECK_INT(json_array_size(json_object_get(none, "versions")), 0);
    CHECK(json_is_null(json_object_get(none, "next")));
    json_decref(none);
    /* another device's knowledge does not hide a's */
    json_t *other = changes(&a, "{\"b\":9}", NULL, 0, 100);
    CHECK_INT(json_array_size(json_object_get(other, "versions")), 3);
    json_decref(other);

    /* pages of one: each version once, then "next" null */
    int seen[4] = {0}, pages = 0;
    char after[CV_DEVICE_MAX + 1] = "";
    int64_t after_n = 0;
    for (;;) {
        json_t *p = changes(&a, "{}", after[0] ? after : NULL, after_n, 1);
        pages++;
        CHECK(pages <= 4);
        json_t *pv = json_object_get(p, "versions");
        CHECK(json_array_size(pv) <= 1);
        if (json_array_size(pv)) {
            int64_t n = json_integer_value(json_array_get(
                json_object_get(json_array_get(pv, 0), "dot"), 1));
            CHECK(n >= 1 && n <= 3);
            seen[n]++;
        }
        json_t *next = json_object_get(p, "next");
        if (json_is_null(next)) {
            json_decref(p);
            break;
        }
        CHECK_INT(json_array_size(pv), 1);
        CHECK(json_equal(next, json_object_get(json_array_get(pv, 0), "dot")));
        snprintf(after, sizeof after, "%s", json_string_value(json_array_get(next, 0)));
        after_n = json_integer_value(json_array_get(next, 1));
        json_decref(p);
    }
    CHECK_INT(seen[1], 1);
    CHECK_INT(seen[2], 1);
    CHECK_INT(seen[3], 1);
    inst_close(&a);
}

TEST(syncstore_changes_page_across_devices)
{
    inst a, b;
    inst_open(&a, "a", "a", KEY, NULL);
    inst_open(&b, "b", "b", KEY, NULL);
    recorder r = {.ret = 7};
    cv_sync_apply_stats st;
    CHECK_INT(local(&a, 1, "alice", "one", "{\"v\":1}", T0), 1);
    CHECK_INT(local(&a, 1, "alice", "two", "{\"v\":2}", T0 + 1), 1);
    pull(&b, &a, &r, &st);
    CHECK_INT(local(&b, 7, "bob", "x", "{\"v\":3}", T0 + 2), 1);
    CHECK_INT(local(&b, 7, "bob", "y", "{\"v\":4}", T0 + 3), 1);
    /* b holds a:1, a:2, b:1, b:2; pages of 3 then 1 */
    json_t *p1 = changes(&b, "{}", NULL, 0, 3);
    CHECK_INT(json_array_size(json_object_get(p1, "versions")), 3);
    json_t *next = json_object_get(p1, "next");
    CHECK_STR(json_string_value(json_array_get(next, 0)), "b");
    CHECK_INT(json_integer_value(json_array_get(next, 1)), 1);
    json_t *p2 = changes(&b, "{}", "b", 1, 3);
    CHECK_INT(json_array_size(json_object_get(p2, "versions")), 1);
    CHECK_INT(json_integer_value(json_array_get(json_object_get(
        json_array_get(json_object_get(p2, "versions"), 0), "dot"), 1)), 2);
    CHECK(json_is_null(json_object_get(p2, "next")));
    /* knowledge {"a":2} leaves b's two */
    json_t *p3 = changes(&b, "{\"a\":2}", NULL, 0, 10);
    CHECK_INT(json_array_size(json_object_get(p3, "versions")), 2);
    json_decref(p1);
    json_decref(p2);
    json_decref(p3);
    inst_close(&a);
    inst_close(&b);
}

/* --- 3. apply ------------------------------------------------------------ */

TEST(syncstore_apply_stores_versions_and_views)
{
    inst a, b, c;
    inst_open(&a, "a", "a", KEY, NULL);
    inst_open(&b, "b", "b", KEY, NULL);
    inst_open(&c, "c", "c", KEY, NULL);
    CHECK_INT(local(&a, 1, "alice", "prefs", "{\"theme\":\"dark\",\"n\":1}", T0), 1);
    json_t *page = changes(&a, "{}", NULL, 0, 100);
    json_t *vs = json_object_get(page, "versions");
    char rid[CV_SYNC_RID_HEX + 1];
    cv_syncstore_rid(b.s, "alice", "prefs", rid);

    recorder r = {.ret = 7};
    cv_sync_apply_stats st;
    apply(&b, vs, json_object_get(page, "knowledge"), &r, &st, NULL);
    CHECK_INT(st.applied, 1);
    CHECK_INT(st.seen, 0);
    CHECK_INT(st.rejected, 0);
    CHECK_INT(st.views, 1);
    CHECK_INT(st.conflicts, 0);
    CHECK_INT(r.calls, 1);
    CHECK(!r.deleted);
    CHECK_INT(r.uid, -1); /* not known here yet */
    CHECK_STR(r.rid, rid);
    CHECK_STR(r.user, "alice");
    CHECK_STR(r.name, "prefs");
    CHECK_STR(r.fields, "{\"n\":1,\"theme\":\"dark\"}");
    CHECK_STR(r.unsettled, "");
    CHECK_INT(strncmp(r.view_id, "sync-", 5), 0);
    CHECK_INT(strlen(r.view_id), 5 + 12 + 1 + 32);
    CHECK(r.ts >= T0 && r.ts < T0 + 1000);
    /* the newest change's time leads, so ids made in order sort in order */
    char ms[16];
    snprintf(ms, sizeof ms, "%012llx", (unsigned long long)r.ts);
    CHECK_INT(strncmp(r.view_id + 5, ms, 12), 0);
    char vid[64];
    snprintf(vid, sizeof vid, "%s", r.view_id);

    CHECK_INT(cvt_q(&b.f, "SELECT count(*) FROM sync_versions"), 1);
    CHECK_STR(vvs(&b), "{\"a\":1}");
    CHECK_STR(knowledge_text(&b, 0), "{\"a\":1}");
    /* the uid the view fn returned is remembered */
    CHECK_INT(cvt_q(&b.f, "SELECT uid FROM sync_local"), 7);
    CHECK_STR(qs(&b, "SELECT name FROM sync_local"), "prefs");
    CHECK_STR(checksum(&a, 0), checksum(&b, 1));

    /* the same versions again: seen, nothing stored, no view */
    apply(&b, vs, json_object_get(page, "knowledge"), &r, &st, NULL);
    CHECK_INT(st.applied, 0);
    CHECK_INT(st.seen, 1);
    CHECK_INT(st.views, 0);
    CHECK_INT(r.calls, 1);
    CHECK_INT(cvt_q(&b.f, "SELECT count(*) FROM sync_versions"), 1);

    /* another device's view of the same versions has the same id (the
     * stored context dedupes on it) */
    recorder rc = {.ret = 3};
    apply(&c, vs, NULL, &rc, &st, NULL);
    CHECK_INT(st.applied, 1);
    CHECK_INT(rc.calls, 1);
    CHECK_STR(rc.view_id, vid);
    CHECK_STR(rc.fields, r.fields);
    /* no knowledge given: none added */
    CHECK_STR(knowledge_text(&c, 0), "{}");

    /* a view fn that stores nothing (-2): the version is kept, no uid */
    inst d;
    inst_open(&d, "d", "d", KEY, NULL);
    recorder rd = {.ret = -2};
    apply(&d, vs, NULL, &rd, &st, NULL);
    CHECK_INT(st.applied, 1);
    CHECK_INT(st.views, 0); /* "records whose view was stored" */
    CHECK_INT(rd.calls, 1);
    CHECK_INT(cvt_q(&d.f, "SELECT count(*) FROM sync_versions"), 1);
    CHECK_INT(cvt_q(&d.f, "SELECT count(*) FROM sync_local"), 0);

    /* b's next change of the record carries a's counter */
    CHECK_INT(local(&b, 7, "alice", "prefs", "{\"theme\":\"dark\",\"n\":2}", T0 + 100), 1);
    CHECK_STR(vvs(&b), "{\"a\":1,\"b\":1}");
    json_decref(page);
    inst_close(&a);
    inst_close(&b);
    inst_close(&c);
    inst_close(&d);
}

/* --- 4. descends wins ---------------------------------------------------- */

TEST(syncstore_a_descendant_replaces_and_an_ancestor_is_dropped)
{
    inst a, b, c;
    inst_open(&a, "a", "a", KEY, NULL);
    inst_open(&b, "b", "b", KEY, NULL);
    inst_open(&c, "c", "c", KEY, NULL);
    CHECK_INT(local(&a, 1, "alice", "prefs", "{\"v\":1}", T0), 1);
    json_t *p1 = changes(&a, "{}", NULL, 0, 100);
    CHECK_INT(local(&a, 1, "alice", "prefs", "{\"v\":2}", T0 + 10), 1);
    json_t *p2 = changes(&a, "{\"a\":1}", NULL, 0, 100);
    json_t *v1 = json_object_get(p1, "versions");
    json_t *v2 = json_object_get(p2, "versions");
    CHECK_INT(json_array_size(v1), 1);
    CHECK_INT(json_array_size(v2), 1);

    recorder rb = {.ret = 7};
    cv_sync_apply_stats st;
    apply(&b, v1, NULL, &rb, &st, NULL);
    CHECK_INT(st.applied, 1);
    apply(&b, v2, NULL, &rb, &st, NULL);
    CHECK_INT(st.applied, 1);
    CHECK_INT(st.views, 1);
    CHECK_INT(rb.calls, 2);
    CHECK_STR(rb.fields, "{\"v\":2}");
    CHECK_INT(rb.uid, 7);
    CHECK_INT(cvt_q(&b.f, "SELECT count(*) FROM sync_versions"), 1);
    CHECK_STR(vvs(&b), "{\"a\":2}");

    recorder rc = {.ret = 8};
    apply(&c, v2, NULL, &rc, &st, NULL);
    CHECK_INT(st.applied, 1);
    apply(&c, v1, NULL, &rc, &st, NULL);
    CHECK_INT(st.applied, 0);
    CHECK_INT(st.seen, 1);
    CHECK_INT(st.views, 0);
    CHECK_INT(rc.calls, 1);
    CHECK_STR(rc.fields, "{\"v\":2}");
    CHECK_STR(vvs(&c), "{\"a\":2}");
    /* both in one batch, the old one last: the same */
    CHECK_STR(checksum(&b, 0), checksum(&c, 1));
    CHECK_STR(checksum(&a, 0), checksum(&c, 1));
    json_decref(p1);
    json_decref(p2);
    inst_close(&a);
    inst_close(&b);
    inst_close(&c);
}

/* --- 5. concurrent edits ------------------------------------------------- */

TEST(syncstore_concurrent_edits_become_siblings_merged_by_the_rules)
{
    cv_merge_rules *rules = test_rules();
    inst a, b;
    inst_open(&a, "a", "a", KEY, rules);
    inst_open(&b, "b", "b", KEY, rules);
    recorder ra = {.ret = 1}, rb = {.ret = 7};
    cv_sync_apply_stats st;

    /* the common version */
    CHECK_INT(local(&a, 1, "alice", "prefs",
                    "{\"recentSearches\":[\"x\"],\"count\":1,\"theme\":\"plain\","
                    "\"lang\":\"en\",\"notes\":\"n\"}", T0), 1);
    CHECK_INT(local(&a, 1, "alice", "draft", "{\"notes\":\"first\"}", T0), 1);
    pull(&b, &a, &rb, &st);
    CHECK_INT(st.applied, 2);
    CHECK_INT(st.views, 2);

    /* a, then b, change both records without hearing of each other */
    CHECK_INT(local(&a, 1, "alice", "prefs",
                    "{\"recentSearches\":[\"a1\",\"a2\",\"x\"],\"count\":9,"
                    "\"theme\":\"dark\",\"lang\":\"fr\",\"notes\":\"n\"}", T0 + 1000), 1);
    CHECK_INT(local(&a, 1, "alice", "draft", "{\"notes\":\"from a\"}", T0 + 1000), 1);
    CHECK_INT(local(&b, 7, "alice", "prefs",
                    "{\"recentSearches\":[\"b1\",\"x\"],\"count\":5,"
                    "\"theme\":\"blue\",\"lang\":\"en\",\"notes\":\"n\"}", T0 + 2000), 1);
    CHECK_INT(local(&b, 7, "alice", "draft", "{\"notes\":\"from b\"}", T0 + 2000), 1);
    CHECK_STR(vvs(&a), "{\"a\":3} {\"a\":4}");
    CHECK_STR(vvs(&b), "{\"a\":1,\"b\":1} {\"a\":2,\"b\":2}");

    /* exchange */
    pull(&b, &a, &rb, &st);
    CHECK_INT(st.applied, 2);
    CHECK_INT(st.views, 2);
    CHECK_INT(st.conflicts, 1);
    pull(&a, &b, &ra, &st);
    CHECK_INT(st.applied, 2);
    CHECK_INT(st.views, 2);
    CHECK_INT(st.conflicts, 1);

    CHECK_INT(cvt_q(&a.f, "SELECT count(*) FROM sync_versions"), 4);
    CHECK_INT(cvt_q(&b.f, "SELECT count(*) FROM sync_versions"), 4);
    CHECK_STR(vvs(&a), vvs(&b));
    CHECK_STR(checksum(&a, 0), checksum(&b, 1));
    CHECK_STR(knowledge_text(&a, 0), "{\"a\":4,\"b\":2}");
    CHECK_STR(knowledge_text(&b, 1), "{\"a\":4,\"b\":2}");
    CHECK_INT(state_int(&a, "records"), 2);
    CHECK_INT(state_int(&a, "conflicts"), 1);
    CHECK_INT(state_int(&b, "conflicts"), 1);

    /* prefs' view, from a fresh device that gets only its versions */
    inst c;
    inst_open(&c, "c", "c", KEY, rules);
    recorder rc = {.ret = 3};
    json_t *all = changes(&a, "{}", NULL, 0, 100);
    /* prefs only: the versions whose rid is prefs' */
    char rid[CV_SYNC_RID_HEX + 1];
    cv_syncstore_rid(c.s, "alice", "prefs", rid);
    json_t *prefs = json_array();
    size_t k;
    json_t *v;
    json_array_foreach(json_object_get(all, "versions"), k, v)
        if (!strcmp(json_string_value(json_object_get(v, "rid")), rid))
            json_array_append(prefs, v);
    CHECK_INT(json_array_size(prefs), 2);
    apply(&c, prefs, NULL, &rc, &st, NULL);
    CHECK_INT(st.applied, 2);
    CHECK_INT(st.conflicts, 0);
    CHECK_INT(rc.calls, 1); /* one view per record, after the batch */
    CHECK_STR(rc.name, "prefs");
    /* union 3: the lww winner's (b's, later) array, then a's new ones, cut
     * to 3; max: a's 9 though b's is newer; lww: b's theme; lang: a's
     * "fr", since b's "en" kept its first clock; notes equal: settled */
    CHECK_STR(rc.fields, "{\"count\":9,\"lang\":\"fr\",\"notes\":\"n\","
                         "\"recentSearches\":[\"b1\",\"x\",\"a1\"],"
                         "\"theme\":\"blue\"}");
    CHECK_STR(rc.unsettled, "");

    /* a device that had one of them first: the same view, the same id */
    inst d;
    inst_open(&d, "d", "d", KEY, rules);
    recorder rd = {.ret = 4};
    json_t *one = json_array();
    json_array_append(one, json_array_get(prefs, 1));
    apply(&d, one, NULL, &rd, &st, NULL);
    apply(&d, prefs, NULL, &rd, &st, NULL);
    CHECK_INT(st.applied, 1);
    CHECK_INT(st.seen, 1);
    CHECK_STR(rd.view_id, rc.view_id);
    CHECK_STR(rd.fields, rc.fields);

    /* a view fn that stores nothing (-2): neither a view nor a conflict */
    inst e;
    inst_open(&e, "e", "e", KEY, rules);
    recorder re = {.ret = -2};
    apply(&e, json_object_get(all, "versions"), NULL, &re, &st, NULL);
    CHECK_INT(st.applied, 4);
    CHECK_INT(re.calls, 2);
    CHECK_INT(st.views, 0);
    CHECK_INT(st.conflicts, 0);
    inst_close(&e);

    /* conflicts: draft, whose notes differ; not prefs, whose are equal */
    char err[256] = "";
    json_t *cf = cv_syncstore_conflicts(a.s, NULL, 10, err, sizeof err);
    CHECK(cf);
    CHECK_INT(json_array_size(cf), 1);
    json_t *c0 = json_array_get(cf, 0);
    CHECK_STR(json_string_value(json_object_get(c0, "user")), "alice");
    CHECK_STR(json_string_value(json_object_get(c0, "name")), "draft");
    char drid[CV_SYNC_RID_HEX + 1];
    cv_syncstore_rid(a.s, "alice", "draft", drid);
    CHECK_STR(json_string_value(json_object_get(c0, "rid")), drid);
    CHECK_STR(json_dumps_k(json_object_get(c0, "unsettled")), "[\"notes\"]");
    json_t *sib = json_object_get(c0, "siblings");
    CHECK_INT(json_array_size(sib), 2);
    char sibs[256];
    json_t *notes = json_array();
    json_array_foreach(sib, k, v)
        json_array_append(notes, json_object_get(json_object_get(v, "fields"), "notes"));
    dump(notes, sibs, sizeof sibs);
    CHECK(!strcmp(sibs, "[\"from a\",\"from b\"]") ||
          !strcmp(sibs, "[\"from b\",\"from a\"]"));
    /* the lww guess: b's, the later */
    CHECK_STR(json_string_value(json_object_get(json_object_get(c0, "merged"), "notes")),
              "from b");
    /* the same on b; none for another user */
    json_t *cfb = cv_syncstore_conflicts(b.s, "alice", 10, err, sizeof err);
    CHECK_INT(json_array_size(cfb), 1);
    json_t *cfo = cv_syncstore_conflicts(b.s, "bob", 10, err, sizeof err);
    CHECK_INT(json_array_size(cfo), 0);

    json_decref(cf);
    json_decref(cfb);
    json_decref(cfo);
    json_decref(notes);
    json_decref(one);
    json_decref(prefs);
    json_decref(all);
    inst_close(&a);
    inst_close(&b);
    inst_close(&c);
    inst_close(&d);
    cv_merge_rules_destroy(&rules);
}

/* --- 6. a local change supersedes siblings ------------------------------- */

TEST(syncstore_a_local_change_supersedes_every_sibling)
{
    inst a, b;
    inst_open(&a, "a", "a", KEY, NULL);
    inst_open(&b, "b", "b", KEY, NULL);
    recorder ra = {.ret = 1}, rb = {.ret = 7};
    cv_sync_apply_stats st;
    CHECK_INT(local(&a, 1, "alice", "prefs", "{\"v\":0}", T0), 1);
    pull(&b, &a, &rb, &st);
    CHECK_INT(local(&a, 1, "alice", "prefs", "{\"v\":1}", T0 + 10), 1);
    CHECK_INT(local(&b, 7, "alice", "prefs", "{\"v\":2}", T0 + 20), 1);
    pull(&a, &b, &ra, &st);
    pull(&b, &a, &rb, &st);
    CHECK_INT(cvt_q(&a.f, "SELECT count(*) FROM sync_versions"), 2);
    CHECK_STR(vvs(&a), "{\"a\":1,\"b\":1} {\"a\":2}");
    /* the view (lww): b's */
    CHECK_STR(ra.fields, "{\"v\":2}");
    /* saving the merged view as it is still makes a version: it settles
     * the siblings */
    CHECK_INT(local(&a, 1, "alice", "prefs", "{\"v\":2}", T0 + 30), 1);
    CHECK_INT(cvt_q(&a.f, "SELECT count(*) FROM sync_versions"), 1);
    CHECK_STR(vvs(&a), "{\"a\":3,\"b\":1}");
    CHECK_STR(knowledge_text(&a, 0), "{\"a\":3,\"b\":1}");
    /* b hears of it: one version there too */
    pull(&b, &a, &rb, &st);
    CHECK_INT(st.applied, 1);
    CHECK_INT(cvt_q(&b.f, "SELECT count(*) FROM sync_versions"), 1);
    CHECK_STR(vvs(&b), "{\"a\":3,\"b\":1}");
    CHECK_STR(rb.fields, "{\"v\":2}");
    CHECK_STR(checksum(&a, 0), checksum(&b, 1));
    CHECK_INT(state_int(&b, "conflicts"), 0);
    inst_close(&a);
    inst_close(&b);
}

/* --- 7. tombstones ------------------------------------------------------- */

TEST(syncstore_a_tombstone_deletes_and_stays_deleted)
{
    inst a, b, c;
    inst_open(&a, "a", "a", KEY, NULL);
    inst_open(&b, "b", "b", KEY, NULL);
    inst_open(&c, "c", "c", KEY, NULL);
    recorder ra = {.ret = 1}, rb = {.ret = 7}, rc = {.ret = 3};
    cv_sync_apply_stats st;
    CHECK_INT(local(&a, 1, "alice", "prefs", "{\"v\":1}", T0), 1);
    json_t *p1 = changes(&a, "{}", NULL, 0, 100);
    apply(&b, json_object_get(p1, "versions"), json_object_get(p1, "knowledge"),
          &rb, &st, NULL);
    apply(&c, json_object_get(p1, "versions"), json_object_get(p1, "knowledge"),
          &rc, &st, NULL);
    CHECK_INT(rb.calls, 1);
    CHECK_INT(cvt_q(&b.f, "SELECT uid FROM sync_local"), 7);

    /* a deletes */
    CHECK_INT(local(&a, 1, "alice", "prefs", NULL, T0 + 10), 1);
    CHECK_INT(cvt_q(&a.f, "SELECT count(*) FROM sync_versions"), 1);
    CHECK_INT(cvt_q(&a.f, "SELECT deleted FROM sync_versions"), 1);
    CHECK_STR(vvs(&a), "{\"a\":2}");
    /* deleting again: nothing */
    CHECK_INT(local(&a, 1, "alice", "prefs", NULL, T0 + 20), 0);
    CHECK_INT(state_int(&a, "tombstones"), 1);

    pull(&b, &a, &rb, &st);
    CHECK_INT(st.applied, 1);
    CHECK_INT(st.views, 1);
    CHECK_INT(rb.calls, 2);
    CHECK(rb.deleted);
    CHECK_INT(rb.uid, 7);
    CHECK_STR(rb.name, "prefs");
    CHECK_STR(rb.user, "(null)");
    CHECK_STR(rb.fields, "");
    CHECK_INT(cvt_q(&b.f, "SELECT deleted FROM sync_versions"), 1);
    CHECK_INT(cvt_q(&b.f, "SELECT count(*) FROM sync_versions"), 1);

    /* the stale version again: seen, no resurrection */
    apply(&b, json_object_get(p1, "versions"), NULL, &rb, &st, NULL);
    CHECK_INT(st.seen, 1);
    CHECK_INT(st.applied, 0);
    CHECK_INT(rb.calls, 2);
    CHECK_INT(cvt_q(&b.f, "SELECT count(*) FROM sync_versions"), 1);
    CHECK_INT(cvt_q(&b.f, "SELECT deleted FROM sync_versions"), 1);

    /* c edits concurrently with the tombstone: siblings, the tombstone wins */
    CHECK_INT(local(&c, 3, "alice", "prefs", "{\"v\":3}", T0 + 30), 1);
    CHECK_STR(vvs(&c), "{\"a\":1,\"c\":1}");
    pull(&b, &c, &rb, &st);
    CHECK_INT(st.applied, 1);
    CHECK_INT(cvt_q(&b.f, "SELECT count(*) FROM sync_versions"), 2);
    CHECK_INT(rb.calls, 3);
    CHECK(rb.deleted);
    CHECK_INT(rb.uid, 7);
    CHECK_STR(rb.name, "prefs");
    pull(&c, &b, &rc, &st);
    CHECK(rc.deleted);
    CHECK_INT(rc.uid, 3);
    pull(&a, &c, &ra, &st);
    CHECK(ra.deleted);
    CHECK_INT(ra.uid, 1);
    CHECK_INT(ra.deletes, 1);
    CHECK_STR(checksum(&a, 0), checksum(&b, 1));
    CHECK_STR(checksum(&a, 0), checksum(&c, 2));
    CHECK_INT(state_int(&b, "tombstones"), 1);
    CHECK_INT(state_int(&b, "records"), 1);
    CHECK_INT(state_int(&b, "conflicts"), 0); /* the tombstone settles it */
    char err[256] = "";
    json_t *cf = cv_syncstore_conflicts(b.s, NULL, 10, err, sizeof err);
    CHECK_INT(json_array_size(cf), 0);
    json_decref(cf);

    /* a tombstone for a record the device never mapped: no view */
    inst d;
    inst_open(&d, "d", "d", KEY, NULL);
    recorder rd = {.ret = 4};
    json_t *tomb = changes(&a, "{}", NULL, 0, 100);
    json_t *only = json_array();
    size_t k;
    json_t *v;
    json_array_foreach(json_object_get(tomb, "versions"), k, v)
        if (json_is_true(json_object_get(v, "deleted")))
            json_array_append(only, v);
    CHECK_INT(json_array_size(only), 1);
    apply(&d, only, NULL, &rd, &st, NULL);
    CHECK_INT(st.applied, 1);
    CHECK_INT(rd.calls, 0);
    json_decref(only);
    json_decref(tomb);

    /* the record recreated after the tombstone descends from it */
    CHECK_INT(local(&b, 7, "alice", "prefs", "{\"v\":4}", T0 + 40), 1);
    CHECK_STR(vvs(&b), "{\"a\":2,\"b\":1,\"c\":1}");
    pull(&a, &b, &ra, &st);
    CHECK(!ra.deleted);
    CHECK_STR(ra.fields, "{\"v\":4}");
    json_decref(p1);
    inst_close(&a);
    inst_close(&b);
    inst_close(&c);
    inst_close(&d);
}

/* --- 8. relays ----------------------------------------------------------- */

TEST(syncstore_a_relay_keeps_and_forwards_what_it_cannot_read)
{
    inst a, b, r, c;
    inst_open(&a, "a", "a", KEY, NULL);
    inst_open(&b, "b", "b", KEY, NULL);
    inst_open(&r, "r", NULL, NULL, NULL);
    inst_open(&c, "c", "c", KEY, NULL);
    recorder ra = {.ret = 1}, rb = {.ret = 7}, rr = {.ret = 5}, rc = {.ret = 3};
    cv_sync_apply_stats st;

    CHECK_INT(local(&a, 1, "alice", "prefs", "{\"v\":0}", T0), 1);
    CHECK_INT(local(&a, 1, "alice", "other", "{\"w\":0}", T0), 1);
    pull(&r, &a, &rr, &st);
    CHECK_INT(st.applied, 2);
    CHECK_INT(st.views, 0);
    CHECK_INT(rr.calls, 0);
    pull(&b, &r, &rb, &st);
    CHECK_INT(st.applied, 2);
    CHECK_INT(rb.calls, 2);
    CHECK_STR(checksum(&r, 0), checksum(&b, 1));

    /* concurrent edits, each sent through the relay */
    CHECK_INT(local(&a, 1, "alice", "prefs", "{\"v\":1}", T0 + 10), 1);
    CHECK_INT(local(&b, 7, "alice", "prefs", "{\"v\":2}", T0 + 20), 1);
    pull(&r, &a, &rr, &st);
    CHECK_INT(st.applied, 1);
    pull(&r, &b, &rr, &st);
    CHECK_INT(st.applied, 1);
    CHECK_INT(rr.calls, 0);
    CHECK_INT(cvt_q(&r.f, "SELECT count(*) FROM sync_versions"), 3);
    CHECK_STR(vvs(&r), "{\"a\":1,\"b\":1} {\"a\":2} {\"a\":3}");
    CHECK_INT(state_int(&r, "conflicts"), 1); /* it cannot tell */
    CHECK_STR(knowledge_text(&r, 0), "{\"a\":3,\"b\":1}");
    char err[256] = "";
    json_t *cf = cv_syncstore_conflicts(r.s, NULL, 10, err, sizeof err);
    CHECK(cf);
    CHECK_INT(json_array_size(cf), 0); /* counted, never listed */
    json_decref(cf);

    /* a fresh device pulls everything from the relay: the same state */
    pull(&c, &r, &rc, &st);
    CHECK_INT(st.applied, 3);
    CHECK_INT(st.rejected, 0);
    CHECK_INT(rc.calls, 2);
    CHECK_STR(checksum(&r, 0), checksum(&c, 1));
    pull(&a, &r, &ra, &st);
    pull(&b, &r, &rb, &st);
    CHECK_STR(checksum(&a, 0), checksum(&c, 1));
    CHECK_STR(checksum(&b, 2), checksum(&c, 1));
    CHECK_STR(ra.fields, rb.fields);
    CHECK_STR(ra.view_id, rb.view_id);
    CHECK_INT(state_int(&c, "conflicts"), 0); /* all lww: settled */
    inst_close(&a);
    inst_close(&b);
    inst_close(&r);
    inst_close(&c);
}

/* --- 9. rejections ------------------------------------------------------- */

/* A copy of v with one byte of its sealed payload flipped. */
static json_t *altered(const json_t *v)
{
    json_t *c = json_deep_copy(v);
    const char *b64 = json_string_value(json_object_get(c, "payload"));
    size_t blen = strlen(b64), plen;
    unsigned char *bin = malloc(blen);
    if (sodium_base642bin(bin, blen, b64, blen, NULL, &plen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        cvt_fail(__FILE__, __LINE__, "bad base64");
    bin[plen / 2] ^= 0x01;
    size_t elen = sodium_base64_ENCODED_LEN(plen, sodium_base64_VARIANT_ORIGINAL);
    char *e = malloc(elen);
    sodium_bin2base64(e, elen, bin, plen, sodium_base64_VARIANT_ORIGINAL);
    json_object_set_new(c, "payload", json_string(e));
    free(e);
    free(bin);
    return c;
}

/* A version sealed with the group's key, as a member would, but for a
 * record id that is not its user's and name's. */
static json_t *forged(const unsigned char *key, const char *rid)
{
    unsigned char sk[32];
    crypto_kdf_derive_from_key(sk, sizeof sk, 2, "cvsyncpl", key);
    const char *plain = "{\"clock\":{\"v\":1},\"fields\":{\"v\":1},"
                        "\"name\":\"prefs\",\"user\":\"mallory\"}";
    /* bound as syncstore binds it: rid, dot, vector, clock, tombstone flag */
    char *ad = cv_fmt("cv-sync-1\n%s\nm\n1\n{\"m\":1}\n%llu\n0", rid,
                      (unsigned long long)cv_vclock_hlc_make(T0, 0));
    size_t len = strlen(plain);
    size_t plen = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + len +
                  crypto_aead_xchacha20poly1305_ietf_ABYTES;
    unsigned char *p = calloc(1, plen);
    randombytes_buf(p, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    unsigned long long clen;
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        p + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &clen,
        (const unsigned char *)plain, len, (const unsigned char *)ad,
        strlen(ad), NULL, p, sk);
    size_t elen = sodium_base64_ENCODED_LEN(plen, sodium_base64_VARIANT_ORIGINAL);
    char *e = malloc(elen);
    sodium_bin2base64(e, elen, p, plen, sodium_base64_VARIANT_ORIGINAL);
    char hlc[24];
    snprintf(hlc, sizeof hlc, "%llu", (unsigned long long)cv_vclock_hlc_make(T0, 0));
    json_t *v = json_pack("{s:s, s:[s,i], s:{s:i}, s:s, s:b, s:s}", "rid", rid,
                          "dot", "m", 1, "vv", "m", 1, "hlc", hlc,
                          "deleted", 0, "payload", e);
    free(e);
    free(p);
    free(ad);
    return v;
}

static const char *rejection(const json_t *rej, size_t index)
{
    size_t k;
    json_t *r;
    json_array_foreach(rej, k, r)
        if ((size_t)json_integer_value(json_object_get(r, "index")) == index)
            return json_string_value(json_object_get(r, "error"));
    return NULL;
}

TEST(syncstore_bad_versions_are_rejected_alone)
{
    inst a, b, x;
    inst_open(&a, "a", "a", KEY, NULL);
    inst_open(&b, "b", "b", KEY, NULL);
    inst_open(&x, "x", "x", OTHER_KEY, NULL);
    CHECK_INT(local(&a, 1, "alice", "one", "{\"v\":1}", T0), 1);
    CHECK_INT(local(&a, 1, "alice", "two", "{\"v\":2}", T0 + 1), 1);
    CHECK_INT(local(&a, 1, "alice", "three", "{\"v\":3}", T0 + 2), 1);
    CHECK_INT(local(&x, 1, "alice", "four", "{\"v\":4}", T0 + 3), 1);
    json_t *pa = changes(&a, "{}", NULL, 0, 100);
    json_t *px = changes(&x, "{}", NULL, 0, 100);
    json_t *va = json_object_get(pa, "versions");

    char rid_two[CV_SYNC_RID_HEX + 1], rid_zz[CV_SYNC_RID_HEX + 1];
    cv_syncstore_rid(b.s, "alice", "two", rid_two);
    cv_syncstore_rid(b.s, "zz", "zz", rid_zz);

    json_t *batch = json_array();
    /* 0: good */
    json_array_append(batch, json_array_get(va, 0));
    /* 1: one byte of the payload altered */
    json_array_append_new(batch, altered(json_array_get(va, 1)));
    /* 2: the vector lacks the version's own dot */
    json_t *nodot = json_deep_copy(json_array_get(va, 1));
    json_object_set_new(nodot, "vv", cvt_json("{\"b\":1}"));
    json_array_append_new(batch, nodot);
    /* 3: another record's id (the payload is bound to its own) */
    json_t *moved = json_deep_copy(json_array_get(va, 1));
    json_object_set_new(moved, "rid", json_string(rid_zz));
    json_array_append_new(batch, moved);
    /* 4: sealed right, but the id is not its user's and name's */
    json_array_append_new(batch, forged(KEY, rid_two));
    /* 5: another group's key */
    json_array_append(batch, json_array_get(json_object_get(px, "versions"), 0));
    /* 6: good */
    json_array_append(batch, json_array_get(va, 2));
    /* 7: not a version at all */
    json_array_append_new(batch, cvt_json("{\"rid\":\"nothex\"}"));
    /* 8: the dot on another counter than the vector's */
    json_t *wrong = json_deep_copy(json_array_get(va, 1));
    json_object_set_new(wrong, "vv", cvt_json("{\"a\":7}"));
    json_array_append_new(batch, wrong);

    recorder rb = {.ret = 7};
    cv_sync_apply_stats st;
    json_t *rej = json_array();
    apply(&b, batch, NULL, &rb, &st, rej);
    CHECK_INT(st.applied, 2);
    CHECK_INT(st.rejected, 7);
    CHECK_INT(st.seen, 0);
    CHECK_INT(st.views, 2);
    CHECK_INT(rb.calls, 2);
    CHECK_INT(json_array_size(rej), 7);
    CHECK(!rejection(rej, 0));
    CHECK(!rejection(rej, 6));
    CHECK(strstr(rejection(rej, 1), "does not open"));
    CHECK(strstr(rejection(rej, 2), "does not hold the dot"));
    CHECK(strstr(rejection(rej, 3), "does not open"));
    CHECK(strstr(rejection(rej, 4), "record id is not its user's and name's"));
    CHECK(strstr(rejection(rej, 5), "does not open"));
    CHECK(strstr(rejection(rej, 7), "\"rid\""));
    CHECK(strstr(rejection(rej, 8), "does not hold the dot"));
    /* only the good ones stored */
    CHECK_INT(cvt_q(&b.f, "SELECT count(*) FROM sync_versions"), 2);
    CHECK_STR(qs(&b, "SELECT group_concat(dev || ':' || n, ' ') FROM "
                     "(SELECT dev, n FROM sync_versions ORDER BY dev, n)"),
              "a:1 a:3");
    char *sql = cv_fmt("SELECT count(*) FROM sync_versions WHERE rid = '%s'",
                       rid_zz);
    CHECK_INT(cvt_q(&b.f, sql), 0);
    free(sql);

    /* the genuine one after its altered copy: applied */
    json_t *good = json_array();
    json_array_append(good, json_array_get(va, 1));
    json_t *rej2 = json_array();
    apply(&b, good, NULL, &rb, &st, rej2);
    CHECK_INT(st.applied, 1);
    CHECK_INT(json_array_size(rej2), 0);
    CHECK_STR(rb.fields, "{\"v\":2}");

    /* a relay cannot check a payload: it keeps an altered one */
    inst r;
    inst_open(&r, "r", NULL, NULL, NULL);
    json_t *alt = json_array();
    json_array_append_new(alt, altered(json_array_get(va, 1)));
    json_t *rej3 = json_array();
    apply(&r, alt, NULL, NULL, &st, rej3);
    CHECK_INT(st.applied, 1);
    CHECK_INT(json_array_size(rej3), 0);

    json_decref(rej);
    json_decref(rej2);
    json_decref(rej3);
    json_decref(alt);
    json_decref(good);
    json_decref(batch);
    json_decref(pa);
    json_decref(px);
    inst_close(&a);
    inst_close(&b);
    inst_close(&x);
    inst_close(&r);
}

/* --- 10. deleting a user's records --------------------------------------- */

TEST(syncstore_local_delete_uids_makes_a_tombstone_per_record)
{
    inst a, b;
    inst_open(&a, "a", "a", KEY, NULL);
    inst_open(&b, "b", "b", KEY, NULL);
    CHECK_INT(local(&a, 1, "alice", "prefs", "{\"v\":1}", T0), 1);
    CHECK_INT(local(&a, 1, "alice", "draft", "{\"v\":2}", T0 + 1), 1);
    CHECK_INT(local(&a, 2, "bob", "prefs", "{\"v\":3}", T0 + 2), 1);
    CHECK_INT(local(&a, 3, "carol", "prefs", "{\"v\":4}", T0 + 3), 1);
    recorder rb = {.ret = 7};
    cv_sync_apply_stats st;
    pull(&b, &a, &rb, &st);

    char err[256] = "";
    int64_t uids[] = {1, 3, 99};
    begin(&a);
    CHECK_INT(cv_syncstore_local_delete_uids(a.s, uids, 3, T0 + 10, err,
                                             sizeof err), 0);
    commit(&a);
    CHECK_INT(state_int(&a, "records"), 4);
    CHECK_INT(state_int(&a, "versions"), 4);
    CHECK_INT(state_int(&a, "tombstones"), 3);
    char rid[CV_SYNC_RID_HEX + 1];
    cv_syncstore_rid(a.s, "bob", "prefs", rid);
    char *sql = cv_fmt("SELECT deleted FROM sync_versions WHERE rid = '%s'", rid);
    CHECK_INT(cvt_q(&a.f, sql), 0);
    free(sql);
    CHECK_STR(vvs(&a), "{\"a\":3} {\"a\":5} {\"a\":6} {\"a\":7}");
    CHECK_STR(knowledge_text(&a, 0), "{\"a\":7}");
    /* again: nothing more */
    begin(&a);
    CHECK_INT(cv_syncstore_local_delete_uids(a.s, uids, 1, T0 + 20, err,
                                             sizeof err), 0);
    commit(&a);
    CHECK_STR(knowledge_text(&a, 0), "{\"a\":7}");

    /* b deletes the same three contexts */
    pull(&b, &a, &rb, &st);
    CHECK_INT(st.applied, 3);
    CHECK_INT(st.views, 3);
    CHECK_INT(rb.deletes, 3);
    CHECK_INT(rb.uid, 7);
    CHECK_INT(state_int(&b, "tombstones"), 3);
    CHECK_STR(checksum(&a, 0), checksum(&b, 1));
    inst_close(&a);
    inst_close(&b);
}
