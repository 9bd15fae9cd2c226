/* test_syncconf.c - the [sync] settings (lib/base/config.c): defaults, peers
 * and allowed clients, and the problems reported for bad ones. */
#include "harness.h"

#include "base/config.h"
#include "base/util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define KEY_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

/* Load text as the instance's config; the problems' messages in *msgs
 * (malloc'ed). Returns the number of problems. */
static int load(const char *text, cv_config *c, char **msgs)
{
    const char *dir = cvt_tmpdir();
    char *path = cv_fmt("%s/sync.conf", dir);
    char *errpath = cv_fmt("%s/err", dir);
    cv_write_file_atomic(path, text, strlen(text), 0600, false);
    int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int saved = dup(2);
    dup2(fd, 2);
    int problems = cv_config_load(c, dir, path);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    size_t n;
    *msgs = cv_read_file(errpath, 1 << 16, &n);
    free(path);
    free(errpath);
    return problems;
}

TEST(sync_defaults)
{
    cv_config c;
    CHECK_INT(cv_config_load(&c, cvt_tmpdir(), NULL), 0);
    CHECK(c.sync_device == NULL);
    CHECK(!c.sync_relay);
    CHECK(c.sync_listen == NULL);
    CHECK_INT(c.nsync_peers, 0);
    CHECK_INT(c.nsync_allow, 0);
    char *key = cv_fmt("%s/keys/sync.key", c.home);
    CHECK_STR(c.sync_key_file, key);
    free(key);
    CHECK_INT(c.sync_wait_ms, 1000);
    CHECK_INT(c.sync_retry_min_ms, 200);
    CHECK_INT(c.sync_retry_max_ms, 30000);
    CHECK_INT(c.sync_batch, 1000);
    cv_config_free(&c);
}

TEST(sync_settings_are_read)
{
    cv_config c;
    char *msgs;
    int problems = load("[sync]\n"
                        "device = laptop-1\n"
                        "listen = tcp://0.0.0.0:9470\n"
                        "peer.relay = tcp://relay.example:9470 " KEY_A "\n"
                        "peer.phone = ipc://run/phone.sock  " KEY_B "\n"
                        "allow.phone = " KEY_B "\n"
                        "allow.tablet = 0123456789ABCDEF0123456789ABCDEF"
                        "0123456789ABCDEF0123456789ABCDEF\n"
                        "key_file = /etc/ctxvault/sync.key\n"
                        "wait = 5s\nretry_min = 1s\nretry_max = 1m\n"
                        "batch = 50\n", &c, &msgs);
    CHECK_INT(problems, 0);
    free(msgs);
    CHECK_STR(c.sync_device, "laptop-1");
    CHECK_STR(c.sync_listen, "tcp://0.0.0.0:9470");
    CHECK_INT(c.nsync_peers, 2);
    CHECK_STR(c.sync_peers[0].name, "relay");
    CHECK_STR(c.sync_peers[0].endpoint, "tcp://relay.example:9470");
    CHECK_STR(c.sync_peers[0].key, KEY_A);
    CHECK_STR(c.sync_peers[1].name, "phone");
    char *ipc = cv_fmt("ipc://%s/run/phone.sock", c.home); /* from home */
    CHECK_STR(c.sync_peers[1].endpoint, ipc);
    free(ipc);
    CHECK_STR(c.sync_peers[1].key, KEY_B);
    CHECK_INT(c.nsync_allow, 2);
    CHECK_STR(c.sync_allow[0].name, "phone");
    CHECK(c.sync_allow[0].endpoint == NULL);
    CHECK_STR(c.sync_allow[1].name, "tablet");
    CHECK_STR(c.sync_allow[1].key, KEY_A); /* kept in lowercase */
    CHECK_STR(c.sync_key_file, "/etc/ctxvault/sync.key");
    CHECK_INT(c.sync_wait_ms, 5000);
    CHECK_INT(c.sync_retry_min_ms, 1000);
    CHECK_INT(c.sync_retry_max_ms, 60000);
    CHECK_INT(c.sync_batch, 50);
    cv_config_free(&c);
}

TEST(sync_relay_without_device)
{
    cv_config c;
    char *msgs;
    CHECK_INT(load("[sync]\nrelay = yes\nlisten = tcp://*:9470\n"
                   "allow.a = " KEY_A "\n", &c, &msgs), 0);
    free(msgs);
    CHECK(c.sync_relay);
    CHECK(c.sync_device == NULL);
    cv_config_free(&c);
}

/* Each bad text gives exactly one problem, whose message has want. */
static const struct {
    const char *text, *want;
} bad[] = {
    {"device = a/b\n", "device 'a/b' must be 1 to 32"},
    {"device = 0123456789012345678901234567890123\n", "must be 1 to 32"},
    {"relay = maybe\n", "relay 'maybe' is not yes or no"},
    {"listen = udp://x:1\n", "listen 'udp://x:1' is not tcp://"},
    {"listen = tcp://hostonly\n", "is not tcp://ADDRESS:PORT"},
    {"peer.a = tcp://h:1\n", "key '' is not a CURVE public key"},
    {"peer.a = " KEY_A "\n", "is not 'ENDPOINT HEXKEY'"},
    {"peer.a = http://h:1 " KEY_A "\n", "is not 'ENDPOINT HEXKEY'"},
    {"peer.a = tcp://h:1 " KEY_A "0\n", "is not a CURVE public key of 64"},
    {"peer.a = tcp://h:1 " KEY_A " extra\n", "is not a CURVE public key"},
    {"peer.b@d = tcp://h:1 " KEY_A "\n", "peer.b@d: the name must be"},
    {"peer. = tcp://h:1 " KEY_A "\n", "peer.: the name must be"},
    {"peer.a = tcp://h:1 " KEY_A "\npeer.a = tcp://h:2 " KEY_B "\n",
     "peer.a is given twice"},
    {"allow.x = 12345\n", "allow.x: key '12345' is not a CURVE public key"},
    {"allow.x = " KEY_A "\nallow.x = " KEY_B "\n", "allow.x is given twice"},
    {"allow.x = " KEY_A "\nallow.y = " KEY_A "\n",
     "allow.y has the same key as allow.x"},
    {"key_file =\n", "empty path for 'key_file'"},
    {"wait = soon\n", "wait 'soon' is not a duration"},
    {"retry_min = 1ms\n", "retry_min '1ms' is not a duration from 10ms"},
    {"retry_max = 2h\n", "retry_max '2h' is not a duration"},
    {"retry_min = 1m\nretry_max = 10s\n",
     "retry_min (60000 ms) is above retry_max (10000 ms)"},
    {"retry_min = 1m\n", "is above retry_max (30000 ms)"},
    {"batch = 0\n", "batch '0' is not a number from 1 to 10000"},
    {"batch = 10001\n", "batch '10001'"},
    {"device = d1\nrelay = yes\n", "a relay has no device id"},
    {"color = blue\n", "unknown setting 'color' in [sync]"},
};

TEST(sync_bad_settings_are_named)
{
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *text = cv_fmt("[sync]\n%s", bad[i].text);
        cv_config c;
        char *msgs;
        int problems = load(text, &c, &msgs);
        if (problems != 1 || !msgs || !strstr(msgs, bad[i].want))
            cvt_fail(__FILE__, __LINE__, "%s: %d problems, wanted one with "
                     "\"%s\":\n%s", bad[i].text, problems, bad[i].want,
                     msgs ? msgs : "");
        /* cv_config_check_text finds the same */
        int saved = dup(2);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        int checked = cv_config_check_text("t", text);
        dup2(saved, 2);
        close(saved);
        close(null);
        CHECK_INT(checked, 1);
        free(msgs);
        free(text);
        cv_config_free(&c);
    }
}

TEST(sync_problems_name_the_file)
{
    cv_config c;
    char *msgs;
    CHECK_INT(load("[sync]\nrelay = yes\ndevice = d1\n", &c, &msgs), 1);
    CHECK(msgs && strstr(msgs, "sync.conf: [sync] relay = yes with device = "
                                "d1: a relay has no device id"));
    free(msgs);
    cv_config_free(&c);
    CHECK_INT(load("[sync]\nbatch = x\n", &c, &msgs), 1);
    CHECK(msgs && strstr(msgs, "sync.conf:2: batch 'x'"));
    free(msgs);
    cv_config_free(&c);
}
