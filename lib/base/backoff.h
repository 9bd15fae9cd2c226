/* backoff.h - when to try again after a failure: exponential back-off
 * with "full jitter", so peers that failed together (a relay restarting)
 * do not all come back at the same moment. */
#ifndef CV_BACKOFF_H
#define CV_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t min_ms, max_ms; /* the bounds of a delay */
    int attempt;            /* failures since the last success */
    int64_t next_at;        /* the next attempt is due then (ms, caller's clock) */
} cv_backoff;

/* Start with no failure: due at once. min_ms is at least 1; a max_ms below
 * it is taken as min_ms. */
void cv_backoff_init(cv_backoff *b, int64_t min_ms, int64_t max_ms);

/* A failure at now_ms: the next attempt comes after a delay drawn
 * uniformly from [min, min(max, min * 2^attempt)] (the first failure
 * waits min). Returns the delay. */
int64_t cv_backoff_fail(cv_backoff *b, int64_t now_ms);

/* A success: the next failure starts again from min; due at once. */
void cv_backoff_ok(cv_backoff *b);

/* Is the next attempt due at now_ms? */
bool cv_backoff_due(const cv_backoff *b, int64_t now_ms);

#endif
