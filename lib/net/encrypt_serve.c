/* encrypt_serve.c - the encrypt stage on sockets.
 *
 * Backpressure: the PULL and PUSH queues are short (a few messages), and a
 * new message is read only once the last one has left. When store is slow
 * the PUSH fills, encrypt stops reading, its PULL fills, and ingest's sends
 * wait: memory stays bounded, nothing is dropped. The loop polls with a
 * timeout and checks the stop flag, so a signal is handled whatever the
 * sockets do. What sits in ZeroMQ's queues when the process ends is lost
 * by design: ingest resends what store has not acknowledged. */
#include "net/encrypt_serve.h"

#include "net/metrics.h"

#include "base/event.h"
#include "net/sock.h"
#include "base/util.h"
#include "net/wire.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUEUE_MSGS 4   /* high-water mark of each socket, in messages */
#define POLL_MS 200     /* the stop flag is checked at least this often */
#define SOURCE_MAX 64

typedef struct {
    const cv_config *cfg;
    cv_protect *pr;
    cv_deadletter *dl;
    uint64_t messages, events, passed, rejected, malformed, deferred;
    cv_metrics *mx;
} service;

static void report(service *s, bool final)
{
    cv_metrics_set(s->mx, "ctxvault_events_received_total", NULL, (double)s->events);
    cv_metrics_set(s->mx, "ctxvault_events_forwarded_total", NULL, (double)s->passed);
    cv_metrics_set(s->mx, "ctxvault_messages_malformed_total", NULL, (double)s->malformed);
    cv_metrics_publish(s->mx, final);
}

static void malformed(service *s, const char *why)
{
    s->malformed++;
    /* a broken peer must not flood the log */
    if (s->malformed <= 10 || s->malformed % 1000 == 0)
        cv_warn("dropped a malformed message (%llu so far): %s",
                (unsigned long long)s->malformed, why);
}

static bool frame_is(zframe_t *f, const char *s)
{
    return f && zframe_size(f) == strlen(s) &&
           memcmp(zframe_data(f), s, zframe_size(f)) == 0;
}

/* A rejection frame "!<id>\t<reason>", the reason on one line. */
static void add_rejection(zmsg_t *out, const char *id, const char *reason)
{
    char buf[CV_ID_MAX + 600];
    int n = snprintf(buf, sizeof buf, "%c%s\t%s", CV_WIRE_REJECT, id, reason);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    for (int i = 1 + (int)strlen(id) + 1; i < n; i++)
        if (buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r')
            buf[i] = ' ';
    zmsg_addmem(out, buf, (size_t)n);
}

/* The data keys this message needs could not be made durable: it is not
 * passed on, and ingest, which has it spooled, sends it again. */
static zmsg_t *defer(service *s, zmsg_t **out, const char *why)
{
    s->deferred++;
    if (s->deferred <= 10 || s->deferred % 1000 == 0)
        cv_warn("a message was not passed on (%llu so far), ingest will "
                "send it again: %s", (unsigned long long)s->deferred, why);
    zmsg_destroy(out);
    return NULL;
}

/* Protect the events of one message: the message to forward, or NULL when
 * there is nothing to forward (malformed, or no events). */
static zmsg_t *process(service *s, zmsg_t *in)
{
    zframe_t *ver = zmsg_first(in);
    zframe_t *type = zmsg_next(in);
    zframe_t *src = zmsg_next(in);
    if (!frame_is(ver, CV_WIRE_VERSION)) {
        malformed(s, "not a " CV_WIRE_VERSION " message");
        return NULL;
    }
    if (!frame_is(type, CV_WIRE_EVENTS)) {
        malformed(s, "not an event message");
        return NULL;
    }
    if (!src || zframe_size(src) == 0 || zframe_size(src) > SOURCE_MAX ||
        memchr(zframe_data(src), '\0', zframe_size(src))) {
        malformed(s, "no valid source frame");
        return NULL;
    }
    char source[SOURCE_MAX + 1];
    memcpy(source, zframe_data(src), zframe_size(src));
    source[zframe_size(src)] = '\0';
    s->messages++;

    zmsg_t *out = zmsg_new();
    zmsg_addstr(out, CV_WIRE_VERSION);
    zmsg_addstr(out, CV_WIRE_EVENTS);
    zmsg_addmem(out, zframe_data(src), zframe_size(src));
    for (zframe_t *f = zmsg_next(in); f; f = zmsg_next(in)) {
        const char *line = (const char *)zframe_data(f);
        size_t len = zframe_size(f);
        s->events++;
        if (len > 0 && line[0] == CV_WIRE_REJECT) {
            /* already rejected upstream: store acknowledges it */
            zmsg_addmem(out, line, len);
            continue;
        }
        const char *prot;
        size_t plen;
        char id[CV_ID_MAX + 1], reason[512];
        int rc;
        size_t max = (size_t)cv_config_stage_max_line(s->cfg);
        if (len > max) {
            snprintf(reason, sizeof reason, "line longer than %zu bytes", max);
            /* answered, when its id can be read: else ingest resends it
             * for ever */
            if (!cv_event_id_of(s->cfg->max_depth, line, len, id, sizeof id))
                id[0] = '\0';
            cv_deadletter_put(s->dl, source, s->events, reason, line, max, true);
        } else if ((rc = cv_fieldpolicy_line(s->pr, line, len, &prot, &plen, id,
                                         sizeof id, reason,
                                         sizeof reason)) == 0 &&
                   plen > max) {
            /* sealing grew it past what store takes (many short strings
             * grow most): rejected here, once, with its id, so ingest
             * stops resending it */
            snprintf(reason, sizeof reason, "sealed by the policy, the event "
                     "is %zu bytes, longer than store takes (%zu: twice "
                     "max_line, plus 64 KiB); send fewer or longer fields",
                     plen, max);
            if (!cv_event_id_of(s->cfg->max_depth, line, len, id, sizeof id))
                id[0] = '\0';
            cv_deadletter_put(s->dl, source, s->events, reason, line, len, false);
        } else if (rc == 0) {
            zmsg_addmem(out, prot, plen);
            s->passed++;
            continue;
        } else if (rc == 2) {
            return defer(s, &out, reason);
        } else {
            cv_deadletter_put(s->dl, source, s->events, reason, line, len, false);
        }
        s->rejected++;
        if (*id)
            add_rejection(out, id, reason);
        /* without an id there is nothing to acknowledge: only ingest makes
         * these messages, and it always gives an id */
    }
    if (zmsg_size(out) == 3) /* no events, or none with an id */
        zmsg_destroy(&out);
    char err[256];
    if (out && cv_fieldpolicy_commit(s->pr, err, sizeof err) < 0)
        return defer(s, &out, err);
    return out;
}

int cv_encrypt_serve(const cv_config *cfg, cv_protect *pr, cv_deadletter *dl,
                     cv_metrics *mx, bool quiet)
{
    service s = {.cfg = cfg, .pr = pr, .dl = dl, .mx = mx};
    char err[512];
    int status = 0;
    zmsg_t *out = NULL;
    zsock_t *pull = cv_sock_bind_hwm(cfg, ZMQ_PULL, cfg->ep_encrypt, QUEUE_MSGS,
                                     err, sizeof err);
    zsock_t *push = pull ? cv_sock_connect_hwm(cfg, ZMQ_PUSH, cfg->ep_store,
                                               QUEUE_MSGS, err, sizeof err)
                         : NULL;
    if (!pull || !push) {
        cv_err("%s", err);
        status = EX_UNAVAILABLE;
        goto out;
    }
    if (!quiet)
        cv_info("serving: %s -> %s", cfg->ep_encrypt, cfg->ep_store);
    cv_metrics_health(s.mx, true, NULL);
    cv_deadletter_set_metrics(dl, s.mx);

    while (!cv_stop_requested) {
        if (cv_metrics_due(s.mx))
            report(&s, false);
        zmq_pollitem_t items[1] = {{0}};
        /* one message at a time: read only when the last one has left */
        items[0].socket = zsock_resolve(out ? push : pull);
        items[0].events = out ? ZMQ_POLLOUT : ZMQ_POLLIN;
        int rc = zmq_poll(items, 1, POLL_MS);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            cv_err("cannot poll the sockets: %s", zmq_strerror(errno));
            status = EX_OSERR;
            break;
        }
        if (rc == 0)
            continue;
        if (out) {
            /* writable: a whole message goes without blocking */
            if (zmsg_send(&out, push) < 0)
                cv_warn("cannot send to %s: %s", cfg->ep_store,
                        zmq_strerror(errno));
            zmsg_destroy(&out);
            continue;
        }
        zmsg_t *in = zmsg_recv(pull);
        if (!in)
            continue; /* interrupted */
        out = process(&s, in);
        zmsg_destroy(&in);
    }
    /* the message in hand is finished; send it if store takes it soon */
    if (out) {
        zmq_pollitem_t item = {zsock_resolve(push), 0, ZMQ_POLLOUT, 0};
        if (zmq_poll(&item, 1, 1000) == 1 && zmsg_send(&out, push) == 0)
            zsock_set_linger(push, 1000); /* let it leave before the close */
        zmsg_destroy(&out);
    }
out:
    report(&s, true);
    cv_deadletter_set_metrics(dl, NULL);
    zsock_destroy(&pull);
    zsock_destroy(&push);
    if (!quiet && !status)
        cv_info("stopped: %llu messages, %llu events: %llu protected, "
                "%llu rejected; %llu malformed messages dropped, %llu left "
                "for ingest to send again",
                (unsigned long long)s.messages, (unsigned long long)s.events,
                (unsigned long long)s.passed, (unsigned long long)s.rejected,
                (unsigned long long)s.malformed,
                (unsigned long long)s.deferred);
    return status;
}
