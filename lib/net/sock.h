/* sock.h - ZeroMQ sockets for the pipeline: binding an input, connecting
 * an output, the same way in every stage (CURVE over tcp://, ipc socket
 * files 0600 in a 0700 run directory).
 *
 * CURVE: `ctxvault init` makes two certificates under HOME/keys/curve/
 * (cv_sock_make_certs): "server.cert" for the side that binds and
 * "client.cert" for the side that connects (each with its "_secret" file,
 * 0600), and puts the client's public certificate in clients/. A bound
 * CURVE socket accepts only clients whose public key is in clients/ (one
 * zauth actor per process checks them); a connecting socket proves itself
 * with the client certificate and checks the server's public key. A stage
 * on another host gets copies: server.cert (public) and client.cert with
 * its secret on the connecting side, the client's public certificate in
 * the binding side's clients/. ipc:// never uses CURVE: the 0700 run
 * directory and the 0600 socket files protect it. */
#ifndef CV_SOCK_H
#define CV_SOCK_H

#include "base/config.h"

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

/* Call once, before any socket: CZMQ without its signal handling (the
 * programs install their own, for a clean drain). */
void cv_sock_init(void);
/* Call once at exit, after every socket is destroyed: stops the zauth
 * actor if one was started. */
void cv_sock_shutdown(void);

/* A socket of type (ZMQ_PULL, ZMQ_PUB, ZMQ_ROUTER, ...) bound to endpoint,
 * or connected to it. NULL with a reason in err. */
zsock_t *cv_sock_bind(const cv_config *cfg, int type, const char *endpoint,
                      char *err, size_t errlen);
zsock_t *cv_sock_connect(const cv_config *cfg, int type, const char *endpoint,
                         char *err, size_t errlen);

/* The same with both high-water marks set to hwm messages before the
 * bind or connect (a pipe keeps the marks it was made with; setting them
 * afterwards misses the pipes that exist already). */
zsock_t *cv_sock_bind_hwm(const cv_config *cfg, int type, const char *endpoint,
                          int hwm, char *err, size_t errlen);
zsock_t *cv_sock_connect_hwm(const cv_config *cfg, int type,
                             const char *endpoint, int hwm, char *err,
                             size_t errlen);

/* Does this endpoint use CURVE under cfg? */
bool cv_sock_curve(const cv_config *cfg, const char *endpoint);

/* The CURVE directory of the instance (HOME/keys/curve), malloc'ed. */
char *cv_sock_curve_dir(const cv_config *cfg);

/* Create what is missing of the instance's CURVE certificates (never
 * overwriting one); says what it did on stdout when verbose. 0, or -1
 * with a reason in err. */
int cv_sock_make_certs(const cv_config *cfg, bool verbose, char *err,
                       size_t errlen);
/* One of them: a new certificate at path (path and path_secret, both
 * 0600), unless one is there (kept; an incomplete one is an error). The
 * directory must exist. */
int cv_sock_make_cert(const char *path, bool verbose, char *err,
                      size_t errlen);

#endif
