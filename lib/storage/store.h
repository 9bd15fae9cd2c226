/* store.h - committing events: the writer's side of the database.
 *
 * An event line is checked (one scan, no tree), given its retention from
 * the policy and the user's profile, checksummed and inserted, idempotent
 * on id, in batches that the caller commits. A profile event updates the
 * user's profile and reschedules their stored rows. */
#ifndef CV_STORE_H
#define CV_STORE_H

#include "base/config.h"
#include "storage/db.h"
#include "crypto/keyring.h"
#include "privacy/policy.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cv_store cv_store;

typedef struct {
    uint64_t inserted;
    uint64_t duplicates;
    uint64_t rejected;
    uint64_t batches;
    uint64_t profiles_applied;
    uint64_t rows_rescheduled;
    uint64_t scrubbed_on_arrival; /* rows due on arrival (anonymous users) */
    uint64_t anonymised_on_arrival; /* an anonymous user's rows, arriving */
    uint64_t rows_anonymised;     /* stored rows of a user turned anonymous */
} cv_store_stats;

/* Takes ownership of nothing: db, policy and keyring outlive the store. */
cv_store *cv_store_new(cv_db *db, const cv_policy *pol, const cv_keyring *kr,
                       int max_depth);
void cv_store_destroy(cv_store **p);

enum { CV_STORE_INSERTED = 1, CV_STORE_DUPLICATE = 0, CV_STORE_REJECTED = -1,
       CV_STORE_FAILED = -2 };

/* Add one event line to the open batch (opening one if needed).
 * CV_STORE_REJECTED: the line is bad (reason filled); the batch goes on.
 * CV_STORE_FAILED: the database failed (reason filled); the caller must
 * roll back and stop acknowledging. */
int cv_store_add(cv_store *s, const char *line, size_t len, char *reason,
                 size_t rlen);
/* The "id" of the line last added, once it was read (also when the line
 * was then rejected for another reason); "" when it had none. */
const char *cv_store_last_id(const cv_store *s);
/* The users.uid of the line last added, once its user was found or
 * created in the open batch; -1 before. */
int64_t cv_store_last_uid(const cv_store *s);
/* Open the batch (when none is) for changes made beside events, which
 * then share its COMMIT and journal record; counts as one pending item.
 * 0, or -1 with the database's reason. */
int cv_store_begin(cv_store *s, char *reason, size_t rlen);
/* Forget the cached users and profiles (after an erasure renumbers
 * them). Only between batches. */
void cv_store_forget_users(cv_store *s);
/* Events in the open batch (0 when none is open). */
size_t cv_store_pending(const cv_store *s);
/* Commit the open batch. 0, or -1 with the database's reason. */
int cv_store_commit(cv_store *s, char *err, size_t errlen);
void cv_store_rollback(cv_store *s);
const cv_store_stats *cv_store_stats_get(const cv_store *s);

#endif
