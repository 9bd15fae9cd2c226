/* ctxvault-sync - keep users' contexts in step between ctxvault instances:
 * a user's devices, and the relay they meet at (doc/SYNC.md).
 *
 * Each instance's store keeps a version vector per context and tombstones
 * for deletions; this program asks its peers, over ZeroMQ with CURVE and
 * their keys pinned in [sync], for the versions its knowledge lacks, and
 * sends them the ones theirs lacks, applying everything through store.
 * Payloads are sealed end to end with the group's key: a relay stores and
 * forwards what it cannot read. */
#include "base/config.h"
#include "net/sock.h"
#include "sync/syncd.h"
#include "base/util.h"

#include <getopt.h>
#include <stdio.h>
#include <sys/stat.h>

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
        "                   failed six times in a row\n"
        "  --home DIR       the instance (default $CTXVAULT_HOME or ~/.ctxvault)\n"
        "  -c FILE          configuration file (default HOME/ctxvault.conf)\n"
        "  -q, --quiet      no progress lines on stderr\n"
        "  -h, --help       this help\n"
        "  -V, --version    the version\n"
        "\n"
        "Exit status: 0 stopped by SIGTERM (or --once done), 64 usage, 69 a\n"
        "peer or store unreachable (--once), 78 configuration problem.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"once", no_argument, NULL, '1'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *home = NULL, *conf = NULL;
    bool once = false, quiet = false;
    int c;
    umask(077);
    cv_log_init(argv[0]);
    cv_install_signals();
    while ((c = getopt_long(argc, argv, "c:qhV", opts, NULL)) != -1) {
        switch (c) {
        case 'H': home = optarg; break;
        case 'c': conf = optarg; break;
        case '1': once = true; break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ctxvault-sync %s\n", CV_VERSION); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return EX_USAGE;
    }
    cv_config cfg;
    if (cv_config_load_instance(&cfg, home, conf)) {
        cv_config_free(&cfg);
        return EX_CONFIG;
    }
    int status;
    if (!cfg.sync_device && !cfg.sync_relay) {
        /* one program list for every instance: an instance that does not
         * sync runs this idle rather than a service that keeps failing */
        if (once) {
            cv_err("sync is off: set [sync] device (or relay = yes)");
            status = EX_CONFIG;
        } else {
            if (!quiet)
                cv_info("sync is off ([sync] device and relay unset): idle");
            while (!cv_stop_requested)
                cv_nap_ms(1000);
            status = 0;
        }
        cv_config_free(&cfg);
        return status;
    }
    char err[512];
    cv_sock_init();
    cv_syncd *d = cv_syncd_new(&cfg, conf, quiet, &status, err, sizeof err);
    if (!d) {
        cv_err("%s", err);
    } else {
        status = cv_syncd_run(d, once);
        cv_syncd_destroy(&d);
    }
    cv_sock_shutdown();
    if (!quiet && !status && !once)
        cv_info("stopped");
    cv_config_free(&cfg);
    return status;
}
