/* retention.h - when a row expires and when its personal data is scrubbed,
 * from the policy's kind defaults tightened by the user's profile
 * (doc/DESIGN.md §4): a shorter retention wins, ephemeral keeps data an
 * hour, anonymous scrubs on arrival. */
#ifndef CV_RETENTION_H
#define CV_RETENTION_H

#include "base/jscan.h"
#include "privacy/policy.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    CV_PRIVACY_UNSET = 0,
    CV_PRIVACY_PUBLIC,
    CV_PRIVACY_PRIVATE,
    CV_PRIVACY_ANONYMOUS,
    CV_PRIVACY_EPHEMERAL,
} cv_privacy;

/* A user's own retention: days, or one of these. */
#define CV_DAYS_UNSET (-1)   /* not chosen: each kind's default */
#define CV_DAYS_FOREVER (-2) /* until erased, as far as each kind's cap allows */

typedef struct {
    bool known;             /* a profile event has been seen */
    cv_privacy privacy;
    int64_t retention_days; /* >= 0, CV_DAYS_UNSET or CV_DAYS_FOREVER */
    bool was_anonymous;     /* left the anonymous level (store's anon_past) */
} cv_profile;

/* The smaller of two durations or times, where < 0 means never. */
int64_t cv_retention_sooner(int64_t a, int64_t b);

/* Parse a privacy level name; false when unknown. */
bool cv_retention_privacy_parse(const char *s, cv_privacy *out);
const char *cv_retention_privacy_name(cv_privacy p);

/* Read the privacy_level and retention_days members of a profile event
 * (either may be absent; retention_days null or "forever" is forever). 0,
 * or -1 with a reason. */
int cv_retention_profile_from_fields(const cv_jfield *lvl, const cv_jfield *days,
                           cv_profile *p, char *reason, size_t rlen);

/* cv_retention_profile_from_fields, then the privacy-policy members an application
 * may send with a profile: "autoDelete": false keeps rows until the user
 * deletes them (retention forever, within each kind's cap);
 * "anonymization": true is the anonymous level; "encryption": "none" is
 * refused (the operator's policy decides), "strong" and "medium" change
 * nothing. line is the profile event (len bytes). */
int cv_retention_profile_from_event(const char *line, size_t len, int max_depth,
                          const cv_jfield *lvl, const cv_jfield *days,
                          cv_profile *p, char *reason, size_t rlen);

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
