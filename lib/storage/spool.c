/* spool.c - segment files of checksummed records, group-committed, deleted
 * once acknowledged. See spool.h for the format and the promises. */
#include "storage/spool.h"

#include "base/util.h"

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

#define MAGIC "CVSPOOL1"
#define MAGIC_LEN 8
#define HDR_LEN 12 /* u32 length + 8 bytes of checksum */
/* Appends are written out when this much is buffered, synced or not. */
#define WRITE_CHUNK (256u << 10)

typedef struct {
    uint32_t seq;
    uint32_t nrec;   /* records in the segment */
    uint32_t nacked; /* of which acknowledged */
    uint64_t bytes;  /* its size, buffered bytes included */
    uint8_t *acked;  /* a bit per record */
} seg;

struct cv_spool {
    char *dir;
    uint64_t dropped;   /* bytes cut off segments at replay (never synced) */
    int lockfd;
    seg *segs;       /* sorted by seq; the current one, if any, is last */
    size_t nsegs, capsegs;
    int cur_fd;      /* the segment appends go to, or -1 */
    uint32_t cur_seq;
    uint32_t next_seq;
    bool dir_dirty;  /* a segment was created: fsync the directory */
    char *buf;       /* appended, not yet written */
    size_t buflen, bufcap;
    uint64_t last, synced;
    /* the current segment as of the last sync: what a failure keeps */
    uint64_t cur_synced_bytes;
    uint32_t cur_synced_nrec;
    int failed;      /* errno of an earlier I/O failure: no more appends */
    uint64_t pending;
    /* replay of the segments an earlier run left (seq < replay_upto) */
    uint32_t replay_upto;
    uint32_t rp_seq, rp_idx, rp_nrec;
    FILE *rp_f;
    char *rp_buf;
    size_t rp_cap;
    uint64_t replay_left;
};

static uint64_t handle(uint32_t seq, uint32_t idx)
{
    return (uint64_t)seq << 32 | idx;
}

static void checksum(const char *p, size_t len, uint8_t out[8])
{
    uint8_t full[crypto_generichash_BYTES_MIN], l[4];
    uint32_t n = (uint32_t)len;
    l[0] = (uint8_t)n, l[1] = (uint8_t)(n >> 8), l[2] = (uint8_t)(n >> 16),
    l[3] = (uint8_t)(n >> 24);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof full);
    crypto_generichash_update(&st, l, sizeof l);
    crypto_generichash_update(&st, (const uint8_t *)p, len);
    crypto_generichash_final(&st, full, sizeof full);
    memcpy(out, full, 8);
}

static uint32_t get_u32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
           (uint32_t)b[3] << 24;
}

static char *seg_path(const cv_spool *sp, uint32_t seq)
{
    return cv_fmt("%s/%08x.seg", sp->dir, seq);
}

static seg *find_seg(cv_spool *sp, uint32_t seq)
{
    size_t lo = 0, hi = sp->nsegs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sp->segs[mid].seq == seq)
            return &sp->segs[mid];
        if (sp->segs[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static seg *add_seg(cv_spool *sp, uint32_t seq, uint32_t bits)
{
    if (sp->nsegs == sp->capsegs) {
        sp->capsegs = sp->capsegs ? sp->capsegs * 2 : 16;
        sp->segs = cv_realloc(sp->segs, sp->capsegs * sizeof *sp->segs);
    }
    seg *s = &sp->segs[sp->nsegs++];
    memset(s, 0, sizeof *s);
    s->seq = seq;
    s->acked = cv_calloc((bits + 7) / 8 + 1, 1);
    return s;
}

/* Delete a segment whose records are all acknowledged. Losing the unlink
 * to a crash only means its records are replayed, and deduped, again. */
static int drop_seg(cv_spool *sp, seg *s)
{
    char *path = seg_path(sp, s->seq);
    int rc = 0;
    if (unlink(path) < 0 && errno != ENOENT) {
        cv_warn("cannot delete acknowledged spool segment %s: %s", path,
                strerror(errno));
        rc = -1;
    }
    free(path);
    free(s->acked);
    size_t i = (size_t)(s - sp->segs);
    memmove(s, s + 1, (sp->nsegs - i - 1) * sizeof *s);
    sp->nsegs--;
    return rc;
}

/* Read one record from f: 1 with the payload in *buf, 0 at a clean end,
 * -1 at a torn or corrupt record (what in why). */
static int read_record(FILE *f, char **buf, size_t *cap, size_t *len,
                       const char **why)
{
    uint8_t hdr[HDR_LEN], sum[8];
    size_t n = fread(hdr, 1, HDR_LEN, f);
    if (n == 0 && feof(f))
        return 0;
    if (n < HDR_LEN) {
        *why = ferror(f) ? "read error" : "record header cut short";
        return -1;
    }
    uint32_t l = get_u32(hdr);
    if (l > CV_SPOOL_MAX_RECORD) {
        *why = "impossible record length";
        return -1;
    }
    if (*cap < (size_t)l + 1) {
        *cap = (size_t)l + 1;
        *buf = cv_realloc(*buf, *cap);
    }
    if (fread(*buf, 1, l, f) != l) {
        *why = ferror(f) ? "read error" : "record cut short";
        return -1;
    }
    checksum(*buf, l, sum);
    if (memcmp(sum, hdr + 4, 8) != 0) {
        *why = "bad checksum";
        return -1;
    }
    (*buf)[l] = '\0';
    *len = l;
    return 1;
}

/* Scan one segment of an earlier run: count its good records, truncate a
 * torn or corrupt tail, delete it if nothing is left. */
static int scan_seg(cv_spool *sp, uint32_t seq, char *err, size_t errlen)
{
    char *path = seg_path(sp, seq);
    int rc = -1, fd = open(path, O_RDWR | O_CLOEXEC);
    FILE *f = NULL;
    char *buf = NULL;
    size_t cap = 0, len;
    if (fd < 0) {
        snprintf(err, errlen, "cannot open spool segment %s: %s", path,
                 strerror(errno));
        goto out;
    }
    f = fdopen(fd, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read spool segment %s: %s", path,
                 strerror(errno));
        close(fd);
        goto out;
    }
    char magic[MAGIC_LEN];
    size_t got = fread(magic, 1, MAGIC_LEN, f);
    if (got < MAGIC_LEN || memcmp(magic, MAGIC, MAGIC_LEN) != 0) {
        if (ferror(f)) {
            snprintf(err, errlen, "cannot read spool segment %s: %s", path,
                     strerror(errno));
            goto out;
        }
        if (got == MAGIC_LEN) {
            /* not ours, or its first bytes are damaged: keep it aside */
            char *aside = cv_fmt("%s.corrupt", path);
            cv_warn("%s is not a spool segment; moved to %s", path, aside);
            if (rename(path, aside) < 0) {
                snprintf(err, errlen, "cannot move %s aside: %s", path,
                         strerror(errno));
                free(aside);
                goto out;
            }
            free(aside);
        } else {
            unlink(path); /* created, then a crash before its first sync */
        }
        rc = 0;
        goto out;
    }
    uint32_t nrec = 0;
    uint64_t good = MAGIC_LEN;
    const char *why = NULL;
    int r;
    while ((r = read_record(f, &buf, &cap, &len, &why)) == 1) {
        nrec++;
        good += HDR_LEN + len;
    }
    if (r < 0 && strcmp(why, "read error") == 0) {
        snprintf(err, errlen, "cannot read spool segment %s: %s", path,
                 strerror(errno));
        goto out;
    }
    if (r < 0) {
        struct stat st;
        long long size = fstat(fd, &st) == 0 ? (long long)st.st_size : -1;
        /* Nothing after this point was synced whole, or the disk damaged
         * it: either way the records before it are all that is there. */
        cv_warn("spool segment %s: %s at byte %llu; replay stops there "
                "(%lld bytes dropped)", path, why, (unsigned long long)good,
                size >= 0 ? size - (long long)good : -1);
        if (size > (long long)good)
            sp->dropped += (uint64_t)(size - (long long)good);
        if (ftruncate(fd, (off_t)good) < 0 || fdatasync(fd) < 0) {
            snprintf(err, errlen, "cannot truncate spool segment %s: %s",
                     path, strerror(errno));
            goto out;
        }
    }
    if (nrec == 0) {
        unlink(path);
    } else {
        seg *s = add_seg(sp, seq, nrec);
        s->nrec = nrec;
        s->bytes = good;
        sp->pending += nrec;
        sp->replay_left += nrec;
    }
    rc = 0;
out:
    if (f)
        fclose(f);
    free(buf);
    free(path);
    return rc;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int take_lock(cv_spool *sp, char *err, size_t errlen)
{
    char *path = cv_fmt("%s/lock", sp->dir);
    int rc = -1;
    sp->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sp->lockfd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (flock(sp->lockfd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK) {
            char who[32] = "";
            int saved = errno;
            ssize_t n = pread(sp->lockfd, who, sizeof who - 1, 0);
            who[n > 0 ? n : 0] = '\0';
            who[strcspn(who, "\n")] = '\0';
            snprintf(err, errlen, "spool %s is in use by process %s (it holds "
                     "%s); one ingest per source", sp->dir,
                     who[0] ? who : "(unknown)", path);
            free(path);
            errno = saved; /* callers tell "busy" from "broken" by it */
            return -1;
        } else {
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
        }
        goto out;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(sp->lockfd, 0) < 0 || pwrite(sp->lockfd, pid, (size_t)n, 0) != n)
        cv_warn("cannot write the process id into %s: %s", path, strerror(errno));
    rc = 0;
out:
    free(path);
    return rc;
}

cv_spool *cv_spool_open(const char *dir, char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        snprintf(err, errlen, "cannot initialise libsodium");
        return NULL;
    }
    cv_spool *sp = cv_calloc(1, sizeof *sp);
    sp->dir = cv_strdup(dir);
    sp->lockfd = sp->cur_fd = -1;
    uint32_t *seqs = NULL;
    size_t nseqs = 0, capseqs = 0;
    DIR *d = NULL;

    if (cv_mkdir_p(dir, 0700, true) < 0) {
        snprintf(err, errlen, "cannot create spool directory %s: %s", dir,
                 strerror(errno));
        goto fail;
    }
    if (take_lock(sp, err, errlen) < 0)
        goto fail;
    d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot read spool directory %s: %s", dir,
                 strerror(errno));
        goto fail;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned seq;
        if (strlen(e->d_name) != 12 ||
            strspn(e->d_name, "0123456789abcdef") != 8 ||
            strcmp(e->d_name + 8, ".seg") != 0 ||
            sscanf(e->d_name, "%8x", &seq) != 1 || seq == 0)
            continue;
        if (nseqs == capseqs) {
            capseqs = capseqs ? capseqs * 2 : 64;
            seqs = cv_realloc(seqs, capseqs * sizeof *seqs);
        }
        seqs[nseqs++] = seq;
    }
    closedir(d);
    d = NULL;
    if (nseqs)
        qsort(seqs, nseqs, sizeof *seqs, cmp_u32);
    sp->next_seq = 1;
    for (size_t i = 0; i < nseqs; i++) {
        if (scan_seg(sp, seqs[i], err, errlen) < 0)
            goto fail;
        sp->next_seq = seqs[i] + 1;
    }
    if (sp->next_seq == 0) {
        snprintf(err, errlen, "spool %s: segment numbers exhausted", dir);
        goto fail;
    }
    sp->replay_upto = sp->next_seq;
    free(seqs);
    return sp;
fail:;
    int saved = errno;
    if (d)
        closedir(d);
    free(seqs);
    cv_spool_destroy(&sp);
    errno = saved;
    return NULL;
}

/* An I/O failure (ENOSPC, EIO): the spool takes nothing more. Records
 * appended since the last sync were never accepted; they leave the
 * current segment (file and counts) now, so what stays to be replayed
 * is exactly what was accepted, and no torn record is left for the next
 * start to cut. -1 with errno. */
static int fail_io(cv_spool *sp, int err)
{
    sp->failed = err ? err : EIO;
    sp->buflen = 0;
    seg *s = sp->cur_fd >= 0 ? find_seg(sp, sp->cur_seq) : NULL;
    if (s && (s->nrec > sp->cur_synced_nrec || s->bytes != sp->cur_synced_bytes)) {
        sp->pending -= s->nrec - sp->cur_synced_nrec;
        s->nrec = sp->cur_synced_nrec;
        s->bytes = sp->cur_synced_bytes;
        sp->last = sp->synced;
        /* shrinking needs no space; should it fail, the next start cuts
         * what is torn and replays the whole records (never acked, so
         * harmless: store dedupes) */
        if (ftruncate(sp->cur_fd, (off_t)sp->cur_synced_bytes) < 0)
            cv_warn("cannot take unsynced records out of spool segment "
                    "%08x in %s: %s", sp->cur_seq, sp->dir, strerror(errno));
    }
    errno = sp->failed;
    return -1;
}

/* Write out what is buffered (no sync). */
static int flush_buf(cv_spool *sp)
{
    if (sp->buflen == 0)
        return 0;
    if (cv_write_all(sp->cur_fd, sp->buf, sp->buflen) < 0)
        return fail_io(sp, errno);
    sp->buflen = 0;
    return 0;
}

int cv_spool_sync(cv_spool *sp)
{
    if (sp->failed) {
        errno = sp->failed;
        return -1;
    }
    if (sp->cur_fd < 0 || sp->synced == sp->last)
        return 0;
    if (flush_buf(sp) < 0)
        return -1;
    if (fdatasync(sp->cur_fd) < 0) {
        /* after a failed fsync the page cache state is unknown: stop */
        return fail_io(sp, errno);
    }
    if (sp->dir_dirty) {
        char *p = seg_path(sp, sp->cur_seq);
        int rc = cv_fsync_dir_of(p);
        free(p);
        if (rc < 0)
            return fail_io(sp, errno);
        sp->dir_dirty = false;
    }
    sp->synced = sp->last;
    seg *s = find_seg(sp, sp->cur_seq);
    if (s) {
        sp->cur_synced_bytes = s->bytes;
        sp->cur_synced_nrec = s->nrec;
    }
    return 0;
}

/* Close the current segment (synced) and start the next one. */
static int roll(cv_spool *sp)
{
    if (sp->cur_fd >= 0) {
        if (cv_spool_sync(sp) < 0)
            return -1;
        close(sp->cur_fd);
        sp->cur_fd = -1;
        seg *s = find_seg(sp, sp->cur_seq);
        sp->cur_seq = 0;
        if (s && s->nacked == s->nrec)
            drop_seg(sp, s);
    }
    if (sp->next_seq == 0) {
        sp->failed = EOVERFLOW;
        errno = EOVERFLOW;
        return -1;
    }
    uint32_t seq = sp->next_seq++;
    char *path = seg_path(sp, seq);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    int saved = errno;
    free(path);
    if (fd < 0) {
        sp->failed = saved;
        errno = saved;
        return -1;
    }
    sp->cur_fd = fd;
    sp->cur_seq = seq;
    sp->cur_synced_bytes = 0;
    sp->cur_synced_nrec = 0;
    sp->dir_dirty = true;
    seg *s = add_seg(sp, seq, CV_SPOOL_SEG_RECORDS);
    s->bytes = MAGIC_LEN;
    memcpy(sp->buf, MAGIC, MAGIC_LEN);
    sp->buflen = MAGIC_LEN;
    return 0;
}

int cv_spool_append(cv_spool *sp, const char *line, size_t len, uint64_t *rec)
{
    if (sp->failed) {
        errno = sp->failed;
        return -1;
    }
    if (len > CV_SPOOL_MAX_RECORD) {
        errno = EMSGSIZE;
        return -1;
    }
    if (!sp->buf) {
        sp->bufcap = WRITE_CHUNK + MAGIC_LEN;
        sp->buf = cv_malloc(sp->bufcap);
    }
    seg *s = sp->cur_fd >= 0 ? &sp->segs[sp->nsegs - 1] : NULL;
    if (!s || s->nrec >= CV_SPOOL_SEG_RECORDS ||
        s->bytes + HDR_LEN + len > CV_SPOOL_SEG_BYTES) {
        if (!s || s->nrec > 0) {
            if (roll(sp) < 0)
                return -1;
            s = &sp->segs[sp->nsegs - 1];
        }
    }
    size_t need = HDR_LEN + len;
    if (sp->buflen + need > sp->bufcap) {
        if (flush_buf(sp) < 0)
            return -1;
        if (need > sp->bufcap) { /* a record larger than the buffer */
            uint8_t hdr[HDR_LEN];
            hdr[0] = (uint8_t)len, hdr[1] = (uint8_t)(len >> 8),
            hdr[2] = (uint8_t)(len >> 16), hdr[3] = (uint8_t)(len >> 24);
            checksum(line, len, hdr + 4);
            if (cv_write_all(sp->cur_fd, hdr, HDR_LEN) < 0 ||
                cv_write_all(sp->cur_fd, line, len) < 0)
                return fail_io(sp, errno);
            goto added;
        }
    }
    uint8_t *h = (uint8_t *)sp->buf + sp->buflen;
    h[0] = (uint8_t)len, h[1] = (uint8_t)(len >> 8), h[2] = (uint8_t)(len >> 16),
    h[3] = (uint8_t)(len >> 24);
    checksum(line, len, h + 4);
    memcpy(sp->buf + sp->buflen + HDR_LEN, line, len);
    sp->buflen += need;
added:
    *rec = sp->last = handle(s->seq, s->nrec);
    s->nrec++;
    s->bytes += need;
    sp->pending++;
    return 0;
}

uint64_t cv_spool_synced(const cv_spool *sp) { return sp->synced; }

int cv_spool_ack(cv_spool *sp, uint64_t rec)
{
    seg *s = find_seg(sp, (uint32_t)(rec >> 32));
    uint32_t idx = (uint32_t)rec;
    if (!s || idx >= s->nrec || (s->acked[idx / 8] & (1u << (idx % 8))))
        return 0;
    s->acked[idx / 8] |= (uint8_t)(1u << (idx % 8));
    s->nacked++;
    sp->pending--;
    if (s->nacked == s->nrec && s->seq != sp->cur_seq)
        return drop_seg(sp, s);
    return 0;
}

int cv_spool_replay_next(cv_spool *sp, uint64_t *rec, const char **line,
                         size_t *len)
{
    for (;;) {
        if (!sp->rp_f) {
            /* the next segment of an earlier run, if any is left */
            seg *next = NULL;
            for (size_t i = 0; i < sp->nsegs; i++)
                if (sp->segs[i].seq > sp->rp_seq &&
                    sp->segs[i].seq < sp->replay_upto) {
                    next = &sp->segs[i];
                    break;
                }
            if (!next) {
                sp->replay_left = 0;
                return 0;
            }
            char *path = seg_path(sp, next->seq);
            sp->rp_f = fopen(path, "re");
            int saved = errno;
            free(path);
            sp->rp_seq = next->seq;
            sp->rp_idx = 0;
            sp->rp_nrec = next->nrec;
            char magic[MAGIC_LEN];
            if (!sp->rp_f) {
                errno = saved;
                return -1;
            }
            if (fread(magic, 1, MAGIC_LEN, sp->rp_f) != MAGIC_LEN) {
                fclose(sp->rp_f);
                sp->rp_f = NULL;
                errno = EIO;
                return -1;
            }
        }
        if (sp->rp_idx >= sp->rp_nrec) {
            fclose(sp->rp_f);
            sp->rp_f = NULL;
            continue;
        }
        const char *why;
        int r = read_record(sp->rp_f, &sp->rp_buf, &sp->rp_cap, len, &why);
        if (r <= 0) {
            /* it checked out when opened: the file changed under us */
            errno = r < 0 && strcmp(why, "read error") == 0 ? errno : EIO;
            return -1;
        }
        uint32_t idx = sp->rp_idx++;
        sp->replay_left--;
        seg *s = find_seg(sp, sp->rp_seq);
        if (s && (s->acked[idx / 8] & (1u << (idx % 8))))
            continue;
        *rec = handle(sp->rp_seq, idx);
        *line = sp->rp_buf;
        return 1;
    }
}

uint64_t cv_spool_replay_left(const cv_spool *sp) { return sp->replay_left; }
uint64_t cv_spool_pending(const cv_spool *sp) { return sp->pending; }
uint64_t cv_spool_dropped(const cv_spool *sp) { return sp->dropped; }
const char *cv_spool_dir(const cv_spool *sp) { return sp->dir; }

uint64_t cv_spool_bytes(const cv_spool *sp)
{
    uint64_t n = 0;
    for (size_t i = 0; i < sp->nsegs; i++)
        n += sp->segs[i].bytes;
    return n;
}

void cv_spool_destroy(cv_spool **p)
{
    cv_spool *sp = *p;
    if (!sp)
        return;
    if (sp->cur_fd >= 0) {
        /* a failure already reported is not reported again */
        if (!sp->failed && cv_spool_sync(sp) < 0)
            cv_err("cannot sync the spool in %s: %s", sp->dir,
                   strerror(errno));
        close(sp->cur_fd);
        sp->cur_fd = -1;
        sp->cur_seq = 0;
    }
    /* the current segment is closed now: drop it too if all is acked */
    for (size_t i = 0; i < sp->nsegs;) {
        if (sp->segs[i].nacked == sp->segs[i].nrec)
            drop_seg(sp, &sp->segs[i]);
        else
            i++;
    }
    for (size_t i = 0; i < sp->nsegs; i++)
        free(sp->segs[i].acked);
    if (sp->rp_f)
        fclose(sp->rp_f);
    if (sp->lockfd >= 0)
        close(sp->lockfd);
    free(sp->rp_buf);
    free(sp->segs);
    free(sp->buf);
    free(sp->dir);
    free(sp);
    *p = NULL;
}
