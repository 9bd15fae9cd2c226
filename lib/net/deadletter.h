/* deadletter.h - where rejected input goes: reported on stderr as
 * "SOURCE:LINE: reason" and appended, with its reason, to the program's
 * dead-letter file (NDJSON, 0600).
 *
 * A rejected line may hold exactly what the policy protects (a search
 * query, an email), so with a keyring the line itself is sealed like a
 * field ("raw_sealed", bound to the program, source and line); the reason,
 * source and line number stay readable. `ctxvault deadletter --decrypt`
 * opens them. */
#ifndef CV_DEADLETTER_H
#define CV_DEADLETTER_H

#include "crypto/keyring.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cv_deadletter cv_deadletter;

/* Opens DIR/PROGRAM.ndjson for appending, creating DIR (0700) and the file
 * (0600). kr (may be NULL: lines kept as they came) seals the lines and
 * must outlive the dead-letter file. NULL with errno on failure. */
cv_deadletter *cv_deadletter_open(const char *dir, const char *program,
                                  const cv_keyring *kr);
void cv_deadletter_close(cv_deadletter **p);

/* Report and record one rejected line. raw need not be valid UTF-8 (it is
 * then kept as base64). truncated marks a line cut at the size limit.
 * Returns 0, or -1 when the record could not be written (still reported
 * on stderr). */
int cv_deadletter_put(cv_deadletter *dl, const char *source, uint64_t line,
                      const char *reason, const char *raw, size_t len,
                      bool truncated);
uint64_t cv_deadletter_count(const cv_deadletter *dl);
/* Count each rejection in m (ctxvault_events_rejected_total by reason,
 * ctxvault_events_deadlettered_total when written). */
struct cv_metrics;
void cv_deadletter_set_metrics(cv_deadletter *dl, struct cv_metrics *m);
/* Records that could not be written to the file. */
uint64_t cv_deadletter_failed(const cv_deadletter *dl);
const char *cv_deadletter_path(const cv_deadletter *dl);

/* Print the records of DIR/PROGRAM.ndjson as NDJSON; with kr, sealed
 * lines are opened ("raw", or "raw_base64" when not UTF-8). Returns 0, or
 * a sysexits status. A missing file prints nothing. */
int cv_deadletter_show(const char *dir, const char *program,
                       const cv_keyring *kr, FILE *out);

#endif
