/* dispatcher: the shopd child that delivers pending orders (the outbox rows of
 * the orders table, see outbox.h) to DynamoDB.
 *
 * Each order is written with PutItem and the condition
 * attribute_not_exists(order_id), so a repeated send (after a crash, an expired
 * lease, a lost answer) never writes twice: ConditionalCheckFailed means it is
 * already there. Throttling, 5xx and network errors are retried with capped
 * exponential back-off and full jitter; an error about the order itself parks
 * it as 'failed' with the reason; an error about the setup (credentials, table,
 * endpoint) leaves every order pending and is logged once.
 *
 * Up to DISPATCHER_CONCURRENCY PutItems are in flight at once (shared/
 * dynamo_multi.h, as many kept-alive connections at most), each order on its
 * own: one that is slow or failing holds up none of the others. While DynamoDB
 * fails or refuses the setup, one order at a time probes it. */
#ifndef SHOPD_DISPATCHER_H
#define SHOPD_DISPATCHER_H

#include "shared/dynamo.h"
#include "shopd/settings.h"

#include <stdbool.h>
#include <stddef.h>

/* What the dispatcher does with an order after one PutItem. */
enum dispatcher_action {
    DISPATCH_SENT,  /* written now, or found already written */
    DISPATCH_RETRY, /* transient: try this order again after a back-off */
    DISPATCH_HOLD,  /* the setup is wrong, not the order: keep it pending, pause */
    DISPATCH_PARK,  /* the order itself was refused: mark it failed */
};

/* Maps the result of a PutItem to an action. Pure. */
enum dispatcher_action dispatcher_action_for(const struct dynamo_result *r);

/* True when name follows DynamoDB's table-name rules (3 to 255 characters of
 * a-z A-Z 0-9 _ - .), so a bad DYNAMODB_TABLE is reported as a setting instead
 * of failing every order. */
bool dispatcher_table_name_valid(const char *name);

/* shopd --create-table: makes sure the settings' table exists and is ACTIVE at
 * the settings' endpoint (AWS when DYNAMODB_ENDPOINT is empty). Returns 0, or
 * -1 with a one-line reason in err. */
int dispatcher_create_table(const struct shopd_settings *settings, char *err, size_t errlen);

/* Runs the dispatcher loop until SIGTERM (finishing the orders in flight);
 * wake_fd is an eventfd that workers write after each checkout. Returns the
 * process exit code. */
int dispatcher_run(const struct shopd_settings *settings, int wake_fd);

#endif
