/* fuzz_envelope.c - the envelope decoder: field envelopes ("enc:..."),
 * pseudonyms ("hash:...") and sealed spool records. Nothing that was not
 * sealed under this keyring may open. */
#include "fuzzutil.h"

#include "crypto/fieldcrypt.h"
#include "crypto/envcheck.h"
#include "base/util.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const cv_keyring *kr = fuzz_keyring();
    char *s = fuzz_text(data, size), *plain = NULL, err[256];
    size_t len;
    uint32_t version;
    cv_fieldcrypt_is_envelope(s);
    cv_fieldcrypt_is_pseudonym(s);
    cv_envcheck_classify(kr, s, size, &version);
    if (cv_fieldcrypt_unseal(kr, s, "event-1", "device.name", &plain, &len, err, sizeof err) == 0)
        abort(); /* forged: the fuzzer cannot know the key */
    if (cv_fieldcrypt_is_sealed_record(data, size) && size >= CV_SEALED_OVERHEAD) {
        uint8_t *out = cv_malloc(size - CV_SEALED_OVERHEAD + 1);
        if (cv_fieldcrypt_open_record(kr, "spool", data, size, out) == 0)
            abort();
        free(out);
    }
    free(plain);
    free(s);
    return 0;
}
