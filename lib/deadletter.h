/* deadletter.h - where rejected input goes: reported on stderr as
 * "SOURCE:LINE: reason" and appended, with its reason, to the program's
 * dead-letter file (NDJSON, 0600). */
#ifndef CV_DEADLETTER_H
#define CV_DEADLETTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cv_deadletter cv_deadletter;

/* Opens DIR/PROGRAM.ndjson for appending, creating DIR (0700) and the file
 * (0600). NULL with errno on failure. */
cv_deadletter *cv_deadletter_open(const char *dir, const char *program);
void cv_deadletter_close(cv_deadletter **p);

/* Report and record one rejected line. raw need not be valid UTF-8 (it is
 * then kept as base64). truncated marks a line cut at the size limit.
 * Returns 0, or -1 when the record could not be written (still reported
 * on stderr). */
int cv_deadletter_put(cv_deadletter *dl, const char *source, uint64_t line,
                      const char *reason, const char *raw, size_t len,
                      bool truncated);
uint64_t cv_deadletter_count(const cv_deadletter *dl);
/* Records that could not be written to the file. */
uint64_t cv_deadletter_failed(const cv_deadletter *dl);
const char *cv_deadletter_path(const cv_deadletter *dl);

#endif
