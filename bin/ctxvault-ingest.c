/* ctxvault-ingest - accept NDJSON events: validate each line, give it an
 * id, and pass it on. Bad lines are reported, dead-lettered and counted;
 * the stream goes on. */
#include "config.h"
#include "deadletter.h"
#include "event.h"
#include "fieldcrypt.h"
#include "keyring.h"
#include "ndjson.h"
#include "progress.h"
#include "util.h"

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
        "usage: ctxvault-ingest --stdout [--home DIR] [-c FILE] [FILE...]\n"
        "\n"
        "Read NDJSON events from FILEs (or stdin, or '-'), validate them, give\n"
        "each an id and write the normalised events to stdout.\n"
        "\n"
        "  --stdout      write events to stdout (a filter in a shell pipeline)\n"
        "  --home DIR    the instance (default $CTXVAULT_HOME or ~/.ctxvault)\n"
        "  -c FILE       configuration file (default HOME/ctxvault.conf)\n"
        "  -q, --quiet   no summary on stderr\n"
        "  -h, --help    this help\n"
        "  -V, --version the version\n"
        "\n"
        "Exit status: 0 all lines accepted, 65 some rejected (see the\n"
        "dead-letter file), 66 an input is missing, 74 output failed.\n");
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

static int ingest_fd(ingest *in, int fd, const char *source)
{
    return cv_ndjson_each(fd, source, in->max_line, in->dl, &in->progress,
                          ingest_line, in);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"stdout", no_argument, NULL, 's'},
        {"home", required_argument, NULL, 'H'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *home = NULL, *conf = NULL;
    bool to_stdout = false, quiet = false;
    int c;

    umask(077);
    cv_log_init(argv[0]);
    while ((c = getopt_long(argc, argv, "c:qhV", opts, NULL)) != -1) {
        switch (c) {
        case 's': to_stdout = true; break;
        case 'H': home = optarg; break;
        case 'c': conf = optarg; break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("ctxvault-ingest %s\n", CV_VERSION); return 0;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (!to_stdout) {
        cv_err("no destination: give --stdout to write events to stdout "
               "(sending into a running pipeline needs its sockets)");
        return EX_USAGE;
    }
    cv_install_signals();

    cv_config cfg;
    if (cv_config_load(&cfg, home, conf) > 0) {
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
        .rules = {.max_depth = cfg.max_depth, .id_key = cv_keyring_id_key(kr)},
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
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    cv_grow_pipe(1);
    cv_progress_init(&in.progress, "ingest");

    int status = 0;
    bool missing = false;
    if (optind == argc) {
        status = ingest_fd(&in, 0, "stdin");
    } else {
        for (int i = optind; i < argc && !status && !cv_stop_requested; i++) {
            if (strcmp(argv[i], "-") == 0) {
                status = ingest_fd(&in, 0, "stdin");
                continue;
            }
            int fd = open(argv[i], O_RDONLY | O_CLOEXEC);
            struct stat st;
            if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
                close(fd);
                fd = -1;
                errno = EISDIR;
            }
            if (fd < 0) {
                cv_err("cannot open %s: %s", argv[i], strerror(errno));
                missing = true;
                continue;
            }
            status = ingest_fd(&in, fd, argv[i]);
            close(fd);
        }
    }
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
