/* jscan.h - validate a JSON object and pick out top-level members, without
 * building a tree or allocating.
 *
 * store receives events that were parsed upstream; it still has to check
 * them, but a full jansson parse per event is its largest cost. This scanner
 * checks the whole RFC 8259 grammar (including UTF-8 and a depth limit) in
 * one pass and returns slices of the members it was asked for. */
#ifndef CV_JSCAN_H
#define CV_JSCAN_H

#include <stdbool.h>
#include <stddef.h>

enum {
    CV_JS_ABSENT = 0,
    CV_JS_STRING,
    CV_JS_NUMBER,
    CV_JS_TRUE,
    CV_JS_FALSE,
    CV_JS_NULL,
    CV_JS_OBJECT,
    CV_JS_ARRAY,
};

typedef struct {
    const char *name; /* in: the member's name (plain ASCII) */
    int type;         /* out: CV_JS_* */
    const char *val;  /* out: the value's text; for strings, inside quotes */
    size_t len;       /* out: its length */
    bool escaped;     /* out: a string holding backslash escapes */
} cv_jfield;

/* Check that text is exactly one JSON object (surrounding whitespace
 * allowed), at most max_depth deep. NUL bytes, raw or escaped as \u0000,
 * are rejected, and so are duplicate requested members. With check_dupes,
 * duplicate keys in any object are rejected too, as far as the scanner can
 * tell cheaply: it returns 0 when it proved there are none, and 1 when the
 * text is valid but an object was too large or had escaped keys, so the
 * caller must check with a full parser. Without check_dupes, valid is 1.
 * Invalid is -1, with a reason naming the byte offset. */
int cv_jscan_object(const char *text, size_t len, int max_depth,
                    bool check_dupes, cv_jfield *fields, size_t nfields,
                    char *err, size_t errlen);

/* Copy a string member into out (NUL-terminated), decoding escapes.
 * false when it does not fit or is not a string. */
bool cv_jfield_string(const cv_jfield *f, char *out, size_t outlen);

#endif
