/* test_util.c - the file and number helpers (lib/base/util.h): reading a
 * file past its limit, atomic and exclusive writes, creating directory
 * paths, and the size, duration and integer parsers' edges. */
#include "harness.h"

#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char *path_in(const char *name)
{
    return cv_fmt("%s/%s", cvt_tmpdir(), name);
}

TEST(util_read_file_grows_and_refuses_more_than_its_limit)
{
    /* larger than the first buffer, so it grows several times */
    size_t n = 100000;
    char *data = cv_malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)('a' + i % 26);
    char *p = path_in("big");
    CHECK_INT(cv_write_file_atomic(p, data, n, 0600, false), 0);
    size_t len = 0;
    char *got = cv_read_file(p, n, &len);
    CHECK(got != NULL);
    CHECK_INT(len, n);
    CHECK(memcmp(got, data, n) == 0);
    CHECK_INT(got[n], '\0');
    free(got);
    /* one byte over the limit, or far over it: EFBIG, nothing returned */
    errno = 0;
    CHECK(cv_read_file(p, n - 1, &len) == NULL);
    CHECK_INT(errno, EFBIG);
    errno = 0;
    CHECK(cv_read_file(p, 10, NULL) == NULL);
    CHECK_INT(errno, EFBIG);
    /* absent: the open's errno */
    char *none = path_in("none");
    CHECK(cv_read_file(none, 10, NULL) == NULL);
    CHECK_INT(errno, ENOENT);
    free(none);
    free(p);
    free(data);
}

TEST(util_exclusive_write_never_replaces_and_leaves_no_temporary)
{
    char *p = path_in("once");
    CHECK_INT(cv_write_file_atomic(p, "first", 5, 0600, true), 0);
    errno = 0;
    CHECK_INT(cv_write_file_atomic(p, "second", 6, 0600, true), -1);
    CHECK_INT(errno, EEXIST);
    char *got = cv_read_file(p, 100, NULL);
    CHECK_STR(got, "first");
    free(got);
    /* the non-exclusive write replaces it, with the mode asked for */
    CHECK_INT(cv_write_file_atomic(p, "third", 5, 0640, false), 0);
    got = cv_read_file(p, 100, NULL);
    CHECK_STR(got, "third");
    free(got);
    struct stat st;
    CHECK_INT(stat(p, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0640);
    /* no "once.tmp.PID" left behind by the refused write */
    char *tmp = cv_fmt("%s.tmp.%ld", p, (long)getpid());
    CHECK(access(tmp, F_OK) < 0);
    free(tmp);
    /* into a directory that is not there: -1, ENOENT */
    char *deep = path_in("no/such/dir/file");
    errno = 0;
    CHECK_INT(cv_write_file_atomic(deep, "x", 1, 0600, false), -1);
    CHECK_INT(errno, ENOENT);
    free(deep);
    free(p);
}

TEST(util_rename_onto_a_directory_fails_and_keeps_the_directory)
{
    char *d = path_in("adir");
    CHECK_INT(cv_mkdir_p(d, 0700, false), 0);
    char *inside = cv_fmt("%s/f", d);
    CHECK_INT(cv_write_file_atomic(inside, "x", 1, 0600, false), 0);
    /* rename(2) cannot put a file over a non-empty directory */
    CHECK_INT(cv_write_file_atomic(d, "y", 1, 0600, false), -1);
    struct stat st;
    CHECK_INT(stat(d, &st), 0);
    CHECK(S_ISDIR(st.st_mode));
    char *tmp = cv_fmt("%s.tmp.%ld", d, (long)getpid());
    CHECK(access(tmp, F_OK) < 0);
    free(tmp);
    free(inside);
    free(d);
}

TEST(util_mkdir_p_makes_each_level_and_refuses_a_file_on_the_way)
{
    char *p = path_in("a/b/c//");
    CHECK_INT(cv_mkdir_p(p, 0750, false), 0);
    char *c = path_in("a/b/c");
    struct stat st;
    CHECK_INT(stat(c, &st), 0);
    CHECK(S_ISDIR(st.st_mode));
    /* again: nothing to do; fix_mode sets the last level's mode */
    CHECK_INT(chmod(c, 0700), 0);
    CHECK_INT(cv_mkdir_p(c, 0750, false), 0);
    CHECK_INT(stat(c, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0700);
    CHECK_INT(cv_mkdir_p(c, 0750, true), 0);
    CHECK_INT(stat(c, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0750);
    /* a file where a directory should be */
    char *f = path_in("a/file");
    CHECK_INT(cv_write_file_atomic(f, "x", 1, 0600, false), 0);
    char *under = path_in("a/file/d");
    errno = 0;
    CHECK_INT(cv_mkdir_p(under, 0700, false), -1);
    CHECK_INT(errno, ENOTDIR);
    errno = 0;
    CHECK_INT(cv_mkdir_p(f, 0700, false), -1);
    CHECK_INT(errno, ENOTDIR);
    free(under);
    free(f);
    free(c);
    free(p);
}

TEST(util_fsync_dir_of_a_bare_name_a_root_file_and_a_missing_dir)
{
    char *was = getcwd(NULL, 0);
    CHECK(was != NULL);
    CHECK_INT(chdir(cvt_tmpdir()), 0);
    CHECK_INT(cv_fsync_dir_of("bare-name"), 0); /* ".", the working directory */
    CHECK_INT(chdir(was), 0);
    free(was);
    CHECK_INT(cv_fsync_dir_of("/etc-like-file"), 0); /* "/" */
    char *missing = path_in("gone/file");
    CHECK_INT(cv_fsync_dir_of(missing), -1);
    free(missing);
}

TEST(util_sizes_and_durations_take_their_units_and_refuse_the_rest)
{
    CHECK_INT(cv_parse_size("512"), 512);
    CHECK_INT(cv_parse_size("512 B"), 512);
    CHECK_INT(cv_parse_size("4K"), 4096);
    CHECK_INT(cv_parse_size("4 KiB"), 4096);
    CHECK_INT(cv_parse_size("3M"), 3 << 20);
    CHECK_INT(cv_parse_size("2GiB"), 2LL << 30);
    CHECK_INT(cv_parse_size("4T"), -1);       /* no such unit */
    CHECK_INT(cv_parse_size("-1K"), -1);      /* negative */
    CHECK_INT(cv_parse_size(""), -1);
    CHECK_INT(cv_parse_size(NULL), -1);
    CHECK_INT(cv_parse_size("K"), -1);        /* no number */
    CHECK_INT(cv_parse_size("99999999999999999999"), -1); /* out of range */
    CHECK_INT(cv_parse_size("9000000000000G"), -1);        /* overflows */
    CHECK_INT(cv_parse_duration("250ms"), 250);
    CHECK_INT(cv_parse_duration("2 s"), 2000);
    CHECK_INT(cv_parse_duration("3m"), 180000);
    CHECK_INT(cv_parse_duration("1h"), 3600000);
    CHECK_INT(cv_parse_duration("2d"), 172800000);
    CHECK_INT(cv_parse_duration("1w"), 604800000);
    CHECK_INT(cv_parse_duration("5"), -1);    /* a duration needs its unit */
    CHECK_INT(cv_parse_duration("5y"), -1);
}

TEST(util_parse_int_checks_the_whole_string_and_the_range)
{
    int64_t v = 7;
    CHECK(cv_parse_int("42", 0, 100, &v));
    CHECK_INT(v, 42);
    CHECK(cv_parse_int("-5", -10, 10, &v));
    CHECK_INT(v, -5);
    v = 7;
    CHECK(!cv_parse_int("42x", 0, 100, &v));
    CHECK(!cv_parse_int("101", 0, 100, &v));
    CHECK(!cv_parse_int("-1", 0, 100, &v));
    CHECK(!cv_parse_int("", 0, 100, &v));
    CHECK(!cv_parse_int(NULL, 0, 100, &v));
    CHECK(!cv_parse_int("99999999999999999999", 0, INT64_MAX, &v));
    CHECK_INT(v, 7); /* untouched on failure */
    CHECK_STR(cv_plural(1, "row", "rows"), "row");
    CHECK_STR(cv_plural(0, "row", "rows"), "rows");
    CHECK_STR(cv_plural(2, "row", "rows"), "rows");
}

TEST(util_write_all_reports_a_closed_pipe)
{
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    CHECK_INT(cv_write_all(fds[1], "abc", 3), 0);
    char buf[4] = {0};
    CHECK_INT(read(fds[0], buf, 3), 3);
    CHECK_STR(buf, "abc");
    close(fds[0]);
    signal(SIGPIPE, SIG_IGN);
    errno = 0;
    CHECK_INT(cv_write_all(fds[1], "abc", 3), -1);
    CHECK_INT(errno, EPIPE);
    close(fds[1]);
}
