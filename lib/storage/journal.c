/* journal.c - the replay journal: segment files of checked records, the
 * appender store uses, and the reader that restore replays (journal.h). */
#include "storage/journal.h"

#include "base/progress.h"
#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "CVJRNL1\n"
#define HEAD_BYTES 16          /* magic, first lsn */
#define REC_HEAD 20            /* length, lsn, time */
#define REC_SUM 16
#define REC_MAX (1u << 30)

struct cv_journal {
    char *dir;
    int64_t segment_bytes;
    bool sync_each;
    int fd;                    /* the newest segment, or -1 */
    int64_t size;              /* its length */
    int64_t last;              /* the last batch appended */
    bool fresh_segment;        /* the next append starts a segment */
    int64_t undo_size;         /* for cv_journal_undo */
    /* the record being written */
    int64_t rec_lsn, rec_at, rec_len;
    int64_t rec_kicked;        /* bytes of it whose writeback is started */
    bool rec_failed;
    int rec_errno;
    crypto_generichash_state rec_hash;
};

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The sum of a record (header first, then payload, as on disk): BLAKE2b
 * of the payload, then the header, the order it is written in. */
static void record_sum(const uint8_t *rec, size_t n, uint8_t out[REC_SUM])
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, REC_SUM);
    crypto_generichash_update(&h, rec + REC_HEAD, n - REC_HEAD);
    crypto_generichash_update(&h, rec, REC_HEAD);
    crypto_generichash_final(&h, out, REC_SUM);
}

/* ---- the segment files ------------------------------------------------- */

typedef struct {
    int64_t *first;
    size_t n;
} seglist;

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The segments in dir, oldest first. -1 when dir cannot be read (ENOENT
 * gives an empty list). */
static int list_segments(const char *dir, seglist *l)
{
    l->first = NULL;
    l->n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *s = e->d_name;
        if (strlen(s) != 24 || strcmp(s + 20, ".cvj") != 0 ||
            strspn(s, "0123456789") != 20)
            continue;
        if (l->n == cap)
            l->first = cv_realloc(l->first, (cap = cap ? cap * 2 : 16) * sizeof *l->first);
        l->first[l->n++] = strtoll(s, NULL, 10);
    }
    closedir(d);
    if (l->n > 1)
        qsort(l->first, l->n, sizeof *l->first, cmp64);
    return 0;
}

static char *seg_path(const char *dir, int64_t first)
{
    return cv_fmt("%s/%020lld.cvj", dir, (long long)first);
}

/* Walk a segment's records without checking their sums, except the last
 * one's: a crash tears only the end. *end gets the offset after the last
 * whole record, *last its lsn (first - 1 when none); *torn is set when
 * bytes follow *end. -1 when the file is not a segment. */
static int walk_segment(int fd, int64_t first, int64_t *end, int64_t *last,
                        bool *torn)
{
    uint8_t h[HEAD_BYTES];
    struct stat st;
    if (fstat(fd, &st) < 0 || pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h ||
        memcmp(h, MAGIC, 8) != 0 || (int64_t)get64(h + 8) != first)
        return -1;
    int64_t off = HEAD_BYTES, prev_off = -1, lsn = first - 1;
    uint8_t rh[REC_HEAD];
    while (off + REC_HEAD <= st.st_size &&
           pread(fd, rh, sizeof rh, off) == (ssize_t)sizeof rh) {
        uint32_t len = get32(rh);
        int64_t next = off + REC_HEAD + (int64_t)len + REC_SUM;
        if (len > REC_MAX || (int64_t)get64(rh + 4) != lsn + 1 || next > st.st_size)
            break;
        prev_off = off;
        off = next;
        lsn++;
    }
    if (prev_off >= 0) { /* the last record must check out in full */
        size_t n = (size_t)(off - prev_off);
        uint8_t *rec = cv_malloc(n), sum[REC_SUM];
        bool ok = pread(fd, rec, n, prev_off) == (ssize_t)n;
        if (ok) {
            record_sum(rec, n - REC_SUM, sum);
            ok = memcmp(sum, rec + n - REC_SUM, REC_SUM) == 0;
        }
        free(rec);
        if (!ok) {
            off = prev_off;
            lsn--;
        }
    }
    *end = off;
    *last = lsn;
    *torn = off < st.st_size;
    return 0;
}

/* Create segment first (header written and synced), return its fd. */
static int new_segment(const char *dir, int64_t first, char *err, size_t errlen)
{
    char *p = seg_path(dir, first);
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    uint8_t h[HEAD_BYTES];
    memcpy(h, MAGIC, 8);
    put64(h + 8, (uint64_t)first);
    if (fd < 0 || cv_write_all(fd, h, sizeof h) < 0 || fdatasync(fd) < 0 ||
        cv_fsync_dir_of(p) < 0) {
        int saved = errno;
        snprintf(err, errlen, "cannot create journal segment %s: %s", p,
                 strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(p); /* a header cut short (a full disk) is no segment */
        }
        free(p);
        errno = saved;
        return -1;
    }
    free(p);
    return fd;
}

/* ---- the appender ------------------------------------------------------ */

cv_journal *cv_journal_open(const char *dir, int64_t segment_bytes,
                            bool sync_each, int64_t db_lsn, int *code,
                            char *err, size_t errlen)
{
    *code = 0;
    if (cv_mkdir_p(dir, 0700, true) < 0) {
        snprintf(err, errlen, "cannot create journal directory %s: %s", dir,
                 strerror(errno));
        *code = EX_CANTCREAT;
        return NULL;
    }
    cv_journal *j = cv_calloc(1, sizeof *j);
    j->dir = cv_strdup(dir);
    j->segment_bytes = segment_bytes;
    j->sync_each = sync_each;
    j->fd = -1;
    j->fresh_segment = true;
    seglist l;
    if (list_segments(dir, &l) < 0) {
        snprintf(err, errlen, "cannot read journal directory %s: %s", dir,
                 strerror(errno));
        *code = EX_IOERR;
        goto fail;
    }
    j->last = db_lsn;
    while (l.n > 0) {
        int64_t first = l.first[l.n - 1], end, last;
        bool torn;
        char *p = seg_path(dir, first);
        int fd = open(p, O_RDWR | O_CLOEXEC);
        if (fd < 0 || walk_segment(fd, first, &end, &last, &torn) < 0) {
            struct stat st;
            if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size < HEAD_BYTES) {
                /* a crash while it was being created: it holds nothing */
                close(fd);
                unlink(p);
                free(p);
                l.n--;
                continue;
            }
            snprintf(err, errlen, "journal segment %s is not readable as one", p);
            *code = EX_DATAERR;
            if (fd >= 0)
                close(fd);
            free(p);
            free(l.first);
            goto fail;
        }
        if (torn) {
            cv_warn("journal %s ends in a torn record (a write cut short); "
                    "removed it: it was never committed", p);
            if (ftruncate(fd, end) < 0 || fdatasync(fd) < 0) {
                snprintf(err, errlen, "cannot truncate %s: %s", p, strerror(errno));
                *code = EX_IOERR;
                close(fd);
                free(p);
                free(l.first);
                goto fail;
            }
        }
        free(p);
        if (last < db_lsn) {
            cv_warn("the journal in %s ends at batch %lld but the database "
                    "holds batch %lld: the batches between are missing from "
                    "it, so a restore from an older backup cannot replay "
                    "past them; the next verified backup covers them",
                    dir, (long long)last, (long long)db_lsn);
            close(fd);
        } else {
            j->fd = fd;
            j->size = end;
            j->last = last;
            j->fresh_segment = false;
        }
        break;
    }
    free(l.first);
    return j;
fail:
    cv_journal_destroy(&j);
    return NULL;
}

void cv_journal_destroy(cv_journal **p)
{
    cv_journal *j = *p;
    if (!j)
        return;
    if (j->fd >= 0) {
        (void)fdatasync(j->fd);
        close(j->fd);
    }
    free(j->dir);
    free(j);
    *p = NULL;
}

int64_t cv_journal_last(const cv_journal *j) { return j->last; }

/* A record is written in place as it comes (a patchset streams out of
 * SQLite in pieces, never whole in memory): the payload after a gap for
 * the header, then the header, then the sum. A crash midway leaves a
 * record whose header does not follow, which the next open cuts off. */
int cv_journal_begin(cv_journal *j, int64_t lsn, int64_t at_ms, char *err,
                     size_t errlen)
{
    if (lsn != j->last + 1) {
        snprintf(err, errlen, "journal: batch %lld does not follow %lld",
                 (long long)lsn, (long long)j->last);
        return -1;
    }
    if (j->fd >= 0 && j->size > HEAD_BYTES && j->size >= j->segment_bytes) {
        if (fdatasync(j->fd) < 0) {
            snprintf(err, errlen, "cannot sync the journal: %s", strerror(errno));
            return -1;
        }
        j->fresh_segment = true;
    }
    if (j->fresh_segment) {
        int fd = new_segment(j->dir, lsn, err, errlen);
        if (fd < 0)
            return -1;
        if (j->fd >= 0)
            close(j->fd);
        j->fd = fd;
        j->size = HEAD_BYTES;
        j->fresh_segment = false;
    }
    j->rec_lsn = lsn;
    j->rec_at = at_ms;
    j->rec_len = 0;
    j->rec_kicked = 0;
    j->rec_failed = false;
    crypto_generichash_init(&j->rec_hash, NULL, 0, REC_SUM);
    return 0;
}

#define KICK_BYTES (1 << 20)

/* A record synced before COMMIT: start the disk writing it while the
 * batch still grows, so the sync at its end waits for the last MiB, not
 * the whole record (a batch of 10,000 events is 7 MiB; waiting for all
 * of it took a third of the pipeline's time). Only a hint: the sync
 * still decides. */
static void kick(cv_journal *j)
{
#ifdef SYNC_FILE_RANGE_WRITE
    if (!j->sync_each || j->rec_len - j->rec_kicked < KICK_BYTES)
        return;
    (void)sync_file_range(j->fd, j->size + REC_HEAD + j->rec_kicked,
                          j->rec_len - j->rec_kicked, SYNC_FILE_RANGE_WRITE);
    j->rec_kicked = j->rec_len;
#else
    (void)j;
#endif
}

int cv_journal_write(cv_journal *j, const void *data, size_t n)
{
    if (j->rec_failed)
        return -1;
    int64_t off = j->size + REC_HEAD + j->rec_len;
    const uint8_t *p = data;
    while (n > 0) {
        ssize_t w = pwrite(j->fd, p, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            j->rec_errno = w < 0 ? errno : EIO;
            j->rec_failed = true;
            return -1;
        }
        crypto_generichash_update(&j->rec_hash, p, (size_t)w);
        p += w;
        n -= (size_t)w;
        off += w;
        j->rec_len += w;
    }
    kick(j);
    return 0;
}

int cv_journal_end(cv_journal *j, char *err, size_t errlen)
{
    uint8_t h[REC_HEAD], sum[REC_SUM];
    int64_t len = j->rec_len;
    if (!j->rec_failed && len == 0)
        return 0; /* nothing changed: no batch */
    if (!j->rec_failed && len > REC_MAX) {
        j->rec_failed = true;
        j->rec_errno = EFBIG;
    }
    put32(h, (uint32_t)len);
    put64(h + 4, (uint64_t)j->rec_lsn);
    put64(h + 12, (uint64_t)j->rec_at);
    crypto_generichash_update(&j->rec_hash, h, sizeof h);
    crypto_generichash_final(&j->rec_hash, sum, sizeof sum);
    if (j->rec_failed ||
        pwrite(j->fd, sum, sizeof sum, j->size + REC_HEAD + len) != (ssize_t)sizeof sum ||
        pwrite(j->fd, h, sizeof h, j->size) != (ssize_t)sizeof h ||
        (j->sync_each && fdatasync(j->fd) < 0)) {
        snprintf(err, errlen, "cannot write the journal in %s: %s", j->dir,
                 strerror(j->rec_failed ? j->rec_errno : errno));
        if (ftruncate(j->fd, j->size) < 0) /* no half record stays */
            j->fresh_segment = true;
        return -1;
    }
    j->undo_size = j->size;
    j->size += REC_HEAD + len + REC_SUM;
    j->last = j->rec_lsn;
    return 1;
}

bool cv_journal_write_failed(const cv_journal *j) { return j->rec_failed; }

void cv_journal_set_time(cv_journal *j, int64_t at_ms) { j->rec_at = at_ms; }

void cv_journal_abort(cv_journal *j)
{
    if (j->fd >= 0 && ftruncate(j->fd, j->size) < 0)
        j->fresh_segment = true;
}

int cv_journal_append(cv_journal *j, int64_t lsn, int64_t at_ms,
                      const void *payload, size_t len, char *err,
                      size_t errlen)
{
    if (cv_journal_begin(j, lsn, at_ms, err, errlen) < 0)
        return -1;
    cv_journal_write(j, payload, len);
    return cv_journal_end(j, err, errlen) < 0 ? -1 : 0;
}

void cv_journal_undo(cv_journal *j)
{
    if (j->fd < 0 || j->undo_size < HEAD_BYTES)
        return;
    if (ftruncate(j->fd, j->undo_size) < 0) {
        /* the record stays; the next open finds the database without it
         * and replays it, which a resent batch then finds done */
        cv_warn("cannot take back journal batch %lld: %s", (long long)j->last,
                strerror(errno));
        j->fresh_segment = true;
    } else {
        j->size = j->undo_size;
        /* a batch whose COMMIT failed must not come back after a power
         * cut as one the database lacks (a failed request done after all) */
        if (j->sync_each)
            (void)fdatasync(j->fd);
    }
    j->undo_size = 0;
    j->last--;
}

/* ---- reading ----------------------------------------------------------- */

typedef struct {
    const char *dir;
    seglist l;
    size_t seg;               /* index into l */
    FILE *f;
    char *path;
    int64_t off, want;        /* the next lsn expected */
    uint8_t *rec;
    size_t cap;
} reader;

/* Open the segment holding batch from (or the first after it). */
static int reader_open(reader *r, const char *dir, int64_t from)
{
    memset(r, 0, sizeof *r);
    r->dir = dir;
    r->want = from;
    if (list_segments(dir, &r->l) < 0)
        return -1;
    while (r->seg + 1 < r->l.n && r->l.first[r->seg + 1] <= from)
        r->seg++;
    return 0;
}

static void reader_close(reader *r)
{
    if (r->f)
        fclose(r->f);
    free(r->path);
    free(r->l.first);
    free(r->rec);
}

/* The next record at or after r->want: 1 with *rec (the whole record,
 * header first) and *n, 0 at the end, or a CV_REPLAY_ code. */
static int reader_next(reader *r, uint8_t **rec, size_t *n, bool *torn,
                       char *err, size_t errlen)
{
    for (;;) {
        if (!r->f) {
            if (r->seg >= r->l.n)
                return 0;
            r->path = seg_path(r->dir, r->l.first[r->seg]);
            r->f = fopen(r->path, "rb");
            uint8_t h[HEAD_BYTES];
            if (!r->f || fread(h, 1, sizeof h, r->f) != sizeof h ||
                memcmp(h, MAGIC, 8) != 0 ||
                (int64_t)get64(h + 8) != r->l.first[r->seg]) {
                snprintf(err, errlen, "journal segment %s is not readable as one",
                         r->path);
                return CV_REPLAY_DAMAGED;
            }
            r->off = HEAD_BYTES;
            if (r->l.first[r->seg] > r->want) {
                snprintf(err, errlen, "the journal has no batch %lld: it goes "
                         "on at %lld (%s)", (long long)r->want,
                         (long long)r->l.first[r->seg], r->path);
                return CV_REPLAY_GAP;
            }
        }
        bool last_seg = r->seg + 1 == r->l.n;
        uint8_t h[REC_HEAD];
        size_t got = fread(h, 1, sizeof h, r->f);
        if (got == 0 && feof(r->f)) { /* this segment is done */
            fclose(r->f);
            r->f = NULL;
            free(r->path);
            r->path = NULL;
            r->seg++;
            continue;
        }
        uint32_t len = got == sizeof h ? get32(h) : 0;
        size_t need = REC_HEAD + (size_t)len + REC_SUM;
        if (got == sizeof h && len <= REC_MAX) {
            if (need > r->cap)
                r->rec = cv_realloc(r->rec, r->cap = need + need / 2);
            memcpy(r->rec, h, sizeof h);
            got += fread(r->rec + REC_HEAD, 1, need - REC_HEAD, r->f);
        }
        bool whole = got == need && len <= REC_MAX;
        uint8_t sum[REC_SUM];
        if (whole)
            record_sum(r->rec, REC_HEAD + len, sum);
        if (!whole || memcmp(sum, r->rec + REC_HEAD + len, REC_SUM) != 0) {
            int c = fgetc(r->f);
            if (last_seg && c == EOF) { /* a torn end: never committed */
                *torn = true;
                return 0;
            }
            snprintf(err, errlen, "journal segment %s is damaged at byte %lld "
                     "(batch %lld or after)", r->path, (long long)r->off,
                     (long long)r->want);
            return CV_REPLAY_DAMAGED;
        }
        r->off += (int64_t)need;
        int64_t lsn = (int64_t)get64(h + 4);
        if (lsn < r->want)
            continue;
        if (lsn != r->want) {
            snprintf(err, errlen, "the journal has no batch %lld: it goes on "
                     "at %lld (%s)", (long long)r->want, (long long)lsn, r->path);
            return CV_REPLAY_GAP;
        }
        r->want++;
        *rec = r->rec;
        *n = need - REC_SUM;
        return 1;
    }
}

typedef struct {
    int64_t conflicts;
    char what[160];
} conflict_note;

static int on_conflict(void *arg, int type, sqlite3_changeset_iter *it)
{
    conflict_note *c = arg;
    const char *tab = "?";
    int ncol, op, ind;
    sqlite3changeset_op(it, &tab, &ncol, &op, &ind);
    if (c->conflicts++ == 0)
        snprintf(c->what, sizeof c->what, "%s of a row of %s (%s)",
                 op == SQLITE_INSERT ? "an insert" : op == SQLITE_DELETE
                 ? "a deletion" : "an update", tab,
                 type == SQLITE_CHANGESET_NOTFOUND ? "no such row"
                 : type == SQLITE_CHANGESET_CONFLICT ? "the row is already there"
                 : type == SQLITE_CHANGESET_DATA ? "the row differs"
                 : "a constraint fails");
    return SQLITE_CHANGESET_ABORT;
}

/* A varint as SQLite's session extension writes it (big-endian groups of
 * 7 bits, the 9th byte whole). 0 when it runs past end. */
static size_t session_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (size_t i = 0; i < 9; i++) {
        if (p + i >= end)
            return 0;
        if (i == 8) {
            *v = (*v << 8) | p[i];
            return 9;
        }
        *v = (*v << 7) | (p[i] & 0x7f);
        if (!(p[i] & 0x80))
            return i + 1;
    }
    return 0;
}

/* Is [p, p+n) a patchset in the format SQLite documents (sqlite3session.c,
 * "PATCHSET FORMAT"): table headers ('P', column count, each column's place
 * in the primary key or 0, name), each followed by changes (op, indirect flag, one record of typed
 * fields: the key columns for a DELETE, every column for an INSERT or an
 * UPDATE)? SQLite 3.40's own reader loops for ever, or overflows a buffer
 * when merging, on some malformed ones (found by fuzz/fuzz_journal.c), so
 * nothing reaches it unchecked. */
static bool patchset_wellformed(const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n, *pk = NULL;
    uint64_t ncol = 0, v;
    size_t k;
    if (n == 0 || p[0] != 'P')
        return false;
    while (p < end) {
        if (*p == 'P') {
            if (!(k = session_varint(++p, end, &ncol)) || ncol == 0 || ncol > 2000)
                return false;
            p += k;
            if ((size_t)(end - p) < ncol)
                return false;
            pk = p;
            bool any = false;
            /* a key column's byte is its place in the primary key (1, 2,
             * ... for a key of several columns), not just 1 */
            for (uint64_t i = 0; i < ncol; i++) {
                if (pk[i] > ncol)
                    return false;
                any = any || pk[i];
            }
            p += ncol;
            const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
            if (!any || !nul || nul == p)
                return false;
            p = nul + 1;
            continue;
        }
        int op = *p++;
        if ((op != SQLITE_INSERT && op != SQLITE_UPDATE && op != SQLITE_DELETE) ||
            p >= end || *p++ > 1)
            return false;
        for (uint64_t i = 0; i < ncol; i++) {
            if (op == SQLITE_DELETE && !pk[i])
                continue; /* a deletion names its key only */
            if (p >= end)
                return false;
            int type = *p++;
            if (type == 0 && op != SQLITE_UPDATE)
                return false; /* undefined: only an update's unchanged columns */
            if (type == SQLITE_INTEGER || type == SQLITE_FLOAT) {
                if ((size_t)(end - p) < 8)
                    return false;
                p += 8;
            } else if (type == SQLITE_TEXT || type == SQLITE_BLOB) {
                if (!(k = session_varint(p, end, &v)) || v > (uint64_t)(end - p - (ptrdiff_t)k))
                    return false;
                p += k + v;
            } else if (type != 0 && type != SQLITE_NULL) {
                return false;
            }
        }
    }
    return true;
}

/* The number of columns of table tab in h, 0 when it has none. */
static int table_columns(sqlite3 *h, const char *tab)
{
    sqlite3_stmt *st;
    int n = 0;
    if (sqlite3_prepare_v2(h, "SELECT count(*) FROM pragma_table_info(?)", -1,
                           &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, tab, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Count the changes of patchset p, checking each as it goes: a table of
 * h's with its number of columns, and every value readable. A record
 * passes its checksum only as it was written, but a patchset that does
 * not fit the schema must never reach sqlite3changegroup_add, which
 * overflows a buffer merging one (SQLite 3.40, found by fuzz_journal.c).
 * 0, or -1 when it is not such a patchset. */
static int check_changes(sqlite3 *h, void *p, int n, int64_t *count)
{
    sqlite3_changeset_iter *it;
    char known[64] = "";
    int known_cols = 0, bad = 0;
    if (sqlite3changeset_start(&it, n, p) != SQLITE_OK)
        return -1;
    while (!bad && sqlite3changeset_next(it) == SQLITE_ROW) {
        const char *tab;
        int ncol, op, ind;
        unsigned char *pk;
        int npk;
        sqlite3_value *v;
        if (sqlite3changeset_op(it, &tab, &ncol, &op, &ind) != SQLITE_OK ||
            sqlite3changeset_pk(it, &pk, &npk) != SQLITE_OK || npk != ncol) {
            bad = 1;
            break;
        }
        if (strcmp(tab, known) != 0) {
            snprintf(known, sizeof known, "%s", tab);
            known_cols = strlen(tab) < sizeof known ? table_columns(h, tab) : 0;
        }
        if (ncol != known_cols) {
            bad = 1;
            break;
        }
        for (int i = 0; i < ncol && !bad; i++) {
            if (op != SQLITE_INSERT && sqlite3changeset_old(it, i, &v) != SQLITE_OK)
                bad = 1;
            if (op != SQLITE_DELETE && sqlite3changeset_new(it, i, &v) != SQLITE_OK)
                bad = 1;
        }
        (*count)++;
    }
    return sqlite3changeset_finalize(it) == SQLITE_OK && !bad ? 0 : -1;
}

int cv_journal_replay(sqlite3 *h, const char *dir, int64_t after_lsn,
                      int64_t until_ms, bool progress, cv_replay *out,
                      char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    reader r;
    if (reader_open(&r, dir, after_lsn + 1) < 0) {
        snprintf(err, errlen, "cannot read journal directory %s: %s", dir,
                 strerror(errno));
        return CV_REPLAY_ERROR;
    }
    if (sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot begin: %s", sqlite3_errmsg(h));
        reader_close(&r);
        return CV_REPLAY_ERROR;
    }
    cv_progress pr;
    cv_progress_init(&pr, "replay");
    pr.on = pr.on && progress;
    /* consecutive batches are merged and applied together: one apply per
     * batch costs ~0.1 ms of set-up, which 100,000 small batches feel */
    sqlite3_changegroup *g = NULL;
    int64_t group_first = 0, grouped = 0;
    size_t group_bytes = 0;
    int rc;
    uint8_t *rec;
    size_t n;
    for (;;) {
        rc = reader_next(&r, &rec, &n, &out->torn_tail, err, errlen);
        bool stop = rc != 1 || (until_ms >= 0 && (int64_t)get64(rec + 12) > until_ms);
        if (rc == 1 && !stop) {
            int64_t lsn = (int64_t)get64(rec + 4), at = (int64_t)get64(rec + 12);
            int len = (int)(n - REC_HEAD);
            if (!patchset_wellformed(rec + REC_HEAD, (size_t)len) ||
                check_changes(h, rec + REC_HEAD, len, &out->changes) < 0 ||
                (!g && sqlite3changegroup_new(&g) != SQLITE_OK) ||
                sqlite3changegroup_add(g, len, rec + REC_HEAD) != SQLITE_OK) {
                snprintf(err, errlen, "batch %lld cannot be read as changes",
                         (long long)lsn);
                rc = CV_REPLAY_DAMAGED;
                break;
            }
            if (!grouped++)
                group_first = lsn;
            group_bytes += (size_t)len;
            if (!out->first)
                out->first = lsn;
            out->last = lsn;
            out->last_at_ms = at;
        }
        if (grouped && (stop || grouped >= 4096 || group_bytes >= (16u << 20))) {
            int len = 0;
            void *ps = NULL;
            conflict_note c = {0};
            int arc = sqlite3changegroup_output(g, &len, &ps);
            if (arc == SQLITE_OK)
                arc = sqlite3changeset_apply(h, len, ps, NULL, on_conflict, &c);
            sqlite3_free(ps);
            sqlite3changegroup_delete(g);
            g = NULL;
            if (c.conflicts) {
                snprintf(err, errlen, "batches %lld to %lld do not fit the "
                         "database: %s", (long long)group_first,
                         (long long)out->last, c.what);
                rc = CV_REPLAY_CONFLICT;
                break;
            }
            if (arc != SQLITE_OK) {
                snprintf(err, errlen, "cannot apply batches %lld to %lld: %s",
                         (long long)group_first, (long long)out->last,
                         sqlite3_errmsg(h));
                rc = CV_REPLAY_ERROR;
                break;
            }
            out->batches += grouped;
            grouped = 0;
            group_bytes = 0;
            cv_progress_update(&pr, (uint64_t)out->batches, "batches");
        }
        if (stop)
            break;
    }
    if (g)
        sqlite3changegroup_delete(g);
    cv_progress_done(&pr);
    reader_close(&r);
    if (rc > 0)
        rc = 0;
    if (rc == 0 && out->batches) {
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta(key, value) "
                 "VALUES('journal_lsn', %lld)", (long long)out->last);
        if (sqlite3_exec(h, sql, NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "cannot record the batch: %s", sqlite3_errmsg(h));
            rc = CV_REPLAY_ERROR;
        }
    }
    if (rc == 0 && sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot commit the replay: %s", sqlite3_errmsg(h));
        rc = CV_REPLAY_ERROR;
    }
    if (rc != 0) {
        sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
        out->batches = out->changes = out->first = out->last = 0;
    }
    return rc;
}

/* ---- cutting and pruning ----------------------------------------------- */

/* Copy the bytes of src from off to its end into a new segment first in
 * aside, then cut src there. */
static int split_segment(const char *src, int64_t off, const char *aside,
                         int64_t first, char *err, size_t errlen)
{
    int in = open(src, O_RDWR | O_CLOEXEC), out = -1, rc = -1;
    if (in < 0)
        goto ioerr;
    if (aside) {
        out = new_segment(aside, first, err, errlen);
        if (out < 0)
            goto out;
        uint8_t buf[1 << 16];
        ssize_t k;
        int64_t at = off;
        while ((k = pread(in, buf, sizeof buf, at)) > 0) {
            if (cv_write_all(out, buf, (size_t)k) < 0)
                goto ioerr;
            at += k;
        }
        if (k < 0 || fsync(out) < 0)
            goto ioerr;
    }
    if (ftruncate(in, off) < 0 || fsync(in) < 0)
        goto ioerr;
    rc = 0;
    goto out;
ioerr:
    snprintf(err, errlen, "cannot move journal records out of %s: %s", src,
             strerror(errno));
out:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return rc;
}

int cv_journal_cut(const char *dir, int64_t after_lsn, const char *aside_dir,
                   int64_t *moved, char *err, size_t errlen)
{
    *moved = 0;
    seglist l;
    if (list_segments(dir, &l) < 0) {
        snprintf(err, errlen, "cannot read journal directory %s: %s", dir,
                 strerror(errno));
        return -1;
    }
    cv_journal_info info;
    if (cv_journal_stat(dir, &info) < 0 || info.last <= after_lsn) {
        free(l.first);
        return 0;
    }
    if (aside_dir && cv_mkdir_p(aside_dir, 0700, true) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", aside_dir, strerror(errno));
        free(l.first);
        return -1;
    }
    int rc = 0;
    for (size_t i = l.n; i-- > 0 && rc == 0;) {
        char *p = seg_path(dir, l.first[i]);
        if (l.first[i] > after_lsn) { /* all of it goes */
            char *q = aside_dir ? seg_path(aside_dir, l.first[i]) : NULL;
            if (q ? rename(p, q) < 0 : unlink(p) < 0) {
                snprintf(err, errlen, "cannot move %s: %s", p, strerror(errno));
                rc = -1;
            }
            free(q);
        } else { /* the segment holding after_lsn: split after it */
            int fd = open(p, O_RDONLY | O_CLOEXEC);
            int64_t end, last, off = HEAD_BYTES;
            bool torn;
            uint8_t rh[REC_HEAD];
            if (fd < 0 || walk_segment(fd, l.first[i], &end, &last, &torn) < 0) {
                snprintf(err, errlen, "journal segment %s is not readable as one", p);
                rc = -1;
            }
            for (int64_t lsn = l.first[i]; rc == 0 && lsn <= after_lsn; lsn++) {
                if (pread(fd, rh, sizeof rh, off) != (ssize_t)sizeof rh) {
                    rc = -1;
                    break;
                }
                off += REC_HEAD + (int64_t)get32(rh) + REC_SUM;
            }
            if (fd >= 0)
                close(fd);
            if (rc == 0 && off < end)
                rc = split_segment(p, off, aside_dir, after_lsn + 1, err, errlen);
            free(p);
            break;
        }
        free(p);
    }
    if (rc == 0)
        *moved = info.last - after_lsn;
    /* the segments moved aside stay there, and out of dir, after a cut */
    if (aside_dir)
        cv_fsync_dir(aside_dir);
    cv_fsync_dir(dir);
    free(l.first);
    return rc;
}

int cv_journal_prune(const char *dir, int64_t covered_lsn, int *removed,
                     int64_t *bytes)
{
    *removed = 0;
    *bytes = 0;
    seglist l;
    if (list_segments(dir, &l) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i + 1 < l.n && l.first[i + 1] - 1 <= covered_lsn; i++) {
        char *p = seg_path(dir, l.first[i]);
        struct stat st;
        int64_t sz = stat(p, &st) == 0 ? (int64_t)st.st_size : 0;
        if (unlink(p) < 0) {
            cv_warn("cannot remove journal segment %s: %s", p, strerror(errno));
            rc = -1;
        } else {
            (*removed)++;
            *bytes += sz;
        }
        free(p);
    }
    if (*removed)
        cv_fsync_dir(dir);
    free(l.first);
    return rc;
}

int cv_journal_stat(const char *dir, cv_journal_info *out)
{
    memset(out, 0, sizeof *out);
    seglist l;
    if (list_segments(dir, &l) < 0)
        return -1;
    for (size_t i = 0; i < l.n; i++) {
        char *p = seg_path(dir, l.first[i]);
        struct stat st;
        if (stat(p, &st) == 0)
            out->bytes += st.st_size;
        if (i + 1 == l.n) {
            int fd = open(p, O_RDONLY | O_CLOEXEC);
            int64_t end;
            bool torn;
            if (fd < 0 || walk_segment(fd, l.first[i], &end, &out->last, &torn) < 0)
                out->last = l.first[i] - 1;
            if (fd >= 0)
                close(fd);
        }
        free(p);
    }
    out->segments = (int)l.n;
    if (l.n)
        out->first = l.first[0];
    if (out->last < out->first)
        out->first = out->last = 0;
    free(l.first);
    return 0;
}
