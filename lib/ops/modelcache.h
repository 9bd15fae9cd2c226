/* modelcache.h - model caches (prediction cache, embeddings, ...): JSON
 * values under a namespace and a key, each with its own expiry, in the
 * mlcache table (schema version 2, lib/storage/db.c).
 *
 * cache.put is a change: it runs on the writer's connection, between
 * batches, in a journaled transaction of its own (lib/ops/maint.h). cache.get
 * reads through the read-only connection and never returns an entry past
 * its expiry; ctxvault-ttl-sweep deletes those with the expired rows. An
 * entry put with a "user" is erased with that user. */
#ifndef CV_MODELCACHE_H
#define CV_MODELCACHE_H

#include "storage/db.h"
#include "storage/writer.h"

#include <jansson.h>
#include <stdint.h>

#define CV_MODELCACHE_VALUE_MAX 262144          /* bytes of a value's JSON */
#define CV_MODELCACHE_KEY_MAX 1024              /* bytes of a key */
#define CV_MODELCACHE_NS_MAX 64                 /* a-z 0-9 _ . - */
#define CV_MODELCACHE_TTL_MAX (366LL * 86400)   /* seconds */

typedef struct {
    uint64_t hits, misses, puts;
} cv_modelcache_counters;

/* cache.put {"ns","key","value","ttl","user"?} on the writer's
 * connection; counted in m->cache_puts. */
json_t *cv_modelcache_put(cv_writer *m, json_t *req);
/* cache.delete {"user","ns"?,"key"?} on the writer's connection: the
 * user's entries (one key of a ns, a ns, or all), in one transaction with
 * an audit entry (cache-delete); counted in m->cache_deleted. */
json_t *cv_modelcache_delete(cv_writer *m, json_t *req);
/* cache.get {"ns","key"} on a reader: {"ok":true,"hit":bool,...}. */
json_t *cv_modelcache_get(cv_db *db, json_t *req, cv_modelcache_counters *c);
/* Delete at most batch entries expired at now, in the caller's
 * transaction: how many, or -1. */
int64_t cv_modelcache_expire(cv_db *db, int64_t now, int64_t batch);
/* {"entries":N,"expired":N,"bytes":N,"by_ns":{NS:N},"hits":N,
 * "misses":N,"puts":N}, or NULL when the table cannot be read. */
json_t *cv_modelcache_stats(cv_db *db, int64_t now, const cv_modelcache_counters *c);

#endif
