/* deadletter.c - the dead-letter file: one JSON object per rejected line,
 * fsync'ed when closed. */
#include "deadletter.h"

#include "timefmt.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cv_deadletter {
    int fd;
    char *path;
    char *program;
    uint64_t count;
    uint64_t failed;
};

cv_deadletter *cv_deadletter_open(const char *dir, const char *program)
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

int cv_deadletter_put(cv_deadletter *dl, const char *source, uint64_t line,
                      const char *reason, const char *raw, size_t len,
                      bool truncated)
{
    cv_err("%s:%llu: %s", source, (unsigned long long)line, reason);
    dl->count++;

    char when[40];
    cv_time_format_ms(cv_now_ms(), when);
    json_t *o = json_object();
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "program", json_string(dl->program));
    json_object_set_new(o, "source", json_string(source));
    json_object_set_new(o, "line", json_integer((json_int_t)line));
    json_object_set_new(o, "reason", json_string(reason));
    if (valid_text(raw, len)) {
        json_object_set_new(o, "raw", json_stringn(raw, len));
    } else {
        size_t blen = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
        char *b = cv_malloc(blen);
        sodium_bin2base64(b, blen, (const unsigned char *)raw, len,
                          sodium_base64_VARIANT_ORIGINAL);
        json_object_set_new(o, "raw_base64", json_string(b));
        free(b);
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
        cv_err("cannot write dead-letter file %s: %s", dl->path,
               strerror(errno));
    }
    return rc;
}
