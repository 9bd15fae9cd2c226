/* canonical.h - the canonical form of an event, which its derived id digests.
 *
 * Two events that mean the same get the same text: insignificant space is
 * dropped, object members are sorted by name (bytewise, after decoding),
 * strings are re-escaped minimally (only '"', '\' and control characters,
 * as \uXXXX), and the top-level "ts" takes its normalised UTC form.
 * Numbers keep their text (1.5 and 1.50 stay different). */
#ifndef CV_CANONICAL_H
#define CV_CANONICAL_H

#include <stddef.h>

/* Write the canonical form of the JSON object text into *out (malloc'ed,
 * grown as needed; *cap is its size). ts_norm, when not NULL, replaces the
 * top-level "ts" value. Returns the length, or -1 with a reason in err
 * (invalid JSON or nested deeper than max_depth). */
long cv_canonical(const char *text, size_t len, int max_depth,
                  const char *ts_norm, char **out, size_t *cap, char *err,
                  size_t errlen);

#endif
