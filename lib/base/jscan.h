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

/* One member as found: its value, and where it lies in the text, so a
 * caller can cut it out. */
#define CV_JMEMBER_FIELDS                                                   \
    int type;         /* CV_JS_* */                                         \
    const char *val;  /* the value's text; for strings, inside quotes */    \
    size_t len;       /* its length (containers: just the opening byte) */  \
    bool escaped;     /* a string holding backslash escapes */              \
    const char *key;  /* the name as written, inside its quotes */          \
    size_t keylen;                                                          \
    const char *at;   /* where the member begins: its name's quote */       \
    const char *end;  /* just past its value */
typedef struct {
    CV_JMEMBER_FIELDS
} cv_jmember;

/* A member asked for. Names match as fieldname.h folds them, so "userId"
 * is found for "user_id"; alias is a second name (folded or not). */
typedef struct {
    const char *name;   /* in: the canonical name (plain ASCII) */
    const char *alias;  /* in: another name for it, or NULL */
    cv_jmember *again;  /* in: where a second member of this name goes;
                           NULL: a second one is an error */
    union {             /* out */
        cv_jmember m;
        struct { CV_JMEMBER_FIELDS };
    };
} cv_jfield;

/* Check that text is exactly one JSON object (surrounding whitespace
 * allowed), at most max_depth deep. NUL bytes, raw or escaped as \u0000,
 * are rejected, and so are duplicate requested members (two members whose
 * names fold alike, see fieldname.h), unless the field has room for the
 * second in .again (a third is always an error). With check_dupes,
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
bool cv_jscan_field_string(const cv_jfield *f, char *out, size_t outlen);
bool cv_jscan_member_string(const cv_jmember *m, char *out, size_t outlen);

#endif
