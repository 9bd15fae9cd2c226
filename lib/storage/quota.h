/* quota.h - store's side of [storage] quota: how much of it the database
 * uses, when it is full, and the automatic archive that frees it.
 *
 * Usage is the database's pages in use times the page size, as the writer
 * sees them (pages still in the WAL included, an open transaction's too;
 * free pages left by deletions count as free). At quota_threshold of the
 * quota, store runs `ctxvault-backup archive --older-than DAY` in the
 * background (it deletes through store's control socket, so store goes on
 * serving), choosing the oldest whole UTC days whose rows, at the
 * database's average bytes per row, bring usage to 90% of the threshold;
 * rows younger than quota_keep are never archived automatically. At the
 * quota itself, store commits no more events (commit_batch refuses, the
 * full-disk path): they wait in ingest's spool. Each change of state runs
 * quota_notify with the event as JSON on stdin. */
#ifndef CV_QUOTA_H
#define CV_QUOTA_H

#include "base/config.h"
#include "storage/db.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cv_quota cv_quota;

/* NULL-safe throughout; a quota of 0 (off) still measures, for metrics. */
cv_quota *cv_quota_new(const cv_config *cfg, cv_db *db, bool quiet);
/* Stops a running archive (it resumes at the next run) and reaps the
 * notify commands. */
void cv_quota_destroy(cv_quota **q);

/* The bytes the database's pages in use take now, or -1. */
int64_t cv_quota_used(cv_db *db);

/* Would committing the open transaction take the database past its
 * quota? Then true, with the reason (the health reason store gives). */
bool cv_quota_full(cv_quota *q, char *why, size_t len);
/* Commits go through again: the full state ends. */
void cv_quota_clear(cv_quota *q);

/* Reap finished children; measure (every second, or now when measure),
 * and start an archive when usage is at the threshold. Call often. */
void cv_quota_poll(cv_quota *q, bool measure);

/* The gauges and counters store's metrics show (store sets them: the
 * metrics are of a higher layer). false, f untouched, when q is NULL. */
typedef struct {
    int64_t quota, used;  /* bytes */
    double ratio;         /* used / quota; 0 with no quota */
    uint64_t archives, archive_failures, notify_failures;
} cv_quota_figures;
bool cv_quota_report(const cv_quota *q, cv_quota_figures *f);
/* The health reason (at or over the threshold), or NULL. */
const char *cv_quota_reason(const cv_quota *q);

#endif
