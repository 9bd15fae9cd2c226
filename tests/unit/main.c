/* main.c - runs every registered unit test in a forked child. With
 * arguments, runs only the tests whose names contain one of them. */
#include "harness.h"

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TESTS 512

static struct {
    const char *name;
    cvt_fn *fn;
    const char *file;
} tests[MAX_TESTS];
static int ntests;
static char tmpdir[4096];

void cvt_register(const char *name, cvt_fn *fn, const char *file)
{
    if (ntests < MAX_TESTS) {
        tests[ntests].name = name;
        tests[ntests].fn = fn;
        tests[ntests].file = file;
        ntests++;
    }
}

void cvt_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "  %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

const char *cvt_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/cvt.XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            _exit(1);
        }
    }
    return tmpdir;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static int selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < ntests; i++) {
        if (!selected(tests[i].name, argc, argv))
            continue;
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 70;
        }
        if (pid == 0) {
            tests[i].fn();
            if (tmpdir[0])
                nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
            fflush(NULL);
            exit(0); /* exit, not _exit: LeakSanitizer runs at exit */
        }
        int st;
        waitpid(pid, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            printf("ok - %s\n", tests[i].name);
            passed++;
        } else {
            if (WIFSIGNALED(st))
                printf("not ok - %s (killed by signal %d)\n", tests[i].name,
                       WTERMSIG(st));
            else
                printf("not ok - %s (%s)\n", tests[i].name, tests[i].file);
            failed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
