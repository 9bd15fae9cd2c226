/* fixtures.h - set-up shared by the unit tests. Failures end the test. */
#ifndef CVT_FIXTURES_H
#define CVT_FIXTURES_H

#include "base/config.h"
#include "storage/db.h"
#include "crypto/keyring.h"
#include "privacy/policy.h"
#include "storage/store.h"

#include <stdint.h>

/* A fresh keyring file NAME in the test's directory, loaded. */
cv_keyring *cvt_keyring(const char *name);
/* JSON from test text, which must parse. */
json_t *cvt_json(const char *text);
/* A policy parsed from text, which must have no problems. */
cv_policy *cvt_policy(const char *text);

/* A typical interaction event with every kind of protected field. */
extern const char cvt_typical_event[];

/* A store on a fresh instance in the test's directory: config, keyring,
 * policy (NULL: cvt_keep_users_policy, which keeps user_id so events can
 * be written by hand) and the writer's connection. */
typedef struct {
    cv_config cfg;
    cv_keyring *kr;
    cv_policy *pol;
    cv_db *db;
    cv_store *st;
} cvt_store;
extern const char cvt_keep_users_policy[];
int cvt_store_setup(cvt_store *f, const char *policy);
/* The same in dir (made when missing): several instances in one test,
 * each in its own subdirectory of cvt_tmpdir(). */
int cvt_store_setup_in(cvt_store *f, const char *dir, const char *policy);
void cvt_store_teardown(cvt_store *f);
/* cv_store_add of one line: its result. */
int cvt_store_add(cvt_store *f, const char *line);
/* The first column of the first row of sql (-1 for NULL, -99 for none). */
int64_t cvt_q(cvt_store *f, const char *sql);

#endif
