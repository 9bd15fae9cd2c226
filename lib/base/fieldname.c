/* fieldname.c - folded member names (fieldname.h). */
#include "base/fieldname.h"

#include <string.h>

static inline bool skipped(unsigned char c)
{
    return c == '_' || c == '-';
}

static inline unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

size_t cv_fieldname_fold(const char *s, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!skipped(c))
            out[k++] = (char)lower(c);
    }
    return k;
}

bool cv_fieldname_is(const char *s, size_t n, const char *folded, size_t flen)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (skipped(c))
            continue;
        if (k == flen || lower(c) != (unsigned char)folded[k])
            return false;
        k++;
    }
    return k == flen;
}

bool cv_fieldname_eq(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < an && skipped((unsigned char)a[i]))
            i++;
        while (j < bn && skipped((unsigned char)b[j]))
            j++;
        if (i == an || j == bn)
            return i == an && j == bn;
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[j]))
            return false;
        i++, j++;
    }
}

uint32_t cv_fieldname_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!skipped(c))
            h = (h ^ lower(c)) * 16777619u;
    }
    return h;
}

static const struct {
    const char *name, *folded, *alias; /* alias already folded */
} members[CV_MEMBER_COUNT] = {
    [CV_MEMBER_ID] = {"id", "id", NULL},
    [CV_MEMBER_TS] = {"ts", "ts", "timestamp"},
    [CV_MEMBER_KIND] = {"kind", "kind", NULL},
    [CV_MEMBER_USER] = {"user_id", "userid", NULL},
    [CV_MEMBER_TYPE] = {"type", "type", NULL},
    [CV_MEMBER_LEVEL] = {"privacy_level", "privacylevel", NULL},
    [CV_MEMBER_DAYS] = {"retention_days", "retentiondays", "dataretentiondays"},
};

const char *cv_fieldname_member(cv_member m)
{
    return members[m].name;
}

const char *cv_fieldname_alias(cv_member m)
{
    return members[m].alias;
}

int cv_fieldname_of(const char *s, size_t n)
{
    /* asked for every top-level member: a name longer than any reserved
     * one, separators and all, is rare and still checked */
    for (int m = 0; m < CV_MEMBER_COUNT; m++) {
        if (cv_fieldname_is(s, n, members[m].folded, strlen(members[m].folded)) ||
            (members[m].alias &&
             cv_fieldname_is(s, n, members[m].alias, strlen(members[m].alias))))
            return m;
    }
    return -1;
}
