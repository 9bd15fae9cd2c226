/* syncops.h - the sync ops on store's control socket (doc/PROTOCOL.md,
 * "Sync"): what ctxvault-sync asks of its store.
 *
 *   sync.state     {"checksum":bool}        device, relay, counts, knowledge
 *   sync.changes   {"knowledge":{},"after":[dev,n]|null,"limit":N}
 *   sync.apply     {"versions":[...],"knowledge":{}?,"from":PEER}
 *   sync.conflicts {"user":U?,"limit":N?}
 *
 * sync.apply runs in one journaled transaction with the contexts it
 * stores, and store commits it before it answers: a version acknowledged
 * to a peer is never lost, and sent again it is held already. */
#ifndef CV_SYNCOPS_H
#define CV_SYNCOPS_H

#include "ctx/ctxwrite.h"
#include "storage/syncstore.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Sync requests may carry a batch of versions: up to this many bytes. */
#define CV_SYNCOPS_MAX_REQUEST (32 << 20)

typedef struct {
    cv_syncstore *sync;       /* NULL: sync is off on this instance */
    cv_ctxwrite *write;       /* where views become contexts */
    const char *device;       /* NULL on a relay */
    bool allow_fields;        /* sync.conflicts may show the fields
                                 ([pipeline] control_decrypt) */
    uint64_t applied, seen, rejected, views, conflicts; /* since start */
    uint64_t views_rejected;  /* contexts a version's fields did not make */
} cv_syncops;

/* The sync ops (net/control.h); their state is a cv_syncops. */
extern const cv_control_family cv_syncops_family;
/* One of them; always a reply; the caller has committed its open batch. */
json_t *cv_syncops_answer(cv_syncops *o, json_t *req, size_t body_len);

#endif
