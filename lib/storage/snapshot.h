/* snapshot.h - sealed snapshots: a SQLite file compressed with zstd and
 * sealed with libsodium's secretstream under the keyring subkey "backup".
 * Backups and archives are both this:
 *
 *   "CTXVBK1\n"            8 bytes: the format
 *   key version            4 bytes, big-endian
 *   secretstream header    24 bytes
 *   records                each a 4-byte big-endian length and the
 *                          ciphertext of one message: first the manifest
 *                          (JSON), then the zstd stream of the snapshot in
 *                          pieces of at most 64 KiB; the last is tagged
 *                          FINAL, so a cut file is refused
 *
 * The first 12 bytes are the associated data of every message, so the
 * version cannot be swapped. The manifest holds what cv_snapshot_describe
 * says of the snapshot (rows per kind, the highest seq, a digest of every
 * row's seq and checksum, the journal batch it holds) and the snapshot's
 * size and BLAKE2b; a sidecar NAME.json beside a sealed file records the
 * manifest and whether the file verified. */
#ifndef CV_SNAPSHOT_H
#define CV_SNAPSHOT_H

#include "crypto/keyring.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* What sealing wrote. */
typedef struct {
    uint64_t bytes;
    char blake2b[65];       /* of the whole sealed file, hex */
} cv_sealed;

/* Seal the snapshot file snap, with manifest first, onto fd under the
 * keyring's primary version (progress shown on a terminal). 0 or -1. */
int cv_snapshot_seal(const cv_keyring *kr, const char *snap, json_t *manifest,
                     int fd, cv_sealed *out, char *err, size_t errlen);

/* Rows, rows per kind, highest seq, audit entries, rows digest and
 * journal batch of a snapshot file. NULL with a reason. */
json_t *cv_snapshot_describe(const char *snap, char *err, size_t errlen);

/* Size and BLAKE2b (hex) of a file. 0 or -1. */
int cv_snapshot_digest(const char *path, uint64_t *size, char hex[65],
                       char *err, size_t errlen);

/* Decrypt and decompress the sealed file at path ("-": stdin) into dest
 * (new, 0600, fsynced), checking the snapshot's size and digest against
 * the manifest (*manifest gets it). 0 or -1 with a reason. */
int cv_snapshot_unpack(const cv_keyring *kr, const char *path,
                       const char *dest, json_t **manifest, char *err,
                       size_t errlen);

/* integrity_check, every row's keyed checksum, and what describe says
 * against the manifest. 0 or -1 with a reason. */
int cv_snapshot_check(const char *snap, const cv_keyring *kr,
                      json_t *manifest, char *err, size_t errlen);

/* The sidecar of a sealed file: NAME.cvb -> NAME.json (malloc'ed). */
char *cv_snapshot_sidecar_path(const char *path);
int cv_snapshot_sidecar_write(const char *path, json_t *side);
json_t *cv_snapshot_sidecar_read(const char *path);

void cv_snapshot_hex_of(const uint8_t *b, size_t n, char *out);

#endif
