/* test_segment.c - user.segment's rules (lib/ops/segment.h) and their
 * [segments] settings (lib/base/config.c), without a store. */
#include "harness.h"

#include "base/config.h"
#include "ops/segment.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define DAY 86400000LL
#define NOW (1796000000000LL)

/* The built-in rules, as a program gets them with no config file. */
static cv_segment_rules defaults(void)
{
    cv_config c;
    cv_config_load(&c, cvt_tmpdir(), NULL);
    cv_segment_rules r = c.segments;
    cv_config_free(&c);
    return r;
}

static const char *classify(int64_t n, int64_t types, int64_t first_ago,
                            int64_t last_ago)
{
    cv_segment_rules r = defaults();
    cv_segment_inputs in = {.now = NOW, .interactions = n, .types = types,
                            .first_ts = first_ago < 0 ? -1 : NOW - first_ago,
                            .last_ts = last_ago < 0 ? -1 : NOW - last_ago};
    return cv_segment_classify(&r, &in);
}

TEST(the_built_in_rules_are_the_documented_ones)
{
    cv_segment_rules r = defaults();
    CHECK_INT(r.window_ms, 30 * DAY);
    CHECK_INT(r.dormant_ms, 14 * DAY);
    CHECK_INT(r.new_ms, 7 * DAY);
    CHECK_INT(r.power_count, 100);
    CHECK_INT(r.power_types, 3);
    CHECK_INT(r.regular_count, 20);
    CHECK_INT(r.stale_ms, 3600000);
}

TEST(each_segment_for_the_inputs_that_make_it)
{
    CHECK_STR(classify(0, 0, -1, -1), "dormant");        /* none at all */
    CHECK_STR(classify(0, 0, 40 * DAY, 20 * DAY), "dormant");
    CHECK_STR(classify(5, 2, 2 * DAY, DAY), "new");
    CHECK_STR(classify(150, 3, 20 * DAY, DAY), "power");
    CHECK_STR(classify(30, 1, 20 * DAY, DAY), "regular");
    CHECK_STR(classify(5, 3, 20 * DAY, DAY), "casual");
}

TEST(the_rules_apply_in_order_at_their_bounds)
{
    /* dormant at exactly dormant_after, not a ms before */
    CHECK_STR(classify(150, 3, 30 * DAY, 14 * DAY), "dormant");
    CHECK_STR(classify(150, 3, 30 * DAY, 14 * DAY - 1), "power");
    /* new while the first is less than new_within old, even if busy */
    CHECK_STR(classify(150, 3, 7 * DAY - 1, DAY), "new");
    CHECK_STR(classify(150, 3, 7 * DAY, DAY), "power");
    /* dormancy wins over newness */
    CHECK_STR(classify(1, 1, 15 * DAY, 15 * DAY), "dormant");
    /* power needs both the count and the variety */
    CHECK_STR(classify(100, 3, 20 * DAY, DAY), "power");
    CHECK_STR(classify(99, 3, 20 * DAY, DAY), "regular");
    CHECK_STR(classify(1000, 2, 20 * DAY, DAY), "regular");
    CHECK_STR(classify(20, 1, 20 * DAY, DAY), "regular");
    CHECK_STR(classify(19, 3, 20 * DAY, DAY), "casual");
}

TEST(configured_rules_change_the_outcome)
{
    cv_segment_rules r = defaults();
    cv_segment_inputs in = {.now = NOW, .interactions = 50, .types = 2,
                            .first_ts = NOW - 20 * DAY, .last_ts = NOW - DAY};
    CHECK_STR(cv_segment_classify(&r, &in), "regular");
    r.power_count = 40;
    r.power_types = 2;
    CHECK_STR(cv_segment_classify(&r, &in), "power");
    r.regular_count = 60;
    r.power_count = 100;
    CHECK_STR(cv_segment_classify(&r, &in), "casual");
    r.dormant_ms = DAY;
    CHECK_STR(cv_segment_classify(&r, &in), "dormant");
}

TEST(the_rules_json_names_every_rule)
{
    cv_segment_rules r = defaults();
    json_t *j = cv_segment_rules_json(&r);
    CHECK(j);
    CHECK_INT(json_object_size(j), 7);
    CHECK_INT(json_integer_value(json_object_get(j, "power_interactions")), 100);
    CHECK_INT(json_integer_value(json_object_get(j, "window_ms")), 30 * DAY);
    json_t *k = cv_segment_rules_json(&r);
    CHECK(json_equal(j, k));
    r.stale_ms++;
    json_t *l = cv_segment_rules_json(&r);
    CHECK(!json_equal(j, l));
    json_decref(j);
    json_decref(k);
    json_decref(l);
}

TEST(segments_settings_are_checked)
{
    CHECK_INT(cv_config_check_text("t", "[segments]\nwindow = 14d\n"
                                   "power_types = 2\nstale_after = 5m\n"), 0);
    CHECK_INT(cv_config_check_text("t", "[segments]\nwindow = soon\n"), 1);
    CHECK_INT(cv_config_check_text("t", "[segments]\npower_types = -1\n"), 1);
    CHECK_INT(cv_config_check_text("t", "[segments]\npowr_types = 2\n"), 1);
    CHECK_INT(cv_config_check_text("t", "[segments]\nstale_after = 4000d\n"), 1);
}
