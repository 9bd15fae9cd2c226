/* cvproduce.c - a producer for tests and benches: sends NDJSON lines to the
 * running ingest service's producer socket (the instance's [pipeline]
 * ingest endpoint) in wire.h "produce" messages, one batch at a time, and
 * waits for each batch's reply, which ingest sends once the accepted lines
 * are in its spool (fsync'ed): durable from then on.
 *
 *   cvproduce [--home DIR] [--batch N] [--timeout SECONDS] [--wait MS] FILE
 *   cvproduce [--home DIR] [--timeout SECONDS] [--wait MS] --ping
 *
 * --ping asks store's control socket {"op":"ping"} every --wait ms (on a
 * new socket each time) until it answers, prints the reply and exits 0 (1
 * at the timeout): a bench's "store is up" probe.
 *
 * A batch with no reply within --wait ms (default 2000: the service may
 * have been killed) is sent again on a new socket, so a late reply to an
 * earlier send is never taken for a later batch's. Resending is safe: ingest
 * gives a line the same id each time, and store keeps an id once.
 *
 * Prints "batches B lines L accepted A rejected R resent S seconds T" on
 * stdout. Exit 0 when every batch was answered (and nothing rejected),
 * 65 when lines were rejected, 1 at the timeout (default 600 s), 64 usage,
 * 66 no input, 69 sockets. */
#include "base/config.h"
#include "net/control.h"
#include "net/sock.h"
#include "base/util.h"
#include "net/wire.h"

#include <czmq.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static zsock_t *connect_dealer_to(const cv_config *cfg, const char *ep)
{
    char err[512];
    zsock_t *s = cv_sock_connect(cfg, ZMQ_DEALER, ep, err, sizeof err);
    if (!s) {
        fprintf(stderr, "cvproduce: %s\n", err);
        exit(69);
    }
    return s;
}

static zsock_t *connect_dealer(const cv_config *cfg)
{
    return connect_dealer_to(cfg, cfg->ep_ingest);
}

/* Ping store until it answers (through the project's control client):
 * 0, or 1 at the deadline. */
static int ping(const cv_config *cfg, int64_t deadline, long wait_ms)
{
    for (;;) {
        cv_control *c = cv_control_find(cfg, (int)wait_ms);
        if (c) {
            char err[256];
            json_t *req = json_pack("{s:s}", "op", "ping");
            json_t *r = cv_control_call(c, req, (int)wait_ms, err, sizeof err);
            char *text = r ? json_dumps(r, JSON_COMPACT) : NULL;
            printf("%s\n", text ? text : "");
            free(text);
            json_decref(r);
            json_decref(req);
            cv_control_destroy(&c);
            return 0;
        }
        if (cv_mono_ms() > deadline) {
            fprintf(stderr, "cvproduce: store did not answer a ping\n");
            return 1;
        }
    }
}

int main(int argc, char **argv)
{
    const char *home = NULL;
    long batch = 500, timeout_s = 600, wait_ms = 2000;
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"batch", required_argument, NULL, 'b'},
        {"timeout", required_argument, NULL, 't'},
        {"wait", required_argument, NULL, 'w'},
        {"ping", no_argument, NULL, 'p'},
        {NULL, 0, NULL, 0}};
    int c;
    bool do_ping = false;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'H': home = optarg; break;
        case 'b': batch = atol(optarg); break;
        case 't': timeout_s = atol(optarg); break;
        case 'w': wait_ms = atol(optarg); break;
        case 'p': do_ping = true; break;
        default:
            fprintf(stderr, "usage: cvproduce [--home DIR] [--batch N] "
                            "[--timeout SECONDS] [--wait MS] FILE\n");
            return 64;
        }
    }
    if (do_ping && optind == argc && wait_ms >= 1) {
        cv_config pcfg;
        if (cv_config_load(&pcfg, home, NULL) != 0) {
            cv_config_free(&pcfg);
            return 78;
        }
        cv_sock_init();
        int rc = ping(&pcfg, cv_mono_ms() + timeout_s * 1000, wait_ms);
        cv_sock_shutdown();
        cv_config_free(&pcfg);
        return rc;
    }
    if (do_ping || optind + 1 != argc || batch < 1 || wait_ms < 1) {
        fprintf(stderr, "usage: cvproduce [--home DIR] [--batch N] "
                        "[--timeout SECONDS] [--wait MS] FILE\n");
        return 64;
    }
    FILE *in = fopen(argv[optind], "r");
    if (!in) {
        perror(argv[optind]);
        return 66;
    }
    cv_config cfg;
    if (cv_config_load(&cfg, home, NULL) != 0) {
        cv_config_free(&cfg);
        return 78;
    }
    cv_sock_init();
    zsock_t *s = connect_dealer(&cfg);

    int64_t start = cv_mono_ms(), deadline = start + timeout_s * 1000;
    unsigned long long batches = 0, lines = 0, accepted = 0, rejected = 0,
                       resent = 0;
    char **buf = calloc((size_t)batch, sizeof *buf);
    size_t *lens = calloc((size_t)batch, sizeof *lens);
    char *line = NULL;
    size_t cap = 0;
    int status = 0;
    bool eof = false;
    while (!eof && status == 0) {
        long n = 0;
        ssize_t len;
        while (n < batch && (len = getline(&line, &cap, in)) >= 0) {
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                len--;
            if (len == 0)
                continue;
            buf[n] = malloc((size_t)len);
            memcpy(buf[n], line, (size_t)len);
            lens[n++] = (size_t)len;
        }
        if (n < batch)
            eof = true;
        if (n == 0)
            break;
        for (;;) { /* send this batch until it is answered */
            zmsg_t *m = zmsg_new();
            zmsg_addstr(m, CV_WIRE_VERSION);
            zmsg_addstr(m, CV_WIRE_EVENTS);
            for (long i = 0; i < n; i++)
                zmsg_addmem(m, buf[i], lens[i]);
            zmsg_send(&m, s);
            zpoller_t *p = zpoller_new(s, NULL);
            zsock_t *ready = zpoller_wait(p, (int)wait_ms);
            zpoller_destroy(&p);
            if (ready) {
                char *ver = zstr_recv(s);
                char *body = zstr_recv(s);
                json_t *r = body ? json_loads(body, 0, NULL) : NULL;
                json_t *a = r ? json_object_get(r, "accepted") : NULL;
                if (!ver || strcmp(ver, CV_WIRE_VERSION) != 0 || !json_is_integer(a)) {
                    fprintf(stderr, "cvproduce: unexpected reply: %s\n",
                            body ? body : "(none)");
                    status = 70;
                } else {
                    accepted += (unsigned long long)json_integer_value(a);
                    rejected += (unsigned long long)json_integer_value(
                        json_object_get(r, "rejected"));
                }
                json_decref(r);
                zstr_free(&ver);
                zstr_free(&body);
                break;
            }
            if (cv_mono_ms() > deadline) {
                fprintf(stderr, "cvproduce: no reply after %ld s\n", timeout_s);
                status = 1;
                break;
            }
            /* no reply: a new socket, so a late reply to this send is lost
             * with the old one, and send again */
            zsock_destroy(&s);
            s = connect_dealer(&cfg);
            resent++;
        }
        batches++;
        lines += (unsigned long long)n;
        for (long i = 0; i < n; i++)
            free(buf[i]);
    }
    printf("batches %llu lines %llu accepted %llu rejected %llu resent %llu seconds %.2f\n",
           batches, lines, accepted, rejected, resent,
           (double)(cv_mono_ms() - start) / 1000.0);
    if (status == 0 && (rejected > 0 || accepted + rejected != lines))
        status = 65;
    free(line);
    free(buf);
    free(lens);
    fclose(in);
    zsock_destroy(&s);
    cv_sock_shutdown();
    cv_config_free(&cfg);
    return status;
}
