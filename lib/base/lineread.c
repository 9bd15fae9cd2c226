/* lineread.c - bounded line reader. The buffer holds at most max_line + one
 * read's worth of bytes; an over-long line is truncated to its first
 * max_line bytes and the remainder discarded up to the next newline. */
#include "base/lineread.h"

#include "base/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK 65536

struct cv_lineread {
    int fd;
    size_t max;
    char *buf;
    size_t cap, start, end; /* unread bytes are buf[start..end) */
    bool eof;
    bool skipping;          /* discarding the tail of an over-long line */
    uint64_t lineno;
};

cv_lineread *cv_lineread_new(int fd, size_t max_line)
{
    cv_lineread *lr = cv_calloc(1, sizeof *lr);
    lr->fd = fd;
    lr->max = max_line;
    lr->cap = max_line + CHUNK + 1;
    lr->buf = cv_malloc(lr->cap);
    return lr;
}

void cv_lineread_destroy(cv_lineread **p)
{
    if (!*p)
        return;
    free((*p)->buf);
    free(*p);
    *p = NULL;
}

uint64_t cv_lineread_lineno(const cv_lineread *lr) { return lr->lineno; }

int cv_lineread_fill(cv_lineread *lr)
{
    if (lr->eof)
        return 0;
    if (lr->start > 0 && (lr->cap - lr->end) < CHUNK) {
        memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
        lr->end -= lr->start;
        lr->start = 0;
    }
    for (;;) {
        ssize_t n = read(lr->fd, lr->buf + lr->end, lr->cap - lr->end - 1);
        if (n < 0 && errno == EINTR) {
            if (cv_stop_requested)
                return -1;
            continue;
        }
        if (n < 0)
            return -1;
        if (n == 0) {
            lr->eof = true;
            return 0;
        }
        lr->end += (size_t)n;
        return 1;
    }
}

static int emit(cv_lineread *lr, size_t nl, const char **line, size_t *len,
                int kind)
{
    char *s = lr->buf + lr->start;
    size_t n = nl - lr->start;
    lr->start = nl < lr->end ? nl + 1 : nl;
    if (n > 0 && s[n - 1] == '\r')
        n--;
    if (kind == CV_LR_TOOLONG && n > lr->max)
        n = lr->max;
    s[n] = '\0';
    lr->lineno++;
    *line = s;
    *len = n;
    return kind;
}

int cv_lineread_next(cv_lineread *lr, const char **line, size_t *len,
                     bool nonblock)
{
    for (;;) {
        if (lr->skipping) {
            char *nl = memchr(lr->buf + lr->start, '\n', lr->end - lr->start);
            if (nl) {
                lr->start = (size_t)(nl - lr->buf) + 1;
                lr->skipping = false;
                continue;
            }
            lr->start = lr->end = 0;
        } else {
            char *nl = memchr(lr->buf + lr->start, '\n', lr->end - lr->start);
            size_t have = lr->end - lr->start;
            if (nl) {
                size_t pos = (size_t)(nl - lr->buf);
                /* the \r of a CRLF does not count towards the limit */
                size_t n = pos - lr->start;
                if (n > 0 && lr->buf[pos - 1] == '\r')
                    n--;
                return emit(lr, pos, line, len,
                            n > lr->max ? CV_LR_TOOLONG : CV_LR_LINE);
            }
            if (have > lr->max + 1) {
                /* over the limit with no newline in sight: cut it here */
                lr->skipping = true;
                /* emit() also consumes the byte at the cut; it belongs to
                 * the tail that skipping discards anyway */
                return emit(lr, lr->start + lr->max, line, len,
                            CV_LR_TOOLONG);
            }
            if (lr->eof) {
                if (have == 0)
                    return CV_LR_EOF;
                return emit(lr, lr->end, line, len,
                            have > lr->max ? CV_LR_TOOLONG : CV_LR_LINE);
            }
        }
        if (lr->eof)
            return CV_LR_EOF;
        if (nonblock)
            return CV_LR_AGAIN;
        if (cv_lineread_fill(lr) < 0)
            return CV_LR_ERROR;
    }
}
