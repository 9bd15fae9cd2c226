/* jwalk.h - a validating pull tokenizer over JSON text, without allocation.
 *
 * Each call yields the next token and its byte slice, checking the whole
 * RFC 8259 grammar on the way (UTF-8, escapes, control characters, NUL
 * bytes as raw bytes or \u0000, lone surrogates, nesting depth), so a
 * caller can rewrite a document by copying the slices it keeps and
 * replacing the ones it changes, instead of building a tree and
 * serialising it again (policy.c does this for every event).
 *
 * Numbers are also held to what jansson loads: an integer must fit a long
 * long and a real must not overflow a double. So text that the walker
 * accepts also loads with jansson (same grammar, same limits), and a value
 * slice from it can be handed to json_loadb(JSON_DECODE_ANY). */
#ifndef CV_JWALK_H
#define CV_JWALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_JW_MAX_DEPTH 2048 /* jansson's own parsing limit */

enum {
    CV_JW_ERROR = -1, /* reason (with a byte offset) in err */
    CV_JW_EOF = 0,    /* the top-level value is complete, nothing follows */
    CV_JW_OBJECT,     /* '{' */
    CV_JW_OBJECT_END, /* '}' */
    CV_JW_ARRAY,      /* '[' */
    CV_JW_ARRAY_END,  /* ']' */
    CV_JW_KEY,        /* a member name; its ':' has been read too */
    CV_JW_STRING,
    CV_JW_NUMBER,
    CV_JW_TRUE,
    CV_JW_FALSE,
    CV_JW_NULL,
};

typedef struct {
    /* the last token: its text (strings and keys with their quotes) */
    const char *tok;
    size_t len;
    bool escaped;  /* a string or key holding backslash escapes */
    int depth;     /* containers open after the last token */
    /* private */
    const unsigned char *start, *p, *end;
    int max_depth;
    int state;
    char *err;
    size_t errlen;
    uint8_t is_obj[CV_JW_MAX_DEPTH / 8]; /* per open container */
} cv_jwalk;

/* Start on text (len bytes; need not be NUL-terminated). max_depth is
 * capped at CV_JW_MAX_DEPTH. Errors are written to err. */
void cv_jwalk_init(cv_jwalk *w, const char *text, size_t len, int max_depth,
                   char *err, size_t errlen);
/* The next token (CV_JW_*). After an error or the end it keeps returning
 * the same. */
int cv_jwalk_next(cv_jwalk *w);
/* Right after CV_JW_OBJECT or CV_JW_ARRAY: read (and check) everything up
 * to the matching end token, which is then the last token. Returns it, or
 * CV_JW_ERROR. */
int cv_jwalk_skip(cv_jwalk *w);

/* Decode the body of a string token the walker accepted (without its
 * quotes) into out, which needs room for len + 1 bytes: decoding never
 * grows the text. Returns the decoded length; out is NUL-terminated. */
size_t cv_jwalk_unescape(const char *body, size_t len, char *out);

#endif
