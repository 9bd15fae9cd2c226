/* ini.c - line-oriented INI parser with file:line error reporting. */
#include "base/ini.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static void reportf(cv_ini_report_fn *report, void *rarg, const char *source,
                    int line, const char *reason)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s:%d: %s", source, line, reason);
    if (report)
        report(rarg, msg);
}

/* Strip an unquoted trailing comment and unquote. NULL on a bad quote. */
static char *parse_value(char *v)
{
    v = trim(v);
    if (*v == '"') {
        char *end = strchr(v + 1, '"');
        if (!end)
            return NULL;
        *end = '\0';
        char *rest = trim(end + 1);
        if (*rest && *rest != '#' && *rest != ';')
            return NULL;
        return v + 1;
    }
    for (char *p = v; *p; p++) {
        if ((*p == '#' || *p == ';') && (p == v || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            break;
        }
    }
    return trim(v);
}

int cv_ini_parse(const char *source, const char *text, cv_ini_handler_fn *handler,
              void *arg, cv_ini_report_fn *report, void *rarg)
{
    char *copy = strdup(text);
    if (!copy) {
        reportf(report, rarg, source, 0, "out of memory");
        return 1;
    }
    char section[128] = "";
    int problems = 0, lineno = 0;
    /* strtok_r would merge empty lines and lose line numbers: split by hand */
    char *line = copy;
    while (line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';') {
            /* blank or comment */
        } else if (*s == '[') {
            char *end = strchr(s, ']');
            char *rest = end ? trim(end + 1) : NULL;
            if (!end || (*rest && *rest != '#' && *rest != ';')) {
                reportf(report, rarg, source, lineno, "malformed section header");
                problems++;
            } else {
                *end = '\0';
                char *name = trim(s + 1);
                if (!*name || strlen(name) >= sizeof section) {
                    reportf(report, rarg, source, lineno, "bad section name");
                    problems++;
                } else {
                    strcpy(section, name);
                }
            }
        } else {
            char *eq = strchr(s, '=');
            if (!eq) {
                reportf(report, rarg, source, lineno,
                        "expected 'key = value'");
                problems++;
            } else {
                *eq = '\0';
                char *key = trim(s);
                char *value = parse_value(eq + 1);
                if (!*key) {
                    reportf(report, rarg, source, lineno, "empty key");
                    problems++;
                } else if (!value) {
                    reportf(report, rarg, source, lineno, "unterminated quote");
                    problems++;
                } else {
                    char err[512] = "";
                    if (handler(arg, section, key, value, lineno, err,
                                sizeof err) != 0) {
                        reportf(report, rarg, source, lineno,
                                *err ? err : "invalid setting");
                        problems++;
                    }
                }
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    free(copy);
    return problems;
}
