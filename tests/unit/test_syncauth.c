/* test_syncauth.c - ctxvault-sync's pinned-key CURVE sockets
 * (lib/net/syncauth.h) over real tcp on 127.0.0.1: a pinned client is served
 * and named, an unpinned one and one pinning the wrong server are not. */
#include "harness.h"

#include "base/config.h"
#include "net/syncauth.h"
#include "net/synckeys.h"
#include "base/util.h"

#include <czmq.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An instance NAME in the test's directory with config text conf and its
 * sync keys; its public key in hex. */
static void instance(cv_config *c, const char *name, const char *conf,
                     char hex[65])
{
    char *home = cv_fmt("%s/%s", cvt_tmpdir(), name);
    char *path = cv_fmt("%s/ctxvault.conf", home);
    cv_mkdir_p(home, 0700, true);
    cv_write_file_atomic(path, conf, strlen(conf), 0600, false);
    if (cv_config_load(c, home, NULL) != 0)
        cvt_fail(__FILE__, __LINE__, "config of %s has problems", name);
    char err[512];
    if (cv_synckeys_make(c, false, err, sizeof err) < 0 ||
        cv_synckeys_public_hex(c, hex, err, sizeof err) < 0)
        cvt_fail(__FILE__, __LINE__, "%s", err);
    free(home);
    free(path);
}

/* The server: listens on a free port of 127.0.0.1, allows client_hex as
 * "laptop". */
typedef struct {
    cv_config cfg;
    char hex[65];
    cv_syncauth *auth;
    zsock_t *router;
    char *endpoint;
} server;

static void server_start(server *s, const char *client_hex)
{
    char *conf = cv_fmt("[sync]\nrelay = yes\nlisten = tcp://127.0.0.1:*\n"
                        "allow.laptop = %s\n", client_hex);
    instance(&s->cfg, "server", conf, s->hex);
    free(conf);
    char err[512];
    s->auth = cv_syncauth_new(&s->cfg, err, sizeof err);
    if (!s->auth)
        cvt_fail(__FILE__, __LINE__, "%s", err);
    s->router = cv_syncauth_bind(&s->cfg, err, sizeof err);
    if (!s->router)
        cvt_fail(__FILE__, __LINE__, "%s", err);
    s->endpoint = zsock_last_endpoint(s->router); /* the port bound */
}

static void server_stop(server *s)
{
    zsock_destroy(&s->router);
    cv_syncauth_destroy(&s->auth);
    free(s->endpoint);
    cv_config_free(&s->cfg);
}

/* A message from the client's DEALER, or NULL after ms. */
static zmsg_t *recv_within(zsock_t *s, int ms)
{
    zpoller_t *p = zpoller_new(s, NULL);
    zmsg_t *m = zpoller_wait(p, ms) ? zmsg_recv(s) : NULL;
    zpoller_destroy(&p);
    return m;
}

TEST(syncauth_pinned_client_is_served_and_named)
{
    cv_config client;
    char client_hex[65];
    instance(&client, "laptop", "[sync]\ndevice = laptop\n", client_hex);
    server srv;
    server_start(&srv, client_hex);

    cv_sync_peer peer = {.name = "relay", .endpoint = srv.endpoint,
                         .key = srv.hex};
    char err[512];
    zsock_t *d = cv_syncauth_connect(&client, &peer, err, sizeof err);
    CHECK(d);
    zsock_set_sndtimeo(d, 5000); /* immediate: waits for the handshake */
    CHECK_INT(zstr_send(d, "hello"), 0);

    zmsg_t *m = recv_within(srv.router, 5000);
    CHECK(m);
    CHECK_INT(zmsg_size(m), 2);
    zframe_t *id = zmsg_first(m);
    zframe_t *body = zmsg_next(m);
    CHECK(zframe_streq(body, "hello"));
    CHECK_STR(cv_syncauth_peer_name(body), "laptop");
    CHECK(cv_syncauth_peer_name(NULL) == NULL);
    /* the routing id a ROUTER adds is no wire frame: no metadata */
    CHECK(cv_syncauth_peer_name(id) == NULL);
    /* the reply reaches the client */
    zmsg_t *rep = zmsg_new();
    zmsg_append(rep, &(zframe_t *){zframe_dup(id)});
    zmsg_addstr(rep, "welcome");
    CHECK_INT(zmsg_send(&rep, srv.router), 0);
    zmsg_t *got = recv_within(d, 5000);
    CHECK(got);
    char *s = zmsg_popstr(got);
    CHECK_STR(s, "welcome");
    /* the client's DEALER does not name the server: no ZAP on its side */
    free(s);
    zmsg_destroy(&got);
    zmsg_destroy(&m);

    CHECK_INT(zsock_maxmsgsize(srv.router), 64 << 20);
    CHECK_INT(zsock_immediate(d), 1);
    CHECK_INT(zsock_heartbeat_ivl(d), 1000);
    CHECK_INT(zsock_heartbeat_timeout(srv.router), 3000);
    CHECK_INT(zsock_linger(d), 0);
    zsock_destroy(&d);
    server_stop(&srv);
    cv_config_free(&client);
}

TEST(syncauth_unpinned_client_gets_nothing_and_is_logged_once)
{
    cv_config client, stranger;
    char client_hex[65], stranger_hex[65];
    instance(&client, "laptop", "[sync]\ndevice = laptop\n", client_hex);
    instance(&stranger, "stranger", "[sync]\ndevice = x\n", stranger_hex);
    /* the handler's log lines, from its own thread */
    char *log = cv_fmt("%s/stderr", cvt_tmpdir());
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int saved = dup(2);
    dup2(fd, 2);
    server srv;
    server_start(&srv, client_hex);

    cv_sync_peer peer = {.name = "relay", .endpoint = srv.endpoint,
                         .key = srv.hex};
    char err[512];
    /* three connections, three refusals: one line in the log */
    zsock_t *d = NULL;
    for (int i = 0; i < 3; i++) {
        zsock_destroy(&d);
        d = cv_syncauth_connect(&stranger, &peer, err, sizeof err);
        CHECK(d);
        zsock_set_sndtimeo(d, 300);
        /* never connected, so the send fails (nothing is queued) */
        CHECK_INT(zstr_send(d, "let me in"), -1);
    }
    CHECK(recv_within(srv.router, 300) == NULL);
    zsock_destroy(&d);
    server_stop(&srv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);

    size_t n;
    char *text = cv_read_file(log, 1 << 16, &n);
    CHECK(text);
    const char *line = "sync: refused a connection from 127.0.0.1: its key is "
                       "not pinned in [sync] allow";
    char *first = strstr(text, line);
    if (!first || strstr(first + 1, line))
        cvt_fail(__FILE__, __LINE__, "expected the refusal logged once:\n%s",
                 text);
    free(text);
    free(log);
    cv_config_free(&client);
    cv_config_free(&stranger);
}

TEST(syncauth_client_pinning_the_wrong_server_gets_nothing)
{
    cv_config client, other;
    char client_hex[65], other_hex[65];
    instance(&client, "laptop", "[sync]\ndevice = laptop\n", client_hex);
    instance(&other, "other", "[sync]\ndevice = other\n", other_hex);
    server srv;
    server_start(&srv, client_hex);

    /* the right endpoint, another instance's key: not the server */
    cv_sync_peer peer = {.name = "relay", .endpoint = srv.endpoint,
                         .key = other_hex};
    char err[512];
    zsock_t *d = cv_syncauth_connect(&client, &peer, err, sizeof err);
    CHECK(d);
    zsock_set_sndtimeo(d, 500);
    CHECK_INT(zstr_send(d, "hello"), -1);
    CHECK(recv_within(srv.router, 500) == NULL);
    zsock_destroy(&d);
    server_stop(&srv);
    cv_config_free(&client);
    cv_config_free(&other);
}

TEST(syncauth_bind_needs_the_handler_and_only_one_runs)
{
    cv_config c;
    char hex[65];
    instance(&c, "solo", "[sync]\ndevice = solo\nlisten = tcp://127.0.0.1:*\n",
             hex);
    char err[512] = "";
    /* no handler: libzmq would let everyone in, so no bind */
    CHECK(cv_syncauth_bind(&c, err, sizeof err) == NULL);
    CHECK(strstr(err, "the sync authenticator is not running"));
    cv_syncauth *a = cv_syncauth_new(&c, err, sizeof err);
    CHECK(a);
    cv_syncauth *b = cv_syncauth_new(&c, err, sizeof err);
    CHECK(b == NULL);
    CHECK(strstr(err, "another ZAP handler"));
    zsock_t *r = cv_syncauth_bind(&c, err, sizeof err);
    CHECK(r);
    zsock_destroy(&r);
    cv_syncauth_destroy(&a);
    CHECK(a == NULL);
    cv_syncauth_destroy(&a); /* twice is harmless */
    CHECK(cv_syncauth_bind(&c, err, sizeof err) == NULL);
    /* and a peer without a usable key is refused before any socket */
    cv_sync_peer bad = {.name = "p", .endpoint = "tcp://127.0.0.1:1",
                        .key = "abc"};
    CHECK(cv_syncauth_connect(&c, &bad, err, sizeof err) == NULL);
    CHECK(strstr(err, "sync peer p"));
    cv_config_free(&c);
}
