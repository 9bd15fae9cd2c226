/* ctxvault-encrypt - apply the field policy to NDJSON events: encrypt,
 * pseudonymise, generalise, round, drop. A line it cannot process is
 * dead-lettered, never passed on: nothing leaves this filter unprotected. */
#include "config.h"
#include "deadletter.h"
#include "encrypt_serve.h"
#include "fieldcrypt.h"
#include "keyring.h"
#include "ndjson.h"
#include "policy.h"
#include "protect.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ctxvault-encrypt [--home DIR] [-c FILE] [--policy FILE] [--serve]\n"
        "\n"
        "Read NDJSON events on stdin, apply the field policy to each and\n"
        "write the protected events to stdout. With --serve, take event\n"
        "messages on the instance's encrypt endpoint and pass them on to\n"
        "store's, until SIGTERM.\n"
        "\n"
        "  --serve          socket mode: [pipeline] encrypt -> store\n"
        "  --home DIR       the instance (default $CTXVAULT_HOME or ~/.ctxvault)\n"
        "  -c FILE          configuration file (default HOME/ctxvault.conf)\n"
        "  --policy FILE    policy file (default: the instance's, else built in)\n"
        "  -q, --quiet      no summary on stderr\n"
        "  -h, --help       this help\n"
        "  -V, --version    the version\n"
        "\n"
        "Exit status: 0 all events processed (or --serve stopped by SIGTERM),\n"
        "65 some lines rejected (see the\n"
        "dead-letter file), 74 input or output failed, 78 configuration,\n"
        "policy or keyring problem.\n");
}

typedef struct {
    cv_protect *pr;
    cv_deadletter *dl;
    uint64_t passed;
} filter;

/* Check and protect one line. 0 when written, 1 when dead-lettered, or
 * EX_IOERR when stdout failed. */
static int process(filter *f, uint64_t lineno, const char *line, size_t len)
{
    char reason[512], id[8];
    const char *out;
    size_t n;
    if (cv_protect_line(f->pr, line, len, &out, &n, id, sizeof id, reason,
                        sizeof reason) != 0) {
        cv_deadletter_put(f->dl, "stdin", lineno, reason, line, len, false);
        return 1;
    }
    /* the line and its newline in one write (out has room for it) */
    ((char *)out)[n++] = '\n';
    if (fwrite(out, 1, n, stdout) != n) {
        cv_err("cannot write to stdout: %s", strerror(errno));
        return EX_IOERR;
    }
    f->passed++;
    return 0;
}

static int encrypt_line(void *arg, const char *source, uint64_t lineno,
                        const char *line, size_t len)
{
    (void)source;
    return process(arg, lineno, line, len) == EX_IOERR ? EX_IOERR : 0;
}

static int run(filter *f, size_t max_line)
{
    cv_progress progress;
    cv_progress_init(&progress, "encrypt");
    int status = cv_ndjson_each(0, "stdin", max_line, f->dl, &progress,
                                encrypt_line, f);
    cv_progress_done(&progress);
    return status;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"policy", required_argument, NULL, 'P'},
        {"quiet", no_argument, NULL, 'q'},
        {"serve", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *home = NULL, *conf = NULL, *policy_file = NULL;
    bool quiet = false, serve = false;
    int c;

    umask(077);
    cv_log_init(argv[0]);
    cv_install_signals(); /* first: a stop may come at any moment */
    while ((c = getopt_long(argc, argv, "c:qhV", opts, NULL)) != -1) {
        switch (c) {
        case 'H': home = optarg; break;
        case 'c': conf = optarg; break;
        case 'P': policy_file = optarg; break;
        case 'q': quiet = true; break;
        case 'S': serve = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ctxvault-encrypt %s\n", CV_VERSION); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (optind != argc) {
        cv_err("unexpected argument '%s': events are read from stdin",
               argv[optind]);
        usage(stderr);
        return EX_USAGE;
    }

    int status = EX_CONFIG;
    cv_keyring *kr = NULL;
    cv_policy *policy = NULL;
    filter f = {0};
    cv_config cfg;
    if (cv_config_load(&cfg, home, conf) > 0)
        goto out;
    if (cv_fieldcrypt_init() < 0) {
        cv_err("cannot initialise libsodium");
        status = EX_SOFTWARE;
        goto out;
    }
    char err[512];
    kr = cv_keyring_load(cfg.keyring_file, err, sizeof err);
    if (!kr) {
        struct stat st;
        if (stat(cfg.keyring_file, &st) < 0 && errno == ENOENT)
            cv_err("cannot load keyring: %s; run `ctxvault init` to create "
                   "the instance", err);
        else
            cv_err("cannot load keyring: %s", err);
        goto out;
    }
    /* the instance's policy file may be absent (built-in rules); one named
     * on the command line must exist */
    int problems = 0;
    policy = cv_policy_load(policy_file ? policy_file : cfg.policy_file,
                            policy_file == NULL, &problems);
    if (!policy) /* unreadable: cv_policy_load said why */
        goto out;
    if (problems > 0) {
        cv_err("policy %s has %d problem%s; no events processed",
               policy_file ? policy_file : cfg.policy_file, problems,
               problems == 1 ? "" : "s");
        goto out;
    }
    f.pr = cv_protect_new(policy, kr);
    f.dl = cv_deadletter_open(cfg.deadletter_dir, "encrypt", kr);
    if (!f.dl) {
        cv_err("cannot open dead-letter file in %s: %s", cfg.deadletter_dir,
               strerror(errno));
        status = EX_CANTCREAT;
        goto out;
    }
    if (serve) {
        status = cv_encrypt_serve(&cfg, f.pr, f.dl, quiet);
        if (!status && cv_deadletter_failed(f.dl))
            status = EX_IOERR;
        goto out;
    }
    static char outbuf[1 << 20];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    cv_grow_pipe(1);

    status = run(&f, (size_t)cv_config_stage_max_line(&cfg));
    if (fflush(stdout) != 0 && !status) {
        cv_err("cannot write to stdout: %s", strerror(errno));
        status = EX_IOERR;
    }
    uint64_t rejected = cv_deadletter_count(f.dl);
    if (rejected && !quiet)
        cv_warn("%llu of %llu events rejected; they are in %s",
                (unsigned long long)rejected,
                (unsigned long long)(f.passed + rejected),
                cv_deadletter_path(f.dl));
    if (!status && cv_deadletter_failed(f.dl))
        status = EX_IOERR; /* a rejected line is not even in the file */
    if (!status && rejected)
        status = EX_DATAERR;
out:
    cv_deadletter_close(&f.dl);
    cv_protect_destroy(&f.pr);
    cv_policy_destroy(&policy);
    cv_keyring_destroy(&kr);
    cv_config_free(&cfg);
    return status;
}
