/* audit.c - the hash-chained audit trail. See audit.h. */
#include "storage/audit.h"

#include "crypto/fieldcrypt.h"
#include "base/time.h"
#include "base/util.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define DIGEST 32
#define MAC_BYTES (1 + DIGEST)  /* key version, then the digest */
#define HEX_MAX (2 * MAC_BYTES + 1)

typedef struct {
    uint8_t mac[MAC_BYTES];
    size_t len;                 /* 0: none */
} mac_t;

static int start(crypto_generichash_state *st, const cv_keyring *kr,
                 uint32_t v, const char *what)
{
    uint8_t key[CV_KEY_BYTES];
    if (v < 1 || v > 255 || cv_keyring_subkey(kr, v, "audit", key) < 0)
        return -1;
    crypto_generichash_init(st, key, sizeof key, DIGEST);
    sodium_memzero(key, sizeof key);
    cv_fieldcrypt_mac_put_str(st, what);
    return 0;
}

static int finish(crypto_generichash_state *st, uint32_t v, mac_t *out)
{
    out->mac[0] = (uint8_t)v;
    crypto_generichash_final(st, out->mac + 1, DIGEST);
    out->len = MAC_BYTES;
    return 0;
}

/* The mac of one entry (under key version v). */
static int entry_mac(const cv_keyring *kr, uint32_t v, int64_t seq,
                     int64_t at, const char *actor, const char *action,
                     const char *subject, int64_t rows, const char *detail,
                     const mac_t *prev, mac_t *out)
{
    crypto_generichash_state st;
    if (start(&st, kr, v, "entry") < 0)
        return -1;
    cv_fieldcrypt_mac_put_int(&st, seq);
    cv_fieldcrypt_mac_put_int(&st, at);
    cv_fieldcrypt_mac_put_str(&st, actor);
    cv_fieldcrypt_mac_put_str(&st, action);
    cv_fieldcrypt_mac_put_str(&st, subject);
    cv_fieldcrypt_mac_put_int(&st, rows);
    cv_fieldcrypt_mac_put_str(&st, detail);
    cv_fieldcrypt_mac_put(&st, prev->mac, prev->len, true);
    return finish(&st, v, out);
}

/* The seal over the chain's ends, so neither can be moved unnoticed. */
static int seal_mac(const cv_keyring *kr, uint32_t v, const mac_t *base,
                    int64_t head_seq, const mac_t *head, mac_t *out)
{
    crypto_generichash_state st;
    if (start(&st, kr, v, "seal") < 0)
        return -1;
    cv_fieldcrypt_mac_put(&st, base->mac, base->len, true);
    cv_fieldcrypt_mac_put_int(&st, head_seq);
    cv_fieldcrypt_mac_put(&st, head->mac, head->len, true);
    return finish(&st, v, out);
}

static void to_hex(const mac_t *m, char out[HEX_MAX])
{
    sodium_bin2hex(out, HEX_MAX, m->mac, m->len);
}

static bool from_hex(const char *hex, mac_t *m)
{
    size_t n = 0;
    m->len = 0;
    if (!hex || !*hex)
        return true;
    if (sodium_hex2bin(m->mac, sizeof m->mac, hex, strlen(hex), NULL, &n,
                       NULL) != 0 || n != MAC_BYTES)
        return false;
    m->len = n;
    return true;
}

/* ---- meta: base, head and seal ----------------------------------------- */

typedef struct {
    bool present;       /* the chain has been started */
    mac_t base, head, seal;
    int64_t head_seq;
    bool malformed;
} chain_ends;

static char *meta_get(cv_db *db, const char *key, bool *err)
{
    sqlite3_stmt *st = cv_db_stmt(db, "SELECT value FROM meta WHERE key = ?");
    if (!st) {
        *err = true;
        return NULL;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    char *v = NULL;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
        v = cv_strdup((const char *)sqlite3_column_text(st, 0));
    else if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        *err = true;
    sqlite3_reset(st);
    return v;
}

static int meta_set(cv_db *db, const char *key, const char *value)
{
    sqlite3_stmt *st = cv_db_stmt(db,
        "INSERT INTO meta(key, value) VALUES(?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int read_ends(cv_db *db, chain_ends *e)
{
    bool err = false;
    memset(e, 0, sizeof *e);
    char *base = meta_get(db, "audit_base", &err);
    char *head = meta_get(db, "audit_head", &err);
    char *seal = meta_get(db, "audit_seal", &err);
    if (!err && (base || head || seal)) {
        e->present = true;
        char *colon = head ? strchr(head, ':') : NULL;
        if (!base || !head || !seal || !colon) {
            e->malformed = true;
        } else {
            *colon = '\0';
            e->malformed = !cv_parse_int(head, 0, INT64_MAX, &e->head_seq) ||
                           !from_hex(colon + 1, &e->head) ||
                           !from_hex(base, &e->base) || !from_hex(seal, &e->seal);
        }
    }
    free(base);
    free(head);
    free(seal);
    return err ? -1 : 0;
}

static int write_ends(cv_db *db, const cv_keyring *kr, const mac_t *base,
                      int64_t head_seq, const mac_t *head)
{
    mac_t seal;
    char hb[HEX_MAX] = "", hh[HEX_MAX] = "", hs[HEX_MAX];
    if (seal_mac(kr, cv_keyring_primary(kr), base, head_seq, head, &seal) < 0)
        return -1;
    to_hex(base, hb);
    to_hex(head, hh);
    to_hex(&seal, hs);
    char *h = cv_fmt("%lld:%s", (long long)head_seq, hh);
    int rc = meta_set(db, "audit_base", hb) || meta_set(db, "audit_head", h) ||
             meta_set(db, "audit_seal", hs);
    free(h);
    return rc ? -1 : 0;
}

/* ---- append and expire ------------------------------------------------- */

int cv_audit_append(cv_db *db, const cv_keyring *kr, const cv_policy *pol,
                    int64_t now, const cv_audit_entry *e, char *err,
                    size_t errlen)
{
    chain_ends ends;
    char subject[CV_PSEUDONYM_MAX];
    char *detail = NULL;
    int rc = -1;
    uint32_t v = cv_keyring_primary(kr);
    if (read_ends(db, &ends) < 0 || ends.malformed) {
        snprintf(err, errlen, "cannot read the audit chain's head%s",
                 ends.malformed ? ": it is malformed (run 'ctxvault audit verify')" : "");
        return -1;
    }
    if (e->subject && cv_fieldcrypt_pseudonym(kr, v, "audit-subject", e->subject,
                                   strlen(e->subject), subject) < 0) {
        snprintf(err, errlen, "cannot pseudonymise the subject: no primary key");
        return -1;
    }
    detail = e->detail ? json_dumps(e->detail, CV_JSON_DUMP | JSON_SORT_KEYS)
                       : cv_strdup("{}");
    int64_t seq = ends.present ? ends.head_seq + 1 : 1;
    const mac_t *prev = ends.present ? &ends.head : &ends.base;
    mac_t mac;
    if (entry_mac(kr, v, seq, now, e->actor, e->action,
                  e->subject ? subject : NULL, e->rows, detail, prev, &mac) < 0) {
        snprintf(err, errlen, "cannot compute the audit mac: no primary key");
        goto out;
    }
    int64_t keep = cv_policy_keep_ms(pol, "audit");
    sqlite3_stmt *st = cv_db_stmt(db,
        "INSERT INTO audit(seq, at, expires_at, actor, action, subject, rows,"
        " detail, prev, mac) VALUES(?,?,?,?,?,?,?,?,?,?)");
    if (!st)
        goto dberr;
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_int64(st, 2, now);
    if (keep >= 0)
        sqlite3_bind_int64(st, 3, now + keep);
    sqlite3_bind_text(st, 4, e->actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, e->action, -1, SQLITE_STATIC);
    if (e->subject)
        sqlite3_bind_text(st, 6, subject, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, e->rows);
    sqlite3_bind_text(st, 8, detail, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 9, prev->mac, (int)prev->len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 10, mac.mac, (int)mac.len, SQLITE_STATIC);
    int s = sqlite3_step(st);
    sqlite3_reset(st);
    if (s != SQLITE_DONE || write_ends(db, kr, &ends.base, seq, &mac) < 0)
        goto dberr;
    rc = 0;
    goto out;
dberr:
    snprintf(err, errlen, "cannot append to the audit trail: %s",
             cv_db_errmsg(db));
out:
    free(detail);
    return rc;
}

int64_t cv_audit_expire(cv_db *db, const cv_keyring *kr, int64_t now,
                        int64_t limit, char *err, size_t errlen)
{
    chain_ends ends;
    if (read_ends(db, &ends) < 0 || ends.malformed) {
        snprintf(err, errlen, "cannot read the audit chain's ends");
        return -1;
    }
    /* only a prefix can go, or the chain would have a hole */
    sqlite3_stmt *st = cv_db_stmt(db,
        "SELECT seq, expires_at, mac FROM audit ORDER BY seq LIMIT ?");
    if (!st)
        goto dberr;
    sqlite3_bind_int64(st, 1, limit);
    int64_t last = -1, n = 0;
    mac_t base = ends.base;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (sqlite3_column_type(st, 1) == SQLITE_NULL ||
            sqlite3_column_int64(st, 1) > now)
            break;
        last = sqlite3_column_int64(st, 0);
        size_t ml = (size_t)sqlite3_column_bytes(st, 2);
        base.len = ml <= MAC_BYTES ? ml : MAC_BYTES;
        memcpy(base.mac, sqlite3_column_blob(st, 2), base.len);
        n++;
    }
    sqlite3_reset(st);
    if (n == 0)
        return 0;
    st = cv_db_stmt(db, "DELETE FROM audit WHERE seq <= ?");
    if (!st)
        goto dberr;
    sqlite3_bind_int64(st, 1, last);
    int s = sqlite3_step(st);
    sqlite3_reset(st);
    if (s != SQLITE_DONE || write_ends(db, kr, &base, ends.head_seq, &ends.head) < 0)
        goto dberr;
    return n;
dberr:
    snprintf(err, errlen, "cannot expire audit entries: %s", cv_db_errmsg(db));
    return -1;
}

/* ---- verify and list --------------------------------------------------- */

static bool mac_eq(const mac_t *a, const void *b, size_t blen)
{
    return a->len == blen && (blen == 0 || sodium_memcmp(a->mac, b, blen) == 0);
}

int cv_audit_verify(cv_db *db, const cv_keyring *kr, int64_t *entries)
{
    chain_ends ends;
    int bad = 0;
    *entries = 0;
    if (read_ends(db, &ends) < 0) {
        cv_err("cannot read the audit chain from %s: %s", cv_db_path(db),
               cv_db_errmsg(db));
        return EX_IOERR;
    }
    if (ends.malformed) {
        cv_err("audit: the chain's base, head or seal in the meta table is "
               "missing or malformed");
        return EX_DATAERR;
    }
    if (ends.present) {
        mac_t want;
        uint32_t v = ends.seal.len ? ends.seal.mac[0] : 0;
        if (seal_mac(kr, v, &ends.base, ends.head_seq, &ends.head, &want) < 0) {
            cv_err("audit: the chain's seal is under key version %u, which the "
                   "keyring lacks", v);
            bad++;
        } else if (!mac_eq(&want, ends.seal.mac, ends.seal.len)) {
            cv_err("audit: the chain's seal does not match its base and head: "
                   "the meta table was changed outside ctxvault");
            bad++;
        }
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(db),
                           "SELECT seq, at, actor, action, subject, rows, detail,"
                           " prev, mac FROM audit ORDER BY seq", -1, &st,
                           NULL) != SQLITE_OK) {
        cv_err("cannot read the audit trail: %s", cv_db_errmsg(db));
        return EX_IOERR;
    }
    mac_t prev = ends.base;
    int64_t last_seq = -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        const void *p = sqlite3_column_blob(st, 7);
        size_t plen = (size_t)sqlite3_column_bytes(st, 7);
        const uint8_t *m = sqlite3_column_blob(st, 8);
        size_t mlen = (size_t)sqlite3_column_bytes(st, 8);
        (*entries)++;
        if (last_seq >= 0 && seq != last_seq + 1) {
            cv_err("audit entry %lld: entries %lld to %lld are missing",
                   (long long)seq, (long long)last_seq + 1, (long long)seq - 1);
            bad++;
        } else if (!mac_eq(&prev, p, plen)) {
            cv_err("audit entry %lld: it does not follow the entry before it "
                   "(an entry was removed or inserted)", (long long)seq);
            bad++;
        }
        mac_t want, got = {.len = 0};
        if (mlen == MAC_BYTES) {
            memcpy(got.mac, m, mlen);
            got.len = mlen;
        }
        mac_t pv = {.len = plen <= MAC_BYTES ? plen : 0};
        if (pv.len)
            memcpy(pv.mac, p, pv.len);
        if (!got.len ||
            entry_mac(kr, got.mac[0], seq, sqlite3_column_int64(st, 1),
                      (const char *)sqlite3_column_text(st, 2),
                      (const char *)sqlite3_column_text(st, 3),
                      (const char *)sqlite3_column_text(st, 4),
                      sqlite3_column_int64(st, 5),
                      (const char *)sqlite3_column_text(st, 6), &pv, &want) < 0) {
            cv_err("audit entry %lld: its mac is malformed or under a key "
                   "version the keyring lacks", (long long)seq);
            bad++;
        } else if (!mac_eq(&want, got.mac, got.len)) {
            cv_err("audit entry %lld: its mac does not match: the entry was "
                   "changed outside ctxvault", (long long)seq);
            bad++;
        }
        prev = got;
        last_seq = seq;
    }
    bool read_ok = rc == SQLITE_DONE;
    sqlite3_finalize(st);
    if (!read_ok) {
        cv_err("cannot read the audit trail: %s", cv_db_errmsg(db));
        return EX_IOERR;
    }
    if (ends.present && *entries > 0 &&
        (last_seq != ends.head_seq || !mac_eq(&ends.head, prev.mac, prev.len))) {
        cv_err("audit: the last entry is %lld but the chain's head is entry "
               "%lld: entries at the end were removed", (long long)last_seq,
               (long long)ends.head_seq);
        bad++;
    }
    if (ends.present && *entries == 0 && !mac_eq(&ends.head, ends.base.mac,
                                                 ends.base.len)) {
        cv_err("audit: the trail is empty but its head is entry %lld: "
               "entries were removed", (long long)ends.head_seq);
        bad++;
    }
    if (!ends.present && *entries > 0) {
        cv_err("audit: %lld entries but no chain head in the meta table",
               (long long)*entries);
        bad++;
    }
    return bad ? EX_DATAERR : 0;
}

int cv_audit_list(cv_db *db, FILE *out)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(db),
                           "SELECT seq, at, actor, action, subject, rows, detail,"
                           " expires_at FROM audit ORDER BY seq", -1, &st,
                           NULL) != SQLITE_OK) {
        cv_err("cannot read the audit trail: %s", cv_db_errmsg(db));
        return EX_IOERR;
    }
    int rc, status = 0;
    while (!status && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        char at[40], exp[40] = "";
        cv_time_format_ms(sqlite3_column_int64(st, 1), at);
        if (sqlite3_column_type(st, 7) != SQLITE_NULL)
            cv_time_format_ms(sqlite3_column_int64(st, 7), exp);
        json_error_t je;
        const char *d = (const char *)sqlite3_column_text(st, 6);
        json_t *detail = d ? json_loads(d, 0, &je) : NULL;
        const char *subj = (const char *)sqlite3_column_text(st, 4);
        json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:o, s:I, s:o, s:o}",
            "seq", (json_int_t)sqlite3_column_int64(st, 0), "at", at,
            "actor", (const char *)sqlite3_column_text(st, 2),
            "action", (const char *)sqlite3_column_text(st, 3),
            "subject", subj ? json_string(subj) : json_null(),
            "rows", (json_int_t)sqlite3_column_int64(st, 5),
            "detail", detail ? detail : json_object(),
            "expires_at", *exp ? json_string(exp) : json_null());
        char *text = o ? json_dumps(o, CV_JSON_DUMP) : NULL;
        json_decref(o);
        if (!text || fprintf(out, "%s\n", text) < 0)
            status = EX_IOERR;
        free(text);
    }
    if (!status && rc != SQLITE_DONE) {
        cv_err("cannot read the audit trail: %s", cv_db_errmsg(db));
        status = EX_IOERR;
    }
    sqlite3_finalize(st);
    return status;
}
