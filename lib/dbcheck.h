/* dbcheck.h - the start check of a large database, run beside the work.
 *
 * quick_check reads every page: seconds on a database of a million rows,
 * too long for a store that supervisord restarts after a crash. So the
 * service opens with the cheap checks (cv_db_open_writer_fast), starts
 * this check on its own read-only connection in a thread, and serves
 * meanwhile, withholding acknowledgements until the check has passed: a
 * corrupt database is refused (with the restore command named) before
 * anything ingest relies on is acknowledged from it. */
#ifndef CV_DBCHECK_H
#define CV_DBCHECK_H

#include "keyring.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct cv_dbcheck cv_dbcheck;

enum { CV_DBCHECK_RUNNING, CV_DBCHECK_OK, CV_DBCHECK_FAILED };

/* Start checking the database at path: quick_check, or integrity_check
 * when full, then every row's checksum when kr is given (it must outlive
 * the check). NULL when the thread cannot start. */
cv_dbcheck *cv_dbcheck_start(const char *path, bool full, const cv_keyring *kr);
/* The state; when FAILED, *finding says what was found (owned by the
 * check). *ms is the check's duration once it is done. */
int cv_dbcheck_state(cv_dbcheck *c, const char **finding, int64_t *ms);
/* Stop the check if it still runs (interrupting SQLite) and free it. */
void cv_dbcheck_destroy(cv_dbcheck **p);

#endif
