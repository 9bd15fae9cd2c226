/* keys.c - ctxvault keys: list, rotate, passphrase, rewrap, retire. */
#include "ctxvault.h"

#include "base/util.h"
#include "ops/rewrap.h"
#include "ops/stepped.h"
#include "storage/sealcheck.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* keys passphrase set|change|remove. The passphrases come from the
 * terminal (echo off; a new one twice) or, when stdin is not a terminal,
 * from its lines: the current one first, then the new one. Never from
 * argv, nor from key_command: that is how programs get the one in use. */
static int cmd_passphrase(cmd_ctx *c, const char *what)
{
    char err[512];
    const char *path = c->cfg.keyring_file;
    bool set = !strcmp(what, "set"), remove = !strcmp(what, "remove");
    char *old = NULL, *pass = NULL, *again = NULL;
    int rc = EX_NOINPUT;
    /* the state first, so nobody types a passphrase for nothing */
    int sealed = cv_keyring_file_protected(path, err, sizeof err);
    if (sealed < 0) {
        cv_err("%s", err);
        return EX_CONFIG;
    }
    if (set == (sealed == 1)) {
        cv_err(set ? "%s is already protected by a passphrase (ctxvault keys "
                     "passphrase change or remove)"
                   : "%s is not protected by a passphrase (ctxvault keys "
                     "passphrase set)", path);
        return EX_DATAERR;
    }
    if (!set && !(old = cv_keyring_passphrase_read(STDIN_FILENO, "current passphrase: ",
                                           err, sizeof err))) {
        cv_err("current passphrase: %s", err);
        goto out;
    }
    if (!remove) {
        if (!(pass = cv_keyring_passphrase_read(STDIN_FILENO, "new passphrase: ", err,
                                        sizeof err))) {
            cv_err("new passphrase: %s", err);
            goto out;
        }
        if (isatty(STDIN_FILENO)) {
            again = cv_keyring_passphrase_read(STDIN_FILENO, "new passphrase again: ",
                                       err, sizeof err);
            if (!again || strcmp(pass, again) != 0) {
                cv_err("the new passphrase was not typed the same twice; "
                       "nothing changed");
                rc = EX_DATAERR;
                goto out;
            }
        }
    }
    int r = set      ? cv_keyring_passphrase_set(path, pass, err, sizeof err)
            : remove ? cv_keyring_passphrase_remove(path, old, err, sizeof err)
                     : cv_keyring_passphrase_change(path, old, pass, err,
                                                    sizeof err);
    if (r < 0) {
        cv_err("%s", err);
        rc = errno == EALREADY ? EX_DATAERR
             : errno == CV_KEYRING_REJECTED || errno == EINVAL ? EX_CONFIG
                                                               : EX_IOERR;
        goto out;
    }
    printf("{\"protected\":%s}\n", remove ? "false" : "true");
    if (remove)
        cv_info("%s is no longer protected by a passphrase", path);
    else
        cv_info("%s is sealed under the %spassphrase: programs read it from "
                "CTXVAULT_PASSPHRASE_FD or key_command ([keys] in %s); running "
                "ones keep the keys they hold", path, set ? "" : "new ",
                c->cfg.config_file ? c->cfg.config_file : "ctxvault.conf");
    rc = fflush(stdout) == EOF ? EX_IOERR : 0;
out:
    cv_keyring_passphrase_free(&old);
    cv_keyring_passphrase_free(&pass);
    cv_keyring_passphrase_free(&again);
    return rc;
}

/* keys rewrap [--batch N]: the run (lib/ops/rewrap.c) and its summary. */
static int keys_rewrap(cmd_ctx *c, int argc, char **argv)
{
    int64_t batch = 1000;
    if (argc == 4 && !strcmp(argv[2], "--batch")) {
        if (!cv_parse_int(argv[3], 1, 100000, &batch)) {
            cv_err("--batch '%s' is not a number from 1 to 100000", argv[3]);
            return EX_USAGE;
        }
    } else if (argc != 2) {
        cv_err("usage: ctxvault keys rewrap [--batch N]");
        return EX_USAGE;
    }
    int status = 0;
    cv_session *s = need_writer(c, &status);
    if (!s)
        return status;
    cv_stepped_rewrap_totals t;
    status = cv_stepped_rewrap(s, batch, &t);
    cv_session_close(&s);
    printf("{\"examined\":%lld,\"rewrapped\":%lld,\"fields\":%lld,"
           "\"skipped\":%lld,\"data_keys\":%lld,\"ms\":%lld,"
           "\"rows_per_s\":%.0f,\"complete\":%s}\n",
           (long long)t.examined, (long long)t.rewrapped, (long long)t.fields,
           (long long)t.skipped, (long long)t.data_keys, (long long)t.ms,
           t.ms > 0 ? (double)t.examined * 1000.0 / (double)t.ms
                    : (double)t.examined,
           !status && !t.skipped ? "true" : "false");
    if (!status && t.skipped) {
        cv_err("%lld %s could not be rewrapped (see above; ctxvault verify)",
               (long long)t.skipped, cv_plural(t.skipped, "row", "rows"));
        status = EX_DATAERR;
    }
    return status;
}

/* keys retire VERSION: refused (65) while anything still needs the
 * version to decrypt or verify; then marked retired in the keyring. */
static int keys_retire(cmd_ctx *c, int argc, char **argv)
{
    int64_t v;
    char err[512];
    if (argc != 3 || !cv_parse_int(argv[2], 1, UINT32_MAX, &v)) {
        cv_err("usage: ctxvault keys retire VERSION");
        return EX_USAGE;
    }
    int rc = need_reader(c, false);
    if (rc)
        return rc;
    if (!cv_keyring_has(c->kr, (uint32_t)v)) {
        cv_err("key version %lld is not in the keyring (ctxvault keys list)",
               (long long)v);
        return EX_DATAERR;
    }
    if ((uint32_t)v == cv_keyring_primary(c->kr)) {
        cv_err("key version %lld is the primary: rotate, rewrap, then retire it",
               (long long)v);
        return EX_DATAERR;
    }
    json_t *uses = cv_sealcheck_key_uses(&c->cfg, c->db, c->ds, (uint32_t)v, err, sizeof err);
    if (!uses) {
        cv_err("%s", err);
        return EX_IOERR;
    }
    int64_t rows = json_integer_value(json_object_get(uses, "rows"));
    int64_t backups = json_integer_value(json_object_get(uses, "backups"));
    int64_t archives = json_integer_value(json_object_get(uses, "archives"));
    int64_t journal = json_integer_value(json_object_get(uses, "journal_batches"));
    int64_t dead = json_integer_value(json_object_get(uses, "deadletters"));
    int64_t dks = json_integer_value(json_object_get(uses, "data_keys"));
    bool marked = json_is_true(json_object_get(uses, "rewrapped"));
    json_object_set_new(uses, "version", json_integer(v));
    if (rows || backups || archives || journal || dead || dks || !marked) {
        json_object_set_new(uses, "retired", json_false());
        cv_err("key version %lld is still needed: %lld %s, %lld %s, %lld %s, "
               "%lld journal %s, %lld dead %s, %lld data %s%s",
               (long long)v, (long long)rows, cv_plural(rows, "row", "rows"),
               (long long)backups, cv_plural(backups, "backup", "backups"),
               (long long)archives, cv_plural(archives, "archive", "archives"),
               (long long)journal, cv_plural(journal, "batch", "batches"),
               (long long)dead, cv_plural(dead, "letter", "letters"),
               (long long)dks, cv_plural(dks, "key", "keys"),
               marked ? "" : "; no finished rewrap is recorded");
        /* only the steps still to do: after a finished rewrap, no rewrap */
        if (rows || dks || !marked)
            cv_err("run ctxvault keys rewrap");
        if (backups || archives || journal)
            cv_err("take a new backup and delete the older ones "
                   "(ctxvault-backup prune, or remove them with their .json)");
        if (dead)
            cv_err("review and remove old dead-letter files "
                   "(ctxvault deadletter)");
        rc = EX_DATAERR;
    } else if (cv_keyring_retire(c->cfg.keyring_file, (uint32_t)v, err,
                                 sizeof err) < 0) {
        cv_err("%s", err);
        json_decref(uses);
        return EX_IOERR;
    } else {
        json_object_set_new(uses, "retired", json_true());
        cv_info("key version %lld is retired: it no longer decrypts or "
                "verifies, and still recognises its pseudonyms", (long long)v);
    }
    char *text = json_dumps(uses, JSON_COMPACT);
    if (!text || printf("%s\n", text) < 0)
        rc = rc ? rc : EX_IOERR;
    free(text);
    json_decref(uses);
    return rc;
}

/* keys list: the versions and how many rows each one's checksum is under;
 * keys rotate: a new primary version; passphrase, rewrap, retire: above. */
int cmd_keys(cmd_ctx *c, int argc, char **argv)
{
    char err[512];
    if (argc == 3 && !strcmp(argv[1], "passphrase") &&
        (!strcmp(argv[2], "set") || !strcmp(argv[2], "change") ||
         !strcmp(argv[2], "remove")))
        return cmd_passphrase(c, argv[2]);
    if (argc >= 2 && !strcmp(argv[1], "rewrap"))
        return keys_rewrap(c, argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "retire"))
        return keys_retire(c, argc, argv);
    if (argc != 2 || (strcmp(argv[1], "list") && strcmp(argv[1], "rotate"))) {
        cv_err("usage: ctxvault keys list|rotate|rewrap [--batch N]|"
               "retire VERSION|passphrase set|change|remove");
        return EX_USAGE;
    }
    if (!strcmp(argv[1], "rotate")) {
        uint32_t v;
        if (cv_keyring_rotate(c->cfg.keyring_file, &v, err, sizeof err) < 0) {
            cv_err("%s", err);
            return errno == CV_KEYRING_REJECTED ||
                   errno == CV_KEYRING_UNAVAILABLE || errno == EINVAL
                       ? EX_CONFIG : EX_IOERR;
        }
        printf("{\"rotated\":true,\"primary\":%u}\n", v);
        cv_info("key version %u is the primary: restart the pipeline "
                "(tools/supervise.sh stop, start) so that new writes use it; "
                "every older version still decrypts", v);
        return fflush(stdout) == EOF ? EX_IOERR : 0;
    }
    cv_keyring *kr = cv_keyring_load(c->cfg.keyring_file, err, sizeof err);
    if (!kr) {
        cv_err("%s", err);
        return EX_CONFIG;
    }
    json_t *list = cv_keyring_describe(kr);
    cv_keyring_destroy(&kr);
    /* stderr: the listing's shape stays what scripts parse */
    if (cv_keyring_file_protected(c->cfg.keyring_file, err, sizeof err) == 1)
        cv_info("%s is protected by a passphrase", c->cfg.keyring_file);
    else
        cv_info("%s is not protected by a passphrase", c->cfg.keyring_file);
    /* rows per version, by the first byte of their checksum */
    int rc = need_reader(c, false);
    if (!rc)
        cv_rewrap_count_rows(c->db, list);
    /* and the data keys each version wraps */
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
        if (c->ds)
            json_object_set_new(e, "data_keys", json_integer(cv_datakeys_count_kek(
                c->ds, (uint32_t)json_integer_value(json_object_get(e, "version")))));
    if (c->ds) {
        json_t *d = cv_datakeys_describe(c->ds);
        long long users = json_integer_value(json_object_get(d, "users")),
                  hours = json_integer_value(json_object_get(d, "hours"));
        cv_info("data keys: %lld %s (%lld ephemeral), %lld %s", users,
                cv_plural(users, "user", "users"),
                (long long)json_integer_value(json_object_get(d, "ephemeral_users")),
                hours, cv_plural(hours, "hour", "hours"));
        json_decref(d);
    }
    rc = 0;
    char *text = json_dumps(list, JSON_INDENT(2));
    if (!text || printf("%s\n", text) < 0 || fflush(stdout) == EOF)
        rc = EX_IOERR;
    free(text);
    json_decref(list);
    return rc;
}
