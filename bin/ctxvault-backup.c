/* ctxvault-backup - encrypted, verified backups of the database, and their
 * restore. A backup is a consistent snapshot taken while writers go on,
 * compressed and sealed under the keyring; it counts only once it has been
 * decrypted into a temporary file and checked row by row. */
#include "ops/archive.h"
#include "ops/backup.h"
#include "base/config.h"
#include "crypto/fieldcrypt.h"
#include "crypto/keyring.h"
#include "net/metrics.h"
#include "ops/program.h"
#include "net/sock.h"
#include "base/time.h"
#include "base/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ctxvault-backup [--home DIR] [-c FILE] COMMAND [OPTIONS]\n"
        "\n"
        "commands:\n"
        "  create [-o FILE|-] [--no-verify]\n"
        "                 snapshot the database (writers go on), compress,\n"
        "                 seal under the keyring; into HOME/backups (or FILE,\n"
        "                 or stdout with -o -); then restore it into a\n"
        "                 temporary file and check it (unless --no-verify)\n"
        "  verify [BACKUP]\n"
        "                 decrypt, integrity_check, rows per kind, every row's\n"
        "                 checksum against the manifest (default: the newest;\n"
        "                 - reads stdin)\n"
        "  restore [BACKUP] [--to-time T] [--check] [--no-replay]\n"
        "  restore --archive ARCHIVE\n"
        "                 replace the database with a backup (default: the\n"
        "                 latest verified one, or the latest taken by T), then\n"
        "                 replay the journal up to the last committed batch\n"
        "                 (or the last committed by T, RFC 3339); --check\n"
        "                 checks a verified backup in full again; refused\n"
        "                 while a store holds the database\n"
        "  list [--archives]\n"
        "                 the backups (or archives), newest first, and whether\n"
        "                 verified\n"
        "  archive --older-than T\n"
        "                 move the rows whose event time is before T (RFC 3339,\n"
        "                 or an age such as 400d) into a sealed archive in\n"
        "                 HOME/archives, verify it, then delete them through\n"
        "                 store; restore --archive FILE puts them back\n"
        "  serve [--interval D]\n"
        "                 as a supervised service: create (and verify) a backup\n"
        "                 every interval ([backup] interval = 1d; the first one\n"
        "                 interval after the start), then prune, until SIGTERM\n"
        "  prune [--dry-run] [--daily N] [--monthly N]\n"
        "                 keep the newest verified backup of each of the last\n"
        "                 N days and N months ([backup] keep_daily = 7,\n"
        "                 keep_monthly = 12); delete the rest\n"
        "\n"
        "  --home DIR     the instance (default $CTXVAULT_HOME or ~/.ctxvault)\n"
        "  -c FILE        configuration file (default HOME/ctxvault.conf)\n"
        "  -q, --quiet    no summary on stderr\n"
        "  -h, --help     this help\n"
        "  -V, --version  the version\n"
        "\n"
        "Each command prints one JSON object on stdout (create -o - prints it\n"
        "on stderr). Exit status: 0 ok, 64 usage, 65 a backup failed its\n"
        "check, 66 no backup, 70 internal error, 73 cannot create, 74 I/O\n"
        "error, 75 a store holds the database, 78 configuration problem.\n");
}

typedef struct {
    const cv_config *cfg;
    const cv_keyring *kr;
    bool quiet;
    cv_metrics *m;
} service;

/* The newest verified backup into the metrics: its time and size. */
static void report_latest(const cv_config *cfg, cv_metrics *m)
{
    json_t *all = NULL;
    size_t i;
    json_t *b;
    if (cv_backup_list(cfg, false, &all) != 0)
        return;
    json_array_foreach(all, i, b) {
        const char *at = json_string_value(json_object_get(b, "created_at"));
        int64_t t;
        if (!json_is_true(json_object_get(b, "verified")) || !at ||
            !cv_time_parse(at, strlen(at), &t))
            continue;
        cv_metrics_set(m, "ctxvault_backup_last_success_timestamp_seconds", NULL,
                       (double)t / 1000.0);
        cv_metrics_set(m, "ctxvault_backup_size_bytes", NULL,
                       (double)json_integer_value(json_object_get(b, "bytes")));
        break;
    }
    json_decref(all);
}

/* What a create or verify did, into the metrics. */
static void report_run(const service *s, int status, json_t *res, bool created)
{
    if (status == EX_DATAERR)
        cv_metrics_add(s->m, "ctxvault_backup_verification_failures_total", NULL, 1);
    if (created && status == 0)
        cv_metrics_observe(s->m, "ctxvault_backup_duration_seconds", NULL,
                           (double)json_integer_value(json_object_get(res, "ms")) / 1000.0);
    report_latest(s->cfg, s->m);
    cv_metrics_publish(s->m, false);
}

static int print(json_t *res, bool to_stderr);

/* One tick of the service: a verified backup, then the pruning. A backup
 * that fails its check is said (and audited) and the service goes on. */
static int tick(void *arg)
{
    service *s = arg;
    cv_backup_opts bo = {.verify = true};
    json_t *res = NULL;
    int rc = cv_backup_create(s->cfg, s->kr, &bo, &res);
    report_run(s, rc, res, true);
    if (res)
        print(res, false);
    json_decref(res);
    res = NULL;
    if (rc == 0 &&
        cv_backup_prune(s->cfg, s->cfg->backup_daily, s->cfg->backup_monthly,
                        false, &res) == 0 && !s->quiet)
        cv_info("backed up; %zu backups kept",
                json_array_size(json_object_get(res, "kept")));
    json_decref(res);
    return rc == EX_DATAERR ? 0 : rc;
}

static int print(json_t *res, bool to_stderr)
{
    char *text = json_dumps(res, JSON_COMPACT);
    FILE *f = to_stderr ? stderr : stdout;
    int rc = 0;
    if (!text || fprintf(f, "%s\n", text) < 0 || fflush(f) != 0) {
        cv_err("cannot write the result");
        rc = EX_IOERR;
    }
    free(text);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"output", required_argument, NULL, 'o'},
        {"no-verify", no_argument, NULL, 'N'},
        {"dry-run", no_argument, NULL, 'n'},
        {"daily", required_argument, NULL, 'd'},
        {"monthly", required_argument, NULL, 'm'},
        {"interval", required_argument, NULL, 'i'},
        {"to-time", required_argument, NULL, 't'},
        {"check", no_argument, NULL, 'C'},
        {"no-replay", no_argument, NULL, 'R'},
        {"archive", required_argument, NULL, 'A'},
        {"archives", no_argument, NULL, 'L'},
        {"older-than", required_argument, NULL, 'O'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *home = NULL, *conf = NULL;
    cv_backup_opts bo = {.verify = true};
    cv_restore_opts ro = {.to_ms = -1};
    bool dry_run = false, quiet = false, archives = false;
    const char *archive = NULL;
    int64_t before = -1;
    int64_t daily = -1, monthly = -1, interval = -1;
    int c;

    umask(077);
    cv_log_init(argv[0]);
    cv_install_signals();
    while ((c = getopt_long(argc, argv, "c:o:qhV", opts, NULL)) != -1) {
        switch (c) {
        case 'H': home = optarg; break;
        case 'c': conf = optarg; break;
        case 'o': bo.out = optarg; break;
        case 'N': bo.verify = false; break;
        case 'n': dry_run = true; break;
        case 'd':
        case 'm':
            if (!cv_parse_int(optarg, 0, 60, c == 'd' ? &daily : &monthly)) {
                cv_err("--%s '%s' is not a number from 0 to 60",
                       c == 'd' ? "daily" : "monthly", optarg);
                return EX_USAGE;
            }
            break;
        case 'i':
            interval = cv_parse_duration(optarg);
            if (interval < 1000) {
                cv_err("--interval '%s' is not a duration of 1s or more", optarg);
                return EX_USAGE;
            }
            break;
        case 't':
            if (!cv_time_parse(optarg, strlen(optarg), &ro.to_ms)) {
                cv_err("--to-time '%s' is not an RFC 3339 time", optarg);
                return EX_USAGE;
            }
            break;
        case 'C': ro.check = true; break;
        case 'A': archive = optarg; break;
        case 'L': archives = true; break;
        case 'O':
            if (!cv_time_parse(optarg, strlen(optarg), &before)) {
                int64_t age = cv_parse_duration(optarg);
                if (age < 0) {
                    cv_err("--older-than '%s' is neither an RFC 3339 time nor "
                           "an age such as 400d", optarg);
                    return EX_USAGE;
                }
                before = cv_now_ms() - age;
            }
            break;
        case 'R': ro.no_replay = true; break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ctxvault-backup %s\n", CV_VERSION); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *cmd = argv[optind++];
    const char *arg = optind < argc ? argv[optind++] : NULL;
    bool takes_arg = !strcmp(cmd, "verify") || !strcmp(cmd, "restore");
    if (optind < argc || (arg && !takes_arg)) {
        usage(stderr);
        return EX_USAGE;
    }
    cv_config cfg;
    cv_keyring *kr = NULL;
    json_t *res = NULL;
    char err[1024];
    int status;
    if (cv_config_load_instance(&cfg, home, conf)) {
        status = EX_CONFIG;
        goto out;
    }
    if (cv_fieldcrypt_init() < 0) {
        cv_err("cannot initialise libsodium");
        status = EX_SOFTWARE;
        goto out;
    }
    kr = cv_keyring_load(cfg.keyring_file, err, sizeof err);
    if (!kr && strcmp(cmd, "list") && strcmp(cmd, "prune")) {
        cv_err("%s", err);
        status = EX_CONFIG;
        goto out;
    }
    cv_sock_init();
    service s = {&cfg, kr, quiet,
                 cv_metrics_new(&cfg, "ctxvault-backup", !strcmp(cmd, "serve"))};
    cv_metrics_set(s.m, "ctxvault_backup_verification_failures_total", NULL, 0);
    report_latest(&cfg, s.m);
    if (!strcmp(cmd, "create")) {
        status = cv_backup_create(&cfg, kr, &bo, &res);
        report_run(&s, status, res, !bo.out || strcmp(bo.out, "-") != 0);
    } else if (!strcmp(cmd, "verify")) {
        status = cv_backup_verify(&cfg, kr, arg, &res);
        report_run(&s, status, res, false);
    }
    else if (!strcmp(cmd, "restore") && archive)
        status = arg ? (usage(stderr), EX_USAGE)
                     : cv_archive_restore(&cfg, kr, archive, &res);
    else if (!strcmp(cmd, "restore")) {
        ro.path = arg;
        status = cv_backup_restore(&cfg, kr, &ro, &res);
    } else if (!strcmp(cmd, "archive")) {
        if (before < 0) {
            cv_err("archive needs --older-than T");
            status = EX_USAGE;
        } else {
            status = cv_archive_create(&cfg, kr, before, &res);
        }
    }    else if (!strcmp(cmd, "list"))
        status = cv_backup_list(&cfg, archives, &res);
    else if (!strcmp(cmd, "serve")) {
        int64_t every = interval > 0 ? interval : cfg.backup_interval_ms;
        if (!quiet)
            cv_info("backing up every %lld s into %s", (long long)(every / 1000),
                    cfg.backup_dir);
        status = cv_program_serve_every(every, tick, &s, s.m);
        if (!quiet && !status)
            cv_info("stopped");
    } else if (!strcmp(cmd, "prune"))
        status = cv_backup_prune(&cfg, daily >= 0 ? (int)daily : cfg.backup_daily,
                                 monthly >= 0 ? (int)monthly : cfg.backup_monthly,
                                 dry_run, &res);
    else {
        cv_err("unknown command '%s' (see ctxvault-backup --help)", cmd);
        status = EX_USAGE;
    }
    if (res) {
        bool to_stderr = bo.out && !strcmp(bo.out, "-");
        int rc = (!quiet || !to_stderr) ? print(res, to_stderr) : 0;
        status = status ? status : rc;
    }
    cv_metrics_destroy(&s.m);
    cv_sock_shutdown();
out:
    json_decref(res);
    cv_keyring_destroy(&kr);
    cv_config_free(&cfg);
    return status;
}
