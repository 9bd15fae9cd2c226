/* dbcheck.c - the database check in a background thread. */
#include "dbcheck.h"

#include "db.h"
#include "util.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cv_dbcheck {
    pthread_t thread;
    char *path;
    bool full;
    const cv_keyring *kr;
    atomic_int state;
    atomic_int stop;
    char *finding; /* written by the thread before state leaves RUNNING */
    int64_t ms;
};

/* SQLite calls this every few thousand steps: a non-zero return
 * interrupts the statement. */
static int should_stop(void *arg)
{
    cv_dbcheck *c = arg;
    return atomic_load(&c->stop);
}

static void *run(void *arg)
{
    cv_dbcheck *c = arg;
    int64_t t0 = cv_mono_ms();
    char err[1024];
    int code;
    char *finding = NULL;
    cv_db *db = cv_db_open_reader(c->path, &code, err, sizeof err);
    if (!db) {
        finding = cv_strdup(err);
        goto done;
    }
    sqlite3_progress_handler(cv_db_handle(db), 10000, should_stop, c);
    finding = cv_db_check(db, c->full);
    if (!finding && c->kr && !atomic_load(&c->stop)) {
        int64_t rows, bad = cv_db_check_checksums(db, c->kr, 10, &rows);
        if (bad != 0)
            finding = bad < 0 ? cv_strdup("cannot read the rows to check their checksums")
                              : cv_fmt("%lld of %lld rows fail their checksum",
                                       (long long)bad, (long long)rows);
    }
    cv_db_close(&db);
done:
    c->finding = finding;
    c->ms = cv_mono_ms() - t0;
    atomic_store(&c->state, atomic_load(&c->stop) ? CV_DBCHECK_RUNNING
                            : finding ? CV_DBCHECK_FAILED : CV_DBCHECK_OK);
    return NULL;
}

cv_dbcheck *cv_dbcheck_start(const char *path, bool full, const cv_keyring *kr)
{
    cv_dbcheck *c = cv_calloc(1, sizeof *c);
    c->path = cv_strdup(path);
    c->full = full;
    c->kr = kr;
    atomic_init(&c->state, CV_DBCHECK_RUNNING);
    atomic_init(&c->stop, 0);
    /* signals stay with the main thread, whose poll they interrupt */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&c->thread, NULL, run, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        free(c->path);
        free(c);
        return NULL;
    }
    return c;
}

int cv_dbcheck_state(cv_dbcheck *c, const char **finding, int64_t *ms)
{
    int st = atomic_load(&c->state);
    if (st != CV_DBCHECK_RUNNING) {
        if (finding)
            *finding = c->finding;
        if (ms)
            *ms = c->ms;
    }
    return st;
}

void cv_dbcheck_destroy(cv_dbcheck **p)
{
    cv_dbcheck *c = *p;
    if (!c)
        return;
    atomic_store(&c->stop, 1);
    pthread_join(c->thread, NULL);
    free(c->finding);
    free(c->path);
    free(c);
    *p = NULL;
}
