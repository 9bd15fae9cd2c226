/* context.c - the context API, through the client library
 * (include/ctxvault/cvclient.h): contexts, interactions, profiles,
 * segments, the model cache, meta, and any request (api). */
#include "ctxvault.h"

#include "base/util.h"
#include "ops/modelcache.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmd_context_save(cmd_ctx *c, int argc, char **argv);
static int cmd_context_delete(cmd_ctx *c, int argc, char **argv);
static int cmd_interactions_save(cmd_ctx *c, int argc, char **argv);

int cmd_context(cmd_ctx *c, int argc, char **argv)
{
    /* writes are subcommands (a user named "save" or "delete" is read
     * with ctxvault api) */
    if (argc > 1 && strcmp(argv[1], "save") == 0)
        return cmd_context_save(c, argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "delete") == 0)
        return cmd_context_delete(c, argc - 1, argv + 1);
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'N'},
        {"id", required_argument, NULL, 'I'},
        {"list", no_argument, NULL, 'l'},
        {"limit", required_argument, NULL, 'n'},
        {"decrypt", no_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    const char *name = NULL, *id = NULL;
    bool list = false, decrypt = false;
    int64_t limit = 0;
    int o;
    optind = 0; /* USER may come before the options: GNU getopt starts again, permuting */
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'N': name = optarg; break;
        case 'I': id = optarg; break;
        case 'l': list = true; break;
        case 'n':
            if (!cv_parse_int(optarg, 1, 1000, &limit)) {
                cv_err("--limit '%s' is not a number from 1 to 1000", optarg);
                return EX_USAGE;
            }
            break;
        case 'd': decrypt = true; break;
        default: return EX_USAGE;
        }
    }
    /* by id, USER is optional: a check that the context is that user's */
    bool user_ok = id ? optind >= argc - 1 : optind == argc - 1;
    const char *user = optind < argc ? argv[optind] : NULL;
    if (!user_ok || (user && !*user) || (list && name) || (limit && !list) ||
        (id && (name || list)) || (id && !*id)) {
        cv_err("usage: ctxvault context USER [--name N] [--list [--limit N]] "
               "[--decrypt], or ctxvault context [USER] --id ID [--decrypt]");
        return EX_USAGE;
    }
    cv_client *cl = need_client(c);
    if (!cl)
        return EX_CONFIG;
    char *out = NULL;
    int rc = id ? cv_client_context_by_id(cl, user, id, decrypt, &out)
           : list ? cv_client_context_list(cl, user, (int)limit, decrypt, &out)
                  : cv_client_context_load(cl, user, name, decrypt, &out);
    rc = client_status(cl, rc);
    if (!rc)
        rc = print_line(out);
    cv_client_close(&cl);
    return rc;
}

/* ctxvault context save --user U [--name N] [--id ID] [--ts T] < JSON */
static int cmd_context_save(cmd_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'},
        {"name", required_argument, NULL, 'N'},
        {"id", required_argument, NULL, 'i'},
        {"ts", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    cv_client_context cx = {0};
    int64_t ms;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u': cx.user = optarg; break;
        case 'N': cx.name = optarg; break;
        case 'i':
            if (strlen(optarg) > CV_CLIENT_ID_MAX) {
                cv_err("--id is longer than %d characters", CV_CLIENT_ID_MAX);
                return EX_USAGE;
            }
            snprintf(cx.id, sizeof cx.id, "%s", optarg);
            break;
        case 't':
            if (!parse_time_opt("--ts", optarg, &ms)) return EX_USAGE;
            cx.ts = optarg;
            break;
        default: return EX_USAGE;
        }
    }
    if (!cx.user || !*cx.user || optind != argc) {
        cv_err("usage: ctxvault context save --user U [--name N] [--id ID] "
               "[--ts T] < FIELDS.json");
        return EX_USAGE;
    }
    char *fields = read_stdin("the context's fields");
    if (!fields)
        return EX_IOERR;
    cv_client *cl = need_client(c);
    if (!cl) {
        free(fields);
        return EX_CONFIG;
    }
    cx.fields = fields;
    int rc = client_status(cl, cv_client_context_save(cl, &cx));
    free(fields);
    if (!rc && printf("{\"id\":\"%s\",\"stored\":%s}\n", cx.id,
                      cx.stored ? "true" : "false") < 0)
        rc = EX_IOERR;
    cv_client_close(&cl);
    return rc;
}

/* ctxvault context delete --user U (--id ID | --name N | --all) */
static int cmd_context_delete(cmd_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'},
        {"id", required_argument, NULL, 'i'},
        {"name", required_argument, NULL, 'N'},
        {"all", no_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    const char *user = NULL, *id = NULL, *name = NULL;
    bool all = false;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u': user = optarg; break;
        case 'i': id = optarg; break;
        case 'N': name = optarg; break;
        case 'a': all = true; break;
        default: return EX_USAGE;
        }
    }
    if (!user || !*user || optind != argc || (id != NULL) + (name != NULL) + all != 1) {
        cv_err("usage: ctxvault context delete --user U (--id ID | --name N | --all)");
        return EX_USAGE;
    }
    cv_client *cl = need_client(c);
    if (!cl)
        return EX_CONFIG;
    long long deleted;
    int rc = client_status(cl, cv_client_context_delete(cl, user, id, name,
                                                        all, &deleted));
    if (!rc && printf("{\"deleted\":%lld}\n", deleted) < 0)
        rc = EX_IOERR;
    cv_client_close(&cl);
    return rc;
}

int cmd_interactions(cmd_ctx *c, int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "save") == 0)
        return cmd_interactions_save(c, argc - 1, argv + 1);
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'},
        {"type", required_argument, NULL, 'T'},
        {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 't'},
        {"limit", required_argument, NULL, 'n'},
        {"page", required_argument, NULL, 'p'},
        {"all", no_argument, NULL, 'a'},
        {"cursor", required_argument, NULL, 'C'},
        {"decrypt", no_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    cv_client_filter f = {0};
    int64_t limit = 100, page = 0, ms;
    bool all = false;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u': f.user = optarg; break;
        case 'T': f.type = optarg; break;
        case 's':
            if (!parse_time_opt("--since", optarg, &ms)) return EX_USAGE;
            f.since = optarg;
            break;
        case 't':
            if (!parse_time_opt("--until", optarg, &ms)) return EX_USAGE;
            f.until = optarg;
            break;
        case 'n':
            if (!cv_parse_int(optarg, 1, INT64_MAX, &limit)) {
                cv_err("--limit '%s' is not a number from 1", optarg);
                return EX_USAGE;
            }
            break;
        case 'p':
            if (!cv_parse_int(optarg, 1, 1000, &page)) {
                cv_err("--page '%s' is not a number from 1 to 1000", optarg);
                return EX_USAGE;
            }
            break;
        case 'a': all = true; break;
        case 'C': f.cursor = optarg; break;
        case 'd': f.decrypt = true; break;
        default: return EX_USAGE;
        }
    }
    if (!f.user || !*f.user || optind != argc) {
        cv_err("usage: ctxvault interactions --user U [--type T] [--since T] "
               "[--until T] [--limit N | --all] [--page N] [--cursor C] "
               "[--decrypt]");
        return EX_USAGE;
    }
    f.page = (int)(page ? page : 1000);
    f.max = all ? 0 : limit; /* the iterator's last page ends at --limit */
    cv_client *cl = need_client(c);
    if (!cl)
        return EX_CONFIG;
    cv_client_iter *it = cv_client_interactions(cl, &f);
    int rc = it ? 0 : EX_DATAERR, got = 0;
    char *ev;
    while (!rc && (got = cv_client_iter_next(it, &ev)) > 0)
        rc = print_line(ev);
    if (!rc && got < 0)
        rc = client_status(cl, got);
    if (it && !rc && !all && cv_client_iter_cursor(it))
        cv_info("more: --cursor %s", cv_client_iter_cursor(it));
    cv_client_iter_destroy(&it);
    cv_client_close(&cl);
    return rc;
}

/* Send one batch of interactions; report its rejections by line on
 * stderr (first, the line number of events[0]... in lines[]) and add up
 * the counts. 0, or the exit status of a failed call. */
static int save_batch(cv_client *cl, const char *user, char **events,
                      const long *lines, size_t n, int64_t sum[3])
{
    char *reply = NULL;
    int rc = client_status(cl, cv_client_interactions_save(
                                   cl, user, (const char *const *)events, n, &reply));
    json_error_t je;
    json_t *r = rc ? NULL : json_loads(reply, 0, &je);
    free(reply);
    if (rc)
        return rc;
    sum[0] += json_integer_value(json_object_get(r, "stored"));
    sum[1] += json_integer_value(json_object_get(r, "duplicates"));
    size_t i;
    json_t *rej;
    json_array_foreach(json_object_get(r, "rejected"), i, rej) {
        json_int_t k = json_integer_value(json_object_get(rej, "index"));
        cv_err("stdin:%ld: %s", k >= 0 && (size_t)k < n ? lines[k] : 0L,
               json_string_value(json_object_get(rej, "error")));
        sum[2]++;
    }
    json_decref(r);
    return 0;
}

/* ctxvault interactions save [--user U] < NDJSON: batches of at most
 * 1000 events and well under the 1 MiB request cap */
#define SAVE_BATCH 1000
#define SAVE_BYTES 900000
static int cmd_interactions_save(cmd_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'},
        {NULL, 0, NULL, 0},
    };
    const char *user = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u': user = optarg; break;
        default: return EX_USAGE;
        }
    }
    if ((user && !*user) || optind != argc) {
        cv_err("usage: ctxvault interactions save [--user U] < EVENTS.ndjson");
        return EX_USAGE;
    }
    cv_client *cl = need_client(c);
    if (!cl)
        return EX_CONFIG;
    char *events[SAVE_BATCH], *line = NULL;
    long lines[SAVE_BATCH], lineno = 0;
    size_t n = 0, bytes = 0, cap = 0;
    int64_t sum[3] = {0, 0, 0}; /* stored, duplicates, rejected */
    int rc = 0;
    ssize_t len;
    while (!rc && (len = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (strspn(line, " \t") == (size_t)len)
            continue; /* a blank line is no event */
        if (len > SAVE_BYTES) {
            cv_err("stdin:%ld: line longer than %d bytes", lineno, SAVE_BYTES);
            sum[2]++;
            continue;
        }
        if (n == SAVE_BATCH || bytes + (size_t)len > SAVE_BYTES) {
            rc = save_batch(cl, user, events, lines, n, sum);
            for (size_t i = 0; i < n; i++)
                free(events[i]);
            n = bytes = 0;
        }
        events[n] = cv_strdup(line);
        lines[n++] = lineno;
        bytes += (size_t)len + 8;
    }
    if (!rc && ferror(stdin)) {
        cv_err("cannot read the events from stdin");
        rc = EX_IOERR;
    }
    if (!rc && n)
        rc = save_batch(cl, user, events, lines, n, sum);
    for (size_t i = 0; i < n; i++)
        free(events[i]);
    free(line);
    cv_client_close(&cl);
    if (!rc && printf("{\"stored\":%lld,\"duplicates\":%lld,\"rejected\":%lld}\n",
                      (long long)sum[0], (long long)sum[1], (long long)sum[2]) < 0)
        rc = EX_IOERR;
    /* as ingest: a rejected line makes the status 65, after the others */
    return rc ? rc : sum[2] ? EX_DATAERR : 0;
}

/* ctxvault profile get|set --user U ... */
int cmd_profile(cmd_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'},
        {"privacy-level", required_argument, NULL, 'p'},
        {"retention-days", required_argument, NULL, 'r'},
        {"preferences", required_argument, NULL, 'P'},
        {"decrypt", no_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    bool set = argc > 1 && strcmp(argv[1], "set") == 0;
    bool get = argc > 1 && strcmp(argv[1], "get") == 0;
    const char *user = NULL;
    bool decrypt = false;
    json_t *settings = json_object();
    int64_t days;
    int o, rc = EX_USAGE;
    if (set || get) {
        argc--;
        argv++;
    }
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u': user = optarg; break;
        case 'p':
            json_object_set_new(settings, "privacy_level", json_string(optarg));
            break;
        case 'r':
            /* "none": kept until erased */
            if (strcmp(optarg, "none") == 0) {
                json_object_set_new(settings, "retention_days", json_null());
            } else if (cv_parse_int(optarg, 0, INT32_MAX, &days)) {
                json_object_set_new(settings, "retention_days", json_integer(days));
            } else {
                cv_err("--retention-days '%s' is not a number of days or 'none'", optarg);
                goto out;
            }
            break;
        case 'P': {
            json_error_t je;
            json_t *p = json_loads(optarg, 0, &je);
            if (!json_is_object(p)) {
                cv_err("--preferences must be a JSON object%s%s", p ? "" : ": ",
                       p ? "" : je.text);
                json_decref(p);
                goto out;
            }
            json_object_set_new(settings, "preferences", p);
            break;
        }
        case 'd': decrypt = true; break;
        default: goto out;
        }
    }
    if ((!set && !get) || !user || !*user || optind != argc ||
        (set && (decrypt || json_object_size(settings) == 0)) ||
        (get && json_object_size(settings))) {
        cv_err("usage: ctxvault profile set --user U [--privacy-level L] "
               "[--retention-days N|none] [--preferences JSON]\n"
               "       ctxvault profile get --user U [--decrypt]");
        goto out;
    }
    cv_client *cl = need_client(c);
    if (!cl) {
        rc = EX_CONFIG;
        goto out;
    }
    char *text = json_dumps(settings, CV_JSON_DUMP), *reply = NULL;
    rc = client_status(cl, set ? cv_client_profile_set(cl, user, text, &reply)
                               : cv_client_profile_get(cl, user, decrypt, &reply));
    free(text);
    if (!rc)
        rc = print_line(reply);
    else
        free(reply);
    cv_client_close(&cl);
out:
    json_decref(settings);
    return rc;
}

int cmd_segment(cmd_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'},
        {"refresh", no_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    const char *user = NULL;
    bool refresh = false;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'u')
            user = optarg;
        else if (o == 'r')
            refresh = true;
        else
            return EX_USAGE;
    }
    if (!user || !*user || optind != argc) {
        cv_err("usage: ctxvault segment --user U [--refresh]");
        return EX_USAGE;
    }
    cv_client *cl = need_client(c);
    if (!cl)
        return EX_CONFIG;
    char *out = NULL;
    int rc = client_status(cl, cv_client_segment(cl, user, refresh, &out));
    if (!rc)
        rc = print_line(out);
    else
        free(out);
    cv_client_close(&cl);
    return rc;
}

int cmd_cache(cmd_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"ns", required_argument, NULL, 'n'},
        {"key", required_argument, NULL, 'k'},
        {"ttl", required_argument, NULL, 't'},
        {"user", required_argument, NULL, 'u'},
        {NULL, 0, NULL, 0},
    };
    static const char use[] =
        "usage: ctxvault cache put --ns NS --key K --ttl SECONDS [--user U] JSON|-\n"
        "       ctxvault cache get --ns NS --key K\n"
        "       ctxvault cache delete --user U [--ns NS [--key K]]";
    const char *ns = NULL, *key = NULL, *user = NULL;
    int64_t ttl = -1;
    bool put = argc >= 2 && !strcmp(argv[1], "put");
    bool del = argc >= 2 && !strcmp(argv[1], "delete");
    if (argc < 2 || (!put && !del && strcmp(argv[1], "get"))) {
        cv_err("%s", use);
        return EX_USAGE;
    }
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'n': ns = optarg; break;
        case 'k': key = optarg; break;
        case 'u': user = optarg; break;
        case 't':
            if (!cv_parse_int(optarg, 1, CV_MODELCACHE_TTL_MAX, &ttl)) {
                cv_err("--ttl '%s' is not a number of seconds from 1 to %lld",
                       optarg, (long long)CV_MODELCACHE_TTL_MAX);
                return EX_USAGE;
            }
            break;
        default: cv_err("%s", use); return EX_USAGE;
        }
    }
    if (del ? (!user || (key && !ns) || ttl >= 0 || optind != argc)
            : (!ns || !key || (put && (ttl < 0 || optind != argc - 1)) ||
               (!put && (ttl >= 0 || user || optind != argc)))) {
        cv_err("%s", use);
        return EX_USAGE;
    }
    char *value = put ? read_arg_or_stdin(argv[optind], "the value") : NULL;
    if (put && !value)
        return EX_IOERR;
    cv_client *cl = need_client(c);
    if (!cl) {
        free(value);
        return EX_CONFIG;
    }
    char *out = NULL;
    int rc;
    if (put) {
        rc = client_status(cl, cv_client_cache_put(cl, ns, key, value, ttl, user));
    } else if (del) {
        rc = client_status(cl, cv_client_cache_delete(cl, user, ns, key, &out));
        if (!rc)
            rc = print_line(out);
        else
            free(out);
    } else {
        rc = client_status(cl, cv_client_cache_get(cl, ns, key, &out));
        if (!rc && !out) {
            cv_err("no entry %s/%s (never put, or past its ttl)", ns, key);
            rc = EX_NOINPUT;
        }
        if (!rc)
            rc = print_line(out);
    }
    free(value);
    cv_client_close(&cl);
    return rc;
}

int cmd_meta(cmd_ctx *c, int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        cv_err("usage: ctxvault meta");
        return EX_USAGE;
    }
    cv_client *cl = need_client(c);
    if (!cl)
        return EX_CONFIG;
    char *out = NULL;
    int rc = client_status(cl, cv_client_meta(cl, &out));
    if (!rc)
        rc = print_line(out);
    cv_client_close(&cl);
    return rc;
}

int cmd_api(cmd_ctx *c, int argc, char **argv)
{
    if (argc != 2) {
        cv_err("usage: ctxvault api JSON|-");
        return EX_USAGE;
    }
    /* "-": the request from stdin (longer than an argument may be) */
    char *text = read_arg_or_stdin(argv[1], "the request");
    if (!text)
        return EX_IOERR;
    cv_client *cl = need_client(c);
    if (!cl) {
        free(text);
        return EX_CONFIG;
    }
    char *reply = NULL;
    int rc = cv_client_call(cl, text, &reply);
    free(text);
    int prc = print_line(reply);
    rc = client_status(cl, rc);
    cv_client_close(&cl);
    return rc ? rc : prc;
}
