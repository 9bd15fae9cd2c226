/* envcheck.c - what each stored string is, and a walk over a body's
 * sealed values (envcheck.h). */
#include "crypto/envcheck.h"

#include "crypto/fieldcrypt.h"
#include "base/jwalk.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

/* ---- one decision per envelope ---------------------------------------- */

cv_envcheck_kind cv_envcheck_classify(const cv_keyring *kr, const char *s,
                                 size_t len, uint32_t *version)
{
    if (len >= 5 && !memcmp(s, "hash:", 5))
        return CV_ENV_PSEUDONYM;
    if (len >= 5 && !memcmp(s, "enc:d", 5))
        return CV_ENV_DATAKEY;
    if (len < 6 || memcmp(s, "enc:v", 5) != 0 || s[5] < '1' || s[5] > '9')
        return CV_ENV_NONE;
    uint64_t v = 0;
    size_t i = 5;
    for (; i < len && s[i] >= '0' && s[i] <= '9' && v <= UINT32_MAX; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    if (i == len || s[i] != ':' || v > UINT32_MAX)
        return CV_ENV_NONE;
    *version = (uint32_t)v;
    /* a value that only looks like one was sealed as a plain value would
     * be; one with an algorithm but broken parts was altered */
    if (!cv_fieldcrypt_is_envelope(s))
        return strncmp(s + i + 1, "aes256gcm:", 10) == 0 ||
                       strncmp(s + i + 1, "xchacha20poly1305:", 18) == 0
                   ? CV_ENV_MALFORMED : CV_ENV_NONE;
    return *version == cv_keyring_primary(kr) ? CV_ENV_CURRENT : CV_ENV_OLD;
}

/* ---- walking a body's string values ------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = cv_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Where each open container's path ends: per thread, as deep as jwalk. */
static _Thread_local size_t bases[CV_JW_MAX_DEPTH + 2];

int cv_envcheck_fields(const char *body, size_t len, cv_envcheck_field_fn fn, void *arg,
                       char **out, size_t *outlen, char *err, size_t errlen)
{
    cv_jwalk w;
    buf path = {0}, val = {0}, res = {0};
    size_t copied = 0;
    int n = 0, t;
    *out = NULL;
    put(&path, "", 0);
    cv_jwalk_init(&w, body, len, CV_JW_MAX_DEPTH, err, errlen);
    while ((t = cv_jwalk_next(&w)) > CV_JW_EOF) {
        switch (t) {
        case CV_JW_OBJECT:
        case CV_JW_ARRAY: /* array elements share their array's path */
            bases[w.depth] = path.len;
            break;
        case CV_JW_OBJECT_END:
        case CV_JW_ARRAY_END:
            path.len = bases[w.depth + 1];
            path.p[path.len] = '\0';
            break;
        case CV_JW_KEY: {
            path.len = bases[w.depth];
            if (w.depth > 1) /* dotted below the top, as the policy names it */
                put(&path, ".", 1);
            size_t at = path.len;
            put(&path, w.tok + 1, w.len - 2);
            if (w.escaped)
                path.len = at + cv_jwalk_unescape(w.tok + 1, w.len - 2,
                                                  path.p + at);
            break;
        }
        case CV_JW_STRING: {
            /* envelopes and pseudonyms are base64url and colons: never
             * escaped, so an escaped string is none of them */
            size_t vl = w.len - 2;
            if (w.escaped || vl < 5 ||
                (memcmp(w.tok + 1, "enc:", 4) && memcmp(w.tok + 1, "hash:", 5)))
                break;
            val.len = 0;
            put(&val, w.tok + 1, vl);
            char *repl = NULL;
            if (fn(arg, path.p, val.p, vl, &repl) < 0) {
                snprintf(err, errlen, "field %s: stopped", path.p);
                goto fail;
            }
            if (repl) {
                size_t at = (size_t)(w.tok + 1 - body);
                put(&res, body + copied, at - copied);
                put(&res, repl, strlen(repl));
                free(repl);
                copied = at + vl;
                n++;
            }
            break;
        }
        default:
            break;
        }
    }
    if (t == CV_JW_ERROR)
        goto fail;
    if (n) {
        put(&res, body + copied, len - copied);
        *out = res.p;
        *outlen = res.len;
        res.p = NULL;
    }
    free(path.p);
    free(val.p);
    return n;
fail:
    free(path.p);
    free(val.p);
    free(res.p);
    return -1;
}
