/* keyring.c - load and create the instance keyring, derive per-purpose
 * subkeys. Master keys and derived subkeys live in sodium_malloc'ed memory
 * (guard pages, mlock'ed, kept out of core dumps); every temporary copy is
 * wiped. Derived subkeys are cached because the field policy derives one
 * per protected field, hundreds of thousands of times a second. */
#include "crypto/keyring.h"

#include "base/config.h"
#include "base/time.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
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
    cv_keyring_datakey_lookup *dk_lookup;
    void *dk_ctx;
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

void cv_keyring_set_datakey_lookup(cv_keyring *kr, cv_keyring_datakey_lookup *fn,
                                   void *ctx)
{
    kr->dk_lookup = fn;
    kr->dk_ctx = ctx;
}

int cv_keyring_datakey(const cv_keyring *kr, const char *id, cv_datakey *out,
                       char *err, size_t errlen)
{
    if (!kr->dk_lookup) {
        snprintf(err, errlen, "no data-key store is open");
        return -1;
    }
    return kr->dk_lookup(kr->dk_ctx, id, out, err, errlen);
}

void cv_keyring_datakey_derive(cv_datakey *dk)
{
    derive(dk->key, "aead", dk->aead);
    derive(dk->key, "hash", dk->hash);
}

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

/* ---- the keyring's JSON, plain or sealed --------------------------------
 *
 * Format 1 is the keyring's JSON itself. Format 2 seals that same text
 * under a key derived from a passphrase:
 *   {"format":2,"kdf":{"alg":"argon2id13","opslimit":N,"memlimit":N,
 *    "salt":B64},"aead":"xchacha20poly1305","nonce":B64,"sealed":B64}
 * load_tree reads either into format 1's tree, write_tree writes a tree
 * back the way it was read (or another way, to set or remove a
 * passphrase), so every rewrite goes through the same two functions. */

#define PASS_MAX 1024 /* bytes in a passphrase */
#define SEAL_AD "ctxvault-keyring-2"
#define SEAL_KEYBYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define MEMLIMIT_CAP ((size_t)1 << 32) /* a file cannot make us ask for more */

typedef struct {
    int format;                  /* 1: plain JSON, 2: sealed */
    unsigned long long opslimit; /* format 2: Argon2id's cost, as in the file */
    size_t memlimit;
    uint8_t salt[crypto_pwhash_SALTBYTES];
    uint8_t *key;                /* format 2: sodium_malloc'ed wrapping key */
} seal;

/* Process-wide: where a sealed keyring's passphrase comes from. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
/* The passphrase that last opened a keyring (sodium_malloc), so a program
 * that loads the keyring twice asks once: a descriptor can be read only
 * once, and a key_command may prompt. The keys it opens sit in the same
 * process anyway. Dropped when it fails or the key_command changes. */
static char *g_pass;
static unsigned long g_pass_changes;  /* the key command's change count
                                         (cv_config_key_command) g_pass
                                         was remembered under */
static unsigned long long g_opslimit; /* 0: the interactive limits */
static size_t g_memlimit;

void cv_keyring_passphrase_free(char **p)
{
    if (*p) {
        sodium_free(*p); /* wipes */
        *p = NULL;
    }
}

static char *pass_dup(const char *s)
{
    size_t n = strlen(s);
    char *p = sodium_malloc(n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

static void forget_passphrase(void)
{
    pthread_mutex_lock(&g_lock);
    cv_keyring_passphrase_free(&g_pass);
    pthread_mutex_unlock(&g_lock);
}

static void remember_passphrase(const char *pass)
{
    unsigned long changes = cv_config_key_command(NULL);
    pthread_mutex_lock(&g_lock);
    if (g_pass && g_pass_changes != changes)
        cv_keyring_passphrase_free(&g_pass); /* the command changed since */
    if (!g_pass) {
        g_pass = pass_dup(pass);
        g_pass_changes = changes;
    }
    pthread_mutex_unlock(&g_lock);
}

void cv_keyring_set_kdf_limits(unsigned long long opslimit, size_t memlimit)
{
    pthread_mutex_lock(&g_lock);
    g_opslimit = opslimit;
    g_memlimit = memlimit;
    pthread_mutex_unlock(&g_lock);
}

/* One line from fd into secure memory, without its newline. Byte by byte,
 * so nothing past the line is consumed (stdin may hold the next
 * passphrase). from_start: a regular file is read from offset 0 with
 * pread, leaving the shared offset alone, so every program of a pipeline
 * that inherited the descriptor reads the same line. NULL with a reason. */
static char *read_line(int fd, bool from_start, char *err, size_t errlen)
{
    char *buf = sodium_malloc(PASS_MAX + 2);
    if (!buf) {
        ERR("cannot allocate secure memory: %s", strerror(errno));
        return NULL;
    }
    size_t n = 0;
    bool positional = from_start;
    for (;;) {
        ssize_t r = positional ? pread(fd, buf + n, 1, (off_t)n)
                               : read(fd, buf + n, 1);
        if (r < 0 && positional && errno == ESPIPE && n == 0) {
            positional = false; /* a pipe or a terminal */
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            ERR("cannot read: %s", strerror(errno));
            goto fail;
        }
        if (r == 0) {
            if (n == 0) {
                ERR("no passphrase (end of input)");
                goto fail;
            }
            break;
        }
        if (buf[n] == '\n')
            break;
        if (buf[n] == '\0') {
            ERR("the passphrase holds a NUL byte");
            goto fail;
        }
        if (++n > PASS_MAX) {
            ERR("the passphrase is longer than %d bytes", PASS_MAX);
            goto fail;
        }
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (n == 0) {
        ERR("the passphrase is empty");
        goto fail;
    }
    return buf;
fail:
    sodium_free(buf);
    return NULL;
}

char *cv_keyring_passphrase_read(int fd, const char *prompt, char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        ERR("cannot initialise libsodium");
        return NULL;
    }
    struct termios saved, quiet;
    bool tty = isatty(fd) && tcgetattr(fd, &saved) == 0;
    if (tty) {
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL; /* the newline still shows: the prompt ends */
        if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0) {
            ERR("cannot turn off the terminal's echo: %s", strerror(errno));
            return NULL;
        }
        if (prompt)
            (void)cv_write_all(STDERR_FILENO, prompt, strlen(prompt));
    }
    char *p = read_line(fd, false, err, errlen);
    if (tty)
        (void)tcsetattr(fd, TCSAFLUSH, &saved);
    return p;
}

/* Run key_command with /bin/sh -c; the first line of its stdout is the
 * passphrase, like a git credential helper. */
static char *run_key_command(const char *path, const char *cmd, char *err,
                             size_t errlen)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        ERR("%s: cannot run key_command: pipe: %s", path, strerror(errno));
        return NULL;
    }
    pid_t pid = fork();
    if (pid < 0) {
        ERR("%s: cannot run key_command: fork: %s", path, strerror(errno));
        close(p[0]);
        close(p[1]);
        return NULL;
    }
    if (pid == 0) {
        /* stdin is /dev/null: a filter's stdin is its data. stderr is
         * shared, so the command's complaints reach the log. */
        int nul = open("/dev/null", O_RDONLY);
        if (nul < 0 || dup2(nul, STDIN_FILENO) < 0 ||
            dup2(p[1], STDOUT_FILENO) < 0)
            _exit(126);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char why[128];
    char *pass = read_line(p[0], false, why, sizeof why);
    /* the rest unread: the command is not killed by a broken pipe */
    char *sink = sodium_malloc(256);
    for (ssize_t r; sink && ((r = read(p[0], sink, 256)) > 0 ||
                             (r < 0 && errno == EINTR));)
        ;
    if (sink)
        sodium_free(sink);
    close(p[0]);
    int st = 0;
    pid_t w;
    while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    if (w == pid && WIFSIGNALED(st)) {
        ERR("%s: key_command '%s' was killed by signal %d", path, cmd,
            WTERMSIG(st));
        goto fail;
    }
    if (w == pid && WEXITSTATUS(st) != 0) {
        ERR("%s: key_command '%s' failed with exit status %d", path, cmd,
            WEXITSTATUS(st));
        goto fail;
    }
    if (!pass)
        ERR("%s: key_command '%s' printed %s", path, cmd,
            strstr(why, "end of input") ? "nothing" : why);
    return pass;
fail:
    cv_keyring_passphrase_free(&pass);
    return NULL;
}

/* The passphrase for a sealed keyring, when the caller has none:
 * CTXVAULT_PASSPHRASE_FD first (a descriptor the starter opened), then
 * key_command. Never argv or the environment's values. */
static char *source_passphrase(const char *path, char *err, size_t errlen)
{
    char *cmd;
    unsigned long changes = cv_config_key_command(&cmd);
    pthread_mutex_lock(&g_lock);
    if (g_pass && g_pass_changes != changes)
        cv_keyring_passphrase_free(&g_pass); /* the command changed since */
    char *pass = g_pass ? pass_dup(g_pass) : NULL;
    pthread_mutex_unlock(&g_lock);
    const char *fdv = getenv("CTXVAULT_PASSPHRASE_FD");
    int64_t fd;
    char why[128];
    if (pass) {
        /* remembered */
    } else if (fdv && *fdv) {
        if (!cv_parse_int(fdv, 0, INT32_MAX, &fd) || fcntl((int)fd, F_GETFD) < 0)
            ERR("%s: CTXVAULT_PASSPHRASE_FD '%s' is not an open file "
                "descriptor", path, fdv);
        else if (!(pass = read_line((int)fd, true, why, sizeof why)))
            ERR("%s: CTXVAULT_PASSPHRASE_FD %d: %s", path, (int)fd, why);
    } else if (cmd) {
        pass = run_key_command(path, cmd, err, errlen);
    } else {
        ERR("%s is protected by a passphrase; set key_command or "
            "CTXVAULT_PASSPHRASE_FD", path);
    }
    free(cmd);
    return pass;
}

static void seal_clear(seal *s)
{
    if (s->key)
        sodium_free(s->key);
    memset(s, 0, sizeof *s);
}

static json_t *kdf_json(const seal *s)
{
    char salt[sodium_base64_ENCODED_LEN(crypto_pwhash_SALTBYTES,
                                        sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(salt, sizeof salt, s->salt, sizeof s->salt,
                      sodium_base64_VARIANT_ORIGINAL);
    return json_pack("{s:s, s:I, s:I, s:s}", "alg", "argon2id13", "opslimit",
                     (json_int_t)s->opslimit, "memlimit",
                     (json_int_t)s->memlimit, "salt", salt);
}

/* The associated data names the format and the KDF's parameters, so the
 * tag covers them and they cannot be swapped for weaker ones. */
static char *seal_ad(const seal *s)
{
    json_t *k = kdf_json(s);
    char *t = json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(k);
    char *ad = cv_fmt("%s %s", SEAL_AD, t ? t : "");
    free(t);
    return ad;
}

static int seal_derive(seal *s, const char *pass, char *err, size_t errlen)
{
    s->key = sodium_malloc(SEAL_KEYBYTES);
    if (!s->key) {
        ERR("cannot allocate secure memory: %s", strerror(errno));
        return -1;
    }
    if (crypto_pwhash(s->key, SEAL_KEYBYTES, pass, strlen(pass), s->salt,
                      s->opslimit, s->memlimit,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        ERR("cannot derive a key from the passphrase: Argon2id could not "
            "have its %zu bytes of memory", s->memlimit);
        return -1;
    }
    return 0;
}

static bool b64_exact(const char *s, uint8_t *out, size_t n)
{
    size_t got = 0;
    return s && sodium_base642bin(out, n, s, strlen(s), NULL, &got, NULL,
                                  sodium_base64_VARIANT_ORIGINAL) == 0 &&
           got == n;
}

/* Open a format 2 file's seal: the inner tree, or NULL with a reason and
 * *why an errno (ENOKEY: no passphrase to be had; EKEYREJECTED: the tag
 * did not verify). */
static json_t *unseal(const char *path, json_t *outer, const char *pass,
                      seal *s, int *why, char *err, size_t errlen)
{
    json_t *kdf = json_object_get(outer, "kdf"), *inner = NULL;
    json_t *ops = json_object_get(kdf, "opslimit");
    json_t *mem = json_object_get(kdf, "memlimit");
    const char *alg = json_string_value(json_object_get(kdf, "alg"));
    const char *aead = json_string_value(json_object_get(outer, "aead"));
    const char *sealed = json_string_value(json_object_get(outer, "sealed"));
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    uint8_t *c = NULL;
    char *p = NULL, *plain = NULL, *ad = NULL;
    size_t clen = 0;
    *why = EINVAL;
    if (!alg || strcmp(alg, "argon2id13") != 0) {
        ERR("%s: a format 2 keyring needs a \"kdf\" with \"alg\": "
            "\"argon2id13\"", path);
        goto out;
    }
    if (!json_is_integer(ops) ||
        json_integer_value(ops) < (json_int_t)crypto_pwhash_OPSLIMIT_MIN ||
        json_integer_value(ops) > (json_int_t)UINT32_MAX ||
        !json_is_integer(mem) ||
        json_integer_value(mem) < (json_int_t)crypto_pwhash_MEMLIMIT_MIN ||
        json_integer_value(mem) > (json_int_t)MEMLIMIT_CAP) {
        ERR("%s: \"kdf\" needs an \"opslimit\" and a \"memlimit\" Argon2id "
            "accepts (memlimit at most 4 GiB)", path);
        goto out;
    }
    s->opslimit = (unsigned long long)json_integer_value(ops);
    s->memlimit = (size_t)json_integer_value(mem);
    if (!b64_exact(json_string_value(json_object_get(kdf, "salt")), s->salt,
                   sizeof s->salt)) {
        ERR("%s: \"kdf\" needs a base64 %d-byte \"salt\"", path,
            crypto_pwhash_SALTBYTES);
        goto out;
    }
    if (!aead || strcmp(aead, "xchacha20poly1305") != 0) {
        ERR("%s: a format 2 keyring needs \"aead\": \"xchacha20poly1305\"",
            path);
        goto out;
    }
    if (!b64_exact(json_string_value(json_object_get(outer, "nonce")), nonce,
                   sizeof nonce)) {
        ERR("%s: a format 2 keyring needs a base64 %d-byte \"nonce\"", path,
            (int)sizeof nonce);
        goto out;
    }
    size_t cap = sealed ? strlen(sealed) / 4 * 3 + 3 : 0;
    c = cv_malloc(cap + 1);
    if (!sealed || sodium_base642bin(c, cap, sealed, strlen(sealed), NULL,
                                     &clen, NULL,
                                     sodium_base64_VARIANT_ORIGINAL) != 0 ||
        clen < crypto_aead_xchacha20poly1305_ietf_ABYTES) {
        ERR("%s: a format 2 keyring needs base64 \"sealed\" text", path);
        goto out;
    }
    p = pass ? pass_dup(pass) : source_passphrase(path, err, errlen);
    if (!p && pass)
        ERR("cannot allocate secure memory: %s", strerror(errno));
    if (!p) {
        *why = ENOKEY;
        goto out;
    }
    if (seal_derive(s, p, err, errlen) < 0) {
        *why = ENOMEM;
        goto out;
    }
    plain = sodium_malloc(clen - crypto_aead_xchacha20poly1305_ietf_ABYTES + 1);
    if (!plain) {
        ERR("cannot allocate secure memory: %s", strerror(errno));
        *why = ENOMEM;
        goto out;
    }
    ad = seal_ad(s);
    unsigned long long plen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            (uint8_t *)plain, &plen, NULL, c, clen, (const uint8_t *)ad,
            strlen(ad), nonce, s->key) != 0) {
        ERR("%s: wrong passphrase (or the file was altered)", path);
        *why = EKEYREJECTED;
        if (!pass)
            forget_passphrase(); /* the next try asks again */
        goto out;
    }
    if (!pass)
        remember_passphrase(p);
    json_error_t je;
    /* no detail from the parser: it would quote the keys */
    inner = json_loadb(plain, (size_t)plen, JSON_REJECT_DUPLICATES, &je);
    if (!inner)
        ERR("%s: the sealed keyring is not valid JSON (line %d)", path,
            je.line);
out:
    if (plain)
        sodium_free(plain);
    cv_keyring_passphrase_free(&p);
    free(ad);
    free(c);
    return inner;
}

/* Wipe the key text jansson copied out of the file, then free the tree. */
static void free_tree(json_t *root)
{
    json_t *keys = json_object_get(root, "keys");
    wipe_string(json_object_get(root, "id_key"));
    for (size_t i = 0; json_is_array(keys) && i < json_array_size(keys); i++)
        wipe_string(json_object_get(json_array_get(keys, i), "key"));
    json_decref(root);
}

/* The keyring at path as format 1's tree, whatever its format, and how it
 * was stored in *s (with the wrapping key, so write_tree can seal it
 * again without asking). pass: a sealed file's passphrase, or NULL to get
 * one from CTXVAULT_PASSPHRASE_FD or key_command. plain_only: refuse a
 * sealed file (EALREADY). NULL with a reason in err and errno set. */
static json_t *load_tree(const char *path, const char *pass, bool plain_only,
                         seal *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    size_t len;
    char *text = read_keyring_file(path, &len, err, errlen);
    if (!text)
        return NULL; /* errno from the failed call */
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    sodium_free(text); /* wipes the file's text */
    if (!root) {
        ERR("%s is not valid JSON (line %d: %s)", path, je.line, je.text);
        errno = EINVAL;
        return NULL;
    }
    json_t *format = json_object_get(root, "format");
    if (!json_is_integer(format) || json_integer_value(format) != 2) {
        s->format = 1; /* parse_keyring says what else is wrong */
        return root;
    }
    if (plain_only) {
        ERR("%s is already protected by a passphrase (ctxvault keys "
            "passphrase change or remove)", path);
        json_decref(root);
        errno = EALREADY;
        return NULL;
    }
    int why;
    json_t *inner = unseal(path, root, pass, s, &why, err, errlen);
    json_decref(root); /* the outer tree holds nothing secret */
    if (!inner) {
        seal_clear(s);
        errno = why;
        return NULL;
    }
    s->format = 2;
    return inner;
}

/* Write a tree to path atomically (0600), as s says: format 1's JSON, or
 * sealed under s->key with a fresh nonce. 0, or -1 with a reason. */
static int write_tree(const char *path, json_t *root, const seal *s,
                      char *err, size_t errlen)
{
    int rc = -1;
    char *text = NULL, *ad = NULL, *out = NULL;
    uint8_t *c = NULL;
    json_t *outer = NULL;
    size_t n = json_dumpb(root, NULL, 0, JSON_COMPACT);
    if (n == 0 || !(text = sodium_malloc(n + 1))) {
        ERR("cannot encode the keyring of %s", path);
        goto out;
    }
    json_dumpb(root, text, n, JSON_COMPACT);
    text[n++] = '\n';
    if (s->format == 1) {
        if (cv_write_file_atomic(path, text, n, 0600, false) < 0) {
            ERR("cannot write %s: %s", path, strerror(errno));
            goto out;
        }
        rc = 0;
        goto out;
    }
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
    char nonce_b64[sodium_base64_ENCODED_LEN(sizeof nonce,
                                             sodium_base64_VARIANT_ORIGINAL)];
    randombytes_buf(nonce, sizeof nonce);
    unsigned long long clen = 0;
    c = cv_malloc(n + crypto_aead_xchacha20poly1305_ietf_ABYTES);
    ad = seal_ad(s);
    crypto_aead_xchacha20poly1305_ietf_encrypt(c, &clen, (uint8_t *)text, n,
                                               (const uint8_t *)ad, strlen(ad),
                                               NULL, nonce, s->key);
    size_t blen = sodium_base64_ENCODED_LEN(clen, sodium_base64_VARIANT_ORIGINAL);
    char *sealed = cv_malloc(blen);
    sodium_bin2base64(sealed, blen, c, (size_t)clen,
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(nonce_b64, sizeof nonce_b64, nonce, sizeof nonce,
                      sodium_base64_VARIANT_ORIGINAL);
    outer = json_pack("{s:i, s:o, s:s, s:s, s:s}", "format", 2, "kdf",
                      kdf_json(s), "aead", "xchacha20poly1305", "nonce",
                      nonce_b64, "sealed", sealed);
    free(sealed);
    char *body = outer ? json_dumps(outer, JSON_COMPACT) : NULL;
    out = body ? cv_fmt("%s\n", body) : NULL;
    free(body);
    if (!out) {
        ERR("cannot encode the sealed keyring of %s", path);
        goto out;
    }
    if (cv_write_file_atomic(path, out, strlen(out), 0600, false) < 0) {
        ERR("cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    {
        int e = errno;
        if (text)
            sodium_free(text);
        json_decref(outer);
        free(out);
        free(ad);
        free(c);
        errno = e;
    }
    return rc;
}

/* Build a keyring from format 1's tree (which the caller still owns). */
static cv_keyring *parse_keyring(const char *path, json_t *root, char *err,
                                 size_t errlen)
{
    cv_keyring *kr = NULL;
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
    return kr;
fail:
    cv_keyring_destroy(&kr);
    errno = EINVAL;
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
    seal s;
    json_t *root = load_tree(path, NULL, false, &s, err, errlen);
    if (!root)
        return NULL;
    cv_keyring *kr = parse_keyring(path, root, err, errlen);
    int e = errno;
    free_tree(root);
    seal_clear(&s);
    errno = e;
    return kr;
}

int64_t cv_keyring_created_ms(const cv_keyring *kr, uint32_t version)
{
    const key_entry *e = find_key(kr, version);
    return e ? e->created_ms : -1;
}

/* The keyring file's JSON, changed by edit and written back as it was
 * (sealed again under the same key when it was sealed; atomic, 0600):
 * rotate and retire share it. Only a keyring that loads is rewritten.
 * edit returns 0, or -1 with a reason in err. */
typedef int (*keyring_edit)(json_t *root, json_t *keys, void *arg, char *err,
                            size_t errlen);

static int rewrite_keyring(const char *path, keyring_edit edit, void *arg,
                           char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        ERR("cannot initialise libsodium");
        return -1;
    }
    seal sl;
    json_t *j = load_tree(path, NULL, false, &sl, err, errlen);
    if (!j)
        return -1;
    int rc = -1;
    cv_keyring *kr = parse_keyring(path, j, err, errlen);
    if (!kr)
        goto out;
    cv_keyring_destroy(&kr);
    if (edit(j, json_object_get(j, "keys"), arg, err, errlen) < 0 ||
        write_tree(path, j, &sl, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    free_tree(j);
    seal_clear(&sl);
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

bool cv_keyring_has(const cv_keyring *kr, uint32_t version)
{
    return find_key(kr, version) != NULL;
}

bool cv_keyring_retired(const cv_keyring *kr, uint32_t version)
{
    const key_entry *e = find_key(kr, version);
    return e && strcmp(e->status, "retired") == 0;
}

/* set (old NULL), change, remove (pass NULL): read the keyring as it is,
 * check it loads, write it back sealed under pass or plain. */
static int reseal(const char *path, const char *old, const char *pass,
                  char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        ERR("cannot initialise libsodium");
        return -1;
    }
    if (pass && !*pass) {
        ERR("the new passphrase is empty");
        errno = EINVAL;
        return -1;
    }
    seal from, to = {.format = 1};
    json_t *root = load_tree(path, old ? old : "", !old, &from, err, errlen);
    if (!root)
        return -1;
    int rc = -1, e = EINVAL;
    if (old && from.format != 2) {
        ERR("%s is not protected by a passphrase", path);
        goto out;
    }
    cv_keyring *kr = parse_keyring(path, root, err, errlen);
    if (!kr)
        goto out;
    cv_keyring_destroy(&kr);
    if (pass) {
        pthread_mutex_lock(&g_lock);
        to.opslimit = g_opslimit ? g_opslimit : crypto_pwhash_OPSLIMIT_INTERACTIVE;
        to.memlimit = g_memlimit ? g_memlimit : crypto_pwhash_MEMLIMIT_INTERACTIVE;
        pthread_mutex_unlock(&g_lock);
        to.format = 2;
        randombytes_buf(to.salt, sizeof to.salt);
        if (seal_derive(&to, pass, err, errlen) < 0) {
            e = ENOMEM;
            goto out;
        }
    }
    if (write_tree(path, root, &to, err, errlen) < 0) {
        e = errno;
        goto out;
    }
    forget_passphrase(); /* it opens this file no more */
    rc = 0;
out:
    free_tree(root);
    seal_clear(&from);
    seal_clear(&to);
    if (rc)
        errno = e;
    return rc;
}

int cv_keyring_passphrase_set(const char *path, const char *pass, char *err,
                              size_t errlen)
{
    return reseal(path, NULL, pass, err, errlen);
}

int cv_keyring_passphrase_change(const char *path, const char *old,
                                 const char *pass, char *err, size_t errlen)
{
    return reseal(path, old, pass, err, errlen);
}

int cv_keyring_passphrase_remove(const char *path, const char *old, char *err,
                                 size_t errlen)
{
    return reseal(path, old, NULL, err, errlen);
}

int cv_keyring_file_protected(const char *path, char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        ERR("cannot initialise libsodium");
        return -1;
    }
    size_t len;
    char *text = read_keyring_file(path, &len, err, errlen);
    if (!text)
        return -1;
    json_t *root = json_loadb(text, len, 0, NULL);
    /* only the format is read: the key strings are wiped with the text,
     * and jansson's copies of them before the tree goes */
    int rc = json_integer_value(json_object_get(root, "format")) == 2;
    sodium_free(text);
    if (!root) {
        ERR("%s is not valid JSON", path);
        errno = EINVAL;
        return -1;
    }
    free_tree(root);
    return rc;
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
