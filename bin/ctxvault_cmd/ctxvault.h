/* ctxvault.h - what the ctxvault command's files share: the context a
 * handler runs in, what it may open, and the handlers that main.c's
 * command table names. Internal to bin/ctxvault_cmd/. */
#ifndef CTXVAULT_CMD_H
#define CTXVAULT_CMD_H

#include "base/config.h"
#include "crypto/datakeys.h"
#include "crypto/keyring.h"
#include "ctxvault/cvclient.h"
#include "net/control.h"
#include "ops/session.h"
#include "privacy/policy.h"
#include "storage/db.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* What a command opens: its row in the command table says which, main
 * loads the configuration before the handler runs, and the handler opens
 * the rest, after its arguments parse, with the functions below (each
 * refuses what its row does not name). Bits; any but NEEDS_CONFIG also
 * means the instance's configuration. */
enum {
    NEEDS_NOTHING  = 0,      /* not even the configuration: help */
    NEEDS_CONFIG   = 1 << 0, /* the configuration, built-in with no instance */
    NEEDS_INSTANCE = 1 << 1, /* the instance's configuration (78 without one) */
    NEEDS_READER   = 1 << 2, /* keyring, data keys, maybe the policy, and a
                                read-only connection: need_reader */
    NEEDS_WRITER   = 1 << 3, /* a writer session (store's, or the writer
                                lock): need_writer, change */
    NEEDS_CLIENT   = 1 << 4, /* a connection to the running store: the
                                client library's (need_client), or its
                                control socket's (need_control) */
};

typedef struct {
    int needs;               /* the command's row's NEEDS_ bits */
    cv_config cfg;
    cv_keyring *kr;
    cv_datakeys *ds;         /* to open fields under data keys, when there are any */
    cv_policy *pol;
    cv_db *db;
    const char *home, *conf; /* as given, for the client library */
} cmd_ctx;

typedef int cmd_fn(cmd_ctx *c, int argc, char **argv);

/* --- opening (common.c) ------------------------------------------------ */

/* Keyring, data keys, the policy (need_policy) and a read-only
 * connection into c; 0 or the exit status, the reason logged. */
int need_reader(cmd_ctx *c, bool need_policy);
/* A writer session; NULL with *status set, the reason logged. */
cv_session *need_writer(cmd_ctx *c, int *status);
/* One change request with the actor added, through a session of its own;
 * its reply in *reply_out when ok, else the exit status, logged. */
int change(cmd_ctx *c, json_t *req, json_t **reply_out);
/* A client of the running store; NULL, logged, when there is none. */
cv_client *need_client(cmd_ctx *c);
/* store's control socket, when a store answers within wait_ms; else NULL. */
cv_control *need_control(cmd_ctx *c, int wait_ms);
/* The exit status for a client call's outcome: store's error code mapped
 * to sysexits, with the message on stderr. */
int client_status(cv_client *cl, int rc);

/* --- the little things handlers share (common.c) ---------------------- */

/* text and a newline on stdout, then text freed (NULL: nothing); 0 or
 * EX_IOERR. */
int print_line(char *text);
/* v as an RFC 3339 time into *ms; false, logged naming opt, when it is not. */
bool parse_time_opt(const char *opt, const char *v, int64_t *ms);
/* All of stdin as text, or NULL (logged: reading what failed). */
char *read_stdin(const char *what);
/* arg itself, or stdin's text when arg is "-" (NULL, logged, when stdin
 * cannot be read). */
char *read_arg_or_stdin(const char *arg, const char *what);

/* --- the handlers, by area ------------------------------------------------ */

/* data.c: what is stored, and changes to it */
cmd_fn cmd_query, cmd_get, cmd_export, cmd_delete, cmd_rectify, cmd_verify,
    cmd_audit, cmd_stats;
/* keys.c: the keyring, its passphrase, rewrap, retire */
cmd_fn cmd_keys;
/* context.c: the context API, through the client library */
cmd_fn cmd_context, cmd_interactions, cmd_profile, cmd_segment, cmd_cache,
    cmd_meta, cmd_api;
/* admin.c: the instance, its configuration and its health */
cmd_fn cmd_init, cmd_config, cmd_status, cmd_compact, cmd_deadletter;
/* sync.c: sync's state and conflicts (doc/SYNC.md) */
cmd_fn cmd_sync, cmd_conflicts;

#endif
