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

#include "crypto/keyring.h"

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

/* The background checksum pass (check_checksums = background): every
 * row's keyed checksum, on a read-only connection in a thread, a chunk of
 * rows per short read transaction, so the writer's checkpoints are never
 * held up for long. It only reports: the service degrades its health when
 * rows fail, and goes on. */
typedef struct cv_dbcheck_pass cv_dbcheck_pass;

#define CV_SUMPASS_NAMED 10 /* bad rows named, at most */

typedef struct {
    int state;              /* CV_DBCHECK_*: FAILED when rows fail or cannot be read */
    int64_t rows, bad;      /* checked and failing, so far */
    /* once done: */
    int64_t done_at_ms;     /* wall clock */
    int64_t ms;             /* the pass's duration */
    const char *error;      /* the rows could not be read, or NULL */
    int named;              /* the first bad rows: */
    int64_t seq[CV_SUMPASS_NAMED];
    const char *id[CV_SUMPASS_NAMED];
    const char *why[CV_SUMPASS_NAMED];
} cv_sumpass_result;

/* Start the pass over the database at path (kr must outlive it), at most
 * rate rows a second (0: no limit). NULL when the thread cannot start. */
cv_dbcheck_pass *cv_dbcheck_pass_start(const char *path, const cv_keyring *kr,
                             int64_t rate);
/* Where it is; the strings are owned by the pass. */
void cv_dbcheck_pass_state(cv_dbcheck_pass *p, cv_sumpass_result *out);
/* Stop it if it still runs and free it. */
void cv_dbcheck_pass_destroy(cv_dbcheck_pass **p);

#endif
