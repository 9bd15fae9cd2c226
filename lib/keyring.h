/* keyring.h - the instance's versioned keys.
 *
 * A keyring file (JSON, 0600) holds numbered 32-byte master keys, one of
 * them primary, plus an id key that never rotates (event ids must stay
 * stable across rotation). Every use derives a per-purpose subkey from a
 * version's master key (crypto_kdf), so no two purposes share a key. Key
 * material lives in sodium_malloc'ed memory and is never logged. */
#ifndef CV_KEYRING_H
#define CV_KEYRING_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_KEY_BYTES 32

typedef struct cv_keyring cv_keyring;

/* Create a keyring file holding version 1 (primary) and a fresh id key.
 * Never overwrites: fails with EEXIST when the file exists. 0 or -1 with
 * a reason in err. */
int cv_keyring_create(const char *path, char *err, size_t errlen);

/* Load a keyring. NULL with a reason in err (missing file, bad format,
 * permissions wider than 0600). */
cv_keyring *cv_keyring_load(const char *path, char *err, size_t errlen);
void cv_keyring_destroy(cv_keyring **p);

/* The version that new writes use. */
uint32_t cv_keyring_primary(const cv_keyring *kr);
/* Add a new key version to the keyring file at path and make it the
 * primary (temp file, fsync, rename; 0600). Programs that hold the
 * keyring use it once restarted; every older version still decrypts and
 * verifies. *version gets the new one. 0, or -1 with a reason. */
int cv_keyring_rotate(const char *path, uint32_t *version, char *err,
                      size_t errlen);
/* Mark version retired in the keyring file at path (same atomic rewrite
 * as rotate). A retired version no longer decrypts or verifies (cv_unseal
 * and cv_row_checksum_check refuse it) but still derives its subkeys, so
 * pseudonyms made under it are still recognised (a pseudonym cannot be
 * recomputed without its original value). Refuses the primary. The
 * caller checks first that nothing needs the version (ctxvault keys
 * retire). 0, or -1 with a reason. */
int cv_keyring_retire(const char *path, uint32_t version, char *err,
                      size_t errlen);
/* Is version in the keyring and retired? */
bool cv_keyring_retired(const cv_keyring *kr, uint32_t version);
/* The versions, never their keys: [{"version","created","status",
 * "primary"}]. */
json_t *cv_keyring_describe(const cv_keyring *kr);

/* When a version was made (ms since the epoch), or -1 when not recorded. */
int64_t cv_keyring_created_ms(const cv_keyring *kr, uint32_t version);
/* Versions present, ascending; returns how many (at most max written). */
size_t cv_keyring_versions(const cv_keyring *kr, uint32_t *out, size_t max);

/* Derive the subkey for purpose (any string, e.g. "aead", "hash:email",
 * "checksum") from version's master key. 0, or -1 when the version is
 * unknown. Derived subkeys are cached in the keyring (secure memory,
 * shared safely by threads): callers may ask for one per field. The
 * caller should wipe out when done. */
int cv_keyring_subkey(const cv_keyring *kr, uint32_t version,
                      const char *purpose, uint8_t out[CV_KEY_BYTES]);
/* The id key: keyed digests for event ids. */
const uint8_t *cv_keyring_id_key(const cv_keyring *kr);

#endif
