/* ctxwrite.h - the context API's write side on store's control
 * socket: context.save, interactions.save, context.delete and profile.set
 * (doc/PROTOCOL.md, "Context API").
 *
 * A write takes the path an ingested event takes, written once: the
 * request becomes an event line, ingest's validator checks it and gives
 * it its id (lib/base/event.h), encrypt's field policy protects it (lib/
 * fieldpolicy.h, data keys committed before the row), and store's batch path
 * adds it (lib/storage/store.h) in a transaction that is committed, and journaled,
 * before the reply goes out. So a saved context is stored, retained,
 * scrubbed and erased like any other event.
 *
 * The caller holds the writer and has committed its open batch first, so
 * writes keep their order with the events before them. Errors are the
 * read side's: {"ok":false,"error":"...","code":"..."} (lib/ctx/ctxapi.h). */
#ifndef CV_CTXWRITE_H
#define CV_CTXWRITE_H

#include "ctx/ctxapi.h"
#include "crypto/datakeys.h"
#include "storage/db.h"
#include "net/deadletter.h"
#include "crypto/keyring.h"
#include "privacy/policy.h"
#include "storage/store.h"
#include "storage/syncstore.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* interactions.save takes at most this many events per request (and the
 * request at most CV_CTXAPI_MAX_REQUEST bytes). */
#define CV_CTXWRITE_BATCH_MAX 1000

typedef struct cv_ctxwrite cv_ctxwrite;

typedef struct {
    cv_store *store;          /* the batch path, on the writer */
    cv_db *db;                /* the writer's connection (context.delete) */
    const cv_policy *pol;
    const cv_keyring *kr;
    cv_datakeys *ds;          /* per-user data keys; NULL: the keyring's */
    cv_deadletter *dl;        /* interactions.save's rejected events; may be NULL */
    int max_depth;            /* the validator's nesting limit */
    cv_syncstore *sync;       /* a sync device's records; may be NULL */
} cv_ctxwrite_opts;

/* Everything in o must outlive the writer. */
cv_ctxwrite *cv_ctxwrite_new(const cv_ctxwrite_opts *o);
void cv_ctxwrite_destroy(cv_ctxwrite **p);

/* The write side's ops (net/control.h), with their state: the writer,
 * and the read side profile.set answers with (committed data). */
typedef struct {
    cv_ctxwrite *w;
    const cv_ctxapi *read;
} cv_ctxwrite_state;
extern const cv_control_family cv_ctxwrite_family;

/* Carry out req (its "op" one of ours; body_len the size of its JSON
 * text), with no batch open on the writer. read answers profile.set's
 * reply as profile.get does (it reads committed data). Always a reply. */
json_t *cv_ctxwrite_answer(cv_ctxwrite *w, const cv_ctxapi *read, json_t *req,
                           size_t body_len);

/* The event a request describes, before validation: kind, user_id, type
 * (the name), ts (now_ms when the request has none) and id (when given)
 * first, then the request's "fields" (and profile.set's settings). NULL
 * with the bad_request reply in *err when a member is of the wrong type,
 * unknown to the op, or a field shadows a member store reads. Pure: for
 * tests. */
json_t *cv_ctxwrite_event(json_t *req, int64_t now_ms, json_t **err);

/* --- for sync (lib/sync/syncops.h), on the writer, in one batch ------------ */

/* Add a context event for user (type name, "" none) with these fields,
 * under id, at ts: ingest's checks, encrypt's policy, store's add, as
 * context.save does, but no sync change of its own. A CV_STORE_* code;
 * *uid gets the user's users.uid. */
int cv_ctxwrite_put_context(cv_ctxwrite *w, const char *id, const char *user,
                            const char *name, const json_t *fields, int64_t ts,
                            int64_t *uid, char *reason, size_t rlen);
/* Delete the user's (uid's) contexts named name ("" unnamed). The count,
 * or -1 with the database's reason. */
int64_t cv_ctxwrite_drop_named(cv_ctxwrite *w, int64_t uid, const char *name,
                               char *reason, size_t rlen);
/* Open the batch; commit it (data keys, then the journaled rows); or
 * roll it back. 0, or -1 with reason (rolled back). */
int cv_ctxwrite_begin(cv_ctxwrite *w, char *reason, size_t rlen);
int cv_ctxwrite_commit(cv_ctxwrite *w, char *reason, size_t rlen);
void cv_ctxwrite_rollback(cv_ctxwrite *w);

/* Counters since start, for ping and metrics. */
typedef struct {
    uint64_t stored, duplicates, rejected, deleted;
} cv_ctxwrite_stats;
const cv_ctxwrite_stats *cv_ctxwrite_stats_get(const cv_ctxwrite *w);

#endif
