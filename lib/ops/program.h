/* program.h - a maintenance program's life: options, configuration, one
 * run (for cron) or a run every interval until SIGTERM (supervised).
 * ctxvault-ttl-sweep and ctxvault-scrub are each a cv_program: a usage
 * text, a run and a summary; the rest is here. */
#ifndef CV_PROGRAM_H
#define CV_PROGRAM_H

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
} cv_program;

/* The program's main: --home, -c, --once, --dry-run, --interval, --batch,
 * --pause, -q, --help, --version. As a service (neither --once nor
 * --dry-run) it runs every interval, the first one interval after the
 * start (a restart loop must not become a run loop), always through
 * store; a run that finds no store (EX_TEMPFAIL) is tried again in 5 s,
 * one that fails (EX_SOFTWARE, EX_IOERR) at the next tick, and any other
 * failure (configuration) ends the service with its status. */
int cv_program_main(const cv_program *p, int argc, char **argv);

/* The service's loop alone: run(ctx) every interval_ms until SIGTERM, as
 * above, publishing m (may be NULL) every report interval meanwhile, so
 * a service with a daily run is not taken for a silent one. 0, or the
 * status of a run that retrying will not help. */
int cv_program_serve_every(int64_t interval_ms, int (*run)(void *ctx), void *ctx,
                   struct cv_metrics *m);

#endif
