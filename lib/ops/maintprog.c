/* maintprog.c - a maintenance program's main. See maintprog.h. */
#include "ops/maintprog.h"

#include "net/metrics.h"
#include "net/program.h"
#include "ops/session.h"
#include "base/util.h"

#include <stdlib.h>

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

static int run_once(const cv_maintprog *p, const cv_config *cfg,
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

typedef struct {
    const cv_maintprog *p;
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

void cv_maintprog_usage_options(FILE *f, const char *dry_run,
                                const char *interval_default)
{
    fprintf(f,
        "\n"
        "  --once           one run, then exit\n"
        "  --dry-run        %s\n"
        "  --interval D     between runs of the service (default %s); the\n"
        "                   first run is one interval after the start\n"
        "  --batch N        rows per transaction (default 1000)\n"
        "  --pause D        between transactions (default 1ms)\n",
        dry_run, interval_default);
    cv_program_usage_common(f, 17, "no summary on stderr");
}

typedef struct {
    const cv_maintprog *p;
    const char *interval, *batch, *pause;
    bool once, dry_run;
} maint_args;

static int maint_run(cv_program_env *e, void *args)
{
    maint_args *a = args;
    const cv_maintprog *p = a->p;
    cv_run_opts o = {.dry_run = a->dry_run};
    cv_schedule sched = *p->schedule(&e->cfg);
    if (!schedule_args(&sched, a->interval, a->batch, a->pause))
        return EX_USAGE;
    o.batch = sched.batch;
    o.pause_ms = sched.pause_ms;
    int status;
    if (p->check && (status = p->check(&e->cfg)) != 0)
        return status;
    char *who = cv_session_actor();
    char *actor = cv_fmt("%s, %s", p->name, who);
    free(who);
    o.actor = actor;

    if (a->once || o.dry_run) {
        cv_program_sockets(e);
        cv_metrics *m = o.dry_run ? NULL : cv_program_metrics(e, false);
        status = run_once(p, &e->cfg, &o, e->quiet, m);
    } else {
        /* a service never takes the writer lock: a store restarting under
         * supervisord must find it free */
        o.via_store_only = true;
        if (!e->quiet)
            cv_info("%s every %lld s, %d rows per transaction", p->doing,
                    (long long)(sched.interval_ms / 1000), o.batch);
        cv_metrics *m = cv_program_metrics(e, true);
        e->stopped_line = true;
        program_run r = {p, &e->cfg, &o, e->quiet, m};
        status = cv_program_serve_every(sched.interval_ms, run_program, &r, m);
    }
    free(actor);
    return status;
}

int cv_maintprog_main(const cv_maintprog *p, int argc, char **argv)
{
    maint_args a = {.p = p};
    const cv_program_opt opts[] = {
        CV_PROGRAM_FLAG("once", &a.once),
        CV_PROGRAM_FLAG("dry-run", &a.dry_run),
        CV_PROGRAM_STR("interval", &a.interval),
        CV_PROGRAM_STR("batch", &a.batch),
        CV_PROGRAM_STR("pause", &a.pause),
        CV_PROGRAM_END,
    };
    const cv_program prog = {
        .name = p->name, .usage = p->usage, .opts = opts,
        .needs = CV_PROGRAM_NEEDS_SODIUM, .run = maint_run, .args = &a,
    };
    return cv_program_main(&prog, argc, argv);
}
