/* util.c - logging, checked I/O and parsing helpers used everywhere. */
#include "base/util.h"

#include "base/time.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *progname = "ctxvault";
volatile int cv_stop_requested;

void cv_log_init(const char *name)
{
    const char *slash = strrchr(name, '/');
    progname = slash ? slash + 1 : name;
}


static void vlog(const char *level, const char *fmt, va_list ap)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "%s: %s", progname, level);
    if (n < 0 || (size_t)n >= sizeof buf)
        n = 0;
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    size_t len = (m < 0) ? (size_t)n : (size_t)n + (size_t)m;
    if (len > sizeof buf - 2)
        len = sizeof buf - 2;
    buf[len++] = '\n';
    /* One write per line so lines from several processes do not interleave. */
    (void)cv_write_all(2, buf, len);
}

void cv_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("", fmt, ap);
    va_end(ap);
}

void cv_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("warning: ", fmt, ap);
    va_end(ap);
}

void cv_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("error: ", fmt, ap);
    va_end(ap);
}

void cv_die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("error: ", fmt, ap);
    va_end(ap);
    exit(code);
}

void *cv_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        cv_die(EX_OSERR, "out of memory allocating %zu bytes", n);
    return p;
}

void *cv_calloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        cv_die(EX_OSERR, "out of memory allocating %zu x %zu bytes", n, m);
    return p;
}

void *cv_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        cv_die(EX_OSERR, "out of memory allocating %zu bytes", n);
    return q;
}

char *cv_strdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        cv_die(EX_OSERR, "out of memory");
    return d;
}

char *cv_fmt(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        cv_die(EX_OSERR, "out of memory");
    return s;
}

int64_t cv_now_ms(void)
{
    static int fixed = -1;
    static int64_t fixed_ms;
    if (fixed < 0) {
        const char *e = getenv("CTXVAULT_NOW");
        fixed = e && *e && (cv_time_parse(e, strlen(e), &fixed_ms) ||
                            cv_parse_int(e, 0, INT64_MAX / 2, &fixed_ms));
    }
    if (fixed)
        return fixed_ms;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool cv_bench_no_durability(void)
{
    static int off = -1;
    if (off < 0) {
        const char *e = getenv("CTXVAULT_BENCH_NO_DURABILITY");
        off = e && strcmp(e, "1") == 0;
        if (off)
            cv_warn("CTXVAULT_BENCH_NO_DURABILITY=1: spool, acks, checksums "
                    "and WAL are OFF; events can be lost (benchmarks only)");
    }
    return off;
}

int64_t cv_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double cv_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cv_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

char *cv_read_file(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = cv_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max + 1) {
                free(buf);
                close(fd);
                errno = EFBIG;
                return NULL;
            }
            cap *= 2;
            buf = cv_realloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(buf);
            close(fd);
            errno = e;
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > max) {
        free(buf);
        errno = EFBIG;
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int cv_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int cv_fsync_dir_of(const char *path)
{
    char *dir = cv_strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    int rc = cv_fsync_dir(dir);
    free(dir);
    return rc;
}

int cv_write_file_atomic(const char *path, const void *data, size_t len,
                         int mode, bool exclusive)
{
    char *tmp = cv_fmt("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        free(tmp);
        return -1;
    }
    if (fchmod(fd, (mode_t)mode) < 0 || cv_write_all(fd, data, len) < 0 ||
        fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        errno = e;
        return -1;
    }
    close(fd);
    int rc;
    if (exclusive) {
        /* link(2) fails with EEXIST instead of replacing: never overwrite. */
        rc = link(tmp, path);
        int e = errno;
        unlink(tmp);
        errno = e;
    } else {
        rc = rename(tmp, path);
        if (rc < 0) {
            int e = errno;
            unlink(tmp);
            errno = e;
        }
    }
    free(tmp);
    if (rc < 0)
        return -1;
    return cv_fsync_dir_of(path);
}

int cv_mkdir_p(const char *path, int mode, bool fix_mode)
{
    char *p = cv_strdup(path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, (mode_t)mode) < 0) {
                if (errno != EEXIST) {
                    int e = errno;
                    free(p);
                    errno = e;
                    return -1;
                }
                struct stat st;
                if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
                    free(p);
                    errno = ENOTDIR;
                    return -1;
                }
                if (fix_mode && c == '\0' && chmod(p, (mode_t)mode) < 0) {
                    int e = errno;
                    free(p);
                    errno = e;
                    return -1;
                }
            }
            *s = c;
            if (c == '\0')
                break;
        }
    }
    free(p);
    return 0;
}

static int64_t parse_scaled(const char *s, const char *const *units,
                            const int64_t *scale, size_t nunits)
{
    if (!s || !*s)
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < nunits; i++) {
        if (strcmp(end, units[i]) == 0) {
            if (scale[i] && v > INT64_MAX / scale[i])
                return -1;
            return (int64_t)v * scale[i];
        }
    }
    return -1;
}

int64_t cv_parse_size(const char *s)
{
    static const char *const u[] = {"", "B", "K", "KiB", "k", "M", "MiB",
                                    "G", "GiB"};
    static const int64_t sc[] = {1, 1, 1024, 1024, 1024, 1 << 20, 1 << 20,
                                 1 << 30, 1 << 30};
    return parse_scaled(s, u, sc, sizeof u / sizeof *u);
}

int64_t cv_parse_duration(const char *s)
{
    static const char *const u[] = {"ms", "s", "m", "h", "d", "w"};
    static const int64_t sc[] = {1, 1000, 60000, 3600000, 86400000,
                                 604800000};
    return parse_scaled(s, u, sc, sizeof u / sizeof *u);
}

const char *cv_plural(long long n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

bool cv_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s)
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = (int64_t)v;
    return true;
}

void cv_grow_pipe(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
        return;
    for (int size = 1 << 20; size >= 65536; size /= 2)
        if (fcntl(fd, F_SETPIPE_SZ, size) >= 0)
            return;
}

static void on_stop(int sig)
{
    (void)sig;
    cv_stop_requested = 1;
}

void cv_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking reads return EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void cv_nap_ms(int64_t ms)
{
    int64_t until = cv_mono_ms() + ms;
    for (int64_t left = ms; left > 0 && !cv_stop_requested;
         left = until - cv_mono_ms()) {
        int64_t slice = left < 250 ? left : 250;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = slice * 1000000L};
        nanosleep(&ts, NULL); /* a signal cuts it short */
    }
}
