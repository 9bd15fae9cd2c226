/* jscan.c - a one-pass JSON validator with top-level member extraction.
 * Iterative (explicit stack), so hostile nesting cannot overflow the C
 * stack; it reports the first problem with its byte offset. */
#include "jscan.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_STACK 4096

typedef struct {
    const unsigned char *p, *start, *end;
    char *err;
    size_t errlen;
} scan;

static int fail(scan *s, const char *what)
{
    snprintf(s->err, s->errlen, "%s at byte %zu", what,
             (size_t)(s->p - s->start) + 1);
    return -1;
}

static void ws(scan *s)
{
    while (s->p < s->end &&
           (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Length of a valid UTF-8 sequence at p (1-4), or 0 when invalid. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    unsigned cp = c & (0x3f >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* The bytes of v (8 bytes of text) that need a closer look: control
 * characters, quotes, backslashes and bytes >= 0x80 (UTF-8), as the high
 * bit of each byte. The classic haszero/hasless bit tricks: a borrow may
 * also flag bytes above a real hit, never below one, so the lowest flag
 * is always a real hit. */
static inline uint64_t special8(uint64_t v)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
    return (((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b) |
            v) & high;
}

/* At the opening quote. On success s->p is past the closing quote. */
static int string(scan *s, const unsigned char **body, size_t *blen,
                  bool *escaped)
{
    s->p++;
    const unsigned char *b = s->p;
    bool esc = false;
    for (;;) {
        /* fast path over plain ASCII: 8 bytes at a time, then 1 */
        while (s->end - s->p >= 8) {
            uint64_t v;
            memcpy(&v, s->p, 8);
            uint64_t m = special8(v);
            if (m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                s->p += __builtin_ctzll(m) >> 3; /* the first hit */
#endif
                break;
            }
            s->p += 8;
        }
        while (s->p < s->end && *s->p >= 0x20 && *s->p < 0x80 &&
               *s->p != '"' && *s->p != '\\')
            s->p++;
        if (s->p >= s->end)
            return fail(s, "unterminated string");
        unsigned c = *s->p;
        if (c == '"')
            break;
        if (c == '\\') {
            esc = true;
            if (s->end - s->p < 2)
                return fail(s, "unterminated string");
            unsigned e = s->p[1];
            if (e == 'u') {
                unsigned cp;
                if (s->end - s->p < 6 || hex4(s->p + 2, &cp) < 0)
                    return fail(s, "bad \\u escape");
                if (cp == 0)
                    return fail(s, "NUL (\\u0000) in string");
                s->p += 6;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    unsigned lo;
                    if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
                        hex4(s->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                        return fail(s, "unpaired surrogate in \\u escape");
                    s->p += 6;
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return fail(s, "unpaired surrogate in \\u escape");
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", (int)e) || e == 0)
                return fail(s, "bad escape in string");
            s->p += 2;
            continue;
        }
        if (c < 0x20)
            return fail(s, c == 0 ? "NUL byte in string"
                                  : "control character in string");
        size_t n = utf8_len(s->p, s->end);
        if (!n)
            return fail(s, "invalid UTF-8");
        s->p += n;
    }
    if (body)
        *body = b, *blen = (size_t)(s->p - b), *escaped = esc;
    s->p++;
    return 0;
}

static int number(scan *s)
{
    const unsigned char *p = s->p;
    if (p < s->end && *p == '-')
        p++;
    if (p >= s->end)
        return fail(s, "bad number");
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    else
        return fail(s, "bad number");
    if (p < s->end && *p == '.') {
        p++;
        if (p >= s->end || *p < '0' || *p > '9')
            return fail(s, "bad number");
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= s->end || *p < '0' || *p > '9')
            return fail(s, "bad number");
        while (p < s->end && *p >= '0' && *p <= '9')
            p++;
    }
    s->p = p;
    return 0;
}

static int literal(scan *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return fail(s, "unexpected character");
    s->p += n;
    return 0;
}

#define MAX_KEYS 512     /* keys remembered across the open objects */
#define MAX_OBJ_KEYS 32  /* beyond this, an object's keys are not compared */

int cv_jscan_object(const char *text, size_t len, int max_depth,
                    bool check_dupes, cv_jfield *fields, size_t nfields,
                    char *err, size_t errlen)
{
    scan sc = {(const unsigned char *)text, (const unsigned char *)text,
               (const unsigned char *)text + len, err, errlen};
    scan *s = &sc;
    char stack[MAX_STACK]; /* '{' or '[' */
    int depth = 0;
    /* Keys of the open objects, as a stack: object at depth d owns
     * keys[first[d]..nkeys). Small objects are compared pairwise, which is
     * cheaper than hashing; anything unusual is left to the caller. */
    struct { const unsigned char *p; size_t n; } keys[MAX_KEYS];
    int first[MAX_STACK];
    int nkeys = 0;
    bool unproven = !check_dupes;
    if (max_depth > MAX_STACK)
        max_depth = MAX_STACK;
    for (size_t i = 0; i < nfields; i++)
        fields[i].type = CV_JS_ABSENT, fields[i].val = NULL, fields[i].len = 0,
        fields[i].escaped = false;

    ws(s);
    if (s->p >= s->end || *s->p != '{')
        return fail(s, s->p >= s->end ? "empty input" : "not a JSON object");

    cv_jfield *pending = NULL; /* top-level member whose value comes next */
    bool want_value = true;    /* at a value position */
    for (;;) {
        if (want_value) {
            ws(s);
            if (s->p >= s->end)
                return fail(s, "unexpected end of input");
            const unsigned char *vstart = s->p;
            int type;
            unsigned c = *s->p;
            if (c == '{' || c == '[') {
                if (depth >= max_depth)
                    return fail(s, "nested too deeply");
                first[depth] = nkeys;
                stack[depth++] = (char)c;
                s->p++;
                if (pending) {
                    pending->type = c == '{' ? CV_JS_OBJECT : CV_JS_ARRAY;
                    pending->val = (const char *)vstart;
                    pending = NULL; /* length of containers is not tracked */
                }
                ws(s);
                if (s->p < s->end && *s->p == (c == '{' ? '}' : ']')) {
                    s->p++;
                    depth--;
                    nkeys = first[depth];
                    want_value = false;
                    goto after_value;
                }
                if (c == '{')
                    goto member;
                continue; /* first array element */
            }
            const unsigned char *b = vstart;
            size_t blen = 0;
            bool esc = false;
            if (c == '"') {
                if (string(s, &b, &blen, &esc) < 0)
                    return -1;
                type = CV_JS_STRING;
            } else if (c == '-' || (c >= '0' && c <= '9')) {
                if (number(s) < 0)
                    return -1;
                type = CV_JS_NUMBER;
            } else if (c == 't') {
                if (literal(s, "true") < 0)
                    return -1;
                type = CV_JS_TRUE;
            } else if (c == 'f') {
                if (literal(s, "false") < 0)
                    return -1;
                type = CV_JS_FALSE;
            } else if (c == 'n') {
                if (literal(s, "null") < 0)
                    return -1;
                type = CV_JS_NULL;
            } else {
                return fail(s, "unexpected character");
            }
            if (type != CV_JS_STRING)
                blen = (size_t)(s->p - vstart);
            if (pending) {
                pending->type = type;
                pending->val = (const char *)b;
                pending->len = blen;
                pending->escaped = esc;
                pending = NULL;
            }
            want_value = false;
        }
    after_value:
        if (depth == 0) {
            ws(s);
            if (s->p != s->end)
                return fail(s, "trailing data after the object");
            return unproven ? 1 : 0;
        }
        ws(s);
        if (s->p >= s->end)
            return fail(s, "unexpected end of input");
        if (*s->p == ',') {
            s->p++;
            if (stack[depth - 1] == '{')
                goto member;
            want_value = true;
            continue;
        }
        if (*s->p == (stack[depth - 1] == '{' ? '}' : ']')) {
            s->p++;
            depth--;
            nkeys = first[depth];
            goto after_value;
        }
        return fail(s, stack[depth - 1] == '{' ? "expected ',' or '}'"
                                               : "expected ',' or ']'");
    member:
        ws(s);
        if (s->p >= s->end || *s->p != '"')
            return fail(s, "expected a member name");
        {
            const unsigned char *name;
            size_t nlen;
            bool esc;
            if (string(s, &name, &nlen, &esc) < 0)
                return -1;
            if (!unproven) {
                int from = first[depth - 1];
                for (int k = from; k < nkeys && !esc; k++) {
                    if (keys[k].n == nlen && memcmp(keys[k].p, name, nlen) == 0) {
                        snprintf(s->err, s->errlen,
                                 "duplicate key \"%.*s\" at byte %zu",
                                 (int)(nlen > 40 ? 40 : nlen), (const char *)name,
                                 (size_t)(name - s->start));
                        return -1;
                    }
                }
                if (esc || nkeys >= MAX_KEYS || nkeys - from >= MAX_OBJ_KEYS)
                    unproven = true;
                else
                    keys[nkeys].p = name, keys[nkeys].n = nlen, nkeys++;
            }
            if (depth == 1 && !esc) {
                for (size_t i = 0; i < nfields; i++) {
                    if (strlen(fields[i].name) == nlen &&
                        memcmp(fields[i].name, name, nlen) == 0) {
                        if (fields[i].type != CV_JS_ABSENT) {
                            snprintf(s->err, s->errlen,
                                     "duplicate key \"%s\" at byte %zu",
                                     fields[i].name, (size_t)(name - s->start));
                            return -1;
                        }
                        pending = &fields[i];
                        break;
                    }
                }
            }
        }
        ws(s);
        if (s->p >= s->end || *s->p != ':')
            return fail(s, "expected ':'");
        s->p++;
        want_value = true;
    }
}

static void put_utf8(char *o, size_t *n, unsigned cp)
{
    if (cp < 0x80) {
        o[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*n)++] = (char)(0xc0 | (cp >> 6));
        o[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        o[(*n)++] = (char)(0xe0 | (cp >> 12));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        o[(*n)++] = (char)(0xf0 | (cp >> 18));
        o[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

bool cv_jfield_string(const cv_jfield *f, char *out, size_t outlen)
{
    if (f->type != CV_JS_STRING || outlen == 0)
        return false;
    if (!f->escaped) {
        if (f->len >= outlen)
            return false;
        memcpy(out, f->val, f->len);
        out[f->len] = '\0';
        return true;
    }
    /* the scanner validated the escapes; decode them */
    const unsigned char *p = (const unsigned char *)f->val, *e = p + f->len;
    size_t n = 0;
    while (p < e) {
        if (n + 5 > outlen)
            return false;
        if (*p != '\\') {
            out[n++] = (char)*p++;
            continue;
        }
        unsigned c = p[1];
        p += 2;
        switch (c) {
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            hex4(p, &cp);
            p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                hex4(p + 2, &lo);
                p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(out, &n, cp);
            break;
        }
        default: out[n++] = (char)c; break;
        }
    }
    out[n] = '\0';
    return true;
}
