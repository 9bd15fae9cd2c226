/* rewrap.h - moving stored fields to the primary key version (checking
 * every sealed field, and what still needs an old version, are
 * storage/sealcheck.h).
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
 * Left alone, by cv_envcheck_classify:
 *   "enc:d..."  fields under a per-user data key: the data-key store
 *               rewraps the data key, not each field;
 *   "hash:..."  pseudonyms: a keyed digest cannot be recomputed without
 *               the original value, which is never stored. They stay
 *               under their version, which is why a retired version
 *               still derives subkeys (lookups by user recompute the
 *               pseudonym under each version). */
#ifndef CV_REWRAP_H
#define CV_REWRAP_H

#include "storage/writer.h"

#include <jansson.h>

/* The maint op "rewrap" {"after":SEQ,"batch":N}: rows after SEQ, in seq
 * order, N per transaction. Reply {"ok":true,"examined":N,"rewrapped":N,
 * "fields":N,"checksums":N,"skipped":N,"skipped_seqs":[...],"next":SEQ,
 * "done":bool}. When done, meta 'rewrapped' records the primary and the
 * journal batch after which no row needs an older version. */
json_t *cv_rewrap_batch(cv_writer *m, json_t *req);


/* ctxvault keys list: sets "rows" in each element of versions (the list
 * cv_keyring_describe gives) to how many rows' checksums are under its
 * "version", read in one pass by the checksum's first byte; an element
 * with no rows (or when the table cannot be read) is left as it is. */
void cv_rewrap_count_rows(cv_db *db, json_t *versions);

#endif
