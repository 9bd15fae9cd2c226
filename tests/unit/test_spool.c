/* test_spool.c - the durable spool: replay after reopen, deletion of
 * acknowledged segments, torn and corrupt records, the lock. */
#include "harness.h"

#include "storage/spool.h"
#include "base/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *spool_dir(void)
{
    return cv_fmt("%s/spool/src", cvt_tmpdir());
}

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".seg") && !strstr(e->d_name, ".corrupt"))
            n++;
    closedir(d);
    return n;
}

static char *line_for(int i)
{
    return cv_fmt("{\"id\":\"ev-%06d\",\"kind\":\"click\",\"user_id\":\"u%d\"}",
                  i, i % 7);
}

/* Append n records (ev-000000 ...) and sync; handles into recs if given. */
static int fill(cv_spool *sp, int from, int n, uint64_t *recs)
{
    for (int i = from; i < from + n; i++) {
        char *l = line_for(i);
        uint64_t rec;
        int rc = cv_spool_append(sp, l, strlen(l), &rec);
        free(l);
        if (rc < 0)
            return -1;
        if (recs)
            recs[i - from] = rec;
    }
    return cv_spool_sync(sp);
}

/* Replay everything, checking the records come back in order from `from`. */
static int replay_all(cv_spool *sp, int from, uint64_t *recs, int max)
{
    uint64_t rec;
    const char *line;
    size_t len;
    int n = 0, r;
    while ((r = cv_spool_replay_next(sp, &rec, &line, &len)) == 1) {
        char *want = line_for(from + n);
        int same = strlen(want) == len && memcmp(want, line, len) == 0;
        free(want);
        if (!same)
            return -1000 - n;
        if (recs && n < max)
            recs[n] = rec;
        n++;
    }
    return r < 0 ? -1 : n;
}

TEST(spool_reopen_replays_all)
{
    char err[256], *dir = spool_dir();
    cv_spool *sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    CHECK_INT(fill(sp, 0, 100, NULL), 0);
    CHECK_INT(cv_spool_pending(sp), 100);
    CHECK(cv_spool_synced(sp) != 0);
    /* nothing of this run is replayed */
    uint64_t rec;
    const char *line;
    size_t len;
    CHECK_INT(cv_spool_replay_next(sp, &rec, &line, &len), 0);
    cv_spool_destroy(&sp);
    CHECK(!sp);

    sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    CHECK_INT(cv_spool_pending(sp), 100);
    CHECK_INT(cv_spool_replay_left(sp), 100);
    CHECK_INT(replay_all(sp, 0, NULL, 0), 100);
    CHECK_INT(cv_spool_replay_left(sp), 0);
    cv_spool_destroy(&sp);
    struct stat st;
    CHECK_INT(stat(dir, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0700);
    free(dir);
}

TEST(spool_acked_segments_are_deleted)
{
    char err[256], *dir = spool_dir();
    int n = CV_SPOOL_SEG_RECORDS * 2 + 10;
    uint64_t *recs = cv_calloc((size_t)n, sizeof *recs);
    cv_spool *sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    CHECK_INT(fill(sp, 0, n, recs), 0);
    CHECK_INT(count_segments(dir), 3);
    /* the first segment, all acked (twice: harmless), goes at once */
    for (int i = 0; i < CV_SPOOL_SEG_RECORDS; i++) {
        CHECK_INT(cv_spool_ack(sp, recs[i]), 0);
        CHECK_INT(cv_spool_ack(sp, recs[i]), 0);
    }
    CHECK_INT(count_segments(dir), 2);
    CHECK_INT(cv_spool_pending(sp), n - CV_SPOOL_SEG_RECORDS);
    /* ack all but one of the second segment, and all of the current */
    for (int i = CV_SPOOL_SEG_RECORDS + 1; i < n; i++)
        CHECK_INT(cv_spool_ack(sp, recs[i]), 0);
    /* the current segment stays while it is current */
    CHECK_INT(count_segments(dir), 2);
    cv_spool_destroy(&sp);
    CHECK_INT(count_segments(dir), 1);

    /* reopened: only the unacked segment's records come back, including
     * the acked ones that share its file (store dedupes them) */
    sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    CHECK_INT(cv_spool_pending(sp), CV_SPOOL_SEG_RECORDS);
    uint64_t *again = cv_calloc(CV_SPOOL_SEG_RECORDS, sizeof *again);
    CHECK_INT(replay_all(sp, CV_SPOOL_SEG_RECORDS, again, CV_SPOOL_SEG_RECORDS),
              CV_SPOOL_SEG_RECORDS);
    for (int i = 0; i < CV_SPOOL_SEG_RECORDS; i++)
        CHECK_INT(cv_spool_ack(sp, again[i]), 0);
    CHECK_INT(cv_spool_pending(sp), 0);
    CHECK_INT(count_segments(dir), 0);
    cv_spool_destroy(&sp);
    CHECK_INT(count_segments(dir), 0);
    free(again);
    free(recs);
    free(dir);
}

static char *first_segment(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char *best = NULL;
    while (d && (e = readdir(d)))
        if (strlen(e->d_name) == 12 && strstr(e->d_name, ".seg") &&
            (!best || strcmp(e->d_name, best) < 0)) {
            free(best);
            best = cv_strdup(e->d_name);
        }
    if (d)
        closedir(d);
    char *path = best ? cv_fmt("%s/%s", dir, best) : NULL;
    free(best);
    return path;
}

TEST(spool_torn_tail_is_truncated)
{
    char err[256], *dir = spool_dir();
    cv_spool *sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    CHECK_INT(fill(sp, 0, 50, NULL), 0);
    cv_spool_destroy(&sp);
    char *seg = first_segment(dir);
    CHECK(seg);
    struct stat st;
    CHECK_INT(stat(seg, &st), 0);
    /* a crash in the middle of writing the last record */
    CHECK_INT(truncate(seg, st.st_size - 7), 0);

    sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    CHECK_INT(cv_spool_pending(sp), 49);
    CHECK_INT(replay_all(sp, 0, NULL, 0), 49);
    /* the file was cut back to its last whole record, and appends go on */
    struct stat st2;
    CHECK_INT(stat(seg, &st2), 0);
    CHECK(st2.st_size < st.st_size - 7);
    CHECK_INT(fill(sp, 1000, 5, NULL), 0);
    cv_spool_destroy(&sp);
    sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    CHECK_INT(cv_spool_pending(sp), 54);
    cv_spool_destroy(&sp);
    free(seg);
    free(dir);
}

TEST(spool_corrupt_byte_stops_replay)
{
    char err[256], *dir = spool_dir();
    cv_spool *sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    CHECK_INT(fill(sp, 0, 20, NULL), 0);
    cv_spool_destroy(&sp);
    char *seg = first_segment(dir);
    CHECK(seg);
    /* flip a byte in the payload of the 11th record */
    char *l = line_for(0);
    off_t rec_size = 12 + (off_t)strlen(l);
    free(l);
    int fd = open(seg, O_RDWR);
    CHECK(fd >= 0);
    off_t at = 8 + 10 * rec_size + 12 + 5;
    char b;
    CHECK_INT(pread(fd, &b, 1, at), 1);
    b ^= 0x20;
    CHECK_INT(pwrite(fd, &b, 1, at), 1);
    close(fd);

    sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    CHECK_INT(cv_spool_pending(sp), 10);
    CHECK_INT(replay_all(sp, 0, NULL, 0), 10);
    cv_spool_destroy(&sp);

    /* a damaged length is caught the same way */
    fd = open(seg, O_RDWR);
    CHECK(fd >= 0);
    unsigned char big[4] = {0xff, 0xff, 0xff, 0x7f};
    CHECK_INT(pwrite(fd, big, 4, 8 + 5 * rec_size), 4);
    close(fd);
    sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    CHECK_INT(replay_all(sp, 0, NULL, 0), 5);
    cv_spool_destroy(&sp);
    free(seg);
    free(dir);
}

TEST(spool_lock_refuses_second_opener)
{
    char err[256], *dir = spool_dir();
    cv_spool *sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    /* flock locks belong to the open file: another process must fail */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char e2[256];
        cv_spool *sp2 = cv_spool_open(dir, e2, sizeof e2);
        char want[64];
        snprintf(want, sizeof want, "in use by process %ld", (long)getppid());
        free(dir); /* valgrind (make memcheck) follows the child too */
        _exit(!sp2 && strstr(e2, want) ? 0 : 1);
    }
    int status;
    CHECK_INT(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_INT(WEXITSTATUS(status), 0);
    /* in the same process too, a second open is refused */
    cv_spool *sp2 = cv_spool_open(dir, err, sizeof err);
    CHECK(!sp2);
    CHECK(strstr(err, "in use by process"));
    cv_spool_destroy(&sp);
    sp2 = cv_spool_open(dir, err, sizeof err);
    CHECK(sp2);
    cv_spool_destroy(&sp2);
    free(dir);
}

TEST(spool_many_records_across_segments)
{
    char err[256], *dir = spool_dir();
    int n = 20000;
    uint64_t *recs = cv_calloc((size_t)n, sizeof *recs);
    cv_spool *sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    /* syncs every 500, like ingest's group commit */
    for (int i = 0; i < n; i += 500)
        CHECK_INT(fill(sp, i, 500, recs + i), 0);
    CHECK_INT(count_segments(dir), (n + CV_SPOOL_SEG_RECORDS - 1) / CV_SPOOL_SEG_RECORDS);
    for (int i = 1; i < n; i++)
        CHECK(recs[i] > recs[i - 1]);
    CHECK(cv_spool_bytes(sp) > (uint64_t)n * 40);
    /* ack every even record */
    for (int i = 0; i < n; i += 2)
        CHECK_INT(cv_spool_ack(sp, recs[i]), 0);
    CHECK_INT(cv_spool_pending(sp), n / 2);
    cv_spool_destroy(&sp);

    /* all segments stay (each holds unacked records); all replay */
    sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    CHECK_INT(cv_spool_pending(sp), n);
    uint64_t *again = cv_calloc((size_t)n, sizeof *again);
    CHECK_INT(replay_all(sp, 0, again, n), n);
    /* new appends while replaying go to a new segment, after the old */
    uint64_t rec;
    CHECK_INT(cv_spool_append(sp, "{}", 2, &rec), 0);
    CHECK(rec > again[n - 1]);
    CHECK_INT(cv_spool_sync(sp), 0);
    for (int i = 0; i < n; i++)
        CHECK_INT(cv_spool_ack(sp, again[i]), 0);
    CHECK_INT(cv_spool_ack(sp, rec), 0);
    CHECK_INT(cv_spool_pending(sp), 0);
    cv_spool_destroy(&sp);
    CHECK_INT(count_segments(dir), 0);
    free(again);
    free(recs);
    free(dir);
}

TEST(spool_write_error_surfaces)
{
    /* a file size limit makes writes fail (EFBIG) as a full disk would,
     * also for root; the test runs in its own child process */
    char err[256], *dir = spool_dir();
    cv_spool *sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = 64 << 10, .rlim_max = 64 << 10};
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &rl), 0);
    int failed_at = -1;
    for (int i = 0; i < 10000 && failed_at < 0; i++) {
        char *l = line_for(i);
        uint64_t rec;
        if (cv_spool_append(sp, l, strlen(l), &rec) < 0 ||
            (i % 100 == 99 && cv_spool_sync(sp) < 0))
            failed_at = i;
        free(l);
    }
    CHECK(failed_at > 0);
    /* and it stays failed: nothing more is accepted */
    uint64_t rec;
    CHECK_INT(cv_spool_append(sp, "{}", 2, &rec), -1);
    CHECK_INT(cv_spool_sync(sp), -1);
    cv_spool_destroy(&sp);
    free(dir);
}

TEST(spool_write_error_keeps_exactly_what_was_synced)
{
    /* what was synced before a failed write stays, and nothing else: the
     * unsynced records were never accepted, so they are taken back (no
     * torn tail for the next open to cut, nothing unaccepted replayed) */
    char err[256], *dir = spool_dir();
    cv_spool *sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = 64 << 10, .rlim_max = RLIM_INFINITY};
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &rl), 0);
    int synced = 0, failed_at = -1;
    for (int i = 0; i < 10000 && failed_at < 0; i++) {
        char *l = line_for(i);
        uint64_t rec;
        if (cv_spool_append(sp, l, strlen(l), &rec) < 0)
            failed_at = i;
        else if (i % 100 == 99 && cv_spool_sync(sp) < 0)
            failed_at = i;
        else if (i % 100 == 99)
            synced = i + 1;
        free(l);
    }
    CHECK(failed_at > 0);
    CHECK(synced > 0);
    CHECK_INT(cv_spool_pending(sp), synced);
    cv_spool_destroy(&sp);
    rl.rlim_cur = RLIM_INFINITY;
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &rl), 0);
    sp = cv_spool_open(dir, err, sizeof err);
    CHECK(sp);
    CHECK_INT(cv_spool_dropped(sp), 0);
    CHECK_INT(cv_spool_pending(sp), synced);
    uint64_t rec;
    const char *line;
    size_t len;
    int n = 0;
    while (cv_spool_replay_next(sp, &rec, &line, &len) == 1) {
        char *want = line_for(n);
        CHECK(len == strlen(want) && memcmp(line, want, len) == 0);
        free(want);
        n++;
    }
    CHECK_INT(n, synced);
    cv_spool_destroy(&sp);
    free(dir);
}
