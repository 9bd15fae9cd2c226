/* admin.c - the instance: init, config check, status, compact, and the
 * dead letters. */
#include "ctxvault.h"

#include "base/util.h"
#include "net/collect.h"
#include "net/deadletter.h"
#include "ops/stepped.h"
#include "ops/instance.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cmd_init(cmd_ctx *c, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        cv_err("usage: ctxvault init");
        return EX_USAGE;
    }
    return cv_instance_init(&c->cfg);
}

int cmd_config(cmd_ctx *c, int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "check") != 0) {
        cv_err("usage: ctxvault config check");
        return EX_USAGE;
    }
    /* the config itself was checked when loaded; now the policy */
    int problems = 0;
    cv_policy *pol = cv_policy_load(c->cfg.policy_file, true, &problems);
    cv_policy_destroy(&pol);
    if (problems) {
        cv_err("%d problem%s in %s", problems, problems == 1 ? "" : "s",
               c->cfg.policy_file);
        return EX_CONFIG;
    }
    printf("%s: ok\n%s: ok\n",
           c->cfg.config_file ? c->cfg.config_file : "built-in configuration",
           access(c->cfg.policy_file, F_OK) == 0 ? c->cfg.policy_file
                                                 : "built-in policy");
    return 0;
}

/* The health summary, as ctxvault-metrics sees it; --json: the health
 * record. */
int cmd_status(cmd_ctx *c, int argc, char **argv)
{
    bool as_json = argc == 2 && strcmp(argv[1], "--json") == 0;
    if (argc != 1 && !as_json) {
        cv_err("usage: ctxvault status [--json]");
        return EX_USAGE;
    }
    char err[512], mine[CV_INSTANCE_ID_LEN + 1], theirs[64];
    int code = 0;
    if (cv_instance_id(&c->cfg, true, mine, err, sizeof err) < 0) {
        cv_err("%s", err);
        return EX_CONFIG;
    }
    /* port auto: the listener of this instance's ctxvault-metrics is where
     * it wrote it; a fixed port is where the configuration says */
    const char *listen = c->cfg.metrics_listen, *colon = strrchr(listen, ':');
    char *addr_file = cv_fmt("%s/metrics.listen", c->cfg.run_dir), *found = NULL;
    if (colon && !strcmp(colon + 1, "0")) {
        cv_err("ctxvault-metrics serves no HTTP here ([metrics] listen %s: port 0)",
               listen);
        free(addr_file);
        return EX_UNAVAILABLE;
    }
    if (colon && !strcmp(colon + 1, "auto")) {
        found = cv_read_file(addr_file, 256, NULL);
        if (!found) {
            cv_err("ctxvault-metrics of %s is not serving: no %s (start the "
                   "pipeline: tools/supervise.sh start)", c->cfg.home, addr_file);
            free(addr_file);
            return EX_UNAVAILABLE;
        }
        found[strcspn(found, "\r\n")] = '\0';
        listen = found;
    }
    free(addr_file);
    char *page = cv_collect_fetch(listen,
                                  as_json ? "/status?format=json" : "/status",
                                  5000, &code, theirs, sizeof theirs, err, sizeof err);
    if (!page) {
        cv_err("%s (is ctxvault-metrics running? [metrics] listen)", err);
        free(found);
        return EX_UNAVAILABLE;
    }
    if (strcmp(theirs, mine) != 0) {
        /* a listener of another instance on this host: its numbers are not
         * this instance's */
        cv_err("the ctxvault-metrics on %s serves %s%s, not this instance "
               "(%s at %s): refusing to report its numbers",
               listen, *theirs ? "instance " : "no instance id", theirs, mine,
               c->cfg.home);
        free(page);
        free(found);
        return EX_UNAVAILABLE;
    }
    bool ok = strncmp(page, "ctxvault: ok", 12) == 0;
    if (as_json) {
        json_t *r = json_loads(page, 0, NULL);
        const char *st = json_string_value(json_object_get(r, "status"));
        ok = st && !strcmp(st, "ok");
        if (!st) {
            cv_err("ctxvault-metrics on %s answered /status?format=json with "
                   "no health record (HTTP %d; an older version?)",
                   listen, code);
            json_decref(r);
            free(page);
            free(found);
            return EX_UNAVAILABLE;
        }
        json_decref(r);
    }
    int rc = fputs(page, stdout) == EOF || fflush(stdout) == EOF ? EX_IOERR : 0;
    /* degraded: 69, so a script can act on it */
    if (!rc && !ok)
        rc = EX_UNAVAILABLE;
    free(page);
    free(found);
    return rc;
}

/* compact [--pages N] [--max-ms N]: the run (lib/ops/compact.c) and its
 * summary. */
int cmd_compact(cmd_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"pages", required_argument, NULL, 'p'},
        {"max-ms", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    int64_t pages = 0, max_ms = 0;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int64_t *dst = o == 'p' ? &pages : o == 'm' ? &max_ms : NULL;
        if (!dst || !cv_parse_int(optarg, 1, o == 'p' ? 100000 : 10000, dst)) {
            cv_err("usage: ctxvault compact [--pages N (1 to 100000)] "
                   "[--max-ms N (1 to 10000)]");
            return EX_USAGE;
        }
    }
    if (optind != argc) {
        cv_err("usage: ctxvault compact [--pages N] [--max-ms N]");
        return EX_USAGE;
    }
    int status = 0;
    cv_session *s = need_writer(c, &status);
    if (!s)
        return status;
    cv_stepped_compact_totals t;
    status = cv_stepped_compact(s, pages, max_ms, &t);
    cv_session_close(&s);
    if (status || !t.requests)
        return status;
    json_t *out = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "auto_vacuum", t.auto_vacuum, "freed", (json_int_t)t.freed,
        "freelist_before", (json_int_t)t.freelist_before,
        "freelist_after", (json_int_t)t.freelist_after,
        "pages_before", (json_int_t)t.pages_before,
        "pages_after", (json_int_t)t.pages_after,
        "requests", (json_int_t)t.requests, "ms", (json_int_t)t.ms);
    char *text = json_dumps(out, CV_JSON_DUMP);
    json_decref(out);
    status = print_line(text);
    if (*t.message) {
        /* nothing can be given back in steps: say so, and how */
        cv_err("%s", t.message);
        status = EX_DATAERR;
    }
    return status;
}

int cmd_deadletter(cmd_ctx *c, int argc, char **argv)
{
    static const char *const all[] = {"ingest", "encrypt", "store", NULL};
    bool decrypt = false;
    const char *progs[8];
    int np = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--decrypt") == 0) {
            decrypt = true;
        } else if (argv[i][0] != '-' && np < 8 &&
                   (!strcmp(argv[i], "ingest") || !strcmp(argv[i], "encrypt") ||
                    !strcmp(argv[i], "store"))) {
            progs[np++] = argv[i];
        } else {
            cv_err("usage: ctxvault deadletter [--decrypt] [ingest|encrypt|store...]");
            return EX_USAGE;
        }
    }
    if (np == 0)
        for (np = 0; all[np]; np++)
            progs[np] = all[np];
    char err[1024];
    if (decrypt) {
        if (cv_fieldcrypt_init() < 0)
            return EX_SOFTWARE;
        c->kr = cv_keyring_load(c->cfg.keyring_file, err, sizeof err);
        if (!c->kr) {
            cv_err("%s", err);
            return EX_CONFIG;
        }
    }
    int rc = 0;
    for (int i = 0; i < np && !rc; i++)
        rc = cv_deadletter_show(c->cfg.deadletter_dir, progs[i], c->kr, stdout);
    return rc;
}
