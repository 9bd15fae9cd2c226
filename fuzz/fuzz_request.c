/* fuzz_request.c - the control socket's request parser: a request's JSON
 * as store loads it, then the context API's argument checks and cursors.
 * Without a database every op that passes the checks is answered
 * "internal"; the answer is always an object with "ok". */
#include "fuzzutil.h"

#include "ctx/ctxapi.h"

#include <jansson.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *req = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    char *s = fuzz_text(data, size);
    int64_t ts, seq;
    cv_ctxapi_cursor_decode(s, &ts, &seq);
    free(s);
    if (!req)
        return 0;
    cv_ctxapi_time_arg(json_object_get(req, "since"), &ts);
    const char *op = json_string_value(json_object_get(req, "op"));
    if (json_is_object(req) && cv_control_find_op(&cv_ctxapi_family, op)) {
        cv_ctxapi api = {.db = NULL};
        bool decrypted;
        json_t *reply = cv_ctxapi_answer(&api, req, size, &decrypted);
        if (!json_is_boolean(json_object_get(reply, "ok")) || decrypted)
            abort();
        json_decref(reply);
    }
    json_decref(req);
    return 0;
}
