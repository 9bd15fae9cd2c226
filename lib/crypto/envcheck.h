/* envcheck.h - what a stored string value is (plain, sealed under which
 * key version, a pseudonym, altered), and a walk over a body's string
 * values that may replace them. Rewrap (ops/rewrap.h) and verify
 * (storage/sealcheck.h) decide per envelope here, so they agree. */
#ifndef CV_ENVCHECK_H
#define CV_ENVCHECK_H

#include "crypto/keyring.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    CV_ENV_NONE,      /* a plain string */
    CV_ENV_CURRENT,   /* "enc:v<primary>:..." */
    CV_ENV_OLD,       /* "enc:v<K>:...", K not the primary: rewrap it */
    CV_ENV_DATAKEY,   /* "enc:d<ID>:...": the data-key store's business */
    CV_ENV_PSEUDONYM, /* "hash:...": cannot be recomputed, stays */
    CV_ENV_MALFORMED, /* "enc:v<K>:<ALG>:" with parts that do not parse */
} cv_envcheck_kind;

/* What the string s (len bytes, no quotes) is, and for "enc:v" its
 * version in *version. The one place that decides per envelope. */
cv_envcheck_kind cv_envcheck_classify(const cv_keyring *kr, const char *s,
                                 size_t len, uint32_t *version);

/* Called for each string value of a body that starts with "enc:" or
 * "hash:", with its dotted path (array elements share their array's path,
 * as the policy seals them). May set *repl to a malloc'ed replacement
 * (written unquoted: it must need no JSON escaping). 0 to go on, -1 to
 * stop the walk. */
typedef int (*cv_envcheck_field_fn)(void *arg, const char *path, const char *value,
                                    size_t len, char **repl);

/* Walk body (JSON text) calling fn. When fn replaced any value, *out gets
 * the new text (malloc'ed, *outlen its length), else NULL. Returns the
 * number of values replaced, or -1 (malformed JSON or fn stopped; err). */
int cv_envcheck_fields(const char *body, size_t len, cv_envcheck_field_fn fn, void *arg,
                       char **out, size_t *outlen, char *err, size_t errlen);

#endif
