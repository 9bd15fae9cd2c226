/* scrub.c - one run of ctxvault-scrub, and the completeness check of
 * `ctxvault verify --scrub`. See scrub.h. */
#include "ops/scrub.h"

#include "ops/session.h"
#include "base/progress.h"
#include "base/time.h"
#include "base/util.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PASSES 3 /* rows changed under a pass are retried this often */

/* ---- what changed, per row and in total --------------------------------- */

typedef struct {
    char *path;
    cv_op op;
} field_note;

typedef struct {
    int64_t seq;
    char *kind;
    field_note *notes;
    int nnotes, cap;
} row_notes;

static void note_field(void *ctx, const char *path, cv_op op)
{
    row_notes *r = ctx;
    if (r->nnotes == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->notes = cv_realloc(r->notes, (size_t)r->cap * sizeof *r->notes);
    }
    r->notes[r->nnotes++] = (field_note){cv_strdup(path), op};
}

static void row_notes_clear(row_notes *r)
{
    for (int i = 0; i < r->nnotes; i++)
        free(r->notes[i].path);
    free(r->notes);
    free(r->kind);
    memset(r, 0, sizeof *r);
}

static void incr(json_t *obj, const char *key, json_int_t by)
{
    json_t *v = json_object_get(obj, key);
    json_object_set_new(obj, key, json_integer(json_integer_value(v) + by));
}

typedef struct {
    json_t *by_kind;   /* KIND: {rows, fields: {PATH: {op, rows}}} */
    json_t *by_op;     /* OPERATOR: fields changed */
    int64_t rows, fields;
} tally;

/* Count a row: per path once (elements of one array share a path), per
 * operator every field. */
static void tally_row(tally *t, const row_notes *r)
{
    json_t *k = json_object_get(t->by_kind, r->kind);
    if (!k) {
        k = json_pack("{s:i, s:{}}", "rows", 0, "fields");
        json_object_set_new(t->by_kind, r->kind, k);
    }
    incr(k, "rows", 1);
    json_t *fields = json_object_get(k, "fields");
    for (int i = 0; i < r->nnotes; i++) {
        const field_note *f = &r->notes[i];
        incr(t->by_op, cv_policy_op_name(f->op), 1);
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(r->notes[j].path, f->path) == 0;
        if (seen)
            continue;
        json_t *p = json_object_get(fields, f->path);
        if (!p) {
            p = json_pack("{s:s, s:i}", "op", cv_policy_op_name(f->op), "rows", 0);
            json_object_set_new(fields, f->path, p);
        }
        incr(p, "rows", 1);
    }
    t->rows++;
    t->fields += r->nnotes;
}

/* ---- one run ------------------------------------------------------------ */

/* A batch of rows read and scrubbed: what was noted per row, the request
 * rows, and the new bodies end to end (sent as blobs). */
typedef struct {
    row_notes *rows;
    int nrows;
    json_t *items;
    char *bodies;
    size_t bodies_len, bodies_cap;
    size_t *body_at;      /* where each blob starts in bodies, and ends */
    size_t nblobs;
} batch;

typedef struct {
    const cv_config *cfg;
    const cv_run_opts *o;
    cv_keyring *kr;
    cv_policy *pol;
    cv_db *reader;
    cv_session *s;  /* NULL in a dry run */
    int64_t now;
    int64_t after_due, after_seq; /* the cursor: (scrub_after, seq) */
    tally t;
    int64_t conflicts, failed;
    int pass_no;          /* rows that fail are named in the first pass */
    cv_policy_scrub_buf buf;     /* a scrubbed body */
    batch b[2];           /* one read while store applies the other */
} run;

/* The due rows after the cursor (scrub_after, seq), in two steps that
 * each walk the scrub index: the rest of the cursor's scrub_after, then
 * the later ones. (A row-value comparison cannot use the index's rowid:
 * rows sharing a scrub_after, a whole import at once, were read again on
 * every batch.) */
#define CANDIDATES(cond, order)                                             \
    "SELECT e.seq, e.id, e.kind, e.scrub_after, e.body, e.checksum, e.ts,"  \
    " u.user_id FROM events e JOIN users u ON u.uid = e.uid"                \
    " WHERE e.scrubbed_at IS NULL AND e.scrub_after IS NOT NULL"            \
    " AND e.scrub_after <= ?1 AND " cond " ORDER BY " order " LIMIT ?4"
static const char *const candidates_sql[] = {
    CANDIDATES("e.scrub_after = ?2 AND e.seq > ?3", "e.seq"),
    CANDIDATES("e.scrub_after > ?2 AND ?3 IS NOT NULL", "e.scrub_after, e.seq"),
};

static void batch_init(batch *b, int size)
{
    memset(b, 0, sizeof *b);
    b->rows = cv_calloc((size_t)size, sizeof *b->rows);
    b->body_at = cv_calloc((size_t)size + 1, sizeof *b->body_at);
}

static void batch_clear(batch *b)
{
    for (int i = 0; i < b->nrows; i++)
        row_notes_clear(&b->rows[i]);
    b->nrows = 0;
    b->nblobs = 0;
    b->bodies_len = 0;
    json_decref(b->items);
    b->items = NULL;
}

static void batch_free(batch *b)
{
    batch_clear(b);
    free(b->rows);
    free(b->bodies);
    free(b->body_at);
}

static void add_blob(batch *b, const char *p, size_t n)
{
    if (b->bodies_cap - b->bodies_len < n) {
        size_t c = b->bodies_cap ? b->bodies_cap : 1 << 16;
        while (c - b->bodies_len < n)
            c *= 2;
        b->bodies = cv_realloc(b->bodies, c);
        b->bodies_cap = c;
    }
    memcpy(b->bodies + b->bodies_len, p, n);
    b->bodies_len += n;
    b->body_at[++b->nblobs] = b->bodies_len;
}

/* One row read: scrub it into the batch. */
static void take_row(run *r, batch *b, sqlite3_stmt *st)
{
    int64_t seq = sqlite3_column_int64(st, 0);
    const char *id = (const char *)sqlite3_column_text(st, 1);
    const char *kind = (const char *)sqlite3_column_text(st, 2);
    const char *body = (const char *)sqlite3_column_text(st, 4);
    size_t blen = (size_t)sqlite3_column_bytes(st, 4);
    const void *sum = sqlite3_column_blob(st, 5);
    size_t slen = (size_t)sqlite3_column_bytes(st, 5);
    const char *user = (const char *)sqlite3_column_text(st, 7);
    row_notes *rn = &b->rows[b->nrows];
    memset(rn, 0, sizeof *rn);
    rn->seq = seq;
    rn->kind = cv_strdup(kind ? kind : "");
    char err[512];
    int64_t old_ts = sqlite3_column_int64(st, 6), ts = old_ts;
    int changed = cv_policy_scrub_body(r->pol, r->kr, rn->kind, body ? body : "", blen,
                                       &r->buf, &ts, note_field, rn, err, sizeof err);
    if (changed < 0) {
        if (r->pass_no == 0) {
            cv_err("row %lld (id %s): cannot scrub: %s", (long long)seq,
                   id ? id : "?", err);
            r->failed++;
        }
        row_notes_clear(rn);
        return;
    }
    b->nrows++;
    if (!b->items)
        return; /* a dry run */
    char hex[2 * 64 + 1] = "";
    if (slen <= 64)
        sodium_bin2hex(hex, sizeof hex, sum, slen);
    /* [seq, sum, id, kind, user, ts, moved, fields, body]: arrays parse
     * faster than objects, and the body goes as a blob, unescaped */
    json_t *it = json_pack("[I, s, s, s, s, I, b, i]", (json_int_t)seq, hex,
                           id ? id : "", rn->kind, user ? user : "",
                           (json_int_t)ts, ts != old_ts, changed);
    if (changed > 0) {
        json_array_append_new(it, json_integer((json_int_t)b->nblobs));
        add_blob(b, r->buf.text, r->buf.len);
    }
    json_array_append_new(b->items, it);
}

/* Read and scrub the next batch of due rows after the cursor. The number
 * read, or -1 when the database failed. The read transaction ends before
 * the batch goes to store, so its checkpoints can finish. */
static int read_batch(run *r, batch *b)
{
    if (r->s)
        b->items = json_array();
    int n = 0;
    for (int step = 0; step < 2 && n < r->o->batch; step++) {
        sqlite3_stmt *st = cv_db_stmt(r->reader, candidates_sql[step]);
        if (!st)
            goto dberr;
        sqlite3_bind_int64(st, 1, r->now);
        sqlite3_bind_int64(st, 2, r->after_due);
        sqlite3_bind_int64(st, 3, r->after_seq);
        sqlite3_bind_int64(st, 4, r->o->batch - n);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            r->after_due = sqlite3_column_int64(st, 3);
            r->after_seq = sqlite3_column_int64(st, 0);
            n++;
            take_row(r, b, st);
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
            goto dberr;
    }
    return n;
dberr:
    cv_err("cannot read the rows due in %s: %s", cv_db_path(r->reader),
           cv_db_errmsg(r->reader));
    return -1;
}

/* Hand the batch to store; its reply is taken by finish_batch. */
static int send_batch(run *r, batch *b)
{
    char err[512];
    cv_blob *blobs = cv_malloc((b->nblobs + 1) * sizeof *blobs);
    for (size_t i = 0; i < b->nblobs; i++)
        blobs[i] = (cv_blob){b->bodies + b->body_at[i],
                             b->body_at[i + 1] - b->body_at[i]};
    json_t *req = json_pack("{s:s, s:I, s:O, s:s}", "op", "scrub", "now",
                            (json_int_t)r->now, "rows", b->items, "actor",
                            r->o->actor);
    int rc = cv_session_send_blobs(r->s, req, blobs, b->nblobs, err, sizeof err);
    json_decref(req);
    free(blobs);
    if (rc < 0)
        cv_err("scrub: %s", err);
    return rc;
}

/* Count what store applied of the batch: the rows that changed under it
 * (to be retried), or -1 when store refused. */
static int finish_batch(run *r, batch *b)
{
    char err[512];
    json_t *reply = cv_session_ok(cv_session_recv(r->s, err, sizeof err), err,
                                  "scrub");
    if (!reply)
        return -1;
    json_t *conflicts = json_object_get(reply, "conflicts");
    for (int i = 0; i < b->nrows; i++) {
        bool conflict = false;
        size_t j;
        json_t *c;
        json_array_foreach(conflicts, j, c)
            conflict = conflict || json_integer_value(c) == b->rows[i].seq;
        if (conflict)
            r->conflicts++;
        else
            tally_row(&r->t, &b->rows[i]);
    }
    int n = (int)json_array_size(conflicts);
    json_decref(reply);
    batch_clear(b);
    return n;
}

/* One pass over the due rows from the start, reading and scrubbing the
 * next batch while store applies the one before. The number of rows that
 * changed under it (to be retried), or -1 on failure. */
static int pass(run *r, cv_progress *progress)
{
    int changed_under = 0, cur = 0, c;
    batch *inflight = NULL;
    r->after_due = INT64_MIN;
    r->after_seq = INT64_MIN;
    while (!cv_stop_requested) {
        batch *b = &r->b[cur];
        int n = read_batch(r, b);
        if (n < 0)
            goto fail;
        if (!r->s) { /* a dry run */
            for (int i = 0; i < b->nrows; i++)
                tally_row(&r->t, &b->rows[i]);
            batch_clear(b);
        } else {
            if (inflight) {
                if ((c = finish_batch(r, inflight)) < 0)
                    goto fail;
                changed_under += c;
                inflight = NULL;
            }
            if (b->nrows > 0) {
                if (send_batch(r, b) < 0)
                    goto fail;
                inflight = b;
                cur ^= 1;
            } else {
                batch_clear(b);
            }
        }
        cv_progress_update(progress, (uint64_t)r->t.rows, NULL);
        if (n < r->o->batch)
            break;
        if (r->s)
            cv_nap_ms(r->o->pause_ms);
    }
    if (inflight) {
        if ((c = finish_batch(r, inflight)) < 0)
            return -1;
        changed_under += c;
    }
    return changed_under;
fail:
    if (inflight)
        (void)finish_batch(r, inflight); /* what store did, it did */
    return -1;
}

static int open_run(run *r, const cv_config *cfg)
{
    char err[1024];
    int code, problems = 0;
    r->pol = cv_policy_load(cfg->policy_file, true, &problems);
    if (!r->pol || problems) {
        cv_err("the policy has %d problem%s: scrub refuses to start",
               problems ? problems : 1, problems == 1 ? "" : "s");
        return EX_CONFIG;
    }
    r->kr = cv_keyring_load(cfg->keyring_file, err, sizeof err);
    if (!r->kr) {
        cv_err("%s", err);
        return EX_CONFIG;
    }
    r->reader = cv_db_open_reader(cfg->db_file, &code, err, sizeof err);
    if (!r->reader) {
        cv_err("%s", err);
        return code;
    }
    return 0;
}

int cv_scrub_run(const cv_config *cfg, const cv_run_opts *o, json_t **result)
{
    int64_t t0 = cv_mono_ms();
    run r = {.cfg = cfg, .o = o, .now = cv_now_ms()};
    r.t.by_kind = json_object();
    r.t.by_op = json_object();
    batch_init(&r.b[0], o->batch);
    batch_init(&r.b[1], o->batch);
    *result = NULL;
    json_t *done = NULL;
    int status = open_run(&r, cfg);
    if (status)
        goto out;
    if (!o->dry_run) {
        r.s = cv_session_open(cfg, "ctxvault-scrub", o->via_store_only, &status);
        if (!r.s)
            goto out;
    }
    cv_progress progress;
    cv_progress_init(&progress, o->dry_run ? "scrub (dry run)" : "scrub");
    for (r.pass_no = 0; r.pass_no < MAX_PASSES && !cv_stop_requested;
         r.pass_no++) {
        int c = pass(&r, &progress);
        if (c < 0) {
            status = EX_SOFTWARE;
            break;
        }
        if (c == 0 || o->dry_run)
            break;
    }
    cv_progress_done(&progress);
    if (r.s) {
        /* recorded even when cut short: what was scrubbed, was; the old
         * values leave the WAL */
        char err[512];
        json_t *req = json_pack("{s:s, s:I}", "op", "scrub_done", "now",
                                (json_int_t)r.now);
        done = cv_session_ok(cv_session_call(r.s, req, err, sizeof err), err, "scrub");
        json_decref(req);
        if (!done && !status)
            status = EX_SOFTWARE;
    }
    int64_t ms = cv_mono_ms() - t0;
    int64_t backlog = done ? json_integer_value(json_object_get(done, "backlog"))
                           : cv_db_scrub_due(r.reader, r.now);
    *result = json_pack("{s:b, s:I, s:O, s:O, s:I, s:I, s:I, s:I, s:I, s:I}",
        "dry_run", o->dry_run, o->dry_run ? "would_scrub" : "scrubbed",
        (json_int_t)r.t.rows, "by_kind", r.t.by_kind, "fields_by_operator",
        r.t.by_op, "fields", (json_int_t)r.t.fields, "conflicts",
        (json_int_t)r.conflicts, "failed", (json_int_t)r.failed, "ms",
        (json_int_t)ms, "rows_per_s",
        (json_int_t)(ms > 0 ? r.t.rows * 1000 / ms : r.t.rows), "backlog",
        (json_int_t)backlog);
    if (!o->dry_run)
        json_object_set_new(*result, "complete",
                            json_boolean(!status && !cv_stop_requested && backlog == 0));
    if (!status && r.failed)
        status = EX_DATAERR;
out:
    json_decref(done);
    cv_session_close(&r.s);
    cv_db_close(&r.reader);
    cv_keyring_destroy(&r.kr);
    cv_policy_destroy(&r.pol);
    json_decref(r.t.by_kind);
    json_decref(r.t.by_op);
    batch_free(&r.b[0]);
    batch_free(&r.b[1]);
    free(r.buf.text);
    return status;
}

/* ---- verify --scrub ----------------------------------------------------- */

int cv_scrub_verify(cv_db *db, const cv_policy *pol, const cv_keyring *kr,
                    int64_t now, FILE *out)
{
    int64_t due = cv_db_scrub_due(db, now), checked = 0, bad = 0;
    cv_policy_scrub_buf buf = {0};
    int status;
    if (due < 0)
        goto dberr;
    if (due > 0)
        cv_err("%s: %lld rows are past their scrub age but not scrubbed "
               "(run ctxvault-scrub --once)", cv_db_path(db), (long long)due);
    sqlite3_stmt *st = cv_db_stmt(db, "SELECT seq, id, kind, body FROM events"
                                      " WHERE scrubbed_at IS NOT NULL");
    if (!st)
        goto dberr;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 1);
        const char *kind = (const char *)sqlite3_column_text(st, 2);
        const char *body = (const char *)sqlite3_column_text(st, 3);
        row_notes rn = {0};
        char err[512];
        int64_t ts;
        int n = cv_policy_scrub_body(pol, kr, kind ? kind : "", body ? body : "",
                                     (size_t)sqlite3_column_bytes(st, 3), &buf, &ts,
                                     note_field, &rn, err, sizeof err);
        checked++;
        if (n != 0) {
            if (++bad <= 20) {
                if (n < 0)
                    cv_err("row %lld (id %s): cannot check: %s",
                           (long long)sqlite3_column_int64(st, 0), id, err);
                else
                    cv_err("row %lld (id %s): scrubbed, yet the rules would "
                           "still change %d field%s (first: %s, %s)",
                           (long long)sqlite3_column_int64(st, 0), id, n,
                           n == 1 ? "" : "s", rn.notes[0].path,
                           cv_policy_op_name(rn.notes[0].op));
            }
        }
        row_notes_clear(&rn);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        goto dberr;
    fprintf(out, "%s: scrub %s, %lld scrubbed rows checked, %lld due and not "
            "scrubbed, %lld not fully scrubbed\n", cv_db_path(db),
            due || bad ? "INCOMPLETE" : "complete", (long long)checked,
            (long long)due, (long long)bad);
    status = due || bad ? EX_DATAERR : 0;
    goto out;
dberr:
    cv_err("cannot check scrubbing in %s: %s", cv_db_path(db), cv_db_errmsg(db));
    status = EX_IOERR;
out:
    free(buf.text);
    return status;
}
