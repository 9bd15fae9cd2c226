/* ndjson.c - the shared NDJSON read loop. */
#include "net/ndjson.h"

#include "base/lineread.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

int cv_ndjson_each(int fd, const char *source, size_t max_line,
                   cv_deadletter *dl, cv_progress *progress, cv_line_fn *fn,
                   void *arg)
{
    return cv_ndjson_each_idle(fd, source, max_line, dl, progress, fn, NULL,
                               arg);
}

int cv_ndjson_each_idle(int fd, const char *source, size_t max_line,
                        cv_deadletter *dl, cv_progress *progress,
                        cv_line_fn *fn, cv_idle_fn *idle, void *arg)
{
    cv_lineread *lr = cv_lineread_new(fd, max_line);
    const char *line;
    size_t len;
    int rc, status = 0;
    while (!status && !cv_stop_requested &&
           (rc = cv_lineread_next(lr, &line, &len, idle != NULL)) != CV_LR_EOF) {
        if (rc == CV_LR_AGAIN) {
            /* every buffered line is done: the caller's turn, then wait */
            if ((status = idle(arg)) != 0)
                break;
            if (cv_lineread_fill(lr) >= 0)
                continue; /* at the end too: a last line without "\n" */
            rc = CV_LR_ERROR;
        }
        if (rc == CV_LR_ERROR) {
            /* a stop request interrupts the read: finish what is done */
            if (!cv_stop_requested) {
                cv_err("%s: read failed: %s", source, strerror(errno));
                status = EX_IOERR;
            }
            break;
        }
        uint64_t lineno = cv_lineread_lineno(lr);
        if (rc == CV_LR_TOOLONG) {
            char reason[96];
            snprintf(reason, sizeof reason, "line longer than %zu bytes",
                     max_line);
            cv_deadletter_put(dl, source, lineno, reason, line, len, true);
            continue;
        }
        if (strspn(line, " \t") == len)
            continue; /* blank lines are not events */
        status = fn(arg, source, lineno, line, len);
        if (progress)
            cv_progress_update(progress, lineno, NULL);
    }
    cv_lineread_destroy(&lr);
    return status;
}

int cv_ndjson_each_input(char **files, int nfiles, cv_input_fn *fn, void *arg,
                  bool *missing)
{
    if (nfiles == 0)
        return fn(arg, 0, "stdin");
    int status = 0;
    for (int i = 0; i < nfiles && !status && !cv_stop_requested; i++) {
        if (strcmp(files[i], "-") == 0) {
            status = fn(arg, 0, "stdin");
            continue;
        }
        int fd = open(files[i], O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
            close(fd);
            fd = -1;
            errno = EISDIR;
        }
        if (fd < 0) {
            cv_err("cannot open %s: %s", files[i], strerror(errno));
            *missing = true;
            continue;
        }
        status = fn(arg, fd, files[i]);
        close(fd);
    }
    return status;
}
