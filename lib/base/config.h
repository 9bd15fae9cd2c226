/* config.h - an instance's settings: where its files live and how its
 * programs behave. Defaults are built in; CTXVAULT_HOME/ctxvault.conf (or
 * -c FILE) overrides them. */
#ifndef CV_CONFIG_H
#define CV_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

/* check_checksums: when store checks every row's keyed checksum. */
enum {
    CV_CHECKSUMS_NO,          /* never */
    CV_CHECKSUMS_YES,         /* before anything is acknowledged; a mismatch stops store */
    CV_CHECKSUMS_BACKGROUND,  /* the service: beside its work, degrading health */
};

/* [store] synchronous: what a commit has made durable before store
 * acknowledges it (DURABILITY.md). */
enum {
    CV_SYNC_NORMAL,   /* nothing: a power cut can lose the last commits */
    CV_SYNC_JOURNAL,  /* the journal's record (fdatasync); the WAL is
                         synced at checkpoints and a restart replays what
                         it lost from the journal */
    CV_SYNC_FULL,     /* the journal's record and the WAL (SQLite FULL) */
};

/* How a maintenance service runs: [sweep], [scrub]. */
typedef struct {
    int64_t interval_ms;  /* between runs of the service */
    int batch;            /* rows per transaction */
    int64_t pause_ms;     /* between batches, so writers get their turn */
} cv_schedule;

/* The rules of user.segment ([segments]; lib/ops/segment.h applies them). */
typedef struct {
    int64_t window_ms;        /* interactions are counted over this window */
    int64_t dormant_ms;       /* none for this long: dormant */
    int64_t new_ms;           /* first interaction this recent: new */
    int64_t power_count;      /* at least this many in the window ... */
    int64_t power_types;      /* ... of at least this many types: power */
    int64_t regular_count;    /* at least this many in the window: regular */
    int64_t stale_ms;         /* a stored segment older than this is redone */
} cv_segment_rules;

/* A sync peer ([sync] peer.NAME = ENDPOINT HEXKEY), or a client that may
 * connect ([sync] allow.NAME = HEXKEY; endpoint NULL). */
typedef struct {
    char *name;           /* 1..32 of [A-Za-z0-9._-] */
    char *endpoint;       /* tcp:// or ipc:// (absolute), or NULL */
    char *key;            /* its CURVE public key: 64 hex chars */
} cv_sync_peer;

typedef struct {
    char *home;           /* the instance directory */
    char *config_file;    /* the file read, or NULL for built-in defaults */
    /* paths, absolute after loading */
    char *policy_file;
    char *keyring_file;
    char *datakeys_file;  /* per-user and hourly data keys (datakeys.h) */
    char *db_file;
    char *deadletter_dir;
    char *run_dir;
    char *spool_dir;
    char *backup_dir;
    char *journal_dir;    /* the replay journal (lib/storage/journal.h) */
    char *archive_dir;    /* ctxvault-backup archive's files */
    /* keys */
    char *key_command;    /* prints a sealed keyring's passphrase, or NULL */
    char *erasure_notify; /* run after each erasure with its receipt on
                             stdin (absolute), or NULL */
    /* ingest */
    int64_t max_line;     /* bytes */
    int max_depth;
    /* store */
    int sync_mode;        /* CV_SYNC_* */
    int batch_size;
    int64_t batch_ms;
    bool commit_when_idle;/* socket mode: commit once no more events wait */
    int wal_autocheckpoint;
    int64_t journal_size_limit;
    int busy_timeout_ms;
    int64_t cache_size;   /* bytes */
    bool check_integrity; /* full integrity_check on start, not quick_check */
    int check_checksums;  /* CV_CHECKSUMS_*: every row's checksum after a start */
    int64_t checksum_rate;/* the background pass's rows per second (0: no limit) */
    bool journal;         /* keep the replay journal */
    int64_t journal_segment; /* bytes per journal segment file */
    /* [storage]: the database's quota (lib/storage/quota.h) */
    int64_t quota;        /* bytes; 0: no quota */
    int quota_threshold;  /* percent of quota that starts an archive */
    int64_t quota_keep_ms;/* rows younger than this are never auto-archived */
    char *quota_notify;   /* run with /bin/sh -c, the event on stdin; or NULL */
    cv_schedule sweep;    /* ctxvault-ttl-sweep */
    cv_schedule scrub;    /* ctxvault-scrub */
    cv_segment_rules segments; /* user.segment */
    int64_t backup_interval_ms; /* between backups of the service */
    int backup_daily;     /* prune keeps the newest verified backup of */
    int backup_monthly;   /* each of the last N days and N months */
    /* pipeline: ZeroMQ endpoints, absolute after loading (an ipc:// path
     * is taken from the instance directory) */
    char *source;         /* this ingest's name: the topic of its acks */
    char *ep_ingest;      /* producers -> ingest (ingest binds) */
    char *ep_encrypt;     /* ingest -> encrypt (encrypt binds, PULL) */
    char *ep_store;       /* encrypt -> store (store binds, PULL) */
    char *ep_acks;        /* store -> ingest acks (store binds, PUB) */
    char *ep_control;     /* requests to store (store binds, ROUTER) */
    char *ep_metrics;     /* every program -> ctxvault-metrics (it binds, SUB) */
    int window;           /* events in flight per ingest */
    int send_batch;       /* events per message */
    int64_t resend_ms;    /* first resend; doubles up to 30 s */
    int64_t spool_sync_ms;/* group commit: fsync at most this often */
    int curve;            /* 1 on, 0 off, -1 auto (on for tcp://) */
    bool allow_plain_tcp; /* tcp:// without CURVE is refused unless yes */
    bool control_decrypt; /* the context API may decrypt for its callers */
    bool per_user_keys;   /* [keys] data_keys = user */
    /* metrics */
    int64_t metrics_interval_ms; /* between a program's reports */
    int64_t metrics_stale_ms;    /* a service silent this long is down */
    char *metrics_listen;        /* ctxvault-metrics' HTTP: ADDRESS:PORT */
    char *metrics_textfile;      /* node_exporter textfile, or NULL */
    int64_t anomaly_window_ms;   /* rejections are counted over this */
    int anomaly_percent;         /* more of the events rejected: anomaly */
    int64_t anomaly_min_events;  /* fewer events in the window: none */
    /* sync: ctxvault-sync, between instances over CURVE with pinned keys */
    char *sync_device;    /* this instance's device id, or NULL: not a device */
    bool sync_relay;      /* stores and forwards what it cannot read */
    char *sync_listen;    /* where ctxvault-sync binds for peers, or NULL */
    cv_sync_peer *sync_peers;  /* peer.NAME = ENDPOINT HEXKEY: connect to */
    int nsync_peers;
    cv_sync_peer *sync_allow;  /* allow.NAME = HEXKEY: may connect to listen */
    int nsync_allow;
    char *sync_key_file;  /* the end-to-end sync key (absolute) */
    int64_t sync_wait_ms; /* how long a pull waits for news (long poll) */
    int64_t sync_retry_min_ms; /* back-off between failed attempts */
    int64_t sync_retry_max_ms;
    int sync_batch;       /* versions per message */
} cv_config;

/* The commented default configuration that `ctxvault init` writes. */
extern const char cv_default_config_text[];

/* Resolve the instance (home_opt, else $CTXVAULT_HOME, else ~/.ctxvault)
 * and load file_opt, else HOME/ctxvault.conf when present, else defaults.
 * On a problem, reports each as "FILE:LINE: reason" on stderr and returns
 * the number of problems (the config is still usable with defaults). */
int cv_config_load(cv_config *c, const char *home_opt, const char *file_opt);
/* cv_config_load for a program that needs an instance: where there is
 * neither a config file nor a keyring, one problem more, reported the same
 * way by every program ("no ctxvault instance at HOME: run `ctxvault init`
 * ..."), instead of whichever file it happens to open first. */
int cv_config_load_instance(cv_config *c, const char *home_opt, const char *file_opt);
void cv_config_free(cv_config *c);

/* The longest line encrypt and store accept: an event ingest accepted
 * grows when encrypted (base64, envelopes), so the later stages allow for
 * that instead of rejecting what ingest let through. */
int64_t cv_config_stage_max_line(const cv_config *c);

/* Only check a config file's text; reports problems. Used by config check. */
int cv_config_check_text(const char *source, const char *text);

/* Where a sealed keyring's passphrase comes from, process-wide: the
 * [keys] key_command of the configuration loaded last (cv_config_load
 * sets it; NULL or "": none). It is kept here, below the keyring, which
 * asks for it when it needs a passphrase (crypto/keyring.h says how it is
 * run). get: the number of times the command has changed, and, when cmd
 * is not NULL, *cmd the command (malloc'ed; NULL: none). */
void cv_config_set_key_command(const char *cmd);
unsigned long cv_config_key_command(char **cmd);

#endif
