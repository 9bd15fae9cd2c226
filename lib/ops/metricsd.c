/* metricsd.c - ctxvault-metrics' collector and its HTTP server. See
 * metricsd.h. It only listens: a program never waits for it, and its
 * absence loses nothing but the figures. */
#include "ops/metricsd.h"

#include "net/collect.h"
#include "ops/instance.h"
#include "net/metrics.h"
#include "net/sock.h"
#include "base/util.h"
#include "net/wire.h"

#include <czmq.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    pthread_mutex_t lock;
    cv_collect *c;
    const char *instance; /* the instance id, or NULL */
} state;

static enum MHD_Result reply(struct MHD_Connection *conn, const state *s,
                             unsigned code, const char *type, char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    /* every answer names its instance: ctxvault status refuses another's */
    if (s && s->instance)
        MHD_add_response_header(r, CV_COLLECT_INSTANCE_HEADER, s->instance);
    enum MHD_Result rc = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return rc;
}

/* One request: libmicrohttpd's thread, under the state's lock. */
static enum MHD_Result serve(void *cls, struct MHD_Connection *conn,
                             const char *url, const char *method,
                             const char *version, const char *upload,
                             size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    state *s = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(conn, s, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
                     cv_strdup("only GET\n"));
    int64_t now = cv_mono_ms();
    char *body = NULL;
    unsigned code = MHD_HTTP_OK;
    const char *type = "text/plain; charset=utf-8";
    pthread_mutex_lock(&s->lock);
    if (!strcmp(url, "/metrics")) {
        body = cv_collect_prometheus(s->c, now);
        type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (!strcmp(url, "/health")) {
        json_t *h = cv_collect_health(s->c, now);
        /* a degraded pipeline answers 503, so a plain HTTP check sees it */
        if (strcmp(json_string_value(json_object_get(h, "status")), "ok") != 0)
            code = MHD_HTTP_SERVICE_UNAVAILABLE;
        char *j = json_dumps(h, JSON_INDENT(2));
        body = cv_fmt("%s\n", j);
        free(j);
        json_decref(h);
        type = "application/json";
    } else if (!strcmp(url, "/status") || !strcmp(url, "/")) {
        const char *fmt = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
                                                      "format");
        if (fmt && !strcmp(fmt, "json")) {
            /* the health record, for programs (ctxvault status --json) */
            json_t *r = cv_collect_record(s->c, now);
            char *j = json_dumps(r, JSON_INDENT(2));
            body = cv_fmt("%s\n", j);
            free(j);
            json_decref(r);
            type = "application/json";
        } else {
            body = cv_collect_status(s->c, now);
        }
    } else {
        code = MHD_HTTP_NOT_FOUND;
        body = cv_strdup("not found: try /metrics, /health or /status\n");
    }
    pthread_mutex_unlock(&s->lock);
    return reply(conn, s, code, type, body);
}

/* ADDR:PORT (or [ADDR]:PORT) as a socket address; port auto is -1 (the
 * socket address gets port 0: the kernel picks a free one). */
static int parse_listen(const char *spec, struct sockaddr_storage *sa,
                        socklen_t *len, int *port)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof host)
        return -1;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    char *h = host;
    if (h[0] == '[' && h[strlen(h) - 1] == ']') {
        h[strlen(h) - 1] = '\0';
        h++;
    }
    int64_t p;
    bool any = !strcmp(colon + 1, "auto");
    if (!any && !cv_parse_int(colon + 1, 0, 65535, &p))
        return -1;
    *port = any ? -1 : (int)p;
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                             .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(h, any ? "0" : colon + 1, &hints, &ai) != 0)
        return -1;
    memcpy(sa, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* The address served, ADDR:PORT with the port bound (malloc'ed). */
static char *served_address(const char *listen, int port)
{
    const char *colon = strrchr(listen, ':');
    return cv_fmt("%.*s:%d", (int)(colon - listen), listen, port);
}

static int write_textfile(const char *path, const char *text)
{
    if (cv_write_file_atomic(path, text, strlen(text), 0644, false) < 0) {
        cv_err("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int cv_metricsd_list(void)
{
    for (const cv_metric_def *d = cv_metric_defs; d->name; d++) {
        char owners[256];
        snprintf(owners, sizeof owners, "%s", d->owners);
        for (char *o = owners; (o = strchr(o, ' ')); )
            *o = ',';
        printf("%s %s %s %s\n", d->name, d->type == CV_COUNTER ? "counter"
               : d->type == CV_GAUGE ? "gauge" : "histogram", owners, d->help);
    }
    return fflush(stdout) == EOF ? EX_IOERR : 0;
}

int cv_metricsd_main(cv_program_env *e, void *args)
{
    const cv_metricsd_args *a = args;
    const cv_config *cfg = &e->cfg;
    int status = 0;
    struct MHD_Daemon *d = NULL;
    zsock_t *sub = NULL;
    state s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char *served = NULL, *addr_file = NULL;
    char instance[CV_INSTANCE_ID_LEN + 1];
    const char *listen = a->listen ? a->listen : cfg->metrics_listen;
    const char *textfile = a->textfile ? a->textfile : cfg->metrics_textfile;
    bool once = a->once, quiet = e->quiet;
    s.c = cv_collect_new(cfg->metrics_stale_ms, a->expect);
    cv_collect_anomaly(s.c, cfg->anomaly_window_ms, cfg->anomaly_percent,
                       cfg->anomaly_min_events);
    char err[512];
    /* an instance made before ids existed gets one now; without an
     * instance (a bare -c FILE) the answers name none */
    if (cv_instance_id(cfg, access(cfg->home, W_OK) == 0, instance, err,
                       sizeof err) == 0) {
        s.instance = instance;
        cv_collect_instance(s.c, instance, cfg->home);
    } else if (!quiet) {
        cv_warn("serving no instance id: %s", err);
    }
    cv_program_sockets(e);
    sub = cv_sock_bind(cfg, ZMQ_SUB, cfg->ep_metrics, err, sizeof err);
    if (!sub) {
        cv_err("%s", err);
        status = EX_UNAVAILABLE;
        goto out;
    }
    zsock_set_subscribe(sub, CV_WIRE_VERSION);
    struct sockaddr_storage sa;
    socklen_t salen;
    int port = 0;
    if (!once && parse_listen(listen, &sa, &salen, &port) < 0) {
        cv_err("listen '%s' is not ADDRESS:PORT with a numeric address", listen);
        status = EX_CONFIG;
        goto out;
    }
    if (!once && port != 0) {
        d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                                 (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                             (uint16_t)(port < 0 ? 0 : port), NULL, NULL, serve, &s,
                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                             MHD_OPTION_END);
        if (!d) {
            cv_err("cannot listen on %s: %s", listen, strerror(errno));
            status = EX_UNAVAILABLE;
            goto out;
        }
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        served = served_address(listen, di ? di->port : port);
        /* where ctxvault status and tests find this instance's listener:
         * with port auto, nothing else says it */
        addr_file = cv_fmt("%s/metrics.listen", cfg->run_dir);
        char *line = cv_fmt("%s\n", served);
        if (cv_write_file_atomic(addr_file, line, strlen(line), 0600, false) < 0) {
            cv_err("cannot write %s: %s", addr_file, strerror(errno));
            free(line);
            free(addr_file);
            addr_file = NULL;
            status = EX_CANTCREAT;
            goto out;
        }
        free(line);
    }
    if (!quiet)
        cv_info("collecting on %s%s%s%s%s", cfg->ep_metrics,
                d ? "; serving http://" : "", d ? served : "",
                textfile ? "; textfile " : "", textfile ? textfile : "");
    int64_t started = cv_mono_ms(), written = 0;
    while (!cv_stop_requested) {
        zmq_pollitem_t it = {zsock_resolve(sub), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 200) < 0 && errno != EINTR) {
            cv_err("cannot poll: %s", zmq_strerror(errno));
            status = EX_OSERR;
            break;
        }
        while (zsock_events(sub) & ZMQ_POLLIN) {
            zmsg_t *m = zmsg_recv(sub);
            if (!m)
                break;
            zframe_t *ver = zmsg_first(m), *kind = zmsg_next(m), *body = zmsg_next(m);
            pthread_mutex_lock(&s.lock);
            if (ver && kind && body && zframe_streq(kind, "METRICS"))
                cv_collect_take(s.c, (const char *)zframe_data(body),
                                zframe_size(body), cv_mono_ms());
            else
                cv_collect_take(s.c, "", 0, cv_mono_ms()); /* counted */
            pthread_mutex_unlock(&s.lock);
            zmsg_destroy(&m);
        }
        int64_t now = cv_mono_ms();
        if (once && now - started >= cfg->metrics_stale_ms)
            break;
        if (textfile && now - written >= cfg->metrics_interval_ms) {
            pthread_mutex_lock(&s.lock);
            char *text = cv_collect_prometheus(s.c, now);
            pthread_mutex_unlock(&s.lock);
            int rc = write_textfile(textfile, text);
            free(text);
            if (rc < 0) {
                status = EX_CANTCREAT;
                break;
            }
            written = now;
        }
    }
    if (once && !status) {
        char *text = cv_collect_prometheus(s.c, cv_mono_ms());
        if (fputs(text, stdout) == EOF || fflush(stdout) == EOF)
            status = EX_IOERR;
        free(text);
    }
    if (!quiet && !once)
        cv_info("stopped");
out:
    if (d)
        MHD_stop_daemon(d);
    if (addr_file) {
        /* gone with the listener, unless another collector wrote it since */
        char *was = cv_read_file(addr_file, 256, NULL), *line = cv_fmt("%s\n", served);
        if (was && !strcmp(was, line))
            unlink(addr_file);
        free(was);
        free(line);
        free(addr_file);
    }
    free(served);
    zsock_destroy(&sub);
    cv_collect_destroy(&s.c);
    return status;
}
