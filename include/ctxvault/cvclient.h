/* cvclient.h - a C application's way into a running ctxvault: the
 * context API on store's control socket (doc/PROTOCOL.md), without
 * ZeroMQ, JSON libraries or SQLite in the caller's code.
 *
 *     char err[256];
 *     cv_client *c = cv_client_open(NULL, err, sizeof err);
 *     cv_client_filter f = {.user = "user-00001", .type = "search"};
 *     cv_client_iter *it = cv_client_interactions(c, &f);
 *     char *ev;
 *     while (cv_client_iter_next(it, &ev) > 0) {
 *         puts(ev);
 *         free(ev);
 *     }
 *     cv_client_iter_destroy(&it);
 *     cv_client_close(&c);
 *
 * Everything handed out is JSON text, malloc'ed: the caller frees it.
 * Calls return 0 when store answered "ok", CV_CLIENT_REFUSED when it
 * answered with an error (cv_client_error and cv_client_error_code say
 * which), CV_CLIENT_FAILED when no answer came (no store, a timeout, a
 * broken reply; cv_client_error says why). One handle is one connection:
 * use it from one thread at a time. */
#ifndef CV_CLIENT_H
#define CV_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

/* both negative: cv_client_iter_next returns 1 for an event, and callers
 * loop while it returns more than 0 */
#define CV_CLIENT_REFUSED (-2)
#define CV_CLIENT_FAILED (-1)

typedef struct cv_client cv_client;
typedef struct cv_client_iter cv_client_iter;

/* Connect to the instance at home (NULL: $CTXVAULT_HOME, else
 * ~/.ctxvault), reading its configuration for the control endpoint and
 * CURVE keys. Nothing is sent yet. NULL with a reason in err. */
cv_client *cv_client_open(const char *home, char *err, size_t errlen);
/* The same with a configuration file other than HOME/ctxvault.conf. */
cv_client *cv_client_open_config(const char *home, const char *config_file,
                                 char *err, size_t errlen);
void cv_client_close(cv_client **p);

/* Per request, in ms (default 10000). */
void cv_client_set_timeout(cv_client *c, int timeout_ms);

/* The last call's error message and code ("bad_request", "not_found",
 * "forbidden", ... or "transport" when no answer came); "" when it
 * succeeded. Valid until the next call. */
const char *cv_client_error(const cv_client *c);
const char *cv_client_error_code(const cv_client *c);

/* Any request as JSON text; *reply gets the reply's JSON text whenever
 * store answered (ok or not). */
int cv_client_call(cv_client *c, const char *request, char **reply);

/* The user's latest context (name NULL), or the latest whose type is
 * name; *context gets the event. decrypt: ask store to open sealed
 * fields (refused, "forbidden", unless the instance allows it). */
int cv_client_context_load(cv_client *c, const char *user, const char *name,
                           bool decrypt, char **context);
/* The context whose event id is id; with user (or NULL: any user's),
 * only if it is that user's ("not_found" otherwise). */
int cv_client_context_by_id(cv_client *c, const char *user, const char *id,
                            bool decrypt, char **context);
/* The user's contexts, newest first, at most limit (0: 100; at most
 * 1000): *contexts gets a JSON array. */
int cv_client_context_list(cv_client *c, const char *user, int limit,
                           bool decrypt, char **contexts);
/* {"profile":{...}|null,"event":{...}|null} */
int cv_client_profile_get(cv_client *c, const char *user, bool decrypt,
                          char **profile);
/* The database's size by kind and its files, as db.size replies. */
int cv_client_db_size(cv_client *c, char **sizes);

/* --- writes (each committed by store before it answers) --------------- */

#define CV_CLIENT_ID_MAX 128

/* A context to save. */
typedef struct {
    const char *user;     /* required */
    const char *name;     /* its name (what context.load's name finds); NULL: none */
    const char *ts;       /* RFC 3339; NULL: store's clock */
    const char *fields;   /* the context's members: a JSON object's text */
    /* in: the id to store it under, or "" for one made here (time-ordered,
     * random); out: the id. The call resends with it once when no answer
     * came, and a caller that got CV_CLIENT_FAILED can call again with it:
     * either way the context is stored once. */
    char id[CV_CLIENT_ID_MAX + 1];
    bool stored;          /* out: false when that id was stored already */
} cv_client_context;

/* context.save. */
int cv_client_context_save(cv_client *c, cv_client_context *ctx);
/* interactions.save: n events (each a JSON object's text; "kind" and
 * "user_id" may be left out: "interaction" and user). One with a "ts" but
 * no "id" gets one store derives from its content, as ingest does, so any
 * resend stores nothing twice. One with neither gets a new id here, kept
 * for the call's own resends after a timeout: two identical such events
 * are two, and the caller sending them again stores them again.
 * *reply gets store's
 * reply: {"stored":N,"duplicates":N,"rejected":[{"index":i,"error":".."}],
 * "ids":[id or null, ...]}; a bad event is rejected alone (by index), the
 * others are stored. At most 1000 events and 1 MiB per call. */
int cv_client_interactions_save(cv_client *c, const char *user,
                                const char *const *events, size_t n,
                                char **reply);
/* context.delete: the context with id, every version of name, or (all)
 * every context of the user; exactly one. *deleted gets the count. */
int cv_client_context_delete(cv_client *c, const char *user, const char *id,
                             const char *name, bool all, long long *deleted);
/* profile.set: settings is a JSON object's text with any of
 * privacy_level, retention_days (null: kept until erased), preferences
 * (an object) and fields (other members); a setting left out keeps its
 * value. *profile gets the profile as profile.get gives it. A shorter
 * retention applies to the rows already stored; a longer one only to new
 * rows (retention only ever tightens). */
int cv_client_profile_set(cv_client *c, const char *user, const char *settings,
                          char **profile);
/* Rows whose ts is in [since, until) (RFC 3339; NULL: open, but not
 * both): {"period":{},"events":N,"bytes":N,"active_users":N,
 * "by_kind":{KIND:{"events":N,"bytes":N,"by_type":{TYPE:N}}}}. */
int cv_client_stats_period(cv_client *c, const char *since, const char *until,
                           char **stats);
/* The user's segment, {"segment":S,"computed_at":T,"recomputed":bool,
 * "inputs":{...}}: the stored one while fresh; refresh: computed again. */
int cv_client_segment(cv_client *c, const char *user, bool refresh,
                      char **segment);
/* One db.compact request (pages per step, 0: 256; max_ms, 0: 50): its
 * reply; while its "more" is true, call again. */
int cv_client_compact(cv_client *c, int pages, int max_ms, char **result);
/* A model cache entry: value is JSON text, kept ttl seconds; user (NULL:
 * none) ties it to a user, and it is erased with them. */
int cv_client_cache_put(cv_client *c, const char *ns, const char *key,
                        const char *value, long long ttl, const char *user);
/* The user's cache entries: the one of ns and key, all of ns (key NULL),
 * or all (both NULL); audited. *reply: {"deleted":N}. */
int cv_client_cache_delete(cv_client *c, const char *user, const char *ns,
                           const char *key, char **reply);
/* 0 with *value (JSON text) on a hit, or NULL on a miss (never put, or
 * past its ttl). */
int cv_client_cache_get(cv_client *c, const char *ns, const char *key,
                        char **value);
/* {"schema_version":N,"journal_batch":N,"last_sweep":T|null,
 * "last_backup":T|null,"cache":{...}} */
int cv_client_meta(cv_client *c, char **meta);

/* interactions.query, page by page behind an iterator. */
typedef struct {
    const char *user;      /* required */
    const char *type;      /* click, search, navigation, ...; NULL: any */
    const char *since;     /* RFC 3339, inclusive; NULL: open */
    const char *until;     /* RFC 3339, exclusive; NULL: open */
    int page;              /* rows per request (0: 100; at most 1000) */
    long long max;         /* stop after this many events (0: every one);
                            * the cursor then resumes right after them */
    const char *cursor;    /* resume after a cursor an iterator gave */
    bool decrypt;
} cv_client_filter;

/* NULL only when out of memory; errors come from cv_client_iter_next. */
cv_client_iter *cv_client_interactions(cv_client *c, const cv_client_filter *f);
/* The next event, newest first: 1 with *event (JSON text), 0 after the
 * last, or CV_CLIENT_REFUSED / CV_CLIENT_FAILED (cv_client_error says
 * why; the iterator can be resumed from its cursor). */
int cv_client_iter_next(cv_client_iter *it, char **event);
/* The cursor after the last page fetched (NULL before the first, and
 * after the last): a new iterator resumes there. */
const char *cv_client_iter_cursor(const cv_client_iter *it);
/* Requests the iterator made (pages fetched). */
int cv_client_iter_pages(const cv_client_iter *it);
void cv_client_iter_destroy(cv_client_iter **p);

#endif
