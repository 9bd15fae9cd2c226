/* encrypt_serve.h - ctxvault-encrypt as a service: events arrive on a PULL
 * socket (cfg->ep_encrypt) in wire.h's event messages, are protected one by
 * one exactly as the filter does, and leave on a PUSH socket connected to
 * store (cfg->ep_store), with a rejection frame in place of each event that
 * had to be dead-lettered. */
#ifndef CV_ENCRYPT_SERVE_H
#define CV_ENCRYPT_SERVE_H

#include "base/config.h"
#include "net/deadletter.h"
#include "net/metrics.h"
#include "privacy/fieldpolicy.h"

#include <stdbool.h>

/* Run until SIGTERM/SIGINT (cv_stop_requested): the message in hand is
 * finished and sent, then it returns 0; or a sysexits status when a socket
 * cannot be set up. Reports through mx (the caller's: it may have reported
 * before, e.g. while waiting for keys; sockets initialised). Logs a
 * summary unless quiet. */
int cv_encrypt_serve(const cv_config *cfg, cv_protect *pr, cv_deadletter *dl,
                     cv_metrics *mx, bool quiet);

#endif
