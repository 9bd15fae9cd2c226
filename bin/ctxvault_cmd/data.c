/* data.c - what is stored: query, get, export, stats, verify, audit; and
 * the changes to it that go through store: delete, rectify. */
#include "ctxvault.h"

#include "base/time.h"
#include "base/util.h"
#include "ctx/ctxops.h"
#include "net/control.h"
#include "net/health.h"
#include "ops/export.h"
#include "ops/query.h"
#include "ops/scrub.h"
#include "storage/audit.h"
#include "storage/journal.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_query(cmd_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'},
        {"kind", required_argument, NULL, 'k'},
        {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 't'},
        {"limit", required_argument, NULL, 'n'},
        {"oldest-first", no_argument, NULL, 'o'},
        {"decrypt", no_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    cv_query q = {.since = -1, .until = -1, .limit = -1};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u': q.user = optarg; break;
        case 'k': q.kind = optarg; break;
        case 's': if (!parse_time_opt("--since", optarg, &q.since)) return EX_USAGE; break;
        case 't': if (!parse_time_opt("--until", optarg, &q.until)) return EX_USAGE; break;
        case 'n':
            if (!cv_parse_int(optarg, 0, INT64_MAX, &q.limit)) {
                cv_err("--limit '%s' is not a number", optarg);
                return EX_USAGE;
            }
            break;
        case 'o': q.oldest_first = true; break;
        case 'd': q.decrypt = true; break;
        default: return EX_USAGE;
        }
    }
    if (!q.user || !*q.user || optind != argc) {
        cv_err("usage: ctxvault query --user U [--kind K] [--since T] "
               "[--until T] [--limit N] [--oldest-first] [--decrypt]");
        return EX_USAGE;
    }
    int rc = need_reader(c, true);
    return rc ? rc : cv_query_query(c->db, c->pol, c->kr, &q, stdout);
}

int cmd_get(cmd_ctx *c, int argc, char **argv)
{
    bool decrypt = false;
    const char *id = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--decrypt") == 0)
            decrypt = true;
        else if (!id && argv[i][0] != '-')
            id = argv[i];
        else {
            cv_err("usage: ctxvault get ID [--decrypt]");
            return EX_USAGE;
        }
    }
    if (!id) {
        cv_err("usage: ctxvault get ID [--decrypt]");
        return EX_USAGE;
    }
    int rc = need_reader(c, false);
    return rc ? rc : cv_query_get(c->db, c->kr, id, decrypt, stdout);
}

int cmd_export(cmd_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'},
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    static const char use[] =
        "usage: ctxvault export --user U --format json|csv [-o FILE]";
    const char *user = NULL, *format = NULL, *path = NULL;
    cv_export_format fmt;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        switch (o) {
        case 'u': user = optarg; break;
        case 'f': format = optarg; break;
        case 'o': path = optarg; break;
        default: cv_err("%s", use); return EX_USAGE;
        }
    }
    if (!user || !*user || !format || (path && !*path) || optind != argc) {
        cv_err("%s", use);
        return EX_USAGE;
    }
    if (!cv_export_format_parse(format, &fmt)) {
        cv_err("--format '%s' is neither json nor csv", format);
        return EX_USAGE;
    }
    int rc = need_reader(c, true);
    int64_t rows = 0;
    if (!rc)
        rc = cv_export_user(c->db, c->pol, c->kr, user, fmt, path, stdout, &rows);
    if (rc)
        return rc;
    /* the audit trail records that it happened, never what it held */
    json_t *reply = NULL;
    json_t *req = json_pack("{s:s, s:s, s:s, s:I, s:{s:s, s:b}}", "op", "audit",
                            "action", "export", "subject", user, "rows",
                            (json_int_t)rows, "detail", "format", format,
                            "to_file", path != NULL);
    rc = change(c, req, &reply);
    json_decref(req);
    json_decref(reply);
    if (rc)
        cv_err("the export was written, but its audit entry could not be");
    return rc;
}

int cmd_delete(cmd_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'},
        {NULL, 0, NULL, 0},
    };
    const char *user = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o != 'u')
            return EX_USAGE;
        user = optarg;
    }
    if (!user || !*user || optind != argc) {
        cv_err("usage: ctxvault delete --user U");
        return EX_USAGE;
    }
    json_t *reply = NULL;
    json_t *req = json_pack("{s:s, s:s}", "op", "erase", "user", user);
    int rc = change(c, req, &reply);
    json_decref(req);
    if (rc)
        return rc;
    /* the receipt, whole: key_destroyed and the audit entry included */
    int64_t n = json_integer_value(json_object_get(reply, "deleted"));
    json_object_del(reply, "ok");
    rc = print_line(json_dumps(reply, CV_JSON_DUMP));
    json_decref(reply);
    if (rc)
        return rc;
    if (n == 0) {
        cv_err("no data held about user %s", user);
        return EX_NOINPUT;
    }
    return 0;
}

/* "path=value": value is JSON when it parses as JSON, else a string. */
static bool parse_set(const char *arg, json_t *set)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        cv_err("--set '%s' is not path=value", arg);
        return false;
    }
    char *path = strndup(arg, (size_t)(eq - arg));
    json_error_t je;
    json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, &je);
    if (!v)
        v = json_string(eq + 1);
    bool ok = v && json_object_set_new(set, path, v) == 0;
    if (!ok)
        cv_err("--set '%s': the value is not valid UTF-8", arg);
    free(path);
    return ok;
}

int cmd_rectify(cmd_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"set", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    json_t *set = json_object();
    int o, rc = EX_USAGE;
    optind = 0; /* glibc: start afresh, so the ID may come first */
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o != 's' || !parse_set(optarg, set))
            goto out;
    }
    if (optind != argc - 1 || json_object_size(set) == 0) {
        cv_err("usage: ctxvault rectify ID --set path=value [--set ...]");
        goto out;
    }
    json_t *reply = NULL;
    json_t *req = json_pack("{s:s, s:s, s:O}", "op", "rectify", "id",
                            argv[optind], "set", set);
    rc = change(c, req, &reply);
    json_decref(req);
    if (!rc)
        printf("{\"rectified\":\"%s\",\"fields\":%lld}\n", argv[optind],
               (long long)json_integer_value(json_object_get(reply, "fields")));
    json_decref(reply);
out:
    json_decref(set);
    return rc;
}

/* verify [--scrub] */
int cmd_verify(cmd_ctx *c, int argc, char **argv)
{
    bool scrub = argc == 2 && strcmp(argv[1], "--scrub") == 0;
    if (argc != 1 && !scrub) {
        cv_err("usage: ctxvault verify [--scrub]");
        return EX_USAGE;
    }
    int rc = need_reader(c, scrub);
    if (rc)
        return rc;
    rc = cv_query_verify(c->db, c->kr, stdout);
    if (scrub) {
        int src = cv_scrub_verify(c->db, c->pol, c->kr, cv_now_ms(), stdout);
        rc = rc ? rc : src;
    }
    /* the result, for store's reports (the health record's integrity) */
    if ((rc == 0 || rc == EX_DATAERR) &&
        cv_health_verify_save(&c->cfg, cv_now_ms(), rc) < 0)
        cv_warn("cannot keep the verify result in %s/verify.json: %s",
                c->cfg.run_dir, strerror(errno));
    return rc;
}

int cmd_audit(cmd_ctx *c, int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "verify") != 0 && strcmp(argv[1], "list") != 0)) {
        cv_err("usage: ctxvault audit verify|list");
        return EX_USAGE;
    }
    int rc = need_reader(c, false);
    if (rc)
        return rc;
    if (strcmp(argv[1], "list") == 0)
        return cv_audit_list(c->db, stdout);
    int64_t n;
    rc = cv_audit_verify(c->db, c->kr, &n);
    printf("{\"audit_entries\":%lld,\"intact\":%s}\n", (long long)n,
           rc == 0 ? "true" : "false");
    return rc;
}

/* The replay journal's extent beside the database's own figures. */
static int print_stats(cmd_ctx *c, json_t *stats)
{
    cv_journal_info j;
    if (cv_journal_stat(c->cfg.journal_dir, &j) == 0)
        json_object_set_new(stats, "journal", json_pack("{s:I, s:I, s:i, s:I}",
            "first_batch", (json_int_t)j.first, "last_batch", (json_int_t)j.last,
            "segments", j.segments, "bytes", (json_int_t)j.bytes));
    int rc = cv_query_stats_print(stats, stdout);
    json_decref(stats);
    return rc;
}

/* Ask the running store when one answers, else read the file (the same
 * code store runs, lib/ctx/ctxops.c). */
int cmd_stats(cmd_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    json_t *req = json_pack("{s:s}", "op", "stats");
    int64_t ms;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if ((o != 's' && o != 't') ||
            !parse_time_opt(o == 's' ? "--since" : "--until", optarg, &ms)) {
            cv_err("usage: ctxvault stats [--since T] [--until T]");
            json_decref(req);
            return EX_USAGE;
        }
        json_object_set_new(req, o == 's' ? "since" : "until", json_string(optarg));
    }
    if (optind != argc) {
        cv_err("usage: ctxvault stats [--since T] [--until T]");
        json_decref(req);
        return EX_USAGE;
    }
    bool period = json_object_size(req) > 1;
    json_t *reply = NULL;
    cv_control *ctl = need_control(c, 200);
    if (ctl) {
        char err[512];
        reply = cv_control_call(ctl, req, 10000, err, sizeof err);
        cv_control_destroy(&ctl);
        if (reply && !json_is_true(json_object_get(reply, "ok"))) {
            cv_warn("store could not answer (%s); reading the file",
                    json_string_value(json_object_get(reply, "error")));
            json_decref(reply);
            reply = NULL;
        } else if (!reply) {
            cv_warn("%s; reading the file", err);
        }
    }
    int rc = 0;
    if (!reply && !(rc = need_reader(c, false))) {
        cv_modelcache_counters none = {0};
        cv_ctxops ops = {.db = c->db, .cache = &none};
        reply = cv_ctxops_answer(&ops, req);
    }
    json_decref(req);
    if (rc)
        return rc;
    if (!json_is_true(json_object_get(reply, "ok"))) {
        cv_err("%s", json_string_value(json_object_get(reply, "error")));
        json_decref(reply);
        return EX_IOERR;
    }
    json_object_del(reply, "ok");
    if (!period)
        return print_stats(c, reply);
    rc = cv_query_stats_print(reply, stdout);
    json_decref(reply);
    return rc;
}
