/* store_serve.h - ctxvault-store as a service: event messages arrive on a
 * PULL socket (cfg->ep_store), are committed in batches through cv_store,
 * and acknowledged per source on a PUB socket (cfg->ep_acks) only after
 * COMMIT; requests (its table of ops) are answered on a ROUTER socket
 * (cfg->ep_control). The protocol is in doc/PROTOCOL.md and lib/net/wire.h. */
#ifndef CV_STORE_SERVE_H
#define CV_STORE_SERVE_H

#include "base/config.h"
#include "storage/db.h"
#include "storage/dbcheck.h"
#include "net/control.h"
#include "net/deadletter.h"
#include "crypto/keyring.h"
#include "privacy/policy.h"
#include "storage/store.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const cv_config *cfg;
    cv_db *db;              /* the writer connection */
    cv_store *store;
    const cv_policy *pol;
    const cv_keyring *kr;
    struct cv_datakeys *ds; /* erasures destroy keys, sweeps expire them */
    cv_deadletter *dl;
    cv_dbcheck *check;      /* the start check, running; taken over */
    int64_t started_ms;     /* cv_mono_ms() when the program started */
    cv_recovery recovery;   /* what opening the database found and did */
    bool quiet;
} cv_store_service;

/* The i-th op of store's table (name and kind, net/control.h), or NULL
 * past the last: every op the control socket answers. */
const cv_control_op *cv_store_serve_op(size_t i);

/* Run until SIGTERM/SIGINT: then stop reading, commit the open batch,
 * acknowledge it, and return 0. EX_DATAERR when the start check finds the
 * database corrupt (nothing it committed is acknowledged), or another
 * sysexits status when the sockets cannot be set up. */
int cv_store_serve(cv_store_service *svc);

#endif
