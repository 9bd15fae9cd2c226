/* dbcheck.c - the database check in a background thread. */
#include "storage/dbcheck.h"

#include "storage/db.h"
#include "base/util.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---- the background checksum pass ------------------------------------- */

#define SUMPASS_CHUNK 1000 /* rows per read transaction */

struct cv_dbcheck_pass {
    pthread_t thread;
    char *path;
    const cv_keyring *kr;
    int64_t rate;
    atomic_int state;
    atomic_int stop;
    atomic_llong rows, bad;
    /* written by the thread before state leaves RUNNING */
    int64_t done_at_ms, ms;
    char *error;
    int named;
    int64_t seq[CV_SUMPASS_NAMED];
    char *id[CV_SUMPASS_NAMED];
    const char *why[CV_SUMPASS_NAMED];
};

static int pass_should_stop(void *arg)
{
    return atomic_load(&((cv_dbcheck_pass *)arg)->stop);
}

static void bad_row(void *arg, int64_t seq, const char *id, const char *why)
{
    cv_dbcheck_pass *p = arg;
    atomic_fetch_add(&p->bad, 1);
    if (p->named < CV_SUMPASS_NAMED) {
        p->seq[p->named] = seq;
        p->id[p->named] = cv_strdup(id);
        p->why[p->named] = why; /* a static string */
        p->named++;
    }
}

static void *pass_run(void *arg)
{
    cv_dbcheck_pass *p = arg;
    int64_t t0 = cv_mono_ms(), after = 0, n = 0;
    char err[1024];
    int code;
    cv_db *db = cv_db_open_reader(p->path, &code, err, sizeof err);
    if (!db) {
        p->error = cv_strdup(err);
        goto done;
    }
    sqlite3_progress_handler(cv_db_handle(db), 10000, pass_should_stop, p);
    /* at a limited rate, ten chunks a second at least: smooth, and a stop
     * is seen soon */
    int64_t chunk = p->rate > 0 && p->rate / 10 < SUMPASS_CHUNK
                        ? (p->rate / 10 > 0 ? p->rate / 10 : 1) : SUMPASS_CHUNK;
    /* rows committed after the pass began are checked too, up to its end */
    while (!atomic_load(&p->stop) &&
           (n = cv_db_check_checksums_chunk(db, p->kr, &after, chunk,
                                            bad_row, p)) > 0) {
        int64_t rows = atomic_fetch_add(&p->rows, n) + n;
        if (p->rate > 0) {
            int64_t due = t0 + rows * 1000 / p->rate;
            while (!atomic_load(&p->stop) && cv_mono_ms() < due) {
                int64_t left = due - cv_mono_ms();
                struct timespec ts = {0, (left < 50 ? left : 50) * 1000000L};
                nanosleep(&ts, NULL);
            }
        }
    }
    if (n < 0 && !atomic_load(&p->stop))
        p->error = cv_fmt("cannot read the rows after seq %lld: %s",
                          (long long)after, cv_db_errmsg(db));
    cv_db_close(&db);
done:
    p->ms = cv_mono_ms() - t0;
    p->done_at_ms = cv_now_ms();
    atomic_store(&p->state, atomic_load(&p->stop) ? CV_DBCHECK_RUNNING
                            : p->error || atomic_load(&p->bad) ? CV_DBCHECK_FAILED
                                                               : CV_DBCHECK_OK);
    return NULL;
}

cv_dbcheck_pass *cv_dbcheck_pass_start(const char *path, const cv_keyring *kr,
                             int64_t rate)
{
    cv_dbcheck_pass *p = cv_calloc(1, sizeof *p);
    p->path = cv_strdup(path);
    p->kr = kr;
    p->rate = rate;
    atomic_init(&p->state, CV_DBCHECK_RUNNING);
    atomic_init(&p->stop, 0);
    atomic_init(&p->rows, 0);
    atomic_init(&p->bad, 0);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&p->thread, NULL, pass_run, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        free(p->path);
        free(p);
        return NULL;
    }
    return p;
}

void cv_dbcheck_pass_state(cv_dbcheck_pass *p, cv_sumpass_result *out)
{
    memset(out, 0, sizeof *out);
    out->state = atomic_load(&p->state);
    out->rows = atomic_load(&p->rows);
    out->bad = atomic_load(&p->bad);
    if (out->state == CV_DBCHECK_RUNNING)
        return;
    out->done_at_ms = p->done_at_ms;
    out->ms = p->ms;
    out->error = p->error;
    out->named = p->named;
    for (int i = 0; i < p->named; i++) {
        out->seq[i] = p->seq[i];
        out->id[i] = p->id[i];
        out->why[i] = p->why[i];
    }
}

void cv_dbcheck_pass_destroy(cv_dbcheck_pass **pp)
{
    cv_dbcheck_pass *p = *pp;
    if (!p)
        return;
    atomic_store(&p->stop, 1);
    pthread_join(p->thread, NULL);
    for (int i = 0; i < p->named; i++)
        free(p->id[i]);
    free(p->error);
    free(p->path);
    free(p);
    *pp = NULL;
}
