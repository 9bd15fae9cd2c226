/* segment.h - user.segment: a user's segment from their interactions, by
 * the rules of [segments] (cv_segment_rules, config.h), stored with what
 * it was computed from (the segments table, schema version 2).
 *
 * The segment is the first of these that holds:
 *   dormant  no stored interaction, or none for dormant_after
 *   new      the first stored interaction is within new_within
 *   power    >= power_interactions in the window, of >= power_types types
 *   regular  >= regular_interactions in the window
 *   casual   the rest
 * where the window is the last `window` before now (later ts included).
 * A stored segment is returned while it is fresh: computed less than
 * stale_after ago, under the same rules, and no interaction committed
 * since (a greater seq). Otherwise, or on "refresh", it is computed again
 * and stored, in a journaled transaction of its own on the writer's
 * connection (a maintenance op, lib/ops/maint.h). Erasing the user deletes
 * the row. */
#ifndef CV_SEGMENT_H
#define CV_SEGMENT_H

#include "base/config.h"
#include "storage/writer.h"

#include <jansson.h>
#include <stdint.h>

typedef struct {
    int64_t now;
    int64_t interactions;  /* with ts in the window */
    int64_t types;         /* distinct types among them */
    int64_t first_ts;      /* of every stored interaction; -1: none */
    int64_t last_ts;
} cv_segment_inputs;

/* The segment's name: "dormant", "new", "power", "regular" or "casual". */
const char *cv_segment_classify(const cv_segment_rules *r,
                                const cv_segment_inputs *in);
/* The rules as JSON, stored with each result (a change of rules makes
 * stored results stale). */
json_t *cv_segment_rules_json(const cv_segment_rules *r);

/* user.segment {"user":U,"refresh":bool?} on the writer's connection:
 * {"ok":true,"segment":S,"computed_at":T,"recomputed":bool,"inputs":{}}. */
json_t *cv_segment_op(cv_writer *m, json_t *req);

#endif
