/* fieldname.h - member names as people write them.
 *
 * One member reaches us as user_id, userId, UserID or user-id, depending on
 * the producer's language and habits. Everything that finds a member by
 * its name (the patterns of [fields], [scrub fields] and [merge], and the
 * reserved members ingest and store read) compares *folded* names: ASCII
 * letters lowercased, '_' and '-' removed. Camel humps need no rule of
 * their own: recentSearches, recent_searches and RECENT-SEARCHES all fold
 * to "recentsearches". Bytes outside ASCII are compared as they are.
 *
 * The reserved members are the top-level members store reads, named here
 * once, with the other names producers use for them (an an application's
 * "timestamp" for ts, "dataRetentionDays" for retention_days). Ingest
 * rewrites each to its canonical name, so later stages and rules see one
 * spelling. */
#ifndef CV_FIELDNAME_H
#define CV_FIELDNAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The folded form of s (n bytes) into out, which needs room for n bytes
 * (folding never grows a name); returns its length. Not NUL-terminated. */
size_t cv_fieldname_fold(const char *s, size_t n, char *out);

/* Do s (n bytes, as written) and folded (flen bytes, already folded)
 * name the same member? Without copying s. */
bool cv_fieldname_is(const char *s, size_t n, const char *folded, size_t flen);

/* Do two names as written name the same member? */
bool cv_fieldname_eq(const char *a, size_t an, const char *b, size_t bn);

/* FNV-1a over the folded form of s, so equal names hash equal. */
uint32_t cv_fieldname_hash(const char *s, size_t n);

/* The reserved top-level members, in the order ingest writes them. */
typedef enum {
    CV_MEMBER_ID,
    CV_MEMBER_TS,
    CV_MEMBER_KIND,
    CV_MEMBER_USER,
    CV_MEMBER_TYPE,
    CV_MEMBER_LEVEL,
    CV_MEMBER_DAYS,
    CV_MEMBER_COUNT
} cv_member;

/* The canonical name of a reserved member ("user_id"). */
const char *cv_fieldname_member(cv_member m);
/* Its other name, not a spelling of the canonical one ("timestamp" for ts),
 * or NULL. */
const char *cv_fieldname_alias(cv_member m);
/* The reserved member that s (n bytes, as written) names, or -1. */
int cv_fieldname_of(const char *s, size_t n);

#endif
