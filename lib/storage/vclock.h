/* vclock.h - version vectors and a hybrid logical clock, for syncing a
 * user's contexts between devices. Pure: no database, no sockets.
 *
 * A version vector maps device names to counters (1 to 2^53): how many
 * writes of each device a version has seen. Two versions are ordered when
 * one vector is pointwise <= the other; otherwise they are concurrent and
 * must be merged (merge.h). The vector is a sorted array in a fixed
 * struct, so it needs no allocation. Its canonical text is
 * {"a":3,"b":1}: keys sorted bytewise, no spaces, no zero counters.
 *
 * The hybrid logical clock (Kulkarni et al., "Logical physical clocks")
 * stamps each write of a field: (wall ms << 16) | logical, so stamps
 * follow the wall clock while it moves forward and still increase when
 * it stands still or goes back. */
#ifndef CV_VCLOCK_H
#define CV_VCLOCK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_DEVICE_MAX 32   /* characters in a device name */
#define CV_VCLOCK_MAX 64   /* entries in a version vector */
#define CV_VCLOCK_N_MAX (INT64_C(1) << 53) /* a counter JSON keeps exact */

typedef struct {
    char dev[CV_DEVICE_MAX + 1];
    int64_t n;
} cv_vc_entry;

typedef struct {
    size_t len;
    cv_vc_entry e[CV_VCLOCK_MAX]; /* sorted by dev (strcmp), n >= 1 */
} cv_vclock;

typedef enum {
    CV_VC_EQUAL,
    CV_VC_BEFORE,     /* a < b: b has seen everything a has, and more */
    CV_VC_AFTER,      /* a > b */
    CV_VC_CONCURRENT, /* each has seen a write the other has not */
} cv_vc_order;

/* 1 to CV_DEVICE_MAX characters of A-Z, a-z, 0-9, '.', '_' and '-'. */
bool cv_vclock_device_name_ok(const char *name);

/* The empty vector. */
void cv_vclock_init(cv_vclock *v);
/* The device's counter; 0 when absent. */
int64_t cv_vclock_get(const cv_vclock *v, const char *dev);
/* Set the device's counter; n == 0 removes the entry. -1 (v unchanged)
 * for a bad name, n < 0 or n > 2^53, or a new device when v is full. */
int cv_vclock_set(cv_vclock *v, const char *dev, int64_t n);
/* into = the pointwise max of into and other. -1 (into unchanged) when
 * the result would have more than CV_VCLOCK_MAX entries. */
int cv_vclock_join(cv_vclock *into, const cv_vclock *other);
/* How a stands to b. */
cv_vc_order cv_vclock_compare(const cv_vclock *a, const cv_vclock *b);
/* The order's name: "equal", "before", "after" or "concurrent". */
const char *cv_vclock_order_name(cv_vc_order o);

/* The canonical text into buf (NUL-terminated, truncated to len - 1
 * bytes); like snprintf, returns the length it needs without the NUL. */
size_t cv_vclock_format(const cv_vclock *v, char *buf, size_t len);
/* Parse len bytes of text (keys in any order). -1 with a reason in err
 * for anything but a JSON object of at most CV_VCLOCK_MAX good device
 * names, each once, to integers from 1 to 2^53, with nothing after it. */
int cv_vclock_parse(cv_vclock *v, const char *text, size_t len, char *err,
                    size_t errlen);
/* The vector as a new JSON object. */
json_t *cv_vclock_to_json(const cv_vclock *v);
/* From a JSON object, with the checks of cv_vclock_parse. */
int cv_vclock_from_json(cv_vclock *v, const json_t *obj, char *err,
                        size_t errlen);

/* ---- hybrid logical clock --------------------------------------------- */

#define CV_HLC_MAX_SKEW_MS 3600000 /* a remote stamp further ahead: logged */

typedef struct {
    uint64_t last; /* the greatest stamp returned or observed; 0 at first */
} cv_hlc;

/* A stamp for a local event at wall-clock time wall_ms: strictly greater
 * than every stamp returned or observed before. When the logical part
 * would pass 16 bits it carries into the ms. (Only a clock that observed
 * UINT64_MAX, a corrupt stamp, stays there.) */
uint64_t cv_vclock_hlc_now(cv_hlc *c, int64_t wall_ms);
/* A stamp received from another device: later cv_vclock_hlc_now calls exceed
 * it. It is observed however far ahead it is, since monotonicity wins,
 * but -1 says it was more than CV_HLC_MAX_SKEW_MS ahead of wall_ms (a
 * clock to log); else 0. */
int cv_vclock_hlc_observe(cv_hlc *c, uint64_t remote, int64_t wall_ms);
/* The physical ms of a stamp. */
int64_t cv_vclock_hlc_ms(uint64_t h);
/* A stamp from ms (negative: 0) and a logical part (its low 16 bits). */
uint64_t cv_vclock_hlc_make(int64_t ms, unsigned logical);

#endif
