/* syncd.h - ctxvault-sync's work: keeping this instance's sync records in
 * step with its peers' (doc/SYNC.md).
 *
 * Towards each configured peer (the side that connects: a device towards
 * its relay) it runs two loops over one CURVE DEALER socket:
 *
 *   pull  "what do you hold that my knowledge lacks?", a long poll that
 *         the peer answers at once when it has something, else after
 *         [sync] wait; each page is applied through store (sync.apply),
 *         and the peer's knowledge is added to ours with the last page.
 *   push  the versions the peer's knowledge lacks, read from store
 *         (sync.changes), page by page, as soon as our knowledge grows.
 *
 * On its listening socket (a relay, or a device others connect to) it
 * answers the same requests from the peers it has pinned. A peer that
 * fails is retried with exponential back-off and jitter; the versions it
 * lacks wait in store, so nothing is queued in memory and a restart loses
 * nothing. Every version is applied through store in a journaled
 * transaction before it is acknowledged, and applying one held already
 * changes nothing, so a resend never duplicates.
 *
 * Wire: [ "CVSYNC1" ][ JSON ] each way (a ROUTER adds its identity). */
#ifndef CV_SYNCD_H
#define CV_SYNCD_H

#include "base/config.h"
#include "net/program.h"

#include <stdbool.h>
#include <stddef.h>

#define CV_SYNC_WIRE "CVSYNC1"

typedef struct cv_syncd cv_syncd;

/* Connect to store, bind the listening socket, connect to the peers.
 * NULL with a reason in err and *code a sysexits status. */
cv_syncd *cv_syncd_new(const cv_config *cfg, const char *config_file,
                       bool quiet, int *code, char *err, size_t errlen);
void cv_syncd_destroy(cv_syncd **p);

/* Run until SIGTERM (cv_stop_requested), or, with once, until every peer
 * has been pulled from and pushed to once with nothing left (then 0, or
 * EX_UNAVAILABLE when a peer failed). A sysexits status. */
int cv_syncd_run(cv_syncd *d, bool once);

/* ctxvault-sync's own options. */
typedef struct {
    bool once;
} cv_syncd_args;

/* ctxvault-sync's run (cv_program's): cv_syncd_run, or with sync off
 * ([sync] device and relay unset) idle until SIGTERM (--once: EX_CONFIG). */
int cv_syncd_main(cv_program_env *e, void *args);

#endif
