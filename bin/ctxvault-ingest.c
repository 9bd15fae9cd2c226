/* ctxvault-ingest - accept NDJSON events: validate each line, give it an
 * id, and pass it on. Bad lines are reported, dead-lettered and counted;
 * the stream goes on.
 *
 * Three ways to pass events on: --stdout (a filter), the default client
 * mode (into the running pipeline, waiting until store has them), and
 * --serve (a service taking producers' events on a socket). The last two
 * spool every event before sending it: lib/net/ingest.c, lib/net/sender.c. */
#include "net/ingest.h"
#include "net/program.h"

#include <stdio.h>
#include <sysexits.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ctxvault-ingest [--kind KIND] [--source NAME] [--timeout SECONDS] [FILE...]\n"
        "       ctxvault-ingest --stdout [--kind KIND] [FILE...]\n"
        "       ctxvault-ingest --serve [--kind KIND] [--drain SECONDS]\n"
        "\n"
        "Read NDJSON events from FILEs (or stdin, or '-'), validate them and\n"
        "give each an id. By default, send them into the running pipeline\n"
        "and wait until store has committed every one; with --stdout, write\n"
        "them to stdout instead; with --serve, take events from producers\n"
        "on the instance's ingest socket until stopped.\n"
        "\n"
        "  --stdout          write events to stdout (a filter in a shell pipeline)\n"
        "  --serve           run as the pipeline's ingest service (source from\n"
        "                    the config); on SIGTERM, drain and exit 0\n"
        "  --source NAME     client mode: the spool and ack topic to use (default\n"
        "                    SOURCE-client, SOURCE from the config). One client\n"
        "                    per name at a time; events a killed or timed-out\n"
        "                    client left unacknowledged are resent by the next\n"
        "                    client with the same name\n"
        "  --timeout SECONDS client mode: give up waiting after this long (exit\n"
        "                    75; the events stay spooled); default 0, no limit\n"
        "  --kind KIND       the kind of an object that has no \"kind\" member (a\n"
        "                    stream of one kind, such as context or profile);\n"
        "                    without it such an object is rejected\n"
        "  --drain SECONDS   service mode: on SIGTERM wait this long for\n"
        "                    outstanding acks (default 5); the rest stay spooled\n");
    cv_program_usage_common(f, 18, "no summary on stderr");
    fprintf(f,
        "\n"
        "Exit status: 0 all lines accepted (and, sending, acknowledged), 64\n"
        "usage, 65 some rejected (see the dead-letter file) here or\n"
        "downstream, 66 an input is missing, 69 --serve cannot bind its\n"
        "endpoint, 70 internal error, 73 the dead-letter file cannot be\n"
        "created, 74 output, spool or socket failed, 75 timed out or\n"
        "interrupted with events unacknowledged, or the spool is in use, 78\n"
        "configuration or keyring problem.\n");
}

int main(int argc, char **argv)
{
    static cv_ingest_args a = {.drain_ms = 5000};
    static const cv_program_opt opts[] = {
        CV_PROGRAM_FLAG("stdout", &a.to_stdout),
        CV_PROGRAM_FLAG("serve", &a.serve),
        CV_PROGRAM_STR("source", &a.source),
        CV_PROGRAM_FUNC("timeout", cv_ingest_parse_seconds, &a.timeout_ms),
        CV_PROGRAM_FUNC("drain", cv_ingest_parse_seconds, &a.drain_ms),
        CV_PROGRAM_STR("kind", &a.kind),
        CV_PROGRAM_END,
    };
    static const cv_program ingest = {
        .name = "ctxvault-ingest", .usage = usage, .opts = opts,
        .needs = CV_PROGRAM_NEEDS_KEYRING, .check = cv_ingest_check,
        .run = cv_ingest_main, .args = &a,
    };
    return cv_program_main(&ingest, argc, argv);
}
