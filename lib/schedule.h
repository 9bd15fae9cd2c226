/* schedule.h - how a maintenance program runs: once (for cron), or as a
 * supervised service every interval until SIGTERM. ctxvault-ttl-sweep and
 * ctxvault-scrub share it. */
#ifndef CV_SCHEDULE_H
#define CV_SCHEDULE_H

#include "config.h"

#include <jansson.h>
#include <stdbool.h>

/* Override s with --interval, --batch and --pause (NULL: keep). false with
 * the reason logged. */
bool cv_schedule_args(cv_schedule *s, const char *interval, const char *batch,
                      const char *pause);

/* Serve: run(ctx) every interval until SIGTERM, the first one interval
 * after the start (a restart loop must not become a run loop). A run that
 * returns EX_TEMPFAIL (no store: restarting) is tried again in 5 s, one
 * that returns EX_SOFTWARE or EX_IOERR at the next tick; any other
 * failure (configuration) ends the service with its status. */
int cv_schedule_serve(const cv_schedule *s, int (*run)(void *ctx), void *ctx);

/* Print a run's result as one JSON line on stdout: 0 or EX_IOERR. */
int cv_print_result(json_t *res);

#endif
