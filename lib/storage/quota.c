/* quota.c - the database's quota: measure, archive, refuse (quota.h). */
#include "storage/quota.h"

#include "base/time.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MEASURE_MS 1000       /* between measurements when nothing commits */
#define RETRY_MIN_MS 5000     /* an archive that freed nothing: again after */
#define RETRY_MAX_MS 600000   /* doubling up to this */
#define MAX_NOTIFY 8          /* notify commands running at once */
#define DAY_MS 86400000LL

struct cv_quota {
    const cv_config *cfg;
    cv_db *db;
    bool quiet;
    char *backup_bin;         /* ctxvault-backup, next to this program */
    int64_t used;             /* at the last measurement */
    int64_t measured_at;      /* mono ms */
    pid_t archive;            /* the running archive, or 0 */
    int64_t archive_before;   /* its cut-off (ms) */
    int64_t used_before;      /* usage when it started */
    int64_t retry_at;         /* mono ms: no archive before */
    int64_t retry_ms;
    bool above;               /* at or over the threshold */
    bool full;                /* commits refused */
    bool nothing;             /* nothing old enough to archive (said once) */
    bool stopping;            /* store stops: no more notices */
    pid_t notify[MAX_NOTIFY];
    uint64_t archives, archive_failures, notify_failures;
    char reason[512];
};

int64_t cv_quota_used(cv_db *db)
{
    int64_t pages = cv_db_scalar(db, "PRAGMA page_count");
    int64_t free_pages = cv_db_scalar(db, "PRAGMA freelist_count");
    int64_t size = cv_db_scalar(db, "PRAGMA page_size");
    if (pages < 0 || free_pages < 0 || size <= 0)
        return -1;
    return (pages - free_pages) * size;
}

static double ratio(const cv_quota *q)
{
    return q->cfg->quota ? (double)q->used / (double)q->cfg->quota : 0;
}

static int64_t threshold_bytes(const cv_quota *q)
{
    return q->cfg->quota / 100 * q->cfg->quota_threshold;
}

/* Run quota_notify with the event on stdin; never waits for it. */
static void notify(cv_quota *q, const char *event, int64_t before)
{
    const char *cmd = q->cfg->quota_notify;
    if (!cmd || q->stopping)
        return;
    int slot = -1;
    for (int i = 0; i < MAX_NOTIFY && slot < 0; i++)
        if (!q->notify[i])
            slot = i;
    if (slot < 0) {
        q->notify_failures++;
        cv_warn("quota_notify: %d commands still running; '%s' not told",
                MAX_NOTIFY, event);
        return;
    }
    char at[40], older[40];
    cv_time_format_ms(cv_now_ms(), at);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:f, s:i}", "event", event,
                          "program", "ctxvault-store", "at", at,
                          "quota_bytes", (json_int_t)q->cfg->quota,
                          "used_bytes", (json_int_t)q->used, "ratio", ratio(q),
                          "threshold_percent", q->cfg->quota_threshold);
    if (before >= 0) {
        cv_time_format_ms(before, older);
        json_object_set_new(o, "older_than", json_string(older));
    }
    if (q->reason[0])
        json_object_set_new(o, "reason", json_string(q->reason));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    int p[2];
    if (!text || pipe2(p, O_CLOEXEC) < 0) {
        q->notify_failures++;
        cv_err("cannot run quota_notify: %s", text ? strerror(errno) : "no memory");
        free(text);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* stdout joins stderr: what the command says reaches the log */
        if (dup2(p[0], STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
            _exit(126);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(p[0]);
    if (pid < 0) {
        q->notify_failures++;
        cv_err("cannot run quota_notify: fork: %s", strerror(errno));
    } else {
        q->notify[slot] = pid;
        /* a short line into an empty pipe: never blocks; SIGPIPE is
         * ignored, so a command that reads nothing costs nothing */
        size_t len = strlen(text);
        text[len] = '\n';
        (void)cv_write_all(p[1], text, len + 1);
    }
    close(p[1]);
    free(text);
}

/* The cut-off: the end of the oldest whole UTC day whose rows, with the
 * ones before, free enough at the average row size; at most now -
 * quota_keep. -1 when no row may be archived. */
static int64_t choose_cut(cv_quota *q, int64_t used)
{
    int64_t now = cv_now_ms(), keep = now - q->cfg->quota_keep_ms;
    int64_t target = threshold_bytes(q) / 10 * 9;
    int64_t rows = cv_db_scalar(q->db, "SELECT count(*) FROM events");
    if (rows <= 0)
        return -1;
    double per_row = (double)used / (double)rows;
    int64_t need = (int64_t)((double)(used - target) / per_row) + 1;
    /* the rows an archive takes: old enough, not past their retention
     * (those are the sweep's) */
    sqlite3_stmt *st = cv_db_stmt(q->db,
        "SELECT ts / 86400000, count(*) FROM events WHERE ts < ?1 AND"
        " (expires_at IS NULL OR expires_at > ?2) GROUP BY 1 ORDER BY 1");
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, keep);
    sqlite3_bind_int64(st, 2, now);
    int64_t cut = -1, sum = 0;
    while (sum < need && sqlite3_step(st) == SQLITE_ROW) {
        sum += sqlite3_column_int64(st, 1);
        cut = (sqlite3_column_int64(st, 0) + 1) * DAY_MS;
    }
    sqlite3_reset(st);
    if (cut > keep)
        cut = keep; /* the youngest day only in part */
    return cut;
}

static void start_archive(cv_quota *q, int64_t used)
{
    int64_t before = choose_cut(q, used);
    if (before < 0) {
        snprintf(q->reason, sizeof q->reason,
                 "storage quota: %lld of %lld bytes used (%d%% threshold); "
                 "nothing old enough to archive (rows younger than "
                 "quota_keep stay): raise [storage] quota or delete rows",
                 (long long)used, (long long)q->cfg->quota,
                 q->cfg->quota_threshold);
        if (!q->nothing) {
            cv_warn("%s", q->reason);
            notify(q, "nothing_to_archive", -1);
        }
        q->nothing = true;
        q->retry_at = cv_mono_ms() + RETRY_MIN_MS;
        return;
    }
    q->nothing = false;
    char older[40];
    cv_time_format_ms(before, older);
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul < 0 || dup2(nul, STDIN_FILENO) < 0 ||
            dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
            _exit(126);
        const cv_config *c = q->cfg;
        if (c->config_file)
            execl(q->backup_bin, "ctxvault-backup", "--home", c->home, "-c",
                  c->config_file, "archive", "--older-than", older, (char *)NULL);
        else
            execl(q->backup_bin, "ctxvault-backup", "--home", c->home,
                  "archive", "--older-than", older, (char *)NULL);
        _exit(127);
    }
    if (pid < 0) {
        cv_err("cannot start an archive for the storage quota: fork: %s",
               strerror(errno));
        q->retry_at = cv_mono_ms() + RETRY_MIN_MS;
        return;
    }
    q->archive = pid;
    q->archive_before = before;
    q->used_before = used;
    q->archives++;
    snprintf(q->reason, sizeof q->reason,
             "storage quota: %lld of %lld bytes used (%d%% threshold); "
             "archiving rows older than %s", (long long)used,
             (long long)q->cfg->quota, q->cfg->quota_threshold, older);
    cv_warn("%s (ctxvault-backup archive, pid %ld)", q->reason, (long)pid);
    notify(q, "archive", before);
}

cv_quota *cv_quota_new(const cv_config *cfg, cv_db *db, bool quiet)
{
    cv_quota *q = cv_calloc(1, sizeof *q);
    q->cfg = cfg;
    q->db = db;
    q->quiet = quiet;
    q->retry_ms = RETRY_MIN_MS;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    q->backup_bin = cv_fmt("%s/ctxvault-backup", slash ? self : ".");
    q->used = cv_quota_used(db);
    q->measured_at = cv_mono_ms();
    return q;
}

static void reap(cv_quota *q)
{
    int st;
    for (int i = 0; i < MAX_NOTIFY; i++) {
        if (!q->notify[i] || waitpid(q->notify[i], &st, WNOHANG) <= 0)
            continue;
        q->notify[i] = 0;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            q->notify_failures++;
            cv_warn("quota_notify '%s' failed (%s %d)", q->cfg->quota_notify,
                    WIFEXITED(st) ? "exit status" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        }
    }
    if (!q->archive || waitpid(q->archive, &st, WNOHANG) <= 0)
        return;
    q->archive = 0;
    int64_t now = cv_mono_ms();
    q->used = cv_quota_used(q->db);
    q->measured_at = now;
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok && q->stopping) {
        return;
    } else if (!ok) {
        q->archive_failures++;
        cv_err("the storage quota's archive failed (%s %d); see its message "
               "above; trying again later", WIFEXITED(st) ? "exit status" : "signal",
               WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        notify(q, "archive_failed", q->archive_before);
    } else if (!q->quiet) {
        cv_info("storage quota: archive done, %lld of %lld bytes used now",
                (long long)q->used, (long long)q->cfg->quota);
    }
    /* freed something: the next one may run at once if still needed;
     * else back off, doubling */
    if (ok && q->used < q->used_before) {
        q->retry_ms = RETRY_MIN_MS;
        q->retry_at = now;
    } else {
        q->retry_at = now + q->retry_ms;
        q->retry_ms = q->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : q->retry_ms * 2;
    }
}

void cv_quota_poll(cv_quota *q, bool measure)
{
    if (!q)
        return;
    reap(q);
    int64_t now = cv_mono_ms();
    if (!measure && now - q->measured_at < MEASURE_MS)
        return;
    int64_t used = cv_quota_used(q->db);
    if (used >= 0)
        q->used = used;
    q->measured_at = now;
    if (!q->cfg->quota)
        return;
    bool above = q->used >= threshold_bytes(q);
    if (!above && q->above && !q->full) {
        q->reason[0] = '\0';
        q->nothing = false;
        if (!q->quiet)
            cv_info("storage quota: %lld of %lld bytes used, below the %d%% "
                    "threshold again", (long long)q->used,
                    (long long)q->cfg->quota, q->cfg->quota_threshold);
        notify(q, "below_threshold", -1);
    }
    q->above = above;
    if (above && !q->archive && now >= q->retry_at)
        start_archive(q, q->used);
}

bool cv_quota_full(cv_quota *q, char *why, size_t len)
{
    if (!q || !q->cfg->quota)
        return false;
    int64_t used = cv_quota_used(q->db);
    if (used < q->cfg->quota)
        return false;
    /* the open batch counts: it may be what crosses the threshold (the
     * gauges keep what is committed) */
    q->above = true;
    reap(q);
    if (!q->archive && cv_mono_ms() >= q->retry_at)
        start_archive(q, used);
    if (q->archive) {
        char older[40];
        cv_time_format_ms(q->archive_before, older);
        snprintf(why, len, "quota reached: %lld of %lld bytes; archiving rows "
                 "older than %s", (long long)used, (long long)q->cfg->quota, older);
    } else {
        snprintf(why, len, "quota reached: %lld of %lld bytes; nothing old "
                 "enough to archive: raise [storage] quota or delete rows",
                 (long long)used, (long long)q->cfg->quota);
    }
    if (!q->full)
        notify(q, "quota_reached", -1);
    q->full = true;
    return true;
}

void cv_quota_clear(cv_quota *q)
{
    if (!q || !q->full)
        return;
    q->full = false;
    notify(q, "quota_cleared", -1);
}

bool cv_quota_report(const cv_quota *q, cv_quota_figures *f)
{
    if (!q)
        return false;
    *f = (cv_quota_figures){.quota = q->cfg->quota, .used = q->used,
                            .ratio = ratio(q), .archives = q->archives,
                            .archive_failures = q->archive_failures,
                            .notify_failures = q->notify_failures};
    return true;
}

const char *cv_quota_reason(const cv_quota *q)
{
    return q && q->above && q->reason[0] ? q->reason : NULL;
}

void cv_quota_destroy(cv_quota **p)
{
    cv_quota *q = *p;
    if (!q)
        return;
    /* an archive deletes only what its verified file holds: stopped part
     * way, the next one takes the rest. A notify command gets 2 s. */
    q->stopping = true;
    if (q->archive)
        kill(q->archive, SIGTERM);
    for (int i = 0; i < 20; i++) {
        bool left = q->archive != 0;
        for (int k = 0; k < MAX_NOTIFY; k++)
            left = left || q->notify[k];
        if (!left)
            break;
        usleep(100000);
        reap(q);
    }
    pid_t rest[MAX_NOTIFY + 1];
    memcpy(rest, q->notify, sizeof q->notify);
    rest[MAX_NOTIFY] = q->archive;
    for (int k = 0; k <= MAX_NOTIFY; k++)
        if (rest[k] && kill(rest[k], SIGKILL) == 0)
            waitpid(rest[k], NULL, 0);
    free(q->backup_bin);
    free(q);
    *p = NULL;
}
