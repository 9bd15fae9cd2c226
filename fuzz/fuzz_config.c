/* fuzz_config.c - the config and policy loaders (lib/base/config.c,
 * lib/privacy/policy.c, lib/base/ini.c) on any text: problems are reported, never a
 * crash. Their reports go to stderr (make fuzz closes it). */
#include "fuzzutil.h"

#include "base/config.h"
#include "privacy/policy.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    int problems = 0;
    cv_config_check_text("fuzz.conf", text);
    cv_policy *p = cv_policy_parse("fuzz-policy.conf", text, &problems);
    if (p) {
        cv_policy_keep_ms(p, "interaction");
        cv_policy_scrub_ms(p, "profile");
        cv_policy_ephemeral_ms(p);
    }
    cv_policy_destroy(&p);
    free(text);
    return 0;
}
