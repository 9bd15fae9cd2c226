/* program.h - every ctxvault program's life: the options all of them take
 * (--home, -c, -q, --help, --version) beside its own, the configuration,
 * a clean stop on SIGTERM/SIGINT, libsodium and the keyring, the sockets
 * and the metrics a run asks for, and their release. A program's main is
 * its usage text, its options table and one cv_program_main; its job is
 * the run, in lib/. */
#ifndef CV_PROGRAM_H
#define CV_PROGRAM_H

#include "base/config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct cv_keyring;
struct cv_metrics;

typedef enum {
    CV_PROGRAM_OPT_FLAG,   /* bool *: true */
    CV_PROGRAM_OPT_UNSET,  /* bool *: false (--no-verify) */
    CV_PROGRAM_OPT_STR,    /* const char **: the argument */
    CV_PROGRAM_OPT_FUNC,   /* parse(option, argument, target) */
    CV_PROGRAM_OPT_EXIT,   /* act(): the program ends with its status */
} cv_program_opt_kind;

typedef struct {
    const char *name;      /* the long option, without "--" */
    cv_program_opt_kind kind;
    void *target;
    /* CV_PROGRAM_OPT_FUNC: false (having said why) ends with EX_USAGE */
    bool (*parse)(const char *opt, const char *arg, void *target);
    int (*act)(void);      /* CV_PROGRAM_OPT_EXIT */
    char short_name;       /* a one-letter alias taking the same argument */
} cv_program_opt;

/* The rows of an options table. */
#define CV_PROGRAM_FLAG(n, t) \
    {.name = (n), .kind = CV_PROGRAM_OPT_FLAG, .target = (t)}
#define CV_PROGRAM_UNSET(n, t) \
    {.name = (n), .kind = CV_PROGRAM_OPT_UNSET, .target = (t)}
#define CV_PROGRAM_STR(n, t) \
    {.name = (n), .kind = CV_PROGRAM_OPT_STR, .target = (t)}
#define CV_PROGRAM_FUNC(n, f, t) \
    {.name = (n), .kind = CV_PROGRAM_OPT_FUNC, .parse = (f), .target = (t)}
#define CV_PROGRAM_EXIT(n, f) \
    {.name = (n), .kind = CV_PROGRAM_OPT_EXIT, .act = (f)}
#define CV_PROGRAM_END {.name = NULL}

/* What a program needs before its run (a keyring implies libsodium). */
enum {
    CV_PROGRAM_NEEDS_SODIUM = 1,      /* or EX_SOFTWARE */
    CV_PROGRAM_NEEDS_KEYRING = 2,     /* loaded, or EX_CONFIG saying why */
    CV_PROGRAM_TRIES_KEYRING = 4,     /* loaded, or kr NULL and kr_err why */
};

typedef struct cv_program cv_program;

/* One run of a program. */
typedef struct {
    const cv_program *p;
    cv_config cfg;
    const char *conf;          /* -c FILE, or NULL */
    bool quiet;                /* -q */
    int argc;                  /* the operands */
    char **argv;
    int64_t started_ms;        /* cv_mono_ms() at the start */
    struct cv_keyring *kr;     /* CV_PROGRAM_NEEDS_KEYRING, _TRIES_KEYRING */
    char kr_err[512];
    struct cv_metrics *m;      /* cv_program_metrics */
    bool sockets;              /* cv_program_sockets was called */
    bool stopped_line;         /* a service: "stopped" after a clean run */
} cv_program_env;

struct cv_program {
    const char *name;          /* "ctxvault-store": --version, metrics */
    void (*usage)(FILE *f);
    const cv_program_opt *opts; /* its own options, ending with {NULL} */
    unsigned needs;            /* CV_PROGRAM_NEEDS_*, _TRIES_* */
    /* the operands and the options together, before the configuration:
     * 0, or a status having said why (NULL: no operands taken) */
    int (*check)(const cv_program_env *e, void *args);
    /* the job: a sysexits status */
    int (*run)(cv_program_env *e, void *args);
    void *args;                /* what opts fill, for check and run */
};

/* The program's main: umask 077, the log, the signals, the options (a
 * bad one prints the usage on stderr: EX_USAGE), check, the configuration
 * (EX_CONFIG), what p->needs, the run, and everything released. */
int cv_program_main(const cv_program *p, int argc, char **argv);

/* The usage text's lines for --home, -c, -q, --help and --version, each
 * description at column width (after the two spaces of indent); quiet
 * says what -q leaves out. */
void cv_program_usage_common(FILE *f, int width, const char *quiet);

/* The sockets (CZMQ, our signal handlers kept), released after the run. */
void cv_program_sockets(cv_program_env *e);
/* The sockets and the program's metrics publisher (a supervised
 * service's when service). */
struct cv_metrics *cv_program_metrics(cv_program_env *e, bool service);

/* A service's loop: run(ctx) every interval_ms until SIGTERM, the first
 * one interval after the start (a restart loop must not become a run
 * loop), publishing m (may be NULL) every report interval meanwhile, so a
 * service with a daily run is not taken for a silent one. A run that
 * finds no store (EX_TEMPFAIL) is tried again in 5 s, one that fails
 * (EX_SOFTWARE, EX_IOERR) at the next tick; 0, or the status of a run that
 * retrying will not help. */
int cv_program_serve_every(int64_t interval_ms, int (*run)(void *ctx), void *ctx,
                           struct cv_metrics *m);

#endif
