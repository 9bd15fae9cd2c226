/* query.c - query, get, stats and verify on a read-only connection. */
#include "ops/query.h"

#include "storage/audit.h"

#include "crypto/fieldcrypt.h"
#include "net/control.h"
#include "storage/sealcheck.h"
#include "base/time.h"
#include "base/util.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* --- decryption ---------------------------------------------------------- */

/* The decrypted value when v is an envelope that opens; NULL otherwise,
 * after revealing what v contains. path is v's dotted path. */
typedef struct {
    cv_query_reveal_filter *want; /* NULL: every sealed value */
    void *ctx;
    int opened;
} filter;

static json_t *reveal(const cv_keyring *kr, const char *id, json_t *v,
                      char *path, size_t plen, int *failed, int depth,
                      filter *f)
{
    if (json_is_string(v) && cv_fieldcrypt_is_envelope(json_string_value(v))) {
        if (f->want && !f->want(f->ctx, path))
            return NULL;
        char *plain = NULL, err[256];
        size_t len;
        if (cv_fieldcrypt_unseal(kr, json_string_value(v), id, path, &plain, &len, err,
                      sizeof err) < 0) {
            (*failed)++;
            return NULL;
        }
        json_error_t je;
        json_t *orig = json_loadb(plain, len, JSON_DECODE_ANY, &je);
        sodium_memzero(plain, len);
        free(plain);
        if (!orig)
            (*failed)++;
        else
            f->opened++;
        return orig;
    }
    if (depth > 2048)
        return NULL;
    size_t base = strlen(path);
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach(v, key, child) {
            size_t klen = strlen(key);
            if (base + klen + 2 > plen)
                continue; /* a path this long was never sealed by us */
            if (depth > 0) /* below the top even when the path so far is "" */
                path[base] = '.', memcpy(path + base + 1, key, klen + 1);
            else
                memcpy(path, key, klen + 1);
            json_t *r = reveal(kr, id, child, path, plen, failed, depth + 1, f);
            path[base] = '\0';
            if (r)
                json_object_set_new(v, key, r); /* replaces in place */
        }
    } else if (json_is_array(v)) {
        /* array elements share their array's path */
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *r = reveal(kr, id, json_array_get(v, i), path, plen,
                               failed, depth + 1, f);
            if (r)
                json_array_set_new(v, i, r);
        }
    }
    return NULL;
}

void cv_query_reveal(const cv_keyring *kr, json_t *event, int *failed)
{
    cv_query_reveal_only(kr, event, failed, NULL, NULL);
}

int cv_query_reveal_only(const cv_keyring *kr, json_t *event, int *failed,
                   cv_query_reveal_filter *want, void *ctx)
{
    const char *id = json_string_value(json_object_get(event, "id"));
    char path[4096] = "";
    filter f = {want, ctx, 0};
    if (id)
        (void)reveal(kr, id, event, path, sizeof path, failed, 0, &f);
    return f.opened;
}

/* --- printing rows -------------------------------------------------------- */

static int print_body(const cv_keyring *kr, const char *body, int len,
                      bool decrypt, FILE *out, int64_t *undecryptable)
{
    if (decrypt) {
        json_error_t je;
        json_t *o = json_loadb(body, (size_t)len, 0, &je);
        if (o) {
            int failed = 0;
            cv_query_reveal(kr, o, &failed);
            *undecryptable += failed;
            char *text = json_dumps(o, CV_JSON_DUMP);
            json_decref(o);
            if (!text)
                return EX_SOFTWARE;
            int rc = fputs(text, out) < 0 || fputc('\n', out) == EOF;
            free(text);
            return rc ? EX_IOERR : 0;
        }
        /* not JSON any more: verify will say so; print it as stored */
    }
    if (fwrite(body, 1, (size_t)len, out) != (size_t)len || fputc('\n', out) == EOF)
        return EX_IOERR;
    return 0;
}

cv_hit cv_query_hit_of(sqlite3_stmt *st)
{
    return (cv_hit){.seq = sqlite3_column_int64(st, 0),
                    .ts = sqlite3_column_int64(st, 1),
                    .kind = (const char *)sqlite3_column_text(st, 2),
                    .type = (const char *)sqlite3_column_text(st, 3),
                    .body = (const char *)sqlite3_column_text(st, 4),
                    .len = (size_t)sqlite3_column_bytes(st, 4)};
}

int cv_query_user_uids(cv_db *db, const cv_policy *pol,
                         const cv_keyring *kr, const char *user,
                         int64_t *uids, size_t max, size_t *n)
{
    /* The user's rows are stored under their pseudonym, one per key
     * version: look under each. */
    uint32_t versions[CV_USER_UIDS_MAX];
    size_t nv = cv_keyring_versions(kr, versions, CV_USER_UIDS_MAX);
    char *users[CV_USER_UIDS_MAX];
    size_t nu = 0;
    *n = 0;
    for (size_t i = 0; i < nv; i++) {
        char *u = cv_policy_stored_value(pol, kr, versions[i], "user_id", user);
        if (!u)
            continue;
        bool seen = false;
        for (size_t k = 0; k < nu && !seen; k++)
            seen = strcmp(users[k], u) == 0;
        if (seen)
            free(u);
        else
            users[nu++] = u;
    }
    if (nu == 0) {
        cv_err("the policy neither keeps nor hashes user_id: cannot look up users");
        return EX_CONFIG;
    }
    /* the users' numbers; a user never seen has none */
    int status = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(db), "SELECT uid FROM users WHERE user_id = ?",
                           -1, &st, NULL) != SQLITE_OK) {
        cv_err("cannot query %s: %s", cv_db_path(db), cv_db_errmsg(db));
        status = EX_SOFTWARE;
        goto out;
    }
    for (size_t i = 0; i < nu && *n < max; i++) {
        sqlite3_bind_text(st, 1, users[i], -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            uids[(*n)++] = sqlite3_column_int64(st, 0);
        } else if (rc != SQLITE_DONE) {
            cv_err("cannot query %s: %s", cv_db_path(db), cv_db_errmsg(db));
            status = EX_IOERR;
            break;
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
out:
    for (size_t i = 0; i < nu; i++)
        free(users[i]);
    return status;
}

size_t cv_query_uid_list(char *sql, size_t cap, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n && len + 2 < cap; i++) {
        if (i)
            sql[len++] = ',';
        sql[len++] = '?';
    }
    if (cap)
        sql[len] = '\0';
    return len;
}

int cv_query_select(cv_db *db, const cv_policy *pol, const cv_keyring *kr,
                      const cv_query *q, cv_hit_fn *fn, void *arg, bool *known)
{
    int64_t uids[CV_USER_UIDS_MAX];
    size_t nid;
    if (known)
        *known = false;
    int status = cv_query_user_uids(db, pol, kr, q->user, uids,
                                      CV_USER_UIDS_MAX, &nid);
    if (status || nid == 0)
        return status;
    if (known)
        *known = true;

    /* one uid (the usual case) walks the index in ts order; the index
     * ends in the rowid (seq), so (ts, seq) order and the keyset bound
     * come from it too */
    const char *dir = q->oldest_first ? "ASC" : "DESC";
    sqlite3_stmt *st;
    char sql[2048];
    size_t n = (size_t)snprintf(sql, sizeof sql,
                                "SELECT seq, ts, kind, type, body FROM events WHERE uid IN (");
    n += cv_query_uid_list(sql + n, sizeof sql - n, nid);
    n += (size_t)snprintf(sql + n, sizeof sql - n,
                          /* past its expiry is gone for readers, even
                           * before the sweep deletes it */
                          ") AND (expires_at IS NULL OR expires_at > ?)"
                          "%s%s%s%s%s ORDER BY ts %s, seq %s LIMIT ?",
                          q->kind ? " AND kind = ?" : "",
                          q->type ? " AND type = ?" : "",
                          q->since >= 0 ? " AND ts >= ?" : "",
                          q->until >= 0 ? " AND ts < ?" : "",
                          !q->has_after ? ""
                          : q->oldest_first ? " AND (ts, seq) > (?, ?)"
                                            : " AND (ts, seq) < (?, ?)",
                          dir, dir);
    if (sqlite3_prepare_v2(cv_db_handle(db), sql, -1, &st, NULL) != SQLITE_OK) {
        cv_err("cannot query %s: %s", cv_db_path(db), cv_db_errmsg(db));
        return EX_SOFTWARE;
    }
    int b = 1;
    for (size_t i = 0; i < nid; i++)
        sqlite3_bind_int64(st, b++, uids[i]);
    sqlite3_bind_int64(st, b++, cv_now_ms());
    if (q->kind)
        sqlite3_bind_text(st, b++, q->kind, -1, SQLITE_STATIC);
    if (q->type)
        sqlite3_bind_text(st, b++, q->type, -1, SQLITE_STATIC);
    if (q->since >= 0)
        sqlite3_bind_int64(st, b++, q->since);
    if (q->until >= 0)
        sqlite3_bind_int64(st, b++, q->until);
    if (q->has_after) {
        sqlite3_bind_int64(st, b++, q->after_ts);
        sqlite3_bind_int64(st, b++, q->after_seq);
    }
    sqlite3_bind_int64(st, b++, q->limit >= 0 ? q->limit : -1);
    int rc;
    while (!status && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        cv_hit h = cv_query_hit_of(st);
        status = fn(arg, &h);
    }
    if (!status && rc != SQLITE_DONE) {
        cv_err("cannot query %s: %s", cv_db_path(db), cv_db_errmsg(db));
        status = EX_IOERR;
    }
    sqlite3_finalize(st);
    return status;
}

typedef struct {
    cv_row_fn *fn;
    void *arg;
} body_only;

static int pass_body(void *arg, const cv_hit *h)
{
    body_only *b = arg;
    return b->fn(b->arg, h->body, h->len);
}

int cv_query_query_each(cv_db *db, const cv_policy *pol,
                          const cv_keyring *kr, const cv_query *q,
                          cv_row_fn *fn, void *arg)
{
    body_only b = {fn, arg};
    return cv_query_select(db, pol, kr, q, pass_body, &b, NULL);
}

typedef struct {
    const cv_keyring *kr;
    bool decrypt;
    FILE *out;
    int64_t undecryptable;
} printer;

static int print_row(void *arg, const char *body, size_t len)
{
    printer *p = arg;
    return print_body(p->kr, body, (int)len, p->decrypt, p->out,
                      &p->undecryptable);
}

int cv_query_query(cv_db *db, const cv_policy *pol, const cv_keyring *kr,
                     const cv_query *q, FILE *out)
{
    printer p = {.kr = kr, .decrypt = q->decrypt, .out = out};
    int status = cv_query_query_each(db, pol, kr, q, print_row, &p);
    if (p.undecryptable)
        cv_warn("%lld fields could not be decrypted (unknown key version or "
                "tampered); they are shown sealed", (long long)p.undecryptable);
    return status;
}

int cv_query_get(cv_db *db, const cv_keyring *kr, const char *id,
                   bool decrypt, FILE *out)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(db), "SELECT body, expires_at FROM events"
                           " WHERE id = ?", -1, &st, NULL) != SQLITE_OK) {
        cv_err("cannot read %s: %s", cv_db_path(db), cv_db_errmsg(db));
        return EX_SOFTWARE;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int status, rc = sqlite3_step(st);
    int64_t bad = 0;
    int64_t now = cv_now_ms();
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 1) != SQLITE_NULL &&
        sqlite3_column_int64(st, 1) <= now) {
        /* past its retention: gone for readers; an export lists it */
        char t[40];
        cv_time_format_ms(sqlite3_column_int64(st, 1), t);
        cv_err("event %s expired at %s (its retention ended) and awaits the "
               "sweep's deletion; `ctxvault export --user` lists it", id, t);
        status = EX_NOINPUT;
    } else if (rc == SQLITE_ROW) {
        status = print_body(kr, (const char *)sqlite3_column_text(st, 0),
                            sqlite3_column_bytes(st, 0), decrypt, out, &bad);
    } else if (rc == SQLITE_DONE) {
        cv_err("no event with id %s", id);
        status = EX_NOINPUT;
    } else {
        cv_err("cannot read %s: %s", cv_db_path(db), cv_db_errmsg(db));
        status = EX_IOERR;
    }
    sqlite3_finalize(st);
    if (bad)
        cv_warn("%lld fields could not be decrypted", (long long)bad);
    return status;
}

json_t *cv_query_stats_json(cv_db *db)
{
    json_t *o = json_object();
    json_t *kinds = json_object();
    sqlite3_stmt *st;
    int64_t total = 0;
    if (sqlite3_prepare_v2(cv_db_handle(db),
                           "SELECT kind, COUNT(*) FROM events GROUP BY kind ORDER BY kind",
                           -1, &st, NULL) != SQLITE_OK) {
        cv_err("cannot read %s: %s", cv_db_path(db), cv_db_errmsg(db));
        json_decref(o);
        json_decref(kinds);
        return NULL;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t c = sqlite3_column_int64(st, 1);
        json_object_set_new(kinds, (const char *)sqlite3_column_text(st, 0),
                            json_integer(c));
        total += c;
    }
    sqlite3_finalize(st);
    int64_t now = cv_now_ms();
    json_object_set_new(o, "events", json_integer(total));
    json_object_set_new(o, "by_kind", kinds);
    json_object_set_new(o, "users",
                        json_integer(cv_db_scalar(db, "SELECT COUNT(*) FROM users")));
    json_object_set_new(o, "profiles",
                        json_integer(cv_db_scalar(db, "SELECT COUNT(*) FROM profiles")));
    json_object_set_new(o, "audit_entries",
                        json_integer(cv_db_scalar(db, "SELECT COUNT(*) FROM audit")));
    json_object_set_new(o, "expired_not_deleted",
                        json_integer(cv_db_expired(db, now)));
    json_object_set_new(o, "scrub_due", json_integer(cv_db_scrub_due(db, now)));
    int64_t oldest = cv_db_scalar(db, "SELECT MIN(ts) FROM events");
    int64_t newest = cv_db_scalar(db, "SELECT MAX(ts) FROM events");
    char t[40];
    if (total > 0) {
        cv_time_format_ms(oldest, t);
        json_object_set_new(o, "oldest_ts", json_string(t));
        cv_time_format_ms(newest, t);
        json_object_set_new(o, "newest_ts", json_string(t));
    }
    char *wal = cv_fmt("%s-wal", cv_db_path(db));
    json_object_set_new(o, "db_bytes", json_integer(cv_db_file_size(cv_db_path(db))));
    json_object_set_new(o, "wal_bytes", json_integer(cv_db_file_size(wal)));
    free(wal);
    json_object_set_new(o, "page_size", json_integer(cv_db_scalar(db, "PRAGMA page_size")));
    json_object_set_new(o, "pages", json_integer(cv_db_scalar(db, "PRAGMA page_count")));
    json_object_set_new(o, "freelist_pages",
                        json_integer(cv_db_scalar(db, "PRAGMA freelist_count")));
    json_object_set_new(o, "schema_version",
                        json_integer(cv_db_scalar(db, "SELECT value FROM meta WHERE key='schema_version'")));
    /* the last journal batch the database holds (lib/storage/journal.h) */
    json_object_set_new(o, "journal_batch",
                        json_integer(cv_db_scalar(db, "SELECT coalesce(max(value), 0) FROM meta WHERE key='journal_lsn'")));
    return o;
}

int cv_query_stats_print(json_t *stats, FILE *out)
{
    return json_dumpf(stats, out, JSON_INDENT(2)) < 0 || fputc('\n', out) == EOF
               ? EX_IOERR : 0;
}

int cv_query_verify(cv_db *db, const cv_keyring *kr, FILE *out)
{
    int status = 0;
    sqlite3_stmt *st;
    int64_t problems = 0;
    if (sqlite3_prepare_v2(cv_db_handle(db), "PRAGMA integrity_check(100)", -1,
                           &st, NULL) != SQLITE_OK) {
        cv_err("cannot check %s: %s", cv_db_path(db), cv_db_errmsg(db));
        return EX_DATAERR;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (r && strcmp(r, "ok") != 0) {
            cv_err("%s: integrity_check: %s", cv_db_path(db), r);
            problems++;
        }
    }
    if (rc != SQLITE_DONE) {
        cv_err("%s: integrity_check failed: %s", cv_db_path(db), cv_db_errmsg(db));
        problems++;
    }
    sqlite3_finalize(st);

    int64_t rows = 0;
    int64_t bad = cv_db_check_checksums(db, kr, 1000, &rows);
    if (bad < 0) {
        problems++;
        bad = 0;
    }
    fprintf(out, "%s: %s, %lld rows, %lld bad checksums\n", cv_db_path(db),
            problems ? "integrity_check FAILED" : "integrity ok",
            (long long)rows, (long long)bad);
    /* every sealed field opens (into wiped memory, then dropped) */
    int64_t fields = 0, sealed_bad = cv_sealcheck_verify(db, kr, 1000, &fields);
    if (sealed_bad < 0) {
        problems++;
        sealed_bad = 0;
    }
    fprintf(out, "%s: %lld sealed fields, %lld that do not open\n",
            cv_db_path(db), (long long)fields, (long long)sealed_bad);
    int64_t entries = 0;
    int audit = cv_audit_verify(db, kr, &entries);
    fprintf(out, "%s: audit trail %s, %lld entries\n", cv_db_path(db),
            audit == 0 ? "intact" : "BROKEN (see above)", (long long)entries);
    if (problems || bad || sealed_bad || audit)
        status = EX_DATAERR;
    return status;
}

json_t *cv_query_user_uid(cv_db *db, const cv_policy *pol, const cv_keyring *kr,
                        const char *user, int64_t *uid, int64_t *uids,
                        size_t *nuids)
{
    int64_t all[CV_USER_UIDS_MAX];
    size_t n;
    if (cv_query_user_uids(db, pol, kr, user, all, CV_USER_UIDS_MAX, &n))
        return cv_control_error(CV_ERR_INTERNAL, 0, "cannot look the user up; see "
                              "store's log");
    if (n == 0)
        return cv_control_error(CV_ERR_NOT_FOUND, 0, "no such user");
    /* the smallest: a user's first number stays theirs until erasure,
     * whatever key versions come after */
    *uid = all[0];
    for (size_t i = 1; i < n; i++)
        if (all[i] < *uid)
            *uid = all[i];
    if (uids)
        memcpy(uids, all, n * sizeof *all);
    if (nuids)
        *nuids = n;
    return NULL;
}
