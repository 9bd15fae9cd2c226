/* stepped.h - long maintenance as many short requests through a session,
 * one after another, so store commits events between them:
 *   compaction: "db.compact" requests (maint.c carries each out, a few ms
 *   of incremental vacuum steps) until the freelist is empty;
 *   rewrap: "rewrap" batches until every field is under the primary key.
 * Apart from rewrap.c, which maint calls: a run reaches maint through the
 * session, and maint must not reach back. */
#ifndef CV_STEPPED_H
#define CV_STEPPED_H

#include "ops/session.h"

#include <stdint.h>

typedef struct {
    int64_t requests;         /* answered; 0: stopped before the first */
    char auto_vacuum[16];     /* the database's mode: none, full, incremental */
    int64_t freed, freelist_before, freelist_after, pages_before, pages_after;
    int64_t ms;               /* the run's wall time */
    char message[512];        /* why nothing can be given back in steps
                                 ("": nothing to say) */
} cv_stepped_compact_totals;

/* Requests of pages per step and max_ms per request (0: store's default)
 * through s until the freelist is empty, store can do nothing more, or
 * cv_stop_requested; progress on stderr when it is a terminal. 0, or
 * EX_SOFTWARE when a request failed (logged); *t gets the totals either
 * way (before: the first reply's, after: the last's). */
int cv_stepped_compact(cv_session *s, int64_t pages, int64_t max_ms,
                       cv_stepped_compact_totals *t);

/* The totals of a rewrap run (ms: its wall time). */
typedef struct {
    int64_t examined, rewrapped, fields, skipped, data_keys, ms;
} cv_stepped_rewrap_totals;

/* ctxvault keys rewrap: "rewrap" requests of batch rows each through s,
 * from the first row until store says done (store ingests between them),
 * with progress on stderr when it is a terminal and each row left as it
 * is logged ("row SEQ (event ID) left as it is: why"). Restartable: a run
 * cut short leaves whole batches, and the next finds only what is left.
 * 0, or EX_TEMPFAIL when a request failed (logged); *t gets the totals
 * either way. */
int cv_stepped_rewrap(cv_session *s, int64_t batch, cv_stepped_rewrap_totals *t);

#endif
