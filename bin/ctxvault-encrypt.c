/* ctxvault-encrypt - apply the field policy to NDJSON events: encrypt,
 * pseudonymise, generalise, round, drop. A line it cannot process is
 * dead-lettered, never passed on: nothing leaves this filter unprotected. */
#include "base/config.h"
#include "crypto/datakeys.h"
#include "net/deadletter.h"
#include "net/encrypt_serve.h"
#include "crypto/fieldcrypt.h"
#include "crypto/keyring.h"
#include "net/ndjson.h"
#include "privacy/policy.h"
#include "privacy/fieldpolicy.h"
#include "net/sock.h"
#include "base/util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
        "64 usage, 65 some lines rejected (see the dead-letter file), 69\n"
        "--serve cannot bind its endpoints, 70 internal error, 71 the\n"
        "sockets cannot be polled, 73 the dead-letter file cannot be\n"
        "created, 74 input or output failed, 75 the data-key store failed\n"
        "(the lines before it were written), 78 configuration, policy or\n"
        "keyring problem. With --serve, a keyring that cannot be loaded is\n"
        "waited for: nothing is taken from ingest meanwhile.\n");
}

typedef struct {
    cv_protect *pr;
    cv_deadletter *dl;
    uint64_t passed;
    char *out;         /* protected lines not yet written */
    size_t len, cap;
} filter;

#define OUT_BYTES (1 << 20)

/* Write what is buffered, once the data keys its lines were sealed under
 * are durable: no line leaves before its key could be lost. 0, EX_TEMPFAIL
 * or EX_IOERR. */
static int flush_out(filter *f)
{
    char err[512];
    if (f->len == 0)
        return 0;
    if (cv_fieldpolicy_commit(f->pr, err, sizeof err) < 0) {
        cv_err("cannot make the data keys durable, so %zu bytes of protected "
               "events were not written: %s", f->len, err);
        return EX_TEMPFAIL;
    }
    if (cv_write_all(1, f->out, f->len) < 0) {
        cv_err("cannot write to stdout: %s", strerror(errno));
        return EX_IOERR;
    }
    f->len = 0;
    return 0;
}

/* Check and protect one line. 0 when buffered, 1 when dead-lettered, or
 * EX_TEMPFAIL / EX_IOERR. */
static int process(filter *f, uint64_t lineno, const char *line, size_t len)
{
    char reason[512], id[8];
    const char *out;
    size_t n;
    int rc = cv_fieldpolicy_line(f->pr, line, len, &out, &n, id, sizeof id,
                             reason, sizeof reason);
    if (rc == 2) {
        cv_err("stdin:%llu: %s", (unsigned long long)lineno, reason);
        return EX_TEMPFAIL;
    }
    if (rc != 0) {
        cv_deadletter_put(f->dl, "stdin", lineno, reason, line, len, false);
        return 1;
    }
    if (f->len + n + 1 > f->cap) {
        int st = flush_out(f);
        if (st)
            return st;
        if (n + 1 > f->cap) {
            f->cap = n + 1;
            f->out = cv_realloc(f->out, f->cap);
        }
    }
    memcpy(f->out + f->len, out, n);
    f->out[f->len + n] = '\n';
    f->len += n + 1;
    f->passed++;
    return 0;
}

static int encrypt_line(void *arg, const char *source, uint64_t lineno,
                        const char *line, size_t len)
{
    (void)source;
    int rc = process(arg, lineno, line, len);
    return rc == EX_IOERR || rc == EX_TEMPFAIL ? rc : 0;
}

static int idle(void *arg) { return flush_out(arg); }

static int run(filter *f, size_t max_line)
{
    cv_progress progress;
    cv_progress_init(&progress, "encrypt");
    /* output waits for a full buffer only while input keeps coming, so
     * neither the events nor the data-key store's lock wait on a pause */
    int status = cv_ndjson_each_idle(0, "stdin", max_line, f->dl, &progress,
                                     encrypt_line, idle, f);
    cv_progress_done(&progress);
    int st = flush_out(f);
    return status ? status : st;
}

/* The keyring, and the data-key store when per-user keys are on. NULL
 * with a reason in err when either is unavailable. */
static cv_keyring *load_keys(const cv_config *cfg, const cv_policy *pol,
                             cv_datakeys **ds, char *err, size_t errlen)
{
    char why[512];
    cv_keyring *kr = cv_keyring_load(cfg->keyring_file, why, sizeof why);
    if (!kr) {
        struct stat st;
        if (stat(cfg->keyring_file, &st) < 0 && errno == ENOENT)
            snprintf(err, errlen, "cannot load keyring: %s; run `ctxvault "
                     "init` to create the instance", why);
        else
            snprintf(err, errlen, "cannot load keyring: %s", why);
        return NULL;
    }
    if (cfg->per_user_keys) {
        *ds = cv_datakeys_open(cfg->datakeys_file, kr, true,
                               cv_policy_ephemeral_ms(pol), err, errlen);
        if (!*ds)
            cv_keyring_destroy(&kr);
    }
    return kr;
}

/* Socket mode without keys: bind nothing, so ingest keeps its events
 * spooled, say why in the health report, and try again every second
 * until the keys come back (or a stop). */
static cv_keyring *wait_for_keys(const cv_config *cfg, const cv_policy *pol,
                                 cv_datakeys **ds, cv_metrics *mx)
{
    char err[600], last[600] = "";
    for (;;) {
        cv_keyring *kr = load_keys(cfg, pol, ds, err, sizeof err);
        if (kr) {
            if (*last)
                cv_info("keys are available again: serving");
            return kr;
        }
        if (strcmp(err, last) != 0) {
            cv_err("%s; events stay in ingest's spool until it is fixed "
                   "(trying again every second)", err);
            snprintf(last, sizeof last, "%s", err);
        }
        char reason[700];
        snprintf(reason, sizeof reason, "encryption key unavailable: %s", err);
        cv_metrics_health(mx, false, reason);
        cv_metrics_publish(mx, false);
        for (int i = 0; i < 10 && !cv_stop_requested; i++)
            usleep(100000);
        if (cv_stop_requested)
            return NULL;
    }
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
    cv_datakeys *ds = NULL;
    cv_policy *policy = NULL;
    cv_metrics *mx = NULL;
    filter f = {0};
    cv_config cfg;
    if (cv_config_load_instance(&cfg, home, conf) > 0)
        goto out;
    if (cv_fieldcrypt_init() < 0) {
        cv_err("cannot initialise libsodium");
        status = EX_SOFTWARE;
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
    char err[700];
    if (serve) {
        cv_sock_init();
        mx = cv_metrics_new(&cfg, "ctxvault-encrypt", true);
        kr = wait_for_keys(&cfg, policy, &ds, mx);
        if (!kr) { /* stopped while waiting */
            status = 0;
            goto out;
        }
    } else if (!(kr = load_keys(&cfg, policy, &ds, err, sizeof err))) {
        cv_err("%s", err);
        goto out;
    }
    if (ds)
        cv_datakeys_attach(ds, kr);
    f.pr = cv_fieldpolicy_new(policy, kr, ds);
    f.dl = cv_deadletter_open(cfg.deadletter_dir, "encrypt", kr);
    if (!f.dl) {
        cv_err("cannot open dead-letter file in %s: %s", cfg.deadletter_dir,
               strerror(errno));
        status = EX_CANTCREAT;
        goto out;
    }
    if (serve) {
        status = cv_encrypt_serve(&cfg, f.pr, f.dl, mx, quiet);
        if (!status && cv_deadletter_failed(f.dl))
            status = EX_IOERR;
        goto out;
    }
    f.cap = OUT_BYTES;
    f.out = cv_malloc(f.cap);
    cv_grow_pipe(1);

    status = run(&f, (size_t)cv_config_stage_max_line(&cfg));
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
    cv_metrics_destroy(&mx);
    if (serve)
        cv_sock_shutdown();
    cv_deadletter_close(&f.dl);
    cv_fieldpolicy_destroy(&f.pr);
    free(f.out);
    cv_datakeys_destroy(&ds);
    cv_policy_destroy(&policy);
    cv_keyring_destroy(&kr);
    cv_config_free(&cfg);
    return status;
}
