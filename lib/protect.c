/* protect.c - applying the field policy to one event line. */
#include "protect.h"

#include "jscan.h"
#include "jwalk.h"
#include "util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cv_protect {
    const cv_policy *policy;
    const cv_keyring *kr;
    char *out;     /* reused output buffer */
    size_t outcap;
};

cv_protect *cv_protect_new(const cv_policy *pol, const cv_keyring *kr)
{
    cv_protect *p = cv_calloc(1, sizeof *p);
    p->policy = pol;
    p->kr = kr;
    return p;
}

void cv_protect_destroy(cv_protect **pp)
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
    return cv_jfield_string(id, buf, cap) ? buf : NULL;
}

int cv_protect_line(cv_protect *p, const char *line, size_t len,
                    const char **out, size_t *outlen, char *idout, size_t idcap,
                    char *reason, size_t rlen)
{
    char err[256], idbuf[256], *idheap = NULL;
    const char *event_id = NULL;
    cv_jfield id = {.name = "id"};
    if (idcap)
        idout[0] = '\0';
    int scanned = cv_jscan_object(line, len, CV_JW_MAX_DEPTH, true, &id, 1,
                                  err, sizeof err);
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
    if (cv_policy_apply_text(p->policy, p->kr, line, len, event_id, &p->out,
                             outlen, &p->outcap, err, sizeof err) < 0) {
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
             !cv_jfield_string(&id, idout, idcap))
        idout[0] = '\0'; /* the id the scanner saw, for the NAK */
    free(idheap);
    return 1;
}
