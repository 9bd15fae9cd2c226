/* harness.h - the C unit test harness. Each TEST runs in its own forked
 * child, so a crash or sanitizer report fails that test and the run goes
 * on. main.c prints "ok"/"not ok" per test and a closing
 * "N passed, N failed". */
#ifndef CVT_HARNESS_H
#define CVT_HARNESS_H

#include <stdint.h>
#include <string.h>

typedef void (cvt_fn)(void);
void cvt_register(const char *name, cvt_fn *fn, const char *file);
void cvt_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A fresh 0700 directory for this test (removed afterwards). */
const char *cvt_tmpdir(void);

#define TEST(name)                                                        \
    static void name(void);                                               \
    __attribute__((constructor)) static void cvt_reg_##name(void)         \
    {                                                                     \
        cvt_register(#name, name, __FILE__);                              \
    }                                                                     \
    static void name(void)

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            cvt_fail(__FILE__, __LINE__, "check failed: %s", #cond);      \
            return;                                                       \
        }                                                                 \
    } while (0)

#define CHECK_INT(a, b)                                                   \
    do {                                                                  \
        long long cvt_a = (long long)(a), cvt_b = (long long)(b);         \
        if (cvt_a != cvt_b) {                                             \
            cvt_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", \
                     #a, cvt_a, #b, cvt_b);                               \
            return;                                                       \
        }                                                                 \
    } while (0)

#define CHECK_STR(a, b)                                                   \
    do {                                                                  \
        const char *cvt_a = (a), *cvt_b = (b);                            \
        if (!cvt_a || !cvt_b || strcmp(cvt_a, cvt_b) != 0) {              \
            cvt_fail(__FILE__, __LINE__, "%s is \"%s\", expected \"%s\"", \
                     #a, cvt_a ? cvt_a : "(null)", cvt_b ? cvt_b : "(null)"); \
            return;                                                       \
        }                                                                 \
    } while (0)

#endif
