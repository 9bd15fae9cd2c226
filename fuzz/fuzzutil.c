/* fuzzutil.c - scratch files, a keyring and file damage for the fuzz
 * targets (fuzzutil.h). */
#include "fuzzutil.h"

#include "crypto/fieldcrypt.h"
#include "base/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static cv_keyring *kr;

static void cleanup(void)
{
    char *cmd = cv_fmt("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: cannot remove %s\n", dir);
    free(cmd);
}

const char *fuzz_dir(void)
{
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/cvfuzz.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(cleanup);
    }
    return dir;
}

const cv_keyring *fuzz_keyring(void)
{
    if (kr)
        return kr;
    char err[512];
    if (cv_fieldcrypt_init() < 0)
        abort();
    char *path = cv_fmt("%s/keyring", fuzz_dir());
    if (cv_keyring_create(path, err, sizeof err) < 0 ||
        !(kr = cv_keyring_load(path, err, sizeof err))) {
        fprintf(stderr, "fuzz: keyring: %s\n", err);
        abort();
    }
    free(path);
    return kr;
}

char *fuzz_text(const uint8_t *data, size_t size)
{
    char *s = cv_malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

static uint32_t u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

size_t fuzz_damage_read(const uint8_t *data, size_t size, fuzz_damage *d)
{
    size_t at = 0;
    memset(d, 0, sizeof *d);
    d->cut = UINT32_MAX;
    if (size < 1)
        return 0;
    int n = data[at++] % 9;
    for (int i = 0; i < n && at + 5 <= size; i++, at += 5) {
        d->off[d->n] = u32(data + at);
        d->xr[d->n++] = data[at + 4];
    }
    if (at + 4 <= size) {
        d->cut = u32(data + at);
        at += 4;
    }
    return at;
}

void fuzz_damage_file(const char *path, const fuzz_damage *d)
{
    struct stat sb;
    int fd = open(path, O_RDWR);
    if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_size == 0)
        goto out;
    for (int i = 0; i < d->n; i++) {
        off_t at = (off_t)(d->off[i] % (uint64_t)sb.st_size);
        uint8_t b;
        if (pread(fd, &b, 1, at) != 1)
            continue;
        b ^= d->xr[i] ? d->xr[i] : 1;
        if (pwrite(fd, &b, 1, at) != 1)
            continue;
    }
    if (d->cut != UINT32_MAX && ftruncate(fd, (off_t)(d->cut % (uint64_t)sb.st_size)) < 0)
        perror("fuzz: ftruncate");
out:
    if (fd >= 0)
        close(fd);
}

void fuzz_each_file(const char *d, const fuzz_damage *dm)
{
    DIR *dp = opendir(d);
    struct dirent *e;
    while (dp && (e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        char *p = cv_fmt("%s/%s", d, e->d_name);
        if (dm)
            fuzz_damage_file(p, dm);
        else
            unlink(p);
        free(p);
    }
    if (dp)
        closedir(dp);
}

void fuzz_write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, p, n) != (ssize_t)n) {
        perror("fuzz: write");
        abort();
    }
    close(fd);
}
