/* test_optable.c - store's table of control ops (serve/store_serve.c):
 * every family's rows in it once, names fit for a metric label, and the
 * shared checks of net/control.c. */
#include "harness.h"

#include "ctx/ctxapi.h"
#include "ctx/ctxops.h"
#include "ctx/ctxwrite.h"
#include "net/control.h"
#include "ops/maint.h"
#include "serve/store_serve.h"
#include "sync/syncops.h"

#include <jansson.h>
#include <string.h>

static size_t times_in_table(const cv_control_op *row)
{
    size_t n = 0;
    const cv_control_op *o;
    for (size_t i = 0; (o = cv_store_serve_op(i)); i++)
        if (strcmp(o->name, row->name) == 0) {
            if (o != row)
                return 99; /* the name, but another row */
            n++;
        }
    return n;
}

TEST(every_op_is_in_the_table_once_with_a_label_safe_name_and_a_kind)
{
    const cv_control_op *o;
    size_t n = 0;
    for (size_t i = 0; (o = cv_store_serve_op(i)); i++, n++) {
        CHECK(o->name && *o->name);
        /* a metric label's value: no separators, no quotes, no spaces */
        CHECK(strcspn(o->name, ",=\" \t\n") == strlen(o->name));
        CHECK(strcmp(o->name, "other") != 0); /* the label of the rest */
        CHECK(o->fn != NULL);
        CHECK(o->kind == CV_CONTROL_READ || o->kind == CV_CONTROL_WRITE ||
              o->kind == CV_CONTROL_ADMIN);
        CHECK_INT(times_in_table(o), 1);
    }
    CHECK(n >= 30);
    /* each family's every row, so a family left out of the table fails */
    const cv_control_family *fams[] = {&cv_ctxops_family, &cv_ctxapi_family,
        &cv_ctxwrite_family, &cv_syncops_family, &cv_maint_family};
    for (size_t f = 0; f < sizeof fams / sizeof *fams; f++)
        for (o = fams[f]->ops; o->name; o++)
            CHECK_INT(times_in_table(o), 1);
}

TEST(kinds_are_named_as_the_protocol_lists_them)
{
    CHECK_STR(cv_control_kind_name(CV_CONTROL_READ), "read");
    CHECK_STR(cv_control_kind_name(CV_CONTROL_WRITE), "write");
    CHECK_STR(cv_control_kind_name(CV_CONTROL_ADMIN), "admin");
    /* the decisions roles will hang on (doc/PROTOCOL.md, "The ops") */
    CHECK(cv_control_find_op(&cv_ctxapi_family, "context.load")->kind ==
          CV_CONTROL_READ);
    CHECK(cv_control_find_op(&cv_ctxwrite_family, "context.save")->kind ==
          CV_CONTROL_WRITE);
    CHECK(cv_control_find_op(&cv_syncops_family, "sync.apply")->kind ==
          CV_CONTROL_WRITE);
    CHECK(cv_control_find_op(&cv_maint_family, "erase")->kind ==
          CV_CONTROL_ADMIN);
    CHECK(cv_control_find_op(&cv_maint_family, "sweep")->kind ==
          CV_CONTROL_ADMIN);
}

TEST(a_family_refuses_an_op_not_its_own_and_a_request_past_its_limit)
{
    json_error_t je;
    json_t *req = json_loads("{\"op\":\"sweep\"}", 0, &je);
    cv_control_request r = {.req = req, .len = 10};
    cv_syncops so = {0};
    json_t *reply = cv_control_answer(&cv_syncops_family, &so, &r);
    CHECK_STR(json_string_value(json_object_get(reply, "code")), "unknown_op");
    CHECK(r.op == NULL);
    json_decref(reply);
    /* the limit is the family's, checked before the op is looked at */
    json_object_set_new(req, "op", json_string("sync.state"));
    r.len = CV_SYNCOPS_MAX_REQUEST + 1;
    reply = cv_control_answer(&cv_syncops_family, &so, &r);
    CHECK_STR(json_string_value(json_object_get(reply, "code")), "too_large");
    CHECK_STR(json_string_value(json_object_get(reply, "error")),
              "request longer than 33554432 bytes");
    json_decref(reply);
    /* within it, the row's handler answers: sync is off here */
    r.len = 10;
    reply = cv_control_answer(&cv_syncops_family, &so, &r);
    CHECK_STR(json_string_value(json_object_get(reply, "code")), "forbidden");
    CHECK(r.op && strcmp(r.op->name, "sync.state") == 0);
    json_decref(reply);
    /* cv_maint_do answers only its own ops: NULL for the others */
    cv_writer m = {0};
    json_object_set_new(req, "op", json_string("context.load"));
    CHECK(cv_maint_do(&m, req) == NULL);
    json_object_set_new(req, "op", json_string("no.such.op"));
    CHECK(cv_maint_do(&m, req) == NULL);
    json_decref(req);
}
