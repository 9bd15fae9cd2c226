/* genevents.c - a deterministic generator of realistic ctxvault events.
 *
 * Prints NDJSON events on stdout: profiles, contexts, interactions (click,
 * search, navigation), traces, snapshots, replays, audit records and a few
 * kinds ctxvault does not know (which it files under "other"). The same
 * options give the same bytes on any machine: a private PRNG (splitmix64)
 * drives every choice and no floating point is used.
 *
 *   genevents [-n COUNT] [-s SEED] [-u USERS] [--start RFC3339] [--no-id]
 *             [--bad [--bad-every N]] [--classic]
 *   genevents --app context|profile [-n COUNT] [-s SEED] [-u USERS]
 *             [--start RFC3339]
 *
 * -n counts valid events (default 1000); -u users are user-00001 upwards
 * (default 100). Facts tests can rely on:
 *   - a user's name, email, devices, home city, IP and person_id depend only
 *     on the user number, never on the seed; every email is
 *     "<first>.<last>@example.org" from the word lists below for users 1 to
 *     1600, "<first>.<last><K>@example.org" (K = (u - 1) / 1600) above, so
 *     unique for any number of users; IPs come from the documentation
 *     ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and
 *     2001:db8::/32;
 *   - what the shipped policy protects is all there: device (id, name, and
 *     for half the users a "mac_address" 02:00:5e:..), location with
 *     coordinates, person_id, email, ip, session_id, query and
 *     recent_searches; and, per user (fact-based, seed-independent): a
 *     third of the users' profiles carry "ssn" (9XX-XX-XXXX, never issued),
 *     "bank_account" ("GB00CTXV" and 14 digits) and "salary" (a number), a
 *     quarter's carry "medical_condition" (from `conditions`); feedback
 *     events carry "email_address" (the user's email). These come from a
 *     PRNG stream of their own, so the other members are exactly what
 *     --classic prints (the output before they were added: it remakes
 *     tests/data/sample.ndjson and bad.ndjson byte for byte);
 *   - a user's first event is their profile, with privacy_level and
 *     retention_days; search queries come from the `queries` list;
 *   - about 20% of events carry a producer "id" (none with --no-id); apart
 *     from that field, --no-id and --bad leave the valid events unchanged.
 * With --bad, after every N valid events (default 50; event numbers
 * N/2, N/2+N, ...) comes one bad line, cycling through the kinds in
 * bad_line(); a blank line follows events N, 2N, ...; events N/5, N/5+N, ...
 * end in CRLF (blank lines and CRLF are valid input). When COUNT >= 1000 one
 * extra line of more than 1 MiB comes after event COUNT/2. So a run has
 * COUNT/N ordinary bad lines, plus one if COUNT >= 1000.
 *
 * --app context|profile prints instead COUNT objects shaped as the
 * storage requirements' TypeScript interfaces are sent by a JavaScript app
 * (JSON.stringify), camelCase and without "kind" (send them with
 * `ctxvault-ingest --kind context` or `--kind profile`):
 *   context object  {id (UUID v4), userId, timestamp (epoch ms, a number),
 *               recentSearches (strings; about a third of the objects hold
 *               one from `health_queries`, e.g. "hiv test clinic near me"),
 *               recentVisits (https:// URLs), clickPatterns [{element, x,
 *               y, timestamp}], userSegment, interestTopics, confidenceScore
 *               (0..1), predictedNextActions [{action, target,
 *               probability}], recommendedContent [{contentId, title, score}],
 *               deviceInfo {os, browser, screenSize, deviceId, deviceName},
 *               locationHint ("City, CC"), emailAddress, ipAddress}
 *   UserProfile {userId, createdAt, lastUpdated (ISO strings with ms),
 *               privacyLevel, dataRetentionDays (30, 90, 365 or "forever"),
 *               language, timezone, theme, totalInteractions,
 *               averageSessionDuration, lastActiveDate, autoLearn,
 *               learningIntensity, sharingLevel}
 * Users are user-00001 upwards as above, with the same per-user email, IP,
 * device ids ("dev-" and 16 hex digits) and device names ("<First>'s
 * <model>"); a user's privacyLevel and dataRetentionDays are fixed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_USERS 10000000UL

/* --classic: the output from before the members of the shipped policy's
 * newer rules were added (ssn, bank_account, ... and emails past user 1600) */
static int classic;

/* ---- randomness: splitmix64, and stateless hashes for per-user facts ---- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t next(uint64_t *state)
{
    *state += UINT64_C(0x9e3779b97f4a7c15);
    return mix64(*state);
}

/* uniform in [0, n), n > 0; the tiny modulo bias does not matter here */
static uint64_t below(uint64_t *state, uint64_t n)
{
    return next(state) % n;
}

/* a fixed fact number `what` about user u, seed-independent */
static uint64_t fact(uint64_t u, uint64_t what)
{
    return mix64(u * UINT64_C(0x9e3779b97f4a7c15) + mix64(what + 0x5bd1e995));
}

/* ---- word lists ---- */

static const char *const firsts[40] = {
    "Alice", "Bruno", "Carla", "David", "Emma", "Farid", "Grace", "Hiro",
    "Ines", "Jamal", "Katarzyna", "Liam", "Maria", "Noah", "Olga", "Pedro",
    "Quinn", "Rosa", "Sami", "Tariq", "Uma", "Victor", "Wen", "Ximena",
    "Yusuf", "Zoe", "Amara", "Bob", "Chloe", "Dmitri", "Elif", "Felix",
    "Giulia", "Hannah", "Ivan", "Jade", "Kenji", "Lena", "Mateo", "Nadia",
};
static const char *const lasts[40] = {
    "Smith", "Garcia", "Mueller", "Rossi", "Kowalski", "Tanaka", "Okafor",
    "Silva", "Nguyen", "Johansson", "Dubois", "Novak", "Haddad", "Kim",
    "Patel", "Cohen", "Schmidt", "Moreau", "Costa", "Ivanova", "Yilmaz",
    "Andersen", "Fischer", "Lopez", "Murphy", "Santos", "Weber", "Rahman",
    "Petrov", "Bianchi", "Sato", "Jensen", "Alvarez", "Brown", "Wilson",
    "Taylor", "Martin", "Lee", "Walker", "Young",
};
static const char *const queries[] = {
    "cheap flights to lisbon", "best pizza near me", "weather tomorrow",
    "how to reset router password", "running shoes size 42",
    "python list comprehension", "train tickets berlin to paris",
    "symptoms of flu in adults", "mortgage calculator 30 years",
    "hotels in kyoto with onsen", "vegan lasagna recipe",
    "used road bikes for sale", "flu vaccine appointment",
    "electric car tax credit", "noise cancelling headphones review",
    "learn spanish online free", "dentist open on saturday",
    "how tall is mount everest", "birthday gift ideas for dad",
    "concert tickets march", "cheap car insurance quote",
    "back pain stretches", "kids summer camp zurich", "iphone 15 battery life",
    "how to file taxes late", "apartment for rent 2 bedrooms",
    "sourdough starter not rising", "best hiking trails near seoul",
    "credit card with no annual fee", "therapist accepting new patients",
    "rust borrow checker explained", "weekend trip ideas from madrid",
    "how to unclog a drain", "gluten free bakery", "visa requirements japan",
    "pregnancy test accuracy", "loan consolidation rates",
    "coffee grinder burr vs blade", "football results today",
    "translate thank you to turkish", "cheap flights to nairobi",
    "standing desk under 300", "how to cancel gym membership",
    "blood pressure normal range", "second hand sofa", "lisbon tram 28 times",
};
static const char *const pages[] = {
    "/", "/search", "/products/running-shoes", "/products/headphones-x2",
    "/cart", "/checkout", "/account/settings", "/account/privacy",
    "/help/returns", "/blog/10-tips-for-travel", "/deals/weekend",
    "/products/coffee-grinder", "/orders/history", "/login",
};
static const char *const referrers[] = {
    "https://www.google.com/", "https://duckduckgo.com/",
    "https://news.example.net/article/4412", "https://mail.example.org/",
    "https://social.example.com/feed",
};
static const char *const elements[] = {
    "button#add-to-cart", "a.nav-home", "input#search", "button.checkout",
    "div.product-card", "img.hero-banner", "a.footer-privacy",
    "button#login", "select#size", "button.load-more",
};
static const char *const trace_names[] = {
    "GET /api/search", "POST /api/cart/items", "GET /api/products/{id}",
    "render ProductList", "db.query users", "POST /api/login",
    "GET /api/recommendations", "POST /api/checkout",
};
static const char *const audit_actions[] = {
    "login", "logout", "password_change", "export_request",
    "consent_update", "delete_request", "email_change", "mfa_enabled",
};
static const char *const topics[] = {
    "travel", "cooking", "running", "finance", "programming", "music",
    "health", "home", "football", "languages", "photography", "parenting",
};
static const char *const segments[] = {
    "tech-savvy", "casual-user", "power-shopper", "new-user", "traveller",
};
static const char *const screens[] = {
    "home", "search", "product", "cart", "checkout", "settings",
};
/* health-related searches, for the application contexts: what makes a context the
 * most sensitive thing stored */
static const char *const health_queries[] = {
    "hiv test clinic near me", "antidepressant side effects",
    "chemotherapy nausea remedies", "early signs of dementia",
    "abortion clinic opening hours", "insulin pump prices",
    "std symptoms women", "rehab centers for alcohol",
};
static const char *const conditions[] = {
    "type 2 diabetes", "asthma", "hiv positive", "major depression",
    "epilepsy", "crohn's disease", "bipolar disorder", "hypertension",
};
static const char *const next_actions[] = {
    "view_product", "add_to_cart", "search", "checkout", "read_article",
    "open_settings",
};
static const char *const content_titles[] = {
    "10 tips for travel", "Running shoes guide", "Best headphones 2026",
    "How to brew coffee", "Weekend deals", "Privacy settings explained",
};
static const char *const comments[] = {
    "the search is slow on my phone", "love the new dark mode",
    "could not find the returns form", "checkout failed twice",
    "please add more payment options",
};

static const struct device {
    const char *model, *os, *browser, *screen;
} devices[] = {
    {"iPhone", "iOS 17.1", "Safari", "390x844"},
    {"Pixel 8", "Android 14", "Chrome", "412x915"},
    {"Galaxy S23", "Android 13", "Samsung Internet", "360x780"},
    {"ThinkPad", "Windows 11", "Edge", "1920x1080"},
    {"MacBook Air", "macOS 14.1", "Safari", "1470x956"},
    {"iMac", "macOS 14.1", "Firefox", "2560x1440"},
    {"Surface Laptop", "Windows 10", "Chrome", "1504x1003"},
    {"iPad", "iPadOS 17", "Safari", "820x1180"},
    {"Chromebook", "ChromeOS 118", "Chrome", "1366x768"},
    {"desktop", "Ubuntu 22.04", "Firefox", "1920x1200"},
};

/* coordinates in microdegrees */
static const struct city {
    const char *name, *country, *locale, *tz;
    int32_t lat, lon;
} cities[] = {
    {"Lisbon", "PT", "pt-PT", "Europe/Lisbon", 38722200, -9139300},
    {"Berlin", "DE", "de-DE", "Europe/Berlin", 52520000, 13405000},
    {"Paris", "FR", "fr-FR", "Europe/Paris", 48856600, 2352200},
    {"New York", "US", "en-US", "America/New_York", 40712800, -74006000},
    {"S\xc3\xa3o Paulo", "BR", "pt-BR", "America/Sao_Paulo", -23550500,
     -46633300},
    {"Tokyo", "JP", "ja-JP", "Asia/Tokyo", 35676200, 139650300},
    {"Lagos", "NG", "en-NG", "Africa/Lagos", 6524400, 3379200},
    {"Mumbai", "IN", "en-IN", "Asia/Kolkata", 19076000, 72877700},
    {"Sydney", "AU", "en-AU", "Australia/Sydney", -33868800, 151209300},
    {"Toronto", "CA", "en-CA", "America/Toronto", 43651100, -79347000},
    {"Madrid", "ES", "es-ES", "Europe/Madrid", 40416800, -3703800},
    {"Krak\xc3\xb3w", "PL", "pl-PL", "Europe/Warsaw", 50064700, 19945000},
    {"Z\xc3\xbcrich", "CH", "de-CH", "Europe/Zurich", 47376900, 8541700},
    {"Istanbul", "TR", "tr-TR", "Europe/Istanbul", 41008200, 28978400},
    {"Seoul", "KR", "ko-KR", "Asia/Seoul", 37566500, 126978000},
    {"Mexico City", "MX", "es-MX", "America/Mexico_City", 19432600,
     -99133200},
    {"Nairobi", "KE", "en-KE", "Africa/Nairobi", -1292100, 36821900},
    {"Stockholm", "SE", "sv-SE", "Europe/Stockholm", 59329300, 18068600},
};

/* ---- an output line under construction ---- */

struct buf {
    char *p;
    size_t len, cap;
};

static void die(const char *what)
{
    fprintf(stderr, "genevents: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void reserve(struct buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        die("out of memory");
    b->p = p;
    b->cap = cap;
}

static void put(struct buf *b, const char *s, size_t n)
{
    reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void putf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("vsnprintf");
    reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* a JSON string; the word lists are valid UTF-8, so only escape ASCII */
static void put_str(struct buf *b, const char *s)
{
    put(b, "\"", 1);
    while (*s) {
        size_t run = 0;
        while (s[run] && s[run] != '"' && s[run] != '\\' &&
               (unsigned char)s[run] >= 0x20)
            run++;
        put(b, s, run);
        s += run;
        if (*s) {
            unsigned char c = (unsigned char)*s++;
            if (c == '"' || c == '\\')
                putf(b, "\\%c", c);
            else
                putf(b, "\\u%04x", c);
        }
    }
    put(b, "\"", 1);
}

/* an unsigned decimal, without printf's cost */
static void put_u64(struct buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(b, tmp + i, sizeof tmp - i);
}

/* `"name":`, preceded by a comma unless it opens the object */
static void key(struct buf *b, const char *name)
{
    if (b->len && b->p[b->len - 1] != '{')
        put(b, ",", 1);
    put_str(b, name);
    put(b, ":", 1);
}

static void kv_str(struct buf *b, const char *name, const char *val)
{
    key(b, name);
    put_str(b, val);
}

static void kv_int(struct buf *b, const char *name, int64_t val)
{
    key(b, name);
    if (val < 0)
        put(b, "-", 1);
    put_u64(b, val < 0 ? (uint64_t)0 - (uint64_t)val : (uint64_t)val);
}

/* a decimal from an integer: fixed(12345, 3) is 12.345 */
static void kv_fixed(struct buf *b, const char *name, int64_t val, int places)
{
    int64_t scale = 1;
    for (int i = 0; i < places; i++)
        scale *= 10;
    uint64_t mag = val < 0 ? (uint64_t)(-val) : (uint64_t)val;
    key(b, name);
    putf(b, "%s%" PRIu64 ".%0*" PRIu64, val < 0 ? "-" : "",
         mag / (uint64_t)scale, places, mag % (uint64_t)scale);
}

static void kv_bool(struct buf *b, const char *name, int val)
{
    key(b, name);
    puts_(b, val ? "true" : "false");
}

/* ---- time: civil dates without the C library's time zone machinery ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void kv_time(struct buf *b, const char *name, int64_t ms)
{
    int64_t days = ms / 86400000, rem = ms % 86400000;
    if (rem < 0) {
        rem += 86400000;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    /* "YYYY-MM-DDTHH:MM:SS.mmmZ", by hand: printf is most of the cost */
    char t[] = "\"0000-00-00T00:00:00.000Z\"";
    unsigned v[] = {(unsigned)(y % 10000), m, d, (unsigned)(rem / 3600000),
                    (unsigned)(rem / 60000 % 60), (unsigned)(rem / 1000 % 60),
                    (unsigned)(rem % 1000)};
    static const int at[] = {4, 7, 10, 13, 16, 19, 23}; /* last digits */
    for (size_t i = 0; i < N_OF(v); i++)
        for (int k = at[i]; v[i]; k--, v[i] /= 10)
            t[k] = (char)('0' + v[i] % 10);
    key(b, name);
    put(b, t, sizeof t - 1);
}

/* YYYY-MM-DDTHH:MM:SS[.fff]Z, in UTC, to milliseconds since the epoch */
static int parse_time(const char *s, int64_t *ms)
{
    unsigned y, mo, d, h, mi, sec, frac = 0;
    int n = 0;
    if (sscanf(s, "%4u-%2u-%2uT%2u:%2u:%2u%n", &y, &mo, &d, &h, &mi, &sec,
               &n) != 6 || n != 19)
        return -1;
    s += n;
    if (*s == '.') {
        int digits = 0;
        for (s++; *s >= '0' && *s <= '9'; s++, digits++)
            if (digits < 3)
                frac = frac * 10 + (unsigned)(*s - '0');
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    if (strcmp(s, "Z") != 0 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
        h > 23 || mi > 59 || sec > 59)
        return -1;
    *ms = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) *
              1000 + frac;
    return 0;
}

/* ---- per-user facts ---- */

static const char *first_name(uint64_t u)
{
    return firsts[(u * 1031) % 1600 % 40];
}

static const char *last_name(uint64_t u)
{
    return lasts[(u * 1031) % 1600 / 40];
}

static void lower_into(char *dst, size_t size, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < size; i++)
        dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
    dst[i] = 0;
}

/* users 1..1600 have distinct names; above, a number keeps emails apart */
static void email_of(uint64_t u, char *email, size_t size)
{
    char f[32], l[32], k[24] = "";
    lower_into(f, sizeof f, first_name(u));
    lower_into(l, sizeof l, last_name(u));
    if (!classic && (u - 1) / 1600)
        snprintf(k, sizeof k, "%" PRIu64, (u - 1) / 1600);
    snprintf(email, size, "%s.%s%s@example.org", f, l, k);
}

static void kv_email_as(struct buf *b, const char *name, uint64_t u)
{
    char email[96];
    email_of(u, email, sizeof email);
    kv_str(b, name, email);
}

static void kv_email(struct buf *b, uint64_t u)
{
    kv_email_as(b, "email", u);
}

static void ip_of(uint64_t u, char *ip, size_t size)
{
    static const char *const nets[] = {"192.0.2", "198.51.100", "203.0.113"};
    uint64_t h = fact(u, 1);
    if (h % 4 == 0)
        snprintf(ip, size, "2001:db8:%x:%x::%x", (unsigned)(h >> 8 & 0xffff),
                 (unsigned)(h >> 24 & 0xffff), (unsigned)(h >> 40 & 0xfff) + 1);
    else
        snprintf(ip, size, "%s.%u", nets[(h >> 8) % 3],
                 (unsigned)((h >> 16) % 254) + 1);
}

static void kv_ip_as(struct buf *b, const char *name, uint64_t u)
{
    char ip[64];
    ip_of(u, ip, sizeof ip);
    kv_str(b, name, ip);
}

static void kv_ip(struct buf *b, uint64_t u)
{
    kv_ip_as(b, "ip", u);
}

static const struct city *home_city(uint64_t u)
{
    return &cities[fact(u, 2) % N_OF(cities)];
}

static void kv_person_id(struct buf *b, uint64_t u)
{
    char id[32];
    snprintf(id, sizeof id, "P-%08" PRIu64, fact(u, 3) % 100000000);
    kv_str(b, "person_id", id);
}

static void kv_hexid(struct buf *b, const char *name, const char *prefix,
                     uint64_t h, int digits)
{
    char id[48];
    snprintf(id, sizeof id, "%s%0*" PRIx64, prefix, digits,
             digits < 16 ? h >> (64 - 4 * digits) : h);
    kv_str(b, name, id);
}

/* users have one or two devices; `which` picks one */
static void obj_device(struct buf *b, uint64_t u, uint64_t which)
{
    uint64_t n = fact(u, 4) % 3 == 0 ? 2 : 1, i = which % n;
    const struct device *dv = &devices[fact(u, 10 + i) % N_OF(devices)];
    char name[80];
    snprintf(name, sizeof name, "%s's %s", first_name(u), dv->model);
    key(b, "device");
    puts_(b, "{");
    kv_str(b, "os", dv->os);
    kv_str(b, "browser", dv->browser);
    kv_str(b, "screen_size", dv->screen);
    kv_str(b, "name", name);
    kv_hexid(b, "device_id", "dev-", fact(u, 20 + i), 16);
    if (!classic && fact(u, 32) % 2 == 0) {
        /* locally administered, from the IANA documentation block */
        uint64_t h = fact(u, 33 + i);
        char mac[32];
        snprintf(mac, sizeof mac, "02:00:5e:%02x:%02x:%02x",
                 (unsigned)(h & 0xff), (unsigned)(h >> 8 & 0xff),
                 (unsigned)(h >> 16 & 0xff));
        kv_str(b, "mac_address", mac);
    }
    puts_(b, "}");
}

/* a number as JavaScript prints it: val / 10^places, no trailing zeros */
static void put_js_fixed(struct buf *b, int64_t val, int places)
{
    char t[48];
    int64_t scale = 1;
    for (int i = 0; i < places; i++)
        scale *= 10;
    uint64_t mag = val < 0 ? (uint64_t)(-val) : (uint64_t)val;
    int n = snprintf(t, sizeof t, "%s%" PRIu64 ".%0*" PRIu64, val < 0 ? "-" : "",
                     mag / (uint64_t)scale, places, mag % (uint64_t)scale);
    while (n > 0 && t[n - 1] == '0')
        n--;
    if (n > 0 && t[n - 1] == '.')
        n--;
    put(b, t, (size_t)n);
}

static void kv_js_fixed(struct buf *b, const char *name, int64_t val, int places)
{
    key(b, name);
    put_js_fixed(b, val, places);
}

/* the members the shipped policy seals that realistic profiles hold for
 * some users: per-user facts, so every profile of a user agrees */
static void profile_sensitive(struct buf *b, uint64_t u)
{
    if (fact(u, 40) % 3 == 0) {
        uint64_t h = fact(u, 41);
        char ssn[16], iban[32];
        snprintf(ssn, sizeof ssn, "9%02u-%02u-%04u", (unsigned)(h % 100),
                 (unsigned)(h / 100 % 89 + 10), (unsigned)(h / 10000 % 9000 + 1000));
        snprintf(iban, sizeof iban, "GB00CTXV%014" PRIu64, fact(u, 42) % 100000000000000u);
        kv_str(b, "ssn", ssn);
        kv_str(b, "bank_account", iban);
        kv_int(b, "salary", 18000 + (int64_t)(fact(u, 43) % 160) * 750);
    }
    if (fact(u, 44) % 4 == 0)
        kv_str(b, "medical_condition", conditions[fact(u, 45) % N_OF(conditions)]);
}

static void obj_location(struct buf *b, uint64_t u, uint64_t *r)
{
    const struct city *c = home_city(u);
    key(b, "location");
    puts_(b, "{");
    kv_fixed(b, "lat", (c->lat + (int64_t)below(r, 60001) - 30000) / 10, 5);
    kv_fixed(b, "lon", (c->lon + (int64_t)below(r, 60001) - 30000) / 10, 5);
    kv_str(b, "city", c->name);
    kv_str(b, "country", c->country);
    uint64_t scale = below(r, 8); /* one draw per statement: C leaves the */
    kv_int(b, "accuracy_m", 5 + (int64_t)(scale * below(r, 250))); /* order open */
    puts_(b, "}");
}

static void arr_queries(struct buf *b, const char *name, uint64_t *r)
{
    uint64_t n = 1 + below(r, 4);
    key(b, name);
    puts_(b, "[");
    for (uint64_t i = 0; i < n; i++) {
        if (i)
            puts_(b, ",");
        put_str(b, queries[below(r, N_OF(queries))]);
    }
    puts_(b, "]");
}

/* ---- the kinds ---- */

enum kind { PROFILE, INTERACTION, CONTEXT, TRACE, SNAPSHOT, REPLAY, AUDIT,
            OTHER };

static const struct { enum kind kind; unsigned weight; } mix[] = {
    {INTERACTION, 62}, {CONTEXT, 9}, {TRACE, 12}, {SNAPSHOT, 4},
    {REPLAY, 3}, {AUDIT, 5}, {PROFILE, 3}, {OTHER, 2},
};

static enum kind pick_kind(uint64_t *r)
{
    unsigned x = (unsigned)below(r, 100);
    for (size_t i = 0; i < N_OF(mix); i++) {
        if (x < mix[i].weight)
            return mix[i].kind;
        x -= mix[i].weight;
    }
    return INTERACTION;
}

static void body_profile(struct buf *b, uint64_t u, uint64_t *r, int first)
{
    static const char *const levels[] = {"public", "private", "anonymous",
                                         "ephemeral"};
    static const unsigned level_w[] = {40, 35, 15, 10};
    static const int retention[] = {30, 90, 365, -1};
    /* Later profile events mostly update preferences; about one in 200
     * also changes the privacy settings, as real users rarely do. */
    int keep = first || below(r, 200) != 0;
    uint64_t x = keep ? fact(u, 5) % 100 : below(r, 100);
    size_t lv = 0;
    while (x >= level_w[lv]) {
        x -= level_w[lv];
        lv++;
    }
    int days = retention[(keep ? fact(u, 6) : next(r)) % 4];
    char display[80];
    snprintf(display, sizeof display, "%s %s", first_name(u), last_name(u));
    const struct city *c = home_city(u);

    kv_str(b, "privacy_level", levels[lv]);
    key(b, "retention_days");
    if (days < 0)
        puts_(b, "null");
    else
        putf(b, "%d", days);
    kv_str(b, "display_name", display);
    kv_email(b, u);
    kv_str(b, "language", c->locale);
    kv_str(b, "timezone", c->tz);
    kv_str(b, "theme", (const char *[]){"light", "dark", "system"}[below(r, 3)]);
    kv_bool(b, "auto_learn", below(r, 4) != 0);
    kv_str(b, "sharing_level",
           (const char *[]){"none", "aggregated", "identified"}[below(r, 3)]);
    kv_ip(b, u);
    if (!classic)
        profile_sensitive(b, u);
}

static void body_interaction(struct buf *b, uint64_t u, uint64_t *r)
{
    uint64_t t = below(r, 100);
    const char *page = pages[below(r, N_OF(pages))];
    char url[160];
    snprintf(url, sizeof url, "https://shop.example.com%s", page);
    if (t < 45) {
        kv_str(b, "type", "click");
        kv_str(b, "element", elements[below(r, N_OF(elements))]);
        kv_int(b, "x", (int64_t)below(r, 1920));
        kv_int(b, "y", (int64_t)below(r, 1400));
        kv_str(b, "url", url);
    } else if (t < 70) {
        kv_str(b, "type", "search");
        kv_str(b, "query", queries[below(r, N_OF(queries))]);
        kv_int(b, "results", (int64_t)below(r, 500));
        kv_int(b, "page", 1 + (int64_t)(below(r, 5) == 0));
    } else {
        kv_str(b, "type", "navigation");
        kv_str(b, "url", url);
        uint64_t ref = below(r, N_OF(referrers) + 2);
        if (ref < N_OF(referrers))
            kv_str(b, "referrer", referrers[ref]);
        else
            kv_str(b, "referrer", "");
        kv_int(b, "load_ms", 80 + (int64_t)below(r, 1500));
    }
    if (below(r, 10) < 3)
        kv_ip(b, u);
}

static void body_context(struct buf *b, uint64_t *r)
{
    arr_queries(b, "recent_searches", r);
    key(b, "recent_visits");
    puts_(b, "[");
    for (uint64_t i = 0, n = 1 + below(r, 3); i < n; i++) {
        if (i)
            puts_(b, ",");
        put_str(b, pages[below(r, N_OF(pages))]);
    }
    puts_(b, "]");
    kv_str(b, "user_segment", segments[below(r, N_OF(segments))]);
    key(b, "interest_topics");
    uint64_t t0 = below(r, N_OF(topics)), t1 = below(r, N_OF(topics));
    putf(b, "[\"%s\",\"%s\"]", topics[t0], topics[t1]);
    kv_fixed(b, "confidence_score", (int64_t)below(r, 1001), 3);
}

static void body_trace(struct buf *b, uint64_t *r)
{
    uint64_t s = below(r, 100);
    kv_hexid(b, "trace_id", "", next(r), 16);
    kv_hexid(b, "span_id", "", next(r), 8);
    kv_str(b, "name", trace_names[below(r, N_OF(trace_names))]);
    uint64_t scale = below(r, 40);
    kv_int(b, "duration_ms", 1 + (int64_t)(scale * below(r, 60)));
    kv_str(b, "status", s < 90 ? "ok" : s < 97 ? "error" : "timeout");
    kv_int(b, "http_status", s < 90 ? 200 : s < 97 ? 500 : 504);
}

static void body_snapshot(struct buf *b, uint64_t *r)
{
    static const char *const currencies[] = {"EUR", "USD", "BRL", "JPY"};
    key(b, "state");
    puts_(b, "{");
    kv_str(b, "screen", screens[below(r, N_OF(screens))]);
    key(b, "cart");
    puts_(b, "{\"items\":[");
    int64_t total = 0;
    for (uint64_t i = 0, n = below(r, 3); i < n; i++) {
        int64_t qty = 1 + (int64_t)below(r, 3);
        int64_t price = 199 + (int64_t)below(r, 9800);
        total += qty * price;
        putf(b, "%s{\"sku\":\"SKU-%05" PRIu64 "\",\"qty\":%" PRId64
                ",\"price_cents\":%" PRId64 "}",
             i ? "," : "", below(r, 100000), qty, price);
    }
    puts_(b, "]");
    kv_str(b, "currency", currencies[below(r, N_OF(currencies))]);
    kv_int(b, "total_cents", total);
    puts_(b, "}");
    kv_int(b, "scroll_y", (int64_t)below(r, 4000));
    puts_(b, "}");
}

static void body_replay(struct buf *b, uint64_t *r)
{
    kv_hexid(b, "replay_id", "rp-", next(r), 12);
    kv_int(b, "segment", (int64_t)below(r, 20));
    kv_int(b, "frames", 120 + (int64_t)below(r, 4000));
    kv_int(b, "duration_ms", 2000 + (int64_t)below(r, 60000));
    kv_str(b, "url", pages[below(r, N_OF(pages))]);
}

static void body_audit(struct buf *b, uint64_t u, uint64_t *r)
{
    uint64_t a = below(r, 10);
    kv_str(b, "action", audit_actions[below(r, N_OF(audit_actions))]);
    kv_str(b, "actor", a < 7 ? "self" : a < 9 ? "admin:ops-3" : "system");
    kv_person_id(b, u);
    kv_email(b, u);
    kv_ip(b, u);
    kv_str(b, "result", below(r, 20) ? "success" : "denied");
}

/* kinds ctxvault does not know; it files them under "other" */
static const char *const other_kinds[] = {"experiment", "feedback",
                                          "notification"};

static void body_other(struct buf *b, uint64_t u, uint64_t o, uint64_t *r)
{
    if (o == 0) {
        kv_str(b, "experiment", "checkout-button-colour");
        kv_str(b, "variant", below(r, 2) ? "A" : "B");
        kv_bool(b, "exposed", 1);
    } else if (o == 1) {
        kv_int(b, "rating", 1 + (int64_t)below(r, 5));
        kv_str(b, "comment", comments[below(r, N_OF(comments))]);
        if (!classic)
            kv_email_as(b, "email_address", u);
    } else {
        kv_str(b, "channel", below(r, 2) ? "push" : "email");
        kv_str(b, "template", "cart_reminder");
        kv_bool(b, "opened", below(r, 3) == 0);
    }
}

/* ---- the generator ---- */

struct gen {
    uint64_t seed, users, rng;
    int64_t start_ms, clock_ms;
    int with_id;
    unsigned char *seen;  /* per user: has their profile gone out */
    uint32_t *session;    /* per user: session number */
};

static void event(struct gen *g, uint64_t index, struct buf *b)
{
    uint64_t *r = &g->rng;
    g->clock_ms += 200 + (int64_t)below(r, 5600);
    uint64_t u = 1 + below(r, g->users);
    int first = !g->seen[u];
    enum kind kind = first ? PROFILE : pick_kind(r);
    g->seen[u] = 1;
    if (!first && below(r, 100) < 8)
        g->session[u]++;
    int64_t late = below(r, 10) == 0 ? (int64_t)below(r, 3000) : 0;
    if (late > g->clock_ms - g->start_ms) /* roughly in order, never early */
        late = g->clock_ms - g->start_ms;
    int has_id = below(r, 5) == 0;
    int has_device = below(r, 10) != 0, has_location = below(r, 100) < 85;
    uint64_t which_device = next(r);
    uint64_t other = kind == OTHER ? below(r, N_OF(other_kinds)) : 0;

    static const char *const names[] = {"profile", "interaction", "context",
        "trace", "snapshot", "replay", "audit", "other"};
    const char *kind_name = kind == OTHER ? other_kinds[other] : names[kind];
    char user[32];
    snprintf(user, sizeof user, "user-%05" PRIu64, u);

    b->len = 0;
    puts_(b, "{");
    if (has_id && g->with_id) {
        uint64_t h = mix64(g->seed ^ mix64(index + 0x1d));
        char id[40];
        snprintf(id, sizeof id, "%08x-%04x-4%03x-%04x-%012" PRIx64,
                 (unsigned)(h >> 32), (unsigned)(h >> 16 & 0xffff),
                 (unsigned)(h & 0xfff), (unsigned)(0x8000 | (index & 0x3fff)),
                 mix64(h) >> 16);
        kv_str(b, "id", id);
    }
    kv_str(b, "kind", kind_name);
    kv_str(b, "user_id", user);
    kv_time(b, "ts", g->clock_ms - late);
    char sess[32];
    snprintf(sess, sizeof sess, "sess-%012" PRIx64,
             mix64(g->seed * 31 + mix64(u * 977 + g->session[u])) >> 16);
    kv_str(b, "session_id", sess);

    switch (kind) {
    case PROFILE: body_profile(b, u, r, first); break;
    case INTERACTION: body_interaction(b, u, r); break;
    case CONTEXT: body_context(b, r); break;
    case TRACE: body_trace(b, r); break;
    case SNAPSHOT: body_snapshot(b, r); break;
    case REPLAY: body_replay(b, r); break;
    case AUDIT: body_audit(b, u, r); break;
    case OTHER: body_other(b, u, other, r); break;
    }
    if (has_device || kind == PROFILE)
        obj_device(b, u, which_device);
    if (has_location && kind != AUDIT)
        obj_location(b, u, r);
    puts_(b, "}");
}

/* ---- application objects: the storage requirements' TypeScript interfaces ---- */

static void put_uuid4(struct buf *b, uint64_t h1, uint64_t h2)
{
    putf(b, "\"%08x-%04x-4%03x-%04x-%012" PRIx64 "\"", (unsigned)(h1 >> 32),
         (unsigned)(h1 >> 16 & 0xffff), (unsigned)(h1 & 0xfff),
         (unsigned)(0x8000 | (h2 >> 48 & 0x3fff)), h2 & UINT64_C(0xffffffffffff));
}

static void put_ms(struct buf *b, int64_t ms)
{
    put_u64(b, (uint64_t)ms);
}

/* context object, as JSON.stringify sends it */
static void app_context(struct gen *g, uint64_t index, struct buf *b)
{
    uint64_t *r = &g->rng;
    g->clock_ms += 200 + (int64_t)below(r, 5600);
    uint64_t u = 1 + below(r, g->users);
    char user[32];
    snprintf(user, sizeof user, "user-%05" PRIu64, u);
    b->len = 0;
    puts_(b, "{");
    key(b, "id");
    put_uuid4(b, mix64(g->seed ^ mix64(index + 0xa7c)),
              mix64(g->seed * 7 + mix64(index + 0x5eed)));
    kv_str(b, "userId", user);
    key(b, "timestamp");
    put_ms(b, g->clock_ms);

    key(b, "recentSearches");
    puts_(b, "[");
    uint64_t n = 1 + below(r, 4), health = below(r, 3) == 0 ? below(r, n) : n;
    for (uint64_t i = 0; i < n; i++) {
        if (i)
            puts_(b, ",");
        put_str(b, i == health ? health_queries[below(r, N_OF(health_queries))]
                               : queries[below(r, N_OF(queries))]);
    }
    puts_(b, "]");
    key(b, "recentVisits");
    puts_(b, "[");
    for (uint64_t i = 0, m = 1 + below(r, 3); i < m; i++)
        putf(b, "%s\"https://shop.example.com%s\"", i ? "," : "",
             pages[below(r, N_OF(pages))]);
    puts_(b, "]");
    key(b, "clickPatterns");
    puts_(b, "[");
    for (uint64_t i = 0, m = 1 + below(r, 3); i < m; i++) {
        puts_(b, i ? ",{" : "{");
        kv_str(b, "element", elements[below(r, N_OF(elements))]);
        kv_int(b, "x", (int64_t)below(r, 1920));
        kv_int(b, "y", (int64_t)below(r, 1400));
        key(b, "timestamp");
        put_ms(b, g->clock_ms - (int64_t)below(r, 600000));
        puts_(b, "}");
    }
    puts_(b, "]");
    kv_str(b, "userSegment", segments[below(r, N_OF(segments))]);
    key(b, "interestTopics");
    uint64_t t0 = below(r, N_OF(topics)), t1 = below(r, N_OF(topics));
    putf(b, "[\"%s\",\"%s\"]", topics[t0], topics[t1]);
    kv_js_fixed(b, "confidenceScore", (int64_t)below(r, 1001), 3);
    key(b, "predictedNextActions");
    puts_(b, "[");
    for (uint64_t i = 0, m = 1 + below(r, 2); i < m; i++) {
        puts_(b, i ? ",{" : "{");
        kv_str(b, "action", next_actions[below(r, N_OF(next_actions))]);
        kv_str(b, "target", pages[below(r, N_OF(pages))]);
        kv_js_fixed(b, "probability", (int64_t)below(r, 1001), 3);
        puts_(b, "}");
    }
    puts_(b, "]");
    key(b, "recommendedContent");
    puts_(b, "[");
    for (uint64_t i = 0, m = 1 + below(r, 3); i < m; i++) {
        puts_(b, i ? ",{" : "{");
        char cid[24];
        snprintf(cid, sizeof cid, "c-%05" PRIu64, below(r, 100000));
        kv_str(b, "contentId", cid);
        kv_str(b, "title", content_titles[below(r, N_OF(content_titles))]);
        kv_js_fixed(b, "score", (int64_t)below(r, 101), 2);
        puts_(b, "}");
    }
    puts_(b, "]");
    uint64_t nd = fact(u, 4) % 3 == 0 ? 2 : 1, di = below(r, nd);
    const struct device *dv = &devices[fact(u, 10 + di) % N_OF(devices)];
    char dname[80];
    snprintf(dname, sizeof dname, "%s's %s", first_name(u), dv->model);
    key(b, "deviceInfo");
    puts_(b, "{");
    kv_str(b, "os", dv->os);
    kv_str(b, "browser", dv->browser);
    kv_str(b, "screenSize", dv->screen);
    kv_hexid(b, "deviceId", "dev-", fact(u, 20 + di), 16);
    kv_str(b, "deviceName", dname);
    puts_(b, "}");
    const struct city *c = home_city(u);
    char hint[64];
    snprintf(hint, sizeof hint, "%s, %s", c->name, c->country);
    kv_str(b, "locationHint", hint);
    kv_email_as(b, "emailAddress", u);
    kv_ip_as(b, "ipAddress", u);
    puts_(b, "}");
}

/* UserProfile, as JSON.stringify sends it; a user's privacyLevel and
 * dataRetentionDays are facts about the user */
static void app_profile(struct gen *g, struct buf *b)
{
    static const char *const levels[] = {"public", "private", "anonymous",
                                         "ephemeral"};
    static const char *const intensity[] = {"low", "medium", "high"};
    static const char *const sharing[] = {"none", "aggregated", "identified"};
    uint64_t *r = &g->rng;
    g->clock_ms += 200 + (int64_t)below(r, 5600);
    uint64_t u = 1 + below(r, g->users);
    char user[32];
    snprintf(user, sizeof user, "user-%05" PRIu64, u);
    const struct city *c = home_city(u);
    b->len = 0;
    puts_(b, "{");
    kv_str(b, "userId", user);
    kv_time(b, "createdAt", g->start_ms - (int64_t)(fact(u, 7) % 400) * 86400000 -
                                (int64_t)(fact(u, 8) % 86400000));
    kv_time(b, "lastUpdated", g->clock_ms);
    kv_str(b, "privacyLevel", levels[fact(u, 50) % N_OF(levels)]);
    key(b, "dataRetentionDays");
    switch (fact(u, 51) % 4) {
    case 0: puts_(b, "30"); break;
    case 1: puts_(b, "90"); break;
    case 2: puts_(b, "365"); break;
    default: puts_(b, "\"forever\""); break;
    }
    kv_str(b, "language", c->locale);
    kv_str(b, "timezone", c->tz);
    kv_str(b, "theme", (const char *[]){"light", "dark", "auto"}[below(r, 3)]);
    kv_int(b, "totalInteractions", (int64_t)below(r, 5000));
    kv_js_fixed(b, "averageSessionDuration", 300 + (int64_t)below(r, 36000), 1);
    kv_time(b, "lastActiveDate", g->clock_ms - (int64_t)below(r, 86400000));
    kv_bool(b, "autoLearn", below(r, 4) != 0);
    kv_str(b, "learningIntensity", intensity[below(r, N_OF(intensity))]);
    kv_str(b, "sharingLevel", sharing[below(r, N_OF(sharing))]);
    puts_(b, "}");
}

/* ---- bad lines ---- */

/* bad_line(which): 0 not JSON, 1 an array, 2 bad UTF-8, 3 a \u0000 escape,
 * 4 a raw NUL, 5 too deep, 6 no kind, 7 no user_id, 8 an empty user_id,
 * 9 a numeric user_id, 10 a numeric kind, 11 month 13, 12 "yesterday",
 * 13 a duplicate key */
enum { BAD_KINDS = 14 };

static void bad_line(struct buf *b, size_t which, uint64_t u, int64_t ms)
{
    char user[32];
    snprintf(user, sizeof user, "user-%05" PRIu64, u);
    b->len = 0;
    switch (which) {
    case 0: /* truncated mid-object, as a killed producer leaves it */
        puts_(b, "{\"kind\":\"interaction\",\"user_id\":");
        put_str(b, user);
        puts_(b, ",\"ts\":\"2026-11-");
        return;
    case 1:
        puts_(b, "[{\"kind\":\"interaction\",\"user_id\":");
        put_str(b, user);
        puts_(b, "}]");
        return;
    case 2:
        puts_(b, "{\"kind\":\"interaction\",\"type\":\"search\",\"user_id\":");
        put_str(b, user);
        kv_time(b, "ts", ms);
        puts_(b, ",\"query\":\"caf\xc3\x28 cr\xe8me \xff\xfe\"}");
        return;
    case 3:
        puts_(b, "{\"kind\":\"interaction\",\"type\":\"search\",\"user_id\":");
        put_str(b, user);
        kv_time(b, "ts", ms);
        puts_(b, ",\"query\":\"cheap\\u0000flights\"}");
        return;
    case 4:
        puts_(b, "{\"kind\":\"interaction\",\"type\":\"search\",\"user_id\":");
        put_str(b, user);
        kv_time(b, "ts", ms);
        put(b, ",\"query\":\"cheap\0flights\"}", 25);
        return;
    case 5:
        puts_(b, "{\"kind\":\"snapshot\",\"user_id\":");
        put_str(b, user);
        kv_time(b, "ts", ms);
        puts_(b, ",\"state\":");
        for (int i = 0; i < 80; i++)
            puts_(b, "{\"n\":");
        puts_(b, "1");
        for (int i = 0; i < 80; i++)
            puts_(b, "}");
        puts_(b, "}");
        return;
    case 6:
        puts_(b, "{\"user_id\":");
        put_str(b, user);
        kv_time(b, "ts", ms);
        puts_(b, ",\"type\":\"click\",\"element\":\"a.nav-home\"}");
        return;
    case 7:
        puts_(b, "{\"kind\":\"interaction\"");
        kv_time(b, "ts", ms);
        puts_(b, ",\"type\":\"click\",\"element\":\"a.nav-home\"}");
        return;
    case 8:
        puts_(b, "{\"kind\":\"interaction\",\"user_id\":\"\"");
        kv_time(b, "ts", ms);
        puts_(b, ",\"type\":\"click\",\"element\":\"a.nav-home\"}");
        return;
    case 9:
        putf(b, "{\"kind\":\"interaction\",\"user_id\":%" PRIu64, u);
        kv_time(b, "ts", ms);
        puts_(b, ",\"type\":\"click\",\"element\":\"a.nav-home\"}");
        return;
    case 10:
        puts_(b, "{\"kind\":42,\"user_id\":");
        put_str(b, user);
        kv_time(b, "ts", ms);
        puts_(b, ",\"type\":\"click\",\"element\":\"a.nav-home\"}");
        return;
    case 11:
        puts_(b, "{\"kind\":\"interaction\",\"user_id\":");
        put_str(b, user);
        puts_(b, ",\"ts\":\"2026-13-45T99:00:00Z\",\"type\":\"click\"}");
        return;
    case 12:
        puts_(b, "{\"kind\":\"interaction\",\"user_id\":");
        put_str(b, user);
        puts_(b, ",\"ts\":\"yesterday\",\"type\":\"click\"}");
        return;
    default:
        puts_(b, "{\"kind\":\"interaction\",\"kind\":\"trace\",\"user_id\":");
        put_str(b, user);
        kv_time(b, "ts", ms);
        puts_(b, ",\"type\":\"click\"}");
        return;
    }
}

/* a well-formed event whose line is longer than 1 MiB */
static void huge_line(struct buf *b, uint64_t u, int64_t ms)
{
    b->len = 0;
    puts_(b, "{\"kind\":\"replay\",\"user_id\":");
    char user[32];
    snprintf(user, sizeof user, "user-%05" PRIu64, u);
    put_str(b, user);
    kv_time(b, "ts", ms);
    puts_(b, ",\"frames_b64\":\"");
    size_t n = (1u << 20) + 4096;
    reserve(b, n);
    for (size_t i = 0; i < n; i++)
        b->p[b->len++] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"[i * 7 % 32];
    puts_(b, "\"}");
}

static void emit(const struct buf *b, const char *eol)
{
    if (fwrite(b->p, 1, b->len, stdout) != b->len || fputs(eol, stdout) < 0)
        die("writing stdout");
}

static void usage(FILE *f)
{
    fputs("usage: genevents [-n COUNT] [-s SEED] [-u USERS] [--start RFC3339]\n"
          "                 [--no-id] [--bad [--bad-every N]] [--classic]\n"
          "       genevents --app context|profile [-n COUNT] [-s SEED] [-u USERS]\n"
          "                 [--start RFC3339]\n"
          "Prints COUNT (default 1000) realistic ctxvault events as NDJSON;\n"
          "the same options give the same output. --bad adds a bad line\n"
          "every N (default 50) events, blank lines and CRLF endings.\n"
          "--classic leaves out the members added for the deny-by-default\n"
          "policy (ssn, bank_account, salary, medical_condition,\n"
          "email_address, mac_address). --app prints context object or\n"
          "UserProfile objects as a JavaScript app sends them: camelCase,\n"
          "no kind (ctxvault-ingest --kind context|profile).\n", f);
}

static uint64_t number(const char *opt, const char *s, uint64_t min,
                       uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "genevents: %s: bad number '%s' (%" PRIu64
                "..%" PRIu64 ")\n", opt, s, min, max);
        exit(64);
    }
    return v;
}

int main(int argc, char **argv)
{
    uint64_t count = 1000, seed = 1, users = 100, every = 50;
    int bad = 0, no_id = 0, app = 0; /* app: 1 context, 2 profile */
    int64_t start_ms;
    parse_time("2026-11-01T00:00:00.000Z", &start_ms);

    enum { OPT_BAD = 256, OPT_START, OPT_NO_ID, OPT_EVERY, OPT_CLASSIC, OPT_APP };
    static const struct option longopts[] = {
        {"count", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"users", required_argument, NULL, 'u'},
        {"bad", no_argument, NULL, OPT_BAD},
        {"bad-every", required_argument, NULL, OPT_EVERY},
        {"start", required_argument, NULL, OPT_START},
        {"no-id", no_argument, NULL, OPT_NO_ID},
        {"classic", no_argument, NULL, OPT_CLASSIC},
        {"app", required_argument, NULL, OPT_APP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "n:s:u:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': count = number("-n", optarg, 0, UINT64_MAX / 2); break;
        case 's': seed = number("-s", optarg, 0, UINT64_MAX); break;
        case 'u': users = number("-u", optarg, 1, MAX_USERS); break;
        case OPT_BAD: bad = 1; break;
        case OPT_EVERY: every = number("--bad-every", optarg, 2, 1000000); break;
        case OPT_NO_ID: no_id = 1; break;
        case OPT_CLASSIC: classic = 1; break;
        case OPT_APP:
            if (strcmp(optarg, "context") == 0)
                app = 1;
            else if (strcmp(optarg, "profile") == 0)
                app = 2;
            else {
                fprintf(stderr, "genevents: --app: want context or profile, "
                        "got '%s'\n", optarg);
                return 64;
            }
            break;
        case OPT_START:
            if (parse_time(optarg, &start_ms) != 0) {
                fprintf(stderr, "genevents: --start: want "
                        "YYYY-MM-DDTHH:MM:SS[.fff]Z, got '%s'\n", optarg);
                return 64;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 64;
        }
    }
    if (optind != argc || (app && (bad || no_id || classic))) {
        usage(stderr);
        return 64;
    }

    struct gen g = {
        .seed = seed, .users = users, .rng = mix64(seed), .start_ms = start_ms,
        .clock_ms = start_ms,
        .with_id = !no_id,
        .seen = calloc(users + 1, 1),
        .session = calloc(users + 1, sizeof(uint32_t)),
    };
    if (!g.seen || !g.session)
        die("out of memory");
    static char outbuf[1 << 20];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);

    uint64_t bad_rng = mix64(seed ^ UINT64_C(0xbadbadbadbad));
    size_t next_bad = 0;
    struct buf line = {0}, extra = {0};
    if (app) {
        g.rng = mix64(seed ^ (app == 1 ? UINT64_C(0xa7c0c0) : UINT64_C(0xa7c0f1)));
        for (uint64_t i = 1; i <= count; i++) {
            if (app == 1)
                app_context(&g, i, &line);
            else
                app_profile(&g, &line);
            emit(&line, "\n");
        }
        count = 0;
    }
    for (uint64_t i = 1; i <= count; i++) {
        event(&g, i, &line);
        emit(&line, bad && i % every == every / 5 ? "\r\n" : "\n");
        if (!bad)
            continue;
        if (i % every == every / 2) {
            bad_line(&extra, next_bad, 1 + below(&bad_rng, users), g.clock_ms);
            next_bad = (next_bad + 1) % BAD_KINDS;
            emit(&extra, "\n");
        }
        if (i % every == 0)
            fputs("\n", stdout);
        if (count >= 1000 && i == count / 2) {
            huge_line(&extra, 1 + below(&bad_rng, users), g.clock_ms);
            emit(&extra, "\n");
        }
    }
    if (fflush(stdout) != 0)
        die("writing stdout");
    free(line.p);
    free(extra.p);
    free(g.seen);
    free(g.session);
    return 0;
}
