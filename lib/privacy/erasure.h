/* erasure.h - tombstones of erased users, so that nothing brings them back.
 *
 * `ctxvault delete --user U` removes U's rows and leaves, per stored user
 * id, a tombstone in the erasures table: a keyed hash of the stored id
 * (keyring subkey "hash:erasure", no way back to it) and the time. Rows
 * coming back from elsewhere (an archive, an older backup restored without
 * the journal that holds the erasure) are checked against them: a row of
 * an erased user created at or before the erasure stays erased. */
#ifndef CV_ERASURE_H
#define CV_ERASURE_H

#include "crypto/keyring.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Record the erasure of the stored user id at `at` (in the caller's
 * transaction). 0 or -1. */
int cv_erasure_record(sqlite3 *h, const cv_keyring *kr, const char *user_id,
                      int64_t at);

/* When the stored user id was erased (the latest time, under any key
 * version the keyring holds), or -1 when never. */
int64_t cv_erasure_erased_at(sqlite3 *h, const cv_keyring *kr, const char *user_id);

/* Attach another database (the one a restore replaced) as "gone",
 * outside any transaction; detach it after. 0 or -1 with a reason. */
int cv_erasure_attach(sqlite3 *h, const char *from, char *err, size_t errlen);
void cv_erasure_detach(sqlite3 *h);

/* Copy the tombstones of "gone" into main and erase there the rows they
 * cover: each tombstoned user's rows created at or before the erasure.
 * *users and *rows get what was erased. 0 (also when "gone" has no
 * tombstones to read) or -1 with a reason. */
int cv_erasure_reapply(sqlite3 *h, const cv_keyring *kr, int64_t *users,
                       int64_t *rows, char *err, size_t errlen);

/* Run the program path (no arguments: nothing personal in argv) with
 * receipt on its stdin, its stdout joined to stderr (the log), for at
 * most CV_NOTIFY_TIMEOUT_MS (then killed). 0 when it exited 0, else -1
 * with the reason in err. */
#define CV_NOTIFY_TIMEOUT_MS 10000
int cv_erasure_notify(const char *path, const char *receipt, char *err,
                      size_t errlen);

#endif
