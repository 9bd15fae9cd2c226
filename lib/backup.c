/* backup.c - take, check, list, prune and restore encrypted backups. See
 * backup.h for the file format. */
#include "backup.h"

#include "db.h"
#include "fieldcrypt.h"
#include "journal.h"
#include "maint.h"
#include "progress.h"
#include "timefmt.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define MAGIC "CTXVBK1\n"
#define PREFIX 12                 /* magic and key version: the AD */
#define CHUNK (64 * 1024)         /* plaintext of a message, at most */
#define ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define HEADER crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SUFFIX ".cvb"

typedef crypto_secretstream_xchacha20poly1305_state stream_state;

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void hex_of(const uint8_t *b, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, b, n);
}

/* ---- the sealed stream ----------------------------------------------- */

typedef struct {
    int fd;
    stream_state st;
    uint8_t ad[PREFIX];
    uint8_t *buf;              /* a message's ciphertext, with its length */
    uint64_t bytes;
    crypto_generichash_state file_hash;
} sink;

static int sink_open(sink *s, int fd, const cv_keyring *kr, uint32_t version,
                     char *err, size_t errlen)
{
    uint8_t key[CV_KEY_BYTES], head[PREFIX + HEADER];
    memset(s, 0, sizeof *s);
    s->fd = fd;
    if (cv_keyring_subkey(kr, version, "backup", key) < 0) {
        snprintf(err, errlen, "key version %u is not in the keyring", version);
        return -1;
    }
    memcpy(s->ad, MAGIC, 8);
    be32(s->ad + 8, version);
    memcpy(head, s->ad, PREFIX);
    crypto_secretstream_xchacha20poly1305_init_push(&s->st, head + PREFIX, key);
    sodium_memzero(key, sizeof key);
    s->buf = cv_malloc(4 + CHUNK + ABYTES);
    crypto_generichash_init(&s->file_hash, NULL, 0, 32);
    crypto_generichash_update(&s->file_hash, head, sizeof head);
    if (cv_write_all(fd, head, sizeof head) < 0) {
        snprintf(err, errlen, "cannot write: %s", strerror(errno));
        return -1;
    }
    s->bytes = sizeof head;
    return 0;
}

static int sink_put(sink *s, const void *m, size_t n, bool final, char *err,
                    size_t errlen)
{
    unsigned long long clen;
    crypto_secretstream_xchacha20poly1305_push(
        &s->st, s->buf + 4, &clen, m, n, s->ad, PREFIX,
        final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
    be32(s->buf, (uint32_t)clen);
    crypto_generichash_update(&s->file_hash, s->buf, 4 + clen);
    if (cv_write_all(s->fd, s->buf, 4 + clen) < 0) {
        snprintf(err, errlen, "cannot write: %s", strerror(errno));
        return -1;
    }
    s->bytes += 4 + clen;
    return 0;
}

static void sink_close(sink *s)
{
    free(s->buf);
    sodium_memzero(&s->st, sizeof s->st);
}

typedef struct {
    FILE *f;
    stream_state st;
    uint8_t ad[PREFIX];
    uint8_t *buf;
    bool final;
    uint32_t version;
} source;

static int source_open(source *s, FILE *f, const cv_keyring *kr, char *err,
                       size_t errlen)
{
    uint8_t head[PREFIX + HEADER], key[CV_KEY_BYTES];
    memset(s, 0, sizeof *s);
    s->f = f;
    if (fread(head, 1, sizeof head, f) != sizeof head ||
        memcmp(head, MAGIC, 8) != 0) {
        snprintf(err, errlen, "not a ctxvault backup (no %s header)", "CTXVBK1");
        return -1;
    }
    memcpy(s->ad, head, PREFIX);
    s->version = get_be32(head + 8);
    if (cv_keyring_subkey(kr, s->version, "backup", key) < 0) {
        snprintf(err, errlen, "it is sealed under key version %u, which the "
                 "keyring does not hold", s->version);
        return -1;
    }
    int rc = crypto_secretstream_xchacha20poly1305_init_pull(&s->st,
                                                             head + PREFIX, key);
    sodium_memzero(key, sizeof key);
    if (rc != 0) {
        snprintf(err, errlen, "its stream header is invalid");
        return -1;
    }
    s->buf = cv_malloc(CHUNK + ABYTES);
    return 0;
}

/* The next message into out (CHUNK bytes): 1 and *n, 0 after the final
 * one, -1 with a reason. */
static int source_next(source *s, uint8_t *out, size_t *n, char *err,
                       size_t errlen)
{
    uint8_t len[4];
    if (s->final) {
        if (fgetc(s->f) != EOF) {
            snprintf(err, errlen, "data follows its final record");
            return -1;
        }
        return 0;
    }
    if (fread(len, 1, 4, s->f) != 4) {
        snprintf(err, errlen, "it is cut short (no final record)");
        return -1;
    }
    uint32_t clen = get_be32(len);
    if (clen < ABYTES || clen > CHUNK + ABYTES) {
        snprintf(err, errlen, "a record has an impossible length (%u)", clen);
        return -1;
    }
    if (fread(s->buf, 1, clen, s->f) != clen) {
        snprintf(err, errlen, "it is cut short inside a record");
        return -1;
    }
    unsigned long long mlen;
    unsigned char tag;
    if (crypto_secretstream_xchacha20poly1305_pull(&s->st, out, &mlen, &tag,
                                                   s->buf, clen, s->ad,
                                                   PREFIX) != 0) {
        snprintf(err, errlen, "a record does not authenticate: the file was "
                 "altered, or it is not this keyring's");
        return -1;
    }
    s->final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    *n = (size_t)mlen;
    return 1;
}

static void source_close(source *s)
{
    free(s->buf);
    sodium_memzero(&s->st, sizeof s->st);
}

/* ---- what a snapshot holds -------------------------------------------- */

/* Rows per kind, the highest seq, a digest of every (seq, checksum), the
 * audit entries, and the file's size and BLAKE2b. NULL with a reason. */
static json_t *describe(const char *snap, char *err, size_t errlen)
{
    int code;
    cv_db *db = cv_db_open_reader(snap, &code, err, errlen);
    if (!db)
        return NULL;
    sqlite3 *h = cv_db_handle(db);
    json_t *by_kind = json_object(), *res = NULL;
    int64_t rows = 0, max_seq = 0, audit = 0;
    sqlite3_stmt *st;
    crypto_generichash_state rh;
    crypto_generichash_init(&rh, NULL, 0, 32);
    if (sqlite3_prepare_v2(h, "SELECT kind, count(*) FROM events GROUP BY kind",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_object_set_new(by_kind, (const char *)sqlite3_column_text(st, 0),
                            json_integer(sqlite3_column_int64(st, 1)));
        rows += sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(h, "SELECT seq, checksum FROM events ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    while (sqlite3_step(st) == SQLITE_ROW) {
        uint8_t seq[8];
        int64_t v = sqlite3_column_int64(st, 0);
        be32(seq, (uint32_t)((uint64_t)v >> 32));
        be32(seq + 4, (uint32_t)v);
        crypto_generichash_update(&rh, seq, 8);
        crypto_generichash_update(&rh, sqlite3_column_blob(st, 1),
                                  (size_t)sqlite3_column_bytes(st, 1));
        max_seq = v;
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(h, "SELECT count(*) FROM audit", -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    if (sqlite3_step(st) == SQLITE_ROW)
        audit = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    int64_t lsn = 0; /* the last journal batch the snapshot holds */
    if (sqlite3_prepare_v2(h, "SELECT value FROM meta WHERE key = 'journal_lsn'",
                           -1, &st, NULL) != SQLITE_OK)
        goto dberr;
    if (sqlite3_step(st) == SQLITE_ROW)
        lsn = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    uint8_t d[32];
    char hex[65];
    crypto_generichash_final(&rh, d, sizeof d);
    hex_of(d, sizeof d, hex);
    res = json_pack("{s:I, s:O, s:I, s:I, s:s, s:I}", "rows", (json_int_t)rows,
                    "by_kind", by_kind, "max_seq", (json_int_t)max_seq,
                    "audit_entries", (json_int_t)audit, "rows_digest", hex,
                    "journal_lsn", (json_int_t)lsn);
    goto out;
dberr:
    snprintf(err, errlen, "cannot read %s: %s", snap, cv_db_errmsg(db));
out:
    json_decref(by_kind);
    cv_db_close(&db);
    return res;
}

/* Size and BLAKE2b of a file. */
static int file_digest(const char *path, uint64_t *size, char hex[65],
                       char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    uint8_t *buf = cv_malloc(1 << 20), d[32];
    size_t n;
    *size = 0;
    while ((n = fread(buf, 1, 1 << 20, f)) > 0) {
        crypto_generichash_update(&h, buf, n);
        *size += n;
    }
    int rc = ferror(f) ? -1 : 0;
    if (rc)
        snprintf(err, errlen, "cannot read %s", path);
    fclose(f);
    free(buf);
    crypto_generichash_final(&h, d, sizeof d);
    hex_of(d, sizeof d, hex);
    return rc;
}

/* ---- unpacking and checking ------------------------------------------- */

/* Decrypt and decompress the backup at path into dest (new, 0600,
 * fsynced), checking the snapshot's size and digest against the
 * manifest; *manifest gets it. 0 or -1 with a reason. */
static int unpack(const cv_keyring *kr, const char *path, const char *dest,
                  json_t **manifest, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    *manifest = NULL;
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    source src;
    int rc = -1, fd = -1;
    uint8_t *msg = cv_malloc(CHUNK), *out = cv_malloc(ZSTD_DStreamOutSize());
    ZSTD_DCtx *z = ZSTD_createDCtx();
    size_t n;
    uint64_t size = 0;
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    if (source_open(&src, f, kr, err, errlen) < 0)
        goto out;
    if (source_next(&src, msg, &n, err, errlen) != 1)
        goto close;
    json_error_t je;
    *manifest = json_loadb((const char *)msg, n, 0, &je);
    if (!json_is_object(*manifest)) {
        snprintf(err, errlen, "its manifest is not JSON");
        goto close;
    }
    fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", dest, strerror(errno));
        goto close;
    }
    size_t zrc = 1;
    int more;
    while ((more = source_next(&src, msg, &n, err, errlen)) == 1) {
        ZSTD_inBuffer in = {msg, n, 0};
        while (in.pos < in.size) {
            ZSTD_outBuffer o = {out, ZSTD_DStreamOutSize(), 0};
            zrc = ZSTD_decompressStream(z, &o, &in);
            if (ZSTD_isError(zrc)) {
                snprintf(err, errlen, "its snapshot does not decompress: %s",
                         ZSTD_getErrorName(zrc));
                goto close;
            }
            crypto_generichash_update(&h, out, o.pos);
            size += o.pos;
            if (cv_write_all(fd, out, o.pos) < 0) {
                snprintf(err, errlen, "cannot write %s: %s", dest, strerror(errno));
                goto close;
            }
        }
    }
    if (more < 0)
        goto close;
    uint8_t d[32];
    char hex[65];
    crypto_generichash_final(&h, d, sizeof d);
    hex_of(d, sizeof d, hex);
    const char *want = json_string_value(json_object_get(*manifest, "snapshot_blake2b"));
    if (zrc != 0 || !want || strcmp(want, hex) != 0 ||
        (json_int_t)size != json_integer_value(json_object_get(*manifest, "snapshot_bytes"))) {
        snprintf(err, errlen, "its snapshot is not the one its manifest names "
                 "(%llu bytes)", (unsigned long long)size);
        goto close;
    }
    if (fsync(fd) < 0) {
        snprintf(err, errlen, "cannot fsync %s: %s", dest, strerror(errno));
        goto close;
    }
    rc = 0;
close:
    source_close(&src);
out:
    if (fd >= 0)
        close(fd);
    if (f != stdin)
        fclose(f);
    ZSTD_freeDCtx(z);
    free(msg);
    free(out);
    return rc;
}

/* integrity_check, the manifest's rows and digests, every keyed checksum. */
static int check_snapshot(const char *snap, const cv_keyring *kr,
                          json_t *manifest, char *err, size_t errlen)
{
    int code, rc = -1;
    cv_db *db = cv_db_open_reader(snap, &code, err, errlen);
    if (!db)
        return -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(cv_db_handle(db), "PRAGMA integrity_check(1)", -1,
                           &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
        snprintf(err, errlen, "integrity_check of the restored snapshot failed");
        sqlite3_finalize(st);
        goto out;
    }
    sqlite3_finalize(st);
    int64_t rows;
    int64_t bad = cv_db_check_checksums(db, kr, 10, &rows);
    if (bad != 0) {
        snprintf(err, errlen, "%lld rows of the snapshot fail their keyed "
                 "checksum", (long long)bad);
        goto out;
    }
    cv_db_close(&db);
    json_t *d = describe(snap, err, errlen);
    if (!d)
        goto out;
    static const char *const keys[] = {"rows", "by_kind", "max_seq",
                                       "audit_entries", "rows_digest",
                                       "journal_lsn"};
    rc = 0;
    for (size_t i = 0; i < sizeof keys / sizeof *keys && rc == 0; i++)
        if (json_object_get(manifest, keys[i]) && /* older manifests lack some */
            !json_equal(json_object_get(d, keys[i]),
                        json_object_get(manifest, keys[i]))) {
            snprintf(err, errlen, "the snapshot's %s differs from its "
                     "manifest's", keys[i]);
            rc = -1;
        }
    json_decref(d);
out:
    cv_db_close(&db);
    return rc;
}

/* ---- the directory ---------------------------------------------------- */

static char *sidecar_of(const char *path)
{
    size_t n = strlen(path);
    if (n > strlen(SUFFIX) && strcmp(path + n - strlen(SUFFIX), SUFFIX) == 0)
        return cv_fmt("%.*s.json", (int)(n - strlen(SUFFIX)), path);
    return cv_fmt("%s.json", path);
}

static int write_sidecar(const char *path, json_t *side)
{
    char *sp = sidecar_of(path), *text = json_dumps(side, JSON_INDENT(2));
    int rc = text ? cv_write_file_atomic(sp, text, strlen(text), 0600, false) : -1;
    if (rc < 0)
        cv_err("cannot write %s: %s", sp, strerror(errno));
    free(text);
    free(sp);
    return rc;
}

static json_t *read_sidecar(const char *path)
{
    char *sp = sidecar_of(path);
    json_t *j = json_load_file(sp, 0, NULL);
    free(sp);
    return j;
}

static int by_name_desc(const void *a, const void *b)
{
    return strcmp(*(char *const *)b, *(char *const *)a);
}

/* The backup files in the directory, newest first (names sort by time). */
static char **backup_files(const cv_config *cfg, size_t *n)
{
    DIR *d = opendir(cfg->backup_dir);
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
        v[(*n)++] = cv_fmt("%s/%s", cfg->backup_dir, e->d_name);
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
    char **v = backup_files(cfg, &n), *r = NULL;
    for (size_t i = 0; i < n && !r; i++) {
        json_t *s = verified ? read_sidecar(v[i]) : NULL;
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
static int dir_lock(const cv_config *cfg)
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
    DIR *d = opendir(cfg->backup_dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *n = e->d_name;
        if (strstr(n, ".tmp") && (!strncmp(n, ".snapshot-", 10) ||
                                  !strncmp(n, ".verify-", 8) ||
                                  strstr(n, SUFFIX ".tmp"))) {
            char *p = cv_fmt("%s/%s", cfg->backup_dir, n);
            if (unlink(p) == 0)
                cv_warn("removed %s, left by a backup that was stopped", p);
            free(p);
        }
    }
    if (d)
        closedir(d);
    return fd;
}

/* ---- the audit trail -------------------------------------------------- */

/* Record what was done (through store, or under the writer lock). A trail
 * that cannot be reached is said, not fatal: the backup stands. */
static void audit(const cv_config *cfg, const char *action, const char *path,
                  int64_t rows, const char *failure)
{
    int status = 0;
    char err[512];
    cv_maint_session *s = cv_maint_open(cfg, "ctxvault-backup", false, &status);
    if (!s) {
        cv_warn("the audit trail did not get the %s of %s", action, path);
        return;
    }
    const char *base = strrchr(path, '/');
    char *actor = cv_maint_actor();
    json_t *req = json_pack("{s:s, s:s, s:n, s:I, s:{s:s}, s:s}", "op", "audit",
                            "action", action, "subject", "rows", (json_int_t)rows,
                            "detail", "backup", base ? base + 1 : path,
                            "actor", actor);
    if (failure)
        json_object_set_new(json_object_get(req, "detail"), "failure",
                            json_string(failure));
    json_t *r = cv_maint_call(s, req, err, sizeof err);
    if (!r || !json_is_true(json_object_get(r, "ok")))
        cv_warn("the audit trail did not get the %s of %s", action, path);
    json_decref(r);
    json_decref(req);
    free(actor);
    cv_maint_close(&s);
}

/* ---- create ----------------------------------------------------------- */

static int verify_locked(const cv_config *cfg, const cv_keyring *kr,
                         const char *path, json_t **result);

/* Compress the snapshot into the sink: the manifest first, the last
 * message FINAL. */
static int seal_snapshot(sink *s, const char *snap, json_t *manifest,
                         char *err, size_t errlen)
{
    char *m = json_dumps(manifest, JSON_COMPACT);
    int rc = sink_put(s, m, strlen(m), false, err, errlen);
    free(m);
    if (rc < 0)
        return -1;
    FILE *f = fopen(snap, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", snap, strerror(errno));
        return -1;
    }
    ZSTD_CCtx *z = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(z, ZSTD_c_nbWorkers, 1); /* ignored without MT */
    size_t insz = 1 << 20;
    uint8_t *in = cv_malloc(insz), *out = cv_malloc(CHUNK);
    uint64_t done = 0;
    cv_progress progress;
    cv_progress_init(&progress, "backup");
    ZSTD_outBuffer o = {out, CHUNK, 0};
    rc = -1;
    for (;;) {
        size_t n = fread(in, 1, insz, f);
        bool last = n < insz;
        if (last && ferror(f)) {
            snprintf(err, errlen, "cannot read %s", snap);
            goto out;
        }
        done += n;
        ZSTD_inBuffer i = {in, n, 0};
        ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_continue;
        size_t left;
        do {
            left = ZSTD_compressStream2(z, &o, &i, mode);
            if (ZSTD_isError(left)) {
                snprintf(err, errlen, "zstd: %s", ZSTD_getErrorName(left));
                goto out;
            }
            if (o.pos == o.size) { /* a full message; never the last */
                if (sink_put(s, out, o.pos, false, err, errlen) < 0)
                    goto out;
                o.pos = 0;
            }
        } while (last ? left != 0 : i.pos < i.size);
        cv_progress_update(&progress, done, NULL); /* bytes read */
        if (last)
            break;
    }
    rc = sink_put(s, out, o.pos, true, err, errlen);
out:
    cv_progress_done(&progress);
    ZSTD_freeCCtx(z);
    free(in);
    free(out);
    fclose(f);
    return rc;
}

/* A verified backup holds every batch up to its journal_lsn: the journal
 * segments it covers are no longer needed for a restore. */
static void prune_journal(const cv_config *cfg, json_t *manifest, json_t *result)
{
    int removed;
    int64_t bytes;
    json_int_t lsn = json_integer_value(json_object_get(manifest, "journal_lsn"));
    if (cv_journal_prune(cfg->journal_dir, lsn, &removed, &bytes) < 0)
        cv_warn("journal segments covered by the backup stay in %s",
                cfg->journal_dir);
    json_object_set_new(result, "journal_pruned",
                        json_pack("{s:i, s:I}", "segments", removed, "bytes",
                                  (json_int_t)bytes));
}

static char *backup_name(const cv_config *cfg, int64_t now)
{
    char t[40];
    cv_time_format_ms(now, t); /* 2026-11-22T06:58:01.123Z */
    char compact[40];
    size_t j = 0;
    for (size_t i = 0; t[i] && j + 1 < sizeof compact; i++)
        if (t[i] != '-' && t[i] != ':')
            compact[j++] = t[i];
    compact[j] = '\0';
    return cv_fmt("%s/ctxvault-%s%s", cfg->backup_dir, compact, SUFFIX);
}

int cv_backup_create(const cv_config *cfg, const cv_keyring *kr,
                     const cv_backup_opts *o, json_t **result)
{
    char err[1024];
    int64_t t0 = cv_mono_ms(), now = cv_now_ms();
    int status = EX_IOERR, code, fd = -1;
    *result = NULL;
    bool to_stdout = o->out && strcmp(o->out, "-") == 0;
    int lock = dir_lock(cfg);
    if (lock < 0)
        return EX_CANTCREAT;
    char *path = o->out && !to_stdout ? cv_strdup(o->out) : backup_name(cfg, now);
    char *snap = cv_fmt("%s/.snapshot-%ld.tmp", cfg->backup_dir, (long)getpid());
    char *tmp = cv_fmt("%s.tmp", path);
    json_t *manifest = NULL, *desc = NULL;
    sink s = {0};
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
    if (!(desc = describe(snap, err, sizeof err)) ||
        file_digest(snap, &size, hex, err, sizeof err) < 0) {
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
    if (sink_open(&s, fd, kr, cv_keyring_primary(kr), err, sizeof err) < 0 ||
        seal_snapshot(&s, snap, manifest, err, sizeof err) < 0) {
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
    uint8_t d[32];
    crypto_generichash_final(&s.file_hash, d, sizeof d);
    hex_of(d, sizeof d, hex);
    json_t *side = json_pack("{s:O, s:I, s:s, s:b}", "manifest", manifest,
                             "file_bytes", (json_int_t)s.bytes, "file_blake2b",
                             hex, "verified", 0);
    *result = json_pack("{s:s, s:O, s:I, s:f}", "path",
                        to_stdout ? "-" : path, "manifest", manifest, "bytes",
                        (json_int_t)s.bytes, "ratio",
                        size ? (double)s.bytes / (double)size : 0.0);
    status = 0;
    if (!to_stdout) {
        status = write_sidecar(path, side) < 0 ? EX_IOERR : 0;
        if (!status && o->verify) {
            json_t *v = NULL;
            status = verify_locked(cfg, kr, path, &v);
            json_decref(v);
        }
        if (!status && o->verify && cfg->journal)
            prune_journal(cfg, manifest, *result);
    }
    json_decref(side);
    if (!to_stdout)
        audit(cfg, "backup", path,
              json_integer_value(json_object_get(manifest, "rows")), NULL);
    json_object_set_new(*result, "verified",
                        json_boolean(!to_stdout && o->verify && status == 0));
    json_object_set_new(*result, "ms", json_integer(cv_mono_ms() - t0));
out:
    if (fd >= 0 && fd != STDOUT_FILENO)
        close(fd);
    if (status && !to_stdout)
        unlink(tmp);
    sink_close(&s);
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

static int verify_locked(const cv_config *cfg, const cv_keyring *kr,
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
    int rc = unpack(kr, p, check, &manifest, err, sizeof err);
    if (rc == 0)
        rc = check_snapshot(check, kr, manifest, err, sizeof err);
    cv_db_unlink(check);
    free(check);
    json_t *side = strcmp(p, "-") == 0 ? NULL : read_sidecar(p);
    char at[40];
    cv_time_format_ms(cv_now_ms(), at);
    if (side) {
        json_object_set_new(side, "verified", json_boolean(rc == 0));
        json_object_set_new(side, "verified_at", json_string(at));
        if (rc)
            json_object_set_new(side, "failure", json_string(err));
        else
            json_object_del(side, "failure");
        write_sidecar(p, side);
        json_decref(side);
    }
    if (rc) {
        cv_err("BACKUP %s FAILED VERIFICATION: %s; it is not counted as a good "
               "backup", p, err);
        audit(cfg, "backup-verify-failed", p, 0, err);
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
    int lock = dir_lock(cfg);
    if (lock < 0)
        return EX_CANTCREAT;
    int rc = verify_locked(cfg, kr, path, result);
    close(lock);
    return rc;
}

/* ---- restore ---------------------------------------------------------- */

/* The newest verified backup taken at or before to_ms (< 0: any). */
static char *newest_before(const cv_config *cfg, int64_t to_ms)
{
    size_t n;
    char **v = backup_files(cfg, &n), *r = NULL;
    for (size_t i = 0; i < n && !r; i++) {
        json_t *s = read_sidecar(v[i]);
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
static bool checked_before(const char *path, json_t *manifest)
{
    if (!strcmp(path, "-"))
        return false;
    json_t *s = read_sidecar(path);
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
static int replay_into(const cv_config *cfg, const char *tmp, bool empty,
                       const cv_restore_opts *o, cv_replay *r, int64_t *lsn,
                       int64_t *rows, char *err, size_t errlen)
{
    sqlite3 *h = NULL;
    int rc = -1;
    if (sqlite3_open_v2(tmp, &h, SQLITE_OPEN_READWRITE | (empty ? SQLITE_OPEN_CREATE : 0),
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", tmp, h ? sqlite3_errmsg(h) : "no memory");
        goto out;
    }
    /* the file is thrown away if this stops midway: no rollback file */
    if (sqlite3_exec(h, empty ? "PRAGMA auto_vacuum=INCREMENTAL; "
                     "PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF"
                     : "PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF",
                     NULL, NULL, NULL) != SQLITE_OK ||
        (empty && cv_db_create_schema(h) != SQLITE_OK)) {
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
    *rows = count_rows(h);
    rc = 0;
out:
    if (h && sqlite3_close(h) != SQLITE_OK && rc == 0) {
        snprintf(err, errlen, "cannot close %s", tmp);
        rc = -1;
    }
    return rc;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = fd < 0 || fsync(fd) < 0 ? -1 : 0;
    if (fd >= 0)
        close(fd);
    return rc;
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
    json_t *manifest = NULL;
    cv_db_unlink(tmp);
    bool failed_check = false, checked = false;
    cv_replay r = {0};
    int64_t lsn = 0, rows = 0, moved = 0;
    if (p && unpack(kr, p, tmp, &manifest, err, sizeof err) < 0) {
        failed_check = true;
    } else if (p && (o->check || !checked_before(p, manifest))) {
        checked = true;
        failed_check = check_snapshot(tmp, kr, manifest, err, sizeof err) < 0;
    }
    if (failed_check) {
        cv_err("cannot restore %s: %s; the database was not touched", p, err);
        status = EX_DATAERR;
        goto out;
    }
    if (replay_into(cfg, tmp, from_journal, o, &r, &lsn, &rows, err, sizeof err) < 0) {
        cv_err("cannot restore %s: %s; the database was not touched",
               p ? p : "from the journal", err);
        status = EX_DATAERR;
        goto out;
    }
    /* the old WAL belongs to the old file: it must not be replayed into
     * the restored one */
    char *wal = cv_fmt("%s-wal", cfg->db_file), *shm = cv_fmt("%s-shm", cfg->db_file);
    if (fsync_path(tmp) < 0 ||
        (unlink(wal) < 0 && errno != ENOENT) || (unlink(shm) < 0 && errno != ENOENT) ||
        rename(tmp, cfg->db_file) < 0 || cv_fsync_dir_of(cfg->db_file) < 0) {
        cv_err("cannot put the restored database in place: %s", strerror(errno));
        status = EX_IOERR;
    }
    free(wal);
    free(shm);
    if (status)
        goto out;
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
    if (r.batches)
        cv_time_format_ms(r.last_at_ms, last_at);
    *result = json_pack("{s:s, s:s?, s:b, s:O?, s:I, s:{s:I, s:I, s:I, s:s?, s:b}, s:I}",
                        "restored", cfg->db_file, "from", p, "checked", checked,
                        "manifest", manifest, "rows", (json_int_t)rows,
                        "replayed", "batches", (json_int_t)r.batches,
                        "changes", (json_int_t)r.changes,
                        "last_batch", (json_int_t)lsn, "last_commit",
                        r.batches ? last_at : NULL, "torn_tail", r.torn_tail,
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
    if (!status) /* into the restored trail, which goes on from there */
        audit(cfg, "restore", p ? p : "journal", rows, NULL);
    else if (failed_check)
        audit(cfg, "backup-verify-failed", p, 0, err);
    free(p);
    json_decref(manifest);
    return status;
}

/* ---- list and prune --------------------------------------------------- */

int cv_backup_list(const cv_config *cfg, json_t **result)
{
    size_t n;
    char **v = backup_files(cfg, &n);
    *result = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *s = read_sidecar(v[i]);
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

int cv_backup_prune(const cv_config *cfg, int daily, int monthly,
                    bool dry_run, json_t **result)
{
    int lock = dir_lock(cfg);
    if (lock < 0)
        return EX_CANTCREAT;
    size_t n;
    char **v = backup_files(cfg, &n);
    json_t *kept = json_array(), *gone = json_array();
    char days[64][11], months[64][8];
    int nd = 0, nm = 0;
    bool good_seen = false;
    int status = 0;
    for (size_t i = 0; i < n; i++) { /* newest first */
        json_t *s = read_sidecar(v[i]);
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
        if (!keep && !dry_run) {
            char *side = sidecar_of(v[i]);
            if (unlink(v[i]) < 0 || (unlink(side) < 0 && errno != ENOENT)) {
                cv_err("cannot delete %s: %s", v[i], strerror(errno));
                status = EX_IOERR;
            }
            free(side);
        }
    }
    free_files(v, n);
    close(lock);
    *result = json_pack("{s:b, s:o, s:o}", "dry_run", dry_run, "kept", kept,
                        dry_run ? "would_delete" : "deleted", gone);
    return status;
}
