/* policy.h - the retention and field policy (etc/policy.conf).
 *
 * [retention]  kind = DURATION [up to CAP] | forever | user
 *                                                (how long rows are kept;
 *                                                 a user may choose up to CAP)
 * [scrub]      kind = DURATION                    (when personal data goes)
 * [privacy]    ephemeral = DURATION               (privacy level limits)
 * [public]     PATTERN = share                  (what a public user's reads
 *                                                show without decrypting)
 * [merge]      FIELD = lww | union N | max | siblings
 *              default = RULE                     (how sync merges a
 *                                                  context's top-level
 *                                                  fields: merge.h)
 * [fields]     PATTERN = OPERATOR [ARG]           (first match wins)
 *              default = OPERATOR [ARG]           (what no rule matches)
 *
 * A PATTERN is a dotted path of object keys; "*" matches one key and "**"
 * any number (including none). Array elements take their array's path.
 * [scrub fields] PATTERN = OPERATOR [ARG]         (scrub, every kind)
 * [scrub fields KIND]                              (scrub, tried first)
 * Operators: encrypt, hash PURPOSE, generalise [city|country], round,
 * drop, mask, anonymise, keep.
 * keep descends into objects and arrays, so rules for nested fields still
 * apply; encrypt and drop take the matched value whole; hash, generalise,
 * round and mask take each element of an array. The default (keep unless
 * set) applies to the leaves of objects no rule matched.
 * The top-level members id, kind, type, ts, privacy_level and
 * retention_days are never transformed: store reads them. user_id may only
 * be kept or hashed. The built-in policy is etc/policy.conf itself. */
#ifndef CV_POLICY_H
#define CV_POLICY_H

#include "crypto/keyring.h"
#include "privacy/merge.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_FOREVER (-1)    /* keep_ms: never expires */
#define CV_USER_DEFINED (-2) /* keep_ms: as long as the user's retention */

typedef struct cv_policy cv_policy;

typedef enum {
    CV_OP_KEEP,
    CV_OP_ENCRYPT,
    CV_OP_HASH,
    CV_OP_GENERALISE,
    CV_OP_ROUND,
    CV_OP_DROP,
    CV_OP_MASK,
    CV_OP_ANONYMISE,
} cv_op;

/* What anonymise puts in place of a value. */
#define CV_ANONYMISED "[scrubbed]"

/* The operator's name as policy.conf spells it. */
const char *cv_policy_op_name(cv_op op);

extern const char cv_default_policy_text[];

/* Parse policy text; each problem is reported on stderr as
 * "SOURCE:LINE: reason" and counted in *problems. NULL only when the text
 * is unusable. */
cv_policy *cv_policy_parse(const char *source, const char *text, int *problems);
/* Load a policy file, or the built-in policy when path is NULL or the file
 * does not exist and missing_ok. */
cv_policy *cv_policy_load(const char *path, bool missing_ok, int *problems);
void cv_policy_destroy(cv_policy **p);

/* Retention of a kind in ms, CV_FOREVER or CV_USER_DEFINED. Kinds not
 * listed take the "other" entry. */
int64_t cv_policy_keep_ms(const cv_policy *p, const char *kind);
/* How long a user's own retention may keep rows of a kind, in ms or
 * CV_FOREVER ("30d up to 365d": 365d); without "up to", the retention
 * itself, so a user can only shorten it. Meaningless for "user" kinds. */
int64_t cv_policy_cap_ms(const cv_policy *p, const char *kind);
/* Scrub age of a kind in ms (CV_FOREVER: never scrubbed). */
int64_t cv_policy_scrub_ms(const cv_policy *p, const char *kind);
/* Retention of the ephemeral privacy level in ms (default 1h). */
int64_t cv_policy_ephemeral_ms(const cv_policy *p);
/* The rules of [merge] (every field lww when the section is absent);
 * owned by the policy. */
const cv_merge_rules *cv_policy_merge_rules(const cv_policy *p);

/* Apply the field rules to an event object in place. The event's "id"
 * (a string) must be present: it is bound into every encrypted field.
 * 0 on success; -1 with a reason in err, leaving the event half-done, so
 * the caller must drop it rather than pass it on. */
int cv_policy_apply(const cv_policy *p, const cv_keyring *kr,
                    const cv_datakey *dk, json_t *event, char *err,
                    size_t errlen);

/* Scrub a stored event in place with the rules of [scrub fields KIND]
 * (tried first) and [scrub fields]; what no rule matches takes their
 * default (keep unless set). Differences from cv_policy_apply: a sealed
 * value (an envelope) that a rule other than keep or encrypt names is
 * removed; the top-level ts may be rounded (by a rule for "ts" only);
 * user_id is never touched; a value an operator leaves as it was is no
 * change, so scrubbing twice changes nothing. note, when not NULL, is
 * called with the dotted path and operator of each field changed. The
 * number of fields changed, or -1 with a reason in err (the event is then
 * half-done: throw it away). */
typedef void cv_policy_scrub_note(void *ctx, const char *path, cv_op op);
int cv_policy_scrub(const cv_policy *p, const cv_keyring *kr,
                    const char *kind, json_t *event, cv_policy_scrub_note *note,
                    void *ctx, char *err, size_t errlen);
/* cv_policy_scrub on an event's text, as cv_policy_apply_text applies
 * [fields]: one pass, only changed values spliced in, the output in *out
 * (reused from call to call, NUL-terminated). A replacement that is the
 * value's own text is no change. *ts (may be NULL) gets the new time of
 * the top-level ts when a rule rewrote it. The number of fields changed,
 * or -1. */
int cv_policy_scrub_text(const cv_policy *p, const cv_keyring *kr,
                         const char *kind, const char *line, size_t len,
                         cv_policy_scrub_note *note, void *ctx, char **out,
                         size_t *outlen, size_t *outcap, int64_t *ts,
                         char *err, size_t errlen);
/* A scrubbed body: reused from row to row (start zeroed, free text). */
typedef struct {
    char *text;
    size_t len, cap;
} cv_policy_scrub_buf;

/* Scrub one stored body (JSON text of len bytes) of the given kind: the
 * number of fields changed (0: the body stays as it is), or -1 with a
 * reason in err. On a change, out holds the new body (NUL-terminated) and
 * *ts the row's ts as the body now has it (a rule may round it; otherwise
 * unchanged). note (may be NULL) is called per field changed. */
int cv_policy_scrub_body(const cv_policy *pol, const cv_keyring *kr,
                         const char *kind, const char *body, size_t len,
                         cv_policy_scrub_buf *out, int64_t *ts,
                         cv_policy_scrub_note *note, void *ctx, char *err,
                         size_t errlen);
/* Does the policy have any scrub rule (or a scrub default other than
 * keep)? */
bool cv_policy_scrubs(const cv_policy *p);
/* Does [fields] seal anything (an encrypt rule or default)? */
bool cv_policy_seals(const cv_policy *p);

/* Apply the field rules to an event given as JSON text (len bytes, not
 * necessarily NUL-terminated) without building a tree: the text is walked
 * once and only the values a rule changes are replaced; drop removes the
 * member or element with its comma. Everything else is copied byte for
 * byte (numbers keep the producer's digits); whitespace outside the
 * object is left out. The result, parsed, equals what cv_policy_apply
 * makes of the parsed event (same rules, reserved members and default;
 * encrypt seals the same plaintext, so unsealing gives the same value),
 * apart from the nonces of the envelopes.
 *
 * event_id is the event's "id" string (decoded), bound into every
 * encrypted field and checked against the event; NULL: read it from the
 * text. Duplicate keys must have been rejected by the caller (each copy
 * would be treated on its own). The output goes to *out, a malloc'ed
 * buffer of *outcap bytes (start with NULL and 0) grown as needed and
 * meant to be reused from line to line: *outlen bytes and a NUL, so one
 * more byte (a newline) always fits. 0 on success; -1 with a reason in err
 * when the text is not a JSON object that jansson would load (the same
 * grammar, UTF-8, no NULs, nesting up to 2048, integers within long long,
 * finite reals), has no matching "id", or an operator fails: the output
 * is then unusable and the event must not be passed on. */
int cv_policy_apply_text(const cv_policy *p, const cv_keyring *kr,
                         const cv_datakey *dk, const char *line, size_t len,
                         const char *event_id, char **out, size_t *outlen,
                         size_t *outcap, char *err, size_t errlen);

/* Does [public] share the field at this dotted path: are its sealed values
 * shown to readers of a user whose privacy level is public? */
bool cv_policy_shared(const cv_policy *p, const char *path);

/* The operator that applies to a path (for example "user_id"), and its
 * argument (the hash purpose), if any. */
cv_op cv_policy_op_for(const cv_policy *p, const char *path, const char **arg);

/* How a value at the top-level path is stored under key version v: the
 * pseudonym when the rule hashes it, the value itself when kept. Used to
 * look up `--user U`. Writes at most CV_PSEUDONYM_MAX bytes... returns a
 * malloc'ed string, or NULL when the rule is neither keep nor hash. */
char *cv_policy_stored_value(const cv_policy *p, const cv_keyring *kr,
                             uint32_t version, const char *path,
                             const char *value);

#endif
