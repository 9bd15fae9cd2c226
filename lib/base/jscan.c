/* jscan.c - validate an event object and pick out its top-level members,
 * on top of the jwalk tokenizer (one scanner for the whole project). */
#include "base/jscan.h"

#include "base/fieldname.h"
#include "base/jwalk.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_KEYS 512     /* keys remembered across the open objects */
#define MAX_OBJ_KEYS 32  /* beyond this, an object's keys are not compared */

static int type_of(int tok)
{
    switch (tok) {
    case CV_JW_STRING: return CV_JS_STRING;
    case CV_JW_NUMBER: return CV_JS_NUMBER;
    case CV_JW_TRUE: return CV_JS_TRUE;
    case CV_JW_FALSE: return CV_JS_FALSE;
    case CV_JW_NULL: return CV_JS_NULL;
    case CV_JW_OBJECT: return CV_JS_OBJECT;
    case CV_JW_ARRAY: return CV_JS_ARRAY;
    default: return CV_JS_ABSENT;
    }
}

int cv_jscan_object(const char *text, size_t len, int max_depth,
                    bool check_dupes, cv_jfield *fields, size_t nfields,
                    char *err, size_t errlen)
{
    /* the requested names, folded once */
    enum { NAME_MAX_ = 32 };
    char folded[nfields ? nfields : 1][2][NAME_MAX_];
    size_t flen[nfields ? nfields : 1][2];
    for (size_t i = 0; i < nfields; i++) {
        memset(&fields[i].m, 0, sizeof fields[i].m);
        if (fields[i].again)
            memset(fields[i].again, 0, sizeof *fields[i].again);
        for (int a = 0; a < 2; a++) {
            const char *nm = a ? fields[i].alias : fields[i].name;
            size_t n = nm ? strlen(nm) : 0;
            flen[i][a] = nm && n <= NAME_MAX_ ? cv_fieldname_fold(nm, n, folded[i][a])
                                              : (size_t)-1;
        }
    }
    size_t lead = 0;
    while (lead < len && strchr(" \t\r\n", text[lead]) && text[lead])
        lead++;
    if (lead == len || text[lead] != '{') {
        snprintf(err, errlen, lead == len ? "empty input" : "not a JSON object");
        return -1;
    }
    cv_jwalk w;
    cv_jwalk_init(&w, text, len, max_depth, err, errlen);
    int tok = cv_jwalk_next(&w);
    /* Keys of the open objects, as a stack: the object at depth d owns
     * keys[first[d]..nkeys). Small objects are compared pairwise, which is
     * cheaper than hashing; anything unusual is left to the caller. */
    struct { const char *p; size_t n; } keys[MAX_KEYS];
    int first[CV_JW_MAX_DEPTH + 1];
    int nkeys = 0;
    bool unproven = !check_dupes;
    first[1] = 0;
    cv_jmember *pending = NULL; /* the requested member whose value is next */
    cv_jmember *open = NULL;    /* a requested member whose container is open */
    while ((tok = cv_jwalk_next(&w)) != CV_JW_EOF) {
        switch (tok) {
        case CV_JW_ERROR:
            return -1;
        case CV_JW_KEY: {
            const char *name = w.tok + 1;
            size_t nlen = w.len - 2;
            if (!unproven) {
                int from = first[w.depth];
                for (int k = from; k < nkeys && !w.escaped; k++)
                    if (keys[k].n == nlen && memcmp(keys[k].p, name, nlen) == 0) {
                        snprintf(err, errlen, "duplicate key \"%.*s\" at byte %zu",
                                 (int)(nlen > 40 ? 40 : nlen), name,
                                 (size_t)(w.tok - text) + 1);
                        return -1;
                    }
                if (w.escaped || nkeys >= MAX_KEYS || nkeys - from >= MAX_OBJ_KEYS)
                    unproven = true;
                else
                    keys[nkeys].p = name, keys[nkeys].n = nlen, nkeys++;
            }
            if (w.depth == 1 && !w.escaped) {
                for (size_t i = 0; i < nfields; i++) {
                    if (!(flen[i][0] != (size_t)-1 &&
                          cv_fieldname_is(name, nlen, folded[i][0], flen[i][0])) &&
                        !(flen[i][1] != (size_t)-1 &&
                          cv_fieldname_is(name, nlen, folded[i][1], flen[i][1])))
                        continue;
                    cv_jmember *m = &fields[i].m;
                    if (m->type != CV_JS_ABSENT) {
                        m = fields[i].again;
                        if (!m || m->type != CV_JS_ABSENT) {
                            snprintf(err, errlen, "duplicate key \"%.*s\" at byte "
                                     "%zu (\"%s\" given twice)",
                                     (int)(nlen > 40 ? 40 : nlen), name,
                                     (size_t)(w.tok - text) + 1, fields[i].name);
                            return -1;
                        }
                    }
                    m->key = name;
                    m->keylen = nlen;
                    m->at = w.tok;
                    pending = m;
                    break;
                }
            }
            continue;
        }
        case CV_JW_OBJECT:
            first[w.depth] = nkeys;
            break;
        case CV_JW_OBJECT_END:
            nkeys = first[w.depth + 1];
            break;
        default:
            break;
        }
        if (open && w.depth == 1 &&
            (tok == CV_JW_OBJECT_END || tok == CV_JW_ARRAY_END)) {
            open->end = w.tok + w.len;
            open = NULL;
        }
        if (pending && tok != CV_JW_OBJECT_END && tok != CV_JW_ARRAY_END) {
            pending->type = type_of(tok);
            pending->escaped = w.escaped;
            if (tok == CV_JW_STRING) {
                pending->val = w.tok + 1;
                pending->len = w.len - 2;
            } else {
                pending->val = w.tok;
                pending->len = w.len; /* containers: just the opening byte */
            }
            pending->end = w.tok + w.len;
            if (tok == CV_JW_OBJECT || tok == CV_JW_ARRAY)
                open = pending;
            pending = NULL;
        }
    }
    return unproven ? 1 : 0;
}

bool cv_jscan_field_string(const cv_jfield *f, char *out, size_t outlen)
{
    return cv_jscan_member_string(&f->m, out, outlen);
}

bool cv_jscan_member_string(const cv_jmember *f, char *out, size_t outlen)
{
    if (f->type != CV_JS_STRING || f->len >= outlen)
        return false;
    cv_jwalk_unescape(f->val, f->len, out);
    return true;
}
