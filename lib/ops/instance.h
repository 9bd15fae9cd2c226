/* instance.h - creating an instance: its directories (0700), config,
 * policy and keyring (0600), and an empty database. Idempotent: what exists
 * is kept, keys are never overwritten. */
#ifndef CV_INSTANCE_H
#define CV_INSTANCE_H

#include "base/config.h"

#include <stdbool.h>
#include <stddef.h>

/* Create what is missing under cfg->home, saying what it did on stdout.
 * Returns 0 or a sysexits status (the reason is logged). */
int cv_instance_init(const cv_config *cfg);

/* The instance's id: CV_INSTANCE_ID_LEN random hex digits kept in
 * HOME/instance-id, so that ctxvault status and ctxvault-metrics can tell
 * two instances on one host apart. init makes it; an instance made before
 * ids existed gets one on first use (create), and two first uses at once
 * agree on one. 0, or -1 with a reason. */
#define CV_INSTANCE_ID_LEN 16
int cv_instance_id(const cv_config *cfg, bool create,
                   char out[CV_INSTANCE_ID_LEN + 1], char *err, size_t errlen);

#endif
