/* ctxvault - the operator's command: create an instance, read what is
 * stored, check it, and check the configuration. */
#include "base/config.h"
#include "crypto/datakeys.h"
#include "storage/audit.h"
#include "net/collect.h"
#include "net/control.h"
#include "ctx/ctxops.h"
#include "ctxvault/cvclient.h"
#include "storage/db.h"
#include "net/deadletter.h"
#include "ops/export.h"
#include "crypto/fieldcrypt.h"
#include "net/health.h"
#include "ops/query.h"
#include "ops/instance.h"
#include "storage/journal.h"
#include "crypto/keyring.h"
#include "ops/session.h"
#include "privacy/policy.h"
#include "base/progress.h"
#include "storage/sealcheck.h"
#include "ops/scrub.h"
#include "base/time.h"
#include "net/synckeys.h"
#include "base/util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Each command's lines of the help, in order: `ctxvault --help` prints
 * them all, `ctxvault help CMD` and `ctxvault CMD --help` those of CMD. */
static const struct {
    const char *cmd, *text;
} help_of[] = {
    {"init",
        "  init                      create the instance (keeps what exists)\n"},
    {"query",
        "  query --user U [--kind K] [--since T] [--until T] [--limit N]\n"
        "        [--oldest-first] [--decrypt]\n"
        "                            a user's events as NDJSON, newest first\n"},
    {"get",
        "  get ID [--decrypt]        one event\n"},
    {"export",
        "  export --user U --format json|csv [-o FILE]\n"
        "                            everything held about the user, decrypted:\n"
        "                            one JSON document, or one CSV file with a\n"
        "                            kind column (kind,id,ts,created_at,\n"
        "                            expires_at,event); -o writes FILE (0600)\n"},
    {"stats",
        "  stats [--since T] [--until T]\n"
        "                            counts and sizes as JSON; with a period:\n"
        "                            rows with ts in it per kind and type, bytes,\n"
        "                            active users\n"},
    {"keys",
        "  keys list|rotate          the keyring's versions (never the keys) and\n"
        "                            rows per version; rotate: a new primary\n"
        "                            version (restart the pipeline to use it)\n"},
    {"keys",
        "  keys passphrase set|change|remove\n"
        "                            seal the keyring under a passphrase, under\n"
        "                            a new one, or store it plain again; read\n"
        "                            from the terminal, else stdin's lines (the\n"
        "                            current one first); programs then take it\n"
        "                            from CTXVAULT_PASSPHRASE_FD or key_command\n"},
    {"keys",
        "  keys rewrap [--batch N]   re-seal fields under older versions with\n"
        "                            the primary (through store, N rows per\n"
        "                            transaction); JSON summary on stdout\n"},
    {"keys",
        "  keys retire VERSION       mark a version retired; refused (65) while\n"
        "                            rows, backups, archives, journal or dead\n"
        "                            letters still need it\n"},
    {"status",
        "  status [--json]           the pipeline's health, from ctxvault-metrics:\n"
        "                            each program's state, events, spool, last\n"
        "                            backup, expired rows, and the health record\n"
        "                            (capacity, latency, queries/s, integrity,\n"
        "                            encryption, key age, anomaly, last sync);\n"
        "                            --json: the record as JSON (exit 69 when\n"
        "                            degraded, or when the listener found is\n"
        "                            another instance's: status names this\n"
        "                            instance's id and refuses another's)\n"},
    {"verify",
        "  verify [--scrub]          integrity_check, every row's checksum and\n"
        "                            the audit trail's chain; --scrub: no row\n"
        "                            past its scrub age is left unscrubbed, and\n"
        "                            the scrub rules change no scrubbed row\n"},
    {"config",
        "  config check              validate the configuration and policy\n"},
    {"delete",
        "  delete --user U           erase every row of the user (through store)\n"},
    {"rectify",
        "  rectify ID --set PATH=VALUE [--set ...]\n"
        "                            correct fields of an event; the policy and\n"
        "                            checksum are applied again\n"},
    {"audit",
        "  audit verify|list         check the audit trail's chain, or print it\n"},
    {"context",
        "  context USER [--name N] [--list [--limit N]] [--decrypt]\n"
        "                            the user's latest (or named) context, or\n"
        "                            the list, from the running store\n"},
    {"context",
        "  context [USER] --id ID [--decrypt]\n"
        "                            the context with that id (the user's only,\n"
        "                            with USER)\n"},
    {"interactions",
        "  interactions --user U [--type T] [--since T] [--until T]\n"
        "        [--limit N | --all] [--page N] [--cursor C] [--decrypt]\n"
        "                            the user's interactions as NDJSON, newest\n"
        "                            first, paged through the running store\n"},
    {"context",
        "  context save --user U [--name N] [--id ID] [--ts T] < FIELDS.json\n"
        "                            save a context (its fields, a JSON object)\n"
        "                            through the running store; prints its id\n"},
    {"context",
        "  context delete --user U (--id ID | --name N | --all)\n"
        "                            delete a context, every version of a name,\n"
        "                            or all the user's contexts (audited)\n"},
    {"interactions",
        "  interactions save [--user U] < EVENTS.ndjson\n"
        "                            store interaction events in batches; a bad\n"
        "                            line is reported (stdin:LINE: reason) and\n"
        "                            dead-lettered, the others stored (exit 65)\n"},
    {"profile",
        "  profile set --user U [--privacy-level L] [--retention-days N|none]\n"
        "        [--preferences JSON]\n"
        "                            set the user's profile (a setting left out\n"
        "                            keeps its value; a shorter retention applies\n"
        "                            to stored rows too, a longer one only to new)\n"},
    {"profile",
        "  profile get --user U [--decrypt]\n"
        "                            the user's profile, as store applies it\n"},
    {"segment",
        "  segment --user U [--refresh]\n"
        "                            the user's segment (dormant, new, power,\n"
        "                            regular, casual; [segments]), stored while\n"
        "                            fresh; --refresh computes it again\n"},
    {"sync",
        "  sync status [--checksum]  this instance's sync records: versions,\n"
        "                            records, tombstones, conflicts, knowledge\n"
        "                            and a checksum equal on converged peers\n"},
    {"sync",
        "  sync key                  this instance's sync public key, for the\n"
        "                            peers' [sync] peer.NAME and allow.NAME\n"},
    {"conflicts",
        "  conflicts [--user U] [--limit N]\n"
        "                            contexts whose concurrent versions no merge\n"
        "                            rule settles: each sibling, one per line\n"},
    {"conflicts",
        "  conflicts resolve RID (--pick DEVICE:N | --merged)\n"
        "                            keep one sibling, or the merge (latest\n"
        "                            writer for unsettled fields), as a new\n"
        "                            version that replaces them everywhere\n"},
    {"cache",
        "  cache put --ns NS --key K --ttl SECONDS [--user U] JSON|-\n"},
    {"cache",
        "  cache get --ns NS --key K\n"
        "                            a model cache entry (get: 66 on a miss)\n"},
    {"cache",
        "  cache delete --user U [--ns NS [--key K]]\n"
        "                            delete the user's cache entries: one, a\n"
        "                            namespace's, or all (audited; 66: none)\n"},
    {"compact",
        "  compact [--pages N] [--max-ms N]\n"
        "                            give the database's free pages back, in\n"
        "                            short steps (through store, or under the\n"
        "                            writer lock when no store runs)\n"},
    {"meta",
        "  meta                      schema version, last sweep and backup,\n"
        "                            cache stats, from the running store\n"},
    {"api",
        "  api JSON|-                one request to store's control socket (-:\n"
        "                            from stdin); prints the reply\n"},
    {"deadletter",
        "  deadletter [--decrypt] [PROGRAM...]\n"
        "                            rejected lines with their reasons (ingest,\n"
        "                            encrypt, store); the lines are sealed\n"},
    {"help",
        "  help [COMMAND]            this help, or COMMAND's alone\n"},
};

static void usage_footer(FILE *f)
{
    fputs("\n"
          "  --home DIR    the instance (default $CTXVAULT_HOME or ~/.ctxvault)\n"
          "  -c FILE       configuration file (default HOME/ctxvault.conf)\n"
          "  -h, --help    this help (after a command: the command's)\n"
          "  -V, --version the version\n"
          "\n"
          "Times are RFC 3339. Exit status: 0 ok, 64 usage, 65 bad data or a\n"
          "failed verify, 66 nothing found, 69 no store answering (or no\n"
          "ctxvault-metrics: status), 70 internal error or store refused a\n"
          "request, 73 cannot create the instance, 74 I/O error, 75 the\n"
          "database is locked or a rewrap was interrupted (try again), 77\n"
          "refused (decryption through the control socket, or sync off), 78\n"
          "configuration problem (a wrong or missing keyring passphrase too).\n",
          f);
}

static void usage(FILE *f)
{
    fputs("usage: ctxvault [--home DIR] [-c FILE] COMMAND [ARGS]\n"
          "       ctxvault help [COMMAND]\n"
          "\n"
          "commands:\n", f);
    for (size_t i = 0; i < sizeof help_of / sizeof *help_of; i++)
        fputs(help_of[i].text, f);
    usage_footer(f);
}

/* ctxvault help CMD, ctxvault CMD --help: CMD's lines and the exit
 * statuses (f NULL: print nothing); false when there is no such command. */
static bool usage_of(FILE *f, const char *cmd)
{
    bool found = false;
    for (size_t i = 0; i < sizeof help_of / sizeof *help_of; i++) {
        if (strcmp(help_of[i].cmd, cmd))
            continue;
        if (!f)
            return true; /* only asked whether CMD exists */
        if (!found)
            fprintf(f, "usage: ctxvault [--home DIR] [-c FILE] %s ...\n\n", cmd);
        fputs(help_of[i].text, f);
        found = true;
    }
    if (found)
        usage_footer(f);
    return found;
}

typedef struct {
    cv_config cfg;
    cv_keyring *kr;
    cv_datakeys *ds; /* to open fields under data keys, when there are any */
    cv_policy *pol;
    cv_db *db;
    const char *home, *conf; /* as given, for the client library */
} ctx;

/* Load what reading needs: keyring, policy, a read-only connection. */
static int open_reader(ctx *c, bool need_policy)
{
    char err[1024];
    int code, problems = 0;
    if (cv_fieldcrypt_init() < 0) {
        cv_err("cannot initialise libsodium");
        return EX_SOFTWARE;
    }
    c->kr = cv_keyring_load(c->cfg.keyring_file, err, sizeof err);
    if (!c->kr) {
        cv_err("%s", err);
        return EX_CONFIG;
    }
    c->ds = cv_datakeys_of_instance(c->cfg.datakeys_file, c->kr, false, 0);
    if (need_policy) {
        c->pol = cv_policy_load(c->cfg.policy_file, true, &problems);
        if (!c->pol || problems)
            return EX_CONFIG;
    }
    c->db = cv_db_open_reader(c->cfg.db_file, &code, err, sizeof err);
    if (!c->db) {
        cv_err("%s", err);
        return code;
    }
    return 0;
}

static bool parse_time_opt(const char *opt, const char *v, int64_t *ms)
{
    if (cv_time_parse(v, strlen(v), ms))
        return true;
    cv_err("%s '%s' is not an RFC 3339 time (e.g. 2026-11-22T10:00:00Z)", opt, v);
    return false;
}

static int cmd_query(ctx *c, int argc, char **argv)
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
    int rc = open_reader(c, true);
    return rc ? rc : cv_query_query(c->db, c->pol, c->kr, &q, stdout);
}

/* Send one change request (through store, or under the writer lock when
 * no store runs) and print its reply; 0 or a sysexits status. */
static int print_line(char *text);

static int change(ctx *c, json_t *req, json_t **reply_out)
{
    int status = 0;
    char err[512];
    char *actor = cv_session_actor();
    json_object_set_new(req, "actor", json_string(actor));
    free(actor);
    cv_session *s = cv_session_open(&c->cfg, "ctxvault", false, &status);
    if (!s)
        return status;
    json_t *r = cv_session_call(s, req, err, sizeof err);
    cv_session_close(&s);
    if (!r) {
        cv_err("%s", err);
        return EX_TEMPFAIL;
    }
    if (!json_is_true(json_object_get(r, "ok"))) {
        const char *why = json_string_value(json_object_get(r, "error"));
        cv_err("%s", why ? why : "the request failed");
        json_t *st = json_object_get(r, "status");
        status = json_is_integer(st) ? (int)json_integer_value(st) : EX_DATAERR;
        json_decref(r);
        return status;
    }
    *reply_out = r;
    return 0;
}

static int cmd_delete(ctx *c, int argc, char **argv)
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

static int cmd_rectify(ctx *c, int argc, char **argv)
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
static int cmd_verify(ctx *c, int argc, char **argv)
{
    bool scrub = argc == 2 && strcmp(argv[1], "--scrub") == 0;
    if (argc != 1 && !scrub) {
        cv_err("usage: ctxvault verify [--scrub]");
        return EX_USAGE;
    }
    int rc = open_reader(c, scrub);
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

static int cmd_audit(ctx *c, int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "verify") != 0 && strcmp(argv[1], "list") != 0)) {
        cv_err("usage: ctxvault audit verify|list");
        return EX_USAGE;
    }
    int rc = open_reader(c, false);
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

static int cmd_export(ctx *c, int argc, char **argv)
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
    int rc = open_reader(c, true);
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

static int cmd_get(ctx *c, int argc, char **argv)
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
    int rc = open_reader(c, false);
    return rc ? rc : cv_query_get(c->db, c->kr, id, decrypt, stdout);
}

static int cmd_config(ctx *c, int argc, char **argv)
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

static int cmd_deadletter(ctx *c, int argc, char **argv)
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

/* The replay journal's extent beside the database's own figures. */
static int print_stats(ctx *c, json_t *stats)
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

/* keys passphrase set|change|remove. The passphrases come from the
 * terminal (echo off; a new one twice) or, when stdin is not a terminal,
 * from its lines: the current one first, then the new one. Never from
 * argv, nor from key_command: that is how programs get the one in use. */
static int cmd_passphrase(ctx *c, const char *what)
{
    char err[512];
    const char *path = c->cfg.keyring_file;
    bool set = !strcmp(what, "set"), remove = !strcmp(what, "remove");
    char *old = NULL, *pass = NULL, *again = NULL;
    int rc = EX_NOINPUT;
    /* the state first, so nobody types a passphrase for nothing */
    int sealed = cv_keyring_file_protected(path, err, sizeof err);
    if (sealed < 0) {
        cv_err("%s", err);
        return EX_CONFIG;
    }
    if (set == (sealed == 1)) {
        cv_err(set ? "%s is already protected by a passphrase (ctxvault keys "
                     "passphrase change or remove)"
                   : "%s is not protected by a passphrase (ctxvault keys "
                     "passphrase set)", path);
        return EX_DATAERR;
    }
    if (!set && !(old = cv_keyring_passphrase_read(STDIN_FILENO, "current passphrase: ",
                                           err, sizeof err))) {
        cv_err("current passphrase: %s", err);
        goto out;
    }
    if (!remove) {
        if (!(pass = cv_keyring_passphrase_read(STDIN_FILENO, "new passphrase: ", err,
                                        sizeof err))) {
            cv_err("new passphrase: %s", err);
            goto out;
        }
        if (isatty(STDIN_FILENO)) {
            again = cv_keyring_passphrase_read(STDIN_FILENO, "new passphrase again: ",
                                       err, sizeof err);
            if (!again || strcmp(pass, again) != 0) {
                cv_err("the new passphrase was not typed the same twice; "
                       "nothing changed");
                rc = EX_DATAERR;
                goto out;
            }
        }
    }
    int r = set      ? cv_keyring_passphrase_set(path, pass, err, sizeof err)
            : remove ? cv_keyring_passphrase_remove(path, old, err, sizeof err)
                     : cv_keyring_passphrase_change(path, old, pass, err,
                                                    sizeof err);
    if (r < 0) {
        cv_err("%s", err);
        rc = errno == EALREADY ? EX_DATAERR
             : errno == CV_KEYRING_REJECTED || errno == EINVAL ? EX_CONFIG
                                                               : EX_IOERR;
        goto out;
    }
    printf("{\"protected\":%s}\n", remove ? "false" : "true");
    if (remove)
        cv_info("%s is no longer protected by a passphrase", path);
    else
        cv_info("%s is sealed under the %spassphrase: programs read it from "
                "CTXVAULT_PASSPHRASE_FD or key_command ([keys] in %s); running "
                "ones keep the keys they hold", path, set ? "" : "new ",
                c->cfg.config_file ? c->cfg.config_file : "ctxvault.conf");
    rc = fflush(stdout) == EOF ? EX_IOERR : 0;
out:
    cv_keyring_passphrase_free(&old);
    cv_keyring_passphrase_free(&pass);
    cv_keyring_passphrase_free(&again);
    return rc;
}

/* keys rewrap [--batch N]: every field under an older version re-sealed
 * under the primary, through store, a batch per request (store ingests
 * between them). Restartable: a run cut short leaves whole batches, and
 * the next run finds only what is left. */
static int keys_rewrap(ctx *c, int argc, char **argv)
{
    int64_t batch = 1000;
    if (argc == 4 && !strcmp(argv[2], "--batch")) {
        if (!cv_parse_int(argv[3], 1, 100000, &batch)) {
            cv_err("--batch '%s' is not a number from 1 to 100000", argv[3]);
            return EX_USAGE;
        }
    } else if (argc != 2) {
        cv_err("usage: ctxvault keys rewrap [--batch N]");
        return EX_USAGE;
    }
    int status = 0;
    char err[512];
    cv_session *s = cv_session_open(&c->cfg, "ctxvault", false, &status);
    if (!s)
        return status;
    int64_t datakeys = 0;
    int64_t t0 = cv_mono_ms(), after = 0, examined = 0, rewrapped = 0,
            fields = 0, skipped = 0;
    cv_progress pr;
    cv_progress_init(&pr, "rewrap");
    for (;;) {
        json_t *req = json_pack("{s:s, s:I, s:I, s:b}", "op", "rewrap", "after",
                                (json_int_t)after, "batch", (json_int_t)batch,
                                "clean", skipped == 0);
        json_t *r = cv_session_ok(cv_session_call(s, req, err, sizeof err), err,
                                  "rewrap");
        json_decref(req);
        if (!r) {
            status = EX_TEMPFAIL;
            break;
        }
        examined += json_integer_value(json_object_get(r, "examined"));
        rewrapped += json_integer_value(json_object_get(r, "rewrapped"));
        fields += json_integer_value(json_object_get(r, "fields"));
        skipped += json_integer_value(json_object_get(r, "skipped"));
        datakeys += json_integer_value(json_object_get(r, "data_keys"));
        size_t i;
        json_t *k;
        json_array_foreach(json_object_get(r, "skipped_rows"), i, k)
            cv_err("row %lld (event %s) left as it is: %s",
                   (long long)json_integer_value(json_object_get(k, "seq")),
                   json_string_value(json_object_get(k, "id")),
                   json_string_value(json_object_get(k, "why")));
        after = json_integer_value(json_object_get(r, "next"));
        bool done = json_is_true(json_object_get(r, "done"));
        json_decref(r);
        char extra[64];
        snprintf(extra, sizeof extra, "%lld rewrapped", (long long)rewrapped);
        cv_progress_update(&pr, (uint64_t)examined, extra);
        if (done)
            break;
    }
    cv_progress_done(&pr);
    cv_session_close(&s);
    int64_t ms = cv_mono_ms() - t0;
    printf("{\"examined\":%lld,\"rewrapped\":%lld,\"fields\":%lld,"
           "\"skipped\":%lld,\"data_keys\":%lld,\"ms\":%lld,"
           "\"rows_per_s\":%.0f,\"complete\":%s}\n",
           (long long)examined, (long long)rewrapped, (long long)fields,
           (long long)skipped, (long long)datakeys, (long long)ms,
           ms > 0 ? (double)examined * 1000.0 / (double)ms : (double)examined,
           !status && !skipped ? "true" : "false");
    if (!status && skipped) {
        cv_err("%lld %s could not be rewrapped (see above; ctxvault verify)",
               (long long)skipped, cv_plural(skipped, "row", "rows"));
        status = EX_DATAERR;
    }
    return status;
}

/* keys retire VERSION: refused (65) while anything still needs the
 * version to decrypt or verify; then marked retired in the keyring. */
static int keys_retire(ctx *c, int argc, char **argv)
{
    int64_t v;
    char err[512];
    if (argc != 3 || !cv_parse_int(argv[2], 1, UINT32_MAX, &v)) {
        cv_err("usage: ctxvault keys retire VERSION");
        return EX_USAGE;
    }
    int rc = open_reader(c, false);
    if (rc)
        return rc;
    if ((uint32_t)v == cv_keyring_primary(c->kr)) {
        cv_err("key version %lld is the primary: rotate, rewrap, then retire it",
               (long long)v);
        return EX_DATAERR;
    }
    json_t *uses = cv_sealcheck_key_uses(&c->cfg, c->db, c->ds, (uint32_t)v, err,
                                         sizeof err);
    if (!uses) {
        cv_err("%s", err);
        return EX_IOERR;
    }
    int64_t rows = json_integer_value(json_object_get(uses, "rows"));
    int64_t backups = json_integer_value(json_object_get(uses, "backups"));
    int64_t archives = json_integer_value(json_object_get(uses, "archives"));
    int64_t journal = json_integer_value(json_object_get(uses, "journal_batches"));
    int64_t dead = json_integer_value(json_object_get(uses, "deadletters"));
    int64_t dks = json_integer_value(json_object_get(uses, "data_keys"));
    bool marked = json_is_true(json_object_get(uses, "rewrapped"));
    json_object_set_new(uses, "version", json_integer(v));
    if (rows || backups || archives || journal || dead || dks || !marked) {
        json_object_set_new(uses, "retired", json_false());
        cv_err("key version %lld is still needed: %lld %s, %lld %s, %lld %s, "
               "%lld journal %s, %lld dead %s, %lld data %s%s",
               (long long)v, (long long)rows, cv_plural(rows, "row", "rows"),
               (long long)backups, cv_plural(backups, "backup", "backups"),
               (long long)archives, cv_plural(archives, "archive", "archives"),
               (long long)journal, cv_plural(journal, "batch", "batches"),
               (long long)dead, cv_plural(dead, "letter", "letters"),
               (long long)dks, cv_plural(dks, "key", "keys"),
               marked ? "" : "; no finished rewrap is recorded");
        /* only the steps still to do: after a finished rewrap, no rewrap */
        if (rows || dks || !marked)
            cv_err("run ctxvault keys rewrap");
        if (backups || archives || journal)
            cv_err("take a new backup and delete the older ones "
                   "(ctxvault-backup prune, or remove them with their .json)");
        if (dead)
            cv_err("review and remove old dead-letter files "
                   "(ctxvault deadletter)");
        rc = EX_DATAERR;
    } else if (cv_keyring_retire(c->cfg.keyring_file, (uint32_t)v, err,
                                 sizeof err) < 0) {
        cv_err("%s", err);
        json_decref(uses);
        return EX_IOERR;
    } else {
        json_object_set_new(uses, "retired", json_true());
        cv_info("key version %lld is retired: it no longer decrypts or "
                "verifies, and still recognises its pseudonyms", (long long)v);
    }
    char *text = json_dumps(uses, JSON_COMPACT);
    if (!text || printf("%s\n", text) < 0)
        rc = rc ? rc : EX_IOERR;
    free(text);
    json_decref(uses);
    return rc;
}

/* keys list: the versions and how many rows each one's checksum is under;
 * keys rotate: a new primary version; passphrase, rewrap, retire: above. */
static int cmd_keys(ctx *c, int argc, char **argv)
{
    char err[512];
    if (argc == 3 && !strcmp(argv[1], "passphrase") &&
        (!strcmp(argv[2], "set") || !strcmp(argv[2], "change") ||
         !strcmp(argv[2], "remove")))
        return cmd_passphrase(c, argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "rewrap"))
        return keys_rewrap(c, argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "retire"))
        return keys_retire(c, argc, argv);
    if (argc != 2 || (strcmp(argv[1], "list") && strcmp(argv[1], "rotate"))) {
        cv_err("usage: ctxvault keys list|rotate|rewrap [--batch N]|"
               "retire VERSION|passphrase set|change|remove");
        return EX_USAGE;
    }
    if (!strcmp(argv[1], "rotate")) {
        uint32_t v;
        if (cv_keyring_rotate(c->cfg.keyring_file, &v, err, sizeof err) < 0) {
            cv_err("%s", err);
            return errno == CV_KEYRING_REJECTED ||
                   errno == CV_KEYRING_UNAVAILABLE || errno == EINVAL
                       ? EX_CONFIG : EX_IOERR;
        }
        printf("{\"rotated\":true,\"primary\":%u}\n", v);
        cv_info("key version %u is the primary: restart the pipeline "
                "(tools/supervise.sh stop, start) so that new writes use it; "
                "every older version still decrypts", v);
        return fflush(stdout) == EOF ? EX_IOERR : 0;
    }
    cv_keyring *kr = cv_keyring_load(c->cfg.keyring_file, err, sizeof err);
    if (!kr) {
        cv_err("%s", err);
        return EX_CONFIG;
    }
    json_t *list = cv_keyring_describe(kr);
    cv_keyring_destroy(&kr);
    /* stderr: the listing's shape stays what scripts parse */
    if (cv_keyring_file_protected(c->cfg.keyring_file, err, sizeof err) == 1)
        cv_info("%s is protected by a passphrase", c->cfg.keyring_file);
    else
        cv_info("%s is not protected by a passphrase", c->cfg.keyring_file);
    /* rows per version, by the first byte of their checksum */
    int rc = open_reader(c, false);
    if (!rc) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(cv_db_handle(c->db), "SELECT substr(checksum, 1, 1),"
                               " count(*) FROM events GROUP BY 1", -1, &st,
                               NULL) == SQLITE_OK) {
            while (sqlite3_step(st) == SQLITE_ROW) {
                const uint8_t *v = sqlite3_column_blob(st, 0);
                size_t i;
                json_t *e;
                json_array_foreach(list, i, e)
                    if (v && sqlite3_column_bytes(st, 0) == 1 &&
                        json_integer_value(json_object_get(e, "version")) == v[0])
                        json_object_set_new(e, "rows", json_integer(
                            sqlite3_column_int64(st, 1)));
            }
        }
        sqlite3_finalize(st);
    }
    /* and the data keys each version wraps */
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
        if (c->ds)
            json_object_set_new(e, "data_keys", json_integer(cv_datakeys_count_kek(
                c->ds, (uint32_t)json_integer_value(json_object_get(e, "version")))));
    if (c->ds) {
        json_t *d = cv_datakeys_describe(c->ds);
        long long users = json_integer_value(json_object_get(d, "users")),
                  hours = json_integer_value(json_object_get(d, "hours"));
        cv_info("data keys: %lld %s (%lld ephemeral), %lld %s", users,
                cv_plural(users, "user", "users"),
                (long long)json_integer_value(json_object_get(d, "ephemeral_users")),
                hours, cv_plural(hours, "hour", "hours"));
        json_decref(d);
    }
    rc = 0;
    char *text = json_dumps(list, JSON_INDENT(2));
    if (!text || printf("%s\n", text) < 0 || fflush(stdout) == EOF)
        rc = EX_IOERR;
    free(text);
    json_decref(list);
    return rc;
}

/* --- the context API, through the client library (include/ctxvault/cvclient.h) ---- */

static cv_client *client_open(ctx *c)
{
    char err[512];
    cv_client *cl = cv_client_open_config(c->home, c->conf, err, sizeof err);
    if (!cl)
        cv_err("%s", err);
    return cl;
}

/* The exit status for a call's outcome: store's error code mapped to
 * sysexits, with the message on stderr. */
static int client_status(cv_client *cl, int rc)
{
    if (rc == 0)
        return 0;
    const char *code = cv_client_error_code(cl);
    cv_err("%s%s", cv_client_error(cl),
           rc == CV_CLIENT_FAILED ? " (is ctxvault-store --serve running?)" : "");
    if (rc == CV_CLIENT_FAILED)
        return EX_UNAVAILABLE;
    if (!strcmp(code, "not_found"))
        return EX_NOINPUT;
    if (!strcmp(code, "forbidden"))
        return EX_NOPERM;
    if (!strcmp(code, "internal"))
        return EX_SOFTWARE;
    return EX_DATAERR;
}

static int print_line(char *text)
{
    int rc = text && (fputs(text, stdout) == EOF || fputc('\n', stdout) == EOF)
                 ? EX_IOERR : 0;
    free(text);
    return rc;
}

static int cmd_context_save(ctx *c, int argc, char **argv);
static int cmd_context_delete(ctx *c, int argc, char **argv);
static int cmd_interactions_save(ctx *c, int argc, char **argv);

static int cmd_context(ctx *c, int argc, char **argv)
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
    cv_client *cl = client_open(c);
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

static int cmd_interactions(ctx *c, int argc, char **argv)
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
    cv_client *cl = client_open(c);
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

/* All of stdin as text, or NULL (logged: reading what failed). */
static char *read_stdin(const char *what)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    char buf[65536];
    size_t n;
    while (m && (n = fread(buf, 1, sizeof buf, stdin)) > 0)
        fwrite(buf, 1, n, m);
    if (!m || fclose(m) != 0 || ferror(stdin)) {
        cv_err("cannot read %s from stdin", what);
        free(text);
        return NULL;
    }
    return text;
}

/* arg itself, or stdin's text when arg is "-" (NULL, logged, when stdin
 * cannot be read). */
static char *read_arg_or_stdin(const char *arg, const char *what)
{
    return strcmp(arg, "-") != 0 ? cv_strdup(arg) : read_stdin(what);
}

static int cmd_api(ctx *c, int argc, char **argv)
{
    if (argc != 2) {
        cv_err("usage: ctxvault api JSON|-");
        return EX_USAGE;
    }
    /* "-": the request from stdin (longer than an argument may be) */
    char *text = read_arg_or_stdin(argv[1], "the request");
    if (!text)
        return EX_IOERR;
    cv_client *cl = client_open(c);
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

/* --- the context API's writes ------------------------------------------- */

/* ctxvault context save --user U [--name N] [--id ID] [--ts T] < JSON */
static int cmd_context_save(ctx *c, int argc, char **argv)
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
    cv_client *cl = client_open(c);
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
static int cmd_context_delete(ctx *c, int argc, char **argv)
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
    cv_client *cl = client_open(c);
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
static int cmd_interactions_save(ctx *c, int argc, char **argv)
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
    cv_client *cl = client_open(c);
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
static int cmd_profile(ctx *c, int argc, char **argv)
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
    cv_client *cl = client_open(c);
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

/* The health summary, as ctxvault-metrics sees it; --json: the health
 * record. */
static int cmd_status(ctx *c, int argc, char **argv)
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

/* Ask the running store when one answers, else read the file (the same
 * code store runs, lib/ctx/ctxops.c). */
static int cmd_stats(ctx *c, int argc, char **argv)
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
    cv_control *ctl = cv_control_find(&c->cfg, 200);
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
    if (!reply && !(rc = open_reader(c, false))) {
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

static int cmd_segment(ctx *c, int argc, char **argv)
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
    cv_client *cl = client_open(c);
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

static int cmd_cache(ctx *c, int argc, char **argv)
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
    cv_client *cl = client_open(c);
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

/* db.compact again and again, each request a few ms of steps, until the
 * freelist is empty: store commits events between the requests. */
static int cmd_compact(ctx *c, int argc, char **argv)
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
    cv_session *s = cv_session_open(&c->cfg, "ctxvault", false, &status);
    if (!s)
        return status;
    json_t *req = json_pack("{s:s}", "op", "db.compact");
    if (pages)
        json_object_set_new(req, "pages", json_integer(pages));
    if (max_ms)
        json_object_set_new(req, "max_ms", json_integer(max_ms));
    cv_progress pr;
    cv_progress_init(&pr, "compact");
    int64_t freed = 0, before = -1, pages_before = -1, requests = 0, t0 = cv_mono_ms();
    json_t *last = NULL;
    for (bool more = true; more && !status && !cv_stop_requested;) {
        char err[512], extra[64];
        json_t *r = cv_session_ok(cv_session_call(s, req, err, sizeof err), err,
                                  "compact");
        if (!r) {
            status = EX_SOFTWARE;
            break;
        }
        requests++;
        if (before < 0) {
            before = json_integer_value(json_object_get(r, "freelist_before"));
            pages_before = json_integer_value(json_object_get(r, "pages_before"));
        }
        freed += json_integer_value(json_object_get(r, "freed"));
        more = json_is_true(json_object_get(r, "more"));
        snprintf(extra, sizeof extra, "%lld pages left", (long long)
                 json_integer_value(json_object_get(r, "freelist_after")));
        cv_progress_update(&pr, (uint64_t)freed, extra);
        json_decref(last);
        last = r;
        if (more)
            cv_nap_ms(1);
    }
    cv_progress_done(&pr);
    json_decref(req);
    cv_session_close(&s);
    if (last && !status) {
        const char *msg = json_string_value(json_object_get(last, "message"));
        json_t *out = json_pack("{s:O, s:I, s:I, s:O, s:I, s:O, s:I, s:I}",
            "auto_vacuum", json_object_get(last, "auto_vacuum"),
            "freed", (json_int_t)freed, "freelist_before", (json_int_t)before,
            "freelist_after", json_object_get(last, "freelist_after"),
            "pages_before", (json_int_t)pages_before,
            "pages_after", json_object_get(last, "pages_after"),
            "requests", (json_int_t)requests,
            "ms", (json_int_t)(cv_mono_ms() - t0));
        char *text = json_dumps(out, CV_JSON_DUMP);
        json_decref(out);
        status = print_line(text);
        if (msg) {
            /* nothing can be given back in steps: say so, and how */
            cv_err("%s", msg);
            status = EX_DATAERR;
        }
    }
    json_decref(last);
    return status;
}

static int cmd_meta(ctx *c, int argc)
{
    if (argc != 1) {
        cv_err("usage: ctxvault meta");
        return EX_USAGE;
    }
    cv_client *cl = client_open(c);
    if (!cl)
        return EX_CONFIG;
    char *out = NULL;
    int rc = client_status(cl, cv_client_meta(cl, &out));
    if (!rc)
        rc = print_line(out);
    cv_client_close(&cl);
    return rc;
}

/* --- sync (doc/SYNC.md) ------------------------------------------------ */

/* ctxvault sync status [--checksum] | sync key */
static int cmd_sync(ctx *c, int argc, char **argv)
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
    cv_client *cl = client_open(c);
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
static int cmd_conflicts(ctx *c, int argc, char **argv)
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
    cv_client *cl = client_open(c);
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

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *home = NULL, *conf = NULL;
    int o;

    umask(077);
    cv_log_init(argv[0]);
    /* "+": stop at the command; its options are its own */
    while ((o = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
        switch (o) {
        case 'H': home = optarg; break;
        case 'c': conf = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ctxvault %s\n", CV_VERSION); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *cmd = argv[optind];
    argc -= optind;
    argv += optind;
    if (!usage_of(NULL, cmd)) {
        cv_err("unknown command '%s' (see ctxvault --help)", cmd);
        return EX_USAGE;
    }
    /* CMD --help, anywhere among its words: its help, with no instance */
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage_of(stdout, cmd);
            return 0;
        }

    if (strcmp(cmd, "help") == 0) {
        if (argc == 1) {
            usage(stdout);
            return 0;
        }
        if (argc == 2 && usage_of(stdout, argv[1]))
            return 0;
        cv_err(argc == 2 ? "unknown command '%s' (see ctxvault --help)"
                         : "usage: ctxvault help [COMMAND]", argv[1]);
        return EX_USAGE;
    }
    ctx c = {.home = home, .conf = conf};
    int rc;
    /* init makes the instance; config check reads the built-in files */
    bool make = !strcmp(cmd, "init") || !strcmp(cmd, "config");
    int problems = make ? cv_config_load(&c.cfg, home, conf)
                        : cv_config_load_instance(&c.cfg, home, conf);
    if (problems) {
        rc = EX_CONFIG;
        goto out;
    }
    if (strcmp(cmd, "init") == 0) {
        if (argc != 1) {
            cv_err("usage: ctxvault init");
            rc = EX_USAGE;
        } else {
            rc = cv_instance_init(&c.cfg);
        }
    } else if (strcmp(cmd, "query") == 0) {
        rc = cmd_query(&c, argc, argv);
    } else if (strcmp(cmd, "get") == 0) {
        rc = cmd_get(&c, argc, argv);
    } else if (strcmp(cmd, "export") == 0) {
        rc = cmd_export(&c, argc, argv);
    } else if (strcmp(cmd, "stats") == 0) {
        rc = cmd_stats(&c, argc, argv);
    } else if (strcmp(cmd, "status") == 0) {
        rc = cmd_status(&c, argc, argv);
    } else if (strcmp(cmd, "keys") == 0) {
        rc = cmd_keys(&c, argc, argv);
    } else if (strcmp(cmd, "verify") == 0) {
        rc = cmd_verify(&c, argc, argv);
    } else if (strcmp(cmd, "deadletter") == 0) {
        rc = cmd_deadletter(&c, argc, argv);
    } else if (strcmp(cmd, "delete") == 0) {
        rc = cmd_delete(&c, argc, argv);
    } else if (strcmp(cmd, "rectify") == 0) {
        rc = cmd_rectify(&c, argc, argv);
    } else if (strcmp(cmd, "audit") == 0) {
        rc = cmd_audit(&c, argc, argv);
    } else if (strcmp(cmd, "context") == 0) {
        rc = cmd_context(&c, argc, argv);
    } else if (strcmp(cmd, "interactions") == 0) {
        rc = cmd_interactions(&c, argc, argv);
    } else if (strcmp(cmd, "api") == 0) {
        rc = cmd_api(&c, argc, argv);
    } else if (strcmp(cmd, "profile") == 0) {
        rc = cmd_profile(&c, argc, argv);
    } else if (strcmp(cmd, "segment") == 0) {
        rc = cmd_segment(&c, argc, argv);
    } else if (strcmp(cmd, "cache") == 0) {
        rc = cmd_cache(&c, argc, argv);
    } else if (strcmp(cmd, "compact") == 0) {
        rc = cmd_compact(&c, argc, argv);
    } else if (strcmp(cmd, "meta") == 0) {
        rc = cmd_meta(&c, argc);
    } else if (strcmp(cmd, "sync") == 0) {
        rc = cmd_sync(&c, argc, argv);
    } else if (strcmp(cmd, "conflicts") == 0) {
        rc = cmd_conflicts(&c, argc, argv);
    } else {
        rc = cmd_config(&c, argc, argv);
    }
    if (fflush(stdout) != 0 && !rc) {
        cv_err("cannot write to stdout");
        rc = EX_IOERR;
    }
out:
    cv_db_close(&c.db);
    cv_policy_destroy(&c.pol);
    cv_datakeys_destroy(&c.ds);
    cv_keyring_destroy(&c.kr);
    cv_config_free(&c.cfg);
    return rc;
}
