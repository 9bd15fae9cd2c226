/* ctxvault-metrics - collect every program's reports and serve them:
 * /metrics in Prometheus' text format, /health as JSON, /status for people,
 * over HTTP (libmicrohttpd) on loopback unless told otherwise, and as a
 * node_exporter textfile when asked. It only listens: a program never
 * waits for it, and its absence loses nothing but the figures. */
#include "net/program.h"
#include "ops/metricsd.h"

#include <stdio.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ctxvault-metrics [--home DIR] [-c FILE] [--listen ADDR:PORT]\n"
        "                        [--textfile PATH] [--expect \"PROGRAM ...\"] [--once]\n"
        "\n"
        "Collect the reports every ctxvault program publishes on [pipeline]\n"
        "metrics, and serve them over HTTP until SIGTERM:\n"
        "  /metrics   Prometheus text format (ctxvault_* metrics)\n"
        "  /health    JSON: \"ok\" or \"degraded\", with a reason per program\n"
        "  /status    a short page for a terminal: health, each program, and\n"
        "             the health record (capacity, performance, reliability,\n"
        "             security, last sync); /status?format=json: the record\n"
        "             as JSON\n"
        "\n"
        "  --listen ADDR:PORT   HTTP address ([metrics] listen = 127.0.0.1:auto:\n"
        "                       a free port, written to RUN/metrics.listen\n"
        "                       where ctxvault status finds it; port 0: no HTTP)\n"
        "  --textfile PATH      also keep PATH (node_exporter's textfile\n"
        "                       collector), rewritten atomically each interval\n"
        "  --expect LIST        the services health waits for (default: the\n"
        "                       supervised six)\n"
        "  --once               collect for one stale interval, print\n"
        "                       /metrics on stdout, exit\n"
        "  --list               every metric ctxvault exports: name, type, the\n"
        "                       programs that export it, help\n"
        "  --home DIR, -c FILE  the instance, its configuration file\n"
        "  -q, --quiet          no log of what it does\n"
        "  -h, --help, -V, --version\n"
        "\n"
        "Exit status: 0 stopped by SIGTERM, 64 usage, 69 the address or the\n"
        "endpoint cannot be bound, 71 the socket cannot be polled, 73 the\n"
        "textfile or RUN/metrics.listen cannot be written, 74 I/O error, 78\n"
        "configuration problem.\n");
}

int main(int argc, char **argv)
{
    static cv_metricsd_args a = {.expect = CV_METRICSD_EXPECT};
    static const cv_program_opt opts[] = {
        CV_PROGRAM_STR("listen", &a.listen),
        CV_PROGRAM_STR("textfile", &a.textfile),
        CV_PROGRAM_STR("expect", &a.expect),
        CV_PROGRAM_FLAG("once", &a.once),
        CV_PROGRAM_EXIT("list", cv_metricsd_list),
        CV_PROGRAM_END,
    };
    static const cv_program metrics = {
        .name = "ctxvault-metrics", .usage = usage, .opts = opts,
        .run = cv_metricsd_main, .args = &a,
    };
    return cv_program_main(&metrics, argc, argv);
}
