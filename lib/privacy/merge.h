/* merge.h - merging concurrent versions of a user's context, field by
 * field, for multi-device sync. Pure: no database, no sockets.
 *
 * Each top-level field of a context has a rule (the policy's [merge]
 * section, policy.h), by its exact name, else the default:
 *   lww       last writer wins: the greatest field clock (HLC, vclock.h);
 *             a tie goes to the bytewise greater device name, then to the
 *             bytewise greater JSON text (sorted keys, compact). "lww
 *             order" below is this order, winner first.
 *   union N   arrays: the winner's array as it is, then the other
 *             versions' elements in lww order that are not json_equal to
 *             one already taken, cut to N (1 to 100000) elements.
 *   max       numbers: the greatest; of equal values an integer over a
 *             real, then lww order.
 *   siblings  no automatic merge: the value when every version has an
 *             equal one, otherwise the field is unsettled (both kept for
 *             the user to choose).
 * union and max fall back to lww for a field where some version's value
 * is not an array, or not a number. Only the versions that have a field
 * are its candidates: a missing field is not a deletion. The result does
 * not depend on the order of the versions. */
#ifndef CV_MERGE_H
#define CV_MERGE_H

#include <jansson.h>
#include <stddef.h>

#define CV_MERGE_UNION_MAX 100000 /* the greatest N of "union N" */

typedef enum {
    CV_MERGE_LWW,
    CV_MERGE_UNION,
    CV_MERGE_MAX,
    CV_MERGE_SIBLINGS,
} cv_merge_kind;

typedef struct cv_merge_rules cv_merge_rules;

/* Rules with every field lww. */
cv_merge_rules *cv_merge_rules_new(void);
void cv_merge_rules_destroy(cv_merge_rules **p);
/* The rule for a field, or for "default" the default. value is "lww",
 * "union N", "max" or "siblings". -1 with a reason in err (rules
 * unchanged) for a bad value, or a field (or default) given twice. */
int cv_merge_rules_add(cv_merge_rules *r, const char *field,
                       const char *value, char *err, size_t errlen);
/* The rule for a field; *cap (may be NULL) gets N for union, else 0. */
cv_merge_kind cv_merge_rule_for(const cv_merge_rules *r, const char *field,
                                int *cap);
/* "lww", "union", "max" or "siblings". */
const char *cv_merge_kind_name(cv_merge_kind k);

typedef struct {
    const json_t *fields; /* object: the context's top-level members */
    const json_t *clock;  /* object: field -> integer HLC of its last
                           * write (absent: 0); may be NULL */
    const char *device;   /* the device that wrote the version */
} cv_merge_input;

/* Merge n >= 1 concurrent versions. 0 when every field settled: new
 * objects in *fields_out and *clock_out (every merged field's clock: the
 * greatest of its candidates'), *unsettled NULL. 1 when some field is
 * unsettled: the same, with the lww choice for the unsettled fields (a
 * best guess to show), and in *unsettled a new array of their names,
 * sorted bytewise. -1 (outputs NULL) on bad input: n == 0, fields not an
 * object, clock neither NULL nor an object of integers >= 0, or no
 * device. The values in the outputs are copies: the inputs may go. */
int cv_merge_versions(const cv_merge_rules *r, const cv_merge_input *in,
                      size_t n, json_t **fields_out, json_t **clock_out,
                      json_t **unsettled);

#endif
