/* The dispatcher's decisions without HTTP: what each DynamoDB answer does to an
 * order, and which table names are refused as a setting. */
#include <criterion/criterion.h>
#include <string.h>

#include "shopd/dispatcher.h"

static enum dispatcher_action act(enum dynamo_class cls, long status, const char *type)
{
    struct dynamo_result r = {.cls = cls, .http_status = status, .error_type = (char *)type};
    return dispatcher_action_for(&r);
}

Test(dispatcher, written_or_already_there_counts_as_sent)
{
    cr_assert_eq(act(DYNAMO_OK, 200, NULL), DISPATCH_SENT);
    cr_assert_eq(act(DYNAMO_CONDITION_FAILED, 400, "ConditionalCheckFailedException"), DISPATCH_SENT);
}

Test(dispatcher, throttling_5xx_and_network_errors_retry)
{
    cr_assert_eq(act(DYNAMO_RETRYABLE, 400, "ProvisionedThroughputExceededException"), DISPATCH_RETRY);
    cr_assert_eq(act(DYNAMO_RETRYABLE, 400, "ThrottlingException"), DISPATCH_RETRY);
    cr_assert_eq(act(DYNAMO_RETRYABLE, 503, "HttpError"), DISPATCH_RETRY);
    cr_assert_eq(act(DYNAMO_RETRYABLE, 0, "TransportError"), DISPATCH_RETRY);
    cr_assert_eq(act(DYNAMO_RETRYABLE, 0, "Timeout"), DISPATCH_RETRY);
}

Test(dispatcher, errors_about_the_order_park_it)
{
    cr_assert_eq(act(DYNAMO_FATAL, 400, "ValidationException"), DISPATCH_PARK);
    cr_assert_eq(act(DYNAMO_FATAL, 400, "SerializationException"), DISPATCH_PARK);
    cr_assert_eq(act(DYNAMO_FATAL, 400, "ItemCollectionSizeLimitExceededException"), DISPATCH_PARK);
    cr_assert_eq(act(DYNAMO_FATAL, 0, "InvalidRequest"), DISPATCH_PARK);
}

Test(dispatcher, errors_about_the_setup_hold_every_order)
{
    cr_assert_eq(act(DYNAMO_FATAL, 0, "MissingCredentials"), DISPATCH_HOLD);
    cr_assert_eq(act(DYNAMO_FATAL, 400, "UnrecognizedClientException"), DISPATCH_HOLD);
    cr_assert_eq(act(DYNAMO_FATAL, 400, "InvalidSignatureException"), DISPATCH_HOLD);
    cr_assert_eq(act(DYNAMO_FATAL, 400, "ExpiredTokenException"), DISPATCH_HOLD);
    cr_assert_eq(act(DYNAMO_FATAL, 400, "AccessDeniedException"), DISPATCH_HOLD);
    cr_assert_eq(act(DYNAMO_FATAL, 400, "ResourceNotFoundException"), DISPATCH_HOLD);
    cr_assert_eq(act(DYNAMO_FATAL, 403, "SomethingNew"), DISPATCH_HOLD, "403 is about who asks");
    cr_assert_eq(act(DYNAMO_FATAL, 404, "HttpError"), DISPATCH_HOLD, "not DynamoDB answering");
    cr_assert_eq(act(DYNAMO_FATAL, 0, "TransportError"), DISPATCH_HOLD, "unusable endpoint URL");
}

Test(dispatcher, table_names_follow_dynamodb_rules)
{
    cr_assert(dispatcher_table_name_valid("Orders"));
    cr_assert(dispatcher_table_name_valid("abc"));
    cr_assert(dispatcher_table_name_valid("shop.orders-v2_prod"));
    char longest[256];
    memset(longest, 'a', 255);
    longest[255] = '\0';
    cr_assert(dispatcher_table_name_valid(longest));
    char too_long[257];
    memset(too_long, 'a', 256);
    too_long[256] = '\0';
    cr_assert_not(dispatcher_table_name_valid(too_long));
    cr_assert_not(dispatcher_table_name_valid("x"));
    cr_assert_not(dispatcher_table_name_valid("ab"));
    cr_assert_not(dispatcher_table_name_valid(""));
    cr_assert_not(dispatcher_table_name_valid(NULL));
    cr_assert_not(dispatcher_table_name_valid("my table"));
    cr_assert_not(dispatcher_table_name_valid("orders/1"));
    cr_assert_not(dispatcher_table_name_valid("Bestellungen\xc3\xa4"));
}
