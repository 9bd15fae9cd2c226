/* cvlatency.c - a bench probe: sends events into the running pipeline at
 * a steady rate (through encrypt, as ingest would) and measures, for each
 * event, the time from its send to store's acknowledgement after COMMIT.
 * Not ingest: no spool; an event whose ack never comes is counted as lost
 * to the probe, not resent.
 *
 *   cvlatency [--home DIR] [--rate N] [--seconds S] [--batch B] FILE
 *
 * FILE holds events with an "id" (ctxvault-ingest --stdout writes them);
 * they are sent in order, B per message (default 10), N per second
 * (default 1000), for S seconds (default 10) or until FILE ends. Prints
 * "sent N acked A p50 X p99 Y max Z" (milliseconds) on stdout. Exit 0,
 * 1 when some acks never came, 64 usage, 66 no input, 69 sockets. */
#include "base/config.h"
#include "base/jscan.h"
#include "net/sock.h"
#include "base/util.h"
#include "net/wire.h"

#include "acks.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SOURCE "latency-probe"

typedef struct {
    const char *line;
    size_t len;
    int64_t sent_us;   /* 0: not sent */
    int64_t lat_us;    /* -1: no ack yet */
} item;

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* An ack for a probe event: its latency, the first time. */
static bool on_ack(void *arg, const char *id, bool nak, const char *reason)
{
    (void)nak;
    (void)reason;
    item *x = zhash_lookup(arg, id);
    if (!x || !x->sent_us || x->lat_us >= 0)
        return false;
    x->lat_us = mono_us() - x->sent_us;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"rate", required_argument, NULL, 'r'},
        {"seconds", required_argument, NULL, 's'},
        {"batch", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    const char *home = NULL;
    int rate = 1000, seconds = 10, batch = 10, c;
    cv_log_init(argv[0]);
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'H': home = optarg; break;
        case 'r': rate = atoi(optarg); break;
        case 's': seconds = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        default: return 64;
        }
    }
    if (optind != argc - 1 || rate < 1 || seconds < 1 || batch < 1) {
        fprintf(stderr, "usage: cvlatency [--home DIR] [--rate N] [--seconds S] "
                "[--batch B] FILE\n");
        return 64;
    }
    cv_config cfg;
    if (cv_config_load(&cfg, home, NULL) > 0)
        return 78;
    size_t len;
    char *text = cv_read_file(argv[optind], (size_t)1 << 32, &len);
    if (!text) {
        fprintf(stderr, "cvlatency: cannot read %s: %s\n", argv[optind], strerror(errno));
        return 66;
    }
    size_t want = (size_t)rate * (size_t)seconds, n = 0;
    item *items = cv_calloc(want, sizeof *items);
    zhash_t *ids = zhash_new();
    for (char *p = text, *nl; p < text + len && n < want; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + len - p));
        if (!nl)
            nl = text + len;
        cv_jfield f = {.name = "id"};
        char err[128], id[256];
        size_t l = (size_t)(nl - p);
        if (l == 0 || cv_jscan_object(p, l, 64, false, &f, 1, err, sizeof err) < 0 ||
            !cv_jscan_field_string(&f, id, sizeof id) || !*id)
            continue;
        items[n] = (item){.line = p, .len = l, .lat_us = -1};
        if (zhash_insert(ids, id, &items[n]) == 0)
            n++;
    }

    cv_sock_init();
    char err[512];
    zsock_t *sub = cv_sock_connect(&cfg, ZMQ_SUB, cfg.ep_acks, err, sizeof err);
    zsock_t *push = sub ? cv_sock_connect(&cfg, ZMQ_PUSH, cfg.ep_encrypt, err, sizeof err) : NULL;
    if (!push) {
        fprintf(stderr, "cvlatency: %s\n", err);
        return 69;
    }
    zsock_set_subscribe(sub, SOURCE);
    zclock_sleep(300); /* let the subscription reach store */

    /* steady sends: message k leaves at start + k * batch / rate */
    int64_t start = mono_us(), step = (int64_t)batch * 1000000 / rate;
    size_t acked = 0;
    for (size_t i = 0, k = 0; i < n; k++) {
        int64_t due = start + (int64_t)k * step;
        for (int64_t now = mono_us(); now < due; now = mono_us())
            acked += read_acks(sub, (int)((due - now + 999) / 1000), on_ack, ids);
        zmsg_t *m = zmsg_new();
        zmsg_addstr(m, CV_WIRE_VERSION);
        zmsg_addstr(m, CV_WIRE_EVENTS);
        zmsg_addstr(m, SOURCE);
        int64_t now = mono_us();
        for (int b = 0; b < batch && i < n; b++, i++) {
            zmsg_addmem(m, items[i].line, items[i].len);
            items[i].sent_us = now;
        }
        zmsg_send(&m, push);
    }
    int64_t until = mono_us() + 10000000;
    while (acked < n && mono_us() < until)
        acked += read_acks(sub, 100, on_ack, ids);

    int64_t *lat = cv_malloc((n ? n : 1) * sizeof *lat);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i].lat_us >= 0)
            lat[m++] = items[i].lat_us;
    qsort(lat, m, sizeof *lat, cmp64);
    double p50 = m ? lat[m / 2] / 1000.0 : -1;
    double p99 = m ? lat[(m * 99) / 100 < m ? (m * 99) / 100 : m - 1] / 1000.0 : -1;
    double mx = m ? lat[m - 1] / 1000.0 : -1;
    printf("sent %zu acked %zu p50 %.1f p99 %.1f max %.1f\n", n, m, p50, p99, mx);
    free(lat);
    zsock_destroy(&push);
    zsock_destroy(&sub);
    zhash_destroy(&ids);
    free(items);
    free(text);
    cv_config_free(&cfg);
    return m == n ? 0 : 1;
}
