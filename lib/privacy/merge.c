/* merge.c - per-field merge of concurrent context versions
 * (merge.h). */
#include "privacy/merge.h"

#include "base/fieldname.h"

#include "base/util.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD(...) (err && errlen ? snprintf(err, errlen, __VA_ARGS__) : 0, -1)

typedef struct {
    char *field;
    cv_merge_kind kind;
    int cap;
} merge_rule;

/* A policy names a handful of fields: a list searched in order will do. */
struct cv_merge_rules {
    merge_rule *rules;
    size_t n;
    cv_merge_kind dflt;
    int dflt_cap;
    bool dflt_set;
};

cv_merge_rules *cv_merge_rules_new(void)
{
    cv_merge_rules *r = cv_calloc(1, sizeof *r);
    r->dflt = CV_MERGE_LWW;
    return r;
}

void cv_merge_rules_destroy(cv_merge_rules **p)
{
    cv_merge_rules *r = *p;
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->rules[i].field);
    free(r->rules);
    free(r);
    *p = NULL;
}

const char *cv_merge_kind_name(cv_merge_kind k)
{
    switch (k) {
    case CV_MERGE_LWW: return "lww";
    case CV_MERGE_UNION: return "union";
    case CV_MERGE_MAX: return "max";
    case CV_MERGE_SIBLINGS: return "siblings";
    }
    return "?";
}

/* "lww" | "union N" | "max" | "siblings" */
static int parse_rule(const char *v, cv_merge_kind *kind, int *cap, char *err,
                      size_t errlen)
{
    static const cv_merge_kind kinds[] = {CV_MERGE_LWW, CV_MERGE_UNION,
                                          CV_MERGE_MAX, CV_MERGE_SIBLINGS};
    size_t wl = strcspn(v, " \t");
    const char *rest = v + wl + strspn(v + wl, " \t");
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        const char *name = cv_merge_kind_name(kinds[i]);
        if (strlen(name) != wl || strncmp(name, v, wl) != 0)
            continue;
        *kind = kinds[i];
        *cap = 0;
        if (kinds[i] != CV_MERGE_UNION) {
            if (*rest)
                return BAD("merge rule '%s' takes no argument (got '%s')",
                           name, rest);
            return 0;
        }
        /* a union without a cap would grow with every sync */
        if (!*rest)
            return BAD("union needs a cap: union N, N from 1 to %d",
                       CV_MERGE_UNION_MAX);
        size_t digits = strspn(rest, "0123456789");
        long n = digits && digits <= 6 && !rest[digits] ? strtol(rest, NULL, 10)
                                                        : -1;
        if (n < 1 || n > CV_MERGE_UNION_MAX)
            return BAD("union cap '%s' is not a number from 1 to %d", rest,
                       CV_MERGE_UNION_MAX);
        *cap = (int)n;
        return 0;
    }
    return BAD("unknown merge rule '%.*s' (expected lww, union N, max or "
               "siblings)", (int)wl, v);
}

int cv_merge_rules_add(cv_merge_rules *r, const char *field,
                       const char *value, char *err, size_t errlen)
{
    cv_merge_kind kind;
    int cap;
    if (!field || !*field)
        return BAD("a merge rule needs a field name");
    if (parse_rule(value ? value : "", &kind, &cap, err, errlen) < 0)
        return -1;
    if (!strcmp(field, "default")) {
        if (r->dflt_set)
            return BAD("rule for 'default' given twice");
        r->dflt = kind;
        r->dflt_cap = cap;
        r->dflt_set = true;
        return 0;
    }
    /* names match as fieldname.h folds them: recentSearches is
     * recent_searches */
    for (size_t i = 0; i < r->n; i++)
        if (cv_fieldname_eq(r->rules[i].field, strlen(r->rules[i].field), field,
                            strlen(field)))
            return strcmp(r->rules[i].field, field)
                       ? BAD("rule for '%s' given twice (as '%s': names match "
                             "ignoring case, '_' and '-')", field, r->rules[i].field)
                       : BAD("rule for '%s' given twice", field);
    r->rules = cv_realloc(r->rules, (r->n + 1) * sizeof *r->rules);
    r->rules[r->n++] = (merge_rule){cv_strdup(field), kind, cap};
    return 0;
}

cv_merge_kind cv_merge_rule_for(const cv_merge_rules *r, const char *field,
                                int *cap)
{
    for (size_t i = 0; i < r->n; i++) {
        if (cv_fieldname_eq(r->rules[i].field, strlen(r->rules[i].field), field,
                            strlen(field))) {
            if (cap)
                *cap = r->rules[i].cap;
            return r->rules[i].kind;
        }
    }
    if (cap)
        *cap = r->dflt_cap;
    return r->dflt;
}

/* ---- merging ---------------------------------------------------------- */

/* One version's value of the field being merged. */
typedef struct {
    const json_t *v;
    json_int_t clock;
    const char *dev;
    char *text; /* the canonical JSON text, made when a tie needs it */
} cand;

static const char *cand_text(cand *c)
{
    /* JSON_ENCODE_ANY: without it jansson will not dump a scalar */
    if (!c->text)
        c->text = json_dumps(c->v, JSON_SORT_KEYS | JSON_COMPACT |
                                   JSON_ENCODE_ANY);
    if (!c->text)
        cv_die(EX_OSERR, "cannot encode a context field: out of memory");
    return c->text;
}

/* > 0 when a comes before b in lww order (a wins). Candidates it calls
 * equal have the same clock, device and value, so which goes first makes
 * no difference to the result: that is what makes the merge independent
 * of the order of its inputs. */
static int lww_cmp(cand *a, cand *b)
{
    if (a->clock != b->clock)
        return a->clock > b->clock ? 1 : -1;
    int c = strcmp(a->dev, b->dev);
    if (c)
        return c;
    return strcmp(cand_text(a), cand_text(b));
}

/* Winner first; an insertion sort, as there are a few versions. */
static void lww_sort(cand *c, size_t m)
{
    for (size_t i = 1; i < m; i++) {
        cand x = c[i];
        size_t j = i;
        for (; j > 0 && lww_cmp(&x, &c[j - 1]) > 0; j--)
            c[j] = c[j - 1];
        c[j] = x;
    }
}

/* A hash that agrees with json_equal: equal values hash the same. Object
 * members are summed, since json_equal ignores their order; -0.0 and 0.0
 * are equal reals, so they are hashed as one. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

static uint64_t bytes_hash(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211u;
    return h;
}

static uint64_t value_hash(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        uint64_t h = 1;
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m)
            h += mix(bytes_hash(k, strlen(k)) ^ value_hash(m));
        return mix(h);
    }
    case JSON_ARRAY: {
        uint64_t h = 2;
        for (size_t i = 0; i < json_array_size(v); i++)
            h = mix(h + value_hash(json_array_get(v, i)));
        return h;
    }
    case JSON_STRING:
        return mix(3 + bytes_hash(json_string_value(v), json_string_length(v)));
    case JSON_INTEGER:
        return mix(4 + (uint64_t)json_integer_value(v));
    case JSON_REAL: {
        double d = json_real_value(v) + 0.0; /* -0.0 becomes 0.0 */
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        return mix(5 + bits);
    }
    case JSON_TRUE: return 6;
    case JSON_FALSE: return 7;
    case JSON_NULL: return 8;
    }
    return 0;
}

/* The elements taken so far, by hash, so each further element costs one
 * lookup instead of a comparison with every one taken (caps go to
 * 100000). */
typedef struct {
    size_t *slot; /* index into out + 1; 0: empty */
    uint64_t *hash;
    size_t mask;
    json_t *out;
} taken_set;

/* Take el unless an equal element was taken (or always, when dup_ok). */
static void take(taken_set *t, const json_t *el, bool dup_ok)
{
    uint64_t h = value_hash(el);
    size_t j = h & t->mask;
    for (; t->slot[j]; j = (j + 1) & t->mask)
        if (!dup_ok && t->hash[j] == h &&
            json_equal(json_array_get(t->out, t->slot[j] - 1), (json_t *)el))
            return;
    json_array_append_new(t->out, json_deep_copy(el));
    t->slot[j] = json_array_size(t->out);
    t->hash[j] = h;
}

/* union N, or NULL when a value is not an array (lww then). */
static json_t *merge_union(const cand *c, size_t m, size_t cap)
{
    size_t total = 0;
    for (size_t i = 0; i < m; i++) {
        if (!json_is_array(c[i].v))
            return NULL;
        total += json_array_size(c[i].v);
    }
    size_t want = total < cap ? total : cap, n = 16;
    while (n < want * 2)
        n *= 2;
    taken_set t = {cv_calloc(n, sizeof *t.slot), cv_calloc(n, sizeof *t.hash),
                   n - 1, json_array()};
    for (size_t i = 0; i < m; i++) {
        /* the winner's array as it is; then what it lacks from the rest */
        const json_t *a = c[i].v;
        for (size_t k = 0; k < json_array_size(a); k++) {
            if (json_array_size(t.out) == want)
                goto done;
            take(&t, json_array_get(a, k), i == 0);
        }
    }
done:
    free(t.slot);
    free(t.hash);
    return t.out;
}

/* Is a a better max than b? Integers compare exactly, anything else as
 * doubles; of equal values, an integer over a real. */
static bool greater_number(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b))
        return json_integer_value(a) > json_integer_value(b);
    double x = json_number_value(a), y = json_number_value(b);
    if (x != y)
        return x > y;
    return json_is_integer(a) && json_is_real(b);
}

/* max, or NULL when a value is not a number (lww then). c is in lww
 * order, and only a strictly better value replaces the best, so ties go
 * to lww order. */
static const json_t *merge_max(const cand *c, size_t m)
{
    size_t best = 0;
    for (size_t i = 0; i < m; i++)
        if (!json_is_number(c[i].v))
            return NULL;
    for (size_t i = 1; i < m; i++)
        if (greater_number(c[i].v, c[best].v))
            best = i;
    return c[best].v;
}

static bool all_equal(const cand *c, size_t m)
{
    for (size_t i = 1; i < m; i++)
        if (!json_equal((json_t *)c[0].v, (json_t *)c[i].v))
            return false;
    return true;
}

/* The field's clock in a version (input_ok checked it). */
static json_int_t field_clock(const json_t *clock, const char *field)
{
    const json_t *h = clock ? json_object_get(clock, field) : NULL;
    return h ? json_integer_value(h) : 0;
}

static bool input_ok(const cv_merge_input *in)
{
    if (!json_is_object(in->fields) || !in->device)
        return false;
    if (!in->clock)
        return true;
    if (!json_is_object(in->clock))
        return false;
    const char *k;
    json_t *h;
    json_object_foreach((json_t *)in->clock, k, h)
        if (!json_is_integer(h) || json_integer_value(h) < 0)
            return false;
    return true;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int cv_merge_versions(const cv_merge_rules *r, const cv_merge_input *in,
                      size_t n, json_t **fields_out, json_t **clock_out,
                      json_t **unsettled)
{
    *fields_out = *clock_out = NULL;
    if (unsettled)
        *unsettled = NULL;
    if (!r || !in || n == 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!input_ok(&in[i]))
            return -1;

    /* every field of every version, sorted, so the outputs are built in
     * the same order whatever the order of the inputs */
    json_t *seen = json_object();
    for (size_t i = 0; i < n; i++) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)in[i].fields, k, v)
            json_object_set_new(seen, k, json_null());
    }
    size_t nnames = json_object_size(seen), ni = 0;
    const char **names = cv_calloc(nnames ? nnames : 1, sizeof *names);
    const char *k;
    json_t *v;
    json_object_foreach(seen, k, v)
        names[ni++] = k; /* valid while seen lives */
    qsort(names, nnames, sizeof *names, by_name);

    cand *c = cv_calloc(n, sizeof *c);
    json_t *fo = json_object(), *co = json_object(), *un = json_array();
    for (size_t f = 0; f < nnames; f++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            const json_t *fv = json_object_get(in[i].fields, names[f]);
            if (fv)
                c[m++] = (cand){fv, field_clock(in[i].clock, names[f]),
                                in[i].device, NULL};
        }
        lww_sort(c, m);
        int cap;
        json_t *val = NULL;
        const json_t *pick = c[0].v; /* lww, unless the rule says better */
        switch (cv_merge_rule_for(r, names[f], &cap)) {
        case CV_MERGE_LWW:
            break;
        case CV_MERGE_UNION:
            val = merge_union(c, m, (size_t)cap);
            break;
        case CV_MERGE_MAX: {
            const json_t *best = merge_max(c, m);
            if (best)
                pick = best;
            break;
        }
        case CV_MERGE_SIBLINGS:
            if (!all_equal(c, m))
                json_array_append_new(un, json_string(names[f]));
            break;
        }
        json_object_set_new(fo, names[f], val ? val : json_deep_copy(pick));
        /* sorted by clock first: the winner has the greatest */
        json_object_set_new(co, names[f], json_integer(c[0].clock));
        for (size_t i = 0; i < m; i++)
            free(c[i].text);
    }
    free(c);
    free(names);
    json_decref(seen);
    *fields_out = fo;
    *clock_out = co;
    if (json_array_size(un) == 0) {
        json_decref(un);
        return 0;
    }
    if (unsettled)
        *unsettled = un;
    else
        json_decref(un);
    return 1;
}
