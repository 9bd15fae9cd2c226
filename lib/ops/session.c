/* session.c - a command's session with the writer, local or through
 * store (session.h). */
#include "ops/session.h"

#include "ops/maint.h"
#include "crypto/datakeys.h"
#include "base/util.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct cv_session {
    cv_writer m;          /* local: the writer's connection */
    cv_keyring *kr;
    cv_datakeys *ds;
    cv_policy *pol;
    cv_control *ctl;     /* remote: the running store */
    json_t *reply;       /* local: the reply of the request sent */
};

cv_session *cv_session_open(const cv_config *cfg, const char *program,
                                bool via_store_only, int *status)
{
    char err[1024];
    int code = 0, problems = 0;
    cv_session *s = cv_calloc(1, sizeof *s);
    cv_recovery rec;
    if (via_store_only) {
        s->ctl = cv_control_find(cfg, 2000);
        if (s->ctl)
            return s;
        cv_err("no store answers on %s: try again when it does", cfg->ep_control);
        *status = EX_TEMPFAIL;
        goto fail;
    }
    s->m.db = cv_db_open_writer_fast(cfg, program, &rec, &code, err, sizeof err);
    if (!s->m.db && code == EX_TEMPFAIL) {
        /* store holds the lock: ask it */
        s->ctl = cv_control_find(cfg, 2000);
        if (s->ctl)
            return s;
        cv_err("%s, and no store answers on %s: try again when it does",
               err, cfg->ep_control);
        *status = EX_TEMPFAIL;
        goto fail;
    }
    if (!s->m.db) {
        cv_err("%s", err);
        *status = code;
        goto fail;
    }
    s->kr = cv_keyring_load(cfg->keyring_file, err, sizeof err);
    if (!s->kr) {
        cv_err("%s", err);
        *status = EX_CONFIG;
        goto fail;
    }
    s->pol = cv_policy_load(cfg->policy_file, true, &problems);
    if (!s->pol || problems) {
        *status = EX_CONFIG;
        goto fail;
    }
    s->ds = cv_datakeys_of_instance(cfg->datakeys_file, s->kr, true,
                                    cv_policy_ephemeral_ms(s->pol));
    if (!s->ds) {
        *status = EX_CANTCREAT;
        goto fail;
    }
    s->m.kr = s->kr;
    s->m.cfg = cfg;
    s->m.pol = s->pol;
    s->m.ds = s->ds;
    return s;
fail:
    cv_session_close(&s);
    return NULL;
}

json_t *cv_session_call(cv_session *s, json_t *req, char *err,
                        size_t errlen)
{
    if (cv_session_send_blobs(s, req, NULL, 0, err, errlen) < 0)
        return NULL;
    return cv_session_recv(s, err, errlen);
}

json_t *cv_session_ok(json_t *reply, const char *err, const char *who)
{
    if (!reply) {
        cv_err("%s: %s", who, err);
        return NULL;
    }
    if (!json_is_true(json_object_get(reply, "ok"))) {
        cv_err("%s: %s", who, json_string_value(json_object_get(reply, "error")));
        json_decref(reply);
        return NULL;
    }
    return reply;
}

int cv_session_send_blobs(cv_session *s, json_t *req,
                          const cv_blob *blobs, size_t n, char *err,
                          size_t errlen)
{
    if (s->ctl)
        return cv_control_send(s->ctl, req, blobs, n, 60000, err, errlen);
    json_decref(s->reply);
    s->reply = cv_maint_do_blobs(&s->m, req, blobs, n);
    if (!s->reply) {
        snprintf(err, errlen, "unknown request");
        return -1;
    }
    return 0;
}

json_t *cv_session_recv(cv_session *s, char *err, size_t errlen)
{
    if (s->ctl)
        return cv_control_recv(s->ctl, 60000, err, errlen);
    json_t *r = s->reply;
    s->reply = NULL;
    if (!r)
        snprintf(err, errlen, "no request was sent");
    return r;
}

bool cv_session_is_local(const cv_session *s) { return s->ctl == NULL; }

void cv_session_close(cv_session **p)
{
    cv_session *s = *p;
    if (!s)
        return;
    json_decref(s->reply);
    cv_control_destroy(&s->ctl);
    cv_db_close(&s->m.db);
    cv_policy_destroy(&s->pol);
    cv_datakeys_destroy(&s->ds);
    cv_keyring_destroy(&s->kr);
    free(s);
    *p = NULL;
}

char *cv_session_actor(void)
{
    const char *sudo = getenv("SUDO_USER");
    struct passwd *pw = getpwuid(getuid());
    return cv_fmt("%s (uid %u)%s%s", pw ? pw->pw_name : "?", (unsigned)getuid(),
                  sudo ? " via sudo from " : "", sudo ? sudo : "");
}
