/* fuzz_policy.c - the field-policy engine (lib/privacy/policy.c) on event text:
 * the shipped policy applied to any bytes, then the scrub rules applied to
 * what came out. Neither may crash, and for an input without duplicate
 * keys (encrypt refuses those first, as cv_policy_apply_text asks) what
 * apply passes on must be a JSON object. */
#include "fuzzutil.h"

#include "privacy/policy.h"

#include <jansson.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cv_policy *pol;
    int problems = 0;
    if (!pol && !(pol = cv_policy_parse("policy", cv_default_policy_text, &problems)))
        abort();
    const cv_keyring *kr = fuzz_keyring();
    char *out = NULL, *scrubbed = NULL, err[256];
    size_t outlen, outcap = 0, slen, scap = 0;
    json_error_t je;
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (cv_policy_apply_text(pol, kr, NULL, (const char *)data, size, NULL, &out,
                             &outlen, &outcap, err, sizeof err) == 0) {
        json_t *ev = json_loadb(out, outlen, JSON_REJECT_DUPLICATES, &je);
        if (in && !json_is_object(ev))
            abort(); /* apply passed on something that is not an event */
        json_decref(ev);
        int64_t ts;
        cv_policy_scrub_text(pol, kr, "interaction", out, outlen, NULL, NULL,
                             &scrubbed, &slen, &scap, &ts, err, sizeof err);
    }
    json_decref(in);
    free(out);
    free(scrubbed);
    return 0;
}
