/* ctxapi.h - the context API's read side on store's control
 * socket: context.load, context.list, interactions.query, profile.get and
 * db.size (doc/PROTOCOL.md, "Context API").
 *
 * Every op reads committed data through a read-only connection, with the
 * one query of lib/ops/query.h. Replies return what is stored (sealed
 * fields, pseudonyms) unless the request asks "decrypt":true and the
 * instance allows it ([pipeline] control_decrypt = yes); the caller
 * writes a decrypting reply to the audit trail (it holds the writer).
 *
 * Errors keep "error" a string, as every older reply has it, and name
 * their class beside it: {"ok":false,"error":"...","code":"bad_request"}. */
#ifndef CV_CTXAPI_H
#define CV_CTXAPI_H

#include "net/control.h"
#include "storage/db.h"
#include "ops/query.h"
#include "crypto/keyring.h"
#include "privacy/policy.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A request's JSON may be at most this long (the ops here read only). */
#define CV_CTXAPI_MAX_REQUEST 1048576
#define CV_CTXAPI_LIMIT 100   /* rows per reply by default */
#define CV_CTXAPI_LIMIT_MAX 1000

typedef struct {
    cv_db *db;               /* a read-only connection */
    const cv_policy *pol;    /* to look users up under their pseudonym */
    const cv_keyring *kr;    /* the same, and to decrypt when allowed */
    bool allow_decrypt;      /* [pipeline] control_decrypt */
} cv_ctxapi;

/* The read side's ops (net/control.h); their state is a cv_ctxapi, and
 * a handler sets the request's decrypted. */
extern const cv_control_family cv_ctxapi_family;

/* Answer req (its "op" one of ours; body_len the size of its JSON text).
 * Always a reply object. *decrypted is set when the reply holds
 * decrypted fields: the caller must record that in the audit trail. */
json_t *cv_ctxapi_answer(const cv_ctxapi *api, json_t *req, size_t body_len,
                         bool *decrypted);

/* Replies may carry a member as text to be copied in as it is (stored
 * bodies, which are JSON already): set_raw keeps it aside in the reply,
 * and reply_dump prints the reply with it spliced in. Every reply goes
 * out through reply_dump. */
void cv_ctxapi_set_raw(json_t *reply, const char *member, const char *text,
                    size_t len);
char *cv_ctxapi_reply_dump(json_t *reply);

/* The user's numbers (query.h), or an error reply: internal when the
 * lookup failed, not_found when there is no such user. */
json_t *cv_ctxapi_user_uids(cv_db *db, const cv_policy *pol, const cv_keyring *kr,
                         const char *user, int64_t uids[CV_USER_UIDS_MAX],
                         size_t *n);

/* Cursors: "c1.<ts>.<seq>", the last row a page returned (decimal ms and
 * seq); opaque to clients. decode: false when s is not one. */
#define CV_CURSOR_MAX 48
void cv_ctxapi_cursor_encode(int64_t ts, int64_t seq, char out[CV_CURSOR_MAX]);
bool cv_ctxapi_cursor_decode(const char *s, int64_t *ts, int64_t *seq);

/* The arguments of a reading request (user, name, since, until, type,
 * limit, cursor, decrypt), checked against what op takes: NULL with a
 * filled (its strings point into req), or the error reply to send
 * (bad_request: a member op does not take, or of the wrong type). */
typedef struct {
    cv_query q;
    const char *id;     /* context.load by the context's event id */
    bool decrypt;
} cv_ctx_args;
json_t *cv_ctxapi_parse(json_t *req, cv_ctx_args *a);

/* A time given as RFC 3339 text or ms since the epoch; absent or null:
 * -1. False when malformed. */
bool cv_ctxapi_time_arg(json_t *v, int64_t *ms);

#endif
