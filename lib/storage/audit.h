/* audit.h - the audit trail: who erased, exported, rectified or swept
 * what, when, and how many rows, with no personal data in it.
 *
 * Entries live in the audit table, kept as long as the policy keeps the
 * kind "audit" (365 days by default). The subject is a keyed pseudonym
 * under its own subkey ("hash:audit-subject"), so an entry never holds
 * the user id, nor the pseudonym the user's rows were stored under.
 *
 * Entries are hash-chained: each one's mac is a keyed BLAKE2b (subkey
 * "audit") over its fields and the mac of the entry before it. The meta
 * table holds the chain's base (the mac of the last entry swept away, or
 * nothing) and head (seq and mac of the last entry), sealed by a mac of
 * their own. So a changed, inserted or removed entry breaks the chain, a
 * removed tail no longer reaches the head, and forging any of it needs
 * the keyring. Only the writer appends (store, or a command holding the
 * writer lock), inside its transaction. */
#ifndef CV_AUDIT_H
#define CV_AUDIT_H

#include "storage/db.h"
#include "crypto/keyring.h"
#include "privacy/policy.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *actor;   /* who asked: an operator or a program */
    const char *action;  /* erase, export, rectify, sweep, ... */
    const char *subject; /* the user id as given (pseudonymised here), or NULL */
    int64_t rows;
    json_t *detail;      /* an object without personal data, or NULL */
} cv_audit_entry;

/* Append an entry at time now inside the caller's open transaction.
 * 0, or -1 with a reason in err. */
int cv_audit_append(cv_db *db, const cv_keyring *kr, const cv_policy *pol,
                    int64_t now, const cv_audit_entry *e, char *err,
                    size_t errlen);

/* Delete at most limit entries past their expiry (oldest first), moving
 * the chain's base, inside the caller's transaction. The number deleted,
 * or -1 with a reason in err. */
int64_t cv_audit_expire(cv_db *db, const cv_keyring *kr, int64_t now,
                        int64_t limit, char *err, size_t errlen);

/* Walk the chain; name every problem on stderr. 0 when intact, EX_DATAERR
 * when not, another sysexits status when it cannot be read. *entries gets
 * the number of entries checked. */
int cv_audit_verify(cv_db *db, const cv_keyring *kr, int64_t *entries);

/* Print the entries as NDJSON, oldest first. 0 or a sysexits status. */
int cv_audit_list(cv_db *db, FILE *out);

#endif
