/* program.c - every program's main. See program.h. */
#include "net/program.h"

#include "crypto/fieldcrypt.h"
#include "crypto/keyring.h"
#include "net/metrics.h"
#include "net/sock.h"
#include "base/util.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define OPTS_MAX 32
#define OPT_OWN 256 /* getopt's value of the program's option i: OPT_OWN + i */

static bool takes_arg(const cv_program_opt *o)
{
    return o->kind == CV_PROGRAM_OPT_STR || o->kind == CV_PROGRAM_OPT_FUNC;
}

/* One of the program's own options: -1 to go on, or the status to end
 * with. */
static int own_option(const cv_program_opt *o, const char *arg)
{
    char opt[64];
    switch (o->kind) {
    case CV_PROGRAM_OPT_FLAG: *(bool *)o->target = true; return -1;
    case CV_PROGRAM_OPT_UNSET: *(bool *)o->target = false; return -1;
    case CV_PROGRAM_OPT_STR: *(const char **)o->target = arg; return -1;
    case CV_PROGRAM_OPT_FUNC:
        snprintf(opt, sizeof opt, "--%s", o->name);
        return o->parse(opt, arg, o->target) ? -1 : EX_USAGE;
    case CV_PROGRAM_OPT_EXIT: return o->act();
    }
    return EX_SOFTWARE;
}

/* The options into e: -1 to go on, or the status to end with. */
static int parse_options(cv_program_env *e, const char **home, int argc, char **argv)
{
    const cv_program *p = e->p;
    struct option lopts[OPTS_MAX + 5];
    char shorts[2 * OPTS_MAX + 8] = "c:qhV";
    size_t n = 0, ns = strlen(shorts);
    for (const cv_program_opt *o = p->opts; o && o->name; o++, n++) {
        if (n == OPTS_MAX)
            cv_die(EX_SOFTWARE, "%s: more than %d options", p->name, OPTS_MAX);
        lopts[n] = (struct option){o->name, takes_arg(o) ? required_argument
                                                         : no_argument,
                                   NULL, OPT_OWN + (int)n};
        if (o->short_name) {
            shorts[ns++] = o->short_name;
            if (takes_arg(o))
                shorts[ns++] = ':';
        }
    }
    shorts[ns] = '\0';
    size_t own = n;
    lopts[n++] = (struct option){"home", required_argument, NULL, 'H'};
    lopts[n++] = (struct option){"quiet", no_argument, NULL, 'q'};
    lopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    lopts[n++] = (struct option){"version", no_argument, NULL, 'V'};
    lopts[n] = (struct option){NULL, 0, NULL, 0};

    int c, st;
    while ((c = getopt_long(argc, argv, shorts, lopts, NULL)) != -1) {
        const cv_program_opt *o = NULL;
        if (c >= OPT_OWN && c < OPT_OWN + (int)own)
            o = &p->opts[c - OPT_OWN];
        for (size_t i = 0; !o && c != '?' && i < own; i++)
            if (p->opts[i].short_name == c)
                o = &p->opts[i];
        if (o) {
            if ((st = own_option(o, optarg)) >= 0)
                return st;
            continue;
        }
        switch (c) {
        case 'H': *home = optarg; break;
        case 'c': e->conf = optarg; break;
        case 'q': e->quiet = true; break;
        case 'h': p->usage(stdout); return 0;
        case 'V': printf("%s %s\n", p->name, CV_VERSION); return 0;
        default: p->usage(stderr); return EX_USAGE;
        }
    }
    e->argc = argc - optind;
    e->argv = argv + optind;
    return -1;
}

void cv_program_usage_common(FILE *f, int width, const char *quiet)
{
    fprintf(f,
            "  %-*sthe instance (default $CTXVAULT_HOME or ~/.ctxvault)\n"
            "  %-*sconfiguration file (default HOME/ctxvault.conf)\n"
            "  %-*s%s\n"
            "  %-*sthis help\n"
            "  %-*sthe version\n",
            width, "--home DIR", width, "-c FILE", width, "-q, --quiet", quiet,
            width, "-h, --help", width, "-V, --version");
}

void cv_program_sockets(cv_program_env *e)
{
    if (e->sockets)
        return;
    cv_sock_init();
    cv_install_signals(); /* again: CZMQ's set-up may reset them */
    e->sockets = true;
}

cv_metrics *cv_program_metrics(cv_program_env *e, bool service)
{
    cv_program_sockets(e);
    if (!e->m)
        e->m = cv_metrics_new(&e->cfg, e->p->name, service);
    return e->m;
}

/* What p->needs: 0 or a status. */
static int prepare(cv_program_env *e)
{
    unsigned needs = e->p->needs;
    if (!needs)
        return 0;
    if (cv_fieldcrypt_init() < 0) {
        cv_err("cannot initialise libsodium");
        return EX_SOFTWARE;
    }
    if (!(needs & (CV_PROGRAM_NEEDS_KEYRING | CV_PROGRAM_TRIES_KEYRING)))
        return 0;
    e->kr = cv_keyring_load(e->cfg.keyring_file, e->kr_err, sizeof e->kr_err);
    if (!e->kr && (needs & CV_PROGRAM_NEEDS_KEYRING)) {
        cv_err("%s", e->kr_err);
        return EX_CONFIG;
    }
    return 0;
}

int cv_program_main(const cv_program *p, int argc, char **argv)
{
    cv_program_env e = {.p = p, .started_ms = cv_mono_ms()};
    const char *home = NULL;

    umask(077);
    cv_log_init(argv[0]);
    cv_install_signals(); /* first: a stop may come at any moment */
    int status = parse_options(&e, &home, argc, argv);
    if (status >= 0)
        return status;
    if (p->check)
        status = p->check(&e, p->args);
    else if ((status = e.argc > 0 ? EX_USAGE : 0) != 0)
        p->usage(stderr);
    if (status)
        return status;
    if (cv_config_load_instance(&e.cfg, home, e.conf))
        status = EX_CONFIG;
    else if ((status = prepare(&e)) == 0)
        status = p->run(&e, p->args);
    if (e.stopped_line && !e.quiet && !status)
        cv_info("stopped");
    cv_metrics_destroy(&e.m);
    if (e.sockets)
        cv_sock_shutdown();
    cv_keyring_destroy(&e.kr);
    cv_config_free(&e.cfg);
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
