/* fuzz_event.c - the event validator and normaliser (lib/base/event.c): any
 * bytes give an event or a reason, and an accepted event is accepted
 * again unchanged (normalising is idempotent). */
#include "fuzzutil.h"

#include "base/event.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t key[32] = {1, 2, 3};
    cv_event_rules r = {.max_depth = 64, .id_key = key};
    char *out = NULL, *again = NULL, reason[256];
    size_t len, len2;
    cv_event_id_valid((const char *)data, size);
    if (cv_event_normalise(&r, (const char *)data, size, 1700000000000, &out,
                           &len, reason, sizeof reason) < 0)
        return 0;
    if (cv_event_normalise(&r, out, len, 1700000000000, &again, &len2, reason,
                           sizeof reason) < 0 ||
        len2 != len || memcmp(out, again, len) != 0)
        abort(); /* what was accepted must stay accepted, as it is */
    free(out);
    free(again);
    return 0;
}
