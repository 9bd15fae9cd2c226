/* cvsend.c - a tiny sender for tests and benches: pushes NDJSON events
 * (each with an "id", as ctxvault-ingest --stdout writes them) into the
 * running pipeline's encrypt endpoint in wire.h's event messages, listens
 * for store's acks on its topic, resends what is not acknowledged in
 * time, and prints the counts. Not ingest: no spool, no validation.
 *
 *   cvsend [--home DIR] [--source NAME] [--batch N] [--timeout SECONDS]
 *          [--resend MS] [--to encrypt|store] [--bad-key] [--garbage N] FILE
 *
 * Prints "sent N acked A naked K missing M seconds S rate R" on stdout and
 * each NAK as "nak ID REASON" on stderr. Exit 0 when every distinct id got
 * an ACK or a NAK, 1 when some are missing at the timeout, 64 usage, 66 no
 * input, 69 sockets. --bad-key uses a client key the servers do not know
 * (CURVE endpoints); --garbage sends N malformed messages first. */
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

typedef struct {
    char *line;
    size_t len;
    int state; /* 0 waiting, 1 acked, 2 naked (on the id's first line) */
    bool rep;  /* the first line of its id */
} item;

static void id_of(const item *x, char *id, size_t cap)
{
    cv_jfield f = {.name = "id"};
    char err[128];
    *id = '\0';
    if (cv_jscan_object(x->line, x->len, 64, false, &f, 1, err, sizeof err) >= 0)
        cv_jscan_field_string(&f, id, cap);
}

static zsock_t *connect_bad_key(const cv_config *cfg, int type, const char *ep)
{
    zsock_t *s = zsock_new(type);
    zcert_t *mine = zcert_new();
    char *dir = cv_sock_curve_dir(cfg);
    char *path = cv_fmt("%s/server.cert", dir);
    zcert_t *server = zcert_load(path);
    if (!s || !mine || !server) {
        fprintf(stderr, "cvsend: cannot set up a CURVE client (%s)\n", path);
        exit(69);
    }
    zcert_apply(mine, s);
    zsock_set_curve_serverkey(s, zcert_public_txt(server));
    zcert_destroy(&mine);
    zcert_destroy(&server);
    free(dir);
    free(path);
    if (zsock_connect(s, "%s", ep) < 0) {
        fprintf(stderr, "cvsend: cannot connect to %s\n", ep);
        exit(69);
    }
    return s;
}

static void send_batch(zsock_t *push, const char *source, item **b, size_t n)
{
    zmsg_t *m = zmsg_new();
    zmsg_addstr(m, CV_WIRE_VERSION);
    zmsg_addstr(m, CV_WIRE_EVENTS);
    zmsg_addstr(m, source);
    for (size_t i = 0; i < n; i++)
        zmsg_addmem(m, b[i]->line, b[i]->len);
    zmsg_send(&m, push);
}

typedef struct {
    zhash_t *ids;
    size_t acked, naked;
} answers;

/* An answer for an id: the first one counts. */
static bool on_ack(void *arg, const char *id, bool nak, const char *reason)
{
    answers *a = arg;
    item *x = zhash_lookup(a->ids, id);
    if (!x || x->state != 0)
        return false;
    x->state = nak ? 2 : 1;
    if (nak) {
        a->naked++;
        fprintf(stderr, "nak %s %s\n", id, reason);
    } else {
        a->acked++;
    }
    return true;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"source", required_argument, NULL, 's'},
        {"batch", required_argument, NULL, 'b'},
        {"timeout", required_argument, NULL, 't'},
        {"resend", required_argument, NULL, 'r'},
        {"to", required_argument, NULL, 'o'},
        {"bad-key", no_argument, NULL, 'k'},
        {"garbage", required_argument, NULL, 'g'},
        {NULL, 0, NULL, 0},
    };
    const char *home = NULL, *source = "cvsend", *to = "encrypt";
    int batch = 500, timeout_s = 30, resend_ms = 2000, garbage = 0, c;
    bool bad_key = false;
    cv_log_init(argv[0]);
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'H': home = optarg; break;
        case 's': source = optarg; break;
        case 'b': batch = atoi(optarg); break;
        case 't': timeout_s = atoi(optarg); break;
        case 'r': resend_ms = atoi(optarg); break;
        case 'o': to = optarg; break;
        case 'k': bad_key = true; break;
        case 'g': garbage = atoi(optarg); break;
        default: return 64;
        }
    }
    if (optind != argc - 1 || batch < 1 || timeout_s < 1 || resend_ms < 1) {
        fprintf(stderr, "usage: cvsend [--home DIR] [--source NAME] [--batch N] "
                "[--timeout S] [--resend MS] [--to encrypt|store] [--bad-key] "
                "[--garbage N] FILE\n");
        return 64;
    }
    cv_config cfg;
    if (cv_config_load(&cfg, home, NULL) > 0)
        return 78;
    size_t len;
    char *text = cv_read_file(argv[optind], (size_t)1 << 32, &len);
    if (!text) {
        fprintf(stderr, "cvsend: cannot read %s: %s\n", argv[optind], strerror(errno));
        return 66;
    }
    /* the events, by id (a repeated id is sent as often as it appears) */
    zhash_t *ids = zhash_new();
    size_t n = 0, cap = 1024;
    item *items = cv_malloc(cap * sizeof *items);
    for (char *p = text, *nl; p < text + len; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(text + len - p));
        if (!nl)
            nl = text + len;
        size_t l = (size_t)(nl - p);
        if (l && p[l - 1] == '\r')
            l--;
        if (l == 0)
            continue;
        cv_jfield f = {.name = "id"};
        char err[128], id[256];
        if (cv_jscan_object(p, l, 64, false, &f, 1, err, sizeof err) < 0 ||
            !cv_jscan_field_string(&f, id, sizeof id) || !*id) {
            fprintf(stderr, "cvsend: %s: a line without an \"id\" (skipped)\n",
                    argv[optind]);
            continue;
        }
        if (n == cap)
            items = cv_realloc(items, (cap *= 2) * sizeof *items);
        items[n++] = (item){.line = p, .len = l};
    }
    for (size_t i = 0; i < n; i++) {
        char id[256];
        id_of(&items[i], id, sizeof id);
        items[i].rep = zhash_insert(ids, id, &items[i]) == 0;
    }
    size_t distinct = zhash_size(ids);

    cv_sock_init();
    char err[512];
    const char *ep = strcmp(to, "store") == 0 ? cfg.ep_store : cfg.ep_encrypt;
    zsock_t *sub = bad_key ? connect_bad_key(&cfg, ZMQ_SUB, cfg.ep_acks)
                           : cv_sock_connect(&cfg, ZMQ_SUB, cfg.ep_acks, err, sizeof err);
    if (!sub) {
        fprintf(stderr, "cvsend: %s\n", err);
        return 69;
    }
    zsock_set_rcvhwm(sub, 0);
    zsock_set_subscribe(sub, source);
    zsock_t *push = bad_key ? connect_bad_key(&cfg, ZMQ_PUSH, ep)
                            : cv_sock_connect(&cfg, ZMQ_PUSH, ep, err, sizeof err);
    if (!push) {
        fprintf(stderr, "cvsend: %s\n", err);
        return 69;
    }
    zsock_set_sndtimeo(push, timeout_s * 1000);
    zclock_sleep(100); /* let the SUB join before the first acks */

    for (int g = 0; g < garbage; g++) {
        zmsg_t *m = zmsg_new();
        zmsg_addstr(m, g % 3 == 0 ? "NOTCTXV" : CV_WIRE_VERSION);
        if (g % 3 != 2)
            zmsg_addstr(m, g % 3 == 1 ? "XX" : CV_WIRE_EVENTS);
        zmsg_send(&m, push);
    }

    int64_t t0 = cv_mono_ms(), deadline = t0 + (int64_t)timeout_s * 1000;
    answers ans = {.ids = ids};
    size_t sent = 0;
    item **b = cv_malloc((size_t)batch * sizeof *b);
    int64_t last_progress = t0;
    bool first = true;
    while ((ans.acked + ans.naked < distinct) && cv_mono_ms() < deadline) {
        if (first || cv_mono_ms() - last_progress >= resend_ms) {
            /* everything not yet answered (all of it the first time) */
            size_t k = 0;
            for (size_t i = 0; i < n; i++) {
                if (!first && (items[i].state || !items[i].rep))
                    continue;
                b[k++] = &items[i];
                sent++;
                if (k == (size_t)batch) {
                    send_batch(push, source, b, k);
                    k = 0;
                    read_acks(sub, 0, on_ack, &ans);
                }
            }
            if (k)
                send_batch(push, source, b, k);
            first = false;
            last_progress = cv_mono_ms();
        }
        if (read_acks(sub, 100, on_ack, &ans))
            last_progress = cv_mono_ms();
    }
    /* the same id may appear more than once in FILE: count lines */
    size_t a = 0, k = 0, missing = 0;
    for (size_t i = 0; i < n; i++) {
        char id[256];
        id_of(&items[i], id, sizeof id);
        item *x = zhash_lookup(ids, id);
        if (x->state == 1)
            a++;
        else if (x->state == 2)
            k++;
        else
            missing++;
    }
    double secs = (double)(cv_mono_ms() - t0) / 1000.0;
    printf("sent %zu acked %zu naked %zu missing %zu seconds %.3f rate %.0f\n",
           sent, a, k, missing, secs, secs > 0 ? (double)n / secs : 0.0);
    free(b);
    zsock_destroy(&push);
    zsock_destroy(&sub);
    cv_sock_shutdown();
    zhash_destroy(&ids);
    free(items);
    free(text);
    cv_config_free(&cfg);
    return missing ? 1 : 0;
}
