/* ctxvault-encrypt - apply the field policy to NDJSON events: encrypt,
 * pseudonymise, generalise, round, drop. A line it cannot process is
 * dead-lettered, never passed on: nothing leaves this filter unprotected. */
#include "net/encrypt.h"
#include "net/program.h"

#include <stdio.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ctxvault-encrypt [--home DIR] [-c FILE] [--policy FILE] [--serve]\n"
        "\n"
        "Read NDJSON events on stdin, apply the field policy to each and\n"
        "write the protected events to stdout. With --serve, take event\n"
        "messages on the instance's encrypt endpoint and pass them on to\n"
        "store's, until SIGTERM.\n"
        "\n"
        "  --serve          socket mode: [pipeline] encrypt -> store\n"
        "  --home DIR       the instance (default $CTXVAULT_HOME or ~/.ctxvault)\n"
        "  -c FILE          configuration file (default HOME/ctxvault.conf)\n"
        "  --policy FILE    policy file (default: the instance's, else built in)\n"
        "  -q, --quiet      no summary on stderr\n"
        "  -h, --help       this help\n"
        "  -V, --version    the version\n"
        "\n"
        "Exit status: 0 all events processed (or --serve stopped by SIGTERM),\n"
        "64 usage, 65 some lines rejected (see the dead-letter file), 69\n"
        "--serve cannot bind its endpoints, 70 internal error, 71 the\n"
        "sockets cannot be polled, 73 the dead-letter file cannot be\n"
        "created, 74 input or output failed, 75 the data-key store failed\n"
        "(the lines before it were written), 78 configuration, policy or\n"
        "keyring problem. With --serve, a keyring that cannot be loaded is\n"
        "waited for: nothing is taken from ingest meanwhile.\n");
}

int main(int argc, char **argv)
{
    static cv_encrypt_args a;
    static const cv_program_opt opts[] = {
        CV_PROGRAM_STR("policy", &a.policy_file),
        CV_PROGRAM_FLAG("serve", &a.serve),
        CV_PROGRAM_END,
    };
    static const cv_program encrypt = {
        .name = "ctxvault-encrypt", .usage = usage, .opts = opts,
        .needs = CV_PROGRAM_NEEDS_SODIUM, .check = cv_encrypt_check,
        .run = cv_encrypt_main, .args = &a,
    };
    return cv_program_main(&encrypt, argc, argv);
}
