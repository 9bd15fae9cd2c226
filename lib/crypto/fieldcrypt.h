/* fieldcrypt.h - what a protected field value looks like when stored.
 *
 * Encrypted value (a JSON string; the plaintext is the JSON text of the
 * original value, so its type comes back on decryption):
 *     "enc:v<KEYID>:<ALG>:<NONCE>:<CIPHERTEXT>:<TAG>"
 *     "enc:d<DATAKEYID>:<ALG>:<NONCE>:<CIPHERTEXT>:<TAG>"
 *   v: under a keyring version's subkey; d: under a user's or an hour's
 *   data key (lib/crypto/datakeys.h), whose random 16-character id it names.
 *   ALG is "aes256gcm" (when the CPU has AES-NI) or "xchacha20poly1305";
 *   NONCE, CIPHERTEXT and TAG are unpadded base64url. The associated data
 *   is "<event id>\0<field path>", so a value moved to another event or
 *   field fails to decrypt.
 *
 * Keyed pseudonym (a JSON string):
 *     "hash:v<KEYID>:<DIGEST>"
 *   DIGEST is 128 bits of keyed BLAKE2b under the subkey "hash:<purpose>",
 *   unpadded base64url: stable per key version and purpose, never a prefix
 *   or a plain hash of the original. */
#ifndef CV_FIELDCRYPT_H
#define CV_FIELDCRYPT_H

#include "crypto/keyring.h"

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_PSEUDONYM_MAX 64
#define CV_CHECKSUM_BYTES 17 /* version byte + 128-bit keyed BLAKE2b */

/* Call once before use: picks AES-256-GCM or XChaCha20-Poly1305. */
int cv_fieldcrypt_init(void);
const char *cv_fieldcrypt_algorithm(void);
/* Seal with "aes256gcm" or "xchacha20poly1305" from now on (NULL: back to
 * the automatic choice). -1 when the name is unknown or the CPU cannot run
 * it. For tests and benchmarks; unsealing always accepts both. */
int cv_fieldcrypt_force_algorithm(const char *name);

/* Seal plain (len bytes) under the primary key version. Returns a malloc'ed
 * NUL-terminated envelope string, or NULL (err filled). */
char *cv_fieldcrypt_seal(const cv_keyring *kr, const char *plain, size_t len,
              const char *event_id, const char *path, char *err,
              size_t errlen);
/* Seal under a data key (lib/crypto/datakeys.h): "enc:d<ID>:<ALG>:...". */
char *cv_fieldcrypt_seal_dk(const cv_datakey *dk, const char *plain, size_t len,
                 const char *event_id, const char *path, char *err,
                 size_t errlen);
/* Open an envelope. 0 with a malloc'ed NUL-terminated plaintext in *plain,
 * or -1 with a reason in err (unknown key version, tampered, malformed). */
int cv_fieldcrypt_unseal(const cv_keyring *kr, const char *envelope, const char *event_id,
              const char *path, char **plain, size_t *len, char *err,
              size_t errlen);
/* Is s a well-formed envelope (prefix, version, known algorithm, nonce and
 * tag of the right length, base64url parts)? A plain value that merely
 * starts with "enc:v" is not one, so it still gets encrypted. */
bool cv_fieldcrypt_is_envelope(const char *s);

/* Records sealed for a file (the ingest spool): XChaCha20-Poly1305 under
 * the primary version's subkey "seal:<purpose>", a random 192-bit nonce
 * (a spool sees billions of records: no nonce budget to watch). Layout:
 * 0x01, key version, nonce, ciphertext and tag; out needs len +
 * CV_SEALED_OVERHEAD bytes. 0, or -1 when the keyring has no primary. */
#define CV_SEALED_OVERHEAD (2 + 24 + 16)
int cv_fieldcrypt_seal_record(const cv_keyring *kr, const char *purpose, const void *plain,
                   size_t len, uint8_t *out);
/* Is this a sealed record (its first byte; a JSON text never starts so)? */
bool cv_fieldcrypt_is_sealed_record(const void *rec, size_t len);
/* Open a sealed record into out (len - CV_SEALED_OVERHEAD bytes). 0, or -1
 * when the key version is unknown or the record was altered. */
int cv_fieldcrypt_open_record(const cv_keyring *kr, const char *purpose, const uint8_t *rec,
                   size_t len, uint8_t *out);

/* Write the pseudonym of data under version's subkey "hash:<purpose>".
 * 0, or -1 when the version is unknown. */
int cv_fieldcrypt_pseudonym(const cv_keyring *kr, uint32_t version, const char *purpose,
                 const void *data, size_t len, char out[CV_PSEUDONYM_MAX]);
/* The pseudonym under a data key's subkey "hash:<purpose>":
 * "hash:d<ID>:<DIGEST>". 0, or -1 when purpose is too long. */
int cv_fieldcrypt_pseudonym_dk(const cv_datakey *dk, const char *purpose,
                    const void *data, size_t len, char out[CV_PSEUDONYM_MAX]);
/* Is s exactly "hash:v<KEYID>:" or "hash:d<ID>:" and a 22-character
 * digest? */
bool cv_fieldcrypt_is_pseudonym(const char *s);

/* Keyed digests over several fields: each is fed as a presence byte and a
 * 64-bit little-endian length before its bytes, so no two different field
 * lists feed the same stream (row checksums here, the audit chain). */
void cv_fieldcrypt_mac_put(crypto_generichash_state *st, const void *p, size_t n,
                bool present);
void cv_fieldcrypt_mac_put_str(crypto_generichash_state *st, const char *s); /* NULL: absent */
void cv_fieldcrypt_mac_put_int(crypto_generichash_state *st, int64_t v);

/* Row checksum: version byte + keyed BLAKE2b-128 (subkey "checksum") over
 * the row's id, user_id, kind, ts and body, so a row moved to another
 * user or edited in place is detected. Each field is length-prefixed (and
 * NULL differs from ""), so bytes cannot be shifted between fields. -1
 * when the version is unknown or above 255 (it must fit the byte). */
int cv_fieldcrypt_row_checksum(const cv_keyring *kr, uint32_t version, const char *id,
                    const char *user_id, const char *kind, int64_t ts,
                    const char *body, size_t body_len,
                    uint8_t out[CV_CHECKSUM_BYTES]);
/* 1 when sum matches, 0 when not, -1 when its key version is unknown, -2
 * when it is retired (a retired version no longer verifies). */
int cv_fieldcrypt_row_checksum_check(const cv_keyring *kr, const uint8_t *sum,
                          size_t sum_len, const char *id, const char *user_id,
                          const char *kind, int64_t ts, const char *body,
                          size_t body_len);

#endif
