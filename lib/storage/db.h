/* db.h - the event database: schema, pragmas, the single-writer lock,
 * recovery on open, and the statements every program shares.
 *
 * Only ctxvault-store opens it for writing (doc/DESIGN.md §3): the writer
 * holds an exclusive flock on "<db>.lock", which names the holder, so a
 * second writer refuses with a message saying who has it. Everyone else
 * opens read-only connections. */
#ifndef CV_DB_H
#define CV_DB_H

#include "base/config.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_DB_PAGE_SIZE 16384 /* of a new database (db.c) */
#define CV_SCHEMA_VERSION 4   /* 2: segments, mlcache; 3: sync; 4: anon_past (db.c) */
#define CV_STR_(x) #x
#define CV_STR(x) CV_STR_(x)

typedef struct cv_db cv_db;

/* What recovery found and did on open, for logs and metrics. */
typedef struct {
    bool wal_present;       /* a WAL was there: the last run did not close */
    int64_t wal_bytes;      /* its size before the checkpoint */
    int64_t duration_ms;
    bool created;           /* a new database */
    int64_t checksum_bad;   /* rows failing their checksum (when checked) */
    int64_t replayed;       /* journal batches the database lacked */
    int64_t wal_commits;    /* committed transactions SQLite replayed from the WAL */
    bool checkpointed;      /* the open's checkpoint ran ... */
    double checkpoint_s;    /* ... and took this long */
} cv_recovery;

/* Open (creating if needed) for writing: take the lock, apply the pragmas,
 * create the schema, then recover (quick_check or integrity_check,
 * checkpoint). NULL with a reason in err; *code is the sysexits status
 * (EX_TEMPFAIL when locked, EX_DATAERR when corrupt, EX_IOERR ...). */
cv_db *cv_db_open_writer(const cv_config *cfg, const char *program,
                         cv_recovery *rec, int *code, char *err, size_t errlen);
/* The same, for a service that must be ready at once (ctxvault-store
 * --serve, restarted by supervisord after a crash): the lock, the WAL
 * recovery, the schema and a cheap check of the tables' ends, but no
 * quick_check, which reads the whole file (seconds on a large database).
 * The caller runs that check beside its work (cv_dbcheck) and must not
 * let anything depend on what it writes (no acknowledgement) until it
 * passes. */
cv_db *cv_db_open_writer_fast(const cv_config *cfg, const char *program,
                              cv_recovery *rec, int *code, char *err,
                              size_t errlen);
/* quick_check (or integrity_check when full): NULL when ok, else the
 * first finding, malloc'ed. */
char *cv_db_check(cv_db *db, bool full);
/* Open an existing database read-only. */
cv_db *cv_db_open_reader(const char *path, int *code, char *err, size_t errlen);
void cv_db_close(cv_db **p);

sqlite3 *cv_db_handle(cv_db *db);
const char *cv_db_path(const cv_db *db);

/* Transactions: BEGIN IMMEDIATE (writes never meet SQLITE_BUSY midway). */
int cv_db_begin(cv_db *db);
int cv_db_commit(cv_db *db);
void cv_db_rollback(cv_db *db);

/* A prepared statement cached on the connection (keyed by its text). */
sqlite3_stmt *cv_db_stmt(cv_db *db, const char *sql);

/* One row to insert. */
typedef struct {
    const char *id;
    int64_t uid;            /* users.uid of the row's user */
    const char *kind;
    const char *type;       /* may be NULL */
    int64_t ts;
    int64_t created_at;
    int64_t expires_at;     /* < 0: never */
    int64_t scrub_after;    /* < 0: never */
    int64_t scrubbed_at;    /* < 0: not scrubbed */
    const char *body;
    size_t body_len;
    const uint8_t *checksum;
    size_t checksum_len;
} cv_row;

/* Take the database's writer lock for program without opening it (a
 * restore replaces the file): *fd holds it until closed. 0, EX_TEMPFAIL
 * naming the holder, or EX_IOERR, with the reason in err. */
int cv_db_lock(const char *dbpath, const char *program, int *fd, char *err,
               size_t errlen);

/* Rows past their expiry at now (not yet deleted); -1 on error. */
int64_t cv_db_expired(cv_db *db, int64_t now);
/* Rows past their scrub age at now and not scrubbed; -1 on error. */
int64_t cv_db_scrub_due(cv_db *db, int64_t now);

/* Insert idempotently on id: 1 inserted, 0 a duplicate, -1 error. */
int cv_db_insert(cv_db *db, const cv_row *row);

/* Check every row's keyed checksum. Names each bad row on stderr (at most
 * max_named of them) and returns how many are bad (or -1 when the rows
 * cannot be read); *rows gets the count checked. A row whose checksum is
 * under a key version the keyring lacks counts as bad. */
struct cv_keyring;
int64_t cv_db_check_checksums(cv_db *db, const struct cv_keyring *kr,
                              int64_t max_named, int64_t *rows);
/* The same check a chunk at a time, for a pass beside the writer: the
 * rows with seq > *after, at most limit of them, in seq order, in one
 * short read transaction. Each bad row goes to bad (its seq, id, and
 * why); *after gets the last seq read. Rows read (0: the end), or -1. */
typedef void cv_db_bad_row_fn(void *arg, int64_t seq, const char *id,
                              const char *why);
int64_t cv_db_check_checksums_chunk(cv_db *db, const struct cv_keyring *kr,
                                    int64_t *after, int64_t limit,
                                    cv_db_bad_row_fn *bad, void *arg);

/* A WAL checkpoint of the writer's connection (mode: SQLITE_CHECKPOINT_*),
 * timed and told to the hook set with cv_db_on_checkpoint: every
 * checkpoint store runs goes through here, so the metrics count them all.
 * SQLite's result code; log and done as sqlite3_wal_checkpoint_v2's. */
int cv_db_checkpoint(cv_db *db, int mode, int *log, int *done);
typedef void cv_db_checkpoint_fn(void *arg, double seconds, int rc);
void cv_db_on_checkpoint(cv_db *db, cv_db_checkpoint_fn *fn, void *arg);
/* Committed transactions in a WAL file: the commit frames of its valid
 * prefix (salts and checksum chain as SQLite checks them), which SQLite
 * replays when it opens the database. 0 when there is no valid WAL. */
int64_t cv_db_wal_commits(const char *wal_path);

/* Describe the last error of the connection. */
const char *cv_db_errmsg(cv_db *db);

/* Create the tables and indexes where missing (a new file needs
 * PRAGMA auto_vacuum=INCREMENTAL first). */
int cv_db_create_schema(sqlite3 *h);

/* The last journal batch the writer's database holds (0: none). */
int64_t cv_db_journal_batch(const cv_db *db);

/* Remove a database file with its WAL and shared-memory files. */
void cv_db_unlink(const char *path);

/* One db.compact request: PRAGMA incremental_vacuum(pages) again and
 * again, each step its own short transaction, until the freelist is
 * empty or max_ms has passed, then a passive checkpoint, so the file
 * shrinks once nobody reads an older snapshot. Events wait only for the
 * request, never for the whole compaction: the caller asks again while
 * "more". */
typedef struct {
    int auto_vacuum;          /* 0 none, 1 full, 2 incremental */
    int64_t freelist_before, freelist_after;
    int64_t pages_before, pages_after;
    int64_t steps, ms;
} cv_db_compaction;
/* 0, or -1 with the error in cv_db_errmsg. Does nothing (steps 0) unless
 * auto_vacuum is incremental: the caller says so. */
int cv_db_compact_step(cv_db *db, int64_t pages, int64_t max_ms,
                       cv_db_compaction *out);

/* Sizes of the database and its WAL in bytes (0 when absent). */
int64_t cv_db_file_size(const char *path);
/* The first column of the first row of sql, or -1 (an error, no row). */
int64_t cv_db_scalar(cv_db *db, const char *sql);

#endif
