/* fixtures.c - set-up shared by the unit tests. */
#include "fixtures.h"

#include "harness.h"
#include "util.h"

#include <stdlib.h>

cv_keyring *cvt_keyring(const char *name)
{
    char err[256];
    char *path = cv_fmt("%s/%s", cvt_tmpdir(), name);
    if (cv_keyring_create(path, err, sizeof err) < 0)
        cvt_fail(__FILE__, __LINE__, "create: %s", err);
    cv_keyring *kr = cv_keyring_load(path, err, sizeof err);
    if (!kr)
        cvt_fail(__FILE__, __LINE__, "load: %s", err);
    free(path);
    return kr;
}

cv_policy *cvt_policy(const char *text)
{
    int problems = -1;
    cv_policy *p = cv_policy_parse("test", text, &problems);
    if (!p || problems != 0)
        cvt_fail(__FILE__, __LINE__, "policy has %d problems", problems);
    return p;
}
