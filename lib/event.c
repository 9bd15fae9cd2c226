/* event.c - ingest's validation and normalisation of one NDJSON line. */
#include "event.h"

#include "canon.h"
#include "jscan.h"
#include "retention.h"
#include "timefmt.h"
#include "util.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...) (snprintf(reason, rlen, __VA_ARGS__), -1)

int cv_event_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > CV_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* ULID layout: 48-bit milliseconds in 10 characters, 80 bits in 16. */
void cv_event_make_id(int64_t ms, const uint8_t bits[10],
                      char out[CV_EVENT_ID_LEN + 1])
{
    uint64_t t = (uint64_t)ms & 0xffffffffffffULL;
    for (int i = 9; i >= 0; i--) {
        out[i] = b32[t & 31];
        t >>= 5;
    }
    /* 80 bits = 16 groups of 5 */
    int bit = 0;
    for (int i = 0; i < 16; i++) {
        unsigned v = 0;
        for (int k = 0; k < 5; k++, bit++)
            v = (v << 1) | ((bits[bit / 8] >> (7 - bit % 8)) & 1);
        out[10 + i] = b32[v];
    }
    out[26] = '\0';
}

static const char *type_name(int t)
{
    switch (t) {
    case CV_JS_STRING: return "a string";
    case CV_JS_NUMBER: return "a number";
    case CV_JS_TRUE:
    case CV_JS_FALSE: return "a boolean";
    case CV_JS_NULL: return "null";
    case CV_JS_OBJECT: return "an object";
    case CV_JS_ARRAY: return "an array";
    default: return "missing";
    }
}

int cv_event_normalise(const cv_event_rules *r, const char *line, size_t len,
                       int64_t now_ms, char **out, size_t *outlen,
                       char *reason, size_t rlen)
{
    enum { F_ID, F_KIND, F_USER, F_TS, F_TYPE, F_LEVEL, F_DAYS, NF };
    cv_jfield f[NF] = {{.name = "id"}, {.name = "kind"}, {.name = "user_id"},
                       {.name = "ts"}, {.name = "type"},
                       {.name = "privacy_level"}, {.name = "retention_days"}};
    char why[160];

    if (memchr(line, '\0', len))
        return FAIL("NUL byte in line");
    /* The scanner checks grammar, UTF-8, NULs and depth without
     * allocating; jansson below only runs on lines that pass. */
    int scanned = cv_jscan_object(line, len, r->max_depth, true, f, NF, why,
                                  sizeof why);
    if (scanned < 0) {
        if (strncmp(why, "nested too deeply", 17) == 0)
            return FAIL("nested deeper than %d levels (%s)", r->max_depth, why);
        if (strncmp(why, "duplicate key", 13) == 0)
            return FAIL("%s", why);
        if (strncmp(why, "not a JSON object", 17) == 0) {
            const char *p = line;
            while (*p == ' ' || *p == '\t')
                p++;
            return FAIL("not a JSON object (starts with '%c')", *p);
        }
        return FAIL("invalid JSON: %s", why);
    }
    if (f[F_KIND].type != CV_JS_STRING)
        return FAIL("\"kind\" is %s, expected a string", type_name(f[F_KIND].type));
    if (f[F_KIND].len == 0 || f[F_KIND].len > CV_KIND_MAX)
        return FAIL("\"kind\" must be 1 to %d bytes", CV_KIND_MAX);
    if (f[F_USER].type != CV_JS_STRING)
        return FAIL("\"user_id\" is %s, expected a non-empty string",
                    type_name(f[F_USER].type));
    if (f[F_USER].len == 0)
        return FAIL("\"user_id\" is empty");
    if (f[F_USER].len > CV_USER_MAX)
        return FAIL("\"user_id\" is longer than %d bytes", CV_USER_MAX);
    if (f[F_TYPE].type != CV_JS_ABSENT && f[F_TYPE].type != CV_JS_STRING)
        return FAIL("\"type\" is %s, expected a string", type_name(f[F_TYPE].type));

    /* a profile's settings are checked here, where the producer hears
     * about a mistake, not only in store */
    cv_profile prof;
    if (f[F_KIND].len == 7 && memcmp(f[F_KIND].val, "profile", 7) == 0 &&
        cv_profile_from_fields(&f[F_LEVEL], &f[F_DAYS], &prof, reason, rlen) < 0)
        return -1;

    int64_t ts = 0;
    char tsbuf[64];
    bool has_ts = f[F_TS].type != CV_JS_ABSENT;
    if (has_ts) {
        if (f[F_TS].type != CV_JS_STRING)
            return FAIL("\"ts\" is %s, expected an RFC 3339 string",
                        type_name(f[F_TS].type));
        if (!cv_jfield_string(&f[F_TS], tsbuf, sizeof tsbuf) ||
            !cv_time_parse(tsbuf, strlen(tsbuf), &ts))
            return FAIL("\"ts\" is not an RFC 3339 timestamp: \"%.40s\"",
                        f[F_TS].escaped ? "(escaped)" : tsbuf);
    }

    if (scanned == 1) {
        /* the scanner could not rule out duplicate keys: let jansson */
        json_error_t je;
        json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
        if (!o)
            return FAIL("invalid JSON: %s", je.text);
        json_decref(o);
    }
    char idbuf[CV_ID_MAX + 1];
    if (f[F_ID].type != CV_JS_ABSENT) {
        if (f[F_ID].type != CV_JS_STRING || f[F_ID].escaped ||
            !cv_event_id_valid(f[F_ID].val, f[F_ID].len))
            return FAIL("\"id\" must be 1 to %d printable ASCII characters "
                        "without spaces, quotes or backslashes", CV_ID_MAX);
        memcpy(idbuf, f[F_ID].val, f[F_ID].len);
        idbuf[f[F_ID].len] = '\0';
    } else {
        /* The digest covers the canonical form, so a re-sent event dedupes
         * however it was spaced, ordered or escaped. */
        char tsnorm[40];
        if (has_ts)
            cv_time_format_ms(ts, tsnorm);
        char *canon = NULL;
        size_t ccap = 0;
        long clen = cv_canonical(line, len, r->max_depth, has_ts ? tsnorm : NULL,
                                 &canon, &ccap, why, sizeof why);
        if (clen < 0) {
            free(canon);
            return FAIL("invalid JSON: %s", why);
        }
        uint8_t digest[16];
        crypto_generichash(digest, sizeof digest, (const unsigned char *)canon,
                           (size_t)clen, r->id_key, 32);
        free(canon);
        cv_event_make_id(has_ts ? ts : 0, digest, idbuf);
    }

    /* Splice: '{' "id":"…", ["ts":"…",] then the producer's members. */
    const char *brace = memchr(line, '{', len);
    size_t rest = len - (size_t)(brace + 1 - line);
    char tsfill[40] = "";
    if (!has_ts)
        cv_time_format_ms(now_ms, tsfill);
    /* is the object empty? then no comma after our members */
    const char *q = brace + 1;
    while (q < line + len && (*q == ' ' || *q == '\t'))
        q++;
    bool empty = q < line + len && *q == '}';
    size_t cap = rest + strlen(idbuf) + 64;
    char *o = cv_malloc(cap);
    int n;
    if (f[F_ID].type != CV_JS_ABSENT && has_ts) {
        memcpy(o, line, len);
        n = (int)len;
    } else if (f[F_ID].type != CV_JS_ABSENT) {
        n = snprintf(o, cap, "{\"ts\":\"%s\"%s", tsfill, empty ? "" : ",");
        memcpy(o + n, brace + 1, rest);
        n += (int)rest;
    } else {
        n = snprintf(o, cap, "{\"id\":\"%s\",", idbuf);
        if (!has_ts)
            n += snprintf(o + n, cap - (size_t)n, "\"ts\":\"%s\",", tsfill);
        if (empty)
            n--; /* drop the last comma */
        memcpy(o + n, brace + 1, rest);
        n += (int)rest;
    }
    o[n] = '\0';
    *out = o;
    *outlen = (size_t)n;
    return 0;
}
