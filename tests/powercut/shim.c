/*
 * shim.c - the power-cut simulator's recorder: an LD_PRELOAD library that
 * logs every change a program makes to files under POWERCUT_ROOT (writes,
 * truncations, syncs, creates, renames, links, unlinks, mkdir) to the file
 * POWERCUT_LOG, for powercut.py to replay into post-crash states
 * (tests/powercut/README.md has the record format and the model).
 *
 * It keeps no table of descriptors: each operation on a descriptor asks
 * the kernel what it is (fstat, then /proc/self/fd), so dup, fork, exec
 * and descriptors closed behind its back (fclose) cannot mislead it.
 * A change is done and logged with the log locked, so the log has the
 * changes in the order the kernel made them; a sync notes where the log
 * ended when it began (off), and covers only what came before.
 *
 * It never changes what the program sees: the real call's result and
 * errno are returned as they were, whatever the logging does.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* operations, as powercut.py names them */
enum {
    OP_CREATE = 1,  /* p1 created (ino) */
    OP_MKDIR = 2,   /* p1 made (ino) */
    OP_RENAME = 3,  /* p1 renamed to p2 (ino of the file moved) */
    OP_LINK = 4,    /* p2 a new name of p1 (ino) */
    OP_UNLINK = 5,  /* p1 removed (ino) */
    OP_RMDIR = 6,   /* p1 removed */
    OP_WRITE = 7,   /* data at off of ino */
    OP_TRUNC = 8,   /* ino cut or extended to size */
    OP_FSYNC = 9,   /* ino (a file, or the directory p1) synced: what the
                     * log held before byte off; size: st_size then */
    OP_SYNCALL = 10, /* sync(2), syncfs(2): all before byte off durable */
    OP_MARK = 11,   /* data written to POWERCUT_MARK: an acknowledgement */
};
#define FL_DIR 1      /* OP_FSYNC of a directory */
#define FL_DATAONLY 2 /* OP_FSYNC by fdatasync (or an O_DSYNC write) */

/* one record: this header, then p1, p2 and the data */
struct rec {
    uint32_t magic;  /* "PCUT" */
    uint32_t reclen; /* header and payload */
    uint16_t op;
    uint16_t flags;
    uint32_t pid;
    uint64_t ino;
    int64_t off;
    int64_t size; /* OP_TRUNC: the new size; OP_FSYNC: st_size */
    uint32_t p1len;
    uint32_t p2len;
    uint64_t datalen;
};
_Static_assert(sizeof(struct rec) == 56, "the record header has no padding");
#define REC_MAGIC 0x54554350u

static char g_root[PATH_MAX]; /* realpath of POWERCUT_ROOT; "" = off */
static size_t g_rootlen;
static char g_mark[PATH_MAX]; /* POWERCUT_MARK, resolved */
static char g_logpath[PATH_MAX];
static int g_logfd = -1;
static pid_t g_logpid;
static dev_t g_logdev;
static ino_t g_logino;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static __thread int t_busy; /* inside the shim: log nothing (no recursion) */

#define REAL(ret, name, args) static ret(*real_##name) args
REAL(int, open, (const char *, int, ...));
REAL(int, openat, (int, const char *, int, ...));
REAL(FILE *, fopen, (const char *, const char *));
REAL(ssize_t, write, (int, const void *, size_t));
REAL(ssize_t, writev, (int, const struct iovec *, int));
REAL(ssize_t, pwrite, (int, const void *, size_t, off_t));
REAL(ssize_t, pwritev, (int, const struct iovec *, int, off_t));
REAL(ssize_t, pwritev2, (int, const struct iovec *, int, off_t, int));
REAL(int, ftruncate, (int, off_t));
REAL(int, truncate, (const char *, off_t));
REAL(int, fsync, (int));
REAL(int, fdatasync, (int));
REAL(void, sync, (void));
REAL(int, syncfs, (int));
REAL(int, renameat2, (int, const char *, int, const char *, unsigned));
REAL(int, linkat, (int, const char *, int, const char *, int));
REAL(int, unlinkat, (int, const char *, int));
REAL(int, mkdirat, (int, const char *, mode_t));

static void *must_sym(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        fputs("powercut shim: a libc symbol is missing\n", stderr);
        abort();
    }
    return p;
}

static void child_after_fork(void)
{
    pthread_mutex_init(&g_lock, NULL); /* a thread of the parent may hold it */
}

/* path resolution of a file that may not exist yet: its directory
 * resolved (symbolic links too), then its last name */
static int resolve(int dirfd, const char *path, char *out)
{
    char abs[PATH_MAX * 2];
    if (path[0] == '/') {
        snprintf(abs, sizeof abs, "%s", path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base))
                return -1;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n < 0)
                return -1;
            base[n] = '\0';
        }
        snprintf(abs, sizeof abs, "%s/%s", base, path);
    }
    size_t n = strlen(abs);
    while (n > 1 && abs[n - 1] == '/')
        abs[--n] = '\0';
    char *slash = strrchr(abs, '/');
    const char *name = slash + 1;
    char dir[PATH_MAX];
    if (slash == abs) {
        strcpy(dir, "/");
    } else {
        *slash = '\0';
        if (!realpath(abs, dir))
            return -1;
    }
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || !*name) {
        /* the directory itself, or its parent: resolve the whole path */
        char whole[PATH_MAX * 2];
        snprintf(whole, sizeof whole, "%s/%s", dir, name);
        return realpath(whole, out) ? 0 : -1;
    }
    if ((size_t)snprintf(out, PATH_MAX, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "",
                         name) >= PATH_MAX)
        return -1;
    return 0;
}

static void init(void)
{
    int e = errno;
    real_open = must_sym("open");
    real_openat = must_sym("openat");
    real_fopen = must_sym("fopen");
    real_write = must_sym("write");
    real_writev = must_sym("writev");
    real_pwrite = must_sym("pwrite");
    real_pwritev = must_sym("pwritev");
    real_pwritev2 = must_sym("pwritev2");
    real_ftruncate = must_sym("ftruncate");
    real_truncate = must_sym("truncate");
    real_fsync = must_sym("fsync");
    real_fdatasync = must_sym("fdatasync");
    real_sync = must_sym("sync");
    real_syncfs = must_sym("syncfs");
    real_renameat2 = must_sym("renameat2");
    real_linkat = must_sym("linkat");
    real_unlinkat = must_sym("unlinkat");
    real_mkdirat = must_sym("mkdirat");
    pthread_atfork(NULL, NULL, child_after_fork);
    const char *root = getenv("POWERCUT_ROOT"), *log = getenv("POWERCUT_LOG");
    const char *mark = getenv("POWERCUT_MARK");
    if (root && *root && log && *log && realpath(root, g_root) &&
        strlen(log) < sizeof g_logpath) {
        g_rootlen = strlen(g_root);
        strcpy(g_logpath, log);
        if (!mark || !*mark || resolve(AT_FDCWD, mark, g_mark) < 0)
            g_mark[0] = '\0';
    } else {
        g_root[0] = '\0';
    }
    errno = e;
}

static int active(void)
{
    pthread_once(&g_once, init);
    return g_root[0] && !t_busy;
}

/* the part of ABS under the root ("." for the root), or NULL */
static const char *under_root(const char *abs)
{
    if (strncmp(abs, g_root, g_rootlen) != 0)
        return NULL;
    if (abs[g_rootlen] == '\0')
        return ".";
    if (abs[g_rootlen] != '/' || g_rootlen == 1)
        return g_rootlen == 1 ? abs + 1 : NULL;
    return abs + g_rootlen + 1;
}

/* the log, opened by this process (flock excludes the other processes
 * only through a description of their own); reopened when the program
 * closed or replaced its descriptor */
static int log_fd(void)
{
    struct stat st;
    if (g_logfd >= 0 && g_logpid == getpid() && fstat(g_logfd, &st) == 0 &&
        st.st_dev == g_logdev && st.st_ino == g_logino)
        return g_logfd;
    int fd = real_open(g_logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    /* far from the low numbers the program's own open() would return */
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 700);
    if (high >= 0) {
        close(fd);
        fd = high;
    }
    if (fstat(fd, &st) < 0) {
        close(fd);
        return -1;
    }
    g_logfd = fd;
    g_logpid = getpid();
    g_logdev = st.st_dev;
    g_logino = st.st_ino;
    return fd;
}

/* The log locked against the other threads and processes. It is held
 * across a watched operation and its record, so that the log has the
 * operations in the order the kernel did them (a file one process creates
 * and another writes: the creation first). Not across fsync(2): a sync
 * notes where the log ended when it began, and covers what came before. */
static int log_lock(void)
{
    int e = errno;
    t_busy++;
    pthread_mutex_lock(&g_lock);
    int fd = log_fd();
    while (fd >= 0 && flock(fd, LOCK_EX) < 0)
        if (errno != EINTR)
            fd = -1;
    errno = e;
    return fd;
}

static void log_unlock(int fd)
{
    int e = errno;
    if (fd >= 0)
        flock(fd, LOCK_UN);
    pthread_mutex_unlock(&g_lock);
    t_busy--;
    errno = e;
}

/* the end of the log: where the next record goes (the log locked) */
static int64_t log_end(int fd)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* one record, in one write(2), the log locked by log_lock() as FD */
static void put(int fd, int op, int flags, uint64_t ino, int64_t off, int64_t size,
                const char *p1, const char *p2, const struct iovec *iov, int iovcnt,
                size_t datalen)
{
    if (fd < 0)
        return;
    int e = errno;
    size_t l1 = p1 ? strlen(p1) : 0, l2 = p2 ? strlen(p2) : 0;
    size_t total = sizeof(struct rec) + l1 + l2 + datalen;
    char *buf = malloc(total);
    if (!buf) {
        errno = e;
        return;
    }
    struct rec h = {REC_MAGIC, (uint32_t)total, (uint16_t)op, (uint16_t)flags,
                    (uint32_t)getpid(), ino, off, size, (uint32_t)l1, (uint32_t)l2,
                    datalen};
    char *p = buf;
    memcpy(p, &h, sizeof h);
    p += sizeof h;
    memcpy(p, p1 ? p1 : "", l1);
    p += l1;
    memcpy(p, p2 ? p2 : "", l2);
    p += l2;
    size_t left = datalen;
    for (int i = 0; i < iovcnt && left > 0; i++) {
        size_t n = iov[i].iov_len < left ? iov[i].iov_len : left;
        memcpy(p, iov[i].iov_base, n);
        p += n;
        left -= n;
    }
    size_t done = 0;
    while (done < total) {
        ssize_t w = real_write(fd, buf + done, total - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    free(buf);
    errno = e;
}

/* what FD is: a regular file or a directory under the root (its path
 * then in rel, 1 returned), the mark file (2), or anything else (0) */
static int classify(int fd, struct stat *st, char *rel)
{
    int e = errno, what = 0;
    if (fstat(fd, st) == 0 && (S_ISREG(st->st_mode) || S_ISDIR(st->st_mode))) {
        char link[64], abs[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, abs, sizeof abs - 1);
        if (n >= 0) {
            abs[n] = '\0';
            /* an unlinked file still open: the name it had */
            static const char del[] = " (deleted)";
            size_t dl = sizeof del - 1;
            if ((size_t)n > dl && strcmp(abs + n - dl, del) == 0)
                abs[n - dl] = '\0';
            const char *r = under_root(abs);
            if (g_mark[0] && strcmp(abs, g_mark) == 0) {
                what = 2;
            } else if (r) {
                snprintf(rel, PATH_MAX, "%s", r);
                what = 1;
            }
        }
    }
    errno = e;
    return what;
}

/* a descriptor operation's context: what the descriptor is, and the
 * log, locked when it is watched */
struct fdop {
    int what;
    struct stat st;
    char rel[PATH_MAX];
    int lfd;
};

/* 1 with the log locked when FD is watched (or the mark file) */
static int fd_begin(int fd, struct fdop *c)
{
    c->what = classify(fd, &c->st, c->rel);
    c->lfd = -1;
    if (c->what)
        c->lfd = log_lock();
    return c->what;
}

/* the record of a write of N bytes at OFF (-1: at the descriptor's
 * position, which is past the data now), then the log unlocked */
static void write_end(int fd, struct fdop *c, const struct iovec *iov, int iovcnt,
                      ssize_t n, off_t off, int dsync)
{
    int e = errno;
    if (n > 0 && c->what == 2) {
        put(c->lfd, OP_MARK, 0, 0, 0, 0, NULL, NULL, iov, iovcnt, (size_t)n);
    } else if (n > 0 && S_ISREG(c->st.st_mode)) {
        if (off < 0)
            off = lseek(fd, 0, SEEK_CUR) - n;
        put(c->lfd, OP_WRITE, 0, c->st.st_ino, off, 0, c->rel, NULL, iov, iovcnt,
            (size_t)n);
        int fl = fcntl(fd, F_GETFL);
        if (dsync || (fl >= 0 && (fl & O_DSYNC))) {
            struct stat now;
            put(c->lfd, OP_FSYNC, FL_DATAONLY, c->st.st_ino, log_end(c->lfd),
                fstat(fd, &now) == 0 ? now.st_size : -1, c->rel, NULL, NULL, 0, 0);
        }
    }
    log_unlock(c->lfd);
    errno = e;
}

/* ---- open ------------------------------------------------------------ */

static int rel_of(int dirfd, const char *path, char *rel);

static int do_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    char rel[PATH_MAX];
    if (!active() || !(flags & (O_CREAT | O_TRUNC)) || (flags & __O_TMPFILE) ||
        !rel_of(dirfd, path, rel))
        return real_openat(dirfd, path, flags, mode);
    int lfd = log_lock(), e0 = errno;
    struct stat before, st;
    int existed = !(flags & O_CREAT) ||
                  fstatat(dirfd, path, &before, AT_SYMLINK_NOFOLLOW) == 0;
    errno = e0;
    int fd = real_openat(dirfd, path, flags, mode), e = errno;
    if (fd >= 0 && classify(fd, &st, rel) == 1 && S_ISREG(st.st_mode)) {
        if (!existed || (flags & O_EXCL))
            put(lfd, OP_CREATE, 0, st.st_ino, 0, 0, rel, NULL, NULL, 0, 0);
        else if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY)
            put(lfd, OP_TRUNC, 0, st.st_ino, 0, 0, rel, NULL, NULL, 0, 0);
    }
    log_unlock(lfd);
    errno = e;
    return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | __O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(AT_FDCWD, path, flags, m);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(AT_FDCWD, path, flags, m);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(dirfd, path, flags, m);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(dirfd, path, flags, m);
}

/* the fortified entry points (_FORTIFY_SOURCE), which take no mode */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
int __open_2(const char *path, int flags) { return do_openat(AT_FDCWD, path, flags, 0); }
int __open64_2(const char *path, int flags) { return do_openat(AT_FDCWD, path, flags, 0); }
int __openat_2(int dirfd, const char *path, int flags)
{
    return do_openat(dirfd, path, flags, 0);
}
int __openat64_2(int dirfd, const char *path, int flags)
{
    return do_openat(dirfd, path, flags, 0);
}

int creat(const char *path, mode_t mode)
{
    return do_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

int creat64(const char *path, mode_t mode)
{
    return do_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

/* stdio opens with libc's internal open, which no preload sees: the
 * creation and truncation are logged here (the writes of a FILE are not:
 * README.md) */
static FILE *do_fopen(const char *path, const char *mode)
{
    char rel[PATH_MAX];
    int creating = strchr(mode, 'w') || strchr(mode, 'a');
    if (!active() || !creating || !rel_of(AT_FDCWD, path, rel))
        return real_fopen(path, mode);
    int lfd = log_lock(), e0 = errno;
    struct stat before, st;
    int existed = stat(path, &before) == 0;
    errno = e0;
    FILE *f = real_fopen(path, mode);
    int e = errno;
    if (f && classify(fileno(f), &st, rel) == 1 && S_ISREG(st.st_mode)) {
        if (!existed)
            put(lfd, OP_CREATE, 0, st.st_ino, 0, 0, rel, NULL, NULL, 0, 0);
        else if (strchr(mode, 'w'))
            put(lfd, OP_TRUNC, 0, st.st_ino, 0, 0, rel, NULL, NULL, 0, 0);
    }
    log_unlock(lfd);
    errno = e;
    return f;
}

FILE *fopen(const char *path, const char *mode) { return do_fopen(path, mode); }
FILE *fopen64(const char *path, const char *mode) { return do_fopen(path, mode); }

/* ---- writes ---------------------------------------------------------- */

ssize_t write(int fd, const void *buf, size_t len)
{
    struct fdop c;
    if (!active() || !fd_begin(fd, &c))
        return real_write(fd, buf, len);
    ssize_t n = real_write(fd, buf, len);
    struct iovec v = {(void *)buf, n > 0 ? (size_t)n : 0};
    write_end(fd, &c, &v, 1, n, -1, 0);
    return n;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    struct fdop c;
    if (!active() || !fd_begin(fd, &c))
        return real_writev(fd, iov, cnt);
    ssize_t n = real_writev(fd, iov, cnt);
    write_end(fd, &c, iov, cnt, n, -1, 0);
    return n;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
    struct fdop c;
    if (!active() || !fd_begin(fd, &c))
        return real_pwrite(fd, buf, len, off);
    ssize_t n = real_pwrite(fd, buf, len, off);
    struct iovec v = {(void *)buf, n > 0 ? (size_t)n : 0};
    write_end(fd, &c, &v, 1, n, off, 0);
    return n;
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
    return pwrite(fd, buf, len, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    struct fdop c;
    if (!active() || !fd_begin(fd, &c))
        return real_pwritev(fd, iov, cnt, off);
    ssize_t n = real_pwritev(fd, iov, cnt, off);
    write_end(fd, &c, iov, cnt, n, off, 0);
    return n;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
    return pwritev(fd, iov, cnt, off);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int fl)
{
    struct fdop c;
    if (!active() || !fd_begin(fd, &c))
        return real_pwritev2(fd, iov, cnt, off, fl);
    ssize_t n = real_pwritev2(fd, iov, cnt, off, fl);
    /* off -1: at the descriptor's position, as write_end takes it */
    write_end(fd, &c, iov, cnt, n, off, (fl & (RWF_DSYNC | RWF_SYNC)) != 0);
    return n;
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int fl)
{
    return pwritev2(fd, iov, cnt, off, fl);
}

int ftruncate(int fd, off_t len)
{
    struct fdop c;
    if (!active() || !fd_begin(fd, &c))
        return real_ftruncate(fd, len);
    int rc = real_ftruncate(fd, len), e = errno;
    if (rc == 0 && c.what == 1 && S_ISREG(c.st.st_mode))
        put(c.lfd, OP_TRUNC, 0, c.st.st_ino, 0, len, c.rel, NULL, NULL, 0, 0);
    log_unlock(c.lfd);
    errno = e;
    return rc;
}

int ftruncate64(int fd, off_t len) { return ftruncate(fd, len); }

int truncate(const char *path, off_t len)
{
    char rel[PATH_MAX];
    if (!active() || !rel_of(AT_FDCWD, path, rel))
        return real_truncate(path, len);
    int lfd = log_lock();
    int rc = real_truncate(path, len), e = errno;
    struct stat st;
    if (rc == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode))
        put(lfd, OP_TRUNC, 0, st.st_ino, 0, len, rel, NULL, NULL, 0, 0);
    log_unlock(lfd);
    errno = e;
    return rc;
}

int truncate64(const char *path, off_t len) { return truncate(path, len); }

/* ---- syncs ----------------------------------------------------------- */

/* fsync or fdatasync of FD: the record says where the log ended when the
 * sync began (off): it covers the operations before that, no later one */
static int real_sync_of(int fd, int flags)
{
    return (flags & FL_DATAONLY) ? real_fdatasync(fd) : real_fsync(fd);
}

static int do_sync(int fd, int flags)
{
    struct fdop c;
    if (!active() || !fd_begin(fd, &c))
        return real_sync_of(fd, flags);
    int64_t begin = log_end(c.lfd);
    log_unlock(c.lfd);
    int rc = real_sync_of(fd, flags), e = errno;
    if (rc == 0 && c.what == 1) {
        struct stat now;
        int lfd = log_lock();
        put(lfd, OP_FSYNC, flags | (S_ISDIR(c.st.st_mode) ? FL_DIR : 0), c.st.st_ino,
            begin, fstat(fd, &now) == 0 ? now.st_size : -1, c.rel, NULL, NULL, 0, 0);
        log_unlock(lfd);
    }
    errno = e;
    return rc;
}

int fsync(int fd) { return do_sync(fd, 0); }
int fdatasync(int fd) { return do_sync(fd, FL_DATAONLY); }

static int64_t sync_begin(void)
{
    int lfd = log_lock();
    int64_t begin = log_end(lfd);
    log_unlock(lfd);
    return begin;
}

static void sync_end(int64_t begin)
{
    int lfd = log_lock();
    put(lfd, OP_SYNCALL, 0, 0, begin, 0, NULL, NULL, NULL, 0, 0);
    log_unlock(lfd);
}

void sync(void)
{
    if (!active()) {
        real_sync();
        return;
    }
    int64_t begin = sync_begin();
    real_sync();
    sync_end(begin);
}

int syncfs(int fd)
{
    if (!active())
        return real_syncfs(fd);
    int64_t begin = sync_begin();
    int rc = real_syncfs(fd), e = errno;
    if (rc == 0)
        sync_end(begin); /* taken as every filesystem's: the root's is one */
    errno = e;
    return rc;
}

/* ---- names ----------------------------------------------------------- */

/* a regular file or a directory: what holds data to lose (a socket, a
 * FIFO or a symbolic link is never logged, as the snapshot skips them) */
static int data_or_dir(const struct stat *st)
{
    return S_ISREG(st->st_mode) || S_ISDIR(st->st_mode);
}

/* the path under the root of DIRFD/PATH into rel, or 0 */
static int rel_of(int dirfd, const char *path, char *rel)
{
    int e = errno, in = 0;
    char abs[PATH_MAX];
    if (resolve(dirfd, path, abs) == 0) {
        const char *r = under_root(abs);
        if (r) {
            snprintf(rel, PATH_MAX, "%s", r);
            in = 1;
        }
    }
    errno = e;
    return in;
}

int renameat2(int od, const char *op, int nd, const char *np, unsigned fl)
{
    char r1[PATH_MAX], r2[PATH_MAX];
    int in1 = 0, in2 = 0;
    if (active()) {
        in1 = rel_of(od, op, r1);
        in2 = rel_of(nd, np, r2);
    }
    if (!in1 && !in2)
        return real_renameat2(od, op, nd, np, fl);
    int lfd = log_lock(), e0 = errno;
    struct stat st;
    int known = fstatat(od, op, &st, AT_SYMLINK_NOFOLLOW) == 0;
    errno = e0;
    int rc = real_renameat2(od, op, nd, np, fl), e = errno;
    /* a name moved out of the root is removed; one moved in appears */
    if (rc == 0 && !(known && !data_or_dir(&st)))
        put(lfd, OP_RENAME, 0, known ? st.st_ino : 0, 0, 0, in1 ? r1 : "",
            in2 ? r2 : "", NULL, 0, 0);
    log_unlock(lfd);
    errno = e;
    return rc;
}

int renameat(int od, const char *op, int nd, const char *np)
{
    return renameat2(od, op, nd, np, 0);
}

int rename(const char *op, const char *np)
{
    return renameat2(AT_FDCWD, op, AT_FDCWD, np, 0);
}

int linkat(int od, const char *op, int nd, const char *np, int fl)
{
    char r1[PATH_MAX], r2[PATH_MAX];
    if (!active() || !rel_of(nd, np, r2))
        return real_linkat(od, op, nd, np, fl);
    int lfd = log_lock();
    int rc = real_linkat(od, op, nd, np, fl), e = errno;
    struct stat st;
    if (rc == 0 && fstatat(nd, np, &st, AT_SYMLINK_NOFOLLOW) == 0 && data_or_dir(&st))
        put(lfd, OP_LINK, 0, st.st_ino, 0, 0, rel_of(od, op, r1) ? r1 : "", r2, NULL, 0,
            0);
    log_unlock(lfd);
    errno = e;
    return rc;
}

int link(const char *op, const char *np)
{
    return linkat(AT_FDCWD, op, AT_FDCWD, np, 0);
}

int unlinkat(int dirfd, const char *path, int fl)
{
    char rel[PATH_MAX];
    if (!active() || !rel_of(dirfd, path, rel))
        return real_unlinkat(dirfd, path, fl);
    int lfd = log_lock(), e0 = errno;
    struct stat st;
    int known = fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
    errno = e0;
    int rc = real_unlinkat(dirfd, path, fl), e = errno;
    if (rc == 0 && !(known && !data_or_dir(&st)))
        put(lfd, (fl & AT_REMOVEDIR) ? OP_RMDIR : OP_UNLINK, 0, known ? st.st_ino : 0, 0,
            0, rel, NULL, NULL, 0, 0);
    log_unlock(lfd);
    errno = e;
    return rc;
}

int unlink(const char *path) { return unlinkat(AT_FDCWD, path, 0); }
int rmdir(const char *path) { return unlinkat(AT_FDCWD, path, AT_REMOVEDIR); }

/* libc's remove() calls its internal unlink and rmdir */
int remove(const char *path)
{
    struct stat st;
    int e0 = errno, dir = lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
    errno = e0;
    if (dir)
        return rmdir(path);
    return unlink(path);
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
    char rel[PATH_MAX];
    if (!active() || !rel_of(dirfd, path, rel))
        return real_mkdirat(dirfd, path, mode);
    int lfd = log_lock();
    int rc = real_mkdirat(dirfd, path, mode), e = errno;
    struct stat st;
    if (rc == 0 && fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0)
        put(lfd, OP_MKDIR, 0, st.st_ino, 0, 0, rel, NULL, NULL, 0, 0);
    log_unlock(lfd);
    errno = e;
    return rc;
}

int mkdir(const char *path, mode_t mode) { return mkdirat(AT_FDCWD, path, mode); }
