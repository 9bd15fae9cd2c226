/* control.c - the client side of store's control socket.
 *
 * One DEALER, one request in flight. After a timeout the connection is
 * marked broken, because a late reply would be taken for the answer to
 * the next request: the caller makes a new connection instead. */
#include "net/control.h"

#include "net/sock.h"
#include "base/util.h"
#include "net/wire.h"
#include "base/time.h"

#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cv_control {
    zsock_t *dealer;
    bool broken;    /* a call timed out: a late reply may still come */
};

cv_control *cv_control_new(const cv_config *cfg, char *err, size_t errlen)
{
    cv_sock_init();
    zsock_t *d = cv_sock_connect(cfg, ZMQ_DEALER, cfg->ep_control, err, errlen);
    if (!d)
        return NULL;
    /* no queueing onto a store that is not there */
    zsock_set_immediate(d, 1);
    cv_control *c = cv_calloc(1, sizeof *c);
    c->dealer = d;
    return c;
}

void cv_control_destroy(cv_control **p)
{
    cv_control *c = *p;
    if (!c)
        return;
    zsock_destroy(&c->dealer);
    free(c);
    *p = NULL;
}

json_t *cv_control_call(cv_control *c, json_t *request, int timeout_ms,
                        char *err, size_t errlen)
{
    if (cv_control_send(c, request, NULL, 0, timeout_ms, err, errlen) < 0)
        return NULL;
    return cv_control_recv(c, timeout_ms, err, errlen);
}

static int send_text(cv_control *c, const char *text, size_t len,
                     const cv_blob *blobs, size_t n, int timeout_ms, char *err,
                     size_t errlen)
{
    if (c->broken) {
        snprintf(err, errlen, "an earlier request to store timed out");
        return -1;
    }
    zmsg_t *m = zmsg_new();
    zmsg_addstr(m, CV_WIRE_VERSION);
    zmsg_addmem(m, text, len);
    for (size_t i = 0; i < n; i++)
        zmsg_addmem(m, blobs[i].data, blobs[i].len);
    zsock_set_sndtimeo(c->dealer, timeout_ms);
    if (zmsg_send(&m, c->dealer) < 0) {
        zmsg_destroy(&m);
        c->broken = true;
        snprintf(err, errlen, "no store to send to at its control endpoint");
        return -1;
    }
    return 0;
}

int cv_control_send(cv_control *c, json_t *request, const cv_blob *blobs,
                    size_t n, int timeout_ms, char *err, size_t errlen)
{
    char *text = json_dumps(request, CV_JSON_DUMP);
    if (!text) {
        snprintf(err, errlen, "cannot encode the request");
        return -1;
    }
    int rc = send_text(c, text, strlen(text), blobs, n, timeout_ms, err, errlen);
    free(text);
    return rc;
}

/* The reply's JSON frame, or NULL with a reason in err. */
static zframe_t *recv_body(cv_control *c, int timeout_ms, char *err,
                           size_t errlen)
{
    int64_t deadline = cv_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - cv_mono_ms();
        zmq_pollitem_t item = {zsock_resolve(c->dealer), 0, ZMQ_POLLIN, 0};
        int rc = left > 0 ? zmq_poll(&item, 1, (long)left) : 0;
        if (rc < 0 && errno == EINTR && !cv_stop_requested)
            continue;
        if (rc <= 0) {
            c->broken = true;
            snprintf(err, errlen, rc == 0 ? "store did not answer within %d ms"
                                          : "interrupted after %d ms", timeout_ms);
            return NULL;
        }
        zmsg_t *r = zmsg_recv(c->dealer);
        if (!r)
            continue;
        char *ver = zmsg_popstr(r);
        zframe_t *body = zmsg_pop(r);
        if (!ver || strcmp(ver, CV_WIRE_VERSION) != 0 || !body) {
            snprintf(err, errlen, "store's reply is not a %s reply",
                     CV_WIRE_VERSION);
            zframe_destroy(&body);
        }
        free(ver);
        zmsg_destroy(&r);
        return body;
    }
}

json_t *cv_control_recv(cv_control *c, int timeout_ms, char *err,
                        size_t errlen)
{
    zframe_t *body = recv_body(c, timeout_ms, err, errlen);
    if (!body)
        return NULL;
    json_error_t je;
    json_t *reply = json_loadb((const char *)zframe_data(body),
                               zframe_size(body), 0, &je);
    zframe_destroy(&body);
    if (!reply || !json_is_object(reply)) {
        json_decref(reply);
        snprintf(err, errlen, "store's reply is not a JSON object");
        return NULL;
    }
    return reply;
}

char *cv_control_call_text(cv_control *c, const char *request, size_t len,
                           int timeout_ms, size_t *reply_len, char *err,
                           size_t errlen)
{
    if (send_text(c, request, len, NULL, 0, timeout_ms, err, errlen) < 0)
        return NULL;
    zframe_t *body = recv_body(c, timeout_ms, err, errlen);
    if (!body)
        return NULL;
    *reply_len = zframe_size(body);
    char *text = cv_malloc(*reply_len + 1);
    memcpy(text, zframe_data(body), *reply_len);
    text[*reply_len] = '\0';
    zframe_destroy(&body);
    return text;
}

json_t *cv_control_error(const char *code, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *r = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
    if (code)
        json_object_set_new(r, "code", json_string(code));
    if (status)
        json_object_set_new(r, "status", json_integer(status));
    return r;
}

const char *cv_control_kind_name(cv_control_kind k)
{
    switch (k) {
    case CV_CONTROL_READ: return "read";
    case CV_CONTROL_WRITE: return "write";
    case CV_CONTROL_ADMIN: return "admin";
    }
    return "?";
}

const cv_control_op *cv_control_find_op(const cv_control_family *f,
                                        const char *name)
{
    for (const cv_control_op *o = f->ops; name && o->name; o++)
        if (strcmp(o->name, name) == 0)
            return o;
    return NULL;
}

json_t *cv_control_run(const cv_control_family *f, void *state,
                       cv_control_request *r)
{
    if (f->max_request && r->len > f->max_request)
        return cv_control_error(CV_ERR_TOO_LARGE, 0, "request longer than %zu "
                                "bytes", f->max_request);
    return r->op->fn(state, r);
}

json_t *cv_control_answer(const cv_control_family *f, void *state,
                          cv_control_request *r)
{
    const char *name = json_string_value(json_object_get(r->req, "op"));
    /* the limit first: an oversized request is refused before it is read */
    if (f->max_request && r->len > f->max_request)
        return cv_control_error(CV_ERR_TOO_LARGE, 0, "request longer than %zu "
                                "bytes", f->max_request);
    r->op = cv_control_find_op(f, name);
    if (!r->op)
        return cv_control_error(CV_ERR_UNKNOWN_OP, 0, "unknown op '%s'",
                                name ? name : "");
    return r->op->fn(state, r);
}

cv_control *cv_control_find(const cv_config *cfg, int timeout_ms)
{
    char err[512];
    /* no socket file: no store, and no need to wait for one */
    if (strncmp(cfg->ep_control, "ipc://", 6) == 0 &&
        access(cfg->ep_control + 6, F_OK) != 0)
        return NULL;
    cv_control *c = cv_control_new(cfg, err, sizeof err);
    if (!c)
        return NULL;
    json_t *req = json_pack("{s:s}", "op", "ping");
    json_t *reply = cv_control_call(c, req, timeout_ms, err, sizeof err);
    json_decref(req);
    bool ok = reply && json_is_true(json_object_get(reply, "ok"));
    json_decref(reply);
    if (!ok)
        cv_control_destroy(&c);
    return c;
}

/* ---- a request's members ---------------------------------------------- */

json_t *cv_control_check_members(json_t *req, const char *const *members)
{
    if (!json_is_object(req))
        return cv_control_error(CV_ERR_BAD_REQUEST, 0, "a request is a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach(req, key, v) {
        bool known = !strcmp(key, "op") || !strcmp(key, "actor");
        for (int i = 0; !known && members[i]; i++)
            known = strcmp(key, members[i]) == 0;
        if (!known)
            return cv_control_error(CV_ERR_BAD_REQUEST, 0,
                                  "unknown member \"%s\" for this op", key);
    }
    const char *actor;
    return cv_control_string_arg(req, "actor", &actor);
}

json_t *cv_control_string_arg(json_t *req, const char *name, const char **out)
{
    json_t *v = json_object_get(req, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return cv_control_error(CV_ERR_BAD_REQUEST, 0,
                              "\"%s\" must be a non-empty string", name);
    *out = json_string_value(v);
    return NULL;
}

json_t *cv_control_time_json(int64_t ms)
{
    if (ms < 0)
        return json_null();
    char t[40];
    cv_time_format_ms(ms, t);
    return json_string(t);
}

json_t *cv_control_db_fail(cv_db *db, const char *what)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s", what, cv_db_errmsg(db));
    cv_db_rollback(db);
    return cv_control_error(NULL, EX_IOERR, "%s", msg);
}
