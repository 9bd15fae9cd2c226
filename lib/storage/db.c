/* db.c - opening the database safely: lock, pragmas, schema, recovery. */
#include "storage/db.h"

#include "crypto/fieldcrypt.h"
#include "storage/journal.h"
#include "base/progress.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STMT_CACHE 64

struct cv_db {
    sqlite3 *h;
    char *path;
    int lock_fd;
    cv_journal *journal;     /* NULL: not kept */
    sqlite3_session *sess;   /* records the open write transaction */
    /* Events inserted by cv_db_insert go to the journal as a patchset of
     * db.c's own making (journal.h says why), until another change to
     * events makes the session track the table */
    bool own_ok;             /* events has the columns own_row writes */
    bool events_tracked;     /* the session records events */
    bool own_step;           /* cv_db_insert's step: the session leaves it */
    bool rec_open;           /* the batch's journal record is begun */
    uint8_t *own;            /* rows not yet written to the record */
    size_t own_len, own_cap;
    int64_t own_rows;        /* in the batch */
    int64_t lsn;             /* the last batch committed */
    char *why;               /* a failure that is not SQLite's */
    cv_db_checkpoint_fn *ckpt_fn; /* told of every checkpoint */
    void *ckpt_arg;
    struct {
        const char *sql;
        sqlite3_stmt *st;
    } cache[STMT_CACHE];
    int ncache;
};

/* Users are numbered: the events and their two user indexes hold a small
 * integer instead of the 30-byte pseudonym, which makes inserts about a
 * fifth faster, and re-keying a user's pseudonym one UPDATE. The view
 * events_v shows rows with their user_id, for operators and tests. */
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS users ("
    "  uid     INTEGER PRIMARY KEY,"
    "  user_id TEXT NOT NULL UNIQUE);"     /* as stored: usually a pseudonym */
    "CREATE TABLE IF NOT EXISTS events ("
    "  seq         INTEGER PRIMARY KEY,"  /* commit order */
    "  id          TEXT NOT NULL UNIQUE,"
    "  uid         INTEGER NOT NULL,"     /* users.uid */
    "  kind        TEXT NOT NULL,"
    "  type        TEXT,"
    "  ts          INTEGER NOT NULL,"     /* ms since the epoch, UTC */
    "  created_at  INTEGER NOT NULL,"
    "  expires_at  INTEGER,"              /* NULL: kept until erased */
    "  scrub_after INTEGER,"              /* NULL: expires before scrubbing */
    "  scrubbed_at INTEGER,"
    "  body        TEXT NOT NULL,"
    "  checksum    BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS events_user_ts ON events(uid, ts);"
    "CREATE INDEX IF NOT EXISTS events_user_kind_ts ON events(uid, kind, ts);"
    "CREATE INDEX IF NOT EXISTS events_expires ON events(expires_at)"
    "  WHERE expires_at IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS events_scrub ON events(scrub_after)"
    "  WHERE scrubbed_at IS NULL AND scrub_after IS NOT NULL;"
    "CREATE VIEW IF NOT EXISTS events_v AS"
    "  SELECT e.seq, e.id, u.user_id, e.kind, e.type, e.ts, e.created_at,"
    "         e.expires_at, e.scrub_after, e.scrubbed_at, e.body, e.checksum"
    "  FROM events e JOIN users u ON u.uid = e.uid;"
    "CREATE TABLE IF NOT EXISTS profiles ("
    "  uid            INTEGER PRIMARY KEY," /* users.uid */
    "  privacy_level  TEXT,"
    "  retention_days INTEGER,"           /* NULL: not chosen; -1: forever */
    "  ts             INTEGER NOT NULL,"  /* of the profile event applied */
    "  event_id       TEXT NOT NULL);"
    /* the audit trail (lib/storage/audit.h): hash-chained, no personal data */
    "CREATE TABLE IF NOT EXISTS audit ("
    "  seq        INTEGER PRIMARY KEY,"
    "  at         INTEGER NOT NULL,"      /* ms since the epoch */
    "  expires_at INTEGER,"
    "  actor      TEXT NOT NULL,"
    "  action     TEXT NOT NULL,"
    "  subject    TEXT,"                  /* a keyed pseudonym, or NULL */
    "  rows       INTEGER NOT NULL,"
    "  detail     TEXT NOT NULL,"         /* JSON */
    "  prev       BLOB NOT NULL,"
    "  mac        BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_expires ON audit(expires_at)"
    "  WHERE expires_at IS NOT NULL;"
    /* tombstones of erased users (lib/privacy/erasure.h): a keyed hash, a time */
    "CREATE TABLE IF NOT EXISTS erasures ("
    "  user_key TEXT PRIMARY KEY,"
    "  at       INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta ("
    "  key   TEXT PRIMARY KEY,"
    "  value TEXT) WITHOUT ROWID;"
    /* schema version 2 */
    /* user.segment's results (lib/ops/segment.h), one per user: the segment,
     * what it was computed from, and when */
    "CREATE TABLE IF NOT EXISTS segments ("
    "  uid         INTEGER PRIMARY KEY,"  /* the user's smallest users.uid */
    "  segment     TEXT NOT NULL,"
    "  inputs      TEXT NOT NULL,"        /* JSON: counts, times, rules */
    "  last_seq    INTEGER NOT NULL,"     /* the newest interaction counted */
    "  computed_at INTEGER NOT NULL);"
    /* model caches (lib/ops/modelcache.h): JSON values with their own expiry */
    "CREATE TABLE IF NOT EXISTS mlcache ("
    "  ns         TEXT NOT NULL,"
    "  key        TEXT NOT NULL,"
    "  value      TEXT NOT NULL,"
    "  uid        INTEGER,"               /* users.uid: erased with the user */
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  PRIMARY KEY (ns, key));"
    "CREATE INDEX IF NOT EXISTS mlcache_expires ON mlcache(expires_at);"
    "CREATE INDEX IF NOT EXISTS mlcache_uid ON mlcache(uid)"
    "  WHERE uid IS NOT NULL;"
    /* schema version 3: sync between instances (lib/storage/syncstore.h). A
     * record's current versions, each named by its dot (the device whose
     * change made it, and that device's counter) */
    "CREATE TABLE IF NOT EXISTS sync_versions ("
    "  rid     TEXT NOT NULL,"            /* keyed hash of user and name */
    "  dev     TEXT NOT NULL,"
    "  n       INTEGER NOT NULL,"
    "  vv      TEXT NOT NULL,"            /* version vector, canonical JSON */
    "  hlc     INTEGER NOT NULL,"         /* hybrid logical clock */
    "  deleted INTEGER NOT NULL,"         /* 1: a tombstone */
    "  payload BLOB NOT NULL,"            /* sealed with the group's key */
    "  PRIMARY KEY (dev, n)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS sync_versions_rid ON sync_versions(rid);"
    /* every change of dev up to n is held here (or one descending from it) */
    "CREATE TABLE IF NOT EXISTS sync_knowledge ("
    "  dev TEXT PRIMARY KEY,"
    "  n   INTEGER NOT NULL) WITHOUT ROWID;"
    /* a device's own map from a record to its user and the context's name */
    "CREATE TABLE IF NOT EXISTS sync_local ("
    "  rid  TEXT PRIMARY KEY,"
    "  uid  INTEGER NOT NULL,"            /* users.uid */
    "  name TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS sync_local_uid ON sync_local(uid);"
    /* schema version 4: users who were anonymous and are no longer. An
     * event of theirs resent after the change may have been stored
     * anonymised, under another id (lib/privacy/anon.h): store looks for
     * that id too before storing it again */
    "CREATE TABLE IF NOT EXISTS anon_past ("
    "  uid INTEGER PRIMARY KEY);";

/* Versions: 1, the first; 2 added segments and mlcache; 3 the sync
 * tables; 4 anon_past. Every change so
 * far only adds tables, so bringing an older file up to date is the
 * same CREATE ... IF NOT EXISTS as making a new one, and the version
 * moves with them in one savepoint: a crash leaves the old schema or the
 * new, never half of it. */
int cv_db_create_schema(sqlite3 *h)
{
    int rc = sqlite3_exec(h, "SAVEPOINT cv_schema", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_exec(h, schema_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(h, "INSERT OR IGNORE INTO meta(key, value) VALUES"
                          "('schema_version', " CV_STR(CV_SCHEMA_VERSION) ")",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(h, "UPDATE meta SET value = " CV_STR(CV_SCHEMA_VERSION)
                          " WHERE key = 'schema_version' AND CAST(value AS INTEGER) < "
                          CV_STR(CV_SCHEMA_VERSION), NULL, NULL, NULL);
    /* on failure the savepoint stays open, and the error is SQLite's last
     * (the callers tell corruption by it): every caller gives up and
     * closes the connection, which rolls it back */
    return rc == SQLITE_OK ? sqlite3_exec(h, "RELEASE cv_schema", NULL, NULL, NULL)
                           : rc;
}


sqlite3 *cv_db_handle(cv_db *db) { return db->h; }
int64_t cv_db_journal_batch(const cv_db *db) { return db->lsn; }
const char *cv_db_path(const cv_db *db) { return db->path; }
const char *cv_db_errmsg(cv_db *db)
{
    return db->why ? db->why : sqlite3_errmsg(db->h);
}

int64_t cv_db_scalar(cv_db *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

int64_t cv_db_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

static int exec(cv_db *db, const char *sql)
{
    return sqlite3_exec(db->h, sql, NULL, NULL, NULL);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cv_db_checkpoint(cv_db *db, int mode, int *log, int *done)
{
    double t0 = mono_s();
    int rc = sqlite3_wal_checkpoint_v2(db->h, NULL, mode, log, done);
    if (db->ckpt_fn)
        db->ckpt_fn(db->ckpt_arg, mono_s() - t0, rc);
    return rc;
}

void cv_db_on_checkpoint(cv_db *db, cv_db_checkpoint_fn *fn, void *arg)
{
    db->ckpt_fn = fn;
    db->ckpt_arg = arg;
}

static uint32_t get32be(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* SQLite's WAL checksum (walChecksumBytes): over 32-bit words taken big-
 * or little-endian as the header's magic says, continuing from s. */
static void wal_sum(bool big, const uint8_t *p, size_t n, uint32_t s[2])
{
    uint32_t s1 = s[0], s2 = s[1];
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint32_t a = big ? get32be(p + i)
                         : (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 |
                               (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24;
        uint32_t b = big ? get32be(p + i + 4)
                         : (uint32_t)p[i + 4] | (uint32_t)p[i + 5] << 8 |
                               (uint32_t)p[i + 6] << 16 | (uint32_t)p[i + 7] << 24;
        s1 += a + s2;
        s2 += b + s1;
    }
    s[0] = s1;
    s[1] = s2;
}

int64_t cv_db_wal_commits(const char *wal_path)
{
    FILE *f = fopen(wal_path, "rb");
    if (!f)
        return 0;
    uint8_t hdr[32];
    int64_t commits = 0;
    uint8_t *frame = NULL;
    if (fread(hdr, 1, sizeof hdr, f) != sizeof hdr)
        goto out;
    uint32_t magic = get32be(hdr), page = get32be(hdr + 8);
    if ((magic & 0xfffffffe) != 0x377f0682 || page < 512 || page > 65536 ||
        (page & (page - 1)))
        goto out;
    bool big = magic & 1;
    uint32_t sum[2] = {0, 0};
    wal_sum(big, hdr, 24, sum);
    if (sum[0] != get32be(hdr + 24) || sum[1] != get32be(hdr + 28))
        goto out;
    /* frames are valid while their salts are the header's and the
     * checksum chain holds; SQLite replays up to the last commit among them */
    frame = cv_malloc(24 + (size_t)page);
    while (fread(frame, 1, 24 + (size_t)page, f) == 24 + (size_t)page) {
        if (get32be(frame) == 0 || memcmp(frame + 8, hdr + 16, 8) != 0)
            break;
        wal_sum(big, frame, 8, sum);
        wal_sum(big, frame + 24, page, sum);
        if (sum[0] != get32be(frame + 16) || sum[1] != get32be(frame + 20))
            break;
        if (get32be(frame + 4) != 0)
            commits++;
    }
out:
    free(frame);
    fclose(f);
    return commits;
}

int cv_db_compact_step(cv_db *db, int64_t pages, int64_t max_ms,
                       cv_db_compaction *out)
{
    memset(out, 0, sizeof *out);
    int64_t t0 = cv_mono_ms();
    out->auto_vacuum = (int)cv_db_scalar(db, "PRAGMA auto_vacuum");
    out->freelist_before = cv_db_scalar(db, "PRAGMA freelist_count");
    out->pages_before = cv_db_scalar(db, "PRAGMA page_count");
    out->freelist_after = out->freelist_before;
    out->pages_after = out->pages_before;
    if (out->auto_vacuum != 2 || out->freelist_before < 0)
        return out->freelist_before < 0 ? -1 : 0;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA incremental_vacuum(%lld)", (long long)pages);
    /* at least one step, however short max_ms: each request progresses */
    while (out->freelist_after > 0 &&
           (out->steps == 0 || cv_mono_ms() - t0 < max_ms)) {
        if (sqlite3_exec(db->h, sql, NULL, NULL, NULL) != SQLITE_OK)
            return -1;
        out->steps++;
        out->freelist_after = cv_db_scalar(db, "PRAGMA freelist_count");
    }
    out->pages_after = cv_db_scalar(db, "PRAGMA page_count");
    /* the file is cut to its new size when the WAL is copied back; a
     * reader on an older snapshot defers that to a later checkpoint */
    cv_db_checkpoint(db, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    out->ms = cv_mono_ms() - t0;
    return 0;
}

static int exec_fmt(cv_db *db, const char *fmt, long long v)
{
    char sql[256];
    snprintf(sql, sizeof sql, fmt, v);
    return exec(db, sql);
}

sqlite3_stmt *cv_db_stmt(cv_db *db, const char *sql)
{
    for (int i = 0; i < db->ncache; i++)
        if (db->cache[i].sql == sql || strcmp(db->cache[i].sql, sql) == 0) {
            sqlite3_reset(db->cache[i].st);
            sqlite3_clear_bindings(db->cache[i].st);
            return db->cache[i].st;
        }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
                           NULL) != SQLITE_OK)
        return NULL;
    if (db->ncache < STMT_CACHE) {
        db->cache[db->ncache].sql = sql;
        db->cache[db->ncache].st = st;
        db->ncache++;
    } else {
        /* full: callers use at most a handful of statements */
        cv_die(EX_SOFTWARE, "statement cache full");
    }
    return st;
}

static void end_session(cv_db *db)
{
    if (db->sess) {
        sqlite3session_delete(db->sess);
        db->sess = NULL;
    }
    db->events_tracked = false;
    db->own_len = 0;
    db->own_rows = 0;
}

/* The session attaches a table on its first change, asking this first:
 * cv_db_insert's rows are written by own_row instead, until any other
 * change to events comes. */
static int session_filter(void *arg, const char *tab)
{
    cv_db *db = arg;
    if (db->own_step)
        return 0;
    if (strcmp(tab, "events") == 0)
        db->events_tracked = true;
    return 1;
}

static void own_put(cv_db *db, const void *p, size_t n)
{
    if (db->own_len + n > db->own_cap) {
        db->own_cap = (db->own_len + n) * 2;
        db->own = cv_realloc(db->own, db->own_cap);
    }
    memcpy(db->own + db->own_len, p, n);
    db->own_len += n;
}

/* SQLite's varint (big-endian groups of 7 bits); lengths stay far below
 * the 9-byte form */
static void own_varint(cv_db *db, uint64_t v)
{
    uint8_t b[10];
    int n = 0;
    do {
        b[n++] = (uint8_t)((v & 0x7f) | 0x80);
        v >>= 7;
    } while (v);
    b[0] &= 0x7f;
    for (int i = n - 1; i >= 0; i--)
        own_put(db, &b[i], 1);
}

static void own_int(cv_db *db, int64_t v)
{
    uint8_t b[9] = {SQLITE_INTEGER};
    for (int i = 0; i < 8; i++)
        b[1 + i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
    own_put(db, b, sizeof b);
}

/* A time that may be "never" (< 0), stored as NULL. */
static void own_when(cv_db *db, int64_t v)
{
    if (v < 0)
        own_put(db, (uint8_t[]){SQLITE_NULL}, 1);
    else
        own_int(db, v);
}

static void own_bytes(cv_db *db, int type, const void *p, size_t n)
{
    if (!p) {
        own_put(db, (uint8_t[]){SQLITE_NULL}, 1);
        return;
    }
    own_put(db, (uint8_t[]){(uint8_t)type}, 1);
    own_varint(db, n);
    own_put(db, p, n);
}

/* Begin the batch's journal record, if not yet. */
static int record_begin(cv_db *db)
{
    char err[512];
    if (db->rec_open)
        return 0;
    if (cv_journal_begin(db->journal, db->lsn + 1, cv_now_ms(), err, sizeof err) < 0) {
        free(db->why);
        db->why = cv_strdup(err);
        return -1;
    }
    db->rec_open = true;
    return 0;
}

/* Hand the rows gathered to the record (a failed write is kept for its
 * end, which takes the record back). */
static int own_flush(cv_db *db)
{
    if (db->own_len == 0)
        return 0;
    if (record_begin(db) < 0)
        return -1;
    (void)cv_journal_write(db->journal, db->own, db->own_len);
    db->own_len = 0;
    return 0;
}

#define OWN_FLUSH (256 * 1024) /* bytes gathered before a write */

/* Does events have the columns own_row writes, in its order? A file
 * made otherwise is left to the session. */
static bool own_columns(sqlite3 *h)
{
    static const char want[] = "seq,id,uid,kind,type,ts,created_at,"
                               "expires_at,scrub_after,scrubbed_at,body,checksum";
    sqlite3_stmt *st;
    bool ok = false;
    if (sqlite3_prepare_v2(h, "SELECT group_concat(name, ',') FROM"
                           " (SELECT name FROM pragma_table_info('events') ORDER BY cid)",
                           -1, &st, NULL) != SQLITE_OK)
        return false;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        ok = strcmp((const char *)sqlite3_column_text(st, 0), want) == 0;
    sqlite3_finalize(st);
    return ok;
}

/* Row r, stored as seq, as a patchset INSERT. The header is the
 * session's own for events (journal.h): its columns in table order, seq
 * the key. */
static int own_row(cv_db *db, const cv_row *r, int64_t seq)
{
    static const uint8_t head[] = {'P', 12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                   'e', 'v', 'e', 'n', 't', 's', 0};
    if (db->own_rows++ == 0)
        own_put(db, head, sizeof head);
    own_put(db, (uint8_t[]){SQLITE_INSERT, 0}, 2);
    own_int(db, seq);
    own_bytes(db, SQLITE_TEXT, r->id, strlen(r->id));
    own_int(db, r->uid);
    own_bytes(db, SQLITE_TEXT, r->kind, strlen(r->kind));
    own_bytes(db, SQLITE_TEXT, r->type, r->type ? strlen(r->type) : 0);
    own_int(db, r->ts);
    own_int(db, r->created_at);
    own_when(db, r->expires_at);
    own_when(db, r->scrub_after);
    own_when(db, r->scrubbed_at);
    own_bytes(db, SQLITE_TEXT, r->body, r->body_len);
    own_bytes(db, SQLITE_BLOB, r->checksum, r->checksum_len);
    return db->own_len >= OWN_FLUSH ? own_flush(db) : 0;
}

int cv_db_begin(cv_db *db)
{
    free(db->why);
    db->why = NULL;
    int rc = exec(db, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK || !db->journal)
        return rc;
    rc = sqlite3session_create(db->h, "main", &db->sess);
    /* every table, meta too (the audit chain's head); journal_lsn is set
     * after the patchset is taken, so replay sets it itself */
    if (rc == SQLITE_OK) {
        sqlite3session_table_filter(db->sess, session_filter, db);
        rc = sqlite3session_attach(db->sess, NULL);
    }
    if (rc != SQLITE_OK) {
        end_session(db);
        (void)exec(db, "ROLLBACK");
    }
    return rc;
}

static int to_journal(void *arg, const void *data, int n)
{
    return cv_journal_write(arg, data, (size_t)n) < 0 ? SQLITE_IOERR : SQLITE_OK;
}

/* The batch goes to the journal, numbered in meta, before COMMIT: a
 * crash between the two leaves a record the database lacks, which the
 * next open replays (its events were not acknowledged; if resent, they
 * are found already stored). The patchset streams to the file: a batch
 * of 10,000 events is never whole in memory. */
static int journal_batch(cv_db *db)
{
    char err[512];
    int64_t lsn = db->lsn + 1;
    int rc = SQLITE_OK;
    bool none = sqlite3session_isempty(db->sess);
    if (none && db->own_rows == 0) {
        end_session(db);
        return SQLITE_OK;
    }
    if (own_flush(db) < 0 || record_begin(db) < 0) {
        end_session(db);
        return SQLITE_IOERR;
    }
    /* SQLite streams 1 KiB pieces by default: a write each is too many */
    static int piece = 256 * 1024;
    if (piece > 0) {
        sqlite3session_config(SQLITE_SESSION_CONFIG_STRMSIZE, &piece);
        piece = 0;
    }
    if (!none)
        rc = sqlite3session_patchset_strm(db->sess, to_journal, db->journal);
    end_session(db);
    db->rec_open = false;
    if (rc != SQLITE_OK && !cv_journal_write_failed(db->journal)) {
        cv_journal_abort(db->journal); /* SQLite's failure: its message */
        return rc;
    }
    cv_journal_set_time(db->journal, cv_now_ms());
    /* a write that failed (a full disk) is taken back by end, which says
     * why with the journal's path, not SQLite's "not an error" */
    int written = cv_journal_end(db->journal, err, sizeof err);
    if (written < 0) {
        db->why = cv_strdup(err);
        return SQLITE_IOERR;
    }
    if (written == 0)
        return SQLITE_OK; /* changes that cancelled out */
    rc = exec_fmt(db, "INSERT OR REPLACE INTO meta(key, value) "
                  "VALUES('journal_lsn', %lld)", (long long)lsn);
    if (rc != SQLITE_OK) {
        cv_journal_undo(db->journal);
        return rc;
    }
    return SQLITE_DONE;
}

int cv_db_commit(cv_db *db)
{
    int jrc = db->sess ? journal_batch(db) : SQLITE_OK;
    if (jrc != SQLITE_OK && jrc != SQLITE_DONE)
        return jrc;
    int rc = exec(db, "COMMIT");
    if (jrc == SQLITE_DONE) {
        if (rc == SQLITE_OK)
            db->lsn++;
        else
            cv_journal_undo(db->journal);
    }
    return rc;
}

void cv_db_rollback(cv_db *db)
{
    end_session(db);
    if (db->rec_open) {
        cv_journal_abort(db->journal);
        db->rec_open = false;
    }
    (void)exec(db, "ROLLBACK");
}

/* Take the writer lock; on contention name the holder. */
int cv_db_lock(const char *dbpath, const char *program, int *fd_out,
                     char *err, size_t errlen)
{
    char *lpath = cv_fmt("%s.lock", dbpath);
    int fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open lock file %s: %s", lpath,
                 strerror(errno));
        free(lpath);
        return EX_IOERR;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char holder[128] = "";
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        snprintf(err, errlen,
                 "database %s is already open for writing by %s; only one "
                 "writer may run (stop it, or send the work to it)",
                 dbpath, *holder ? holder : "another process");
        close(fd);
        free(lpath);
        return EX_TEMPFAIL;
    }
    char who[128];
    int n = snprintf(who, sizeof who, "%s (pid %ld)\n", program, (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, who, (size_t)n, 0) != n) {
        snprintf(err, errlen, "cannot write lock file %s: %s", lpath,
                 strerror(errno));
        close(fd);
        free(lpath);
        return EX_IOERR;
    }
    free(lpath);
    *fd_out = fd;
    return 0;
}

static void db_free(cv_db *db)
{
    end_session(db);
    free(db->own);
    cv_journal_destroy(&db->journal);
    free(db->why);
    for (int i = 0; i < db->ncache; i++)
        sqlite3_finalize(db->cache[i].st);
    if (db->h)
        sqlite3_close(db->h);
    if (db->lock_fd >= 0)
        close(db->lock_fd); /* releases the flock */
    free(db->path);
    free(db);
}

void cv_db_close(cv_db **p)
{
    cv_db *db = *p;
    if (!db)
        return;
    if (db->lock_fd >= 0) {
        /* the writer leaves no WAL behind on a clean stop */
        for (int i = 0; i < db->ncache; i++)
            sqlite3_finalize(db->cache[i].st);
        db->ncache = 0;
        /* a service ran (and counted) this already, when nothing was written
         * after it the WAL is empty: no second one */
        char *wal = cv_fmt("%s-wal", db->path);
        if (cv_db_file_size(wal) > 0)
            cv_db_checkpoint(db, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        free(wal);
    }
    db_free(db);
    *p = NULL;
}

char *cv_db_check(cv_db *db, bool full)
{
    sqlite3_stmt *st;
    const char *sql = full ? "PRAGMA integrity_check(20)" : "PRAGMA quick_check(20)";
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
        return cv_strdup(sqlite3_errmsg(db->h));
    char *finding = NULL;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (r && strcmp(r, "ok") != 0 && !finding)
            finding = cv_strdup(r);
    }
    if (rc != SQLITE_DONE && !finding)
        finding = cv_strdup(sqlite3_errmsg(db->h));
    sqlite3_finalize(st);
    return finding;
}

/* The cheap start check: the rightmost leaf of each table, through the
 * schema that was just read. A database torn at its end (the usual damage
 * of a full disk or a truncated copy) fails here; quick_check finds the
 * rest. NULL when ok, else the finding. */
static char *check_ends(cv_db *db)
{
    static const char *const sql[] = {
        "SELECT seq, id FROM events ORDER BY seq DESC LIMIT 1",
        "SELECT uid, user_id FROM users ORDER BY uid DESC LIMIT 1",
        "SELECT value FROM meta WHERE key = 'schema_version'",
    };
    for (size_t i = 0; i < sizeof sql / sizeof *sql; i++) {
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(db->h, sql[i], -1, &st, NULL);
        if (rc == SQLITE_OK) {
            while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                ;
            sqlite3_finalize(st);
        }
        if (rc != SQLITE_DONE && rc != SQLITE_OK)
            return cv_strdup(sqlite3_errmsg(db->h));
    }
    return NULL;
}

void cv_db_unlink(const char *path)
{
    char *p = cv_fmt("%s-wal", path);
    unlink(p);
    free(p);
    p = cv_fmt("%s-shm", path);
    unlink(p);
    free(p);
    unlink(path);
}

static int64_t meta_int(cv_db *db, const char *key)
{
    sqlite3_stmt *st;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db->h, "SELECT value FROM meta WHERE key = ?", -1,
                           &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Open the journal and bring the database up to its end: batches it lacks
 * were written before a COMMIT that a crash cut off, or the file was put
 * back from an older copy. A database that is new while the journal holds
 * batches was deleted: that is for a restore, not an empty start. */
static int open_journal(cv_db *db, const cv_config *cfg, cv_recovery *rec,
                        char *err, size_t errlen)
{
    int code;
    cv_journal_info info;
    if (rec->created && cv_journal_stat(cfg->journal_dir, &info) == 0 &&
        info.last > 0) {
        snprintf(err, errlen, "database %s is missing, but the journal %s "
                 "holds batches up to %lld: restore it with 'ctxvault-backup "
                 "restore' (the newest backup, then the journal), or move the "
                 "journal aside to start an empty database", db->path,
                 cfg->journal_dir, (long long)info.last);
        char *gone = cv_strdup(db->path);
        sqlite3_close(db->h);
        db->h = NULL;
        cv_db_unlink(gone);
        free(gone);
        return EX_NOINPUT;
    }
    db->lsn = meta_int(db, "journal_lsn");
    db->journal = cv_journal_open(cfg->journal_dir, cfg->journal_segment,
                                  cfg->sync_mode != CV_SYNC_NORMAL, db->lsn,
                                  &code, err, errlen);
    if (!db->journal)
        return code;
    if (cv_journal_last(db->journal) > db->lsn) {
        cv_replay r;
        char why[512];
        if (cv_journal_replay(db->h, cfg->journal_dir, db->lsn, -1, false, &r,
                              why, sizeof why) != CV_REPLAY_OK) {
            snprintf(err, errlen, "database %s lacks batches %lld to %lld of "
                     "its journal, and they cannot be replayed onto it (%s): "
                     "restore it with 'ctxvault-backup restore'", db->path,
                     (long long)db->lsn + 1,
                     (long long)cv_journal_last(db->journal), why);
            return EX_DATAERR;
        }
        cv_info("replayed %lld batches (%lld changes) from the journal that "
                "the database lacked", (long long)r.batches,
                (long long)r.changes);
        rec->replayed = r.batches;
        db->lsn = r.last;
    }
    return 0;
}

/* Must the WAL be synced at each COMMIT? Under journal only when there
 * is no journal to replay what a power cut takes from it. */
static bool sync_wal(const cv_config *cfg)
{
    return cfg->sync_mode == CV_SYNC_FULL ||
           (cfg->sync_mode == CV_SYNC_JOURNAL && !cfg->journal);
}

static cv_db *open_writer(const cv_config *cfg, const char *program,
                          bool defer_check, cv_recovery *rec, int *code,
                          char *err, size_t errlen)
{
    memset(rec, 0, sizeof *rec);
    int64_t t0 = cv_mono_ms();
    cv_db *db = cv_calloc(1, sizeof *db);
    db->lock_fd = -1;
    db->path = cv_strdup(cfg->db_file);
    char *dir = cv_strdup(cfg->db_file);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (cv_mkdir_p(dir, 0700, false) < 0) {
            snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
            free(dir);
            *code = EX_CANTCREAT;
            goto fail;
        }
    }
    free(dir);
    if ((*code = cv_db_lock(db->path, program, &db->lock_fd, err, errlen)))
        goto fail;

    char *wal = cv_fmt("%s-wal", db->path);
    rec->wal_bytes = cv_db_file_size(wal);
    /* readers leave an empty WAL behind; only frames mean a crash */
    rec->wal_present = rec->wal_bytes > 0;
    /* counted before SQLite opens it: its recovery leaves no count */
    if (rec->wal_present)
        rec->wal_commits = cv_db_wal_commits(wal);
    free(wal);
    rec->created = access(db->path, F_OK) != 0;

    if (sqlite3_open_v2(db->path, &db->h,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", db->path,
                 db->h ? sqlite3_errmsg(db->h) : "out of memory");
        *code = EX_CANTCREAT;
        goto fail;
    }
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, cfg->busy_timeout_ms);

    /* page size and auto_vacuum only take effect before the first table
     * exists. 16 KiB pages: a row of ~750 bytes and its index entries
     * dirty a quarter as many pages per batch as with 4 KiB, so the WAL
     * and the checkpoint write fewer frames (DESIGN.md §9 has the
     * figures); an older file keeps the size it was made with */
    int rc = exec(db, "PRAGMA page_size=" CV_STR(CV_DB_PAGE_SIZE));
    if (rc == SQLITE_OK)
        rc = exec(db, "PRAGMA auto_vacuum=INCREMENTAL");
    if (rc == SQLITE_OK)
        rc = exec(db, "PRAGMA journal_mode=WAL");
    if (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT) {
        snprintf(err, errlen,
                 "database %s is corrupt (%s); restore it from a backup with "
                 "'ctxvault-backup restore', or move it aside to start empty",
                 db->path, sqlite3_errmsg(db->h));
        *code = EX_DATAERR;
        goto fail;
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot set up database %s: %s", db->path,
                 sqlite3_errmsg(db->h));
        *code = EX_IOERR;
        goto fail;
    }
    if (cv_bench_no_durability())
        rc = exec(db, "PRAGMA journal_mode=OFF");
    if (rc == SQLITE_OK)
        rc = exec(db, cv_bench_no_durability() ? "PRAGMA synchronous=OFF"
                      : sync_wal(cfg)          ? "PRAGMA synchronous=FULL"
                                               : "PRAGMA synchronous=NORMAL");
    if (rc == SQLITE_OK)
        rc = exec(db, "PRAGMA secure_delete=ON");
    if (rc == SQLITE_OK)
        rc = exec(db, "PRAGMA temp_store=MEMORY");
    if (rc == SQLITE_OK)
        rc = exec_fmt(db, "PRAGMA wal_autocheckpoint=%lld", cfg->wal_autocheckpoint);
    if (rc == SQLITE_OK)
        rc = exec_fmt(db, "PRAGMA journal_size_limit=%lld",
                      (long long)cfg->journal_size_limit);
    if (rc == SQLITE_OK)
        rc = exec_fmt(db, "PRAGMA cache_size=-%lld",
                      (long long)(cfg->cache_size / 1024));
    int64_t version = 0;
    if (rc == SQLITE_OK) {
        version = meta_int(db, "schema_version"); /* 0: a new file */
        if (version > CV_SCHEMA_VERSION) {
            snprintf(err, errlen, "database %s has schema version %lld, newer "
                     "than this ctxvault knows (%d): run the newer ctxvault",
                     db->path, (long long)version, CV_SCHEMA_VERSION);
            *code = EX_CONFIG;
            goto fail;
        }
        rc = cv_db_create_schema(db->h);
    }
    db->own_ok = rc == SQLITE_OK && own_columns(db->h);
    if (rc == SQLITE_OK && version > 0 && version < CV_SCHEMA_VERSION)
        cv_info("upgraded database %s from schema version %lld to %d",
                db->path, (long long)version, CV_SCHEMA_VERSION);
    if (rc != SQLITE_OK) {
        int ext = sqlite3_extended_errcode(db->h);
        bool corrupt = (ext & 0xff) == SQLITE_CORRUPT || (ext & 0xff) == SQLITE_NOTADB;
        snprintf(err, errlen, "%s %s: %s%s", corrupt ? "corrupt database" :
                 "cannot set up database", db->path, sqlite3_errmsg(db->h),
                 corrupt ? "; restore it with 'ctxvault-backup restore'" : "");
        *code = corrupt ? EX_DATAERR : EX_IOERR;
        goto fail;
    }

    char *finding = defer_check ? check_ends(db) : cv_db_check(db, cfg->check_integrity);
    if (finding) {
        snprintf(err, errlen,
                 "database %s failed its %s (%s); refusing to write to it: "
                 "restore it from a backup with 'ctxvault-backup restore'",
                 db->path, defer_check ? "start check" :
                 cfg->check_integrity ? "integrity_check" : "quick_check",
                 finding);
        free(finding);
        *code = EX_DATAERR;
        goto fail;
    }
    if (cfg->journal && !cv_bench_no_durability() &&
        (*code = open_journal(db, cfg, rec, err, errlen)))
        goto fail;
    /* fold what the WAL held into the database, and truncate it */
    double c0 = mono_s();
    sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    rec->checkpointed = true;
    rec->checkpoint_s = mono_s() - c0;
    rec->duration_ms = cv_mono_ms() - t0;
    *code = 0;
    return db;
fail:
    db_free(db);
    return NULL;
}

cv_db *cv_db_open_writer(const cv_config *cfg, const char *program,
                         cv_recovery *rec, int *code, char *err, size_t errlen)
{
    return open_writer(cfg, program, false, rec, code, err, errlen);
}

cv_db *cv_db_open_writer_fast(const cv_config *cfg, const char *program,
                              cv_recovery *rec, int *code, char *err,
                              size_t errlen)
{
    return open_writer(cfg, program, true, rec, code, err, errlen);
}

cv_db *cv_db_open_reader(const char *path, int *code, char *err, size_t errlen)
{
    if (access(path, F_OK) != 0) {
        snprintf(err, errlen, "no database at %s (run 'ctxvault init' and "
                 "store some events first)", path);
        *code = EX_NOINPUT;
        return NULL;
    }
    cv_db *db = cv_calloc(1, sizeof *db);
    db->lock_fd = -1;
    db->path = cv_strdup(path);
    if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path,
                 db->h ? sqlite3_errmsg(db->h) : "out of memory");
        *code = EX_NOINPUT;
        db_free(db);
        return NULL;
    }
    sqlite3_busy_timeout(db->h, 5000);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "SELECT value FROM meta WHERE key='schema_version'",
                           -1, &st, NULL) != SQLITE_OK) {
        int ext = sqlite3_extended_errcode(db->h) & 0xff;
        snprintf(err, errlen, "%s %s: %s", ext == SQLITE_NOTADB || ext == SQLITE_CORRUPT
                 ? "corrupt database" : "cannot read database", path,
                 sqlite3_errmsg(db->h));
        *code = (ext == SQLITE_NOTADB || ext == SQLITE_CORRUPT) ? EX_DATAERR : EX_NOINPUT;
        db_free(db);
        return NULL;
    }
    sqlite3_finalize(st);
    *code = 0;
    return db;
}

/* count(*) of a query with one parameter, now; -1 on error. */
static int64_t count_at(cv_db *db, const char *sql, int64_t now)
{
    sqlite3_stmt *st = cv_db_stmt(db, sql);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, now);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    return n;
}

int64_t cv_db_expired(cv_db *db, int64_t now)
{
    return count_at(db, "SELECT count(*) FROM events WHERE expires_at <= ?",
                    now);
}

int64_t cv_db_scrub_due(cv_db *db, int64_t now)
{
    return count_at(db, "SELECT count(*) FROM events WHERE scrubbed_at IS NULL"
                        " AND scrub_after IS NOT NULL AND scrub_after <= ?",
                    now);
}

int cv_db_insert(cv_db *db, const cv_row *r)
{
    sqlite3_stmt *st = cv_db_stmt(db,
        "INSERT INTO events(id, uid, kind, type, ts, created_at, expires_at,"
        " scrub_after, body, checksum, scrubbed_at) VALUES(?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(id) DO NOTHING");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r->uid);
    sqlite3_bind_text(st, 3, r->kind, -1, SQLITE_STATIC);
    if (r->type)
        sqlite3_bind_text(st, 4, r->type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, r->ts);
    sqlite3_bind_int64(st, 6, r->created_at);
    if (r->expires_at >= 0)
        sqlite3_bind_int64(st, 7, r->expires_at);
    if (r->scrub_after >= 0)
        sqlite3_bind_int64(st, 8, r->scrub_after);
    sqlite3_bind_text(st, 9, r->body, (int)r->body_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 10, r->checksum, (int)r->checksum_len, SQLITE_STATIC);
    if (r->scrubbed_at >= 0)
        sqlite3_bind_int64(st, 11, r->scrubbed_at);
    bool own = db->sess && db->own_ok && !db->events_tracked;
    db->own_step = own;
    int rc = sqlite3_step(st);
    db->own_step = false;
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return -1;
    if (sqlite3_changes(db->h) == 0)
        return 0;
    if (own && own_row(db, r, sqlite3_last_insert_rowid(db->h)) < 0)
        return -1;
    return 1;
}

/* The columns both checks read, from the events with their users. */
#define ROW_COLUMNS \
    "SELECT e.seq, e.id, u.user_id, e.kind, e.ts, e.body, e.checksum" \
    " FROM events e LEFT JOIN users u ON u.uid = e.uid"

/* Why the row at st (ROW_COLUMNS) fails its keyed checksum, or NULL. */
static const char *row_problem(const cv_keyring *kr, sqlite3_stmt *st)
{
    const char *id = (const char *)sqlite3_column_text(st, 1);
    const char *user = (const char *)sqlite3_column_text(st, 2);
    const char *kind = (const char *)sqlite3_column_text(st, 3);
    const char *body = (const char *)sqlite3_column_text(st, 5);
    /* a NULL (a row whose user is gone, say) cannot match its sum */
    int ok = cv_fieldcrypt_row_checksum_check(
        kr, sqlite3_column_blob(st, 6), (size_t)sqlite3_column_bytes(st, 6),
        id ? id : "", user ? user : "", kind ? kind : "",
        sqlite3_column_int64(st, 4), body ? body : "",
        (size_t)sqlite3_column_bytes(st, 5));
    return ok == 1 ? NULL
           : ok == 0 ? "checksum mismatch: the row was changed outside ctxvault"
           : ok == -2 ? "checksum under a retired key version"
                      : "checksum under a key version the keyring lacks";
}

int64_t cv_db_check_checksums(cv_db *db, const cv_keyring *kr,
                              int64_t max_named, int64_t *rows)
{
    sqlite3_stmt *st;
    *rows = 0;
    if (sqlite3_prepare_v2(db->h, ROW_COLUMNS, -1, &st, NULL) != SQLITE_OK) {
        cv_err("cannot read rows of %s: %s", db->path, sqlite3_errmsg(db->h));
        return -1;
    }
    int64_t bad = 0;
    int rc;
    cv_progress pr;
    cv_progress_init(&pr, "checksums");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        (*rows)++;
        const char *why = row_problem(kr, st);
        const char *id = (const char *)sqlite3_column_text(st, 1);
        if (why && bad++ < max_named)
            cv_err("row %lld (id %s): %s", (long long)sqlite3_column_int64(st, 0),
                   id ? id : "(null)", why);
        cv_progress_update(&pr, (uint64_t)*rows, NULL);
    }
    cv_progress_done(&pr);
    if (rc != SQLITE_DONE) {
        cv_err("reading rows of %s failed: %s", db->path, sqlite3_errmsg(db->h));
        bad = bad ? bad : -1;
    }
    sqlite3_finalize(st);
    if (bad > max_named)
        cv_err("... and %lld more bad rows", (long long)(bad - max_named));
    return bad;
}

int64_t cv_db_check_checksums_chunk(cv_db *db, const cv_keyring *kr,
                                    int64_t *after, int64_t limit,
                                    cv_db_bad_row_fn *bad, void *arg)
{
    sqlite3_stmt *st = cv_db_stmt(db, ROW_COLUMNS " WHERE e.seq > ?"
                                      " ORDER BY e.seq LIMIT ?");
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, *after);
    sqlite3_bind_int64(st, 2, limit);
    int64_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        n++;
        *after = sqlite3_column_int64(st, 0);
        const char *why = row_problem(kr, st);
        if (why) {
            const char *id = (const char *)sqlite3_column_text(st, 1);
            bad(arg, *after, id ? id : "(null)", why);
        }
    }
    /* the reset ends the read transaction: a checkpoint may pass it now */
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? n : -1;
}
