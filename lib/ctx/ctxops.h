/* ctxops.h - the context API's operational requests on store's control
 * socket (doc/PROTOCOL.md, "Context API"): stats for a period, meta and
 * cache.get, answered from the read-only connection. The checks every
 * newer op shares are net/control.h's (its members) and ops/query.h's
 * (its user).
 *
 * The changes among them (user.segment, cache.put, db.compact) are
 * maintenance ops (lib/ops/maint.h, lib/ops/segment.h,
 * lib/ops/modelcache.h): they run on the writer's connection, between
 * batches, in transactions of their own. */
#ifndef CV_CTXOPS_H
#define CV_CTXOPS_H

#include "net/control.h"
#include "storage/db.h"
#include "crypto/keyring.h"
#include "ops/modelcache.h"
#include "privacy/policy.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    cv_db *db;                     /* a read-only connection (NULL: none) */
    cv_modelcache_counters *cache;    /* cache.get's hits and misses */
    uint64_t puts;                 /* cache.put's, for meta */
} cv_ctxops;

/* stats, meta and cache.get (net/control.h); their state is a cv_ctxops. */
extern const cv_control_family cv_ctxops_family;
/* One of them; always a reply object. */
json_t *cv_ctxops_answer(const cv_ctxops *o, json_t *req);

#endif
