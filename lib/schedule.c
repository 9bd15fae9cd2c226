/* schedule.c - once or every interval. See schedule.h. */
#include "schedule.h"

#include "util.h"

#include <stdio.h>
#include <stdlib.h>

static bool duration_arg(const char *name, const char *v, int64_t *out)
{
    *out = cv_parse_duration(v);
    if (*out >= 0)
        return true;
    cv_err("%s '%s' is not a duration (e.g. 500ms, 30s, 1h)", name, v);
    return false;
}

bool cv_schedule_args(cv_schedule *s, const char *interval, const char *batch,
                      const char *pause)
{
    int64_t v;
    if ((interval && !duration_arg("--interval", interval, &s->interval_ms)) ||
        (pause && !duration_arg("--pause", pause, &s->pause_ms)))
        return false;
    if (batch) {
        if (!cv_parse_int(batch, 1, 100000, &v)) {
            cv_err("--batch '%s' is not a number from 1 to 100000", batch);
            return false;
        }
        s->batch = (int)v;
    }
    if (s->interval_ms < 1000) {
        cv_err("--interval must be at least 1s");
        return false;
    }
    return true;
}

int cv_schedule_serve(const cv_schedule *s, int (*run)(void *ctx), void *ctx)
{
    int rc = 0;
    while (!cv_stop_requested) {
        cv_nap_ms(rc == EX_TEMPFAIL && s->interval_ms > 5000 ? 5000
                                                             : s->interval_ms);
        if (cv_stop_requested)
            break;
        rc = run(ctx);
        if (rc && rc != EX_TEMPFAIL && rc != EX_SOFTWARE && rc != EX_IOERR)
            return rc; /* configuration: retrying will not help */
    }
    return 0;
}

int cv_print_result(json_t *res)
{
    char *text = json_dumps(res, CV_JSON_DUMP);
    int rc = 0;
    if (!text || printf("%s\n", text) < 0 || fflush(stdout) != 0) {
        cv_err("cannot write to stdout");
        rc = EX_IOERR;
    }
    free(text);
    return rc;
}
