/* test_backoff.c - retry back-off (lib/base/backoff.h): bounds, doubling,
 * reset, and jitter. */
#include "harness.h"

#include "base/backoff.h"

/* The upper bound of attempt n's delay, as documented. */
static int64_t upper_of(int64_t min, int64_t max, int n)
{
    int64_t u = min;
    for (int i = 0; i < n && u < max; i++)
        u *= 2;
    return u < max ? u : max;
}

TEST(backoff_delays_stay_within_bounds)
{
    cv_backoff b;
    cv_backoff_init(&b, 200, 30000);
    CHECK(cv_backoff_due(&b, 0));
    int64_t now = 1000000;
    for (int n = 0; n < 40; n++) {
        int64_t d = cv_backoff_fail(&b, now);
        if (d < 200 || d > upper_of(200, 30000, n))
            cvt_fail(__FILE__, __LINE__, "attempt %d: delay %lld outside "
                     "[200, %lld]", n, (long long)d,
                     (long long)upper_of(200, 30000, n));
        CHECK_INT(b.next_at, now + d);
        CHECK(!cv_backoff_due(&b, now + d - 1));
        CHECK(cv_backoff_due(&b, now + d));
        now += d;
    }
    /* the first failure waits exactly min */
    cv_backoff_init(&b, 200, 30000);
    CHECK_INT(cv_backoff_fail(&b, 0), 200);
}

TEST(backoff_upper_bound_doubles_until_max)
{
    /* the largest of many draws at each attempt approaches the bound:
     * 100, 200, 400, 800, then 1000 (max) from there on */
    const int64_t want[] = {100, 200, 400, 800, 1000, 1000, 1000};
    int64_t seen[7] = {0};
    for (int round = 0; round < 300; round++) {
        cv_backoff b;
        cv_backoff_init(&b, 100, 1000);
        for (int n = 0; n < 7; n++) {
            int64_t d = cv_backoff_fail(&b, 0);
            CHECK(d >= 100 && d <= want[n]);
            if (d > seen[n])
                seen[n] = d;
        }
    }
    for (int n = 0; n < 7; n++)
        if (seen[n] < want[n] - want[n] / 10)
            cvt_fail(__FILE__, __LINE__, "attempt %d: largest delay %lld, "
                     "expected near %lld", n, (long long)seen[n],
                     (long long)want[n]);
    /* no overflow after very many failures */
    cv_backoff b;
    cv_backoff_init(&b, 1, 3600000);
    for (int n = 0; n < 10000; n++) {
        int64_t d = cv_backoff_fail(&b, 0);
        CHECK(d >= 1 && d <= 3600000);
    }
}

TEST(backoff_ok_resets)
{
    cv_backoff b;
    cv_backoff_init(&b, 50, 5000);
    for (int n = 0; n < 10; n++)
        cv_backoff_fail(&b, 0);
    CHECK(!cv_backoff_due(&b, 10));
    cv_backoff_ok(&b);
    CHECK_INT(b.attempt, 0);
    CHECK(cv_backoff_due(&b, 10));
    CHECK_INT(cv_backoff_fail(&b, 10), 50); /* from min again */
}

TEST(backoff_jitter_varies)
{
    cv_backoff b;
    cv_backoff_init(&b, 100, 100000);
    for (int n = 0; n < 8; n++)
        cv_backoff_fail(&b, 0); /* bound now 100 * 2^8 */
    int64_t first = cv_backoff_fail(&b, 0);
    int differ = 0;
    for (int n = 0; n < 50; n++) {
        cv_backoff_ok(&b);
        for (int i = 0; i < 8; i++)
            cv_backoff_fail(&b, 0);
        if (cv_backoff_fail(&b, 0) != first)
            differ++;
    }
    CHECK(differ > 0);
}

TEST(backoff_odd_bounds)
{
    cv_backoff b;
    cv_backoff_init(&b, 0, -5); /* min at least 1, max at least min */
    CHECK_INT(b.min_ms, 1);
    CHECK_INT(b.max_ms, 1);
    CHECK_INT(cv_backoff_fail(&b, 0), 1);
    CHECK_INT(cv_backoff_fail(&b, 0), 1);
    cv_backoff_init(&b, 300, 300);
    for (int n = 0; n < 5; n++)
        CHECK_INT(cv_backoff_fail(&b, 7), 300);
    CHECK_INT(b.next_at, 307);
}
