/* replay.c - run a fuzz target once over each file named (directories:
 * each file in them), as make check does with fuzz/corpus/TARGET, so the
 * corpus and every crash found become tests in the ordinary builds. */
#include "fuzzutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz-replay: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 4096, n = 0, got;
    uint8_t *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf)
        return -1;
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    long inputs = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) < 0) {
            fprintf(stderr, "fuzz-replay: cannot read %s\n", argv[i]);
            bad++;
        } else if (S_ISDIR(sb.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *e;
            while (d && (e = readdir(d))) {
                if (e->d_name[0] == '.')
                    continue;
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
                if (run_file(path) < 0)
                    bad++;
                else
                    inputs++;
            }
            if (d)
                closedir(d);
        } else if (run_file(argv[i]) < 0) {
            bad++;
        } else {
            inputs++;
        }
    }
    printf("%ld inputs run\n", inputs);
    return bad ? 1 : 0;
}
