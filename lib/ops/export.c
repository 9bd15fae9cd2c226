/* export.c - one user's rows, decrypted, as a JSON document or a CSV file.
 * Two small queries make the header (counts by kind, the latest profile);
 * then one statement streams the rows in (kind, ts, seq) order, the order
 * of the (uid, kind, ts) index, and each row is opened and written as it
 * comes, so a large export is never held in memory. */
#include "ops/export.h"

#include "crypto/fieldcrypt.h"
#include "ops/query.h"
#include "base/time.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCHEMA "ctxvault-export/1"

typedef struct {
    cv_db *db;
    const cv_keyring *kr;
    FILE *out;
    int64_t uids[CV_USER_UIDS_MAX];
    size_t nuid;
    char in[CV_USER_UIDS_MAX * 2 + 1]; /* "?,?,..." for the uids */
    char *kind;                        /* JSON: the kind being written */
    int64_t undecryptable;             /* fields left sealed */
    int64_t not_json;                  /* bodies that are not JSON any more */
    const char *user;                  /* the subject, as the request named it */
    int64_t now;
} exporter;

bool cv_export_format_parse(const char *name, cv_export_format *fmt)
{
    if (strcmp(name, "json") == 0)
        *fmt = CV_EXPORT_JSON;
    else if (strcmp(name, "csv") == 0)
        *fmt = CV_EXPORT_CSV;
    else
        return false;
    return true;
}

/* Prepare sql, whose one %s becomes the uid placeholders, with the uids
 * bound from parameter 1. NULL when it cannot be prepared (logged). */
static sqlite3_stmt *prepare(exporter *x, const char *sql_fmt)
{
    char sql[1024];
    snprintf(sql, sizeof sql, sql_fmt, x->in);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(x->db), sql, -1, &st, NULL) != SQLITE_OK) {
        cv_err("cannot query %s: %s", cv_db_path(x->db), cv_db_errmsg(x->db));
        return NULL;
    }
    for (size_t i = 0; i < x->nuid; i++)
        sqlite3_bind_int64(st, (int)i + 1, x->uids[i]);
    return st;
}

/* A value stored only as a keyed pseudonym says so: the person reading
 * the export gets {"pseudonym": "hash:..."}, not a hash shown as if it
 * were their data. */
static void mark_pseudonyms(json_t *v)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m) {
            if (json_is_string(m) && cv_fieldcrypt_is_pseudonym(json_string_value(m)))
                json_object_set_new(v, k, json_pack("{s:O}", "pseudonym", m));
            else
                mark_pseudonyms(m);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) {
            if (json_is_string(m) && cv_fieldcrypt_is_pseudonym(json_string_value(m)))
                json_array_set_new(v, i, json_pack("{s:O}", "pseudonym", m));
            else
                mark_pseudonyms(m);
        }
    }
}

/* The stored body with its envelopes opened, its subject named as the
 * request named them (the stored pseudonym means nothing to its reader),
 * its other pseudonyms marked; the stored text as a JSON string when it is
 * not a JSON object any more (verify says why). */
static json_t *open_body(exporter *x, const char *body, size_t len)
{
    json_error_t je;
    json_t *ev = json_loadb(body, len, 0, &je);
    if (json_is_object(ev)) {
        int failed = 0;
        cv_query_reveal(x->kr, ev, &failed);
        x->undecryptable += failed;
        if (json_is_string(json_object_get(ev, "user_id")))
            json_object_set_new(ev, "user_id", json_string(x->user));
        mark_pseudonyms(ev);
        return ev;
    }
    json_decref(ev);
    x->not_json++;
    json_t *s = json_stringn(body, len);
    return s ? s : json_null();
}

/* A time column as RFC 3339 into t; false when it is NULL. */
static bool column_time(sqlite3_stmt *st, int col, char t[40])
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return false;
    cv_time_format_ms(sqlite3_column_int64(st, col), t);
    return true;
}

static json_t *time_json(sqlite3_stmt *st, int col)
{
    char t[40];
    return column_time(st, col, t) ? json_string(t) : json_null();
}

/* --- the header ---------------------------------------------------------- */

static int count_kinds(exporter *x, json_t *counts, int64_t *total)
{
    sqlite3_stmt *st = prepare(x, "SELECT kind, COUNT(*) FROM events"
                                  " WHERE uid IN (%s) GROUP BY kind ORDER BY kind");
    if (!st)
        return EX_SOFTWARE;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t c = sqlite3_column_int64(st, 1);
        json_object_set_new(counts, (const char *)sqlite3_column_text(st, 0),
                            json_integer(c));
        *total += c;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        cv_err("cannot query %s: %s", cv_db_path(x->db), cv_db_errmsg(x->db));
        return EX_IOERR;
    }
    return 0;
}

/* The latest profile event, opened, or JSON null when there is none. */
static int latest_profile(exporter *x, json_t **profile)
{
    sqlite3_stmt *st = prepare(x, "SELECT body FROM events WHERE uid IN (%s)"
                                  " AND kind = 'profile' ORDER BY ts DESC, seq DESC LIMIT 1");
    if (!st)
        return EX_SOFTWARE;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *profile = open_body(x, (const char *)sqlite3_column_text(st, 0),
                             (size_t)sqlite3_column_bytes(st, 0));
    else
        *profile = json_null();
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        cv_err("cannot query %s: %s", cv_db_path(x->db), cv_db_errmsg(x->db));
        return EX_IOERR;
    }
    return 0;
}

/* Everything before the events: the header object, left open. */
static int json_head(exporter *x, const char *user, json_t *profile,
                     json_t *counts)
{
    char now[40];
    cv_time_format_ms(cv_now_ms(), now);
    json_t *head = json_pack("{s:s, s:s, s:s, s:O, s:O}", "schema", SCHEMA,
                             "exported_at", now, "user", user, "profile",
                             profile, "counts", counts);
    char *text = head ? json_dumps(head, CV_JSON_DUMP) : NULL;
    json_decref(head);
    if (!text) {
        cv_err("cannot build the export's header");
        return EX_SOFTWARE;
    }
    /* drop the closing brace: the events follow inside the same object */
    fprintf(x->out, "%.*s,\"events\":{", (int)(strlen(text) - 1), text);
    free(text);
    return 0;
}

/* --- rows ------------------------------------------------------------------ */

/* The stream's columns. */
enum { C_KIND, C_ID, C_TS, C_CREATED, C_EXPIRES, C_SCRUB, C_SCRUBBED, C_BODY };

static int json_row(exporter *x, sqlite3_stmt *st)
{
    const char *kind = (const char *)sqlite3_column_text(st, C_KIND);
    if (!x->kind || strcmp(kind, x->kind) != 0) {
        json_t *k = json_string(kind);
        if (!k) {
            cv_err("a row of kind that is not UTF-8 cannot be exported "
                   "(run ctxvault verify)");
            return EX_DATAERR;
        }
        fputs(x->kind ? "],\n" : "\n", x->out);
        json_dumpf(k, x->out, JSON_ENCODE_ANY);
        fputs(":[\n", x->out);
        json_decref(k);
        free(x->kind);
        x->kind = cv_strdup(kind);
    } else {
        fputs(",\n", x->out);
    }
    /* past its expiry, still held until the sweep deletes it: reads no
     * longer return it, the export shows it pending deletion */
    bool expired = sqlite3_column_type(st, C_EXPIRES) != SQLITE_NULL &&
                   sqlite3_column_int64(st, C_EXPIRES) <= x->now;
    json_t *stored = json_pack("{s:o, s:o, s:b, s:o, s:o}",
                               "created_at", time_json(st, C_CREATED),
                               "expires_at", time_json(st, C_EXPIRES),
                               "expired", expired,
                               "scrub_after", time_json(st, C_SCRUB),
                               "scrubbed_at", time_json(st, C_SCRUBBED));
    json_t *row = json_pack("{s:o, s:o}", "event",
                            open_body(x, (const char *)sqlite3_column_text(st, C_BODY),
                                      (size_t)sqlite3_column_bytes(st, C_BODY)),
                            "stored", stored);
    if (!row) {
        cv_err("cannot build an exported row");
        return EX_SOFTWARE;
    }
    json_dumpf(row, x->out, CV_JSON_DUMP); /* write errors: ferror() */
    json_decref(row);
    return 0;
}

/* One CSV field: quoted when it holds a comma, quote, CR or LF, its quotes
 * doubled (RFC 4180). */
static void csv_field(FILE *out, const char *s, size_t len)
{
    bool quote = false;
    for (size_t i = 0; i < len && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (!quote) {
        fwrite(s, 1, len, out);
        return;
    }
    putc('"', out);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            putc('"', out);
        putc(s[i], out);
    }
    putc('"', out);
}

static void csv_column(FILE *out, sqlite3_stmt *st, int col)
{
    csv_field(out, (const char *)sqlite3_column_text(st, col),
              (size_t)sqlite3_column_bytes(st, col));
}

static void csv_time(FILE *out, sqlite3_stmt *st, int col)
{
    char t[40];
    if (column_time(st, col, t))
        fputs(t, out);
}

static int csv_row(exporter *x, sqlite3_stmt *st)
{
    csv_column(x->out, st, C_KIND);
    putc(',', x->out);
    csv_column(x->out, st, C_ID);
    putc(',', x->out);
    csv_time(x->out, st, C_TS);
    putc(',', x->out);
    csv_time(x->out, st, C_CREATED);
    putc(',', x->out);
    csv_time(x->out, st, C_EXPIRES);
    putc(',', x->out);
    json_t *ev = open_body(x, (const char *)sqlite3_column_text(st, C_BODY),
                           (size_t)sqlite3_column_bytes(st, C_BODY));
    char *text = json_is_string(ev) ? NULL : json_dumps(ev, CV_JSON_DUMP);
    if (text)
        csv_field(x->out, text, strlen(text));
    else /* not JSON: as stored */
        csv_column(x->out, st, C_BODY);
    free(text);
    json_decref(ev);
    fputs("\r\n", x->out);
    return 0;
}

static int stream_rows(exporter *x, cv_export_format fmt)
{
    sqlite3_stmt *st = prepare(x, "SELECT kind, id, ts, created_at, expires_at,"
                                  " scrub_after, scrubbed_at, body FROM events"
                                  " WHERE uid IN (%s) ORDER BY kind, ts, seq");
    if (!st)
        return EX_SOFTWARE;
    int status = 0, rc = SQLITE_DONE;
    while (!status && !ferror(x->out) && (rc = sqlite3_step(st)) == SQLITE_ROW)
        status = fmt == CV_EXPORT_JSON ? json_row(x, st) : csv_row(x, st);
    if (!status && !ferror(x->out) && rc != SQLITE_DONE) {
        cv_err("cannot query %s: %s", cv_db_path(x->db), cv_db_errmsg(x->db));
        status = EX_IOERR;
    }
    sqlite3_finalize(st);
    return status;
}

/* --- the output file -------------------------------------------------------- */

/* A temp file beside path, mode 0600, to be renamed over path once whole. */
static FILE *file_open(const char *path, char **tmp)
{
    *tmp = cv_fmt("%s.tmp.%ld", path, (long)getpid());
    int fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    FILE *f = NULL;
    if (fd >= 0 && fchmod(fd, 0600) == 0)
        f = fdopen(fd, "w");
    if (!f) {
        cv_err("cannot create %s: %s", *tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(*tmp);
        }
    }
    return f;
}

/* Flush, fsync and close the temp file, rename it over path and fsync the
 * directory; on failure the temp file is removed. */
static int file_commit(FILE *f, const char *tmp, const char *path)
{
    int e = 0;
    errno = 0;
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) < 0)
        e = errno ? errno : EIO;
    if (fclose(f) != 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) < 0)
        e = errno;
    if (e) {
        cv_err("cannot write %s: %s", path, strerror(e));
        unlink(tmp);
        return EX_IOERR;
    }
    if (cv_fsync_dir_of(path) < 0) {
        cv_err("cannot sync the directory of %s: %s", path, strerror(errno));
        return EX_IOERR;
    }
    return 0;
}

/* --- the export ------------------------------------------------------------- */

int cv_export_user(cv_db *db, const cv_policy *pol, const cv_keyring *kr,
                   const char *user, cv_export_format fmt, const char *path,
                   FILE *out, int64_t *rows)
{
    exporter x = {.db = db, .kr = kr, .out = out, .user = user,
                  .now = cv_now_ms()};
    json_t *counts = json_object(), *profile = NULL;
    char *tmp = NULL;
    int64_t total = 0;
    int status;

    /* one read transaction: one snapshot, so the counts, the profile and
     * the rows agree even while store commits */
    if (sqlite3_exec(cv_db_handle(db), "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        cv_err("cannot read %s: %s", cv_db_path(db), cv_db_errmsg(db));
        status = EX_IOERR;
        goto cleanup;
    }
    status = cv_query_user_uids(db, pol, kr, user, x.uids, CV_USER_UIDS_MAX,
                                  &x.nuid);
    if (!status && x.nuid > 0) {
        cv_query_uid_list(x.in, sizeof x.in, x.nuid);
        status = count_kinds(&x, counts, &total);
    }
    if (status)
        goto cleanup;
    if (total == 0) {
        cv_err("no data held about user %s", user);
        status = EX_NOINPUT;
        goto cleanup;
    }
    if (fmt == CV_EXPORT_JSON && (status = latest_profile(&x, &profile)) != 0)
        goto cleanup;

    if (path && !(x.out = file_open(path, &tmp))) {
        status = EX_IOERR;
        goto cleanup;
    }
    if (fmt == CV_EXPORT_JSON)
        status = json_head(&x, user, profile, counts);
    else
        fputs("kind,id,ts,created_at,expires_at,event\r\n", x.out);
    if (!status)
        status = stream_rows(&x, fmt);
    if (!status && fmt == CV_EXPORT_JSON)
        fputs(x.kind ? "]}}\n" : "}}\n", x.out);

    if (path) {
        if (status) {
            fclose(x.out);
            unlink(tmp);
        } else {
            status = file_commit(x.out, tmp, path);
        }
    } else if (!status && (fflush(x.out) != 0 || ferror(x.out))) {
        cv_err("cannot write the export: %s", strerror(errno));
        status = EX_IOERR;
    }

cleanup:
    if (!sqlite3_get_autocommit(cv_db_handle(db)))
        sqlite3_exec(cv_db_handle(db), "COMMIT", NULL, NULL, NULL);
    if (x.undecryptable)
        cv_warn("%lld fields could not be decrypted (unknown key version or "
                "tampered); they are exported sealed", (long long)x.undecryptable);
    if (x.not_json)
        cv_warn("%lld rows are not JSON; they are exported as stored "
                "(run ctxvault verify)", (long long)x.not_json);
    if (rows)
        *rows = status ? 0 : total;
    free(x.kind);
    free(tmp);
    json_decref(profile);
    json_decref(counts);
    return status;
}
