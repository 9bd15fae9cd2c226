/* test_store.c - the database, the writer lock, batches, idempotency,
 * retention and profiles, against real SQLite files. */
#include "fixtures.h"
#include "harness.h"

#include "base/config.h"
#include "storage/db.h"
#include "crypto/fieldcrypt.h"
#include "crypto/keyring.h"
#include "base/lineread.h"
#include "privacy/policy.h"
#include "privacy/retention.h"
#include "storage/store.h"
#include "base/util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TEST(store_is_idempotent_on_id)
{
    cvt_store f;
    char err[256];
    CHECK_INT(cvt_store_setup(&f, NULL), 0);
    const char *e = "{\"id\":\"e1\",\"kind\":\"click\",\"user_id\":\"u\",\"ts\":\"2026-11-01T00:00:00Z\"}";
    CHECK_INT(cvt_store_add(&f, e), CV_STORE_INSERTED);
    CHECK_INT(cvt_store_add(&f, e), CV_STORE_DUPLICATE);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    CHECK_INT(cvt_store_add(&f, e), CV_STORE_DUPLICATE);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    CHECK_INT(cvt_q(&f, "SELECT COUNT(*) FROM events"), 1);
    CHECK_INT(cv_store_stats_get(f.st)->duplicates, 2);
    cvt_store_teardown(&f);
}

TEST(store_rejects_events_without_id_or_ts)
{
    cvt_store f;
    CHECK_INT(cvt_store_setup(&f, NULL), 0);
    CHECK_INT(cvt_store_add(&f, "{\"kind\":\"k\",\"user_id\":\"u\",\"ts\":\"2026-11-01T00:00:00Z\"}"), CV_STORE_REJECTED);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"x\",\"kind\":\"k\",\"user_id\":\"u\"}"), CV_STORE_REJECTED);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"x\",\"kind\":\"k\",\"user_id\":\"u\",\"ts\":\"2026-11-01T00:00:00Z\""), CV_STORE_REJECTED);
    CHECK_INT(cv_store_pending(f.st), 0);
    cvt_store_teardown(&f);
}

TEST(rollback_leaves_nothing_behind)
{
    cvt_store f;
    CHECK_INT(cvt_store_setup(&f, NULL), 0);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"r1\",\"kind\":\"k\",\"user_id\":\"u\",\"ts\":\"2026-11-01T00:00:00Z\"}"), 1);
    cv_store_rollback(f.st);
    CHECK_INT(cvt_q(&f, "SELECT COUNT(*) FROM events"), 0);
    cvt_store_teardown(&f);
}

TEST(retention_follows_kind_then_profile)
{
    cvt_store f;
    char err[256];
    CHECK_INT(cvt_store_setup(&f, NULL), 0);
    /* ts far in the past relative to created_at: retention counts from ts */
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"a\",\"kind\":\"audit\",\"user_id\":\"u\",\"ts\":\"2026-01-01T00:00:00Z\"}"), 1);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"s\",\"kind\":\"snapshot\",\"user_id\":\"u\",\"ts\":\"2026-01-01T00:00:00Z\"}"), 1);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    int64_t base = 1767225600000LL; /* 2026-01-01 */
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='a'"), base + 365 * 86400000LL);
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='s'"), base + 7 * 86400000LL);
    /* audit outlives its scrub age; the snapshot expires first */
    CHECK_INT(cvt_q(&f, "SELECT scrub_after FROM events WHERE id='a'"), base + 90 * 86400000LL);
    CHECK_INT(cvt_q(&f, "SELECT scrub_after FROM events WHERE id='s'"), -1);

    /* a 30-day profile reschedules the stored audit row; later events obey */
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"p\",\"kind\":\"profile\",\"user_id\":\"u\",\"ts\":\"2026-01-02T00:00:00Z\",\"retention_days\":30,\"privacy_level\":\"private\"}"), 1);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"a2\",\"kind\":\"audit\",\"user_id\":\"u\",\"ts\":\"2026-01-01T00:00:00Z\"}"), 1);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='a'"), base + 30 * 86400000LL);
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='a2'"), base + 30 * 86400000LL);
    CHECK_INT(cvt_q(&f, "SELECT retention_days FROM profiles JOIN users USING(uid) WHERE user_id='u'"), 30);
    /* the profile in force is kept until erased; once superseded, as
     * long as the user's retention, from its own time */
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='p'"), -1);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"p2\",\"kind\":\"profile\",\"user_id\":\"u\",\"ts\":\"2026-01-03T00:00:00Z\",\"retention_days\":30}"), 1);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='p'"), base + 86400000LL + 30 * 86400000LL);
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='p2'"), -1);
    cvt_store_teardown(&f);
}

TEST(a_users_own_retention_governs_within_each_kinds_cap)
{
    cvt_store f;
    char err[256];
    /* the shipped policy's retention, user ids kept so rows are found */
    CHECK_INT(cvt_store_setup(&f, "[retention]\nsnapshot = 7d\ntrace = 30d\n"
                                  "interaction = 30d up to forever\n"
                                  "context = 30d up to forever\nprofile = user\n"
                                  "other = 30d\n[fields]\nuser_id = keep\n"), 0);
    int64_t day = 86400000LL, base = 1767225600000LL; /* 2026-01-01 */
    /* the user's choices, as the storage requirements name them */
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"p90\",\"kind\":\"profile\",\"user_id\":\"u90\","
                                "\"ts\":\"2026-01-01T00:00:00Z\",\"retention_days\":90}"), 1);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"p365\",\"kind\":\"profile\",\"user_id\":\"u365\","
                                "\"ts\":\"2026-01-01T00:00:00Z\",\"retention_days\":365}"), 1);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"pf\",\"kind\":\"profile\",\"user_id\":\"uf\","
                                "\"ts\":\"2026-01-01T00:00:00Z\",\"retention_days\":\"forever\"}"), 1);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"pn\",\"kind\":\"profile\",\"user_id\":\"un\","
                                "\"ts\":\"2026-01-01T00:00:00Z\",\"privacy_level\":\"private\"}"), 1);
    static const char *const users[] = {"u90", "u365", "uf", "un", "nobody"};
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 3; k++) {
            static const char *const kinds[] = {"interaction", "context", "snapshot"};
            char *e = cv_fmt("{\"id\":\"%s-%s\",\"kind\":\"%s\",\"user_id\":\"%s\","
                             "\"ts\":\"2026-01-01T00:00:00Z\"}", users[i], kinds[k],
                             kinds[k], users[i]);
            CHECK_INT(cvt_store_add(&f, e), 1);
            free(e);
        }
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    /* interactions and contexts: as long as the user chose (day 90, day
     * 365, never), the kind's default when they chose nothing */
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='u90-interaction'"), base + 90 * day);
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='u365-context'"), base + 365 * day);
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='uf-interaction'"), -1);
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='un-interaction'"), base + 30 * day);
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='nobody-context'"), base + 30 * day);
    /* snapshots keep their short cap whatever the user chose */
    CHECK_INT(cvt_q(&f, "SELECT count(*) FROM events WHERE kind='snapshot' AND "
                        "expires_at = 1767225600000 + 7 * 86400000"), 5);
    /* the profile in force: until erased, whatever the user chose */
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='pf'"), -1);
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='p365'"), -1);
    /* stored as chosen: -1 forever, NULL never chosen */
    CHECK_INT(cvt_q(&f, "SELECT retention_days FROM profiles JOIN users USING(uid) WHERE user_id='uf'"), -1);
    CHECK_INT(cvt_q(&f, "SELECT retention_days IS NULL FROM profiles JOIN users USING(uid) WHERE user_id='un'"), 1);
    cvt_store_teardown(&f);
    /* a cap bounds the choice; without "up to" a user can only shorten */
    cv_policy *p = cv_policy_parse("t", "[retention]\ninteraction = 30d up to 365d\n"
                                   "trace = 30d\n", NULL);
    cv_profile forever = {.known = true, .retention_days = CV_DAYS_FOREVER};
    cv_profile week = {.known = true, .retention_days = 7};
    int64_t exp, scrub;
    cv_retention_compute(p, "interaction", base, base, &forever, &exp, &scrub);
    CHECK_INT(exp, base + 365 * day);
    cv_retention_compute(p, "trace", base, base, &forever, &exp, &scrub);
    CHECK_INT(exp, base + 30 * day);
    cv_retention_compute(p, "trace", base, base, &week, &exp, &scrub);
    CHECK_INT(exp, base + 7 * day);
    cv_policy_destroy(&p);
    int problems;
    p = cv_policy_parse("t", "[retention]\ninteraction = 30d up to 7d\n", &problems);
    CHECK_INT(problems, 1);
    cv_policy_destroy(&p);
    p = cv_policy_parse("t", "[retention]\ninteraction = 30d up to soon\n", &problems);
    CHECK_INT(problems, 1);
    cv_policy_destroy(&p);
}

TEST(ephemeral_and_anonymous_profiles_tighten_rows)
{
    cvt_store f;
    char err[256];
    CHECK_INT(cvt_store_setup(&f, NULL), 0);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"e\",\"kind\":\"click\",\"user_id\":\"v\",\"ts\":\"2026-01-01T00:00:00Z\"}"), 1);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"p\",\"kind\":\"profile\",\"user_id\":\"v\",\"ts\":\"2026-01-01T00:00:00Z\",\"privacy_level\":\"ephemeral\"}"), 1);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='e'"), 1767225600000LL + 3600000LL);
    /* an older profile event does not override the newer one */
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"old\",\"kind\":\"profile\",\"user_id\":\"v\",\"ts\":\"2025-01-01T00:00:00Z\",\"privacy_level\":\"public\"}"), 1);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    CHECK_INT(cvt_q(&f, "SELECT privacy_level = 'ephemeral' FROM profiles JOIN users USING(uid) WHERE user_id='v'"), 1);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"p2\",\"kind\":\"profile\",\"user_id\":\"w\",\"ts\":\"2026-01-01T00:00:00Z\",\"privacy_level\":\"anonymous\"}"), 1);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"w1\",\"kind\":\"click\",\"user_id\":\"w\",\"ts\":\"2026-01-01T00:00:00Z\"}"), 1);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    /* w1 is anonymised: under a pseudonym of the day, its own id */
    CHECK_INT(cvt_q(&f, "SELECT scrub_after = created_at FROM events e JOIN users u "
                        "USING(uid) WHERE u.user_id LIKE 'anon:%' AND e.kind = 'click'"), 1);
    CHECK_INT(cvt_q(&f, "SELECT count(*) FROM events WHERE id='w1'"), 0);
    /* bad profile fields are rejected, not guessed */
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"p3\",\"kind\":\"profile\",\"user_id\":\"w\",\"ts\":\"2026-01-01T00:00:00Z\",\"privacy_level\":\"secret\"}"), CV_STORE_REJECTED);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"p4\",\"kind\":\"profile\",\"user_id\":\"w\",\"ts\":\"2026-01-01T00:00:00Z\",\"retention_days\":-5}"), CV_STORE_REJECTED);
    cvt_store_teardown(&f);
}

TEST(second_writer_is_refused_naming_the_holder)
{
    cvt_store f;
    CHECK_INT(cvt_store_setup(&f, NULL), 0);
    char err[512];
    int code;
    cv_recovery rec;
    cv_db *two = cv_db_open_writer(&f.cfg, "intruder", &rec, &code, err, sizeof err);
    CHECK(two == NULL);
    CHECK_INT(code, EX_TEMPFAIL);
    CHECK(strstr(err, "unit (pid ") != NULL);
    cvt_store_teardown(&f);
}

TEST(writer_refuses_a_corrupt_database)
{
    cvt_store f;
    CHECK_INT(cvt_store_setup(&f, NULL), 0);
    char *path = cv_strdup(f.cfg.db_file);
    cv_config cfg = f.cfg;
    cv_store_destroy(&f.st);
    cv_db_close(&f.db); /* releases the lock */
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0);
    CHECK_INT(pwrite(fd, "this is not an sqlite header!", 29, 0), 29);
    close(fd);
    char err[1024];
    int code;
    cv_recovery rec;
    cv_db *db = cv_db_open_writer(&cfg, "unit", &rec, &code, err, sizeof err);
    CHECK(db == NULL);
    CHECK_INT(code, EX_DATAERR);
    CHECK(strstr(err, "restore") != NULL);
    free(path);
    cvt_store_teardown(&f);
}

TEST(clean_close_leaves_no_wal)
{
    cvt_store f;
    char err[256];
    CHECK_INT(cvt_store_setup(&f, NULL), 0);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"c\",\"kind\":\"k\",\"user_id\":\"u\",\"ts\":\"2026-11-01T00:00:00Z\"}"), 1);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    char *wal = cv_fmt("%s-wal", f.cfg.db_file);
    cv_store_destroy(&f.st);
    cv_db_close(&f.db);
    CHECK_INT(cv_db_file_size(wal), 0);
    free(wal);
    cvt_store_teardown(&f);
}

TEST(lineread_cuts_long_lines_and_strips_cr)
{
    int p[2];
    CHECK_INT(pipe(p), 0);
    const char *in = "ab\r\n0123456789ABCDEF\nlast";
    CHECK_INT(write(p[1], in, strlen(in)), (int)strlen(in));
    close(p[1]);
    cv_lineread *lr = cv_lineread_new(p[0], 8);
    const char *line;
    size_t len;
    CHECK_INT(cv_lineread_next(lr, &line, &len, false), CV_LR_LINE);
    CHECK_STR(line, "ab");
    CHECK_INT(cv_lineread_next(lr, &line, &len, false), CV_LR_TOOLONG);
    CHECK_INT(len, 8);
    CHECK_STR(line, "01234567");
    CHECK_INT(cv_lineread_next(lr, &line, &len, false), CV_LR_LINE);
    CHECK_STR(line, "last");
    CHECK_INT(cv_lineread_lineno(lr), 3);
    CHECK_INT(cv_lineread_next(lr, &line, &len, false), CV_LR_EOF);
    cv_lineread_destroy(&lr);
    close(p[0]);
}

/* cv_config_load with its messages on stderr captured in errpath, to be
 * read back; the number of problems */
static int load_quietly(cv_config *c, const char *dir, const char *path,
                        const char *errpath)
{
    int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int saved = dup(2);
    dup2(fd, 2);
    int problems = cv_config_load(c, dir, path);
    dup2(saved, 2);
    close(fd);
    close(saved);
    return problems;
}

TEST(config_problems_name_file_and_line)
{
    const char *dir = cvt_tmpdir();
    char *path = cv_fmt("%s/bad.conf", dir);
    const char *text = "[store]\nbatch_size = 10\nbatch_size = -3\n[nowhere]\nx = 1\n";
    CHECK_INT(cv_write_file_atomic(path, text, strlen(text), 0600, false), 0);
    char *errpath = cv_fmt("%s/err", dir);
    cv_config c;
    CHECK_INT(load_quietly(&c, dir, path, errpath), 2);
    CHECK_INT(c.batch_size, 10);
    size_t n;
    char *msgs = cv_read_file(errpath, 1 << 16, &n);
    CHECK(msgs && strstr(msgs, "bad.conf:3: batch_size '-3'"));
    CHECK(strstr(msgs, "bad.conf:5: unknown section [nowhere]"));
    free(msgs);
    free(path);
    free(errpath);
    cv_config_free(&c);
}

/* each setting of [store] synchronous, and a value that is none */
TEST(synchronous_takes_journal_full_or_normal)
{
    const char *dir = cvt_tmpdir();
    char *path = cv_fmt("%s/sync.conf", dir);
    const char *names[] = {"normal", "journal", "full"};
    const int modes[] = {CV_SYNC_NORMAL, CV_SYNC_JOURNAL, CV_SYNC_FULL};
    for (int i = 0; i < 3; i++) {
        char *text = cv_fmt("[store]\nsynchronous = %s\n", names[i]);
        CHECK_INT(cv_write_file_atomic(path, text, strlen(text), 0600, false), 0);
        cv_config c;
        CHECK_INT(cv_config_load(&c, dir, path), 0);
        CHECK_INT(c.sync_mode, modes[i]);
        cv_config_free(&c);
        free(text);
    }
    const char *bad = "[store]\nsynchronous = off\n";
    CHECK_INT(cv_write_file_atomic(path, bad, strlen(bad), 0600, false), 0);
    char *errpath = cv_fmt("%s/err", dir);
    cv_config c;
    CHECK_INT(load_quietly(&c, dir, path, errpath), 1);
    CHECK_INT(c.sync_mode, CV_SYNC_JOURNAL); /* the default stays */
    size_t n;
    char *msgs = cv_read_file(errpath, 1 << 16, &n);
    CHECK(msgs && strstr(msgs, "synchronous 'off' is not 'journal', 'full' or 'normal'"));
    free(msgs);
    free(errpath);
    free(path);
    cv_config_free(&c);
}

TEST(shipped_config_is_the_builtin_default)
{
    cv_config c;
    CHECK_INT(cv_config_load(&c, cvt_tmpdir(), NULL), 0);
    CHECK_INT(c.max_line, 1 << 20);
    CHECK_INT(c.max_depth, 64);
    CHECK_INT(c.batch_size, 10000);
    CHECK_INT(c.sync_mode, CV_SYNC_JOURNAL);
    cv_config_free(&c);
}

TEST(a_later_looser_profile_never_extends_stored_rows)
{
    cvt_store f;
    char err[256];
    CHECK_INT(cvt_store_setup(&f, NULL), 0);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"p1\",\"kind\":\"profile\",\"user_id\":\"x\",\"ts\":\"2026-01-01T00:00:00Z\",\"privacy_level\":\"ephemeral\"}"), 1);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"e\",\"kind\":\"click\",\"user_id\":\"x\",\"ts\":\"2026-01-01T00:10:00Z\"}"), 1);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    int64_t hour = 1767225600000LL + 600000LL + 3600000LL;
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='e'"), hour);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"p2\",\"kind\":\"profile\",\"user_id\":\"x\",\"ts\":\"2026-01-02T00:00:00Z\",\"privacy_level\":\"private\",\"retention_days\":30}"), 1);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"e2\",\"kind\":\"click\",\"user_id\":\"x\",\"ts\":\"2026-01-02T00:10:00Z\"}"), 1);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    /* the row kept under "ephemeral" keeps its hour; new rows get 30 days */
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='e'"), hour);
    CHECK_INT(cvt_q(&f, "SELECT expires_at FROM events WHERE id='e2'"),
              1767225600000LL + 86400000LL + 600000LL + 30 * 86400000LL);
    cvt_store_teardown(&f);
}

TEST(checksum_scan_finds_an_edited_row)
{
    cvt_store f;
    char err[256];
    CHECK_INT(cvt_store_setup(&f, NULL), 0);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"k1\",\"kind\":\"k\",\"user_id\":\"u\",\"ts\":\"2026-11-01T00:00:00Z\"}"), 1);
    CHECK_INT(cvt_store_add(&f, "{\"id\":\"k2\",\"kind\":\"k\",\"user_id\":\"u\",\"ts\":\"2026-11-01T00:00:01Z\"}"), 1);
    CHECK_INT(cv_store_commit(f.st, err, sizeof err), 0);
    int64_t rows;
    CHECK_INT(cv_db_check_checksums(f.db, f.kr, 10, &rows), 0);
    CHECK_INT(rows, 2);
    CHECK_INT(sqlite3_exec(cv_db_handle(f.db),
                           "UPDATE events SET body = replace(body, 'k2', 'k3') WHERE id = 'k2'",
                           NULL, NULL, NULL), SQLITE_OK);
    CHECK_INT(cv_db_check_checksums(f.db, f.kr, 10, &rows), 1);
    cvt_store_teardown(&f);
}

/* The WAL's committed transactions, as SQLite would replay them: every
 * commit frame of the valid prefix, none of a torn last frame. */
TEST(wal_commits_are_counted_up_to_a_torn_frame)
{
    char *path = cv_fmt("%s/walcount.db", cvt_tmpdir());
    char *wal = cv_fmt("%s-wal", path);
    sqlite3 *h;
    CHECK_INT(sqlite3_open(path, &h), SQLITE_OK);
    CHECK_INT(sqlite3_exec(h, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
                              "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < 5; i++)
        CHECK_INT(sqlite3_exec(h, "INSERT INTO t VALUES(randomblob(100))", NULL,
                               NULL, NULL), SQLITE_OK);
    /* six transactions, the connection still open: the WAL as a crash leaves it */
    CHECK_INT(cv_db_wal_commits(wal), 6);
    int64_t size = cv_db_file_size(wal);
    CHECK_INT(truncate(wal, size - 10), 0);
    CHECK_INT(cv_db_wal_commits(wal), 5);
    sqlite3_close(h);
    CHECK_INT(cv_db_wal_commits("/nonexistent/x.db-wal"), 0);
    free(wal);
    free(path);
}
