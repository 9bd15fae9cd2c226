/* common.c - what the handlers share: opening what their row names, and
 * printing, times and stdin. */
#include "ctxvault.h"

#include "base/time.h"
#include "base/util.h"
#include "crypto/fieldcrypt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A handler opening what its row does not name is a mistake in the
 * table, caught on the first run rather than left to differ by path. */
static bool allowed(const cmd_ctx *c, int need, const char *what)
{
    if (c->needs & need)
        return true;
    cv_err("internal error: this command's row in the command table does "
           "not name %s", what);
    return false;
}

int need_reader(cmd_ctx *c, bool need_policy)
{
    char err[1024];
    int code, problems = 0;
    if (!allowed(c, NEEDS_READER, "a reader"))
        return EX_SOFTWARE;
    if (cv_fieldcrypt_init() < 0) {
        cv_err("cannot initialise libsodium");
        return EX_SOFTWARE;
    }
    c->kr = cv_keyring_load(c->cfg.keyring_file, err, sizeof err);
    if (!c->kr) {
        cv_err("%s", err);
        return EX_CONFIG;
    }
    c->ds = cv_datakeys_of_instance(c->cfg.datakeys_file, c->kr, false, 0);
    if (need_policy) {
        c->pol = cv_policy_load(c->cfg.policy_file, true, &problems);
        if (!c->pol || problems)
            return EX_CONFIG;
    }
    c->db = cv_db_open_reader(c->cfg.db_file, &code, err, sizeof err);
    if (!c->db) {
        cv_err("%s", err);
        return code;
    }
    return 0;
}

cv_session *need_writer(cmd_ctx *c, int *status)
{
    if (!allowed(c, NEEDS_WRITER, "a writer session")) {
        *status = EX_SOFTWARE;
        return NULL;
    }
    return cv_session_open(&c->cfg, "ctxvault", false, status);
}

int change(cmd_ctx *c, json_t *req, json_t **reply_out)
{
    int status = 0;
    char err[512];
    char *actor = cv_session_actor();
    json_object_set_new(req, "actor", json_string(actor));
    free(actor);
    cv_session *s = need_writer(c, &status);
    if (!s)
        return status;
    json_t *r = cv_session_call(s, req, err, sizeof err);
    cv_session_close(&s);
    if (!r) {
        cv_err("%s", err);
        return EX_TEMPFAIL;
    }
    if (!json_is_true(json_object_get(r, "ok"))) {
        const char *why = json_string_value(json_object_get(r, "error"));
        cv_err("%s", why ? why : "the request failed");
        json_t *st = json_object_get(r, "status");
        status = json_is_integer(st) ? (int)json_integer_value(st) : EX_DATAERR;
        json_decref(r);
        return status;
    }
    *reply_out = r;
    return 0;
}

cv_client *need_client(cmd_ctx *c)
{
    char err[512];
    if (!allowed(c, NEEDS_CLIENT, "a client connection"))
        return NULL;
    cv_client *cl = cv_client_open_config(c->home, c->conf, err, sizeof err);
    if (!cl)
        cv_err("%s", err);
    return cl;
}

cv_control *need_control(cmd_ctx *c, int wait_ms)
{
    if (!allowed(c, NEEDS_CLIENT, "a connection to store"))
        return NULL;
    return cv_control_find(&c->cfg, wait_ms);
}

int client_status(cv_client *cl, int rc)
{
    if (rc == 0)
        return 0;
    const char *code = cv_client_error_code(cl);
    cv_err("%s%s", cv_client_error(cl),
           rc == CV_CLIENT_FAILED ? " (is ctxvault-store --serve running?)" : "");
    if (rc == CV_CLIENT_FAILED)
        return EX_UNAVAILABLE;
    if (!strcmp(code, "not_found"))
        return EX_NOINPUT;
    if (!strcmp(code, "forbidden"))
        return EX_NOPERM;
    if (!strcmp(code, "internal"))
        return EX_SOFTWARE;
    return EX_DATAERR;
}

int print_line(char *text)
{
    int rc = text && (fputs(text, stdout) == EOF || fputc('\n', stdout) == EOF)
                 ? EX_IOERR : 0;
    free(text);
    return rc;
}

bool parse_time_opt(const char *opt, const char *v, int64_t *ms)
{
    if (cv_time_parse(v, strlen(v), ms))
        return true;
    cv_err("%s '%s' is not an RFC 3339 time (e.g. 2026-11-22T10:00:00Z)", opt, v);
    return false;
}

char *read_stdin(const char *what)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    char buf[65536];
    size_t n;
    while (m && (n = fread(buf, 1, sizeof buf, stdin)) > 0)
        fwrite(buf, 1, n, m);
    if (!m || fclose(m) != 0 || ferror(stdin)) {
        cv_err("cannot read %s from stdin", what);
        free(text);
        return NULL;
    }
    return text;
}

char *read_arg_or_stdin(const char *arg, const char *what)
{
    return strcmp(arg, "-") != 0 ? cv_strdup(arg) : read_stdin(what);
}
