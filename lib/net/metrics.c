/* metrics.c - the catalogue of metrics, a program's series, and their
 * publication to ctxvault-metrics (metrics.h). */
#include "net/metrics.h"

#include "base/config.h"
#include "net/sock.h"
#include "base/util.h"
#include "net/wire.h"

#include <czmq.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* events per transaction: 1 to 100,000 (store's batch_size is at most 1e6) */
static const double batch_bounds[CV_BUCKETS] = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000};

#define C CV_COUNTER
#define G CV_GAUGE
#define H CV_HISTOGRAM
/* owners */
#define ST "ctxvault-store"
#define IN "ctxvault-ingest"
#define EN "ctxvault-encrypt"
#define SW "ctxvault-ttl-sweep"
#define SC "ctxvault-scrub"
#define BK "ctxvault-backup"
#define SY "ctxvault-sync"
#define ME "ctxvault-metrics"
/* labelled by peer: a series per configured peer, made by ctxvault-sync */
#define PER_PEER ""

const cv_metric_def cv_metric_defs[] = {
    /* the P2.4 plan's */
    {"ctxvault_wal_size_bytes", G, "Size of the WAL file after the last commit.", NULL, ST, NULL},
    {"ctxvault_wal_checkpoints_total", C, "WAL checkpoints store ran.", NULL, ST, NULL},
    {"ctxvault_wal_checkpoint_duration_seconds", H, "Time a WAL checkpoint took.", NULL, ST, NULL},
    {"ctxvault_ttl_records_deleted_total", C, "Rows deleted because their retention ended.", NULL, SW, NULL},
    {"ctxvault_ttl_cleanup_duration_seconds", H, "Time a retention sweep took.", NULL, SW, NULL},
    {"ctxvault_ttl_records_expired", G, "Rows past their retention and still stored.", NULL, SW, NULL},
    {"ctxvault_ttl_oldest_expired_age_seconds", G, "How long ago the oldest row still stored expired.", NULL, ST, NULL},
    {"ctxvault_pii_records_scrubbed_total", C, "Rows whose personal data was scrubbed.", NULL, SC " " ST, NULL},
    {"ctxvault_rows_anonymised_total", C, "Rows of anonymous users anonymised (on arrival, or when the user turned anonymous).", NULL, ST, "when=arrival;when=switch"},
    {"ctxvault_pii_scrubbing_duration_seconds", H, "Time a scrub run took.", NULL, SC, NULL},
    {"ctxvault_pii_fields_scrubbed_total", C, "Fields changed by scrubbing.", NULL, SC, NULL},
    {"ctxvault_pii_records_due", G, "Rows past their scrub age and not yet scrubbed.", NULL, SC, NULL},
    {"ctxvault_recovery_attempts_total", C, "Starts that found a crash to recover from.", NULL, ST, NULL},
    {"ctxvault_recovery_duration_seconds", H, "Time the start's recovery took.", NULL, ST, NULL},
    {"ctxvault_recovery_transactions_replayed", G, "Transactions replayed at the last start: committed transactions SQLite recovered from the WAL, and journal batches the database lacked.", NULL, ST, NULL},
    {"ctxvault_checksum_rows_checked_total", C, "Rows whose keyed checksum store's background pass checked since start.", NULL, ST, NULL},
    {"ctxvault_checksum_mismatches_total", C, "Rows store's background pass found failing their keyed checksum.", NULL, ST, NULL},
    {"ctxvault_checksum_pass_last_completion_timestamp_seconds", G, "When store's background checksum pass last ended (0: not yet).", NULL, ST, NULL},
    {"ctxvault_checksum_pass_last_ok", G, "1 when store's last background checksum pass found every row good, 0 when rows failed or could not be read (or no pass ended yet).", NULL, ST, NULL},
    /* the pipeline's */
    {"ctxvault_events_received_total", C, "Events a program read.", NULL, IN " " EN " " ST, NULL},
    {"ctxvault_events_forwarded_total", C, "Events a program passed on (resends not counted).", NULL, IN " " EN, NULL},
    {"ctxvault_events_stored_total", C, "Events committed to the database.", NULL, ST, NULL},
    {"ctxvault_events_duplicate_total", C, "Events store already held (acknowledged again, not stored).", NULL, ST, NULL},
    {"ctxvault_events_rejected_total", C, "Events rejected, by program and reason.", NULL, IN " " EN " " ST, NULL},
    {"ctxvault_events_deadlettered_total", C, "Rejected events written to the dead-letter file.", NULL, IN " " EN " " ST, NULL},
    {"ctxvault_events_resent_total", C, "Events ingest sent again for want of an acknowledgement.", NULL, IN, NULL},
    {"ctxvault_acks_total", C, "Acknowledgements (kind ack or nak) sent by store or received by ingest.", NULL, IN " " ST, "kind=ack;kind=nak"},
    {"ctxvault_spool_events", G, "Events in ingest's spool not yet acknowledged.", NULL, IN, NULL},
    {"ctxvault_spool_bytes", G, "Bytes of ingest's spool files.", NULL, IN, NULL},
    {"ctxvault_spool_oldest_age_seconds", G, "Age of the oldest unacknowledged event in the spool.", NULL, IN, NULL},
    {"ctxvault_events_refused_total", C, "Events ingest read but did not accept because its spool failed (a full disk): never acknowledged to their producer, which sends them again.", NULL, IN, NULL},
    {"ctxvault_spool_bytes_dropped_total", C, "Bytes cut off the spool at a start: records a crash left half-written, never accepted.", NULL, IN, NULL},
    {"ctxvault_deadletter_write_failures_total", C, "Rejected lines whose dead-letter record could not be written (the rejection is still counted).", NULL, IN " " EN " " ST, NULL},
    {"ctxvault_commit_batches_total", C, "Transactions store committed with events.", NULL, ST, NULL},
    {"ctxvault_commit_batch_size_events", H, "Events per transaction store committed.", batch_bounds, ST, NULL},
    {"ctxvault_commit_failures_total", C, "Commits that failed and were rolled back (nothing acknowledged).", NULL, ST, NULL},
    {"ctxvault_messages_malformed_total", C, "Messages dropped as malformed, by program.", NULL, EN " " ST, NULL},
    {"ctxvault_requests_total", C, "Control requests store answered, by op (other: a request that names no op store has).", NULL, ST, ""},
    {"ctxvault_control_errors_total", C, "Control requests store refused or failed, by code (other: an op without codes).", NULL, ST, NULL},
    {"ctxvault_ack_latency_seconds", H, "Time from ingest's send to store's acknowledgement.", NULL, IN, NULL},
    {"ctxvault_query_latency_seconds", H, "Time store took to answer a query.", NULL, ST, NULL},
    {"ctxvault_cache_lookups_total", C, "cache.get requests store answered, by result (hit or miss).", NULL, ST, "result=hit;result=miss"},
    {"ctxvault_cache_puts_total", C, "Model cache entries store wrote (cache.put).", NULL, ST, NULL},
    {"ctxvault_erasure_notify_failures_total", C, "Erasures whose [erasure] notify program failed (the erasure itself stands).", NULL, ST, NULL},
    {"ctxvault_cache_deleted_total", C, "Model cache entries deleted on request (cache.delete).", NULL, ST, NULL},
    {"ctxvault_db_size_bytes", G, "Size of the database file.", NULL, ST, NULL},
    {"ctxvault_storage_quota_bytes", G, "The database's quota ([storage] quota; 0: none).", NULL, ST, NULL},
    {"ctxvault_storage_quota_used_bytes", G, "Bytes the database's pages in use take (free pages not counted).", NULL, ST, NULL},
    {"ctxvault_storage_quota_ratio", G, "Used bytes over the quota (0 without one).", NULL, ST, NULL},
    {"ctxvault_storage_quota_archives_total", C, "Archives store started because the database reached its quota's threshold.", NULL, ST, NULL},
    {"ctxvault_storage_quota_archive_failures_total", C, "Such archives that failed (tried again later).", NULL, ST, NULL},
    {"ctxvault_storage_quota_notify_failures_total", C, "quota_notify commands that could not run or failed.", NULL, ST, NULL},
    {"ctxvault_journal_batch", G, "The last journal batch the database holds.", NULL, ST, NULL},
    /* backups and keys */
    {"ctxvault_backup_last_success_timestamp_seconds", G, "When the newest verified backup was taken.", NULL, BK, NULL},
    {"ctxvault_backup_size_bytes", G, "Size of the newest verified backup.", NULL, BK, NULL},
    {"ctxvault_backup_verification_failures_total", C, "Backups that failed verification.", NULL, BK, NULL},
    {"ctxvault_backup_duration_seconds", H, "Time a backup took, verification included.", NULL, BK, NULL},
    {"ctxvault_key_version", G, "The keyring's primary key version.", NULL, ST, NULL},
    {"ctxvault_key_rotation_age_seconds", G, "Age of the primary key version.", NULL, ST, NULL},
    /* the health record's (store) */
    {"ctxvault_storage_used_bytes", G, "Bytes of the database file and its WAL.", NULL, ST, NULL},
    {"ctxvault_storage_total_bytes", G, "Size of the storage the database may fill: the filesystem holding it.", NULL, ST, NULL},
    {"ctxvault_storage_free_bytes", G, "Bytes of that storage still free (for an unprivileged writer).", NULL, ST, NULL},
    {"ctxvault_storage_used_ratio", G, "Share of that storage in use: (total - free) / total.", NULL, ST, NULL},
    {"ctxvault_commit_latency_seconds", H, "Time store took to commit a transaction (a write).", NULL, ST, NULL},
    {"ctxvault_integrity_check_ok", G, "1 when the last integrity check passed (check=verify: ctxvault verify; check=start: store's start check), 0 when it failed or has not run.", NULL, ST, "check=verify;check=start"},
    {"ctxvault_integrity_check_timestamp_seconds", G, "When that check ran (0: never).", NULL, ST, "check=verify;check=start"},
    {"ctxvault_encryption_enabled", G, "1 when the field policy seals fields and the keyring is loaded.", NULL, ST, NULL},
    {"ctxvault_key_created_timestamp_seconds", G, "When the primary key version was made (the last rotation).", NULL, ST, NULL},
    /* ctxvault-sync */
    {"ctxvault_sync_attempts_total", C, "Exchanges with a sync peer begun (a pull cycle, a push, a hello), by peer.", NULL, SY, PER_PEER},
    {"ctxvault_sync_failures_total", C, "Exchanges with a sync peer that failed (no answer, a refusal, store failing), by peer: then retried with back-off.", NULL, SY, PER_PEER},
    {"ctxvault_sync_success_ratio", G, "Exchanges with a sync peer that succeeded, of those begun since start, by peer.", NULL, SY, PER_PEER},
    {"ctxvault_sync_peer_up", G, "1 while the last exchange with the sync peer succeeded.", NULL, SY, PER_PEER},
    {"ctxvault_sync_exchange_duration_seconds", H, "Time an exchange with a sync peer took (a pull's long wait included).", NULL, SY, PER_PEER},
    {"ctxvault_sync_versions_sent_total", C, "Versions sent to sync peers.", NULL, SY, PER_PEER},
    {"ctxvault_sync_versions_received_total", C, "Versions received from sync peers and stored.", NULL, SY, PER_PEER},
    {"ctxvault_sync_versions_rejected_total", C, "Versions received that failed their checks (a payload that does not open, a bad vector), and contexts a received version's fields did not make (they fail this instance's checks): counted, logged, not stored.", NULL, SY, PER_PEER},
    {"ctxvault_sync_malformed_total", C, "Messages on the sync socket that were not sync requests.", NULL, SY, NULL},
    {"ctxvault_sync_last_success_timestamp_seconds", G, "When an exchange with the sync peer last succeeded (0: never), by peer.", NULL, SY, PER_PEER},
    /* ctxvault-metrics' own */
    {"ctxvault_read_latency_average_seconds", G, "Average time store took to answer a query, since store started.", NULL, ME, NULL},
    {"ctxvault_write_latency_average_seconds", G, "Average time store took to commit a transaction, since store started.", NULL, ME, NULL},
    {"ctxvault_queries_per_second", G, "Queries store answered per second over the anomaly window.", NULL, ME, NULL},
    {"ctxvault_sync_success_overall_ratio", G, "Exchanges with every sync peer that succeeded, of those begun (1 with none).", NULL, ME, NULL},
    {"ctxvault_events_rejected_window_ratio", G, "Events rejected, of those stored or rejected, over the anomaly window.", NULL, ME, NULL},
    {"ctxvault_anomaly", G, "1 while rejections over the anomaly window pass the threshold.", NULL, ME, NULL},

    {"ctxvault_up", G, "1 while a program reports, 0 once it stopped or went silent.", NULL, ME, NULL},
    {"ctxvault_report_age_seconds", G, "Time since a program's last report.", NULL, ME, NULL},
    {"ctxvault_metrics_reports_malformed_total", C, "Reports ctxvault-metrics could not read.", NULL, ME, NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

const double cv_metric_buckets[CV_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1, 2.5, 5, 10};

const double *cv_metrics_bounds(const cv_metric_def *d)
{
    return d->bounds ? d->bounds : cv_metric_buckets;
}

const cv_metric_def *cv_metrics_find(const char *name)
{
    for (const cv_metric_def *d = cv_metric_defs; d->name; d++)
        if (strcmp(d->name, name) == 0)
            return d;
    return NULL;
}

bool cv_metrics_owned_by(const cv_metric_def *d, const char *program)
{
    size_t n = strlen(program);
    for (const char *o = d->owners; o && (o = strstr(o, program)); o += n)
        if ((o == d->owners || o[-1] == ' ') && (o[n] == ' ' || o[n] == '\0'))
            return true;
    return false;
}

const char *cv_metrics_reject_class(const char *reason)
{
    static const struct { const char *has, *label; } classes[] = {
        {"longer than", "too_long"},
        {"NUL", "nul_byte"},
        {"nested deeper", "too_deep"},
        {"too deep", "too_deep"},
        {"duplicate key", "duplicate_key"},
        {"not a JSON object", "not_object"},
        {"UTF-8", "bad_utf8"},
        {"invalid JSON", "invalid_json"},
        {"not valid JSON", "invalid_json"},
        {"\"ts\"", "bad_timestamp"},
        {"privacy_level", "bad_profile"},
        {"\"autoDelete\"", "bad_profile"},
        {"\"anonymization\"", "bad_profile"},
        {"\"encryption\"", "bad_profile"},
        {"retention_days", "bad_profile"},
        {"not pseudonymised", "not_protected"},
        {"\"kind\"", "bad_field"},
        {"\"user_id\"", "bad_field"},
        {"\"type\"", "bad_field"},
        {"\"id\"", "bad_field"},
        {"policy", "policy"},
        {"encrypt", "policy"},
    };
    for (size_t i = 0; reason && i < sizeof classes / sizeof *classes; i++)
        if (strstr(reason, classes[i].has))
            return classes[i].label;
    return "invalid_event";
}

typedef struct {
    const cv_metric_def *def;
    char *labels;
    double value;                     /* counter, gauge */
    uint64_t buckets[CV_BUCKETS + 1]; /* histogram: per bucket, +Inf last */
    double sum;
} series;

struct cv_metrics {
    char *program;
    bool service;
    zsock_t *pub;
    int64_t interval_ms, last_ms;
    series *s;
    size_t n, cap;
    bool ok, final_sent;
    bool subscribed;        /* ctxvault-metrics has subscribed */
    bool collector_maybe;   /* one may be there to wait for */
    char *reason;
};

static void start_at_zero(cv_metrics *m);

cv_metrics *cv_metrics_new(const cv_config *cfg, const char *program,
                           bool service)
{
    cv_metrics *m = cv_calloc(1, sizeof *m);
    m->program = cv_strdup(program);
    m->service = service;
    m->ok = true;
    m->interval_ms = cfg ? cfg->metrics_interval_ms : 0;
    m->last_ms = cv_mono_ms();
    start_at_zero(m);
    if (cfg && cfg->ep_metrics && *cfg->ep_metrics) {
        char err[256];
        /* a few snapshots queue at most: old ones are worthless. XPUB, to
         * see ctxvault-metrics subscribe (a command's only report must not
         * go out before it has) */
        m->pub = cv_sock_connect_hwm(cfg, ZMQ_XPUB, cfg->ep_metrics, 4, err,
                                     sizeof err);
        if (!m->pub)
            cv_warn("metrics will not be published: %s", err);
        /* over ipc://, no socket file means no collector: nobody to wait for */
        const char *ep = cfg->ep_metrics;
        m->collector_maybe = strncmp(ep, "ipc://", 6) != 0 || access(ep + 6, F_OK) == 0;
    }
    return m;
}

void cv_metrics_destroy(cv_metrics **p)
{
    cv_metrics *m = *p;
    if (!m)
        return;
    if (m->pub) {
        if (!m->final_sent)
            cv_metrics_publish(m, true);
        zsock_set_linger(m->pub, 200); /* the final snapshot, if it can */
        zsock_destroy(&m->pub);
    }
    for (size_t i = 0; i < m->n; i++)
        free(m->s[i].labels);
    free(m->s);
    free(m->program);
    free(m->reason);
    free(m);
    *p = NULL;
}

static series *find(cv_metrics *m, const char *name, const char *labels,
                    cv_metric_type want);

/* Every series the program owns, at 0: a counter that appears only with
 * its first event breaks rate() and absence alerts. */
static void start_at_zero(cv_metrics *m)
{
    for (const cv_metric_def *d = cv_metric_defs; d->name; d++) {
        if (!cv_metrics_owned_by(d, m->program) || (d->start && !*d->start))
            continue;
        char *sets = cv_strdup(d->start ? d->start : ""), *save = NULL;
        char *l = strtok_r(sets, ";", &save);
        do
            find(m, d->name, l, d->type);
        while ((l = strtok_r(NULL, ";", &save)));
        free(sets);
    }
}

void cv_metrics_start_labels(cv_metrics *m, const char *labels)
{
    for (const cv_metric_def *d = m ? cv_metric_defs : NULL; d && d->name; d++)
        if (cv_metrics_owned_by(d, m->program) && d->start && !*d->start)
            find(m, d->name, labels, d->type);
}

static series *find(cv_metrics *m, const char *name, const char *labels,
                    cv_metric_type want)
{
    labels = labels ? labels : "";
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->s[i].def->name, name) == 0 &&
            strcmp(m->s[i].labels, labels) == 0)
            return &m->s[i];
    const cv_metric_def *d = cv_metrics_find(name);
    if (!d || (d->type == CV_HISTOGRAM) != (want == CV_HISTOGRAM)) {
        static int said;
        if (!said++)
            cv_warn("metric %s is not in the catalogue as used: dropped", name);
        return NULL;
    }
    if (m->n == m->cap)
        m->s = cv_realloc(m->s, (m->cap = m->cap ? m->cap * 2 : 32) * sizeof *m->s);
    series *s = &m->s[m->n++];
    memset(s, 0, sizeof *s);
    s->def = d;
    s->labels = cv_strdup(labels);
    return s;
}

void cv_metrics_set(cv_metrics *m, const char *name, const char *labels,
                    double value)
{
    series *s = m ? find(m, name, labels, CV_GAUGE) : NULL;
    if (s)
        s->value = value;
}

void cv_metrics_add(cv_metrics *m, const char *name, const char *labels,
                    double delta)
{
    series *s = m ? find(m, name, labels, CV_COUNTER) : NULL;
    if (s)
        s->value += delta;
}

void cv_metrics_observe(cv_metrics *m, const char *name, const char *labels,
                        double value)
{
    series *s = m ? find(m, name, labels, CV_HISTOGRAM) : NULL;
    if (!s)
        return;
    const double *bounds = cv_metrics_bounds(s->def);
    size_t b = 0;
    while (b < CV_BUCKETS && value > bounds[b])
        b++;
    s->buckets[b]++;
    s->sum += value;
}

void cv_metrics_health(cv_metrics *m, bool ok, const char *reason)
{
    if (!m)
        return;
    m->ok = ok;
    free(m->reason);
    m->reason = reason ? cv_strdup(reason) : NULL;
}

static json_t *labels_json(const char *labels)
{
    json_t *o = json_object();
    char *copy = cv_strdup(labels), *save = NULL;
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (eq) {
            *eq = '\0';
            json_object_set_new(o, kv, json_string(eq + 1));
        }
    }
    free(copy);
    return o;
}

void *cv_metrics_snapshot(cv_metrics *m, bool final)
{
    json_t *all = json_array();
    for (size_t i = 0; i < m->n; i++) {
        series *s = &m->s[i];
        json_t *o = json_pack("{s:s, s:o}", "name", s->def->name, "labels",
                              labels_json(s->labels));
        if (s->def->type == CV_HISTOGRAM) {
            json_t *b = json_array();
            uint64_t count = 0;
            for (size_t k = 0; k <= CV_BUCKETS; k++) {
                json_array_append_new(b, json_integer((json_int_t)s->buckets[k]));
                count += s->buckets[k];
            }
            json_object_set_new(o, "buckets", b);
            json_object_set_new(o, "sum", json_real(s->sum));
            json_object_set_new(o, "count", json_integer((json_int_t)count));
        } else {
            json_object_set_new(o, "value", json_real(s->value));
        }
        json_array_append_new(all, o);
    }
    return json_pack("{s:s, s:I, s:I, s:I, s:b, s:b, s:{s:b, s:s?}, s:o}",
                     "program", m->program, "pid", (json_int_t)getpid(),
                     "at", (json_int_t)cv_now_ms(), "interval_ms",
                     (json_int_t)m->interval_ms, "service", m->service,
                     "final", final, "health", "ok", m->ok, "reason",
                     m->reason, "series", all);
}

void cv_metrics_publish(cv_metrics *m, bool final)
{
    if (!m)
        return;
    m->last_ms = cv_mono_ms();
    m->final_sent = m->final_sent || final;
    if (!m->pub)
        return;
    /* subscriptions arrive as messages on the XPUB: take them */
    if (!m->subscribed && final && !m->service && m->collector_maybe) {
        zmq_pollitem_t it = {zsock_resolve(m->pub), 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 500);
    }
    while (zsock_events(m->pub) & ZMQ_POLLIN) {
        zframe_t *f = zframe_recv(m->pub);
        if (!f)
            break;
        m->subscribed = m->subscribed || (zframe_size(f) > 0 && zframe_data(f)[0] == 1);
        zframe_destroy(&f);
    }
    json_t *snap = cv_metrics_snapshot(m, final);
    char *text = json_dumps(snap, JSON_COMPACT);
    json_decref(snap);
    if (!text)
        return;
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, CV_WIRE_VERSION);
    zmsg_addstr(msg, "METRICS");
    zmsg_addstr(msg, text);
    free(text);
    /* PUB drops what it cannot queue: a slow collector costs nothing */
    zmsg_send(&msg, m->pub);
    zmsg_destroy(&msg);
}

bool cv_metrics_due(const cv_metrics *m)
{
    return m && m->pub && m->interval_ms > 0 &&
           cv_mono_ms() - m->last_ms >= m->interval_ms;
}

bool cv_metrics_tick(cv_metrics *m)
{
    if (!cv_metrics_due(m))
        return false;
    cv_metrics_publish(m, false);
    return true;
}
