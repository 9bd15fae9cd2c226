/* maintprog.h - a maintenance program: one run (for cron) or a run every
 * interval until SIGTERM (supervised), on net/program's skeleton.
 * ctxvault-ttl-sweep and ctxvault-scrub are each a cv_maintprog: a usage
 * text, a run and a summary; the rest is here. */
#ifndef CV_MAINTPROG_H
#define CV_MAINTPROG_H

#include "base/config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct cv_metrics;

/* What one run is asked to do. */
typedef struct {
    int batch;              /* rows per transaction */
    int64_t pause_ms;       /* between transactions */
    bool dry_run;           /* report only, on a read-only connection */
    const char *actor;      /* for the audit trail */
    bool via_store_only;    /* supervised: never take the writer lock */
} cv_run_opts;

typedef struct {
    const char *name;       /* "ctxvault-scrub" */
    const char *doing;      /* "scrubbing", for the service's log */
    void (*usage)(FILE *f);
    /* its section of the configuration ([sweep], [scrub]) */
    const cv_schedule *(*schedule)(const cv_config *cfg);
    /* checked before anything runs (NULL: nothing): 0 or a status */
    int (*check)(const cv_config *cfg);
    /* one run: 0 or a sysexits status; *result is printed */
    int (*run)(const cv_config *cfg, const cv_run_opts *o, json_t **result);
    /* one line on stderr about a run (not for dry runs, not with -q) */
    void (*summary)(json_t *result);
    /* a run's result into the program's metrics (not for dry runs) */
    void (*report)(struct cv_metrics *m, json_t *result);
} cv_maintprog;

/* The usage text's options, from the blank line before them: --once,
 * --dry-run (what it does), --interval (its default), --batch, --pause
 * and cv_program_usage_common's. */
void cv_maintprog_usage_options(FILE *f, const char *dry_run,
                                const char *interval_default);

/* The program's main: --home, -c, --once, --dry-run, --interval, --batch,
 * --pause, -q, --help, --version. As a service (neither --once nor
 * --dry-run) it runs every interval (cv_program_serve_every), always
 * through store; a failure that retrying will not help (configuration)
 * ends the service with its status. */
int cv_maintprog_main(const cv_maintprog *p, int argc, char **argv);

#endif
