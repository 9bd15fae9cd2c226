/* fuzz_spool.c - ingest's spool reader (lib/storage/spool.c): records are
 * written and synced, the segment is damaged as the input says, and the
 * spool is opened and replayed. A damaged record ends its segment: what
 * replays is always a prefix of what was written, byte for byte. */
#include "fuzzutil.h"
#include "records.h"

#include "storage/spool.h"
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
    size_t left = size - at, len, n = 0;
    char *dir = cv_fmt("%s/spool", fuzz_dir()), err[256];
    fuzz_each_file(dir, NULL);
    cv_spool *sp = cv_spool_open(dir, err, sizeof err);
    if (!sp)
        abort();
    const uint8_t *recs[64];
    size_t lens[64];
    uint64_t h;
    while (n < 64 && fuzz_next_record(&p, &left, &rec, &len)) {
        if (len == 0)
            continue;
        if (cv_spool_append(sp, (const char *)rec, len, &h) < 0)
            abort();
        recs[n] = rec;
        lens[n++] = len;
    }
    if (cv_spool_sync(sp) < 0)
        abort();
    cv_spool_destroy(&sp);
    fuzz_each_file(dir, &dm);
    if (!(sp = cv_spool_open(dir, err, sizeof err)))
        goto out; /* refused with a reason: fine */
    const char *line;
    size_t i = 0;
    int rc;
    while ((rc = cv_spool_replay_next(sp, &h, &line, &len)) == 1) {
        /* a flipped bit inside a payload fails its checksum, so whatever
         * replays matches what was written */
        if (i >= n || len != lens[i] || memcmp(line, recs[i], len) != 0)
            abort();
        i++;
        cv_spool_ack(sp, h);
    }
    if (dm.n == 0 && dm.cut == UINT32_MAX && i != n)
        abort(); /* undamaged, yet records lost */
    cv_spool_destroy(&sp);
out:
    free(dir);
    return 0;
}
