/* test_journal.c - the replay journal: records appended, taken back, cut
 * when torn, moved aside, pruned, and replayed into an empty database
 * that then equals the one written. */
#include "fixtures.h"
#include "harness.h"

#include "storage/db.h"
#include "storage/journal.h"
#include "storage/store.h"
#include "base/util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static cv_journal *open_at(const char *dir, int64_t seg, int64_t db_lsn)
{
    char err[256];
    int code;
    cv_journal *j = cv_journal_open(dir, seg, false, db_lsn, &code, err, sizeof err);
    if (!j)
        fprintf(stderr, "open: %s\n", err);
    return j;
}

/* n records of 1,000 bytes after the journal's end */
static int append_n(cv_journal *j, int n)
{
    char err[256], payload[1000];
    memset(payload, 'p', sizeof payload);
    for (int i = 0; i < n; i++)
        if (cv_journal_append(j, cv_journal_last(j) + 1, 1000 * (i + 1), payload,
                              sizeof payload, err, sizeof err) < 0)
            return -1;
    return 0;
}

static int64_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

TEST(records_append_and_the_last_is_taken_back)
{
    const char *dir = cvt_tmpdir();
    cv_journal *j = open_at(dir, 1 << 20, 0);
    CHECK(j);
    CHECK_INT(append_n(j, 3), 0);
    char *seg = cv_fmt("%s/%020d.cvj", dir, 1);
    int64_t two = 16 + 2 * (20 + 1000 + 16);
    CHECK_INT(size_of(seg), two + 20 + 1000 + 16);
    cv_journal_undo(j);
    CHECK_INT(cv_journal_last(j), 2);
    CHECK_INT(size_of(seg), two);
    char err[256];
    /* a batch out of order is refused */
    CHECK(cv_journal_append(j, 7, 1, "x", 1, err, sizeof err) < 0);
    cv_journal_destroy(&j);
    CHECK(j == NULL);
    j = open_at(dir, 1 << 20, 2);
    CHECK_INT(cv_journal_last(j), 2);
    cv_journal_destroy(&j);
    free(seg);
}

/* A file size limit fails writes (EFBIG) as a full disk does (ENOSPC),
 * also for root; each test runs in a child process of its own. */
static void limit_file_size(rlim_t bytes)
{
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = bytes, .rlim_max = RLIM_INFINITY};
    setrlimit(RLIMIT_FSIZE, &rl);
}

TEST(a_failed_write_leaves_no_half_record_or_segment)
{
    const char *dir = cvt_tmpdir();
    char *seg = cv_fmt("%s/%020d.cvj", dir, 1);
    /* no room for a segment's header: no segment is left */
    limit_file_size(10);
    cv_journal *j = open_at(dir, 1 << 20, 0);
    CHECK(j);
    CHECK(append_n(j, 1) < 0);
    CHECK_INT(size_of(seg), -1);
    CHECK_INT(cv_journal_last(j), 0);
    /* room for 7 records: the 8th is cut short by the limit, and taken
     * back whole */
    limit_file_size(16 + 7 * (20 + 1000 + 16) + 500);
    CHECK_INT(append_n(j, 7), 0);
    CHECK(append_n(j, 1) < 0);
    CHECK_INT(cv_journal_last(j), 7);
    CHECK_INT(size_of(seg), 16 + 7 * (20 + 1000 + 16));
    /* once there is room, it goes on at batch 8 */
    limit_file_size(RLIM_INFINITY);
    CHECK_INT(append_n(j, 1), 0);
    CHECK_INT(cv_journal_last(j), 8);
    cv_journal_destroy(&j);
    j = open_at(dir, 1 << 20, 8);
    CHECK(j);
    CHECK_INT(cv_journal_last(j), 8);
    CHECK_INT(size_of(seg), 16 + 8 * (20 + 1000 + 16));
    cv_journal_destroy(&j);
    free(seg);
}

TEST(a_torn_end_is_cut_when_opened)
{
    const char *dir = cvt_tmpdir();
    cv_journal *j = open_at(dir, 1 << 20, 0);
    CHECK_INT(append_n(j, 2), 0);
    cv_journal_destroy(&j);
    char *seg = cv_fmt("%s/%020d.cvj", dir, 1);
    int64_t whole = size_of(seg);
    /* half of a third record: its header and some of its bytes */
    int fd = open(seg, O_WRONLY | O_APPEND);
    CHECK(fd >= 0);
    char junk[300] = {0, 0, 3, 232};
    CHECK_INT(write(fd, junk, sizeof junk), sizeof junk);
    close(fd);
    j = open_at(dir, 1 << 20, 2);
    CHECK(j);
    CHECK_INT(cv_journal_last(j), 2);
    CHECK_INT(size_of(seg), whole);
    /* a record whose bytes changed at the very end is torn too */
    CHECK_INT(append_n(j, 1), 0);
    cv_journal_destroy(&j);
    fd = open(seg, O_WRONLY);
    CHECK_INT(pwrite(fd, "Z", 1, whole + 500), 1);
    close(fd);
    j = open_at(dir, 1 << 20, 2);
    CHECK_INT(cv_journal_last(j), 2);
    CHECK_INT(size_of(seg), whole);
    cv_journal_destroy(&j);
    free(seg);
}

TEST(segments_fill_then_are_pruned_and_cut)
{
    const char *dir = cvt_tmpdir();
    /* a segment takes records while it is under 4,096 bytes: four */
    cv_journal *j = open_at(dir, 4096, 0);
    CHECK_INT(append_n(j, 10), 0);
    cv_journal_destroy(&j);
    cv_journal_info in;
    CHECK_INT(cv_journal_stat(dir, &in), 0);
    CHECK_INT(in.first, 1);
    CHECK_INT(in.last, 10);
    CHECK_INT(in.segments, 3); /* 1-4, 5-8, 9-10 */
    int removed;
    int64_t bytes;
    /* batch 6 is covered, but the segment 5-8 is not all covered */
    CHECK_INT(cv_journal_prune(dir, 6, &removed, &bytes), 0);
    CHECK_INT(removed, 1);
    CHECK_INT(cv_journal_stat(dir, &in), 0);
    CHECK_INT(in.first, 5);
    /* everything covered: the newest segment still stays */
    CHECK_INT(cv_journal_prune(dir, 10, &removed, &bytes), 0);
    CHECK_INT(removed, 1);
    CHECK_INT(cv_journal_stat(dir, &in), 0);
    CHECK_INT(in.segments, 1);
    CHECK_INT(in.last, 10);

    const char *dir2 = cvt_tmpdir();
    char *jdir = cv_fmt("%s/j", dir2), *aside = cv_fmt("%s/aside", dir2);
    j = open_at(jdir, 4096, 0);
    CHECK_INT(append_n(j, 8), 0);
    cv_journal_destroy(&j);
    char err[256];
    int64_t moved;
    /* after 3: the first segment is split, the second moves whole */
    CHECK_INT(cv_journal_cut(jdir, 3, aside, &moved, err, sizeof err), 0);
    CHECK_INT(moved, 5);
    CHECK_INT(cv_journal_stat(jdir, &in), 0);
    CHECK_INT(in.last, 3);
    CHECK_INT(cv_journal_stat(aside, &in), 0);
    CHECK_INT(in.first, 4);
    CHECK_INT(in.last, 8);
    CHECK_INT(in.segments, 2);
    /* the journal goes on from the cut */
    j = open_at(jdir, 4096, 3);
    CHECK_INT(cv_journal_last(j), 3);
    CHECK_INT(append_n(j, 1), 0);
    cv_journal_destroy(&j);
    free(jdir);
    free(aside);
}

/* an empty database with the schema, as a restore starts one */
static sqlite3 *empty_db(const char *path)
{
    sqlite3 *h;
    if (sqlite3_open(path, &h) != SQLITE_OK ||
        sqlite3_exec(h, "PRAGMA auto_vacuum=INCREMENTAL", NULL, NULL, NULL) != SQLITE_OK ||
        cv_db_create_schema(h) != SQLITE_OK)
        return NULL;
    return h;
}

static int64_t q(sqlite3 *h, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -99;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

TEST(every_commit_is_journaled_and_replays_into_an_equal_database)
{
    cvt_store f;
    char err[256];
    CHECK_INT(cvt_store_setup(&f, NULL), 0);
    for (int b = 0; b < 3; b++) {
        for (int i = 0; i < 4; i++) {
            char e[256];
            snprintf(e, sizeof e, "{\"id\":\"e%d-%d\",\"kind\":\"click\","
                     "\"user_id\":\"u%d\",\"ts\":\"2026-11-01T00:00:00Z\"}", b, i, i);
            CHECK_INT(cvt_store_add(&f, e), CV_STORE_INSERTED);
        }
        CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    }
    /* a transaction that changes nothing is no batch */
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"e0-0\",\"kind\":\"click\",\"user_id\":\"u0\","
                               "\"ts\":\"2026-11-01T00:00:00Z\"}"), CV_STORE_DUPLICATE);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    CHECK_INT(cvt_q(&f, "SELECT value FROM meta WHERE key = 'journal_lsn'"), 3);
    /* a deletion is a batch too */
    CHECK_INT(cv_db_begin(f.db), 0);
    CHECK_INT(sqlite3_exec(cv_db_handle(f.db), "DELETE FROM events WHERE id = 'e1-2'",
                           NULL, NULL, NULL), 0);
    CHECK_INT(cv_db_commit(f.db), 0);
    cv_journal_info in;
    CHECK_INT(cv_journal_stat(f.cfg.journal_dir, &in), 0);
    CHECK_INT(in.last, 4);

    char *path = cv_fmt("%s/replayed.db", cvt_tmpdir());
    sqlite3 *h = empty_db(path);
    CHECK(h);
    cv_replay r;
    CHECK_INT(cv_journal_replay(h, f.cfg.journal_dir, 0, -1, false, &r, err,
                                sizeof err), CV_REPLAY_OK);
    CHECK_INT(r.batches, 4);
    CHECK_INT(q(h, "SELECT count(*) FROM events"), 11);
    CHECK_INT(q(h, "SELECT count(*) FROM events WHERE id = 'e1-2'"), 0);
    CHECK_INT(q(h, "SELECT value FROM meta WHERE key = 'journal_lsn'"), 4);
    CHECK_INT(q(h, "SELECT count(*) FROM events e JOIN users u USING (uid)"), 11);
    /* a second replay finds every row there: a conflict, nothing applied */
    CHECK_INT(cv_journal_replay(h, f.cfg.journal_dir, 0, -1, false, &r, err,
                                sizeof err), CV_REPLAY_CONFLICT);
    CHECK(strstr(err, "already there") != NULL);
    CHECK_INT(q(h, "SELECT count(*) FROM events"), 11);
    sqlite3_close(h);
    cvt_store_teardown(&f);
    free(path);
}

/* Tables whose key has several columns (mlcache's, sync_versions') are
 * journaled with each key column's place in the key: a batch of them,
 * left uncommitted by a crash, must replay (a store killed mid-sync could
 * not start again while the journal reader took only 0 and 1). */
TEST(a_batch_of_tables_with_composite_keys_replays)
{
    cvt_store f;
    char err[256];
    CHECK_INT(cvt_store_setup(&f, NULL), 0);
    CHECK_INT(cv_db_begin(f.db), 0);
    CHECK_INT(sqlite3_exec(cv_db_handle(f.db),
        "INSERT INTO mlcache(ns, key, value, created_at, expires_at) "
        "VALUES ('m', 'k', '1', 0, 1);"
        "INSERT INTO sync_versions(rid, dev, n, vv, hlc, deleted, payload) "
        "VALUES ('r', 'a', 1, '{\"a\":1}', 7, 0, x'00');"
        "INSERT INTO sync_knowledge(dev, n) VALUES ('a', 1)", NULL, NULL, NULL), 0);
    CHECK_INT(cv_db_commit(f.db), 0);
    CHECK_INT(cv_db_begin(f.db), 0);
    CHECK_INT(sqlite3_exec(cv_db_handle(f.db),
        "DELETE FROM sync_versions WHERE dev = 'a' AND n = 1;"
        "UPDATE mlcache SET value = '2' WHERE ns = 'm' AND key = 'k'",
        NULL, NULL, NULL), 0);
    CHECK_INT(cv_db_commit(f.db), 0);
    char *path = cv_fmt("%s/replayed.db", cvt_tmpdir());
    sqlite3 *h = empty_db(path);
    CHECK(h);
    cv_replay r;
    CHECK_INT(cv_journal_replay(h, f.cfg.journal_dir, 0, -1, false, &r, err,
                                sizeof err), CV_REPLAY_OK);
    CHECK_INT(r.batches, 2);
    CHECK_INT(q(h, "SELECT count(*) FROM sync_versions"), 0);
    CHECK_INT(q(h, "SELECT n FROM sync_knowledge WHERE dev = 'a'"), 1);
    CHECK_INT(q(h, "SELECT value FROM mlcache WHERE ns = 'm' AND key = 'k'"), 2);
    sqlite3_close(h);
    cvt_store_teardown(&f);
    free(path);
}

/* Every column of every row, in seq order: two databases with the same
 * rows give the same text. */
static char *dump_events(sqlite3 *h)
{
    sqlite3_stmt *st;
    size_t len = 0;
    char *out = cv_strdup("");
    if (sqlite3_prepare_v2(h, "SELECT seq, id, uid, kind, quote(type), ts, created_at,"
                           " quote(expires_at), quote(scrub_after), quote(scrubbed_at),"
                           " body, hex(checksum) FROM events ORDER BY seq", -1, &st,
                           NULL) != SQLITE_OK)
        return out;
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int i = 0; i < 12; i++) {
            const char *v = (const char *)sqlite3_column_text(st, i);
            size_t n = strlen(v ? v : "");
            out = cv_realloc(out, len + n + 2);
            memcpy(out + len, v ? v : "", n);
            len += n;
            out[len++] = i == 11 ? '\n' : '|';
            out[len] = '\0';
        }
    }
    sqlite3_finalize(st);
    return out;
}

/* Rows inserted through cv_db_insert are journaled by db.c itself (its
 * own patchset block, written as the batch grows), then the session's
 * changes once another change to events comes: one batch mixing both,
 * past the size at which the block is flushed, with a time of 0
 * and no type, replays into an equal database; a batch rolled back after
 * its block was flushed leaves nothing in the journal. */
TEST(inserts_journaled_by_store_and_by_the_session_replay_in_order)
{
    cvt_store f;
    char err[256];
    char pad[1001];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    CHECK_INT(cvt_store_setup(&f, NULL), 0);
    for (int i = 0; i < 400; i++) { /* 400 KiB: flushed mid-batch */
        char e[1400];
        snprintf(e, sizeof e, "{\"id\":\"a-%d\",\"kind\":\"click\",%s\"user_id\":\"u%d\","
                 "\"ts\":\"%s\",\"pad\":\"%s\"}", i, i % 2 ? "\"type\":\"t\"," : "",
                 i % 7, i == 3 ? "1970-01-01T00:00:00Z" : "2026-11-01T00:00:00Z", pad);
        CHECK_INT(cvt_store_add(&f, e), CV_STORE_INSERTED);
    }
    /* from here the session records events */
    CHECK_INT(sqlite3_exec(cv_db_handle(f.db),
        "UPDATE events SET expires_at = 123 WHERE id = 'a-4';"
        "DELETE FROM events WHERE id = 'a-5'", NULL, NULL, NULL), 0);
    for (int i = 0; i < 3; i++) {
        char e[256];
        snprintf(e, sizeof e, "{\"id\":\"b-%d\",\"kind\":\"click\",\"user_id\":\"u%d\","
                 "\"ts\":\"2026-11-02T00:00:00Z\"}", i, i);
        CHECK_INT(cvt_store_add(&f, e), CV_STORE_INSERTED);
    }
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"a-5\",\"kind\":\"click\",\"user_id\":\"u0\","
                               "\"ts\":\"2026-11-02T00:00:00Z\"}"), CV_STORE_INSERTED);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    cv_journal_info in;
    CHECK_INT(cv_journal_stat(f.cfg.journal_dir, &in), 0);
    int64_t bytes = in.bytes;
    /* a batch rolled back after its rows reached the journal file */
    for (int i = 0; i < 400; i++) {
        char e[1400];
        snprintf(e, sizeof e, "{\"id\":\"c-%d\",\"kind\":\"click\",\"user_id\":\"u1\","
                 "\"ts\":\"2026-11-03T00:00:00Z\",\"pad\":\"%s\"}", i, pad);
        CHECK_INT(cvt_store_add(&f, e), CV_STORE_INSERTED);
    }
    cv_store_rollback(f.st);
    CHECK_INT(cv_journal_stat(f.cfg.journal_dir, &in), 0);
    CHECK_INT(in.bytes, bytes);
    CHECK_INT(in.last, 1);
    CHECK_INT(cvt_q(&f, "SELECT count(*) FROM events"), 403);

    char *path = cv_fmt("%s/replayed-own.db", cvt_tmpdir());
    sqlite3 *h = empty_db(path);
    CHECK(h);
    cv_replay r;
    CHECK_INT(cv_journal_replay(h, f.cfg.journal_dir, 0, -1, false, &r, err,
                                sizeof err), CV_REPLAY_OK);
    CHECK_INT(r.batches, 1);
    char *want = dump_events(cv_db_handle(f.db)), *got = dump_events(h);
    CHECK(strlen(want) > 400 * 1000);
    CHECK_STR(got, want);
    CHECK_INT(q(h, "SELECT expires_at FROM events WHERE id = 'a-4'"), 123);
    CHECK_INT(q(h, "SELECT ts FROM events WHERE id = 'a-3'"), 0);
    free(want);
    free(got);
    sqlite3_close(h);
    cvt_store_teardown(&f);
    free(path);
}
