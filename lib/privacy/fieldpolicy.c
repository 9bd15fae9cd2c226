/* fieldpolicy.c - applying the field policy to one event line. */
#include "privacy/fieldpolicy.h"

#include "base/event.h"
#include "base/jscan.h"
#include "base/jwalk.h"
#include "base/time.h"
#include "base/util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cv_protect {
    const cv_policy *policy;
    const cv_keyring *kr;
    cv_datakeys *ds; /* NULL: every field under the keyring */
    char *out;     /* reused output buffer */
    size_t outcap;
};

cv_protect *cv_fieldpolicy_new(const cv_policy *pol, const cv_keyring *kr,
                           cv_datakeys *ds)
{
    cv_protect *p = cv_calloc(1, sizeof *p);
    p->policy = pol;
    p->kr = kr;
    p->ds = ds;
    return p;
}

int cv_fieldpolicy_commit(cv_protect *p, char *err, size_t errlen)
{
    return p->ds ? cv_datakeys_commit(p->ds, err, errlen) : 0;
}

/* The data key for this event: its user's (a profile's privacy_level
 * first marks the user ephemeral or not), the hour's for an ephemeral
 * user. *dk stays NULL without a data-key store or a user_id. 0, or -1
 * when the store failed (a reason in err: try again later). */
static int event_key(cv_protect *p, const cv_jfield *f, const cv_datakey **dk,
                     char *err, size_t errlen)
{
    enum { F_ID, F_USER, F_KIND, F_TS, F_LEVEL };
    char user[CV_USER_MAX + 1], buf[64];
    *dk = NULL;
    if (!p->ds || f[F_USER].type != CV_JS_STRING ||
        !cv_jscan_field_string(&f[F_USER], user, sizeof user) || !*user)
        return 0;
    size_t ulen = strlen(user);
    if (f[F_KIND].type == CV_JS_STRING && f[F_LEVEL].type == CV_JS_STRING &&
        cv_jscan_field_string(&f[F_KIND], buf, sizeof buf) &&
        strcmp(buf, "profile") == 0 &&
        cv_jscan_field_string(&f[F_LEVEL], buf, sizeof buf) &&
        cv_datakeys_set_ephemeral(p->ds, user, ulen,
                                  strcmp(buf, "ephemeral") == 0, err,
                                  errlen) < 0)
        return -1;
    const char *ts = f[F_TS].type == CV_JS_STRING &&
                             cv_jscan_field_string(&f[F_TS], buf, sizeof buf)
                         ? buf : NULL;
    *dk = cv_datakeys_for_user(p->ds, user, ulen, ts, err, errlen);
    return *dk ? 0 : -1;
}

void cv_fieldpolicy_destroy(cv_protect **pp)
{
    cv_protect *p = *pp;
    if (!p)
        return;
    free(p->out);
    free(p);
    *pp = NULL;
}

/* The event's "id", decoded into buf (or a malloc'ed *heap when longer). */
static const char *id_text(const cv_jfield *id, char *buf, size_t cap,
                           char **heap)
{
    if (id->len + 8 > cap) {
        cap = id->len + 8;
        buf = *heap = cv_malloc(cap);
    }
    return cv_jscan_field_string(id, buf, cap) ? buf : NULL;
}

int cv_fieldpolicy_line(cv_protect *p, const char *line, size_t len,
                    const char **out, size_t *outlen, char *idout, size_t idcap,
                    char *reason, size_t rlen)
{
    char err[256], idbuf[256], *idheap = NULL;
    const char *event_id = NULL;
    const cv_datakey *dk;
    cv_jfield f[] = {{.name = "id"}, {.name = "user_id"}, {.name = "kind"},
                     {.name = "ts"}, {.name = "privacy_level"}};
    cv_jfield id = f[0];
    if (idcap)
        idout[0] = '\0';
    int scanned = cv_jscan_object(line, len, CV_JW_MAX_DEPTH, true, f,
                                  sizeof f / sizeof *f, err, sizeof err);
    id = f[0];
    if (scanned < 0) {
        if (strncmp(err, "not a JSON object", 17) == 0)
            snprintf(reason, rlen, "event is not a JSON object");
        else
            snprintf(reason, rlen, "invalid JSON: %s", err);
        goto reject;
    }
    if (scanned == 1) {
        /* the scanner could not rule out duplicate keys: let jansson */
        json_error_t je;
        json_t *ev = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
        if (!ev) {
            snprintf(reason, rlen, "invalid JSON at column %d: %s", je.column,
                     je.text);
            goto reject;
        }
        /* the scanner does not match escaped names: "\u0069d" is "id" */
        json_t *jid = json_object_get(ev, "id");
        if (id.type == CV_JS_ABSENT && json_is_string(jid) &&
            json_string_length(jid) > 0) {
            size_t n = json_string_length(jid);
            char *b = n < sizeof idbuf ? idbuf : (idheap = cv_malloc(n + 1));
            memcpy(b, json_string_value(jid), n + 1);
            event_id = b;
        }
        json_decref(ev);
    }
    if (!event_id) {
        if (id.type != CV_JS_STRING || id.len == 0 ||
            !(event_id = id_text(&id, idbuf, sizeof idbuf, &idheap))) {
            snprintf(reason, rlen, "event has no non-empty string \"id\"");
            goto reject;
        }
    }
    if (event_key(p, f, &dk, err, sizeof err) < 0) {
        snprintf(reason, rlen, "data-key store: %s", err);
        free(idheap);
        return 2;
    }
    if (cv_policy_apply_text(p->policy, p->kr, dk, line, len, event_id,
                             &p->out, outlen, &p->outcap, err,
                             sizeof err) < 0) {
        snprintf(reason, rlen, "cannot apply policy: %s", err);
        goto reject;
    }
    free(idheap);
    *out = p->out;
    return 0;
reject:
    if (event_id && strlen(event_id) < idcap)
        memcpy(idout, event_id, strlen(event_id) + 1);
    else if (!event_id && id.type == CV_JS_STRING && idcap &&
             !cv_jscan_field_string(&id, idout, idcap))
        idout[0] = '\0'; /* the id the scanner saw, for the NAK */
    free(idheap);
    return 1;
}
