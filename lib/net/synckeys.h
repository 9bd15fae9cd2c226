/* synckeys.h - the keys of ctxvault-sync, made by `ctxvault init`.
 *
 *   HOME/keys/curve/sync.cert (+ _secret, 0600): the instance's CURVE
 *     certificate for sync, the same for the side that binds (listen) and
 *     the side that connects (peer.NAME). Its public key, as 64 hex
 *     digits, is what the other instances pin in [sync] peer.NAME and
 *     allow.NAME.
 *   [sync] key_file (HOME/keys/sync.key, 0600 in a 0700 directory): the
 *     end-to-end key, 32 random bytes as 64 hex digits and a newline.
 *     The devices of one group share it (the operator copies it); a relay
 *     never has it, so what it stores and forwards stays unreadable to it.
 *
 * Neither is ever overwritten. */
#ifndef CV_SYNCKEYS_H
#define CV_SYNCKEYS_H

#include "base/config.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

/* The instance's sync CURVE certificate (with its secret): NULL with a
 * reason in err. */
zcert_t *cv_synckeys_cert(const cv_config *cfg, char *err, size_t errlen);

/* Its public key as 64 lowercase hex digits and a NUL. 0, or -1 with a
 * reason. */
int cv_synckeys_public_hex(const cv_config *cfg, char out[65], char *err,
                           size_t errlen);

/* Load the end-to-end key (32 bytes) from cfg->sync_key_file. -1 with a
 * reason: missing, readable by group or others (chmod 600), not 64 hex
 * digits. */
int cv_synckeys_load_e2e(const cv_config *cfg, unsigned char key[32],
                         char *err, size_t errlen);

/* What `ctxvault init` calls: creates what is missing of the sync
 * certificate and (unless cfg is a relay) the end-to-end key, and checks
 * that a kept key still loads; says what it did on stdout when verbose.
 * 0, or -1 with a reason. */
int cv_synckeys_make(const cv_config *cfg, bool verbose, char *err,
                     size_t errlen);

#endif
