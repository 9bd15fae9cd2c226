/* program.c - a maintenance program's main. See program.h. */
#include "ops/program.h"

#include "net/metrics.h"
#include "net/sock.h"

#include "crypto/fieldcrypt.h"
#include "ops/session.h"
#include "base/util.h"

#include <getopt.h>
#include <stdlib.h>
#include <sys/stat.h>

static bool duration_arg(const char *name, const char *v, int64_t *out)
{
    *out = cv_parse_duration(v);
    if (*out >= 0)
        return true;
    cv_err("%s '%s' is not a duration (e.g. 500ms, 30s, 1h)", name, v);
    return false;
}

/* Override s with --interval, --batch and --pause (NULL: keep). */
static bool schedule_args(cv_schedule *s, const char *interval,
                          const char *batch, const char *pause)
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

static int run_once(const cv_program *p, const cv_config *cfg,
                    const cv_run_opts *o, bool quiet, cv_metrics *m)
{
    json_t *res = NULL;
    int status = p->run(cfg, o, &res);
    if (!res)
        return status;
    if (!o->dry_run && p->report && m) {
        p->report(m, res);
        cv_metrics_publish(m, false);
    }
    char *text = json_dumps(res, CV_JSON_DUMP);
    if (!text || printf("%s\n", text) < 0 || fflush(stdout) != 0) {
        cv_err("cannot write to stdout");
        status = status ? status : EX_IOERR;
    }
    free(text);
    if (!quiet && !o->dry_run)
        p->summary(res);
    json_decref(res);
    return status;
}

int cv_program_serve_every(int64_t interval_ms, int (*run)(void *ctx), void *ctx,
                   cv_metrics *m)
{
    int rc = 0;
    while (!cv_stop_requested) {
        int64_t until = cv_mono_ms() +
            (rc == EX_TEMPFAIL && interval_ms > 5000 ? 5000 : interval_ms);
        /* the nap in steps: a report each interval says the service lives */
        while (!cv_stop_requested && cv_mono_ms() < until) {
            int64_t left = until - cv_mono_ms();
            cv_nap_ms(left > 200 ? 200 : left);
            cv_metrics_tick(m);
        }
        if (cv_stop_requested)
            break;
        rc = run(ctx);
        if (rc && rc != EX_TEMPFAIL && rc != EX_SOFTWARE && rc != EX_IOERR)
            return rc; /* configuration: retrying will not help */
    }
    return 0;
}

typedef struct {
    const cv_program *p;
    const cv_config *cfg;
    const cv_run_opts *o;
    bool quiet;
    cv_metrics *m;
} program_run;

static int run_program(void *ctx)
{
    program_run *r = ctx;
    return run_once(r->p, r->cfg, r->o, r->quiet, r->m);
}

int cv_program_main(const cv_program *p, int argc, char **argv)
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
    bool once = false, quiet = false;
    cv_run_opts o = {0};
    cv_metrics *m = NULL;
    int c;

    umask(077);
    cv_log_init(argv[0]);
    cv_install_signals(); /* first: a stop may come at any moment */
    while ((c = getopt_long(argc, argv, "c:qhV", opts, NULL)) != -1) {
        switch (c) {
        case 'H': home = optarg; break;
        case 'c': conf = optarg; break;
        case '1': once = true; break;
        case 'n': o.dry_run = true; break;
        case 'i': interval_s = optarg; break;
        case 'b': batch_s = optarg; break;
        case 'p': pause_s = optarg; break;
        case 'q': quiet = true; break;
        case 'h': p->usage(stdout); return 0;
        case 'V': printf("%s %s\n", p->name, CV_VERSION); return 0;
        default: p->usage(stderr); return EX_USAGE;
        }
    }
    if (optind != argc) {
        p->usage(stderr);
        return EX_USAGE;
    }
    cv_config cfg;
    int status = 0;
    char *actor = NULL;
    if (cv_config_load_instance(&cfg, home, conf)) {
        status = EX_CONFIG;
        goto out;
    }
    cv_schedule sched = *p->schedule(&cfg);
    if (!schedule_args(&sched, interval_s, batch_s, pause_s)) {
        status = EX_USAGE;
        goto out;
    }
    o.batch = sched.batch;
    o.pause_ms = sched.pause_ms;
    if (p->check && (status = p->check(&cfg)) != 0)
        goto out;
    if (cv_fieldcrypt_init() < 0) {
        cv_err("cannot initialise libsodium");
        status = EX_SOFTWARE;
        goto out;
    }
    char *who = cv_session_actor();
    actor = cv_fmt("%s, %s", p->name, who);
    free(who);
    o.actor = actor;

    if (once || o.dry_run) {
        cv_sock_init();
        m = o.dry_run ? NULL : cv_metrics_new(&cfg, p->name, false);
        status = run_once(p, &cfg, &o, quiet, m);
        goto out;
    }
    /* a service never takes the writer lock: a store restarting under
     * supervisord must find it free */
    o.via_store_only = true;
    if (!quiet)
        cv_info("%s every %lld s, %d rows per transaction", p->doing,
                (long long)(sched.interval_ms / 1000), o.batch);
    cv_sock_init();
    m = cv_metrics_new(&cfg, p->name, true);
    program_run r = {p, &cfg, &o, quiet, m};
    status = cv_program_serve_every(sched.interval_ms, run_program, &r, m);
    if (!quiet && !status)
        cv_info("stopped");
out:
    if (m) {
        cv_metrics_destroy(&m);
        cv_sock_shutdown();
    }
    free(actor);
    cv_config_free(&cfg);
    return status;
}
