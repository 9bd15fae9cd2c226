/* fieldcrypt.c - field envelopes (AEAD), keyed pseudonyms and row
 * checksums. Every key is a subkey of a keyring version, derived per
 * purpose, so an envelope key never doubles as a hashing key. */
#include "crypto/fieldcrypt.h"

#include "base/util.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B64V sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define TAG_BYTES 16
#define NONCE_MAX crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define STACK_BYTES 4096 /* buffers up to this size stay off the heap */
#define DIGEST_BYTES 16

typedef enum { ALG_UNSET, ALG_AES, ALG_XCHACHA } alg_t;

static alg_t chosen;

static const char *alg_name(alg_t a)
{
    return a == ALG_AES ? "aes256gcm" : "xchacha20poly1305";
}

static size_t alg_nonce(alg_t a)
{
    return a == ALG_AES ? crypto_aead_aes256gcm_NPUBBYTES
                        : crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
}

int cv_fieldcrypt_init(void)
{
    if (sodium_init() < 0)
        return -1;
    if (chosen == ALG_UNSET)
        chosen = crypto_aead_aes256gcm_is_available() ? ALG_AES : ALG_XCHACHA;
    return 0;
}

int cv_fieldcrypt_force_algorithm(const char *name)
{
    if (sodium_init() < 0)
        return -1;
    if (!name) {
        chosen = ALG_UNSET;
        return cv_fieldcrypt_init();
    }
    if (strcmp(name, "xchacha20poly1305") == 0) {
        chosen = ALG_XCHACHA;
        return 0;
    }
    if (strcmp(name, "aes256gcm") == 0 && crypto_aead_aes256gcm_is_available()) {
        chosen = ALG_AES;
        return 0;
    }
    return -1;
}

const char *cv_fieldcrypt_algorithm(void)
{
    if (chosen == ALG_UNSET && cv_fieldcrypt_init() < 0)
        return "none";
    return alg_name(chosen);
}

/* Nonces come from a per-thread pool of random bytes refilled 4 KiB at a
 * time: one getrandom(2) per field cost more than the cipher itself. A
 * forked child must never hand out its parent's pool (same key, same
 * nonces), so the pool is emptied in the child at fork. */
#define POOL_BYTES 4096
static _Thread_local struct {
    uint8_t buf[POOL_BYTES];
    size_t left;
} pool;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_forget(void)
{
    sodium_memzero(pool.buf, sizeof pool.buf);
    pool.left = 0;
}

static void pool_register(void) { pthread_atfork(NULL, NULL, pool_forget); }

static void random_nonce(uint8_t *out, size_t n)
{
    pthread_once(&pool_once, pool_register);
    if (pool.left < n) {
        randombytes_buf(pool.buf, sizeof pool.buf);
        pool.left = sizeof pool.buf;
    }
    uint8_t *p = pool.buf + (sizeof pool.buf - pool.left);
    memcpy(out, p, n);
    sodium_memzero(p, n); /* a nonce is handed out once */
    pool.left -= n;
}

/* Decimal digits of v at out, no NUL; returns how many. snprintf costs
 * more than the hash it would label. */
static size_t put_u32(char *out, uint32_t v)
{
    char tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* "<event id>\0<path>" in buf when it fits, else on the heap (*heap set). */
static uint8_t *make_ad(const char *event_id, const char *path,
                        uint8_t *buf, size_t cap, size_t *adlen, void **heap)
{
    size_t il = strlen(event_id), pl = strlen(path);
    *adlen = il + 1 + pl;
    uint8_t *ad = buf;
    *heap = NULL;
    if (*adlen > cap)
        ad = *heap = cv_malloc(*adlen);
    memcpy(ad, event_id, il);
    ad[il] = '\0';
    memcpy(ad + il + 1, path, pl);
    return ad;
}

static size_t b64_len(size_t n) /* without the NUL */
{
    return sodium_base64_encoded_len(n, B64V) - 1;
}

/* Seal under key and write "enc:<label>:<alg>:<nonce>:<ct>:<tag>". */
static char *seal_under(const uint8_t key[CV_KEY_BYTES], const char *label,
                        const char *plain, size_t len, const char *event_id,
                        const char *path, char *err, size_t errlen)
{
    if (chosen == ALG_UNSET && cv_fieldcrypt_init() < 0) {
        snprintf(err, errlen, "cannot initialise libsodium");
        return NULL;
    }
    alg_t alg = chosen;
    uint8_t nonce[NONCE_MAX], tag[TAG_BYTES];
    uint8_t adbuf[512], ctbuf[STACK_BYTES];
    void *adheap = NULL, *ctheap = NULL;
    char *out = NULL;
    size_t adlen, nlen = alg_nonce(alg);
    const uint8_t *ad = make_ad(event_id, path, adbuf, sizeof adbuf, &adlen,
                                &adheap);
    uint8_t *ct = len <= sizeof ctbuf ? ctbuf : (ctheap = cv_malloc(len));
    random_nonce(nonce, nlen);
    int rc;
    if (alg == ALG_AES)
        rc = crypto_aead_aes256gcm_encrypt_detached(
            ct, tag, NULL, (const uint8_t *)plain, len, ad, adlen, NULL,
            nonce, key);
    else
        rc = crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
            ct, tag, NULL, (const uint8_t *)plain, len, ad, adlen, NULL,
            nonce, key);
    if (rc != 0) {
        snprintf(err, errlen, "%s encryption failed", alg_name(alg));
        goto done;
    }
    const char *an = alg_name(alg);
    size_t al = strlen(an), ll = strlen(label);
    size_t total = 4 + ll + 1 + al + 1 + b64_len(nlen) + 1 + b64_len(len) +
                   1 + b64_len(TAG_BYTES) + 1;
    out = cv_malloc(total);
    char *p = out;
    memcpy(p, "enc:", 4);
    p += 4;
    memcpy(p, label, ll);
    p += ll;
    *p++ = ':';
    memcpy(p, an, al);
    p += al;
    *p++ = ':';
    sodium_bin2base64(p, total - (size_t)(p - out), nonce, nlen, B64V);
    p += b64_len(nlen);
    *p++ = ':';
    sodium_bin2base64(p, total - (size_t)(p - out), ct, len, B64V);
    p += b64_len(len);
    *p++ = ':';
    sodium_bin2base64(p, total - (size_t)(p - out), tag, TAG_BYTES, B64V);
done:
    free(adheap);
    free(ctheap);
    return out;
}

char *cv_fieldcrypt_seal(const cv_keyring *kr, const char *plain, size_t len,
              const char *event_id, const char *path, char *err,
              size_t errlen)
{
    uint32_t ver = cv_keyring_primary(kr);
    uint8_t key[CV_KEY_BYTES];
    char label[12];
    if (cv_keyring_subkey(kr, ver, "aead", key) < 0) {
        snprintf(err, errlen, "primary key version %u is missing", ver);
        return NULL;
    }
    label[0] = 'v';
    label[1 + put_u32(label + 1, ver)] = '\0';
    char *out = seal_under(key, label, plain, len, event_id, path, err,
                           errlen);
    sodium_memzero(key, sizeof key);
    return out;
}

char *cv_fieldcrypt_seal_dk(const cv_datakey *dk, const char *plain, size_t len,
                 const char *event_id, const char *path, char *err,
                 size_t errlen)
{
    char label[CV_DATAKEY_ID_LEN + 2];
    label[0] = 'd';
    memcpy(label + 1, dk->id, CV_DATAKEY_ID_LEN + 1);
    return seal_under(dk->aead, label, plain, len, event_id, path, err,
                      errlen);
}

/* Split an envelope into its parts. Returns false when malformed. */
typedef struct {
    uint32_t version;               /* 0: under a data key */
    char dkid[CV_DATAKEY_ID_LEN + 1]; /* the data key's id, or "" */
    alg_t alg;
    const char *nonce, *ct, *tag;
    size_t nonce_len, ct_len, tag_len;
} envelope;

static bool parse_version(const char **sp, uint32_t *out)
{
    const char *s = *sp;
    uint64_t v = 0;
    if (*s < '1' || *s > '9') /* no leading zeros: one spelling per version */
        return false;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            return false;
        s++;
    }
    *out = (uint32_t)v;
    *sp = s;
    return true;
}

static bool b64url_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* "v<version>" or "d<data key id>", then ':'. */
static bool parse_label(const char **sp, uint32_t *version, char *dkid)
{
    const char *s = *sp;
    *version = 0;
    dkid[0] = '\0';
    if (*s == 'v') {
        s++;
        if (!parse_version(&s, version))
            return false;
    } else if (*s == 'd') {
        s++;
        if (strlen(s) < CV_DATAKEY_ID_LEN + 1 ||
            !b64url_chars(s, CV_DATAKEY_ID_LEN))
            return false;
        memcpy(dkid, s, CV_DATAKEY_ID_LEN);
        dkid[CV_DATAKEY_ID_LEN] = '\0';
        s += CV_DATAKEY_ID_LEN;
    } else {
        return false;
    }
    if (*s++ != ':')
        return false;
    *sp = s;
    return true;
}

static bool parse_envelope(const char *s, envelope *e)
{
    if (strncmp(s, "enc:", 4) != 0)
        return false;
    s += 4;
    if (!parse_label(&s, &e->version, e->dkid))
        return false;
    if (strncmp(s, "aes256gcm:", 10) == 0) {
        e->alg = ALG_AES;
        s += 10;
    } else if (strncmp(s, "xchacha20poly1305:", 18) == 0) {
        e->alg = ALG_XCHACHA;
        s += 18;
    } else {
        return false;
    }
    const char *c1 = strchr(s, ':');
    if (!c1)
        return false;
    const char *c2 = strchr(c1 + 1, ':');
    if (!c2)
        return false;
    e->nonce = s;
    e->nonce_len = (size_t)(c1 - s);
    e->ct = c1 + 1;
    e->ct_len = (size_t)(c2 - e->ct);
    e->tag = c2 + 1;
    e->tag_len = strlen(e->tag);
    return e->nonce_len == b64_len(alg_nonce(e->alg)) &&
           e->tag_len == b64_len(TAG_BYTES) &&
           b64url_chars(e->nonce, e->nonce_len) &&
           b64url_chars(e->ct, e->ct_len) &&
           b64url_chars(e->tag, e->tag_len);
}

bool cv_fieldcrypt_is_envelope(const char *s)
{
    envelope e;
    return s && parse_envelope(s, &e);
}

static bool b64_decode(uint8_t *out, size_t max, const char *s, size_t n,
                       size_t *len)
{
    return sodium_base642bin(out, max, s, n, NULL, len, NULL, B64V) == 0;
}

int cv_fieldcrypt_unseal(const cv_keyring *kr, const char *envelope_s,
              const char *event_id, const char *path, char **plain,
              size_t *len, char *err, size_t errlen)
{
    envelope e;
    uint8_t key[CV_KEY_BYTES], nonce[NONCE_MAX], tag[TAG_BYTES];
    uint8_t adbuf[512], ctbuf[STACK_BYTES];
    void *adheap = NULL, *ctheap = NULL;
    char *out = NULL;
    size_t n, ctlen, adlen;
    int rc = -1;
    *plain = NULL;
    if (sodium_init() < 0) {
        snprintf(err, errlen, "cannot initialise libsodium");
        return -1;
    }
    if (!parse_envelope(envelope_s, &e)) {
        snprintf(err, errlen, "not a well-formed encrypted value");
        return -1;
    }
    if (e.alg == ALG_AES && !crypto_aead_aes256gcm_is_available()) {
        snprintf(err, errlen,
                 "value is encrypted with aes256gcm, which this CPU cannot "
                 "decrypt (libsodium needs AES-NI and PCLMUL)");
        return -1;
    }
    if (e.version == 0) {
        cv_datakey dk;
        int found = cv_keyring_datakey(kr, e.dkid, &dk, err, errlen);
        if (found == 0)
            snprintf(err, errlen,
                     "data key %s was destroyed (its user was erased or its "
                     "hour expired): the value cannot be read",
                     e.dkid);
        if (found <= 0)
            return -1;
        memcpy(key, dk.aead, sizeof key);
        sodium_memzero(&dk, sizeof dk);
    } else if (cv_keyring_subkey(kr, e.version, "aead", key) < 0) {
        snprintf(err, errlen, "key version %u is not in the keyring",
                 e.version);
        return -1;
    }
    if (cv_keyring_retired(kr, e.version)) { /* kept for pseudonyms only */
        sodium_memzero(key, sizeof key);
        snprintf(err, errlen, "key version %u is retired", e.version);
        return -1;
    }
    size_t ctmax = e.ct_len / 4 * 3 + 3;
    uint8_t *ct = ctmax <= sizeof ctbuf ? ctbuf : (ctheap = cv_malloc(ctmax));
    if (!b64_decode(nonce, sizeof nonce, e.nonce, e.nonce_len, &n) ||
        n != alg_nonce(e.alg) ||
        !b64_decode(tag, sizeof tag, e.tag, e.tag_len, &n) || n != TAG_BYTES ||
        !b64_decode(ct, ctmax, e.ct, e.ct_len, &ctlen)) {
        snprintf(err, errlen, "encrypted value has bad base64");
        goto done;
    }
    const uint8_t *ad = make_ad(event_id, path, adbuf, sizeof adbuf, &adlen,
                                &adheap);
    out = cv_malloc(ctlen + 1);
    int r;
    if (e.alg == ALG_AES)
        r = crypto_aead_aes256gcm_decrypt_detached(
            (uint8_t *)out, NULL, ct, ctlen, tag, ad, adlen, nonce, key);
    else
        r = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
            (uint8_t *)out, NULL, ct, ctlen, tag, ad, adlen, nonce, key);
    if (r != 0) {
        snprintf(err, errlen,
                 "cannot decrypt: the value was altered, or belongs to "
                 "another event or field");
        sodium_memzero(out, ctlen + 1);
        free(out);
        out = NULL;
        goto done;
    }
    out[ctlen] = '\0';
    *plain = out;
    *len = ctlen;
    rc = 0;
done:
    sodium_memzero(key, sizeof key);
    free(adheap);
    free(ctheap);
    return rc;
}

int cv_fieldcrypt_pseudonym(const cv_keyring *kr, uint32_t version, const char *purpose,
                 const void *data, size_t len, char out[CV_PSEUDONYM_MAX])
{
    char sub[128];
    uint8_t key[CV_KEY_BYTES], d[DIGEST_BYTES];
    size_t pl = strlen(purpose);
    if (pl + 6 > sizeof sub)
        return -1;
    memcpy(sub, "hash:", 5);
    memcpy(sub + 5, purpose, pl + 1);
    if (cv_keyring_subkey(kr, version, sub, key) < 0)
        return -1;
    crypto_generichash(d, sizeof d, data, len, key, sizeof key);
    sodium_memzero(key, sizeof key);
    /* "hash:v" + at most 10 digits + ":" + 22 + NUL fits CV_PSEUDONYM_MAX */
    memcpy(out, "hash:v", 6);
    size_t n = 6 + put_u32(out + 6, version);
    out[n++] = ':';
    sodium_bin2base64(out + n, CV_PSEUDONYM_MAX - n, d, sizeof d, B64V);
    return 0;
}

int cv_fieldcrypt_pseudonym_dk(const cv_datakey *dk, const char *purpose,
                    const void *data, size_t len, char out[CV_PSEUDONYM_MAX])
{
    /* one keyed BLAKE2b under the key's "hash" subkey, the purpose
     * length-prefixed ahead of the data: purposes stay unlinkable without
     * a derivation per value */
    uint8_t d[DIGEST_BYTES];
    crypto_generichash_state st;
    crypto_generichash_init(&st, dk->hash, sizeof dk->hash, sizeof d);
    cv_fieldcrypt_mac_put_str(&st, purpose);
    crypto_generichash_update(&st, data, len);
    crypto_generichash_final(&st, d, sizeof d);
    sodium_memzero(&st, sizeof st);
    /* "hash:d" + 16 + ":" + 22 + NUL fits CV_PSEUDONYM_MAX */
    memcpy(out, "hash:d", 6);
    memcpy(out + 6, dk->id, CV_DATAKEY_ID_LEN);
    size_t n = 6 + CV_DATAKEY_ID_LEN;
    out[n++] = ':';
    sodium_bin2base64(out + n, CV_PSEUDONYM_MAX - n, d, sizeof d, B64V);
    return 0;
}

bool cv_fieldcrypt_is_pseudonym(const char *s)
{
    uint32_t v;
    char dkid[CV_DATAKEY_ID_LEN + 1];
    if (!s || strncmp(s, "hash:", 5) != 0)
        return false;
    s += 5;
    if (!parse_label(&s, &v, dkid))
        return false;
    size_t n = strlen(s);
    return n == b64_len(DIGEST_BYTES) && b64url_chars(s, n);
}

/* Each field goes in with a presence byte and a 64-bit length, so no
 * choice of values can shift bytes from one field into the next. */
void cv_fieldcrypt_mac_put(crypto_generichash_state *st, const void *p, size_t n,
                bool present)
{
    uint8_t hdr[9];
    uint64_t len = present ? n : 0;
    hdr[0] = present;
    for (int i = 0; i < 8; i++)
        hdr[1 + i] = (uint8_t)(len >> (8 * i));
    crypto_generichash_update(st, hdr, sizeof hdr);
    if (present && n)
        crypto_generichash_update(st, p, n);
}

void cv_fieldcrypt_mac_put_str(crypto_generichash_state *st, const char *s)
{
    cv_fieldcrypt_mac_put(st, s, s ? strlen(s) : 0, s != NULL);
}

void cv_fieldcrypt_mac_put_int(crypto_generichash_state *st, int64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)v >> (8 * i));
    cv_fieldcrypt_mac_put(st, b, sizeof b, true);
}

int cv_fieldcrypt_row_checksum(const cv_keyring *kr, uint32_t version, const char *id,
                    const char *user_id, const char *kind, int64_t ts,
                    const char *body, size_t body_len,
                    uint8_t out[CV_CHECKSUM_BYTES])
{
    uint8_t key[CV_KEY_BYTES];
    if (version < 1 || version > 255) /* it must fit the version byte */
        return -1;
    if (cv_keyring_subkey(kr, version, "checksum", key) < 0)
        return -1;
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, sizeof key, DIGEST_BYTES);
    sodium_memzero(key, sizeof key);
    cv_fieldcrypt_mac_put_str(&st, id);
    cv_fieldcrypt_mac_put_str(&st, user_id);
    cv_fieldcrypt_mac_put_str(&st, kind);
    cv_fieldcrypt_mac_put_int(&st, ts);
    cv_fieldcrypt_mac_put(&st, body, body_len, body != NULL);
    out[0] = (uint8_t)version;
    crypto_generichash_final(&st, out + 1, DIGEST_BYTES);
    sodium_memzero(&st, sizeof st);
    return 0;
}

int cv_fieldcrypt_row_checksum_check(const cv_keyring *kr, const uint8_t *sum,
                          size_t sum_len, const char *id, const char *user_id,
                          const char *kind, int64_t ts, const char *body,
                          size_t body_len)
{
    uint8_t want[CV_CHECKSUM_BYTES];
    if (!sum || sum_len != CV_CHECKSUM_BYTES)
        return 0;
    if (cv_keyring_retired(kr, sum[0]))
        return -2;
    if (cv_fieldcrypt_row_checksum(kr, sum[0], id, user_id, kind, ts, body, body_len,
                        want) < 0)
        return -1;
    return sodium_memcmp(want, sum, sizeof want) == 0;
}

/* ---- sealed records -------------------------------------------------- */

#define REC_MAGIC 0x01
#define REC_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES

static int record_key(const cv_keyring *kr, uint32_t v, const char *purpose,
                      uint8_t key[CV_KEY_BYTES])
{
    char sub[64];
    snprintf(sub, sizeof sub, "seal:%s", purpose);
    return v >= 1 && v <= 255 ? cv_keyring_subkey(kr, v, sub, key) : -1;
}

int cv_fieldcrypt_seal_record(const cv_keyring *kr, const char *purpose, const void *plain,
                   size_t len, uint8_t *out)
{
    uint8_t key[CV_KEY_BYTES];
    uint32_t v = cv_keyring_primary(kr);
    if (record_key(kr, v, purpose, key) < 0)
        return -1;
    out[0] = REC_MAGIC;
    out[1] = (uint8_t)v;
    randombytes_buf(out + 2, REC_NONCE);
    unsigned long long clen;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + 2 + REC_NONCE, &clen, plain,
                                               len, out, 2, NULL, out + 2, key);
    sodium_memzero(key, sizeof key);
    return 0;
}

bool cv_fieldcrypt_is_sealed_record(const void *rec, size_t len)
{
    return len >= CV_SEALED_OVERHEAD && ((const uint8_t *)rec)[0] == REC_MAGIC;
}

int cv_fieldcrypt_open_record(const cv_keyring *kr, const char *purpose, const uint8_t *rec,
                   size_t len, uint8_t *out)
{
    uint8_t key[CV_KEY_BYTES];
    if (!cv_fieldcrypt_is_sealed_record(rec, len) || record_key(kr, rec[1], purpose, key) < 0)
        return -1;
    unsigned long long plen;
    /* the magic and the version are bound as associated data */
    int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
        out, &plen, NULL, rec + 2 + REC_NONCE, len - 2 - REC_NONCE, rec, 2,
        rec + 2, key);
    sodium_memzero(key, sizeof key);
    return rc == 0 ? 0 : -1;
}
