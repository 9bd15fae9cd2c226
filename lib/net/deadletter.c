/* deadletter.c - the dead-letter file: one JSON object per rejected line,
 * fsync'ed when closed. */
#include "net/deadletter.h"

#include "crypto/fieldcrypt.h"
#include "net/metrics.h"
#include "base/time.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cv_deadletter {
    int fd;
    const cv_keyring *kr;
    char *path;
    char *program;
    uint64_t count;
    uint64_t failed;
    cv_metrics *mx;
};

cv_deadletter *cv_deadletter_open(const char *dir, const char *program,
                                  const cv_keyring *kr)
{
    if (cv_mkdir_p(dir, 0700, false) < 0)
        return NULL;
    char *path = cv_fmt("%s/%s.ndjson", dir, program);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        free(path);
        errno = e;
        return NULL;
    }
    cv_deadletter *dl = cv_calloc(1, sizeof *dl);
    dl->fd = fd;
    dl->kr = kr;
    dl->path = path;
    dl->program = cv_strdup(program);
    return dl;
}

void cv_deadletter_close(cv_deadletter **p)
{
    cv_deadletter *dl = *p;
    if (!dl)
        return;
    if (dl->count)
        fsync(dl->fd);
    close(dl->fd);
    free(dl->path);
    free(dl->program);
    free(dl);
    *p = NULL;
}

uint64_t cv_deadletter_count(const cv_deadletter *dl) { return dl->count; }
uint64_t cv_deadletter_failed(const cv_deadletter *dl) { return dl->failed; }
const char *cv_deadletter_path(const cv_deadletter *dl) { return dl->path; }

static bool valid_text(const char *s, size_t len)
{
    if (memchr(s, '\0', len))
        return false;
    json_t *j = json_stringn(s, len); /* NULL when not valid UTF-8 */
    if (!j)
        return false;
    json_decref(j);
    return true;
}

/* The line as "raw", or as "raw_base64" when it is not text. */
static void set_raw(json_t *o, const char *raw, size_t len)
{
    if (valid_text(raw, len)) {
        json_object_set_new(o, "raw", json_stringn(raw, len));
        return;
    }
    size_t blen = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *b = cv_malloc(blen);
    sodium_bin2base64(b, blen, (const unsigned char *)raw, len,
                      sodium_base64_VARIANT_ORIGINAL);
    json_object_set_new(o, "raw_base64", json_string(b));
    free(b);
}

int cv_deadletter_put(cv_deadletter *dl, const char *source, uint64_t line,
                      const char *reason, const char *raw, size_t len,
                      bool truncated)
{
    cv_err("%s:%llu: %s", source, (unsigned long long)line, reason);
    dl->count++;
    /* every rejection in every program passes here: counted by reason */
    char label[64];
    snprintf(label, sizeof label, "reason=%s", cv_metrics_reject_class(reason));
    cv_metrics_add(dl->mx, "ctxvault_events_rejected_total", label, 1);

    char when[40];
    cv_time_format_ms(cv_now_ms(), when);
    json_t *o = json_object();
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "program", json_string(dl->program));
    json_object_set_new(o, "source", json_string(source));
    json_object_set_new(o, "line", json_integer((json_int_t)line));
    json_object_set_new(o, "reason", json_string(reason));
    char *sealed = NULL;
    if (dl->kr) {
        char who[128], where[1200], err[256];
        snprintf(who, sizeof who, "deadletter:%s", dl->program);
        snprintf(where, sizeof where, "%s:%llu", source, (unsigned long long)line);
        sealed = cv_fieldcrypt_seal(dl->kr, raw, len, who, where, err, sizeof err);
        if (!sealed)
            cv_warn("cannot seal dead letter %s: %s; keeping only its reason",
                    where, err);
    }
    if (dl->kr) {
        if (sealed)
            json_object_set_new(o, "raw_sealed", json_string(sealed));
        free(sealed);
    } else {
        set_raw(o, raw, len);
    }
    if (truncated)
        json_object_set_new(o, "truncated", json_true());
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    int rc = -1;
    if (text) {
        size_t n = strlen(text);
        text[n] = '\n'; /* replaces the NUL: write n + 1 bytes */
        rc = cv_write_all(dl->fd, text, n + 1);
        free(text);
    }
    if (rc < 0) {
        dl->failed++;
        cv_metrics_add(dl->mx, "ctxvault_deadletter_write_failures_total", NULL, 1);
        cv_err("cannot write dead-letter file %s: %s", dl->path,
               strerror(errno));
    } else {
        cv_metrics_add(dl->mx, "ctxvault_events_deadlettered_total", NULL, 1);
    }
    return rc;
}

void cv_deadletter_set_metrics(cv_deadletter *dl, cv_metrics *m)
{
    dl->mx = m;
    /* the series exists from the start, at zero */
    cv_metrics_add(m, "ctxvault_events_deadlettered_total", NULL, 0);
}

/* Replace "raw_sealed" by the line it holds. */
static void open_record(json_t *o, const cv_keyring *kr)
{
    const char *sealed = json_string_value(json_object_get(o, "raw_sealed"));
    const char *program = json_string_value(json_object_get(o, "program"));
    const char *source = json_string_value(json_object_get(o, "source"));
    json_int_t line = json_integer_value(json_object_get(o, "line"));
    if (!sealed || !program || !source)
        return;
    char who[128], where[1200], err[256], *plain;
    size_t len;
    snprintf(who, sizeof who, "deadletter:%s", program);
    snprintf(where, sizeof where, "%s:%lld", source, (long long)line);
    if (cv_fieldcrypt_unseal(kr, sealed, who, where, &plain, &len, err, sizeof err) < 0) {
        json_object_set_new(o, "unseal_error", json_string(err));
        return;
    }
    set_raw(o, plain, len);
    sodium_memzero(plain, len);
    free(plain);
    json_object_del(o, "raw_sealed");
}

int cv_deadletter_show(const char *dir, const char *program,
                       const cv_keyring *kr, FILE *out)
{
    char *path = cv_fmt("%s/%s.ndjson", dir, program);
    FILE *f = fopen(path, "r");
    if (!f) {
        int missing = errno == ENOENT;
        if (!missing)
            cv_err("cannot read %s: %s", path, strerror(errno));
        free(path);
        return missing ? 0 : EX_NOINPUT;
    }
    int status = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)n, 0, &je);
        if (!o) {
            cv_warn("%s: a record is not JSON: %s", path, je.text);
            continue;
        }
        if (kr)
            open_record(o, kr);
        if (json_dumpf(o, out, JSON_COMPACT) < 0 || fputc('\n', out) == EOF)
            status = EX_IOERR;
        json_decref(o);
        if (status)
            break;
    }
    free(line);
    fclose(f);
    free(path);
    return status;
}
