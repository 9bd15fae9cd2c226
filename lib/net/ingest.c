/* ingest.c - ctxvault-ingest: its client and service modes, its --stdout
 * filter, and the choice between them. See ingest.h. */
#include "net/ingest.h"

#include "crypto/keyring.h"
#include "base/lineread.h"
#include "net/metrics.h"
#include "net/ndjson.h"
#include "base/progress.h"
#include "net/sender.h"
#include "net/sock.h"
#include "base/util.h"
#include "net/wire.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A wait never lasts longer, so a stop request is seen promptly even when
 * its signal lands just before a wait begins. */
#define MAX_WAIT_MS 250

/* The client says why it waits once no answer came for this long: a
 * pipeline that is not running looks like a hang otherwise. */
#define STALL_MS 5000

static cv_sender *open_sender(const cv_ingest_opts *o, int *status)
{
    char err[1024];
    cv_sender *s = cv_sender_new(o->cfg, o->source, o->kr, err, sizeof err);
    if (!s) {
        *status = errno == EWOULDBLOCK ? EX_TEMPFAIL : EX_IOERR;
        cv_err("%s", err);
    } else {
        cv_sender_set_metrics(s, o->mx);
    }
    return s;
}

/* Validate one line and spool it, or dead-letter it. 0, 1 when rejected,
 * -1 on a spool failure (the caller says where; cv_sender_error why). */
static int take_line(const cv_ingest_opts *o, cv_sender *s, const char *source,
                     uint64_t lineno, const char *line, size_t len,
                     uint64_t *seq, char *reason, size_t rlen)
{
    char *norm;
    size_t nlen;
    if (cv_event_normalise(&o->rules, line, len, cv_now_ms(), &norm, &nlen,
                           reason, rlen) < 0) {
        cv_deadletter_put(o->dl, source, lineno, reason, line, len, false);
        return 1;
    }
    int rc = cv_sender_add(s, norm, nlen, seq);
    free(norm);
    return rc < 0 ? -1 : 0;
}

/* The sender's counters into the report ctxvault-metrics gets; the
 * rejections are counted as they are dead-lettered. */
static void report(const cv_ingest_opts *o, cv_sender *s, bool final)
{
    cv_metrics *m = o->mx;
    const cv_sender_stats *st = cv_sender_stats_get(s);
    uint64_t rejected = cv_deadletter_count(o->dl);
    cv_metrics_set(m, "ctxvault_events_received_total", NULL,
                   (double)(st->accepted + rejected + st->refused));
    cv_metrics_set(m, "ctxvault_events_refused_total", NULL, (double)st->refused);
    cv_metrics_set(m, "ctxvault_events_forwarded_total", NULL,
                   (double)(st->sent - st->resent));
    cv_metrics_set(m, "ctxvault_events_resent_total", NULL, (double)st->resent);
    cv_metrics_set(m, "ctxvault_acks_total", "kind=ack", (double)st->acked);
    cv_metrics_set(m, "ctxvault_acks_total", "kind=nak", (double)st->rejected);
    cv_metrics_set(m, "ctxvault_spool_events", NULL, (double)cv_sender_outstanding(s));
    cv_metrics_set(m, "ctxvault_spool_bytes", NULL, (double)cv_sender_spool_bytes(s));
    cv_metrics_set(m, "ctxvault_spool_bytes_dropped_total", NULL,
                   (double)cv_sender_spool_dropped(s));
    int64_t oldest = cv_sender_oldest_ms(s);
    cv_metrics_set(m, "ctxvault_spool_oldest_age_seconds", NULL,
                   oldest ? (double)(cv_mono_ms() - oldest) / 1000.0 : 0);
    cv_metrics_health(m, !cv_sender_failed(s),
                      cv_sender_failed(s) ? cv_sender_error(s) : NULL);
    cv_metrics_publish(m, final);
}

/* ---- client ------------------------------------------------------------ */

typedef struct {
    const cv_ingest_opts *o;
    cv_sender *s;
    cv_progress progress;
    int64_t deadline;     /* mono ms, or 0 */
    bool timed_out;
    int64_t quiet_since;  /* mono ms of the last answer (or of the start) */
    uint64_t answered;    /* acks and rejections seen by then */
    bool warned;          /* the stall was reported */
} client;

/* Say once per stall what is awaited, where, and how to get it: events
 * are waiting and no answer has come for STALL_MS. It keeps waiting (up
 * to --timeout): what is spooled is never dropped. */
static void stalled(client *c)
{
    const cv_sender_stats *st = cv_sender_stats_get(c->s);
    int64_t now = cv_mono_ms();
    uint64_t answered = st->acked + st->rejected;
    if (answered != c->answered || cv_sender_outstanding(c->s) == 0) {
        c->answered = answered;
        c->quiet_since = now;
        c->warned = false;
        return;
    }
    if (c->warned || now - c->quiet_since < STALL_MS)
        return;
    c->warned = true;
    cv_progress_done(&c->progress);
    const cv_config *cfg = c->o->cfg;
    uint64_t n = cv_sender_outstanding(c->s);
    cv_warn("no acknowledgement for %d s: %llu event%s wait%s for the pipeline "
            "(sent to encrypt on %s, acknowledgements awaited from store on "
            "%s); is it running? start it with 'sh tools/supervise.sh start' "
            "or 'make run'. Still waiting%s; the events stay spooled",
            STALL_MS / 1000, (unsigned long long)n, n == 1 ? "" : "s",
            n == 1 ? "s" : "",
            cfg->ep_encrypt, cfg->ep_acks, c->deadline ? " until --timeout" : " (--timeout SECONDS gives up)");
}

static void show(client *c)
{
    /* a long run reports as it goes: its spool's depth is worth seeing */
    if (cv_metrics_due(c->o->mx))
        report(c->o, c->s, false);
    const cv_sender_stats *st = cv_sender_stats_get(c->s);
    char extra[96];
    snprintf(extra, sizeof extra, "%llu acknowledged",
             (unsigned long long)(st->acked + st->rejected));
    cv_progress_update(&c->progress, st->accepted + st->replayed, extra);
    stalled(c);
}

static int wait_ms(client *c, int want)
{
    int w = want < 0 || want > MAX_WAIT_MS ? MAX_WAIT_MS : want;
    if (c->deadline) {
        int64_t left = c->deadline - cv_mono_ms();
        if (left <= 0) {
            c->timed_out = true;
            return 0;
        }
        if (left < w)
            w = (int)left;
    }
    return w;
}

/* Send one input's lines; returns 0, or a sysexits status. */
static int client_fd(client *c, int fd, const char *source)
{
    const cv_ingest_opts *o = c->o;
    size_t max_line = (size_t)o->cfg->max_line;
    cv_lineread *lr = cv_lineread_new(fd, max_line);
    char reason[256];
    int status = 0;
    bool eof = false, need_fill = false;
    while (!eof && !status && !cv_stop_requested && !c->timed_out) {
        /* lines already read first, as long as the window has room */
        need_fill = false;
        while (cv_sender_ready(c->s)) {
            const char *line;
            size_t len;
            int rc = cv_lineread_next(lr, &line, &len, true);
            if (rc == CV_LR_AGAIN) {
                need_fill = true;
                break;
            }
            if (rc == CV_LR_EOF) {
                eof = true;
                break;
            }
            uint64_t lineno = cv_lineread_lineno(lr);
            if (rc == CV_LR_TOOLONG) {
                snprintf(reason, sizeof reason, "line longer than %zu bytes",
                         max_line);
                cv_deadletter_put(o->dl, source, lineno, reason, line, len, true);
                continue;
            }
            if (strspn(line, " \t") == len)
                continue; /* blank lines are not events */
            if (take_line(o, c->s, source, lineno, line, len, NULL, reason,
                          sizeof reason) < 0) {
                cv_err("%s:%llu: %s; refusing this line and the rest of the "
                       "input", source, (unsigned long long)lineno,
                       cv_sender_error(c->s));
                status = EX_IOERR;
                break;
            }
        }
        show(c);
        if (eof || status)
            break;
        zmq_pollitem_t in = {.fd = fd, .events = ZMQ_POLLIN};
        int n = need_fill ? 1 : 0;
        if (cv_sender_poll(c->s, &in, n, wait_ms(c, -1)) < 0) {
            cv_err("%s", cv_sender_error(c->s));
            status = EX_IOERR;
            break;
        }
        if (cv_sender_failed(c->s)) { /* a group commit failed */
            cv_err("%s:%llu: %s; refusing the lines not yet synced and the "
                   "rest of the input", source,
                   (unsigned long long)cv_lineread_lineno(lr),
                   cv_sender_error(c->s));
            status = EX_IOERR;
            break;
        }
        if (n && (in.revents & (ZMQ_POLLIN | ZMQ_POLLERR)) &&
            cv_lineread_fill(lr) < 0 && !cv_stop_requested) {
            cv_err("%s: read failed: %s", source, strerror(errno));
            status = EX_IOERR;
        }
    }
    cv_lineread_destroy(&lr);
    return status;
}

static int client_fd_cb(void *arg, int fd, const char *source)
{
    return client_fd(arg, fd, source);
}

int cv_ingest_client(const cv_ingest_opts *o, char **files, int nfiles)
{
    int status = 0;
    bool missing = false;
    client c = {.o = o};
    c.s = open_sender(o, &status);
    if (!c.s)
        return status;
    cv_progress_init(&c.progress, "ingest");
    c.quiet_since = cv_mono_ms();
    if (o->timeout_ms > 0)
        c.deadline = cv_mono_ms() + o->timeout_ms;

    status = cv_ndjson_each_input(files, nfiles, client_fd_cb, &c, &missing);
    /* the input is all read: commit the spool now, then wait for answers */
    if (!status && cv_sender_sync(c.s) < 0) {
        cv_err("%s; the last lines read are refused", cv_sender_error(c.s));
        status = EX_IOERR;
    }
    /* after a spool failure, what was accepted before it is still
     * delivered: wait for it as for the rest */
    bool refused = cv_sender_failed(c.s), broken = false;
    while ((!status || refused) && !broken && !cv_stop_requested &&
           !c.timed_out && cv_sender_outstanding(c.s) > 0) {
        if (cv_sender_poll(c.s, NULL, 0, wait_ms(&c, -1)) < 0) {
            cv_err("%s", cv_sender_error(c.s));
            status = EX_IOERR;
            broken = true;
        }
        show(&c);
    }
    cv_progress_done(&c.progress);

    cv_sender_stats stats = *cv_sender_stats_get(c.s), *st = &stats;
    uint64_t left = cv_sender_outstanding(c.s);
    uint64_t rejected = cv_deadletter_count(o->dl);
    if (st->replayed && !o->quiet)
        cv_info("resent %llu events left in the spool by an earlier run",
                (unsigned long long)st->replayed);
    if (refused && !broken)
        cv_err("%s: the spool takes no more, %llu lines refused; of the "
               "%llu events accepted before, %llu are not acknowledged%s; "
               "free space, then run the same input again (what is stored "
               "is not stored twice)", cv_sender_error(c.s),
               (unsigned long long)st->refused, (unsigned long long)st->accepted,
               (unsigned long long)left,
               left ? " and stay in the spool for the next run" : "");
    if (left && !status) {
        cv_err("%s with %llu events not yet acknowledged; they stay in %s and "
               "are sent again by the next ctxvault-ingest with source %s",
               c.timed_out ? "timed out" : "interrupted",
               (unsigned long long)left, cv_sender_spool_dir(c.s), o->source);
        status = EX_TEMPFAIL;
    }
    if (rejected && !o->quiet)
        cv_warn("%llu of %llu lines rejected; they are in %s",
                (unsigned long long)rejected,
                (unsigned long long)(st->accepted + rejected),
                cv_deadletter_path(o->dl));
    if (st->rejected && !o->quiet)
        cv_warn("%llu events rejected downstream (see the dead-letter files "
                "of encrypt and store)", (unsigned long long)st->rejected);
    if (o->mx)
        report(o, c.s, true);
    cv_sender_destroy(&c.s);
    if (status)
        return status;
    if (missing)
        return EX_NOINPUT;
    return rejected || st->rejected ? EX_DATAERR : 0;
}

/* ---- service ----------------------------------------------------------- */

/* A producer's answer, held until the spool covers its lines. */
typedef struct reply {
    struct reply *next;
    zmsg_t *msg;      /* envelope and reply, ready to send */
    uint64_t need;    /* durable once cv_sender_durable() >= need */
} reply;

#define MAX_ERRORS 100

/* Take one producer message off the ROUTER; queue its reply. */
static int serve_one(const cv_ingest_opts *o, cv_sender *s, zsock_t *router,
                     reply ***tail, uint64_t *msgs)
{
    zmsg_t *m = zmsg_recv_nowait(router);
    if (!m)
        return 1; /* nothing more */
    (*msgs)++;
    zmsg_t *out = zmsg_new();
    zframe_t *f = zmsg_pop(m);
    zmsg_append(out, &f); /* the producer's identity */
    f = zmsg_first(m);
    if (f && zframe_size(f) == 0) { /* REQ: keep the delimiter */
        f = zmsg_pop(m);
        zmsg_append(out, &f);
    }
    char *ver = zmsg_popstr(m), *kind = zmsg_popstr(m);
    json_t *res;
    uint64_t need = 0;
    int rc = 0;
    if (!ver || strcmp(ver, CV_WIRE_VERSION) != 0 || !kind ||
        strcmp(kind, CV_WIRE_EVENTS) != 0) {
        res = json_pack("{s:s}", "error", "not a " CV_WIRE_VERSION " "
                        CV_WIRE_EVENTS " message");
    } else {
        json_t *errors = json_array();
        uint64_t accepted = 0, rejected = 0, lineno = 0;
        char reason[256], src[64];
        snprintf(src, sizeof src, "%s.producer", o->source);
        while ((f = zmsg_pop(m))) {
            lineno++;
            const char *line = (const char *)zframe_data(f);
            size_t len = zframe_size(f);
            int r;
            if (strspn(line, " \t\r\n") == len) {
                zframe_destroy(&f); /* blank lines are not events */
                continue;
            }
            if (len > (size_t)o->cfg->max_line) {
                snprintf(reason, sizeof reason, "line longer than %lld bytes",
                         (long long)o->cfg->max_line);
                cv_deadletter_put(o->dl, src, lineno, reason, line,
                                  (size_t)o->cfg->max_line, true);
                r = 1;
            } else {
                r = take_line(o, s, src, lineno, line, len, &need, reason,
                              sizeof reason);
            }
            zframe_destroy(&f);
            if (r < 0) {
                rc = -1;
                break;
            }
            if (r == 0) {
                accepted++;
                continue;
            }
            rejected++;
            if (json_array_size(errors) < MAX_ERRORS)
                json_array_append_new(errors, json_pack("{s:I,s:s}", "line",
                                      (json_int_t)lineno, "reason", reason));
        }
        res = json_pack("{s:I,s:I,s:o}", "accepted", (json_int_t)accepted,
                        "rejected", (json_int_t)rejected, "errors", errors);
    }
    free(ver);
    free(kind);
    zmsg_destroy(&m);
    char *text = json_dumps(res, CV_JSON_DUMP);
    json_decref(res);
    zmsg_addstr(out, CV_WIRE_VERSION);
    zmsg_addstr(out, text ? text : "{}");
    free(text);
    if (rc < 0) {
        zmsg_destroy(&out); /* not durable: no answer, the producer retries */
        return -1;
    }
    reply *r = cv_calloc(1, sizeof *r);
    r->msg = out;
    r->need = need;
    **tail = r;
    *tail = &r->next;
    return 0;
}

/* Send the replies whose lines are durable (in order). */
static void send_replies(cv_sender *s, zsock_t *router, reply **head,
                         reply ***tail)
{
    while (*head && (*head)->need <= cv_sender_durable(s)) {
        reply *r = *head;
        *head = r->next;
        zmsg_send(&r->msg, router); /* a gone producer: dropped, fine */
        zmsg_destroy(&r->msg);
        free(r);
    }
    if (!*head)
        *tail = head;
}

int cv_ingest_serve(const cv_ingest_opts *o)
{
    int status = 0;
    char err[1024];
    cv_sender *s = open_sender(o, &status);
    if (!s)
        return status;
    zsock_t *router = cv_sock_bind(o->cfg, ZMQ_ROUTER, o->cfg->ep_ingest, err,
                                   sizeof err);
    if (!router) {
        cv_err("%s", err);
        cv_sender_destroy(&s);
        return EX_UNAVAILABLE;
    }
    /* a producer's frames are lines: no larger than ingest accepts (plus
     * room), so one message cannot balloon memory */
    zsock_set_maxmsgsize(router, (int)(o->cfg->max_line + 65536));
    zsock_set_rcvhwm(router, 16);
    if (!o->quiet)
        cv_info("serving producers on %s as source %s (spool %s)",
                o->cfg->ep_ingest, o->source, cv_sender_spool_dir(s));

    reply *head = NULL, **tail = &head;
    uint64_t msgs = 0;
    bool refused = false; /* the spool failed: no more input, then exit */
    while (!cv_stop_requested && !status && !refused) {
        zmq_pollitem_t it = {.socket = zsock_resolve(router), .events = ZMQ_POLLIN};
        int n = cv_sender_ready(s) ? 1 : 0;
        if (cv_sender_poll(s, &it, n, MAX_WAIT_MS) < 0) {
            cv_err("%s", cv_sender_error(s));
            status = EX_IOERR;
            break;
        }
        if (n && (it.revents & ZMQ_POLLIN)) {
            /* take what has arrived, then commit it all at once: the
             * producers waiting share one fsync */
            while (cv_sender_ready(s) &&
                   serve_one(o, s, router, &tail, &msgs) == 0)
                ;
            /* a failure of either leaves the sender failed (below) */
            if (head && !cv_sender_failed(s))
                (void)cv_sender_sync(s);
        }
        send_replies(s, router, &head, &tail);
        if (cv_metrics_due(o->mx))
            report(o, s, false);
        refused = cv_sender_failed(s);
    }
    if (refused)
        cv_err("%s; refusing producers' events from now on (they get no "
               "reply, and resend); delivering what was accepted, for at most "
               "%lld ms, then exiting with status %d", cv_sender_error(s),
               (long long)o->drain_ms, EX_IOERR);

    /* drain: nothing new; what is accepted is committed and answered, and
     * what store has not acknowledged after drain_ms stays in the spool */
    if (!status && !refused && cv_sender_sync(s) < 0) {
        cv_err("%s", cv_sender_error(s));
        status = EX_IOERR;
    }
    if (!status)
        send_replies(s, router, &head, &tail);
    int64_t until = cv_mono_ms() + o->drain_ms;
    while (!status && cv_sender_outstanding(s) > 0 && cv_mono_ms() < until) {
        int64_t left = until - cv_mono_ms();
        if (cv_sender_poll(s, NULL, 0, left < MAX_WAIT_MS ? (int)left : MAX_WAIT_MS) < 0) {
            cv_err("%s", cv_sender_error(s));
            status = EX_IOERR;
        }
    }
    if (refused && !status) {
        if (cv_sender_outstanding(s))
            cv_err("%llu accepted events not yet acknowledged stay in the "
                   "spool in %s, for the next start",
                   (unsigned long long)cv_sender_outstanding(s),
                   cv_sender_spool_dir(s));
        status = EX_IOERR;
    }
    if (o->mx)
        report(o, s, true);
    const cv_sender_stats *st = cv_sender_stats_get(s);
    if (!o->quiet)
        cv_info("stopped: %llu messages, %llu events accepted, %llu resent from "
                "the spool, %llu acknowledged, %llu rejected downstream, %llu "
                "left in the spool", (unsigned long long)msgs,
                (unsigned long long)st->accepted,
                (unsigned long long)st->replayed, (unsigned long long)st->acked,
                (unsigned long long)st->rejected,
                (unsigned long long)cv_sender_outstanding(s));
    while (head) {
        reply *r = head;
        head = r->next;
        zmsg_destroy(&r->msg);
        free(r);
    }
    zsock_destroy(&router);
    cv_sender_destroy(&s);
    return status;
}

bool cv_ingest_parse_seconds(const char *opt, const char *arg, void *target)
{
    int64_t n, *ms = target;
    if (cv_parse_int(arg, 0, 86400 * 365, &n)) {
        *ms = n * 1000;
        return true;
    }
    if ((*ms = cv_parse_duration(arg)) >= 0)
        return true;
    cv_err("%s '%s' is not a number of seconds", opt, arg);
    return false;
}

int cv_ingest_check(const cv_program_env *e, void *args)
{
    const cv_ingest_args *a = args;
    const char *source = a->source, *kind = a->kind;
    if (a->to_stdout && a->serve) {
        cv_err("--stdout and --serve exclude each other");
        return EX_USAGE;
    }
    if (a->serve && e->argc > 0) {
        cv_err("--serve takes no files: producers send on the ingest socket");
        return EX_USAGE;
    }
    if (source && (a->to_stdout || a->serve)) {
        cv_err("--source is for client mode (--serve uses the config's source)");
        return EX_USAGE;
    }
    if (source && (!*source || strlen(source) > 64 ||
                   strspn(source, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "0123456789-_.") != strlen(source))) {
        cv_err("--source '%s' must be 1 to 64 letters, digits, '-', '_' or '.'",
               source);
        return EX_USAGE;
    }
    if (kind && (!*kind || strlen(kind) > CV_KIND_MAX)) {
        cv_err("--kind '%s' must be 1 to %d bytes", kind, CV_KIND_MAX);
        return EX_USAGE;
    }
    if (kind && strcspn(kind, "\"\\") != strlen(kind)) {
        cv_err("--kind '%s' may not hold quotes or backslashes", kind);
        return EX_USAGE;
    }
    return 0;
}

/* The --stdout filter's state. */
typedef struct {
    cv_event_rules rules;
    size_t max_line;
    cv_deadletter *dl;
    FILE *out;
    uint64_t accepted;
    cv_progress progress;
} filter;

/* One line: normalise it and write it out, or dead-letter it. */
static int filter_line(void *arg, const char *source, uint64_t lineno,
                       const char *line, size_t len)
{
    filter *in = arg;
    char reason[256], *norm;
    size_t nlen;
    if (cv_event_normalise(&in->rules, line, len, cv_now_ms(), &norm, &nlen,
                           reason, sizeof reason) < 0) {
        cv_deadletter_put(in->dl, source, lineno, reason, line, len, false);
        return 0;
    }
    norm[nlen] = '\n';
    size_t w = fwrite(norm, 1, nlen + 1, in->out);
    free(norm);
    if (w != nlen + 1) {
        cv_err("cannot write to stdout: %s", strerror(errno));
        return EX_IOERR;
    }
    in->accepted++;
    return 0;
}

static int filter_fd_cb(void *arg, int fd, const char *source)
{
    filter *in = arg;
    return cv_ndjson_each(fd, source, in->max_line, in->dl, &in->progress,
                          filter_line, in);
}

/* --stdout: every input's accepted lines to stdout. */
static int run_filter(filter *in, bool quiet, char **files, int nfiles)
{
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    cv_grow_pipe(1);
    cv_progress_init(&in->progress, "ingest");

    bool missing = false;
    int status = cv_ndjson_each_input(files, nfiles, filter_fd_cb, in, &missing);
    cv_progress_done(&in->progress);
    if (fflush(stdout) != 0 && !status) {
        cv_err("cannot write to stdout: %s", strerror(errno));
        status = EX_IOERR;
    }
    uint64_t rejected = cv_deadletter_count(in->dl);
    if (rejected && !quiet)
        cv_warn("%llu of %llu lines rejected; they are in %s",
                (unsigned long long)rejected,
                (unsigned long long)(in->accepted + rejected),
                cv_deadletter_path(in->dl));
    if (status)
        return status;
    if (missing)
        return EX_NOINPUT;
    return rejected ? EX_DATAERR : 0;
}

int cv_ingest_main(cv_program_env *e, void *args)
{
    const cv_ingest_args *a = args;
    const cv_config *cfg = &e->cfg;
    filter in = {
        .rules = {.max_depth = cfg->max_depth, .id_key = cv_keyring_id_key(e->kr),
                  .default_kind = a->kind},
        .max_line = (size_t)cfg->max_line,
        .out = stdout,
    };
    in.dl = cv_deadletter_open(cfg->deadletter_dir, "ingest", e->kr);
    if (!in.dl) {
        cv_err("cannot open dead-letter file in %s: %s", cfg->deadletter_dir,
               strerror(errno));
        return EX_CANTCREAT;
    }
    int status;
    if (a->to_stdout) {
        status = run_filter(&in, e->quiet, e->argv, e->argc);
        cv_deadletter_close(&in.dl);
        return status;
    }
    /* into the pipeline: spooled, sent, acknowledged */
    cv_metrics *mx = cv_program_metrics(e, a->serve);
    cv_deadletter_set_metrics(in.dl, mx);
    char *client_source = cv_fmt("%s-client", cfg->source);
    cv_ingest_opts o = {
        .cfg = cfg,
        .rules = in.rules,
        .dl = in.dl,
        .kr = e->kr,
        .source = a->serve ? cfg->source : a->source ? a->source : client_source,
        .timeout_ms = a->timeout_ms,
        .drain_ms = a->drain_ms,
        .quiet = e->quiet,
        .mx = mx,
    };
    status = a->serve ? cv_ingest_serve(&o)
                      : cv_ingest_client(&o, e->argv, e->argc);
    free(client_source);
    cv_deadletter_close(&in.dl);
    return status;
}
