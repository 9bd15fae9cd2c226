/* health.h - the parts of the health record only the instance's host can
 * tell: capacity (the database's files and the filesystem holding them),
 * the last `ctxvault verify`, encryption and the primary key's age. store
 * reports them with its counters; ctxvault-metrics puts the record
 * together (collect.h). */
#ifndef CV_HEALTH_H
#define CV_HEALTH_H

#include "base/config.h"
#include "crypto/keyring.h"
#include "net/metrics.h"
#include "privacy/policy.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t used;     /* the database file and its WAL, bytes */
    int64_t total;    /* the limit: the quota, else the filesystem's size */
    int64_t free;     /* what is left of it (the filesystem's free space
                         for unprivileged writers, at most) */
    double percent;   /* 100 * (total - free) / total */
} cv_capacity;

/* Capacity of the database at db_path; quota 0: the filesystem's. 0, or
 * -1 with errno when the filesystem cannot be asked. */
int cv_health_capacity(const char *db_path, int64_t quota, cv_capacity *out);

/* The last `ctxvault verify`: kept in run/verify.json (when, and its exit
 * status: 0 passed). save: 0 or -1 (errno); load: 0, or -1 when verify
 * has not run (or the file is not one). */
int cv_health_verify_save(const cv_config *cfg, int64_t at_ms, int status);
int cv_health_verify_load(const cv_config *cfg, int64_t *at_ms, int *status);

/* store's part of every report: capacity, the integrity checks (the last
 * verify, and store's own start check: start_ok, at start_ms, 0 while it
 * runs), whether encryption is on, when the primary key was made. */
void cv_health_report(cv_metrics *m, const cv_config *cfg, const char *db_path,
                      const cv_keyring *kr, const cv_policy *pol,
                      int64_t start_check_ms);

#endif
