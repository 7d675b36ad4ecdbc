#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "shared/dynamo.h"

Test(dynamo_backoff, full_jitter_stays_within_the_exponential_ceiling)
{
    /* random = 0 gives the floor, random = ceiling gives the ceiling itself. */
    cr_assert_eq(dynamo_backoff_delay_ms(0, 100, 20000, 0), 0);
    cr_assert_eq(dynamo_backoff_delay_ms(0, 100, 20000, 100), 100);
    cr_assert_eq(dynamo_backoff_delay_ms(0, 100, 20000, 101), 0, "wraps modulo ceiling + 1");
    cr_assert_eq(dynamo_backoff_delay_ms(1, 100, 20000, 200), 200);
    cr_assert_eq(dynamo_backoff_delay_ms(3, 100, 20000, 800), 800);
    cr_assert_eq(dynamo_backoff_delay_ms(3, 100, 20000, 801), 0);
    for (unsigned attempt = 0; attempt < 10; attempt++) {
        long ceiling = 100L << attempt;
        if (ceiling > 20000)
            ceiling = 20000;
        for (uint64_t r = 0; r < 5000; r += 7) {
            uint64_t rnd = r * 2654435761u;
            long d = dynamo_backoff_delay_ms(attempt, 100, 20000, rnd);
            cr_assert(d >= 0 && d <= ceiling, "attempt %u: %ld not in [0, %ld]", attempt, d, ceiling);
        }
    }
}

Test(dynamo_backoff, cap_holds_for_huge_attempts_without_overflow)
{
    cr_assert_eq(dynamo_backoff_delay_ms(200, 100, 20000, 20000), 20000);
    cr_assert_eq(dynamo_backoff_delay_ms(UINT32_MAX, 100, 20000, UINT64_MAX), (long)(UINT64_MAX % 20001));
    cr_assert_leq(dynamo_backoff_delay_ms(70, 1, 30000, UINT64_MAX - 1), 30000);
    cr_assert_eq(dynamo_backoff_delay_ms(5, 500, 300, 300), 300, "base above cap is capped");
}

Test(dynamo_backoff, nonsense_bounds_give_no_delay)
{
    cr_assert_eq(dynamo_backoff_delay_ms(3, 0, 1000, 12345), 0);
    cr_assert_eq(dynamo_backoff_delay_ms(3, 100, 0, 12345), 0);
    cr_assert_eq(dynamo_backoff_delay_ms(3, -5, 1000, 12345), 0);
}

Test(dynamo_backoff, random_delays_vary_and_stay_in_range)
{
    long seen_low = 0, seen_high = 0;
    for (int i = 0; i < 200; i++) {
        long d = dynamo_backoff_ms(4, 100, 20000);
        cr_assert(d >= 0 && d <= 1600, "%ld", d);
        if (d < 800)
            seen_low++;
        else
            seen_high++;
    }
    cr_assert(seen_low > 0 && seen_high > 0, "jitter spreads over the range (%ld low, %ld high)", seen_low,
              seen_high);
}

Test(dynamo_classify, aws_error_types)
{
    cr_assert_eq(dynamo_classify(200, NULL), DYNAMO_OK);
    cr_assert_eq(dynamo_classify(400, "ConditionalCheckFailedException"), DYNAMO_CONDITION_FAILED);
    cr_assert_eq(dynamo_classify(400, "ProvisionedThroughputExceededException"), DYNAMO_RETRYABLE);
    cr_assert_eq(dynamo_classify(400, "ThrottlingException"), DYNAMO_RETRYABLE);
    cr_assert_eq(dynamo_classify(400, "RequestLimitExceeded"), DYNAMO_RETRYABLE);
    cr_assert_eq(dynamo_classify(500, "InternalServerError"), DYNAMO_RETRYABLE);
    cr_assert_eq(dynamo_classify(503, "ServiceUnavailable"), DYNAMO_RETRYABLE);
    cr_assert_eq(dynamo_classify(502, NULL), DYNAMO_RETRYABLE);
    cr_assert_eq(dynamo_classify(504, "SomethingNew"), DYNAMO_RETRYABLE);
    cr_assert_eq(dynamo_classify(429, NULL), DYNAMO_RETRYABLE);
    cr_assert_eq(dynamo_classify(400, "ValidationException"), DYNAMO_FATAL);
    cr_assert_eq(dynamo_classify(400, "ResourceNotFoundException"), DYNAMO_FATAL);
    cr_assert_eq(dynamo_classify(400, "UnrecognizedClientException"), DYNAMO_FATAL);
    cr_assert_eq(dynamo_classify(403, "MissingAuthenticationTokenException"), DYNAMO_FATAL);
    cr_assert_eq(dynamo_classify(404, NULL), DYNAMO_FATAL);
    cr_assert_eq(dynamo_classify(301, NULL), DYNAMO_FATAL);
    cr_assert_eq(dynamo_classify(200, "ValidationException"), DYNAMO_FATAL, "an error type is never OK");
    cr_assert_str_eq(dynamo_class_name(DYNAMO_CONDITION_FAILED), "CONDITION_FAILED");
}

Test(dynamo_client, endpoint_defaults_from_region_and_rejects_bad_urls)
{
    char err[256];
    struct dynamo_config cfg = {.region = "eu-central-1"};
    struct dynamo_client *c = dynamo_client_new(&cfg, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(dynamo_client_endpoint(c), "https://dynamodb.eu-central-1.amazonaws.com");
    dynamo_client_free(c);

    cfg = (struct dynamo_config){0};
    c = dynamo_client_new(&cfg, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(dynamo_client_endpoint(c), "https://dynamodb.us-east-1.amazonaws.com");
    dynamo_client_free(c);

    const char *bad[] = {"ftp://127.0.0.1:21", "not a url", "http://"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg = (struct dynamo_config){.endpoint = bad[i]};
        err[0] = '\0';
        cr_expect_null(dynamo_client_new(&cfg, err, sizeof(err)), "accepted %s", bad[i]);
        cr_expect(strstr(err, "DYNAMODB_ENDPOINT") != NULL, "reason names the setting: %s", err);
    }
}

Test(dynamo_client, missing_credentials_are_refused_without_a_request)
{
    char err[256];
    /* Port 9 on loopback: were a request sent, the result would be a transport error, not this. */
    struct dynamo_config cfg = {.endpoint = "http://127.0.0.1:9", .access_key_id = "AKID"};
    struct dynamo_client *c = dynamo_client_new(&cfg, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    struct dynamo_result r;
    cr_assert_eq(dynamo_describe_table(c, "Orders", &r), DYNAMO_FATAL);
    cr_assert_eq(r.http_status, 0);
    cr_assert_str_eq(r.error_type, "MissingCredentials");
    cr_assert(strstr(r.message, "AWS_SECRET_ACCESS_KEY") != NULL, "%s", r.message);
    dynamo_result_cleanup(&r);
    cr_assert_null(r.message);
    dynamo_client_free(c);
}
