#include "dynamo.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "crypto.h"
#include "log.h"
#include "strbuf.h"
#include "xalloc.h"

#define TARGET_PREFIX "DynamoDB_20120810."
#define CONTENT_TYPE "application/x-amz-json-1.0"
#define ENSURE_TIMEOUT_MS 120000L

struct dynamo_client {
    CURL *curl;
    char *region;
    char *endpoint; /* URL the requests go to */
    char *host;     /* Host header value, signed and sent as is */
    char *path;     /* request path from the endpoint, "/" normally */
    char *access_key_id;
    char *secret_access_key;
    char *session_token;
    char *sigv4_provider; /* "aws:amz:<region>:dynamodb", for CURLOPT_AWS_SIGV4 */
    long connect_timeout_ms;
    long timeout_ms;
    long connects; /* new connections opened, summed over calls */
};

static bool empty(const char *s)
{
    return !s || !*s;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Splits the endpoint into the Host header and the path with libcurl's own URL
 * parser, so that what is signed is exactly where curl connects. */
static int parse_endpoint(struct dynamo_client *c, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    int rc = -1;
    if (curl_url_set(u, CURLUPART_URL, c->endpoint, 0) != CURLUE_OK) {
        set_err(err, errlen, "DYNAMODB_ENDPOINT %s is not a URL", c->endpoint);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        set_err(err, errlen, "DYNAMODB_ENDPOINT %s must start with http:// or https://", c->endpoint);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || empty(host)) {
        set_err(err, errlen, "DYNAMODB_ENDPOINT %s has no host", c->endpoint);
        goto out;
    }
    /* Without CURLU_DEFAULT_PORT, a port is returned only when the URL names one. */
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && port) {
        bool is_default = (strcmp(scheme, "http") == 0 && strcmp(port, "80") == 0) ||
                          (strcmp(scheme, "https") == 0 && strcmp(port, "443") == 0);
        c->host = is_default ? xstrdup(host) : xasprintf("%s:%s", host, port);
    } else {
        c->host = xstrdup(host);
    }
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && !empty(path))
        c->path = xstrdup(path);
    else
        c->path = xstrdup("/");
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return rc;
}

struct dynamo_client *dynamo_client_new(const struct dynamo_config *cfg, char *err, size_t errlen)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct dynamo_client *c = xcalloc(1, sizeof(*c));
    c->region = xstrdup(empty(cfg->region) ? "us-east-1" : cfg->region);
    c->sigv4_provider = xasprintf("aws:amz:%s:dynamodb", c->region);
    c->endpoint = empty(cfg->endpoint) ? xasprintf("https://dynamodb.%s.amazonaws.com", c->region)
                                       : xstrdup(cfg->endpoint);
    c->access_key_id = empty(cfg->access_key_id) ? NULL : xstrdup(cfg->access_key_id);
    c->secret_access_key = empty(cfg->secret_access_key) ? NULL : xstrdup(cfg->secret_access_key);
    c->session_token = empty(cfg->session_token) ? NULL : xstrdup(cfg->session_token);
    c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 3000;
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
    if (parse_endpoint(c, err, errlen) != 0) {
        dynamo_client_free(c);
        return NULL;
    }
    c->curl = curl_easy_init();
    if (!c->curl) {
        set_err(err, errlen, "cannot create a libcurl handle");
        dynamo_client_free(c);
        return NULL;
    }
    return c;
}

void dynamo_client_free(struct dynamo_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->region);
    free(c->sigv4_provider);
    free(c->endpoint);
    free(c->host);
    free(c->path);
    free(c->access_key_id);
    if (c->secret_access_key) {
        OPENSSL_cleanse(c->secret_access_key,
                        strlen(c->secret_access_key)); /* a memset before free may be dropped */
        free(c->secret_access_key);
    }
    free(c->session_token);
    free(c);
    curl_global_cleanup();
}

const char *dynamo_client_endpoint(const struct dynamo_client *c)
{
    return c->endpoint;
}

long dynamo_client_connects(const struct dynamo_client *c)
{
    return c->connects;
}

void dynamo_result_cleanup(struct dynamo_result *r)
{
    if (!r)
        return;
    free(r->error_type);
    free(r->message);
    json_decref(r->body);
    *r = (struct dynamo_result){0};
}

const char *dynamo_class_name(enum dynamo_class cls)
{
    switch (cls) {
    case DYNAMO_OK:
        return "OK";
    case DYNAMO_CONDITION_FAILED:
        return "CONDITION_FAILED";
    case DYNAMO_RETRYABLE:
        return "RETRYABLE";
    case DYNAMO_FATAL:
        return "FATAL";
    }
    return "?";
}

enum dynamo_class dynamo_classify(long http_status, const char *error_type)
{
    static const char *const retryable[] = {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    };
    if (http_status >= 200 && http_status < 300 && empty(error_type))
        return DYNAMO_OK;
    if (error_type) {
        if (strcmp(error_type, "ConditionalCheckFailedException") == 0)
            return DYNAMO_CONDITION_FAILED;
        for (size_t i = 0; i < sizeof(retryable) / sizeof(retryable[0]); i++)
            if (strcmp(error_type, retryable[i]) == 0)
                return DYNAMO_RETRYABLE;
    }
    /* 429 is not DynamoDB's way to throttle, but a proxy in between may answer it. */
    if (http_status >= 500 || http_status == 429)
        return DYNAMO_RETRYABLE;
    return DYNAMO_FATAL;
}

long dynamo_backoff_delay_ms(unsigned attempt, long base_ms, long cap_ms, uint64_t random)
{
    if (base_ms <= 0 || cap_ms <= 0)
        return 0;
    /* Doubling stops once the cap is reached, so no shift ever overflows. */
    long ceiling = base_ms < cap_ms ? base_ms : cap_ms;
    for (unsigned i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;
    return (long)(random % ((uint64_t)ceiling + 1));
}

long dynamo_backoff_ms(unsigned attempt, long base_ms, long cap_ms)
{
    uint64_t r;
    crypto_random_bytes(&r, sizeof(r));
    return dynamo_backoff_delay_ms(attempt, base_ms, cap_ms, r);
}

/* Fills out as a failure of this module's own kind (no HTTP answer involved). */
static enum dynamo_class fail(struct dynamo_result *out, enum dynamo_class cls, const char *type,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum dynamo_class fail(struct dynamo_result *out, enum dynamo_class cls, const char *type,
                              const char *fmt, ...)
{
    out->cls = cls;
    free(out->error_type);
    free(out->message);
    out->error_type = xstrdup(type);
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&out->message, fmt, ap) < 0)
        out->message = xstrdup(type);
    va_end(ap);
    return cls;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    strbuf_add(userdata, data, size * nmemb);
    return size * nmemb;
}

/* Network-level failures are worth retrying; only a request curl could never
 * send anywhere (bad URL, missing protocol) is a configuration error. */
static enum dynamo_class classify_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return DYNAMO_FATAL;
    default:
        return DYNAMO_RETRYABLE;
    }
}

static char *header_line(const char *name, const char *value)
{
    return xasprintf("%s: %s", name, value);
}

static struct curl_slist *add_header(struct curl_slist *list, const char *name, const char *value)
{
    char *line = header_line(name, value);
    struct curl_slist *l = curl_slist_append(list, line);
    free(line);
    if (!l) {
        log_error("dynamo: out of memory building headers");
        abort();
    }
    return l;
}

static void read_error(struct dynamo_result *out)
{
    const char *type = json_string_value(json_object_get(out->body, "__type"));
    const char *msg = json_string_value(json_object_get(out->body, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(out->body, "Message"));
    if (type) {
        const char *hash = strrchr(type, '#');
        out->error_type = xstrdup(hash ? hash + 1 : type);
    }
    if (msg)
        out->message = xstrdup(msg);
}

/* One request being sent: what curl reads from and writes into until it ends. */
struct dynamo_transfer {
    struct dynamo_client *c;
    CURL *h;
    char *op;
    char *body;
    char *target;
    struct curl_slist *hdrs;
    struct strbuf resp;
    char errbuf[CURL_ERROR_SIZE];
};

static void transfer_free(struct dynamo_transfer *t)
{
    curl_slist_free_all(t->hdrs);
    free(t->resp.p);
    free(t->target);
    free(t->body);
    free(t->op);
    free(t);
}

struct dynamo_transfer *dynamo_transfer_start(struct dynamo_client *c, CURL *h, const char *op,
                                              json_t *request, struct dynamo_result *out)
{
    *out = (struct dynamo_result){0};
    if (!c->access_key_id || !c->secret_access_key) {
        fail(out, DYNAMO_FATAL, "MissingCredentials",
             "AWS credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        return NULL;
    }
    if (empty(op) || !request) {
        fail(out, DYNAMO_FATAL, "InvalidRequest", "no operation or request body given");
        return NULL;
    }
    char *body = json_dumps(request, JSON_COMPACT);
    if (!body) {
        fail(out, DYNAMO_FATAL, "InvalidRequest", "%s: request is not serialisable JSON", op);
        return NULL;
    }
    struct dynamo_transfer *t = xcalloc(1, sizeof(*t));
    t->c = c;
    t->h = h;
    t->op = xstrdup(op);
    t->body = body;
    t->target = xasprintf(TARGET_PREFIX "%s", op);

    /* libcurl signs the request itself (AWS Signature Version 4 over the method,
       path, every header set here, X-Amz-Date and the body's SHA-256); the
       signatures are checked against botocore's own implementation in the
       dispatcher's tests (tests/support/sigv4_front.py). */
    t->hdrs = add_header(t->hdrs, "Host", c->host);
    t->hdrs = add_header(t->hdrs, "Content-Type", CONTENT_TYPE);
    t->hdrs = add_header(t->hdrs, "X-Amz-Target", t->target);
    if (!empty(c->session_token))
        t->hdrs = add_header(t->hdrs, "X-Amz-Security-Token", c->session_token);
    /* No "Expect:" line to suppress 100-continue: libcurl 7.88 signs such an
       empty header and then does not send it (the signature fails), and it
       asks for 100-continue only above 1 MiB, more than a DynamoDB item holds. */

    curl_easy_reset(h); /* keeps the connection cache: the next call reuses the connection */
    curl_easy_setopt(h, CURLOPT_URL, c->endpoint);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, t->body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(t->body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, t->hdrs);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, c->sigv4_provider);
    curl_easy_setopt(h, CURLOPT_USERNAME, c->access_key_id);
    curl_easy_setopt(h, CURLOPT_PASSWORD, c->secret_access_key);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t->resp);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    return t;
}

enum dynamo_class dynamo_transfer_finish(struct dynamo_transfer *t, CURLcode rc, struct dynamo_result *out)
{
    *out = (struct dynamo_result){0};
    struct dynamo_client *c = t->c;
    const char *op = t->op;
    long connects = 0;
    if (curl_easy_getinfo(t->h, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
        c->connects += connects;

    if (rc != CURLE_OK) {
        enum dynamo_class cls = classify_curl(rc);
        fail(out, cls, rc == CURLE_OPERATION_TIMEDOUT ? "Timeout" : "TransportError", "%s to %s: %s", op,
             c->endpoint, t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
        log_debug("dynamo: %s failed: %s (%s)", op, out->message, dynamo_class_name(cls));
        transfer_free(t);
        return cls;
    }
    struct strbuf *resp = &t->resp;
    curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &out->http_status);
    if (resp->len) {
        json_error_t jerr;
        out->body = json_loadb(resp->p, resp->len, 0, &jerr);
    }
    bool ok_status = out->http_status >= 200 && out->http_status < 300;
    if (!ok_status)
        read_error(out);
    out->cls = dynamo_classify(out->http_status, out->error_type);
    if (ok_status && !json_is_object(out->body)) {
        /* Something other than DynamoDB answered (a captive proxy, a wrong endpoint). */
        fail(out, DYNAMO_RETRYABLE, "InvalidResponse", "%s: HTTP %ld without a JSON object body", op,
             out->http_status);
    } else if (!ok_status && !out->error_type) {
        enum dynamo_class cls = out->cls;
        fail(out, cls, "HttpError", "%s: HTTP %ld%s%.200s", op, out->http_status, resp->len ? ": " : "",
             resp->p ? resp->p : "");
    } else if (!ok_status && !out->message) {
        out->message = xstrdup(out->error_type);
    }
    log_debug("dynamo: %s HTTP %ld %s%s%s", op, out->http_status, dynamo_class_name(out->cls),
              out->error_type ? " " : "", out->error_type ? out->error_type : "");
    transfer_free(t);
    return out->cls;
}

enum dynamo_class dynamo_call(struct dynamo_client *c, const char *op, json_t *request,
                              struct dynamo_result *out)
{
    struct dynamo_transfer *t = dynamo_transfer_start(c, c->curl, op, request, out);
    if (!t)
        return out->cls;
    return dynamo_transfer_finish(t, curl_easy_perform(c->curl), out);
}

json_t *dynamo_put_item_request(const char *table, json_t *item, const char *condition)
{
    json_t *req = json_pack("{s:s?, s:O?}", "TableName", table, "Item", item);
    if (req && condition)
        json_object_set_new(req, "ConditionExpression", json_string(condition));
    return req;
}

enum dynamo_class dynamo_put_item(struct dynamo_client *c, const char *table, json_t *item,
                                  const char *condition, struct dynamo_result *out)
{
    /* A NULL request (a table name that is not UTF-8) is refused by dynamo_call. */
    json_t *req = dynamo_put_item_request(table, item, condition);
    enum dynamo_class cls = dynamo_call(c, "PutItem", req, out);
    json_decref(req);
    return cls;
}

enum dynamo_class dynamo_get_item(struct dynamo_client *c, const char *table, json_t *key,
                                  struct dynamo_result *out)
{
    json_t *req = json_pack("{s:s?, s:O?, s:b}", "TableName", table, "Key", key, "ConsistentRead", 1);
    enum dynamo_class cls = dynamo_call(c, "GetItem", req, out);
    json_decref(req);
    return cls;
}

enum dynamo_class dynamo_scan(struct dynamo_client *c, const char *table, struct dynamo_result *out)
{
    json_t *req = json_pack("{s:s?}", "TableName", table);
    enum dynamo_class cls = dynamo_call(c, "Scan", req, out);
    json_decref(req);
    return cls;
}

enum dynamo_class dynamo_create_table(struct dynamo_client *c, const char *table, struct dynamo_result *out)
{
    json_t *req =
        json_pack("{s:s?, s:[{s:s, s:s}], s:[{s:s, s:s}], s:s}", "TableName", table, "AttributeDefinitions",
                  "AttributeName", "order_id", "AttributeType", "S", "KeySchema", "AttributeName", "order_id",
                  "KeyType", "HASH", "BillingMode", "PAY_PER_REQUEST");
    enum dynamo_class cls = dynamo_call(c, "CreateTable", req, out);
    json_decref(req);
    return cls;
}

enum dynamo_class dynamo_describe_table(struct dynamo_client *c, const char *table, struct dynamo_result *out)
{
    json_t *req = json_pack("{s:s?}", "TableName", table);
    enum dynamo_class cls = dynamo_call(c, "DescribeTable", req, out);
    json_decref(req);
    return cls;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static const char *table_status(const struct dynamo_result *r)
{
    return json_string_value(json_object_get(json_object_get(r->body, "Table"), "TableStatus"));
}

enum dynamo_class dynamo_wait_active(struct dynamo_client *c, const char *table, long timeout_ms,
                                     struct dynamo_result *out)
{
    long deadline = (long)clock_mono_ms() + timeout_ms;
    for (unsigned attempt = 0;; attempt++) {
        enum dynamo_class cls = dynamo_describe_table(c, table, out);
        if (cls == DYNAMO_FATAL || cls == DYNAMO_CONDITION_FAILED)
            return cls;
        if (cls == DYNAMO_OK) {
            const char *status = table_status(out);
            if (status && strcmp(status, "ACTIVE") == 0)
                return DYNAMO_OK;
        }
        long left = deadline - (long)clock_mono_ms();
        if (left <= 0) {
            const char *status = cls == DYNAMO_OK ? table_status(out) : NULL;
            return fail(out, DYNAMO_RETRYABLE, "Timeout", "table %s not ACTIVE after %ld ms (last: %s)",
                        table, timeout_ms, status ? status : (out->message ? out->message : "no answer"));
        }
        dynamo_result_cleanup(out);
        /* Polls start fast (local DynamoDB creates tables in milliseconds) and slow down to 2 s. */
        long delay = 50 + dynamo_backoff_ms(attempt, 100, 2000);
        sleep_ms(delay < left ? delay : left);
    }
}

enum dynamo_class dynamo_ensure_table(struct dynamo_client *c, const char *table, struct dynamo_result *out)
{
    struct dynamo_result local;
    struct dynamo_result *r = out ? out : &local;
    enum dynamo_class cls = dynamo_describe_table(c, table, r);
    if (cls == DYNAMO_FATAL && r->error_type && strcmp(r->error_type, "ResourceNotFoundException") == 0) {
        dynamo_result_cleanup(r);
        cls = dynamo_create_table(c, table, r);
        if (cls == DYNAMO_OK) {
            log_info("dynamo: created table %s at %s", table, c->endpoint);
        } else if (r->error_type && strcmp(r->error_type, "ResourceInUseException") == 0) {
            /* Someone else created it between our describe and create: just wait for it. */
            cls = DYNAMO_OK;
        }
    }
    if (cls == DYNAMO_OK) {
        const char *status = table_status(r);
        if (!status || strcmp(status, "ACTIVE") != 0) {
            dynamo_result_cleanup(r);
            cls = dynamo_wait_active(c, table, ENSURE_TIMEOUT_MS, r);
        }
    }
    if (cls != DYNAMO_OK)
        log_error("dynamo: table %s at %s not ready: %s: %s", table, c->endpoint,
                  r->error_type ? r->error_type : dynamo_class_name(cls), r->message ? r->message : "");
    if (!out)
        dynamo_result_cleanup(&local);
    return cls;
}
