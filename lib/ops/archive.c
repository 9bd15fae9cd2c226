/* archive.c - old rows moved into a sealed file, verified, then deleted
 * through store; and put back (archive.h). */
#include "ops/archive.h"

#include "ops/backup.h"
#include "storage/db.h"
#include "ops/session.h"
#include "storage/snapshot.h"
#include "base/time.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FORMAT "ctxvault-archive/1"
#define BATCH 1000

/* The rows older than before_ms, with their users, into a new snapshot
 * file, read in one transaction of the live database. *rows gets how many.
 * 0 or -1 with a reason. */
static int copy_rows(const cv_config *cfg, const char *snap, int64_t before_ms,
                     int64_t now, int64_t *rows, int64_t *expires,
                     char *err, size_t errlen)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    char *uri = cv_fmt("file:%s?mode=ro", cfg->db_file);
    int rc = -1;
    if (sqlite3_open_v2(snap, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_URI, NULL) != SQLITE_OK ||
        sqlite3_exec(h, "PRAGMA auto_vacuum=INCREMENTAL; PRAGMA journal_mode=OFF;"
                     " PRAGMA synchronous=OFF", NULL, NULL, NULL) != SQLITE_OK ||
        cv_db_create_schema(h) != SQLITE_OK ||
        sqlite3_prepare_v2(h, "ATTACH ? AS src", -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto dberr;
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_exec(h, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(h, "INSERT INTO main.events SELECT * FROM src.events"
                           " WHERE ts < ?1 AND (expires_at IS NULL OR expires_at > ?2)"
                           " ORDER BY seq", -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    /* rows past their retention are the sweep's, not an archive's */
    sqlite3_bind_int64(st, 1, before_ms);
    sqlite3_bind_int64(st, 2, now);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto dberr;
    *rows = sqlite3_changes(h);
    sqlite3_finalize(st);
    /* when the last row expires, the archive may go (prune): -1 never */
    if (sqlite3_prepare_v2(h, "SELECT CASE WHEN count(*) = count(expires_at)"
                           " THEN max(expires_at) ELSE -1 END FROM main.events",
                           -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
        goto dberr;
    *expires = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st); /* DETACH needs no statement running */
    st = NULL;
    if (sqlite3_exec(h, "INSERT INTO main.users SELECT * FROM src.users WHERE"
                     " uid IN (SELECT DISTINCT uid FROM main.events);"
                     " COMMIT; DETACH src", NULL, NULL, NULL) != SQLITE_OK)
        goto dberr;
    rc = 0;
    goto out;
dberr:
    snprintf(err, errlen, "cannot copy the rows from %s: %s", cfg->db_file,
             h ? sqlite3_errmsg(h) : "no memory");
out:
    sqlite3_finalize(st);
    if (h && sqlite3_close(h) != SQLITE_OK && rc == 0) {
        snprintf(err, errlen, "cannot close %s", snap);
        rc = -1;
    }
    free(uri);
    return rc;
}

/* Seal snap into path (temp file, fsync, rename, fsync) with its sidecar. */
static int seal_to(const cv_keyring *kr, const char *snap, const char *path,
                   json_t *manifest, uint64_t *bytes, char *err, size_t errlen)
{
    char *tmp = cv_fmt("%s.tmp", path);
    cv_sealed sealed;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), rc = -1;
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (cv_snapshot_seal(kr, snap, manifest, fd, &sealed, err, errlen) < 0)
        goto out;
    if (fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0 ||
        cv_fsync_dir_of(path) < 0) {
        fd = -1;
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    *bytes = sealed.bytes;
    json_t *side = json_pack("{s:O, s:I, s:s, s:b}", "manifest", manifest,
                             "file_bytes", (json_int_t)sealed.bytes,
                             "file_blake2b", sealed.blake2b, "verified", 0);
    rc = cv_snapshot_sidecar_write(path, side);
    json_decref(side);
    if (rc < 0)
        snprintf(err, errlen, "cannot write the sidecar of %s", path);
out:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    return rc;
}

/* A snapshot's rows read by sql, and a session to send them to store. */
typedef struct {
    sqlite3 *h;
    sqlite3_stmt *st;
    cv_session *s;
} feed;

static int feed_open(feed *f, const cv_config *cfg, const char *program,
                     const char *snap, const char *sql)
{
    int status = 0;
    memset(f, 0, sizeof *f);
    if (!(f->s = cv_session_open(cfg, program, false, &status)))
        return status;
    if (sqlite3_open_v2(snap, &f->h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(f->h, sql, -1, &f->st, NULL) != SQLITE_OK) {
        cv_err("cannot read %s: %s", snap, f->h ? sqlite3_errmsg(f->h) : "no memory");
        return EX_IOERR;
    }
    return 0;
}

static void feed_close(feed *f)
{
    sqlite3_finalize(f->st);
    if (f->h)
        sqlite3_close(f->h);
    cv_session_close(&f->s);
}

/* Ask store to delete the archived rows, BATCH at a time. */
static int delete_rows(const cv_config *cfg, const char *snap, int64_t *deleted,
                       int64_t *changed)
{
    char err[512];
    feed f;
    int status = feed_open(&f, cfg, "ctxvault-backup archive", snap,
                           "SELECT seq, hex(checksum) FROM events ORDER BY seq");
    bool more = true;
    while (more && status == 0) {
        json_t *rows = json_array();
        while (json_array_size(rows) < BATCH && (more = sqlite3_step(f.st) == SQLITE_ROW))
            json_array_append_new(rows, json_pack("[I, s]",
                (json_int_t)sqlite3_column_int64(f.st, 0),
                (const char *)sqlite3_column_text(f.st, 1)));
        json_t *req = json_pack("{s:s, s:o}", "op", "archive_delete", "rows", rows);
        json_t *r = json_array_size(rows)
                        ? cv_session_ok(cv_session_call(f.s, req, err, sizeof err),
                                        err, "deleting archived rows")
                        : json_object();
        if (!r)
            status = EX_IOERR;
        *deleted += json_integer_value(json_object_get(r, "deleted"));
        *changed += json_integer_value(json_object_get(r, "changed"));
        json_decref(r);
        json_decref(req);
    }
    feed_close(&f);
    return status;
}

int cv_archive_create(const cv_config *cfg, const cv_keyring *kr,
                      int64_t before_ms, json_t **result)
{
    char err[1024], at[40], before[40], hex[65];
    int64_t t0 = cv_mono_ms(), now = cv_now_ms(), rows = 0;
    int64_t deleted = 0, changed = 0;
    uint64_t size, bytes = 0;
    int status = EX_IOERR;
    *result = NULL;
    int lock = cv_backup_dir_lock(cfg);
    if (lock < 0)
        return EX_CANTCREAT;
    if (cv_mkdir_p(cfg->archive_dir, 0700, true) < 0) {
        cv_err("cannot create %s: %s", cfg->archive_dir, strerror(errno));
        close(lock);
        return EX_CANTCREAT;
    }
    char *path = cv_backup_file_name(cfg->archive_dir, "ctxvault-archive-", now);
    char *snap = cv_fmt("%s/.snapshot-%ld.tmp", cfg->backup_dir, (long)getpid());
    json_t *manifest = NULL, *desc = NULL, *v = NULL;
    cv_time_format_ms(now, at);
    cv_time_format_ms(before_ms, before);
    cv_db_unlink(snap);
    int64_t expires;
    if (copy_rows(cfg, snap, before_ms, now, &rows, &expires, err, sizeof err) < 0) {
        cv_err("%s", err);
        goto out;
    }
    if (rows == 0) {
        *result = json_pack("{s:n, s:I, s:s}", "path", "rows", (json_int_t)0,
                            "older_than", before);
        status = 0;
        goto out;
    }
    if (!(desc = cv_snapshot_describe(snap, err, sizeof err)) ||
        cv_snapshot_digest(snap, &size, hex, err, sizeof err) < 0) {
        cv_err("%s", err);
        goto out;
    }
    manifest = json_pack("{s:s, s:s, s:s, s:i}", "format", FORMAT, "created_at",
                         at, "older_than", before, "key_version",
                         (int)cv_keyring_primary(kr));
    json_object_update(manifest, desc);
    char until[40];
    cv_time_format_ms(expires, until);
    json_object_set_new(manifest, "expires_at", expires < 0 ? json_null() : json_string(until));
    json_object_set_new(manifest, "snapshot_bytes", json_integer((json_int_t)size));
    json_object_set_new(manifest, "snapshot_blake2b", json_string(hex));
    if (seal_to(kr, snap, path, manifest, &bytes, err, sizeof err) < 0) {
        cv_err("archive %s: %s", path, err);
        goto out;
    }
    /* nothing leaves the database before its archive has been restored
     * into a temporary file and checked */
    if ((status = cv_backup_verify_file(cfg, kr, path, &v)) != 0) {
        cv_err("archive %s did not verify: no row was deleted", path);
        goto out;
    }
    status = delete_rows(cfg, snap, &deleted, &changed);
    if (status)
        cv_err("archive %s is whole and verified, but not all its rows were "
               "deleted: run the same command again", path);
    cv_backup_audit(cfg, "archive", path, deleted, NULL);
    *result = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:I}", "path", path,
                        "older_than", before, "rows", (json_int_t)rows,
                        "deleted", (json_int_t)deleted, "changed",
                        (json_int_t)changed, "bytes", (json_int_t)bytes,
                        "verified", 1, "ms", (json_int_t)(cv_mono_ms() - t0));
out:
    cv_db_unlink(snap);
    json_decref(manifest);
    json_decref(desc);
    json_decref(v);
    free(snap);
    free(path);
    close(lock);
    return status;
}

/* ---- restore --------------------------------------------------------- */

typedef struct {
    json_t *rows;
    char **bodies;
    cv_blob *blobs;
    size_t n;
} batch;

static void batch_clear(batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->bodies[i]);
    b->n = 0;
    json_decref(b->rows);
    b->rows = json_array();
}

static json_t *col_or_null(sqlite3_stmt *st, int c)
{
    return sqlite3_column_type(st, c) == SQLITE_NULL
               ? json_null() : json_integer(sqlite3_column_int64(st, c));
}

/* Send the archive's rows to store, BATCH at a time. */
static int put_back(const cv_config *cfg, const char *snap, json_t *counts)
{
    static const char *const keys[] = {"restored", "duplicates", "expired", "erased"};
    char err[512];
    batch b = {.rows = json_array(), .bodies = cv_calloc(BATCH, sizeof(char *)),
               .blobs = cv_calloc(BATCH, sizeof(cv_blob))};
    feed f;
    int status = feed_open(&f, cfg, "ctxvault-backup restore", snap,
                           "SELECT e.id, u.user_id, e.kind, e.type, e.ts,"
                           " e.created_at, e.expires_at, e.scrub_after,"
                           " e.scrubbed_at, e.body, hex(e.checksum)"
                           " FROM events e JOIN users u USING (uid) ORDER BY e.seq");
    sqlite3_stmt *st = f.st;
    bool more = true;
    while (more && status == 0) {
        while (b.n < BATCH && (more = sqlite3_step(st) == SQLITE_ROW)) {
            const char *type = (const char *)sqlite3_column_text(st, 3);
            b.bodies[b.n] = cv_strdup((const char *)sqlite3_column_text(st, 9));
            b.blobs[b.n] = (cv_blob){b.bodies[b.n], strlen(b.bodies[b.n])};
            json_array_append_new(b.rows, json_pack("[s, s, s, s?, I, I, o, o, o, I, s]",
                (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1),
                (const char *)sqlite3_column_text(st, 2), type,
                (json_int_t)sqlite3_column_int64(st, 4),
                (json_int_t)sqlite3_column_int64(st, 5), col_or_null(st, 6),
                col_or_null(st, 7), col_or_null(st, 8), (json_int_t)b.n,
                (const char *)sqlite3_column_text(st, 10)));
            b.n++;
        }
        if (b.n == 0)
            break;
        json_t *req = json_pack("{s:s, s:I, s:O}", "op", "archive_restore", "now",
                                (json_int_t)cv_now_ms(), "rows", b.rows);
        json_t *r = NULL;
        if (cv_session_send_blobs(f.s, req, b.blobs, b.n, err, sizeof err) == 0)
            r = cv_session_recv(f.s, err, sizeof err);
        r = cv_session_ok(r, err, "putting archived rows back");
        if (!r)
            status = EX_IOERR;
        for (size_t i = 0; r && i < sizeof keys / sizeof *keys; i++)
            json_object_set_new(counts, keys[i], json_integer(
                json_integer_value(json_object_get(counts, keys[i])) +
                json_integer_value(json_object_get(r, keys[i]))));
        json_decref(r);
        json_decref(req);
        batch_clear(&b);
    }
    batch_clear(&b);
    json_decref(b.rows);
    free(b.bodies);
    free(b.blobs);
    feed_close(&f);
    return status;
}

int cv_archive_restore(const cv_config *cfg, const cv_keyring *kr,
                       const char *path, json_t **result)
{
    char err[1024];
    int64_t t0 = cv_mono_ms();
    *result = NULL;
    int lock = cv_backup_dir_lock(cfg);
    if (lock < 0)
        return EX_CANTCREAT;
    char *snap = cv_fmt("%s/.snapshot-%ld.tmp", cfg->backup_dir, (long)getpid());
    json_t *manifest = NULL, *counts = json_object();
    int status = EX_DATAERR;
    cv_db_unlink(snap);
    if (cv_snapshot_unpack(kr, path, snap, &manifest, err, sizeof err) < 0) {
        cv_err("cannot restore %s: %s; the database was not touched", path, err);
        goto out;
    }
    const char *fmt = json_string_value(json_object_get(manifest, "format"));
    if (!fmt || strcmp(fmt, FORMAT) != 0) {
        cv_err("%s is not an archive (its format is %s): restore it without "
               "--archive", path, fmt ? fmt : "unknown");
        status = EX_USAGE;
        goto out;
    }
    if (!cv_backup_checked_before(path, manifest) &&
        cv_snapshot_check(snap, kr, manifest, err, sizeof err) < 0) {
        cv_err("cannot restore %s: %s; the database was not touched", path, err);
        goto out;
    }
    status = put_back(cfg, snap, counts);
    if (status == 0)
        cv_backup_audit(cfg, "archive-restore", path,
                        json_integer_value(json_object_get(counts, "restored")), NULL);
    *result = json_pack("{s:s, s:O, s:O, s:I}", "archive", path, "rows",
                        json_object_get(manifest, "rows"), "counts", counts,
                        "ms", (json_int_t)(cv_mono_ms() - t0));
    json_object_update(*result, counts);
    json_object_del(*result, "counts");
out:
    cv_db_unlink(snap);
    json_decref(manifest);
    json_decref(counts);
    free(snap);
    close(lock);
    return status;
}
