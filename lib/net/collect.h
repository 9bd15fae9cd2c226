/* collect.h - what ctxvault-metrics keeps of the programs' reports
 * (metrics.h), and the three views it serves: Prometheus text, health as
 * JSON, and a short status page for people.
 *
 * The newest report of each program is kept: a service (a supervised
 * program) by its name, a command that ends (ctxvault-ingest FILE,
 * ctxvault-ttl-sweep --once, ctxvault-backup create) by its name too,
 * labelled mode="command". Health is degraded while an expected service
 * has not reported, has been silent longer than stale_ms, has stopped,
 * or says it is not ok. */
#ifndef CV_COLLECT_H
#define CV_COLLECT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cv_collect cv_collect;

/* expect: the services health waits for, space-separated (NULL: none). */
cv_collect *cv_collect_new(int64_t stale_ms, const char *expect);
void cv_collect_destroy(cv_collect **p);

/* The instance served (its id and home): in /health, the health record
 * and /status, so a reader can tell two instances on one host apart. */
void cv_collect_instance(cv_collect *c, const char *id, const char *home);

/* Take one report (the JSON of a METRICS message) received at now_ms.
 * 0, or -1 when it is not a report (counted, and said once). */
int cv_collect_take(cv_collect *c, const char *json, size_t len, int64_t now_ms);

/* Prometheus text exposition format 0.0.4 (malloc'ed). */
char *cv_collect_prometheus(cv_collect *c, int64_t now_ms);
/* {"status":"ok"|"degraded","instance","home","reasons":[...],
 * "programs":{P:{...}}} */
json_t *cv_collect_health(cv_collect *c, int64_t now_ms);
/* Rejections are counted over window_ms: more than percent of the events
 * stored or rejected in it (at least min_events) is an anomaly, a health
 * reason (default 60 s, 50%, 20). */
void cv_collect_anomaly(cv_collect *c, int64_t window_ms, int percent,
                        int64_t min_events);
/* The health record: {"status","reasons","capacity":{...},
 * "performance":{...},"reliability":{...},"security":{...},
 * "meta":{"last_sync"},"unavailable":{FIELD:why}} (OPERATIONS.md,
 * Monitoring). */
json_t *cv_collect_record(cv_collect *c, int64_t now_ms);
/* A few lines for a terminal (malloc'ed): health, each program, the
 * health record. */
char *cv_collect_status(cv_collect *c, int64_t now_ms);

/* The HTTP header naming the instance on every answer of ctxvault-metrics. */
#define CV_COLLECT_INSTANCE_HEADER "X-Ctxvault-Instance"

/* The client side: GET path from a ctxvault-metrics listening on listen
 * (ADDRESS:PORT), within timeout_ms. The body (malloc'ed), the HTTP
 * status in *code and, when instance is not NULL, the instance id the
 * answer names (empty when none), or NULL with a reason. */
char *cv_collect_fetch(const char *listen, const char *path, int timeout_ms,
                       int *code, char *instance, size_t ilen, char *err,
                       size_t errlen);

#endif
