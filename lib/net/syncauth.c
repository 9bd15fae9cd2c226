/* syncauth.c - ctxvault-sync's ZAP handler (pinned client keys) and its
 * CURVE server and client sockets. */
#include "net/syncauth.h"

#include "net/synckeys.h"
#include "base/util.h"

#include <errno.h>
#include <sodium.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
/* a refused address is logged again only after this long: a refused
 * client reconnects every few seconds, and the log must stay readable */
#define REFUSAL_LOG_MS 60000
/* at most this many addresses remembered; beyond it, the oldest go */
#define REFUSAL_TABLE_MAX 1024
#define HEARTBEAT_IVL_MS 1000
#define HEARTBEAT_TIMEOUT_MS 3000

struct cv_syncauth {
    zactor_t *actor;
};

/* A started handler in this process: cv_syncauth_bind needs one, because
 * libzmq lets every client in when no handler answers (ZAP domain
 * enforcement, ZMQ_ZAP_ENFORCE_DOMAIN, is a draft option Debian lacks). */
static atomic_int handlers;

typedef struct {
    unsigned char key[32];
    char name[33];
} allowed;

/* What the actor gets from cv_syncauth_new, and how it answers: the
 * caller waits until the actor has copied it and bound (or failed). */
typedef struct {
    const allowed *allow;
    int nallow;
    int rc;
    char err[256];
} start_args;

typedef struct {
    zsock_t *pipe;
    zsock_t *zap;
    allowed *allow;
    int nallow;
    zhash_t *logged; /* address -> when last logged (int64_t *) */
} handler;

static const allowed *find_key(const handler *h, zframe_t *cred)
{
    if (!cred || zframe_size(cred) != 32)
        return NULL;
    for (int i = 0; i < h->nallow; i++)
        if (memcmp(h->allow[i].key, zframe_data(cred), 32) == 0)
            return &h->allow[i];
    return NULL;
}

/* Log a refusal of address, unless it was logged within the minute. */
static void log_refusal(handler *h, const char *address, const char *why)
{
    int64_t now = zclock_mono();
    int64_t *last = zhash_lookup(h->logged, address);
    if (last && now - *last < REFUSAL_LOG_MS)
        return;
    if (!last && zhash_size(h->logged) >= REFUSAL_TABLE_MAX) {
        /* forget the addresses whose minute is over; if all are recent,
         * forget them all rather than grow without bound */
        zlist_t *keys = zhash_keys(h->logged);
        for (const char *k = zlist_first(keys); k; k = zlist_next(keys)) {
            int64_t *t = zhash_lookup(h->logged, k);
            if (now - *t >= REFUSAL_LOG_MS)
                zhash_delete(h->logged, k);
        }
        zlist_destroy(&keys);
        if (zhash_size(h->logged) >= REFUSAL_TABLE_MAX) {
            zhash_destroy(&h->logged);
            h->logged = zhash_new();
        }
    }
    if (!last) {
        last = cv_malloc(sizeof *last);
        zhash_insert(h->logged, address, last);
        zhash_freefn(h->logged, address, free);
    }
    *last = now;
    cv_warn("sync: refused a connection from %s: %s", address, why);
}

/* Answer one ZAP request (RFC 27: version, request id, domain, address,
 * routing id, mechanism, credentials...). A REP socket must answer every
 * request, malformed ones too, or it stops receiving. */
static void answer(handler *h, zmsg_t *req)
{
    zframe_t *f[7] = {0};
    for (int i = 0; i < 7; i++)
        f[i] = zmsg_pop(req);
    const char *status = "400", *text = "not allowed", *user = "";
    char *address = f[3] ? zframe_strdup(f[3]) : cv_strdup("?");
    const allowed *a = NULL;
    if (!f[0] || !zframe_streq(f[0], "1.0") || !f[5]) {
        status = "500";
        text = "malformed ZAP request";
    } else if (!zframe_streq(f[2], CV_SYNCAUTH_DOMAIN) ||
               !zframe_streq(f[5], "CURVE")) {
        /* not a sync socket: fail closed, nothing else is served here */
        log_refusal(h, address, "not a CURVE connection to a sync socket");
    } else if (!(a = find_key(h, f[6]))) {
        log_refusal(h, address, "its key is not pinned in [sync] allow");
    } else {
        status = "200";
        text = "OK";
        user = a->name;
    }
    zmsg_t *rep = zmsg_new();
    zmsg_addstr(rep, "1.0");
    if (f[1])
        zmsg_append(rep, &f[1]);
    else
        zmsg_addstr(rep, "");
    zmsg_addstr(rep, status);
    zmsg_addstr(rep, text);
    zmsg_addstr(rep, user);
    zmsg_addmem(rep, NULL, 0); /* no metadata */
    zmsg_send(&rep, h->zap);
    for (int i = 0; i < 7; i++)
        zframe_destroy(&f[i]);
    free(address);
}

static void actor(zsock_t *pipe, void *arg)
{
    start_args *args = arg;
    handler h = {.pipe = pipe};
    h.nallow = args->nallow;
    h.allow = cv_calloc((size_t)(h.nallow ? h.nallow : 1), sizeof *h.allow);
    memcpy(h.allow, args->allow, (size_t)h.nallow * sizeof *h.allow);
    h.zap = zsock_new(ZMQ_REP);
    if (!h.zap || zsock_bind(h.zap, ZAP_ENDPOINT) < 0) {
        args->rc = -1;
        snprintf(args->err, sizeof args->err, "cannot start the sync "
                 "authenticator: %s is taken (%s): another ZAP handler, such "
                 "as the pipeline's, runs in this process", ZAP_ENDPOINT,
                 zmq_strerror(errno));
        zsock_destroy(&h.zap);
        free(h.allow);
        zsock_signal(pipe, 0);
        return;
    }
    h.logged = zhash_new();
    zpoller_t *poller = zpoller_new(pipe, h.zap, NULL);
    args->rc = 0;
    zsock_signal(pipe, 0); /* args is the caller's no more after this */
    for (;;) {
        zsock_t *which = zpoller_wait(poller, -1);
        if (which == h.zap) {
            zmsg_t *req = zmsg_recv(h.zap);
            if (req)
                answer(&h, req);
            zmsg_destroy(&req);
        } else if (which == pipe) {
            char *cmd = zstr_recv(pipe);
            bool term = !cmd || !strcmp(cmd, "$TERM");
            zstr_free(&cmd);
            if (term)
                break;
        } else if (zpoller_terminated(poller)) {
            break;
        }
    }
    zpoller_destroy(&poller);
    zhash_destroy(&h.logged);
    zsock_destroy(&h.zap);
    free(h.allow);
}

cv_syncauth *cv_syncauth_new(const cv_config *cfg, char *err, size_t errlen)
{
    start_args args = {.nallow = cfg->nsync_allow};
    allowed *allow = cv_calloc((size_t)(args.nallow ? args.nallow : 1),
                               sizeof *allow);
    for (int i = 0; i < args.nallow; i++) {
        const cv_sync_peer *p = &cfg->sync_allow[i];
        size_t n;
        if (!p->key || sodium_hex2bin(allow[i].key, 32, p->key, strlen(p->key),
                                      NULL, &n, NULL) != 0 || n != 32) {
            snprintf(err, errlen, "[sync] allow.%s: the key is not 64 hex "
                     "digits", p->name);
            free(allow);
            return NULL;
        }
        snprintf(allow[i].name, sizeof allow[i].name, "%s", p->name);
    }
    args.allow = allow;
    zactor_t *a = zactor_new(actor, &args);
    free(allow);
    if (!a || args.rc < 0) {
        snprintf(err, errlen, "%s", a ? args.err
                                      : "cannot start the sync authenticator");
        zactor_destroy(&a);
        return NULL;
    }
    cv_syncauth *self = cv_calloc(1, sizeof *self);
    self->actor = a;
    atomic_fetch_add(&handlers, 1);
    return self;
}

void cv_syncauth_destroy(cv_syncauth **p)
{
    if (!p || !*p)
        return;
    zactor_destroy(&(*p)->actor);
    atomic_fetch_sub(&handlers, 1);
    free(*p);
    *p = NULL;
}

/* What both sides set: our certificate, heartbeats (a dead peer is seen
 * in seconds, not at the TCP timeout), the largest message. Linger stays
 * 0, CZMQ's default: the sync protocol resends what was not
 * acknowledged. */
static int common(const cv_config *cfg, zsock_t *s, char *err, size_t errlen)
{
    zcert_t *cert = cv_synckeys_cert(cfg, err, errlen);
    if (!cert)
        return -1;
    zcert_apply(cert, s);
    zcert_destroy(&cert);
    zsock_set_heartbeat_ivl(s, HEARTBEAT_IVL_MS);
    zsock_set_heartbeat_timeout(s, HEARTBEAT_TIMEOUT_MS);
    zsock_set_maxmsgsize(s, (int)CV_SYNCAUTH_MAXMSG);
    return 0;
}

/* A socket of type with the options both sides share. */
static zsock_t *new_socket(const cv_config *cfg, int type, char *err,
                           size_t errlen)
{
    zsock_t *s = zsock_new(type);
    if (!s) {
        snprintf(err, errlen, "cannot create a socket: %s", zmq_strerror(errno));
        return NULL;
    }
    if (common(cfg, s, err, errlen) < 0)
        zsock_destroy(&s);
    return s;
}

zsock_t *cv_syncauth_bind(const cv_config *cfg, char *err, size_t errlen)
{
    const char *ep = cfg->sync_listen;
    if (!ep) {
        snprintf(err, errlen, "cannot listen for sync peers: [sync] listen "
                 "is not set");
        return NULL;
    }
    if (atomic_load(&handlers) == 0) {
        snprintf(err, errlen, "refusing to bind %s: the sync authenticator is "
                 "not running, and without it every client would get in", ep);
        return NULL;
    }
    zsock_t *s = new_socket(cfg, ZMQ_ROUTER, err, errlen);
    if (!s)
        return NULL;
    zsock_set_curve_server(s, 1);
    zsock_set_zap_domain(s, CV_SYNCAUTH_DOMAIN);
    bool ipc = strncmp(ep, "ipc://", 6) == 0;
    if (ipc)
        unlink(ep + 6); /* left by a killed process, it would refuse the bind */
    if (zsock_bind(s, "%s", ep) < 0) {
        snprintf(err, errlen, "cannot bind %s: %s", ep, zmq_strerror(errno));
        zsock_destroy(&s);
        return NULL;
    }
    if (ipc)
        chmod(ep + 6, 0600);
    return s;
}

zsock_t *cv_syncauth_connect(const cv_config *cfg, const cv_sync_peer *peer,
                             char *err, size_t errlen)
{
    unsigned char key[32];
    size_t n;
    if (!peer->endpoint || !peer->key ||
        sodium_hex2bin(key, sizeof key, peer->key, strlen(peer->key), NULL,
                       &n, NULL) != 0 || n != sizeof key) {
        snprintf(err, errlen, "cannot connect to sync peer %s: it needs an "
                 "endpoint and a key of 64 hex digits", peer->name);
        return NULL;
    }
    zsock_t *s = new_socket(cfg, ZMQ_DEALER, err, errlen);
    if (!s)
        return NULL;
    zsock_set_curve_serverkey_bin(s, key);
    /* nothing queued for a peer that is not there: the sender sees it at
     * once and keeps the versions for the next attempt */
    zsock_set_immediate(s, 1);
    zsock_set_reconnect_ivl(s, (int)cfg->sync_retry_min_ms);
    zsock_set_reconnect_ivl_max(s, (int)cfg->sync_retry_max_ms);
    if (zsock_connect(s, "%s", peer->endpoint) < 0) {
        snprintf(err, errlen, "cannot connect to sync peer %s at %s: %s",
                 peer->name, peer->endpoint, zmq_strerror(errno));
        zsock_destroy(&s);
        return NULL;
    }
    return s;
}

const char *cv_syncauth_peer_name(zframe_t *frame)
{
    if (!frame)
        return NULL;
    const char *name = zframe_meta(frame, "User-Id");
    return name && *name ? name : NULL;
}
