/* collect.c - the programs' newest reports, rendered (collect.h). */
#include "net/collect.h"

#include "net/metrics.h"
#include "base/time.h"
#include "base/util.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/* What the reports added to some counters, over the anomaly window: each
 * report's increase on its program's previous one (a new pid counts from
 * 0, so restarts and commands that end add what they counted). */
enum { Q_REJECTED, Q_SETTLED, Q_QUERIES, NQ };
typedef struct {
    int64_t at_ms;
    double d[NQ];
} sample;

struct cv_collect {
    int64_t stale_ms;
    char **expect;
    size_t nexpect;
    program p[MAX_PROGRAMS];
    size_t n;
    uint64_t malformed;
    sample *hist;             /* oldest first, within the window */
    size_t nhist, caphist;
    int64_t first_ms;         /* the first report (-1: none yet) */
    int64_t window_ms, min_events;
    int percent;
    char *instance, *home;    /* the instance served, or NULL */
};

cv_collect *cv_collect_new(int64_t stale_ms, const char *expect)
{
    cv_collect *c = cv_calloc(1, sizeof *c);
    c->stale_ms = stale_ms;
    c->first_ms = -1;
    cv_collect_anomaly(c, 60000, 50, 20);
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
    free(c->hist);
    free(c->instance);
    free(c->home);
    free(c);
    *p = NULL;
}

void cv_collect_anomaly(cv_collect *c, int64_t window_ms, int percent,
                        int64_t min_events)
{
    c->window_ms = window_ms > 0 ? window_ms : 60000;
    c->percent = percent;
    c->min_events = min_events > 0 ? min_events : 1;
}

void cv_collect_instance(cv_collect *c, const char *id, const char *home)
{
    free(c->instance);
    free(c->home);
    c->instance = id ? cv_strdup(id) : NULL;
    c->home = home ? cv_strdup(home) : NULL;
}

static double value_of(json_t *report, const char *name);

/* A counter's increase from prev (same pid) to r; from 0 for a new pid. */
static double increase(json_t *r, json_t *prev, const char *name)
{
    double now = value_of(r, name), was = NAN;
    if (isnan(now))
        return 0;
    if (prev && json_integer_value(json_object_get(prev, "pid")) ==
                    json_integer_value(json_object_get(r, "pid")))
        was = value_of(prev, name);
    if (isnan(was) || was > now)
        was = 0;
    return now - was;
}

static void note_increase(cv_collect *c, json_t *r, json_t *prev, int64_t now_ms)
{
    sample x = {.at_ms = now_ms};
    x.d[Q_REJECTED] = increase(r, prev, "ctxvault_events_rejected_total");
    x.d[Q_SETTLED] = x.d[Q_REJECTED] +
                     increase(r, prev, "ctxvault_events_stored_total") +
                     increase(r, prev, "ctxvault_events_duplicate_total");
    x.d[Q_QUERIES] = increase(r, prev, "ctxvault_query_latency_seconds");
    if (c->first_ms < 0)
        c->first_ms = now_ms;
    size_t gone = 0; /* what fell out of the window */
    while (gone < c->nhist && now_ms - c->hist[gone].at_ms > c->window_ms)
        gone++;
    if (gone) {
        memmove(c->hist, c->hist + gone, (c->nhist - gone) * sizeof *c->hist);
        c->nhist -= gone;
    }
    if (!x.d[Q_REJECTED] && !x.d[Q_SETTLED] && !x.d[Q_QUERIES])
        return;
    if (c->nhist == c->caphist)
        c->hist = cv_realloc(c->hist, (c->caphist = c->caphist * 2 + 64) *
                                          sizeof *c->hist);
    c->hist[c->nhist++] = x;
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
    note_increase(c, r, p->prev, now_ms);
    return 0;
}

/* What ctxvault-metrics derives from the reports (the health record's
 * figures that no one program knows). NAN: not known. */
typedef struct {
    double read_avg_s, write_avg_s, qps;
    double sync_ratio;          /* NAN: no ctxvault-sync report */
    double rejected, settled, rej_ratio;
    bool anomaly;
    char reason[160];           /* the anomaly's */
} derived;
static void derive(const cv_collect *c, int64_t now_ms, derived *d);

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
            snprintf(le, sizeof le, "%g", cv_metrics_bounds(d)[j]);
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
    derived dv;
    derive(c, now_ms, &dv);
    const struct { const char *name; double v; } mine[] = {
        {"ctxvault_read_latency_average_seconds", dv.read_avg_s},
        {"ctxvault_write_latency_average_seconds", dv.write_avg_s},
        {"ctxvault_queries_per_second", dv.qps},
        {"ctxvault_sync_success_overall_ratio", dv.sync_ratio},
        {"ctxvault_events_rejected_window_ratio", dv.rej_ratio},
        {"ctxvault_anomaly", dv.anomaly},
    };
    for (const cv_metric_def *d = cv_metric_defs; d->name; d++) {
        bool head = false, done = false;
        /* derived here, unlabelled; NAN (sync off): absent */
        for (size_t k = 0; k < sizeof mine / sizeof *mine && !done; k++) {
            if (strcmp(d->name, mine[k].name) != 0)
                continue;
            done = true;
            if (isnan(mine[k].v))
                continue;
            put_head(&b, d, &head);
            put(&b, "%s ", d->name);
            put_number(&b, mine[k].v);
        }
        if (done)
            continue;
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
    derived dv;
    derive(c, now_ms, &dv);
    if (dv.anomaly)
        json_array_append_new(reasons, json_pack("s++", "anomaly: ", dv.reason, ""));
    return json_pack("{s:s, s:s?, s:s?, s:o, s:o}", "status",
                     json_array_size(reasons) ? "degraded" : "ok", "instance",
                     c->instance, "home", c->home, "reasons", reasons,
                     "programs", progs);
}

/* Sums over the series of a report named name (every label set): their
 * values (a histogram's count stands for its value), their sums and their
 * counts; how many there were. */
static int sum_series(json_t *report, const char *name, double *value,
                      double *sum, double *count)
{
    int n = 0;
    size_t k;
    json_t *s;
    *value = *sum = *count = 0;
    json_array_foreach(json_object_get(report, "series"), k, s) {
        const char *nm = json_string_value(json_object_get(s, "name"));
        if (!nm || strcmp(nm, name) != 0)
            continue;
        double c = (double)json_integer_value(json_object_get(s, "count"));
        json_t *v = json_object_get(s, "value");
        *value += json_is_number(v) ? json_number_value(v) : c;
        *sum += json_number_value(json_object_get(s, "sum"));
        *count += c;
        n++;
    }
    return n;
}

/* The value of a series in a report (summed over its labels), or NAN. */
static double value_of(json_t *report, const char *name)
{
    double v, sum, count;
    return sum_series(report, name, &v, &sum, &count) ? v : NAN;
}

/* The newest report of a service, or NULL. */
static json_t *service_report(const cv_collect *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->p[i].service && !strcmp(c->p[i].name, name))
            return c->p[i].report;
    return NULL;
}

/* A histogram's average (sum / count over its labels), 0 with none. */
static double average(json_t *report, const char *name)
{
    double v, sum, count;
    sum_series(report, name, &v, &sum, &count);
    return count > 0 ? sum / count : 0;
}

/* A series' value with label key=val (key NULL: any), the largest over
 * every program that reported it; NAN when none did. */
static double largest(const cv_collect *c, const char *name, const char *key,
                      const char *val)
{
    double v = NAN;
    for (size_t i = 0; i < c->n; i++) {
        size_t k;
        json_t *s;
        json_array_foreach(json_object_get(c->p[i].report, "series"), k, s) {
            const char *n = json_string_value(json_object_get(s, "name"));
            json_t *l = json_object_get(json_object_get(s, "labels"), key ? key : "");
            if (!n || strcmp(n, name) != 0 ||
                (key && (!json_is_string(l) || strcmp(json_string_value(l), val))))
                continue;
            double x = json_number_value(json_object_get(s, "value"));
            v = isnan(v) || x > v ? x : v;
        }
    }
    return v;
}

static void derive(const cv_collect *c, int64_t now_ms, derived *d)
{
    memset(d, 0, sizeof *d);
    json_t *store = service_report(c, "ctxvault-store");
    d->read_avg_s = average(store, "ctxvault_query_latency_seconds");
    d->write_avg_s = average(store, "ctxvault_commit_latency_seconds");
    double sum[NQ] = {0};
    for (size_t i = 0; i < c->nhist; i++)
        if (now_ms - c->hist[i].at_ms <= c->window_ms)
            for (int q = 0; q < NQ; q++)
                sum[q] += c->hist[i].d[q];
    /* over the window, or the time since the first report when shorter */
    int64_t span = c->first_ms < 0 ? 0 : now_ms - c->first_ms;
    span = span > c->window_ms ? c->window_ms : span;
    d->qps = span > 0 ? sum[Q_QUERIES] * 1000.0 / (double)span : 0;
    d->rejected = sum[Q_REJECTED];
    d->settled = sum[Q_SETTLED];
    d->rej_ratio = d->settled > 0 ? d->rejected / d->settled : 0;
    d->anomaly = d->settled >= (double)c->min_events &&
                 d->rej_ratio * 100.0 > (double)c->percent;
    if (d->anomaly)
        snprintf(d->reason, sizeof d->reason,
                 "%.0f of %.0f events (%.0f%%) rejected in the last %.0f s "
                 "(threshold %d%%)", d->rejected, d->settled,
                 d->rej_ratio * 100.0, (double)c->window_ms / 1000.0, c->percent);
    json_t *sync = service_report(c, "ctxvault-sync");
    double att = value_of(sync, "ctxvault_sync_attempts_total");
    double fail = value_of(sync, "ctxvault_sync_failures_total");
    d->sync_ratio = !sync ? NAN
                    : isnan(att) || att <= 0 ? 1
                    : (att - (isnan(fail) ? 0 : fail)) / att;
}

/* A time in seconds since the epoch as RFC 3339, or null (0, NAN). */
static json_t *when(double s)
{
    if (isnan(s) || s <= 0)
        return json_null();
    char t[40];
    cv_time_format_ms((int64_t)(s * 1000.0), t);
    return json_string(t);
}

static json_t *number_or_null(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

json_t *cv_collect_record(cv_collect *c, int64_t now_ms)
{
    json_t *h = cv_collect_health(c, now_ms);
    json_t *missing = json_object();
    json_t *store = service_report(c, "ctxvault-store");
    derived dv;
    derive(c, now_ms, &dv);
    if (!store)
        json_object_set_new(missing, "capacity", json_string(
            "ctxvault-store has not reported: capacity, latencies, integrity "
            "and security are unknown"));
    double total = value_of(store, "ctxvault_storage_total_bytes");
    double used = value_of(store, "ctxvault_storage_used_bytes");
    double freeb = value_of(store, "ctxvault_storage_free_bytes");
    double ratio = value_of(store, "ctxvault_storage_used_ratio");
    json_t *cap = json_pack("{s:o, s:o, s:o, s:o, s:s}",
        "total_bytes", number_or_null(total), "used_bytes", number_or_null(used),
        "free_bytes", number_or_null(freeb),
        "percent_used", number_or_null(isnan(ratio) ? NAN : ratio * 100.0),
        "limit", "filesystem");
    json_t *perf = json_pack("{s:o, s:o, s:f, s:I}",
        "avg_read_latency_ms", store ? json_real(dv.read_avg_s * 1000.0) : json_null(),
        "avg_write_latency_ms", store ? json_real(dv.write_avg_s * 1000.0) : json_null(),
        "queries_per_second", dv.qps, "window_s", (json_int_t)(c->window_ms / 1000));
    /* integrity: the last verify, else store's start check */
    const char *check = "verify";
    double at = largest(c, "ctxvault_integrity_check_timestamp_seconds", "check", "verify");
    double ok = largest(c, "ctxvault_integrity_check_ok", "check", "verify");
    if (isnan(at) || at <= 0) {
        check = "start";
        at = largest(c, "ctxvault_integrity_check_timestamp_seconds", "check", "start");
        ok = largest(c, "ctxvault_integrity_check_ok", "check", "start");
    }
    bool known = !isnan(at) && at > 0;
    if (!known)
        json_object_set_new(missing, "integrity", json_string(
            "no integrity check has finished (run ctxvault verify)"));
    double backup = largest(c, "ctxvault_backup_last_success_timestamp_seconds", NULL, NULL);
    if (isnan(backup) || backup <= 0)
        json_object_set_new(missing, "last_backup", json_string(
            "no verified backup reported (ctxvault-backup create)"));
    double synced = largest(c, "ctxvault_sync_last_success_timestamp_seconds", NULL, NULL);
    if (isnan(dv.sync_ratio))
        json_object_set_new(missing, "sync", json_string(
            "sync is off (no ctxvault-sync reports)"));
    json_t *rel = json_pack("{s:o, s:o, s:{s:s, s:s, s:o}}",
        "last_backup", when(backup),
        "sync_success_rate", number_or_null(dv.sync_ratio * 100.0),
        "integrity", "result", !known ? "unknown" : ok > 0 ? "passed" : "failed",
        "check", check, "checked_at", when(known ? at : NAN));
    double enc = value_of(store, "ctxvault_encryption_enabled");
    json_t *sec = json_pack("{s:s, s:o, s:{s:b, s:s?, s:f, s:f, s:f}}",
        "encryption", isnan(enc) ? "unknown" : enc > 0 ? "enabled" : "disabled",
        "last_key_rotation", when(value_of(store, "ctxvault_key_created_timestamp_seconds")),
        "anomaly", "detected", dv.anomaly, "reason", dv.anomaly ? dv.reason : NULL,
        "rejected", dv.rejected, "events", dv.settled,
        "rejected_percent", dv.rej_ratio * 100.0);
    json_t *rec = json_pack("{s:O, s:O, s:o, s:o, s:o, s:o, s:{s:o}, s:o}",
        "status", json_object_get(h, "status"), "reasons",
        json_object_get(h, "reasons"), "capacity", cap, "performance", perf,
        "reliability", rel, "security", sec, "meta", "last_sync",
        isnan(dv.sync_ratio) ? json_null() : when(synced), "unavailable", missing);
    if (c->instance)
        json_object_set_new(rec, "instance", json_string(c->instance));
    if (c->home)
        json_object_set_new(rec, "home", json_string(c->home));
    json_decref(h);
    return rec;
}

/* A JSON value for a terminal (a number divided by div): null as
 * "unknown". */
static const char *shown(json_t *v, double div, char *tmp, size_t len)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_number(v)) {
        snprintf(tmp, len, "%.1f", json_number_value(v) / div);
        return tmp;
    }
    return "unknown";
}

/* The health record, one line per section. */
static void put_record(buf *b, cv_collect *c, int64_t now_ms)
{
    json_t *r = cv_collect_record(c, now_ms);
    json_t *cap = json_object_get(r, "capacity"), *perf = json_object_get(r, "performance"),
           *rel = json_object_get(r, "reliability"), *sec = json_object_get(r, "security"),
           *in = json_object_get(rel, "integrity"), *an = json_object_get(sec, "anomaly");
    char t1[32], t2[32], t3[32], t4[32];
    const double mib = 1048576.0;
    put(b, "capacity: %s MiB used; %s%% of %s MiB used, %s MiB free\n",
        shown(json_object_get(cap, "used_bytes"), mib, t1, sizeof t1),
        shown(json_object_get(cap, "percent_used"), 1, t2, sizeof t2),
        shown(json_object_get(cap, "total_bytes"), mib, t3, sizeof t3),
        shown(json_object_get(cap, "free_bytes"), mib, t4, sizeof t4));
    put(b, "performance: read %s ms, write %s ms on average; %s queries/s\n",
        shown(json_object_get(perf, "avg_read_latency_ms"), 1, t1, sizeof t1),
        shown(json_object_get(perf, "avg_write_latency_ms"), 1, t2, sizeof t2),
        shown(json_object_get(perf, "queries_per_second"), 1, t3, sizeof t3));
    put(b, "reliability: last backup %s; sync success %s%%; integrity %s (%s, %s)\n",
        shown(json_object_get(rel, "last_backup"), 1, t1, sizeof t1),
        shown(json_object_get(rel, "sync_success_rate"), 1, t2, sizeof t2),
        shown(json_object_get(in, "result"), 1, t3, sizeof t3),
        json_string_value(json_object_get(in, "check")),
        shown(json_object_get(in, "checked_at"), 1, t4, sizeof t4));
    put(b, "security: encryption %s; key made %s; anomaly %s\n",
        shown(json_object_get(sec, "encryption"), 1, t1, sizeof t1),
        shown(json_object_get(sec, "last_key_rotation"), 1, t2, sizeof t2),
        json_is_true(json_object_get(an, "detected"))
            ? json_string_value(json_object_get(an, "reason")) : "none");
    put(b, "meta: last_sync %s\n",
        shown(json_object_get(json_object_get(r, "meta"), "last_sync"), 1, t1, sizeof t1));
    json_decref(r);
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
    if (c->instance)
        put(&b, "instance %s%s%s\n", c->instance, c->home ? " at " : "",
            c->home ? c->home : "");
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
                if (v <= 0) /* never yet */
                    continue;
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
    put_record(&b, c, now_ms);
    return b.b;
}

/* ---- fetching a page ---------------------------------------------------- */

/* HTTP/1.0 and Connection: close, so the answer ends where the stream
 * does; only the status line and the blank line after the headers are
 * read, nothing else is parsed. */
char *cv_collect_fetch(const char *listen, const char *path, int timeout_ms,
                       int *code, char *instance, size_t ilen, char *err,
                       size_t errlen)
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
    if (instance && ilen) {
        /* the one header read: which instance answered */
        instance[0] = '\0';
        *body = '\0';
        for (char *l = strstr(b.b, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
            size_t hl = strlen(CV_COLLECT_INSTANCE_HEADER);
            if (strncasecmp(l + 2, CV_COLLECT_INSTANCE_HEADER, hl) != 0 || l[2 + hl] != ':')
                continue;
            const char *v = l + 2 + hl + 1;
            v += strspn(v, " \t");
            size_t vl = strcspn(v, "\r\n \t");
            if (vl < ilen) {
                memcpy(instance, v, vl);
                instance[vl] = '\0';
            }
            break;
        }
    }
    char *out = cv_strdup(body + 4);
    free(b.b);
    return out;
}
