/* sealcheck.h - the sealed fields a database and its copies hold:
 * verify's check that every one opens, and what still needs a key
 * version before it can be retired (ctxvault keys retire). Envelopes are
 * told apart by crypto/envcheck.h. */
#ifndef CV_SEALCHECK_H
#define CV_SEALCHECK_H

#include "base/config.h"
#include "crypto/datakeys.h"
#include "storage/db.h"
#include "crypto/keyring.h"

#include <jansson.h>
#include <stdint.h>

/* verify's pass over sealed fields: every "enc:v" envelope of every row is
 * opened into wiped memory and dropped. Reports each failure on stderr
 * ("row SEQ (event ID): field PATH: unknown key version K" / "key version
 * K is retired" / "authentication failed (tampered or wrong key)"), the
 * first max_named of them. Returns how many fail (-1: cannot read);
 * *fields gets how many were checked. */
int64_t cv_sealcheck_verify(cv_db *db, const cv_keyring *kr,
                            int64_t max_named, int64_t *fields);

/* What still needs version to decrypt or verify, for ctxvault keys
 * retire: {"rows":N,"data_keys":N,"backups":N,"archives":N,
 * "journal_batches":N,"deadletters":N,"rewrapped":bool}; ds: the
 * instance's data-key store (NULL: there is none). NULL with a reason in
 * err. */
json_t *cv_sealcheck_key_uses(const cv_config *cfg, cv_db *db, cv_datakeys *ds,
                              uint32_t version, char *err, size_t errlen);

#endif
