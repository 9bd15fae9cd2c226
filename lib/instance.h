/* instance.h - creating an instance: its directories (0700), config,
 * policy and keyring (0600), and an empty database. Idempotent: what exists
 * is kept, keys are never overwritten. */
#ifndef CV_INSTANCE_H
#define CV_INSTANCE_H

#include "config.h"

/* Create what is missing under cfg->home, saying what it did on stdout.
 * Returns 0 or a sysexits status (the reason is logged). */
int cv_instance_init(const cv_config *cfg);

#endif
