/* util.h - logging, exit codes, checked I/O and small helpers shared by
 * every ctxvault program. */
#ifndef CV_UTIL_H
#define CV_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sysexits.h>

#define CV_VERSION "0.1.0"

/* How every program writes JSON (include jansson.h to use it): compact, and
 * reals with 15 significant digits, so a decimal the producer sent with up
 * to 15 digits comes back as written (0.1, not 0.10000000000000001). */
#define CV_JSON_DUMP (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* Program name used as the prefix of every log line. */
void cv_log_init(const char *progname);

/* err(3)-style logging to stderr: "prog: message". Messages are lowercase
 * and say what failed and why. Never pass key material to these. */
void cv_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cv_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cv_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit with a sysexits code. */
void cv_die(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* Allocation that dies with EX_OSERR on failure. */
void *cv_malloc(size_t n);
void *cv_calloc(size_t n, size_t m);
void *cv_realloc(void *p, size_t n);
char *cv_strdup(const char *s);
/* asprintf that dies on failure. */
char *cv_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Wall clock and monotonic time in milliseconds. For tests only,
 * CTXVAULT_NOW (ms since the epoch, or RFC 3339) fixes the wall clock, so
 * retention can be proven without waiting an hour. */
int64_t cv_now_ms(void);
int64_t cv_mono_ms(void);
/* Monotonic time in seconds, to the nanosecond: for latencies below a ms. */
double cv_mono_s(void);

/* For `make bench` only: CTXVAULT_BENCH_NO_DURABILITY=1 turns off the
 * spool, acks, checksums and the WAL, to measure what durability costs.
 * Each program that honours it says so loudly on stderr. */
bool cv_bench_no_durability(void);

/* Write all of buf, retrying on EINTR and short writes. 0 or -1 (errno). */
int cv_write_all(int fd, const void *buf, size_t len);
/* Read a whole file (at most max bytes) into a NUL-terminated buffer.
 * NULL with errno set on failure (EFBIG when larger than max). */
char *cv_read_file(const char *path, size_t max, size_t *len);
/* Write a file atomically: temp file with mode, fsync, rename, fsync dir.
 * When exclusive, fails with EEXIST if path already exists. */
int cv_write_file_atomic(const char *path, const void *data, size_t len,
                         int mode, bool exclusive);
/* mkdir -p with the given mode for every directory it creates; an existing
 * directory is chmod'ed to mode when fix_mode. 0 or -1 (errno). */
int cv_mkdir_p(const char *path, int mode, bool fix_mode);
/* fsync the directory dir itself, so the names created, renamed or
 * removed in it last. 0, or -1 with errno. */
int cv_fsync_dir(const char *dir);
/* fsync the directory holding path. */
int cv_fsync_dir_of(const char *path);

/* Parse "123", "64KiB", "1MiB", "2GiB" (also K/M/G). -1 on error. */
int64_t cv_parse_size(const char *s);
/* Parse a duration: "500ms", "30s", "15m", "1h", "7d", "2w". Milliseconds,
 * or -1 on error. */
int64_t cv_parse_duration(const char *s);
/* Parse a decimal integer in [min, max]. false on error. */
bool cv_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* The word for n things: one ("entry") when n is 1, else many ("entries"),
 * so that messages read "1 entry", "2 entries". */
const char *cv_plural(long long n, const char *one, const char *many);

/* When fd is a pipe, grow its buffer (to 1 MiB, or the system's limit) so
 * the stages of a pipeline keep working while the next one is busy
 * committing. Quietly does nothing otherwise. */
void cv_grow_pipe(int fd);

/* Signal handling for a clean stop: SIGTERM and SIGINT set the flag,
 * installed without SA_RESTART so blocking reads return EINTR. SIGPIPE is
 * ignored so writes fail with EPIPE instead of killing the process. */
extern volatile int cv_stop_requested;
void cv_install_signals(void);
/* Sleep ms, waking early once a stop is requested (in slices of at most
 * 250 ms, so a signal landing just before a slice is seen soon). */
void cv_nap_ms(int64_t ms);

#endif
