/* keyring.c - load and create the instance keyring, derive per-purpose
 * subkeys. Master keys and derived subkeys live in sodium_malloc'ed memory
 * (guard pages, mlock'ed, kept out of core dumps); every temporary copy is
 * wiped. Derived subkeys are cached because the field policy derives one
 * per protected field, hundreds of thousands of times a second. */
#include "keyring.h"

#include "timefmt.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KDF_CONTEXT "ctxvault" /* crypto_kdf contexts are exactly 8 bytes */
#define MAX_KEYS 1024
#define MAX_FILE (1 << 20)
#define CACHE_SLOTS 32
#define CACHE_PURPOSE_MAX 64 /* longer purposes are derived every time */

typedef struct {
    uint32_t version;
    char status[16];
    int64_t created_ms; /* -1: not recorded */
    uint8_t *key; /* points into the secret block */
} key_entry;

typedef struct {
    uint32_t version; /* 0: empty */
    uint32_t hash;    /* of purpose, to skip most strcmp calls */
    char purpose[CACHE_PURPOSE_MAX];
    uint8_t key[CV_KEY_BYTES];
} cache_slot;

struct cv_keyring {
    uint32_t primary;
    size_t nkeys;
    key_entry *keys;     /* ascending by version */
    uint8_t *secret;     /* sodium_malloc: id key, then the master keys */
    cache_slot *cache;   /* sodium_malloc: derived subkeys */
    unsigned cache_next; /* round-robin replacement */
    pthread_mutex_t lock; /* the cache is shared by threads of a program */
};

#define ERR(...) snprintf(err, errlen, __VA_ARGS__)

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* crypto_kdf wants a 64-bit subkey id: take it from a digest of the
 * purpose, so purposes are free-form strings and never collide in
 * practice. */
static void derive(const uint8_t *master, const char *purpose,
                   uint8_t out[CV_KEY_BYTES])
{
    uint8_t d[crypto_generichash_BYTES];
    crypto_generichash(d, sizeof d, (const uint8_t *)purpose, strlen(purpose),
                       NULL, 0);
    uint64_t id = 0;
    for (int i = 7; i >= 0; i--)
        id = (id << 8) | d[i];
    crypto_kdf_derive_from_key(out, CV_KEY_BYTES, id, KDF_CONTEXT, master);
}

static const key_entry *find_key(const cv_keyring *kr, uint32_t version)
{
    size_t lo = 0, hi = kr->nkeys;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (kr->keys[mid].version == version)
            return &kr->keys[mid];
        if (kr->keys[mid].version < version)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int cv_keyring_subkey(const cv_keyring *kr, uint32_t version,
                      const char *purpose, uint8_t out[CV_KEY_BYTES])
{
    const key_entry *k = find_key(kr, version);
    if (!k)
        return -1;
    size_t plen = strlen(purpose);
    if (plen >= CACHE_PURPOSE_MAX) {
        derive(k->key, purpose, out);
        return 0;
    }
    /* The cache is logically part of the derivation, not of the keyring's
     * observable state: mutate it through a non-const view. */
    cv_keyring *m = (cv_keyring *)kr;
    uint32_t h = fnv1a(purpose);
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cache_slot *s = &m->cache[i];
        if (s->version == version && s->hash == h &&
            strcmp(s->purpose, purpose) == 0) {
            memcpy(out, s->key, CV_KEY_BYTES);
            pthread_mutex_unlock(&m->lock);
            return 0;
        }
    }
    cache_slot *s = &m->cache[m->cache_next];
    m->cache_next = (m->cache_next + 1) % CACHE_SLOTS;
    derive(k->key, purpose, s->key);
    s->version = version;
    s->hash = h;
    memcpy(s->purpose, purpose, plen + 1);
    memcpy(out, s->key, CV_KEY_BYTES);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

uint32_t cv_keyring_primary(const cv_keyring *kr) { return kr->primary; }

const uint8_t *cv_keyring_id_key(const cv_keyring *kr) { return kr->secret; }

size_t cv_keyring_versions(const cv_keyring *kr, uint32_t *out, size_t max)
{
    size_t n = kr->nkeys < max ? kr->nkeys : max;
    for (size_t i = 0; i < n; i++)
        out[i] = kr->keys[i].version;
    return n;
}

void cv_keyring_destroy(cv_keyring **p)
{
    cv_keyring *kr = *p;
    if (!kr)
        return;
    /* sodium_free wipes the block before releasing it */
    sodium_free(kr->secret);
    sodium_free(kr->cache);
    pthread_mutex_destroy(&kr->lock);
    free(kr->keys);
    free(kr);
    *p = NULL;
}

int cv_keyring_create(const char *path, char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        ERR("cannot initialise libsodium");
        return -1;
    }
    enum { B64 = sodium_base64_ENCODED_LEN(CV_KEY_BYTES,
                                           sodium_base64_VARIANT_ORIGINAL) };
    /* keys and their text never touch ordinary heap memory: everything is
     * built in one guarded block and wiped by sodium_free */
    struct secret {
        uint8_t id_key[CV_KEY_BYTES];
        uint8_t key[CV_KEY_BYTES];
        char id_b64[B64];
        char key_b64[B64];
        char text[512];
    } *s = sodium_malloc(sizeof *s);
    if (!s) {
        ERR("cannot allocate secure memory: %s", strerror(errno));
        return -1;
    }
    randombytes_buf(s->id_key, sizeof s->id_key);
    randombytes_buf(s->key, sizeof s->key);
    sodium_bin2base64(s->id_b64, sizeof s->id_b64, s->id_key,
                      sizeof s->id_key, sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(s->key_b64, sizeof s->key_b64, s->key, sizeof s->key,
                      sodium_base64_VARIANT_ORIGINAL);
    char when[40];
    cv_time_format_ms(cv_now_ms(), when);
    int n = snprintf(s->text, sizeof s->text,
                     "{\"format\":1,\"primary\":1,\"id_key\":\"%s\",\"keys\":["
                     "{\"version\":1,\"created\":\"%s\",\"status\":\"active\","
                     "\"key\":\"%s\"}]}\n",
                     s->id_b64, when, s->key_b64);
    int rc = -1;
    if (n < 0 || (size_t)n >= sizeof s->text) {
        ERR("keyring text does not fit its buffer");
        goto out;
    }
    if (cv_write_file_atomic(path, s->text, (size_t)n, 0600, true) < 0) {
        if (errno == EEXIST)
            ERR("%s already exists; refusing to overwrite a keyring", path);
        else
            ERR("cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    {
        int e = errno;
        sodium_free(s);
        errno = e;
    }
    return rc;
}

/* Decode a base64 key straight into its secure slot: no plain copy. */
static bool decode_key(json_t *v, uint8_t out[CV_KEY_BYTES])
{
    if (!json_is_string(v))
        return false;
    size_t bin_len = 0;
    const char *s = json_string_value(v);
    int rc = sodium_base642bin(out, CV_KEY_BYTES, s, json_string_length(v),
                               NULL, &bin_len, NULL,
                               sodium_base64_VARIANT_ORIGINAL);
    return rc == 0 && bin_len == CV_KEY_BYTES;
}

/* jansson keeps its own copy of each string: wipe the key text in place
 * before the tree is freed. The memory is jansson's malloc'ed buffer, not
 * a const object, so writing it is well defined. */
static void wipe_string(json_t *v)
{
    if (json_is_string(v))
        sodium_memzero((char *)json_string_value(v), json_string_length(v));
}

static int cmp_entry(const void *a, const void *b)
{
    uint32_t x = ((const key_entry *)a)->version;
    uint32_t y = ((const key_entry *)b)->version;
    return x < y ? -1 : x > y;
}

/* Read the file through one descriptor so the mode that is checked is the
 * mode of the file that is read. */
static char *read_keyring_file(const char *path, size_t *len, char *err,
                               size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            ERR("%s does not exist", path);
        else
            ERR("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        ERR("cannot stat %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        ERR("%s is not a regular file", path);
        goto fail;
    }
    if (st.st_mode & 077) {
        ERR("%s has mode %04o, which lets other users read the keys; "
            "it must be 0600 (chmod 600 %s)",
            path, (unsigned)(st.st_mode & 07777), path);
        goto fail;
    }
    if (st.st_size > MAX_FILE) {
        ERR("%s is larger than %d bytes", path, MAX_FILE);
        goto fail;
    }
    size_t cap = (size_t)st.st_size + 2, n = 0; /* +1 NUL, +1 to see growth */
    buf = sodium_malloc(cap);
    if (!buf) {
        ERR("cannot allocate secure memory: %s", strerror(errno));
        goto fail;
    }
    for (;;) {
        if (n + 1 >= cap) {
            /* the file grew after fstat: it is being rewritten under us */
            ERR("%s changed while it was read", path);
            goto fail;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            ERR("cannot read %s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    close(fd);
    *len = n;
    return buf;
fail:
    if (buf)
        sodium_free(buf);
    close(fd);
    return NULL;
}

cv_keyring *cv_keyring_load(const char *path, char *err, size_t errlen)
{
    /* a process that holds keys leaves no core file behind: the keys sit
     * in locked, no-dump memory, but derived copies pass through the stack */
    struct rlimit none = {0, 0};
    (void)setrlimit(RLIMIT_CORE, &none);
    if (sodium_init() < 0) {
        ERR("cannot initialise libsodium");
        return NULL;
    }
    size_t len;
    char *text = read_keyring_file(path, &len, err, errlen);
    if (!text)
        return NULL;
    cv_keyring *kr = NULL;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    sodium_free(text); /* wipes the file's text */
    if (!root) {
        ERR("%s is not valid JSON (line %d: %s)", path, je.line, je.text);
        return NULL;
    }
    json_t *keys = json_object_get(root, "keys");
    json_t *format = json_object_get(root, "format");
    json_t *primary = json_object_get(root, "primary");
    json_t *id_key = json_object_get(root, "id_key");
    if (!json_is_object(root) || !json_is_integer(format) ||
        json_integer_value(format) != 1) {
        ERR("%s is not a format 1 keyring", path);
        goto fail;
    }
    if (!json_is_array(keys) || json_array_size(keys) == 0 ||
        json_array_size(keys) > MAX_KEYS) {
        ERR("%s: \"keys\" must be an array of 1 to %d keys", path, MAX_KEYS);
        goto fail;
    }
    if (!json_is_integer(primary) || json_integer_value(primary) < 1 ||
        json_integer_value(primary) > UINT32_MAX) {
        ERR("%s: \"primary\" must be a key version", path);
        goto fail;
    }

    kr = cv_calloc(1, sizeof *kr);
    pthread_mutex_init(&kr->lock, NULL);
    kr->nkeys = json_array_size(keys);
    kr->keys = cv_calloc(kr->nkeys, sizeof *kr->keys);
    kr->secret = sodium_allocarray(kr->nkeys + 1, CV_KEY_BYTES);
    kr->cache = sodium_allocarray(CACHE_SLOTS, sizeof *kr->cache);
    if (!kr->secret || !kr->cache) {
        ERR("cannot allocate secure memory: %s", strerror(errno));
        goto fail;
    }
    memset(kr->cache, 0, CACHE_SLOTS * sizeof *kr->cache);
    if (!decode_key(id_key, kr->secret)) {
        ERR("%s: \"id_key\" is not a base64 %d-byte key", path, CV_KEY_BYTES);
        goto fail;
    }
    for (size_t i = 0; i < kr->nkeys; i++) {
        json_t *k = json_array_get(keys, i);
        json_t *ver = json_object_get(k, "version");
        json_t *status = json_object_get(k, "status");
        key_entry *e = &kr->keys[i];
        if (!json_is_integer(ver) || json_integer_value(ver) < 1 ||
            json_integer_value(ver) > UINT32_MAX) {
            ERR("%s: key %zu has no valid \"version\"", path, i + 1);
            goto fail;
        }
        e->version = (uint32_t)json_integer_value(ver);
        if (!json_is_string(status) ||
            (strcmp(json_string_value(status), "active") != 0 &&
             strcmp(json_string_value(status), "retired") != 0)) {
            ERR("%s: key version %u: \"status\" must be \"active\" or "
                "\"retired\"", path, e->version);
            goto fail;
        }
        snprintf(e->status, sizeof e->status, "%s", json_string_value(status));
        const char *made = json_string_value(json_object_get(k, "created"));
        if (!made || !cv_time_parse(made, strlen(made), &e->created_ms))
            e->created_ms = -1;
        e->key = kr->secret + (i + 1) * CV_KEY_BYTES;
        if (!decode_key(json_object_get(k, "key"), e->key)) {
            ERR("%s: key version %u is not a base64 %d-byte key", path,
                e->version, CV_KEY_BYTES);
            goto fail;
        }
    }
    qsort(kr->keys, kr->nkeys, sizeof *kr->keys, cmp_entry);
    for (size_t i = 1; i < kr->nkeys; i++) {
        if (kr->keys[i].version == kr->keys[i - 1].version) {
            ERR("%s: key version %u appears twice", path, kr->keys[i].version);
            goto fail;
        }
    }
    kr->primary = (uint32_t)json_integer_value(primary);
    const key_entry *pk = find_key(kr, kr->primary);
    if (!pk) {
        ERR("%s: primary version %u has no key", path, kr->primary);
        goto fail;
    }
    if (strcmp(pk->status, "active") != 0) {
        ERR("%s: primary version %u is retired", path, kr->primary);
        goto fail;
    }
    /* master keys are never written again: a stray write now faults */
    sodium_mprotect_readonly(kr->secret);
    goto done;
fail:
    cv_keyring_destroy(&kr);
done:
    wipe_string(id_key);
    for (size_t i = 0; json_is_array(keys) && i < json_array_size(keys); i++)
        wipe_string(json_object_get(json_array_get(keys, i), "key"));
    json_decref(root);
    return kr;
}

int64_t cv_keyring_created_ms(const cv_keyring *kr, uint32_t version)
{
    const key_entry *e = find_key(kr, version);
    return e ? e->created_ms : -1;
}

/* Wipe and free a heap string that held key material. */
static void wipe_free(char *p)
{
    if (p) {
        sodium_memzero(p, strlen(p));
        free(p);
    }
}

/* The keyring file's JSON, changed by edit and written back atomically
 * (temp file, fsync, rename; 0600): rotate and retire share it. edit
 * returns 0, or -1 with a reason in err. The text is wiped after use. */
typedef int (*keyring_edit)(json_t *root, json_t *keys, void *arg, char *err,
                            size_t errlen);

static int rewrite_keyring(const char *path, keyring_edit edit, void *arg,
                           char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        ERR("cannot initialise libsodium");
        return -1;
    }
    size_t len;
    char *text = cv_read_file(path, 1 << 20, &len), *out = NULL;
    json_t *j = NULL;
    int rc = -1;
    if (!text) {
        ERR("cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    json_error_t je;
    j = json_loadb(text, len, 0, &je);
    json_t *keys = json_object_get(j, "keys");
    if (!json_is_array(keys)) {
        ERR("%s: not a keyring (%s)", path, j ? "no \"keys\"" : je.text);
        goto out;
    }
    if (edit(j, keys, arg, err, errlen) < 0)
        goto out;
    out = json_dumps(j, JSON_COMPACT);
    if (!out || cv_write_file_atomic(path, out, strlen(out), 0600, false) < 0) {
        ERR("cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    json_decref(j); /* its strings are freed unwiped: jansson owns them */
    wipe_free(out);
    wipe_free(text);
    return rc;
}

static int add_version(json_t *root, json_t *keys, void *arg, char *err,
                       size_t errlen)
{
    enum { B64 = sodium_base64_ENCODED_LEN(CV_KEY_BYTES,
                                           sodium_base64_VARIANT_ORIGINAL) };
    uint32_t *version = arg, top = 0;
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        json_int_t v = json_integer_value(json_object_get(k, "version"));
        if (v > 0 && v < UINT32_MAX && (uint32_t)v > top)
            top = (uint32_t)v;
    }
    if (top == 0 || top == UINT32_MAX - 1) {
        ERR("no key version to follow");
        return -1;
    }
    struct { uint8_t key[CV_KEY_BYTES]; char b64[B64]; } *s = sodium_malloc(sizeof *s);
    if (!s) {
        ERR("cannot allocate secure memory: %s", strerror(errno));
        return -1;
    }
    randombytes_buf(s->key, sizeof s->key);
    sodium_bin2base64(s->b64, sizeof s->b64, s->key, sizeof s->key,
                      sodium_base64_VARIANT_ORIGINAL);
    char when[40];
    cv_time_format_ms(cv_now_ms(), when);
    json_array_append_new(keys, json_pack("{s:I, s:s, s:s, s:s}", "version",
                                          (json_int_t)top + 1, "created", when,
                                          "status", "active", "key", s->b64));
    json_object_set_new(root, "primary", json_integer((json_int_t)top + 1));
    sodium_free(s);
    *version = top + 1;
    return 0;
}

int cv_keyring_rotate(const char *path, uint32_t *version, char *err,
                      size_t errlen)
{
    uint32_t v = 0;
    if (rewrite_keyring(path, add_version, &v, err, errlen) < 0)
        return -1;
    *version = v;
    return 0;
}

static int mark_retired(json_t *root, json_t *keys, void *arg, char *err,
                        size_t errlen)
{
    uint32_t version = *(uint32_t *)arg;
    if (json_integer_value(json_object_get(root, "primary")) == version) {
        ERR("key version %u is the primary: rotate first", version);
        return -1;
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
        if (json_integer_value(json_object_get(k, "version")) == version)
            return json_object_set_new(k, "status", json_string("retired"));
    ERR("key version %u is not in the keyring", version);
    return -1;
}

int cv_keyring_retire(const char *path, uint32_t version, char *err,
                      size_t errlen)
{
    return rewrite_keyring(path, mark_retired, &version, err, errlen);
}

bool cv_keyring_retired(const cv_keyring *kr, uint32_t version)
{
    const key_entry *e = find_key(kr, version);
    return e && strcmp(e->status, "retired") == 0;
}

json_t *cv_keyring_describe(const cv_keyring *kr)
{
    json_t *a = json_array();
    for (size_t i = 0; i < kr->nkeys; i++) {
        const key_entry *e = &kr->keys[i];
        char when[40] = "";
        if (e->created_ms >= 0)
            cv_time_format_ms(e->created_ms, when);
        json_array_append_new(a, json_pack("{s:I, s:s?, s:s, s:b}", "version",
                                           (json_int_t)e->version, "created",
                                           *when ? when : NULL, "status",
                                           e->status, "primary",
                                           e->version == kr->primary));
    }
    return a;
}
