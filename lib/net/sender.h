/* sender.h - ingest's delivery engine: the spool, the window of events in
 * flight, and the two sockets (PUSH to encrypt, SUB for store's acks).
 *
 * An event given to cv_sender_add is appended to the spool; after the
 * group commit that covers it (cv_spool_sync, at most every spool_sync_ms
 * or every send_batch events) it is durable, and only then sent, in
 * messages of send_batch events (lib/net/wire.h). It stays in the window until
 * store acknowledges it (ACK: stored; NAK: rejected downstream, final) and
 * is resent when no answer comes: after resend_ms, then twice as long each
 * time, up to 30 s, with a little jitter so a crowd of resends spreads out.
 *
 * The window is bounded in events (cfg->window) and in bytes (8 MiB), and
 * the PUSH socket's queue is kept to about one window, so memory stays
 * bounded whatever the input rate or however long encrypt or store is
 * away: while cv_sender_ready() is false the caller must stop reading its
 * input (backpressure). A send that would block is kept for the next
 * turn, so acks are still read while downstream is slow.
 *
 * On start the spool of an earlier run with this source is replayed: its
 * events are fed into the window as room allows (the caller's input waits
 * until the replay is all in) and resent like any other.
 *
 * The caller owns the loop: it calls cv_sender_poll, which waits for acks
 * and for the caller's own poll items (its input fd, a ROUTER), does what
 * is due (sync, send, resend), and fills in the caller's revents. */
#ifndef CV_SENDER_H
#define CV_SENDER_H

#include "base/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct cv_sender cv_sender;

typedef struct {
    uint64_t accepted;  /* spooled by this run */
    uint64_t replayed;  /* taken from an earlier run's spool */
    uint64_t sent;      /* event sends, resends included */
    uint64_t resent;    /* of which resends */
    uint64_t acked;     /* ACKed by store */
    uint64_t rejected;  /* NAKed: rejected downstream */
    uint64_t syncs;     /* spool group commits */
    uint64_t refused;   /* given, but not accepted: the spool failed first */
} cv_sender_stats;

/* The spool is cfg->spool_dir/SOURCE; acks are those whose topic is
 * SOURCE. Spool records are sealed under kr (lib/crypto/fieldcrypt.h), so the
 * events waiting there are no more readable than the database; records of
 * an older, unsealed spool are still replayed. NULL with a reason in err
 * (spool locked or unreadable, socket failure). */
struct cv_keyring;
cv_sender *cv_sender_new(const cv_config *cfg, const char *source,
                         const struct cv_keyring *kr, char *err, size_t errlen);
/* Syncs the spool and closes everything; unacknowledged events stay in
 * the spool for the next run. */
void cv_sender_destroy(cv_sender **p);

/* Is there room for another event (window not full, spool replay done,
 * the spool not failed)? */
bool cv_sender_ready(const cv_sender *s);
/* Has the spool failed (a full disk: ENOSPC; EIO)? From then on nothing
 * more is accepted: the events given since the last sync are refused
 * (counted in refused, gone from the window and the spool), while those
 * synced before go on being sent until acknowledged. The reason is in
 * cv_sender_error(). */
bool cv_sender_failed(const cv_sender *s);
/* Spool one normalised event (it must carry an "id"). *seq (may be NULL)
 * is its place in the spool: it is durable once cv_sender_durable() >=
 * *seq. -1 with a reason in cv_sender_error() on a spool failure (the
 * event is not accepted, and nothing more will be). */
int cv_sender_add(cv_sender *s, const char *line, size_t len, uint64_t *seq);
/* Group-commit now what is not yet synced (at the end of input, or when
 * a producer waits). 0, or -1 (cv_sender_error). */
int cv_sender_sync(cv_sender *s);
uint64_t cv_sender_durable(const cv_sender *s);

/* Wait at most timeout_ms (-1: until something happens) for acks or the
 * caller's items, and do what is due. Returns 0, or -1 on a fatal error
 * (spool read, socket failure) with a reason in cv_sender_error(); a
 * failed spool sync is not fatal here (cv_sender_failed says so). An
 * interrupted wait (a signal) returns 0. */
int cv_sender_poll(cv_sender *s, zmq_pollitem_t *items, int nitems,
                   int timeout_ms);

/* Events not yet answered by store: in the window, or still to replay. */
uint64_t cv_sender_outstanding(const cv_sender *s);
const cv_sender_stats *cv_sender_stats_get(const cv_sender *s);
const char *cv_sender_error(const cv_sender *s);
const char *cv_sender_spool_dir(const cv_sender *s);
/* Observe each acknowledgement's latency (first send to ACK) into m. */
struct cv_metrics;
void cv_sender_set_metrics(cv_sender *s, struct cv_metrics *m);
/* When the oldest unanswered event entered the window (cv_mono_ms), or 0;
 * and the spool's size in bytes. */
int64_t cv_sender_oldest_ms(const cv_sender *s);
uint64_t cv_sender_spool_bytes(const cv_sender *s);
uint64_t cv_sender_spool_dropped(const cv_sender *s);

#endif
