/* ingest.h - ctxvault-ingest: the --stdout filter (each line validated
 * and given an id, or dead-lettered) and two socket modes, on top of the
 * sender (spool, window, acks):
 *
 *   client   read FILEs or stdin, validate each line as the --stdout filter
 *            does, send the accepted events into the running pipeline and
 *            return once store has answered every one of them;
 *   service  accept producers' events on a ROUTER socket (wire.h
 *            "produce"), answer each message once its accepted lines are
 *            in the spool and synced, deliver them, and on SIGTERM drain.
 *
 * Either way an accepted event is in the spool before it is sent, and
 * stays there until store acknowledges it: a killed ingest loses nothing,
 * and the next one with the same source resends what was left. */
#ifndef CV_INGEST_H
#define CV_INGEST_H

#include "base/config.h"
#include "net/deadletter.h"
#include "base/event.h"
#include "net/program.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const cv_config *cfg;
    cv_event_rules rules;
    cv_deadletter *dl;
    const struct cv_keyring *kr; /* seals the spool */
    const char *source;  /* names the spool (spool_dir/SOURCE) and the acks */
    int64_t timeout_ms;  /* client: give up after this long; 0 never */
    int64_t drain_ms;    /* service: wait this long for acks on SIGTERM */
    bool quiet;
    struct cv_metrics *mx; /* reported to ctxvault-metrics (may be NULL) */
} cv_ingest_opts;

/* Client mode over the named files ("-" is stdin; none: stdin). Returns
 * the exit status: 0 every accepted event acknowledged, 65 lines rejected
 * (here or downstream), 66 an input missing, 75 timed out or interrupted
 * with events unacknowledged (they stay in the spool), 74 spool or socket
 * failure. */
int cv_ingest_client(const cv_ingest_opts *o, char **files, int nfiles);

/* Service mode: runs until SIGTERM/SIGINT, then drains. 0, or a sysexits
 * status when the spool or a socket fails. */
int cv_ingest_serve(const cv_ingest_opts *o);

/* ctxvault-ingest's own options. */
typedef struct {
    bool to_stdout, serve;
    const char *source, *kind;
    int64_t timeout_ms, drain_ms;
} cv_ingest_args;

/* --timeout, --drain: plain seconds, or a duration such as 500ms or 2m,
 * into the int64_t target in ms (cv_program_opt's parse). */
bool cv_ingest_parse_seconds(const char *opt, const char *arg, void *target);
/* The options and the operands together (cv_program's check). */
int cv_ingest_check(const cv_program_env *e, void *args);
/* ctxvault-ingest's run (cv_program's, with the keyring): the --stdout
 * filter, the client or the service. */
int cv_ingest_main(cv_program_env *e, void *args);

#endif
