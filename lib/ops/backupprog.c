/* backupprog.c - ctxvault-backup's commands and service. See
 * backupprog.h. */
#include "ops/backupprog.h"

#include "ops/archive.h"
#include "crypto/keyring.h"
#include "net/metrics.h"
#include "base/time.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const cv_config *cfg;
    const cv_keyring *kr;
    bool quiet;
    cv_metrics *m;
} service;

/* The newest verified backup into the metrics: its time and size. */
static void report_latest(const cv_config *cfg, cv_metrics *m)
{
    json_t *all = NULL;
    size_t i;
    json_t *b;
    if (cv_backup_list(cfg, false, &all) != 0)
        return;
    json_array_foreach(all, i, b) {
        const char *at = json_string_value(json_object_get(b, "created_at"));
        int64_t t;
        if (!json_is_true(json_object_get(b, "verified")) || !at ||
            !cv_time_parse(at, strlen(at), &t))
            continue;
        cv_metrics_set(m, "ctxvault_backup_last_success_timestamp_seconds", NULL,
                       (double)t / 1000.0);
        cv_metrics_set(m, "ctxvault_backup_size_bytes", NULL,
                       (double)json_integer_value(json_object_get(b, "bytes")));
        break;
    }
    json_decref(all);
}

/* What a create or verify did, into the metrics. */
static void report_run(const service *s, int status, json_t *res, bool created)
{
    if (status == EX_DATAERR)
        cv_metrics_add(s->m, "ctxvault_backup_verification_failures_total", NULL, 1);
    if (created && status == 0)
        cv_metrics_observe(s->m, "ctxvault_backup_duration_seconds", NULL,
                           (double)json_integer_value(json_object_get(res, "ms")) / 1000.0);
    report_latest(s->cfg, s->m);
    cv_metrics_publish(s->m, false);
}

static int print(json_t *res, bool to_stderr);

/* One tick of the service: a verified backup, then the pruning. A backup
 * that fails its check is said (and audited) and the service goes on. */
static int tick(void *arg)
{
    service *s = arg;
    cv_backup_opts bo = {.verify = true};
    json_t *res = NULL;
    int rc = cv_backup_create(s->cfg, s->kr, &bo, &res);
    report_run(s, rc, res, true);
    if (res)
        print(res, false);
    json_decref(res);
    res = NULL;
    if (rc == 0 &&
        cv_backup_prune(s->cfg, s->cfg->backup_daily, s->cfg->backup_monthly,
                        false, &res) == 0 && !s->quiet)
        cv_info("backed up; %zu backups kept",
                json_array_size(json_object_get(res, "kept")));
    json_decref(res);
    return rc == EX_DATAERR ? 0 : rc;
}

static int print(json_t *res, bool to_stderr)
{
    char *text = json_dumps(res, JSON_COMPACT);
    FILE *f = to_stderr ? stderr : stdout;
    int rc = 0;
    if (!text || fprintf(f, "%s\n", text) < 0 || fflush(f) != 0) {
        cv_err("cannot write the result");
        rc = EX_IOERR;
    }
    free(text);
    return rc;
}

bool cv_backupprog_parse_keep(const char *opt, const char *arg, void *target)
{
    if (cv_parse_int(arg, 0, 60, target))
        return true;
    cv_err("%s '%s' is not a number from 0 to 60", opt, arg);
    return false;
}

bool cv_backupprog_parse_interval(const char *opt, const char *arg, void *target)
{
    int64_t *ms = target;
    if ((*ms = cv_parse_duration(arg)) >= 1000)
        return true;
    cv_err("%s '%s' is not a duration of 1s or more", opt, arg);
    return false;
}

bool cv_backupprog_parse_time(const char *opt, const char *arg, void *target)
{
    if (cv_time_parse(arg, strlen(arg), target))
        return true;
    cv_err("%s '%s' is not an RFC 3339 time", opt, arg);
    return false;
}

bool cv_backupprog_parse_older(const char *opt, const char *arg, void *target)
{
    int64_t *ms = target;
    if (cv_time_parse(arg, strlen(arg), ms))
        return true;
    int64_t age = cv_parse_duration(arg);
    if (age < 0) {
        cv_err("%s '%s' is neither an RFC 3339 time nor an age such as 400d",
               opt, arg);
        return false;
    }
    *ms = cv_now_ms() - age;
    return true;
}

int cv_backupprog_check(const cv_program_env *e, void *args)
{
    cv_backupprog_args *a = args;
    if (e->argc < 1 || e->argc > 2) {
        e->p->usage(stderr);
        return EX_USAGE;
    }
    a->cmd = e->argv[0];
    a->arg = e->argc > 1 ? e->argv[1] : NULL;
    if (a->arg && strcmp(a->cmd, "verify") && strcmp(a->cmd, "restore")) {
        e->p->usage(stderr);
        return EX_USAGE;
    }
    return 0;
}

int cv_backupprog_main(cv_program_env *e, void *args)
{
    cv_backupprog_args *a = args;
    const cv_config *cfg = &e->cfg;
    const cv_keyring *kr = e->kr;
    const char *cmd = a->cmd, *arg = a->arg;
    bool quiet = e->quiet;
    json_t *res = NULL;
    int status;
    if (!kr && strcmp(cmd, "list") && strcmp(cmd, "prune")) {
        cv_err("%s", e->kr_err);
        return EX_CONFIG;
    }
    service s = {cfg, kr, quiet, cv_program_metrics(e, !strcmp(cmd, "serve"))};
    cv_metrics_set(s.m, "ctxvault_backup_verification_failures_total", NULL, 0);
    report_latest(cfg, s.m);
    if (!strcmp(cmd, "create")) {
        status = cv_backup_create(cfg, kr, &a->bo, &res);
        report_run(&s, status, res, !a->bo.out || strcmp(a->bo.out, "-") != 0);
    } else if (!strcmp(cmd, "verify")) {
        status = cv_backup_verify(cfg, kr, arg, &res);
        report_run(&s, status, res, false);
    } else if (!strcmp(cmd, "restore") && a->archive) {
        status = arg ? (e->p->usage(stderr), EX_USAGE)
                     : cv_archive_restore(cfg, kr, a->archive, &res);
    } else if (!strcmp(cmd, "restore")) {
        a->ro.path = arg;
        status = cv_backup_restore(cfg, kr, &a->ro, &res);
    } else if (!strcmp(cmd, "archive")) {
        if (a->before < 0) {
            cv_err("archive needs --older-than T");
            status = EX_USAGE;
        } else {
            status = cv_archive_create(cfg, kr, a->before, &res);
        }
    } else if (!strcmp(cmd, "list")) {
        status = cv_backup_list(cfg, a->archives, &res);
    } else if (!strcmp(cmd, "serve")) {
        int64_t every = a->interval > 0 ? a->interval : cfg->backup_interval_ms;
        if (!quiet)
            cv_info("backing up every %lld s into %s", (long long)(every / 1000),
                    cfg->backup_dir);
        status = cv_program_serve_every(every, tick, &s, s.m);
        e->stopped_line = true;
    } else if (!strcmp(cmd, "prune")) {
        status = cv_backup_prune(cfg,
                                 a->daily >= 0 ? (int)a->daily : cfg->backup_daily,
                                 a->monthly >= 0 ? (int)a->monthly
                                                 : cfg->backup_monthly,
                                 a->dry_run, &res);
    } else {
        cv_err("unknown command '%s' (see ctxvault-backup --help)", cmd);
        status = EX_USAGE;
    }
    if (res) {
        bool to_stderr = a->bo.out && !strcmp(a->bo.out, "-");
        int rc = (!quiet || !to_stderr) ? print(res, to_stderr) : 0;
        status = status ? status : rc;
    }
    json_decref(res);
    return status;
}
