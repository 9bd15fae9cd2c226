/* test_metrics.c - the metric catalogue's names, the classes of rejection
 * reasons, and the Prometheus text rendered from a program's report. */
#include "fixtures.h"
#include "harness.h"

#include "net/collect.h"
#include "base/event.h"
#include "net/metrics.h"
#include "base/util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

TEST(the_catalogue_names_follow_prometheus_style)
{
    int n = 0;
    for (const cv_metric_def *d = cv_metric_defs; d->name; d++, n++) {
        CHECK(strncmp(d->name, "ctxvault_", 9) == 0);
        CHECK(strspn(d->name, "abcdefghijklmnopqrstuvwxyz_") == strlen(d->name));
        CHECK(d->help && *d->help && ends_with(d->help, "."));
        if (d->type == CV_COUNTER)
            CHECK(ends_with(d->name, "_total"));
        else
            CHECK(!ends_with(d->name, "_total"));
        if (d->type == CV_HISTOGRAM) /* a unit, and buckets in it */
            CHECK(d->bounds ? ends_with(d->name, "_events")
                            : ends_with(d->name, "_seconds"));
        for (int b = 1; b < CV_BUCKETS; b++)
            CHECK(cv_metrics_bounds(d)[b] > cv_metrics_bounds(d)[b - 1]);
        CHECK(cv_metrics_find(d->name) == d); /* no name twice */
    }
    CHECK(n > 30);
    /* the P2.4 plan's, every one */
    static const char *const seed[] = {
        "ctxvault_wal_size_bytes", "ctxvault_wal_checkpoints_total",
        "ctxvault_wal_checkpoint_duration_seconds",
        "ctxvault_ttl_records_deleted_total", "ctxvault_ttl_cleanup_duration_seconds",
        "ctxvault_ttl_records_expired", "ctxvault_pii_records_scrubbed_total",
        "ctxvault_pii_scrubbing_duration_seconds", "ctxvault_pii_fields_scrubbed_total",
        "ctxvault_recovery_attempts_total", "ctxvault_recovery_duration_seconds",
        "ctxvault_recovery_transactions_replayed"};
    for (size_t i = 0; i < sizeof seed / sizeof *seed; i++)
        CHECK(cv_metrics_find(seed[i]) != NULL);
}

/* Every reason ingest gives a bad line maps to a class of its own. */
TEST(every_rejection_reason_has_a_class)
{
    static const struct { const char *line, *cls; } bad[] = {
        {"{\"kind\":\"k\",\"user_id\":\"u\"", "invalid_json"},
        {"[1,2]", "not_object"},
        {"{\"kind\":\"k\",\"kind\":\"j\",\"user_id\":\"u\"}", "duplicate_key"},
        {"{\"user_id\":\"u\"}", "bad_field"},
        {"{\"kind\":\"k\"}", "bad_field"},
        {"{\"kind\":\"k\",\"user_id\":\"u\",\"type\":3}", "bad_field"},
        {"{\"kind\":\"k\",\"user_id\":\"u\",\"ts\":\"yesterday\"}", "bad_timestamp"},
        {"{\"kind\":\"k\",\"user_id\":\"u\",\"ts\":5}", "bad_timestamp"},
        {"{\"kind\":\"profile\",\"user_id\":\"u\",\"privacy_level\":\"x\"}", "bad_profile"},
        {"{\"kind\":\"k\",\"user_id\":\"u\",\"q\":\"\xff\"}", "bad_utf8"},
        {"{\"kind\":\"k\",\"user_id\":\"u\",\"q\":\"a\\u0000b\"}", "nul_byte"},
        {"{\"a\":{\"a\":{\"a\":{\"a\":1}}},\"kind\":\"k\",\"user_id\":\"u\"}", "too_deep"},
    };
    cv_event_rules r = {.max_depth = 3};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char reason[256], *out = NULL;
        size_t n;
        int rc = cv_event_normalise(&r, bad[i].line, strlen(bad[i].line), 0,
                                    &out, &n, reason, sizeof reason);
        free(out);
        CHECK_INT(rc, -1);
        CHECK_STR(cv_metrics_reject_class(reason), bad[i].cls);
    }
    CHECK_STR(cv_metrics_reject_class("line longer than 1048576 bytes"), "too_long");
    CHECK_STR(cv_metrics_reject_class("NUL byte in line"), "nul_byte");
    CHECK_STR(cv_metrics_reject_class("\"user_id\" is not pseudonymised: events must "
                              "pass through ctxvault-encrypt before store"),
              "not_protected");
    CHECK_STR(cv_metrics_reject_class("something new"), "invalid_event");
}

TEST(a_report_renders_as_prometheus_text)
{
    cv_metrics *m = cv_metrics_new(NULL, "ctxvault-store", true);
    cv_metrics_set(m, "ctxvault_events_stored_total", NULL, 42);
    cv_metrics_add(m, "ctxvault_events_rejected_total", "reason=bad_utf8", 2);
    cv_metrics_add(m, "ctxvault_events_rejected_total", "reason=bad_utf8", 1);
    cv_metrics_observe(m, "ctxvault_query_latency_seconds", NULL, 0.003);
    cv_metrics_observe(m, "ctxvault_query_latency_seconds", NULL, 30);
    cv_metrics_health(m, false, "a commit failed");
    json_t *snap = cv_metrics_snapshot(m, false);
    char *text = json_dumps(snap, JSON_COMPACT);
    json_decref(snap);
    cv_metrics_destroy(&m);

    cv_collect *c = cv_collect_new(10000, "ctxvault-store ctxvault-scrub");
    CHECK_INT(cv_collect_take(c, text, strlen(text), 1000), 0);
    CHECK_INT(cv_collect_take(c, "{\"no\":1}", 8, 1000), -1);
    free(text);
    char *p = cv_collect_prometheus(c, 2000);
    CHECK(strstr(p, "# TYPE ctxvault_events_stored_total counter\n"
                    "ctxvault_events_stored_total{program=\"ctxvault-store\","
                    "mode=\"service\"} 42\n"));
    CHECK(strstr(p, "ctxvault_events_rejected_total{program=\"ctxvault-store\","
                    "mode=\"service\",reason=\"bad_utf8\"} 3\n"));
    /* cumulative buckets: 0.003 s falls in le=0.005, 30 s only in +Inf */
    CHECK(strstr(p, "ctxvault_query_latency_seconds_bucket{program=\"ctxvault-store\","
                    "mode=\"service\",le=\"0.0025\"} 0\n"));
    CHECK(strstr(p, "le=\"0.005\"} 1\n"));
    CHECK(strstr(p, "le=\"10\"} 1\n"));
    CHECK(strstr(p, "le=\"+Inf\"} 2\n"));
    CHECK(strstr(p, "ctxvault_query_latency_seconds_count{program=\"ctxvault-store\","
                    "mode=\"service\"} 2\n"));
    CHECK(strstr(p, "ctxvault_up{program=\"ctxvault-store\",mode=\"service\"} 1\n"));
    CHECK(strstr(p, "ctxvault_metrics_reports_malformed_total 1\n"));
    free(p);
    json_t *h = cv_collect_health(c, 2000);
    CHECK_STR(json_string_value(json_object_get(h, "status")), "degraded");
    CHECK_INT(json_array_size(json_object_get(h, "reasons")), 2);
    CHECK_STR(json_string_value(json_array_get(json_object_get(h, "reasons"), 0)),
              "ctxvault-store: a commit failed");
    json_decref(h);
    /* silent past stale_ms: down */
    p = cv_collect_prometheus(c, 20000);
    CHECK(strstr(p, "ctxvault_up{program=\"ctxvault-store\",mode=\"service\"} 0\n"));
    free(p);
    cv_collect_destroy(&c);
    CHECK(c == NULL);
}

/* A report of program P (pid) with the series given as JSON. */
static void take(cv_collect *c, const char *program, int pid, const char *series,
                 int64_t at)
{
    char *text = cv_fmt("{\"program\":\"%s\",\"pid\":%d,\"at\":0,\"service\":true,"
                        "\"final\":false,\"health\":{\"ok\":true},\"series\":%s}",
                        program, pid, series);
    CHECK_INT(cv_collect_take(c, text, strlen(text), at), 0);
    free(text);
}

TEST(the_health_record_aggregates_sync_and_counts_rejections_over_its_window)
{
    cv_collect *c = cv_collect_new(10000, "ctxvault-store");
    cv_collect_anomaly(c, 5000, 50, 10);
    take(c, "ctxvault-store", 7,
         "[{\"name\":\"ctxvault_events_stored_total\",\"labels\":{},\"value\":4}]", 1000);
    json_t *r = cv_collect_record(c, 1000);
    CHECK(json_is_null(json_object_get(json_object_get(r, "meta"), "last_sync")));
    CHECK(json_object_get(json_object_get(r, "unavailable"), "sync"));
    json_decref(r);
    /* two peers: 3 of 4 exchanges and 1 of 4 succeeded: 50% */
    take(c, "ctxvault-sync", 8,
         "[{\"name\":\"ctxvault_sync_attempts_total\",\"labels\":{\"peer\":\"a\"},\"value\":4},"
         "{\"name\":\"ctxvault_sync_failures_total\",\"labels\":{\"peer\":\"a\"},\"value\":1},"
         "{\"name\":\"ctxvault_sync_attempts_total\",\"labels\":{\"peer\":\"b\"},\"value\":4},"
         "{\"name\":\"ctxvault_sync_failures_total\",\"labels\":{\"peer\":\"b\"},\"value\":3},"
         "{\"name\":\"ctxvault_sync_last_success_timestamp_seconds\",\"labels\":{\"peer\":\"a\"},\"value\":1796000000},"
         "{\"name\":\"ctxvault_sync_last_success_timestamp_seconds\",\"labels\":{\"peer\":\"b\"},\"value\":1796000060}]",
         1100);
    /* 12 rejected by a command, 4 stored before: 12 of 16 */
    take(c, "ctxvault-ingest", 9,
         "[{\"name\":\"ctxvault_events_rejected_total\",\"labels\":{\"reason\":\"invalid_json\"},\"value\":12}]",
         1200);
    r = cv_collect_record(c, 1300);
    json_t *rel = json_object_get(r, "reliability"), *an =
        json_object_get(json_object_get(r, "security"), "anomaly");
    CHECK(json_number_value(json_object_get(rel, "sync_success_rate")) == 50.0);
    CHECK_STR(json_string_value(json_object_get(json_object_get(r, "meta"), "last_sync")),
              "2026-11-30T00:54:20.000Z");
    CHECK(json_is_true(json_object_get(an, "detected")));
    CHECK(json_number_value(json_object_get(an, "events")) == 16);
    CHECK_STR(json_string_value(json_object_get(r, "status")), "degraded");
    json_decref(r);
    char *p = cv_collect_prometheus(c, 1300);
    CHECK(strstr(p, "\nctxvault_anomaly 1\n"));
    CHECK(strstr(p, "\nctxvault_sync_success_overall_ratio 0.5\n"));
    CHECK(strstr(p, "\nctxvault_events_rejected_window_ratio 0.75\n"));
    free(p);
    /* the same process reporting the same totals adds nothing; once the
     * window has passed, the anomaly is gone */
    take(c, "ctxvault-ingest", 9,
         "[{\"name\":\"ctxvault_events_rejected_total\",\"labels\":{\"reason\":\"invalid_json\"},\"value\":12}]",
         3000);
    r = cv_collect_record(c, 6300);
    an = json_object_get(json_object_get(r, "security"), "anomaly");
    CHECK(json_is_false(json_object_get(an, "detected")));
    CHECK(json_number_value(json_object_get(an, "events")) == 0);
    json_decref(r);
    /* a new process of the same program counts from 0 */
    take(c, "ctxvault-ingest", 10,
         "[{\"name\":\"ctxvault_events_rejected_total\",\"labels\":{},\"value\":11}]", 7000);
    r = cv_collect_record(c, 7000);
    an = json_object_get(json_object_get(r, "security"), "anomaly");
    CHECK(json_is_true(json_object_get(an, "detected")));
    CHECK(json_number_value(json_object_get(an, "rejected")) == 11);
    json_decref(r);
    cv_collect_destroy(&c);
}
