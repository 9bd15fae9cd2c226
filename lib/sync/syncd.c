/* syncd.c - ctxvault-sync's loops: pull and push towards each peer, and
 * answers on the listening socket (syncd.h). */
#include "sync/syncd.h"

#include "base/backoff.h"
#include "net/control.h"
#include "ctxvault/cvclient.h"
#include "base/jwalk.h"
#include "net/metrics.h"
#include "net/syncauth.h"
#include "base/util.h"

#include <czmq.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#define POLL_MS 50          /* how often store's knowledge is looked at */
#define ANSWER_MS 15000     /* a peer's answer beyond the wait is this late */
#define MAX_PARKED 256      /* long polls held at once */
#define MAX_WAIT_MS 30000
#define ONCE_TRIES 6        /* --once gives up after this many failures in a row */

typedef enum { IDLE, WAITING } slot_state;

/* One request in flight towards a peer. */
typedef struct {
    slot_state st;
    int64_t id;
    int64_t deadline;       /* mono ms */
    json_t *snapshot;       /* the knowledge given with the first page */
    json_t *after;          /* the next page's cursor, or NULL */
    int64_t started;        /* of the whole exchange, mono ms */
} slot;

typedef struct {
    const cv_sync_peer *cfg;
    zsock_t *sock;
    cv_backoff bo;
    bool up, ever_up;
    int64_t ok_at;   /* wall clock of the last exchange that succeeded */
    json_t *their;          /* the peer's knowledge as last told, or NULL */
    slot pull, push;
    int64_t pulled_at;      /* a successful pull cycle ended (mono ms) */
    char label[80];         /* peer=NAME */
    uint64_t attempts, failures;
    int in_row;             /* failures since the last success */
} peer;

typedef struct {
    zframe_t *ident;
    json_t *req;
    int64_t deadline;
} parked;

struct cv_syncd {
    const cv_config *cfg;
    bool quiet;
    cv_client *store;
    cv_syncauth *auth;
    zsock_t *srv;
    peer *peers;
    int npeers;
    parked park[MAX_PARKED];
    int nparked;
    json_t *local;          /* this instance's knowledge, polled */
    int64_t polled_at;
    int64_t next_id;
    cv_metrics *mx;
    bool once;              /* --once: one pull per peer, no long poll */
    int64_t started;        /* of the run, mono ms */
};

/* --- messages ------------------------------------------------------------ */

/* A page's "versions" are most of its bytes, and the daemon never looks
 * inside them: parsing them into a tree and printing them again was most
 * of its work. So a message keeps them as the text that came, checked to
 * be exactly one JSON array, and the next message copies that text in as
 * it is. The other members are few and small, and parsed as usual. The
 * store that receives the versions checks each one anyway. */
typedef struct {
    json_t *j;          /* every member but "versions" */
    char *versions;     /* the array's text, or NULL when there is none */
    size_t vlen;
    size_t count;       /* the array's elements */
} msg;

static void msg_free(msg *m)
{
    json_decref(m->j);
    free(m->versions);
    *m = (msg){0};
}

/* Read an object's text into m. -1 when it is not one JSON object, or
 * when "versions" is there but not as one plainly spelled array. */
static int msg_load(msg *m, const char *text, size_t len)
{
    *m = (msg){0};
    char err[128];
    cv_jwalk w;
    cv_jwalk_init(&w, text, len, CV_JW_MAX_DEPTH, err, sizeof err);
    if (cv_jwalk_next(&w) != CV_JW_OBJECT)
        return -1;
    const char *vs = NULL, *ve = NULL;
    size_t count = 0;
    int tok;
    while ((tok = cv_jwalk_next(&w)) == CV_JW_KEY) {
        bool named = w.len == 10 && !memcmp(w.tok, "\"versions\"", 10);
        tok = cv_jwalk_next(&w);
        if (named && tok == CV_JW_ARRAY && !vs) {
            vs = w.tok;
            while ((tok = cv_jwalk_next(&w)) != CV_JW_ARRAY_END) {
                if (tok == CV_JW_ERROR || ((tok == CV_JW_OBJECT || tok == CV_JW_ARRAY) &&
                                           cv_jwalk_skip(&w) == CV_JW_ERROR))
                    return -1;
                count++;
            }
            ve = w.tok + w.len;
        } else if (tok == CV_JW_OBJECT || tok == CV_JW_ARRAY) {
            if (cv_jwalk_skip(&w) == CV_JW_ERROR)
                return -1;
        } else if (tok == CV_JW_ERROR) {
            return -1;
        }
    }
    if (tok != CV_JW_OBJECT_END || cv_jwalk_next(&w) != CV_JW_EOF)
        return -1;
    if (!vs) {
        m->j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    } else {
        /* the rest, with an empty array where the versions were */
        size_t head = (size_t)(vs - text), tail = len - (size_t)(ve - text);
        char *rest = cv_malloc(head + 2 + tail);
        memcpy(rest, text, head);
        memcpy(rest + head, "[]", 2);
        memcpy(rest + head + 2, ve, tail);
        m->j = json_loadb(rest, head + 2 + tail, JSON_REJECT_DUPLICATES, NULL);
        free(rest);
        json_object_del(m->j, "versions");
        m->vlen = (size_t)(ve - vs);
        m->versions = cv_malloc(m->vlen + 1);
        memcpy(m->versions, vs, m->vlen);
        m->versions[m->vlen] = '\0';
        m->count = count;
    }
    /* another "versions" (spelled with escapes, or not an array) */
    if (!json_is_object(m->j) || json_object_get(m->j, "versions")) {
        msg_free(m);
        return -1;
    }
    return 0;
}

/* The text of j, with "versions" (when not NULL) added as it is. */
static char *msg_dump(const json_t *j, const char *versions, size_t vlen)
{
    char *head = json_dumps(j, CV_JSON_DUMP);
    if (!head || !versions)
        return head;
    static const char name[] = "\"versions\":";
    size_t hlen = strlen(head); /* compact: it ends with the '}' */
    char *out = cv_malloc(hlen + 1 + sizeof name + vlen + 1);
    size_t n = hlen - 1;
    memcpy(out, head, n);
    if (hlen > 2)
        out[n++] = ',';
    memcpy(out + n, name, sizeof name - 1);
    n += sizeof name - 1;
    memcpy(out + n, versions, vlen);
    n += vlen;
    out[n++] = '}';
    out[n] = '\0';
    free(head);
    return out;
}

/* --- store ---------------------------------------------------------------- */

/* A request to store, with versions (text, or NULL) added; 0 with its
 * reply in out when ok, else -1 with the reason logged (as "sync: WHAT:
 * ..."). */
static int ask(cv_syncd *d, const json_t *req, const char *versions,
               size_t vlen, const char *what, msg *out)
{
    *out = (msg){0};
    char *text = msg_dump(req, versions, vlen);
    char *r = NULL;
    int rc = cv_client_call(d->store, text, &r);
    free(text);
    bool loaded = r && msg_load(out, r, strlen(r)) == 0;
    free(r);
    if (rc == 0 && loaded)
        return 0;
    cv_err("sync: %s: store %s: %s", what,
           rc == CV_CLIENT_REFUSED ? "refused" : "did not answer",
           loaded ? json_string_value(json_object_get(out->j, "error"))
                  : cv_client_error(d->store));
    if (loaded)
        msg_free(out);
    return -1;
}

/* The same, for requests and replies without versions. */
static json_t *ask_store(cv_syncd *d, json_t *req, const char *what)
{
    msg r;
    if (ask(d, req, NULL, 0, what, &r) < 0)
        return NULL;
    json_t *j = json_incref(r.j);
    msg_free(&r);
    return j;
}

static bool knowledge_covers(const json_t *have, const json_t *other)
{
    const char *dev;
    json_t *n;
    json_object_foreach((json_t *)other, dev, n) {
        json_t *h = json_object_get(have, dev);
        if (!h || json_integer_value(h) < json_integer_value(n))
            return false;
    }
    return true;
}

/* What a receiver may add to its knowledge once it applied the pages up
 * to the cursor next (null: all of them), of an exchange that began when
 * the sender knew snapshot. Pages go in dot order, device by device: the
 * devices before the cursor's were sent whole, its own up to the cursor.
 * A change superseded by one further on is fetched under that one's dot,
 * which the claim does not cover, so claiming early loses nothing, and a
 * restarted exchange goes on from here instead of from the start. */
static json_t *claim(const json_t *snapshot, const json_t *next)
{
    if (!next || json_is_null(next))
        return json_incref((json_t *)snapshot);
    const char *cdev = json_string_value(json_array_get(next, 0));
    json_int_t cn = json_integer_value(json_array_get(next, 1));
    json_t *k = json_object();
    const char *dev;
    json_t *n;
    json_object_foreach((json_t *)snapshot, dev, n) {
        int c = cdev ? strcmp(dev, cdev) : 1;
        if (c < 0)
            json_object_set(k, dev, n);
        else if (c == 0)
            json_object_set_new(k, dev, json_integer(cn < json_integer_value(n)
                                                        ? cn : json_integer_value(n)));
    }
    return k;
}

/* Parked pulls that now have an answer get it. */
static void wake_parked(cv_syncd *d, bool expire_only);

static void poll_local(cv_syncd *d, bool force)
{
    int64_t now = cv_mono_ms();
    if (!force && now - d->polled_at < POLL_MS)
        return;
    d->polled_at = now;
    json_t *req = json_pack("{s:s, s:b}", "op", "sync.state", "brief", 1);
    json_t *r = ask_store(d, req, "reading this instance's knowledge");
    json_decref(req);
    if (!r)
        return;
    json_t *k = json_object_get(r, "knowledge");
    bool changed = !d->local || !json_equal(k, d->local);
    json_decref(d->local);
    d->local = json_incref(k);
    json_decref(r);
    if (changed)
        wake_parked(d, false);
}

/* --- the wire ------------------------------------------------------------ */

/* Never blocks: a DEALER with no connected peer (ZMQ_IMMEDIATE) refuses
 * at once, and the exchange counts as failed. ident is consumed; versions
 * (text, or NULL) are added to j as they are. */
static int send_json(zsock_t *sock, zframe_t *ident, const json_t *j,
                     const char *versions, size_t vlen)
{
    char *text = msg_dump(j, versions, vlen);
    void *h = zsock_resolve(sock);
    int rc = 0;
    if (ident)
        rc = zmq_send(h, zframe_data(ident), zframe_size(ident),
                      ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (rc >= 0)
        rc = zmq_send(h, CV_SYNC_WIRE, strlen(CV_SYNC_WIRE),
                      ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (rc >= 0)
        rc = zmq_send(h, text, strlen(text), ZMQ_DONTWAIT);
    free(text);
    zframe_destroy(&ident);
    return rc < 0 ? -1 : 0;
}

/* The message (after the identity, if any): -1 when it is not one. */
static int recv_msg(zmsg_t *m, msg *out)
{
    zframe_t *ver = zmsg_pop(m), *body = zmsg_pop(m);
    int rc = -1;
    *out = (msg){0};
    if (ver && body && zframe_streq(ver, CV_SYNC_WIRE))
        rc = msg_load(out, (const char *)zframe_data(body), zframe_size(body));
    zframe_destroy(&ver);
    zframe_destroy(&body);
    return rc;
}

/* What an apply dropped: versions refused, and contexts not stored. */
static double rejected_in(const json_t *applied)
{
    return (double)json_array_size(json_object_get(applied, "rejected")) +
           (double)json_integer_value(json_object_get(applied, "views_rejected"));
}

/* --- the listening side --------------------------------------------------- */

/* The changes a pull asks for, into r: -1 when store did not give them. */
static int changes_for(cv_syncd *d, json_t *req, msg *r)
{
    json_t *q = json_pack("{s:s, s:O*, s:O*, s:O*}", "op", "sync.changes",
                          "knowledge", json_object_get(req, "knowledge"),
                          "after", json_object_get(req, "after"),
                          "limit", json_object_get(req, "limit"));
    int rc = ask(d, q, NULL, 0, "reading changes for a peer", r);
    json_decref(q);
    return rc;
}

/* Answer req with r (NULL: store could not answer). */
static void reply(cv_syncd *d, zframe_t *ident, json_t *req, msg *r)
{
    json_t *a = r ? json_incref(r->j)
                  : cv_control_error(NULL, 0, "store cannot answer; try again");
    json_object_set(a, "id", json_object_get(req, "id"));
    send_json(d->srv, ident, a, r ? r->versions : NULL, r ? r->vlen : 0);
    json_decref(a);
}

/* Does a page hold anything: versions, or a cursor to more? */
static bool has_news(const msg *r)
{
    return r->count || !json_is_null(json_object_get(r->j, "next"));
}

static void wake_parked(cv_syncd *d, bool expire_only)
{
    int64_t now = cv_mono_ms();
    for (int i = 0; i < d->nparked;) {
        parked *p = &d->park[i];
        bool due = now >= p->deadline;
        if (!due && expire_only) {
            i++;
            continue;
        }
        msg r;
        bool got = changes_for(d, p->req, &r) == 0;
        if (got && !has_news(&r) && !due) {
            msg_free(&r);
            i++;
            continue;
        }
        reply(d, p->ident, p->req, got ? &r : NULL);
        p->ident = NULL; /* sent */
        if (got)
            msg_free(&r);
        json_decref(p->req);
        d->park[i] = d->park[--d->nparked];
    }
}

static void serve_one(cv_syncd *d)
{
    zmsg_t *m = zmsg_recv(d->srv);
    if (!m)
        return;
    zframe_t *ident = zmsg_pop(m);
    zframe_t *first = zmsg_first(m);
    const char *who = first ? cv_syncauth_peer_name(first) : NULL;
    msg in;
    int bad = recv_msg(m, &in);
    zmsg_destroy(&m);
    if (bad || !ident) {
        cv_warn("sync: a message from %s that is not a %s request: dropped",
                who ? who : "a peer", CV_SYNC_WIRE);
        cv_metrics_add(d->mx, "ctxvault_sync_malformed_total", NULL, 1);
        zframe_destroy(&ident);
        msg_free(&in);
        return;
    }
    json_t *req = in.j;
    const char *op = json_string_value(json_object_get(req, "op"));
    msg r = {0};
    bool got = true;
    if (op && !strcmp(op, "hello")) {
        poll_local(d, true);
        r.j = json_pack("{s:b, s:O, s:s?}", "ok", 1, "knowledge",
                        d->local ? d->local : json_object(),
                        "device", d->cfg->sync_device);
    } else if (op && !strcmp(op, "pull")) {
        got = changes_for(d, req, &r) == 0;
        json_int_t wait = json_integer_value(json_object_get(req, "wait_ms"));
        if (got && !has_news(&r) && wait > 0 && d->nparked < MAX_PARKED) {
            /* nothing yet: answered when something comes, or at the wait */
            d->park[d->nparked++] = (parked){
                .ident = ident, .req = json_incref(req),
                .deadline = cv_mono_ms() + (wait < MAX_WAIT_MS ? wait : MAX_WAIT_MS)};
            msg_free(&r);
            msg_free(&in);
            return;
        }
        if (got)
            cv_metrics_add(d->mx, "ctxvault_sync_versions_sent_total", NULL,
                           (double)r.count);
    } else if (op && !strcmp(op, "push")) {
        json_t *q = json_pack("{s:s, s:O*, s:s}", "op", "sync.apply",
                              "knowledge", json_object_get(req, "knowledge"),
                              "from", who ? who : "?");
        if (!in.versions)
            r.j = cv_control_error(NULL, 0, "\"versions\" must be an array");
        else
            got = ask(d, q, in.versions, in.vlen, "applying a peer's versions", &r) == 0;
        json_decref(q);
        if (got && in.versions) {
            cv_metrics_add(d->mx, "ctxvault_sync_versions_received_total", NULL,
                           (double)json_integer_value(json_object_get(r.j, "applied")));
            cv_metrics_add(d->mx, "ctxvault_sync_versions_rejected_total", NULL,
                           rejected_in(r.j));
            json_decref(d->local);
            d->local = json_incref(json_object_get(r.j, "knowledge"));
        }
    } else {
        r.j = cv_control_error(NULL, 0, "unknown op: expected hello, pull or push");
    }
    bool pushed = op && !strcmp(op, "push");
    reply(d, ident, req, got ? &r : NULL);
    msg_free(&r);
    msg_free(&in);
    if (pushed)
        wake_parked(d, false); /* what came in goes out to the others */
}

/* --- towards a peer ------------------------------------------------------- */

static void slot_reset(slot *s)
{
    json_decref(s->snapshot);
    json_decref(s->after);
    *s = (slot){.st = IDLE};
}

static void peer_failed(cv_syncd *d, peer *p, const char *why)
{
    int64_t delay = cv_backoff_fail(&p->bo, cv_mono_ms());
    p->failures++;
    p->in_row++;
    cv_metrics_add(d->mx, "ctxvault_sync_failures_total", p->label, 1);
    if (p->up || !p->ever_up || p->bo.attempt == 1)
        cv_warn("sync: peer %s (%s): %s; retrying in %lld ms, then backing off "
                "up to %lld ms", p->cfg->name, p->cfg->endpoint, why,
                (long long)delay, (long long)d->cfg->sync_retry_max_ms);
    p->up = false;
    p->ever_up = true;
    slot_reset(&p->pull);
    slot_reset(&p->push);
    json_decref(p->their);
    p->their = NULL; /* asked again: it may have been restored */
}

static void peer_ok(cv_syncd *d, peer *p, slot *s)
{
    if (!p->up && p->failures && !d->quiet)
        cv_info("sync: peer %s reached again", p->cfg->name);
    p->up = true;
    p->ever_up = true;
    p->ok_at = cv_now_ms();
    p->in_row = 0;
    cv_backoff_ok(&p->bo);
    cv_metrics_observe(d->mx, "ctxvault_sync_exchange_duration_seconds", p->label,
                       (double)(cv_mono_ms() - s->started) / 1000.0);
}

static void count_attempt(cv_syncd *d, peer *p)
{
    p->attempts++;
    cv_metrics_add(d->mx, "ctxvault_sync_attempts_total", p->label, 1);
}

/* Send req (consumed), with versions (text, or NULL) added. */
static void send_req(cv_syncd *d, peer *p, slot *s, json_t *req,
                     const char *versions, size_t vlen, int64_t wait)
{
    s->id = ++d->next_id;
    s->st = WAITING;
    s->deadline = cv_mono_ms() + wait + ANSWER_MS;
    json_object_set_new(req, "id", json_integer(s->id));
    int rc = send_json(p->sock, NULL, req, versions, vlen);
    json_decref(req);
    if (rc < 0)
        peer_failed(d, p, "not connected");
}

static void start_pull(cv_syncd *d, peer *p)
{
    slot *s = &p->pull;
    bool first = s->st == IDLE;
    if (first) {
        count_attempt(d, p);
        s->started = cv_mono_ms();
    }
    /* --once asks for what is there now: a long poll would only delay
     * the exit */
    int64_t wait = s->after || d->once ? 0 : d->cfg->sync_wait_ms;
    json_t *req = json_pack("{s:s, s:O, s:O*, s:I, s:i}", "op", "pull",
                            "knowledge", d->local, "after", s->after,
                            "wait_ms", (json_int_t)wait, "limit",
                            d->cfg->sync_batch);
    send_req(d, p, s, req, NULL, 0, wait);
}

/* Push the next page of what the peer lacks: 1 sent, 0 nothing left, -1
 * this instance's store did not give the changes. */
static int push_page(cv_syncd *d, peer *p)
{
    slot *s = &p->push;
    json_t *q = json_pack("{s:s, s:O, s:O*, s:i}", "op", "sync.changes",
                          "knowledge", p->their, "after", s->after,
                          "limit", d->cfg->sync_batch);
    msg r;
    int rc = ask(d, q, NULL, 0, "reading changes to push", &r);
    json_decref(q);
    if (rc < 0)
        return -1;
    json_t *next = json_object_get(r.j, "next");
    if (!r.versions) {
        cv_err("sync: reading changes to push: store's answer has no versions");
        msg_free(&r);
        return -1;
    }
    if (!s->snapshot)
        s->snapshot = json_incref(json_object_get(r.j, "knowledge"));
    bool last = json_is_null(next);
    if (!r.count && last && knowledge_covers(p->their, s->snapshot)) {
        msg_free(&r);
        return 0;
    }
    json_t *req = json_pack("{s:s, s:o}", "op", "push", "knowledge",
                            claim(s->snapshot, next));
    json_decref(s->after);
    s->after = last ? NULL : json_incref(next);
    cv_metrics_add(d->mx, "ctxvault_sync_versions_sent_total", p->label,
                   (double)r.count);
    send_req(d, p, s, req, r.versions, r.vlen, 0);
    msg_free(&r);
    return 1;
}

static void start_push(cv_syncd *d, peer *p)
{
    slot *s = &p->push;
    if (!p->their) { /* first learn what it holds */
        count_attempt(d, p);
        s->started = cv_mono_ms();
        send_req(d, p, s, json_pack("{s:s}", "op", "hello"), NULL, 0, 0);
        return;
    }
    if (knowledge_covers(p->their, d->local))
        return;
    s->started = cv_mono_ms();
    int r = push_page(d, p);
    if (r != 0)
        count_attempt(d, p);
    if (r < 0) {
        peer_failed(d, p, "this instance's store did not give the changes");
    } else if (r == 0) {
        /* nothing it lacks after all (superseded versions) */
        slot_reset(s);
        json_t *k = json_deep_copy(d->local);
        json_decref(p->their);
        p->their = k;
    }
}

static void took_pull(cv_syncd *d, peer *p, msg *page)
{
    slot *s = &p->pull;
    json_t *r = page->j;
    json_t *next = json_object_get(r, "next");
    json_t *k = json_object_get(r, "knowledge");
    if (!page->versions || !json_is_object(k)) {
        peer_failed(d, p, "its answer to a pull is not one");
        return;
    }
    if (!s->snapshot)
        s->snapshot = json_incref(k);
    bool last = json_is_null(next) || !next;
    json_t *mine = claim(s->snapshot, next);
    /* what the peer holds, as it said: no need to push it back */
    if (!p->their)
        p->their = json_deep_copy(k);
    else
        json_object_update(p->their, k);
    if (!last) {
        /* ask for the next page before applying this one, so that the
         * peer reads it while our store applies; its answer is taken
         * after this page is applied, so pages still go in order. If
         * applying fails, peer_failed resets the slot and the answer,
         * under an id no longer waited for, is dropped. */
        json_decref(s->after);
        s->after = json_incref(next);
        start_pull(d, p);
        if (p->pull.st != WAITING) { /* it could not be sent */
            json_decref(mine);
            return;
        }
    }
    if (page->count || !knowledge_covers(d->local, mine)) {
        json_t *q = json_pack("{s:s, s:O, s:s}", "op", "sync.apply",
                              "knowledge", mine, "from", p->cfg->name);
        msg am;
        json_t *a = NULL;
        if (ask(d, q, page->versions, page->vlen, "applying pulled versions",
                &am) == 0) {
            a = json_incref(am.j);
            msg_free(&am);
        }
        json_decref(q);
        if (!a) {
            json_decref(mine);
            peer_failed(d, p, "this instance's store did not apply its versions");
            return;
        }
        cv_metrics_add(d->mx, "ctxvault_sync_versions_received_total", p->label,
                       (double)json_integer_value(json_object_get(a, "applied")));
        cv_metrics_add(d->mx, "ctxvault_sync_versions_rejected_total", p->label,
                       rejected_in(a));
        json_decref(d->local);
        d->local = json_incref(json_object_get(a, "knowledge"));
        json_decref(a);
    }
    json_decref(mine);
    if (!last) {
        /* the next page is on its way; its answer could not be read while
         * store applied, so the wait for it starts now */
        s->deadline = cv_mono_ms() + ANSWER_MS;
        return;
    }
    peer_ok(d, p, s);
    p->pulled_at = cv_mono_ms();
    slot_reset(s);
    wake_parked(d, false); /* a relay's other clients may want it */
}

static void took_push(cv_syncd *d, peer *p, json_t *r)
{
    slot *s = &p->push;
    json_t *k = json_object_get(r, "knowledge");
    if (!json_is_object(k)) {
        peer_failed(d, p, "its answer to a push is not one");
        return;
    }
    json_decref(p->their);
    p->their = json_deep_copy(k);
    int more = s->after ? push_page(d, p) : 0; /* the next page */
    if (more < 0) {
        peer_failed(d, p, "this instance's store did not give the changes");
    } else if (more == 0) {
        peer_ok(d, p, s);
        slot_reset(s);
    }
}

static void take_reply(cv_syncd *d, peer *p)
{
    zmsg_t *m = zmsg_recv(p->sock);
    if (!m)
        return;
    msg in;
    int bad = recv_msg(m, &in);
    zmsg_destroy(&m);
    if (bad) {
        msg_free(&in);
        return;
    }
    json_t *r = in.j;
    int64_t id = json_integer_value(json_object_get(r, "id"));
    slot *s = p->pull.st == WAITING && p->pull.id == id ? &p->pull
            : p->push.st == WAITING && p->push.id == id ? &p->push : NULL;
    if (!s) { /* the answer to a request given up on */
        msg_free(&in);
        return;
    }
    if (!json_is_true(json_object_get(r, "ok"))) {
        char why[256];
        snprintf(why, sizeof why, "it refused: %s",
                 json_string_value(json_object_get(r, "error")));
        peer_failed(d, p, why);
    } else if (s == &p->pull) {
        took_pull(d, p, &in);
    } else {
        took_push(d, p, r);
    }
    msg_free(&in);
}

static void tend(cv_syncd *d, peer *p)
{
    int64_t now = cv_mono_ms();
    if ((p->pull.st == WAITING && now > p->pull.deadline) ||
        (p->push.st == WAITING && now > p->push.deadline)) {
        char why[128];
        snprintf(why, sizeof why, "no answer within %lld ms",
                 (long long)(p->pull.st == WAITING && now > p->pull.deadline
                                 ? d->cfg->sync_wait_ms + ANSWER_MS : ANSWER_MS));
        peer_failed(d, p, why);
        return;
    }
    if (!cv_backoff_due(&p->bo, now) || !d->local)
        return;
    if (p->push.st == IDLE)
        start_push(d, p);
    /* --once pulls once: a pull begun after the last one ended would
     * keep the run going for ever */
    if (p->pull.st == IDLE && p->their && !(d->once && p->pulled_at >= d->started))
        start_pull(d, p);
}

static void report(cv_syncd *d)
{
    bool all_up = true;
    for (int i = 0; i < d->npeers; i++) {
        peer *p = &d->peers[i];
        cv_metrics_set(d->mx, "ctxvault_sync_peer_up", p->label, p->up);
        cv_metrics_set(d->mx, "ctxvault_sync_last_success_timestamp_seconds",
                       p->label, (double)p->ok_at / 1000.0);
        if (p->attempts)
            cv_metrics_set(d->mx, "ctxvault_sync_success_ratio", p->label,
                           (double)(p->attempts - p->failures) / (double)p->attempts);
        all_up &= p->up;
    }
    cv_metrics_health(d->mx, all_up, all_up ? NULL : "a sync peer is unreachable");
}

/* --- the loop ------------------------------------------------------------- */

cv_syncd *cv_syncd_new(const cv_config *cfg, const char *config_file,
                       bool quiet, int *code, char *err, size_t errlen)
{
    if (!cfg->sync_device && !cfg->sync_relay) {
        snprintf(err, errlen, "sync is off: set [sync] device (or relay = yes) "
                 "in the config");
        *code = EX_CONFIG;
        return NULL;
    }
    if (!cfg->sync_listen && cfg->nsync_peers == 0) {
        snprintf(err, errlen, "nothing to sync with: set [sync] listen or a "
                 "peer.NAME");
        *code = EX_CONFIG;
        return NULL;
    }
    cv_syncd *d = cv_calloc(1, sizeof *d);
    d->cfg = cfg;
    d->quiet = quiet;
    *code = EX_UNAVAILABLE;
    d->store = cv_client_open_config(cfg->home, config_file, err, errlen);
    if (!d->store)
        goto failed;
    cv_client_set_timeout(d->store, 60000);
    d->mx = cv_metrics_new(cfg, "ctxvault-sync", true);
    if (cfg->sync_listen) {
        if (!(d->auth = cv_syncauth_new(cfg, err, errlen)) ||
            !(d->srv = cv_syncauth_bind(cfg, err, errlen)))
            goto failed;
    }
    d->npeers = cfg->nsync_peers;
    d->peers = cv_calloc((size_t)d->npeers + 1, sizeof *d->peers);
    for (int i = 0; i < d->npeers; i++) {
        peer *p = &d->peers[i];
        p->cfg = &cfg->sync_peers[i];
        snprintf(p->label, sizeof p->label, "peer=%s", p->cfg->name);
        cv_metrics_start_labels(d->mx, p->label);
        cv_backoff_init(&p->bo, cfg->sync_retry_min_ms, cfg->sync_retry_max_ms);
        if (!(p->sock = cv_syncauth_connect(cfg, p->cfg, err, errlen)))
            goto failed;
    }
    return d;
failed:
    cv_syncd_destroy(&d);
    return NULL;
}

void cv_syncd_destroy(cv_syncd **pp)
{
    cv_syncd *d = *pp;
    if (!d)
        return;
    for (int i = 0; i < d->nparked; i++) {
        zframe_destroy(&d->park[i].ident);
        json_decref(d->park[i].req);
    }
    for (int i = 0; d->peers && i < d->npeers; i++) {
        zsock_destroy(&d->peers[i].sock);
        slot_reset(&d->peers[i].pull);
        slot_reset(&d->peers[i].push);
        json_decref(d->peers[i].their);
    }
    free(d->peers);
    zsock_destroy(&d->srv);
    cv_syncauth_destroy(&d->auth);
    cv_client_close(&d->store);
    cv_metrics_destroy(&d->mx);
    json_decref(d->local);
    free(d);
    *pp = NULL;
}

/* With once: every peer pulled from since the start, and nothing to push. */
static bool settled(cv_syncd *d, int *status)
{
    for (int i = 0; i < d->npeers; i++) {
        peer *p = &d->peers[i];
        if (p->in_row >= ONCE_TRIES) { /* a connection takes a moment */
            *status = EX_UNAVAILABLE;
            return true;
        }
        if (p->pulled_at < d->started || p->push.st != IDLE || p->pull.st != IDLE ||
            !p->their || !knowledge_covers(p->their, d->local))
            return false;
    }
    return true;
}

int cv_syncd_run(cv_syncd *d, bool once)
{
    zpoller_t *poller = zpoller_new(NULL);
    if (d->srv)
        zpoller_add(poller, d->srv);
    for (int i = 0; i < d->npeers; i++)
        zpoller_add(poller, d->peers[i].sock);
    if (!d->quiet)
        cv_info("syncing as %s%s%s, %d peer%s",
                d->cfg->sync_device ? "device " : "a relay",
                d->cfg->sync_device ? d->cfg->sync_device : "",
                d->srv ? "; listening" : "", d->npeers, d->npeers == 1 ? "" : "s");
    int status = 0;
    d->once = once;
    d->started = cv_mono_ms();
    while (!cv_stop_requested) {
        poll_local(d, false);
        for (int i = 0; i < d->npeers; i++)
            tend(d, &d->peers[i]);
        wake_parked(d, true);
        if (once && settled(d, &status))
            break;
        void *which = zpoller_wait(poller, POLL_MS);
        if (!which && zpoller_terminated(poller))
            break;
        /* drain everything that is ready, not just the one zpoller saw */
        bool more = true;
        while (more) {
            more = false;
            if (d->srv && (zsock_events(d->srv) & ZMQ_POLLIN)) {
                serve_one(d);
                more = true;
            }
            for (int i = 0; i < d->npeers; i++)
                if (zsock_events(d->peers[i].sock) & ZMQ_POLLIN) {
                    take_reply(d, &d->peers[i]);
                    more = true;
                }
        }
        report(d);
        cv_metrics_tick(d->mx);
    }
    report(d);
    zpoller_destroy(&poller);
    if (!d->quiet)
        for (int i = 0; i < d->npeers; i++)
            cv_info("sync: peer %s: %llu exchanges, %llu failed",
                    d->peers[i].cfg->name,
                    (unsigned long long)d->peers[i].attempts,
                    (unsigned long long)d->peers[i].failures);
    return status;
}

int cv_syncd_main(cv_program_env *e, void *args)
{
    const cv_syncd_args *a = args;
    int status;
    if (!e->cfg.sync_device && !e->cfg.sync_relay) {
        /* one program list for every instance: an instance that does not
         * sync runs this idle rather than a service that keeps failing */
        if (a->once) {
            cv_err("sync is off: set [sync] device (or relay = yes)");
            return EX_CONFIG;
        }
        if (!e->quiet)
            cv_info("sync is off ([sync] device and relay unset): idle");
        while (!cv_stop_requested)
            cv_nap_ms(1000);
        return 0;
    }
    char err[512];
    cv_program_sockets(e);
    e->stopped_line = !a->once;
    cv_syncd *d = cv_syncd_new(&e->cfg, e->conf, e->quiet, &status, err,
                               sizeof err);
    if (!d) {
        cv_err("%s", err);
        return status;
    }
    status = cv_syncd_run(d, a->once);
    cv_syncd_destroy(&d);
    return status;
}
