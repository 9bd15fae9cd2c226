/* lineread.h - read newline-delimited records from a file descriptor with
 * bounded memory: a line longer than the limit is cut, reported, and the
 * rest of it skipped, so one huge line cannot exhaust memory. */
#ifndef CV_LINEREAD_H
#define CV_LINEREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cv_lineread cv_lineread;

enum {
    CV_LR_LINE = 1,     /* a complete line */
    CV_LR_EOF = 0,      /* end of input */
    CV_LR_ERROR = -1,   /* read error, errno set */
    CV_LR_TOOLONG = -2, /* a line over the limit: its first max bytes */
    CV_LR_AGAIN = -3,   /* no complete line yet (non-blocking call) */
};

cv_lineread *cv_lineread_new(int fd, size_t max_line);
void cv_lineread_destroy(cv_lineread **p);

/* The next line, without its "\n" and without one trailing "\r". The
 * pointer is valid until the next call. When nonblock, no read(2) is made:
 * CV_LR_AGAIN means "nothing complete buffered" (call cv_lineread_fill
 * when poll(2) says the fd is readable). A final line without a newline
 * is returned at EOF. */
int cv_lineread_next(cv_lineread *lr, const char **line, size_t *len,
                     bool nonblock);
/* One read(2) into the buffer: 1 bytes read, 0 end of input, -1 error. */
int cv_lineread_fill(cv_lineread *lr);
/* Number of the line last returned, counting from 1. */
uint64_t cv_lineread_lineno(const cv_lineread *lr);

#endif
