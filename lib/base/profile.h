/* profile.h - a user's privacy settings as a profile event states them:
 * their privacy level and retention, read from the event's members. Event
 * validation (event.h) checks them where the producer hears about a
 * mistake; what they mean for a row's times is the policy's business
 * (privacy/retention.h). */
#ifndef CV_PROFILE_H
#define CV_PROFILE_H

#include "base/jscan.h"

#include <stdbool.h>
#include <stddef.h>
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

/* Parse a privacy level name; false when unknown. */
bool cv_profile_privacy_parse(const char *s, cv_privacy *out);
const char *cv_profile_privacy_name(cv_privacy p);

/* Read the privacy_level and retention_days members of a profile event
 * (either may be absent; retention_days null or "forever" is forever). 0,
 * or -1 with a reason. */
int cv_profile_from_fields(const cv_jfield *lvl, const cv_jfield *days,
                           cv_profile *p, char *reason, size_t rlen);

/* cv_profile_from_fields, then the privacy-policy members an application
 * may send with a profile: "autoDelete": false keeps rows until the user
 * deletes them (retention forever, within each kind's cap);
 * "anonymization": true is the anonymous level; "encryption": "none" is
 * refused (the operator's policy decides), "strong" and "medium" change
 * nothing. line is the profile event (len bytes). */
int cv_profile_from_event(const char *line, size_t len, int max_depth,
                          const cv_jfield *lvl, const cv_jfield *days,
                          cv_profile *p, char *reason, size_t rlen);

#endif
