/* dynamo: a small DynamoDB client (JSON protocol 1.0, SigV4-signed, libcurl).
 *
 * One client holds one CURL easy handle, so consecutive calls reuse the
 * kept-alive connection; a client is not thread-safe (one per thread or
 * process, like the dispatcher's). Every call fills a struct dynamo_result
 * that says what happened and how a caller should react: OK, CONDITION_FAILED
 * (the ConditionExpression was false), RETRYABLE (throttling, 5xx, network,
 * timeouts: try again later with dynamo_backoff_ms) or FATAL (retrying the same
 * request cannot help: validation, unknown table, bad or missing credentials). */
#ifndef SHARED_DYNAMO_H
#define SHARED_DYNAMO_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dynamo_class {
    DYNAMO_OK = 0,
    DYNAMO_CONDITION_FAILED,
    DYNAMO_RETRYABLE,
    DYNAMO_FATAL,
};

struct dynamo_result {
    enum dynamo_class cls;
    long http_status; /* 0 when no HTTP answer arrived (or none was sent) */
    char *error_type; /* after '#' in __type ("ValidationException"), or one of this module's own:
                         "MissingCredentials", "TransportError", "InvalidResponse", "HttpError",
                         "Timeout"; NULL on success */
    char *message;    /* human-readable reason, NULL on success */
    json_t *body;     /* the parsed response body, or NULL */
};

struct dynamo_config {
    const char *region;        /* NULL or "": us-east-1 */
    const char *endpoint;      /* NULL or "": https://dynamodb.<region>.amazonaws.com */
    const char *access_key_id; /* missing credentials make every call fail with MissingCredentials */
    const char *secret_access_key;
    const char *session_token; /* optional */
    long connect_timeout_ms;   /* 0: 3000 */
    long timeout_ms;           /* whole request; 0: 10000 */
};

struct dynamo_client;

/* Creates a client; strings in cfg are copied. Returns NULL with a one-line
 * reason in err when the endpoint is not an http:// or https:// URL. Missing
 * credentials do not fail here (so a daemon can start and report them per
 * call). Free with dynamo_client_free. */
struct dynamo_client *dynamo_client_new(const struct dynamo_config *cfg, char *err, size_t errlen);
/* Closes the connection and frees the client (NULL is a no-op). */
void dynamo_client_free(struct dynamo_client *c);
/* The endpoint URL in use (owned by the client). */
const char *dynamo_client_endpoint(const struct dynamo_client *c);
/* How many new connections the client has opened so far: stays at 1 while the
 * connection is kept alive (for logs, metrics and tests). */
long dynamo_client_connects(const struct dynamo_client *c);

/* Sends operation op ("PutItem", ...) with request (borrowed; serialised as
 * is) and fills out, which the caller releases with dynamo_result_cleanup.
 * Returns out->cls. */
enum dynamo_class dynamo_call(struct dynamo_client *c, const char *op, json_t *request,
                              struct dynamo_result *out);

/* PutItem of item (borrowed, DynamoDB attribute-value JSON) into table; with
 * condition (e.g. "attribute_not_exists(order_id)") a false condition gives
 * DYNAMO_CONDITION_FAILED. condition may be NULL. */
enum dynamo_class dynamo_put_item(struct dynamo_client *c, const char *table, json_t *item,
                                  const char *condition, struct dynamo_result *out);
/* The PutItem request body dynamo_put_item sends (new reference, NULL when
 * table is not UTF-8); item is borrowed. */
json_t *dynamo_put_item_request(const char *table, json_t *item, const char *condition);
/* GetItem (strongly consistent) of key (borrowed); out->body["Item"] is absent when there is none. */
enum dynamo_class dynamo_get_item(struct dynamo_client *c, const char *table, json_t *key,
                                  struct dynamo_result *out);
/* One Scan page of table (for tests and tools): out->body has Items and Count. */
enum dynamo_class dynamo_scan(struct dynamo_client *c, const char *table, struct dynamo_result *out);
/* CreateTable with hash key order_id (S) and PAY_PER_REQUEST billing. */
enum dynamo_class dynamo_create_table(struct dynamo_client *c, const char *table, struct dynamo_result *out);
/* DescribeTable; out->body["Table"]["TableStatus"] tells the state. */
enum dynamo_class dynamo_describe_table(struct dynamo_client *c, const char *table,
                                        struct dynamo_result *out);
/* Polls DescribeTable until the table is ACTIVE or timeout_ms passes (then
 * RETRYABLE with error_type "Timeout"). Retryable errors are polled through. */
enum dynamo_class dynamo_wait_active(struct dynamo_client *c, const char *table, long timeout_ms,
                                     struct dynamo_result *out);
/* Makes sure table exists and is ACTIVE: DescribeTable, CreateTable when it
 * is not found (a concurrent creator is fine), then waits up to two minutes.
 * Works against AWS and local DynamoDB alike. out may be NULL; otherwise the
 * caller cleans it up. Logs one line on creation and on failure. */
enum dynamo_class dynamo_ensure_table(struct dynamo_client *c, const char *table, struct dynamo_result *out);

/* --- one request at a time on a caller's easy handle (for dynamo_multi) ---
 *
 * dynamo_call is dynamo_transfer_start, curl_easy_perform, dynamo_transfer_finish.
 * A caller that runs several requests at once (curl_multi) starts each on its
 * own easy handle h, lets curl run it, and finishes it with curl's result. */
struct dynamo_transfer;

/* Signs operation op with request (borrowed, serialised now) and sets up h
 * (reset first) to send it with c's endpoint, credentials and timeouts. Returns
 * the transfer, owned by the caller until dynamo_transfer_finish; or NULL when
 * the request cannot be built (missing credentials, no body), with out filled
 * as dynamo_call would (the caller cleans it up). h and c must outlive it. */
struct dynamo_transfer *dynamo_transfer_start(struct dynamo_client *c, CURL *h, const char *op,
                                              json_t *request, struct dynamo_result *out);
/* Reads the answer of a transfer curl ended with rc into out (which the caller
 * cleans up), adds its new connections to c's count, frees t (not its handle).
 * Returns out->cls. */
enum dynamo_class dynamo_transfer_finish(struct dynamo_transfer *t, CURLcode rc, struct dynamo_result *out);

/* Frees what r holds and zeroes it (NULL is a no-op). */
void dynamo_result_cleanup(struct dynamo_result *r);

/* The class of an HTTP answer: http_status with the error type from __type
 * (after '#', may be NULL). Pure. */
enum dynamo_class dynamo_classify(long http_status, const char *error_type);
/* "OK", "CONDITION_FAILED", "RETRYABLE", "FATAL" (static strings). */
const char *dynamo_class_name(enum dynamo_class cls);

/* Capped exponential back-off with full jitter: a delay in
 * [0, min(cap_ms, base_ms * 2^attempt)] picked by random (any 64-bit value,
 * e.g. from a random source). Pure; attempt counts from 0; never overflows. */
long dynamo_backoff_delay_ms(unsigned attempt, long base_ms, long cap_ms, uint64_t random);
/* dynamo_backoff_delay_ms with a fresh random value from the OS. */
long dynamo_backoff_ms(unsigned attempt, long base_ms, long cap_ms);

#endif
