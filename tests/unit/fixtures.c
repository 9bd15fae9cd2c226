/* fixtures.c - set-up shared by the unit tests. */
#include "fixtures.h"

#include "harness.h"
#include "util.h"

#include <stdlib.h>

cv_keyring *cvt_keyring(const char *name)
{
    char err[256];
    char *path = cv_fmt("%s/%s", cvt_tmpdir(), name);
    if (cv_keyring_create(path, err, sizeof err) < 0)
        cvt_fail(__FILE__, __LINE__, "create: %s", err);
    cv_keyring *kr = cv_keyring_load(path, err, sizeof err);
    if (!kr)
        cvt_fail(__FILE__, __LINE__, "load: %s", err);
    free(path);
    return kr;
}

cv_policy *cvt_policy(const char *text)
{
    int problems = -1;
    cv_policy *p = cv_policy_parse("test", text, &problems);
    if (!p || problems != 0)
        cvt_fail(__FILE__, __LINE__, "policy has %d problems", problems);
    return p;
}

const char cvt_typical_event[] =
    "{\"id\":\"ev-42\",\"user_id\":\"alice\",\"kind\":\"interaction\","
    "\"ts\":\"2026-11-22T10:04:05.123Z\",\"type\":\"search\","
    "\"email\":\"alice@example.com\",\"ip\":\"203.0.113.9\","
    "\"device\":{\"os\":\"linux\",\"browser\":\"firefox\","
    "\"screen_size\":\"1920x1080\",\"name\":\"Alice's laptop\","
    "\"device_id\":\"d-123\"},"
    "\"location\":{\"lat\":48.8566,\"lon\":2.3522,\"city\":\"Paris\","
    "\"country\":\"FR\",\"street\":\"1 rue de Rivoli\"},"
    "\"payload\":{\"search\":{\"query\":\"divorce lawyer\"},"
    "\"contact\":{\"email\":\"bob@example.com\"}},"
    "\"results\":[{\"text\":\"hello\"}]}";
