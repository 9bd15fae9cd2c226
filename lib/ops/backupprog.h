/* backupprog.h - ctxvault-backup's commands (create, verify, restore,
 * list, archive, prune) and its service (a verified backup every
 * interval, then the pruning), each reported in its metrics. */
#ifndef CV_BACKUPPROG_H
#define CV_BACKUPPROG_H

#include "net/program.h"
#include "ops/backup.h"

#include <stdbool.h>
#include <stdint.h>

/* ctxvault-backup's own options (-1: unset) and its command. */
typedef struct {
    cv_backup_opts bo;     /* .verify = true by default */
    cv_restore_opts ro;    /* .to_ms = -1 by default */
    bool dry_run, archives;
    const char *archive;
    int64_t before, daily, monthly, interval;
    const char *cmd, *arg; /* the operands */
} cv_backupprog_args;

/* --daily, --monthly: a number from 0 to 60 (cv_program_opt's parse). */
bool cv_backupprog_parse_keep(const char *opt, const char *arg, void *target);
/* --interval: a duration of 1s or more, in ms. */
bool cv_backupprog_parse_interval(const char *opt, const char *arg, void *target);
/* --to-time: an RFC 3339 time, in ms. */
bool cv_backupprog_parse_time(const char *opt, const char *arg, void *target);
/* --older-than: an RFC 3339 time or an age such as 400d, as a time in ms. */
bool cv_backupprog_parse_older(const char *opt, const char *arg, void *target);
/* COMMAND [ARG] (cv_program's check). */
int cv_backupprog_check(const cv_program_env *e, void *args);
/* ctxvault-backup's run (cv_program's, with the keyring if it loads). */
int cv_backupprog_main(cv_program_env *e, void *args);

#endif
