/* compact.h - giving the database's free pages back while the pipeline
 * runs: "db.compact" requests (maint.c carries each out, a few ms of
 * incremental vacuum steps) one after another until the freelist is
 * empty, so store commits events between them. */
#ifndef CV_COMPACT_H
#define CV_COMPACT_H

#include "ops/maint.h"

#include <stdint.h>

typedef struct {
    int64_t requests;         /* answered; 0: stopped before the first */
    char auto_vacuum[16];     /* the database's mode: none, full, incremental */
    int64_t freed, freelist_before, freelist_after, pages_before, pages_after;
    int64_t ms;               /* the run's wall time */
    char message[512];        /* why nothing can be given back in steps
                                 ("": nothing to say) */
} cv_compact_totals;

/* Requests of pages per step and max_ms per request (0: store's default)
 * through s until the freelist is empty, store can do nothing more, or
 * cv_stop_requested; progress on stderr when it is a terminal. 0, or
 * EX_SOFTWARE when a request failed (logged); *t gets the totals either
 * way (before: the first reply's, after: the last's). */
int cv_compact_run(cv_maint_session *s, int64_t pages, int64_t max_ms,
                   cv_compact_totals *t);

#endif
