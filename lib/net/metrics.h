/* metrics.h - what each program counts, and how it tells ctxvault-metrics.
 *
 * Every metric ctxvault exports is in one catalogue (cv_metric_defs): its
 * Prometheus name (prefix ctxvault_, unit suffixes, _total on counters),
 * type and help. A program keeps series of them (a metric and its labels)
 * in a cv_metrics, and publishes a snapshot of all of them, as JSON, on a
 * ZeroMQ PUB socket connected to [pipeline] metrics, every interval and
 * when it stops:
 *
 *   ["CTXV1"]["METRICS"][{"program":P,"pid":N,"at":MS,"service":bool,
 *     "final":bool,"health":{"ok":bool,"reason":S},"series":[
 *       {"name":N,"labels":{...},"value":V} |
 *       {"name":N,"labels":{...},"buckets":[n,...],"sum":S,"count":C}]}]
 *
 * PUB never blocks: with no ctxvault-metrics listening, or a slow one,
 * snapshots are dropped, never waited for. Counters are totals since the
 * program started (Prometheus handles the restarts). */
#ifndef CV_METRICS_H
#define CV_METRICS_H

#include "base/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { CV_COUNTER, CV_GAUGE, CV_HISTOGRAM } cv_metric_type;

typedef struct {
    const char *name;
    cv_metric_type type;
    const char *help;
    const double *bounds;   /* a histogram's bucket bounds (NULL: seconds) */
    /* the programs that export it, space-separated (ctxvault-metrics:
     * derived from the reports) */
    const char *owners;
    /* the series each owner has from its start, at 0: label sets
     * separated by ';' (NULL: one series without labels; "": none until
     * the program knows the label's values, cv_metrics_start_labels) */
    const char *start;
} cv_metric_def;

/* The catalogue, ending with a NULL name. */
extern const cv_metric_def cv_metric_defs[];
const cv_metric_def *cv_metrics_find(const char *name);
/* Is program one of d's owners? */
bool cv_metrics_owned_by(const cv_metric_def *d, const char *program);

/* The label for a rejection's reason, as the programs word them: one of
 * a fixed set (too_long, nul_byte, too_deep, duplicate_key, not_object,
 * bad_utf8, invalid_json, bad_timestamp, bad_field, bad_profile,
 * not_protected, policy, invalid_event), so the series stay few. */
const char *cv_metrics_reject_class(const char *reason);

/* Upper bounds of a histogram's buckets, ascending, CV_BUCKETS of them
 * (+Inf comes after): seconds unless the metric names its own. */
#define CV_BUCKETS 14
extern const double cv_metric_buckets[CV_BUCKETS];
const double *cv_metrics_bounds(const cv_metric_def *d);

typedef struct cv_metrics cv_metrics;

/* Publish to [pipeline] metrics every [metrics] interval (cfg NULL:
 * keep the series, publish nothing); service: a long-running program
 * whose silence is a problem (not a command that ends). Every metric
 * the catalogue says program owns has its series from here, at 0. */
cv_metrics *cv_metrics_new(const cv_config *cfg, const char *program,
                           bool service);
/* The metrics of the program labelled by a value only it knows (a sync
 * peer): their series with labels, at 0. */
void cv_metrics_start_labels(cv_metrics *m, const char *labels);
/* The final snapshot, then the socket goes. */
void cv_metrics_destroy(cv_metrics **p);

/* Set a counter or gauge. labels: NULL, or "key=value" pairs separated by
 * commas (values without commas or quotes). An unknown name is a bug: it
 * is logged once and dropped. */
void cv_metrics_set(cv_metrics *m, const char *name, const char *labels,
                    double value);
void cv_metrics_add(cv_metrics *m, const char *name, const char *labels,
                    double delta);
/* Count one observation (in the histogram's unit) into a histogram. */
void cv_metrics_observe(cv_metrics *m, const char *name, const char *labels,
                        double value);
/* Health as the program sees it: ok, or a reason (copied). */
void cv_metrics_health(cv_metrics *m, bool ok, const char *reason);

/* Has the interval passed since the last snapshot? (Then set what
 * changed and publish.) tick does both: publishes when due. */
bool cv_metrics_due(const cv_metrics *m);
bool cv_metrics_tick(cv_metrics *m);
void cv_metrics_publish(cv_metrics *m, bool final);

/* The snapshot as the wire carries it (a jansson json_t *, to free). */
void *cv_metrics_snapshot(cv_metrics *m, bool final);

#endif
