/* session.h - how a command sends changes to the writer (maint.h): a
 * session is local when the writer lock was free (the command holds it
 * for its run and carries each request out itself, cv_maint_do_blobs) or
 * remote when store holds it (requests go over store's control socket).
 * cv_session_open picks, so the same commands work from cron with no
 * daemon. */
#ifndef CV_SESSION_H
#define CV_SESSION_H

#include "base/config.h"
#include "net/control.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* A session for a command: local (the lock was free) or remote (store). */
typedef struct cv_session cv_session;
/* NULL with a reason logged and *status set (EX_TEMPFAIL: the database is
 * locked but no store answers; EX_CONFIG ...). A supervised service asks
 * via_store_only: it must never hold the lock a restarting store needs. */
cv_session *cv_session_open(const cv_config *cfg, const char *program,
                                bool via_store_only, int *status);
/* A reply as cv_maint_do gives it, or NULL with a reason in err (store did
 * not answer in time). Takes nothing from req. */
json_t *cv_session_call(cv_session *s, json_t *req, char *err,
                        size_t errlen);
/* The call in two halves, one request in flight: a remote session sends
 * now and waits in recv (the caller works meanwhile); a local one carries
 * the request out in send and hands the reply over in recv. send: 0 or -1
 * with a reason in err; recv as cv_session_call. Takes nothing from req. */
int cv_session_send_blobs(cv_session *s, json_t *req,
                          const cv_blob *blobs, size_t n, char *err,
                          size_t errlen);
json_t *cv_session_recv(cv_session *s, char *err, size_t errlen);
/* A reply of cv_session_call or cv_session_recv (NULL: err says why) when it
 * is {"ok":true}; else NULL, the reason logged as "who: reason" and the
 * reply freed. */
json_t *cv_session_ok(json_t *reply, const char *err, const char *who);
bool cv_session_is_local(const cv_session *s);
void cv_session_close(cv_session **p);

/* Who is asking, for the audit trail: the login name and uid. */
char *cv_session_actor(void);

#endif
