/* event.c - ingest's validation and normalisation of one NDJSON line. */
#include "base/event.h"

#include "base/canonical.h"
#include "base/fieldname.h"
#include "base/jscan.h"
#include "base/jwalk.h"
#include "base/profile.h"
#include "base/time.h"
#include "base/util.h"

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

bool cv_event_id_of(int max_depth, const char *line, size_t len, char *id,
                    size_t idlen)
{
    static const char pre[] = "{\"id\":\"";
    if (len > sizeof pre && memcmp(line, pre, sizeof pre - 1) == 0) {
        const char *p = line + sizeof pre - 1;
        const char *q = memchr(p, '"', len - (sizeof pre - 1));
        if (q && (size_t)(q - p) < idlen && !memchr(p, '\\', (size_t)(q - p))) {
            memcpy(id, p, (size_t)(q - p));
            id[q - p] = '\0';
            return cv_event_id_valid(id, strlen(id));
        }
    }
    cv_jfield f = {.name = "id"};
    char why[128];
    if (cv_jscan_object(line, len, max_depth, false, &f, 1, why,
                        sizeof why) < 0 || f.type != CV_JS_STRING)
        return false;
    return cv_jscan_field_string(&f, id, idlen) && cv_event_id_valid(id, strlen(id));
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

/* A member's value as JSON text, for comparing two spellings of it. */
static bool same_value(const cv_jmember *a, const cv_jmember *b)
{
    if (a->type != b->type)
        return false;
    if (a->type != CV_JS_STRING || (!a->escaped && !b->escaped))
        return a->len == b->len && memcmp(a->val, b->val, a->len) == 0;
    char *x = cv_malloc(a->len + 1), *y = cv_malloc(b->len + 1);
    size_t xn = cv_jwalk_unescape(a->val, a->len, x);
    size_t yn = cv_jwalk_unescape(b->val, b->len, y);
    bool eq = xn == yn && memcmp(x, y, xn) == 0;
    free(x);
    free(y);
    return eq;
}

/* An event time: an RFC 3339 string, or ms since the epoch as a whole
 * number (how a JavaScript Date.now() or getTime() is sent). */
static bool time_of(const cv_jmember *m, int64_t *ms, bool *numeric)
{
    char buf[64];
    *numeric = m->type == CV_JS_NUMBER;
    if (m->type == CV_JS_STRING)
        return cv_jscan_member_string(m, buf, sizeof buf) &&
               cv_time_parse(buf, strlen(buf), ms);
    if (m->type != CV_JS_NUMBER || m->len >= sizeof buf)
        return false;
    memcpy(buf, m->val, m->len);
    buf[m->len] = '\0';
    /* From 1973-03-03 (10^11 ms) to the year 9999: a smaller number is
     * far likelier seconds than a time in early 1973, and taking seconds
     * as ms would misplace the event by decades without a word. */
    return cv_parse_int(buf, 100000000000LL, 253402300799999LL, ms);
}

/* Is the member spelled as its canonical name? */
static bool canonical(const cv_jmember *m, const char *name)
{
    return m->type == CV_JS_ABSENT ||
           (m->keylen == strlen(name) && memcmp(m->key, name, m->keylen) == 0);
}

/* The producer's members without the ones in cut (each [at, end), sorted
 * by at, no overlaps), with the commas that joined them: the text between
 * the braces of obj, written to o. Returns the length written. */
static size_t cut_members(const char *open, const char *close,
                          const cv_jmember *const *cut, int ncut, char *o)
{
    size_t n = 0;
    const char *p = open + 1;
    bool any = false; /* a member already written: the next needs a comma */
    for (int i = 0; i <= ncut; i++) {
        const char *stop = i < ncut ? cut[i]->at : close;
        /* p..stop holds whole members separated by commas, with stray
         * separators at either end where members were cut */
        while (p < stop && strchr(" \t\r\n,", *p))
            p++;
        const char *e = stop;
        while (e > p && strchr(" \t\r\n,", e[-1]))
            e--;
        if (e > p) {
            if (any)
                o[n++] = ',';
            memcpy(o + n, p, (size_t)(e - p));
            n += (size_t)(e - p);
            any = true;
        }
        if (i < ncut)
            p = cut[i]->end;
    }
    return n;
}

static int by_position(const void *a, const void *b)
{
    const cv_jmember *x = *(const cv_jmember *const *)a;
    const cv_jmember *y = *(const cv_jmember *const *)b;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Append "name":<value text> to o at *n. */
static void put_member(char *o, size_t *n, const char *name,
                       const cv_jmember *m)
{
    *n += (size_t)sprintf(o + *n, "%s\"%s\":", *n > 1 ? "," : "", name);
    const char *v = m->type == CV_JS_STRING ? m->val - 1 : m->val;
    size_t vlen = (size_t)(m->end - v);
    memcpy(o + *n, v, vlen);
    *n += vlen;
}

int cv_event_normalise(const cv_event_rules *r, const char *line, size_t len,
                       int64_t now_ms, char **out, size_t *outlen,
                       char *reason, size_t rlen)
{
    enum { F_ID, F_KIND, F_USER, F_TS, F_TYPE, F_LEVEL, F_DAYS, NF };
    static const cv_member which[NF] = {
        CV_MEMBER_ID,   CV_MEMBER_KIND,  CV_MEMBER_USER, CV_MEMBER_TS,
        CV_MEMBER_TYPE, CV_MEMBER_LEVEL, CV_MEMBER_DAYS};
    cv_jmember again[NF];
    cv_jfield f[NF];
    for (int i = 0; i < NF; i++)
        f[i] = (cv_jfield){.name = cv_fieldname_member(which[i]),
                           .alias = cv_fieldname_alias(which[i]),
                           .again = &again[i]};
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

    /* One member under two spellings (user_id and userId, ts and
     * timestamp): the same value is said twice, a different one is a
     * contradiction we must not settle by guessing. */
    bool rewrite = false;
    for (int i = 0; i < NF; i++) {
        if (again[i].type == CV_JS_ABSENT) {
            rewrite |= !canonical(&f[i].m, f[i].name);
            continue;
        }
        bool same;
        if (i == F_TS) {
            int64_t a, b;
            bool na, nb;
            same = time_of(&f[i].m, &a, &na) && time_of(&again[i], &b, &nb) &&
                   a == b;
        } else {
            same = same_value(&f[i].m, &again[i]);
        }
        if (!same)
            return FAIL("\"%.*s\" and \"%.*s\" are both \"%s\", with different "
                        "values", (int)(f[i].keylen > 40 ? 40 : f[i].keylen),
                        f[i].key, (int)(again[i].keylen > 40 ? 40 : again[i].keylen),
                        again[i].key, f[i].name);
        rewrite = true;
    }

    const char *kind = NULL;
    size_t kind_len = 0;
    if (f[F_KIND].type == CV_JS_ABSENT && r->default_kind) {
        kind = r->default_kind;
        kind_len = strlen(kind);
        rewrite = true;
    } else if (f[F_KIND].type == CV_JS_ABSENT) {
        return FAIL("\"kind\" is missing (give each event one, or send a "
                    "stream of one kind with --kind KIND)");
    } else if (f[F_KIND].type != CV_JS_STRING) {
        return FAIL("\"kind\" is %s, expected a string", type_name(f[F_KIND].type));
    } else {
        kind = f[F_KIND].val, kind_len = f[F_KIND].len;
    }
    if (kind_len == 0 || kind_len > CV_KIND_MAX)
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
    if (kind_len == 7 && memcmp(kind, "profile", 7) == 0 &&
        cv_profile_from_event(line, len, r->max_depth, &f[F_LEVEL], &f[F_DAYS],
                              &prof, reason, rlen) < 0)
        return -1;

    int64_t ts = 0;
    bool has_ts = f[F_TS].type != CV_JS_ABSENT;
    if (has_ts) {
        bool numeric;
        if (f[F_TS].type != CV_JS_STRING && f[F_TS].type != CV_JS_NUMBER)
            return FAIL("\"ts\" is %s, expected an RFC 3339 string or ms since "
                        "the epoch", type_name(f[F_TS].type));
        if (!time_of(&f[F_TS].m, &ts, &numeric)) {
            char tsbuf[64];
            if (f[F_TS].type == CV_JS_NUMBER)
                return FAIL("\"%.*s\" (the event's \"ts\") is not a time: %.*s "
                            "is not a whole number of ms since the epoch from "
                            "1973 on (seconds must be given as ms)",
                            (int)(f[F_TS].keylen > 40 ? 40 : f[F_TS].keylen),
                            f[F_TS].key, (int)(f[F_TS].len > 30 ? 30 : f[F_TS].len),
                            f[F_TS].val);
            return FAIL("\"%.*s\" (the event's \"ts\") is not an RFC 3339 "
                        "timestamp: \"%.40s\"",
                        (int)(f[F_TS].keylen > 40 ? 40 : f[F_TS].keylen), f[F_TS].key,
                        f[F_TS].escaped ||
                                !cv_jscan_field_string(&f[F_TS], tsbuf, sizeof tsbuf)
                            ? "(escaped)" : tsbuf);
        }
        rewrite |= numeric;
    }

    if (scanned == 1) {
        /* the scanner could not rule out duplicate keys: let jansson */
        json_error_t je;
        json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
        if (!o)
            return FAIL("invalid JSON: %s", je.text);
        json_decref(o);
    }
    if (f[F_ID].type != CV_JS_ABSENT &&
        (f[F_ID].type != CV_JS_STRING || f[F_ID].escaped ||
         !cv_event_id_valid(f[F_ID].val, f[F_ID].len)))
        return FAIL("\"id\" must be 1 to %d printable ASCII characters "
                    "without spaces, quotes or backslashes", CV_ID_MAX);

    const char *brace = memchr(line, '{', len);
    const char *close = line + len;
    while (close > brace && close[-1] != '}')
        close--;
    close--; /* the closing brace */
    char *o = NULL;
    int n = 0;
    if (rewrite) {
        /* The members store reads, under their canonical names and in
         * ingest's order, then the producer's own members as sent. */
        const cv_jmember *cut[2 * NF];
        int ncut = 0;
        for (int i = 0; i < NF; i++) {
            if (f[i].type != CV_JS_ABSENT)
                cut[ncut++] = &f[i].m;
            if (again[i].type != CV_JS_ABSENT)
                cut[ncut++] = &again[i];
        }
        qsort(cut, (size_t)ncut, sizeof *cut, by_position);
        size_t cap = len + CV_KIND_MAX + 128;
        o = cv_malloc(cap);
        size_t k = 0;
        o[k++] = '{';
        if (f[F_ID].type != CV_JS_ABSENT)
            put_member(o, &k, "id", &f[F_ID].m);
        if (has_ts) {
            char tsn[40];
            cv_time_format_ms(ts, tsn);
            k += (size_t)sprintf(o + k, "%s\"ts\":\"%s\"", k > 1 ? "," : "", tsn);
        }
        k += (size_t)sprintf(o + k, "%s\"kind\":\"", k > 1 ? "," : "");
        memcpy(o + k, kind, kind_len);
        k += kind_len;
        o[k++] = '"';
        for (int i = F_USER; i < NF; i++)
            if (i != F_TS && f[i].type != CV_JS_ABSENT)
                put_member(o, &k, f[i].name, &f[i].m);
        char *rest = cv_malloc(len + 1);
        size_t rn = cut_members(brace, close, cut, ncut, rest);
        if (rn) {
            o[k++] = ',';
            memcpy(o + k, rest, rn);
            k += rn;
        }
        free(rest);
        o[k++] = '}';
        o[k] = '\0';
        /* from here on, that text is the event */
        line = o;
        len = k;
        brace = o;
        close = o + k - 1;
    }

    char idbuf[CV_ID_MAX + 1];
    if (f[F_ID].type != CV_JS_ABSENT) {
        memcpy(idbuf, f[F_ID].val, f[F_ID].len);
        idbuf[f[F_ID].len] = '\0';
    } else if (!has_ts) {
        /* Nothing tells two such events apart (a user who clicks twice):
         * each acceptance is an event of its own, at the time it was
         * accepted. A digest would merge them; random bits do not. */
        uint8_t bits[10];
        randombytes_buf(bits, sizeof bits);
        cv_event_make_id(now_ms, bits, idbuf);
    } else {
        /* The digest covers the canonical form, so a re-sent event dedupes
         * however it was spaced, ordered or escaped. */
        char tsnorm[40];
        cv_time_format_ms(ts, tsnorm);
        char *canon = NULL;
        size_t ccap = 0;
        long clen = cv_canonical(line, len, r->max_depth, tsnorm,
                                 &canon, &ccap, why, sizeof why);
        if (clen < 0) {
            free(canon);
            free(o);
            return FAIL("invalid JSON: %s", why);
        }
        uint8_t digest[16];
        crypto_generichash(digest, sizeof digest, (const unsigned char *)canon,
                           (size_t)clen, r->id_key, 32);
        free(canon);
        cv_event_make_id(ts, digest, idbuf);
    }

    /* Splice: '{' "id":"…", ["ts":"…",] then the producer's members. */
    size_t rest = (size_t)(close - brace) + 1 - 1; /* after '{', up to '}' */
    char tsfill[40] = "";
    if (!has_ts)
        cv_time_format_ms(now_ms, tsfill);
    /* is the object empty? then no comma after our members */
    const char *q = brace + 1;
    while (q < close && strchr(" \t\r\n", *q))
        q++;
    bool empty = q == close;
    size_t cap = rest + strlen(idbuf) + 64;
    char *e = cv_malloc(cap);
    if (f[F_ID].type != CV_JS_ABSENT && has_ts) {
        memcpy(e, brace, rest + 1);
        n = (int)rest + 1;
    } else if (f[F_ID].type != CV_JS_ABSENT) {
        n = snprintf(e, cap, "{\"ts\":\"%s\"%s", tsfill, empty ? "" : ",");
        memcpy(e + n, brace + 1, rest);
        n += (int)rest;
    } else {
        n = snprintf(e, cap, "{\"id\":\"%s\",", idbuf);
        if (!has_ts)
            n += snprintf(e + n, cap - (size_t)n, "\"ts\":\"%s\",", tsfill);
        if (empty)
            n--; /* drop the last comma */
        memcpy(e + n, brace + 1, rest);
        n += (int)rest;
    }
    e[n] = '\0';
    free(o);
    *out = e;
    *outlen = (size_t)n;
    return 0;
}
