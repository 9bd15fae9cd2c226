/* ctxvault-scrub - replace the personal data in rows past their scrub age.
 * The policy's [scrub fields] rules turn identifiers into keyed
 * pseudonyms, locations into city and country, and remove device names,
 * custom data and sealed personal fields. New bodies go to store as
 * conditional updates, batch by batch, each with an entry in the audit
 * trail; a row changed meanwhile is read again, never overwritten. */
#include "privacy/policy.h"
#include "net/metrics.h"
#include "ops/maintprog.h"
#include "ops/scrub.h"
#include "base/util.h"

#include <stdio.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ctxvault-scrub [--home DIR] [-c FILE] [--once] [--dry-run]\n"
        "                      [--interval D] [--batch N] [--pause D]\n"
        "\n"
        "Scrub the personal data from rows past their scrub age (policy.conf\n"
        "[scrub] and [scrub fields]): as a service, every interval until\n"
        "SIGTERM, through the running store; with --once, one run, for cron\n"
        "(through store, or holding the writer lock itself when no store\n"
        "runs). Each run prints one JSON line on stdout: rows scrubbed, per\n"
        "kind the fields changed and in how many rows, fields per operator,\n"
        "conflicts (rows changed meanwhile, retried), milliseconds, rows/s,\n"
        "and the backlog (rows due but not scrubbed).\n");
    cv_maintprog_usage_options(
        f, "report what would change, per kind; change nothing", "1d");
    fprintf(f,
        "\n"
        "Exit status: 0 done (or stopped by SIGTERM), 64 usage, 65 a row\n"
        "could not be scrubbed (named on stderr), 70 store refused a request,\n"
        "74 I/O error, 75 the database is locked and no store answers,\n"
        "78 configuration or policy problem.\n");
}

static void summary(json_t *res)
{
    long long rows = json_integer_value(json_object_get(res, "scrubbed")),
              fields = json_integer_value(json_object_get(res, "fields")),
              conflicts = json_integer_value(json_object_get(res, "conflicts")),
              due = json_integer_value(json_object_get(res, "backlog"));
    cv_info("scrubbed %lld %s (%lld %s) in %lld ms; %lld %s retried; %lld %s "
            "due left",
            rows, cv_plural(rows, "row", "rows"), fields,
            cv_plural(fields, "field", "fields"),
            (long long)json_integer_value(json_object_get(res, "ms")), conflicts,
            cv_plural(conflicts, "conflict", "conflicts"), due,
            cv_plural(due, "row", "rows"));
}

static const cv_schedule *schedule(const cv_config *cfg) { return &cfg->scrub; }

/* The rules are checked before anything else: a bad rule names its line
 * and the service does not start. */
static int check_policy(const cv_config *cfg)
{
    int problems = 0;
    cv_policy *pol = cv_policy_load(cfg->policy_file, true, &problems);
    cv_policy_destroy(&pol);
    if (!problems)
        return 0;
    cv_err("the policy has %d problem%s (above): not scrubbing", problems,
           problems == 1 ? "" : "s");
    return EX_CONFIG;
}

/* A run into the metrics: rows and fields scrubbed, time, the backlog. */
static void report(cv_metrics *m, json_t *r)
{
    cv_metrics_add(m, "ctxvault_pii_records_scrubbed_total", NULL,
                   (double)json_integer_value(json_object_get(r, "scrubbed")));
    cv_metrics_add(m, "ctxvault_pii_fields_scrubbed_total", NULL,
                   (double)json_integer_value(json_object_get(r, "fields")));
    cv_metrics_observe(m, "ctxvault_pii_scrubbing_duration_seconds", NULL,
                       (double)json_integer_value(json_object_get(r, "ms")) / 1000.0);
    json_int_t backlog = json_integer_value(json_object_get(r, "backlog"));
    if (backlog >= 0)
        cv_metrics_set(m, "ctxvault_pii_records_due", NULL, (double)backlog);
}

int main(int argc, char **argv)
{
    static const cv_maintprog scrub = {
        .name = "ctxvault-scrub", .doing = "scrubbing", .usage = usage,
        .schedule = schedule, .check = check_policy, .run = cv_scrub_run,
        .summary = summary, .report = report,
    };
    return cv_maintprog_main(&scrub, argc, argv);
}
