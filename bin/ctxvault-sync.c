/* ctxvault-sync - keep users' contexts in step between ctxvault instances:
 * a user's devices, and the relay they meet at (doc/SYNC.md).
 *
 * Each instance's store keeps a version vector per context and tombstones
 * for deletions; this program asks its peers, over ZeroMQ with CURVE and
 * their keys pinned in [sync], for the versions its knowledge lacks, and
 * sends them the ones theirs lacks, applying everything through store.
 * Payloads are sealed end to end with the group's key: a relay stores and
 * forwards what it cannot read. */
#include "net/program.h"
#include "sync/syncd.h"

#include <stdio.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ctxvault-sync [--home DIR] [-c FILE] [--once] [-q]\n"
        "\n"
        "Keep this instance's contexts in step with its peers ([sync] in the\n"
        "config): pull what they hold that this one lacks, push what they\n"
        "lack, as soon as either changes, until SIGTERM. A peer that is down\n"
        "is retried with exponential back-off and jitter; what it lacks waits\n"
        "in the database, so a restart loses nothing. With [sync] device and\n"
        "relay unset, sync is off and the service waits idle for SIGTERM.\n"
        "\n"
        "  --once           one exchange with every peer (one pull, pushes until\n"
        "                   it lacks nothing), then exit: 0, or 69 when a peer\n"
        "                   failed six times in a row\n");
    cv_program_usage_common(f, 17, "no progress lines on stderr");
    fprintf(f,
        "\n"
        "Exit status: 0 stopped by SIGTERM (or --once done), 64 usage, 69 a\n"
        "peer or store unreachable (--once), 78 configuration problem.\n");
}

int main(int argc, char **argv)
{
    static cv_syncd_args a;
    static const cv_program_opt opts[] = {
        CV_PROGRAM_FLAG("once", &a.once),
        CV_PROGRAM_END,
    };
    static const cv_program sync = {
        .name = "ctxvault-sync", .usage = usage, .opts = opts,
        .run = cv_syncd_main, .args = &a,
    };
    return cv_program_main(&sync, argc, argv);
}
