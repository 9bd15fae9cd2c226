/* datakeys.h - per-user and hourly data keys: envelope encryption and
 * crypto-shredding.
 *
 * Each user's protected fields are sealed under that user's own random
 * data key, and an ephemeral user's under the key of the hour the event
 * belongs to. Data keys are kept wrapped (XChaCha20-Poly1305 under the
 * keyring subkey "wrap" of some version, the key-encryption key) in their
 * own SQLite file, keys/datakeys.db (0600), which no backup, archive or
 * journal holds. Destroying a key (an erasure, an hour's expiry) leaves
 * every copy of what it sealed unreadable, wherever the copy is.
 *
 * A key is found by its owner ("u:" + a keyed digest of the raw user id
 * under the keyring's id key, or "h:" + the hour) when sealing, and by
 * its id (random, named in each envelope) when opening. Only encrypt,
 * store and ctxvault open the file. */
#ifndef CV_DATAKEYS_H
#define CV_DATAKEYS_H

#include "crypto/fieldcrypt.h"
#include "crypto/keyring.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cv_datakeys cv_datakeys;

/* Open (create: make the file when missing, 0600, its directory 0700).
 * The keyring must outlive it. ephemeral_ms is how long an ephemeral
 * user's data is kept (the policy's [privacy] ephemeral): an hour key is
 * destroyed once everything sealed under it has expired. NULL with a
 * reason in err. */
cv_datakeys *cv_datakeys_open(const char *path, const cv_keyring *kr,
                              bool create, int64_t ephemeral_ms, char *err,
                              size_t errlen);
void cv_datakeys_destroy(cv_datakeys **p);
/* The instance's store, attached to kr so cv_fieldcrypt_unseal opens "enc:d"
 * envelopes. write: made when missing (store, maintenance: an erasure
 * must reach keys made later); else opened only when the file exists.
 * NULL when there is none to read (or, with write, on an error: logged). */
cv_datakeys *cv_datakeys_of_instance(const char *path, cv_keyring *kr,
                                     bool write, int64_t ephemeral_ms);

/* The key that seals user_id's new fields: the hour key of ts_text (an
 * RFC 3339 time; NULL or unparsable: now) when the user is ephemeral,
 * else the user's key. A missing key
 * is made inside a transaction that cv_datakeys_commit ends: commit before
 * anything sealed under it leaves the process. The result is valid until
 * the next call. NULL with a reason in err. */
const cv_datakey *cv_datakeys_for_user(cv_datakeys *ds, const char *user_id,
                                       size_t len, const char *ts_text,
                                       char *err, size_t errlen);
/* Mark user_id ephemeral or not (from a profile event's privacy_level),
 * in the same transaction as made keys. 0, or -1. */
int cv_datakeys_set_ephemeral(cv_datakeys *ds, const char *user_id,
                              size_t len, bool on, char *err, size_t errlen);
/* Make durable the keys and marks made since the last commit. 0, or -1:
 * then nothing sealed under those keys may be passed on. */
int cv_datakeys_commit(cv_datakeys *ds, char *err, size_t errlen);

/* Find a key by its id (from an envelope). 1 found, 0 when it does not
 * exist (destroyed: its user erased or its hour expired), -1 on an error
 * (reason in err). */
int cv_datakeys_find(cv_datakeys *ds, const char *id, cv_datakey *out,
                     char *err, size_t errlen);
/* The key a stored body's fields are under (the first "enc:d" or
 * "hash:d" it names), for sealing more of the same row (rectify). 1
 * found, 0 none (no such field, or the key is gone). */
int cv_datakeys_of_body(cv_datakeys *ds, const char *body, cv_datakey *out);
/* Let the keyring's cv_fieldcrypt_unseal open "enc:d" envelopes through this store. */
void cv_datakeys_attach(cv_datakeys *ds, cv_keyring *kr);

/* Destroy user_id's key, durably, with its deleted pages overwritten
 * (secure_delete) and the WAL truncated. 1 destroyed, 0 there was none,
 * -1 on an error. */
int cv_datakeys_forget_user(cv_datakeys *ds, const char *user_id,
                            char *err, size_t errlen);
/* Destroy the hour keys whose data has all expired by now. The count, or
 * -1. */
int cv_datakeys_expire(cv_datakeys *ds, int64_t now, char *err,
                       size_t errlen);
/* Rewrap every key not under the keyring's primary version. The count,
 * or -1. */
int cv_datakeys_rewrap(cv_datakeys *ds, char *err, size_t errlen);
/* Keys wrapped under version (for retire). -1 on an error. */
int64_t cv_datakeys_count_kek(cv_datakeys *ds, uint32_t version);
/* {"users":N, "hours":N, "ephemeral_users":N, "by_version":{"1":N}} */
json_t *cv_datakeys_describe(cv_datakeys *ds);

#endif
