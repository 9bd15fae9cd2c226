/* sender.c - spool, window, send, resend, acks. See sender.h. */
#include "net/sender.h"

#include "base/event.h"
#include "crypto/fieldcrypt.h"
#include "net/metrics.h"
#include "net/sock.h"
#include "storage/spool.h"
#include "base/util.h"
#include "net/wire.h"

#include <czmq.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WINDOW_BYTES (8u << 20)
/* A message holds send_batch events, or fewer when they are large. */
#define MAX_MSG_BYTES (512u << 10)
#define MAX_RESEND_MS 30000
#define NLEVELS 16
/* Acks read per poll turn at most, so sending is never starved. */
#define MAX_ACK_MSGS 256

/* Each event in the window sits in exactly one list: waiting for the sync
 * that covers it, ready to send, or sent and waiting for its answer. Sent
 * events are kept per try count: all of a level wait the same time (bar
 * jitter), so each level is ordered by deadline and only heads are due. */
enum { L_UNSYNCED, L_READY, L_SENT0 };

typedef struct ev {
    struct ev *prev, *next; /* list */
    struct ev *hnext;       /* hash chain */
    uint64_t rec;           /* spool record */
    uint64_t hash;
    int64_t deadline;       /* of the next resend, when sent */
    int64_t added_ms;       /* when it entered the window */
    int64_t sent_ms;        /* its first send */
    uint32_t tries;
    uint8_t list;
    size_t len;
    char *id;               /* inside data, after the line */
    char data[];            /* line, NUL, id, NUL */
} ev;

typedef struct {
    ev *head, *tail;
    size_t n;
} evlist;

struct cv_sender {
    const cv_config *cfg;
    cv_metrics *mx;         /* ack latency goes there, when set */
    char *source;
    size_t source_len;
    cv_spool *spool;
    zsock_t *push, *sub;
    void *push_raw, *sub_raw;
    evlist lists[L_SENT0 + NLEVELS];
    ev **buckets;
    size_t nbuckets;
    uint8_t hkey[crypto_shorthash_KEYBYTES];
    size_t count, bytes;     /* in the window */
    int64_t first_unsynced;  /* when the oldest unsynced event was added */
    bool blocked;            /* the PUSH queue is full: wait for POLLOUT */
    bool replay_done;
    bool failed;             /* the spool failed: nothing more accepted */
    bool nodur;              /* bench only: no spool, no acks awaited */
    const cv_keyring *kr;    /* seals the spool's records */
    uint8_t *buf;            /* a record sealed or opened */
    size_t bufcap;
    cv_sender_stats st;
    char err[512];
};

static void list_push(cv_sender *s, int l, ev *e)
{
    evlist *li = &s->lists[l];
    e->list = (uint8_t)l;
    e->next = NULL;
    e->prev = li->tail;
    if (li->tail)
        li->tail->next = e;
    else
        li->head = e;
    li->tail = e;
    li->n++;
}

static void list_del(cv_sender *s, ev *e)
{
    evlist *li = &s->lists[e->list];
    if (e->prev)
        e->prev->next = e->next;
    else
        li->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        li->tail = e->prev;
    li->n--;
    e->prev = e->next = NULL;
}

static uint64_t hash_id(const cv_sender *s, const char *id, size_t len)
{
    uint64_t h;
    /* keyed (SipHash): producers choose ids, and must not choose chains */
    crypto_shorthash((unsigned char *)&h, (const unsigned char *)id, len,
                     s->hkey);
    return h;
}

/* Put an event into the window (and the id table). */
static int window_add(cv_sender *s, const char *line, size_t len, uint64_t rec,
                      int list)
{
    char id[256];
    if (!cv_event_id_of(s->cfg->max_depth, line, len, id, sizeof id))
        return -1;
    size_t idl = strlen(id);
    ev *e = cv_malloc(sizeof *e + len + idl + 2);
    memset(e, 0, sizeof *e);
    memcpy(e->data, line, len);
    e->data[len] = '\0';
    e->id = e->data + len + 1;
    memcpy(e->id, id, idl + 1);
    e->len = len;
    e->rec = rec;
    e->added_ms = cv_mono_ms();
    e->hash = hash_id(s, id, idl);
    size_t b = e->hash & (s->nbuckets - 1);
    e->hnext = s->buckets[b];
    s->buckets[b] = e;
    list_push(s, list, e);
    s->count++;
    s->bytes += sizeof *e + len + idl + 2;
    return 0;
}

static void window_remove(cv_sender *s, ev *e)
{
    ev **pp = &s->buckets[e->hash & (s->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    list_del(s, e);
    s->count--;
    s->bytes -= sizeof *e + e->len + strlen(e->id) + 2;
    free(e);
}

static bool room(const cv_sender *s)
{
    return s->count < (size_t)s->cfg->window && s->bytes < MAX_WINDOW_BYTES;
}

cv_sender *cv_sender_new(const cv_config *cfg, const char *source,
                         const cv_keyring *kr, char *err, size_t errlen)
{
    cv_sender *s = cv_calloc(1, sizeof *s);
    s->cfg = cfg;
    s->kr = kr;
    s->source = cv_strdup(source);
    s->source_len = strlen(source);
    s->nodur = cv_bench_no_durability();
    char *dir = cv_fmt("%s/%s", cfg->spool_dir, source);
    s->spool = cv_spool_open(dir, err, errlen);
    free(dir);
    if (!s->spool)
        goto fail;
    randombytes_buf(s->hkey, sizeof s->hkey);
    s->nbuckets = 1024;
    while (s->nbuckets < (size_t)cfg->window * 2 && s->nbuckets < (1u << 21))
        s->nbuckets *= 2;
    s->buckets = cv_calloc(s->nbuckets, sizeof *s->buckets);

    s->push = cv_sock_connect(cfg, ZMQ_PUSH, cfg->ep_encrypt, err, errlen);
    if (!s->push)
        goto fail;
    /* Keep about one window queued in the socket, and queue nothing for a
     * peer that is not there: what is not sent waits in the window, where
     * it is counted, instead of piling up copies in a pipe. */
    int batches = cfg->window / cfg->send_batch + 2;
    zsock_set_sndhwm(s->push, batches);
    zsock_set_immediate(s->push, 1);
    s->push_raw = zsock_resolve(s->push);
    s->sub = cv_sock_connect(cfg, ZMQ_SUB, cfg->ep_acks, err, errlen);
    if (!s->sub)
        goto fail;
    /* PUB drops what a full queue cannot take; a lost ack is only a
     * resend, but keep room for a burst of them */
    zsock_set_rcvhwm(s->sub, 10000);
    zsock_set_subscribe(s->sub, source);
    s->sub_raw = zsock_resolve(s->sub);
    return s;
fail:;
    int saved = errno;
    cv_sender_destroy(&s);
    errno = saved; /* EWOULDBLOCK: the spool is another process's */
    return NULL;
}

void cv_sender_destroy(cv_sender **p)
{
    cv_sender *s = *p;
    if (!s)
        return;
    for (int l = 0; l < L_SENT0 + NLEVELS; l++) {
        ev *e = s->lists[l].head;
        while (e) {
            ev *n = e->next;
            free(e);
            e = n;
        }
    }
    free(s->buckets);
    free(s->buf);
    if (s->nodur && s->push) {
        /* nothing else delivers the tail: give the queue time to drain
         * (a close over ipc:// can drop what is still queued, linger or
         * not: libzmq #4660) */
        zclock_sleep(2000);
        zsock_set_linger(s->push, 60000);
    }
    zsock_destroy(&s->push);
    zsock_destroy(&s->sub);
    cv_spool_destroy(&s->spool);
    free(s->source);
    free(s);
    *p = NULL;
}

bool cv_sender_ready(const cv_sender *s)
{
    return s->replay_done && !s->failed && room(s);
}

bool cv_sender_failed(const cv_sender *s) { return s->failed; }

/* The spool failed: the events not yet synced were never accepted (the
 * spool has taken them back), so they leave the window unsent; whoever
 * gave them resends them (a producer gets no reply; the client says
 * which line it stopped at). */
static void spool_failed(cv_sender *s, const char *what)
{
    snprintf(s->err, sizeof s->err, "cannot %s the spool in %s: %s", what,
             cv_spool_dir(s->spool), strerror(errno));
    s->failed = true;
    ev *e;
    while ((e = s->lists[L_UNSYNCED].head)) {
        s->st.accepted--;
        s->st.refused++;
        window_remove(s, e);
    }
}

static uint8_t *buffer(cv_sender *s, size_t n)
{
    if (n > s->bufcap) {
        s->bufcap = n + 4096;
        s->buf = cv_realloc(s->buf, s->bufcap);
    }
    return s->buf;
}

/* Append the event to the spool, sealed. */
static int spool_put(cv_sender *s, const char *line, size_t len, uint64_t *rec)
{
    uint8_t *sealed = buffer(s, len + CV_SEALED_OVERHEAD);
    if (cv_fieldcrypt_seal_record(s->kr, "spool", line, len, sealed) < 0) {
        errno = ENOKEY;
        return -1;
    }
    return cv_spool_append(s->spool, (const char *)sealed,
                           len + CV_SEALED_OVERHEAD, rec);
}

int cv_sender_add(cv_sender *s, const char *line, size_t len, uint64_t *seq)
{
    uint64_t rec = 0;
    if (s->failed) {
        s->st.refused++;
        return -1;
    }
    if (!s->nodur && spool_put(s, line, len, &rec) < 0) {
        s->st.refused++;
        spool_failed(s, "write to");
        return -1;
    }
    if (window_add(s, line, len, rec, L_UNSYNCED) < 0) {
        /* ingest only adds events it normalised, which carry an id */
        snprintf(s->err, sizeof s->err, "internal error: an accepted event "
                 "has no \"id\"");
        return -1;
    }
    if (s->lists[L_UNSYNCED].n == 1)
        s->first_unsynced = cv_mono_ms();
    s->st.accepted++;
    if (seq)
        *seq = rec;
    /* a group commit every send_batch events, however fast they come:
     * what is unsynced is bounded, and so is what a failure refuses */
    if (s->lists[L_UNSYNCED].n >= (size_t)s->cfg->send_batch &&
        cv_sender_sync(s) < 0)
        return -1;
    return 0;
}

int cv_sender_sync(cv_sender *s)
{
    if (s->failed)
        return -1;
    if (s->lists[L_UNSYNCED].n == 0)
        return 0;
    if (!s->nodur && cv_spool_sync(s->spool) < 0) {
        spool_failed(s, "sync");
        return -1;
    }
    s->st.syncs++;
    /* everything appended is durable now: it may be sent */
    evlist *u = &s->lists[L_UNSYNCED];
    for (ev *e = u->head; e; e = e->next)
        e->list = L_READY;
    evlist *r = &s->lists[L_READY];
    if (u->head) {
        if (r->tail) {
            r->tail->next = u->head;
            u->head->prev = r->tail;
        } else {
            r->head = u->head;
        }
        r->tail = u->tail;
        r->n += u->n;
    }
    memset(u, 0, sizeof *u);
    return 0;
}

uint64_t cv_sender_durable(const cv_sender *s)
{
    return cv_spool_synced(s->spool);
}

/* Feed an earlier run's spool into the window while there is room. */
static int feed_replay(cv_sender *s)
{
    while (!s->replay_done && room(s)) {
        uint64_t rec;
        const char *line;
        size_t len;
        int r = cv_spool_replay_next(s->spool, &rec, &line, &len);
        if (r < 0) {
            snprintf(s->err, sizeof s->err, "cannot read the spool in %s: %s",
                     cv_spool_dir(s->spool), strerror(errno));
            return -1;
        }
        if (r == 0) {
            s->replay_done = true;
            break;
        }
        if (cv_fieldcrypt_is_sealed_record(line, len)) {
            uint8_t *plain = buffer(s, len);
            if (cv_fieldcrypt_open_record(s->kr, "spool", (const uint8_t *)line, len,
                               plain) < 0) {
                cv_err("%s: a spooled record cannot be opened (altered, or "
                       "sealed under a key the keyring lacks); dropped from "
                       "the spool", cv_spool_dir(s->spool));
                cv_spool_ack(s->spool, rec);
                continue;
            }
            line = (const char *)plain;
            len -= CV_SEALED_OVERHEAD;
        }
        if (window_add(s, line, len, rec, L_READY) < 0) {
            /* it can never be acknowledged: say so, and let it go */
            cv_err("%s: a spooled record without an \"id\" cannot be "
                   "delivered; dropped from the spool", cv_spool_dir(s->spool));
            cv_spool_ack(s->spool, rec);
            continue;
        }
        s->st.replayed++;
    }
    return 0;
}

static int64_t resend_delay(const cv_sender *s, uint32_t tries)
{
    int shift = tries > 0 ? (int)tries - 1 : 0;
    if (shift > 15)
        shift = 15;
    int64_t d = s->cfg->resend_ms << shift;
    if (d > MAX_RESEND_MS)
        d = MAX_RESEND_MS;
    return d + (int64_t)randombytes_uniform((uint32_t)(d / 10 + 1));
}

/* Send ready events, send_batch per message, until the queue is full. */
static int send_ready(cv_sender *s)
{
    evlist *r = &s->lists[L_READY];
    while (r->head && !s->blocked) {
        int rc = zmq_send(s->push_raw, CV_WIRE_VERSION, strlen(CV_WIRE_VERSION),
                          ZMQ_SNDMORE | ZMQ_DONTWAIT);
        if (rc < 0 && errno == EAGAIN) {
            s->blocked = true;
            break;
        }
        /* once the first frame is in, the rest of the message is too */
        if (rc < 0 ||
            zmq_send(s->push_raw, CV_WIRE_EVENTS, strlen(CV_WIRE_EVENTS),
                     ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
            zmq_send(s->push_raw, s->source, s->source_len,
                     ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
            goto fail;
        int64_t now = cv_mono_ms();
        size_t bytes = 0;
        for (int n = 0; r->head; n++) {
            ev *e = r->head;
            bool last = !e->next || n + 1 >= s->cfg->send_batch ||
                        bytes + e->len + e->next->len > MAX_MSG_BYTES;
            if (zmq_send(s->push_raw, e->data, e->len,
                         (last ? 0 : ZMQ_SNDMORE) | ZMQ_DONTWAIT) < 0)
                goto fail;
            bytes += e->len;
            s->st.sent++;
            if (s->nodur) { /* fire and forget */
                window_remove(s, e);
                if (last)
                    break;
                continue;
            }
            list_del(s, e);
            if (e->tries > 0)
                s->st.resent++;
            else
                e->sent_ms = now;
            e->tries++;
            e->deadline = now + resend_delay(s, e->tries);
            list_push(s, L_SENT0 + (e->tries - 1 < NLEVELS ? (int)e->tries - 1
                                                           : NLEVELS - 1), e);
            if (last)
                break;
        }
    }
    return 0;
fail:
    snprintf(s->err, sizeof s->err, "cannot send to %s: %s", s->cfg->ep_encrypt,
             zmq_strerror(errno));
    return -1;
}

/* Move what is overdue back to the ready list; the next deadline. */
static int64_t due_resends(cv_sender *s, int64_t now)
{
    int64_t next = INT64_MAX;
    for (int l = L_SENT0; l < L_SENT0 + NLEVELS; l++) {
        ev *e;
        while ((e = s->lists[l].head) && e->deadline <= now) {
            list_del(s, e);
            list_push(s, L_READY, e);
        }
        if (e && e->deadline < next)
            next = e->deadline;
    }
    return next;
}

/* Answer for id: every window entry with that id (the same event may have
 * been given twice) leaves the window and its spool record is released. */
static void answer(cv_sender *s, const char *id, size_t idl, const char *reason,
                   size_t rlen)
{
    uint64_t h = hash_id(s, id, idl);
    ev **pp = &s->buckets[h & (s->nbuckets - 1)];
    bool logged = false;
    while (*pp) {
        ev *e = *pp;
        if (e->hash != h || strlen(e->id) != idl || memcmp(e->id, id, idl) != 0 ||
            e->list == L_UNSYNCED) {
            pp = &e->hnext;
            continue;
        }
        if (reason) {
            s->st.rejected++;
            if (!logged)
                cv_err("%s: event %s rejected downstream: %.*s", s->source,
                       e->id, (int)rlen, reason);
            logged = true;
        } else {
            s->st.acked++;
            if (e->sent_ms)
                cv_metrics_observe(s->mx, "ctxvault_ack_latency_seconds", NULL,
                                   (double)(cv_mono_ms() - e->sent_ms) / 1000.0);
        }
        if (cv_spool_ack(s->spool, e->rec) < 0) {
            /* logged by the spool; the segment is only replayed again */
        }
        window_remove(s, e); /* unlinks *pp: look at the same slot again */
    }
}

static int read_acks(cv_sender *s)
{
    for (int m = 0; m < MAX_ACK_MSGS; m++) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, s->sub_raw, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            snprintf(s->err, sizeof s->err, "cannot read acks from %s: %s",
                     s->cfg->ep_acks, zmq_strerror(errno));
            return -1;
        }
        /* SUB matches prefixes: the topic must be our source exactly */
        int part = 0;
        bool ours = zmq_msg_size(&f) == s->source_len &&
                    memcmp(zmq_msg_data(&f), s->source, s->source_len) == 0;
        int kind = 0; /* 1 ACK, 2 NAK */
        for (;;) {
            bool more = zmq_msg_more(&f);
            const char *d = zmq_msg_data(&f);
            size_t n = zmq_msg_size(&f);
            if (part == 1)
                ours = ours && n == strlen(CV_WIRE_VERSION) &&
                       memcmp(d, CV_WIRE_VERSION, n) == 0;
            else if (part == 2 && ours)
                kind = n == 3 && memcmp(d, CV_WIRE_ACK, 3) == 0   ? 1
                       : n == 3 && memcmp(d, CV_WIRE_NAK, 3) == 0 ? 2
                                                                  : 0;
            else if (part > 2 && kind == 1)
                answer(s, d, n, NULL, 0);
            else if (part > 2 && kind == 2) {
                const char *tab = memchr(d, '\t', n);
                size_t idl = tab ? (size_t)(tab - d) : n;
                answer(s, d, idl, tab ? tab + 1 : "(no reason given)",
                       tab ? n - idl - 1 : 17);
            }
            zmq_msg_close(&f);
            if (!more)
                break;
            part++;
            zmq_msg_init(&f);
            if (zmq_msg_recv(&f, s->sub_raw, 0) < 0) {
                zmq_msg_close(&f);
                snprintf(s->err, sizeof s->err, "cannot read acks from %s: %s",
                         s->cfg->ep_acks, zmq_strerror(errno));
                return -1;
            }
        }
    }
    return 0;
}

/* Everything that is due without waiting; returns the time of the next
 * thing due (INT64_MAX when nothing is). */
static int64_t do_due(cv_sender *s, int *rc)
{
    int64_t now = cv_mono_ms();
    int64_t next = INT64_MAX;
    size_t unsynced = s->lists[L_UNSYNCED].n;
    if (unsynced) {
        int64_t at = s->first_unsynced + s->cfg->spool_sync_ms;
        if (unsynced >= (size_t)s->cfg->send_batch || now >= at) {
            /* a failure leaves the sender failed: the caller sees it
             * there, and what was synced before is still delivered */
            (void)cv_sender_sync(s);
        } else {
            next = at;
        }
    }
    if (feed_replay(s) < 0 || send_ready(s) < 0) {
        *rc = -1;
        return now;
    }
    int64_t r = due_resends(s, now);
    if (r < next)
        next = r;
    if (s->lists[L_READY].n && !s->blocked && send_ready(s) < 0) {
        *rc = -1;
        return now;
    }
    return next;
}

int cv_sender_poll(cv_sender *s, zmq_pollitem_t *items, int nitems,
                   int timeout_ms)
{
    int rc = 0;
    int64_t next = do_due(s, &rc);
    if (rc < 0)
        return -1;
    int64_t now = cv_mono_ms();
    int64_t wait = timeout_ms;
    if (next != INT64_MAX && (wait < 0 || next - now < wait))
        wait = next > now ? next - now : 0;

    zmq_pollitem_t all[8];
    int n = 0;
    all[n++] = (zmq_pollitem_t){.socket = s->sub_raw, .events = ZMQ_POLLIN};
    int push_at = -1;
    if (s->blocked) {
        push_at = n;
        all[n++] = (zmq_pollitem_t){.socket = s->push_raw, .events = ZMQ_POLLOUT};
    }
    int first = n;
    for (int i = 0; i < nitems && n < 8; i++)
        all[n++] = items[i];
    int pr = zmq_poll(all, n, (long)wait);
    if (pr < 0 && errno != EINTR) {
        snprintf(s->err, sizeof s->err, "cannot poll: %s", zmq_strerror(errno));
        return -1;
    }
    for (int i = 0; i < nitems; i++)
        items[i].revents = pr > 0 && first + i < n ? all[first + i].revents : 0;
    if (pr <= 0)
        return do_due(s, &rc), rc;
    if (push_at >= 0 && (all[push_at].revents & ZMQ_POLLOUT))
        s->blocked = false;
    if ((all[0].revents & ZMQ_POLLIN) && read_acks(s) < 0)
        return -1;
    do_due(s, &rc);
    return rc;
}

uint64_t cv_sender_outstanding(const cv_sender *s)
{
    return s->count + cv_spool_replay_left(s->spool);
}

const cv_sender_stats *cv_sender_stats_get(const cv_sender *s) { return &s->st; }
const char *cv_sender_error(const cv_sender *s) { return s->err; }
const char *cv_sender_spool_dir(const cv_sender *s) { return cv_spool_dir(s->spool); }

void cv_sender_set_metrics(cv_sender *s, cv_metrics *m) { s->mx = m; }

int64_t cv_sender_oldest_ms(const cv_sender *s)
{
    int64_t oldest = 0;
    for (int l = 0; l < L_SENT0 + NLEVELS; l++)
        for (const ev *e = s->lists[l].head; e; e = e->next)
            if (!oldest || e->added_ms < oldest)
                oldest = e->added_ms;
    return oldest;
}

uint64_t cv_sender_spool_bytes(const cv_sender *s) { return cv_spool_bytes(s->spool); }
uint64_t cv_sender_spool_dropped(const cv_sender *s) { return cv_spool_dropped(s->spool); }
