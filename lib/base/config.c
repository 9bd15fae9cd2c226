/* config.c - load an instance's configuration over the built-in defaults.
 * The built-in defaults are etc/ctxvault.conf itself, embedded at build
 * time, so both are parsed by the same code. */
#include "base/config.h"

#include "base/ini.h"
#include "base/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") ||
        !strcmp(v, "1")) {
        *out = true;
        return true;
    }
    if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") ||
        !strcmp(v, "0")) {
        *out = false;
        return true;
    }
    return false;
}

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = cv_strdup(v);
}

#define BAD(...) (snprintf(err, errlen, __VA_ARGS__), -1)

/* A device, peer or allow name: 1 to 32 letters, digits, '.', '_', '-'
 * (it appears in logs, metrics and the sync protocol's messages). */
static bool sync_name_ok(const char *v)
{
    size_t n = strlen(v);
    return n >= 1 && n <= 32 &&
           strspn(v, "abcdefghijklmnopqrstuvwxyz"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* A CURVE public key as 64 hex digits (not zcert's Z85, whose characters
 * include '#' and ';', the config's comment marks). */
static bool sync_key_ok(const char *v)
{
    return strlen(v) == 64 && strspn(v, "0123456789abcdefABCDEF") == 64;
}

/* tcp://HOST:PORT or ipc://PATH: sync is between machines; ipc:// is for
 * tests and for two instances on one host. */
static bool sync_endpoint_ok(const char *v)
{
    if (!strncmp(v, "ipc://", 6))
        return v[6] != '\0';
    if (strncmp(v, "tcp://", 6) != 0)
        return false;
    const char *colon = strrchr(v + 6, ':');
    return colon && colon > v + 6 && colon[1] != '\0';
}

static char *lower_dup(const char *v)
{
    char *s = cv_strdup(v);
    for (char *p = s; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    return s;
}

/* [sync] peer.NAME = ENDPOINT HEXKEY and allow.NAME = HEXKEY. */
static int sync_entry(cv_config *c, bool peer, const char *name,
                      const char *v, char *err, size_t errlen)
{
    const char *what = peer ? "peer" : "allow";
    cv_sync_peer **list = peer ? &c->sync_peers : &c->sync_allow;
    int *n = peer ? &c->nsync_peers : &c->nsync_allow;
    if (!sync_name_ok(name))
        return BAD("%s.%s: the name must be 1 to 32 letters, digits, '.', "
                   "'_' or '-'", what, name);
    for (int i = 0; i < *n; i++)
        if (!strcmp((*list)[i].name, name))
            return BAD("%s.%s is given twice: each %s needs a name of its own",
                       what, name, what);
    char *endpoint = NULL;
    const char *key = v;
    if (peer) {
        size_t elen = strcspn(v, " \t");
        key = v + elen + strspn(v + elen, " \t");
        endpoint = cv_strdup(v);
        endpoint[elen] = '\0';
        if (!sync_endpoint_ok(endpoint)) {
            free(endpoint);
            return BAD("peer.%s = '%s' is not 'ENDPOINT HEXKEY' with a "
                       "tcp://HOST:PORT or ipc:// endpoint", name, v);
        }
    }
    if (!sync_key_ok(key)) {
        free(endpoint);
        return BAD("%s.%s: key '%s' is not a CURVE public key of 64 hex "
                   "digits", what, name, key);
    }
    char *lkey = lower_dup(key);
    for (int i = 0; !peer && i < *n; i++)
        if (!strcmp((*list)[i].key, lkey)) {
            /* the key tells a client apart: one key, one name */
            free(lkey);
            return BAD("allow.%s has the same key as allow.%s", name,
                       (*list)[i].name);
        }
    *list = cv_realloc(*list, (size_t)(*n + 1) * sizeof **list);
    (*list)[*n] = (cv_sync_peer){.name = cv_strdup(name), .endpoint = endpoint,
                                 .key = lkey};
    (*n)++;
    return 0;
}

static int handle(void *arg, const char *sec, const char *key,
                  const char *v, int line, char *err, size_t errlen)
{
    cv_config *c = arg;
    (void)line;
    int64_t n;
    if (!strcmp(sec, "paths")) {
        char **dst = !strcmp(key, "policy")       ? &c->policy_file
                     : !strcmp(key, "keyring")    ? &c->keyring_file
                     : !strcmp(key, "datakeys")   ? &c->datakeys_file
                     : !strcmp(key, "database")   ? &c->db_file
                     : !strcmp(key, "deadletter") ? &c->deadletter_dir
                     : !strcmp(key, "run")        ? &c->run_dir
                     : !strcmp(key, "spool")      ? &c->spool_dir
                     : !strcmp(key, "backups")    ? &c->backup_dir
                     : !strcmp(key, "journal")    ? &c->journal_dir
                     : !strcmp(key, "archives")   ? &c->archive_dir
                                                  : NULL;
        if (!dst)
            return BAD("unknown setting '%s' in [paths]", key);
        if (!*v)
            return BAD("empty path for '%s'", key);
        set_str(dst, v);
        return 0;
    }
    if (!strcmp(sec, "ingest")) {
        if (!strcmp(key, "max_line")) {
            n = cv_parse_size(v);
            if (n < 64 || n > (int64_t)1 << 30)
                return BAD("max_line '%s' is not a size from 64B to 1GiB", v);
            c->max_line = n;
        } else if (!strcmp(key, "max_depth")) {
            if (!cv_parse_int(v, 1, 2000, &n))
                return BAD("max_depth '%s' is not a number from 1 to 2000", v);
            c->max_depth = (int)n;
        } else {
            return BAD("unknown setting '%s' in [ingest]", key);
        }
        return 0;
    }
    if (!strcmp(sec, "store")) {
        if (!strcmp(key, "synchronous")) {
            if (!strcmp(v, "normal"))
                c->sync_mode = CV_SYNC_NORMAL;
            else if (!strcmp(v, "journal"))
                c->sync_mode = CV_SYNC_JOURNAL;
            else if (!strcmp(v, "full"))
                c->sync_mode = CV_SYNC_FULL;
            else
                return BAD("synchronous '%s' is not 'journal', 'full' or 'normal'", v);
        } else if (!strcmp(key, "batch_size")) {
            if (!cv_parse_int(v, 1, 1000000, &n))
                return BAD("batch_size '%s' is not a number from 1 to 1000000", v);
            c->batch_size = (int)n;
        } else if (!strcmp(key, "batch_time")) {
            n = cv_parse_duration(v);
            if (n < 0 || n > 60000)
                return BAD("batch_time '%s' is not a duration up to 60s", v);
            c->batch_ms = n;
        } else if (!strcmp(key, "wal_autocheckpoint")) {
            if (!cv_parse_int(v, 0, 1000000, &n))
                return BAD("wal_autocheckpoint '%s' is not a page count", v);
            c->wal_autocheckpoint = (int)n;
        } else if (!strcmp(key, "journal_size_limit")) {
            n = cv_parse_size(v);
            if (n < 0)
                return BAD("journal_size_limit '%s' is not a size", v);
            c->journal_size_limit = n;
        } else if (!strcmp(key, "busy_timeout")) {
            n = cv_parse_duration(v);
            if (n < 0 || n > 3600000)
                return BAD("busy_timeout '%s' is not a duration up to 1h", v);
            c->busy_timeout_ms = (int)n;
        } else if (!strcmp(key, "cache_size")) {
            n = cv_parse_size(v);
            if (n < 65536 || n > ((int64_t)1 << 34))
                return BAD("cache_size '%s' is not a size from 64KiB to 16GiB", v);
            c->cache_size = n;
        } else if (!strcmp(key, "commit_when_idle")) {
            if (!parse_bool(v, &c->commit_when_idle))
                return BAD("commit_when_idle '%s' is not yes or no", v);
        } else if (!strcmp(key, "check_integrity")) {
            if (!parse_bool(v, &c->check_integrity))
                return BAD("check_integrity '%s' is not yes or no", v);
        } else if (!strcmp(key, "check_checksums")) {
            bool yes;
            if (!strcmp(v, "background"))
                c->check_checksums = CV_CHECKSUMS_BACKGROUND;
            else if (parse_bool(v, &yes))
                c->check_checksums = yes ? CV_CHECKSUMS_YES : CV_CHECKSUMS_NO;
            else
                return BAD("check_checksums '%s' is not yes, no or background", v);
        } else if (!strcmp(key, "checksum_rate")) {
            if (!cv_parse_int(v, 0, 100000000, &n))
                return BAD("checksum_rate '%s' is not a number of rows per "
                           "second from 0 (no limit) to 100000000", v);
            c->checksum_rate = n;
        } else if (!strcmp(key, "keep_journal")) {
            if (!parse_bool(v, &c->journal))
                return BAD("keep_journal '%s' is not yes or no", v);
        } else if (!strcmp(key, "journal_segment")) {
            n = cv_parse_size(v);
            if (n < 4096 || n > ((int64_t)1 << 32))
                return BAD("journal_segment '%s' is not a size from 4KiB to 4GiB", v);
            c->journal_segment = n;
        } else {
            return BAD("unknown setting '%s' in [store]", key);
        }
        return 0;
    }
    if (!strcmp(sec, "storage")) {
        if (!strcmp(key, "quota")) {
            n = !strcmp(v, "off") ? 0 : cv_parse_size(v);
            if (n != 0 && (n < 65536 || n > ((int64_t)1 << 50)))
                return BAD("quota '%s' is not off or a size from 64KiB up", v);
            c->quota = n;
        } else if (!strcmp(key, "quota_threshold")) {
            size_t len = strlen(v);
            char pct[16];
            if (len == 0 || len >= sizeof pct || v[len - 1] != '%')
                return BAD("quota_threshold '%s' is not a percentage from 1%% "
                           "to 99%%", v);
            memcpy(pct, v, len - 1);
            pct[len - 1] = '\0';
            if (!cv_parse_int(pct, 1, 99, &n))
                return BAD("quota_threshold '%s' is not a percentage from 1%% "
                           "to 99%%", v);
            c->quota_threshold = (int)n;
        } else if (!strcmp(key, "quota_keep")) {
            n = cv_parse_duration(v);
            if (n < 0 || n > 3660 * 86400000LL)
                return BAD("quota_keep '%s' is not a duration up to 3660d", v);
            c->quota_keep_ms = n;
        } else if (!strcmp(key, "quota_notify")) {
            free(c->quota_notify);
            c->quota_notify = *v ? cv_strdup(v) : NULL;
        } else {
            return BAD("unknown setting '%s' in [storage]", key);
        }
        return 0;
    }
    if (!strcmp(sec, "sweep") || !strcmp(sec, "scrub")) {
        cv_schedule *sc = sec[1] == 'w' ? &c->sweep : &c->scrub;
        if (!strcmp(key, "interval")) {
            n = cv_parse_duration(v);
            if (n < 1000 || n > 7 * 86400000LL)
                return BAD("interval '%s' is not a duration from 1s to 7d", v);
            sc->interval_ms = n;
        } else if (!strcmp(key, "batch")) {
            if (!cv_parse_int(v, 1, 100000, &n))
                return BAD("batch '%s' is not a number from 1 to 100000", v);
            sc->batch = (int)n;
        } else if (!strcmp(key, "pause")) {
            n = cv_parse_duration(v);
            if (n < 0 || n > 60000)
                return BAD("pause '%s' is not a duration up to 60s", v);
            sc->pause_ms = n;
        } else {
            return BAD("unknown setting '%s' in [%s]", key, sec);
        }
        return 0;
    }
    if (!strcmp(sec, "segments")) {
        cv_segment_rules *r = &c->segments;
        int64_t *dur = !strcmp(key, "window")        ? &r->window_ms
                     : !strcmp(key, "dormant_after") ? &r->dormant_ms
                     : !strcmp(key, "new_within")    ? &r->new_ms
                     : !strcmp(key, "stale_after")   ? &r->stale_ms : NULL;
        int64_t *num = !strcmp(key, "power_interactions")   ? &r->power_count
                     : !strcmp(key, "power_types")          ? &r->power_types
                     : !strcmp(key, "regular_interactions") ? &r->regular_count
                                                            : NULL;
        if (dur) {
            n = cv_parse_duration(v);
            if (n < 0 || n > 3660 * 86400000LL)
                return BAD("%s '%s' is not a duration up to 3660d", key, v);
            *dur = n;
        } else if (num) {
            if (!cv_parse_int(v, 0, 1000000000, &n))
                return BAD("%s '%s' is not a number from 0 to 1000000000", key, v);
            *num = n;
        } else {
            return BAD("unknown setting '%s' in [segments]", key);
        }
        return 0;
    }
    if (!strcmp(sec, "backup")) {
        if (!strcmp(key, "interval")) {
            n = cv_parse_duration(v);
            if (n < 1000 || n > 31 * 86400000LL)
                return BAD("interval '%s' is not a duration from 1s to 31d", v);
            c->backup_interval_ms = n;
            return 0;
        }
        int *dst = !strcmp(key, "keep_daily")   ? &c->backup_daily
                 : !strcmp(key, "keep_monthly") ? &c->backup_monthly : NULL;
        if (!dst)
            return BAD("unknown setting '%s' in [backup]", key);
        if (!cv_parse_int(v, 0, 60, &n))
            return BAD("%s '%s' is not a number from 0 to 60", key, v);
        *dst = (int)n;
        return 0;
    }
    if (!strcmp(sec, "pipeline")) {
        char **dst = !strcmp(key, "source")    ? &c->source
                     : !strcmp(key, "ingest")  ? &c->ep_ingest
                     : !strcmp(key, "encrypt") ? &c->ep_encrypt
                     : !strcmp(key, "store")   ? &c->ep_store
                     : !strcmp(key, "acks")    ? &c->ep_acks
                     : !strcmp(key, "control") ? &c->ep_control
                     : !strcmp(key, "metrics") ? &c->ep_metrics
                                               : NULL;
        if (dst) {
            if (dst == &c->source) {
                if (!*v || strlen(v) > 64 || strspn(v, "abcdefghijklmnopqrstuvwxyz"
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(v))
                    return BAD("source '%s' must be 1 to 64 letters, digits, "
                               "'-', '_' or '.'", v);
            } else if (strncmp(v, "ipc://", 6) != 0 && strncmp(v, "tcp://", 6) != 0) {
                return BAD("endpoint '%s' for '%s' is not ipc:// or tcp://", v, key);
            }
            set_str(dst, v);
        } else if (!strcmp(key, "window")) {
            if (!cv_parse_int(v, 1, 1000000, &n))
                return BAD("window '%s' is not a number from 1 to 1000000", v);
            c->window = (int)n;
        } else if (!strcmp(key, "send_batch")) {
            if (!cv_parse_int(v, 1, 10000, &n))
                return BAD("send_batch '%s' is not a number from 1 to 10000", v);
            c->send_batch = (int)n;
        } else if (!strcmp(key, "resend")) {
            n = cv_parse_duration(v);
            if (n < 10 || n > 3600000)
                return BAD("resend '%s' is not a duration from 10ms to 1h", v);
            c->resend_ms = n;
        } else if (!strcmp(key, "spool_sync")) {
            n = cv_parse_duration(v);
            if (n < 0 || n > 10000)
                return BAD("spool_sync '%s' is not a duration up to 10s", v);
            c->spool_sync_ms = n;
        } else if (!strcmp(key, "curve")) {
            bool b;
            if (!strcmp(v, "auto"))
                c->curve = -1;
            else if (parse_bool(v, &b))
                c->curve = b;
            else
                return BAD("curve '%s' is not auto, yes or no", v);
        } else if (!strcmp(key, "allow_plain_tcp")) {
            if (!parse_bool(v, &c->allow_plain_tcp))
                return BAD("allow_plain_tcp '%s' is not yes or no", v);
        } else if (!strcmp(key, "control_decrypt")) {
            if (!parse_bool(v, &c->control_decrypt))
                return BAD("control_decrypt '%s' is not yes or no", v);
        } else {
            return BAD("unknown setting '%s' in [pipeline]", key);
        }
        return 0;
    }
    if (!strcmp(sec, "metrics")) {
        if (!strcmp(key, "report_interval") || !strcmp(key, "stale_after")) {
            n = cv_parse_duration(v);
            if (n < 100 || n > 3600000)
                return BAD("%s '%s' is not a duration from 100ms to 1h", key, v);
            *(key[0] == 'r' ? &c->metrics_interval_ms : &c->metrics_stale_ms) = n;
        } else if (!strcmp(key, "listen")) {
            const char *colon = strrchr(v, ':');
            if (!colon || colon == v ||
                (strcmp(colon + 1, "auto") != 0 &&
                 !cv_parse_int(colon + 1, 0, 65535, &n)))
                return BAD("listen '%s' is not ADDRESS:PORT (port auto: a free "
                           "one; port 0: no HTTP)", v);
            set_str(&c->metrics_listen, v);
        } else if (!strcmp(key, "textfile")) {
            free(c->metrics_textfile);
            c->metrics_textfile = *v ? cv_strdup(v) : NULL;
        } else if (!strcmp(key, "anomaly_window")) {
            n = cv_parse_duration(v);
            if (n < 100 || n > 86400000)
                return BAD("anomaly_window '%s' is not a duration from 100ms to 1d", v);
            c->anomaly_window_ms = n;
        } else if (!strcmp(key, "anomaly_threshold")) {
            size_t len = strlen(v);
            char pct[16];
            /* "50%" or "50" */
            if (len && len < sizeof pct) {
                memcpy(pct, v, len + 1);
                if (pct[len - 1] == '%')
                    pct[len - 1] = '\0';
            }
            if (!len || len >= sizeof pct || !cv_parse_int(pct, 0, 100, &n))
                return BAD("anomaly_threshold '%s' is not a percentage from 0%% to 100%%", v);
            c->anomaly_percent = (int)n;
        } else if (!strcmp(key, "anomaly_min_events")) {
            if (!cv_parse_int(v, 1, INT64_MAX, &n))
                return BAD("anomaly_min_events '%s' is not a number from 1", v);
            c->anomaly_min_events = n;
        } else {
            return BAD("unknown setting '%s' in [metrics]", key);
        }
        return 0;
    }
    if (!strcmp(sec, "keys")) {
        if (!strcmp(key, "data_keys")) {
            if (strcmp(v, "user") && strcmp(v, "instance"))
                return BAD("data_keys '%s' is not 'user' or 'instance'", v);
            c->per_user_keys = v[0] == 'u';
        } else if (!strcmp(key, "key_command")) {
            free(c->key_command);
            c->key_command = *v ? cv_strdup(v) : NULL;
        } else {
            return BAD("unknown setting '%s' in [keys]", key);
        }
        return 0;
    }
    if (!strcmp(sec, "erasure")) {
        if (!strcmp(key, "notify")) {
            free(c->erasure_notify);
            c->erasure_notify = *v ? cv_strdup(v) : NULL;
        } else {
            return BAD("unknown setting '%s' in [erasure]", key);
        }
        return 0;
    }
    if (!strcmp(sec, "sync")) {
        if (!strcmp(key, "device")) {
            if (*v && !sync_name_ok(v))
                return BAD("device '%s' must be 1 to 32 letters, digits, '.', "
                           "'_' or '-' (empty: not a device)", v);
            free(c->sync_device);
            c->sync_device = *v ? cv_strdup(v) : NULL;
        } else if (!strcmp(key, "relay")) {
            if (!parse_bool(v, &c->sync_relay))
                return BAD("relay '%s' is not yes or no", v);
        } else if (!strcmp(key, "listen")) {
            if (*v && !sync_endpoint_ok(v))
                return BAD("listen '%s' is not tcp://ADDRESS:PORT or ipc://PATH "
                           "(empty: none)", v);
            free(c->sync_listen);
            c->sync_listen = *v ? cv_strdup(v) : NULL;
        } else if (!strncmp(key, "peer.", 5)) {
            return sync_entry(c, true, key + 5, v, err, errlen);
        } else if (!strncmp(key, "allow.", 6)) {
            return sync_entry(c, false, key + 6, v, err, errlen);
        } else if (!strcmp(key, "key_file")) {
            if (!*v)
                return BAD("empty path for 'key_file'");
            set_str(&c->sync_key_file, v);
        } else if (!strcmp(key, "wait")) {
            n = cv_parse_duration(v);
            if (n < 0 || n > 300000)
                return BAD("wait '%s' is not a duration up to 5m", v);
            c->sync_wait_ms = n;
        } else if (!strcmp(key, "retry_min") || !strcmp(key, "retry_max")) {
            n = cv_parse_duration(v);
            if (n < 10 || n > 3600000)
                return BAD("%s '%s' is not a duration from 10ms to 1h", key, v);
            *(key[7] == 'i' ? &c->sync_retry_min_ms : &c->sync_retry_max_ms) = n;
        } else if (!strcmp(key, "batch")) {
            if (!cv_parse_int(v, 1, 10000, &n))
                return BAD("batch '%s' is not a number from 1 to 10000", v);
            c->sync_batch = (int)n;
        } else {
            return BAD("unknown setting '%s' in [sync]", key);
        }
        return 0;
    }
    if (!*sec)
        return BAD("setting '%s' outside any [section]", key);
    return BAD("unknown section [%s]", sec);
}

static void report_stderr(void *arg, const char *msg)
{
    int *count = arg;
    (*count)++;
    cv_err("%s", msg);
}

static char *resolve(const char *home, const char *p)
{
    if (p[0] == '/')
        return cv_strdup(p);
    return cv_fmt("%s/%s", home, p);
}

static char *default_home(void)
{
    const char *env = getenv("CTXVAULT_HOME");
    if (env && *env)
        return cv_strdup(env);
    const char *h = getenv("HOME");
    return cv_fmt("%s/.ctxvault", h && *h ? h : ".");
}

static char *absolute(char *p)
{
    if (p[0] == '/')
        return p;
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return p;
    char *a = cv_fmt("%s/%s", cwd, p);
    free(p);
    return a;
}

/* A tcp:// endpoint without CURVE would carry events, keys' uses and
 * control requests in the clear to anyone on the network: refused unless
 * [pipeline] allow_plain_tcp says it is meant (a trusted link, a test).
 * Reports each such endpoint; returns the number reported. */
static int check_plain_tcp(const cv_config *c, const char *source)
{
    if (c->allow_plain_tcp || c->curve != 0)
        return 0; /* auto and yes put CURVE on every tcp:// endpoint */
    const char *names[] = {"ingest", "encrypt", "store", "acks", "control",
                           "metrics"};
    const char *eps[] = {c->ep_ingest, c->ep_encrypt, c->ep_store, c->ep_acks,
                         c->ep_control, c->ep_metrics};
    int n = 0;
    for (size_t i = 0; i < sizeof eps / sizeof *eps; i++) {
        if (eps[i] && strncmp(eps[i], "tcp://", 6) == 0) {
            cv_err("%s: [pipeline] %s = %s is tcp:// without CURVE (curve = "
                   "no): refused; use curve = auto, or set [pipeline] "
                   "allow_plain_tcp = yes to allow plain tcp", source,
                   names[i], eps[i]);
            n++;
        }
    }
    return n;
}

/* What no single [sync] line can tell: the settings that contradict each
 * other. Reports each; returns the number reported. */
static int check_sync(const cv_config *c, const char *source)
{
    int n = 0;
    if (c->sync_relay && c->sync_device) {
        cv_err("%s: [sync] relay = yes with device = %s: a relay has no "
               "device id: remove one of them", source, c->sync_device);
        n++;
    }
    if (c->sync_retry_min_ms > c->sync_retry_max_ms) {
        cv_err("%s: [sync] retry_min (%lld ms) is above retry_max (%lld ms)",
               source, (long long)c->sync_retry_min_ms,
               (long long)c->sync_retry_max_ms);
        n++;
    }
    return n;
}

/* An ipc:// endpoint's relative path is taken from the instance directory. */
static void resolve_ipc(const char *home, char **ep)
{
    if (*ep && strncmp(*ep, "ipc://", 6) == 0 && (*ep)[6] != '/') {
        char *r = cv_fmt("ipc://%s/%s", home, *ep + 6);
        free(*ep);
        *ep = r;
    }
}

int cv_config_load(cv_config *c, const char *home_opt, const char *file_opt)
{
    memset(c, 0, sizeof *c);
    int dummy = 0;
    /* The defaults cannot fail to parse: a test checks the shipped file. */
    cv_ini_parse("built-in defaults", cv_default_config_text, handle, c,
              report_stderr, &dummy);
    c->home = absolute(home_opt ? cv_strdup(home_opt) : default_home());

    int problems = 0;
    char *path = file_opt ? cv_strdup(file_opt)
                          : cv_fmt("%s/ctxvault.conf", c->home);
    size_t len;
    char *text = cv_read_file(path, 1 << 20, &len);
    if (text) {
        c->config_file = path;
        if (strlen(text) != len) {
            cv_err("%s: contains a NUL byte", path);
            problems++;
        } else {
            cv_ini_parse(path, text, handle, c, report_stderr, &problems);
        }
        free(text);
    } else if (file_opt || errno != ENOENT) {
        cv_err("cannot read config %s: %s", path, strerror(errno));
        problems++;
        free(path);
    } else {
        free(path);
    }
    char **paths[] = {&c->policy_file, &c->keyring_file, &c->datakeys_file,
                      &c->db_file,
                      &c->deadletter_dir, &c->run_dir, &c->spool_dir,
                      &c->backup_dir, &c->journal_dir, &c->archive_dir,
                      &c->sync_key_file};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        char *r = resolve(c->home, *paths[i]);
        free(*paths[i]);
        *paths[i] = r;
    }
    if (c->erasure_notify) { /* a program, never a shell line */
        char *r = resolve(c->home, c->erasure_notify);
        free(c->erasure_notify);
        c->erasure_notify = r;
    }
    char **eps[] = {&c->ep_ingest, &c->ep_encrypt, &c->ep_store, &c->ep_acks,
                    &c->ep_control, &c->ep_metrics};
    for (size_t i = 0; i < sizeof eps / sizeof *eps; i++)
        resolve_ipc(c->home, eps[i]);
    resolve_ipc(c->home, &c->sync_listen);
    for (int i = 0; i < c->nsync_peers; i++)
        resolve_ipc(c->home, &c->sync_peers[i].endpoint);
    const char *source = c->config_file ? c->config_file
                                        : "built-in configuration";
    problems += check_plain_tcp(c, source);
    problems += check_sync(c, source);
    /* every program loads its config before its keyring: this one place
     * says where a passphrase comes from */
    cv_config_set_key_command(c->key_command);
    return problems;
}

int cv_config_check_text(const char *source, const char *text)
{
    cv_config c;
    memset(&c, 0, sizeof c);
    /* over the built-in defaults, as a program would read it: so only a
     * "curve = no" counts, and retry_min is compared with the default
     * retry_max when the text sets only one of them */
    int dummy = 0;
    cv_ini_parse("built-in defaults", cv_default_config_text, handle, &c,
              report_stderr, &dummy);
    int problems = 0;
    cv_ini_parse(source, text, handle, &c, report_stderr, &problems);
    problems += check_plain_tcp(&c, source);
    problems += check_sync(&c, source);
    c.home = cv_strdup("/");
    cv_config_free(&c);
    return problems;
}

int cv_config_load_instance(cv_config *c, const char *home_opt, const char *file_opt)
{
    int problems = cv_config_load(c, home_opt, file_opt);
    if (!c->config_file && access(c->keyring_file, F_OK) < 0 && errno == ENOENT) {
        cv_err("no ctxvault instance at %s: run `ctxvault init` to create it "
               "(or name another with --home or CTXVAULT_HOME)", c->home);
        problems++;
    }
    return problems;
}

void cv_config_free(cv_config *c)
{
    free(c->home);
    free(c->config_file);
    free(c->policy_file);
    free(c->keyring_file);
    free(c->datakeys_file);
    free(c->db_file);
    free(c->deadletter_dir);
    free(c->run_dir);
    free(c->spool_dir);
    free(c->backup_dir);
    free(c->journal_dir);
    free(c->archive_dir);
    free(c->key_command);
    free(c->quota_notify);
    free(c->erasure_notify);
    free(c->source);
    free(c->ep_ingest);
    free(c->ep_encrypt);
    free(c->ep_store);
    free(c->ep_acks);
    free(c->ep_control);
    free(c->ep_metrics);
    free(c->metrics_listen);
    free(c->metrics_textfile);
    free(c->sync_device);
    free(c->sync_listen);
    cv_sync_peer *lists[] = {c->sync_peers, c->sync_allow};
    int counts[] = {c->nsync_peers, c->nsync_allow};
    for (int l = 0; l < 2; l++) {
        for (int i = 0; i < counts[l]; i++) {
            free(lists[l][i].name);
            free(lists[l][i].endpoint);
            free(lists[l][i].key);
        }
        free(lists[l]);
    }
    free(c->sync_key_file);
    memset(c, 0, sizeof *c);
}

int64_t cv_config_stage_max_line(const cv_config *c)
{
    return c->max_line * 2 + 65536;
}

/* ---- the key command ---------------------------------------------------- */

static pthread_mutex_t g_key_lock = PTHREAD_MUTEX_INITIALIZER;
static char *g_key_command;           /* the config's text; not a secret */
static unsigned long g_key_changes;   /* the keyring drops a passphrase it
                                         remembered under another count */

void cv_config_set_key_command(const char *cmd)
{
    if (cmd && !*cmd)
        cmd = NULL;
    pthread_mutex_lock(&g_key_lock);
    bool same = (!cmd && !g_key_command) ||
                (cmd && g_key_command && strcmp(cmd, g_key_command) == 0);
    if (!same) {
        free(g_key_command);
        g_key_command = cmd ? cv_strdup(cmd) : NULL;
        g_key_changes++;
    }
    pthread_mutex_unlock(&g_key_lock);
}

unsigned long cv_config_key_command(char **cmd)
{
    pthread_mutex_lock(&g_key_lock);
    if (cmd)
        *cmd = g_key_command ? cv_strdup(g_key_command) : NULL;
    unsigned long n = g_key_changes;
    pthread_mutex_unlock(&g_key_lock);
    return n;
}
