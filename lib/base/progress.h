/* progress.h - a one-line progress display on stderr, only when stderr is
 * a terminal, redrawn at most four times a second. */
#ifndef CV_PROGRESS_H
#define CV_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    bool on;
    int64_t start_ms, last_ms;
    const char *what;
} cv_progress;

void cv_progress_init(cv_progress *p, const char *what);
/* Redraw if due: "WHAT: N done, R/s[, extra]". */
void cv_progress_update(cv_progress *p, uint64_t done, const char *extra);
/* Clear the line. */
void cv_progress_done(cv_progress *p);

#endif
