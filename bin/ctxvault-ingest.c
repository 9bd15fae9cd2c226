/* ctxvault-ingest - accept NDJSON events: validate each line, give it an
 * id, and pass it on. Bad lines are reported, dead-lettered and counted;
 * the stream goes on.
 *
 * Three ways to pass events on: --stdout (a filter), the default client
 * mode (into the running pipeline, waiting until store has them), and
 * --serve (a service taking producers' events on a socket). The last two
 * spool every event before sending it: lib/net/ingest.c, lib/net/sender.c. */
#include "base/config.h"
#include "net/deadletter.h"
#include "base/event.h"
#include "crypto/fieldcrypt.h"
#include "net/ingest.h"
#include "net/metrics.h"
#include "crypto/keyring.h"
#include "net/ndjson.h"
#include "base/progress.h"
#include "net/sock.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
        "                    outstanding acks (default 5); the rest stay spooled\n"
        "  --home DIR        the instance (default $CTXVAULT_HOME or ~/.ctxvault)\n"
        "  -c FILE           configuration file (default HOME/ctxvault.conf)\n"
        "  -q, --quiet       no summary on stderr\n"
        "  -h, --help        this help\n"
        "  -V, --version     the version\n"
        "\n"
        "Exit status: 0 all lines accepted (and, sending, acknowledged), 64\n"
        "usage, 65 some rejected (see the dead-letter file) here or\n"
        "downstream, 66 an input is missing, 69 --serve cannot bind its\n"
        "endpoint, 70 internal error, 73 the dead-letter file cannot be\n"
        "created, 74 output, spool or socket failed, 75 timed out or\n"
        "interrupted with events unacknowledged, or the spool is in use, 78\n"
        "configuration or keyring problem.\n");
}

/* --timeout/--drain: plain seconds, or a duration such as 500ms or 2m. */
static int64_t parse_seconds(const char *opt, const char *v)
{
    int64_t n;
    if (cv_parse_int(v, 0, 86400 * 365, &n))
        return n * 1000;
    n = cv_parse_duration(v);
    if (n < 0)
        cv_die(EX_USAGE, "%s '%s' is not a number of seconds", opt, v);
    return n;
}

typedef struct {
    cv_event_rules rules;
    size_t max_line;
    cv_deadletter *dl;
    FILE *out;
    uint64_t accepted;
    cv_progress progress;
} ingest;

/* One line: normalise it and write it out, or dead-letter it. */
static int ingest_line(void *arg, const char *source, uint64_t lineno,
                       const char *line, size_t len)
{
    ingest *in = arg;
    char reason[256], *norm;
    size_t nlen;
    if (cv_event_normalise(&in->rules, line, len, cv_now_ms(), &norm, &nlen,
                           reason, sizeof reason) < 0) {
        cv_deadletter_put(in->dl, source, lineno, reason, line, len, false);
        return 0;
    }
    norm[nlen] = '\n';
    size_t w = fwrite(norm, 1, nlen + 1, in->out);
    free(norm);
    if (w != nlen + 1) {
        cv_err("cannot write to stdout: %s", strerror(errno));
        return EX_IOERR;
    }
    in->accepted++;
    return 0;
}

static int ingest_fd_cb(void *arg, int fd, const char *source)
{
    ingest *in = arg;
    return cv_ndjson_each(fd, source, in->max_line, in->dl, &in->progress,
                          ingest_line, in);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"stdout", no_argument, NULL, 's'},
        {"serve", no_argument, NULL, 'S'},
        {"source", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"drain", required_argument, NULL, 'd'},
        {"kind", required_argument, NULL, 'k'},
        {"home", required_argument, NULL, 'H'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *home = NULL, *conf = NULL, *source = NULL, *kind = NULL;
    bool to_stdout = false, serve = false, quiet = false;
    int64_t timeout_ms = 0, drain_ms = 5000;
    int c;

    umask(077);
    cv_log_init(argv[0]);
    cv_install_signals(); /* first: a stop may come at any moment */
    while ((c = getopt_long(argc, argv, "c:qhV", opts, NULL)) != -1) {
        switch (c) {
        case 's': to_stdout = true; break;
        case 'S': serve = true; break;
        case 'n': source = optarg; break;
        case 't': timeout_ms = parse_seconds("--timeout", optarg); break;
        case 'd': drain_ms = parse_seconds("--drain", optarg); break;
        case 'k': kind = optarg; break;
        case 'H': home = optarg; break;
        case 'c': conf = optarg; break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ctxvault-ingest %s\n", CV_VERSION); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (to_stdout && serve) {
        cv_err("--stdout and --serve exclude each other");
        return EX_USAGE;
    }
    if (serve && optind != argc) {
        cv_err("--serve takes no files: producers send on the ingest socket");
        return EX_USAGE;
    }
    if (source && (to_stdout || serve)) {
        cv_err("--source is for client mode (--serve uses the config's source)");
        return EX_USAGE;
    }
    if (source && (!*source || strlen(source) > 64 ||
                   strspn(source, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "0123456789-_.") != strlen(source))) {
        cv_err("--source '%s' must be 1 to 64 letters, digits, '-', '_' or '.'",
               source);
        return EX_USAGE;
    }

    if (kind && (!*kind || strlen(kind) > CV_KIND_MAX)) {
        cv_err("--kind '%s' must be 1 to %d bytes", kind, CV_KIND_MAX);
        return EX_USAGE;
    }
    if (kind && strcspn(kind, "\"\\") != strlen(kind)) {
        cv_err("--kind '%s' may not hold quotes or backslashes", kind);
        return EX_USAGE;
    }

    cv_config cfg;
    if (cv_config_load_instance(&cfg, home, conf) > 0) {
        cv_config_free(&cfg);
        return EX_CONFIG;
    }
    char err[512];
    if (cv_fieldcrypt_init() < 0) {
        cv_err("cannot initialise libsodium");
        cv_config_free(&cfg);
        return EX_SOFTWARE;
    }
    cv_keyring *kr = cv_keyring_load(cfg.keyring_file, err, sizeof err);
    if (!kr) {
        cv_err("%s", err);
        cv_config_free(&cfg);
        return EX_CONFIG;
    }
    ingest in = {
        .rules = {.max_depth = cfg.max_depth, .id_key = cv_keyring_id_key(kr),
                  .default_kind = kind},
        .max_line = (size_t)cfg.max_line,
        .out = stdout,
    };
    in.dl = cv_deadletter_open(cfg.deadletter_dir, "ingest", kr);
    if (!in.dl) {
        cv_err("cannot open dead-letter file in %s: %s", cfg.deadletter_dir,
               strerror(errno));
        cv_keyring_destroy(&kr);
        cv_config_free(&cfg);
        return EX_CANTCREAT;
    }
    if (!to_stdout) {
        /* into the pipeline: spooled, sent, acknowledged */
        cv_sock_init();
        cv_install_signals(); /* again: CZMQ's set-up may reset them */
        char *client_source = cv_fmt("%s-client", cfg.source);
        cv_metrics *mx = cv_metrics_new(&cfg, "ctxvault-ingest", serve);
        cv_deadletter_set_metrics(in.dl, mx);
        cv_ingest_opts o = {
            .cfg = &cfg,
            .rules = in.rules,
            .dl = in.dl,
            .kr = kr,
            .source = serve ? cfg.source : source ? source : client_source,
            .timeout_ms = timeout_ms,
            .drain_ms = drain_ms,
            .quiet = quiet,
            .mx = mx,
        };
        int rc = serve ? cv_ingest_serve(&o)
                       : cv_ingest_client(&o, argv + optind, argc - optind);
        cv_metrics_destroy(&mx);
        free(client_source);
        cv_sock_shutdown();
        cv_deadletter_close(&in.dl);
        cv_keyring_destroy(&kr);
        cv_config_free(&cfg);
        return rc;
    }
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    cv_grow_pipe(1);
    cv_progress_init(&in.progress, "ingest");

    bool missing = false;
    int status = cv_ndjson_each_input(argv + optind, argc - optind, ingest_fd_cb, &in,
                               &missing);
    cv_progress_done(&in.progress);
    if (fflush(stdout) != 0 && !status) {
        cv_err("cannot write to stdout: %s", strerror(errno));
        status = EX_IOERR;
    }
    uint64_t rejected = cv_deadletter_count(in.dl);
    if (rejected && !quiet)
        cv_warn("%llu of %llu lines rejected; they are in %s",
                (unsigned long long)rejected,
                (unsigned long long)(in.accepted + rejected),
                cv_deadletter_path(in.dl));
    cv_deadletter_close(&in.dl);
    cv_keyring_destroy(&kr);
    cv_config_free(&cfg);
    if (status)
        return status;
    if (missing)
        return EX_NOINPUT;
    return rejected ? EX_DATAERR : 0;
}
