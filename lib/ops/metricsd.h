/* metricsd.h - ctxvault-metrics: every program's reports collected
 * (collect.h) and served over HTTP (/metrics, /health, /status), and as a
 * node_exporter textfile when asked. */
#ifndef CV_METRICSD_H
#define CV_METRICSD_H

#include "net/program.h"

#include <stdbool.h>

/* The services health waits for unless told otherwise. */
#define CV_METRICSD_EXPECT "ctxvault-ingest ctxvault-encrypt ctxvault-store " \
                           "ctxvault-ttl-sweep ctxvault-scrub ctxvault-backup"

/* ctxvault-metrics' own options (NULL: the configuration's). */
typedef struct {
    const char *listen, *textfile;
    const char *expect;  /* CV_METRICSD_EXPECT by default */
    bool once;
} cv_metricsd_args;

/* --list: every metric ctxvault exports on stdout; 0 or EX_IOERR. */
int cv_metricsd_list(void);
/* ctxvault-metrics' run (cv_program's). */
int cv_metricsd_main(cv_program_env *e, void *args);

#endif
