/* writer.h - the writer's context: the one connection that changes the
 * database (doc/DESIGN.md §3) and what every change on it needs, shared
 * by the handlers of the changes (ops/maint.h and the ops beside it) and
 * by store, which owns it. It holds no op: only the struct and what any
 * change does after deleting. */
#ifndef CV_WRITER_H
#define CV_WRITER_H

#include "base/config.h"
#include "storage/db.h"
#include "crypto/keyring.h"
#include "privacy/policy.h"

#include <stdbool.h>
#include <stdint.h>

struct cv_datakeys;
struct cv_store;
struct cv_syncstore;

typedef struct {
    cv_db *db;               /* the writer's connection */
    const cv_keyring *kr;
    const cv_policy *pol;
    struct cv_datakeys *ds;  /* data keys (NULL: none): erase destroys the
                                user's, sweep_done the expired hours' */
    struct cv_store *store;  /* its user cache is forgotten on erasure */
    struct cv_syncstore *sync; /* a sync device: erasures become tombstones */
    uint64_t deleted;        /* rows swept, erased, counters for metrics */
    uint64_t erased_users, rectified, audit_entries, scrubbed, cache_puts,
             cache_deleted;
    uint64_t notify_failures; /* [erasure] notify runs that failed */
    const cv_config *cfg;    /* [segments] for user.segment, [erasure] */
} cv_writer;

/* After a deletion: give freed pages back and empty the WAL (truncating
 * checkpoint), so deleted content lingers in neither file. False when a
 * reader's snapshot kept the WAL. */
bool cv_writer_compact(cv_db *db);

#endif
