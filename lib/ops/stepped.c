/* stepped.c - long maintenance in short requests: compaction and rewrap
 * (stepped.h). */
#include "ops/stepped.h"

#include "base/progress.h"
#include "base/util.h"

#include <stdio.h>
#include <string.h>

static int64_t member(json_t *r, const char *name)
{
    return json_integer_value(json_object_get(r, name));
}

int cv_stepped_compact(cv_session *s, int64_t pages, int64_t max_ms,
                   cv_stepped_compact_totals *t)
{
    int status = 0;
    int64_t t0 = cv_mono_ms();
    *t = (cv_stepped_compact_totals){.freelist_before = -1, .pages_before = -1};
    json_t *req = json_pack("{s:s}", "op", "db.compact");
    if (pages)
        json_object_set_new(req, "pages", json_integer(pages));
    if (max_ms)
        json_object_set_new(req, "max_ms", json_integer(max_ms));
    cv_progress pr;
    cv_progress_init(&pr, "compact");
    for (bool more = true; more && !cv_stop_requested;) {
        char err[512], extra[64];
        json_t *r = cv_session_ok(cv_session_call(s, req, err, sizeof err), err, "compact");
        if (!r) {
            status = EX_SOFTWARE;
            break;
        }
        if (t->requests++ == 0) {
            t->freelist_before = member(r, "freelist_before");
            t->pages_before = member(r, "pages_before");
        }
        t->freed += member(r, "freed");
        t->freelist_after = member(r, "freelist_after");
        t->pages_after = member(r, "pages_after");
        const char *mode = json_string_value(json_object_get(r, "auto_vacuum"));
        snprintf(t->auto_vacuum, sizeof t->auto_vacuum, "%s", mode ? mode : "");
        const char *msg = json_string_value(json_object_get(r, "message"));
        snprintf(t->message, sizeof t->message, "%s", msg ? msg : "");
        more = json_is_true(json_object_get(r, "more"));
        json_decref(r);
        snprintf(extra, sizeof extra, "%lld pages left", (long long)t->freelist_after);
        cv_progress_update(&pr, (uint64_t)t->freed, extra);
        if (more)
            cv_nap_ms(1);
    }
    cv_progress_done(&pr);
    json_decref(req);
    t->ms = cv_mono_ms() - t0;
    return status;
}

int cv_stepped_rewrap(cv_session *s, int64_t batch, cv_stepped_rewrap_totals *t)
{
    char err[512];
    int status = 0;
    int64_t t0 = cv_mono_ms(), after = 0;
    *t = (cv_stepped_rewrap_totals){0};
    cv_progress pr;
    cv_progress_init(&pr, "rewrap");
    for (;;) {
        /* clean: no row was skipped so far, so a done run may be marked */
        json_t *req = json_pack("{s:s, s:I, s:I, s:b}", "op", "rewrap", "after",
                                (json_int_t)after, "batch", (json_int_t)batch,
                                "clean", t->skipped == 0);
        json_t *r = cv_session_ok(cv_session_call(s, req, err, sizeof err), err,
                                "rewrap");
        json_decref(req);
        if (!r) {
            status = EX_TEMPFAIL;
            break;
        }
        t->examined += json_integer_value(json_object_get(r, "examined"));
        t->rewrapped += json_integer_value(json_object_get(r, "rewrapped"));
        t->fields += json_integer_value(json_object_get(r, "fields"));
        t->skipped += json_integer_value(json_object_get(r, "skipped"));
        t->data_keys += json_integer_value(json_object_get(r, "data_keys"));
        size_t i;
        json_t *k;
        json_array_foreach(json_object_get(r, "skipped_rows"), i, k)
            cv_err("row %lld (event %s) left as it is: %s",
                   (long long)json_integer_value(json_object_get(k, "seq")),
                   json_string_value(json_object_get(k, "id")),
                   json_string_value(json_object_get(k, "why")));
        after = json_integer_value(json_object_get(r, "next"));
        bool done = json_is_true(json_object_get(r, "done"));
        json_decref(r);
        char extra[64];
        snprintf(extra, sizeof extra, "%lld rewrapped", (long long)t->rewrapped);
        cv_progress_update(&pr, (uint64_t)t->examined, extra);
        if (done)
            break;
    }
    cv_progress_done(&pr);
    t->ms = cv_mono_ms() - t0;
    return status;
}
