/* journal.h - the replay journal: every committed write transaction, in its
 * stored form, so a restore can bring a backup up to the last
 * acknowledged event.
 *
 * The writer (lib/storage/db.c) records each write transaction with SQLite's
 * session extension and appends its patchset here, numbered by a batch
 * number (lsn), before COMMIT; the same transaction stores that lsn in
 * meta.journal_lsn, so the database always says which batch it holds.
 * Events inserted by cv_db_insert, the bulk of every batch, are not left
 * to the session (which copies each row, then reads it back to write the
 * patchset: a quarter of store's time): db.c writes them itself, in the
 * same patchset format, as a block of INSERTs ahead of the session's
 * patchset, streamed as the batch grows. It does so only until another
 * change to events in the batch makes the session track that table;
 * from then on the session records every change, so replaying the block
 * then the patchset repeats the batch's order.
 * A patchset is the rows as stored (already sealed and pseudonymised);
 * a deletion names only the row's key, so an erasure leaves no personal
 * data in the journal of its own, and replaying it erases again.
 *
 * Files: DIR/<first lsn, 20 digits>.cvj, 0600 in a 0700 directory.
 *
 *   "CVJRNL1\n"           8 bytes
 *   first lsn             8 bytes, big-endian
 *   records               each: length (4), lsn (8), commit time in ms
 *                         (8), the patchset, and a 16-byte BLAKE2b of
 *                         the patchset then the 20 bytes before it, so a
 *                         torn or altered record is found
 *
 * A segment fills to its size limit (a record may pass it) and the next
 * begins; the newest is
 * the only one written. ctxvault-backup removes segments once a verified
 * backup holds every batch in them. */
#ifndef CV_JOURNAL_H
#define CV_JOURNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cv_journal cv_journal;

/* Open DIR (created 0700) for appending after batch db_lsn, the database's
 * meta.journal_lsn. A torn last record (a write cut by a crash) is
 * removed. Records the database lacks are left for the caller to replay
 * (cv_journal_replay, as lib/storage/db.c does on open); when the journal ends
 * before db_lsn (it was deleted, or lost its tail
 * to a power cut), a warning says so and it goes on from db_lsn. With
 * sync_each, end syncs each record (fdatasync) before it returns, so a
 * batch is durable before its COMMIT: the database's WAL then need not
 * be (synchronous = journal). The disk is set writing each MiB of a
 * record as it comes, so that sync waits for little. NULL with a reason; *code is the sysexits
 * status. */
cv_journal *cv_journal_open(const char *dir, int64_t segment_bytes,
                            bool sync_each, int64_t db_lsn, int *code,
                            char *err, size_t errlen);
void cv_journal_destroy(cv_journal **p);

/* The last batch in the journal (0 when empty). */
int64_t cv_journal_last(const cv_journal *j);

/* Append batch lsn (cv_journal_last + 1) made at at_ms, its payload in
 * pieces: begin, write each piece (a failure is kept for end), end. end
 * returns 1 when the record is written, 0 when the payload was empty (no
 * batch), or -1 with a reason; nothing is left half-written. abort drops
 * a record begun. */
int cv_journal_begin(cv_journal *j, int64_t lsn, int64_t at_ms, char *err,
                     size_t errlen);
int cv_journal_write(cv_journal *j, const void *data, size_t n);
int cv_journal_end(cv_journal *j, char *err, size_t errlen);
void cv_journal_abort(cv_journal *j);
/* The record begun commits at at_ms, not at its begin (a batch streamed
 * while it was written). */
void cv_journal_set_time(cv_journal *j, int64_t at_ms);
/* Did a write of the record begun fail (ENOSPC, EIO)? Then end takes it
 * back and says why. */
bool cv_journal_write_failed(const cv_journal *j);
/* The three at once: 0, or -1 with a reason. */
int cv_journal_append(cv_journal *j, int64_t lsn, int64_t at_ms,
                      const void *payload, size_t len, char *err,
                      size_t errlen);
/* Take back the last append: its COMMIT failed. */
void cv_journal_undo(cv_journal *j);

/* What a replay did. */
typedef struct {
    int64_t first, last;    /* batches applied (0, 0: none) */
    int64_t batches;
    int64_t changes;        /* rows inserted, updated or deleted */
    int64_t last_at_ms;     /* commit time of the last batch applied */
    bool torn_tail;         /* the journal ended in a torn record */
} cv_replay;

enum {
    CV_REPLAY_OK = 0,
    CV_REPLAY_GAP = -1,      /* the journal does not go on from after_lsn */
    CV_REPLAY_DAMAGED = -2,  /* a record fails its check, not at the end */
    CV_REPLAY_CONFLICT = -3, /* a change does not fit the database */
    CV_REPLAY_ERROR = -4,    /* I/O or SQLite */
};

/* Apply to h, in one transaction, every batch after after_lsn up to the
 * end of the journal, or up to the last committed at or before until_ms
 * (< 0: no limit); then set meta.journal_lsn to the last applied. Any
 * conflict aborts the whole replay. CV_REPLAY_OK or a CV_REPLAY_ code
 * with the reason in err. */
int cv_journal_replay(sqlite3 *h, const char *dir, int64_t after_lsn,
                      int64_t until_ms, bool progress, cv_replay *out,
                      char *err, size_t errlen);

/* Move every batch after after_lsn out of the journal into aside_dir
 * (created 0700), so the journal ends where a restored database does.
 * *moved gets the number of batches. 0 or -1 with a reason. */
int cv_journal_cut(const char *dir, int64_t after_lsn, const char *aside_dir,
                   int64_t *moved, char *err, size_t errlen);

/* Remove the segments whose every batch is at or before covered_lsn
 * (never the newest). *removed and *bytes get what went. */
int cv_journal_prune(const char *dir, int64_t covered_lsn, int *removed,
                     int64_t *bytes);

/* The journal's extent: first and last batch (0 when empty), segment
 * files and bytes. -1 when the directory cannot be read. */
typedef struct {
    int64_t first, last;
    int segments;
    int64_t bytes;
} cv_journal_info;
int cv_journal_stat(const char *dir, cv_journal_info *out);

#endif
