/* writer.c - what every change on the writer's connection shares
 * (writer.h). */
#include "storage/writer.h"

/* The checkpoint cannot finish while a reader holds an old snapshot:
 * then the WAL is emptied by a later checkpoint. */
bool cv_writer_compact(cv_db *db)
{
    sqlite3 *h = cv_db_handle(db);
    (void)sqlite3_exec(h, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
    int log = -1, done = -1;
    int rc = cv_db_checkpoint(db, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
    return rc == SQLITE_OK;
}
