/* maint.h - changes other than new events: sweeping expired rows, erasing
 * a user, rectifying a field, scrubbing aged rows, appending to the audit
 * trail.
 *
 * Store is the only writer (doc/DESIGN.md §3), so every change is a
 * request (a JSON object, doc/PROTOCOL.md) carried out by cv_maint_do on
 * the writer's connection: by the running store between its batches, or,
 * when no store runs, by the command itself holding the writer lock for
 * its run. cv_maint_open picks: it takes the lock when it is free, and
 * asks the store over its control socket when it is not, so the same
 * commands work from cron with no daemon.
 *
 * Each request is one transaction: a sweep batch, an erasure or a
 * rectification either happens whole, with its audit entry, or not at
 * all (a SIGKILL mid-sweep loses only the batch in flight, which the next
 * run deletes). */
#ifndef CV_MAINT_H
#define CV_MAINT_H

#include "base/config.h"
#include "net/control.h"
#include "storage/db.h"
#include "crypto/keyring.h"
#include "privacy/policy.h"

#include <jansson.h>

struct cv_store;

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
} cv_maint;

/* Carry out one request on the writer's connection (no batch open).
 * Returns the reply ({"ok":true,...} or {"ok":false,"error":...});
 * NULL when op is not a maintenance op. Ops:
 *   sweep       {"now":MS,"batch":N}  -> {"deleted":N,"by_kind":{},"audit":N,"more":bool}
 *   sweep_done  {"now":MS,"deleted":N,"by_kind":{},"ms":N,"actor":A}
 *               -> {"backlog":N,"wal_truncated":bool,"hour_keys_destroyed":N}
 *   erase       {"user":U,"actor":A}  -> the receipt: {"user":U,
 *               "completed_at":T,"deleted":N,"by_kind":{},"profiles":N,
 *               "segments":N,"cache_entries":N,"audit_id":N,
 *               "key_destroyed":bool,"wal_truncated":bool,"notify":S}: the
 *               user's data key goes first; [erasure] notify runs after
 *   erasures_merge {"from":DBFILE} -> {"users":N,"rows":N}: the tombstones
 *               of another database, and the rows they cover erased here
 *   rectify     {"id":ID,"set":{"path":value,...},"actor":A} -> {"fields":N}
 *   audit       {"action":S,"subject":U|null,"rows":N,"detail":{},"actor":A}
 *   scrub       {"now":MS,"rows":[[SEQ,SUM,ID,KIND,USER,TS,MOVED,FIELDS,BODY]],
 *                "actor":A}  (SUM: the checksum read, hex; BODY, when
 *               changed: the text, or the index of a blob)
 *               -> {"scrubbed":N,"conflicts":[seq,...]}
 *   scrub_done  {"now":MS} -> {"backlog":N,"wal_truncated":bool}
 *   archive_delete {"rows":[[SEQ,SUM]]} -> {"deleted":N,"changed":N}: rows
 *               an archive holds, each only while its checksum is SUM
 *   archive_restore {"now":MS,"rows":[[ID,USER,KIND,TYPE,TS,CREATED,
 *               EXPIRES,SCRUB_AFTER,SCRUBBED_AT,BODY,SUM]]} (BODY: text or
 *               a blob's index) -> {"restored":N,"duplicates":N,
 *               "expired":N,"erased":N}
 *   rewrap      {"after":SEQ,"batch":N,"clean":bool} -> {"examined":N,
 *               "rewrapped":N,"fields":N,"checksums":N,"skipped":N,
 *               "skipped_rows":[...],"next":SEQ,"done":bool} (rewrap.h) */
json_t *cv_maint_do(cv_maint *m, json_t *req);
/* The ops cv_maint_do carries out (net/control.h); their state is a
 * cv_maint on the writer's connection, with no batch open. */
extern const cv_control_family cv_maint_family;
/* After a deletion: give freed pages back and empty the WAL (truncating
 * checkpoint), so deleted content lingers in neither file. False when a
 * reader's snapshot kept the WAL. */
bool cv_maint_compact(cv_db *db);
/* The database failed: roll back, and the reply that says why (EX_IOERR). */
json_t *cv_maint_db_fail(cv_maint *m, const char *what);
/* The same, with the blobs that came with the request (frames after its
 * JSON): a scrub row's "body" may be the index of one. */
json_t *cv_maint_do_blobs(cv_maint *m, json_t *req, const cv_blob *blobs,
                          size_t nblobs);

/* A session for a command: local (the lock was free) or remote (store). */
typedef struct cv_maint_session cv_maint_session;
/* NULL with a reason logged and *status set (EX_TEMPFAIL: the database is
 * locked but no store answers; EX_CONFIG ...). A supervised service asks
 * via_store_only: it must never hold the lock a restarting store needs. */
cv_maint_session *cv_maint_open(const cv_config *cfg, const char *program,
                                bool via_store_only, int *status);
/* A reply as cv_maint_do gives it, or NULL with a reason in err (store did
 * not answer in time). Takes nothing from req. */
json_t *cv_maint_call(cv_maint_session *s, json_t *req, char *err,
                      size_t errlen);
/* The call in two halves, one request in flight: a remote session sends
 * now and waits in recv (the caller works meanwhile); a local one carries
 * the request out in send and hands the reply over in recv. send: 0 or -1
 * with a reason in err; recv as cv_maint_call. Takes nothing from req. */
int cv_maint_send_blobs(cv_maint_session *s, json_t *req,
                        const cv_blob *blobs, size_t n, char *err,
                        size_t errlen);
json_t *cv_maint_recv(cv_maint_session *s, char *err, size_t errlen);
/* A reply of cv_maint_call or cv_maint_recv (NULL: err says why) when it
 * is {"ok":true}; else NULL, the reason logged as "who: reason" and the
 * reply freed. */
json_t *cv_maint_ok(json_t *reply, const char *err, const char *who);
bool cv_maint_is_local(const cv_maint_session *s);
void cv_maint_close(cv_maint_session **p);

/* Who is asking, for the audit trail: the login name and uid. */
char *cv_maint_actor(void);

#endif
