/* cvctxload.c - a bench probe for the context API: K client threads, each
 * with its own connection (include/ctxvault/cvclient.h, as an application links it),
 * send context.load and/or interactions.query requests to a running store
 * and time each one, from the call to the last event of the reply handed
 * out (the client library's parsing included).
 *
 *   cvctxload [--home DIR] [--op load|query|mix] [--threads K]
 *             [--requests N | --seconds S] [--rate R] [--limit L]
 *             [--users U | --user NAME] [--warmup W]
 *
 *   --op        load: context.load of the user's latest context; query:
 *               interactions.query of L rows (--limit, default 100); mix:
 *               the two in turn (default load)
 *   --requests  N requests in all, shared by the threads (default 10000);
 *   --seconds   or as many as S seconds allow; SIGTERM or SIGINT also ends
 *               the run, and the figures are printed all the same
 *   --rate      R requests a second per thread, evenly spaced (default 0:
 *               each thread sends the next as soon as its reply is in)
 *   --users     each request for a user drawn at random from user-00001 to
 *               user-U, genevents' names (default 1000); --user: one
 *   --warmup    W untimed requests per thread first (default 100)
 *
 * Prints one JSON object on stdout: {"op","threads","requests","ok",
 * "refused","failed","seconds","per_second","rows","p50_ms","p90_ms",
 * "p99_ms","p999_ms","max_ms"} (rows: events received in all; refused
 * and failed count the calls that store refused or that got no answer,
 * with the first error on stderr). Exit 0 when every request succeeded,
 * 1 when some did not, 64 usage, 69 no connection. */
#include "ctxvault/cvclient.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { OP_LOAD, OP_QUERY, OP_MIX };

static struct {
    const char *home;
    int op;
    int threads;
    long long requests;    /* 0: until seconds run out */
    double seconds;
    double rate;
    int limit;
    int users;            /* genevents' users are user-00001 to user-U */
    const char *user;
    int warmup;
} opt = {.op = OP_LOAD, .threads = 1, .requests = 10000, .limit = 100,
         .users = 1000, .warmup = 100};

static volatile sig_atomic_t stop;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long long issued;           /* requests handed out (--requests) */
static char first_error[512];

typedef struct {
    int index;
    cv_client *c;
    int64_t *lat_us;
    size_t n, cap;
    long long ok, refused, failed, rows;
} worker;

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* xorshift64*: a user per request, the same sequence per thread each run */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void note_error(const worker *w, const char *what)
{
    pthread_mutex_lock(&lock);
    if (!first_error[0])
        snprintf(first_error, sizeof first_error, "%s: %s (%s)", what,
                 cv_client_error(w->c), cv_client_error_code(w->c));
    pthread_mutex_unlock(&lock);
}

/* One request; its outcome counted in w unless warmup. */
static void one(worker *w, int op, const char *user, bool warmup)
{
    long long rows = 0;
    int rc;
    if (op == OP_LOAD) {
        char *ctx = NULL;
        rc = cv_client_context_load(w->c, user, NULL, false, &ctx);
        if (rc == 0)
            rows = 1;
        free(ctx);
    } else {
        cv_client_filter f = {.user = user, .page = opt.limit, .max = opt.limit};
        cv_client_iter *it = cv_client_interactions(w->c, &f);
        char *ev;
        rc = CV_CLIENT_FAILED;
        while (it && (rc = cv_client_iter_next(it, &ev)) > 0) {
            free(ev);
            rows++;
        }
        cv_client_iter_destroy(&it);
    }
    if (warmup)
        return;
    w->rows += rows;
    if (rc == 0) {
        w->ok++;
    } else if (rc == CV_CLIENT_REFUSED) {
        w->refused++;
        note_error(w, op == OP_LOAD ? "context.load refused" : "interactions.query refused");
    } else {
        w->failed++;
        note_error(w, op == OP_LOAD ? "context.load failed" : "interactions.query failed");
    }
}

/* Take the next request's turn: false when the run is over. */
static bool take_turn(int64_t end_us)
{
    if (stop)
        return false;
    if (opt.requests > 0) {
        pthread_mutex_lock(&lock);
        bool more = issued < opt.requests;
        if (more)
            issued++;
        pthread_mutex_unlock(&lock);
        return more;
    }
    return mono_us() < end_us;
}

static void *run(void *arg)
{
    worker *w = arg;
    uint64_t seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(w->index + 1);
    char user[32];
    int op = opt.op == OP_MIX ? (w->index % 2 ? OP_QUERY : OP_LOAD) : opt.op;
    for (int i = 0; i < opt.warmup && !stop; i++) {
        snprintf(user, sizeof user, "user-%05d", 1 + (int)(next_rand(&seed) % (uint64_t)opt.users));
        one(w, op, opt.user ? opt.user : user, true);
    }
    int64_t start = mono_us();
    int64_t end = opt.seconds > 0 ? start + (int64_t)(opt.seconds * 1e6) : INT64_MAX;
    int64_t gap = opt.rate > 0 ? (int64_t)(1e6 / opt.rate) : 0;
    int64_t due = start;
    while (take_turn(end)) {
        if (gap) {
            /* evenly spaced; a late request does not make the next early */
            int64_t now = mono_us();
            if (due > now) {
                struct timespec ts = {(time_t)((due - now) / 1000000),
                                      (long)((due - now) % 1000000) * 1000};
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !stop)
                    ;
                if (stop)
                    break;
            } else {
                due = now;
            }
            due += gap;
        }
        snprintf(user, sizeof user, "user-%05d", 1 + (int)(next_rand(&seed) % (uint64_t)opt.users));
        int64_t t0 = mono_us();
        one(w, op, opt.user ? opt.user : user, false);
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 4096;
            int64_t *p = realloc(w->lat_us, w->cap * sizeof *p);
            if (!p) {
                fprintf(stderr, "cvctxload: out of memory for the latencies\n");
                exit(70);
            }
            w->lat_us = p;
        }
        w->lat_us[w->n++] = mono_us() - t0;
        if (opt.op == OP_MIX)
            op = op == OP_LOAD ? OP_QUERY : OP_LOAD;
    }
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* the q-quantile of the sorted v, in ms (nearest rank) */
static double quantile_ms(const int64_t *v, size_t n, double q)
{
    if (!n)
        return 0;
    size_t i = (size_t)(q * (double)n + 0.999999);
    if (i < 1)
        i = 1;
    if (i > n)
        i = n;
    return (double)v[i - 1] / 1000.0;
}

static void usage(void)
{
    fprintf(stderr, "usage: cvctxload [--home DIR] [--op load|query|mix] [--threads K]\n"
                    "                 [--requests N | --seconds S] [--rate R] [--limit L]\n"
                    "                 [--users U | --user NAME] [--warmup W]\n");
    exit(64);
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"home", required_argument, NULL, 'h'},
        {"op", required_argument, NULL, 'o'},
        {"threads", required_argument, NULL, 't'},
        {"requests", required_argument, NULL, 'n'},
        {"seconds", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},
        {"limit", required_argument, NULL, 'l'},
        {"users", required_argument, NULL, 'u'},
        {"user", required_argument, NULL, 'U'},
        {"warmup", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.home = optarg; break;
        case 'o':
            if (strcmp(optarg, "load") == 0)
                opt.op = OP_LOAD;
            else if (strcmp(optarg, "query") == 0)
                opt.op = OP_QUERY;
            else if (strcmp(optarg, "mix") == 0)
                opt.op = OP_MIX;
            else
                usage();
            break;
        case 't': opt.threads = atoi(optarg); break;
        case 'n': opt.requests = atoll(optarg); break;
        case 's': opt.seconds = atof(optarg); opt.requests = 0; break;
        case 'r': opt.rate = atof(optarg); break;
        case 'l': opt.limit = atoi(optarg); break;
        case 'u': opt.users = atoi(optarg); break;
        case 'U': opt.user = optarg; break;
        case 'w': opt.warmup = atoi(optarg); break;
        default: usage();
        }
    }
    if (optind != argc || opt.threads < 1 || opt.threads > 256 || opt.limit < 1 ||
        opt.limit > 1000 || opt.users < 1 || opt.warmup < 0 || opt.rate < 0 ||
        (opt.requests <= 0 && opt.seconds <= 0))
        usage();

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    worker *w = calloc((size_t)opt.threads, sizeof *w);
    pthread_t *tid = calloc((size_t)opt.threads, sizeof *tid);
    if (!w || !tid) {
        fprintf(stderr, "cvctxload: out of memory\n");
        return 70;
    }
    for (int i = 0; i < opt.threads; i++) {
        char err[512];
        w[i].index = i;
        w[i].c = cv_client_open(opt.home, err, sizeof err);
        if (!w[i].c) {
            fprintf(stderr, "cvctxload: cannot open a client: %s\n", err);
            return 69;
        }
    }
    int64_t t0 = mono_us();
    for (int i = 0; i < opt.threads; i++)
        if (pthread_create(&tid[i], NULL, run, &w[i]) != 0) {
            fprintf(stderr, "cvctxload: cannot start a thread\n");
            return 71;
        }
    for (int i = 0; i < opt.threads; i++)
        pthread_join(tid[i], NULL);
    double secs = (double)(mono_us() - t0) / 1e6;

    size_t n = 0;
    long long ok = 0, refused = 0, failed = 0, rows = 0;
    for (int i = 0; i < opt.threads; i++) {
        n += w[i].n;
        ok += w[i].ok;
        refused += w[i].refused;
        failed += w[i].failed;
        rows += w[i].rows;
    }
    int64_t *all = malloc((n ? n : 1) * sizeof *all);
    if (!all) {
        fprintf(stderr, "cvctxload: out of memory\n");
        return 70;
    }
    size_t k = 0;
    for (int i = 0; i < opt.threads; i++) {
        memcpy(all + k, w[i].lat_us, w[i].n * sizeof *all);
        k += w[i].n;
        free(w[i].lat_us);
        cv_client_close(&w[i].c);
    }
    qsort(all, n, sizeof *all, cmp64);
    static const char *names[] = {"load", "query", "mix"};
    printf("{\"op\":\"%s\",\"threads\":%d,\"requests\":%zu,\"ok\":%lld,"
           "\"refused\":%lld,\"failed\":%lld,\"seconds\":%.3f,\"per_second\":%.0f,"
           "\"rows\":%lld,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"p999_ms\":%.3f,\"max_ms\":%.3f}\n",
           names[opt.op], opt.threads, n, ok, refused, failed, secs,
           secs > 0 ? (double)n / secs : 0, rows, quantile_ms(all, n, 0.50),
           quantile_ms(all, n, 0.90), quantile_ms(all, n, 0.99),
           quantile_ms(all, n, 0.999), n ? (double)all[n - 1] / 1000.0 : 0);
    if (first_error[0])
        fprintf(stderr, "cvctxload: %lld refused, %lld failed; the first: %s\n",
                refused, failed, first_error);
    free(all);
    free(w);
    free(tid);
    return refused || failed ? 1 : 0;
}
