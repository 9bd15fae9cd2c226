/* fuzz_backup.c - the backup reader (lib/storage/snapshot.c) fed truncated or
 * altered streams: a sealed backup of a small database is made once, and
 * each input says where to cut it and which bytes to flip. An altered
 * backup must be refused; only the untouched one unpacks and checks. */
#include "fuzzutil.h"

#include "storage/db.h"
#include "storage/snapshot.h"
#include "base/util.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint8_t *sealed;
static size_t sealed_len;

/* A database with a few rows' worth of schema, sealed as a backup is. */
static void make_backup(void)
{
    const cv_keyring *kr = fuzz_keyring();
    char *snap = cv_fmt("%s/snap.db", fuzz_dir()), err[512];
    char *out = cv_fmt("%s/backup.cvb", fuzz_dir());
    sqlite3 *h;
    if (sqlite3_open(snap, &h) != SQLITE_OK || cv_db_create_schema(h) != SQLITE_OK ||
        sqlite3_exec(h, "INSERT INTO users(user_id) VALUES('u1'),('u2')", NULL,
                     NULL, NULL) != SQLITE_OK)
        abort();
    sqlite3_close(h);
    uint64_t size;
    char hex[65];
    json_t *m = cv_snapshot_describe(snap, err, sizeof err);
    if (!m || cv_snapshot_digest(snap, &size, hex, err, sizeof err) < 0)
        abort();
    json_object_set_new(m, "format", json_string("ctxvault-backup/1"));
    json_object_set_new(m, "snapshot_bytes", json_integer((json_int_t)size));
    json_object_set_new(m, "snapshot_blake2b", json_string(hex));
    int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cv_sealed s;
    if (fd < 0 || cv_snapshot_seal(kr, snap, m, fd, &s, err, sizeof err) < 0)
        abort();
    sealed_len = (size_t)lseek(fd, 0, SEEK_END);
    sealed = cv_malloc(sealed_len);
    if (pread(fd, sealed, sealed_len, 0) != (ssize_t)sealed_len)
        abort();
    close(fd);
    json_decref(m);
    free(snap);
    free(out);
}

/* Does the file at path differ from the backup made? (Two flips of one
 * byte may cancel out.) */
static bool altered(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *b = cv_malloc(sealed_len + 1);
    size_t n = f ? fread(b, 1, sealed_len + 1, f) : 0;
    bool diff = n != sealed_len || memcmp(b, sealed, n) != 0;
    if (f)
        fclose(f);
    free(b);
    return diff;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!sealed)
        make_backup();
    fuzz_damage dm;
    fuzz_damage_read(data, size, &dm);
    char *in = cv_fmt("%s/in.cvb", fuzz_dir());
    char *dest = cv_fmt("%s/restored.db", fuzz_dir()), err[512];
    fuzz_write_file(in, sealed, sealed_len);
    fuzz_damage_file(in, &dm);
    bool damaged = altered(in);
    unlink(dest);
    json_t *m = NULL;
    int rc = cv_snapshot_unpack(fuzz_keyring(), in, dest, &m, err, sizeof err);
    if (rc == 0 && damaged)
        abort(); /* an altered backup was taken as good */
    if (rc == 0 && cv_snapshot_check(dest, fuzz_keyring(), m, err, sizeof err) < 0)
        abort();
    if (rc < 0 && !damaged)
        abort();
    json_decref(m);
    unlink(dest);
    free(in);
    free(dest);
    return 0;
}
