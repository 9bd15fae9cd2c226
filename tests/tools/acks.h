/* acks.h - store's acknowledgements as the test and bench tools read them
 * (doc/PROTOCOL.md): [source]["CTXV1"]["ACK"|"NAK"][id or "id\treason"]...
 *
 * read_acks takes the messages waiting on sub, waiting up to wait_ms for
 * the first answer that fn counts, and calls fn for each id; fn returns
 * true when the answer was news to it. Returns how many were. */
#ifndef CVT_ACKS_H
#define CVT_ACKS_H

#include "net/wire.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef bool(ack_fn)(void *arg, const char *id, bool nak, const char *reason);

static size_t read_acks(zsock_t *sub, int wait_ms, ack_fn *fn, void *arg)
{
    size_t got = 0;
    zmq_pollitem_t it = {zsock_resolve(sub), 0, ZMQ_POLLIN, 0};
    while (zmq_poll(&it, 1, got ? 0 : wait_ms) > 0) {
        zmsg_t *m = zmsg_recv(sub);
        if (!m)
            break;
        free(zmsg_popstr(m)); /* topic */
        char *ver = zmsg_popstr(m), *kind = zmsg_popstr(m), *t;
        bool nak = kind && strcmp(kind, CV_WIRE_NAK) == 0;
        if (ver && kind && strcmp(ver, CV_WIRE_VERSION) == 0)
            while ((t = zmsg_popstr(m))) {
                char *tab = nak ? strchr(t, '\t') : NULL;
                if (tab)
                    *tab = '\0';
                got += fn(arg, t, nak, tab ? tab + 1 : "");
                free(t);
            }
        free(ver);
        free(kind);
        zmsg_destroy(&m);
    }
    return got;
}

#endif
