/* ini.h - the one parser for ctxvault's configuration and policy files.
 *
 *   # comment            ; comment
 *   [section]
 *   key = value          # trailing comment
 *
 * Keys and values are trimmed; a value may be quoted with "..." to keep
 * '#' or surrounding spaces. Errors name the file and line. */
#ifndef CV_INI_H
#define CV_INI_H

#include <stddef.h>

/* Called for each key. Returns 0 to go on, or fills err (a reason, without
 * file or line) and returns -1; parsing goes on so every problem is found. */
typedef int (cv_ini_handler_fn)(void *arg, const char *section, const char *key,
                             const char *value, int line, char *err,
                             size_t errlen);

/* Parse text (named source in messages). Every problem is reported through
 * report(arg2, "SOURCE:LINE: reason"). Returns the number of problems. */
typedef void (cv_ini_report_fn)(void *arg, const char *msg);
int cv_ini_parse(const char *source, const char *text, cv_ini_handler_fn *handler,
              void *arg, cv_ini_report_fn *report, void *rarg);

#endif
