/* backoff.c - exponential back-off with full jitter (libsodium's random
 * numbers: no seeding, no modulo bias). */
#include "base/backoff.h"

#include <sodium.h>

void cv_backoff_init(cv_backoff *b, int64_t min_ms, int64_t max_ms)
{
    b->min_ms = min_ms < 1 ? 1 : min_ms;
    b->max_ms = max_ms < b->min_ms ? b->min_ms : max_ms;
    b->attempt = 0;
    b->next_at = 0;
}

int64_t cv_backoff_fail(cv_backoff *b, int64_t now_ms)
{
    /* the upper bound doubles per failure until max; doubling stops there,
     * so neither the shift nor the product can overflow */
    int64_t upper = b->min_ms;
    for (int i = 0; i < b->attempt && upper < b->max_ms; i++)
        upper *= 2;
    if (upper > b->max_ms)
        upper = b->max_ms;
    if (upper < b->max_ms)
        b->attempt++;
    int64_t span = upper - b->min_ms;
    if (span > (int64_t)UINT32_MAX - 1)
        span = (int64_t)UINT32_MAX - 1;
    /* randombytes_uniform is thread-safe after sodium_init, which is
     * idempotent: call it so a program that uses no other crypto works */
    if (sodium_init() < 0)
        span = 0;
    int64_t delay = b->min_ms +
                    (span > 0 ? (int64_t)randombytes_uniform((uint32_t)span + 1) : 0);
    b->next_at = now_ms + delay;
    return delay;
}

void cv_backoff_ok(cv_backoff *b)
{
    b->attempt = 0;
    b->next_at = 0;
}

bool cv_backoff_due(const cv_backoff *b, int64_t now_ms)
{
    return now_ms >= b->next_at;
}
