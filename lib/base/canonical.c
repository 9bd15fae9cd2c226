/* canonical.c - canonical JSON for event ids, built on the jwalk tokenizer:
 * one pass, values rendered straight into the output, each object's
 * members sorted in place once its end is reached. */
#include "base/canonical.h"

#include "base/jwalk.h"
#include "base/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *b;
    size_t n, cap;
} buf;

static void put(buf *o, const void *p, size_t n)
{
    if (o->n + n + 1 > o->cap) {
        while (o->n + n + 1 > o->cap)
            o->cap = o->cap ? o->cap * 2 : 1024;
        o->b = cv_realloc(o->b, o->cap);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void putc_(buf *o, char c) { put(o, &c, 1); }

/* A string token (with its quotes), validated by the walker: decoded,
 * then escaped again, minimally. */
static void put_string(buf *o, const char *tok, size_t len, bool escaped)
{
    static const char hex[] = "0123456789abcdef";
    if (!escaped) { /* nothing to decode, and no control characters */
        put(o, tok, len);
        return;
    }
    char stackbuf[512], *d = len < sizeof stackbuf ? stackbuf : cv_malloc(len);
    size_t n = cv_jwalk_unescape(tok + 1, len - 2, d);
    putc_(o, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '"' || c == '\\') {
            putc_(o, '\\');
            putc_(o, (char)c);
        } else if (c < 0x20) {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(o, u, 6);
        } else {
            putc_(o, (char)c);
        }
    }
    putc_(o, '"');
    if (d != stackbuf)
        free(d);
}

typedef struct {
    size_t key, klen;   /* the canonical key text, within the output */
    size_t start, end;  /* the whole member "key":value */
} member;

static int cmp_members(const void *a, const void *b, void *base)
{
    const member *x = a, *y = b;
    const char *t = base;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(t + x->key, t + y->key, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static int value(cv_jwalk *w, int tok, buf *o, const char *ts_norm, int top);

static int object(cv_jwalk *w, buf *o, const char *ts_norm, int top)
{
    size_t open = o->n;
    putc_(o, '{');
    member stackm[32], *m = stackm;
    size_t nm = 0, capm = 32;
    int tok, rc = 0;
    while ((tok = cv_jwalk_next(w)) == CV_JW_KEY) {
        if (nm == capm) {
            capm *= 2;
            member *g = cv_malloc(capm * sizeof *g);
            memcpy(g, m, nm * sizeof *g);
            if (m != stackm)
                free(m);
            m = g;
        }
        if (nm)
            putc_(o, ',');
        m[nm].start = o->n;
        /* the key token is a string token followed by ':' */
        put_string(o, w->tok, w->len, w->escaped);
        m[nm].key = m[nm].start;
        m[nm].klen = o->n - m[nm].start;
        putc_(o, ':');
        bool is_ts = top && m[nm].klen == 4 && memcmp(o->b + m[nm].key, "\"ts\"", 4) == 0;
        tok = cv_jwalk_next(w);
        if (is_ts && ts_norm && tok == CV_JW_STRING) {
            putc_(o, '"');
            put(o, ts_norm, strlen(ts_norm));
            putc_(o, '"');
        } else if ((rc = value(w, tok, o, ts_norm, 0)) < 0) {
            goto out;
        }
        m[nm].end = o->n;
        nm++;
    }
    if (tok != CV_JW_OBJECT_END) {
        rc = -1;
        goto out;
    }
    /* sort the members; the keys are unique (duplicates were rejected) */
    if (nm > 1) {
        qsort_r(m, nm, sizeof *m, cmp_members, o->b);
        size_t body = open + 1, total = o->n - body;
        char *tmp = cv_malloc(total + 1);
        size_t t = 0;
        for (size_t i = 0; i < nm; i++) {
            if (i)
                tmp[t++] = ',';
            memcpy(tmp + t, o->b + m[i].start, m[i].end - m[i].start);
            t += m[i].end - m[i].start;
        }
        memcpy(o->b + body, tmp, t);
        free(tmp);
    }
    putc_(o, '}');
out:
    if (m != stackm)
        free(m);
    return rc;
}

static int value(cv_jwalk *w, int tok, buf *o, const char *ts_norm, int top)
{
    switch (tok) {
    case CV_JW_OBJECT:
        return object(w, o, ts_norm, top);
    case CV_JW_ARRAY: {
        putc_(o, '[');
        int first = 1;
        while ((tok = cv_jwalk_next(w)) != CV_JW_ARRAY_END) {
            if (tok < CV_JW_OBJECT || tok == CV_JW_KEY)
                return -1;
            if (!first)
                putc_(o, ',');
            first = 0;
            if (value(w, tok, o, ts_norm, 0) < 0)
                return -1;
        }
        putc_(o, ']');
        return 0;
    }
    case CV_JW_STRING:
        put_string(o, w->tok, w->len, w->escaped);
        return 0;
    case CV_JW_NUMBER:
    case CV_JW_TRUE:
    case CV_JW_FALSE:
    case CV_JW_NULL:
        put(o, w->tok, w->len);
        return 0;
    default:
        return -1;
    }
}

long cv_canonical(const char *text, size_t len, int max_depth,
                  const char *ts_norm, char **out, size_t *cap, char *err,
                  size_t errlen)
{
    cv_jwalk w;
    err[0] = '\0';
    cv_jwalk_init(&w, text, len, max_depth, err, errlen);
    buf o = {*out, 0, *cap};
    int tok = cv_jwalk_next(&w);
    int rc = tok == CV_JW_OBJECT ? object(&w, &o, ts_norm, 1) : -1;
    if (rc == 0 && cv_jwalk_next(&w) != CV_JW_EOF)
        rc = -1;
    *out = o.b;
    *cap = o.cap;
    if (rc < 0) {
        if (!err[0])
            snprintf(err, errlen, "not a JSON object");
        return -1;
    }
    return (long)o.n;
}
