/* syncauth.h - ctxvault-sync's CURVE sockets, with the peers' keys pinned
 * in the config instead of the pipeline's certificate directory.
 *
 * A peer that binds ([sync] listen) accepts a client only when the
 * client's CURVE public key is one of [sync] allow.NAME; the ZAP handler
 * started by cv_syncauth_new checks it (ZeroMQ RFC 27, ZAP 1.0) and names
 * the client NAME, which every message from it then carries as its
 * "User-Id" (cv_syncauth_peer_name). A peer that connects ([sync]
 * peer.NAME) checks the server's key against the pinned one: the CURVE
 * handshake fails with any other server.
 *
 * One ZAP handler per process (per ZeroMQ context: the endpoint
 * inproc://zeromq.zap.01 takes one), so a program using these does not
 * also start the pipeline's zauth (lib/net/sock.h) for a bound CURVE socket;
 * connecting CURVE sockets (a client) need no ZAP handler. Without a
 * handler libzmq would accept every client: cv_syncauth_bind refuses to
 * bind until cv_syncauth_new has started one. */
#ifndef CV_SYNCAUTH_H
#define CV_SYNCAUTH_H

#include "base/config.h"

#include <czmq.h>
#include <stddef.h>

/* The ZAP domain of the sync sockets; the handler refuses every other. */
#define CV_SYNCAUTH_DOMAIN "ctxvault-sync"

/* The largest message a sync socket takes (a bigger one drops the
 * connection). */
#define CV_SYNCAUTH_MAXMSG ((int64_t)64 << 20)

typedef struct cv_syncauth cv_syncauth;

/* Start the ZAP handler, accepting the keys of cfg->sync_allow (which it
 * copies). It logs one line per refused address at most once a minute.
 * NULL with a reason: another ZAP handler runs in this process, a key
 * is bad. */
cv_syncauth *cv_syncauth_new(const cv_config *cfg, char *err, size_t errlen);
/* Stop it (after the sockets it guards are destroyed); *p becomes NULL. */
void cv_syncauth_destroy(cv_syncauth **p);

/* A ROUTER bound at cfg->sync_listen as a CURVE server with the
 * instance's sync certificate (lib/net/synckeys.h). NULL with a reason: no
 * listen, no handler started, no certificate, the bind failed. */
zsock_t *cv_syncauth_bind(const cv_config *cfg, char *err, size_t errlen);

/* A DEALER connected to peer->endpoint as a CURVE client with the
 * instance's sync certificate, accepting only a server with the key
 * peer->key. It queues nothing while not connected (a send blocks, or
 * fails with a send timeout or ZMQ_DONTWAIT) and reconnects with
 * back-off from [sync] retry_min to retry_max. NULL with a reason. */
zsock_t *cv_syncauth_connect(const cv_config *cfg, const cv_sync_peer *peer,
                             char *err, size_t errlen);

/* The allow.NAME of the client who sent frame, or NULL (no ZAP name: not
 * from a bound sync socket). Ask a frame received from the wire, such as
 * a message's body: the routing id frame a ROUTER puts in front carries
 * no metadata. The string lives as long as the frame. */
const char *cv_syncauth_peer_name(zframe_t *frame);

#endif
