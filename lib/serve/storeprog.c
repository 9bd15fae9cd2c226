/* storeprog.c - ctxvault-store's main and its filter. See storeprog.h. */
#include "serve/storeprog.h"

#include "crypto/datakeys.h"
#include "crypto/keyring.h"
#include "base/lineread.h"
#include "net/deadletter.h"
#include "privacy/policy.h"
#include "base/progress.h"
#include "storage/db.h"
#include "storage/dbcheck.h"
#include "storage/store.h"
#include "serve/store_serve.h"
#include "base/util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The filter: events on stdin committed in batches of batch_size events
 * or batch_ms, whichever comes first; exits once everything read is
 * committed. */
static int run_filter(const cv_config *cfg, const cv_keyring *kr, cv_db *db,
                      cv_store *st, cv_deadletter *dl, bool quiet)
{
    /* the filter ends soon: it checks before it writes, or not at all */
    if (cfg->check_checksums == CV_CHECKSUMS_YES) {
        int64_t rows, bad = cv_db_check_checksums(db, kr, 10, &rows);
        if (bad != 0) {
            cv_err("database %s: %s; refusing to write to it: run 'ctxvault "
                   "verify', and restore it with 'ctxvault-backup restore'",
                   cfg->db_file, bad < 0 ? "cannot read its rows"
                                        : "rows fail their checksum");
            return EX_DATAERR;
        }
    }
    cv_grow_pipe(0);
    cv_lineread *lr = cv_lineread_new(0, (size_t)cv_config_stage_max_line(cfg));

    cv_progress progress;
    cv_progress_init(&progress, "store");
    int64_t deadline = 0;
    bool eof = false;
    int status = 0;
    char err[1024];
    while (!eof && !status) {
        if (cv_stop_requested)
            break;
        /* wait for input, but no longer than the open batch may wait */
        int timeout = -1;
        if (cv_store_pending(st)) {
            int64_t left = deadline - cv_mono_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        int pr = poll(&pfd, 1, timeout);
        if (pr < 0 && errno != EINTR) {
            cv_err("poll failed: %s", strerror(errno));
            status = EX_OSERR;
            break;
        }
        if (pr > 0) {
            int fr = cv_lineread_fill(lr);
            if (fr < 0 && !cv_stop_requested) {
                cv_err("cannot read stdin: %s", strerror(errno));
                status = EX_IOERR;
            }
        }
        const char *line;
        size_t len;
        int rc;
        while (!status && (rc = cv_lineread_next(lr, &line, &len, true)) != CV_LR_AGAIN) {
            if (rc == CV_LR_EOF) {
                eof = true;
                break;
            }
            uint64_t lineno = cv_lineread_lineno(lr);
            if (rc == CV_LR_TOOLONG) {
                snprintf(err, sizeof err, "line longer than %lld bytes",
                         (long long)cv_config_stage_max_line(cfg));
                cv_deadletter_put(dl, "stdin", lineno, err, line, len, true);
                continue;
            }
            if (len == 0 || strspn(line, " \t") == len)
                continue;
            bool opened = cv_store_pending(st) == 0;
            int r = cv_store_add(st, line, len, err, sizeof err);
            if (r == CV_STORE_REJECTED) {
                cv_deadletter_put(dl, "stdin", lineno, err, line, len, false);
            } else if (r == CV_STORE_FAILED) {
                cv_err("stdin:%llu: %s", (unsigned long long)lineno, err);
                cv_store_rollback(st);
                status = EX_IOERR;
            } else if (opened) {
                deadline = cv_mono_ms() + cfg->batch_ms;
            }
            if (!status && cv_store_pending(st) >= (size_t)cfg->batch_size &&
                cv_store_commit(st, err, sizeof err) < 0) {
                cv_err("%s", err);
                cv_store_rollback(st);
                status = EX_IOERR;
            }
        }
        if (!status && cv_store_pending(st) &&
            (eof || cv_stop_requested || cv_mono_ms() >= deadline) &&
            cv_store_commit(st, err, sizeof err) < 0) {
            cv_err("%s", err);
            cv_store_rollback(st);
            status = EX_IOERR;
        }
        const cv_store_stats *s = cv_store_stats_get(st);
        cv_progress_update(&progress, s->inserted + s->duplicates, NULL);
    }
    cv_progress_done(&progress);
    if (!status && cv_store_pending(st) && cv_store_commit(st, err, sizeof err) < 0) {
        cv_err("%s", err);
        cv_store_rollback(st);
        status = EX_IOERR;
    }
    const cv_store_stats *s = cv_store_stats_get(st);
    uint64_t rejected = cv_deadletter_count(dl);
    /* every run, the first too: a silent success looked like nothing */
    if (!quiet)
        cv_info("%llu stored, %llu %s, %llu rejected%s%s",
                (unsigned long long)s->inserted,
                (unsigned long long)s->duplicates,
                cv_plural((long long)s->duplicates, "duplicate", "duplicates"),
                (unsigned long long)rejected, rejected ? "; see " : "",
                rejected ? cv_deadletter_path(dl) : "");
    if (!status && rejected)
        status = EX_DATAERR;
    cv_lineread_destroy(&lr);
    return status;
}

int cv_storeprog_main(cv_program_env *e, void *args)
{
    const cv_storeprog_args *a = args;
    cv_config *cfg = &e->cfg;
    cv_keyring *kr = e->kr;
    int status = EX_CONFIG, problems = 0;
    char err[1024];
    cv_datakeys *ds = NULL;
    cv_policy *pol = NULL;
    cv_db *db = NULL;
    cv_store *st = NULL;
    cv_deadletter *dl = NULL;
    cv_dbcheck *check = NULL;

    if (a->dbpath) {
        free(cfg->db_file);
        cfg->db_file = cv_strdup(a->dbpath);
        /* another database has a journal of its own */
        free(cfg->journal_dir);
        cfg->journal_dir = cv_fmt("%s.journal", a->dbpath);
    }
    pol = cv_policy_load(cfg->policy_file, true, &problems);
    if (!pol || problems)
        goto out;
    ds = cv_datakeys_of_instance(cfg->datakeys_file, kr, true,
                                 cv_policy_ephemeral_ms(pol));
    if (!ds)
        goto out;
    cv_recovery rec;
    /* The service must be ready at once after a crash: it checks the whole
     * file beside its work and withholds acks until that passes (see
     * lib/storage/dbcheck.h). The filter checks first, as it always did. */
    db = a->serve ? cv_db_open_writer_fast(cfg, "ctxvault-store", &rec,
                                           &status, err, sizeof err)
                  : cv_db_open_writer(cfg, "ctxvault-store", &rec, &status, err,
                                      sizeof err);
    if (!db) {
        cv_err("%s", err);
        goto out;
    }
    if (rec.wal_present && !e->quiet)
        cv_info("recovered %s: replayed a %lld-byte WAL and checkpointed it "
                "in %lld ms", cfg->db_file, (long long)rec.wal_bytes,
                (long long)rec.duration_ms);
    dl = cv_deadletter_open(cfg->deadletter_dir, "store", kr);
    if (!dl) {
        cv_err("cannot open dead-letter file in %s: %s", cfg->deadletter_dir,
               strerror(errno));
        status = EX_CANTCREAT;
        goto out;
    }
    st = cv_store_new(db, pol, kr, cfg->max_depth);
    if (a->serve) {
        check = cv_dbcheck_start(cfg->db_file, cfg->check_integrity,
                                 cfg->check_checksums == CV_CHECKSUMS_YES
                                     ? kr : NULL);
        if (!check) {
            cv_err("cannot start the database check: %s", strerror(errno));
            status = EX_OSERR;
            goto out;
        }
        cv_store_service svc = {.cfg = cfg, .db = db, .store = st, .pol = pol,
                                .kr = kr, .ds = ds, .dl = dl, .check = check,
                                .started_ms = e->started_ms, .recovery = rec,
                                .quiet = e->quiet};
        status = cv_store_serve(&svc);
        check = svc.check;
        goto out;
    }
    status = run_filter(cfg, kr, db, st, dl, e->quiet);
out:
    cv_dbcheck_destroy(&check);
    cv_store_destroy(&st);
    cv_deadletter_close(&dl);
    cv_db_close(&db);
    cv_policy_destroy(&pol);
    cv_datakeys_destroy(&ds);
    return status;
}
