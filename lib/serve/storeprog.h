/* storeprog.h - ctxvault-store's main: the database opened for writing,
 * after a crash recovered, and then either the filter (events on stdin,
 * committed in batches) or the service (store_serve.h). */
#ifndef CV_STOREPROG_H
#define CV_STOREPROG_H

#include "net/program.h"

#include <stdbool.h>

/* ctxvault-store's own options. */
typedef struct {
    const char *dbpath; /* NULL: the instance's database */
    bool serve;
} cv_storeprog_args;

/* ctxvault-store's run (cv_program's, with the keyring). */
int cv_storeprog_main(cv_program_env *e, void *args);

#endif
