/* datakeys.c - the data-key store (datakeys.h).
 *
 * One table: keys(id, owner, kek, wrapped, created, expires, ephemeral).
 * A key is wrapped as nonce | ciphertext | tag under the keyring version
 * kek's subkey "wrap", with "<id>\0<owner>" as associated data, so a
 * wrapped key moved to another owner does not open. Sealing looks keys up
 * by owner through a cache (an event costs a hash probe, not a query);
 * the cache is dropped whenever another process changed the file, which
 * PRAGMA data_version tells without reading it. */
#include "crypto/datakeys.h"

#include "base/time.h"
#include "base/util.h"

#include <errno.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAGB crypto_aead_xchacha20poly1305_ietf_ABYTES
#define WRAPPED (NONCE + CV_KEY_BYTES + TAGB)
#define OWNER_MAX 48
#define SLOTS 16384 /* cached users; a full cache is simply emptied */
#define HOUR_MS 3600000LL
#define EXPIRY_SLACK_MS 300000LL /* an hour key outlives its rows by this */
#define CHECK_EVERY_MS 20 /* data_version is read at most this often */

#define ERR(...) ((void)snprintf(err, errlen, __VA_ARGS__), -1)

typedef struct {
    char *user;      /* raw user id, NULL: empty slot */
    size_t len;
    bool ephemeral;
    uint32_t hash;
} slot;

struct cv_datakeys {
    sqlite3 *db;
    const cv_keyring *kr;
    int64_t ephemeral_ms;
    bool in_txn;
    int data_version;
    int64_t checked_ms;
    slot *slots;        /* open addressing over SLOTS */
    cv_datakey *keys;   /* sodium_malloc: the key of slots[i] */
    size_t used;
    cv_datakey *hour;   /* sodium_malloc: the last hour key handed out */
    int64_t hour_n;     /* its hour, or -1 */
    sqlite3_stmt *get, *put, *mark, *byid;
};

static int exec(cv_datakeys *ds, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(ds->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        (void)ERR("data-key store: %s", msg ? msg : sqlite3_errmsg(ds->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static uint32_t fnv(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* "u:" + keyed BLAKE2b-128 of the raw id under the id key: stable across
 * rotations, and not a pseudonym stored anywhere else. */
static void user_owner(const cv_datakeys *ds, const char *user, size_t len,
                       char out[OWNER_MAX])
{
    uint8_t d[16];
    crypto_generichash_state st;
    crypto_generichash_init(&st, cv_keyring_id_key(ds->kr), CV_KEY_BYTES,
                            sizeof d);
    crypto_generichash_update(&st, (const uint8_t *)"datakey-owner", 14);
    crypto_generichash_update(&st, (const uint8_t *)user, len);
    crypto_generichash_final(&st, d, sizeof d);
    out[0] = 'u';
    out[1] = ':';
    sodium_bin2base64(out + 2, OWNER_MAX - 2, d, sizeof d,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void ad_of(const char *id, const char *owner, uint8_t *ad, size_t *n)
{
    size_t il = strlen(id), ol = strlen(owner);
    memcpy(ad, id, il);
    ad[il] = '\0';
    memcpy(ad + il + 1, owner, ol);
    *n = il + 1 + ol;
}

static int wrap(const cv_datakeys *ds, uint32_t kek, const cv_datakey *dk,
                const char *owner, uint8_t out[WRAPPED])
{
    uint8_t wk[CV_KEY_BYTES], ad[CV_DATAKEY_ID_LEN + 1 + OWNER_MAX];
    size_t adlen;
    if (cv_keyring_subkey(ds->kr, kek, "wrap", wk) < 0)
        return -1;
    ad_of(dk->id, owner, ad, &adlen);
    randombytes_buf(out, NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + NONCE, NULL, dk->key,
                                               CV_KEY_BYTES, ad, adlen, NULL,
                                               out, wk);
    sodium_memzero(wk, sizeof wk);
    return 0;
}

static int unwrap(const cv_datakeys *ds, uint32_t kek, const char *id,
                  const char *owner, const uint8_t *w, size_t wlen,
                  cv_datakey *out, char *err, size_t errlen)
{
    uint8_t wk[CV_KEY_BYTES], ad[CV_DATAKEY_ID_LEN + 1 + OWNER_MAX];
    size_t adlen;
    if (wlen != WRAPPED || strlen(id) != CV_DATAKEY_ID_LEN ||
        strlen(owner) >= OWNER_MAX)
        return ERR("data key %s is stored malformed", id);
    if (cv_keyring_subkey(ds->kr, kek, "wrap", wk) < 0)
        return ERR("data key %s is wrapped under key version %u, which is "
                   "not in the keyring", id, kek);
    ad_of(id, owner, ad, &adlen);
    int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
        out->key, NULL, NULL, w + NONCE, CV_KEY_BYTES + TAGB, ad, adlen, w,
        wk);
    sodium_memzero(wk, sizeof wk);
    if (rc != 0)
        return ERR("data key %s does not unwrap (altered, or moved to "
                   "another owner)", id);
    memcpy(out->id, id, CV_DATAKEY_ID_LEN + 1);
    cv_keyring_datakey_derive(out);
    return 0;
}

static int prepare(cv_datakeys *ds, sqlite3_stmt **st, const char *sql,
                   char *err, size_t errlen)
{
    if (sqlite3_prepare_v3(ds->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
                           NULL) != SQLITE_OK)
        return ERR("data-key store: %s", sqlite3_errmsg(ds->db));
    return 0;
}

static int lookup_byid(void *ctx, const char *id, cv_datakey *out,
                       char *err, size_t errlen)
{
    return cv_datakeys_find(ctx, id, out, err, errlen);
}

void cv_datakeys_attach(cv_datakeys *ds, cv_keyring *kr)
{
    cv_keyring_set_datakey_lookup(kr, lookup_byid, ds);
}

cv_datakeys *cv_datakeys_open(const char *path, const cv_keyring *kr,
                              bool create, int64_t ephemeral_ms, char *err,
                              size_t errlen)
{
    cv_datakeys *ds = cv_calloc(1, sizeof *ds);
    ds->kr = kr;
    ds->ephemeral_ms = ephemeral_ms;
    ds->hour_n = -1;
    struct stat sb;
    if (!create && stat(path, &sb) < 0) {
        (void)ERR("cannot open the data-key store %s: %s", path, strerror(errno));
        goto fail;
    }
    if (create) {
        char *dir = cv_strdup(path), *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            if (cv_mkdir_p(dir, 0700, false) < 0) {
                (void)ERR("cannot create %s: %s", dir, strerror(errno));
                free(dir);
                goto fail;
            }
        }
        free(dir);
    }
    /* SQLite creates the file with the umask's mode: make it 0600 first */
    mode_t old = umask(077);
    int rc = sqlite3_open_v2(path, &ds->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                                 (create ? SQLITE_OPEN_CREATE : 0),
                             NULL);
    umask(old);
    if (rc != SQLITE_OK) {
        (void)ERR("cannot open the data-key store %s: %s", path,
            ds->db ? sqlite3_errmsg(ds->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(ds->db, 10000);
    /* switching to WAL takes an exclusive lock that the busy handler does
     * not wait for: two programs starting together retry */
    for (int i = 0;; i++) {
        rc = sqlite3_exec(ds->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK || i == 500 ||
            (rc != SQLITE_BUSY && rc != SQLITE_LOCKED))
            break;
        usleep(10000);
    }
    if (exec(ds, "PRAGMA synchronous=FULL; PRAGMA secure_delete=ON;"
                 "CREATE TABLE IF NOT EXISTS keys("
                 " id TEXT PRIMARY KEY, owner TEXT NOT NULL UNIQUE,"
                 " kek INTEGER NOT NULL, wrapped BLOB NOT NULL,"
                 " created INTEGER NOT NULL, expires INTEGER,"
                 " ephemeral INTEGER NOT NULL DEFAULT 0)",
             err, errlen) < 0)
        goto fail;
    (void)chmod(path, 0600);
    if (prepare(ds, &ds->get, "SELECT id, kek, wrapped, ephemeral FROM keys "
                              "WHERE owner = ?", err, errlen) < 0 ||
        prepare(ds, &ds->put, "INSERT INTO keys(id, owner, kek, wrapped, "
                              "created, expires, ephemeral) VALUES(?,?,?,?,?,?,?)"
                              " ON CONFLICT(owner) DO NOTHING", err, errlen) < 0 ||
        prepare(ds, &ds->mark, "UPDATE keys SET ephemeral = ? WHERE owner = ?",
                err, errlen) < 0 ||
        prepare(ds, &ds->byid, "SELECT owner, kek, wrapped FROM keys "
                               "WHERE id = ?", err, errlen) < 0)
        goto fail;
    ds->slots = cv_calloc(SLOTS, sizeof *ds->slots);
    ds->keys = sodium_allocarray(SLOTS, sizeof *ds->keys);
    ds->hour = sodium_malloc(sizeof *ds->hour);
    if (!ds->keys || !ds->hour) {
        (void)ERR("cannot allocate secure memory: %s", strerror(errno));
        goto fail;
    }
    return ds;
fail:
    cv_datakeys_destroy(&ds);
    return NULL;
}

static void cache_clear(cv_datakeys *ds)
{
    for (size_t i = 0; i < SLOTS && ds->used; i++)
        if (ds->slots[i].user) {
            free(ds->slots[i].user);
            ds->slots[i].user = NULL;
            ds->used--;
        }
    sodium_memzero(ds->keys, SLOTS * sizeof *ds->keys);
    ds->used = 0;
    ds->hour_n = -1;
}

cv_datakeys *cv_datakeys_of_instance(const char *path, cv_keyring *kr,
                                     bool write, int64_t ephemeral_ms)
{
    struct stat sb;
    char err[512];
    if (!write && stat(path, &sb) < 0)
        return NULL;
    cv_datakeys *ds = cv_datakeys_open(path, kr, write, ephemeral_ms, err,
                                       sizeof err);
    if (!ds)
        cv_err("%s", err);
    else
        cv_datakeys_attach(ds, kr);
    return ds;
}

void cv_datakeys_destroy(cv_datakeys **p)
{
    cv_datakeys *ds = *p;
    if (!ds)
        return;
    if (ds->in_txn)
        sqlite3_exec(ds->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_finalize(ds->get);
    sqlite3_finalize(ds->put);
    sqlite3_finalize(ds->mark);
    sqlite3_finalize(ds->byid);
    sqlite3_close(ds->db);
    if (ds->slots && ds->keys)
        cache_clear(ds);
    free(ds->slots);
    if (ds->keys)
        sodium_free(ds->keys);
    if (ds->hour)
        sodium_free(ds->hour);
    free(ds);
    *p = NULL;
}

/* Drop the cache when another process changed the store (an erasure, an
 * expiry): a destroyed key must not go on sealing. */
static void check_changes(cv_datakeys *ds)
{
    int64_t now = cv_now_ms();
    if (now - ds->checked_ms < CHECK_EVERY_MS)
        return;
    ds->checked_ms = now;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(ds->db, "PRAGMA data_version", -1, &st, NULL) !=
        SQLITE_OK)
        return;
    if (sqlite3_step(st) == SQLITE_ROW) {
        int v = sqlite3_column_int(st, 0);
        if (v != ds->data_version) {
            ds->data_version = v;
            cache_clear(ds);
        }
    }
    sqlite3_finalize(st);
}

static int begin(cv_datakeys *ds, char *err, size_t errlen)
{
    if (ds->in_txn)
        return 0;
    if (exec(ds, "BEGIN IMMEDIATE", err, errlen) < 0)
        return -1;
    ds->in_txn = true;
    return 0;
}

int cv_datakeys_commit(cv_datakeys *ds, char *err, size_t errlen)
{
    if (!ds->in_txn)
        return 0;
    ds->in_txn = false;
    if (exec(ds, "COMMIT", err, errlen) < 0) {
        sqlite3_exec(ds->db, "ROLLBACK", NULL, NULL, NULL);
        cache_clear(ds); /* keys made in it are gone */
        return -1;
    }
    return 0;
}

/* The key of owner, made when missing (ephemeral marks a new user key,
 * expires an hour key). 0 or -1. */
static int get_or_make(cv_datakeys *ds, const char *owner, int64_t expires,
                       bool *ephemeral, cv_datakey *out, char *err,
                       size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        sqlite3_stmt *st = ds->get;
        sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            char id[CV_DATAKEY_ID_LEN + 1];
            snprintf(id, sizeof id, "%s", (const char *)sqlite3_column_text(st, 0));
            uint32_t kek = (uint32_t)sqlite3_column_int64(st, 1);
            if (ephemeral)
                *ephemeral = sqlite3_column_int(st, 3) != 0;
            int u = unwrap(ds, kek, id, owner, sqlite3_column_blob(st, 2),
                           (size_t)sqlite3_column_bytes(st, 2), out, err,
                           errlen);
            sqlite3_reset(st);
            return u;
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            return ERR("data-key store: %s", sqlite3_errmsg(ds->db));
        if (attempt == 1)
            break;
        /* make one; if another process made one first, theirs is read */
        if (begin(ds, err, errlen) < 0)
            return -1;
        uint8_t idb[12], w[WRAPPED];
        uint32_t kek = cv_keyring_primary(ds->kr);
        randombytes_buf(idb, sizeof idb);
        sodium_bin2base64(out->id, sizeof out->id, idb, sizeof idb,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        randombytes_buf(out->key, sizeof out->key);
        if (wrap(ds, kek, out, owner, w) < 0)
            return ERR("primary key version %u is missing", kek);
        st = ds->put;
        sqlite3_bind_text(st, 1, out->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, kek);
        sqlite3_bind_blob(st, 4, w, sizeof w, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, cv_now_ms());
        if (expires >= 0)
            sqlite3_bind_int64(st, 6, expires);
        else
            sqlite3_bind_null(st, 6);
        sqlite3_bind_int(st, 7, 0);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        sodium_memzero(out->key, sizeof out->key);
        if (rc != SQLITE_DONE)
            return ERR("cannot store a data key: %s", sqlite3_errmsg(ds->db));
    }
    return ERR("data key of %s vanished while it was made", owner);
}

static slot *find_slot(cv_datakeys *ds, const char *user, size_t len,
                       uint32_t h)
{
    for (uint32_t i = h & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
        slot *s = &ds->slots[i];
        if (!s->user || (s->hash == h && s->len == len &&
                         memcmp(s->user, user, len) == 0))
            return s;
    }
}

/* The cache slot of user (key loaded), or NULL with err. */
static slot *user_slot(cv_datakeys *ds, const char *user, size_t len,
                       char *err, size_t errlen)
{
    check_changes(ds);
    uint32_t h = fnv(user, len);
    slot *s = find_slot(ds, user, len, h);
    if (s->user)
        return s;
    if (ds->used >= SLOTS / 2) { /* keep probes short */
        cache_clear(ds);
        s = find_slot(ds, user, len, h);
    }
    cv_datakey *k = &ds->keys[s - ds->slots];
    char owner[OWNER_MAX];
    bool eph = false;
    user_owner(ds, user, len, owner);
    if (get_or_make(ds, owner, -1, &eph, k, err, errlen) < 0)
        return NULL;
    s->user = cv_malloc(len + 1);
    memcpy(s->user, user, len);
    s->user[len] = '\0';
    s->len = len;
    s->hash = h;
    s->ephemeral = eph;
    ds->used++;
    return s;
}

const cv_datakey *cv_datakeys_for_user(cv_datakeys *ds, const char *user_id,
                                       size_t len, const char *ts_text,
                                       char *err, size_t errlen)
{
    slot *s = user_slot(ds, user_id, len, err, errlen);
    if (!s)
        return NULL;
    if (!s->ephemeral)
        return &ds->keys[s - ds->slots];
    int64_t ts = -1;
    if (ts_text && !cv_time_parse(ts_text, strlen(ts_text), &ts))
        ts = -1;
    int64_t now = cv_now_ms();
    int64_t hour = (ts >= 0 && ts < now ? ts : now) / HOUR_MS;
    if (hour != ds->hour_n) {
        char owner[OWNER_MAX];
        snprintf(owner, sizeof owner, "h:%lld", (long long)hour);
        int64_t expires = (hour + 1) * HOUR_MS + ds->ephemeral_ms +
                          EXPIRY_SLACK_MS;
        if (get_or_make(ds, owner, expires, NULL, ds->hour, err, errlen) < 0) {
            ds->hour_n = -1;
            return NULL;
        }
        ds->hour_n = hour;
    }
    return ds->hour;
}

int cv_datakeys_set_ephemeral(cv_datakeys *ds, const char *user_id,
                              size_t len, bool on, char *err, size_t errlen)
{
    slot *s = user_slot(ds, user_id, len, err, errlen); /* makes the row */
    if (!s)
        return -1;
    if (s->ephemeral == on)
        return 0;
    char owner[OWNER_MAX];
    user_owner(ds, user_id, len, owner);
    if (begin(ds, err, errlen) < 0)
        return -1;
    sqlite3_bind_int(ds->mark, 1, on);
    sqlite3_bind_text(ds->mark, 2, owner, -1, SQLITE_STATIC);
    int rc = sqlite3_step(ds->mark);
    sqlite3_reset(ds->mark);
    if (rc != SQLITE_DONE)
        return ERR("cannot mark a user ephemeral: %s", sqlite3_errmsg(ds->db));
    s->ephemeral = on;
    return 0;
}

int cv_datakeys_find(cv_datakeys *ds, const char *id, cv_datakey *out,
                     char *err, size_t errlen)
{
    sqlite3_stmt *st = ds->byid;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), found = 0;
    if (rc == SQLITE_ROW) {
        char owner[OWNER_MAX];
        snprintf(owner, sizeof owner, "%s",
                 (const char *)sqlite3_column_text(st, 0));
        found = unwrap(ds, (uint32_t)sqlite3_column_int64(st, 1), id, owner,
                       sqlite3_column_blob(st, 2),
                       (size_t)sqlite3_column_bytes(st, 2), out, err,
                       errlen) < 0 ? -1 : 1;
    } else if (rc != SQLITE_DONE) {
        found = ERR("data-key store: %s", sqlite3_errmsg(ds->db));
    }
    sqlite3_reset(st);
    return found;
}

/* Delete what where names, then make sure no copy of the wrapped keys is
 * left in the WAL (secure_delete zeroes the pages in the database file
 * when the checkpoint writes them). The count deleted, or -1. */
static int destroy_where(cv_datakeys *ds, const char *sql, const char *text,
                         int64_t num, char *err, size_t errlen)
{
    if (cv_datakeys_commit(ds, err, errlen) < 0)
        return -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(ds->db, sql, -1, &st, NULL) != SQLITE_OK)
        return ERR("data-key store: %s", sqlite3_errmsg(ds->db));
    if (text)
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 1, num);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return ERR("cannot destroy data keys: %s", sqlite3_errmsg(ds->db));
    int n = sqlite3_changes(ds->db);
    if (n > 0) {
        int log = 0, done = 0;
        if (sqlite3_wal_checkpoint_v2(ds->db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
                                      &log, &done) != SQLITE_OK)
            cv_err("data-key store: the WAL was not truncated after a key "
                   "was destroyed (%s); it will be at the next checkpoint",
                   sqlite3_errmsg(ds->db));
    }
    cache_clear(ds);
    return n;
}

int cv_datakeys_forget_user(cv_datakeys *ds, const char *user_id,
                            char *err, size_t errlen)
{
    char owner[OWNER_MAX];
    user_owner(ds, user_id, strlen(user_id), owner);
    return destroy_where(ds, "DELETE FROM keys WHERE owner = ?", owner, 0, err,
                         errlen);
}

int cv_datakeys_expire(cv_datakeys *ds, int64_t now, char *err, size_t errlen)
{
    return destroy_where(ds, "DELETE FROM keys WHERE expires IS NOT NULL AND "
                             "expires <= ?", NULL, now, err, errlen);
}

int cv_datakeys_rewrap(cv_datakeys *ds, char *err, size_t errlen)
{
    uint32_t kek = cv_keyring_primary(ds->kr);
    sqlite3_stmt *sel = NULL, *upd = NULL;
    int n = 0;
    cv_datakey *dk = sodium_malloc(sizeof *dk);
    if (!dk)
        return ERR("cannot allocate secure memory: %s", strerror(errno));
    if (cv_datakeys_commit(ds, err, errlen) < 0 ||
        exec(ds, "BEGIN IMMEDIATE", err, errlen) < 0)
        goto fail;
    if (sqlite3_prepare_v2(ds->db, "SELECT id, owner, kek, wrapped FROM keys "
                                   "WHERE kek <> ?", -1, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(ds->db, "UPDATE keys SET kek = ?, wrapped = ? "
                                   "WHERE id = ?", -1, &upd, NULL) != SQLITE_OK) {
        (void)ERR("data-key store: %s", sqlite3_errmsg(ds->db));
        goto rollback;
    }
    sqlite3_bind_int64(sel, 1, kek);
    while (sqlite3_step(sel) == SQLITE_ROW) {
        char id[CV_DATAKEY_ID_LEN + 1], owner[OWNER_MAX];
        uint8_t w[WRAPPED];
        snprintf(id, sizeof id, "%s", (const char *)sqlite3_column_text(sel, 0));
        snprintf(owner, sizeof owner, "%s",
                 (const char *)sqlite3_column_text(sel, 1));
        if (unwrap(ds, (uint32_t)sqlite3_column_int64(sel, 2), id, owner,
                   sqlite3_column_blob(sel, 3),
                   (size_t)sqlite3_column_bytes(sel, 3), dk, err, errlen) < 0 ||
            wrap(ds, kek, dk, owner, w) < 0)
            goto rollback;
        sqlite3_bind_int64(upd, 1, kek);
        sqlite3_bind_blob(upd, 2, w, sizeof w, SQLITE_TRANSIENT);
        sqlite3_bind_text(upd, 3, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(upd) != SQLITE_DONE) {
            (void)ERR("cannot rewrap data key %s: %s", id, sqlite3_errmsg(ds->db));
            goto rollback;
        }
        sqlite3_reset(upd);
        n++;
    }
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    sel = upd = NULL;
    if (exec(ds, "COMMIT", err, errlen) < 0)
        goto rollback;
    sodium_free(dk);
    return n;
rollback:
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    sqlite3_exec(ds->db, "ROLLBACK", NULL, NULL, NULL);
fail:
    sodium_free(dk);
    return -1;
}

int64_t cv_datakeys_count_kek(cv_datakeys *ds, uint32_t version)
{
    sqlite3_stmt *st;
    int64_t n = -1;
    if (sqlite3_prepare_v2(ds->db, "SELECT count(*) FROM keys WHERE kek = ?",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, version);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

json_t *cv_datakeys_describe(cv_datakeys *ds)
{
    json_t *o = json_pack("{s:i, s:i, s:i, s:o}", "users", 0, "hours", 0,
                          "ephemeral_users", 0, "by_version", json_object());
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(ds->db,
                           "SELECT substr(owner, 1, 1), kek, ephemeral, "
                           "count(*) FROM keys GROUP BY 1, 2, 3",
                           -1, &st, NULL) != SQLITE_OK)
        return o;
    json_t *by = json_object_get(o, "by_version");
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        json_int_t n = sqlite3_column_int64(st, 3);
        const char *field = k && *k == 'h' ? "hours" : "users";
        json_object_set_new(o, field, json_integer(
            json_integer_value(json_object_get(o, field)) + n));
        if (k && *k == 'u' && sqlite3_column_int(st, 2))
            json_object_set_new(o, "ephemeral_users", json_integer(
                json_integer_value(json_object_get(o, "ephemeral_users")) + n));
        char v[16];
        snprintf(v, sizeof v, "%lld", (long long)sqlite3_column_int64(st, 1));
        json_object_set_new(by, v, json_integer(
            json_integer_value(json_object_get(by, v)) + n));
    }
    sqlite3_finalize(st);
    return o;
}

int cv_datakeys_of_body(cv_datakeys *ds, const char *body, cv_datakey *out)
{
    static const char *const marks[] = {"\"enc:d", "\"hash:d"};
    for (size_t i = 0; ds && i < 2; i++) {
        const char *p = strstr(body, marks[i]);
        if (!p)
            continue;
        p += strlen(marks[i]);
        char id[CV_DATAKEY_ID_LEN + 1], err[256];
        size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                             "0123456789-_");
        if (n != CV_DATAKEY_ID_LEN)
            continue;
        memcpy(id, p, n);
        id[n] = '\0';
        if (cv_datakeys_find(ds, id, out, err, sizeof err) == 1)
            return 1;
    }
    return 0;
}
