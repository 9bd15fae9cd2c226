/* maint.h - changes other than new events: sweeping expired rows, erasing
 * a user, rectifying a field, scrubbing aged rows, appending to the audit
 * trail.
 *
 * Store is the only writer (doc/DESIGN.md §3), so every change is a
 * request (a JSON object, doc/PROTOCOL.md) carried out by cv_maint_do on
 * the writer's connection: by the running store between its batches, or,
 * when no store runs, by the command itself holding the writer lock for
 * its run (ops/session.h picks which). The writer's context, cv_writer,
 * is storage/writer.h.
 *
 * Each request is one transaction: a sweep batch, an erasure or a
 * rectification either happens whole, with its audit entry, or not at
 * all (a SIGKILL mid-sweep loses only the batch in flight, which the next
 * run deletes). */
#ifndef CV_MAINT_H
#define CV_MAINT_H

#include "net/control.h"
#include "storage/writer.h"

#include <jansson.h>

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
json_t *cv_maint_do(cv_writer *m, json_t *req);
/* The ops cv_maint_do carries out (net/control.h); their state is a
 * cv_writer on the writer's connection, with no batch open. */
extern const cv_control_family cv_maint_family;
/* The same, with the blobs that came with the request (frames after its
 * JSON): a scrub row's "body" may be the index of one. */
json_t *cv_maint_do_blobs(cv_writer *m, json_t *req, const cv_blob *blobs,
                          size_t nblobs);

#endif
