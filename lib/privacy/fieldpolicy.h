/* fieldpolicy.h - the field policy applied to one event line: the check and
 * rewrite that ctxvault-encrypt does for every event, in its filter mode
 * and in its socket mode alike. Nothing leaves unprotected: a line that
 * cannot be processed is rejected with a reason. */
#ifndef CV_FIELDPOLICY_H
#define CV_FIELDPOLICY_H

#include "crypto/datakeys.h"
#include "crypto/keyring.h"
#include "privacy/policy.h"

#include <stddef.h>

typedef struct cv_protect cv_protect;

/* policy, keyring and data-key store must outlive it. ds NULL: every
 * field is sealed under the keyring (no per-user keys). */
cv_protect *cv_fieldpolicy_new(const cv_policy *pol, const cv_keyring *kr,
                           cv_datakeys *ds);
/* Make the data keys made for the lines protected so far durable: call it
 * before those lines leave the process. 0, or -1 (reason in err): then
 * they must not leave. */
int cv_fieldpolicy_commit(cv_protect *p, char *err, size_t errlen);
void cv_fieldpolicy_destroy(cv_protect **p);

/* Check and protect one line (no newline). 0: *out and *outlen hold the
 * protected line, valid until the next call, with room for one more byte
 * after it. 1: rejected; reason says why, and id holds the event's "id"
 * when one could be read (else ""). 2: the data-key store failed (reason
 * says why): nothing is wrong with the line; try it again later. The line is validated and its "id"
 * found by the scanner (no tree), then rewritten as text: only the values
 * the policy changes are replaced. */
int cv_fieldpolicy_line(cv_protect *p, const char *line, size_t len,
                    const char **out, size_t *outlen, char *id, size_t idcap,
                    char *reason, size_t rlen);

#endif
