/* ctxvault - the operator's command: create an instance, read what is
 * stored, check it, and check the configuration.
 *
 * Each command is one row of the table below: its handler (in the file of
 * its area, ctxvault.h), what it opens, and its lines of the help. The
 * table makes `ctxvault --help`, `ctxvault help [CMD]`, `ctxvault CMD
 * --help` and the dispatch. */
#include "ctxvault.h"

#include "base/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static cmd_fn cmd_help;

static const struct command {
    const char *name;
    cmd_fn *run;
    int needs;        /* NEEDS_ bits (ctxvault.h) */
    const char *help; /* its lines of `ctxvault --help`, in order */
} commands[] = {
    {"init", cmd_init, NEEDS_CONFIG,
        "  init                      create the instance (keeps what exists)\n"},
    {"query", cmd_query, NEEDS_READER,
        "  query --user U [--kind K] [--since T] [--until T] [--limit N]\n"
        "        [--oldest-first] [--decrypt]\n"
        "                            a user's events as NDJSON, newest first\n"},
    {"get", cmd_get, NEEDS_READER,
        "  get ID [--decrypt]        one event\n"},
    {"export", cmd_export, NEEDS_READER | NEEDS_WRITER,
        "  export --user U --format json|csv [-o FILE]\n"
        "                            everything held about the user, decrypted:\n"
        "                            one JSON document, or one CSV file with a\n"
        "                            kind column (kind,id,ts,created_at,\n"
        "                            expires_at,event); -o writes FILE (0600)\n"},
    {"stats", cmd_stats, NEEDS_READER | NEEDS_CLIENT,
        "  stats [--since T] [--until T]\n"
        "                            counts and sizes as JSON; with a period:\n"
        "                            rows with ts in it per kind and type, bytes,\n"
        "                            active users\n"},
    {"keys", cmd_keys, NEEDS_READER | NEEDS_WRITER,
        "  keys list|rotate          the keyring's versions (never the keys) and\n"
        "                            rows per version; rotate: a new primary\n"
        "                            version (restart the pipeline to use it)\n"
        "  keys passphrase set|change|remove\n"
        "                            seal the keyring under a passphrase, under\n"
        "                            a new one, or store it plain again; read\n"
        "                            from the terminal, else stdin's lines (the\n"
        "                            current one first); programs then take it\n"
        "                            from CTXVAULT_PASSPHRASE_FD or key_command\n"
        "  keys rewrap [--batch N]   re-seal fields under older versions with\n"
        "                            the primary (through store, N rows per\n"
        "                            transaction); JSON summary on stdout\n"
        "  keys retire VERSION       mark a version retired; refused (65) while\n"
        "                            rows, backups, archives, journal or dead\n"
        "                            letters still need it\n"},
    {"status", cmd_status, NEEDS_INSTANCE,
        "  status [--json]           the pipeline's health, from ctxvault-metrics:\n"
        "                            each program's state, events, spool, last\n"
        "                            backup, expired rows, and the health record\n"
        "                            (capacity, latency, queries/s, integrity,\n"
        "                            encryption, key age, anomaly, last sync);\n"
        "                            --json: the record as JSON (exit 69 when\n"
        "                            degraded, or when the listener found is\n"
        "                            another instance's: status names this\n"
        "                            instance's id and refuses another's)\n"},
    {"verify", cmd_verify, NEEDS_READER,
        "  verify [--scrub]          integrity_check, every row's checksum and\n"
        "                            the audit trail's chain; --scrub: no row\n"
        "                            past its scrub age is left unscrubbed, and\n"
        "                            the scrub rules change no scrubbed row\n"},
    {"config", cmd_config, NEEDS_CONFIG,
        "  config check              validate the configuration and policy\n"},
    {"delete", cmd_delete, NEEDS_WRITER,
        "  delete --user U           erase every row of the user (through store)\n"},
    {"rectify", cmd_rectify, NEEDS_WRITER,
        "  rectify ID --set PATH=VALUE [--set ...]\n"
        "                            correct fields of an event; the policy and\n"
        "                            checksum are applied again\n"},
    {"audit", cmd_audit, NEEDS_READER,
        "  audit verify|list         check the audit trail's chain, or print it\n"},
    {"context", cmd_context, NEEDS_CLIENT,
        "  context USER [--name N] [--list [--limit N]] [--decrypt]\n"
        "                            the user's latest (or named) context, or\n"
        "                            the list, from the running store\n"
        "  context [USER] --id ID [--decrypt]\n"
        "                            the context with that id (the user's only,\n"
        "                            with USER)\n"
        "  context save --user U [--name N] [--id ID] [--ts T] < FIELDS.json\n"
        "                            save a context (its fields, a JSON object)\n"
        "                            through the running store; prints its id\n"
        "  context delete --user U (--id ID | --name N | --all)\n"
        "                            delete a context, every version of a name,\n"
        "                            or all the user's contexts (audited)\n"},
    {"interactions", cmd_interactions, NEEDS_CLIENT,
        "  interactions --user U [--type T] [--since T] [--until T]\n"
        "        [--limit N | --all] [--page N] [--cursor C] [--decrypt]\n"
        "                            the user's interactions as NDJSON, newest\n"
        "                            first, paged through the running store\n"
        "  interactions save [--user U] < EVENTS.ndjson\n"
        "                            store interaction events in batches; a bad\n"
        "                            line is reported (stdin:LINE: reason) and\n"
        "                            dead-lettered, the others stored (exit 65)\n"},
    {"profile", cmd_profile, NEEDS_CLIENT,
        "  profile set --user U [--privacy-level L] [--retention-days N|none]\n"
        "        [--preferences JSON]\n"
        "                            set the user's profile (a setting left out\n"
        "                            keeps its value; a shorter retention applies\n"
        "                            to stored rows too, a longer one only to new)\n"
        "  profile get --user U [--decrypt]\n"
        "                            the user's profile, as store applies it\n"},
    {"segment", cmd_segment, NEEDS_CLIENT,
        "  segment --user U [--refresh]\n"
        "                            the user's segment (dormant, new, power,\n"
        "                            regular, casual; [segments]), stored while\n"
        "                            fresh; --refresh computes it again\n"},
    {"sync", cmd_sync, NEEDS_CLIENT,
        "  sync status [--checksum]  this instance's sync records: versions,\n"
        "                            records, tombstones, conflicts, knowledge\n"
        "                            and a checksum equal on converged peers\n"
        "  sync key                  this instance's sync public key, for the\n"
        "                            peers' [sync] peer.NAME and allow.NAME\n"},
    {"conflicts", cmd_conflicts, NEEDS_CLIENT,
        "  conflicts [--user U] [--limit N]\n"
        "                            contexts whose concurrent versions no merge\n"
        "                            rule settles: each sibling, one per line\n"
        "  conflicts resolve RID (--pick DEVICE:N | --merged)\n"
        "                            keep one sibling, or the merge (latest\n"
        "                            writer for unsettled fields), as a new\n"
        "                            version that replaces them everywhere\n"},
    {"cache", cmd_cache, NEEDS_CLIENT,
        "  cache put --ns NS --key K --ttl SECONDS [--user U] JSON|-\n"
        "  cache get --ns NS --key K\n"
        "                            a model cache entry (get: 66 on a miss)\n"
        "  cache delete --user U [--ns NS [--key K]]\n"
        "                            delete the user's cache entries: one, a\n"
        "                            namespace's, or all (audited; 66: none)\n"},
    {"compact", cmd_compact, NEEDS_WRITER,
        "  compact [--pages N] [--max-ms N]\n"
        "                            give the database's free pages back, in\n"
        "                            short steps (through store, or under the\n"
        "                            writer lock when no store runs)\n"},
    {"meta", cmd_meta, NEEDS_CLIENT,
        "  meta                      schema version, last sweep and backup,\n"
        "                            cache stats, from the running store\n"},
    {"api", cmd_api, NEEDS_CLIENT,
        "  api JSON|-                one request to store's control socket (-:\n"
        "                            from stdin); prints the reply\n"},
    {"deadletter", cmd_deadletter, NEEDS_INSTANCE,
        "  deadletter [--decrypt] [PROGRAM...]\n"
        "                            rejected lines with their reasons (ingest,\n"
        "                            encrypt, store); the lines are sealed\n"},
    {"help", cmd_help, NEEDS_NOTHING,
        "  help [COMMAND]            this help, or COMMAND's alone\n"},
};

#define NCOMMANDS (sizeof commands / sizeof *commands)

static const struct command *command_named(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

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
    for (size_t i = 0; i < NCOMMANDS; i++)
        fputs(commands[i].help, f);
    usage_footer(f);
}

/* ctxvault help CMD, ctxvault CMD --help: CMD's lines and the exit
 * statuses. */
static void usage_of(FILE *f, const struct command *cmd)
{
    fprintf(f, "usage: ctxvault [--home DIR] [-c FILE] %s ...\n\n", cmd->name);
    fputs(cmd->help, f);
    usage_footer(f);
}

static int cmd_help(cmd_ctx *c, int argc, char **argv)
{
    (void)c;
    if (argc == 1) {
        usage(stdout);
        return 0;
    }
    const struct command *of = argc == 2 ? command_named(argv[1]) : NULL;
    if (of) {
        usage_of(stdout, of);
        return 0;
    }
    cv_err(argc == 2 ? "unknown command '%s' (see ctxvault --help)"
                     : "usage: ctxvault help [COMMAND]", argv[1]);
    return EX_USAGE;
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
    argc -= optind;
    argv += optind;
    const struct command *cmd = command_named(argv[0]);
    if (!cmd) {
        cv_err("unknown command '%s' (see ctxvault --help)", argv[0]);
        return EX_USAGE;
    }
    /* CMD --help, anywhere among its words: its help, with no instance */
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage_of(stdout, cmd);
            return 0;
        }
    if (cmd->needs == NEEDS_NOTHING)
        return cmd->run(NULL, argc, argv);

    cmd_ctx c = {.needs = cmd->needs, .home = home, .conf = conf};
    /* init makes the instance; config check reads the built-in files */
    int rc = cmd->needs & NEEDS_CONFIG ? cv_config_load(&c.cfg, home, conf)
                                       : cv_config_load_instance(&c.cfg, home, conf);
    if (rc) {
        rc = EX_CONFIG;
    } else {
        rc = cmd->run(&c, argc, argv);
        /* a handler may have seen the failed write and said only 74 */
        bool failed = fflush(stdout) != 0 || ferror(stdout);
        if (failed && (!rc || rc == EX_IOERR)) {
            cv_err("cannot write to stdout");
            rc = EX_IOERR;
        }
    }
    cv_db_close(&c.db);
    cv_policy_destroy(&c.pol);
    cv_datakeys_destroy(&c.ds);
    cv_keyring_destroy(&c.kr);
    cv_config_free(&c.cfg);
    return rc;
}
