/* fuzz_journal.c - the journal reader (lib/storage/journal.c) and its replay
 * into SQLite: records whose payloads are the input's (patchsets or
 * not) are appended, the segment is damaged, and the journal is opened
 * and replayed into an empty database (SQLite's changeset reader gets
 * whatever survives the checksums). Any outcome but a crash is fine. */
#include "fuzzutil.h"
#include "records.h"

#include "storage/db.h"
#include "storage/journal.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_damage dm;
    size_t at = fuzz_damage_read(data, size, &dm);
    const uint8_t *p = data + at, *rec;
    size_t left = size - at, len;
    char *dir = cv_fmt("%s/journal", fuzz_dir()), err[256];
    int code;
    fuzz_each_file(dir, NULL);
    cv_journal *j = cv_journal_open(dir, 4096, false, 0, &code, err, sizeof err);
    if (!j)
        abort();
    int64_t lsn = 0;
    while (lsn < 64 && fuzz_next_record(&p, &left, &rec, &len)) {
        if (len == 0)
            continue;
        if (cv_journal_append(j, lsn + 1, 1700000000000 + lsn, rec, len, err,
                              sizeof err) < 0)
            abort();
        lsn++;
    }
    cv_journal_destroy(&j);
    fuzz_each_file(dir, &dm);

    sqlite3 *h = NULL;
    if (sqlite3_open(":memory:", &h) != SQLITE_OK || cv_db_create_schema(h) != SQLITE_OK)
        abort();
    j = cv_journal_open(dir, 4096, false, 0, &code, err, sizeof err);
    if (j) {
        cv_replay r;
        cv_journal_replay(h, dir, 0, -1, false, &r, err, sizeof err);
        cv_journal_destroy(&j);
    }
    sqlite3_close(h);
    free(dir);
    return 0;
}
