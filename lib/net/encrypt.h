/* encrypt.h - ctxvault-encrypt: the field policy applied to NDJSON
 * events, as a filter (stdin to stdout) or as a service (encrypt_serve.h),
 * with the keys it needs loaded, or, as a service, waited for. */
#ifndef CV_ENCRYPT_H
#define CV_ENCRYPT_H

#include "net/program.h"

#include <stdbool.h>

/* ctxvault-encrypt's own options. */
typedef struct {
    const char *policy_file; /* NULL: the instance's, else built in */
    bool serve;
} cv_encrypt_args;

/* No operands: events come on stdin (cv_program's check). */
int cv_encrypt_check(const cv_program_env *e, void *args);
/* ctxvault-encrypt's run (cv_program's, with libsodium). */
int cv_encrypt_main(cv_program_env *e, void *args);

#endif
