/* progress.c - rate-limited terminal progress line. */
#include "base/progress.h"

#include "base/util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

void cv_progress_init(cv_progress *p, const char *what)
{
    memset(p, 0, sizeof *p);
    p->on = isatty(2);
    p->start_ms = p->last_ms = cv_mono_ms();
    p->what = what;
}

void cv_progress_update(cv_progress *p, uint64_t done, const char *extra)
{
    if (!p->on)
        return;
    int64_t now = cv_mono_ms();
    if (now - p->last_ms < 250)
        return;
    p->last_ms = now;
    double secs = (double)(now - p->start_ms) / 1000.0;
    char line[256];
    int n = snprintf(line, sizeof line, "\r%s: %llu done, %.0f/s%s%s\033[K",
                     p->what, (unsigned long long)done,
                     secs > 0 ? (double)done / secs : 0.0, extra ? ", " : "",
                     extra ? extra : "");
    if (n > 0)
        (void)cv_write_all(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

void cv_progress_done(cv_progress *p)
{
    if (p->on && p->last_ms != p->start_ms)
        (void)cv_write_all(2, "\r\033[K", 4);
}
