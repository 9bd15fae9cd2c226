/* anon.h - the rows of an anonymous user: personal data removed, and
 * nothing left that links them to each other or to the person.
 *
 * A user whose privacy level is "anonymous" asked that their data be kept
 * only in aggregate. Store scrubs such rows on arrival ([scrub fields]),
 * and then anonymises them here:
 *
 *   - every keyed pseudonym (hash:...) and every sealed value (enc:...) in
 *     the body goes: a pseudonym of an email joins the user's rows as well
 *     as the email would, and a sealed value names the user's data key;
 *   - the user becomes a per-day pseudonym, "anon:YYYYMMDD:…", a keyed
 *     hash under a random key of that day that lives only in store's
 *     memory and is never written: one user's rows of one day still count
 *     as one user, but no key on disk links two days, or a day to the
 *     person (a store restart starts new day keys, so a user may count
 *     twice on that day);
 *   - the time goes to the hour: the top-level ts, and the id, whose first
 *     characters are a time, becomes one derived from the original id
 *     under the id key (so a replayed event still dedupes) with the hour
 *     as its time.
 *
 * By design such rows are no longer found by the user's id: the user's
 * profile (their settings) stays theirs, the rest is aggregate data. */
#ifndef CV_ANON_H
#define CV_ANON_H

#include "base/event.h"
#include "crypto/keyring.h"

#include <stddef.h>
#include <stdint.h>

#define CV_ANON_USER_MAX 64

typedef struct cv_anon cv_anon;

cv_anon *cv_anon_new(const cv_keyring *kr);
/* Wipes the day keys. */
void cv_anon_destroy(cv_anon **a);

typedef struct {
    char *text;     /* the anonymised body, malloc'ed (the caller frees) */
    size_t len;
    char id[CV_ID_MAX + 1];
    char user[CV_ANON_USER_MAX];
    int64_t ts;     /* to the hour */
    int removed;    /* pseudonyms and sealed values taken out */
} cv_anon_row;

/* Anonymise a stored body (JSON text) of user (as stored) at ts. 0, or -1
 * with a reason in err. */
int cv_anon_apply(cv_anon *a, const char *user, const char *body, size_t len,
                  int64_t ts, cv_anon_row *out, char *err, size_t errlen);

/* The id an event of this id and time is stored under when anonymised. */
void cv_anon_id(const cv_anon *a, const char *id, int64_t ts,
                char out[CV_ID_MAX + 1]);

#endif
