/* anon.c - the rows of an anonymous user (anon.h). */
#include "privacy/anon.h"

#include "crypto/fieldcrypt.h"
#include "base/time.h"
#include "base/util.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL
#define DAYS 8 /* day keys held: late events of the last week */

struct cv_anon {
    const cv_keyring *kr;
    struct {
        int64_t day; /* days since the epoch; 0: free */
        uint8_t key[32];
        uint64_t used;
    } days[DAYS];
    uint64_t clock;
};

cv_anon *cv_anon_new(const cv_keyring *kr)
{
    cv_anon *a = cv_calloc(1, sizeof *a);
    a->kr = kr;
    return a;
}

void cv_anon_destroy(cv_anon **p)
{
    cv_anon *a = *p;
    if (!a)
        return;
    sodium_memzero(a->days, sizeof a->days);
    free(a);
    *p = NULL;
}

/* The key of a day: made at random the first time, never written; the
 * least recently used goes when a ninth day comes. */
static const uint8_t *day_key(cv_anon *a, int64_t day)
{
    int free_i = 0;
    for (int i = 0; i < DAYS; i++) {
        if (a->days[i].day == day + 1) {
            a->days[i].used = ++a->clock;
            return a->days[i].key;
        }
        if (a->days[i].used < a->days[free_i].used)
            free_i = i;
    }
    a->days[free_i].day = day + 1;
    a->days[free_i].used = ++a->clock;
    randombytes_buf(a->days[free_i].key, sizeof a->days[free_i].key);
    return a->days[free_i].key;
}

static int64_t to_hour(int64_t ts)
{
    return ts - ((ts % HOUR_MS) + HOUR_MS) % HOUR_MS;
}

/* The hour, then a keyed hash of the original id: the same event gets the
 * same id however often it is sent, and the id tells no more than the
 * hour. */
void cv_anon_id(const cv_anon *a, const char *id, int64_t ts,
                char out[CV_ID_MAX + 1])
{
    uint8_t digest[16];
    static const char ctx[] = "ctxvault anonymous id";
    crypto_generichash_state st;
    crypto_generichash_init(&st, cv_keyring_id_key(a->kr), 32, sizeof digest);
    crypto_generichash_update(&st, (const unsigned char *)ctx, sizeof ctx);
    crypto_generichash_update(&st, (const unsigned char *)id, strlen(id));
    crypto_generichash_final(&st, digest, sizeof digest);
    cv_event_make_id(to_hour(ts), digest, out);
}

/* Remove every pseudonym and sealed value under v; their count. */
static int strip(json_t *v)
{
    int n = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        void *tmp;
        json_object_foreach_safe(v, tmp, k, m) {
            const char *s = json_string_value(m);
            if (s && (cv_fieldcrypt_is_pseudonym(s) || cv_fieldcrypt_is_envelope(s))) {
                json_object_del(v, k);
                n++;
            } else {
                n += strip(m);
            }
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v);) {
            json_t *m = json_array_get(v, i);
            const char *s = json_string_value(m);
            if (s && (cv_fieldcrypt_is_pseudonym(s) || cv_fieldcrypt_is_envelope(s))) {
                json_array_remove(v, i);
                n++;
                continue;
            }
            n += strip(m);
            i++;
        }
    }
    return n;
}

int cv_anon_apply(cv_anon *a, const char *user, const char *body, size_t len,
                  int64_t ts, cv_anon_row *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *ev = json_loadb(body, len, 0, &je);
    if (!json_is_object(ev)) {
        snprintf(err, errlen, "cannot read the row: %s", ev ? "not an object" : je.text);
        json_decref(ev);
        return -1;
    }
    const char *id = json_string_value(json_object_get(ev, "id"));
    if (!id) {
        snprintf(err, errlen, "the row has no id");
        json_decref(ev);
        return -1;
    }
    /* the members store reads are neither pseudonyms nor sealed, so they
     * stay; user_id is one, and is replaced below */
    out->removed = strip(ev);

    out->ts = to_hour(ts);
    cv_anon_id(a, id, ts, out->id);

    int64_t day = out->ts / DAY_MS;
    uint8_t h[16];
    crypto_generichash(h, sizeof h, (const unsigned char *)user, strlen(user),
                       day_key(a, day), 32);
    char tsday[40], b64[32];
    cv_time_format_ms(day * DAY_MS, tsday);
    sodium_bin2base64(b64, sizeof b64, h, sizeof h,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(out->user, sizeof out->user, "anon:%.4s%.2s%.2s:%s", tsday,
             tsday + 5, tsday + 8, b64);

    char tsbuf[40];
    cv_time_format_ms(out->ts, tsbuf);
    /* id and ts first, as ingest writes them */
    json_t *o = json_pack("{s:s, s:s}", "id", out->id, "ts", tsbuf);
    json_object_del(ev, "id");
    json_object_del(ev, "ts");
    json_object_set_new(ev, "user_id", json_string(out->user));
    json_object_update(o, ev);
    json_decref(ev);
    out->text = json_dumps(o, CV_JSON_DUMP);
    json_decref(o);
    if (!out->text) {
        snprintf(err, errlen, "cannot encode the row");
        return -1;
    }
    out->len = strlen(out->text);
    return 0;
}
