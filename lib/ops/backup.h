/* backup.h - encrypted backups that count only once restored and checked.
 *
 * A backup is a consistent snapshot of the database (VACUUM INTO on a
 * read-only connection: writers go on), sealed as snapshot.h describes,
 * in the backup directory as ctxvault-TIME.cvb with a sidecar
 * ctxvault-TIME.json (0600, no personal data) that records its manifest
 * and its verification: verify decrypts it into a temporary file and
 * checks all of it, integrity_check and every row's keyed checksum
 * included, before it counts. The latest good backup is the newest
 * verified one. A restore loads it and replays the journal (journal.h)
 * on top, up to the last committed batch. */
#ifndef CV_BACKUP_H
#define CV_BACKUP_H

#include "base/config.h"
#include "crypto/keyring.h"

#include <jansson.h>
#include <stdbool.h>

typedef struct {
    const char *out;        /* NULL: the backup directory; "-": stdout */
    bool verify;            /* restore it into a temporary file and check */
} cv_backup_opts;

/* Take a backup. *result: {"path","manifest","bytes","ratio","ms",
 * "verified"}. 0 or a sysexits status, the reason logged. */
int cv_backup_create(const cv_config *cfg, const cv_keyring *kr,
                     const cv_backup_opts *o, json_t **result);

/* Check a backup (NULL: the newest in the directory): decrypt, integrity
 * check, rows, checksums. 0, EX_DATAERR (named on stderr; the sidecar
 * records the failure), or another status. */
int cv_backup_verify(const cv_config *cfg, const cv_keyring *kr,
                     const char *path, json_t **result);

typedef struct {
    const char *path;       /* NULL: the newest verified (taken by to_ms) */
    int64_t to_ms;          /* < 0: replay the whole journal */
    bool check;             /* check in full even a verified backup */
    bool no_replay;         /* the backup as it is */
} cv_restore_opts;

/* Replace the database with a backup, brought up to the last committed
 * batch (or to o->to_ms) by replaying the journal; with no backup yet, the
 * whole journal when it still starts at batch 1. Only while no writer
 * holds the database (the writer lock is held throughout); all is done in
 * a temporary file beside it (an unverified backup checked in full), then
 * fsync, rename, fsync. Journal batches after the restored point move to
 * JOURNAL/set-aside-TIME. */
int cv_backup_restore(const cv_config *cfg, const cv_keyring *kr,
                      const cv_restore_opts *o, json_t **result);

/* The backups (or the archives) in their directory, newest first, with
 * what their sidecars say. */
int cv_backup_list(const cv_config *cfg, bool archives, json_t **result);

/* Keep the newest verified backup of each of the last `daily` days and
 * of the last `monthly` months that have one; delete the rest (not with
 * dry_run). Unverified backups newer than the latest good one stay. */
int cv_backup_prune(const cv_config *cfg, int daily, int monthly,
                    bool dry_run, json_t **result);

/* For archive.c, which keeps its files the same way: one command at a
 * time per backup directory (the lock's fd, or -1, logged), clearing what
 * a killed one left; an audit entry through store or under the lock; the
 * check of a sealed file with its sidecar marked (the caller holds the
 * lock; NULL path: the newest backup). */
int cv_backup_dir_lock(const cv_config *cfg);
void cv_backup_audit(const cv_config *cfg, const char *action, const char *path,
                     int64_t rows, const char *failure);
int cv_backup_verify_file(const cv_config *cfg, const cv_keyring *kr,
                          const char *path, json_t **result);
/* Was this sealed file verified with this manifest (its sidecar says so)?
 * Then its checks need not run again: unpacking authenticated it. */
bool cv_backup_checked_before(const char *path, json_t *manifest);
/* DIR/PREFIX20261122T031500.000Z.cvb */
char *cv_backup_file_name(const char *dir, const char *prefix, int64_t now);

#endif
