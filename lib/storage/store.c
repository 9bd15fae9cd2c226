/* store.c - checking, scheduling and inserting events in batches. */
#include "storage/store.h"

#include "privacy/anon.h"
#include "crypto/fieldcrypt.h"
#include "base/jscan.h"
#include "base/event.h"
#include "privacy/retention.h"
#include "privacy/policy.h"
#include "base/time.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROFILE_CACHE 4096 /* direct-mapped: bounded memory */
#define MAX_DIRTY 256       /* users to reschedule at the next commit */

struct cv_store {
    cv_db *db;
    const cv_policy *pol;
    const cv_keyring *kr;
    int max_depth;
    bool hashed_users;  /* the policy pseudonymises user_id */
    size_t pending;
    cv_store_stats st;
    /* the open batch's counts: added to st at COMMIT, dropped by a
     * rollback, so the totals are of what the database holds */
    uint64_t batch_inserted, batch_duplicates, batch_profiles, batch_arrival,
        batch_anonymised;
    cv_anon *anon;               /* an anonymous user's rows: anon.h */
    char last_id[CV_ID_MAX + 1]; /* of the line last added, "" if none */
    int64_t last_uid;            /* its user's users.uid, or -1 */
    cv_policy_scrub_buf scrubbed;       /* a body scrubbed on arrival */
    /* Users whose profile changed in the open batch: their stored rows are
     * rescheduled once, at commit, however many profile events came. */
    struct {
        int64_t uid;
        cv_profile p;
    } dirty[MAX_DIRTY];
    int ndirty;
    struct {
        char *user;     /* user_id as stored */
        int64_t uid;    /* its users.uid */
        cv_profile p;   /* its profile */
    } cache[PROFILE_CACHE];
};

cv_store *cv_store_new(cv_db *db, const cv_policy *pol, const cv_keyring *kr,
                       int max_depth)
{
    cv_store *s = cv_calloc(1, sizeof *s);
    s->db = db;
    s->pol = pol;
    s->kr = kr;
    s->max_depth = max_depth;
    s->anon = cv_anon_new(kr);
    const char *arg;
    s->hashed_users = cv_policy_op_for(pol, "user_id", &arg) == CV_OP_HASH;
    return s;
}

void cv_store_destroy(cv_store **p)
{
    cv_store *s = *p;
    if (!s)
        return;
    for (int i = 0; i < PROFILE_CACHE; i++)
        free(s->cache[i].user);
    free(s->scrubbed.text);
    cv_anon_destroy(&s->anon);
    free(s);
    *p = NULL;
}

void cv_store_forget_users(cv_store *s)
{
    for (int i = 0; i < PROFILE_CACHE; i++) {
        free(s->cache[i].user);
        s->cache[i].user = NULL;
    }
}

size_t cv_store_pending(const cv_store *s) { return s->pending; }

int64_t cv_store_last_uid(const cv_store *s) { return s->last_uid; }

int cv_store_begin(cv_store *s, char *reason, size_t rlen)
{
    if (s->pending == 0 && cv_db_begin(s->db) != SQLITE_OK) {
        snprintf(reason, rlen, "cannot begin a transaction: %s",
                 cv_db_errmsg(s->db));
        return -1;
    }
    s->pending++;
    return 0;
}
const cv_store_stats *cv_store_stats_get(const cv_store *s) { return &s->st; }
const char *cv_store_last_id(const cv_store *s) { return s->last_id; }

static unsigned slot_of(const char *user)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)user; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % PROFILE_CACHE;
}

/* The user's number and profile, from the cache or the database; a new
 * user is numbered here (inside the open transaction). */
static int user_get(cv_store *s, const char *user, int64_t *uid,
                    cv_profile *out)
{
    unsigned i = slot_of(user);
    if (s->cache[i].user && strcmp(s->cache[i].user, user) == 0) {
        *uid = s->cache[i].uid;
        *out = s->cache[i].p;
        return 0;
    }
    sqlite3_stmt *st = cv_db_stmt(s->db,
        "SELECT u.uid, p.privacy_level, p.retention_days, p.uid IS NOT NULL,"
        " a.uid IS NOT NULL"
        " FROM users u LEFT JOIN profiles p ON p.uid = u.uid"
        " LEFT JOIN anon_past a ON a.uid = u.uid"
        " WHERE u.user_id = ?");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    memset(out, 0, sizeof *out);
    out->retention_days = CV_DAYS_UNSET;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *uid = sqlite3_column_int64(st, 0);
        out->known = sqlite3_column_int(st, 3) != 0;
        out->was_anonymous = sqlite3_column_int(st, 4) != 0;
        const char *lvl = (const char *)sqlite3_column_text(st, 1);
        if (lvl)
            cv_profile_privacy_parse(lvl, &out->privacy);
        /* NULL: not chosen; -1: forever (profiles.retention_days) */
        if (sqlite3_column_type(st, 2) != SQLITE_NULL)
            out->retention_days = sqlite3_column_int64(st, 2) < 0
                                      ? CV_DAYS_FOREVER
                                      : sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        sqlite3_stmt *ins = cv_db_stmt(s->db, "INSERT INTO users(user_id) VALUES(?)");
        if (!ins)
            return -1;
        sqlite3_bind_text(ins, 1, user, -1, SQLITE_STATIC);
        rc = sqlite3_step(ins);
        sqlite3_reset(ins);
        if (rc != SQLITE_DONE)
            return -1;
        *uid = sqlite3_last_insert_rowid(cv_db_handle(s->db));
    } else if (rc != SQLITE_ROW) {
        return -1;
    }
    free(s->cache[i].user);
    s->cache[i].user = cv_strdup(user);
    s->cache[i].uid = *uid;
    s->cache[i].p = *out;
    return 0;
}

static int64_t col_or_never(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? -1
                                                     : sqlite3_column_int64(st, i);
}

static int user_get(cv_store *s, const char *user, int64_t *uid,
                    cv_profile *out);
static void round_schedule(cv_row *r);

/* A user who turned anonymous: every row of theirs but the profile is
 * scrubbed (if it was not), anonymised and moved to its per-day pseudonym
 * (anon.h), in the open transaction, as if it had arrived so. */
static int anonymise_stored(cv_store *s, int64_t uid, const cv_profile *prof)
{
    sqlite3_stmt *sel = cv_db_stmt(s->db,
        "SELECT seq FROM events WHERE uid = ? AND kind <> 'profile'");
    if (!sel)
        return -1;
    sqlite3_bind_int64(sel, 1, uid);
    int64_t *seqs = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        if (n == cap)
            seqs = cv_realloc(seqs, (cap = cap ? cap * 2 : 64) * sizeof *seqs);
        seqs[n++] = sqlite3_column_int64(sel, 0);
    }
    sqlite3_reset(sel);
    sqlite3_stmt *one = cv_db_stmt(s->db,
        "SELECT e.id, e.kind, e.type, e.ts, e.created_at, e.scrubbed_at, e.body,"
        " u.user_id FROM events e JOIN users u ON u.uid = e.uid WHERE e.seq = ?");
    sqlite3_stmt *del = cv_db_stmt(s->db, "DELETE FROM events WHERE seq = ?");
    if (rc != SQLITE_DONE || !one || !del) {
        free(seqs);
        return -1;
    }
    int result = 0;
    for (size_t i = 0; i < n && result == 0; i++) {
        sqlite3_bind_int64(one, 1, seqs[i]);
        if (sqlite3_step(one) != SQLITE_ROW) {
            sqlite3_reset(one);
            result = -1;
            break;
        }
        char *kind = cv_strdup((const char *)sqlite3_column_text(one, 1));
        const char *type_c = (const char *)sqlite3_column_text(one, 2);
        char *type = type_c ? cv_strdup(type_c) : NULL;
        char *user = cv_strdup((const char *)sqlite3_column_text(one, 7));
        int64_t ts = sqlite3_column_int64(one, 3);
        int64_t created = sqlite3_column_int64(one, 4);
        bool scrubbed = sqlite3_column_type(one, 5) != SQLITE_NULL;
        size_t blen = (size_t)sqlite3_column_bytes(one, 6);
        char *body = cv_malloc(blen + 1);
        memcpy(body, sqlite3_column_blob(one, 6), blen);
        body[blen] = '\0';
        sqlite3_reset(one);
        char err[256];
        const char *b = body;
        size_t bl = blen;
        if (!scrubbed && cv_policy_scrubs(s->pol)) {
            int k = cv_policy_scrub_body(s->pol, s->kr, kind, body, blen, &s->scrubbed,
                                         &ts, NULL, NULL, err, sizeof err);
            if (k > 0)
                b = s->scrubbed.text, bl = s->scrubbed.len;
            else if (k < 0)
                cv_warn("cannot scrub row %lld of a user turned anonymous: %s",
                        (long long)seqs[i], err);
        }
        cv_anon_row an;
        int64_t auid;
        cv_profile ap;
        if (cv_anon_apply(s->anon, user, b, bl, ts, &an, err, sizeof err) < 0) {
            cv_warn("cannot anonymise row %lld: %s", (long long)seqs[i], err);
            result = -1;
        } else if (user_get(s, an.user, &auid, &ap) < 0) {
            result = -1;
        } else {
            cv_row row = {.id = an.id, .uid = auid, .kind = kind, .type = type,
                          .ts = an.ts, .created_at = created, .scrubbed_at = created,
                          .body = an.text, .body_len = an.len};
            cv_retention_compute(s->pol, kind, an.ts, created, prof,
                                 &row.expires_at, &row.scrub_after);
            round_schedule(&row);
            row.scrubbed_at = row.created_at;
            uint8_t sum[CV_CHECKSUM_BYTES];
            if (cv_fieldcrypt_row_checksum(s->kr, cv_keyring_primary(s->kr), an.id, an.user,
                                kind, row.ts, row.body, row.body_len, sum) < 0) {
                result = -1;
            } else {
                row.checksum = sum;
                row.checksum_len = sizeof sum;
                sqlite3_bind_int64(del, 1, seqs[i]);
                if (sqlite3_step(del) != SQLITE_DONE ||
                    cv_db_insert(s->db, &row) < 0)
                    result = -1;
                sqlite3_reset(del);
                s->st.rows_anonymised++;
            }
        }
        free(an.text);
        free(body);
        free(kind);
        free(type);
        free(user);
    }
    free(seqs);
    return result;
}

/* Write a row's expiry and scrub date (< 0: never) with upd, "UPDATE
 * events SET expires_at = ?, scrub_after = ? WHERE seq = ?". */
static int set_schedule(sqlite3_stmt *upd, int64_t seq, int64_t exp,
                        int64_t scrub)
{
    sqlite3_reset(upd);
    if (exp >= 0)
        sqlite3_bind_int64(upd, 1, exp);
    else
        sqlite3_bind_null(upd, 1);
    if (scrub >= 0)
        sqlite3_bind_int64(upd, 2, scrub);
    else
        sqlite3_bind_null(upd, 2);
    sqlite3_bind_int64(upd, 3, seq);
    int rc = sqlite3_step(upd);
    sqlite3_reset(upd);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Recompute expires_at and scrub_after of every row of the user; rewrite
 * only the rows whose schedule changes. */
static int reschedule(cv_store *s, int64_t uid, const cv_profile *prof)
{
    if (prof->known && prof->privacy == CV_PRIVACY_ANONYMOUS &&
        anonymise_stored(s, uid, prof) < 0)
        return -1;
    /* the profile in force: whose event it is */
    sqlite3_stmt *sel = cv_db_stmt(s->db,
        "SELECT e.seq, e.kind, e.ts, e.created_at, e.expires_at, e.scrub_after,"
        " e.kind = 'profile' AND e.id = p.event_id"
        " FROM events e LEFT JOIN profiles p ON p.uid = e.uid WHERE e.uid = ?");
    sqlite3_stmt *upd = cv_db_stmt(s->db,
        "UPDATE events SET expires_at = ?, scrub_after = ? WHERE seq = ?");
    if (!sel || !upd)
        return -1;
    sqlite3_bind_int64(sel, 1, uid);
    int rc;
    while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        int64_t exp, scrub;
        const char *kind = (const char *)sqlite3_column_text(sel, 1);
        if (strcmp(kind, "profile") == 0)
            cv_retention_profile(s->pol, sqlite3_column_int(sel, 6) != 0,
                                 sqlite3_column_int64(sel, 2),
                                 sqlite3_column_int64(sel, 3), prof, &exp, &scrub);
        else
            cv_retention_compute(s->pol, kind, sqlite3_column_int64(sel, 2),
                                 sqlite3_column_int64(sel, 3), prof, &exp, &scrub);
        /* Only ever tighten: data that arrived under a stricter setting
         * (ephemeral, a short retention) keeps the promise made then. */
        int64_t old_exp = col_or_never(sel, 4), old_scrub = col_or_never(sel, 5);
        exp = cv_retention_sooner(exp, old_exp);
        scrub = cv_retention_sooner(scrub, old_scrub);
        if (exp == old_exp && scrub == old_scrub)
            continue;
        if (set_schedule(upd, sqlite3_column_int64(sel, 0), exp, scrub) < 0) {
            sqlite3_reset(sel);
            return -1;
        }
        s->st.rows_rescheduled++;
    }
    sqlite3_reset(sel);
    sqlite3_reset(upd);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int flush_dirty(cv_store *s)
{
    int rc = 0;
    for (int i = 0; i < s->ndirty && rc == 0; i++)
        rc = reschedule(s, s->dirty[i].uid, &s->dirty[i].p);
    s->ndirty = 0;
    return rc;
}

static bool same_rules(const cv_profile *a, const cv_profile *b)
{
    return a->known == b->known && a->privacy == b->privacy &&
           a->retention_days == b->retention_days;
}

/* Note that the user's rows need rescheduling under profile p. */
static int mark_dirty(cv_store *s, int64_t uid, const cv_profile *p)
{
    for (int i = 0; i < s->ndirty; i++)
        if (s->dirty[i].uid == uid) {
            s->dirty[i].p = *p;
            return 0;
        }
    if (s->ndirty == MAX_DIRTY && flush_dirty(s) < 0)
        return -1;
    s->dirty[s->ndirty].uid = uid;
    s->dirty[s->ndirty].p = *p;
    s->ndirty++;
    return 0;
}

/* A profile event no longer in force: kept as long as the user's
 * retention (prof, the profile in force) says, never longer than it was. */
static int profile_superseded(cv_store *s, int64_t uid, const char *event_id,
                              const cv_profile *prof)
{
    sqlite3_stmt *sel = cv_db_stmt(s->db,
        "SELECT seq, ts, created_at, expires_at, scrub_after FROM events"
        " WHERE id = ? AND uid = ? AND kind = 'profile'");
    sqlite3_stmt *upd = cv_db_stmt(s->db,
        "UPDATE events SET expires_at = ?, scrub_after = ? WHERE seq = ?");
    if (!sel || !upd)
        return -1;
    sqlite3_bind_text(sel, 1, event_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(sel, 2, uid);
    int rc = sqlite3_step(sel);
    if (rc == SQLITE_ROW) {
        int64_t exp, scrub;
        cv_retention_profile(s->pol, false, sqlite3_column_int64(sel, 1),
                             sqlite3_column_int64(sel, 2), prof, &exp, &scrub);
        int64_t old_exp = col_or_never(sel, 3), old_scrub = col_or_never(sel, 4);
        exp = cv_retention_sooner(exp, old_exp);
        scrub = cv_retention_sooner(scrub, old_scrub);
        rc = exp == old_exp && scrub == old_scrub
                 ? SQLITE_DONE
                 : set_schedule(upd, sqlite3_column_int64(sel, 0), exp, scrub) < 0
                       ? SQLITE_ERROR : SQLITE_DONE;
    }
    sqlite3_reset(sel);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Apply a profile event if it is the newest for its user; the one it
 * replaces, or the event itself when older, is then superseded. */
static int profile_apply(cv_store *s, const char *user, int64_t uid,
                         const char *event_id, int64_t ts,
                         const cv_profile *old, const cv_profile *p)
{
    char prev[CV_ID_MAX + 1] = "";
    sqlite3_stmt *q = cv_db_stmt(s->db, "SELECT event_id FROM profiles WHERE uid = ?");
    if (!q)
        return -1;
    sqlite3_bind_int64(q, 1, uid);
    int qr = sqlite3_step(q);
    if (qr == SQLITE_ROW && sqlite3_column_text(q, 0))
        snprintf(prev, sizeof prev, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_reset(q);
    if (qr != SQLITE_ROW && qr != SQLITE_DONE)
        return -1;
    sqlite3_stmt *st = cv_db_stmt(s->db,
        "INSERT INTO profiles(uid, privacy_level, retention_days, ts, event_id)"
        " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(uid) DO UPDATE SET"
        " privacy_level = ?2, retention_days = ?3, ts = ?4, event_id = ?5"
        " WHERE excluded.ts >= profiles.ts");
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, uid);
    if (p->privacy != CV_PRIVACY_UNSET)
        sqlite3_bind_text(st, 2, cv_profile_privacy_name(p->privacy), -1, SQLITE_STATIC);
    if (p->retention_days != CV_DAYS_UNSET)
        sqlite3_bind_int64(st, 3, p->retention_days >= 0 ? p->retention_days : -1);
    sqlite3_bind_int64(st, 4, ts);
    sqlite3_bind_text(st, 5, event_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return -1;
    if (sqlite3_changes(cv_db_handle(s->db)) == 0) /* the newer one stands */
        return profile_superseded(s, uid, event_id, old);
    if (*prev && strcmp(prev, event_id) != 0 &&
        profile_superseded(s, uid, prev, p) < 0)
        return -1;
    cv_profile np = *p;
    np.was_anonymous = old->was_anonymous;
    if (!old->was_anonymous && old->known && old->privacy == CV_PRIVACY_ANONYMOUS &&
        p->privacy != CV_PRIVACY_ANONYMOUS) {
        sqlite3_stmt *a = cv_db_stmt(s->db, "INSERT OR IGNORE INTO anon_past(uid) VALUES(?)");
        if (!a)
            return -1;
        sqlite3_bind_int64(a, 1, uid);
        rc = sqlite3_step(a);
        sqlite3_reset(a);
        if (rc != SQLITE_DONE)
            return -1;
        np.was_anonymous = true;
    }
    p = &np;
    unsigned i = slot_of(user);
    free(s->cache[i].user);
    s->cache[i].user = cv_strdup(user);
    s->cache[i].uid = uid;
    s->cache[i].p = *p;
    s->batch_profiles++;
    return same_rules(old, p) ? 0 : mark_dirty(s, uid, p);
}

/* Take a row's arrival, expiry and scrub date to the hour, earlier. */
static void round_schedule(cv_row *r)
{
    const int64_t hour = 3600000;
    r->created_at -= r->created_at % hour;
    if (r->expires_at >= 0)
        r->expires_at -= r->expires_at % hour;
    if (r->scrub_after >= 0)
        r->scrub_after -= r->scrub_after % hour;
}

#define REJECT(...) (snprintf(reason, rlen, __VA_ARGS__), CV_STORE_REJECTED)

int cv_store_add(cv_store *s, const char *line, size_t len, char *reason,
                 size_t rlen)
{
    enum { F_ID, F_KIND, F_USER, F_TS, F_TYPE, F_LEVEL, F_DAYS, NF };
    cv_jfield f[NF] = {{.name = "id"}, {.name = "kind"}, {.name = "user_id"},
                       {.name = "ts"}, {.name = "type"},
                       {.name = "privacy_level"}, {.name = "retention_days"}};
    char why[160];
    s->last_id[0] = '\0';
    s->last_uid = -1;
    if (memchr(line, '\0', len))
        return REJECT("NUL byte in line");
    if (cv_jscan_object(line, len, s->max_depth, false, f, NF, why,
                        sizeof why) < 0)
        return REJECT("invalid JSON: %s", why);

    char id[CV_ID_MAX + 1], kind[CV_KIND_MAX + 1], user[CV_USER_MAX + 1];
    char type[CV_KIND_MAX + 1], tsbuf[64];
    if (f[F_ID].type != CV_JS_STRING || !cv_jscan_field_string(&f[F_ID], id, sizeof id) ||
        !cv_event_id_valid(id, strlen(id)))
        return REJECT("no valid \"id\" (events reach store through ctxvault-ingest)");
    memcpy(s->last_id, id, strlen(id) + 1);
    if (f[F_KIND].type != CV_JS_STRING ||
        !cv_jscan_field_string(&f[F_KIND], kind, sizeof kind) || !*kind)
        return REJECT("\"kind\" missing or not a short string");
    if (f[F_USER].type != CV_JS_STRING ||
        !cv_jscan_field_string(&f[F_USER], user, sizeof user) || !*user)
        return REJECT("\"user_id\" missing, empty or too long");
    if (s->hashed_users && !cv_fieldcrypt_is_pseudonym(user))
        return REJECT("\"user_id\" is not pseudonymised: events must pass "
                      "through ctxvault-encrypt before store");
    bool has_type = f[F_TYPE].type == CV_JS_STRING;
    if (has_type && !cv_jscan_field_string(&f[F_TYPE], type, sizeof type))
        return REJECT("\"type\" is longer than %d bytes", CV_KIND_MAX);
    int64_t ts;
    if (f[F_TS].type != CV_JS_STRING ||
        !cv_jscan_field_string(&f[F_TS], tsbuf, sizeof tsbuf) ||
        !cv_time_parse(tsbuf, strlen(tsbuf), &ts))
        return REJECT("\"ts\" missing or not an RFC 3339 timestamp");

    bool is_profile = strcmp(kind, "profile") == 0;
    cv_profile newp;
    if (is_profile && cv_profile_from_event(line, len, s->max_depth, &f[F_LEVEL],
                                            &f[F_DAYS], &newp, reason, rlen) < 0)
        return CV_STORE_REJECTED;

    if (cv_store_begin(s, reason, rlen) < 0)
        return CV_STORE_FAILED;

    cv_profile prof;
    int64_t uid;
    if (user_get(s, user, &uid, &prof) < 0)
        goto failed;
    s->last_uid = uid;
    int64_t now = cv_now_ms();
    cv_row row = {.id = id, .uid = uid, .kind = kind,
                  .type = has_type ? type : NULL, .ts = ts, .created_at = now,
                  .body = line, .body_len = len};
    /* a profile comes in force (profile_apply says otherwise) */
    if (is_profile)
        cv_retention_profile(s->pol, true, ts, now, &newp, &row.expires_at,
                             &row.scrub_after);
    else
        cv_retention_compute(s->pol, kind, ts, now, &prof, &row.expires_at,
                             &row.scrub_after);
    /* due on arrival (an anonymous user's): the personal data never
     * reaches the file */
    row.scrubbed_at = -1;
    if (row.scrub_after >= 0 && row.scrub_after <= now &&
        cv_policy_scrubs(s->pol)) {
        char serr[256];
        int n = cv_policy_scrub_body(s->pol, s->kr, kind, line, len, &s->scrubbed,
                                     &row.ts, NULL, NULL, serr, sizeof serr);
        if (n < 0)
            return REJECT("cannot scrub on arrival: %s", serr);
        if (n > 0) {
            row.body = s->scrubbed.text;
            row.body_len = s->scrubbed.len;
        }
        if (row.ts != ts) /* a rule rounded ts: the schedule goes too */
            round_schedule(&row);
        row.scrubbed_at = row.created_at;
        s->batch_arrival++;
    }
    /* an anonymous user's row: no identifier left, the hour for a time,
     * under a pseudonym of the day (anon.h); acknowledged under the
     * id it came with, so the producer's resend still finds it */
    cv_anon_row an = {0};
    const char *row_user = user;
    if (!is_profile && prof.known && prof.privacy == CV_PRIVACY_ANONYMOUS) {
        char aerr[256];
        int64_t auid;
        cv_profile ap;
        if (cv_anon_apply(s->anon, user, row.body, row.body_len, row.ts, &an,
                          aerr, sizeof aerr) < 0)
            return REJECT("cannot anonymise on arrival: %s", aerr);
        if (user_get(s, an.user, &auid, &ap) < 0) {
            free(an.text);
            goto failed;
        }
        row.uid = auid;
        row.id = an.id;
        row.body = an.text;
        row.body_len = an.len;
        row.ts = an.ts;
        round_schedule(&row);
        if (row.scrubbed_at >= 0)
            row.scrubbed_at = row.created_at;
        row_user = an.user;
        s->batch_anonymised++;
    }
    else if (!is_profile && prof.was_anonymous) {
        /* sent before, while its user was anonymous: stored under the
         * anonymised id, which must not make a second row of it */
        char aid[CV_ID_MAX + 1];
        cv_anon_id(s->anon, id, ts, aid);
        sqlite3_stmt *q = cv_db_stmt(s->db, "SELECT 1 FROM events WHERE id = ?");
        if (!q)
            goto failed;
        sqlite3_bind_text(q, 1, aid, -1, SQLITE_STATIC);
        int qr = sqlite3_step(q);
        sqlite3_reset(q);
        if (qr == SQLITE_ROW) {
            s->batch_duplicates++;
            return CV_STORE_DUPLICATE;
        }
        if (qr != SQLITE_DONE)
            goto failed;
    }
    uint8_t sum[CV_CHECKSUM_BYTES];
    if (cv_bench_no_durability()) {
        row.checksum = sum; /* an empty checksum */
    } else if (cv_fieldcrypt_row_checksum(s->kr, cv_keyring_primary(s->kr), row.id, row_user,
                               kind, row.ts, row.body, row.body_len, sum) < 0) {
        free(an.text);
        snprintf(reason, rlen, "cannot checksum: no primary key");
        return CV_STORE_FAILED;
    } else {
        row.checksum = sum;
        row.checksum_len = sizeof sum;
    }
    int rc = cv_db_insert(s->db, &row);
    free(an.text);
    if (rc < 0)
        goto failed;
    if (rc == 0) {
        s->batch_duplicates++;
        return CV_STORE_DUPLICATE;
    }
    s->batch_inserted++;
    if (is_profile && profile_apply(s, user, uid, id, ts, &prof, &newp) < 0)
        goto failed;
    return CV_STORE_INSERTED;
failed:
    snprintf(reason, rlen, "database error: %s", cv_db_errmsg(s->db));
    return CV_STORE_FAILED;
}

int cv_store_commit(cv_store *s, char *err, size_t errlen)
{
    if (s->pending == 0)
        return 0;
    if (flush_dirty(s) < 0) {
        snprintf(err, errlen, "cannot reschedule rows: %s", cv_db_errmsg(s->db));
        return -1;
    }
    if (cv_db_commit(s->db) != SQLITE_OK) {
        snprintf(err, errlen, "commit failed: %s", cv_db_errmsg(s->db));
        return -1;
    }
    s->pending = 0;
    s->st.batches++;
    s->st.inserted += s->batch_inserted;
    s->st.duplicates += s->batch_duplicates;
    s->st.profiles_applied += s->batch_profiles;
    s->st.scrubbed_on_arrival += s->batch_arrival;
    s->st.anonymised_on_arrival += s->batch_anonymised;
    s->batch_inserted = s->batch_duplicates = s->batch_profiles =
        s->batch_arrival = s->batch_anonymised = 0;
    return 0;
}

void cv_store_rollback(cv_store *s)
{
    s->ndirty = 0;
    s->batch_inserted = s->batch_duplicates = s->batch_profiles =
        s->batch_arrival = s->batch_anonymised = 0;
    if (s->pending) {
        cv_db_rollback(s->db);
        s->pending = 0;
        /* the cache may hold users and profiles of the rolled-back batch */
        for (int i = 0; i < PROFILE_CACHE; i++) {
            free(s->cache[i].user);
            s->cache[i].user = NULL;
        }
    }
}
