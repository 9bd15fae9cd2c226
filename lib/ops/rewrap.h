/* rewrap.h - moving stored fields to the primary key version, checking
 * every sealed field, and what still needs an old version.
 *
 * Rotation (cv_keyring_rotate) leaves old rows sealed and checksummed
 * under the versions they were written with. Rewrap re-seals each field
 * sealed under another "enc:v" version (cv_fieldcrypt_unseal, then cv_fieldcrypt_seal with the
 * same event id and dotted path as associated data, so the value opens
 * exactly as before) and recomputes the row's checksum under the primary.
 * It runs in store (the op "rewrap", doc/PROTOCOL.md), a batch of rows per
 * transaction through the journal, so the pipeline keeps ingesting
 * between batches.
 *
 * Left alone, by cv_envelope_classify:
 *   "enc:d..."  fields under a per-user data key: the data-key store
 *               rewraps the data key, not each field;
 *   "hash:..."  pseudonyms: a keyed digest cannot be recomputed without
 *               the original value, which is never stored. They stay
 *               under their version, which is why a retired version
 *               still derives subkeys (lookups by user recompute the
 *               pseudonym under each version). */
#ifndef CV_REWRAP_H
#define CV_REWRAP_H

#include "base/config.h"
#include "crypto/datakeys.h"
#include "storage/db.h"
#include "crypto/keyring.h"
#include "ops/maint.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    CV_ENV_NONE,      /* a plain string */
    CV_ENV_CURRENT,   /* "enc:v<primary>:..." */
    CV_ENV_OLD,       /* "enc:v<K>:...", K not the primary: rewrap it */
    CV_ENV_DATAKEY,   /* "enc:d<ID>:...": the data-key store's business */
    CV_ENV_PSEUDONYM, /* "hash:...": cannot be recomputed, stays */
    CV_ENV_MALFORMED, /* "enc:v<K>:<ALG>:" with parts that do not parse */
} cv_env_kind;

/* What the string s (len bytes, no quotes) is, and for "enc:v" its
 * version in *version. The one place that decides per envelope. */
cv_env_kind cv_envelope_classify(const cv_keyring *kr, const char *s,
                                 size_t len, uint32_t *version);

/* Called for each string value of a body that starts with "enc:" or
 * "hash:", with its dotted path (array elements share their array's path,
 * as the policy seals them). May set *repl to a malloc'ed replacement
 * (written unquoted: it must need no JSON escaping). 0 to go on, -1 to
 * stop the walk. */
typedef int (*cv_field_fn)(void *arg, const char *path, const char *value,
                           size_t len, char **repl);

/* Walk body (JSON text) calling fn. When fn replaced any value, *out gets
 * the new text (malloc'ed, *outlen its length), else NULL. Returns the
 * number of values replaced, or -1 (malformed JSON or fn stopped; err). */
int cv_body_fields(const char *body, size_t len, cv_field_fn fn, void *arg,
                   char **out, size_t *outlen, char *err, size_t errlen);

/* The maint op "rewrap" {"after":SEQ,"batch":N}: rows after SEQ, in seq
 * order, N per transaction. Reply {"ok":true,"examined":N,"rewrapped":N,
 * "fields":N,"checksums":N,"skipped":N,"skipped_seqs":[...],"next":SEQ,
 * "done":bool}. When done, meta 'rewrapped' records the primary and the
 * journal batch after which no row needs an older version. */
json_t *cv_rewrap_batch(cv_maint *m, json_t *req);

/* The totals of a rewrap run (ms: its wall time). */
typedef struct {
    int64_t examined, rewrapped, fields, skipped, data_keys, ms;
} cv_rewrap_totals;

/* ctxvault keys rewrap: "rewrap" requests of batch rows each through s,
 * from the first row until store says done (store ingests between them),
 * with progress on stderr when it is a terminal and each row left as it
 * is logged ("row SEQ (event ID) left as it is: why"). Restartable: a run
 * cut short leaves whole batches, and the next finds only what is left.
 * 0, or EX_TEMPFAIL when a request failed (logged); *t gets the totals
 * either way. */
int cv_rewrap_run(cv_maint_session *s, int64_t batch, cv_rewrap_totals *t);

/* verify's pass over sealed fields: every "enc:v" envelope of every row is
 * opened into wiped memory and dropped. Reports each failure on stderr
 * ("row SEQ (event ID): field PATH: unknown key version K" / "key version
 * K is retired" / "authentication failed (tampered or wrong key)"), the
 * first max_named of them. Returns how many fail (-1: cannot read);
 * *fields gets how many were checked. */
int64_t cv_verify_envelopes(cv_db *db, const cv_keyring *kr,
                            int64_t max_named, int64_t *fields);

/* What still needs version to decrypt or verify, for ctxvault keys
 * retire: {"rows":N,"data_keys":N,"backups":N,"archives":N,
 * "journal_batches":N,"deadletters":N,"rewrapped":bool}; ds: the
 * instance's data-key store (NULL: there is none). NULL with a reason in
 * err. */
json_t *cv_key_uses(const cv_config *cfg, cv_db *db, cv_datakeys *ds,
                    uint32_t version, char *err, size_t errlen);

/* ctxvault keys list: sets "rows" in each element of versions (the list
 * cv_keyring_describe gives) to how many rows' checksums are under its
 * "version", read in one pass by the checksum's first byte; an element
 * with no rows (or when the table cannot be read) is left as it is. */
void cv_rewrap_count_rows(cv_db *db, json_t *versions);

#endif
