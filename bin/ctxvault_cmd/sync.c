/* sync.c - ctxvault sync and conflicts (doc/SYNC.md). */
#include "ctxvault.h"

#include "base/util.h"
#include "net/synckeys.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ctxvault sync status [--checksum] | sync key */
int cmd_sync(cmd_ctx *c, int argc, char **argv)
{
    char err[512];
    if (argc == 2 && !strcmp(argv[1], "key")) {
        char hex[65];
        if (cv_synckeys_public_hex(&c->cfg, hex, err, sizeof err) < 0) {
            cv_err("%s", err);
            return EX_NOINPUT;
        }
        return printf("%s\n", hex) < 0 ? EX_IOERR : 0;
    }
    bool sum = argc == 3 && !strcmp(argv[2], "--checksum");
    if (argc < 2 || strcmp(argv[1], "status") || (argc == 3 && !sum) || argc > 3) {
        cv_err("usage: ctxvault sync status [--checksum] | ctxvault sync key");
        return EX_USAGE;
    }
    cv_client *cl = need_client(c);
    if (!cl)
        return EX_CONFIG;
    char *out = NULL, req[96];
    snprintf(req, sizeof req, "{\"op\":\"sync.state\",\"checksum\":%s}",
             sum ? "true" : "false");
    int rc = client_status(cl, cv_client_call(cl, req, &out));
    if (!rc)
        rc = print_line(out);
    else
        free(out);
    cv_client_close(&cl);
    return rc;
}

/* The fields that resolve conflict r: sibling DEV:N's, or (pick NULL) the
 * merged ones, where each unsettled field has the latest writer's value. */
static json_t *resolution(json_t *r, const char *pick)
{
    if (!pick)
        return json_incref(json_object_get(r, "merged"));
    size_t i;
    json_t *sib;
    json_array_foreach(json_object_get(r, "siblings"), i, sib) {
        json_t *dot = json_object_get(sib, "dot");
        char name[128];
        snprintf(name, sizeof name, "%s:%lld", json_string_value(json_array_get(dot, 0)),
                 (long long)json_integer_value(json_array_get(dot, 1)));
        if (!strcmp(name, pick))
            return json_incref(json_object_get(sib, "fields"));
    }
    return NULL;
}

/* ctxvault conflicts [--user U] [--limit N]
 * ctxvault conflicts resolve RID (--pick DEV:N | --merged) */
int cmd_conflicts(cmd_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"user", required_argument, NULL, 'u'},
        {"limit", required_argument, NULL, 'l'},
        {"pick", required_argument, NULL, 'p'},
        {"merged", no_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    const char *user = NULL, *pick = NULL, *rid = NULL;
    bool merged = false, resolve = argc > 1 && !strcmp(argv[1], "resolve");
    int64_t limit = 100;
    int o;
    if (resolve) { /* "resolve" becomes argv[0]: options may follow RID */
        argc--;
        argv++;
    }
    optind = 0; /* reset: main's "+" (stop at the first word) is not ours */
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'u': user = optarg; break;
        case 'l':
            if (!cv_parse_int(optarg, 1, 100000, &limit)) {
                cv_err("--limit '%s' is not a number from 1 to 100000", optarg);
                return EX_USAGE;
            }
            break;
        case 'p': pick = optarg; break;
        case 'm': merged = true; break;
        default: return EX_USAGE;
        }
    }
    if (resolve && optind == argc - 1)
        rid = argv[optind++];
    if (optind != argc || (resolve ? !rid || !pick == !merged : pick || merged)) {
        cv_err("usage: ctxvault conflicts [--user U] [--limit N]\n"
               "       ctxvault conflicts resolve RID (--pick DEVICE:N | --merged)");
        return EX_USAGE;
    }
    cv_client *cl = need_client(c);
    if (!cl)
        return EX_CONFIG;
    json_t *q = json_pack("{s:s, s:s?, s:I}", "op", "sync.conflicts", "user", user,
                          "limit", (json_int_t)(resolve ? 100000 : limit));
    char *text = json_dumps(q, CV_JSON_DUMP), *out = NULL;
    json_decref(q);
    int rc = client_status(cl, cv_client_call(cl, text, &out));
    free(text);
    json_t *root = rc ? NULL : json_loads(out, 0, NULL);
    json_t *list = json_object_get(root, "conflicts");
    if (!rc && !resolve) {
        size_t i;
        json_t *r;
        json_array_foreach(list, i, r) {
            char *line = json_dumps(r, CV_JSON_DUMP);
            rc = rc ? rc : printf("%s\n", line) < 0 ? EX_IOERR : 0;
            free(line);
        }
    } else if (!rc) {
        /* resolving is saving: the new version descends from every sibling */
        json_t *r = NULL, *x;
        size_t i;
        json_array_foreach(list, i, x)
            if (!strcmp(json_string_value(json_object_get(x, "rid")), rid))
                r = x;
        json_t *fields = r ? resolution(r, pick) : NULL;
        if (!fields) {
            cv_err(r ? "record %s has no sibling %s" : "no conflict on record %s%s",
                   rid, r ? pick : "");
            rc = EX_NOINPUT;
        } else {
            cv_client_context cx = {
                .user = json_string_value(json_object_get(r, "user")),
                .name = json_string_value(json_object_get(r, "name"))};
            char *ftext = json_dumps(fields, CV_JSON_DUMP);
            cx.fields = ftext;
            rc = client_status(cl, cv_client_context_save(cl, &cx));
            if (!rc && printf("{\"rid\":\"%s\",\"resolved\":true,\"id\":\"%s\"}\n",
                              rid, cx.id) < 0)
                rc = EX_IOERR;
            free(ftext);
            json_decref(fields);
        }
    }
    json_decref(root);
    free(out);
    cv_client_close(&cl);
    return rc;
}
