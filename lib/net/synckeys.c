/* synckeys.c - making and loading ctxvault-sync's certificate and its
 * end-to-end key. */
#include "net/synckeys.h"

#include "net/sock.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define E2E_BYTES 32
#define E2E_HEX (E2E_BYTES * 2)

static char *cert_path(const cv_config *cfg)
{
    char *dir = cv_sock_curve_dir(cfg);
    char *path = cv_fmt("%s/sync.cert", dir);
    free(dir);
    return path;
}

zcert_t *cv_synckeys_cert(const cv_config *cfg, char *err, size_t errlen)
{
    char *path = cert_path(cfg);
    char *spath = cv_fmt("%s_secret", path);
    zcert_t *c = NULL;
    /* zcert_load falls back to the public file alone, whose secret key is
     * zeros: ask for the secret file first */
    if (access(spath, R_OK) != 0)
        snprintf(err, errlen, "cannot read the sync certificate %s: %s (run "
                 "`ctxvault init` to create it)", spath, strerror(errno));
    else if (!(c = zcert_load(path)))
        snprintf(err, errlen, "cannot load the sync certificate %s", path);
    free(path);
    free(spath);
    return c;
}

int cv_synckeys_public_hex(const cv_config *cfg, char out[65], char *err,
                           size_t errlen)
{
    zcert_t *c = cv_synckeys_cert(cfg, err, errlen);
    if (!c)
        return -1;
    sodium_bin2hex(out, 65, zcert_public_key(c), 32);
    zcert_destroy(&c);
    return 0;
}

int cv_synckeys_load_e2e(const cv_config *cfg, unsigned char key[32],
                         char *err, size_t errlen)
{
    const char *path = cfg->sync_key_file;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            snprintf(err, errlen, "the end-to-end sync key %s does not exist "
                     "(copy it from another device of the group, or run "
                     "`ctxvault init` on the first one)", path);
        else
            snprintf(err, errlen, "cannot open the end-to-end sync key %s: %s",
                     path, strerror(errno));
        return -1;
    }
    int rc = -1;
    char buf[E2E_HEX + 8]; /* the hex, a newline, and room to see more */
    ssize_t n = 0;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file", path);
        goto out;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen, "%s has mode %04o, which lets other users read "
                 "the end-to-end sync key; it must be 0600 (chmod 600 %s)",
                 path, (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    do
        n = read(fd, buf, sizeof buf - 1);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    buf[n] = '\0';
    /* 64 hex digits, then nothing but white space (the newline) */
    size_t len;
    const char *end;
    if (n < E2E_HEX ||
        sodium_hex2bin(key, E2E_BYTES, buf, E2E_HEX, NULL, &len, &end) != 0 ||
        len != E2E_BYTES || end != buf + E2E_HEX ||
        strspn(buf + E2E_HEX, " \t\r\n") != (size_t)n - E2E_HEX) {
        sodium_memzero(key, E2E_BYTES);
        snprintf(err, errlen, "%s is not an end-to-end sync key (64 hex "
                 "digits and a newline)", path);
        goto out;
    }
    rc = 0;
out:
    sodium_memzero(buf, sizeof buf);
    close(fd);
    return rc;
}

/* A new end-to-end key at cfg->sync_key_file, unless one is there; a kept
 * one must still load, so a bad one shows now, not at the first sync. */
static int make_e2e(const cv_config *cfg, bool verbose, char *err,
                    size_t errlen)
{
    const char *path = cfg->sync_key_file;
    unsigned char key[E2E_BYTES];
    if (access(path, F_OK) == 0) {
        int rc = cv_synckeys_load_e2e(cfg, key, err, errlen);
        sodium_memzero(key, sizeof key);
        if (rc == 0 && verbose)
            printf("kept %s (keys are never overwritten)\n", path);
        return rc;
    }
    char *dir = cv_strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (cv_mkdir_p(dir, 0700, true) < 0) {
            snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
            free(dir);
            return -1;
        }
    }
    free(dir);
    if (sodium_init() < 0) {
        snprintf(err, errlen, "cannot initialise libsodium");
        return -1;
    }
    char hex[E2E_HEX + 2];
    randombytes_buf(key, sizeof key);
    sodium_bin2hex(hex, E2E_HEX + 1, key, sizeof key);
    hex[E2E_HEX] = '\n';
    hex[E2E_HEX + 1] = '\0';
    /* exclusive: two inits at once must not end with two different keys */
    int rc = cv_write_file_atomic(path, hex, E2E_HEX + 1, 0600, true);
    int saved = errno;
    sodium_memzero(key, sizeof key);
    sodium_memzero(hex, sizeof hex);
    if (rc < 0) {
        snprintf(err, errlen, "cannot write the end-to-end sync key %s: %s",
                 path, strerror(saved));
        return -1;
    }
    if (verbose)
        printf("created %s (the end-to-end sync key: copy it, 0600, to the "
               "group's other devices, never to a relay)\n", path);
    return 0;
}

int cv_synckeys_make(const cv_config *cfg, bool verbose, char *err,
                     size_t errlen)
{
    char *dir = cv_sock_curve_dir(cfg);
    char *path = cert_path(cfg);
    int rc = -1;
    if (cv_mkdir_p(dir, 0700, true) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    if (cv_sock_make_cert(path, verbose, err, errlen) < 0)
        goto out;
    if (cfg->sync_relay) {
        if (verbose)
            printf("no end-to-end sync key: this instance is a relay, which "
                   "forwards what it cannot read\n");
    } else if (make_e2e(cfg, verbose, err, errlen) < 0) {
        goto out;
    }
    rc = 0;
out:
    free(dir);
    free(path);
    return rc;
}
