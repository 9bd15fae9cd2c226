/* cvsynctool.c - test and bench tool for ctxvault-sync.
 *
 *   cvsynctool seed --home DIR --records N [--users U] [--round R]
 *       N local changes on a device whose store is not running, in one
 *       transaction under the writer lock, through lib/storage/syncstore.h as
 *       store makes them: record i is user-(i mod U) (default 1000)'s
 *       context "ctx-(i / U)", with fields that change with R (default 1).
 *       Only the sync records are written (no context rows): what a peer
 *       pulls is the same. Prints {"records":N,"ms":T}.
 *
 *   cvsynctool latency --from DIR --to DIR [--count N] [--interval MS]
 *       N times: save a context on the instance at --from (context.save
 *       through its store) and time until the instance at --to returns it
 *       (context.load polled every millisecond). Prints {"count","p50_ms",
 *       "p90_ms","p99_ms","max_ms","lost"} (lost: not seen within 10 s).
 *
 * Exit 0, 1 when something failed, 64 usage. */
#include "base/config.h"
#include "ctxvault/cvclient.h"
#include "storage/db.h"
#include "privacy/policy.h"
#include "net/synckeys.h"
#include "storage/syncstore.h"
#include "base/util.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int seed(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"records", required_argument, NULL, 'n'},
        {"users", required_argument, NULL, 'u'},
        {"round", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    const char *home = NULL;
    long long n = 0, users = 1000, round = 1;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'H': home = optarg; break;
        case 'n': n = atoll(optarg); break;
        case 'u': users = atoll(optarg); break;
        case 'r': round = atoll(optarg); break;
        default: return 64;
        }
    }
    if (!home || n <= 0 || users <= 0)
        return 64;
    cv_config cfg;
    if (cv_config_load(&cfg, home, NULL) || !cfg.sync_device) {
        fprintf(stderr, "cvsynctool: %s is not a sync device\n", home);
        cv_config_free(&cfg);
        return 1;
    }
    char err[512];
    int code, problems = 0, rc = 1;
    unsigned char key[32];
    cv_recovery rec;
    cv_policy *pol = cv_policy_load(cfg.policy_file, true, &problems);
    cv_db *db = pol ? cv_db_open_writer(&cfg, "cvsynctool", &rec, &code, err,
                                        sizeof err) : NULL;
    if (!db || cv_synckeys_load_e2e(&cfg, key, err, sizeof err) < 0) {
        fprintf(stderr, "cvsynctool: %s\n", pol ? err : "bad policy");
        goto out;
    }
    cv_syncstore *s = cv_syncstore_new(db, cfg.sync_device, key,
                                       cv_policy_merge_rules(pol));
    int64_t t0 = cv_mono_ms();
    cv_db_begin(db);
    for (long long i = 0; i < n; i++) {
        char user[32], name[32];
        snprintf(user, sizeof user, "user-%05lld", i % users + 1);
        snprintf(name, sizeof name, "ctx-%lld", i / users);
        json_t *f = json_pack("{s:s, s:[s,s], s:I, s:I}", "summary",
                              round % 2 ? "reading about sync" : "planning a trip",
                              "recentSearches", "vector clocks", user,
                              "sessionCount", (json_int_t)round,
                              "i", (json_int_t)i);
        int r = cv_syncstore_local_change(s, -1, user, name, f, cv_now_ms(),
                                          err, sizeof err);
        json_decref(f);
        if (r < 0) {
            fprintf(stderr, "cvsynctool: %s\n", err);
            cv_db_rollback(db);
            cv_syncstore_destroy(&s);
            goto out;
        }
    }
    if (cv_db_commit(db) != SQLITE_OK) {
        fprintf(stderr, "cvsynctool: commit failed: %s\n", cv_db_errmsg(db));
    } else {
        printf("{\"records\":%lld,\"ms\":%lld}\n", n,
               (long long)(cv_mono_ms() - t0));
        rc = 0;
    }
    cv_syncstore_destroy(&s);
out:
    cv_db_close(&db);
    cv_policy_destroy(&pol);
    cv_config_free(&cfg);
    return rc;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int latency(int argc, char **argv)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},
        {"interval", required_argument, NULL, 'i'},
        {NULL, 0, NULL, 0},
    };
    const char *from = NULL, *to = NULL;
    int count = 100, interval = 50, o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'f': from = optarg; break;
        case 't': to = optarg; break;
        case 'n': count = atoi(optarg); break;
        case 'i': interval = atoi(optarg); break;
        default: return 64;
        }
    }
    if (!from || !to || count <= 0)
        return 64;
    char err[512];
    cv_client *a = cv_client_open(from, err, sizeof err);
    cv_client *b = a ? cv_client_open(to, err, sizeof err) : NULL;
    if (!b) {
        fprintf(stderr, "cvsynctool: %s\n", err);
        cv_client_close(&a);
        return 1;
    }
    double *lat = calloc((size_t)count, sizeof *lat);
    int got = 0, lost = 0;
    char probe[64];
    snprintf(probe, sizeof probe, "%ld", (long)time(NULL));
    for (int i = 0; i < count; i++) {
        char fields[256], want[96];
        snprintf(fields, sizeof fields, "{\"probe\":\"%s-%d\",\"summary\":"
                 "\"latency probe\"}", probe, i);
        snprintf(want, sizeof want, "\"probe\":\"%s-%d\"", probe, i);
        cv_client_context cx = {.user = "latency-user", .name = "probe",
                                .fields = fields};
        double t0 = now_ms();
        if (cv_client_context_save(a, &cx) != 0) {
            fprintf(stderr, "cvsynctool: save: %s\n", cv_client_error(a));
            lost++;
            continue;
        }
        bool seen = false;
        while (!seen && now_ms() - t0 < 10000) {
            char *ctx = NULL;
            if (cv_client_context_load(b, "latency-user", "probe", false, &ctx) == 0 &&
                ctx && strstr(ctx, want))
                seen = true;
            free(ctx);
            if (!seen) {
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
            }
        }
        if (seen)
            lat[got++] = now_ms() - t0;
        else
            lost++;
        struct timespec ts = {interval / 1000, (long)(interval % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    qsort(lat, (size_t)got, sizeof *lat, cmp);
#define PCT(p) (got ? lat[(int)((got - 1) * (p))] : 0.0)
    printf("{\"count\":%d,\"p50_ms\":%.1f,\"p90_ms\":%.1f,\"p99_ms\":%.1f,"
           "\"max_ms\":%.1f,\"lost\":%d}\n", got, PCT(0.5), PCT(0.9), PCT(0.99),
           got ? lat[got - 1] : 0.0, lost);
    free(lat);
    cv_client_close(&a);
    cv_client_close(&b);
    return lost ? 1 : 0;
}

int main(int argc, char **argv)
{
    cv_log_init("cvsynctool");
    if (argc < 2)
        goto usage;
    if (!strcmp(argv[1], "seed"))
        return seed(argc - 1, argv + 1);
    if (!strcmp(argv[1], "latency"))
        return latency(argc - 1, argv + 1);
usage:
    fprintf(stderr, "usage: cvsynctool seed --home DIR --records N [--users U] "
            "[--round R]\n       cvsynctool latency --from DIR --to DIR "
            "[--count N] [--interval MS]\n");
    return 64;
}
