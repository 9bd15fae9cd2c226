/* keyring.h - the instance's versioned keys.
 *
 * A keyring file (JSON, 0600) holds numbered 32-byte master keys, one of
 * them primary, plus an id key that never rotates (event ids must stay
 * stable across rotation). Every use derives a per-purpose subkey from a
 * version's master key (crypto_kdf), so no two purposes share a key. Key
 * material lives in sodium_malloc'ed memory and is never logged.
 *
 * The file may be sealed under a passphrase (format 2: Argon2id, then
 * XChaCha20-Poly1305); loading and rotating open it transparently. The
 * passphrase comes from the descriptor named by CTXVAULT_PASSPHRASE_FD,
 * else from key_command (cv_config_set_key_command), never from argv. */
#ifndef CV_KEYRING_H
#define CV_KEYRING_H

#include <errno.h>
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

/* Load a keyring, either format. NULL with a reason in err (missing file,
 * bad format, permissions wider than 0600) and errno set; for a sealed
 * keyring errno tells the key's absence from a fault:
 *   CV_KEYRING_UNAVAILABLE  no passphrase could be had (neither source set,
 *                           the descriptor empty, key_command failed):
 *                           it may come later, so waiting makes sense
 *   CV_KEYRING_REJECTED     "PATH: wrong passphrase (or the file was
 *                           altered)": the tag did not verify */
cv_keyring *cv_keyring_load(const char *path, char *err, size_t errlen);
#define CV_KEYRING_UNAVAILABLE ENOKEY
#define CV_KEYRING_REJECTED EKEYREJECTED
void cv_keyring_destroy(cv_keyring **p);

/* The version that new writes use. */
uint32_t cv_keyring_primary(const cv_keyring *kr);
/* Add a new key version to the keyring file at path and make it the
 * primary (temp file, fsync, rename; 0600). Programs that hold the
 * keyring use it once restarted; every older version still decrypts and
 * verifies. *version gets the new one. 0, or -1 with a reason. */
int cv_keyring_rotate(const char *path, uint32_t *version, char *err,
                      size_t errlen);

/* Where a sealed keyring's passphrase comes from, process-wide: the
 * config's [keys] key_command (cv_config_set_key_command, which
 * cv_config_load calls), run with /bin/sh -c, stdin /dev/null, its
 * stdout's first line the passphrase. CTXVAULT_PASSPHRASE_FD=N, when set,
 * comes first: the first line of descriptor N (a regular file is read
 * from its start, so every program of a pipeline can share it). */
/* Argon2id's cost for passphrases set from now on; 0, 0: the interactive
 * limits (crypto_pwhash_OPSLIMIT/MEMLIMIT_INTERACTIVE: every program pays
 * it at each start). The file records what it was sealed with. */
void cv_keyring_set_kdf_limits(unsigned long long opslimit, size_t memlimit);

/* Seal the keyring at path under pass (fails with EALREADY when it is
 * sealed), seal it under a new one, or store it plain again. The old
 * passphrase must open it (errno CV_KEYRING_REJECTED otherwise). Atomic
 * rewrite, 0600. 0, or -1 with a reason and errno. */
int cv_keyring_passphrase_set(const char *path, const char *pass, char *err,
                              size_t errlen);
int cv_keyring_passphrase_change(const char *path, const char *old,
                                 const char *pass, char *err, size_t errlen);
int cv_keyring_passphrase_remove(const char *path, const char *old, char *err,
                                 size_t errlen);
/* 1 when the file at path is sealed under a passphrase, 0 when plain, -1
 * with a reason. */
int cv_keyring_file_protected(const char *path, char *err, size_t errlen);

/* One passphrase from fd into secure memory: when fd is a terminal, the
 * prompt goes to stderr and echo is off; else the next line. The newline
 * is dropped; empty is an error. Free with cv_keyring_passphrase_free (wipes). */
char *cv_keyring_passphrase_read(int fd, const char *prompt, char *err, size_t errlen);
void cv_keyring_passphrase_free(char **p);

/* Mark version retired in the keyring file at path (same atomic rewrite
 * as rotate). A retired version no longer decrypts or verifies (cv_fieldcrypt_unseal
 * and cv_fieldcrypt_row_checksum_check refuse it) but still derives its subkeys, so
 * pseudonyms made under it are still recognised (a pseudonym cannot be
 * recomputed without its original value). Refuses the primary. The
 * caller checks first that nothing needs the version (ctxvault keys
 * retire). 0, or -1 with a reason. */
int cv_keyring_retire(const char *path, uint32_t version, char *err,
                      size_t errlen);
/* Is version in the keyring (retired or not)? */
bool cv_keyring_has(const cv_keyring *kr, uint32_t version);
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

/* A data key (lib/crypto/datakeys.h): a user's or an hour's random key, named by
 * a random id that every envelope sealed under it carries. Held in
 * sodium_malloc'ed memory by whoever holds one for long. */
#define CV_DATAKEY_ID_LEN 16 /* base64url of 12 random bytes */
typedef struct {
    char id[CV_DATAKEY_ID_LEN + 1];
    uint8_t key[CV_KEY_BYTES];  /* the data key */
    uint8_t aead[CV_KEY_BYTES]; /* its subkey "aead" (cv_keyring_datakey_derive) */
    uint8_t hash[CV_KEY_BYTES]; /* its subkey "hash": pseudonyms */
} cv_datakey;

/* Where cv_fieldcrypt_unseal finds the data key an "enc:d" envelope names: 1 found,
 * 0 destroyed or unknown, -1 on an error (reason in err). */
typedef int cv_keyring_datakey_lookup(void *ctx, const char *id, cv_datakey *out,
                              char *err, size_t errlen);
void cv_keyring_set_datakey_lookup(cv_keyring *kr, cv_keyring_datakey_lookup *fn,
                                   void *ctx);
/* The lookup's answer, or -1 with "no data-key store is open" when none
 * was set. */
int cv_keyring_datakey(const cv_keyring *kr, const char *id, cv_datakey *out,
                       char *err, size_t errlen);
/* Fill dk->aead and dk->hash from dk->key. */
void cv_keyring_datakey_derive(cv_datakey *dk);

#endif
