/* cvflood.c - a control-socket client that never reads its replies, for
 * tests: connects a DEALER to the instance's control endpoint, sends
 * COUNT requests (default {"op":"stats"}) as fast as store takes them,
 * then holds the connection open, still not reading, for HOLD seconds,
 * so a test can check that store keeps answering everyone else and that
 * its memory stays bounded (a ROUTER drops replies to a peer whose queue
 * is full instead of waiting for it).
 *
 *   cvflood [--home DIR] [--count N] [--hold SECONDS] [--request JSON]
 *
 * Prints "sent N" on stdout once the requests are sent. Exit 0, or 69
 * when the socket cannot be made or a send times out (10 s). */
#include "base/config.h"
#include "net/sock.h"
#include "base/util.h"
#include "net/wire.h"

#include <czmq.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"count", required_argument, NULL, 'n'},
        {"hold", required_argument, NULL, 'w'},
        {"request", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    const char *home = NULL, *request = "{\"op\":\"stats\"}";
    long count = 10000, hold = 10;
    int c, status = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'H': home = optarg; break;
        case 'n': count = atol(optarg); break;
        case 'w': hold = atol(optarg); break;
        case 'r': request = optarg; break;
        default:
            fprintf(stderr, "usage: cvflood [--home DIR] [--count N] "
                    "[--hold SECONDS] [--request JSON]\n");
            return 64;
        }
    }
    cv_config cfg;
    if (cv_config_load(&cfg, home, NULL)) {
        cv_config_free(&cfg);
        return 78;
    }
    char err[512];
    cv_sock_init();
    zsock_t *d = cv_sock_connect(&cfg, ZMQ_DEALER, cfg.ep_control, err, sizeof err);
    if (!d) {
        fprintf(stderr, "cvflood: %s\n", err);
        status = 69;
        goto out;
    }
    zsock_set_sndtimeo(d, 10000);
    long sent = 0;
    for (; sent < count; sent++) {
        zmsg_t *m = zmsg_new();
        zmsg_addstr(m, CV_WIRE_VERSION);
        zmsg_addstr(m, request);
        if (zmsg_send(&m, d) < 0) {
            zmsg_destroy(&m);
            fprintf(stderr, "cvflood: send %ld timed out\n", sent + 1);
            status = 69;
            break;
        }
    }
    printf("sent %ld\n", sent);
    fflush(stdout);
    /* never read: the replies pile up until store's queue for us is full */
    for (long i = 0; i < hold * 10 && !zsys_interrupted; i++)
        usleep(100000);
out:
    zsock_destroy(&d);
    cv_sock_shutdown();
    cv_config_free(&cfg);
    return status;
}
