/* cvclient-example - page through a user's interactions with the client
 * library (include/ctxvault/cvclient.h): no ZeroMQ, JSON library or SQLite here.
 *
 *   cvclient-example [--home DIR] [--page N] [--type T] USER
 *   cvclient-example [--home DIR] --save NAME FIELDS-JSON USER
 *
 * Prints each event on a line (NDJSON, newest first), then on stderr the
 * number of events and pages. With --save, saves a context named NAME
 * (its fields a JSON object), then loads the user's latest context of
 * that name back and prints it (as stored: sealed fields stay sealed).
 * Exit status: 0, 66 no such user, 69 no store answering, 65 another
 * refusal. */
#include "ctxvault/cvclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The exit status for a call that did not succeed. */
static int failure(cv_client *c, int rc)
{
    fprintf(stderr, "cvclient-example: %s (%s)\n", cv_client_error(c),
            cv_client_error_code(c));
    return rc == CV_CLIENT_FAILED ? 69
           : strcmp(cv_client_error_code(c), "not_found") == 0 ? 66 : 65;
}

/* Save a context, then read it back: the write and the read side. */
static int save_and_load(cv_client *c, const char *user, const char *name,
                         const char *fields)
{
    /* id left "": the library makes one, and resends under it if store
     * does not answer in time, so the context is stored once */
    cv_client_context cx = {.user = user, .name = name, .fields = fields};
    int rc = cv_client_context_save(c, &cx);
    if (rc != 0)
        return failure(c, rc);
    fprintf(stderr, "cvclient-example: saved %s (%s)\n", cx.id,
            cx.stored ? "stored" : "already stored");
    char *ctx;
    rc = cv_client_context_load(c, user, name, false, &ctx);
    if (rc != 0)
        return failure(c, rc);
    puts(ctx);
    free(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    const char *home = NULL, *save = NULL, *fields = NULL;
    cv_client_filter f = {0};
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--home") == 0)
            home = argv[i + 1];
        else if (strcmp(argv[i], "--page") == 0)
            f.page = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--type") == 0)
            f.type = argv[i + 1];
        else if (strcmp(argv[i], "--save") == 0 && i + 2 < argc) {
            save = argv[i + 1];
            fields = argv[++i + 1];
        } else
            break;
    }
    if (i != argc - 1) {
        fprintf(stderr, "usage: cvclient-example [--home DIR] [--page N] "
                        "[--type T] USER\n"
                        "       cvclient-example [--home DIR] --save NAME "
                        "FIELDS-JSON USER\n");
        return 64;
    }
    f.user = argv[i];

    char err[512];
    cv_client *c = cv_client_open(home, err, sizeof err);
    if (!c) {
        fprintf(stderr, "cvclient-example: %s\n", err);
        return 78;
    }
    if (save) {
        int status = save_and_load(c, f.user, save, fields);
        cv_client_close(&c);
        return status;
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
        status = failure(c, rc);
    } else {
        fprintf(stderr, "cvclient-example: %ld events in %d pages\n", n,
                cv_client_iter_pages(it));
    }
    cv_client_iter_destroy(&it);
    cv_client_close(&c);
    return status;
}
