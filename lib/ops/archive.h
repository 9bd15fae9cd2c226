/* archive.h - old rows moved out of the database into a sealed file, and
 * back.
 *
 * `ctxvault-backup archive --older-than T` copies the rows whose event
 * time is before T into a snapshot of their own (the database's schema,
 * those rows and their users), seals it as snapshot.h describes into the
 * archive directory, verifies it like a backup, and only then has store
 * delete them, each only while unchanged since it was copied. `restore
 * --archive FILE` puts the rows back through store as they were stored,
 * except rows past their retention and rows of users erased since. */
#ifndef CV_ARCHIVE_H
#define CV_ARCHIVE_H

#include "base/config.h"
#include "crypto/keyring.h"

#include <jansson.h>
#include <stdint.h>

/* *result: {"path","rows","deleted","changed","bytes","verified","ms"}
 * (path null when no row is that old). 0 or a sysexits status. */
int cv_archive_create(const cv_config *cfg, const cv_keyring *kr,
                      int64_t before_ms, json_t **result);

/* *result: {"archive","rows","restored","duplicates","expired","erased"}.
 * 0 or a sysexits status. */
int cv_archive_restore(const cv_config *cfg, const cv_keyring *kr,
                       const char *path, json_t **result);

#endif
