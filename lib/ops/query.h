/* query.h - the read side for operators: query, get, stats, verify. All
 * of it runs on a read-only connection, beside a running store. */
#ifndef CV_QUERY_H
#define CV_QUERY_H

#include "storage/db.h"
#include "crypto/keyring.h"
#include "privacy/policy.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *user;    /* as the producer sent it */
    const char *kind;    /* NULL: any */
    int64_t since, until;/* ms; < 0: open */
    int64_t limit;       /* < 0: no limit */
    bool oldest_first;
    bool decrypt;
    const char *type;    /* NULL: any; else the stored `type` column */
    /* keyset paging: only rows after (after_ts, after_seq) in the order
     * asked (newest first: older than it), when has_after */
    bool has_after;
    int64_t after_ts, after_seq;
} cv_query;

/* The numbers (users.uid) under which a user's rows are stored: the user
 * id is stored as a keyed pseudonym under each key version (or as it is,
 * when the policy keeps it), so one user can have one uid per version.
 * Writes at most max of them to uids and their count to *n (0: no rows
 * about this user). Returns 0 or a sysexits status (logged): EX_CONFIG
 * when the policy neither keeps nor hashes user_id. */
#define CV_USER_UIDS_MAX 64
int cv_query_user_uids(cv_db *db, const cv_policy *pol,
                         const cv_keyring *kr, const char *user,
                         int64_t *uids, size_t max, size_t *n);
/* Write n placeholders "?,?,..." for "uid IN (...)" into sql (cap bytes,
 * NUL-terminated); returns the length written. */
size_t cv_query_uid_list(char *sql, size_t cap, size_t n);

/* Print matching events as NDJSON. Returns 0 or a sysexits status. */
int cv_query_query(cv_db *db, const cv_policy *pol, const cv_keyring *kr,
                     const cv_query *q, FILE *out);
/* Call fn with the stored body of each matching event (q->decrypt is
 * ignored); fn returns 0 to go on, or a status that ends the query.
 * Returns 0 or a sysexits status. */
typedef int (cv_row_fn)(void *arg, const char *body, size_t len);
int cv_query_query_each(cv_db *db, const cv_policy *pol,
                          const cv_keyring *kr, const cv_query *q,
                          cv_row_fn *fn, void *arg);
/* One matching row, as cv_query_select hands it over. */
typedef struct {
    int64_t seq, ts;
    const char *kind, *type;  /* type may be NULL */
    const char *body;
    size_t len;
} cv_hit;
typedef int (cv_hit_fn)(void *arg, const cv_hit *h);
/* The hit of a row selected as "seq, ts, kind, type, body". */
cv_hit cv_query_hit_of(sqlite3_stmt *st);
/* The one query behind cv_query_query_each and the context API
 * (lib/ctx/ctxapi.h): rows of q->user matching kind, type, times and the
 * keyset cursor, in (ts, seq) order, at most q->limit. fn as above.
 * Returns 0 or a sysexits status; *known (when not NULL) says whether
 * the user has any stored number at all. */
int cv_query_select(cv_db *db, const cv_policy *pol, const cv_keyring *kr,
                      const cv_query *q, cv_hit_fn *fn, void *arg,
                      bool *known);
/* Print one event by id; EX_NOINPUT (66) when there is none. */
int cv_query_get(cv_db *db, const cv_keyring *kr, const char *id,
                   bool decrypt, FILE *out);
/* Counts by kind, sizes, WAL size, as one JSON object: built (NULL when
 * the database cannot be read, logged), or printed as `ctxvault stats`
 * prints it. */
json_t *cv_query_stats_json(cv_db *db);
int cv_query_stats_print(json_t *stats, FILE *out);
/* integrity_check, every row's checksum and the audit trail's chain;
 * names the bad rows and entries on stderr. 0 when all is well,
 * EX_DATAERR when anything is wrong. */
int cv_query_verify(cv_db *db, const cv_keyring *kr, FILE *out);

/* Decrypt every envelope in an event in place (its "id" binds them). A
 * field that cannot be opened is left sealed and counted in *failed. */
void cv_query_reveal(const cv_keyring *kr, json_t *event, int *failed);
/* cv_query_reveal of the sealed values whose dotted path want accepts; the
 * number opened. */
typedef bool cv_query_reveal_filter(void *ctx, const char *path);
int cv_query_reveal_only(const cv_keyring *kr, json_t *event, int *failed,
                   cv_query_reveal_filter *want, void *ctx);

/* The user's smallest stored number (users.uid), the one user.segment and
 * cache.put key their rows by: NULL with *uid set, or the error reply
 * (not_found for a user with no rows, internal when the lookup fails).
 * uids/nuids (may be NULL) get every number of the user. */
json_t *cv_query_user_uid(cv_db *db, const cv_policy *pol, const cv_keyring *kr,
                        const char *user, int64_t *uid, int64_t *uids,
                        size_t *nuids);

#endif
