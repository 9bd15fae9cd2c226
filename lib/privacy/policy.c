/* policy.c - parse the retention and field policy and apply the field
 * rules to events.
 *
 * Patterns are compiled once into segment arrays and indexed by their last
 * segment, so finding the rule for a field costs one hash lookup and, as a
 * rule, one or two segment matches, whatever the number of rules: the
 * policy runs on every field of every event. */
#include "privacy/policy.h"

#include "crypto/fieldcrypt.h"
#include "base/ini.h"
#include "base/jscan.h"
#include "base/fieldname.h"
#include "base/jwalk.h"
#include "base/time.h"
#include "base/util.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 2048   /* ingest bounds nesting lower; this guards us */
#define MAX_SEGS 256     /* segments in a pattern or a looked-up path */
#define PURPOSE_MAX 32
#define HOUR_MS 3600000
#define DAY_MS 86400000LL

typedef enum { SEG_LIT, SEG_ONE, SEG_ANY } seg_kind;

typedef struct {
    const char *s; /* not NUL-terminated in paths; literal text in rules */
    size_t len;
} pseg;

typedef struct {
    seg_kind kind;
    pseg text;     /* for SEG_LIT */
} seg;

typedef struct {
    int line;
    char *pattern; /* as written */
    char *folded;  /* folded (fieldname.h); segment texts point into it */
    seg *segs;
    int nseg;
    cv_op op;
    char *arg;     /* the hash purpose */
} rule;

typedef struct {
    pseg key;      /* the last literal segment shared by these rules */
    uint32_t hash;
    int *idx;      /* rule indices, ascending */
    int n;
} bucket;

/* What no rule names, by the value's JSON type: "default" for strings
 * (and null), "default number", "default boolean"; the last two take
 * "default" when not set. */
enum { DF_STRING, DF_NUMBER, DF_BOOL, DF_COUNT };
static const char *const df_key[DF_COUNT] = {"default", "default number",
                                             "default boolean"};
typedef struct {
    cv_op op;
    char *arg;
    int line; /* 0: not set */
} dflt;

/* The rules of one section: [fields], [scrub fields] or [scrub fields K]. */
typedef struct {
    rule *rules;
    int nrules;
    dflt dflt[DF_COUNT];
    bucket *buckets;   /* open addressing, nbuckets a power of two */
    size_t nbuckets;
    int *wild;         /* rules whose last segment is a wildcard */
    int nwild;
} ruleset;

typedef struct {
    char *name;
    int64_t keep_ms, scrub_ms;
    int64_t cap_ms;            /* how long a user may choose: "up to" */
    int keep_line, scrub_line; /* 0: not set */
    ruleset *scrub;            /* [scrub fields KIND], or NULL */
} kind_entry;

struct cv_policy {
    ruleset fields;    /* applied by encrypt to every event */
    ruleset scrub;     /* applied by scrub to aged rows of every kind */
    ruleset public;    /* [public]: what a public user's reads show sealed
                          values of without the keyring's decryption */
    kind_entry *kinds;
    int nkinds;
    int64_t other_keep, other_scrub, ephemeral_ms, other_cap;
    int other_keep_line, other_scrub_line, ephemeral_line;
    cv_merge_rules *merge; /* [merge]: how sync merges concurrent contexts */
    const char *source;    /* while parsing: the text's name, for messages */
};


const char *cv_policy_op_name(cv_op op)
{
    switch (op) {
    case CV_OP_KEEP: return "keep";
    case CV_OP_ENCRYPT: return "encrypt";
    case CV_OP_HASH: return "hash";
    case CV_OP_GENERALISE: return "generalise";
    case CV_OP_ROUND: return "round";
    case CV_OP_DROP: return "drop";
    case CV_OP_MASK: return "mask";
    case CV_OP_ANONYMISE: return "anonymise";
    }
    return "?";
}

/* Is the member (as written) the top-level member m? Names match as
 * fieldname.h folds them; ingest has already renamed the aliases. */
static bool is_member(const char *s, size_t n, cv_member m)
{
    const char *c = cv_fieldname_member(m);
    return cv_fieldname_eq(s, n, c, strlen(c));
}

/* The top-level members store reads, never transformed (user_id is
 * apart: a rule may pseudonymise it). */
static bool is_reserved(const char *s, size_t n)
{
    int m = cv_fieldname_of(s, n);
    return m >= 0 && m != CV_MEMBER_USER && is_member(s, n, (cv_member)m);
}

/* ---- parsing ---------------------------------------------------------- */

#define BAD(...) (snprintf(err, errlen, __VA_ARGS__), -1)

static bool valid_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return false;
    return true;
}

/* "OPERATOR [ARG]" */
static int parse_op(const char *v, cv_op *op, char **arg, char *err,
                    size_t errlen)
{
    static const struct {
        const char *name;
        cv_op op;
    } ops[] = {{"keep", CV_OP_KEEP},       {"encrypt", CV_OP_ENCRYPT},
               {"hash", CV_OP_HASH},       {"generalise", CV_OP_GENERALISE},
               {"generalize", CV_OP_GENERALISE}, {"round", CV_OP_ROUND},
               {"drop", CV_OP_DROP},       {"mask", CV_OP_MASK},
               {"anonymise", CV_OP_ANONYMISE},
               {"anonymize", CV_OP_ANONYMISE}};
    size_t wl = strcspn(v, " \t");
    const char *rest = v + wl;
    rest += strspn(rest, " \t");
    *arg = NULL;
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        if (strlen(ops[i].name) != wl || strncmp(ops[i].name, v, wl) != 0)
            continue;
        *op = ops[i].op;
        if (*op == CV_OP_HASH) {
            if (!*rest)
                return BAD("'hash' needs a purpose, such as 'hash email': "
                           "values hashed for different purposes must not "
                           "be linkable");
            if (!valid_name(rest, PURPOSE_MAX))
                return BAD("hash purpose '%s' must be 1 to %d characters "
                           "of a-z, 0-9, '_' and '-'", rest, PURPOSE_MAX);
            *arg = cv_strdup(rest);
        } else if (*op == CV_OP_GENERALISE && *rest) {
            if (strcmp(rest, "city") != 0 && strcmp(rest, "country") != 0)
                return BAD("generalise level '%s' is not 'city' or "
                           "'country' (or nothing: city, region, country "
                           "and coordinates to 1 decimal place)", rest);
            *arg = cv_strdup(rest);
        } else if (*rest) {
            return BAD("operator '%s' takes no argument (got '%s')",
                       ops[i].name, rest);
        }
        return 0;
    }
    return BAD("unknown operator '%.*s' (expected encrypt, hash PURPOSE, "
               "generalise [city|country], round, drop, mask, anonymise or "
               "keep)", (int)wl, v);
}

static int compile_pattern(const char *pat, rule *r, char *err, size_t errlen)
{
    r->pattern = cv_strdup(pat);
    r->folded = cv_malloc(strlen(pat) + 1);
    r->folded[cv_fieldname_fold(pat, strlen(pat), r->folded)] = '\0';
    r->segs = NULL;
    r->nseg = 0;
    const char *s = r->folded;
    if (strstr(pat, "..") || pat[0] == '.' || (*pat && pat[strlen(pat) - 1] == '.'))
        return BAD("pattern '%s' has an empty segment", pat);
    for (;;) {
        size_t n = strcspn(s, ".");
        if (n == 0)
            return BAD("pattern '%s' has a segment of only '_' or '-'", pat);
        if (r->nseg == MAX_SEGS)
            return BAD("pattern '%s' has more than %d segments", pat,
                       MAX_SEGS);
        seg g = {SEG_LIT, {s, n}};
        if (n == 1 && s[0] == '*')
            g.kind = SEG_ONE;
        else if (n == 2 && s[0] == '*' && s[1] == '*')
            g.kind = SEG_ANY;
        else if (memchr(s, '*', n))
            return BAD("pattern '%s': '*' and '**' must be whole segments",
                       pat);
        r->segs = cv_realloc(r->segs, (size_t)(r->nseg + 1) * sizeof *r->segs);
        r->segs[r->nseg++] = g;
        if (!s[n])
            break;
        s += n + 1;
    }
    return 0;
}

static void free_rule(rule *r)
{
    free(r->pattern);
    free(r->folded);
    free(r->segs);
    free(r->arg);
}

static bool is_lit(const rule *r, const char *name)
{
    return r->nseg == 1 && r->segs[0].kind == SEG_LIT &&
           cv_fieldname_is(name, strlen(name), r->segs[0].text.s,
                           r->segs[0].text.len);
}

/* A rule for the ruleset p; scrub rules may also round the top-level ts
 * (store moves the row's ts with it) but never touch user_id. */
static int add_rule(ruleset *p, bool scrub, const char *pat, const char *v,
                    const char *source, int line, char *err, size_t errlen)
{
    rule r = {.line = line};
    if (compile_pattern(pat, &r, err, errlen) < 0 ||
        parse_op(v, &r.op, &r.arg, err, errlen) < 0)
        goto bad;
    if (scrub && is_lit(&r, "ts")) {
        if (r.op != CV_OP_ROUND && r.op != CV_OP_KEEP) {
            snprintf(err, errlen, "'ts' may only be rounded (or kept) by a "
                     "scrub rule: store orders and expires rows by it");
            goto bad;
        }
    } else if (scrub && is_lit(&r, "user_id")) {
        snprintf(err, errlen, "'user_id' cannot be scrubbed: it is store's "
                 "index of the user (pseudonymise it in [fields] with "
                 "'user_id = hash user')");
        goto bad;
    } else if (r.nseg == 1 && r.segs[0].kind == SEG_LIT &&
               is_reserved(r.segs[0].text.s, r.segs[0].text.len)) {
        snprintf(err, errlen, "'%s' is a top-level member that store reads; "
                 "it is never transformed, so a rule for it is an error", pat);
        goto bad;
    } else if (r.nseg == 1 && r.segs[0].kind == SEG_LIT &&
               cv_fieldname_of(r.segs[0].text.s, r.segs[0].text.len) >= 0 &&
               !is_lit(&r, "user_id")) {
        int m = cv_fieldname_of(r.segs[0].text.s, r.segs[0].text.len);
        snprintf(err, errlen, "'%s' is another name of the top-level '%s', "
                 "which ingest renames and store reads, so a rule for it "
                 "never applies", pat, cv_fieldname_member((cv_member)m));
        goto bad;
    }
    for (int i = 0; i < p->nrules; i++) {
        if (strcmp(p->rules[i].pattern, pat) == 0) {
            snprintf(err, errlen,
                     "pattern '%s' already has a rule on line %d, which wins",
                     pat, p->rules[i].line);
            goto bad;
        }
        if (strcmp(p->rules[i].folded, r.folded) == 0)
            /* not an error: both rules are meant, the second is dead */
            cv_warn("%s:%d: pattern '%s' names the same fields as '%s' on "
                    "line %d (names match ignoring case, '_' and '-'), whose "
                    "rule wins", source, line, pat, p->rules[i].pattern,
                    p->rules[i].line);
    }
    p->rules = cv_realloc(p->rules, (size_t)(p->nrules + 1) * sizeof r);
    p->rules[p->nrules++] = r;
    return 0;
bad:
    free_rule(&r);
    return -1;
}

static int set_default(dflt *d, const char *what, const char *v, int line,
                       char *err, size_t errlen);

static kind_entry *kind_get(cv_policy *p, const char *name)
{
    for (int i = 0; i < p->nkinds; i++)
        if (strcmp(p->kinds[i].name, name) == 0)
            return &p->kinds[i];
    p->kinds = cv_realloc(p->kinds, (size_t)(p->nkinds + 1) * sizeof *p->kinds);
    kind_entry *k = &p->kinds[p->nkinds++];
    memset(k, 0, sizeof *k);
    k->name = cv_strdup(name);
    return k;
}

static int set_once(int *line_slot, int line, const char *what, char *err,
                    size_t errlen)
{
    if (*line_slot)
        return BAD("'%s' is already set on line %d", what, *line_slot);
    *line_slot = line;
    return 0;
}

static int handle(void *arg, const char *sec, const char *key, const char *v,
                  int line, char *err, size_t errlen)
{
    cv_policy *p = arg;
    int64_t ms;
    if (!strcmp(sec, "retention") || !strcmp(sec, "scrub")) {
        bool keep = sec[0] == 'r';
        if (!valid_name(key, 64))
            return BAD("kind '%s' must be a-z, 0-9, '_' or '-'", key);
        /* "DEFAULT up to CAP": a user's own retention may reach CAP */
        char vbuf[128];
        int64_t cap = 0; /* 0: the default is the cap */
        const char *upto = keep ? strstr(v, " up to ") : NULL;
        if (upto) {
            const char *c = upto + 7;
            c += strspn(c, " ");
            if (!strcmp(c, "forever")) {
                cap = CV_FOREVER;
            } else if ((cap = cv_parse_duration(c)) <= 0) {
                return BAD("cap '%s' for '%s' is not a duration (such as 365d) "
                           "or 'forever'", c, key);
            }
            size_t n = (size_t)(upto - v);
            if (n >= sizeof vbuf)
                return BAD("retention '%s' for '%s' is too long", v, key);
            memcpy(vbuf, v, n);
            vbuf[n] = '\0';
            v = vbuf;
        }
        if (!strcmp(v, "forever") || (!keep && !strcmp(v, "never"))) {
            ms = CV_FOREVER;
        } else if (keep && !strcmp(v, "user")) {
            ms = CV_USER_DEFINED;
        } else {
            ms = cv_parse_duration(v);
            if (ms < 0 || (keep && ms == 0))
                return keep ? BAD("retention '%s' for '%s' is not a duration "
                                  "(such as 30d), 'forever' or 'user'", v, key)
                            : BAD("scrub age '%s' for '%s' is not a duration "
                                  "(such as 90d) or 'never'", v, key);
        }
        if (upto && (ms == CV_USER_DEFINED || ms == CV_FOREVER))
            return BAD("'%s' for '%s' takes no cap: a user's choice is "
                       "%s", v, key, ms == CV_FOREVER ? "never longer than forever"
                                                      : "already the retention");
        if (upto && cap != CV_FOREVER && cap < ms)
            return BAD("cap for '%s' is shorter than its retention %s", key, v);
        int *slot;
        int64_t *dst, *capdst = NULL;
        if (!strcmp(key, "other")) {
            slot = keep ? &p->other_keep_line : &p->other_scrub_line;
            dst = keep ? &p->other_keep : &p->other_scrub;
            capdst = keep ? &p->other_cap : NULL;
        } else {
            kind_entry *k = kind_get(p, key);
            slot = keep ? &k->keep_line : &k->scrub_line;
            dst = keep ? &k->keep_ms : &k->scrub_ms;
            capdst = keep ? &k->cap_ms : NULL;
        }
        if (set_once(slot, line, key, err, errlen) < 0)
            return -1;
        *dst = ms;
        if (capdst)
            *capdst = upto ? cap : ms;
        return 0;
    }
    if (!strcmp(sec, "privacy")) {
        if (!strcmp(key, "ephemeral")) {
            ms = cv_parse_duration(v);
            if (ms <= 0)
                return BAD("ephemeral '%s' is not a duration such as 1h", v);
            if (set_once(&p->ephemeral_line, line, key, err, errlen) < 0)
                return -1;
            p->ephemeral_ms = ms;
            return 0;
        }
        return BAD("unknown setting '%s' in [privacy] (expected ephemeral)",
                   key);
    }
    if (!strcmp(sec, "merge"))
        return cv_merge_rules_add(p->merge, key, v, err, errlen);
    if (!strcmp(sec, "public")) {
        if (strcmp(v, "share") != 0)
            return BAD("'%s = %s' in [public]: the only setting is 'share'",
                       key, v);
        return add_rule(&p->public, false, key, "keep", p->source, line, err,
                        errlen);
    }
    ruleset *rs = NULL;
    bool scrub = false;
    if (!strcmp(sec, "fields")) {
        rs = &p->fields;
    } else if (!strncmp(sec, "scrub fields", 12) &&
               (sec[12] == '\0' || sec[12] == ' ')) {
        scrub = true;
        const char *kind = sec + 12 + strspn(sec + 12, " ");
        if (!*kind) {
            rs = &p->scrub;
        } else {
            if (!valid_name(kind, 64))
                return BAD("kind '%s' in [scrub fields KIND] must be a-z, "
                           "0-9, '_' or '-'", kind);
            kind_entry *k = kind_get(p, kind);
            if (!k->scrub)
                k->scrub = cv_calloc(1, sizeof *k->scrub);
            rs = k->scrub;
        }
    }
    if (rs) {
        for (int d = 0; d < DF_COUNT; d++)
            if (!strcmp(key, df_key[d]))
                return set_default(&rs->dflt[d], df_key[d], v, line, err, errlen);
        if (!strncmp(key, "default ", 8))
            return BAD("unknown '%s' (expected default, default number or "
                       "default boolean)", key);
        return add_rule(rs, scrub, key, v, p->source, line, err, errlen);
    }
    if (!*sec)
        return BAD("setting '%s' outside any [section]", key);
    return BAD("unknown section [%s] (expected retention, scrub, privacy, "
               "merge, public, fields, scrub fields or scrub fields KIND)", sec);
}

static int set_default(dflt *d, const char *what, const char *v, int line,
                       char *err, size_t errlen)
{
    cv_op op;
    char *a;
    if (parse_op(v, &op, &a, err, errlen) < 0)
        return -1;
    if (set_once(&d->line, line, what, err, errlen) < 0) {
        free(a);
        return -1;
    }
    d->op = op;
    free(d->arg);
    d->arg = a;
    return 0;
}

typedef struct {
    int *problems;
} report_ctx;

static void report(void *arg, const char *msg)
{
    report_ctx *rc = arg;
    (*rc->problems)++;
    cv_err("%s", msg);
}

static void index_rules(ruleset *p)
{
    /* numbers and booleans take "default" unless they have their own */
    for (int d = DF_NUMBER; d < DF_COUNT; d++)
        if (!p->dflt[d].line) {
            p->dflt[d].op = p->dflt[DF_STRING].op;
            free(p->dflt[d].arg);
            p->dflt[d].arg = p->dflt[DF_STRING].arg
                                 ? cv_strdup(p->dflt[DF_STRING].arg) : NULL;
        }
    size_t n = 16;
    while (n < (size_t)p->nrules * 2 + 1)
        n *= 2;
    p->nbuckets = n;
    p->buckets = cv_calloc(n, sizeof *p->buckets);
    for (int i = 0; i < p->nrules; i++) {
        const rule *r = &p->rules[i];
        const seg *last = &r->segs[r->nseg - 1];
        if (last->kind != SEG_LIT) {
            p->wild = cv_realloc(p->wild, (size_t)(p->nwild + 1) * sizeof(int));
            p->wild[p->nwild++] = i;
            continue;
        }
        uint32_t h = cv_fieldname_hash(last->text.s, last->text.len);
        size_t j = h & (n - 1);
        while (p->buckets[j].key.s &&
               !(p->buckets[j].hash == h &&
                 p->buckets[j].key.len == last->text.len &&
                 !memcmp(p->buckets[j].key.s, last->text.s, last->text.len)))
            j = (j + 1) & (n - 1);
        bucket *b = &p->buckets[j];
        b->key = last->text;
        b->hash = h;
        b->idx = cv_realloc(b->idx, (size_t)(b->n + 1) * sizeof(int));
        b->idx[b->n++] = i;
    }
}

/* Segment-wise glob: "**" is any run of segments, "*" exactly one. The
 * classic single-backtrack wildcard match, linear in practice. */
static void free_ruleset(ruleset *p)
{
    for (int i = 0; i < p->nrules; i++)
        free_rule(&p->rules[i]);
    free(p->rules);
    for (size_t i = 0; i < p->nbuckets; i++)
        free(p->buckets[i].idx);
    free(p->buckets);
    free(p->wild);
    for (int d = 0; d < DF_COUNT; d++)
        free(p->dflt[d].arg);
}

static bool rule_matches(const rule *r, const pseg *path, int n)
{
    int pi = 0, si = 0, star = -1, mark = 0;
    while (si < n) {
        if (pi < r->nseg && r->segs[pi].kind == SEG_ANY) {
            star = pi++;
            mark = si;
        } else if (pi < r->nseg &&
                   (r->segs[pi].kind == SEG_ONE ||
                    cv_fieldname_is(path[si].s, path[si].len,
                                    r->segs[pi].text.s, r->segs[pi].text.len))) {
            pi++;
            si++;
        } else if (star >= 0) {
            pi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (pi < r->nseg && r->segs[pi].kind == SEG_ANY)
        pi++;
    return pi == r->nseg;
}

/* The first rule matching path, or NULL (the default applies). */
static const rule *lookup(const ruleset *p, const pseg *path, int n)
{
    const bucket *b = NULL;
    if (n == 0 || !p)
        return NULL;
    pseg last = path[n - 1];
    uint32_t h = cv_fieldname_hash(last.s, last.len);
    for (size_t j = h & (p->nbuckets - 1); p->buckets[j].key.s;
         j = (j + 1) & (p->nbuckets - 1)) {
        if (p->buckets[j].hash == h &&
            cv_fieldname_is(last.s, last.len, p->buckets[j].key.s,
                            p->buckets[j].key.len)) {
            b = &p->buckets[j];
            break;
        }
    }
    /* merge the two ascending candidate lists so rule order is kept */
    int bi = 0, wi = 0, bn = b ? b->n : 0;
    while (bi < bn || wi < p->nwild) {
        int i;
        if (wi >= p->nwild || (bi < bn && b->idx[bi] < p->wild[wi]))
            i = b->idx[bi++];
        else
            i = p->wild[wi++];
        if (rule_matches(&p->rules[i], path, n))
            return &p->rules[i];
    }
    return NULL;
}

static int split_path(const char *path, pseg *out, int max)
{
    int n = 0;
    const char *s = path;
    for (;;) {
        if (n == max)
            return -1;
        size_t len = strcspn(s, ".");
        out[n++] = (pseg){s, len};
        if (!s[len])
            return n;
        s += len + 1;
    }
}

bool cv_policy_shared(const cv_policy *p, const char *path)
{
    pseg segs[MAX_SEGS];
    int n = split_path(path, segs, MAX_SEGS);
    return n > 0 && lookup(&p->public, segs, n) != NULL;
}

cv_op cv_policy_op_for(const cv_policy *p, const char *path, const char **arg)
{
    pseg segs[MAX_SEGS];
    int n = split_path(path, segs, MAX_SEGS);
    const rule *r = n > 0 ? lookup(&p->fields, segs, n) : NULL;
    if (arg)
        *arg = r ? r->arg : p->fields.dflt[DF_STRING].arg;
    return r ? r->op : p->fields.dflt[DF_STRING].op;
}

/* user_id is store's index: it may be kept or pseudonymised, nothing else,
 * whichever rule (or the default) ends up matching it. */
static void check_user_id(cv_policy *p, const char *source, report_ctx *rc)
{
    pseg uid = {"user_id", 7};
    const rule *r = lookup(&p->fields, &uid, 1);
    cv_op op = r ? r->op : p->fields.dflt[DF_STRING].op;
    if (op == CV_OP_KEEP || op == CV_OP_HASH)
        return;
    char msg[512];
    if (r)
        snprintf(msg, sizeof msg,
                 "%s:%d: rule '%s = %s' matches user_id, which may only be "
                 "kept or hashed (add 'user_id = hash user' before it)",
                 source, r->line, r->pattern, cv_policy_op_name(op));
    else
        snprintf(msg, sizeof msg,
                 "%s:%d: default '%s' would apply to user_id, which may only "
                 "be kept or hashed (add 'user_id = hash user')",
                 source, p->fields.dflt[DF_STRING].line, cv_policy_op_name(op));
    report(rc, msg);
}

cv_policy *cv_policy_parse(const char *source, const char *text, int *problems)
{
    int dummy = 0;
    if (!problems)
        problems = &dummy;
    *problems = 0;
    if (!text) {
        cv_err("%s: no policy text", source);
        (*problems)++;
        return NULL;
    }
    cv_policy *p = cv_calloc(1, sizeof *p);
    /* what a policy that leaves these out gets: doc/DESIGN.md §4 */
    p->other_keep = 30 * DAY_MS;
    p->other_cap = 30 * DAY_MS;
    p->other_scrub = 90 * DAY_MS;
    p->ephemeral_ms = HOUR_MS;
    p->merge = cv_merge_rules_new(); /* every field lww */
    report_ctx rc = {problems};
    p->source = source;
    cv_ini_parse(source, text, handle, p, report, &rc);
    p->source = NULL;
    index_rules(&p->fields);
    index_rules(&p->scrub);
    index_rules(&p->public);
    for (int i = 0; i < p->nkinds; i++)
        if (p->kinds[i].scrub)
            index_rules(p->kinds[i].scrub);
    check_user_id(p, source, &rc);
    return p;
}

cv_policy *cv_policy_load(const char *path, bool missing_ok, int *problems)
{
    int dummy = 0;
    if (!problems)
        problems = &dummy;
    *problems = 0;
    if (!path)
        return cv_policy_parse("built-in policy", cv_default_policy_text,
                               problems);
    size_t len;
    char *text = cv_read_file(path, 1 << 20, &len);
    if (!text) {
        if (errno == ENOENT && missing_ok)
            return cv_policy_parse("built-in policy", cv_default_policy_text,
                                   problems);
        cv_err("cannot read policy %s: %s", path,
               errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
        (*problems)++;
        return NULL;
    }
    if (strlen(text) != len) {
        cv_err("%s: contains a NUL byte", path);
        (*problems)++;
        free(text);
        return NULL;
    }
    cv_policy *p = cv_policy_parse(path, text, problems);
    free(text);
    return p;
}

void cv_policy_destroy(cv_policy **pp)
{
    cv_policy *p = *pp;
    if (!p)
        return;
    free_ruleset(&p->fields);
    free_ruleset(&p->scrub);
    free_ruleset(&p->public);
    for (int i = 0; i < p->nkinds; i++) {
        free(p->kinds[i].name);
        if (p->kinds[i].scrub) {
            free_ruleset(p->kinds[i].scrub);
            free(p->kinds[i].scrub);
        }
    }
    free(p->kinds);
    cv_merge_rules_destroy(&p->merge);
    free(p);
    *pp = NULL;
}

/* ---- retention -------------------------------------------------------- */

static const kind_entry *kind_find(const cv_policy *p, const char *kind)
{
    for (int i = 0; kind && i < p->nkinds; i++)
        if (strcmp(p->kinds[i].name, kind) == 0)
            return &p->kinds[i];
    return NULL;
}

int64_t cv_policy_keep_ms(const cv_policy *p, const char *kind)
{
    const kind_entry *k = kind_find(p, kind);
    return k && k->keep_line ? k->keep_ms : p->other_keep;
}

int64_t cv_policy_cap_ms(const cv_policy *p, const char *kind)
{
    const kind_entry *k = kind_find(p, kind);
    return k && k->keep_line ? k->cap_ms : p->other_cap;
}

int64_t cv_policy_scrub_ms(const cv_policy *p, const char *kind)
{
    const kind_entry *k = kind_find(p, kind);
    return k && k->scrub_line ? k->scrub_ms : p->other_scrub;
}

int64_t cv_policy_ephemeral_ms(const cv_policy *p) { return p->ephemeral_ms; }

const cv_merge_rules *cv_policy_merge_rules(const cv_policy *p)
{
    return p->merge;
}

/* ---- applying --------------------------------------------------------- */

enum { R_ERR = -1, R_SAME = 0, R_REPLACE, R_DROP };

typedef struct {
    const ruleset *rs;  /* the rules, tried first */
    const ruleset *rs2; /* then these (scrub: the rules for every kind) */
    const dflt *dflt;   /* for what no rule matches, by JSON type */
    bool scrub;         /* scrubbing a stored row: see cv_policy_scrub */
    cv_policy_scrub_note *note;
    void *note_ctx;
    int changed;        /* fields changed (scrub) */
    bool ts_moved;      /* the top-level ts was rewritten (scrub, text) */
    int64_t new_ts;     /* to this */
    const cv_keyring *kr;
    const cv_datakey *dk; /* the user's or hour's data key, or NULL */
    const char *event_id;
    uint32_t primary;
    int n;      /* path length */
    int nest;   /* recursion depth, objects and arrays */
    char *err;
    size_t errlen;
    pseg *path; /* MAX_DEPTH entries (the tree walk) or fewer (the text walk) */
} walk;

/* The dotted path of the current field, for the AD and messages. */
static char *path_text(const walk *w, char *buf, size_t cap)
{
    size_t total = 0;
    for (int i = 0; i < w->n; i++)
        total += w->path[i].len + 1;
    char *s = total <= cap ? buf : cv_malloc(total);
    size_t o = 0;
    for (int i = 0; i < w->n; i++) {
        if (i)
            s[o++] = '.';
        memcpy(s + o, w->path[i].s, w->path[i].len);
        o += w->path[i].len;
    }
    s[o] = '\0';
    return s;
}

static int fail(walk *w, const char *what)
{
    char buf[256];
    char *path = path_text(w, buf, sizeof buf);
    snprintf(w->err, w->errlen, "%s at '%s'", what, path);
    if (path != buf)
        free(path);
    return R_ERR;
}

static double round1(double x)
{
    double t = x * 10.0;
    if (t > 9e15 || t < -9e15) /* no fraction left to round */
        return x;
    int64_t r = (int64_t)(t + (t >= 0 ? 0.5 : -0.5));
    return (double)r / 10.0;
}

static json_t *round_number(json_t *v)
{
    if (json_is_integer(v))
        return json_incref(v);
    return json_real(round1(json_real_value(v)));
}

static int op_encrypt(walk *w, json_t *v, json_t **out)
{
    if (json_is_string(v) && cv_fieldcrypt_is_envelope(json_string_value(v)))
        return R_SAME; /* sealed by an earlier run */
    /* most values fit the stack: no allocation, and wiped after */
    char stack[1024], *plain = stack;
    size_t len = json_dumpb(v, stack, sizeof stack,
                            CV_JSON_DUMP | JSON_ENCODE_ANY);
    if (len == 0 || len > sizeof stack) {
        plain = json_dumps(v, CV_JSON_DUMP | JSON_ENCODE_ANY);
        if (!plain)
            return fail(w, "cannot serialise value");
        len = strlen(plain);
    }
    char buf[512], e[256];
    char *path = path_text(w, buf, sizeof buf);
    char *env = w->dk ? cv_fieldcrypt_seal_dk(w->dk, plain, len, w->event_id, path, e,
                                   sizeof e)
                      : cv_fieldcrypt_seal(w->kr, plain, len, w->event_id, path, e,
                                sizeof e);
    /* json_dumpb may have filled the stack buffer before falling back */
    sodium_memzero(stack, len < sizeof stack ? len : sizeof stack);
    if (plain != stack) {
        sodium_memzero(plain, len);
        free(plain);
    }
    if (path != buf)
        free(path);
    if (!env)
        return fail(w, e);
    *out = json_string_nocheck(env);
    free(env);
    return R_REPLACE;
}

/* A field's pseudonym: under the data key when there is one, so a
 * user's pseudonyms die with the key, except the top-level user_id: that
 * is store's index, by which an erasure finds the rows, so it stays under
 * the keyring. */
static int pseudonym_of(const walk *w, const char *purpose, const void *data,
                        size_t len, char out[CV_PSEUDONYM_MAX])
{
    bool index = w->n == 1 &&
                 is_member(w->path[0].s, w->path[0].len, CV_MEMBER_USER);
    if (w->dk && !index)
        return cv_fieldcrypt_pseudonym_dk(w->dk, purpose, data, len, out);
    return cv_fieldcrypt_pseudonym(w->kr, w->primary, purpose, data, len, out);
}

static int op_hash(walk *w, json_t *v, const char *purpose, json_t **out)
{
    char ps[CV_PSEUDONYM_MAX];
    int rc;
    if (json_is_string(v)) {
        if (cv_fieldcrypt_is_pseudonym(json_string_value(v)))
            return R_SAME;
        rc = pseudonym_of(w, purpose, json_string_value(v),
                          json_string_length(v), ps);
    } else {
        char *t = json_dumps(v, CV_JSON_DUMP | JSON_ENCODE_ANY);
        if (!t)
            return fail(w, "cannot serialise value");
        rc = pseudonym_of(w, purpose, t, strlen(t), ps);
        sodium_memzero(t, strlen(t));
        free(t);
    }
    if (rc < 0)
        return fail(w, "cannot hash: primary key version missing");
    *out = json_string_nocheck(ps);
    return R_REPLACE;
}

/* level NULL: city, region, country and coordinates to 1 decimal place;
 * "city": city and country; "country": country. Coordinates go at the two
 * coarser levels. */
static int op_generalise(json_t *v, const char *level, json_t **out)
{
    static const char *const names[] = {"city", "region", "country"};
    static const char *const coords[] = {"lat", "lon", "latitude",
                                         "longitude"};
    bool city = level && level[1] == 'i', country = level && level[1] == 'o';
    if (json_is_object(v)) {
        json_t *o = json_object();
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            json_t *x = json_object_get(v, names[i]);
            if (json_is_string(x) && (!level || i == 2 || (city && i == 0)))
                json_object_set(o, names[i], x);
        }
        for (size_t i = 0; !level && i < sizeof coords / sizeof *coords; i++) {
            json_t *x = json_object_get(v, coords[i]);
            if (json_is_number(x))
                json_object_set_new(o, coords[i], round_number(x));
        }
        *out = o;
        return R_REPLACE;
    }
    if (json_is_number(v)) {
        if (level)
            return R_DROP;
        *out = round_number(v);
        return R_REPLACE;
    }
    if (json_is_string(v)) {
        /* "street, city, country" -> "country" (or "city, country"): the
         * coarsest parts */
        const char *s = json_string_value(v);
        const char *c = memrchr(s, ',', json_string_length(v));
        if (c && city && !country && c > s) {
            const char *c2 = memrchr(s, ',', (size_t)(c - s));
            if (!c2)
                return R_SAME;
            c = c2;
        }
        const char *b = c ? c + 1 : s;
        const char *e = s + json_string_length(v);
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (b == e)
            return R_DROP;
        if (!c && b == s && e == s + json_string_length(v))
            return R_SAME;
        *out = json_stringn_nocheck(b, (size_t)(e - b));
        return R_REPLACE;
    }
    return R_DROP;
}

static int op_round(json_t *v, json_t **out)
{
    int64_t t;
    if (json_is_string(v)) {
        if (!cv_time_parse(json_string_value(v), json_string_length(v), &t))
            return R_DROP;
        char buf[40];
        cv_time_format_ms(t - t % HOUR_MS, buf);
        *out = json_string_nocheck(buf);
        return R_REPLACE;
    }
    if (json_is_integer(v)) {
        t = (int64_t)json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= 0 && d < 9e15))
            return R_DROP;
        t = (int64_t)d;
    } else {
        return R_DROP;
    }
    if (t < 0)
        return R_DROP;
    int64_t unit = t > 100000000000LL ? HOUR_MS : 3600; /* ms or s */
    *out = json_integer((json_int_t)(t - t % unit));
    return R_REPLACE;
}

static int op_mask(json_t *v, json_t **out)
{
    if (!json_is_string(v))
        return R_DROP;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v), chars = 0;
    for (size_t i = 0; i < len; i++)
        chars += ((uint8_t)s[i] & 0xC0) != 0x80;
    size_t hide = chars <= 4 ? chars : chars - 4;
    /* byte offset where the shown tail starts: after `hide` characters */
    size_t off = 0, seen = 0;
    while (off < len) {
        if (((uint8_t)s[off] & 0xC0) != 0x80) {
            if (seen == hide)
                break;
            seen++;
        }
        off++;
    }
    char stack[256];
    size_t n = hide + (len - off);
    char *m = n < sizeof stack ? stack : cv_malloc(n + 1);
    memset(m, '*', hide);
    memcpy(m + hide, s + off, len - off);
    *out = json_stringn_nocheck(m, n);
    if (m != stack)
        free(m);
    return R_REPLACE;
}

static int op_anonymise(json_t *v, json_t **out)
{
    if (json_is_string(v) && strcmp(json_string_value(v), CV_ANONYMISED) == 0)
        return R_SAME;
    *out = json_string_nocheck(CV_ANONYMISED);
    return R_REPLACE;
}

static int transform(walk *w, cv_op op, const char *arg, json_t *v,
                     json_t **out)
{
    switch (op) {
    case CV_OP_KEEP: return R_SAME;
    case CV_OP_DROP: return R_DROP;
    case CV_OP_ENCRYPT: return op_encrypt(w, v, out);
    case CV_OP_HASH: return op_hash(w, v, arg, out);
    case CV_OP_GENERALISE: return op_generalise(v, arg, out);
    case CV_OP_ANONYMISE: return op_anonymise(v, out);
    case CV_OP_ROUND: return op_round(v, out);
    case CV_OP_MASK: return op_mask(v, out);
    }
    return fail(w, "unknown operator");
}

static int walk_object(walk *w, json_t *obj);
static int walk_array(walk *w, json_t *arr, const rule *r);

/* Operators that take a matched array or object whole. */
static bool takes_whole(cv_op op)
{
    return op == CV_OP_ENCRYPT || op == CV_OP_DROP || op == CV_OP_ANONYMISE;
}

static const rule *wlookup(const walk *w)
{
    const rule *r = lookup(w->rs, w->path, w->n);
    return r ? r : lookup(w->rs2, w->path, w->n);
}

/* The walk is at the top-level ts (only a scrub visits it). */
static bool top_ts(const walk *w)
{
    return w->n == 1 && is_member(w->path[0].s, w->path[0].len, CV_MEMBER_TS);
}

/* The default for a leaf of JSON type t (a CV_JW_* token). */
static const dflt *default_for(const walk *w, int tok)
{
    switch (tok) {
    case CV_JW_NUMBER: return &w->dflt[DF_NUMBER];
    case CV_JW_TRUE:
    case CV_JW_FALSE: return &w->dflt[DF_BOOL];
    default: return &w->dflt[DF_STRING];
    }
}

static int json_token(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL: return CV_JW_NUMBER;
    case JSON_TRUE: return CV_JW_TRUE;
    case JSON_FALSE: return CV_JW_FALSE;
    case JSON_OBJECT: return CV_JW_OBJECT;
    case JSON_ARRAY: return CV_JW_ARRAY;
    case JSON_NULL: return CV_JW_NULL;
    default: return CV_JW_STRING;
    }
}

/* Scrubbing a stored value: a sealed value that a rule other than keep or
 * encrypt names is removed (its plaintext is not to be had, and keeping it
 * sealed keeps the data); a change that leaves the value as it was is no
 * change, so scrubbing twice changes nothing. */
static int scrub_transform(walk *w, cv_op op, const char *arg, json_t *v,
                           json_t **out)
{
    int rc;
    if (op != CV_OP_KEEP && op != CV_OP_ENCRYPT && json_is_string(v) &&
        cv_fieldcrypt_is_envelope(json_string_value(v)))
        rc = R_DROP;
    else
        rc = transform(w, op, arg, v, out);
    if (rc == R_DROP && top_ts(w))
        rc = R_SAME; /* not a timestamp: store reads it, so it stays */
    if (rc == R_REPLACE && json_equal(v, *out)) {
        json_decref(*out);
        *out = NULL;
        rc = R_SAME;
    }
    if (rc == R_REPLACE || rc == R_DROP) {
        w->changed++;
        if (w->note) {
            char buf[256];
            char *path = path_text(w, buf, sizeof buf);
            w->note(w->note_ctx, path, op);
            if (path != buf)
                free(path);
        }
    }
    return rc;
}

/* One value at the current path, r its rule (NULL: the default). keep
 * descends into objects and arrays; the default applies to the leaves of
 * what no rule matched; encrypt, drop and anonymise take a matched value
 * whole; hash, generalise, round and mask take each element of an array. */
static int visit(walk *w, json_t *v, const rule *r, json_t **out)
{
    const dflt *d = default_for(w, json_token(v));
    cv_op op = r ? r->op : d->op;
    const char *arg = r ? r->arg : d->arg;
    bool descend = op == CV_OP_KEEP || !r;
    if (json_is_object(v) && descend)
        return walk_object(w, v);
    if (json_is_array(v) && (descend || !takes_whole(op)))
        return walk_array(w, v, r);
    if (w->scrub)
        return scrub_transform(w, op, arg, v, out);
    return transform(w, op, arg, v, out);
}

static int walk_array(walk *w, json_t *arr, const rule *r)
{
    if (++w->nest > MAX_DEPTH)
        return fail(w, "nesting deeper than 2048 levels");
    for (size_t i = 0; i < json_array_size(arr);) {
        json_t *nv = NULL;
        int rc = visit(w, json_array_get(arr, i), r, &nv);
        if (rc == R_ERR)
            return R_ERR;
        if (rc == R_DROP) {
            json_array_remove(arr, i);
            continue;
        }
        if (rc == R_REPLACE)
            json_array_set_new(arr, i, nv);
        i++;
    }
    w->nest--;
    return R_SAME;
}

static int walk_object(walk *w, json_t *obj)
{
    if (++w->nest > MAX_DEPTH || w->n >= MAX_DEPTH)
        return fail(w, "nesting deeper than 2048 levels");
    bool top = w->n == 0;
    void *it = json_object_iter(obj);
    while (it) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        json_t *v = json_object_iter_value(it);
        void *next = json_object_iter_next(obj, it);
        /* store reads these; a scrub may round ts (store moves the row's
         * ts with it) but never touches user_id */
        bool ts = top && is_member(key, klen, CV_MEMBER_TS);
        if (top && ((is_reserved(key, klen) && !(w->scrub && ts)) ||
                    (w->scrub && is_member(key, klen, CV_MEMBER_USER)))) {
            it = next;
            continue;
        }
        w->path[w->n++] = (pseg){key, klen};
        json_t *nv = NULL;
        const rule *r = wlookup(w);
        /* ts only ever by a rule of its own */
        int rc = w->scrub && ts && !r ? R_SAME : visit(w, v, r, &nv);
        w->n--;
        if (rc == R_ERR)
            return R_ERR;
        if (rc == R_REPLACE)
            json_object_iter_set_new(obj, it, nv);
        else if (rc == R_DROP)
            json_object_del(obj, key); /* next stays valid */
        it = next;
    }
    w->nest--;
    return R_SAME;
}

/* Walk the event with the rules in w (rs, rs2, default, scrub, note):
 * the changed fields' count, or -1 with a reason in err. */
static int walk_event(walk *w, const cv_keyring *kr, json_t *event,
                      char *err, size_t errlen)
{
    json_t *id = json_object_get(event, "id");
    if (!json_is_object(event)) {
        snprintf(err, errlen, "event is not a JSON object");
        return -1;
    }
    if (!json_is_string(id) || json_string_length(id) == 0) {
        snprintf(err, errlen, "event has no non-empty string \"id\"");
        return -1;
    }
    /* the walk's path array is large: keep it off the stack */
    w->path = cv_malloc(MAX_DEPTH * sizeof *w->path);
    w->kr = kr;
    w->event_id = json_string_value(id);
    w->primary = cv_keyring_primary(kr);
    w->n = 0;
    w->nest = 0;
    w->changed = 0;
    w->err = err;
    w->errlen = errlen;
    int rc = walk_object(w, event);
    free(w->path);
    return rc == R_ERR ? -1 : w->changed;
}

int cv_policy_apply(const cv_policy *p, const cv_keyring *kr,
                    const cv_datakey *dk, json_t *event, char *err,
                    size_t errlen)
{
    walk w = {.rs = &p->fields, .dflt = p->fields.dflt, .dk = dk};
    return walk_event(&w, kr, event, err, errlen) < 0 ? -1 : 0;
}

/* The scrub walk's rules for kind: its own first, then every kind's. */
static walk scrub_setup(const cv_policy *p, const char *kind,
                        cv_policy_scrub_note *note, void *ctx)
{
    const kind_entry *k = kind_find(p, kind);
    const ruleset *own = k ? k->scrub : NULL;
    const ruleset *d = own && (own->dflt[DF_STRING].line || own->dflt[DF_NUMBER].line ||
                               own->dflt[DF_BOOL].line) ? own : &p->scrub;
    return (walk){.rs = own ? own : &p->scrub, .rs2 = own ? &p->scrub : NULL,
                  .dflt = d->dflt,
                  .scrub = true, .note = note, .note_ctx = ctx};
}

int cv_policy_scrub(const cv_policy *p, const cv_keyring *kr,
                    const char *kind, json_t *event, cv_policy_scrub_note *note,
                    void *ctx, char *err, size_t errlen)
{
    walk w = scrub_setup(p, kind, note, ctx);
    return walk_event(&w, kr, event, err, errlen);
}

static bool scrubs(const ruleset *rs)
{
    if (!rs)
        return false;
    for (int d = 0; d < DF_COUNT; d++)
        if (rs->dflt[d].op != CV_OP_KEEP)
            return true;
    return rs->nrules > 0;
}

bool cv_policy_scrubs(const cv_policy *p)
{
    if (scrubs(&p->scrub))
        return true;
    for (int i = 0; i < p->nkinds; i++)
        if (scrubs(p->kinds[i].scrub))
            return true;
    return false;
}

bool cv_policy_seals(const cv_policy *p)
{
    for (int d = 0; d < DF_COUNT; d++)
        if (p->fields.dflt[d].op == CV_OP_ENCRYPT)
            return true;
    for (int i = 0; i < p->fields.nrules; i++)
        if (p->fields.rules[i].op == CV_OP_ENCRYPT)
            return true;
    return false;
}

/* ---- applying to text ------------------------------------------------- */

/* The same rules as the tree walk, on the event's text: one pass with the
 * pull tokenizer, the input copied to the output in runs, and only the
 * values a rule changes spliced in. An explicit frame stack (no recursion)
 * tracks each open container: whether it is an object, the rule for an
 * array's elements, and how many elements were seen and kept, which is
 * what dropping needs to get the commas right. */

typedef struct {
    bool obj, top;
    const rule *r;     /* an array's elements: their rule (NULL: default) */
    size_t seen, kept; /* elements so far, and how many of them stay */
    const char *sep;   /* where the last element (or the bracket) ended */
} frame;

#define SMALL 32 /* frames and path segments before the heap is needed */

typedef struct {
    walk w;          /* the operators' context: path, keyring, id, err */
    cv_jwalk jw;
    char **out;      /* the caller's output buffer */
    size_t *outlen, *outcap;
    const char *cp;  /* the input is copied up to here */
    const char *line;
    size_t len;
    frame *fr;
    int nfr, frcap, pathcap;
    char *keys;      /* decoded escaped member names, bump-allocated */
    size_t keys_used, keys_cap;
    char *rep;       /* the text of a replacement value */
    size_t replen, repcap;
    bool id_seen;
    frame fr_small[SMALL];
    pseg path_small[SMALL];
} text_walk;

static void out_put(text_walk *t, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (*t->outcap - *t->outlen <= n) { /* room for n and a NUL */
        size_t c = *t->outcap ? *t->outcap : 4096;
        while (c - *t->outlen <= n)
            c *= 2;
        *t->out = cv_realloc(*t->out, c);
        *t->outcap = c;
    }
    memcpy(*t->out + *t->outlen, s, n);
    *t->outlen += n;
}

/* Copy the input up to upto. */
static void flush(text_walk *t, const char *upto)
{
    if (upto > t->cp) {
        out_put(t, t->cp, (size_t)(upto - t->cp));
        t->cp = upto;
    }
}

static frame *push_frame(text_walk *t)
{
    if (t->nfr == t->frcap) {
        int nc = t->frcap * 2;
        frame *nf = cv_malloc((size_t)nc * sizeof *nf);
        memcpy(nf, t->fr, (size_t)t->nfr * sizeof *nf);
        if (t->fr != t->fr_small)
            free(t->fr);
        t->fr = nf;
        t->frcap = nc;
    }
    return &t->fr[t->nfr++];
}

static void push_key(text_walk *t, pseg k)
{
    if (t->w.n == t->pathcap) {
        int nc = t->pathcap * 2;
        pseg *np = cv_malloc((size_t)nc * sizeof *np);
        memcpy(np, t->w.path, (size_t)t->w.n * sizeof *np);
        if (t->w.path != t->path_small)
            free(t->w.path);
        t->w.path = np;
        t->pathcap = nc;
    }
    t->w.path[t->w.n++] = k;
}

/* The last token (a string or key) decoded into the name arena, which
 * holds every escaped name of the event: a decoded name and its NUL are
 * never longer than its escaped text, so len + 8 bytes are enough. */
static int decode_token(text_walk *t, pseg *out)
{
    if (!t->keys) {
        t->keys_cap = t->len + 8;
        t->keys = cv_malloc(t->keys_cap);
    }
    cv_jfield f = {.type = CV_JS_STRING, .val = t->jw.tok + 1,
                   .len = t->jw.len - 2, .escaped = true};
    char *d = t->keys + t->keys_used;
    if (!cv_jscan_field_string(&f, d, t->keys_cap - t->keys_used)) {
        fail(&t->w, "cannot decode a member name");
        return -1;
    }
    *out = (pseg){d, strlen(d)};
    t->keys_used += out->len + 1;
    return 0;
}

static int key_seg(text_walk *t, pseg *out)
{
    if (!t->jw.escaped) {
        *out = (pseg){t->jw.tok + 1, t->jw.len - 2};
        return 0;
    }
    return decode_token(t, out);
}

/* The top-level "id" must be the event_id the fields are bound to. */
static int check_id(text_walk *t, int tok)
{
    t->id_seen = true;
    if (tok == CV_JW_STRING) {
        pseg s = {t->jw.tok + 1, t->jw.len - 2};
        if (t->jw.escaped && decode_token(t, &s) < 0)
            return -1;
        if (s.len == strlen(t->w.event_id) &&
            memcmp(s.s, t->w.event_id, s.len) == 0)
            return 0;
    }
    snprintf(t->w.err, t->w.errlen,
             "the event's \"id\" is not the event id given");
    return -1;
}

/* pred on a NUL-terminated copy of s (wiped after: it may be a value) */
static bool test_cstr(const char *s, size_t n, bool (*pred)(const char *))
{
    char stack[256];
    char *b = n < sizeof stack ? stack : cv_malloc(n + 1);
    memcpy(b, s, n);
    b[n] = '\0';
    bool r = pred(b);
    sodium_memzero(b, n);
    if (b != stack)
        free(b);
    return r;
}

static void rep_reserve(text_walk *t, size_t n)
{
    if (t->repcap < n) {
        t->repcap = n < 256 ? 256 : n;
        t->rep = cv_realloc(t->rep, t->repcap);
    }
}

/* The replacement is a string that needs no escaping (an envelope or a
 * pseudonym: base64url, letters, digits and ':'). */
static void rep_quoted(text_walk *t, const char *s, size_t n)
{
    rep_reserve(t, n + 2);
    t->rep[0] = '"';
    memcpy(t->rep + 1, s, n);
    t->rep[n + 1] = '"';
    t->replen = n + 2;
}

/* Seal plain, which is exactly the value's JSON text as jansson would
 * dump it (CV_JSON_DUMP | JSON_ENCODE_ANY), as op_encrypt does. */
static int seal_text(text_walk *t, const char *plain, size_t len,
                     bool is_string)
{
    if (is_string && len >= 7 && memcmp(plain + 1, "enc:", 4) == 0 &&
        test_cstr(plain + 1, len - 2, cv_fieldcrypt_is_envelope))
        return R_SAME; /* sealed by an earlier run */
    char buf[512], e[256];
    char *path = path_text(&t->w, buf, sizeof buf);
    char *env = t->w.dk ? cv_fieldcrypt_seal_dk(t->w.dk, plain, len, t->w.event_id, path,
                                     e, sizeof e)
                        : cv_fieldcrypt_seal(t->w.kr, plain, len, t->w.event_id, path, e,
                                  sizeof e);
    if (path != buf)
        free(path);
    if (!env)
        return fail(&t->w, e);
    rep_quoted(t, env, strlen(env));
    free(env);
    return R_REPLACE;
}

/* op_hash on a string without escapes: its bytes are the slice. */
static int hash_text(text_walk *t, const char *purpose, const char *s,
                     size_t n)
{
    if (n >= 6 && memcmp(s, "hash:", 5) == 0 &&
        test_cstr(s, n, cv_fieldcrypt_is_pseudonym))
        return R_SAME;
    char ps[CV_PSEUDONYM_MAX];
    if (pseudonym_of(&t->w, purpose, s, n, ps) < 0)
        return fail(&t->w, "cannot hash: primary key version missing");
    rep_quoted(t, ps, strlen(ps));
    return R_REPLACE;
}

/* Any operator on any value: load the slice, run the tree operator, dump
 * what it gives. */
static int transform_json(text_walk *t, cv_op op, const char *arg,
                          const char *vs, size_t vlen)
{
    json_error_t je;
    json_t *v = json_loadb(vs, vlen, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                           &je);
    if (!v) {
        char msg[256];
        snprintf(msg, sizeof msg, "invalid value (%s)", je.text);
        return fail(&t->w, msg);
    }
    json_t *nv = NULL;
    int rc = transform(&t->w, op, arg, v, &nv);
    if (rc == R_REPLACE) {
        size_t n = json_dumpb(nv, t->rep, t->repcap,
                              CV_JSON_DUMP | JSON_ENCODE_ANY);
        if (n > t->repcap) {
            rep_reserve(t, n);
            n = json_dumpb(nv, t->rep, t->repcap,
                           CV_JSON_DUMP | JSON_ENCODE_ANY);
        }
        if (n == 0 || n > t->repcap)
            rc = fail(&t->w, "cannot serialise value");
        t->replen = n;
        json_decref(nv);
    }
    json_decref(v);
    return rc;
}

static void rep_add(text_walk *t, const char *s, size_t n)
{
    if (t->repcap - t->replen < n) {
        size_t c = t->repcap < 256 ? 256 : t->repcap;
        while (c - t->replen < n)
            c *= 2;
        t->rep = cv_realloc(t->rep, c);
        t->repcap = c;
    }
    memcpy(t->rep + t->replen, s, n);
    t->replen += n;
}

#define R_PUNT 99 /* a fast path declines: take the jansson route */

/* round_number on a real written as [-]DIGITS.DIGITS (no exponent) with
 * at most 15 significant digits and |x| < 1e13, written as jansson writes
 * the result, without strtod or printf. Exact: the mantissa M < 2^53 and
 * 10^k (k <= 22) are doubles, so M / 10^k is the correctly rounded x that
 * strtod gives; round1 then runs as it is; and r / 10.0 with |r| < 1e14
 * prints under "%.15g" as the decimal r/10 (15 digits round-trip), to
 * which jansson adds ".0" when there is no fraction. 0 when the text is
 * not of this form. */
static int round_decimal(const char *v, size_t n, char out[64])
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,
                                   1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17,
                                   1e18, 1e19, 1e20, 1e21, 1e22};
    const char *p = v, *e = v + n;
    bool neg = p < e && *p == '-';
    p += neg;
    uint64_t m = 0;
    int sig = 0, k = 0;
    bool frac = false;
    for (; p < e; p++) {
        if (*p == '.') {
            frac = true;
            continue;
        }
        if (*p < '0' || *p > '9')
            return 0; /* an exponent */
        if (m || *p != '0')
            sig++;
        if (sig > 15)
            return 0;
        m = m * 10 + (uint64_t)(*p - '0');
        k += frac;
    }
    if (k > 22)
        return 0;
    double x = (double)m / pow10[k];
    if (neg)
        x = -x;
    if (!(x < 1e13 && x > -1e13))
        return 0;
    double t = x * 10.0; /* round1, as it is */
    int64_t r = (int64_t)(t + (t >= 0 ? 0.5 : -0.5));
    uint64_t a = r < 0 ? (uint64_t)-r : (uint64_t)r;
    return snprintf(out, 64, "%s%llu.%u", r < 0 ? "-" : "",
                    (unsigned long long)(a / 10), (unsigned)(a % 10));
}

/* op_generalise on an object, from its text: what jansson writes for the
 * object op_generalise builds (names, then coordinates rounded by
 * round_number), without loading it. Declines what it cannot match
 * cheaply and exactly: escapes, repeated names, "-0", very large reals. */
static int generalise_text(text_walk *t, const char *level, const char *vs,
                           size_t vlen)
{
    bool city = level && level[1] == 'i';
    static const char *const want[] = {"city", "region", "country", "lat",
                                       "lon", "latitude", "longitude"};
    static const size_t wlen[] = {4, 6, 7, 3, 3, 8, 9};
    enum { NWANT = sizeof want / sizeof *want, FIRST_COORD = 3 };
    struct {
        int tok;
        const char *s;
        size_t n;
    } got[NWANT];
    memset(got, 0, sizeof got);
    cv_jwalk jw;
    char err[128];
    cv_jwalk_init(&jw, vs, vlen, CV_JW_MAX_DEPTH, err, sizeof err);
    if (cv_jwalk_next(&jw) != CV_JW_OBJECT)
        return R_PUNT;
    for (;;) {
        int tok = cv_jwalk_next(&jw);
        if (tok == CV_JW_OBJECT_END)
            break;
        if (tok != CV_JW_KEY || jw.escaped)
            return R_PUNT;
        const char *k = jw.tok + 1;
        size_t kl = jw.len - 2;
        int idx = -1;
        for (int i = 0; i < NWANT && idx < 0; i++)
            if (wlen[i] == kl && memcmp(want[i], k, kl) == 0)
                idx = i;
        tok = cv_jwalk_next(&jw);
        if ((tok == CV_JW_OBJECT || tok == CV_JW_ARRAY) &&
            cv_jwalk_skip(&jw) == CV_JW_ERROR)
            return R_PUNT;
        if (tok == CV_JW_ERROR || (tok == CV_JW_STRING && jw.escaped))
            return R_PUNT;
        if (idx >= 0) {
            if (got[idx].tok)
                return R_PUNT;
            got[idx].tok = tok;
            got[idx].s = jw.tok;
            got[idx].n = jw.len;
        }
    }
    t->replen = 0;
    rep_add(t, "{", 1);
    for (int i = 0; i < NWANT; i++) {
        int want_tok = i < FIRST_COORD ? CV_JW_STRING : CV_JW_NUMBER;
        if (got[i].tok != want_tok || (level && i != 2 && !(city && i == 0)))
            continue;
        const char *v = got[i].s;
        size_t n = got[i].n;
        char num[64];
        if (i >= FIRST_COORD && (memchr(v, '.', n) || memchr(v, 'e', n) ||
                                 memchr(v, 'E', n))) {
            int fast = round_decimal(v, n, num);
            if (fast > 0) {
                v = num;
                n = (size_t)fast;
                goto put;
            }
            /* a real: round1, then jansson's "%.15g", with ".0" added
             * when that reads as an integer */
            if (n >= sizeof num)
                return R_PUNT;
            memcpy(num, v, n);
            num[n] = '\0';
            double d = strtod(num, NULL);
            if (!(d < 1e13 && d > -1e13))
                return R_PUNT; /* keep clear of exponent notation */
            int len = snprintf(num, sizeof num, "%.15g", round1(d));
            if (len <= 0 || (size_t)len >= sizeof num - 2 ||
                strchr(num, 'e'))
                return R_PUNT;
            if (!strchr(num, '.'))
                memcpy(num + len, ".0", 3), len += 2;
            v = num;
            n = (size_t)len;
        } else if (i >= FIRST_COORD && n == 2 && v[0] == '-' && v[1] == '0') {
            return R_PUNT; /* jansson writes the integer -0 as 0 */
        }
    put:
        if (t->replen > 1)
            rep_add(t, ",", 1);
        rep_add(t, "\"", 1);
        rep_add(t, want[i], wlen[i]);
        rep_add(t, "\":", 2);
        rep_add(t, v, n);
    }
    rep_add(t, "}", 1);
    return R_REPLACE;
}

/* Is the value's text what jansson dumps for it? Then it can be sealed as
 * it is. Strings without escapes, literals and integers are (but "-0",
 * which jansson writes as 0); reals and containers are not, in general. */
static bool dumps_as_is(int tok, const char *vs, size_t vlen, bool escaped)
{
    switch (tok) {
    case CV_JW_STRING: return !escaped;
    case CV_JW_TRUE:
    case CV_JW_FALSE:
    case CV_JW_NULL: return true;
    case CV_JW_NUMBER:
        if (vlen == 2 && vs[0] == '-' && vs[1] == '0')
            return false;
        for (size_t i = 0; i < vlen; i++)
            if (vs[i] == '.' || vs[i] == 'e' || vs[i] == 'E')
                return false;
        return true;
    default: return false;
    }
}

/* op_round on a string without escapes: its bytes are the slice. */
static int round_text(text_walk *t, const char *s, size_t n)
{
    int64_t ms;
    if (!cv_time_parse(s, n, &ms))
        return R_DROP;
    char buf[40];
    cv_time_format_ms(ms - ms % HOUR_MS, buf);
    rep_quoted(t, buf, strlen(buf));
    return R_REPLACE;
}

static int transform_text(text_walk *t, cv_op op, const char *arg, int tok,
                          const char *vs, size_t vlen)
{
    t->replen = 0;
    switch (op) {
    case CV_OP_KEEP: return R_SAME;
    case CV_OP_DROP: return R_DROP;
    case CV_OP_ENCRYPT:
        if (dumps_as_is(tok, vs, vlen, t->jw.escaped))
            return seal_text(t, vs, vlen, tok == CV_JW_STRING);
        break;
    case CV_OP_HASH:
        if (tok == CV_JW_STRING && !t->jw.escaped)
            return hash_text(t, arg, vs + 1, vlen - 2);
        break;
    case CV_OP_GENERALISE:
        if (tok == CV_JW_OBJECT) {
            int rc = generalise_text(t, arg, vs, vlen);
            if (rc != R_PUNT)
                return rc;
        }
        break;
    case CV_OP_ROUND:
        if (tok == CV_JW_STRING && !t->jw.escaped)
            return round_text(t, vs + 1, vlen - 2);
        break;
    default: break;
    }
    return transform_json(t, op, arg, vs, vlen);
}

/* scrub_transform on text: a sealed value that a rule other than keep or
 * encrypt names goes; a replacement that is the value's own text is no
 * change. */
static int scrub_text(text_walk *t, cv_op op, const char *arg, int tok,
                      const char *vs, size_t vlen)
{
    int rc;
    if (op != CV_OP_KEEP && op != CV_OP_ENCRYPT && tok == CV_JW_STRING &&
        !t->jw.escaped && vlen >= 7 && memcmp(vs + 1, "enc:", 4) == 0 &&
        test_cstr(vs + 1, vlen - 2, cv_fieldcrypt_is_envelope))
        rc = R_DROP;
    else
        rc = transform_text(t, op, arg, tok, vs, vlen);
    if (rc == R_DROP && top_ts(&t->w))
        rc = R_SAME;
    if (rc == R_REPLACE && t->replen == vlen && memcmp(t->rep, vs, vlen) == 0)
        rc = R_SAME;
    int64_t ms;
    if (rc == R_REPLACE && top_ts(&t->w) && t->replen >= 2 &&
        t->rep[0] == '"' && cv_time_parse(t->rep + 1, t->replen - 2, &ms)) {
        t->w.new_ts = ms; /* store moves the row with it */
        t->w.ts_moved = true;
    }
    if (rc == R_REPLACE || rc == R_DROP) {
        t->w.changed++;
        if (t->w.note) {
            char buf[256];
            char *path = path_text(&t->w, buf, sizeof buf);
            t->w.note(t->w.note_ctx, path, op);
            if (path != buf)
                free(path);
        }
    }
    return rc;
}

/* An element stays: when it is the first to stay after elements that were
 * dropped, the separator before it (with its comma) goes. */
static void keep_element(text_walk *t, frame *f, const char *el)
{
    if (f->kept == 0 && f->seen > 0) {
        flush(t, f->sep);
        t->cp = el;
    }
    f->seen++;
    f->kept++;
}

/* One value (its first token is the last token read) at the current path,
 * r its rule (NULL: the default), el where its member or element starts.
 * Mirrors visit(): containers that keep (or no rule) covers are entered,
 * and so are arrays whose operator takes each element. */
static int visit_text(text_walk *t, int tok, const rule *r, const char *el)
{
    frame *f = &t->fr[t->nfr - 1];
    const dflt *d = default_for(&t->w, tok);
    cv_op op = r ? r->op : d->op;
    const char *arg = r ? r->arg : d->arg;
    bool descend = op == CV_OP_KEEP || !r;
    if ((tok == CV_JW_OBJECT && descend) ||
        (tok == CV_JW_ARRAY && (descend || !takes_whole(op)))) {
        keep_element(t, f, el);
        const char *open = t->jw.tok;
        frame *c = push_frame(t); /* f may move */
        *c = (frame){.obj = tok == CV_JW_OBJECT, .r = r, .sep = open + 1};
        return 0;
    }
    const char *vs = t->jw.tok;
    if ((tok == CV_JW_OBJECT || tok == CV_JW_ARRAY) &&
        cv_jwalk_skip(&t->jw) == CV_JW_ERROR)
        return -1;
    const char *ve = t->jw.tok + t->jw.len;
    int rc = t->w.scrub ? scrub_text(t, op, arg, tok, vs, (size_t)(ve - vs))
                        : transform_text(t, op, arg, tok, vs, (size_t)(ve - vs));
    if (rc == R_ERR)
        return -1;
    if (rc == R_DROP) {
        /* the member or element goes with the separator before it */
        flush(t, f->sep);
        t->cp = ve;
        f->seen++;
    } else {
        keep_element(t, f, el);
        if (rc == R_REPLACE) {
            flush(t, vs);
            out_put(t, t->rep, t->replen);
            t->cp = ve;
        }
    }
    f->sep = ve;
    if (f->obj)
        t->w.n--;
    return 0;
}

static int walk_text(text_walk *t)
{
    cv_jwalk *jw = &t->jw;
    int tok = cv_jwalk_next(jw);
    if (tok == CV_JW_ERROR)
        return -1;
    if (tok != CV_JW_OBJECT) {
        snprintf(t->w.err, t->w.errlen, "event is not a JSON object");
        return -1;
    }
    t->cp = jw->tok; /* what is outside the object is left out */
    *push_frame(t) = (frame){.obj = true, .top = true, .sep = jw->tok + 1};
    while (t->nfr > 0) {
        frame *f = &t->fr[t->nfr - 1];
        tok = cv_jwalk_next(jw);
        if (tok == CV_JW_ERROR)
            return -1;
        if (tok == CV_JW_OBJECT_END || tok == CV_JW_ARRAY_END) {
            const char *end = jw->tok + 1;
            if (--t->nfr == 0) {
                flush(t, end);
                break;
            }
            f = &t->fr[t->nfr - 1];
            f->sep = end;
            if (f->obj)
                t->w.n--; /* the member that held the container */
            continue;
        }
        const char *el = jw->tok;
        const rule *r;
        if (f->obj) {
            pseg k;
            if (key_seg(t, &k) < 0)
                return -1;
            tok = cv_jwalk_next(jw);
            if (tok == CV_JW_ERROR)
                return -1;
            /* a scrub may round ts by a rule of its own; it never
             * touches user_id */
            bool ts = f->top && t->w.scrub &&
                      is_member(k.s, k.len, CV_MEMBER_TS);
            if (ts) {
                push_key(t, k);
                r = wlookup(&t->w);
                if (r)
                    goto visit;
                t->w.n--;
            }
            if (f->top && (is_reserved(k.s, k.len) ||
                           (t->w.scrub &&
                            is_member(k.s, k.len, CV_MEMBER_USER)))) {
                /* store reads these: never transformed */
                if (k.len == 2 && k.s[0] == 'i' && k.s[1] == 'd' &&
                    check_id(t, tok) < 0)
                    return -1;
                if ((tok == CV_JW_OBJECT || tok == CV_JW_ARRAY) &&
                    cv_jwalk_skip(jw) == CV_JW_ERROR)
                    return -1;
                keep_element(t, f, el);
                f->sep = jw->tok + jw->len;
                continue;
            }
            push_key(t, k);
            r = wlookup(&t->w);
        } else {
            r = f->r;
        }
    visit:
        if (visit_text(t, tok, r, el) < 0)
            return -1;
    }
    if (cv_jwalk_next(jw) != CV_JW_EOF)
        return -1; /* trailing data: the tokenizer said so */
    if (!t->id_seen) {
        snprintf(t->w.err, t->w.errlen, "event has no \"id\"");
        return -1;
    }
    return 0;
}

/* Walk the text with the rules in setup (rs, rs2, default, scrub, note):
 * the changed fields' count (scrub) or 0, or -1 with a reason in err. */
static int apply_text(const walk *setup, const cv_keyring *kr,
                      const char *line, size_t len, const char *event_id,
                      char **out, size_t *outlen, size_t *outcap, int64_t *ts,
                      char *err, size_t errlen)
{
    char idstack[256], *idheap = NULL;
    *outlen = 0;
    if (!event_id) {
        cv_jfield f = {.name = "id"};
        if (cv_jscan_object(line, len, CV_JW_MAX_DEPTH, false, &f, 1, err,
                            errlen) < 0)
            return -1;
        if (f.type == CV_JS_STRING && f.len > 0) {
            size_t cap = f.len + 8;
            char *b = cap <= sizeof idstack ? idstack
                                            : (idheap = cv_malloc(cap));
            if (cv_jscan_field_string(&f, b, cap))
                event_id = b;
        }
    }
    if (!event_id || !*event_id) {
        snprintf(err, errlen, "event has no non-empty string \"id\"");
        free(idheap);
        return -1;
    }
    text_walk tw, *t = &tw; /* a few KiB: the stack is fine */
    t->w = *setup;
    t->w.changed = 0;
    t->w.ts_moved = false;
    t->w.kr = kr;
    t->w.event_id = event_id;
    t->w.primary = cv_keyring_primary(kr);
    t->w.err = err;
    t->w.errlen = errlen;
    t->w.path = t->path_small;
    t->pathcap = SMALL;
    cv_jwalk_init(&t->jw, line, len, CV_JW_MAX_DEPTH, err, errlen);
    t->out = out;
    t->outlen = outlen;
    t->outcap = outcap;
    t->line = line;
    t->len = len;
    t->fr = t->fr_small;
    t->nfr = 0;
    t->frcap = SMALL;
    t->keys = NULL;
    t->keys_used = t->keys_cap = 0;
    t->rep = NULL;
    t->replen = t->repcap = 0;
    t->id_seen = false;
    int rc = walk_text(t);
    if (rc == 0) /* out_put left room for a NUL; "{}" at least was put */
        (*out)[*outlen] = '\0';
    if (t->fr != t->fr_small)
        free(t->fr);
    if (t->w.path != t->path_small)
        free(t->w.path);
    if (t->keys) {
        sodium_memzero(t->keys, t->keys_cap);
        free(t->keys);
    }
    free(t->rep);
    free(idheap);
    if (rc == 0 && ts && t->w.ts_moved)
        *ts = t->w.new_ts;
    return rc < 0 ? -1 : t->w.changed;
}

int cv_policy_apply_text(const cv_policy *p, const cv_keyring *kr,
                         const cv_datakey *dk, const char *line, size_t len,
                         const char *event_id, char **out, size_t *outlen,
                         size_t *outcap, char *err, size_t errlen)
{
    walk w = {.rs = &p->fields, .dflt = p->fields.dflt, .dk = dk};
    return apply_text(&w, kr, line, len, event_id, out, outlen, outcap, NULL,
                      err, errlen) < 0 ? -1 : 0;
}

int cv_policy_scrub_text(const cv_policy *p, const cv_keyring *kr,
                         const char *kind, const char *line, size_t len,
                         cv_policy_scrub_note *note, void *ctx, char **out,
                         size_t *outlen, size_t *outcap, int64_t *ts,
                         char *err, size_t errlen)
{
    walk w = scrub_setup(p, kind, note, ctx);
    return apply_text(&w, kr, line, len, NULL, out, outlen, outcap, ts, err,
                      errlen);
}

int cv_policy_scrub_body(const cv_policy *pol, const cv_keyring *kr,
                         const char *kind, const char *body, size_t len,
                         cv_policy_scrub_buf *out, int64_t *ts,
                         cv_policy_scrub_note *note, void *ctx, char *err,
                         size_t errlen)
{
    return cv_policy_scrub_text(pol, kr, kind, body, len, note, ctx,
                                &out->text, &out->len, &out->cap, ts, err,
                                errlen);
}

char *cv_policy_stored_value(const cv_policy *p, const cv_keyring *kr,
                             uint32_t version, const char *path,
                             const char *value)
{
    const char *arg;
    cv_op op = cv_policy_op_for(p, path, &arg);
    if (op == CV_OP_KEEP)
        return cv_strdup(value);
    if (op != CV_OP_HASH)
        return NULL;
    if (cv_fieldcrypt_is_pseudonym(value)) /* already in stored form */
        return cv_strdup(value);
    char ps[CV_PSEUDONYM_MAX];
    if (cv_fieldcrypt_pseudonym(kr, version, arg, value, strlen(value), ps) < 0)
        return NULL;
    return cv_strdup(ps);
}
