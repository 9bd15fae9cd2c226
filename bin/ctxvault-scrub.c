/* ctxvault-scrub - replace the personal data in rows past their scrub age.
 * The policy's [scrub fields] rules turn identifiers into keyed
 * pseudonyms, locations into city and country, and remove device names,
 * custom data and sealed personal fields. New bodies go to store as
 * conditional updates, batch by batch, each with an entry in the audit
 * trail; a row changed meanwhile is read again, never overwritten. */
#include "config.h"
#include "fieldcrypt.h"
#include "maint.h"
#include "policy.h"
#include "schedule.h"
#include "scrub.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

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
        "and the backlog (rows due but not scrubbed).\n"
        "\n"
        "  --once           one run, then exit\n"
        "  --dry-run        report what would change, per kind; change nothing\n"
        "  --interval D     between runs of the service (default 1d); the\n"
        "                   first run is one interval after the start\n"
        "  --batch N        rows per transaction (default 1000)\n"
        "  --pause D        between transactions (default 1ms)\n"
        "  --home DIR       the instance (default $CTXVAULT_HOME or ~/.ctxvault)\n"
        "  -c FILE          configuration file (default HOME/ctxvault.conf)\n"
        "  -q, --quiet      no summary on stderr\n"
        "  -h, --help       this help\n"
        "  -V, --version    the version\n"
        "\n"
        "Exit status: 0 done (or stopped by SIGTERM), 64 usage, 65 a row\n"
        "could not be scrubbed (named on stderr), 70 store refused a request,\n"
        "74 I/O error, 75 the database is locked and no store answers,\n"
        "78 configuration or policy problem.\n");
}

typedef struct {
    const cv_config *cfg;
    cv_scrub_opts o;
    bool quiet;
} scrubber;

static int run_once(void *arg)
{
    scrubber *s = arg;
    json_t *res;
    int status = cv_scrub_run(s->cfg, &s->o, &res);
    if (res) {
        int rc = cv_print_result(res);
        status = status ? status : rc;
        if (!s->quiet && !s->o.dry_run)
            cv_info("scrubbed %lld rows (%lld fields) in %lld ms; %lld "
                    "conflicts retried; %lld rows due left",
                    (long long)json_integer_value(json_object_get(res, "scrubbed")),
                    (long long)json_integer_value(json_object_get(res, "fields")),
                    (long long)json_integer_value(json_object_get(res, "ms")),
                    (long long)json_integer_value(json_object_get(res, "conflicts")),
                    (long long)json_integer_value(json_object_get(res, "backlog")));
        json_decref(res);
    }
    return status;
}

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

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"once", no_argument, NULL, '1'},
        {"dry-run", no_argument, NULL, 'n'},
        {"interval", required_argument, NULL, 'i'},
        {"batch", required_argument, NULL, 'b'},
        {"pause", required_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *home = NULL, *conf = NULL;
    const char *interval_s = NULL, *batch_s = NULL, *pause_s = NULL;
    bool once = false;
    scrubber s = {0};
    int c;

    umask(077);
    cv_log_init(argv[0]);
    cv_install_signals(); /* first: a stop may come at any moment */
    while ((c = getopt_long(argc, argv, "c:qhV", opts, NULL)) != -1) {
        switch (c) {
        case 'H': home = optarg; break;
        case 'c': conf = optarg; break;
        case '1': once = true; break;
        case 'n': s.o.dry_run = true; break;
        case 'i': interval_s = optarg; break;
        case 'b': batch_s = optarg; break;
        case 'p': pause_s = optarg; break;
        case 'q': s.quiet = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ctxvault-scrub %s\n", CV_VERSION); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return EX_USAGE;
    }
    cv_config cfg;
    int status = 0;
    char *actor = NULL;
    if (cv_config_load(&cfg, home, conf)) {
        status = EX_CONFIG;
        goto out;
    }
    cv_schedule sched = cfg.scrub;
    if (!cv_schedule_args(&sched, interval_s, batch_s, pause_s)) {
        status = EX_USAGE;
        goto out;
    }
    s.o.batch = sched.batch;
    s.o.pause_ms = sched.pause_ms;
    s.cfg = &cfg;
    if ((status = check_policy(&cfg)) != 0)
        goto out;
    if (cv_fieldcrypt_init() < 0) {
        cv_err("cannot initialise libsodium");
        status = EX_SOFTWARE;
        goto out;
    }
    actor = cv_maint_actor();
    char *who = cv_fmt("ctxvault-scrub, %s", actor);
    free(actor);
    actor = who;
    s.o.actor = actor;

    if (once || s.o.dry_run) {
        status = run_once(&s);
        goto out;
    }
    /* a service never takes the writer lock: a store restarting under
     * supervisord must find it free */
    s.o.via_store_only = true;
    if (!s.quiet)
        cv_info("scrubbing every %lld s, %d rows per transaction",
                (long long)(sched.interval_ms / 1000), s.o.batch);
    status = cv_schedule_serve(&sched, run_once, &s);
    if (!s.quiet && !status)
        cv_info("stopped");
out:
    free(actor);
    cv_config_free(&cfg);
    return status;
}
