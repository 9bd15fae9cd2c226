/* snapshot.c - sealed snapshots: the file format shared by backups and
 * archives (snapshot.h), its sidecar, and the checks a restore relies on. */
#include "storage/snapshot.h"

#include "storage/db.h"
#include "base/progress.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

void cv_snapshot_hex_of(const uint8_t *b, size_t n, char *out)
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
json_t *cv_snapshot_describe(const char *snap, char *err, size_t errlen)
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
    cv_snapshot_hex_of(d, sizeof d, hex);
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
int cv_snapshot_digest(const char *path, uint64_t *size, char hex[65],
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
    cv_snapshot_hex_of(d, sizeof d, hex);
    return rc;
}

/* ---- unpacking and checking ------------------------------------------- */

/* Decrypt and decompress the backup at path into dest (new, 0600,
 * fsynced), checking the snapshot's size and digest against the
 * manifest; *manifest gets it. 0 or -1 with a reason. */
int cv_snapshot_unpack(const cv_keyring *kr, const char *path,
                       const char *dest, json_t **manifest, char *err,
                       size_t errlen)
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
    cv_snapshot_hex_of(d, sizeof d, hex);
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
int cv_snapshot_check(const char *snap, const cv_keyring *kr,
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
    json_t *d = cv_snapshot_describe(snap, err, errlen);
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

char *cv_snapshot_sidecar_path(const char *path)
{
    size_t n = strlen(path);
    if (n > strlen(SUFFIX) && strcmp(path + n - strlen(SUFFIX), SUFFIX) == 0)
        return cv_fmt("%.*s.json", (int)(n - strlen(SUFFIX)), path);
    return cv_fmt("%s.json", path);
}

int cv_snapshot_sidecar_write(const char *path, json_t *side)
{
    char *sp = cv_snapshot_sidecar_path(path), *text = json_dumps(side, JSON_INDENT(2));
    int rc = text ? cv_write_file_atomic(sp, text, strlen(text), 0600, false) : -1;
    if (rc < 0)
        cv_err("cannot write %s: %s", sp, strerror(errno));
    free(text);
    free(sp);
    return rc;
}

json_t *cv_snapshot_sidecar_read(const char *path)
{
    char *sp = cv_snapshot_sidecar_path(path);
    json_t *j = json_load_file(sp, 0, NULL);
    free(sp);
    return j;
}

/* Compress the snapshot into the sink: the manifest first, the last
 * message FINAL. */
static int seal_messages(sink *s, const char *snap, json_t *manifest,
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


int cv_snapshot_seal(const cv_keyring *kr, const char *snap, json_t *manifest,
                     int fd, cv_sealed *out, char *err, size_t errlen)
{
    sink s;
    int rc = sink_open(&s, fd, kr, cv_keyring_primary(kr), err, errlen);
    if (rc == 0)
        rc = seal_messages(&s, snap, manifest, err, errlen);
    if (rc == 0) {
        uint8_t d[32];
        crypto_generichash_final(&s.file_hash, d, sizeof d);
        cv_snapshot_hex_of(d, sizeof d, out->blake2b);
        out->bytes = s.bytes;
    }
    sink_close(&s);
    return rc;
}
