/* retention.c - the retention rules of doc/DESIGN.md §4 in one place. */
#include "privacy/retention.h"

#include "base/util.h"

int64_t cv_retention_sooner(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

/* How long a row of kind is kept (ms, CV_FOREVER): the kind's default,
 * or the user's choice within the kind's cap (schedule applies
 * ephemeral). */
static int64_t keep_for(const cv_policy *pol, const char *kind,
                        const cv_profile *prof)
{
    int64_t days = prof && prof->known ? prof->retention_days : CV_DAYS_UNSET;
    int64_t keep = cv_policy_keep_ms(pol, kind);
    if (days != CV_DAYS_UNSET) {
        /* the user's choice, within what the operator allows the kind */
        int64_t user_keep = days >= 0 ? days * 86400000LL : CV_FOREVER;
        keep = keep == CV_USER_DEFINED
                   ? user_keep
                   : cv_retention_sooner(user_keep, cv_policy_cap_ms(pol, kind));
    } else if (keep == CV_USER_DEFINED) {
        keep = CV_FOREVER;
    }
    return keep;
}

static void schedule(const cv_policy *pol, const char *kind, int64_t keep,
                     int64_t ts, int64_t created_at, const cv_profile *prof,
                     int64_t *expires_at, int64_t *scrub_after);

void cv_retention_compute(const cv_policy *pol, const char *kind, int64_t ts,
                          int64_t created_at, const cv_profile *prof,
                          int64_t *expires_at, int64_t *scrub_after)
{
    schedule(pol, kind, keep_for(pol, kind, prof), ts, created_at, prof,
             expires_at, scrub_after);
}

void cv_retention_profile(const cv_policy *pol, bool in_force, int64_t ts,
                          int64_t created_at, const cv_profile *prof,
                          int64_t *expires_at, int64_t *scrub_after)
{
    int64_t keep = CV_FOREVER;
    if (!in_force) {
        keep = keep_for(pol, "profile", prof);
        /* no choice made, and the profile kind follows the user's: its
         * history goes as the kind other's default says, not never */
        if ((!prof || !prof->known || prof->retention_days == CV_DAYS_UNSET) &&
            cv_policy_keep_ms(pol, "profile") == CV_USER_DEFINED)
            keep = keep_for(pol, "other", prof);
    }
    schedule(pol, "profile", keep, ts, created_at, prof, expires_at, scrub_after);
}

static void schedule(const cv_policy *pol, const char *kind, int64_t keep,
                     int64_t ts, int64_t created_at, const cv_profile *prof,
                     int64_t *expires_at, int64_t *scrub_after)
{
    if (prof && prof->known && prof->privacy == CV_PRIVACY_EPHEMERAL)
        keep = cv_retention_sooner(keep, cv_policy_ephemeral_ms(pol));

    int64_t base = ts < created_at ? ts : created_at;
    *expires_at = keep < 0 ? -1 : base + keep;

    if (prof && prof->known && prof->privacy == CV_PRIVACY_ANONYMOUS) {
        *scrub_after = created_at;
        return;
    }
    int64_t scrub = cv_policy_scrub_ms(pol, kind);
    *scrub_after = scrub < 0 ? -1 : base + scrub;
    /* a row deleted before its scrub age never needs scrubbing; leaving
     * it out keeps the scrub index small */
    if (*scrub_after >= 0 && *expires_at >= 0 && *expires_at <= *scrub_after)
        *scrub_after = -1;
}

