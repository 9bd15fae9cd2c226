/* cvclientcall.c - a test driver for the client library's calls that
 * nothing else in the tree makes (include/ctxvault/cvclient.h, linked as
 * an application links it: no ZeroMQ, JSON library or SQLite here), so
 * the shell suites can run each against a real store:
 *
 *   cvclientcall [--home DIR] [--timeout MS] db-size
 *   cvclientcall [--home DIR] [--timeout MS] stats-period SINCE|- UNTIL|-
 *   cvclientcall [--home DIR] [--timeout MS] compact PAGES MAX_MS
 *
 * db-size: cv_client_db_size; stats-period: cv_client_stats_period ("-"
 * leaves that end open); compact: one cv_client_compact request (0: the
 * store's default). Prints the reply's JSON on stdout. Exit status: 0,
 * 69 no store answering (CV_CLIENT_FAILED), 65 a refusal, 64 usage, 78
 * the instance's configuration could not be loaded; on failure the
 * library's error and code go to stderr. */
#include "ctxvault/cvclient.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr,
            "usage: cvclientcall [--home DIR] [--timeout MS] db-size\n"
            "       cvclientcall [--home DIR] [--timeout MS] stats-period "
            "SINCE|- UNTIL|-\n"
            "       cvclientcall [--home DIR] [--timeout MS] compact PAGES "
            "MAX_MS\n");
    return 64;
}

/* A whole non-negative int from s, or -1. */
static int count_arg(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 1000000000)
        return -1;
    return (int)v;
}

/* "-": an open end (NULL). */
static const char *time_arg(const char *s)
{
    return strcmp(s, "-") == 0 ? NULL : s;
}

int main(int argc, char **argv)
{
    const char *home = NULL;
    int timeout = 0;
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--home") == 0)
            home = argv[i + 1];
        else if (strcmp(argv[i], "--timeout") == 0 &&
                 (timeout = count_arg(argv[i + 1])) > 0)
            ;
        else
            return usage();
    }
    if (i >= argc)
        return usage();
    const char *what = argv[i];
    int nargs = argc - i - 1;
    int pages = 0, max_ms = 0;
    if (strcmp(what, "db-size") == 0) {
        if (nargs != 0)
            return usage();
    } else if (strcmp(what, "stats-period") == 0) {
        if (nargs != 2)
            return usage();
    } else if (strcmp(what, "compact") == 0) {
        if (nargs != 2 || (pages = count_arg(argv[i + 1])) < 0 ||
            (max_ms = count_arg(argv[i + 2])) < 0)
            return usage();
    } else
        return usage();

    char err[512];
    cv_client *c = cv_client_open(home, err, sizeof err);
    if (!c) {
        fprintf(stderr, "cvclientcall: %s\n", err);
        return 78;
    }
    if (timeout > 0)
        cv_client_set_timeout(c, timeout);
    char *reply = NULL;
    int rc;
    if (strcmp(what, "db-size") == 0)
        rc = cv_client_db_size(c, &reply);
    else if (strcmp(what, "stats-period") == 0)
        rc = cv_client_stats_period(c, time_arg(argv[i + 1]),
                                    time_arg(argv[i + 2]), &reply);
    else
        rc = cv_client_compact(c, pages, max_ms, &reply);
    int status = 0;
    if (rc == 0)
        puts(reply);
    else {
        fprintf(stderr, "cvclientcall: %s: %s (%s)\n", what,
                cv_client_error(c), cv_client_error_code(c));
        status = rc == CV_CLIENT_FAILED ? 69 : 65;
    }
    free(reply);
    cv_client_close(&c);
    return status;
}
