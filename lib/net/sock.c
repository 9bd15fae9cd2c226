/* sock.c - binding and connecting pipeline sockets, with CURVE over tcp. */
#include "net/sock.h"

#include "base/util.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* One zauth actor per process, started by the first CURVE bind: it answers
 * the ZAP requests of every socket of the process. */
static zactor_t *auth;

/* libzmq and CZMQ abort (an assertion, SIGABRT) when they cannot get a
 * descriptor for the context, an I/O thread's poller or a socket's
 * mailbox: seen here with ulimit -n from 12 to 16. A working process needs
 * a few dozen (those, one per listener and peer, SQLite's database, WAL,
 * shm and lock, the spool and journal files), so below CV_MIN_FDS it stops
 * with a clear error instead; a soft limit below the hard one is raised
 * first, as far as CV_WANT_FDS. */
#define CV_MIN_FDS 64
#define CV_WANT_FDS 4096

static void check_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return; /* nothing known: ZeroMQ will say what fails */
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < CV_WANT_FDS &&
        (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > rl.rlim_cur)) {
        struct rlimit up = rl;
        up.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > CV_WANT_FDS
                          ? CV_WANT_FDS : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < CV_MIN_FDS)
        cv_die(EX_OSERR, "cannot open ZeroMQ's sockets: the open file limit "
               "(ulimit -n) is %llu, below the %d descriptors the sockets "
               "and the database need; raise it",
               (unsigned long long)rl.rlim_cur, CV_MIN_FDS);
}

void cv_sock_init(void)
{
    check_fd_limit();
    zsys_handler_set(NULL); /* keep our SIGTERM/SIGINT handlers */
    zsys_init();
}

void cv_sock_shutdown(void)
{
    zactor_destroy(&auth);
}

bool cv_sock_curve(const cv_config *cfg, const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) == 0)
        return false; /* the run directory protects it */
    if (cfg->curve >= 0)
        return cfg->curve == 1;
    return strncmp(endpoint, "tcp://", 6) == 0;
}

char *cv_sock_curve_dir(const cv_config *cfg)
{
    return cv_fmt("%s/keys/curve", cfg->home);
}

int cv_sock_make_cert(const char *path, bool verbose, char *err,
                      size_t errlen)
{
    char *secret = cv_fmt("%s_secret", path);
    int rc = 0;
    if (access(secret, F_OK) == 0 && access(path, F_OK) == 0) {
        if (verbose)
            printf("kept %s (certificates are never overwritten)\n", path);
        goto out;
    }
    if (access(secret, F_OK) == 0 || access(path, F_OK) == 0) {
        snprintf(err, errlen, "certificate %s is incomplete (one of it and "
                 "its _secret file is missing); move it aside to make a new one",
                 path);
        rc = -1;
        goto out;
    }
    zcert_t *cert = zcert_new();
    if (!cert) {
        snprintf(err, errlen, "cannot make a certificate: %s", strerror(errno));
        rc = -1;
        goto out;
    }
    zcert_set_meta(cert, "created-by", "ctxvault init");
    if (zcert_save(cert, path) < 0 || chmod(secret, 0600) < 0 ||
        chmod(path, 0600) < 0) {
        snprintf(err, errlen, "cannot write certificate %s: %s", path,
                 strerror(errno));
        rc = -1;
    } else if (verbose) {
        printf("created %s\n", path);
    }
    zcert_destroy(&cert);
out:
    free(secret);
    return rc;
}

int cv_sock_make_certs(const cv_config *cfg, bool verbose, char *err,
                       size_t errlen)
{
    char *dir = cv_sock_curve_dir(cfg);
    char *clients = cv_fmt("%s/clients", dir);
    char *server = cv_fmt("%s/server.cert", dir);
    char *client = cv_fmt("%s/client.cert", dir);
    char *allowed = cv_fmt("%s/client.cert", clients);
    int rc = -1;
    if (cv_mkdir_p(clients, 0700, true) < 0 || chmod(dir, 0700) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", clients, strerror(errno));
        goto out;
    }
    if (cv_sock_make_cert(server, verbose, err, errlen) < 0 ||
        cv_sock_make_cert(client, verbose, err, errlen) < 0)
        goto out;
    if (access(allowed, F_OK) != 0) {
        /* the client's public certificate: the key the servers accept */
        zcert_t *c = zcert_load(client);
        if (!c || zcert_save_public(c, allowed) < 0) {
            snprintf(err, errlen, "cannot write %s: %s", allowed,
                     c ? strerror(errno) : "cannot load the client certificate");
            zcert_destroy(&c);
            goto out;
        }
        zcert_destroy(&c);
        if (verbose)
            printf("created %s\n", allowed);
    }
    rc = 0;
out:
    free(dir);
    free(clients);
    free(server);
    free(client);
    free(allowed);
    return rc;
}

/* Load one of the instance's certificates (with its secret when present). */
static zcert_t *load_cert(const cv_config *cfg, const char *name, bool secret,
                          char *err, size_t errlen)
{
    char *dir = cv_sock_curve_dir(cfg);
    char *path = cv_fmt("%s/%s", dir, name);
    char *spath = cv_fmt("%s_secret", path);
    zcert_t *c = NULL;
    if (access(secret ? spath : path, R_OK) != 0)
        snprintf(err, errlen, "cannot read CURVE certificate %s: %s (run "
                 "`ctxvault init` to create it)", secret ? spath : path,
                 strerror(errno));
    else if (!(c = zcert_load(path)))
        snprintf(err, errlen, "cannot load CURVE certificate %s", path);
    free(dir);
    free(path);
    free(spath);
    return c;
}

/* The process's zauth: accept CURVE clients listed in keys/curve/clients. */
static int start_auth(const cv_config *cfg, char *err, size_t errlen)
{
    if (auth)
        return 0;
    auth = zactor_new(zauth, NULL);
    if (!auth) {
        snprintf(err, errlen, "cannot start the CURVE authenticator");
        return -1;
    }
    char *dir = cv_sock_curve_dir(cfg);
    char *clients = cv_fmt("%s/clients", dir);
    zstr_sendx(auth, "CURVE", clients, NULL);
    zsock_wait(auth);
    free(dir);
    free(clients);
    return 0;
}

static int curve_setup(const cv_config *cfg, zsock_t *s, bool bind,
                       char *err, size_t errlen)
{
    if (bind) {
        zcert_t *server = load_cert(cfg, "server.cert", true, err, errlen);
        if (!server || start_auth(cfg, err, errlen) < 0) {
            zcert_destroy(&server);
            return -1;
        }
        zcert_apply(server, s);
        zsock_set_curve_server(s, 1);
        zsock_set_zap_domain(s, "ctxvault");
        zcert_destroy(&server);
        return 0;
    }
    zcert_t *client = load_cert(cfg, "client.cert", true, err, errlen);
    zcert_t *server = client ? load_cert(cfg, "server.cert", false, err, errlen)
                             : NULL;
    if (!client || !server) {
        zcert_destroy(&client);
        zcert_destroy(&server);
        return -1;
    }
    zcert_apply(client, s);
    zsock_set_curve_serverkey(s, zcert_public_txt(server));
    zcert_destroy(&client);
    zcert_destroy(&server);
    return 0;
}

static zsock_t *make(const cv_config *cfg, int type, const char *endpoint,
                     bool bind, int hwm, char *err, size_t errlen)
{
    zsock_t *s = zsock_new(type);
    if (!s) {
        snprintf(err, errlen, "cannot create a socket: %s", zmq_strerror(errno));
        return NULL;
    }
    if (hwm > 0) {
        /* before bind or connect: a pipe takes the marks it is made with */
        zsock_set_sndhwm(s, hwm);
        zsock_set_rcvhwm(s, hwm);
    }
    /* cv_config_load refuses this already; checked again here so that no
     * caller with a config of its own can open plain tcp by mistake */
    if (strncmp(endpoint, "tcp://", 6) == 0 && !cv_sock_curve(cfg, endpoint) &&
        !cfg->allow_plain_tcp) {
        snprintf(err, errlen, "refusing %s: tcp:// without CURVE (curve = no); "
                 "set [pipeline] allow_plain_tcp = yes to allow it", endpoint);
        zsock_destroy(&s);
        return NULL;
    }
    if (cv_sock_curve(cfg, endpoint) &&
        curve_setup(cfg, s, bind, err, errlen) < 0) {
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
    return make(cfg, type, endpoint, true, 0, err, errlen);
}

zsock_t *cv_sock_connect(const cv_config *cfg, int type, const char *endpoint,
                         char *err, size_t errlen)
{
    return make(cfg, type, endpoint, false, 0, err, errlen);
}

zsock_t *cv_sock_bind_hwm(const cv_config *cfg, int type, const char *endpoint,
                          int hwm, char *err, size_t errlen)
{
    return make(cfg, type, endpoint, true, hwm, err, errlen);
}

zsock_t *cv_sock_connect_hwm(const cv_config *cfg, int type,
                             const char *endpoint, int hwm, char *err,
                             size_t errlen)
{
    return make(cfg, type, endpoint, false, hwm, err, errlen);
}
