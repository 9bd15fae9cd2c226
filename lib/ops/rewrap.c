/* rewrap.c - re-seal old-version fields under the primary (a batch, and
 * the run of batches), check every sealed field, count what still needs a
 * version. See rewrap.h. */
#include "ops/rewrap.h"

#include "crypto/datakeys.h"
#include "crypto/fieldcrypt.h"
#include "storage/journal.h"
#include "base/jwalk.h"
#include "base/progress.h"
#include "storage/snapshot.h"
#include "base/time.h"
#include "base/util.h"

#include <dirent.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BATCH 100000
#define NAMED_SKIPS 10

/* ---- one decision per envelope ---------------------------------------- */

cv_env_kind cv_envelope_classify(const cv_keyring *kr, const char *s,
                                 size_t len, uint32_t *version)
{
    if (len >= 5 && !memcmp(s, "hash:", 5))
        return CV_ENV_PSEUDONYM;
    if (len >= 5 && !memcmp(s, "enc:d", 5))
        return CV_ENV_DATAKEY;
    if (len < 6 || memcmp(s, "enc:v", 5) != 0 || s[5] < '1' || s[5] > '9')
        return CV_ENV_NONE;
    uint64_t v = 0;
    size_t i = 5;
    for (; i < len && s[i] >= '0' && s[i] <= '9' && v <= UINT32_MAX; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    if (i == len || s[i] != ':' || v > UINT32_MAX)
        return CV_ENV_NONE;
    *version = (uint32_t)v;
    /* a value that only looks like one was sealed as a plain value would
     * be; one with an algorithm but broken parts was altered */
    if (!cv_fieldcrypt_is_envelope(s))
        return strncmp(s + i + 1, "aes256gcm:", 10) == 0 ||
                       strncmp(s + i + 1, "xchacha20poly1305:", 18) == 0
                   ? CV_ENV_MALFORMED : CV_ENV_NONE;
    return *version == cv_keyring_primary(kr) ? CV_ENV_CURRENT : CV_ENV_OLD;
}

/* ---- walking a body's string values ------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = cv_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Where each open container's path ends: per thread, as deep as jwalk. */
static _Thread_local size_t bases[CV_JW_MAX_DEPTH + 2];

int cv_body_fields(const char *body, size_t len, cv_field_fn fn, void *arg,
                   char **out, size_t *outlen, char *err, size_t errlen)
{
    cv_jwalk w;
    buf path = {0}, val = {0}, res = {0};
    size_t copied = 0;
    int n = 0, t;
    *out = NULL;
    put(&path, "", 0);
    cv_jwalk_init(&w, body, len, CV_JW_MAX_DEPTH, err, errlen);
    while ((t = cv_jwalk_next(&w)) > CV_JW_EOF) {
        switch (t) {
        case CV_JW_OBJECT:
        case CV_JW_ARRAY: /* array elements share their array's path */
            bases[w.depth] = path.len;
            break;
        case CV_JW_OBJECT_END:
        case CV_JW_ARRAY_END:
            path.len = bases[w.depth + 1];
            path.p[path.len] = '\0';
            break;
        case CV_JW_KEY: {
            path.len = bases[w.depth];
            if (w.depth > 1) /* dotted below the top, as the policy names it */
                put(&path, ".", 1);
            size_t at = path.len;
            put(&path, w.tok + 1, w.len - 2);
            if (w.escaped)
                path.len = at + cv_jwalk_unescape(w.tok + 1, w.len - 2,
                                                  path.p + at);
            break;
        }
        case CV_JW_STRING: {
            /* envelopes and pseudonyms are base64url and colons: never
             * escaped, so an escaped string is none of them */
            size_t vl = w.len - 2;
            if (w.escaped || vl < 5 ||
                (memcmp(w.tok + 1, "enc:", 4) && memcmp(w.tok + 1, "hash:", 5)))
                break;
            val.len = 0;
            put(&val, w.tok + 1, vl);
            char *repl = NULL;
            if (fn(arg, path.p, val.p, vl, &repl) < 0) {
                snprintf(err, errlen, "field %s: stopped", path.p);
                goto fail;
            }
            if (repl) {
                size_t at = (size_t)(w.tok + 1 - body);
                put(&res, body + copied, at - copied);
                put(&res, repl, strlen(repl));
                free(repl);
                copied = at + vl;
                n++;
            }
            break;
        }
        default:
            break;
        }
    }
    if (t == CV_JW_ERROR)
        goto fail;
    if (n) {
        put(&res, body + copied, len - copied);
        *out = res.p;
        *outlen = res.len;
        res.p = NULL;
    }
    free(path.p);
    free(val.p);
    return n;
fail:
    free(path.p);
    free(val.p);
    free(res.p);
    return -1;
}

/* ---- rewrap --------------------------------------------------------------- */

typedef struct {
    const cv_keyring *kr;
    const char *id;
    int fields;
    char err[256];
} rewrap_ctx;

static int rewrap_field(void *arg, const char *path, const char *value,
                        size_t len, char **repl)
{
    rewrap_ctx *c = arg;
    uint32_t v;
    if (cv_envelope_classify(c->kr, value, len, &v) != CV_ENV_OLD)
        return 0;
    char *plain = NULL;
    size_t plen;
    if (cv_fieldcrypt_unseal(c->kr, value, c->id, path, &plain, &plen, c->err,
                  sizeof c->err) < 0)
        return -1;
    *repl = cv_fieldcrypt_seal(c->kr, plain, plen, c->id, path, c->err, sizeof c->err);
    sodium_memzero(plain, plen);
    free(plain);
    if (!*repl)
        return -1;
    c->fields++;
    return 0;
}

typedef struct {
    int64_t seq;
    char *body; /* NULL: the body stays */
    size_t len;
    uint8_t sum[CV_CHECKSUM_BYTES];
} pending;

/* After a pass that left nothing under another version: the primary then
 * and the journal batch from which every row is under it (a backup that
 * holds that batch holds no older version; ctxvault keys retire). */
static int mark_done(cv_maint *m)
{
    char *v = cv_fmt("{\"primary\":%u,\"lsn\":%lld,\"at\":%lld}",
                     cv_keyring_primary(m->kr),
                     (long long)cv_db_journal_batch(m->db) + 1,
                     (long long)cv_now_ms());
    sqlite3_stmt *st = cv_db_stmt(m->db, "INSERT OR REPLACE INTO meta(key, value)"
                                         " VALUES('rewrapped', ?)");
    int rc = -1;
    if (st) {
        sqlite3_bind_text(st, 1, v, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
        sqlite3_reset(st);
    }
    free(v);
    return rc;
}

json_t *cv_rewrap_batch(cv_maint *m, json_t *req)
{
    json_t *v = json_object_get(req, "after"), *b = json_object_get(req, "batch");
    int64_t after = json_is_integer(v) ? json_integer_value(v) : 0;
    int64_t batch = json_is_integer(b) ? json_integer_value(b) : 1000;
    if (batch < 1 || batch > MAX_BATCH)
        return cv_control_error(NULL, EX_DATAERR, "\"batch\" must be from 1 to %d",
                              MAX_BATCH);
    uint32_t primary = cv_keyring_primary(m->kr);
    if (cv_db_begin(m->db) != SQLITE_OK)
        return cv_maint_db_fail(m, "cannot begin a rewrap batch");
    sqlite3_stmt *st = cv_db_stmt(m->db,
        "SELECT e.seq, e.id, u.user_id, e.kind, e.ts, e.body, e.checksum"
        " FROM events e LEFT JOIN users u ON u.uid = e.uid"
        " WHERE e.seq > ? ORDER BY e.seq LIMIT ?");
    if (!st)
        return cv_maint_db_fail(m, "cannot prepare the rewrap");
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, batch);
    pending *todo = cv_malloc((size_t)batch * sizeof *todo);
    size_t ntodo = 0;
    int64_t examined = 0, fields = 0, skipped = 0, next = after;
    json_t *skips = json_array(), *reply = NULL;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        examined++;
        next = sqlite3_column_int64(st, 0);
        const char *id = (const char *)sqlite3_column_text(st, 1);
        const char *user = (const char *)sqlite3_column_text(st, 2);
        const char *kind = (const char *)sqlite3_column_text(st, 3);
        int64_t ts = sqlite3_column_int64(st, 4);
        const char *body = (const char *)sqlite3_column_text(st, 5);
        size_t blen = (size_t)sqlite3_column_bytes(st, 5);
        const uint8_t *sum = sqlite3_column_blob(st, 6);
        size_t slen = (size_t)sqlite3_column_bytes(st, 6);
        id = id ? id : "", user = user ? user : "", kind = kind ? kind : "";
        body = body ? body : "";
        bool old_sum = slen != CV_CHECKSUM_BYTES || sum[0] != primary;
        /* a fast path for the common case: nothing old in the row */
        if (!old_sum && !strstr(body, "\"enc:v"))
            continue;
        rewrap_ctx c = {.kr = m->kr, .id = id};
        char *nb = NULL, err[256];
        size_t nlen = 0;
        /* a fresh checksum must never launder a row changed outside
         * ctxvault: it is checked under its own version first */
        int n = cv_fieldcrypt_row_checksum_check(m->kr, sum, slen, id, user, kind, ts,
                                      body, blen) == 1
                    ? cv_body_fields(body, blen, rewrap_field, &c, &nb, &nlen,
                                     err, sizeof err)
                    : -2;
        if (n < 0) {
            if (skipped++ < NAMED_SKIPS)
                json_array_append_new(skips, json_pack("{s:I, s:s, s:s}", "seq",
                    (json_int_t)next, "id", id, "why",
                    n == -2 ? "checksum does not verify" : *c.err ? c.err : err));
            continue;
        }
        if (n == 0 && !old_sum)
            continue;
        pending *p = &todo[ntodo++];
        p->seq = next;
        p->body = nb;
        p->len = nlen;
        fields += c.fields;
        if (cv_fieldcrypt_row_checksum(m->kr, primary, id, user, kind, ts, nb ? nb : body,
                            nb ? nlen : blen, p->sum) < 0) {
            sqlite3_reset(st);
            reply = cv_control_error(NULL, EX_SOFTWARE, "cannot checksum: no primary key");
            cv_db_rollback(m->db);
            goto out;
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        reply = cv_maint_db_fail(m, "rewrap read failed");
        goto out;
    }
    /* written after the read: no update under a running scan */
    for (size_t i = 0; i < ntodo; i++) {
        pending *p = &todo[i];
        sqlite3_stmt *up = cv_db_stmt(m->db, p->body
            ? "UPDATE events SET checksum = ?1, body = ?3 WHERE seq = ?2"
            : "UPDATE events SET checksum = ?1 WHERE seq = ?2");
        if (!up) {
            reply = cv_maint_db_fail(m, "cannot prepare the rewrap");
            goto out;
        }
        sqlite3_bind_blob(up, 1, p->sum, sizeof p->sum, SQLITE_STATIC);
        sqlite3_bind_int64(up, 2, p->seq);
        if (p->body)
            sqlite3_bind_text(up, 3, p->body, (int)p->len, SQLITE_STATIC);
        rc = sqlite3_step(up);
        sqlite3_reset(up);
        if (rc != SQLITE_DONE) {
            reply = cv_maint_db_fail(m, "rewrap update failed");
            goto out;
        }
    }
    bool done = examined < batch;
    if (cv_db_commit(m->db) != SQLITE_OK) {
        reply = cv_maint_db_fail(m, "cannot commit a rewrap batch");
        goto out;
    }
    /* the mark only when the whole pass left nothing behind: the command
     * sends "clean" while no batch skipped a row */
    if (done && json_is_true(json_object_get(req, "clean")) && !skipped) {
        if (cv_db_begin(m->db) != SQLITE_OK || mark_done(m) < 0 ||
            cv_db_commit(m->db) != SQLITE_OK) {
            reply = cv_maint_db_fail(m, "cannot record the finished rewrap");
            goto out;
        }
    }
    /* the data keys are wrapped under a version too: rewrapping them is
     * cheap (one per user), so the pass's last batch does all of them */
    int keys = 0;
    if (done && m->ds) {
        char why[512];
        if ((keys = cv_datakeys_rewrap(m->ds, why, sizeof why)) < 0) {
            reply = cv_control_error(NULL, EX_IOERR, "cannot rewrap the data keys: %s",
                                   why);
            goto out;
        }
    }
    reply = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:O, s:I, s:b, s:i}",
                      "ok", 1, "examined", (json_int_t)examined, "rewrapped",
                      (json_int_t)ntodo, "fields", (json_int_t)fields,
                      "checksums", (json_int_t)ntodo, "skipped",
                      (json_int_t)skipped, "skipped_rows", skips, "next",
                      (json_int_t)next, "done", done, "data_keys", keys);
out:
    for (size_t i = 0; i < ntodo; i++)
        free(todo[i].body);
    free(todo);
    json_decref(skips);
    return reply;
}

/* ---- verify --------------------------------------------------------------- */

typedef struct {
    const cv_keyring *kr;
    const char *id;
    int64_t seq, fields, bad, max_named;
} verify_ctx;

/* The hook for "enc:d" fields (per-user data keys): NULL when the field
 * opens, else why not. Filled in with the data-key store. */
/* A field under a data key opens, or says why not: the key was destroyed
 * (its user erased, its hour expired), no data-key store is open, or the
 * value was altered. */
static const char *check_datakey_field(const cv_keyring *kr, const char *id,
                                       const char *path, const char *value,
                                       char *why, size_t whylen)
{
    char *plain = NULL;
    size_t plen;
    if (cv_fieldcrypt_unseal(kr, value, id, path, &plain, &plen, why, whylen) < 0)
        return why;
    sodium_memzero(plain, plen);
    free(plain);
    return NULL;
}

static int verify_field(void *arg, const char *path, const char *value,
                        size_t len, char **repl)
{
    verify_ctx *c = arg;
    uint32_t v = 0;
    char why[256];
    const char *bad = NULL;
    (void)repl;
    switch (cv_envelope_classify(c->kr, value, len, &v)) {
    case CV_ENV_NONE:
    case CV_ENV_PSEUDONYM:
        return 0;
    case CV_ENV_DATAKEY:
        bad = check_datakey_field(c->kr, c->id, path, value, why,
                                  sizeof why);
        break;
    case CV_ENV_MALFORMED:
        bad = "not a well-formed encrypted value (altered)";
        break;
    case CV_ENV_CURRENT:
    case CV_ENV_OLD: {
        uint8_t k[CV_KEY_BYTES];
        int known = cv_keyring_subkey(c->kr, v, "aead", k);
        sodium_memzero(k, sizeof k);
        char *plain = NULL, err[256];
        size_t plen;
        if (known < 0) {
            snprintf(why, sizeof why, "unknown key version %u", v);
            bad = why;
        } else if (cv_keyring_retired(c->kr, v)) {
            snprintf(why, sizeof why, "key version %u is retired", v);
            bad = why;
        } else if (cv_fieldcrypt_unseal(c->kr, value, c->id, path, &plain, &plen, err,
                             sizeof err) < 0) {
            bad = "authentication failed (tampered or wrong key)";
        } else {
            sodium_memzero(plain, plen);
            free(plain);
        }
        break;
    }
    }
    c->fields++;
    if (bad && c->bad++ < c->max_named)
        cv_err("row %lld (event %s): field %s: %s", (long long)c->seq, c->id,
               path, bad);
    return 0;
}

int64_t cv_verify_envelopes(cv_db *db, const cv_keyring *kr,
                            int64_t max_named, int64_t *fields)
{
    sqlite3_stmt *st;
    *fields = 0;
    if (sqlite3_prepare_v2(cv_db_handle(db),
                           "SELECT seq, id, body FROM events WHERE instr(body, '\"enc:') > 0",
                           -1, &st, NULL) != SQLITE_OK) {
        cv_err("cannot read rows of %s: %s", cv_db_path(db), cv_db_errmsg(db));
        return -1;
    }
    verify_ctx c = {.kr = kr, .max_named = max_named};
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 1);
        const char *body = (const char *)sqlite3_column_text(st, 2);
        char *nb = NULL, err[256];
        size_t nl;
        c.seq = sqlite3_column_int64(st, 0);
        c.id = id ? id : "";
        if (body && cv_body_fields(body, (size_t)sqlite3_column_bytes(st, 2),
                                   verify_field, &c, &nb, &nl, err,
                                   sizeof err) < 0 &&
            c.bad++ < max_named)
            cv_err("row %lld (event %s): body is not JSON: %s",
                   (long long)c.seq, c.id, err);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        cv_err("reading rows of %s failed: %s", cv_db_path(db), cv_db_errmsg(db));
        return -1;
    }
    if (c.bad > max_named)
        cv_err("... and %lld more fields that do not open",
               (long long)(c.bad - max_named));
    *fields = c.fields;
    return c.bad;
}

/* ---- what still needs a version ------------------------------------------ */

/* The finished rewrap, if one is recorded under a primary above version. */
static bool rewrap_mark(cv_db *db, uint32_t version, int64_t *lsn, int64_t *at)
{
    sqlite3_stmt *st;
    bool ok = false;
    if (sqlite3_prepare_v2(cv_db_handle(db),
                           "SELECT value FROM meta WHERE key = 'rewrapped'", -1,
                           &st, NULL) != SQLITE_OK)
        return false;
    if (sqlite3_step(st) == SQLITE_ROW) {
        json_error_t je;
        json_t *j = json_loads((const char *)sqlite3_column_text(st, 0), 0, &je);
        json_int_t p = json_integer_value(json_object_get(j, "primary"));
        *lsn = json_integer_value(json_object_get(j, "lsn"));
        *at = json_integer_value(json_object_get(j, "at"));
        ok = p > (json_int_t)version;
        json_decref(j);
    }
    sqlite3_finalize(st);
    return ok;
}

/* Sealed snapshots in dir (by their sidecars) that may need version:
 * sealed under it, or taken before the rewrap finished (their rows may be
 * under it; *.json sidecars only, so a file without one is not seen). */
static int64_t snapshots_needing(const char *dir, uint32_t version, bool marked,
                                 int64_t lsn, int64_t at)
{
    DIR *d = opendir(dir);
    int64_t n = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 6 || strcmp(e->d_name + l - 5, ".json"))
            continue;
        char *p = cv_fmt("%s/%s", dir, e->d_name);
        json_error_t je;
        json_t *s = json_load_file(p, 0, &je);
        json_t *man = json_object_get(s, "manifest");
        free(p);
        if (json_is_object(man)) {
            const char *made = json_string_value(json_object_get(man, "created_at"));
            int64_t made_ms = -1;
            if (made)
                (void)cv_time_parse(made, strlen(made), &made_ms);
            json_t *jl = json_object_get(man, "journal_lsn");
            bool before = !marked || made_ms < at ||
                          (json_is_integer(jl) && lsn > 0 &&
                           json_integer_value(jl) < lsn);
            if (json_integer_value(json_object_get(man, "key_version")) ==
                    (json_int_t)version || before)
                n++;
        }
        json_decref(s);
    }
    closedir(d);
    return n;
}

/* Dead letters whose line is sealed under version. */
static int64_t deadletters_needing(const char *dir, uint32_t version)
{
    static const char *const progs[] = {"ingest", "encrypt", "store", NULL};
    char pat[32];
    snprintf(pat, sizeof pat, "\"enc:v%u:", version);
    int64_t n = 0;
    for (int i = 0; progs[i]; i++) {
        char *p = cv_fmt("%s/%s.ndjson", dir, progs[i]);
        FILE *f = fopen(p, "r");
        free(p);
        if (!f)
            continue;
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0)
            n += strstr(line, pat) != NULL;
        free(line);
        fclose(f);
    }
    return n;
}

json_t *cv_key_uses(const cv_config *cfg, cv_db *db, cv_datakeys *ds,
                    uint32_t version, char *err, size_t errlen)
{
    /* an unreadable data-key store counts as needing the version */
    int64_t dks = ds ? cv_datakeys_count_kek(ds, version) : 0;
    if (dks < 0)
        dks = 1;
    sqlite3_stmt *st;
    char pat[32];
    uint8_t vb = (uint8_t)version;
    snprintf(pat, sizeof pat, "\"enc:v%u:", version);
    if (sqlite3_prepare_v2(cv_db_handle(db),
                           "SELECT count(*) FROM events WHERE instr(body, ?1) > 0"
                           " OR (length(checksum) > 0 AND substr(checksum, 1, 1) = ?2)",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot count rows: %s", cv_db_errmsg(db));
        return NULL;
    }
    sqlite3_bind_text(st, 1, pat, -1, SQLITE_STATIC);
    if (version <= 255)
        sqlite3_bind_blob(st, 2, &vb, 1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    int64_t rows = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (rows < 0) {
        snprintf(err, errlen, "cannot count rows: %s", cv_db_errmsg(db));
        return NULL;
    }
    int64_t lsn = 0, at = 0;
    bool marked = rewrap_mark(db, version, &lsn, &at);
    /* The journal's batches hold rows as stored. A batch from before the
     * finished rewrap is replayed only onto a backup older than it, which
     * the backup rule already counts; with no finished rewrap recorded,
     * every batch in the journal counts (conservative: not parsed). */
    int64_t jb = 0;
    cv_journal_info ji;
    if (!marked && cv_journal_stat(cfg->journal_dir, &ji) == 0 && ji.last > 0)
        jb = ji.last - ji.first + 1;
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "rows", (json_int_t)rows,
                     "data_keys", (json_int_t)dks,
                     "backups", (json_int_t)snapshots_needing(cfg->backup_dir,
                                                              version, marked, lsn, at),
                     "archives", (json_int_t)snapshots_needing(cfg->archive_dir,
                                                               version, marked, lsn, at),
                     "journal_batches", (json_int_t)jb, "deadletters",
                     (json_int_t)deadletters_needing(cfg->deadletter_dir, version),
                     "rewrapped", marked);
}

/* ---- the run: batches until done ----------------------------------------- */

int cv_rewrap_run(cv_maint_session *s, int64_t batch, cv_rewrap_totals *t)
{
    char err[512];
    int status = 0;
    int64_t t0 = cv_mono_ms(), after = 0;
    *t = (cv_rewrap_totals){0};
    cv_progress pr;
    cv_progress_init(&pr, "rewrap");
    for (;;) {
        /* clean: no row was skipped so far, so a done run may be marked */
        json_t *req = json_pack("{s:s, s:I, s:I, s:b}", "op", "rewrap", "after",
                                (json_int_t)after, "batch", (json_int_t)batch,
                                "clean", t->skipped == 0);
        json_t *r = cv_maint_ok(cv_maint_call(s, req, err, sizeof err), err,
                                "rewrap");
        json_decref(req);
        if (!r) {
            status = EX_TEMPFAIL;
            break;
        }
        t->examined += json_integer_value(json_object_get(r, "examined"));
        t->rewrapped += json_integer_value(json_object_get(r, "rewrapped"));
        t->fields += json_integer_value(json_object_get(r, "fields"));
        t->skipped += json_integer_value(json_object_get(r, "skipped"));
        t->data_keys += json_integer_value(json_object_get(r, "data_keys"));
        size_t i;
        json_t *k;
        json_array_foreach(json_object_get(r, "skipped_rows"), i, k)
            cv_err("row %lld (event %s) left as it is: %s",
                   (long long)json_integer_value(json_object_get(k, "seq")),
                   json_string_value(json_object_get(k, "id")),
                   json_string_value(json_object_get(k, "why")));
        after = json_integer_value(json_object_get(r, "next"));
        bool done = json_is_true(json_object_get(r, "done"));
        json_decref(r);
        char extra[64];
        snprintf(extra, sizeof extra, "%lld rewrapped", (long long)t->rewrapped);
        cv_progress_update(&pr, (uint64_t)t->examined, extra);
        if (done)
            break;
    }
    cv_progress_done(&pr);
    t->ms = cv_mono_ms() - t0;
    return status;
}

/* ---- rows per version, for keys list ------------------------------------- */

void cv_rewrap_count_rows(cv_db *db, json_t *versions)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(db), "SELECT substr(checksum, 1, 1),"
                           " count(*) FROM events GROUP BY 1", -1, &st,
                           NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const uint8_t *v = sqlite3_column_blob(st, 0);
        size_t i;
        json_t *e;
        json_array_foreach(versions, i, e)
            if (v && sqlite3_column_bytes(st, 0) == 1 &&
                json_integer_value(json_object_get(e, "version")) == v[0])
                json_object_set_new(e, "rows", json_integer(
                    sqlite3_column_int64(st, 1)));
    }
    sqlite3_finalize(st);
}
