/* ndjson.h - the read loop every filter shares: lines from a file
 * descriptor, over-long lines dead-lettered, blank lines skipped, a stop
 * request honoured, progress shown on a terminal. */
#ifndef CV_NDJSON_H
#define CV_NDJSON_H

#include "net/deadletter.h"
#include "base/progress.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called for each non-blank line; returns 0 to go on, or a sysexits
 * status to stop the loop with. */
typedef int (cv_line_fn)(void *arg, const char *source, uint64_t lineno,
                         const char *line, size_t len);

/* Feed every line of fd to fn. Returns 0 at end of input or on a stop
 * request, EX_IOERR on a read error (logged), or fn's status. */
int cv_ndjson_each(int fd, const char *source, size_t max_line,
                   cv_deadletter *dl, cv_progress *progress, cv_line_fn *fn,
                   void *arg);

/* cv_ndjson_each, calling idle(arg) whenever every line read so far is
 * done and the next read may wait (a filter flushes its output there);
 * a non-zero status from it ends the loop. */
typedef int (cv_idle_fn)(void *arg);
int cv_ndjson_each_idle(int fd, const char *source, size_t max_line,
                        cv_deadletter *dl, cv_progress *progress,
                        cv_line_fn *fn, cv_idle_fn *idle, void *arg);

/* Called with each input's fd and its name for messages. */
typedef int (cv_input_fn)(void *arg, int fd, const char *source);

/* The inputs of a filter: each of files ("-" is stdin), or stdin when
 * there are none. One that cannot be opened (or is a directory) is
 * reported and sets *missing; the others are still read. Returns fn's
 * first non-zero status, or 0. */
int cv_ndjson_each_input(char **files, int nfiles, cv_input_fn *fn, void *arg,
                  bool *missing);

#endif
