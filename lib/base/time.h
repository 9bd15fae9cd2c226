/* time.h - RFC 3339 timestamps <-> milliseconds since the epoch (UTC). */
#ifndef CV_TIME_H
#define CV_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parse an RFC 3339 date-time ("2026-11-22T10:04:05.123Z", offsets such as
 * "+02:00", 't'/'z' and a space separator accepted). Fractions beyond
 * milliseconds are truncated. false when malformed or out of range. */
bool cv_time_parse(const char *s, size_t len, int64_t *ms);
/* Format as "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 bytes + NUL). */
void cv_time_format_ms(int64_t ms, char out[40]);

#endif
