/*
 * selftest.c - small programs with known sync patterns, for the power-cut
 * simulator to judge (tests/shell/test_powercut.sh). Each writes in DIR,
 * acknowledges by writing "ack" to MARK (the file the shim's
 * POWERCUT_MARK names), then does more unsynced work, so that the states
 * after the acknowledgement vary.
 *
 *   pcut-selftest rename-nodirsync DIR MARK  DIR/data replaced through a
 *       synced temporary file and rename(2), the directory never synced:
 *       the acknowledgement is premature
 *   pcut-selftest rename-dirsync DIR MARK    the same, the directory
 *       synced before the acknowledgement: correct
 *   pcut-selftest ack-before-sync DIR MARK   a record appended to DIR/log,
 *       acknowledged, then fdatasync(2): premature
 *   pcut-selftest sync-then-ack DIR MARK     appended, fdatasync, then
 *       acknowledged: correct
 *   pcut-selftest torn DIR MARK              3 sectors (1536 bytes of 'x')
 *       written to DIR/torn and never synced
 *   pcut-selftest stdio DIR MARK             DIR/stdio written through
 *       stdio (which the shim does not see) and synced
 *   pcut-selftest hammer DIR N               two threads, each N writes
 *       of 100 bytes to a file of its own and a sync each 10 writes
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *dir, *mark;

static void die(const char *what)
{
    fprintf(stderr, "pcut-selftest: %s failed: %s\n", what, strerror(errno));
    exit(1);
}

static char *path(const char *name)
{
    static char buf[4][4096];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static int open_or_die(const char *p, int flags)
{
    int fd = open(p, flags | O_CLOEXEC, 0600);
    if (fd < 0)
        die(p);
    return fd;
}

static void write_or_die(int fd, const char *s, size_t n)
{
    if (write(fd, s, n) != (ssize_t)n)
        die("write");
}

static void sync_dir(void)
{
    int fd = open_or_die(dir, O_RDONLY | O_DIRECTORY);
    if (fsync(fd) < 0)
        die("fsync of the directory");
    close(fd);
}

static void ack(void)
{
    int fd = open_or_die(mark, O_WRONLY | O_CREAT | O_APPEND);
    write_or_die(fd, "ack\n", 4);
    close(fd);
}

/* after the acknowledgement: unsynced work in another file and name */
static void more_work(void)
{
    int fd = open_or_die(path("later"), O_WRONLY | O_CREAT | O_TRUNC);
    write_or_die(fd, "later\n", 6);
    close(fd);
    if (rename(path("later"), path("later2")) < 0)
        die("rename");
}

static void replace(int dirsync)
{
    int fd = open_or_die(path("data.tmp"), O_WRONLY | O_CREAT | O_TRUNC);
    write_or_die(fd, "new content\n", 12);
    if (fsync(fd) < 0)
        die("fsync");
    close(fd);
    if (rename(path("data.tmp"), path("data")) < 0)
        die("rename");
    if (dirsync)
        sync_dir();
    ack();
    more_work();
}

static void append(int sync_first)
{
    int fd = open_or_die(path("log"), O_WRONLY | O_APPEND);
    write_or_die(fd, "record 1\n", 9);
    if (sync_first && fdatasync(fd) < 0)
        die("fdatasync");
    ack();
    if (!sync_first && fdatasync(fd) < 0)
        die("fdatasync");
    close(fd);
    more_work();
}

static int hammer_n;

static void *hammer(void *arg)
{
    char name[64], buf[100];
    snprintf(name, sizeof name, "hammer.%ld.%d", (long)getpid(), *(int *)arg);
    int fd = open_or_die(path(name), O_WRONLY | O_CREAT | O_TRUNC);
    for (int i = 0; i < hammer_n; i++) {
        memset(buf, 'a' + (i % 26), sizeof buf);
        if (pwrite(fd, buf, sizeof buf, (off_t)i * (off_t)sizeof buf) != sizeof buf)
            die("pwrite");
        if (i % 10 == 9 && fdatasync(fd) < 0)
            die("fdatasync");
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: pcut-selftest MODE DIR MARK|N\n");
        return 2;
    }
    dir = argv[2];
    mark = argv[3];
    if (strcmp(argv[1], "rename-nodirsync") == 0) {
        replace(0);
    } else if (strcmp(argv[1], "rename-dirsync") == 0) {
        replace(1);
    } else if (strcmp(argv[1], "ack-before-sync") == 0) {
        append(0);
    } else if (strcmp(argv[1], "sync-then-ack") == 0) {
        append(1);
    } else if (strcmp(argv[1], "torn") == 0) {
        char buf[1536];
        memset(buf, 'x', sizeof buf);
        int fd = open_or_die(path("torn"), O_WRONLY);
        write_or_die(fd, buf, sizeof buf);
        close(fd);
        ack();
    } else if (strcmp(argv[1], "stdio") == 0) {
        FILE *f = fopen(path("stdio"), "w");
        if (!f || fputs("through stdio\n", f) < 0 || fflush(f) != 0 || fsync(fileno(f)) < 0)
            die("stdio");
        fclose(f);
        ack();
    } else if (strcmp(argv[1], "hammer") == 0) {
        hammer_n = atoi(argv[3]);
        pthread_t t[2];
        int ids[2] = {0, 1};
        for (int i = 0; i < 2; i++)
            if (pthread_create(&t[i], NULL, hammer, &ids[i]) != 0)
                die("pthread_create");
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
    } else {
        fprintf(stderr, "pcut-selftest: unknown mode %s\n", argv[1]);
        return 2;
    }
    return 0;
}
