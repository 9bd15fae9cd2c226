/* erasure.c - tombstones of erased users (erasure.h). */
#include "privacy/erasure.h"

#include "crypto/fieldcrypt.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int key_of(const cv_keyring *kr, uint32_t v, const char *user_id,
                  char out[CV_PSEUDONYM_MAX])
{
    return cv_fieldcrypt_pseudonym(kr, v, "erasure", user_id, strlen(user_id), out);
}

int cv_erasure_record(sqlite3 *h, const cv_keyring *kr, const char *user_id,
                      int64_t at)
{
    char key[CV_PSEUDONYM_MAX];
    sqlite3_stmt *st;
    if (key_of(kr, cv_keyring_primary(kr), user_id, key) < 0 ||
        sqlite3_prepare_v2(h, "INSERT OR REPLACE INTO erasures(user_key, at) "
                           "VALUES(?, ?)", -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, at);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int64_t cv_erasure_erased_at(sqlite3 *h, const cv_keyring *kr, const char *user_id)
{
    uint32_t v[64];
    size_t n = cv_keyring_versions(kr, v, 64);
    int64_t at = -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, "SELECT at FROM main.erasures WHERE user_key = ?", -1,
                           &st, NULL) != SQLITE_OK)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char key[CV_PSEUDONYM_MAX];
        if (key_of(kr, v[i], user_id, key) < 0)
            continue;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > at)
            at = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return at;
}

int cv_erasure_attach(sqlite3 *h, const char *from, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(h, "ATTACH ? AS gone", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, from, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    if (rc != SQLITE_OK)
        snprintf(err, errlen, "cannot open %s: %s", from, sqlite3_errmsg(h));
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

void cv_erasure_detach(sqlite3 *h)
{
    sqlite3_exec(h, "DETACH gone", NULL, NULL, NULL);
}

/* What was derived from uid's rows or tied to them (its segment, its
 * model cache entries) and made at or before at. 0 or -1. */
static int delete_derived(sqlite3 *h, int64_t uid, int64_t at)
{
    static const char *const sql[] = {
        "DELETE FROM main.segments WHERE uid = ? AND computed_at <= ?",
        "DELETE FROM main.mlcache WHERE uid = ? AND created_at <= ?",
    };
    for (size_t i = 0; i < sizeof sql / sizeof *sql; i++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(h, sql[i], -1, &st, NULL) != SQLITE_OK)
            return -1;
        sqlite3_bind_int64(st, 1, uid);
        sqlite3_bind_int64(st, 2, at);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return -1;
    }
    return 0;
}

int cv_erasure_reapply(sqlite3 *h, const cv_keyring *kr, int64_t *users,
                       int64_t *rows, char *err, size_t errlen)
{
    *users = *rows = 0;
    sqlite3_stmt *st = NULL, *del = NULL;
    /* a database that cannot be read has nothing to give */
    if (sqlite3_exec(h, "INSERT OR REPLACE INTO main.erasures "
                     "SELECT g.user_key, max(g.at, coalesce(m.at, 0)) "
                     "FROM gone.erasures g LEFT JOIN main.erasures m "
                     "USING (user_key)", NULL, NULL, NULL) != SQLITE_OK)
        return 0;
    int rc = -1;
    if (sqlite3_prepare_v2(h, "SELECT uid, user_id FROM main.users", -1, &st,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(h, "DELETE FROM main.events WHERE uid = ? AND "
                           "created_at <= ?", -1, &del, NULL) != SQLITE_OK)
        goto dberr;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t at = cv_erasure_erased_at(h, kr, (const char *)sqlite3_column_text(st, 1));
        if (at < 0)
            continue;
        sqlite3_bind_int64(del, 1, sqlite3_column_int64(st, 0));
        sqlite3_bind_int64(del, 2, at);
        if (sqlite3_step(del) != SQLITE_DONE)
            goto dberr;
        sqlite3_reset(del);
        int64_t n = sqlite3_changes(h);
        if (delete_derived(h, sqlite3_column_int64(st, 0), at) < 0)
            goto dberr;
        *rows += n;
        *users += n > 0;
    }
    rc = 0;
    goto out;
dberr:
    snprintf(err, errlen, "cannot carry the erasures over: %s", sqlite3_errmsg(h));
out:
    sqlite3_finalize(st);
    sqlite3_finalize(del);
    return rc;
}

int cv_erasure_notify(const char *path, const char *receipt, char *err,
                      size_t errlen)
{
    /* the receipt from a file, not a pipe: the program may exit without
     * reading it, and nothing here blocks on it or gets SIGPIPE */
    int fd = memfd_create("ctxvault-receipt", MFD_CLOEXEC);
    size_t len = strlen(receipt);
    if (fd < 0 || write(fd, receipt, len) != (ssize_t)len ||
        lseek(fd, 0, SEEK_SET) != 0) {
        snprintf(err, errlen, "cannot hold the receipt for %s: %s", path,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot run %s: fork: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (pid == 0) {
        if (dup2(fd, STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
            _exit(126);
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    close(fd);
    int st = 0;
    pid_t w = 0;
    for (int64_t waited = 0; (w = waitpid(pid, &st, WNOHANG)) == 0 ||
                             (w < 0 && errno == EINTR);) {
        if (waited >= CV_NOTIFY_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            snprintf(err, errlen, "%s did not finish within %d ms: killed", path,
                     CV_NOTIFY_TIMEOUT_MS);
            return -1;
        }
        cv_nap_ms(10);
        waited += 10;
    }
    if (w < 0) {
        snprintf(err, errlen, "cannot wait for %s: %s", path, strerror(errno));
        return -1;
    }
    if (WIFSIGNALED(st)) {
        snprintf(err, errlen, "%s was killed by signal %d", path, WTERMSIG(st));
        return -1;
    }
    if (WEXITSTATUS(st) != 0) {
        snprintf(err, errlen, "%s failed with exit status %d%s", path,
                 WEXITSTATUS(st), WEXITSTATUS(st) == 127 ? " (cannot be run?)" : "");
        return -1;
    }
    return 0;
}
