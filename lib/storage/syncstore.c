/* syncstore.c - sync records, their versions and their views
 * (syncstore.h, doc/SYNC.md). */
#include "storage/syncstore.h"

#include "base/util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIBLINGS 16      /* concurrent versions of one record */
#define MAX_PAYLOAD (1 << 20)     /* sealed bytes of one version */
#define VV_TEXT_MAX 4096
#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG crypto_aead_xchacha20poly1305_ietf_ABYTES

struct cv_syncstore {
    cv_db *db;
    char *device;                 /* NULL: a relay */
    bool keyed;
    unsigned char rid_key[32];    /* subkeys of the group's key */
    unsigned char seal_key[32];
    const cv_merge_rules *rules;
    cv_hlc hlc;
};

/* One version, as stored and as sent. */
typedef struct {
    char rid[CV_SYNC_RID_HEX + 1];
    char dev[CV_DEVICE_MAX + 1];
    int64_t n;
    cv_vclock vv;
    char vvtext[VV_TEXT_MAX];
    uint64_t hlc;
    bool deleted;
    unsigned char *payload;       /* nonce, ciphertext, tag; malloc'ed */
    size_t plen;
} version;

static void version_free(version *v)
{
    free(v->payload);
    v->payload = NULL;
}

cv_syncstore *cv_syncstore_new(cv_db *db, const char *device,
                               const unsigned char *key,
                               const cv_merge_rules *rules)
{
    cv_syncstore *s = cv_calloc(1, sizeof *s);
    s->db = db;
    s->device = device ? cv_strdup(device) : NULL;
    s->rules = rules;
    if (key) {
        s->keyed = true;
        crypto_kdf_derive_from_key(s->rid_key, sizeof s->rid_key, 1,
                                   "cvsyncid", key);
        crypto_kdf_derive_from_key(s->seal_key, sizeof s->seal_key, 2,
                                   "cvsyncpl", key);
    }
    /* the clock goes on from the newest change held, across restarts */
    sqlite3_stmt *st = cv_db_stmt(db, "SELECT max(hlc) FROM sync_versions");
    if (st && sqlite3_step(st) == SQLITE_ROW)
        s->hlc.last = (uint64_t)sqlite3_column_int64(st, 0);
    if (st)
        sqlite3_reset(st);
    return s;
}

void cv_syncstore_destroy(cv_syncstore **p)
{
    cv_syncstore *s = *p;
    if (!s)
        return;
    sodium_memzero(s->rid_key, sizeof s->rid_key);
    sodium_memzero(s->seal_key, sizeof s->seal_key);
    free(s->device);
    free(s);
    *p = NULL;
}

bool cv_syncstore_is_relay(const cv_syncstore *s)
{
    return !s->keyed;
}

void cv_syncstore_rid(const cv_syncstore *s, const char *user,
                      const char *name, char rid[CV_SYNC_RID_HEX + 1])
{
    unsigned char h[CV_SYNC_RID_HEX / 2];
    crypto_generichash_state g;
    crypto_generichash_init(&g, s->rid_key, sizeof s->rid_key, sizeof h);
    crypto_generichash_update(&g, (const unsigned char *)user, strlen(user) + 1);
    crypto_generichash_update(&g, (const unsigned char *)name, strlen(name));
    crypto_generichash_final(&g, h, sizeof h);
    sodium_bin2hex(rid, CV_SYNC_RID_HEX + 1, h, sizeof h);
}

/* --- the payload --------------------------------------------------------- */

/* What a payload is bound to: a relay can neither read it nor move it to
 * another record, dot, vector, clock or tombstone flag. */
static char *bound_to(const version *v)
{
    return cv_fmt("cv-sync-1\n%s\n%s\n%lld\n%s\n%llu\n%d", v->rid, v->dev,
                  (long long)v->n, v->vvtext, (unsigned long long)v->hlc,
                  v->deleted);
}

static void seal(cv_syncstore *s, version *v, const json_t *plain)
{
    char *text = json_dumps(plain, CV_JSON_DUMP | JSON_SORT_KEYS);
    size_t len = strlen(text);
    char *ad = bound_to(v);
    v->plen = NONCE + len + TAG;
    v->payload = cv_calloc(1, v->plen);
    randombytes_buf(v->payload, NONCE);
    unsigned long long clen;
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        v->payload + NONCE, &clen, (const unsigned char *)text, len,
        (const unsigned char *)ad, strlen(ad), NULL, v->payload, s->seal_key);
    sodium_memzero(text, len);
    free(text);
    free(ad);
}

/* The payload's JSON, or NULL when it does not open under our key. */
static json_t *unseal(cv_syncstore *s, const version *v)
{
    if (!s->keyed || v->plen < NONCE + TAG)
        return NULL;
    size_t len = v->plen - NONCE - TAG;
    unsigned char *plain = cv_calloc(1, len + 1);
    char *ad = bound_to(v);
    unsigned long long mlen;
    json_t *j = NULL;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            plain, &mlen, NULL, v->payload + NONCE, v->plen - NONCE,
            (const unsigned char *)ad, strlen(ad), v->payload,
            s->seal_key) == 0)
        j = json_loadb((const char *)plain, (size_t)mlen, JSON_REJECT_DUPLICATES,
                       NULL);
    sodium_memzero(plain, len);
    free(plain);
    free(ad);
    return json_is_object(j) ? j : (json_decref(j), NULL);
}

/* --- the tables ---------------------------------------------------------- */

static int db_failed(cv_syncstore *s, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "cannot %s: %s", what, cv_db_errmsg(s->db));
    return -1;
}

static void row_version(sqlite3_stmt *st, int col, version *v)
{
    /* columns from col: rid, dev, n, vv, hlc, deleted, payload */
    snprintf(v->rid, sizeof v->rid, "%s",
             (const char *)sqlite3_column_text(st, col));
    snprintf(v->dev, sizeof v->dev, "%s",
             (const char *)sqlite3_column_text(st, col + 1));
    v->n = sqlite3_column_int64(st, col + 2);
    snprintf(v->vvtext, sizeof v->vvtext, "%s",
             (const char *)sqlite3_column_text(st, col + 3));
    char why[128];
    if (cv_vclock_parse(&v->vv, v->vvtext, strlen(v->vvtext), why,
                        sizeof why) < 0)
        cv_vclock_init(&v->vv); /* cannot happen: we wrote it */
    v->hlc = (uint64_t)sqlite3_column_int64(st, col + 4);
    v->deleted = sqlite3_column_int(st, col + 5) != 0;
    v->plen = (size_t)sqlite3_column_bytes(st, col + 6);
    v->payload = cv_calloc(1, v->plen + 1);
    if (v->plen)
        memcpy(v->payload, sqlite3_column_blob(st, col + 6), v->plen);
}

#define VERSION_COLS "rid, dev, n, vv, hlc, deleted, payload"

/* The current versions of rid (at most max). */
static int load(cv_syncstore *s, const char *rid, version *out, size_t max,
                size_t *n)
{
    *n = 0;
    sqlite3_stmt *st = cv_db_stmt(s->db, "SELECT " VERSION_COLS
                                  " FROM sync_versions WHERE rid = ?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, rid, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max)
        row_version(st, 0, &out[(*n)++]);
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static void free_all(version *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        version_free(&v[i]);
}

static int insert(cv_syncstore *s, const version *v)
{
    sqlite3_stmt *st = cv_db_stmt(s->db, "INSERT INTO sync_versions("
                                  VERSION_COLS ") VALUES (?,?,?,?,?,?,?)");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, v->rid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, v->dev, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, v->n);
    sqlite3_bind_text(st, 4, v->vvtext, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)v->hlc);
    sqlite3_bind_int(st, 6, v->deleted);
    sqlite3_bind_blob(st, 7, v->payload, (int)v->plen, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Run sql with (dev, n) bound: its first step's result code. */
static int step_dot(cv_syncstore *s, const char *sql, const char *dev,
                    int64_t n)
{
    sqlite3_stmt *st = cv_db_stmt(s->db, sql);
    if (!st)
        return SQLITE_ERROR;
    sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, n);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

static int remove_version(cv_syncstore *s, const version *v)
{
    return step_dot(s, "DELETE FROM sync_versions WHERE dev = ? AND n = ?",
                    v->dev, v->n) == SQLITE_DONE ? 0 : -1;
}

static bool held(cv_syncstore *s, const char *dev, int64_t n, int *failed)
{
    int rc = step_dot(s, "SELECT 1 FROM sync_versions WHERE dev = ? AND n = ?",
                      dev, n);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        *failed = 1;
    return rc == SQLITE_ROW;
}

/* Knowledge only grows: a peer's older word never takes any back. */
static int know(cv_syncstore *s, const char *dev, int64_t n)
{
    return step_dot(s, "INSERT INTO sync_knowledge(dev, n) VALUES (?, ?) "
                    "ON CONFLICT(dev) DO UPDATE SET n = max(n, excluded.n)",
                    dev, n) == SQLITE_DONE ? 0 : -1;
}

static int64_t known(cv_syncstore *s, const char *dev)
{
    sqlite3_stmt *st = cv_db_stmt(s->db, "SELECT n FROM sync_knowledge "
                                  "WHERE dev = ?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, dev, -1, SQLITE_STATIC);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return n;
}

json_t *cv_syncstore_knowledge(cv_syncstore *s)
{
    json_t *k = json_object();
    sqlite3_stmt *st = cv_db_stmt(s->db, "SELECT dev, n FROM sync_knowledge "
                                  "ORDER BY dev");
    while (st && sqlite3_step(st) == SQLITE_ROW)
        json_object_set_new(k, (const char *)sqlite3_column_text(st, 0),
                            json_integer(sqlite3_column_int64(st, 1)));
    if (st)
        sqlite3_reset(st);
    return k;
}

/* The device's own map from a record to its user and name. */
static int local_set(cv_syncstore *s, const char *rid, int64_t uid,
                     const char *name)
{
    sqlite3_stmt *st = cv_db_stmt(s->db, "INSERT OR REPLACE INTO "
                                  "sync_local(rid, uid, name) VALUES (?,?,?)");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, rid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, uid);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static bool local_get(cv_syncstore *s, const char *rid, int64_t *uid,
                      char **name)
{
    sqlite3_stmt *st = cv_db_stmt(s->db, "SELECT uid, name FROM sync_local "
                                  "WHERE rid = ?");
    if (!st)
        return false;
    sqlite3_bind_text(st, 1, rid, -1, SQLITE_STATIC);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    if (found) {
        *uid = sqlite3_column_int64(st, 0);
        *name = cv_strdup((const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_reset(st);
    return found;
}

/* --- views ------------------------------------------------------------- */

/* The merge of the open payloads of vs (none deleted). The fields and
 * clock objects are new; 1 when a field is unsettled. */
static int merge_payloads(cv_syncstore *s, json_t **plain, const version *vs,
                          size_t n, json_t **fields, json_t **clock,
                          json_t **unsettled)
{
    cv_merge_input in[MAX_SIBLINGS];
    for (size_t i = 0; i < n; i++)
        in[i] = (cv_merge_input){.fields = json_object_get(plain[i], "fields"),
                                 .clock = json_object_get(plain[i], "clock"),
                                 .device = vs[i].dev};
    return cv_merge_versions(s->rules, in, n, fields, clock, unsettled);
}

/* An event id for the view of these versions: the same set, the same id,
 * so storing a view again is a duplicate. */
static void view_id(const version *vs, size_t n, uint64_t newest, char out[64])
{
    /* dots in a fixed order, whatever order the rows came in */
    unsigned char h[16];
    crypto_generichash_state g;
    crypto_generichash_init(&g, NULL, 0, sizeof h);
    crypto_generichash_update(&g, (const unsigned char *)vs[0].rid,
                              strlen(vs[0].rid));
    unsigned char acc[16] = {0};
    for (size_t i = 0; i < n; i++) {
        unsigned char d[16];
        char dot[64];
        int len = snprintf(dot, sizeof dot, "%s:%lld", vs[i].dev,
                           (long long)vs[i].n);
        crypto_generichash(d, sizeof d, (const unsigned char *)dot,
                           (size_t)len, NULL, 0);
        for (size_t k = 0; k < sizeof d; k++)
            acc[k] ^= d[k];
    }
    crypto_generichash_update(&g, acc, sizeof acc);
    crypto_generichash_final(&g, h, sizeof h);
    /* the newest change's time first: ids made in order go to the end of
     * the events' id index instead of all over it (a page of versions
     * would otherwise dirty a page of the index for each) */
    int len = snprintf(out, 64, "sync-%012llx-", (unsigned long long)cv_vclock_hlc_ms(newest));
    sodium_bin2hex(out + len, (size_t)(64 - len), h, sizeof h);
}

/* Work out rid's view and hand it to fn; then remember its user. */
static int store_view(cv_syncstore *s, const char *rid, cv_sync_view_fn *fn,
                      void *arg, cv_sync_apply_stats *st, char *err,
                      size_t errlen)
{
    version vs[MAX_SIBLINGS];
    size_t n;
    if (load(s, rid, vs, MAX_SIBLINGS, &n) < 0)
        return db_failed(s, err, errlen, "read a record's versions");
    int rc = 0;
    bool deleted = false;
    uint64_t newest = 0;
    for (size_t i = 0; i < n; i++) {
        deleted |= vs[i].deleted;
        if (vs[i].hlc > newest)
            newest = vs[i].hlc;
    }
    int64_t luid = -1;
    char *lname = NULL;
    bool mapped = local_get(s, rid, &luid, &lname);
    char id[64];
    if (n)
        view_id(vs, n, newest, id);
    cv_sync_view v = {.rid = rid, .uid = mapped ? luid : -1,
                      .ts = cv_vclock_hlc_ms(newest), .view_id = id};
    json_t *plain[MAX_SIBLINGS] = {0}, *fields = NULL, *clock = NULL;
    if (n == 0 || (deleted && !mapped))
        goto out; /* nothing of it here to delete */
    if (deleted) {
        v.deleted = true;
        v.name = lname;
        int64_t r = fn(arg, &v, err, errlen);
        if (r == -1)
            rc = -1;
        else if (r >= 0)
            st->views++;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (!(plain[i] = unseal(s, &vs[i]))) {
            snprintf(err, errlen, "a stored version of record %s does not "
                     "open", rid);
            rc = -1;
            goto out;
        }
    v.user = json_string_value(json_object_get(plain[0], "user"));
    v.name = json_string_value(json_object_get(plain[0], "name"));
    int m = merge_payloads(s, plain, vs, n, &fields, &clock, &v.unsettled);
    if (m < 0) {
        snprintf(err, errlen, "the versions of record %s cannot be merged", rid);
        rc = -1;
        goto out;
    }
    v.fields = fields;
    int64_t uid = fn(arg, &v, err, errlen);
    if (uid >= 0) {
        st->views++; /* -2: the caller stored nothing */
        if (v.unsettled)
            st->conflicts++;
    }
    if (uid == -1)
        rc = -1;
    else if (uid >= 0 && local_set(s, rid, uid, v.name) < 0)
        rc = db_failed(s, err, errlen, "remember a record");
out:
    json_decref(v.unsettled);
    json_decref(fields);
    json_decref(clock);
    for (size_t i = 0; i < n; i++)
        json_decref(plain[i]);
    free(lname);
    free_all(vs, n);
    return rc;
}

/* --- local changes ------------------------------------------------------ */

/* A new version of rid made here: fields (with their clocks worked out
 * from the current view) or a tombstone (fields NULL). */
static int change(cv_syncstore *s, const char *rid, int64_t uid,
                  const char *user, const char *name, const json_t *fields,
                  int64_t now_ms, char *err, size_t errlen)
{
    if (!s->keyed || !s->device) {
        snprintf(err, errlen, "this instance is not a sync device");
        return -1;
    }
    version cur[MAX_SIBLINGS];
    size_t n;
    if (load(s, rid, cur, MAX_SIBLINGS, &n) < 0)
        return db_failed(s, err, errlen, "read a record's versions");
    int rc = -1;
    bool any_deleted = false;
    for (size_t i = 0; i < n; i++)
        any_deleted |= cur[i].deleted;
    json_t *plain[MAX_SIBLINGS] = {0}, *oldf = NULL, *oldc = NULL, *u = NULL;
    if (n && !any_deleted) {
        bool open = true;
        for (size_t i = 0; i < n && open; i++)
            open = (plain[i] = unseal(s, &cur[i])) != NULL;
        if (open)
            (void)merge_payloads(s, plain, cur, n, &oldf, &oldc, &u);
    }
    if (fields ? (n == 1 && oldf && json_equal(oldf, (json_t *)fields))
               : (n > 0 && any_deleted && n == 1)) {
        rc = 0; /* nothing changed */
        goto out;
    }
    version v;
    memset(&v, 0, sizeof v);
    snprintf(v.rid, sizeof v.rid, "%s", rid);
    snprintf(v.dev, sizeof v.dev, "%s", s->device);
    v.hlc = cv_vclock_hlc_now(&s->hlc, now_ms);
    v.deleted = fields == NULL;
    int64_t mine = known(s, s->device);
    if (mine < 0) {
        rc = db_failed(s, err, errlen, "read the device's counter");
        goto out;
    }
    v.n = mine + 1;
    cv_vclock_init(&v.vv);
    for (size_t i = 0; i < n; i++)
        cv_vclock_join(&v.vv, &cur[i].vv);
    if (cv_vclock_set(&v.vv, s->device, v.n) < 0) {
        snprintf(err, errlen, "the record's version vector is full");
        goto out;
    }
    cv_vclock_format(&v.vv, v.vvtext, sizeof v.vvtext);
    json_t *p;
    if (fields) {
        json_t *clock = json_object();
        const char *k;
        json_t *val;
        json_object_foreach((json_t *)fields, k, val) {
            json_t *was = oldf ? json_object_get(oldf, k) : NULL;
            json_t *c = was && json_equal(was, val) ? json_object_get(oldc, k)
                                                    : NULL;
            json_object_set_new(clock, k, c ? json_incref(c)
                                            : json_integer((json_int_t)v.hlc));
        }
        p = json_pack("{s:s, s:s, s:O, s:o}", "user", user, "name", name,
                      "fields", fields, "clock", clock);
    } else {
        p = json_pack("{s:b}", "deleted", 1);
    }
    seal(s, &v, p);
    json_decref(p);
    rc = 1;
    for (size_t i = 0; i < n && rc == 1; i++)
        if (remove_version(s, &cur[i]) < 0)
            rc = -1;
    if (rc == 1 && (insert(s, &v) < 0 || know(s, v.dev, v.n) < 0 ||
                    (uid >= 0 && name && local_set(s, rid, uid, name) < 0)))
        rc = -1;
    if (rc < 0)
        db_failed(s, err, errlen, "store the change");
    version_free(&v);
out:
    json_decref(oldf);
    json_decref(oldc);
    json_decref(u);
    for (size_t i = 0; i < n; i++)
        json_decref(plain[i]);
    free_all(cur, n);
    return rc;
}

int cv_syncstore_local_change(cv_syncstore *s, int64_t uid, const char *user,
                              const char *name, const json_t *fields,
                              int64_t now_ms, char *err, size_t errlen)
{
    if (!s->keyed) {
        snprintf(err, errlen, "a relay makes no changes of its own");
        return -1;
    }
    char rid[CV_SYNC_RID_HEX + 1];
    cv_syncstore_rid(s, user, name, rid);
    return change(s, rid, uid, user, name, fields, now_ms, err, errlen);
}

int cv_syncstore_local_delete_uids(cv_syncstore *s, const int64_t *uids,
                                   size_t n, int64_t now_ms, char *err,
                                   size_t errlen)
{
    sqlite3_stmt *st = cv_db_stmt(s->db, "SELECT rid, name FROM sync_local "
                                  "WHERE uid = ?");
    if (!st)
        return db_failed(s, err, errlen, "read the user's records");
    for (size_t i = 0; i < n; i++) {
        /* gathered first: change() runs statements of its own */
        json_t *rids = json_array();
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, uids[i]);
        while (sqlite3_step(st) == SQLITE_ROW)
            json_array_append_new(rids, json_pack("[s,s]",
                (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1)));
        sqlite3_reset(st);
        size_t k;
        json_t *r;
        json_array_foreach(rids, k, r) {
            if (change(s, json_string_value(json_array_get(r, 0)), uids[i],
                       NULL, json_string_value(json_array_get(r, 1)), NULL,
                       now_ms, err, errlen) < 0) {
                json_decref(rids);
                return -1;
            }
        }
        json_decref(rids);
    }
    return 0;
}

/* --- the wire ------------------------------------------------------------ */

static json_t *version_json(const version *v)
{
    size_t b64len = sodium_base64_ENCODED_LEN(v->plen,
                                              sodium_base64_VARIANT_ORIGINAL);
    char *b64 = cv_calloc(1, b64len);
    sodium_bin2base64(b64, b64len, v->payload, v->plen,
                      sodium_base64_VARIANT_ORIGINAL);
    json_t *vv = json_loads(v->vvtext, 0, NULL);
    /* the clock as text: it needs 57 bits, and a JSON reader that holds
     * numbers as doubles (JavaScript, jq) would round it */
    char hlc[24];
    snprintf(hlc, sizeof hlc, "%llu", (unsigned long long)v->hlc);
    json_t *j = json_pack("{s:s, s:[s,I], s:o, s:s, s:b, s:s}", "rid", v->rid,
                          "dot", v->dev, (json_int_t)v->n, "vv", vv,
                          "hlc", hlc, "deleted", v->deleted, "payload", b64);
    free(b64);
    return j;
}

static bool rid_ok(const char *r)
{
    return r && strlen(r) == CV_SYNC_RID_HEX &&
           strspn(r, "0123456789abcdef") == CV_SYNC_RID_HEX;
}

/* A version from the wire; -1 with the reason in err. */
static int version_parse(const json_t *j, version *v, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    const char *rid = json_string_value(json_object_get(j, "rid"));
    json_t *dot = json_object_get(j, "dot");
    json_t *hlc = json_object_get(j, "hlc");
    json_t *del = json_object_get(j, "deleted");
    const char *b64 = json_string_value(json_object_get(j, "payload"));
    const char *dev = json_string_value(json_array_get(dot, 0));
    json_t *n = json_array_get(dot, 1);
    if (!json_is_object(j) || !rid_ok(rid)) {
        snprintf(err, errlen, "\"rid\" must be %d lowercase hex digits",
                 CV_SYNC_RID_HEX);
        return -1;
    }
    if (json_array_size(dot) != 2 || !dev || !cv_vclock_device_name_ok(dev) ||
        !json_is_integer(n) || json_integer_value(n) < 1) {
        snprintf(err, errlen, "\"dot\" must be [DEVICE, COUNTER]");
        return -1;
    }
    const char *h = json_string_value(hlc);
    if (!h || !*h || strlen(h) > 20 || strspn(h, "0123456789") != strlen(h) ||
        !json_is_boolean(del) || !b64) {
        snprintf(err, errlen, "\"hlc\", \"deleted\" and \"payload\" are "
                 "required: a decimal string, a boolean and base64");
        return -1;
    }
    snprintf(v->rid, sizeof v->rid, "%s", rid);
    snprintf(v->dev, sizeof v->dev, "%s", dev);
    v->n = json_integer_value(n);
    v->hlc = strtoull(h, NULL, 10);
    v->deleted = json_is_true(del);
    if (cv_vclock_from_json(&v->vv, json_object_get(j, "vv"), err, errlen) < 0)
        return -1;
    if (cv_vclock_get(&v->vv, v->dev) != v->n) {
        snprintf(err, errlen, "the version vector does not hold the dot");
        return -1;
    }
    cv_vclock_format(&v->vv, v->vvtext, sizeof v->vvtext);
    size_t blen = strlen(b64);
    if (blen > (size_t)MAX_PAYLOAD * 4 / 3 + 4) {
        snprintf(err, errlen, "the payload is over %d bytes", MAX_PAYLOAD);
        return -1;
    }
    v->payload = cv_calloc(1, blen + 1);
    if (sodium_base642bin(v->payload, blen, b64, blen, NULL, &v->plen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        v->plen < NONCE + TAG) {
        version_free(v);
        snprintf(err, errlen, "the payload is not a sealed payload in base64");
        return -1;
    }
    return 0;
}

json_t *cv_syncstore_changes(cv_syncstore *s, const cv_vclock *k,
                             const char *after_dev, int64_t after_n,
                             int limit, char *err, size_t errlen)
{
    json_t *versions = json_array(), *next = json_null();
    char dev[CV_DEVICE_MAX + 1] = "";
    int64_t from = 0;
    sqlite3_stmt *first = cv_db_stmt(s->db, "SELECT dev FROM sync_versions "
                                     "WHERE dev > ? ORDER BY dev LIMIT 1");
    sqlite3_stmt *page = cv_db_stmt(s->db, "SELECT " VERSION_COLS
                                    " FROM sync_versions WHERE dev = ? AND "
                                    "n > ? ORDER BY n LIMIT ?");
    if (!first || !page)
        goto failed;
    if (after_dev) {
        snprintf(dev, sizeof dev, "%s", after_dev);
        from = cv_vclock_get(k, dev);
        if (after_n > from)
            from = after_n;
    }
    for (;;) {
        if (dev[0]) {
            sqlite3_reset(page);
            sqlite3_bind_text(page, 1, dev, -1, SQLITE_STATIC);
            sqlite3_bind_int64(page, 2, from);
            sqlite3_bind_int(page, 3, limit - (int)json_array_size(versions));
            int rc;
            while ((rc = sqlite3_step(page)) == SQLITE_ROW) {
                version v;
                memset(&v, 0, sizeof v);
                row_version(page, 0, &v);
                json_array_append_new(versions, version_json(&v));
                version_free(&v);
            }
            sqlite3_reset(page);
            if (rc != SQLITE_DONE)
                goto failed;
            if ((int)json_array_size(versions) >= limit) {
                json_t *last = json_array_get(versions, json_array_size(versions) - 1);
                json_decref(next);
                next = json_incref(json_object_get(last, "dot"));
                break;
            }
        }
        sqlite3_reset(first);
        sqlite3_bind_text(first, 1, dev, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(first);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW)
            goto failed;
        snprintf(dev, sizeof dev, "%s", (const char *)sqlite3_column_text(first, 0));
        from = cv_vclock_get(k, dev);
    }
    sqlite3_reset(first);
    return json_pack("{s:o, s:o, s:o}", "versions", versions, "next", next,
                     "knowledge", cv_syncstore_knowledge(s));
failed:
    if (first)
        sqlite3_reset(first);
    json_decref(versions);
    json_decref(next);
    db_failed(s, err, errlen, "read the changes");
    return NULL;
}

/* Check a device's copy of a version: its payload opens under the group's
 * key and names the record it claims. */
static int check_payload(cv_syncstore *s, const version *v, char *err,
                         size_t errlen)
{
    json_t *p = unseal(s, v);
    int rc = -1;
    if (!p) {
        snprintf(err, errlen, "the payload does not open with this group's "
                 "key: another group's, or altered on the way");
        goto out;
    }
    if (v->deleted) {
        rc = 0;
        goto out;
    }
    const char *user = json_string_value(json_object_get(p, "user"));
    const char *name = json_string_value(json_object_get(p, "name"));
    if (!user || !name || !json_is_object(json_object_get(p, "fields")) ||
        !json_is_object(json_object_get(p, "clock"))) {
        snprintf(err, errlen, "the payload lacks its user, name, fields "
                 "or clock");
        goto out;
    }
    char rid[CV_SYNC_RID_HEX + 1];
    cv_syncstore_rid(s, user, name, rid);
    if (strcmp(rid, v->rid)) {
        snprintf(err, errlen, "the record id is not its user's and name's");
        goto out;
    }
    rc = 0;
out:
    json_decref(p);
    return rc;
}

/* Take one version: 1 stored, 0 held already or superseded, -1 with err
 * (*dbfail set when the database failed rather than the version). */
static int take(cv_syncstore *s, version *v, int *dbfail, char *err,
                size_t errlen)
{
    if (held(s, v->dev, v->n, dbfail))
        return 0;
    if (*dbfail)
        return db_failed(s, err, errlen, "look a version up");
    if (s->keyed && check_payload(s, v, err, errlen) < 0)
        return -1;
    version cur[MAX_SIBLINGS];
    size_t n;
    if (load(s, v->rid, cur, MAX_SIBLINGS, &n) < 0) {
        *dbfail = 1;
        return db_failed(s, err, errlen, "read a record's versions");
    }
    int rc = 1;
    for (size_t i = 0; i < n && rc == 1; i++) {
        cv_vc_order o = cv_vclock_compare(&v->vv, &cur[i].vv);
        if (o == CV_VC_BEFORE || o == CV_VC_EQUAL)
            rc = 0; /* what we hold descends from it */
    }
    if (rc == 1 && n == MAX_SIBLINGS) {
        snprintf(err, errlen, "the record has %d siblings already",
                 MAX_SIBLINGS);
        rc = -1;
    }
    for (size_t i = 0; i < n && rc == 1; i++)
        if (cv_vclock_compare(&cur[i].vv, &v->vv) == CV_VC_BEFORE &&
            remove_version(s, &cur[i]) < 0)
            rc = -2;
    if (rc == 1 && insert(s, v) < 0)
        rc = -2;
    if (rc == -2) {
        *dbfail = 1;
        rc = db_failed(s, err, errlen, "store a version");
    }
    free_all(cur, n);
    if (rc == 1 && cv_vclock_hlc_observe(&s->hlc, v->hlc, cv_now_ms()) < 0)
        cv_warn("sync: version %s:%lld is stamped more than an hour ahead of "
                "this clock: check the clocks of the devices", v->dev,
                (long long)v->n);
    return rc;
}

int cv_syncstore_apply(cv_syncstore *s, const json_t *versions,
                       const json_t *knowledge, cv_sync_view_fn *fn,
                       void *arg, cv_sync_apply_stats *st,
                       json_t *rejections, char *err, size_t errlen)
{
    json_t *touched = json_object(); /* rids whose view may have changed */
    size_t i;
    json_t *j;
    int rc = 0;
    json_array_foreach(versions, i, j) {
        version v;
        char why[256];
        int dbfail = 0, r = version_parse(j, &v, why, sizeof why);
        if (r == 0)
            r = take(s, &v, &dbfail, why, sizeof why);
        if (dbfail) {
            snprintf(err, errlen, "%s", why);
            version_free(&v);
            rc = -1;
            goto out;
        }
        if (r < 0) {
            st->rejected++;
            if (rejections)
                json_array_append_new(rejections, json_pack("{s:I, s:s}",
                    "index", (json_int_t)i, "error", why));
        } else if (r == 0) {
            st->seen++;
        } else {
            st->applied++;
            json_object_set_new(touched, v.rid, json_true());
        }
        version_free(&v);
    }
    const char *dev;
    json_t *n;
    json_object_foreach((json_t *)knowledge, dev, n) {
        if (!cv_vclock_device_name_ok(dev) || !json_is_integer(n))
            continue;
        if (know(s, dev, json_integer_value(n)) < 0) {
            rc = db_failed(s, err, errlen, "record what is known");
            goto out;
        }
    }
    if (s->keyed && fn) {
        const char *rid;
        json_t *t;
        json_object_foreach(touched, rid, t)
            if ((rc = store_view(s, rid, fn, arg, st, err, errlen)) < 0)
                goto out;
    }
out:
    json_decref(touched);
    return rc;
}

/* --- looking at it ----------------------------------------------------- */

static const char *hlc_text(uint64_t h, char buf[24])
{
    snprintf(buf, 24, "%llu", (unsigned long long)h);
    return buf;
}

/* The records with siblings that no rule settles. */
static int each_conflict(cv_syncstore *s, const char *user, int limit,
                         json_t *out, int64_t *count, char *err, size_t errlen)
{
    sqlite3_stmt *st = cv_db_stmt(s->db, "SELECT rid FROM sync_versions "
                                  "GROUP BY rid HAVING count(*) > 1 AND "
                                  "max(deleted) = 0");
    if (!st)
        return db_failed(s, err, errlen, "read the records");
    json_t *rids = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(rids, json_string((const char *)
                                                sqlite3_column_text(st, 0)));
    sqlite3_reset(st);
    size_t i;
    json_t *r;
    int rc = 0;
    json_array_foreach(rids, i, r) {
        version vs[MAX_SIBLINGS];
        size_t n;
        if (load(s, json_string_value(r), vs, MAX_SIBLINGS, &n) < 0) {
            rc = db_failed(s, err, errlen, "read a record's versions");
            break;
        }
        if (!s->keyed) {
            (*count)++; /* a relay cannot tell settled from not */
            free_all(vs, n);
            continue;
        }
        json_t *plain[MAX_SIBLINGS] = {0}, *f = NULL, *c = NULL, *u = NULL;
        bool open = true;
        for (size_t k = 0; k < n && open; k++)
            open = (plain[k] = unseal(s, &vs[k])) != NULL;
        const char *who = open ? json_string_value(json_object_get(plain[0], "user")) : NULL;
        if (open && merge_payloads(s, plain, vs, n, &f, &c, &u) == 1 &&
            (!user || (who && !strcmp(who, user)))) {
            (*count)++;
            if (out && (limit <= 0 || (int)json_array_size(out) < limit)) {
                json_t *sib = json_array();
                char hbuf[24];
                for (size_t k = 0; k < n; k++)
                    json_array_append_new(sib, json_pack("{s:[s,I], s:s, s:I, s:O}",
                        "dot", vs[k].dev, (json_int_t)vs[k].n,
                        "hlc", hlc_text(vs[k].hlc, hbuf),
                        "at", (json_int_t)cv_vclock_hlc_ms(vs[k].hlc),
                        "fields", json_object_get(plain[k], "fields")));
                json_array_append_new(out, json_pack("{s:s, s:s, s:O, s:O, s:o, s:O}",
                    "rid", vs[0].rid, "user", who,
                    "name", json_object_get(plain[0], "name"),
                    "unsettled", u, "siblings", sib, "merged", f));
            }
        }
        json_decref(f);
        json_decref(c);
        json_decref(u);
        for (size_t k = 0; k < n; k++)
            json_decref(plain[k]);
        free_all(vs, n);
    }
    json_decref(rids);
    return rc;
}

json_t *cv_syncstore_state(cv_syncstore *s, bool checksum, char *err,
                           size_t errlen)
{
    sqlite3_stmt *st = cv_db_stmt(s->db, "SELECT count(*), count(DISTINCT rid),"
                                  " coalesce(sum(deleted), 0) FROM sync_versions");
    if (!st || sqlite3_step(st) != SQLITE_ROW) {
        if (st)
            sqlite3_reset(st);
        db_failed(s, err, errlen, "count the versions");
        return NULL;
    }
    json_t *r = json_pack("{s:I, s:I, s:I}",
                          "versions", (json_int_t)sqlite3_column_int64(st, 0),
                          "records", (json_int_t)sqlite3_column_int64(st, 1),
                          "tombstones", (json_int_t)sqlite3_column_int64(st, 2));
    sqlite3_reset(st);
    int64_t conflicts = 0;
    if (each_conflict(s, NULL, 0, NULL, &conflicts, err, errlen) < 0) {
        json_decref(r);
        return NULL;
    }
    json_object_set_new(r, "conflicts", json_integer(conflicts));
    json_object_set_new(r, "knowledge", cv_syncstore_knowledge(s));
    if (!checksum)
        return r;
    st = cv_db_stmt(s->db, "SELECT " VERSION_COLS " FROM sync_versions "
                    "ORDER BY dev, n");
    if (!st) {
        json_decref(r);
        db_failed(s, err, errlen, "read the versions");
        return NULL;
    }
    crypto_generichash_state g;
    crypto_generichash_init(&g, NULL, 0, 32);
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < 7; c++) {
            const void *b = c == 6 ? sqlite3_column_blob(st, c)
                                   : (const void *)sqlite3_column_text(st, c);
            int len = sqlite3_column_bytes(st, c);
            unsigned char l[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                                  (unsigned char)(len >> 8), (unsigned char)len};
            crypto_generichash_update(&g, l, sizeof l);
            if (len)
                crypto_generichash_update(&g, b, (size_t)len);
        }
    }
    sqlite3_reset(st);
    unsigned char h[32];
    char hex[65];
    crypto_generichash_final(&g, h, sizeof h);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    json_object_set_new(r, "checksum", json_string(hex));
    return r;
}

json_t *cv_syncstore_conflicts(cv_syncstore *s, const char *user, int limit,
                               char *err, size_t errlen)
{
    json_t *out = json_array();
    int64_t count = 0;
    if (each_conflict(s, user, limit, out, &count, err, errlen) < 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}
