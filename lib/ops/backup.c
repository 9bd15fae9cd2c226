/* backup.c - take, check, list, prune and restore encrypted backups. See
 * backup.h for the file format. */
#include "ops/backup.h"

#include "storage/db.h"
#include "privacy/erasure.h"
#include "crypto/fieldcrypt.h"
#include "storage/journal.h"
#include "ops/session.h"
#include "storage/snapshot.h"
#include "base/time.h"
#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SUFFIX ".cvb"

/* ---- the directory ---------------------------------------------------- */

static int by_name_desc(const void *a, const void *b)
{
    return strcmp(*(char *const *)b, *(char *const *)a);
}

/* The backup files in the directory, newest first (names sort by time). */
static char **backup_files(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    char **v = NULL;
    *n = 0;
    if (!d)
        return NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l <= strlen(SUFFIX) ||
            strcmp(e->d_name + l - strlen(SUFFIX), SUFFIX) != 0)
            continue;
        v = cv_realloc(v, (*n + 1) * sizeof *v);
        v[(*n)++] = cv_fmt("%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (*n)
        qsort(v, *n, sizeof *v, by_name_desc);
    return v;
}

static void free_files(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The newest backup, or the newest verified one: malloc'ed, or NULL. */
static char *newest(const cv_config *cfg, bool verified)
{
    size_t n;
    char **v = backup_files(cfg->backup_dir, &n), *r = NULL;
    for (size_t i = 0; i < n && !r; i++) {
        json_t *s = verified ? cv_snapshot_sidecar_read(v[i]) : NULL;
        if (!verified || json_is_true(json_object_get(s, "verified")))
            r = cv_strdup(v[i]);
        json_decref(s);
    }
    free_files(v, n);
    return r;
}

/* ---- the directory's lock ---------------------------------------------- */

/* One backup command at a time in the directory: temporary files found
 * while holding the lock are leftovers of a killed run (a snapshot can be
 * as large as the database), and go. The lock's fd, or -1. */
int cv_backup_dir_lock(const cv_config *cfg)
{
    if (cv_mkdir_p(cfg->backup_dir, 0700, true) < 0) {
        cv_err("cannot create %s: %s", cfg->backup_dir, strerror(errno));
        return -1;
    }
    char *lp = cv_fmt("%s/.lock", cfg->backup_dir);
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lp);
    if (fd < 0 || flock(fd, LOCK_EX) < 0) {
        cv_err("cannot lock %s: %s", cfg->backup_dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    const char *dirs[] = {cfg->backup_dir, cfg->archive_dir};
    for (size_t i = 0; i < 2; i++) {
        DIR *d = opendir(dirs[i]);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            const char *n = e->d_name;
            if (strstr(n, ".tmp") && (!strncmp(n, ".snapshot-", 10) ||
                                      !strncmp(n, ".verify-", 8) ||
                                      strstr(n, SUFFIX ".tmp"))) {
                char *p = cv_fmt("%s/%s", dirs[i], n);
                if (unlink(p) == 0)
                    cv_warn("removed %s, left by a backup that was stopped", p);
                free(p);
            }
        }
        if (d)
            closedir(d);
    }
    return fd;
}

/* ---- the audit trail -------------------------------------------------- */

/* Record what was done (through store, or under the writer lock). A trail
 * that cannot be reached is said, not fatal: the backup stands. */
void cv_backup_audit(const cv_config *cfg, const char *action, const char *path,
                     int64_t rows, const char *failure)
{
    int status = 0;
    char err[512];
    cv_session *s = cv_session_open(cfg, "ctxvault-backup", false, &status);
    if (!s) {
        cv_warn("the audit trail did not get the %s of %s", action, path);
        return;
    }
    const char *base = strrchr(path, '/');
    char *actor = cv_session_actor();
    json_t *req = json_pack("{s:s, s:s, s:n, s:I, s:{s:s}, s:s}", "op", "audit",
                            "action", action, "subject", "rows", (json_int_t)rows,
                            "detail", "backup", base ? base + 1 : path,
                            "actor", actor);
    if (failure)
        json_object_set_new(json_object_get(req, "detail"), "failure",
                            json_string(failure));
    json_t *r = cv_session_call(s, req, err, sizeof err);
    if (!r || !json_is_true(json_object_get(r, "ok")))
        cv_warn("the audit trail did not get the %s of %s", action, path);
    json_decref(r);
    json_decref(req);
    free(actor);
    cv_session_close(&s);
}

/* ---- create ----------------------------------------------------------- */


static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = fd < 0 || fsync(fd) < 0 ? -1 : 0;
    if (fd >= 0)
        close(fd);
    return rc;
}

/* A verified backup holds every batch up to its journal_lsn: the journal
 * segments it covers are no longer needed for a restore. The database's
 * WAL is synced first: under synchronous = journal a power cut may take
 * back from it commits the backup saw, which only those segments replay
 * (a database behind a pruned journal needs a restore to start). */
static void prune_journal(const cv_config *cfg, json_t *manifest, json_t *result)
{
    int removed = 0;
    int64_t bytes = 0;
    json_int_t lsn = json_integer_value(json_object_get(manifest, "journal_lsn"));
    char *wal = cv_fmt("%s-wal", cfg->db_file);
    bool synced = (fsync_path(wal) == 0 || errno == ENOENT) &&
                  fsync_path(cfg->db_file) == 0;
    if (!synced)
        cv_warn("cannot sync the database %s: %s; journal segments covered "
                "by the backup stay in %s", cfg->db_file, strerror(errno),
                cfg->journal_dir);
    free(wal);
    if (synced && cv_journal_prune(cfg->journal_dir, lsn, &removed, &bytes) < 0)
        cv_warn("journal segments covered by the backup stay in %s",
                cfg->journal_dir);
    json_object_set_new(result, "journal_pruned",
                        json_pack("{s:i, s:I}", "segments", removed, "bytes",
                                  (json_int_t)bytes));
}

char *cv_backup_file_name(const char *dir, const char *prefix, int64_t now)
{
    char t[40];
    cv_time_format_ms(now, t); /* 2026-11-22T06:58:01.123Z */
    char compact[40];
    size_t j = 0;
    for (size_t i = 0; t[i] && j + 1 < sizeof compact; i++)
        if (t[i] != '-' && t[i] != ':')
            compact[j++] = t[i];
    compact[j] = '\0';
    return cv_fmt("%s/%s%s%s", dir, prefix, compact, SUFFIX);
}

int cv_backup_create(const cv_config *cfg, const cv_keyring *kr,
                     const cv_backup_opts *o, json_t **result)
{
    char err[1024];
    int64_t t0 = cv_mono_ms(), now = cv_now_ms();
    int status = EX_IOERR, code, fd = -1;
    *result = NULL;
    bool to_stdout = o->out && strcmp(o->out, "-") == 0;
    int lock = cv_backup_dir_lock(cfg);
    if (lock < 0)
        return EX_CANTCREAT;
    char *path = o->out && !to_stdout ? cv_strdup(o->out) : cv_backup_file_name(cfg->backup_dir, "ctxvault-", now);
    char *snap = cv_fmt("%s/.snapshot-%ld.tmp", cfg->backup_dir, (long)getpid());
    char *tmp = cv_fmt("%s.tmp", path);
    json_t *manifest = NULL, *desc = NULL;
    cv_sealed sealed = {0};
    cv_db_unlink(snap);

    /* a consistent snapshot on a read-only connection: writers go on */
    cv_db *db = cv_db_open_reader(cfg->db_file, &code, err, sizeof err);
    if (!db) {
        cv_err("%s", err);
        status = code;
        goto out;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(db), "VACUUM INTO ?", -1, &st, NULL) != SQLITE_OK) {
        cv_err("cannot snapshot %s: %s", cfg->db_file, cv_db_errmsg(db));
        goto out;
    }
    sqlite3_bind_text(st, 1, snap, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        cv_err("cannot snapshot %s: %s", cfg->db_file, cv_db_errmsg(db));
        goto out;
    }
    cv_db_close(&db);
    chmod(snap, 0600);

    uint64_t size;
    char hex[65];
    if (!(desc = cv_snapshot_describe(snap, err, sizeof err)) ||
        cv_snapshot_digest(snap, &size, hex, err, sizeof err) < 0) {
        cv_err("%s", err);
        goto out;
    }
    char at[40];
    cv_time_format_ms(now, at);
    manifest = json_pack("{s:s, s:s, s:i}", "format", "ctxvault-backup/1",
                         "created_at", at, "key_version",
                         (int)cv_keyring_primary(kr));
    json_object_update(manifest, desc);
    json_object_set_new(manifest, "snapshot_bytes", json_integer((json_int_t)size));
    json_object_set_new(manifest, "snapshot_blake2b", json_string(hex));

    fd = to_stdout ? STDOUT_FILENO
                   : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        cv_err("cannot create %s: %s", tmp, strerror(errno));
        status = EX_CANTCREAT;
        goto out;
    }
    if (cv_snapshot_seal(kr, snap, manifest, fd, &sealed, err, sizeof err) < 0) {
        cv_err("backup to %s: %s", to_stdout ? "stdout" : tmp, err);
        goto out;
    }
    if (!to_stdout) {
        /* only a whole file gets the name: a kill leaves a .tmp */
        if (fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0 ||
            cv_fsync_dir_of(path) < 0) {
            fd = -1;
            cv_err("cannot write %s: %s", path, strerror(errno));
            goto out;
        }
        fd = -1;
    }
    json_t *side = json_pack("{s:O, s:I, s:s, s:b}", "manifest", manifest,
                             "file_bytes", (json_int_t)sealed.bytes, "file_blake2b",
                             sealed.blake2b, "verified", 0);
    *result = json_pack("{s:s, s:O, s:I, s:f}", "path",
                        to_stdout ? "-" : path, "manifest", manifest, "bytes",
                        (json_int_t)sealed.bytes, "ratio",
                        size ? (double)sealed.bytes / (double)size : 0.0);
    status = 0;
    if (!to_stdout) {
        status = cv_snapshot_sidecar_write(path, side) < 0 ? EX_IOERR : 0;
        if (!status && o->verify) {
            json_t *v = NULL;
            status = cv_backup_verify_file(cfg, kr, path, &v);
            json_decref(v);
        }
        if (!status && o->verify && cfg->journal)
            prune_journal(cfg, manifest, *result);
    }
    json_decref(side);
    if (!to_stdout)
        cv_backup_audit(cfg, "backup", path,
              json_integer_value(json_object_get(manifest, "rows")), NULL);
    json_object_set_new(*result, "verified",
                        json_boolean(!to_stdout && o->verify && status == 0));
    json_object_set_new(*result, "ms", json_integer(cv_mono_ms() - t0));
out:
    if (fd >= 0 && fd != STDOUT_FILENO)
        close(fd);
    if (status && !to_stdout)
        unlink(tmp);
    cv_db_close(&db);
    cv_db_unlink(snap);
    json_decref(manifest);
    json_decref(desc);
    free(snap);
    free(tmp);
    free(path);
    close(lock);
    return status;
}

/* ---- verify ----------------------------------------------------------- */

int cv_backup_verify_file(const cv_config *cfg, const cv_keyring *kr,
                          const char *path, json_t **result)
{
    char err[1024];
    int64_t t0 = cv_mono_ms();
    char *p = path ? cv_strdup(path) : newest(cfg, false);
    *result = NULL;
    if (!p) {
        cv_err("no backup in %s", cfg->backup_dir);
        return EX_NOINPUT;
    }
    const char *dir = getenv("TMPDIR");
    char *check = cv_fmt("%s/.verify-%ld.tmp",
                         strcmp(p, "-") == 0 ? (dir ? dir : "/tmp") : cfg->backup_dir,
                         (long)getpid());
    json_t *manifest = NULL;
    cv_db_unlink(check);
    int rc = cv_snapshot_unpack(kr, p, check, &manifest, err, sizeof err);
    if (rc == 0)
        rc = cv_snapshot_check(check, kr, manifest, err, sizeof err);
    cv_db_unlink(check);
    free(check);
    json_t *side = strcmp(p, "-") == 0 ? NULL : cv_snapshot_sidecar_read(p);
    char at[40];
    cv_time_format_ms(cv_now_ms(), at);
    if (side) {
        json_object_set_new(side, "verified", json_boolean(rc == 0));
        json_object_set_new(side, "verified_at", json_string(at));
        if (rc)
            json_object_set_new(side, "failure", json_string(err));
        else
            json_object_del(side, "failure");
        cv_snapshot_sidecar_write(p, side);
        json_decref(side);
    }
    if (rc) {
        cv_err("BACKUP %s FAILED VERIFICATION: %s; it is not counted as a good "
               "backup", p, err);
        cv_backup_audit(cfg, "backup-verify-failed", p, 0, err);
        *result = json_pack("{s:s, s:b, s:s}", "path", p, "verified", 0,
                            "failure", err);
        free(p);
        json_decref(manifest);
        return EX_DATAERR;
    }
    *result = json_pack("{s:s, s:b, s:O, s:I}", "path", p, "verified", 1,
                        "manifest", manifest, "ms",
                        (json_int_t)(cv_mono_ms() - t0));
    free(p);
    json_decref(manifest);
    return 0;
}

int cv_backup_verify(const cv_config *cfg, const cv_keyring *kr,
                     const char *path, json_t **result)
{
    *result = NULL;
    int lock = cv_backup_dir_lock(cfg);
    if (lock < 0)
        return EX_CANTCREAT;
    int rc = cv_backup_verify_file(cfg, kr, path, result);
    close(lock);
    return rc;
}

/* ---- restore ---------------------------------------------------------- */

/* The newest verified backup taken at or before to_ms (< 0: any). */
static char *newest_before(const cv_config *cfg, int64_t to_ms)
{
    size_t n;
    char **v = backup_files(cfg->backup_dir, &n), *r = NULL;
    for (size_t i = 0; i < n && !r; i++) {
        json_t *s = cv_snapshot_sidecar_read(v[i]);
        const char *at = json_string_value(
            json_object_get(json_object_get(s, "manifest"), "created_at"));
        int64_t t;
        if (json_is_true(json_object_get(s, "verified")) &&
            (to_ms < 0 || (at && cv_time_parse(at, strlen(at), &t) && t <= to_ms)))
            r = cv_strdup(v[i]);
        json_decref(s);
    }
    free_files(v, n);
    return r;
}

/* A verified backup need not be checked again: its messages authenticate
 * and unpack matched the snapshot's digest, so the file is the one that
 * was checked, as long as its manifest is the one the sidecar recorded. */
bool cv_backup_checked_before(const char *path, json_t *manifest)
{
    if (!strcmp(path, "-"))
        return false;
    json_t *s = cv_snapshot_sidecar_read(path);
    bool ok = json_is_true(json_object_get(s, "verified")) &&
              json_equal(json_object_get(s, "manifest"), manifest);
    json_decref(s);
    return ok;
}

static int64_t count_rows(sqlite3 *h)
{
    sqlite3_stmt *st;
    int64_t n = -1;
    if (sqlite3_prepare_v2(h, "SELECT count(*) FROM events", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Bring the unpacked snapshot at tmp (or a new empty database, when no
 * backup is used) up to the end of the journal, or to o->to_ms. */
typedef struct {
    cv_replay replay;
    int64_t lsn;             /* the journal batch the result holds */
    int64_t rows;
} restored;

static int replay_into(const cv_config *cfg, const char *tmp, bool empty, const cv_restore_opts *o,
                       restored *out, char *err, size_t errlen)
{
    sqlite3 *h = NULL;
    int rc = -1;
    cv_replay *r = &out->replay;
    int64_t *lsn = &out->lsn;
    if (sqlite3_open_v2(tmp, &h, SQLITE_OPEN_READWRITE |
                        (empty ? SQLITE_OPEN_CREATE : 0), NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", tmp, h ? sqlite3_errmsg(h) : "no memory");
        goto out;
    }
    /* the file is thrown away if this stops midway: no rollback file. A
     * backup of an older schema gets the current one's tables first: the
     * journal's later batches may write to them */
    if (sqlite3_exec(h, empty ? "PRAGMA auto_vacuum=INCREMENTAL; "
                     "PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF"
                     : "PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF",
                     NULL, NULL, NULL) != SQLITE_OK ||
        cv_db_create_schema(h) != SQLITE_OK) {
        snprintf(err, errlen, "cannot prepare %s: %s", tmp, sqlite3_errmsg(h));
        goto out;
    }
    sqlite3_stmt *st;
    *lsn = 0;
    if (sqlite3_prepare_v2(h, "SELECT value FROM meta WHERE key = 'journal_lsn'",
                           -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        *lsn = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (cfg->journal && !o->no_replay) {
        char why[512];
        int jr = cv_journal_replay(h, cfg->journal_dir, *lsn, o->to_ms,
                                   isatty(STDERR_FILENO), r, why, sizeof why);
        if (jr == CV_REPLAY_GAP)
            snprintf(err, errlen, "the journal cannot bring it up to date: %s "
                     "(the backup holds batches up to %lld); restore a newer "
                     "backup, or add --no-replay to restore this one as it is",
                     why, (long long)*lsn);
        else if (jr == CV_REPLAY_DAMAGED)
            snprintf(err, errlen, "%s; --to-time with a time before that batch "
                     "restores up to it", why);
        else if (jr)
            snprintf(err, errlen, "replaying the journal: %s", why);
        if (jr)
            goto out;
        if (r->batches)
            *lsn = r->last;
    }
    out->rows = count_rows(h);
    rc = 0;
out:
    if (h && sqlite3_close(h) != SQLITE_OK && rc == 0) {
        snprintf(err, errlen, "cannot close %s", tmp);
        rc = -1;
    }
    return rc;
}

/* Rename a database file and its WAL (its shared memory goes). */
static int move_db(const char *from, const char *to)
{
    char *fw = cv_fmt("%s-wal", from), *tw = cv_fmt("%s-wal", to);
    char *fs = cv_fmt("%s-shm", from);
    int rc = (rename(from, to) < 0 && errno != ENOENT) ||
             (rename(fw, tw) < 0 && errno != ENOENT) ||
             (unlink(fs) < 0 && errno != ENOENT) ? -1 : 0;
    free(fw);
    free(tw);
    free(fs);
    return rc;
}

/* An erasure the restored database lacks (its batch was in a journal
 * segment that is gone, or set aside) is still a tombstone in the
 * database replaced, when that reads: carry them over, through store or
 * under the lock, so the carrying is journaled too. */
static void carry_erasures(const cv_config *cfg, const char *replaced,
                           json_t *result)
{
    if (access(replaced, F_OK) != 0)
        return;
    int status = 0;
    char err[512];
    cv_session *s = cv_session_open(cfg, "ctxvault-backup", false, &status);
    json_t *req = json_pack("{s:s, s:s}", "op", "erasures_merge", "from", replaced);
    json_t *r = s ? cv_session_ok(cv_session_call(s, req, err, sizeof err), err,
                                  "carrying erasures over") : NULL;
    if (r)
        json_object_set_new(result, "erasures_carried",
                            json_pack("{s:O, s:O}", "users", json_object_get(r, "users"),
                                      "rows", json_object_get(r, "rows")));
    else
        cv_warn("erasures recorded only in the replaced database were not "
                "carried over; check 'ctxvault audit list' for erasures "
                "after the backup and repeat them");
    json_decref(r);
    json_decref(req);
    cv_session_close(&s);
}

int cv_backup_restore(const cv_config *cfg, const cv_keyring *kr,
                      const cv_restore_opts *o, json_t **result)
{
    char err[1024];
    int64_t t0 = cv_mono_ms();
    int lock = -1, status = 0;
    *result = NULL;
    char *p = o->path ? cv_strdup(o->path) : newest_before(cfg, o->to_ms);
    cv_journal_info ji = {0};
    if (cfg->journal)
        cv_journal_stat(cfg->journal_dir, &ji);
    /* no backup yet: the journal alone, if it still starts at batch 1 */
    bool from_journal = !p && !o->no_replay && ji.first == 1;
    if (!p && !from_journal) {
        cv_err("no verified backup in %s%s", cfg->backup_dir,
               o->to_ms >= 0 ? " taken at or before that time" : "");
        return EX_NOINPUT;
    }
    /* nobody writes meanwhile, and nobody starts to */
    status = cv_db_lock(cfg->db_file, "ctxvault-backup restore", &lock, err,
                        sizeof err);
    if (status) {
        cv_err("%s: stop it before restoring", err);
        free(p);
        return status;
    }
    char *tmp = cv_fmt("%s.restore.tmp", cfg->db_file);
    char *replaced = cv_fmt("%s.replaced.tmp", cfg->db_file);
    json_t *manifest = NULL;
    cv_db_unlink(tmp);
    cv_db_unlink(replaced);
    bool failed_check = false, checked = false;
    restored res = {0};
    cv_replay *r = &res.replay;
    int64_t lsn = 0, moved = 0;
    if (p && cv_snapshot_unpack(kr, p, tmp, &manifest, err, sizeof err) < 0) {
        failed_check = true;
    } else if (p && (o->check || !cv_backup_checked_before(p, manifest))) {
        checked = true;
        failed_check = cv_snapshot_check(tmp, kr, manifest, err, sizeof err) < 0;
    }
    if (failed_check) {
        cv_err("cannot restore %s: %s; the database was not touched", p, err);
        status = EX_DATAERR;
        goto out;
    }
    if (replay_into(cfg, tmp, from_journal, o, &res, err, sizeof err) < 0) {
        cv_err("cannot restore %s: %s; the database was not touched",
               p ? p : "from the journal", err);
        status = EX_DATAERR;
        goto out;
    }
    lsn = res.lsn;
    /* the old file goes aside with its WAL (which must not be replayed
     * into the restored one): its tombstones are read after the swap */
    if (fsync_path(tmp) < 0 || move_db(cfg->db_file, replaced) < 0 ||
        rename(tmp, cfg->db_file) < 0 || cv_fsync_dir_of(cfg->db_file) < 0) {
        cv_err("cannot put the restored database in place: %s", strerror(errno));
        status = EX_IOERR;
        goto out;
    }
    /* the batches not restored (after --to-time, or past an old backup)
     * are kept aside, not lost, and no longer replayed on top */
    char *aside = NULL;
    if (cfg->journal && ji.last > lsn) {
        char t[40];
        cv_time_format_ms(cv_now_ms(), t);
        for (char *c = t; *c; c++)
            if (*c == ':')
                *c = '-';
        aside = cv_fmt("%s/set-aside-%s", cfg->journal_dir, t);
        if (cv_journal_cut(cfg->journal_dir, lsn, aside, &moved, err, sizeof err) < 0) {
            cv_err("restored, but %s; store will refuse to start until the "
                   "journal ends at batch %lld", err, (long long)lsn);
            status = EX_IOERR;
        } else {
            cv_warn("%lld journal batches after the restored point are kept "
                    "in %s, not restored", (long long)moved, aside);
        }
    }
    char last_at[40] = "";
    if (r->batches)
        cv_time_format_ms(r->last_at_ms, last_at);
    *result = json_pack("{s:s, s:s?, s:b, s:O?, s:I, s:{s:I, s:I, s:I, s:s?, s:b},"
                        " s:I}",
                        "restored", cfg->db_file, "from", p, "checked", checked,
                        "manifest", manifest, "rows", (json_int_t)res.rows,
                        "replayed", "batches", (json_int_t)r->batches,
                        "changes", (json_int_t)r->changes,
                        "last_batch", (json_int_t)lsn, "last_commit",
                        r->batches ? last_at : NULL, "torn_tail", r->torn_tail,
                        "ms", (json_int_t)(cv_mono_ms() - t0));
    if (moved)
        json_object_set_new(*result, "set_aside",
                            json_pack("{s:I, s:s}", "batches", (json_int_t)moved,
                                      "dir", aside));
    free(aside);
out:
    cv_db_unlink(tmp);
    free(tmp);
    close(lock);
    if (!status) { /* into the restored trail, which goes on from there */
        carry_erasures(cfg, replaced, *result);
        cv_backup_audit(cfg, "restore", p ? p : "journal", res.rows, NULL);
    } else if (failed_check) {
        cv_backup_audit(cfg, "backup-verify-failed", p, 0, err);
    }
    cv_db_unlink(replaced);
    free(replaced);
    free(p);
    json_decref(manifest);
    return status;
}

/* ---- list and prune --------------------------------------------------- */

int cv_backup_list(const cv_config *cfg, bool archives, json_t **result)
{
    size_t n;
    char **v = backup_files(archives ? cfg->archive_dir : cfg->backup_dir, &n);
    *result = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *s = cv_snapshot_sidecar_read(v[i]);
        json_t *m = json_object_get(s, "manifest");
        struct stat sb;
        json_array_append_new(*result, json_pack(
            "{s:s, s:O?, s:O?, s:I, s:b, s:O?}", "path", v[i], "created_at",
            json_object_get(m, "created_at"), "rows", json_object_get(m, "rows"),
            "bytes", (json_int_t)(stat(v[i], &sb) == 0 ? sb.st_size : -1),
            "verified", json_is_true(json_object_get(s, "verified")),
            "failure", json_object_get(s, "failure")));
        json_decref(s);
    }
    free_files(v, n);
    return 0;
}

/* A sealed file and its sidecar. */
static int remove_sealed(const char *path)
{
    char *side = cv_snapshot_sidecar_path(path);
    int rc = 0;
    if (unlink(path) < 0 || (unlink(side) < 0 && errno != ENOENT)) {
        cv_err("cannot delete %s: %s", path, strerror(errno));
        rc = -1;
    }
    free(side);
    return rc;
}

int cv_backup_prune(const cv_config *cfg, int daily, int monthly,
                    bool dry_run, json_t **result)
{
    int lock = cv_backup_dir_lock(cfg);
    if (lock < 0)
        return EX_CANTCREAT;
    size_t n;
    char **v = backup_files(cfg->backup_dir, &n);
    json_t *kept = json_array(), *gone = json_array();
    char days[64][11], months[64][8];
    int nd = 0, nm = 0;
    bool good_seen = false;
    int status = 0;
    for (size_t i = 0; i < n; i++) { /* newest first */
        json_t *s = cv_snapshot_sidecar_read(v[i]);
        const char *at = json_string_value(json_object_get(json_object_get(s, "manifest"), "created_at"));
        bool ok = json_is_true(json_object_get(s, "verified")) && at && strlen(at) >= 10;
        bool keep = false;
        if (!ok) {
            keep = !good_seen; /* newer than the latest good: may be checked yet */
        } else {
            bool new_day = true, new_month = true;
            for (int d = 0; d < nd; d++)
                new_day = new_day && strncmp(days[d], at, 10) != 0;
            for (int m = 0; m < nm; m++)
                new_month = new_month && strncmp(months[m], at, 7) != 0;
            if (new_day && nd < daily && nd < 64) {
                memcpy(days[nd++], at, 10);
                keep = true;
            }
            if (new_month && nm < monthly && nm < 64) {
                memcpy(months[nm++], at, 7);
                keep = true;
            }
            good_seen = true;
        }
        json_decref(s);
        json_array_append_new(keep ? kept : gone, json_string(v[i]));
        if (!keep && !dry_run && remove_sealed(v[i]) < 0)
            status = EX_IOERR;
    }
    free_files(v, n);
    /* an archive goes when its last row's retention has ended */
    v = backup_files(cfg->archive_dir, &n);
    for (size_t i = 0; i < n; i++) {
        json_t *s = cv_snapshot_sidecar_read(v[i]);
        const char *until = json_string_value(
            json_object_get(json_object_get(s, "manifest"), "expires_at"));
        int64_t t;
        if (until && cv_time_parse(until, strlen(until), &t) && t <= cv_now_ms()) {
            json_array_append_new(gone, json_string(v[i]));
            if (!dry_run && remove_sealed(v[i]) < 0)
                status = EX_IOERR;
        }
        json_decref(s);
    }
    free_files(v, n);
    close(lock);
    *result = json_pack("{s:b, s:o, s:o}", "dry_run", dry_run, "kept", kept,
                        dry_run ? "would_delete" : "deleted", gone);
    return status;
}
