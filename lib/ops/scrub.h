/* scrub.h - removing personal data from rows past their scrub age.
 *
 * One run of ctxvault-scrub reads the due rows (scrub_after passed,
 * scrubbed_at empty) on a read-only connection, applies the policy's
 * [scrub fields] rules to each body, and hands the new bodies to store as
 * conditional updates (maint op "scrub"): store applies a row only when
 * its checksum is still the one read, so a rectification or erasure in
 * between is never overwritten; such a row is read again and retried.
 * Each batch is one transaction with its audit entry. A dry run only
 * reports, per kind, which fields of how many rows would change.
 *
 * The body transform is the policy's (cv_policy_scrub_body), which store
 * shares (anonymous users' rows are scrubbed on arrival), as does
 * `ctxvault verify --scrub` here, which checks that nothing due is left
 * and that every scrubbed row is a fixed point of the rules. */
#ifndef CV_SCRUB_H
#define CV_SCRUB_H

#include "base/config.h"
#include "storage/db.h"
#include "crypto/keyring.h"
#include "privacy/policy.h"
#include "ops/maintprog.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Run once. *result gets a JSON object: scrubbed (or would_scrub),
 * by_kind {KIND: {rows, fields: {PATH: {op, rows}}}}, fields_by_operator,
 * conflicts (rows changed under the run and retried), failed, ms,
 * rows_per_s and backlog (rows due but not scrubbed). Returns 0, or a
 * sysexits status with the reason logged; EX_DATAERR when a row could not
 * be scrubbed (named on stderr). SIGTERM ends the run after the batch in
 * flight. */
int cv_scrub_run(const cv_config *cfg, const cv_run_opts *o,
                 json_t **result);

/* For `ctxvault verify --scrub`: every row due at now is scrubbed, and
 * every scrubbed row is a fixed point of the rules. Problems are named on
 * stderr; a summary line goes to out. 0, EX_DATAERR, or another sysexits
 * status when the rows cannot be read. */
int cv_scrub_verify(cv_db *db, const cv_policy *pol, const cv_keyring *kr,
                    int64_t now, FILE *out);

#endif
