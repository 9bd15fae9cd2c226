/* sweep.h - one run of ctxvault-ttl-sweep: delete what is past its
 * retention, batch by batch through store (or under the writer lock when
 * no store runs), then compact the files and record the run in the audit
 * trail. A dry run only counts, on a read-only connection. */
#ifndef CV_SWEEP_H
#define CV_SWEEP_H

#include "base/config.h"
#include "ops/maintprog.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>


/* Run once. *result gets a JSON object (deleted or would_delete, by_kind,
 * audit entries expired, model cache entries expired (cache_expired), ms,
 * backlog, rows_per_s); the caller prints it.
 * Returns 0, or a sysexits status with the reason logged. A stop request
 * (SIGTERM) ends the run after the batch in flight, recorded as it is. */
int cv_sweep_run(const cv_config *cfg, const cv_run_opts *o,
                 json_t **result);

#endif
