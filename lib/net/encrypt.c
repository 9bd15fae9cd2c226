/* encrypt.c - ctxvault-encrypt's filter and its keys. See encrypt.h. */
#include "net/encrypt.h"

#include "crypto/datakeys.h"
#include "crypto/keyring.h"
#include "net/deadletter.h"
#include "net/encrypt_serve.h"
#include "net/metrics.h"
#include "net/ndjson.h"
#include "privacy/policy.h"
#include "privacy/fieldpolicy.h"
#include "base/progress.h"
#include "base/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int cv_encrypt_check(const cv_program_env *e, void *args)
{
    (void)args;
    if (e->argc == 0)
        return 0;
    cv_err("unexpected argument '%s': events are read from stdin", e->argv[0]);
    e->p->usage(stderr);
    return EX_USAGE;
}

int cv_encrypt_main(cv_program_env *e, void *args)
{
    const cv_encrypt_args *a = args;
    const char *policy_file = a->policy_file;
    const cv_config *cfg = &e->cfg;
    int status = EX_CONFIG;
    cv_keyring *kr = NULL;
    cv_datakeys *ds = NULL;
    cv_policy *policy = NULL;
    cv_metrics *mx = NULL;
    filter f = {0};
    /* the instance's policy file may be absent (built-in rules); one named
     * on the command line must exist */
    int problems = 0;
    policy = cv_policy_load(policy_file ? policy_file : cfg->policy_file,
                            policy_file == NULL, &problems);
    if (!policy) /* unreadable: cv_policy_load said why */
        goto out;
    if (problems > 0) {
        cv_err("policy %s has %d problem%s; no events processed",
               policy_file ? policy_file : cfg->policy_file, problems,
               problems == 1 ? "" : "s");
        goto out;
    }
    char err[700];
    if (a->serve) {
        mx = cv_program_metrics(e, true);
        kr = wait_for_keys(cfg, policy, &ds, mx);
        if (!kr) { /* stopped while waiting */
            status = 0;
            goto out;
        }
    } else if (!(kr = load_keys(cfg, policy, &ds, err, sizeof err))) {
        cv_err("%s", err);
        goto out;
    }
    if (ds)
        cv_datakeys_attach(ds, kr);
    f.pr = cv_fieldpolicy_new(policy, kr, ds);
    f.dl = cv_deadletter_open(cfg->deadletter_dir, "encrypt", kr);
    if (!f.dl) {
        cv_err("cannot open dead-letter file in %s: %s", cfg->deadletter_dir,
               strerror(errno));
        status = EX_CANTCREAT;
        goto out;
    }
    if (a->serve) {
        status = cv_encrypt_serve(cfg, f.pr, f.dl, mx, e->quiet);
        if (!status && cv_deadletter_failed(f.dl))
            status = EX_IOERR;
        goto out;
    }
    f.cap = OUT_BYTES;
    f.out = cv_malloc(f.cap);
    cv_grow_pipe(1);

    status = run(&f, (size_t)cv_config_stage_max_line(cfg));
    uint64_t rejected = cv_deadletter_count(f.dl);
    if (rejected && !e->quiet)
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
    cv_fieldpolicy_destroy(&f.pr);
    free(f.out);
    cv_datakeys_destroy(&ds);
    cv_policy_destroy(&policy);
    cv_keyring_destroy(&kr);
    return status;
}
