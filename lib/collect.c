/* collect.c - the programs' newest reports, rendered (collect.h). */
#include "collect.h"

#include "metrics.h"
#include "timefmt.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PROGRAMS 64

typedef struct {
    char *name;          /* the program */
    bool service;
    json_t *report;      /* the newest */
    int64_t at_ms;       /* when it came (ctxvault-metrics' clock) */
    json_t *prev;        /* the one before, for rates */
    int64_t prev_ms;
} program;

struct cv_collect {
    int64_t stale_ms;
    char **expect;
    size_t nexpect;
    program p[MAX_PROGRAMS];
    size_t n;
    uint64_t malformed;
};

cv_collect *cv_collect_new(int64_t stale_ms, const char *expect)
{
    cv_collect *c = cv_calloc(1, sizeof *c);
    c->stale_ms = stale_ms;
    char *copy = cv_strdup(expect ? expect : ""), *save = NULL;
    for (char *w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
        c->expect = cv_realloc(c->expect, (c->nexpect + 1) * sizeof *c->expect);
        c->expect[c->nexpect++] = cv_strdup(w);
    }
    free(copy);
    return c;
}

void cv_collect_destroy(cv_collect **p)
{
    cv_collect *c = *p;
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->p[i].name);
        json_decref(c->p[i].report);
        json_decref(c->p[i].prev);
    }
    for (size_t i = 0; i < c->nexpect; i++)
        free(c->expect[i]);
    free(c->expect);
    free(c);
    *p = NULL;
}

static program *find(cv_collect *c, const char *name, bool service)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->p[i].service == service && strcmp(c->p[i].name, name) == 0)
            return &c->p[i];
    return NULL;
}

int cv_collect_take(cv_collect *c, const char *json, size_t len, int64_t now_ms)
{
    json_t *r = json_loadb(json, len, 0, NULL);
    const char *name = json_string_value(json_object_get(r, "program"));
    if (!name || !*name || strlen(name) > 64 ||
        !json_is_array(json_object_get(r, "series"))) {
        if (!c->malformed++)
            cv_warn("dropped a report that is not one (counted in "
                    "ctxvault_metrics_reports_malformed_total)");
        json_decref(r);
        return -1;
    }
    bool service = json_is_true(json_object_get(r, "service"));
    program *p = find(c, name, service);
    if (!p && c->n == MAX_PROGRAMS) {
        json_decref(r);
        return -1;
    }
    if (!p) {
        p = &c->p[c->n++];
        p->name = cv_strdup(name);
        p->service = service;
    }
    json_decref(p->prev);
    p->prev = p->report;
    p->prev_ms = p->at_ms;
    p->report = r;
    p->at_ms = now_ms;
    return 0;
}

/* ---- Prometheus ------------------------------------------------------ */

typedef struct {
    char *b;
    size_t n, cap;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->b + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        b->b = cv_realloc(b->b, b->cap = b->cap * 2 + (k > 0 ? (size_t)k : 0) + 256);
    }
}

/* A label value as the format wants it: \\, \" and \n escaped. */
static void put_value(buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            put(b, "\\%c", *v);
        else if (*v == '\n')
            put(b, "\\n");
        else
            put(b, "%c", *v);
    }
}

static bool label_name_ok(const char *k)
{
    if (!*k || strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789") != strlen(k))
        return false;
    return !(k[0] >= '0' && k[0] <= '9');
}

/* {program="P",mode="...",k="v",...[,le="x"]} */
static void put_labels(buf *b, const program *p, json_t *labels, const char *le)
{
    put(b, "{program=\"");
    put_value(b, p->name);
    put(b, "\",mode=\"%s\"", p->service ? "service" : "command");
    const char *k;
    json_t *v;
    json_object_foreach(labels, k, v) {
        if (!json_is_string(v) || !label_name_ok(k) || !strcmp(k, "program") ||
            !strcmp(k, "mode") || !strcmp(k, "le"))
            continue;
        put(b, ",%s=\"", k);
        put_value(b, json_string_value(v));
        put(b, "\"");
    }
    if (le)
        put(b, ",le=\"%s\"", le);
    put(b, "}");
}

static void put_number(buf *b, double v)
{
    if (isnan(v))
        put(b, "NaN\n");
    else if (isinf(v))
        put(b, v > 0 ? "+Inf\n" : "-Inf\n");
    else
        put(b, "%.15g\n", v);
}

static bool up(const cv_collect *c, const program *p, int64_t now_ms)
{
    return !json_is_true(json_object_get(p->report, "final")) &&
           now_ms - p->at_ms <= c->stale_ms;
}

static void put_head(buf *b, const cv_metric_def *d, bool *head)
{
    if (*head)
        return;
    put(b, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name,
        d->type == CV_COUNTER ? "counter" : d->type == CV_GAUGE ? "gauge"
                                                              : "histogram");
    *head = true;
}

/* One series of a program: a sample, or a histogram's buckets, sum and
 * count (the buckets cumulative, as the format wants them). */
static void put_series(buf *b, const cv_metric_def *d, const program *p, json_t *s)
{
    json_t *labels = json_object_get(s, "labels");
    if (d->type != CV_HISTOGRAM) {
        put(b, "%s", d->name);
        put_labels(b, p, labels, NULL);
        put(b, " ");
        put_number(b, json_number_value(json_object_get(s, "value")));
        return;
    }
    json_t *bk = json_object_get(s, "buckets");
    uint64_t cum = 0;
    for (size_t j = 0; j <= CV_BUCKETS; j++) {
        char le[32];
        if (j < CV_BUCKETS)
            snprintf(le, sizeof le, "%g", cv_metric_bounds(d)[j]);
        else
            snprintf(le, sizeof le, "+Inf");
        cum += (uint64_t)json_integer_value(json_array_get(bk, j));
        put(b, "%s_bucket", d->name);
        put_labels(b, p, labels, le);
        put(b, " %llu\n", (unsigned long long)cum);
    }
    put(b, "%s_sum", d->name);
    put_labels(b, p, labels, NULL);
    put(b, " ");
    put_number(b, json_number_value(json_object_get(s, "sum")));
    put(b, "%s_count", d->name);
    put_labels(b, p, labels, NULL);
    put(b, " %llu\n", (unsigned long long)cum);
}

char *cv_collect_prometheus(cv_collect *c, int64_t now_ms)
{
    buf b = {cv_malloc(4096), 0, 4096};
    b.b[0] = '\0';
    for (const cv_metric_def *d = cv_metric_defs; d->name; d++) {
        bool head = false;
        /* ctxvault-metrics' own: per program, whatever it reported */
        bool is_up = !strcmp(d->name, "ctxvault_up");
        if (is_up || !strcmp(d->name, "ctxvault_report_age_seconds")) {
            for (size_t i = 0; i < c->n; i++) {
                put_head(&b, d, &head);
                put(&b, "%s", d->name);
                put_labels(&b, &c->p[i], NULL, NULL);
                put(&b, " ");
                put_number(&b, is_up ? (up(c, &c->p[i], now_ms) ? 1 : 0)
                                     : (double)(now_ms - c->p[i].at_ms) / 1000.0);
            }
            continue;
        }
        if (!strcmp(d->name, "ctxvault_metrics_reports_malformed_total")) {
            put_head(&b, d, &head);
            put(&b, "%s %llu\n", d->name, (unsigned long long)c->malformed);
            continue;
        }
        for (size_t i = 0; i < c->n; i++) {
            size_t k;
            json_t *s;
            json_array_foreach(json_object_get(c->p[i].report, "series"), k, s) {
                const char *name = json_string_value(json_object_get(s, "name"));
                if (!name || strcmp(name, d->name) != 0)
                    continue;
                put_head(&b, d, &head);
                put_series(&b, d, &c->p[i], s);
            }
        }
    }
    return b.b;
}

/* ---- health and status ------------------------------------------------ */

/* Why an expected service is not well, or NULL. */
static char *trouble(const cv_collect *c, const char *name, int64_t now_ms)
{
    const program *p = NULL;
    for (size_t i = 0; i < c->n && !p; i++)
        if (c->p[i].service && strcmp(c->p[i].name, name) == 0)
            p = &c->p[i];
    if (!p)
        return cv_fmt("%s has not reported", name);
    if (json_is_true(json_object_get(p->report, "final")))
        return cv_fmt("%s has stopped", name);
    if (now_ms - p->at_ms > c->stale_ms)
        return cv_fmt("%s has not reported for %lld s", name,
                      (long long)((now_ms - p->at_ms) / 1000));
    json_t *h = json_object_get(p->report, "health");
    if (h && !json_is_true(json_object_get(h, "ok"))) {
        const char *why = json_string_value(json_object_get(h, "reason"));
        return cv_fmt("%s: %s", name, why ? why : "not ok");
    }
    return NULL;
}

json_t *cv_collect_health(cv_collect *c, int64_t now_ms)
{
    json_t *reasons = json_array(), *progs = json_object();
    for (size_t i = 0; i < c->nexpect; i++) {
        char *why = trouble(c, c->expect[i], now_ms);
        if (why)
            json_array_append_new(reasons, json_string(why));
        json_object_set_new(progs, c->expect[i],
                            json_pack("{s:s, s:s?}", "state", why ? "degraded" : "ok",
                                      "reason", why));
        free(why);
    }
    for (size_t i = 0; i < c->n; i++) {
        program *p = &c->p[i];
        if (!p->service || json_object_get(progs, p->name))
            continue;
        char *why = trouble(c, p->name, now_ms);
        /* not expected: reported for information, never degrading */
        json_object_set_new(progs, p->name,
                            json_pack("{s:s, s:s?}", "state", why ? "down" : "ok",
                                      "reason", why));
        free(why);
    }
    for (size_t i = 0; i < c->n; i++) {
        json_t *e = json_object_get(progs, c->p[i].name);
        if (e && c->p[i].service)
            json_object_set_new(e, "last_report_ms_ago",
                                json_integer(now_ms - c->p[i].at_ms));
    }
    return json_pack("{s:s, s:o, s:o}", "status",
                     json_array_size(reasons) ? "degraded" : "ok", "reasons",
                     reasons, "programs", progs);
}

/* The value of a series in a report (summed over its labels), or NAN. */
static double value_of(json_t *report, const char *name)
{
    double v = NAN;
    size_t k;
    json_t *s;
    json_array_foreach(json_object_get(report, "series"), k, s) {
        const char *n = json_string_value(json_object_get(s, "name"));
        if (!n || strcmp(n, name) != 0)
            continue;
        double x = json_is_number(json_object_get(s, "value"))
                       ? json_number_value(json_object_get(s, "value"))
                       : (double)json_integer_value(json_object_get(s, "count"));
        v = isnan(v) ? x : v + x;
    }
    return v;
}

char *cv_collect_status(cv_collect *c, int64_t now_ms)
{
    static const struct { const char *metric, *say; } shown[] = {
        {"ctxvault_events_received_total", "received"},
        {"ctxvault_events_stored_total", "stored"},
        {"ctxvault_events_rejected_total", "rejected"},
        {"ctxvault_spool_events", "spooled"},
        {"ctxvault_ttl_records_expired", "expired, not yet deleted"},
        {"ctxvault_ttl_oldest_expired_age_seconds", "oldest expired row, s ago"},
        {"ctxvault_backup_last_success_timestamp_seconds", "last good backup"},
    };
    buf b = {cv_malloc(1024), 0, 1024};
    b.b[0] = '\0';
    json_t *h = cv_collect_health(c, now_ms);
    put(&b, "ctxvault: %s\n", json_string_value(json_object_get(h, "status")));
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(h, "reasons"), i, r)
        put(&b, "  ! %s\n", json_string_value(r));
    for (i = 0; i < c->n; i++) {
        program *p = &c->p[i];
        put(&b, "%-22s %-8s %s, reported %.1f s ago", p->name,
            p->service ? "service" : "command",
            p->service ? (up(c, p, now_ms) ? "up" : "down") : "done",
            (double)(now_ms - p->at_ms) / 1000.0);
        for (size_t k = 0; k < sizeof shown / sizeof *shown; k++) {
            double v = value_of(p->report, shown[k].metric);
            if (isnan(v))
                continue;
            if (strstr(shown[k].metric, "timestamp")) {
                char t[40];
                cv_time_format_ms((int64_t)(v * 1000), t);
                put(&b, "; %s %s", shown[k].say, t);
                continue;
            }
            put(&b, "; %s %.0f", shown[k].say, v);
            /* a counter's rate between the last two reports */
            double was = p->prev ? value_of(p->prev, shown[k].metric) : NAN;
            if (strstr(shown[k].metric, "_total") && !isnan(was) &&
                p->at_ms > p->prev_ms && v >= was)
                put(&b, " (%.0f/s)", (v - was) * 1000.0 / (double)(p->at_ms - p->prev_ms));
        }
        put(&b, "\n");
    }
    json_decref(h);
    return b.b;
}

/* ---- fetching a page ---------------------------------------------------- */

/* HTTP/1.0 and Connection: close, so the answer ends where the stream
 * does; only the status line and the blank line after the headers are
 * read, nothing else is parsed. */
char *cv_collect_fetch(const char *listen, const char *path, int timeout_ms,
                       int *code, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host) {
        snprintf(err, errlen, "'%s' is not ADDRESS:PORT", listen);
        return NULL;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *h = host;
    if (h[0] == '[') {
        h++;
        h[strlen(h) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV}, *ai;
    if (getaddrinfo(h, colon + 1, &hints, &ai) != 0) {
        snprintf(err, errlen, "'%s' is not ADDRESS:PORT", listen);
        return NULL;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        snprintf(err, errlen, "no ctxvault-metrics answers on %s: %s", listen,
                 strerror(errno));
        freeaddrinfo(ai);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    freeaddrinfo(ai);
    char *req = cv_fmt("GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n",
                       path, listen);
    int wrc = cv_write_all(fd, req, strlen(req));
    free(req);
    buf b = {cv_malloc(4096), 0, 4096};
    int64_t deadline = cv_mono_ms() + timeout_ms;
    while (wrc == 0) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)(deadline - cv_mono_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        if (b.cap - b.n < 2048)
            b.b = cv_realloc(b.b, b.cap *= 2);
        ssize_t k = read(fd, b.b + b.n, b.cap - b.n - 1);
        if (k <= 0)
            break;
        b.n += (size_t)k;
    }
    close(fd);
    b.b[b.n] = '\0';
    char *body = strstr(b.b, "\r\n\r\n");
    if (wrc < 0 || sscanf(b.b, "HTTP/%*d.%*d %d", code) != 1 || !body) {
        snprintf(err, errlen, "no answer from ctxvault-metrics on %s", listen);
        free(b.b);
        return NULL;
    }
    char *out = cv_strdup(body + 4);
    free(b.b);
    return out;
}
