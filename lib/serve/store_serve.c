/* store_serve.c - the store stage on sockets: batches, acks, control.
 *
 * Acks follow COMMIT. The service keeps, for the open batch, the
 * acknowledgement each of its events will get (ACK for stored and
 * duplicate events, NAK for events rejected here or by encrypt); after
 * COMMIT it publishes them per source. A failed COMMIT (a full disk, say)
 * rolls back and drops them: ingest resends, and the ids dedupe.
 *
 * Until the start check (cv_dbcheck) has passed, committed batches keep
 * their acks: they are published when it passes, and never when it finds
 * corruption, so nothing ingest deletes from its spool depends on a
 * damaged file. While acks are withheld, their number is bounded: past
 * that, the service stops reading until the check is done.
 *
 * Memory is bounded by batch_size (the open batch's acks) and by the
 * short PULL queue; the PUB queue is large, and an ack it drops only
 * causes a resend. */
#include "serve/store_serve.h"

#include "net/control.h"
#include "ctx/ctxapi.h"
#include "ctx/ctxwrite.h"
#include "ctx/ctxops.h"
#include "ops/maint.h"
#include "net/metrics.h"
#include "storage/quota.h"

#include "base/event.h"
#include "net/health.h"
#include "ops/query.h"
#include "net/sock.h"
#include "net/synckeys.h"
#include "sync/syncops.h"
#include "base/time.h"
#include "base/util.h"
#include "net/wire.h"

#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PULL_HWM 4        /* messages */
#define PUB_HWM 100000     /* messages; a dropped ack only causes a resend */
#define POLL_MS 200        /* the stop flag is checked at least this often */
#define MAX_SOURCES 64     /* distinct sources among the pending acks */
#define SOURCE_MAX 64
#define IDS_PER_MSG 1000   /* ids per ack message */
#define BURST 16           /* messages handled per wake-up */
#define QUERY_LIMIT 100    /* rows per query reply by default */
#define QUERY_MAX 1000     /* and at most */
#define FAIL_PAUSE_MS 200  /* no reading for this long after a failed COMMIT */
/* health stays degraded this long after the last failed COMMIT: on a
 * nearly full disk small batches pass between failing ones, and health
 * must not flap with them */
#define FAIL_HOLD_MS 5000
#define QUOTA_PAUSE_MS 1000 /* no reading for this long when at the quota */

typedef struct {
    int src;        /* index into sources */
    bool nak;
    size_t off;     /* of its text in texts: the id, or "<id>\t<reason>" */
    size_t len;
} ack;

typedef struct {
    cv_store_service *svc;
    const cv_config *cfg;
    zsock_t *pull, *pub, *ctl;
    cv_db *reader;          /* for control requests, opened on first need */
    ack *acks;
    size_t nacks, cap;
    char *texts;            /* the acks' texts, one after another: no */
    size_t tlen, tcap;      /* allocation per event */
    size_t committed;       /* acks[0, committed) are committed */
    size_t held_max;        /* stop reading with this many acks pending */
    char *sources[MAX_SOURCES];
    int nsources;
    int64_t deadline;       /* of the open batch */
    int64_t pause_until;
    bool check_ok;
    int64_t check_at_ms;    /* when the start check passed (wall clock) */
    cv_writer maint;         /* sweep, erase, rectify, audit */
    cv_ctxwrite *write;     /* the context API's writes */
    cv_syncstore *sync;     /* sync records ([sync] device or relay) */
    cv_syncops syncops;
    cv_ctxops ctxops;       /* stats, meta, cache.get */
    cv_ctxapi api;          /* the context API's reads */
    cv_ctxapi wread;        /* profile.set's read, never decrypting */
    cv_ctxwrite_state wstate;
    cv_modelcache_counters cache; /* cache.get's hits and misses */
    int wal_frames;         /* in the WAL after the last commit */
    uint64_t messages, malformed, acked, naked, commit_failures, requests,
        rejected;
    cv_metrics *mx;         /* reported to ctxvault-metrics */
    cv_quota *quota;        /* [storage] quota */
    bool failing;           /* the last commit failed: health degraded */
    int64_t failed_at;      /* when a commit last failed (mono ms), or 0 */
    char last_failure[640];
    cv_dbcheck_pass *sums;       /* the background checksum pass, while it runs */
    bool sums_started;
    cv_sumpass_result sums_last; /* the pass's figures (strings not kept) */
    char sums_failure[1024];     /* its finding, or "" */
} server;

static void malformed(server *s, const char *why)
{
    s->malformed++;
    if (s->malformed <= 10 || s->malformed % 1000 == 0)
        cv_warn("dropped a malformed message (%llu so far): %s",
                (unsigned long long)s->malformed, why);
}

static bool frame_is(zframe_t *f, const char *str)
{
    return f && zframe_size(f) == strlen(str) &&
           memcmp(zframe_data(f), str, zframe_size(f)) == 0;
}

static bool batch_open(const server *s)
{
    return s->nacks > s->committed || cv_store_pending(s->svc->store) > 0;
}

static int intern_source(server *s, const char *src)
{
    for (int i = 0; i < s->nsources; i++)
        if (strcmp(s->sources[i], src) == 0)
            return i;
    if (s->nsources == MAX_SOURCES)
        return -1;
    s->sources[s->nsources] = cv_strdup(src);
    return s->nsources++;
}

static void add_ack(server *s, int src, bool nak, const char *text, size_t len)
{
    if (cv_bench_no_durability())
        return; /* nobody waits */
    if (s->nacks == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->acks = cv_realloc(s->acks, s->cap * sizeof *s->acks);
    }
    if (s->tlen + len > s->tcap) {
        s->tcap = (s->tlen + len) * 2;
        s->texts = cv_realloc(s->texts, s->tcap);
    }
    memcpy(s->texts + s->tlen, text, len);
    s->acks[s->nacks++] = (ack){.src = src, .nak = nak, .off = s->tlen, .len = len};
    s->tlen += len;
}

/* Forget acks[from, nacks), and the sources when no ack is left. */
static void drop_acks(server *s, size_t from)
{
    if (from < s->nacks)
        s->tlen = s->acks[from].off;
    s->nacks = from;
    if (s->nacks == 0) {
        for (int i = 0; i < s->nsources; i++)
            free(s->sources[i]);
        s->nsources = 0;
    }
}

/* Publish the committed acks: per source, ACK and NAK messages of at most
 * IDS_PER_MSG ids. The open batch's acks stay. */
static void publish(server *s)
{
    size_t n = s->committed;
    if (n == 0)
        return;
    for (int src = 0; src < s->nsources; src++) {
        for (int nak = 0; nak <= 1; nak++) {
            zmsg_t *m = NULL;
            for (size_t i = 0; i < n; i++) {
                const ack *a = &s->acks[i];
                if (a->src != src || a->nak != (bool)nak)
                    continue;
                if (!m) {
                    m = zmsg_new();
                    zmsg_addstr(m, s->sources[src]);
                    zmsg_addstr(m, CV_WIRE_VERSION);
                    zmsg_addstr(m, nak ? CV_WIRE_NAK : CV_WIRE_ACK);
                }
                zmsg_addmem(m, s->texts + a->off, a->len);
                if (nak)
                    s->naked++;
                else
                    s->acked++;
                if (zmsg_size(m) == 3 + IDS_PER_MSG)
                    zmsg_send(&m, s->pub);
            }
            if (m)
                zmsg_send(&m, s->pub);
        }
    }
    /* keep the open batch's acks, at the front */
    size_t base = n < s->nacks ? s->acks[n].off : s->tlen;
    memmove(s->texts, s->texts + base, s->tlen - base);
    s->tlen -= base;
    memmove(s->acks, s->acks + n, (s->nacks - n) * sizeof *s->acks);
    s->nacks -= n;
    for (size_t i = 0; i < s->nacks; i++)
        s->acks[i].off -= base;
    s->committed = 0;
    if (s->nacks == 0)
        drop_acks(s, 0);
}

/* A failed batch (a full disk, say): health stays degraded, with the
 * reason, until a commit succeeds again; the log is rate-limited, since
 * ingest resends the same events until then. */
static void fail_batch(server *s, const char *why)
{
    s->commit_failures++;
    s->failing = true;
    s->failed_at = cv_mono_ms();
    snprintf(s->last_failure, sizeof s->last_failure,
             "commits to %s fail, nothing acknowledged: %s",
             cv_db_path(s->svc->db), why);
    if (s->commit_failures <= 10 || s->commit_failures % 100 == 0)
        cv_err("cannot commit to %s: %s; batch rolled back, nothing "
               "acknowledged (%llu so far; ingest resends)",
               cv_db_path(s->svc->db), why,
               (unsigned long long)s->commit_failures);
    cv_store_rollback(s->svc->store);
    drop_acks(s, s->committed);
    s->pause_until = cv_mono_ms() + FAIL_PAUSE_MS;
}

/* Checkpoint once the WAL holds wal_autocheckpoint pages: after the acks
 * of the batch that filled it, not inside its COMMIT, where SQLite's own
 * autocheckpoint would run it (a 40 MiB checkpoint is tens of ms that no
 * acknowledgement should wait for). */
static void maybe_checkpoint(server *s, int pages)
{
    if (pages > 0 && s->wal_frames >= pages) {
        int log, done;
        cv_db_checkpoint(s->svc->db, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        s->wal_frames = 0;
    }
}

/* Every checkpoint of the writer's connection (cv_db_checkpoint): these,
 * the maintenance ops' and the one at a clean stop. */
static void count_checkpoint(void *arg, double seconds, int rc)
{
    server *s = arg;
    (void)rc;
    cv_metrics_add(s->mx, "ctxvault_wal_checkpoints_total", NULL, 1);
    cv_metrics_observe(s->mx, "ctxvault_wal_checkpoint_duration_seconds",
                       NULL, seconds);
}

/* Commit the open batch; publish its acks when the start check passed.
 * 1 when the quota refused it: rolled back, nothing acknowledged, nothing
 * open, so a change (an archive's deletes, a sweep) may go on. */
static int commit_batch(server *s)
{
    if (!batch_open(s))
        return 0;
    char err[512];
    if (cv_store_pending(s->svc->store) > 0 &&
        cv_quota_full(s->quota, err, sizeof err)) {
        /* the full-disk path: ingest keeps the events and resends */
        fail_batch(s, err);
        s->pause_until = cv_mono_ms() + QUOTA_PAUSE_MS;
        return 1;
    }
    double t0 = cv_mono_s();
    if (cv_store_commit(s->svc->store, err, sizeof err) < 0) {
        fail_batch(s, err);
        return -1;
    }
    cv_metrics_observe(s->mx, "ctxvault_commit_latency_seconds", NULL,
                       cv_mono_s() - t0);
    if (s->failing && !s->svc->quiet)
        cv_info("commits to %s succeed again, after %llu failed",
                cv_db_path(s->svc->db), (unsigned long long)s->commit_failures);
    s->failing = false;
    cv_quota_clear(s->quota);
    cv_metrics_observe(s->mx, "ctxvault_commit_batch_size_events", NULL,
                       (double)(s->nacks - s->committed));
    s->committed = s->nacks;
    if (s->check_ok)
        publish(s);
    maybe_checkpoint(s, s->cfg->wal_autocheckpoint);
    cv_quota_poll(s->quota, true);
    return 0;
}

static int wal_hook(void *arg, sqlite3 *h, const char *name, int frames)
{
    (void)h;
    (void)name;
    ((server *)arg)->wal_frames = frames;
    return SQLITE_OK;
}

/* One event message: ["CTXV1"]["EV"][source][event or "!<id>\t<reason>"]... */
static void take_message(server *s, zmsg_t *m)
{
    zframe_t *ver = zmsg_first(m);
    zframe_t *type = zmsg_next(m);
    zframe_t *srcf = zmsg_next(m);
    if (!frame_is(ver, CV_WIRE_VERSION)) {
        malformed(s, "not a " CV_WIRE_VERSION " message");
        return;
    }
    if (!frame_is(type, CV_WIRE_EVENTS)) {
        malformed(s, "not an event message");
        return;
    }
    if (!srcf || zframe_size(srcf) == 0 || zframe_size(srcf) > SOURCE_MAX ||
        memchr(zframe_data(srcf), '\0', zframe_size(srcf))) {
        malformed(s, "no valid source frame");
        return;
    }
    char source[SOURCE_MAX + 1];
    memcpy(source, zframe_data(srcf), zframe_size(srcf));
    source[zframe_size(srcf)] = '\0';
    int src = intern_source(s, source);
    if (src < 0) {
        commit_batch(s);
        src = intern_source(s, source);
    }
    if (src < 0) {
        /* more sources than the table holds while acks are withheld */
        malformed(s, "too many sources at once; ingest will resend");
        return;
    }
    s->messages++;
    cv_store *st = s->svc->store;
    size_t max_line = (size_t)cv_config_stage_max_line(s->cfg);
    for (zframe_t *f = zmsg_next(m); f; f = zmsg_next(m)) {
        const char *line = (const char *)zframe_data(f);
        size_t len = zframe_size(f);
        if (!batch_open(s))
            s->deadline = cv_mono_ms() + s->cfg->batch_ms;
        if (len > 0 && line[0] == CV_WIRE_REJECT) {
            /* encrypt dead-lettered it: no insert, a final NAK */
            const char *tab = memchr(line, '\t', len);
            size_t idlen = tab ? (size_t)(tab - line - 1) : len - 1;
            if (!cv_event_id_valid(line + 1, idlen)) {
                malformed(s, "a rejection frame without a valid id");
                continue;
            }
            add_ack(s, src, true, line + 1, len - 1);
            continue;
        }
        char reason[512];
        int r;
        if (len > max_line) {
            snprintf(reason, sizeof reason, "line longer than %zu bytes", max_line);
            cv_deadletter_put(s->svc->dl, source, ++s->rejected, reason, line,
                              max_line, true);
            /* a final answer when its id can be read: silence would have
             * ingest resend it (and this dead-letter it) for ever */
            char id[CV_ID_MAX + 1];
            if (cv_event_id_of(s->cfg->max_depth, line, len, id, sizeof id)) {
                char *t = cv_fmt("%s\t%s", id, reason);
                add_ack(s, src, true, t, strlen(t));
                free(t);
            }
            continue;
        }
        r = cv_store_add(st, line, len, reason, sizeof reason);
        if (r == CV_STORE_FAILED) {
            fail_batch(s, reason);
            return; /* the rest comes again with ingest's resend */
        }
        const char *id = cv_store_last_id(st);
        if (r == CV_STORE_REJECTED) {
            cv_deadletter_put(s->svc->dl, source, ++s->rejected, reason, line,
                              len, false);
            if (*id) {
                char *t = cv_fmt("%s\t%s", id, reason);
                for (char *p = t + strlen(id) + 1; *p; p++)
                    if (*p == '\t' || *p == '\n' || *p == '\r')
                        *p = ' ';
                add_ack(s, src, true, t, strlen(t));
                free(t);
            }
        } else {
            add_ack(s, src, false, id, strlen(id));
        }
        if (cv_store_pending(st) >= (size_t)s->cfg->batch_size ||
            s->nacks - s->committed >= (size_t)s->cfg->batch_size)
            commit_batch(s);
    }
}

/* --- control ---------------------------------------------------------- */

static cv_db *reader(server *s)
{
    if (!s->reader) {
        char err[1024];
        int code;
        s->reader = cv_db_open_reader(cv_db_path(s->svc->db), &code, err,
                                      sizeof err);
        if (!s->reader)
            cv_err("%s", err);
    }
    return s->reader;
}

static int collect(void *arg, const char *body, size_t len)
{
    json_error_t je;
    json_t *o = json_loadb(body, len, 0, &je);
    json_array_append_new(arg, o ? o : json_stringn(body, len));
    return 0;
}

static json_t *do_query(server *s, json_t *req)
{
    cv_query q = {.since = -1, .until = -1, .limit = QUERY_LIMIT};
    json_t *user = json_object_get(req, "user");
    json_t *kind = json_object_get(req, "kind");
    json_t *limit = json_object_get(req, "limit");
    if (!json_is_string(user) || json_string_length(user) == 0)
        return cv_control_error(NULL, 0, "query needs \"user\", a non-empty string");
    q.user = json_string_value(user);
    if (kind && !json_is_null(kind)) {
        if (!json_is_string(kind))
            return cv_control_error(NULL, 0, "\"kind\" must be a string");
        q.kind = json_string_value(kind);
    }
    if (!cv_ctxapi_time_arg(json_object_get(req, "since"), &q.since))
        return cv_control_error(NULL, 0, "\"since\" must be an RFC 3339 time or ms");
    if (!cv_ctxapi_time_arg(json_object_get(req, "until"), &q.until))
        return cv_control_error(NULL, 0, "\"until\" must be an RFC 3339 time or ms");
    if (limit && !json_is_null(limit)) {
        if (!json_is_integer(limit) || json_integer_value(limit) < 0)
            return cv_control_error(NULL, 0, "\"limit\" must be a number from 0 to %d",
                                  QUERY_MAX);
        q.limit = json_integer_value(limit);
    }
    if (q.limit > QUERY_MAX)
        q.limit = QUERY_MAX;
    q.oldest_first = json_is_true(json_object_get(req, "oldest_first"));
    cv_db *db = reader(s);
    if (!db)
        return cv_control_error(NULL, 0, "cannot open the database for reading");
    json_t *events = json_array();
    int rc = cv_query_query_each(db, s->svc->pol, s->svc->kr, &q, collect,
                                   events);
    if (rc) {
        json_decref(events);
        return rc == EX_CONFIG
            ? cv_control_error(NULL, 0, "query failed (status %d: the policy cannot "
                             "look up users); see store's log", EX_CONFIG)
            : cv_control_error(NULL, 0, "query failed (status %d); see store's log",
                             EX_IOERR);
    }
    return json_pack("{s:b, s:o}", "ok", 1, "events", events);
}

/* A reply holding decrypted fields (lib/ctx/ctxapi.h) is recorded in the
 * audit trail first (the maint path's audit op, in a transaction of its
 * own after the open batch); no entry, no decrypted reply. */
static json_t *audit_decrypted(server *s, json_t *req, json_t *reply)
{
    json_t *rows = json_object_get(reply, "events");
    if (!rows)
        rows = json_object_get(reply, "contexts");
    json_int_t n = rows ? (json_int_t)json_array_size(rows) : 1;
    const char *actor = json_string_value(json_object_get(req, "actor"));
    json_t *audit = json_pack("{s:s, s:s, s:s?, s:I, s:{s:s}, s:s}", "op", "audit",
                              "action", "decrypt-read", "subject",
                              json_string_value(json_object_get(req, "user")),
                              "rows", n, "detail", "op",
                              json_string_value(json_object_get(req, "op")),
                              "actor", actor ? actor : "control");
    json_t *done = commit_batch(s) < 0 ? NULL : cv_maint_do(&s->maint, audit);
    json_decref(audit);
    if (!done || !json_is_true(json_object_get(done, "ok"))) {
        json_decref(reply);
        reply = cv_control_error(CV_ERR_INTERNAL, 0, "cannot record the decrypting read "
                               "in the audit trail (%s); nothing decrypted returned",
                               done ? json_string_value(json_object_get(done, "error"))
                                  : "the open batch did not commit");
    }
    json_decref(done);
    return reply;
}

/* Count a failed request by its code (older ops' errors have none). */
static void count_error(server *s, json_t *reply)
{
    if (!reply || json_is_true(json_object_get(reply, "ok")))
        return;
    const char *code = json_string_value(json_object_get(reply, "code"));
    char label[64];
    snprintf(label, sizeof label, "code=%s", code ? code : "other");
    cv_metrics_add(s->mx, "ctxvault_control_errors_total", label, 1);
}

/* The counters into the report ctxvault-metrics gets. */
static void report(server *s, bool final)
{
    const cv_store_stats *st = cv_store_stats_get(s->svc->store);
    cv_metrics *m = s->mx;
    cv_metrics_set(m, "ctxvault_events_received_total", NULL,
                   (double)(st->inserted + st->duplicates + s->rejected));
    cv_metrics_set(m, "ctxvault_events_stored_total", NULL, (double)st->inserted);
    cv_metrics_set(m, "ctxvault_events_duplicate_total", NULL, (double)st->duplicates);
    cv_metrics_set(m, "ctxvault_acks_total", "kind=ack", (double)s->acked);
    cv_metrics_set(m, "ctxvault_acks_total", "kind=nak", (double)s->naked);
    cv_metrics_set(m, "ctxvault_commit_batches_total", NULL, (double)st->batches);
    cv_metrics_set(m, "ctxvault_commit_failures_total", NULL, (double)s->commit_failures);
    cv_metrics_set(m, "ctxvault_messages_malformed_total", NULL, (double)s->malformed);
    cv_metrics_set(m, "ctxvault_cache_lookups_total", "result=hit", (double)s->cache.hits);
    cv_metrics_set(m, "ctxvault_cache_lookups_total", "result=miss", (double)s->cache.misses);
    cv_metrics_set(m, "ctxvault_cache_puts_total", NULL, (double)s->maint.cache_puts);
    cv_metrics_set(m, "ctxvault_cache_deleted_total", NULL, (double)s->maint.cache_deleted);
    cv_metrics_set(m, "ctxvault_erasure_notify_failures_total", NULL,
                   (double)s->maint.notify_failures);
    cv_metrics_set(m, "ctxvault_pii_records_scrubbed_total", "when=arrival",
                   (double)st->scrubbed_on_arrival);
    cv_metrics_set(m, "ctxvault_rows_anonymised_total", "when=arrival",
                   (double)st->anonymised_on_arrival);
    cv_metrics_set(m, "ctxvault_rows_anonymised_total", "when=switch",
                   (double)st->rows_anonymised);
    char *wal = cv_fmt("%s-wal", cv_db_path(s->svc->db));
    cv_metrics_set(m, "ctxvault_wal_size_bytes", NULL, (double)cv_db_file_size(wal));
    free(wal);
    cv_metrics_set(m, "ctxvault_db_size_bytes", NULL,
                   (double)cv_db_file_size(cv_db_path(s->svc->db)));
    cv_metrics_set(m, "ctxvault_journal_batch", NULL, (double)cv_db_journal_batch(s->svc->db));
    cv_quota_figures qf;
    if (cv_quota_report(s->quota, &qf)) {
        cv_metrics_set(m, "ctxvault_storage_quota_bytes", NULL, (double)qf.quota);
        cv_metrics_set(m, "ctxvault_storage_quota_used_bytes", NULL, (double)qf.used);
        cv_metrics_set(m, "ctxvault_storage_quota_ratio", NULL, qf.ratio);
        cv_metrics_set(m, "ctxvault_storage_quota_archives_total", NULL,
                       (double)qf.archives);
        cv_metrics_set(m, "ctxvault_storage_quota_archive_failures_total", NULL,
                       (double)qf.archive_failures);
        cv_metrics_set(m, "ctxvault_storage_quota_notify_failures_total", NULL,
                       (double)qf.notify_failures);
    }
    int64_t made = cv_keyring_created_ms(s->svc->kr, cv_keyring_primary(s->svc->kr));
    if (made >= 0)
        cv_metrics_set(m, "ctxvault_key_rotation_age_seconds", NULL,
                       (double)(cv_now_ms() - made) / 1000.0);
    cv_health_report(m, s->cfg, cv_db_path(s->svc->db), s->svc->kr,
                     s->svc->pol, s->check_at_ms);
    /* the oldest row past its retention: one step down the expiry index */
    sqlite3_stmt *st_old = cv_db_stmt(s->svc->db,
        "SELECT min(expires_at) FROM events WHERE expires_at <= ?");
    if (st_old) {
        int64_t now = cv_now_ms();
        sqlite3_bind_int64(st_old, 1, now);
        double age = 0;
        if (sqlite3_step(st_old) == SQLITE_ROW &&
            sqlite3_column_type(st_old, 0) != SQLITE_NULL)
            age = (double)(now - sqlite3_column_int64(st_old, 0)) / 1000.0;
        sqlite3_reset(st_old);
        cv_metrics_set(m, "ctxvault_ttl_oldest_expired_age_seconds", NULL, age);
    }
    cv_sumpass_result *r = &s->sums_last;
    cv_metrics_set(m, "ctxvault_checksum_rows_checked_total", NULL, (double)r->rows);
    cv_metrics_set(m, "ctxvault_checksum_mismatches_total", NULL, (double)r->bad);
    if (r->state != CV_DBCHECK_RUNNING) {
        cv_metrics_set(m, "ctxvault_checksum_pass_last_completion_timestamp_seconds",
                       NULL, (double)r->done_at_ms / 1000.0);
        cv_metrics_set(m, "ctxvault_checksum_pass_last_ok", NULL,
                       r->state == CV_DBCHECK_OK ? 1 : 0);
    }
    /* until a commit succeeds again, nothing is acknowledged */
    if (s->failing || (s->failed_at && cv_mono_ms() - s->failed_at < FAIL_HOLD_MS))
        cv_metrics_health(m, false, s->last_failure);
    else if (*s->sums_failure)
        cv_metrics_health(m, false, s->sums_failure);
    else if (cv_quota_reason(s->quota))
        cv_metrics_health(m, false, cv_quota_reason(s->quota));
    else
        cv_metrics_health(m, true, s->check_ok ? NULL : "start check running");
    cv_metrics_publish(m, final);
}

static json_t *do_ping(server *s)
{
    const cv_store_stats *st = cv_store_stats_get(s->svc->store);
    json_t *r = json_pack(
        "{s:b, s:I, s:s, s:s, s:I, s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
        "ok", 1, "pid", (json_int_t)getpid(), "program", "ctxvault-store",
        "version", CV_VERSION, "uptime_ms",
        (json_int_t)(cv_mono_ms() - s->svc->started_ms), "check",
        s->check_ok ? "ok" : "running", "counters",
        "inserted", (json_int_t)st->inserted,
        "duplicates", (json_int_t)st->duplicates,
        "rejected", (json_int_t)s->rejected,
        "batches", (json_int_t)st->batches,
        "acked", (json_int_t)s->acked,
        "naked", (json_int_t)s->naked,
        "commit_failures", (json_int_t)s->commit_failures,
        "malformed", (json_int_t)s->malformed,
        "requests", (json_int_t)s->requests);
    json_object_set_new(r, "api", json_integer(3)); /* PROTOCOL.md, Versioning */
    const cv_sumpass_result *sr = &s->sums_last;
    json_object_set_new(r, "checksums", json_string(
        s->cfg->check_checksums != CV_CHECKSUMS_BACKGROUND ? "off"
        : sr->state == CV_DBCHECK_RUNNING ? "running"
        : sr->state == CV_DBCHECK_OK ? "ok" : "failed"));
    json_t *c = json_object_get(r, "counters");
    json_object_set_new(c, "rows_deleted", json_integer((json_int_t)s->maint.deleted));
    json_object_set_new(c, "users_erased", json_integer((json_int_t)s->maint.erased_users));
    json_object_set_new(c, "rectified", json_integer((json_int_t)s->maint.rectified));
    json_object_set_new(c, "rows_scrubbed", json_integer((json_int_t)s->maint.scrubbed));
    json_object_set_new(c, "scrubbed_on_arrival", json_integer((json_int_t)st->scrubbed_on_arrival));
    json_object_set_new(c, "audit_entries", json_integer((json_int_t)s->maint.audit_entries));
    return r;
}

/* --- the op table -------------------------------------------------------- */

static json_t *op_ping(void *s, cv_control_request *r)
{
    (void)r;
    return do_ping(s);
}

static json_t *op_query(void *s, cv_control_request *r)
{
    return do_query(s, r->req);
}

/* store's own: ping, and query (timed, with the reads) */
static const cv_control_family status_family = {
    (const cv_control_op[]){{"ping", CV_CONTROL_READ, op_ping, NULL},
                            {NULL, 0, NULL, NULL}}, 0};
static const cv_control_family query_family = {
    (const cv_control_op[]){{"query", CV_CONTROL_READ, op_query, NULL},
                            {NULL, 0, NULL, NULL}}, 0};

/* Each family's state, ready for a request: the reads get the read-only
 * connection, opened on first need. */
static void *server_state(server *s) { return s; }
static void *maint_state(server *s) { return &s->maint; }
static void *syncops_state(server *s) { return &s->syncops; }

static void *ctxops_state(server *s)
{
    s->ctxops.db = reader(s);
    s->ctxops.puts = s->maint.cache_puts;
    return &s->ctxops;
}

static void *ctxapi_state(server *s)
{
    s->api.db = reader(s);
    return &s->api;
}

static void *ctxwrite_state(server *s)
{
    s->wread.db = reader(s);
    return &s->wstate;
}

/* How store runs a family's ops. */
enum {
    WRITER = 1,      /* on the writer, after the open batch commits */
    TIMED = 2,       /* into ctxvault_query_latency_seconds */
    CHECKPOINT = 4,  /* then a checkpoint once the WAL is at its limit */
    STEPS = 8,       /* then one at a tenth of it: a long sweep must not
                        grow the WAL without bound, and small steps are
                        short pauses for the events waiting */
};

typedef struct {
    const cv_control_family *f;
    void *(*state)(server *s);
    unsigned how;
} family;

/* Every op store answers, each in one family: what dispatches a
 * request, what ctxvault-store --ops lists (doc/PROTOCOL.md, "The ops",
 * must match it: test_docs.sh) and the op labels of
 * ctxvault_requests_total. */
static const family families[] = {
    {&status_family, server_state, 0},
    {&query_family, server_state, TIMED},
    {&cv_ctxops_family, ctxops_state, 0},
    {&cv_ctxapi_family, ctxapi_state, TIMED},
    {&cv_ctxwrite_family, ctxwrite_state, WRITER | CHECKPOINT},
    /* a long sync applies page after page: keep the WAL bounded */
    {&cv_syncops_family, syncops_state, WRITER | CHECKPOINT},
    {&cv_maint_family, maint_state, WRITER | STEPS},
};
#define NFAMILIES (sizeof families / sizeof *families)

const cv_control_op *cv_store_serve_op(size_t i)
{
    for (size_t k = 0; k < NFAMILIES; k++)
        for (const cv_control_op *o = families[k].f->ops; o->name; o++)
            if (i-- == 0)
                return o;
    return NULL;
}

static const cv_control_op *find_op(const char *name, const family **in)
{
    for (size_t k = 0; name && k < NFAMILIES; k++) {
        const cv_control_op *o = cv_control_find_op(families[k].f, name);
        if (o) {
            *in = &families[k];
            return o;
        }
    }
    return NULL;
}

/* Count n requests under op; "other" for those that name none of the
 * table's, so the series stay the table's. */
static void count_request(server *s, const cv_control_op *op, double n)
{
    char label[96];
    snprintf(label, sizeof label, "op=%s", op ? op->name : "other");
    cv_metrics_add(s->mx, "ctxvault_requests_total", label, n);
}

/* The frames after a request's JSON, as blobs (at most a batch's rows). */
#define MAX_BLOBS 100000

static json_t *run_op(server *s, const family *fam, cv_control_request *r)
{
    /* a change runs in its own transaction, after the open batch */
    if ((fam->how & WRITER) && commit_batch(s) < 0)
        return cv_control_error(CV_ERR_INTERNAL, 0, "cannot commit the open "
                                "batch first");
    double t0 = cv_mono_s();
    json_t *reply = cv_control_run(fam->f, fam->state(s), r);
    if (fam->how & TIMED)
        cv_metrics_observe(s->mx, "ctxvault_query_latency_seconds", NULL,
                           cv_mono_s() - t0);
    if (r->decrypted)
        reply = audit_decrypted(s, r->req, reply);
    if (fam->how & CHECKPOINT)
        maybe_checkpoint(s, s->cfg->wal_autocheckpoint);
    else if (fam->how & STEPS)
        maybe_checkpoint(s, s->cfg->wal_autocheckpoint / 10);
    return reply;
}

static json_t *answer_req(server *s, zframe_t *ver, zframe_t *body,
                          zmsg_t *rest)
{
    if (!frame_is(ver, CV_WIRE_VERSION) || !body || zmsg_size(rest) > MAX_BLOBS) {
        count_request(s, NULL, 1);
        return cv_control_error(CV_ERR_BAD_REQUEST, 0, "not a %s request: expected "
                              "[\"CTXV1\"][JSON][blob]...", CV_WIRE_VERSION);
    }
    json_error_t je;
    json_t *req = json_loadb((const char *)zframe_data(body), zframe_size(body),
                             JSON_REJECT_DUPLICATES, &je);
    if (!req) {
        count_request(s, NULL, 1);
        return cv_control_error(CV_ERR_BAD_REQUEST, 0, "request is not valid JSON: %s",
                              je.text);
    }
    json_t *reply;
    const char *name = json_string_value(json_object_get(req, "op"));
    const family *fam = NULL;
    const cv_control_op *op = json_is_object(req) ? find_op(name, &fam) : NULL;
    count_request(s, op, 1);
    if (!json_is_object(req) || !name) {
        reply = cv_control_error(CV_ERR_BAD_REQUEST, 0, "request has no \"op\"");
    } else if (!op) {
        reply = cv_control_error(CV_ERR_UNKNOWN_OP, 0, "unknown op '%s' (see "
                               "doc/PROTOCOL.md)", name);
    } else {
        size_t n = zmsg_size(rest), i = 0;
        cv_blob *blobs = n ? cv_malloc(n * sizeof *blobs) : NULL;
        for (zframe_t *f = zmsg_first(rest); f; f = zmsg_next(rest), i++)
            blobs[i] = (cv_blob){zframe_data(f), zframe_size(f)};
        cv_control_request r = {.op = op, .req = req, .len = zframe_size(body),
                                .blobs = blobs, .nblobs = n};
        reply = run_op(s, fam, &r);
        free(blobs);
    }
    json_decref(req);
    return reply;
}

static json_t *answer(server *s, zframe_t *ver, zframe_t *body, zmsg_t *rest)
{
    json_t *reply = answer_req(s, ver, body, rest);
    count_error(s, reply);
    return reply;
}

/* One request: [identity][""]?["CTXV1"][JSON][blob]... -> the same
 * envelope, ["CTXV1"][reply JSON]. */
static void take_request(server *s)
{
    zmsg_t *req = zmsg_recv(s->ctl);
    if (!req)
        return;
    s->requests++;
    zframe_t *ident = zmsg_pop(req);
    zframe_t *delim = NULL;
    if (zmsg_first(req) && zframe_size(zmsg_first(req)) == 0)
        delim = zmsg_pop(req); /* a REQ peer's envelope */
    zframe_t *ver = zmsg_pop(req);
    zframe_t *body = zmsg_pop(req);
    json_t *reply = answer(s, ver, body, req);
    char *text = cv_ctxapi_reply_dump(reply);
    json_decref(reply);
    zmsg_t *out = zmsg_new();
    zmsg_append(out, &ident);
    if (delim)
        zmsg_append(out, &delim);
    zmsg_addstr(out, CV_WIRE_VERSION);
    zmsg_addstr(out, text ? text : "{\"ok\":false,\"error\":\"out of memory\"}");
    free(text);
    zmsg_send(&out, s->ctl); /* a peer gone meanwhile: dropped */
    zframe_destroy(&ver);
    zframe_destroy(&body);
    zmsg_destroy(&req);
}

/* A sync device keeps its records with the group's key; a relay keeps
 * them without one. */
static int open_sync(server *s, char *err, size_t errlen)
{
    const cv_config *cfg = s->cfg;
    if (!cfg->sync_device && !cfg->sync_relay)
        return 0;
    unsigned char key[CV_SYNC_KEY_BYTES];
    if (cfg->sync_device && cv_synckeys_load_e2e(cfg, key, err, errlen) < 0)
        return -1;
    s->sync = cv_syncstore_new(s->svc->db, cfg->sync_device,
                               cfg->sync_device ? key : NULL,
                               cv_policy_merge_rules(s->svc->pol));
    sodium_memzero(key, sizeof key);
    return 0;
}

/* --- the loop ---------------------------------------------------------- */

/* Note the start check's outcome. -1 when it found corruption. */
static int watch_check(server *s)
{
    cv_store_service *svc = s->svc;
    if (s->check_ok || !svc->check)
        return 0;
    const char *finding;
    int64_t ms;
    int st = cv_dbcheck_state(svc->check, &finding, &ms);
    if (st == CV_DBCHECK_RUNNING)
        return 0;
    if (st == CV_DBCHECK_FAILED) {
        cv_err("database %s failed its start check (%s); refusing to write "
               "to it, %zu acknowledgements withheld: restore it from a backup "
               "with 'ctxvault-backup restore'", cv_db_path(svc->db), finding,
               s->nacks);
        return -1;
    }
    if (!svc->quiet)
        cv_info("start check of %s passed in %lld ms", cv_db_path(svc->db),
                (long long)ms);
    s->check_ok = true;
    s->check_at_ms = cv_now_ms();
    cv_dbcheck_destroy(&svc->check);
    publish(s);
    return 0;
}

/* The background checksum pass: started once the start check passed (the
 * two would compete for the disk, and acks wait for the start check), and
 * watched until it ends. Failing rows degrade health, named in the log and
 * the reason; the service goes on. */
static void watch_sums(server *s)
{
    cv_store_service *svc = s->svc;
    if (!s->check_ok || s->cfg->check_checksums != CV_CHECKSUMS_BACKGROUND)
        return;
    if (!s->sums_started) {
        s->sums_started = true;
        s->sums = cv_dbcheck_pass_start(cv_db_path(svc->db), svc->kr,
                                   s->cfg->checksum_rate);
        if (!s->sums) {
            snprintf(s->sums_failure, sizeof s->sums_failure,
                     "cannot start the background checksum pass: %s",
                     strerror(errno));
            cv_err("%s", s->sums_failure);
        }
        return;
    }
    if (!s->sums)
        return;
    cv_sumpass_result *r = &s->sums_last;
    cv_dbcheck_pass_state(s->sums, r);
    if (r->state == CV_DBCHECK_RUNNING)
        return;
    const char *db = cv_db_path(svc->db);
    if (r->state == CV_DBCHECK_OK) {
        if (!svc->quiet)
            cv_info("checksum pass of %s: all %lld rows pass, in %lld ms", db,
                    (long long)r->rows, (long long)r->ms);
    } else if (r->error) {
        snprintf(s->sums_failure, sizeof s->sums_failure,
                 "the background checksum pass of %s failed after %lld rows "
                 "(%lld bad): %s", db, (long long)r->rows, (long long)r->bad,
                 r->error);
        cv_err("%s", s->sums_failure);
    } else {
        char ids[512] = "";
        size_t len = 0;
        for (int i = 0; i < r->named; i++) {
            cv_err("row %lld (id %s): %s", (long long)r->seq[i], r->id[i],
                   r->why[i]);
            if (len < sizeof ids)
                len += (size_t)snprintf(ids + len, sizeof ids - len, "%s%s",
                                        i ? ", " : "", r->id[i]);
        }
        snprintf(s->sums_failure, sizeof s->sums_failure,
                 "%lld of %lld rows of %s fail their keyed checksum (ids %s%s): "
                 "changed outside ctxvault; run 'ctxvault verify', and restore "
                 "with 'ctxvault-backup restore'", (long long)r->bad,
                 (long long)r->rows, db, ids, r->bad > r->named ? ", ..." : "");
        cv_err("%s", s->sums_failure);
    }
    /* the figures stay; the strings go with the pass */
    r->error = NULL;
    r->named = 0;
    cv_dbcheck_pass_destroy(&s->sums);
}

int cv_store_serve(cv_store_service *svc)
{
    const cv_config *cfg = svc->cfg;
    server s = {.svc = svc, .cfg = cfg, .check_ok = svc->check == NULL,
                .maint = {.db = svc->db, .kr = svc->kr, .pol = svc->pol,
                          .cfg = cfg,
                          .ds = svc->ds, .store = svc->store}};
    /* while the start check runs, acks wait; this many, then reading waits */
    s.held_max = (size_t)cfg->batch_size * 4 > 40000 ? (size_t)cfg->batch_size * 4
                                                     : 40000;
    char err[512];
    int status = 0;
    /* checkpoints are run by commit_batch, after the acks */
    sqlite3_wal_hook(cv_db_handle(svc->db), wal_hook, &s);
    cv_db_on_checkpoint(svc->db, count_checkpoint, &s);
    if (open_sync(&s, err, sizeof err) < 0) {
        cv_err("%s", err);
        status = EX_CONFIG;
        goto out;
    }
    s.write = cv_ctxwrite_new(&(cv_ctxwrite_opts){
        .store = svc->store, .db = svc->db, .pol = svc->pol, .kr = svc->kr,
        .ds = svc->ds, .dl = svc->dl, .max_depth = cfg->max_depth,
        .sync = s.sync});
    s.syncops = (cv_syncops){.sync = s.sync, .write = s.write,
                             .device = cfg->sync_device,
                             .allow_fields = cfg->control_decrypt};
    s.maint.sync = cfg->sync_device ? s.sync : NULL;
    s.ctxops = (cv_ctxops){.cache = &s.cache};
    s.api = (cv_ctxapi){.pol = svc->pol, .kr = svc->kr,
                        .allow_decrypt = cfg->control_decrypt};
    s.wread = (cv_ctxapi){.pol = svc->pol, .kr = svc->kr};
    s.wstate = (cv_ctxwrite_state){.w = s.write, .read = &s.wread};
    cv_sock_init();
    s.mx = cv_metrics_new(cfg, "ctxvault-store", true);
    s.quota = cv_quota_new(cfg, svc->db, svc->quiet);
    cv_deadletter_set_metrics(svc->dl, s.mx);
    const cv_recovery *rec = &svc->recovery;
    if (rec->wal_present || rec->replayed)
        cv_metrics_add(s.mx, "ctxvault_recovery_attempts_total", NULL, 1);
    cv_metrics_observe(s.mx, "ctxvault_recovery_duration_seconds", NULL,
                       (double)rec->duration_ms / 1000.0);
    /* what SQLite replayed from the WAL, and what the journal added */
    cv_metrics_set(s.mx, "ctxvault_recovery_transactions_replayed", NULL,
                   (double)(rec->wal_commits + rec->replayed));
    /* every metric from the start, at 0 until it moves */
    cv_metrics_add(s.mx, "ctxvault_wal_checkpoints_total", NULL, 0);
    for (size_t i = 0; cv_store_serve_op(i); i++)
        count_request(&s, cv_store_serve_op(i), 0);
    count_request(&s, NULL, 0);
    cv_metrics_set(s.mx, "ctxvault_checksum_rows_checked_total", NULL, 0);
    cv_metrics_set(s.mx, "ctxvault_checksum_mismatches_total", NULL, 0);
    cv_metrics_set(s.mx, "ctxvault_checksum_pass_last_completion_timestamp_seconds",
                   NULL, 0);
    cv_metrics_set(s.mx, "ctxvault_checksum_pass_last_ok", NULL, 0);
    if (rec->checkpointed)
        count_checkpoint(&s, rec->checkpoint_s, SQLITE_OK);
    cv_metrics_set(s.mx, "ctxvault_key_version", NULL,
                   (double)cv_keyring_primary(svc->kr));
    s.pull = cv_sock_bind_hwm(cfg, ZMQ_PULL, cfg->ep_store, PULL_HWM, err,
                              sizeof err);
    if (s.pull)
        s.pub = cv_sock_bind_hwm(cfg, ZMQ_PUB, cfg->ep_acks, PUB_HWM, err,
                                 sizeof err);
    if (s.pub)
        s.ctl = cv_sock_bind(cfg, ZMQ_ROUTER, cfg->ep_control, err, sizeof err);
    if (!s.ctl) {
        cv_err("%s", err);
        status = EX_UNAVAILABLE;
        goto out;
    }
    if (!svc->quiet)
        cv_info("ready in %lld ms: events %s, acks %s, control %s%s",
                (long long)(cv_mono_ms() - svc->started_ms), cfg->ep_store,
                cfg->ep_acks, cfg->ep_control,
                svc->check ? "; checking the database meanwhile" : "");

    while (!cv_stop_requested) {
        if (watch_check(&s) < 0) {
            status = EX_DATAERR;
            break;
        }
        watch_sums(&s);
        int64_t now = cv_mono_ms();
        bool reading = now >= s.pause_until && s.nacks < s.held_max;
        long timeout = POLL_MS;
        if (batch_open(&s))
            timeout = s.deadline > now ? (long)(s.deadline - now) : 0;
        if (!s.check_ok && timeout > 20)
            timeout = 20; /* notice the check's end soon */
        if (!reading && now < s.pause_until && s.pause_until - now < timeout)
            timeout = (long)(s.pause_until - now);
        zmq_pollitem_t items[2] = {
            {zsock_resolve(s.ctl), 0, ZMQ_POLLIN, 0},
            {zsock_resolve(s.pull), 0, ZMQ_POLLIN, 0},
        };
        int rc = zmq_poll(items, reading ? 2 : 1, timeout);
        if (rc < 0 && errno != EINTR) {
            cv_err("cannot poll the sockets: %s", zmq_strerror(errno));
            status = EX_OSERR;
            break;
        }
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN))
            for (int i = 0; i < BURST && (zsock_events(s.ctl) & ZMQ_POLLIN); i++)
                take_request(&s);
        if (rc > 0 && reading && (items[1].revents & ZMQ_POLLIN)) {
            for (int i = 0; i < BURST && !cv_stop_requested &&
                            s.nacks < s.held_max &&
                            (zsock_events(s.pull) & ZMQ_POLLIN); i++) {
                zmsg_t *m = zmsg_recv(s.pull);
                if (!m)
                    break;
                take_message(&s, m);
                zmsg_destroy(&m);
            }
        }
        /* group commit that adapts: a batch grows while events keep
         * coming (up to batch_size or batch_time), and is committed as
         * soon as nothing more is waiting, so a trickle is acknowledged
         * in milliseconds and a flood in large transactions */
        if (batch_open(&s) &&
            (cv_mono_ms() >= s.deadline ||
             (cfg->commit_when_idle && !(zsock_events(s.pull) & ZMQ_POLLIN))))
            commit_batch(&s);
        cv_quota_poll(s.quota, false);
        if (cv_metrics_due(s.mx))
            report(&s, false);
    }
    if (status == EX_DATAERR) {
        cv_store_rollback(svc->store);
    } else if (!status) {
        /* a clean stop: what was read is committed and acknowledged */
        commit_batch(&s);
        if (!s.check_ok && s.nacks)
            cv_warn("stopping before the start check finished: %zu "
                    "acknowledgements withheld (ingest resends; the ids dedupe)",
                    s.nacks);
    }
out:
    /* the pass reads: stopped first, so the last checkpoint can empty the WAL */
    cv_dbcheck_pass_destroy(&s.sums);
    /* the checkpoint of a clean stop, here so the final report counts it
     * (cv_db_close finds the WAL empty then) */
    cv_db_checkpoint(svc->db, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    if (s.ctl)
        report(&s, true);
    cv_deadletter_set_metrics(svc->dl, NULL);
    cv_metrics_destroy(&s.mx);
    cv_quota_destroy(&s.quota);
    sqlite3_wal_hook(cv_db_handle(svc->db), NULL, NULL); /* s goes now */
    cv_db_on_checkpoint(svc->db, NULL, NULL);
    drop_acks(&s, 0);
    free(s.acks);
    free(s.texts);
    cv_ctxwrite_destroy(&s.write);
    cv_syncstore_destroy(&s.sync);
    cv_db_close(&s.reader);
    if (s.pub)
        zsock_set_linger(s.pub, 1000); /* let the last acks leave */
    zsock_destroy(&s.pull);
    zsock_destroy(&s.pub);
    zsock_destroy(&s.ctl);
    cv_sock_shutdown();
    if (!svc->quiet && status != EX_UNAVAILABLE) {
        const cv_store_stats *st = cv_store_stats_get(svc->store);
        cv_info("stopped: %llu stored, %llu duplicates, %llu rejected; %llu "
                "acked, %llu naked; %llu failed commits, %llu malformed "
                "messages, %llu requests",
                (unsigned long long)st->inserted,
                (unsigned long long)st->duplicates,
                (unsigned long long)s.rejected, (unsigned long long)s.acked,
                (unsigned long long)s.naked,
                (unsigned long long)s.commit_failures,
                (unsigned long long)s.malformed, (unsigned long long)s.requests);
    }
    return status;
}
