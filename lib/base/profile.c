/* profile.c - a user's privacy settings as a profile event states them
 * (profile.h). */
#include "base/profile.h"

#include "base/util.h"

#include <stdio.h>
#include <string.h>

#define BAD(...) (snprintf(reason, rlen, __VA_ARGS__), -1)

static const char *const names[] = {"", "public", "private", "anonymous",
                                    "ephemeral"};

bool cv_profile_privacy_parse(const char *s, cv_privacy *out)
{
    for (int i = 1; i < 5; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (cv_privacy)i;
            return true;
        }
    return false;
}

const char *cv_profile_privacy_name(cv_privacy p)
{
    return (p >= 0 && p <= CV_PRIVACY_EPHEMERAL) ? names[p] : "";
}

/* The profile fields of a profile event. */
int cv_profile_from_fields(const cv_jfield *lvl, const cv_jfield *days,
                           cv_profile *p, char *reason, size_t rlen)
{
    memset(p, 0, sizeof *p);
    p->known = true;
    p->retention_days = CV_DAYS_UNSET;
    if (lvl->type == CV_JS_STRING) {
        char buf[32];
        if (!cv_jscan_field_string(lvl, buf, sizeof buf) ||
            !cv_profile_privacy_parse(buf, &p->privacy))
            return BAD("\"privacy_level\" must be public, private, "
                          "anonymous or ephemeral");
    } else if (lvl->type != CV_JS_ABSENT && lvl->type != CV_JS_NULL) {
        return BAD("\"privacy_level\" must be a string");
    }
    if (days->type == CV_JS_NUMBER) {
        char buf[24];
        int64_t d;
        if (days->len >= sizeof buf)
            return BAD("\"retention_days\" is out of range");
        memcpy(buf, days->val, days->len);
        buf[days->len] = '\0';
        if (!cv_parse_int(buf, 0, 36500, &d))
            return BAD("\"retention_days\" must be a whole number of days "
                          "from 0 to 36500, or null for forever");
        p->retention_days = d;
    } else if (days->type == CV_JS_STRING || days->type == CV_JS_NULL) {
        /* "forever" is how applications say null */
        if (days->type == CV_JS_STRING &&
            (days->len != 7 || memcmp(days->val, "forever", 7) != 0))
            return BAD("\"retention_days\" must be a number of days, "
                       "\"forever\" or null");
        p->retention_days = CV_DAYS_FOREVER;
    } else if (days->type != CV_JS_ABSENT) {
        return BAD("\"retention_days\" must be a number of days, "
                   "\"forever\" or null");
    }
    return 0;
}

/* The members of a privacy policy an application may send with a profile
 * (autoDelete, anonymization, encryption; retentionDays is retention_days
 * itself, fieldname.h), folded into the profile they mean. */
int cv_profile_from_event(const char *line, size_t len, int max_depth,
                          const cv_jfield *lvl, const cv_jfield *days,
                          cv_profile *p, char *reason, size_t rlen)
{
    if (cv_profile_from_fields(lvl, days, p, reason, rlen) < 0)
        return -1;
    enum { F_AUTO, F_ANON, F_ENC, NF };
    cv_jfield f[NF] = {{.name = "auto_delete"}, {.name = "anonymization",
                                                 .alias = "anonymisation"},
                       {.name = "encryption"}};
    char why[160];
    if (cv_jscan_object(line, len, max_depth, false, f, NF, why, sizeof why) < 0)
        return BAD("invalid JSON: %s", why);
    /* no automatic purge: kept until the user deletes it, as long as each
     * kind's cap allows, whatever retention they also gave */
    if (f[F_AUTO].type == CV_JS_FALSE)
        p->retention_days = CV_DAYS_FOREVER;
    else if (f[F_AUTO].type != CV_JS_ABSENT && f[F_AUTO].type != CV_JS_TRUE &&
             f[F_AUTO].type != CV_JS_NULL)
        return BAD("\"autoDelete\" must be true or false");
    if (f[F_ANON].type == CV_JS_TRUE) {
        if (p->privacy != CV_PRIVACY_UNSET && p->privacy != CV_PRIVACY_ANONYMOUS)
            return BAD("\"anonymization\": true contradicts \"privacy_level\": "
                       "\"%s\"", cv_profile_privacy_name(p->privacy));
        p->privacy = CV_PRIVACY_ANONYMOUS;
    } else if (f[F_ANON].type != CV_JS_ABSENT && f[F_ANON].type != CV_JS_FALSE &&
               f[F_ANON].type != CV_JS_NULL) {
        return BAD("\"anonymization\" must be true or false");
    }
    /* the operator's policy decides what is sealed: a user may ask for
     * more ("strong", "medium": it is already so), never for none */
    if (f[F_ENC].type == CV_JS_STRING) {
        char buf[16];
        if (!cv_jscan_field_string(&f[F_ENC], buf, sizeof buf) ||
            (strcmp(buf, "strong") && strcmp(buf, "medium") && strcmp(buf, "none")))
            return BAD("\"encryption\" must be strong, medium or none");
        if (!strcmp(buf, "none"))
            return BAD("\"encryption\": \"none\" is refused: the operator's "
                       "policy seals the fields it names, for every user");
    } else if (f[F_ENC].type != CV_JS_ABSENT && f[F_ENC].type != CV_JS_NULL) {
        return BAD("\"encryption\" must be strong, medium or none");
    }
    return 0;
}
