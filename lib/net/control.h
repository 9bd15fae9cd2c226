/* control.h - asking the running store: a DEALER connected to the
 * instance's control endpoint, one request at a time, each with a
 * timeout (doc/PROTOCOL.md); and, for the server's side, the replies of
 * refusals and the rows of its op table. */
#ifndef CV_CONTROL_H
#define CV_CONTROL_H

#include "base/config.h"
#include "storage/db.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct cv_control cv_control;

/* Bytes carried beside a request's JSON, one frame each (scrub's bodies:
 * no JSON escaping to pay for on either side). */
typedef struct {
    const void *data;
    size_t len;
} cv_blob;

/* Connect (nothing is sent yet). NULL with a reason in err. */
cv_control *cv_control_new(const cv_config *cfg, char *err, size_t errlen);
void cv_control_destroy(cv_control **p);

/* Send request and wait up to timeout_ms for the reply. The reply, or NULL
 * with a reason in err (no store answered in time, or a broken reply). A
 * reply {"ok":false,...} is returned as it is. */
json_t *cv_control_call(cv_control *c, json_t *request, int timeout_ms,
                        char *err, size_t errlen);
/* The same with the request and the reply as text (a big one need not
 * be parsed and printed again on the way): the reply, malloc'ed and
 * NUL-terminated, its length in *reply_len; it is not checked to be JSON.
 * NULL with a reason in err. */
char *cv_control_call_text(cv_control *c, const char *request, size_t len,
                           int timeout_ms, size_t *reply_len, char *err,
                           size_t errlen);
/* The call in two halves (with n blobs sent as frames after the JSON),
 * so a client can prepare its next request while
 * store answers this one (replies come in the order of the requests).
 * send: 0, or -1 with a reason in err. */
int cv_control_send(cv_control *c, json_t *request, const cv_blob *blobs,
                    size_t n, int timeout_ms, char *err, size_t errlen);
json_t *cv_control_recv(cv_control *c, int timeout_ms, char *err,
                        size_t errlen);

/* Is a store answering on the control endpoint? A ping with a short
 * timeout; the connection is kept for more calls when it answers. */
cv_control *cv_control_find(const cv_config *cfg, int timeout_ms);

/* The error codes, as the replies and the metric label spell them. */
#define CV_ERR_BAD_REQUEST "bad_request"
#define CV_ERR_UNKNOWN_OP "unknown_op"
#define CV_ERR_NOT_FOUND "not_found"
#define CV_ERR_TOO_LARGE "too_large"
#define CV_ERR_FORBIDDEN "forbidden"
#define CV_ERR_INTERNAL "internal"

/* The server's side, the one builder of a failed request's reply:
 * {"ok":false,"error":MESSAGE}, the message made from fmt and its
 * arguments. code, when not NULL, names the error's class ("code", one of
 * CV_ERR_*); status, when not 0, is the sysexits status a command should
 * exit with ("status"). */
json_t *cv_control_error(const char *code, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* NULL when every member of req other than "op" and "actor" is one of
 * members (NULL-terminated) and "actor", when there, a string; else the
 * bad_request reply naming the first that is not. */
json_t *cv_control_check_members(json_t *req, const char *const *members);

/* An optional member that must be a non-empty string without NUL: NULL
 * (with *out set, NULL when absent or null) or the bad_request reply. */
json_t *cv_control_string_arg(json_t *req, const char *name, const char **out);

/* ms since the epoch as RFC 3339 text; null when ms < 0 (never). */
json_t *cv_control_time_json(int64_t ms);

/* The database failed: roll db's transaction back, and the reply that
 * says why ("WHAT: sqlite's message", EX_IOERR). */
json_t *cv_control_db_fail(cv_db *db, const char *what);

/* --- the server's ops: a row per op, a family per handler module --- */

/* Each family of handlers (ops/maint.c, ctx/ctxapi.c, ...) exports its
 * rows beside its handlers; store's table (serve/store_serve.c) composes
 * the families, and drives the dispatch, the op list of ctxvault-store
 * --ops (which doc/PROTOCOL.md must match) and the metric labels. */

/* What an op does to stored data (doc/PROTOCOL.md, "The ops"): the
 * column a client's permissions are granted by. */
typedef enum {
    CV_CONTROL_READ,  /* changes nothing stored */
    CV_CONTROL_WRITE, /* stores or changes user data, as an application does */
    CV_CONTROL_ADMIN, /* maintenance and data governance: sweep, scrub,
                         erase, rectify, rewrap, archives, compaction, audit */
} cv_control_kind;

/* "read", "write" or "admin". */
const char *cv_control_kind_name(cv_control_kind k);

typedef struct cv_control_op cv_control_op;

/* One request to carry out. */
typedef struct {
    const cv_control_op *op;  /* its row */
    json_t *req;              /* the request; its "op" is op's name */
    size_t len;               /* the size of its JSON text */
    const cv_blob *blobs;     /* the frames after the JSON */
    size_t nblobs;
    bool decrypted;           /* set by a handler whose reply holds
                                 decrypted fields: the server records
                                 that in the audit trail first */
} cv_control_request;

/* A handler: state is its family's (a cv_writer, a cv_ctxapi, ...).
 * Always a reply. */
typedef json_t *cv_control_handler(void *state, cv_control_request *r);

struct cv_control_op {
    const char *name;         /* the "op" of its requests */
    cv_control_kind kind;
    cv_control_handler *fn;
    const void *spec;         /* the family's own data on the op (the
                                 members it takes ...), or NULL */
};

typedef struct {
    const cv_control_op *ops; /* ending with a NULL name */
    size_t max_request;       /* bytes of JSON its requests may have
                                 (0: no limit); more: too_large */
} cv_control_family;

/* f's row named name, or NULL. */
const cv_control_op *cv_control_find_op(const cv_control_family *f,
                                        const char *name);
/* Carry out r (its op one of f's rows) with state: too_large past f's
 * limit, else the row's reply. */
json_t *cv_control_run(const cv_control_family *f, void *state,
                       cv_control_request *r);
/* The same for a request of f whose row is not looked up yet (r->op is
 * set here): unknown_op when f has none of that name. */
json_t *cv_control_answer(const cv_control_family *f, void *state,
                          cv_control_request *r);

#endif
