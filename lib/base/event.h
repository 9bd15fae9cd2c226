/* event.h - what makes a line an event: validation and normalisation.
 *
 * An accepted event is a JSON object with a non-empty string "user_id" and
 * a string "kind", an RFC 3339 "ts" if it has one, and an "id". The
 * normalised event is the producer's own text with "id" (and "ts", when
 * missing) inserted at the front: the producer's bytes are kept.
 *
 * A missing id is a ULID-style 26-character string whose first 10
 * characters encode the event's time (time first, so the id index grows
 * at its end). For an event with a ts, the rest is 80 bits of keyed
 * BLAKE2b over its canonical form (canonical.h: sorted members, minimal
 * escapes, ts normalised), so a re-send dedupes. An event with neither id
 * nor ts gets now_ms as its ts and 80 random bits: two identical such
 * lines are two events (two clicks), and a re-sent file is stored again.
 * The normalised line carries its id, so a replay of it keeps it. */
#ifndef CV_EVENT_H
#define CV_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_ID_MAX 128
#define CV_KIND_MAX 64
#define CV_USER_MAX 256

typedef struct {
    int max_depth;          /* nesting limit */
    const uint8_t *id_key;  /* 32-byte key for derived ids */
    const char *default_kind; /* the kind of an object without one, or NULL */
} cv_event_rules;

/* Validate one line and produce its normalised text. 0 with a malloc'ed
 * line (no newline) in *out; -1 with a reason in reason. now_ms fills a
 * missing ts. */
int cv_event_normalise(const cv_event_rules *r, const char *line, size_t len,
                       int64_t now_ms, char **out, size_t *outlen,
                       char *reason, size_t rlen);

/* An id in the layout derived ids have: ms in its first 10 characters
 * (time-ordered), then the 80 bits given (a digest, or random bits for a
 * client that has no id key: lib/ctx/client.c). */
#define CV_EVENT_ID_LEN 26
void cv_event_make_id(int64_t ms, const uint8_t bits[10],
                      char out[CV_EVENT_ID_LEN + 1]);

/* The id of a normalised event (a stage's input): the fast path for what
 * ingest writes ({"id":"..." first), the scanner otherwise. false when it
 * has none that cv_event_id_valid() accepts, or none that fits idlen. */
bool cv_event_id_of(int max_depth, const char *line, size_t len, char *id,
                    size_t idlen);

/* Is s an acceptable producer id (1..128 printable ASCII characters, no
 * quote, backslash or space)? */
int cv_event_id_valid(const char *s, size_t len);

#endif
