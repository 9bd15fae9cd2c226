/* vclock.c - version vectors and the hybrid logical clock (vclock.h). */
#include "storage/vclock.h"

#include <stdio.h>
#include <string.h>

#define HLC_MS_MAX ((INT64_C(1) << 48) - 1) /* what 48 bits of ms hold */

#define BAD(...) (err && errlen ? snprintf(err, errlen, __VA_ARGS__) : 0, -1)

bool cv_vclock_device_name_ok(const char *name)
{
    size_t n = 0;
    if (!name)
        return false;
    for (const char *s = name; *s; s++, n++) {
        char c = *s;
        if (n == CV_DEVICE_MAX ||
            !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return n > 0;
}

void cv_vclock_init(cv_vclock *v) { v->len = 0; }

/* The index of dev, or where it would go (-1 - index) when absent. */
static long find(const cv_vclock *v, const char *dev)
{
    size_t lo = 0, hi = v->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v->e[mid].dev, dev);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1 - (long)lo;
}

int64_t cv_vclock_get(const cv_vclock *v, const char *dev)
{
    long i = find(v, dev);
    return i >= 0 ? v->e[i].n : 0;
}

int cv_vclock_set(cv_vclock *v, const char *dev, int64_t n)
{
    if (!cv_vclock_device_name_ok(dev) || n < 0 || n > CV_VCLOCK_N_MAX)
        return -1;
    long i = find(v, dev);
    if (i >= 0) {
        if (n > 0) {
            v->e[i].n = n;
        } else { /* a zero counter is an absent one: keep the text canonical */
            memmove(&v->e[i], &v->e[i + 1],
                    (v->len - (size_t)i - 1) * sizeof *v->e);
            v->len--;
        }
        return 0;
    }
    if (n == 0)
        return 0;
    if (v->len == CV_VCLOCK_MAX)
        return -1;
    size_t at = (size_t)(-1 - i);
    memmove(&v->e[at + 1], &v->e[at], (v->len - at) * sizeof *v->e);
    strcpy(v->e[at].dev, dev); /* checked: at most CV_DEVICE_MAX */
    v->e[at].n = n;
    v->len++;
    return 0;
}

int cv_vclock_join(cv_vclock *into, const cv_vclock *other)
{
    /* merge the two sorted arrays into a copy, so a failure leaves into
     * as it was */
    cv_vclock out;
    size_t i = 0, j = 0;
    out.len = 0;
    while (i < into->len || j < other->len) {
        int c = i == into->len    ? 1
                : j == other->len ? -1
                                  : strcmp(into->e[i].dev, other->e[j].dev);
        if (out.len == CV_VCLOCK_MAX)
            return -1;
        cv_vc_entry *e = &out.e[out.len++];
        if (c < 0) {
            *e = into->e[i++];
        } else if (c > 0) {
            *e = other->e[j++];
        } else {
            *e = into->e[i];
            if (other->e[j].n > e->n)
                e->n = other->e[j].n;
            i++, j++;
        }
    }
    *into = out;
    return 0;
}

cv_vc_order cv_vclock_compare(const cv_vclock *a, const cv_vclock *b)
{
    bool a_more = false, b_more = false; /* a has a greater count, b has */
    size_t i = 0, j = 0;
    while (i < a->len || j < b->len) {
        int c = i == a->len   ? 1
                : j == b->len ? -1
                              : strcmp(a->e[i].dev, b->e[j].dev);
        if (c < 0) {
            a_more = true, i++;
        } else if (c > 0) {
            b_more = true, j++;
        } else {
            if (a->e[i].n > b->e[j].n)
                a_more = true;
            else if (a->e[i].n < b->e[j].n)
                b_more = true;
            i++, j++;
        }
    }
    if (a_more && b_more)
        return CV_VC_CONCURRENT;
    return a_more ? CV_VC_AFTER : b_more ? CV_VC_BEFORE : CV_VC_EQUAL;
}

const char *cv_vclock_order_name(cv_vc_order o)
{
    switch (o) {
    case CV_VC_EQUAL: return "equal";
    case CV_VC_BEFORE: return "before";
    case CV_VC_AFTER: return "after";
    case CV_VC_CONCURRENT: return "concurrent";
    }
    return "?";
}

size_t cv_vclock_format(const cv_vclock *v, char *buf, size_t len)
{
    /* device names need no escaping, so the text is written directly */
    size_t need = 0;
    char piece[CV_DEVICE_MAX + 32];
    for (size_t i = 0; i <= v->len + 1; i++) {
        int n;
        if (i == 0)
            n = snprintf(piece, sizeof piece, "{");
        else if (i == v->len + 1)
            n = snprintf(piece, sizeof piece, "}");
        else
            n = snprintf(piece, sizeof piece, "%s\"%s\":%lld", i > 1 ? "," : "",
                         v->e[i - 1].dev, (long long)v->e[i - 1].n);
        if (len > need)
            memcpy(buf + need, piece,
                   (size_t)n < len - need ? (size_t)n : len - need);
        need += (size_t)n;
    }
    if (len)
        buf[need < len ? need : len - 1] = '\0';
    return need;
}

int cv_vclock_from_json(cv_vclock *v, const json_t *obj, char *err,
                        size_t errlen)
{
    cv_vclock out;
    cv_vclock_init(&out);
    if (!json_is_object(obj))
        return BAD("version vector is not a JSON object");
    if (json_object_size(obj) > CV_VCLOCK_MAX)
        return BAD("version vector has %zu devices, more than %d",
                   json_object_size(obj), CV_VCLOCK_MAX);
    const char *dev;
    json_t *n;
    json_object_foreach((json_t *)obj, dev, n) {
        if (!cv_vclock_device_name_ok(dev))
            return BAD("version vector: device name '%.40s' is not 1 to %d "
                       "characters of A-Z, a-z, 0-9, '.', '_' and '-'",
                       dev, CV_DEVICE_MAX);
        if (!json_is_integer(n))
            return BAD("version vector: the counter of '%s' is not an "
                       "integer", dev);
        json_int_t c = json_integer_value(n);
        if (c < 1 || c > CV_VCLOCK_N_MAX)
            return BAD("version vector: the counter of '%s' is %lld, not "
                       "from 1 to 2^53", dev, (long long)c);
        if (cv_vclock_get(&out, dev))
            return BAD("version vector names '%s' twice", dev);
        cv_vclock_set(&out, dev, c); /* checked above; cannot be full */
    }
    *v = out;
    return 0;
}

int cv_vclock_parse(cv_vclock *v, const char *text, size_t len, char *err,
                    size_t errlen)
{
    json_error_t je;
    /* jansson refuses trailing data unless told otherwise */
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return BAD("version vector is not valid JSON: %s", je.text);
    int rc = cv_vclock_from_json(v, j, err, errlen);
    json_decref(j);
    return rc;
}

json_t *cv_vclock_to_json(const cv_vclock *v)
{
    json_t *o = json_object();
    for (size_t i = 0; i < v->len; i++)
        json_object_set_new(o, v->e[i].dev, json_integer(v->e[i].n));
    return o;
}

/* ---- hybrid logical clock --------------------------------------------- */

uint64_t cv_vclock_hlc_make(int64_t ms, unsigned logical)
{
    if (ms < 0)
        ms = 0;
    if (ms > HLC_MS_MAX)
        ms = HLC_MS_MAX;
    return (uint64_t)ms << 16 | (logical & 0xffffu);
}

int64_t cv_vclock_hlc_ms(uint64_t h) { return (int64_t)(h >> 16); }

uint64_t cv_vclock_hlc_now(cv_hlc *c, int64_t wall_ms)
{
    uint64_t pt = cv_vclock_hlc_make(wall_ms, 0);
    if (pt > c->last)
        c->last = pt;
    else if (c->last < UINT64_MAX)
        c->last++; /* the logical part; at 0xffff it carries into the ms */
    return c->last;
}

int cv_vclock_hlc_observe(cv_hlc *c, uint64_t remote, int64_t wall_ms)
{
    if (remote > c->last)
        c->last = remote;
    /* ms is at most 2^48: the subtraction cannot overflow */
    return cv_vclock_hlc_ms(remote) - CV_HLC_MAX_SKEW_MS > wall_ms ? -1 : 0;
}
