/* sock.c - binding and connecting pipeline sockets. */
#include "sock.h"

#include "util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cv_sock_init(void)
{
    zsys_handler_set(NULL); /* keep our SIGTERM/SIGINT handlers */
    zsys_init();
}

bool cv_sock_curve(const cv_config *cfg, const char *endpoint)
{
    if (cfg->curve >= 0)
        return cfg->curve == 1;
    return strncmp(endpoint, "tcp://", 6) == 0;
}

static zsock_t *make(const cv_config *cfg, int type, const char *endpoint,
                     bool bind, char *err, size_t errlen)
{
    zsock_t *s = zsock_new(type);
    if (!s) {
        snprintf(err, errlen, "cannot create a socket: %s", zmq_strerror(errno));
        return NULL;
    }
    if (cv_sock_curve(cfg, endpoint)) {
        snprintf(err, errlen, "CURVE for %s is not set up yet", endpoint);
        zsock_destroy(&s);
        return NULL;
    }
    if (bind && strncmp(endpoint, "ipc://", 6) == 0) {
        /* a socket file left by a killed process would refuse the bind */
        unlink(endpoint + 6);
    }
    int rc = bind ? zsock_bind(s, "%s", endpoint) : zsock_connect(s, "%s", endpoint);
    if (rc < 0) {
        snprintf(err, errlen, "cannot %s %s: %s", bind ? "bind" : "connect to",
                 endpoint, zmq_strerror(errno));
        zsock_destroy(&s);
        return NULL;
    }
    if (bind && strncmp(endpoint, "ipc://", 6) == 0)
        chmod(endpoint + 6, 0600);
    return s;
}

zsock_t *cv_sock_bind(const cv_config *cfg, int type, const char *endpoint,
                      char *err, size_t errlen)
{
    return make(cfg, type, endpoint, true, err, errlen);
}

zsock_t *cv_sock_connect(const cv_config *cfg, int type, const char *endpoint,
                         char *err, size_t errlen)
{
    return make(cfg, type, endpoint, false, err, errlen);
}
