/* spool.h - ingest's durable spool: every accepted event is written here,
 * and synced, before it is sent, and stays until store acknowledges it.
 * After a crash the next ingest with the same source replays what is left
 * (store dedupes on id, so resending too much is harmless; losing is not).
 *
 * A spool is a directory (0700) of segment files (0600) named by a
 * sequence number. Each segment starts with an 8-byte magic and holds
 * records:
 *
 *     u32 length (little-endian) | 8 bytes of BLAKE2b(length, payload) | payload
 *
 * The payload is one event (sealed by the sender, lib/net/sender.h). Appends
 * are buffered; cv_spool_sync() writes them and fdatasyncs (group commit):
 * only a synced record is durable. A new segment starts every 4096
 * records or 4 MiB; a segment that is no longer the current one is
 * deleted as soon as every record in it is acknowledged.
 *
 * Opening scans the segments left by an earlier run. A record with a bad
 * checksum or cut short (a crash before its sync) ends its segment: the
 * file is truncated there, since nothing after it was ever durable. What
 * remains is replayed, a record at a time (cv_spool_replay_next), so a
 * spool larger than memory replays in bounded memory.
 *
 * The directory is locked (flock on DIR/lock): two ingests never share a
 * spool, and the second is told which process holds it. */
#ifndef CV_SPOOL_H
#define CV_SPOOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct cv_spool cv_spool;

/* Records per segment and bytes per segment, at most. */
#define CV_SPOOL_SEG_RECORDS 4096
#define CV_SPOOL_SEG_BYTES (4u << 20)
/* The largest payload a record may hold (a longer length is corruption). */
#define CV_SPOOL_MAX_RECORD (64u << 20)

/* Open (creating) the spool in dir and lock it. NULL with a reason in err
 * when the directory cannot be made, is locked by another process, or a
 * segment cannot be read. Problems found in segments (a torn tail, a bad
 * checksum) are logged as warnings and repaired, not errors. errno is
 * EWOULDBLOCK when another process holds the lock. */
cv_spool *cv_spool_open(const char *dir, char *err, size_t errlen);
/* Write and sync what is buffered, delete the segments whose records are
 * all acknowledged (the current one included), unlock, free. */
void cv_spool_destroy(cv_spool **p);

/* Buffer one record; *rec receives its handle (segment and index). Not
 * durable until the next successful cv_spool_sync. -1 with errno (and the
 * spool unusable from then: an I/O error is never papered over). After
 * such a failure (ENOSPC, EIO) the records appended since the last sync
 * are gone from the spool, file and counts: they were never accepted.
 * The synced ones stay, and can still be acknowledged. */
int cv_spool_append(cv_spool *sp, const char *line, size_t len, uint64_t *rec);
/* Write what is buffered and fdatasync it. 0, or -1 with errno (ENOSPC,
 * EIO, ...); after a failure every later call fails too. */
int cv_spool_sync(cv_spool *sp);
/* Handles of appended records are increasing; every record with a handle
 * up to this one is durable (0 when none is). */
uint64_t cv_spool_synced(const cv_spool *sp);

/* Record rec is acknowledged: it need not be replayed again. Acking twice
 * is harmless. 0, or -1 with errno when a finished segment could not be
 * deleted (logged; it is only replayed again). */
int cv_spool_ack(cv_spool *sp, uint64_t rec);

/* The next record left by an earlier run, in order: 1 with its handle and
 * text (valid until the next call), 0 when all have been returned, -1
 * with errno on a read error. */
int cv_spool_replay_next(cv_spool *sp, uint64_t *rec, const char **line,
                         size_t *len);
/* Records left by an earlier run that replay has not returned yet. */
uint64_t cv_spool_replay_left(const cv_spool *sp);

/* Records not yet acknowledged (from earlier runs and this one). */
uint64_t cv_spool_pending(const cv_spool *sp);
/* Bytes the spool's segments take on disk (buffered ones included). */
uint64_t cv_spool_bytes(const cv_spool *sp);
/* Bytes cut off the ends of segments when they were opened: records a
 * crash left half-written (never synced, so never accepted). */
uint64_t cv_spool_dropped(const cv_spool *sp);
const char *cv_spool_dir(const cv_spool *sp);

#endif
