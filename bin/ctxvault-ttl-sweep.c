/* ctxvault-ttl-sweep - delete what is past its retention. Rows go in
 * small transactions through the running store (or under the writer lock
 * when none runs), so writers are never held up for long; each run ends
 * with the files compacted and an entry in the audit trail. */
#include "config.h"
#include "fieldcrypt.h"
#include "maint.h"
#include "schedule.h"
#include "sweep.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

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
        "audit entries expired, milliseconds, rows/s, and the backlog (rows\n"
        "expired but not yet deleted).\n"
        "\n"
        "  --once           one run, then exit\n"
        "  --dry-run        count what would go, per kind; change nothing\n"
        "  --interval D     between runs of the service (default 1h); the\n"
        "                   first run is one interval after the start\n"
        "  --batch N        rows per transaction (default 1000)\n"
        "  --pause D        between transactions (default 1ms)\n"
        "  --home DIR       the instance (default $CTXVAULT_HOME or ~/.ctxvault)\n"
        "  -c FILE          configuration file (default HOME/ctxvault.conf)\n"
        "  -q, --quiet      no summary on stderr\n"
        "  -h, --help       this help\n"
        "  -V, --version    the version\n"
        "\n"
        "Exit status: 0 done (or stopped by SIGTERM), 64 usage, 70 store\n"
        "refused a request, 74 I/O error, 75 the database is locked and no\n"
        "store answers, 78 configuration problem.\n");
}

typedef struct {
    const cv_config *cfg;
    cv_sweep_opts o;
    bool quiet;
} sweeper;

static int run_once(void *arg)
{
    sweeper *w = arg;
    json_t *res;
    int status = cv_sweep_run(w->cfg, &w->o, &res);
    if (res) {
        int rc = cv_print_result(res);
        status = status ? status : rc;
        if (!w->quiet && !w->o.dry_run)
            cv_info("swept %lld rows and %lld audit entries in %lld ms; %lld "
                    "expired rows left", (long long)json_integer_value(json_object_get(res, "deleted")),
                    (long long)json_integer_value(json_object_get(res, "audit_expired")),
                    (long long)json_integer_value(json_object_get(res, "ms")),
                    (long long)json_integer_value(json_object_get(res, "backlog")));
        json_decref(res);
    }
    return status;
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
    sweeper w = {0};
    int c;

    umask(077);
    cv_log_init(argv[0]);
    cv_install_signals(); /* first: a stop may come at any moment */
    while ((c = getopt_long(argc, argv, "c:qhV", opts, NULL)) != -1) {
        switch (c) {
        case 'H': home = optarg; break;
        case 'c': conf = optarg; break;
        case '1': once = true; break;
        case 'n': w.o.dry_run = true; break;
        case 'i': interval_s = optarg; break;
        case 'b': batch_s = optarg; break;
        case 'p': pause_s = optarg; break;
        case 'q': w.quiet = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ctxvault-ttl-sweep %s\n", CV_VERSION); return 0;
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
    cv_schedule sched = cfg.sweep;
    if (!cv_schedule_args(&sched, interval_s, batch_s, pause_s)) {
        status = EX_USAGE;
        goto out;
    }
    w.o.batch = sched.batch;
    w.o.pause_ms = sched.pause_ms;
    w.cfg = &cfg;
    if (cv_fieldcrypt_init() < 0) {
        cv_err("cannot initialise libsodium");
        status = EX_SOFTWARE;
        goto out;
    }
    actor = cv_maint_actor();
    char *who = cv_fmt("ctxvault-ttl-sweep, %s", actor);
    free(actor);
    actor = who;
    w.o.actor = actor;

    if (once || w.o.dry_run) {
        status = run_once(&w);
        goto out;
    }
    /* a service never takes the writer lock: a store restarting under
     * supervisord must find it free */
    w.o.via_store_only = true;
    if (!w.quiet)
        cv_info("sweeping every %lld s, %d rows per transaction",
                (long long)(sched.interval_ms / 1000), w.o.batch);
    status = cv_schedule_serve(&sched, run_once, &w);
    if (!w.quiet && !status)
        cv_info("stopped");
out:
    free(actor);
    cv_config_free(&cfg);
    return status;
}
