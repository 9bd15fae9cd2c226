/* ctxvault-store - the only writer of the database. Reads events on stdin
 * and commits them in batches (N events or T ms, whichever comes first),
 * idempotent on id. Exits 0 once everything read is committed. */
#include "net/program.h"
#include "serve/store_serve.h"
#include "serve/storeprog.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ctxvault-store [--db PATH] [--home DIR] [-c FILE] [--serve]\n"
        "       ctxvault-store --ops\n"
        "\n"
        "Commit the events read on stdin to the database, in batches,\n"
        "storing each id once. The only program that writes the database.\n"
        "With --serve, take event messages on the instance's store endpoint,\n"
        "acknowledge them after COMMIT on its acks endpoint and answer\n"
        "requests on its control endpoint, until SIGTERM (doc/PROTOCOL.md).\n"
        "\n"
        "  --serve       socket mode: [pipeline] store, acks, control\n"
        "  --db PATH     the database (default: the instance's)\n"
        "  --ops         list the control ops --serve answers, one a line:\n"
        "                the name and its kind (read, write or admin)\n");
    cv_program_usage_common(f, 14, "no summary on stderr");
    fprintf(f,
        "\n"
        "Exit status: 0 all committed (or --serve stopped by SIGTERM), 64\n"
        "usage, 65 some lines rejected or a corrupt database, 66 the\n"
        "database is missing while its journal holds batches, 69 --serve\n"
        "cannot bind its endpoints, 70 internal error, 71 the input or\n"
        "sockets cannot be polled, 73 the dead-letter file cannot be\n"
        "created, 74 I/O error, 75 another writer holds the database, 78\n"
        "configuration problem.\n");
}

/* --ops: store's op table, which doc/PROTOCOL.md must match; needs no
 * instance */
static int list_ops(void)
{
    const cv_control_op *o;
    for (size_t i = 0; (o = cv_store_serve_op(i)); i++)
        printf("%s\t%s\n", o->name, cv_control_kind_name(o->kind));
    return fflush(stdout) == 0 ? 0 : EX_IOERR;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--ops") == 0)
        return list_ops();
    static cv_storeprog_args a;
    static const cv_program_opt opts[] = {
        CV_PROGRAM_STR("db", &a.dbpath),
        CV_PROGRAM_FLAG("serve", &a.serve),
        CV_PROGRAM_END,
    };
    static const cv_program store = {
        .name = "ctxvault-store", .usage = usage, .opts = opts,
        .needs = CV_PROGRAM_NEEDS_KEYRING, .run = cv_storeprog_main, .args = &a,
    };
    return cv_program_main(&store, argc, argv);
}
