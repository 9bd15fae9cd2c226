/* export.h - everything held about one user, decrypted: the data subject's
 * copy (doc/DESIGN.md §4, `ctxvault export`). It runs on a read-only
 * connection, beside a running store, and reads one snapshot of the
 * database.
 *
 * JSON: one document,
 *   {"schema":"ctxvault-export/1","exported_at":RFC3339,"user":U,
 *    "profile":EVENT|null,"counts":{KIND:N,...},
 *    "events":{KIND:[{"event":EVENT,"stored":STORED},...],...}}
 * kinds in name order, each kind's events oldest first (ts, then commit
 * order); EVENT is the event as stored with every envelope opened, STORED
 * is {"created_at","expires_at","scrub_after","scrubbed_at"} (RFC 3339 or
 * null); "profile" is the latest profile event. Each event sits on its own
 * line.
 *
 * CSV (RFC 4180, CRLF line ends): the header kind,id,ts,created_at,
 * expires_at,event, then one row per event ordered by kind, ts and commit
 * order; event is the decrypted event as compact JSON text, times are
 * RFC 3339 (empty when none).
 *
 * Fields the policy hashed or generalised cannot be reversed: they come
 * out as stored. The export is personal data: it is never logged. */
#ifndef CV_EXPORT_H
#define CV_EXPORT_H

#include "storage/db.h"
#include "crypto/keyring.h"
#include "privacy/policy.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    CV_EXPORT_JSON,
    CV_EXPORT_CSV,
} cv_export_format;

/* "json" or "csv"; false for anything else. */
bool cv_export_format_parse(const char *name, cv_export_format *fmt);

/* Export user (the id as the producer sent it) to path, written
 * atomically with mode 0600, or to out when path is NULL; *rows (may be
 * NULL) gets the number of events exported. Returns 0;
 * EX_NOINPUT when nothing is held about the user (nothing is written and
 * no file created); or another sysexits status, logged. A field that
 * cannot be opened is left sealed, with a warning that counts them. */
int cv_export_user(cv_db *db, const cv_policy *pol, const cv_keyring *kr,
                   const char *user, cv_export_format fmt, const char *path,
                   FILE *out, int64_t *rows);

#endif
