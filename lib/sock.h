/* sock.h - ZeroMQ sockets for the pipeline: binding an input, connecting
 * an output, the same way in every stage (CURVE over tcp://, ipc socket
 * files 0600 in a 0700 run directory). */
#ifndef CV_SOCK_H
#define CV_SOCK_H

#include "config.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

/* Call once, before any socket: CZMQ without its signal handling (the
 * programs install their own, for a clean drain). */
void cv_sock_init(void);

/* A socket of type (ZMQ_PULL, ZMQ_PUB, ZMQ_ROUTER, ...) bound to endpoint,
 * or connected to it. NULL with a reason in err. */
zsock_t *cv_sock_bind(const cv_config *cfg, int type, const char *endpoint,
                      char *err, size_t errlen);
zsock_t *cv_sock_connect(const cv_config *cfg, int type, const char *endpoint,
                         char *err, size_t errlen);

/* Does this endpoint use CURVE under cfg? */
bool cv_sock_curve(const cv_config *cfg, const char *endpoint);

#endif
