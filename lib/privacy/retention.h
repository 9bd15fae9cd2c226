/* retention.h - when a row expires and when its personal data is scrubbed,
 * from the policy's kind defaults tightened by the user's profile
 * (doc/DESIGN.md §4): a shorter retention wins, ephemeral keeps data an
 * hour, anonymous scrubs on arrival. */
#ifndef CV_RETENTION_H
#define CV_RETENTION_H

#include "base/profile.h"
#include "privacy/policy.h"

#include <stdbool.h>
#include <stdint.h>

/* The smaller of two durations or times, where < 0 means never. */
int64_t cv_retention_sooner(int64_t a, int64_t b);

/* Compute expires_at and scrub_after (ms; -1 for never) of a row of kind
 * with event time ts that arrived at created_at. Retention counts from the
 * earlier of the two, so a clock running ahead cannot extend it. The
 * user's own retention, when chosen, replaces the kind's default up to
 * the kind's cap (cv_policy_cap_ms); ephemeral caps it at an hour. */
void cv_retention_compute(const cv_policy *pol, const char *kind, int64_t ts,
                          int64_t created_at, const cv_profile *prof,
                          int64_t *expires_at, int64_t *scrub_after);

/* The same for a profile event. The one in force (the user's settings)
 * is kept until erased, or an hour for an ephemeral user; one a newer
 * profile superseded is kept as long as the user's retention (prof, the
 * profile in force) says, and with no choice made, as long as kind
 * other's default when [retention] profile is "user". */
void cv_retention_profile(const cv_policy *pol, bool in_force, int64_t ts,
                          int64_t created_at, const cv_profile *prof,
                          int64_t *expires_at, int64_t *scrub_after);

#endif
