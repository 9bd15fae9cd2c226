/* instance.c - `ctxvault init`. */
#include "ops/instance.h"

#include "storage/db.h"
#include "crypto/keyring.h"
#include "privacy/policy.h"
#include "net/sock.h"
#include "net/synckeys.h"
#include "base/util.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern const char cv_default_config_text[];

static int make_dir(const char *path)
{
    struct stat st;
    bool existed = stat(path, &st) == 0;
    if (cv_mkdir_p(path, 0700, true) < 0) {
        cv_err("cannot create directory %s: %s", path, strerror(errno));
        return EX_CANTCREAT;
    }
    if (!existed)
        printf("created %s/\n", path);
    return 0;
}

static int dir_of(const char *file)
{
    char *d = cv_strdup(file);
    char *slash = strrchr(d, '/');
    int rc = 0;
    if (slash && slash != d) {
        *slash = '\0';
        rc = make_dir(d);
    }
    free(d);
    return rc;
}

static int write_new(const char *path, const char *text)
{
    if (access(path, F_OK) == 0) {
        printf("kept %s\n", path);
        return 0;
    }
    if (cv_write_file_atomic(path, text, strlen(text), 0600, true) < 0 &&
        errno != EEXIST) {
        cv_err("cannot write %s: %s", path, strerror(errno));
        return EX_CANTCREAT;
    }
    printf("created %s\n", path);
    return 0;
}

int cv_instance_id(const cv_config *cfg, bool create,
                   char out[CV_INSTANCE_ID_LEN + 1], char *err, size_t errlen)
{
    char *path = cv_fmt("%s/instance-id", cfg->home);
    int rc = -1;
    for (int tries = 0; tries < 2; tries++) {
        size_t len = 0;
        char *text = cv_read_file(path, 256, &len);
        if (text) {
            size_t n = 0;
            while (n < len && isxdigit((unsigned char)text[n]))
                n++;
            if (n == CV_INSTANCE_ID_LEN && (len == n || text[n] == '\n')) {
                memcpy(out, text, n);
                out[n] = '\0';
                rc = 0;
            } else {
                snprintf(err, errlen, "%s is not an instance id (%d hex digits)",
                         path, CV_INSTANCE_ID_LEN);
            }
            free(text);
            break;
        }
        if (errno != ENOENT || !create) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        unsigned char bits[CV_INSTANCE_ID_LEN / 2];
        char hex[CV_INSTANCE_ID_LEN + 2];
        randombytes_buf(bits, sizeof bits);
        sodium_bin2hex(hex, sizeof hex, bits, sizeof bits);
        strcat(hex, "\n");
        /* exclusive: a concurrent first use that won is read back instead */
        if (cv_write_file_atomic(path, hex, strlen(hex), 0600, true) < 0 &&
            errno != EEXIST) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            break;
        }
    }
    free(path);
    return rc;
}

int cv_instance_init(const cv_config *cfg)
{
    int rc;
    if ((rc = make_dir(cfg->home)))
        return rc;
    const char *dirs[] = {cfg->deadletter_dir, cfg->run_dir, cfg->spool_dir,
                          cfg->backup_dir};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
        if ((rc = make_dir(dirs[i])))
            return rc;
    if ((rc = dir_of(cfg->keyring_file)) || (rc = dir_of(cfg->db_file)) ||
        (rc = dir_of(cfg->policy_file)))
        return rc;

    char *conf = cv_fmt("%s/ctxvault.conf", cfg->home);
    rc = write_new(cfg->config_file ? cfg->config_file : conf,
                   cv_default_config_text);
    free(conf);
    if (rc || (rc = write_new(cfg->policy_file, cv_default_policy_text)))
        return rc;

    if (access(cfg->keyring_file, F_OK) == 0) {
        /* kept, but it must still be usable: say so now, not at first use */
        char err[512];
        cv_keyring *kr = cv_keyring_load(cfg->keyring_file, err, sizeof err);
        if (!kr) {
            cv_err("%s", err);
            return EX_CONFIG;
        }
        cv_keyring_destroy(&kr);
        printf("kept %s (keys are never overwritten)\n", cfg->keyring_file);
    } else {
        char err[512];
        if (cv_keyring_create(cfg->keyring_file, err, sizeof err) < 0) {
            cv_err("%s", err);
            return EX_CANTCREAT;
        }
        printf("created %s (key version 1)\n", cfg->keyring_file);
    }

    /* CURVE certificates for tcp:// endpoints (kept when present) */
    {
        char err[512];
        if (cv_sock_make_certs(cfg, true, err, sizeof err) < 0) {
            cv_err("%s", err);
            return EX_CANTCREAT;
        }
        /* and ctxvault-sync's: its certificate, its end-to-end key */
        if (cv_synckeys_make(cfg, true, err, sizeof err) < 0) {
            cv_err("%s", err);
            return EX_CANTCREAT;
        }
    }

    {
        char id[CV_INSTANCE_ID_LEN + 1], err[512];
        bool had = cv_instance_id(cfg, false, id, err, sizeof err) == 0;
        if (!had && cv_instance_id(cfg, true, id, err, sizeof err) < 0) {
            cv_err("%s", err);
            return EX_CANTCREAT;
        }
        printf("%s instance id %s\n", had ? "kept" : "created", id);
    }

    if (access(cfg->db_file, F_OK) == 0) {
        /* never opened for writing here: a running store holds it */
        printf("kept %s\n", cfg->db_file);
        return 0;
    }
    char err[1024];
    cv_recovery rec;
    int code;
    cv_db *db = cv_db_open_writer(cfg, "ctxvault init", &rec, &code, err,
                                  sizeof err);
    if (!db) {
        cv_err("%s", err);
        return code;
    }
    cv_db_close(&db);
    printf("created %s\n", cfg->db_file);
    return 0;
}
