/* jwalk.c - the pull tokenizer. A small state machine over the text:
 * it never recurses, never reads past end, and remembers for each open
 * container only whether it is an object (one bit). */
#include "base/jwalk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    S_VALUE,      /* a value must come (the top, after ':' or ',' in []) */
    S_FIRST_ELEM, /* after '[': a value or ']' */
    S_FIRST_KEY,  /* after '{': a member name or '}' */
    S_KEY,        /* after ',' in {}: a member name */
    S_AFTER,      /* after a value: ',' or the end of its container */
    S_DONE,
    S_FAILED,
};

static int fail(cv_jwalk *w, const char *what)
{
    snprintf(w->err, w->errlen, "%s at byte %zu", what,
             (size_t)(w->p - w->start) + 1);
    w->state = S_FAILED;
    return CV_JW_ERROR;
}

void cv_jwalk_init(cv_jwalk *w, const char *text, size_t len, int max_depth,
                   char *err, size_t errlen)
{
    w->tok = text;
    w->len = 0;
    w->escaped = false;
    w->depth = 0;
    w->start = w->p = (const unsigned char *)text;
    w->end = w->start + len;
    w->max_depth = max_depth > CV_JW_MAX_DEPTH ? CV_JW_MAX_DEPTH : max_depth;
    w->state = S_VALUE;
    w->err = err;
    w->errlen = errlen;
}

static void ws(cv_jwalk *w)
{
    while (w->p < w->end &&
           (*w->p == ' ' || *w->p == '\t' || *w->p == '\n' || *w->p == '\r'))
        w->p++;
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

/* Length of a valid UTF-8 sequence at p (2-4 bytes), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
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

/* At the opening quote; the token is the string with its quotes. */
static int string(cv_jwalk *w)
{
    const unsigned char *b = w->p++;
    bool esc = false;
    for (;;) {
        /* fast path over plain ASCII: 8 bytes at a time, then 1 */
        while (w->end - w->p >= 8) {
            uint64_t v;
            memcpy(&v, w->p, 8);
            uint64_t m = special8(v);
            if (m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                w->p += __builtin_ctzll(m) >> 3; /* the first hit */
#endif
                break;
            }
            w->p += 8;
        }
        while (w->p < w->end && *w->p >= 0x20 && *w->p < 0x80 &&
               *w->p != '"' && *w->p != '\\')
            w->p++;
        if (w->p >= w->end)
            return fail(w, "unterminated string");
        unsigned c = *w->p;
        if (c == '"')
            break;
        if (c == '\\') {
            esc = true;
            if (w->end - w->p < 2)
                return fail(w, "unterminated string");
            unsigned e = w->p[1];
            if (e == 'u') {
                unsigned cp;
                if (w->end - w->p < 6 || hex4(w->p + 2, &cp) < 0)
                    return fail(w, "bad \\u escape");
                if (cp == 0)
                    return fail(w, "NUL (\\u0000) in string");
                if (cp >= 0xdc00 && cp <= 0xdfff)
                    return fail(w, "unpaired surrogate in \\u escape");
                w->p += 6;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    unsigned lo;
                    if (w->end - w->p < 6 || w->p[0] != '\\' ||
                        w->p[1] != 'u' || hex4(w->p + 2, &lo) < 0 ||
                        lo < 0xdc00 || lo > 0xdfff)
                        return fail(w, "unpaired surrogate in \\u escape");
                    w->p += 6;
                }
                continue;
            }
            if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' &&
                e != 'n' && e != 'r' && e != 't')
                return fail(w, "bad escape in string");
            w->p += 2;
            continue;
        }
        if (c < 0x20)
            return fail(w, c == 0 ? "NUL byte in string"
                                  : "control character in string");
        size_t n = utf8_len(w->p, w->end);
        if (!n)
            return fail(w, "invalid UTF-8");
        w->p += n;
    }
    w->p++;
    w->tok = (const char *)b;
    w->len = (size_t)(w->p - b);
    w->escaped = esc;
    return CV_JW_STRING;
}

/* jansson refuses integers beyond long long ("too big integer") and reals
 * that overflow a double; so do we, deciding cheaply when the digits and
 * exponent leave no doubt, and with strtoll/strtod on a copy when they
 * do. The copy for strtod has no decimal point (mantissa digits and an
 * adjusted exponent), so the locale cannot matter. */
static bool number_fits(const unsigned char *b, const unsigned char *e,
                        const unsigned char *frac, const unsigned char *ex)
{
    const unsigned char *d = b + (*b == '-');
    if (!frac && !ex) {
        size_t nd = (size_t)(e - d);
        if (nd <= 18)
            return true;
        if (nd > 19)
            return false; /* no leading zeros: at least 10^19 */
        char buf[24];
        memcpy(buf, b, (size_t)(e - b));
        buf[e - b] = '\0';
        errno = 0;
        (void)strtoll(buf, NULL, 10);
        return errno != ERANGE;
    }
    /* mantissa digits, without the point */
    const unsigned char *int_end = frac ? frac : ex ? ex : e;
    const unsigned char *frac_end = ex ? ex : e;
    long exp10 = 0;
    if (ex) {
        const unsigned char *q = ex + 1;
        bool neg = false;
        if (*q == '+' || *q == '-')
            neg = *q++ == '-';
        for (; q < e; q++)
            if (exp10 < 100000000)
                exp10 = exp10 * 10 + (*q - '0');
        if (neg)
            exp10 = -exp10;
    }
    /* value = 0.D1D2... x 10^mag, D1 the first non-zero digit */
    long mag = 0;
    bool nonzero = false;
    for (const unsigned char *q = d; q < int_end; q++) {
        if (nonzero || *q != '0') {
            nonzero = true;
            mag++;
        }
    }
    if (!nonzero && frac) {
        for (const unsigned char *q = frac + 1; q < frac_end && *q == '0'; q++)
            mag--;
        const unsigned char *q = frac + 1;
        while (q < frac_end && *q == '0')
            q++;
        nonzero = q < frac_end;
    }
    if (!nonzero)
        return true; /* zero */
    mag += exp10;    /* value < 10^mag */
    if (mag <= 308)
        return true; /* below 1e308 < DBL_MAX */
    if (mag > 309)
        return false; /* at least 1e309 */
    /* near DBL_MAX: let strtod decide on "DIGITSe<exp>" */
    size_t ndig = (size_t)(int_end - d) +
                  (frac ? (size_t)(frac_end - frac - 1) : 0);
    long adj = exp10 - (frac ? (long)(frac_end - frac - 1) : 0);
    char stack[512];
    size_t need = ndig + 32;
    char *buf = need <= sizeof stack ? stack : malloc(need);
    if (!buf)
        return false;
    size_t n = 0;
    for (const unsigned char *q = d; q < int_end; q++)
        buf[n++] = (char)*q;
    if (frac)
        for (const unsigned char *q = frac + 1; q < frac_end; q++)
            buf[n++] = (char)*q;
    snprintf(buf + n, need - n, "e%ld", adj);
    errno = 0;
    double v = strtod(buf, NULL);
    bool ok = !(errno == ERANGE && (v > 1.0 || v < -1.0));
    if (buf != stack)
        free(buf);
    return ok;
}

static int number(cv_jwalk *w)
{
    const unsigned char *b = w->p, *p = w->p, *frac = NULL, *ex = NULL;
    if (*p == '-')
        p++;
    if (p >= w->end)
        return fail(w, "bad number");
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (p < w->end && *p >= '0' && *p <= '9')
            p++;
    else
        return fail(w, "bad number");
    if (p < w->end && *p == '.') {
        frac = p++;
        if (p >= w->end || *p < '0' || *p > '9')
            return fail(w, "bad number");
        while (p < w->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < w->end && (*p == 'e' || *p == 'E')) {
        ex = p++;
        if (p < w->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= w->end || *p < '0' || *p > '9')
            return fail(w, "bad number");
        while (p < w->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (!number_fits(b, p, frac, ex))
        return fail(w, frac || ex ? "real number overflow"
                                  : "integer out of range");
    w->tok = (const char *)b;
    w->len = (size_t)(p - b);
    w->p = p;
    return CV_JW_NUMBER;
}

static int literal(cv_jwalk *w, const char *word, int type)
{
    size_t n = strlen(word);
    if ((size_t)(w->end - w->p) < n || memcmp(w->p, word, n) != 0)
        return fail(w, "unexpected character");
    w->tok = (const char *)w->p;
    w->len = n;
    w->p += n;
    return type;
}

static int open_container(cv_jwalk *w, bool obj)
{
    if (w->depth >= w->max_depth)
        return fail(w, "nested too deeply");
    uint8_t bit = (uint8_t)(1u << (w->depth & 7));
    if (obj)
        w->is_obj[w->depth >> 3] |= bit;
    else
        w->is_obj[w->depth >> 3] &= (uint8_t)~bit;
    w->depth++;
    w->tok = (const char *)w->p++;
    w->len = 1;
    w->state = obj ? S_FIRST_KEY : S_FIRST_ELEM;
    return obj ? CV_JW_OBJECT : CV_JW_ARRAY;
}

static bool top_is_obj(const cv_jwalk *w)
{
    int d = w->depth - 1;
    return (w->is_obj[d >> 3] >> (d & 7)) & 1;
}

static int close_container(cv_jwalk *w)
{
    bool obj = top_is_obj(w);
    w->depth--;
    w->tok = (const char *)w->p++;
    w->len = 1;
    w->state = S_AFTER;
    return obj ? CV_JW_OBJECT_END : CV_JW_ARRAY_END;
}

static int value(cv_jwalk *w)
{
    ws(w);
    if (w->p >= w->end)
        return fail(w, w->depth == 0 ? "empty input"
                                     : "unexpected end of input");
    int t;
    w->escaped = false;
    switch (*w->p) {
    case '{': return open_container(w, true);
    case '[': return open_container(w, false);
    case '"': t = string(w); break;
    case 't': t = literal(w, "true", CV_JW_TRUE); break;
    case 'f': t = literal(w, "false", CV_JW_FALSE); break;
    case 'n': t = literal(w, "null", CV_JW_NULL); break;
    default:
        if (*w->p == '-' || (*w->p >= '0' && *w->p <= '9'))
            t = number(w);
        else
            return fail(w, "unexpected character");
    }
    if (t != CV_JW_ERROR)
        w->state = S_AFTER;
    return t;
}

static int key(cv_jwalk *w)
{
    ws(w);
    if (w->p >= w->end || *w->p != '"')
        return fail(w, w->p >= w->end ? "unexpected end of input"
                                      : "expected a member name");
    if (string(w) == CV_JW_ERROR)
        return CV_JW_ERROR;
    ws(w);
    if (w->p >= w->end || *w->p != ':')
        return fail(w, "expected ':'");
    w->p++;
    w->state = S_VALUE;
    return CV_JW_KEY;
}

int cv_jwalk_next(cv_jwalk *w)
{
    switch (w->state) {
    case S_VALUE:
        return value(w);
    case S_FIRST_ELEM:
        ws(w);
        if (w->p < w->end && *w->p == ']')
            return close_container(w);
        return value(w);
    case S_FIRST_KEY:
        ws(w);
        if (w->p < w->end && *w->p == '}')
            return close_container(w);
        return key(w);
    case S_KEY:
        return key(w);
    case S_AFTER: {
        ws(w);
        if (w->depth == 0) {
            if (w->p != w->end)
                return fail(w, "trailing data after the value");
            w->state = S_DONE;
            return CV_JW_EOF;
        }
        if (w->p >= w->end)
            return fail(w, "unexpected end of input");
        bool obj = top_is_obj(w);
        if (*w->p == ',') {
            w->p++;
            return obj ? key(w) : value(w);
        }
        if (*w->p == (obj ? '}' : ']'))
            return close_container(w);
        return fail(w, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    case S_DONE:
        return CV_JW_EOF;
    default:
        return CV_JW_ERROR;
    }
}

int cv_jwalk_skip(cv_jwalk *w)
{
    int base = w->depth - 1;
    for (;;) {
        int t = cv_jwalk_next(w);
        if (t == CV_JW_ERROR)
            return t;
        if ((t == CV_JW_OBJECT_END || t == CV_JW_ARRAY_END) &&
            w->depth == base)
            return t;
        if (t == CV_JW_EOF) /* cannot happen inside a container */
            return fail(w, "unexpected end of input");
    }
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t cv_jwalk_unescape(const char *body, size_t len, char *out)
{
    const unsigned char *p = (const unsigned char *)body, *e = p + len;
    size_t n = 0;
    while (p < e) {
        const unsigned char *q = memchr(p, '\\', (size_t)(e - p));
        if (!q)
            q = e;
        memcpy(out + n, p, (size_t)(q - p));
        n += (size_t)(q - p);
        p = q;
        if (p >= e)
            break;
        unsigned c = p[1], cp;
        p += 2;
        switch (c) {
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned lo;
            hex4(p, &cp);
            p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                hex4(p + 2, &lo); /* the walker checked the pair */
                p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            n += put_utf8(out + n, cp);
            break;
        }
        default: out[n++] = (char)c; break; /* " \ / */
        }
    }
    out[n] = '\0';
    return n;
}
