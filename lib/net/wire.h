/* wire.h - the messages the pipeline's stages exchange over ZeroMQ.
 *
 * Delivery never relies on a socket (CZMQ's linger is 0, and a queue dies
 * with its process): ingest spools every event before sending it and
 * resends until store acknowledges it after COMMIT. These are the frames.
 *
 *   events   ingest -> encrypt -> store (PUSH/PULL)
 *            [ "CTXV1" ] [ "EV" ] [ source ] [ event ] [ event ] ...
 *            Each event frame is one NDJSON line without its newline.
 *            encrypt passes on what it protected; for an event it had to
 *            dead-letter it sends instead a rejection frame
 *            "!<id>\t<reason>", so store can acknowledge it.
 *
 *   acks     store -> ingest (PUB/SUB, topic = the ingest's source)
 *            [ source ] [ "CTXV1" ] [ "ACK" ] [ id ] [ id ] ...
 *            [ source ] [ "CTXV1" ] [ "NAK" ] [ "<id>\t<reason>" ] ...
 *            ACK after COMMIT: stored, or already stored (a duplicate).
 *            NAK: rejected downstream (dead-lettered there); it is final.
 *
 *   control  ctxvault and tools -> store (DEALER/REQ -> ROUTER)
 *            [ "CTXV1" ] [ request JSON ]  ->  [ "CTXV1" ] [ reply JSON ]
 *
 *   produce  producers -> ingest (DEALER/REQ -> ROUTER)
 *            [ "CTXV1" ] [ "EV" ] [ line ] [ line ] ...
 *            -> [ "CTXV1" ] [ reply JSON: {"accepted":N,"rejected":M,
 *               "errors":[{"line":K,"reason":"..."}]} ] once the accepted
 *               lines are in ingest's spool (fsync'ed): durable from then.
 */
#ifndef CV_WIRE_H
#define CV_WIRE_H

#define CV_WIRE_VERSION "CTXV1"
#define CV_WIRE_EVENTS "EV"
#define CV_WIRE_ACK "ACK"
#define CV_WIRE_NAK "NAK"
#define CV_WIRE_REJECT '!' /* first byte of a rejection frame */

#endif
