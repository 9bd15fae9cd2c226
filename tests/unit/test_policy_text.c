/* test_policy_text.c - the streaming text rewriter (cv_policy_apply_text)
 * against the tree version (cv_policy_apply): same result on handcrafted
 * and generated events under several policies, untouched text copied byte
 * for byte, reserved members left alone, malformed input refused without
 * reading out of bounds. */
#include "fixtures.h"
#include "harness.h"

#include "crypto/fieldcrypt.h"
#include "privacy/policy.h"
#include "base/util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The policies every event is tried under. */
static const char *const policies[] = {
    NULL, /* the shipped one */
    "[fields]\n"
    "user_id = hash user\n"
    "**.gone = drop\n"
    "**.tags = mask\n"
    "**.secret = encrypt\n"
    "**.location = generalise\n"
    "**.when = round\n"
    "**.ms = round\n"
    "**.email = hash email\n"
    "nested.** = keep\n"
    "a.b = drop\n"
    "*.c = encrypt\n"
    "**.x = generalise\n"
    "**.items = hash items\n"
    "**.d = mask\n",
    "[fields]\nuser_id = keep\n**.keepme = keep\n**.a = keep\n**.b = mask\n"
    "default = drop\n",
    "[fields]\nuser_id = keep\n**.b = drop\n**.items = mask\n"
    "**.location = generalise\ndefault = encrypt\n",
    "[fields]\nuser_id = keep\n** = drop\n",
    "[fields]\n** = hash h\n",
    "[fields]\nuser_id = keep\n**.a = round\n**.b = generalise\n**.c = mask\n"
    "**.items = round\n**.tags = generalise\n**.x = mask\n**.nested = keep\n"
    "default = drop\n",
    "[fields]\n**.nested.** = encrypt\n**.items = encrypt\n**.d = drop\n"
    "**.x = encrypt\n",
};
#define NPOL (sizeof policies / sizeof *policies)

static bool has_encrypt(const char *policy)
{
    return !policy || strstr(policy, "encrypt");
}

static cv_policy *policy_n(size_t i)
{
    if (!policies[i]) {
        int problems;
        cv_policy *p = cv_policy_load(NULL, true, &problems);
        if (!p || problems)
            cvt_fail(__FILE__, __LINE__, "built-in policy");
        return p;
    }
    return cvt_policy(policies[i]);
}

/* ---- comparing results ------------------------------------------------ */

typedef struct {
    const cv_keyring *kr;
    const char *id;
    char path[4096];
    int depth; /* object levels in path (a name may be "") */
    char why[512];
} cmp;

static bool open_env(cmp *c, const char *env, char **plain, size_t *len)
{
    char err[256];
    if (cv_fieldcrypt_unseal(c->kr, env, c->id, c->path, plain, len, err, sizeof err) <
        0) {
        snprintf(c->why, sizeof c->why, "at '%.200s': cannot unseal: %s", c->path,
                 err);
        return false;
    }
    return true;
}

/* a is the tree's result, b the text's parsed; envelopes are the same when
 * both open (under this event id and path) to the same plaintext bytes. */
static bool same(cmp *c, json_t *a, json_t *b)
{
    if (json_is_string(a) && json_is_string(b) &&
        cv_fieldcrypt_is_envelope(json_string_value(a)) &&
        cv_fieldcrypt_is_envelope(json_string_value(b))) {
        char *pa, *pb;
        size_t la, lb;
        if (!open_env(c, json_string_value(a), &pa, &la))
            return false;
        if (!open_env(c, json_string_value(b), &pb, &lb)) {
            free(pa);
            return false;
        }
        bool eq = la == lb && memcmp(pa, pb, la) == 0;
        if (!eq)
            snprintf(c->why, sizeof c->why,
                     "at '%.200s': sealed \"%.*s\" and \"%.*s\"", c->path,
                     (int)(la > 100 ? 100 : la), pa,
                     (int)(lb > 100 ? 100 : lb), pb);
        free(pa);
        free(pb);
        return eq;
    }
    if (json_is_object(a) && json_is_object(b)) {
        if (json_object_size(a) != json_object_size(b)) {
            snprintf(c->why, sizeof c->why, "at '%.200s': %zu members and %zu",
                     c->path, json_object_size(a), json_object_size(b));
            return false;
        }
        const char *k;
        json_t *va;
        size_t plen = strlen(c->path);
        json_object_foreach(a, k, va) {
            json_t *vb = json_object_get(b, k);
            if (!vb) {
                snprintf(c->why, sizeof c->why, "at '%.200s': no member '%s'",
                         c->path, k);
                return false;
            }
            snprintf(c->path + plen, sizeof c->path - plen, "%s%s",
                     c->depth ? "." : "", k);
            c->depth++;
            bool eq = same(c, va, vb);
            c->depth--;
            c->path[plen] = '\0';
            if (!eq)
                return false;
        }
        return true;
    }
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b)) {
            snprintf(c->why, sizeof c->why, "at '%.200s': %zu elements and %zu",
                     c->path, json_array_size(a), json_array_size(b));
            return false;
        }
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same(c, json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    if (json_is_real(a) && json_is_real(b) && !json_equal(a, b)) {
        /* what the tree version writes has 15 digits (CV_JSON_DUMP): a
         * real it made (generalise) is compared as written */
        char *ta = json_dumps(a, CV_JSON_DUMP | JSON_ENCODE_ANY);
        json_t *wa = ta ? json_loads(ta, JSON_DECODE_ANY, NULL) : NULL;
        bool eq = wa && json_equal(wa, b);
        json_decref(wa);
        free(ta);
        if (eq)
            return true;
    }
    if (!json_equal(a, b)) {
        char *ta = json_dumps(a, JSON_ENCODE_ANY | JSON_COMPACT);
        char *tb = json_dumps(b, JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(c->why, sizeof c->why, "at '%.200s': %.120s and %.120s", c->path,
                 ta ? ta : "?", tb ? tb : "?");
        free(ta);
        free(tb);
        return false;
    }
    return true;
}

typedef struct {
    char *buf;
    size_t len, cap;
} outbuf;

/* Both versions on one event; fails the test when they differ. With
 * exact (no encryption), the text output must equal the tree's dump. */
static void check_event(const cv_policy *p, const cv_keyring *kr,
                        const char *ev, size_t len, outbuf *o, bool exact,
                        const char *what)
{
    json_error_t je;
    char err[256];
    json_t *tree = json_loadb(ev, len, JSON_REJECT_DUPLICATES, &je);
    if (!tree)
        cvt_fail(__FILE__, __LINE__, "%s: bad test event (%s): %.*s", what,
                 je.text, (int)len, ev);
    const char *id = json_string_value(json_object_get(tree, "id"));
    if (!id)
        cvt_fail(__FILE__, __LINE__, "%s: test event without id", what);
    /* an exact-length copy: ASan sees any read past the end */
    char *copy = cv_malloc(len ? len : 1);
    memcpy(copy, ev, len);
    int rc = cv_policy_apply_text(p, kr, NULL, copy, len, id, &o->buf, &o->len,
                                  &o->cap, err, sizeof err);
    free(copy);
    if (rc != 0)
        cvt_fail(__FILE__, __LINE__, "%s: apply_text failed: %s\n  event: %.*s",
                 what, err, (int)len, ev);
    if (o->len >= o->cap || o->buf[o->len] != '\0' ||
        strlen(o->buf) != o->len)
        cvt_fail(__FILE__, __LINE__, "%s: output not NUL-terminated", what);
    if (cv_policy_apply(p, kr, NULL, tree, err, sizeof err) < 0)
        cvt_fail(__FILE__, __LINE__, "%s: apply (tree) failed: %s", what,
                 err);
    json_t *text = json_loadb(o->buf, o->len, JSON_REJECT_DUPLICATES, &je);
    if (!text)
        cvt_fail(__FILE__, __LINE__,
                 "%s: output is not JSON (%s, column %d)\n  event:  %.*s\n"
                 "  output: %s", what, je.text, je.column, (int)len, ev,
                 o->buf);
    cmp *c = cv_calloc(1, sizeof *c);
    c->kr = kr;
    c->id = id;
    if (!same(c, tree, text))
        cvt_fail(__FILE__, __LINE__, "%s: differs %s\n  event:  %.*s\n"
                 "  output: %s", what, c->why, (int)len, ev, o->buf);
    free(c);
    if (exact) {
        char *t = json_dumps(tree, CV_JSON_DUMP);
        if (strcmp(t, o->buf) != 0)
            cvt_fail(__FILE__, __LINE__, "%s: not the tree's bytes\n"
                     "  tree: %s\n  text: %s", what, t, o->buf);
        free(t);
    }
    json_decref(text);
    json_decref(tree);
}

/* ---- handcrafted events ----------------------------------------------- */

static const char *const handmade[] = {
    /* the generator's kind of event */
    cvt_typical_event,
    /* arrays of objects, nested arrays, mixed element types */
    "{\"id\":\"e2\",\"people\":[{\"email\":\"a@x\"},{\"email\":\"b@x\"},"
    "[{\"email\":\"a@x\"}]],\"email\":[\"a@x\",[\"b@x\"],7],"
    "\"tags\":[\"abcdef\",[\"xy\"],1,{\"k\":1}],\"secret\":[1,2,3],"
    "\"gone\":[1],\"items\":[{\"a\":1},\"s\",2.5,null,[]]}",
    /* drop first, middle, last, all */
    "{\"gone\":1,\"id\":\"e3\",\"a\":{\"b\":1,\"c\":2,\"keepme\":3}}",
    "{\"id\":\"e4\",\"x\":1,\"gone\":2,\"y\":3}",
    "{\"id\":\"e5\",\"x\":1,\"gone\":{\"deep\":[1,2]}}",
    "{\"gone\":true,\"id\":\"e6\",\"gone2\":{}}",
    "{ \"id\" : \"e7\" , \"gone\" : [ 1 , 2 ] , \"nested\" : { \"gone\" : 1 ,"
    " \"d\" : 5 , \"x\" : \"1 Main St, Springfield, USA\" } }",
    /* empty containers */
    "{\"id\":\"e8\",\"o\":{},\"a\":[],\"n\":{\"e\":{},\"l\":[[],{}]},"
    "\"location\":{},\"tags\":[],\"secret\":{}}",
    /* escapes in strings and names, \u escapes, unicode */
    "{\"id\":\"e9\",\"\\u0065mail\":\"x@y\",\"caf\\u00e9\":\"cr\\u00e8me\","
    "\"k\\\"q\":\"a\\\"b\\\\c\\/d\\n\",\"query\":\"\\ud83d\\ude00 \\t tab\","
    "\"text\":\"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\","
    "\"nested\":{\"\\u0061\":\"\\u00e9t\\u00e9\",\"x\":\"a\\u002cb\"}}",
    /* numbers as producers write them */
    "{\"id\":\"e10\",\"x\":1.50,\"y\":1E+2,\"z\":-0,\"w\":-0.0,\"v\":2.5e-3,"
    "\"u\":12345678901234567,\"t\":123456789.123456789,"
    "\"location\":{\"lat\":52.5201,\"lon\":-13.46,\"latitude\":1.25e1,"
    "\"longitude\":-0.04,\"city\":\"Berlin\",\"region\":7,\"country\":\"DE\"},"
    "\"when\":1772600767891,\"ms\":\"2026-03-04T05:06:07.891+01:00\","
    "\"secret\":-0,\"c\":{\"c\":1.50}}",
    /* deep nesting under keep */
    "{\"id\":\"e11\",\"nested\":{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":[[[{\"f\":"
    "{\"email\":\"deep@x\",\"gone\":1,\"x\":2.25}}]]]}}}}}}",
    /* reserved members hold anything and stay */
    "{\"id\":\"e12\",\"kind\":{\"email\":\"k@x\"},\"type\":[\"gone\",1],"
    "\"ts\":1.50,\"privacy_level\":null,\"retention_days\":30,"
    "\"nested\":{\"id\":\"inner\",\"ts\":\"t\",\"kind\":1}}",
    /* lookalikes of sealed and hashed values */
    "{\"id\":\"e13\",\"query\":\"enc:v1: my secret\","
    "\"email\":\"hash:v1:not-a-digest\",\"user_id\":\"hash:v1:x\"}",
    /* values for every operator's odd cases */
    "{\"id\":\"e14\",\"location\":\"1 Main St, Springfield, USA \","
    "\"x\":\"a,\",\"d\":\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\",\"when\":\"yesterday\","
    "\"ms\":-5,\"a\":{\"b\":[1,2]},\"tags\":[\"ab\",\"abcdefgh\",true]}",
    /* whitespace everywhere, CRLF-ish */
    " \t{\r\n\"id\"\t:\n\"e15\"\r\n,\"a\" : [ 1 ,\n 2 ] ,\"gone\":0 }\r\n",
    /* a member named "" and one with a dot */
    "{\"id\":\"e16\",\"\":1,\"a.b\":{\"email\":\"x\"},\"a\":{\"b\":2}}",
    /* the id escaped */
    "{\"id\":\"e\\u002d17\",\"query\":\"q\",\"secret\":[\"s\"]}",
    /* only the id */
    "{\"id\":\"e18\"}",
    /* id last, after sealed fields */
    "{\"query\":\"late id\",\"secret\":{\"k\":[1,{\"x\":null}]},\"id\":\"e19\"}",
    /* big and small numbers jansson still loads */
    "{\"id\":\"e20\",\"x\":-9223372036854775808,\"y\":9223372036854775807,"
    "\"z\":1.7976931348623157e308,\"w\":1e-400,\"v\":0.000000000001e310,"
    "\"location\":{\"lat\":1e300,\"lon\":-4.25}}",
};

TEST(policy_text_handmade_equivalence)
{
    cv_keyring *kr = cvt_keyring("keyring");
    outbuf o = {0};
    for (size_t pi = 0; pi < NPOL; pi++) {
        cv_policy *p = policy_n(pi);
        for (size_t i = 0; i < sizeof handmade / sizeof *handmade; i++) {
            char what[64];
            snprintf(what, sizeof what, "policy %zu, event %zu", pi, i);
            check_event(p, kr, handmade[i], strlen(handmade[i]), &o, false,
                        what);
        }
        cv_policy_destroy(&p);
    }
    free(o.buf);
    cv_keyring_destroy(&kr);
}

/* ---- generated events ------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t below(size_t n) { return (size_t)(rnd() % n); }

typedef struct {
    char *s;
    size_t n, cap;
} sb;

static void put(sb *b, const char *s)
{
    size_t l = strlen(s);
    if (b->n + l + 1 > b->cap) {
        b->cap = (b->n + l + 1) * 2;
        b->s = cv_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, l + 1);
    b->n += l;
}

static void space(sb *b)
{
    static const char *const ws[] = {" ", "\n", " \t ", "\r\n"};
    if (below(6) == 0)
        put(b, ws[below(4)]);
}

/* Member names; names in one group decode to the same text, so an object
 * takes at most one of each group. */
static const struct {
    const char *text;
    int group;
} names[] = {
    {"email", 0},     {"\\u0065mail", 0}, {"query", 1},      {"text", 2},
    {"location", 3},  {"lat", 4},         {"lon", 5},        {"latitude", 6},
    {"city", 7},      {"country", 8},     {"region", 9},     {"device", 10},
    {"name", 11},     {"tags", 12},       {"secret", 13},    {"gone", 14},
    {"a", 15},        {"b", 16},          {"c", 17},         {"nested", 18},
    {"items", 19},    {"x", 20},          {"when", 21},      {"ms", 22},
    {"k\\\"q", 23},   {"caf\xc3\xa9", 24}, {"caf\\u00e9", 24}, {"user_id", 25},
    {"id", 26},       {"ts", 27},         {"kind", 28},      {"type", 29},
    {"keepme", 30},   {"d", 31},          {"device_id", 32}, {"street", 33},
    {"notes", 34},    {"password", 35},   {"", 36},          {"a.b", 37},
    {"privacy_level", 38}, {"retention_days", 39}, {"longitude", 40},
};
#define NNAMES (sizeof names / sizeof *names)

static const char *const strings[] = {
    "\"plain\"", "\"\"", "\"a@x.org\"", "\"caf\\u00e9\"",
    "\"line\\nbreak \\\"q\\\" \\\\ \\/\"", "\"\\ud83d\\ude00 smile\"",
    "\"raw caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\"",
    "\"2026-03-04T05:06:07.891+01:00\"", "\"2026-11-01T00:00:00Z\"",
    "\"1 Main St, Springfield, USA \"", "\"France\"", "\"x,\"",
    "\"enc:v1: my secret\"", "\"hash:v1:not-a-digest\"",
    "\"4111111111111111\"", "\"ab\"", "\"\\t\\b\\f\\r\\u001f\"", "\"   \"",
    "\"Berlin\"", "\"a\\u002cb, c\"",
};
static const char *const numbers[] = {
    "0", "-0", "1.50", "1e3", "-2.5E-3", "12345678901234567", "52.5201",
    "-13.46", "1772600767891", "1772600767", "3.0", "1E+2", "-0.0", "0.05",
    "9.95", "123456789.123456789", "-7", "0.1", "2.675", "1e-7",
    "-9223372036854775808", "4.35", "99.95", "-0.04",
};

static void gen_value(sb *b, int depth);

static void gen_object(sb *b, int depth, bool top)
{
    uint64_t used = top ? 1ull << 26 : 0; /* the top's id is placed below */
    size_t n = top ? 3 + below(9) : below(depth > 3 ? 3 : 6);
    size_t id_at = top ? below(n + 1) : (size_t)-1;
    bool first = true;
    put(b, "{");
    space(b);
    for (size_t i = 0; i <= n; i++) {
        const char *key = NULL;
        char idval[64];
        if (i == id_at) {
            key = below(10) == 0 ? "\\u0069d" : "id";
        } else if (i < n) {
            for (int tries = 0; tries < 8 && !key; tries++) {
                size_t k = below(NNAMES);
                if (used & (1ull << names[k].group))
                    continue;
                used |= 1ull << names[k].group;
                key = names[k].text;
            }
        }
        if (!key)
            continue;
        if (!first) {
            put(b, ",");
            space(b);
        }
        first = false;
        put(b, "\"");
        put(b, key);
        put(b, "\"");
        space(b);
        put(b, ":");
        space(b);
        if (i == id_at) {
            snprintf(idval, sizeof idval,
                     below(8) == 0 ? "\"ev\\u002d%llu\"" : "\"ev-%llu\"",
                     (unsigned long long)below(1000000));
            put(b, idval);
        } else {
            gen_value(b, depth + 1);
        }
        space(b);
    }
    put(b, "}");
}

static void gen_value(sb *b, int depth)
{
    size_t r = below(100);
    if (depth < 6 && r < 18) {
        gen_object(b, depth, false);
    } else if (depth < 6 && r < 30) {
        size_t n = below(5);
        put(b, "[");
        space(b);
        for (size_t i = 0; i < n; i++) {
            if (i) {
                put(b, ",");
                space(b);
            }
            gen_value(b, depth + 1);
            space(b);
        }
        put(b, "]");
    } else if (r < 60) {
        put(b, strings[below(sizeof strings / sizeof *strings)]);
    } else if (r < 90) {
        put(b, numbers[below(sizeof numbers / sizeof *numbers)]);
    } else {
        static const char *const lit[] = {"true", "false", "null"};
        put(b, lit[below(3)]);
    }
}

TEST(policy_text_generated_equivalence)
{
    cv_keyring *kr = cvt_keyring("keyring");
    outbuf o = {0};
    sb b = {0};
    cv_policy *ps[NPOL];
    for (size_t pi = 0; pi < NPOL; pi++)
        ps[pi] = policy_n(pi);
    rng_state = 42;
    for (int i = 0; i < 2000; i++) {
        b.n = 0;
        put(&b, "");
        if (below(20) == 0)
            space(&b);
        gen_object(&b, 0, true);
        space(&b);
        for (size_t pi = 0; pi < NPOL; pi++) {
            char what[64];
            snprintf(what, sizeof what, "policy %zu, event %d", pi, i);
            check_event(ps[pi], kr, b.s, b.n, &o, false, what);
        }
    }
    for (size_t pi = 0; pi < NPOL; pi++)
        cv_policy_destroy(&ps[pi]);
    free(b.s);
    free(o.buf);
    cv_keyring_destroy(&kr);
}

/* Scrub: the text walk and the tree walk agree on stored rows (events
 * that went through the shipped [fields] first), for the shipped scrub
 * rules and for rules with every operator, a kind's own section and a
 * default; and a second text scrub changes nothing. */
static const char *const scrub_policies[] = {
    NULL,
    "[fields]\nuser_id = keep\n**.secret = encrypt\n**.d = encrypt\n"
    "**.notes = encrypt\n"
    "[scrub fields]\nts = round\n**.gone = drop\n**.tags = mask\n"
    "**.secret = hash s\n**.location = generalise city\n"
    "**.x = generalise country\n**.region = generalise\n**.when = round\n"
    "**.ms = round\n**.email = hash email\n**.items = anonymise\n"
    "**.d = drop\n**.b = encrypt\n**.notes = keep\nnested.** = keep\n"
    "[scrub fields k1]\n**.a = anonymise\n**.c = mask\ndefault = drop\n",
};

static void check_scrub(const cv_policy *p, const cv_keyring *kr,
                        const char *kind, const char *ev, size_t len,
                        outbuf *stored, outbuf *o, const char *what)
{
    char err[256];
    json_error_t je;
    if (cv_policy_apply_text(p, kr, NULL, ev, len, NULL, &stored->buf, &stored->len,
                             &stored->cap, err, sizeof err) < 0)
        return; /* not an event [fields] takes: never stored */
    json_t *tree = json_loadb(stored->buf, stored->len, 0, &je);
    const char *id = json_string_value(json_object_get(tree, "id"));
    if (!tree || !id)
        cvt_fail(__FILE__, __LINE__, "%s: stored text unreadable", what);
    int nt = cv_policy_scrub_text(p, kr, kind, stored->buf, stored->len, NULL,
                                  NULL, &o->buf, &o->len, &o->cap, NULL, err,
                                  sizeof err);
    if (nt < 0)
        cvt_fail(__FILE__, __LINE__, "%s: scrub_text failed: %s\n  row: %s",
                 what, err, stored->buf);
    if (cv_policy_scrub(p, kr, kind, tree, NULL, NULL, err, sizeof err) < 0)
        cvt_fail(__FILE__, __LINE__, "%s: scrub (tree) failed: %s", what, err);
    const char *out = nt > 0 ? o->buf : stored->buf;
    size_t outlen = nt > 0 ? o->len : stored->len;
    json_t *text = json_loadb(out, outlen, JSON_REJECT_DUPLICATES, &je);
    if (!text)
        cvt_fail(__FILE__, __LINE__, "%s: output is not JSON (%s)\n  row: %s\n"
                 "  output: %.*s", what, je.text, stored->buf, (int)outlen, out);
    cmp *c = cv_calloc(1, sizeof *c);
    c->kr = kr;
    c->id = id;
    if (!same(c, tree, text))
        cvt_fail(__FILE__, __LINE__, "%s: differs %s\n  row:    %s\n"
                 "  output: %.*s", what, c->why, stored->buf, (int)outlen, out);
    free(c);
    /* scrubbing the scrubbed row again changes nothing */
    char *again = cv_malloc(outlen + 1);
    memcpy(again, out, outlen);
    again[outlen] = '\0';
    outbuf o2 = {0};
    int n2 = cv_policy_scrub_text(p, kr, kind, again, outlen, NULL, NULL,
                                  &o2.buf, &o2.len, &o2.cap, NULL, err, sizeof err);
    if (n2 != 0)
        cvt_fail(__FILE__, __LINE__, "%s: a second scrub changed %d fields\n"
                 "  once:  %s\n  twice: %s", what, n2, again, o2.buf);
    free(o2.buf);
    free(again);
    json_decref(text);
    json_decref(tree);
}

TEST(scrub_text_and_tree_agree_and_a_second_scrub_changes_nothing)
{
    cv_keyring *kr = cvt_keyring("keyring");
    outbuf o = {0}, stored = {0};
    sb b = {0};
    rng_state = 99;
    cv_policy *ps[2];
    for (size_t pi = 0; pi < 2; pi++)
        ps[pi] = scrub_policies[pi] ? cvt_policy(scrub_policies[pi])
                                    : policy_n(0);
    for (int i = 0; i < 2000; i++) {
        b.n = 0;
        put(&b, "");
        gen_object(&b, 0, true);
        for (size_t pi = 0; pi < 2; pi++) {
            char what[64];
            snprintf(what, sizeof what, "scrub policy %zu, event %d", pi, i);
            check_scrub(ps[pi], kr, i % 2 ? "k1" : "other", b.s, b.n, &stored,
                        &o, what);
        }
    }
    for (size_t pi = 0; pi < 2; pi++)
        cv_policy_destroy(&ps[pi]);
    free(b.s);
    free(o.buf);
    free(stored.buf);
    cv_keyring_destroy(&kr);
}

/* On jansson's own compact text and a policy that encrypts nothing, the
 * text version writes exactly the tree version's bytes: commas, order and
 * replaced values all agree. */
TEST(policy_text_bytes_match_tree_dump)
{
    cv_keyring *kr = cvt_keyring("keyring");
    outbuf o = {0};
    sb b = {0};
    rng_state = 7;
    for (size_t pi = 0; pi < NPOL; pi++) {
        if (has_encrypt(policies[pi]))
            continue;
        cv_policy *p = policy_n(pi);
        for (int i = 0; i < 500; i++) {
            b.n = 0;
            put(&b, "");
            gen_object(&b, 0, true);
            json_t *j = json_loadb(b.s, b.n, 0, NULL);
            CHECK(j != NULL);
            char *canon = json_dumps(j, CV_JSON_DUMP);
            json_decref(j);
            char what[64];
            snprintf(what, sizeof what, "policy %zu, event %d", pi, i);
            check_event(p, kr, canon, strlen(canon), &o, true, what);
            free(canon);
        }
        cv_policy_destroy(&p);
    }
    free(b.s);
    free(o.buf);
    cv_keyring_destroy(&kr);
}

/* Every way of dropping members of a 4-member object and elements of a
 * 4-element array, compact and spaced. */
TEST(policy_text_drop_commas)
{
    cv_keyring *kr = cvt_keyring("keyring");
    outbuf o = {0};
    for (int mask = 0; mask < 16; mask++) {
        char pol[256] = "[fields]\n";
        for (int k = 0; k < 4; k++)
            if (mask & (1 << k))
                snprintf(pol + strlen(pol), sizeof pol - strlen(pol),
                         "o.k%d = drop\n", k);
        /* mask drops what is not a string */
        strcat(pol, "l = mask\n");
        cv_policy *p = cvt_policy(pol);
        char ev[512], ev2[512];
        snprintf(ev, sizeof ev,
                 "{\"id\":\"e\",\"o\":{\"k0\":0,\"k1\":[1],\"k2\":{\"x\":2},"
                 "\"k3\":\"3\"},\"l\":[%s,%s,%s,%s]}",
                 mask & 1 ? "1" : "\"abcde\"", mask & 2 ? "{}" : "\"b\"",
                 mask & 4 ? "null" : "\"ccccccc\"", mask & 8 ? "[]" : "\"d\"");
        snprintf(ev2, sizeof ev2,
                 " { \"id\" : \"e\" , \"o\" : { \"k0\" : 0 , \"k1\" : [ 1 ] ,"
                 " \"k2\" : { \"x\" : 2 } , \"k3\" : \"3\" } , \"l\" : [ %s ,"
                 " %s , %s , %s ] } ",
                 mask & 1 ? "1" : "\"abcde\"", mask & 2 ? "{}" : "\"b\"",
                 mask & 4 ? "null" : "\"ccccccc\"", mask & 8 ? "[]" : "\"d\"");
        check_event(p, kr, ev, strlen(ev), &o, true, "compact");
        check_event(p, kr, ev2, strlen(ev2), &o, false, "spaced");
        cv_policy_destroy(&p);
    }
    free(o.buf);
    cv_keyring_destroy(&kr);
}

/* ---- untouched text --------------------------------------------------- */

static bool starts(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

static char *apply_text(const cv_policy *p, const cv_keyring *kr,
                        const char *ev, const char *id, int *rc, char *err,
                        size_t errlen)
{
    char *out = NULL;
    size_t len = 0, cap = 0;
    *rc = cv_policy_apply_text(p, kr, NULL, ev, strlen(ev), id, &out, &len, &cap,
                               err, errlen);
    return out;
}

TEST(policy_text_untouched_bytes)
{
    cv_keyring *kr = cvt_keyring("keyring");
    /* what is kept must keep its bytes: a policy that keeps by default */
    cv_policy *p = cv_policy_parse("t", "[fields]\ndefault = keep\n"
                                   "**.user_id = hash user\n"
                                   "**.email = hash email\n"
                                   "**.query = encrypt\n", NULL);
    char err[256];
    int rc;
    /* nothing to change: the output is the input */
    const char *plain =
        "{\"id\":\"e1\",\"x\":1.50,\"y\":1E+2,\"z\":-0,\"w\":2.50e-3,"
        "\"s\":\"caf\\u00e9 \\/\",\"arr\":[ 1 , 2.0 ,{}],\"big\":"
        "12345678901234567,\"pi\":3.14159265358979323846,\"o\":{\"k\":true}}";
    char *out = apply_text(p, kr, plain, "e1", &rc, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK_STR(out, plain);
    free(out);
    /* changed values are spliced in; the rest keeps its bytes */
    const char *ev =
        "{\"id\":\"e2\",\"x\":1.50,\"email\":\"a@x\",\"y\":1E+2,"
        "\"query\":\"q\",\"arr\":[ 1 , 2.0 ],\"t\":\"caf\\u00e9\"}";
    out = apply_text(p, kr, ev, NULL, &rc, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK(starts(out, "{\"id\":\"e2\",\"x\":1.50,\"email\":\"hash:v1:"));
    CHECK(strstr(out, "\",\"y\":1E+2,\"query\":\"enc:v1:") != NULL);
    CHECK(strstr(out, "\",\"arr\":[ 1 , 2.0 ],\"t\":\"caf\\u00e9\"}") != NULL);
    json_t *j = json_loads(out, 0, NULL);
    CHECK(j != NULL);
    char *plaintext;
    size_t len;
    CHECK_INT(cv_fieldcrypt_unseal(kr, json_string_value(json_object_get(j, "query")),
                        "e2", "query", &plaintext, &len, err, sizeof err), 0);
    CHECK_STR(plaintext, "\"q\"");
    free(plaintext);
    json_decref(j);
    /* a second run changes nothing: sealed and hashed values stay */
    char *again = apply_text(p, kr, out, NULL, &rc, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK_STR(again, out);
    free(again);
    free(out);
    /* surrounding whitespace is left out, inner whitespace kept */
    out = apply_text(p, kr, " \t{ \"id\" : \"e3\" , \"a\" : [ 1 ] }\r\n", NULL,
                     &rc, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK_STR(out, "{ \"id\" : \"e3\" , \"a\" : [ 1 ] }");
    free(out);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}

/* ---- the reserved members --------------------------------------------- */

TEST(policy_text_reserved_members_untouched)
{
    cv_keyring *kr = cvt_keyring("keyring");
    const char *ev =
        "{\"id\":\"e1\", \"kind\" :\"trace\",\"type\":{\"email\":\"t@x\"},"
        "\"ts\":\"2026-01-01T00:00:00Z\",\"privacy_level\":\"standard\","
        "\"retention_days\":30.0,\"user_id\":\"u\",\"other\":1,"
        "\"nested\":{\"id\":2,\"ts\":3}}";
    char err[256];
    int rc;
    cv_policy *p = cvt_policy("[fields]\nuser_id = keep\n** = drop\n");
    char *out = apply_text(p, kr, ev, "e1", &rc, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK_STR(out, "{\"id\":\"e1\", \"kind\" :\"trace\",\"type\":{\"email\":"
                   "\"t@x\"},\"ts\":\"2026-01-01T00:00:00Z\",\"privacy_level\":"
                   "\"standard\",\"retention_days\":30.0,\"user_id\":\"u\"}");
    free(out);
    cv_policy_destroy(&p);

    p = cvt_policy("[fields]\nuser_id = keep\ndefault = encrypt\n");
    out = apply_text(p, kr, ev, "e1", &rc, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK(starts(out, "{\"id\":\"e1\", \"kind\" :\"trace\",\"type\":{\"email\":"
                      "\"t@x\"},\"ts\":\"2026-01-01T00:00:00Z\","
                      "\"privacy_level\":\"standard\",\"retention_days\":30.0,"
                      "\"user_id\":\"u\",\"other\":\"enc:v1:"));
    json_t *j = json_loads(out, 0, NULL);
    CHECK(j != NULL);
    /* the default reaches leaves: nested.id is not the reserved id */
    json_t *nested = json_object_get(j, "nested");
    CHECK(cv_fieldcrypt_is_envelope(json_string_value(json_object_get(nested, "id"))));
    CHECK(cv_fieldcrypt_is_envelope(json_string_value(json_object_get(nested, "ts"))));
    json_decref(j);
    free(out);

    /* the id must be there, a string, and the one the fields are bound to */
    out = apply_text(p, kr, "{\"a\":1}", "e1", &rc, err, sizeof err);
    CHECK_INT(rc, -1);
    free(out);
    out = apply_text(p, kr, "{\"a\":1}", NULL, &rc, err, sizeof err);
    CHECK_INT(rc, -1);
    free(out);
    out = apply_text(p, kr, "{\"id\":\"e2\",\"a\":1}", "e1", &rc, err,
                     sizeof err);
    CHECK_INT(rc, -1);
    CHECK(strstr(err, "id") != NULL);
    free(out);
    out = apply_text(p, kr, "{\"id\":7,\"a\":1}", "7", &rc, err, sizeof err);
    CHECK_INT(rc, -1);
    free(out);
    out = apply_text(p, kr, "{\"id\":\"\",\"a\":1}", NULL, &rc, err,
                     sizeof err);
    CHECK_INT(rc, -1);
    free(out);
    /* an escaped name is the same member: "\u0069d" is the reserved id */
    out = apply_text(p, kr, "{\"\\u0069d\":\"e1\",\"a\":1}", "e1", &rc, err,
                     sizeof err);
    CHECK_INT(rc, 0);
    CHECK(starts(out, "{\"\\u0069d\":\"e1\",\"a\":\"enc:v1:"));
    free(out);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}

/* ---- malformed input -------------------------------------------------- */

static const struct {
    const char *text;
    size_t len; /* 0: strlen */
} bad[] = {
    {"", 0},
    {"   ", 0},
    {"[1,2]", 0},
    {"\"str\"", 0},
    {"{\"id\":\"e\",\"a\":[1,2", 0},
    {"{\"id\":\"e\",\"a\":\"x}", 0},
    {"{\"id\":\"e\",\"a\":\"x", 0},
    {"{\"id\":\"e\",\"a\":", 0},
    {"{\"id\":\"e\",\"a\"", 0},
    {"{\"id\":\"e\",", 0},
    {"{\"id\":\"e\"", 0},
    {"{", 0},
    {"{\"id\":\"e\",\"a\":\"\xff\"}", 0},
    {"{\"id\":\"e\",\"a\":\"\xc0\xaf\"}", 0},
    {"{\"id\":\"e\",\"a\":\"\xed\xa0\x80\"}", 0},
    {"{\"id\":\"e\",\"a\":\"\xe6\x97\"}", 0},
    {"{\"id\":\"e\",\"\xff\":1}", 0},
    {"{\"id\":\"e\",\"a\":[1,2}}", 0},
    {"{\"id\":\"e\",\"a\":{\"b\":1]}", 0},
    {"{\"id\":\"e\"}}", 0},
    {"{\"id\":\"e\",}", 0},
    {"{\"id\":\"e\",\"a\":[1,]}", 0},
    {"{\"id\":\"e\" \"a\":1}", 0},
    {"{\"id\":\"e\",\"a\" 1}", 0},
    {"{\"id\":\"e\",1:1}", 0},
    {"{\"id\":\"e\",\"a\":\\u0000}", 0},
    {"{\"id\":\"e\",\"a\":\"\\u0000\"}", 0},
    {"{\"id\":\"e\",\"a\":\"x\0y\"}", 20},
    {"{\"id\":\"e\",\"a\":\"\x01\"}", 0},
    {"{\"id\":\"e\",\"a\":\"\\x\"}", 0},
    {"{\"id\":\"e\",\"a\":\"\\u12\"}", 0},
    {"{\"id\":\"e\",\"a\":\"\\ud800\"}", 0},
    {"{\"id\":\"e\",\"a\":\"\\udc00\\ud800\"}", 0},
    {"{\"id\":\"e\",\"a\":1.}", 0},
    {"{\"id\":\"e\",\"a\":01}", 0},
    {"{\"id\":\"e\",\"a\":-}", 0},
    {"{\"id\":\"e\",\"a\":1e}", 0},
    {"{\"id\":\"e\",\"a\":+1}", 0},
    {"{\"id\":\"e\",\"a\":tru}", 0},
    {"{\"id\":\"e\",\"a\":nul", 0},
    {"{\"id\":\"e\",\"a\":99999999999999999999}", 0},
    {"{\"id\":\"e\",\"a\":9223372036854775808}", 0},
    {"{\"id\":\"e\",\"a\":-9223372036854775809}", 0},
    {"{\"id\":\"e\",\"a\":1e400}", 0},
    {"{\"id\":\"e\",\"a\":-1.8e308}", 0},
    {"{\"id\":\"e\",\"query\":1e309}", 0},
    {"{\"id\":\"e\"} x", 0},
    {"{\"id\":\"e\"}{}", 0},
};

TEST(policy_text_malformed)
{
    cv_keyring *kr = cvt_keyring("keyring");
    cv_policy *p = cv_policy_load(NULL, true, NULL);
    char err[256];
    char *out = NULL;
    size_t len = 0, cap = 0;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t n = bad[i].len ? bad[i].len : strlen(bad[i].text);
        char *copy = cv_malloc(n ? n : 1); /* exact: ASan sees overreads */
        memcpy(copy, bad[i].text, n);
        err[0] = '\0';
        int rc = cv_policy_apply_text(p, kr, NULL, copy, n, "e", &out, &len, &cap,
                                      err, sizeof err);
        if (rc != -1 || !err[0])
            cvt_fail(__FILE__, __LINE__, "bad[%zu] (%.*s): rc %d", i, (int)n,
                     bad[i].text, rc);
        /* and jansson refuses it too */
        json_t *j = json_loadb(copy, n, 0, NULL);
        if (j && json_is_object(j))
            cvt_fail(__FILE__, __LINE__, "bad[%zu] loads with jansson", i);
        json_decref(j);
        free(copy);
    }
    /* the limits jansson has are ours: these still load */
    const char *edge[] = {
        "{\"id\":\"e\",\"a\":9223372036854775807}",
        "{\"id\":\"e\",\"a\":-9223372036854775808}",
        "{\"id\":\"e\",\"a\":1.7976931348623157e308}",
        "{\"id\":\"e\",\"a\":1e-999}",
        "{\"id\":\"e\",\"a\":0.0000000001e317}",
        "{\"id\":\"e\",\"a\":17976931348623157e292}",
    };
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++) {
        json_t *j = json_loads(edge[i], 0, NULL);
        CHECK(j != NULL);
        json_decref(j);
        int rc = cv_policy_apply_text(p, kr, NULL, edge[i], strlen(edge[i]), "e",
                                      &out, &len, &cap, err, sizeof err);
        if (rc != 0)
            cvt_fail(__FILE__, __LINE__, "edge[%zu]: %s", i, err);
    }
    free(out);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}

/* Every prefix of valid events and random byte changes: never a crash or
 * an overread, and the rewriter accepts exactly what jansson loads. */
TEST(policy_text_mangled)
{
    cv_keyring *kr = cvt_keyring("keyring");
    cv_policy *p = policy_n(1);
    outbuf o = {0};
    sb b = {0};
    char err[256];
    rng_state = 99;
    static const char junk[] = "{}[],:\"\\ \x80\xff\xc3" "0-e.tu";
    for (int i = 0; i < 300; i++) {
        b.n = 0;
        put(&b, "");
        gen_object(&b, 0, true);
        for (int m = 0; m < 40; m++) {
            size_t n = b.n;
            char *copy = cv_malloc(n);
            memcpy(copy, b.s, n);
            if (m < 20) {
                n = below(b.n); /* a prefix */
            } else {
                int changes = 1 + (int)below(3);
                while (changes--)
                    copy[below(n)] = junk[below(sizeof junk - 1)];
            }
            json_t *j = json_loadb(copy, n, JSON_REJECT_DUPLICATES, NULL);
            const char *id = json_string_value(json_object_get(j, "id"));
            int rc = cv_policy_apply_text(p, kr, NULL, copy, n,
                                          id && *id ? id : "x", &o.buf,
                                          &o.len, &o.cap, err, sizeof err);
            if (id && *id && rc != 0)
                cvt_fail(__FILE__, __LINE__, "refused what jansson loads: "
                         "%s\n  %.*s", err, (int)n, copy);
            if (rc == 0) {
                json_t *any = json_loadb(copy, n, 0, NULL);
                json_t *res = json_loadb(o.buf, o.len, 0, NULL);
                if (!any || !res)
                    cvt_fail(__FILE__, __LINE__, "accepted what jansson "
                             "does not load:\n  %.*s", (int)n, copy);
                json_decref(any);
                json_decref(res);
            }
            json_decref(j);
            free(copy);
        }
    }
    free(b.s);
    free(o.buf);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}

/* Nesting: the walk keeps its own stack, so depth costs no C stack. */
TEST(policy_text_depth)
{
    cv_keyring *kr = cvt_keyring("keyring");
    cv_policy *p = cvt_policy("[fields]\n**.e = encrypt\n");
    char err[256];
    for (int depth = 2000; depth <= 2100; depth += 100) {
        sb b = {0};
        put(&b, "{\"id\":\"e\",\"a\":");
        for (int i = 0; i < depth; i++)
            put(&b, i % 2 ? "[" : "{\"a\":");
        put(&b, "{\"e\":1}");
        for (int i = depth - 1; i >= 0; i--)
            put(&b, i % 2 ? "]" : "}");
        put(&b, "}");
        char *out = NULL;
        size_t len = 0, cap = 0;
        int rc = cv_policy_apply_text(p, kr, NULL, b.s, b.n, "e", &out, &len, &cap,
                                      err, sizeof err);
        if (depth < 2048) {
            CHECK_INT(rc, 0);
            CHECK(strstr(out, "{\"e\":\"enc:v1:") != NULL);
            CHECK(len > b.n);
        } else {
            CHECK_INT(rc, -1);
            CHECK(strstr(err, "deep") != NULL);
        }
        free(out);
        free(b.s);
    }
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}

/* generalise writes rounded coordinates without jansson when it can: the
 * bytes must be the tree's, for any way a producer writes a number. */
TEST(policy_text_generalise_numbers)
{
    cv_keyring *kr = cvt_keyring("keyring");
    cv_policy *p = cvt_policy("[fields]\nlocation = generalise\n");
    outbuf o = {0};
    static const char *const fixed[] = {
        "0.05", "0.15", "0.25", "0.35", "2.675", "9.95", "-0.05", "-0.15",
        "0.95", "99.95", "-99.95", "0.04", "-0.04", "-0.0", "0.0", "-0",
        "0", "1.0", "1e1", "1E-1", "-2.5e+0", "123456789012.35",
        "999999999999.95", "9999999999999.9", "1e13", "-1e13", "1e20",
        "0.000000000000000000000001", "1.00000000000000000000001",
        "48.85661400000000000000000000", "52.520008", "-73.98732",
        "179.99999999", "-180", "1234567890123456789", "0.1e-5",
        "4503599627370495.5", "0.45", "1.45", "2.45", "3.45", "4.45",
        "5.45", "6.45", "7.45", "8.45", "9.45", "10.45",
    };
    char ev[512];
    size_t nfixed = sizeof fixed / sizeof *fixed;
    rng_state = 5;
    for (int i = 0; i < 10000; i++) {
        char num[4][64];
        for (int j = 0; j < 4; j++) {
            if (i < (int)nfixed) {
                snprintf(num[j], sizeof num[j], "%s",
                         fixed[((size_t)i * 4 + (size_t)j) % nfixed]);
                continue;
            }
            int n = 0;
            if (below(2))
                num[j][n++] = '-';
            n += snprintf(num[j] + n, sizeof num[j] - (size_t)n, "%llu",
                          (unsigned long long)(rnd() % (below(4) ? 1000
                                                        : 100000000000000ull)));
            size_t fd = below(14);
            if (fd) {
                num[j][n++] = '.';
                while (fd--)
                    num[j][n++] = (char)('0' + below(10));
                if (below(3) == 0)
                    num[j][n - 1] = '5'; /* a half, often */
            }
            if (below(10) == 0)
                n += snprintf(num[j] + n, sizeof num[j] - (size_t)n, "e%d",
                              (int)below(30) - 15);
            num[j][n] = '\0';
        }
        snprintf(ev, sizeof ev,
                 "{\"id\":\"e\",\"location\":{\"lat\":%s,\"lon\":%s,"
                 "\"city\":\"X\",\"latitude\":%s,\"longitude\":%s,"
                 "\"street\":\"s\"}}",
                 num[0], num[1], num[2], num[3]);
        check_event(p, kr, ev, strlen(ev), &o, true, ev);
    }
    free(o.buf);
    cv_policy_destroy(&p);
    cv_keyring_destroy(&kr);
}
