/* ctxvault-backup - encrypted, verified backups of the database, and their
 * restore. A backup is a consistent snapshot taken while writers go on,
 * compressed and sealed under the keyring; it counts only once it has been
 * decrypted into a temporary file and checked row by row. */
#include "net/program.h"
#include "ops/backupprog.h"

#include <stdio.h>

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
        "\n");
    cv_program_usage_common(f, 15, "no summary on stderr");
    fprintf(f,
        "\n"
        "Each command prints one JSON object on stdout (create -o - prints it\n"
        "on stderr). Exit status: 0 ok, 64 usage, 65 a backup failed its\n"
        "check, 66 no backup, 70 internal error, 73 cannot create, 74 I/O\n"
        "error, 75 a store holds the database, 78 configuration problem.\n");
}

int main(int argc, char **argv)
{
    static cv_backupprog_args a = {
        .bo = {.verify = true}, .ro = {.to_ms = -1},
        .before = -1, .daily = -1, .monthly = -1, .interval = -1,
    };
    static const cv_program_opt opts[] = {
        {.name = "output", .kind = CV_PROGRAM_OPT_STR, .target = &a.bo.out,
         .short_name = 'o'},
        CV_PROGRAM_UNSET("no-verify", &a.bo.verify),
        CV_PROGRAM_FLAG("dry-run", &a.dry_run),
        CV_PROGRAM_FUNC("daily", cv_backupprog_parse_keep, &a.daily),
        CV_PROGRAM_FUNC("monthly", cv_backupprog_parse_keep, &a.monthly),
        CV_PROGRAM_FUNC("interval", cv_backupprog_parse_interval, &a.interval),
        CV_PROGRAM_FUNC("to-time", cv_backupprog_parse_time, &a.ro.to_ms),
        CV_PROGRAM_FLAG("check", &a.ro.check),
        CV_PROGRAM_FLAG("no-replay", &a.ro.no_replay),
        CV_PROGRAM_STR("archive", &a.archive),
        CV_PROGRAM_FLAG("archives", &a.archives),
        CV_PROGRAM_FUNC("older-than", cv_backupprog_parse_older, &a.before),
        CV_PROGRAM_END,
    };
    static const cv_program backup = {
        .name = "ctxvault-backup", .usage = usage, .opts = opts,
        .needs = CV_PROGRAM_TRIES_KEYRING, .check = cv_backupprog_check,
        .run = cv_backupprog_main, .args = &a,
    };
    return cv_program_main(&backup, argc, argv);
}
