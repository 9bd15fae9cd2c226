/* ctxvault-ttl-sweep - delete what is past its retention. Rows go in
 * small transactions through the running store (or under the writer lock
 * when none runs), so writers are never held up for long; each run ends
 * with the files compacted and an entry in the audit trail. */
#include "net/metrics.h"
#include "ops/maintprog.h"
#include "ops/sweep.h"
#include "base/util.h"

#include <stdio.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ctxvault-ttl-sweep [--home DIR] [-c FILE] [--once] [--dry-run]\n"
        "                          [--interval D] [--batch N] [--pause D]\n"
        "\n"
        "Delete the rows whose retention has ended ([sweep] in the config):\n"
        "as a service, every interval until SIGTERM, through the running store;\n"
        "with --once, one run, for cron (through store, or holding the writer\n"
        "lock itself when no store runs). Each run prints one JSON line on stdout: rows deleted, per kind,\n"
        "audit entries expired, model cache entries expired (cache_expired),\n"
        "milliseconds, rows/s, and the backlog (rows\n"
        "expired but not yet deleted).\n");
    cv_maintprog_usage_options(
        f, "count what would go, per kind; change nothing", "1h");
    fprintf(f,
        "\n"
        "Exit status: 0 done (or stopped by SIGTERM), 64 usage, 70 store\n"
        "refused a request, 74 I/O error, 75 the database is locked and no\n"
        "store answers, 78 configuration problem.\n");
}

static void summary(json_t *res)
{
    long long rows = json_integer_value(json_object_get(res, "deleted")),
              audit = json_integer_value(json_object_get(res, "audit_expired")),
              left = json_integer_value(json_object_get(res, "backlog"));
    cv_info("swept %lld %s and %lld audit %s in %lld ms; %lld expired %s left",
            rows, cv_plural(rows, "row", "rows"), audit,
            cv_plural(audit, "entry", "entries"),
            (long long)json_integer_value(json_object_get(res, "ms")), left,
            cv_plural(left, "row", "rows"));
}

static const cv_schedule *schedule(const cv_config *cfg) { return &cfg->sweep; }

/* A run into the metrics: rows deleted, time taken, the backlog left. */
static void report(cv_metrics *m, json_t *r)
{
    cv_metrics_add(m, "ctxvault_ttl_records_deleted_total", NULL,
                   (double)json_integer_value(json_object_get(r, "deleted")));
    cv_metrics_observe(m, "ctxvault_ttl_cleanup_duration_seconds", NULL,
                       (double)json_integer_value(json_object_get(r, "ms")) / 1000.0);
    json_int_t backlog = json_integer_value(json_object_get(r, "backlog"));
    if (backlog >= 0)
        cv_metrics_set(m, "ctxvault_ttl_records_expired", NULL, (double)backlog);
}

int main(int argc, char **argv)
{
    static const cv_maintprog sweep = {
        .name = "ctxvault-ttl-sweep", .doing = "sweeping", .usage = usage,
        .schedule = schedule, .run = cv_sweep_run, .summary = summary,
        .report = report,
    };
    return cv_maintprog_main(&sweep, argc, argv);
}
