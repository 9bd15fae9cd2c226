/* health.c - the instance's own part of the health record (health.h). */
#include "net/health.h"

#include "storage/db.h"
#include "base/util.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

int cv_health_capacity(const char *db_path, int64_t quota, cv_capacity *out)
{
    memset(out, 0, sizeof *out);
    char *wal = cv_fmt("%s-wal", db_path);
    int64_t db = cv_db_file_size(db_path), w = cv_db_file_size(wal);
    free(wal);
    out->used = (db > 0 ? db : 0) + (w > 0 ? w : 0);
    char *copy = cv_strdup(db_path);
    struct statvfs fs;
    int rc = statvfs(dirname(copy), &fs);
    free(copy);
    if (rc < 0)
        return -1;
    int64_t fs_total = (int64_t)fs.f_blocks * (int64_t)fs.f_frsize;
    int64_t fs_free = (int64_t)fs.f_bavail * (int64_t)fs.f_frsize;
    if (quota > 0) {
        out->total = quota;
        out->free = quota > out->used ? quota - out->used : 0;
        if (out->free > fs_free)
            out->free = fs_free;
    } else {
        out->total = fs_total;
        out->free = fs_free;
    }
    out->percent = out->total > 0
                       ? 100.0 * (double)(out->total - out->free) / (double)out->total
                       : 0;
    return 0;
}

static char *verify_path(const cv_config *cfg)
{
    return cv_fmt("%s/verify.json", cfg->run_dir);
}

int cv_health_verify_save(const cv_config *cfg, int64_t at_ms, int status)
{
    char *path = verify_path(cfg);
    char *text = cv_fmt("{\"at\":%lld,\"status\":%d}\n", (long long)at_ms, status);
    int rc = cv_write_file_atomic(path, text, strlen(text), 0600, false);
    free(text);
    free(path);
    return rc;
}

int cv_health_verify_load(const cv_config *cfg, int64_t *at_ms, int *status)
{
    char *path = verify_path(cfg);
    json_t *j = json_load_file(path, 0, NULL);
    free(path);
    json_t *at = json_object_get(j, "at"), *st = json_object_get(j, "status");
    int rc = -1;
    if (json_is_integer(at) && json_is_integer(st)) {
        *at_ms = json_integer_value(at);
        *status = (int)json_integer_value(st);
        rc = 0;
    }
    json_decref(j);
    return rc;
}

void cv_health_report(cv_metrics *m, const cv_config *cfg, const char *db_path,
                      const cv_keyring *kr, const cv_policy *pol,
                      int64_t start_check_ms)
{
    cv_capacity cap;
    /* no answer from the filesystem: the gauges keep their last values */
    if (cv_health_capacity(db_path, cfg->quota, &cap) == 0) {
        cv_metrics_set(m, "ctxvault_storage_used_bytes", NULL, (double)cap.used);
        cv_metrics_set(m, "ctxvault_storage_total_bytes", NULL, (double)cap.total);
        cv_metrics_set(m, "ctxvault_storage_free_bytes", NULL, (double)cap.free);
        cv_metrics_set(m, "ctxvault_storage_used_ratio", NULL, cap.percent / 100.0);
    }
    int64_t at = 0;
    int status = 0;
    bool ran = cv_health_verify_load(cfg, &at, &status) == 0;
    cv_metrics_set(m, "ctxvault_integrity_check_ok", "check=verify",
                   ran && status == 0);
    cv_metrics_set(m, "ctxvault_integrity_check_timestamp_seconds", "check=verify",
                   ran ? (double)at / 1000.0 : 0);
    cv_metrics_set(m, "ctxvault_integrity_check_ok", "check=start",
                   start_check_ms > 0);
    cv_metrics_set(m, "ctxvault_integrity_check_timestamp_seconds", "check=start",
                   (double)start_check_ms / 1000.0);
    cv_metrics_set(m, "ctxvault_encryption_enabled", NULL,
                   kr && pol && cv_policy_seals(pol));
    int64_t made = kr ? cv_keyring_created_ms(kr, cv_keyring_primary(kr)) : -1;
    cv_metrics_set(m, "ctxvault_key_created_timestamp_seconds", NULL,
                   made >= 0 ? (double)made / 1000.0 : 0);
}
