/* syncstore.h - the records that ctxvault-sync keeps in step between
 * instances (doc/SYNC.md): one user's named context is one
 * record, and store keeps its current versions in sync_versions.
 *
 * Each version carries a version vector (device -> counter) and a "dot",
 * the (device, counter) of the change that made it; dots are unique, so
 * an instance's knowledge is a vector too: "every change of device d up
 * to n, or something that descends from it". A peer sends the versions
 * whose dots the other's knowledge lacks, and applying one keeps only the
 * versions no other one descends from: concurrent ones stay side by side
 * as siblings until a local change supersedes them all.
 *
 * The payload (user, name, fields, per-field clocks) is sealed with the
 * group's end-to-end key and bound to the version's record, dot, vector
 * and tombstone flag, so a relay, which has no key, stores and forwards
 * what it cannot read or alter. The record id is a keyed hash of the user
 * and the name. A device opens the payloads of a record's siblings and
 * merges them by the policy's [merge] rules (lib/privacy/merge.h) into the
 * view it stores as the user's context; a tombstone among them wins.
 *
 * Everything here runs on store's writer, inside the caller's
 * transaction: the caller commits (journaled) before it answers. */
#ifndef CV_SYNCSTORE_H
#define CV_SYNCSTORE_H

#include "storage/db.h"
#include "privacy/merge.h"
#include "storage/vclock.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define CV_SYNC_KEY_BYTES 32
#define CV_SYNC_RID_HEX 32      /* a record id: 16 bytes, hex */

typedef struct cv_syncstore cv_syncstore;

/* device NULL and key NULL: a relay. key: the group's 32-byte key (copied). */
cv_syncstore *cv_syncstore_new(cv_db *db, const char *device,
                               const unsigned char *key,
                               const cv_merge_rules *rules);
void cv_syncstore_destroy(cv_syncstore **p);

bool cv_syncstore_is_relay(const cv_syncstore *s);

/* The record id of (user, name): 32 hex chars. Devices only. */
void cv_syncstore_rid(const cv_syncstore *s, const char *user,
                      const char *name, char rid[CV_SYNC_RID_HEX + 1]);

/* --- local changes (devices) ------------------------------------------- */

/* The user's context name was saved with fields (uid: the user's users.uid)
 * or deleted (fields NULL): a new version that descends from every current
 * one. Fields equal to the record's single current version make none.
 * 1 when a version was made, 0 when none was needed, -1 with err. */
int cv_syncstore_local_change(cv_syncstore *s, int64_t uid, const char *user,
                              const char *name, const json_t *fields,
                              int64_t now_ms, char *err, size_t errlen);
/* The names of the records kept for uids, for a deletion of all of a
 * user's contexts or an erasure: tombstones for each. -1 with err. */
int cv_syncstore_local_delete_uids(cv_syncstore *s, const int64_t *uids,
                                   size_t n, int64_t now_ms, char *err,
                                   size_t errlen);

/* --- between instances ------------------------------------------------- */

/* What this instance holds: a new object {"dev":n,...}. */
json_t *cv_syncstore_knowledge(cv_syncstore *s);

/* The versions whose dots knowledge lacks, in dot order, after the dot
 * (after_dev, after_n) (after_dev NULL: from the start), at most limit:
 * {"versions":[...],"next":[dev,n]|null,"knowledge":{...}}. The receiver
 * may add the knowledge of the first page to its own once it has applied
 * every page ("next" null). NULL with err. */
json_t *cv_syncstore_changes(cv_syncstore *s, const cv_vclock *knowledge,
                             const char *after_dev, int64_t after_n,
                             int limit, char *err, size_t errlen);

/* A record whose view changed, for the caller to store as a context. */
typedef struct {
    const char *rid;
    int64_t uid;            /* the device's users.uid, or -1 when unknown */
    const char *user;       /* NULL for a tombstone */
    const char *name;
    bool deleted;
    const json_t *fields;   /* the merged fields (NULL when deleted) */
    int64_t ts;             /* ms: the newest change among the siblings */
    const char *view_id;    /* an event id unique to this set of versions */
    json_t *unsettled;      /* field names no rule settles, or NULL */
} cv_sync_view;
/* Store the view; returns the user's uid (>= 0), -2 when nothing was
 * stored (and the run goes on), or -1 with err (the caller rolls back). */
typedef int64_t (cv_sync_view_fn)(void *arg, const cv_sync_view *v,
                                  char *err, size_t errlen);

typedef struct {
    int64_t applied;        /* versions stored */
    int64_t seen;           /* versions held already, or superseded */
    int64_t rejected;       /* versions that failed their checks */
    int64_t views;          /* records whose view was stored */
    int64_t conflicts;      /* of those, with unsettled fields */
} cv_sync_apply_stats;

/* Apply versions (an array of the wire objects), then, when knowledge is
 * given (the last page of a pull), add it to this instance's. Views are
 * handed to fn (devices). A bad version is rejected alone, its reason
 * appended to rejections (when not NULL) as {"index":i,"error":...}.
 * 0, or -1 with err when the database failed (the caller rolls back). */
int cv_syncstore_apply(cv_syncstore *s, const json_t *versions,
                       const json_t *knowledge, cv_sync_view_fn *fn,
                       void *arg, cv_sync_apply_stats *st,
                       json_t *rejections, char *err, size_t errlen);

/* --- looking at it ----------------------------------------------------- */

/* {"versions":N,"records":N,"tombstones":N,"conflicts":N,
 *  "knowledge":{...},"checksum":HEX} (checksum over every version in dot
 * order: identical state, identical checksum). NULL with err. */
json_t *cv_syncstore_state(cv_syncstore *s, bool checksum, char *err,
                           size_t errlen);
/* The records whose siblings no rule settles (devices): [{"rid","user",
 * "name","unsettled":[...],"siblings":[{"dot":[d,n],"hlc","fields"}]}],
 * only user's when user is not NULL. NULL with err. */
json_t *cv_syncstore_conflicts(cv_syncstore *s, const char *user, int limit,
                               char *err, size_t errlen);

#endif
