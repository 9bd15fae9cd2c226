/* fixtures.h - set-up shared by the unit tests. Failures end the test. */
#ifndef CVT_FIXTURES_H
#define CVT_FIXTURES_H

#include "keyring.h"
#include "policy.h"

/* A fresh keyring file NAME in the test's directory, loaded. */
cv_keyring *cvt_keyring(const char *name);
/* A policy parsed from text, which must have no problems. */
cv_policy *cvt_policy(const char *text);

/* A typical interaction event with every kind of protected field. */
extern const char cvt_typical_event[];

#endif
