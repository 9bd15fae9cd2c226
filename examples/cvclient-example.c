/* cvclient-example - page through a user's interactions with the client
 * library (lib/cvclient.h): no ZeroMQ, JSON library or SQLite here.
 *
 *   cvclient-example [--home DIR] [--page N] [--type T] USER
 *
 * Prints each event on a line (NDJSON, newest first), then on stderr the
 * number of events and pages. Exit status: 0, 66 no such user, 69 no
 * store answering, 65 another refusal. */
#include "cvclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *home = NULL;
    cv_client_filter f = {0};
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--home") == 0)
            home = argv[i + 1];
        else if (strcmp(argv[i], "--page") == 0)
            f.page = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--type") == 0)
            f.type = argv[i + 1];
        else
            break;
    }
    if (i != argc - 1) {
        fprintf(stderr, "usage: cvclient-example [--home DIR] [--page N] "
                        "[--type T] USER\n");
        return 64;
    }
    f.user = argv[i];

    char err[512];
    cv_client *c = cv_client_open(home, err, sizeof err);
    if (!c) {
        fprintf(stderr, "cvclient-example: %s\n", err);
        return 78;
    }
    cv_client_iter *it = cv_client_interactions(c, &f);
    long n = 0;
    int rc = CV_CLIENT_FAILED;
    char *event;
    while (it && (rc = cv_client_iter_next(it, &event)) > 0) {
        puts(event);
        free(event);
        n++;
    }
    int status = 0;
    if (!it || rc != 0) {
        fprintf(stderr, "cvclient-example: %s (%s)\n", cv_client_error(c),
                cv_client_error_code(c));
        status = rc == CV_CLIENT_FAILED ? 69
                 : strcmp(cv_client_error_code(c), "not_found") == 0 ? 66 : 65;
    } else {
        fprintf(stderr, "cvclient-example: %ld events in %d pages\n", n,
                cv_client_iter_pages(it));
    }
    cv_client_iter_destroy(&it);
    cv_client_close(&c);
    return status;
}
