/* sigv4: AWS Signature Version 4 (HMAC-SHA256) for requests to AWS services.
 *
 * The signer is split into its stages (canonical request, string to sign,
 * signature, Authorization header) so that each can be checked against the AWS
 * signing test suite. Requests are described by borrowed strings; every string
 * this module returns is a fresh heap string the caller frees.
 *
 * Path rules are those of every service but S3: the path is normalised (dot
 * segments removed, repeated slashes collapsed) unless SIGV4_NO_NORMALIZE is
 * given, and each segment is URI-encoded as given (so an already encoded path
 * is encoded a second time, as AWS expects outside S3). */
#ifndef SHARED_SIGV4_H
#define SHARED_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct sigv4_header {
    const char *name;
    const char *value;
};

/* One HTTP request as it will be sent. Headers to sign are exactly the ones
 * listed (AWS requires Host among them); X-Amz-Date, X-Amz-Security-Token,
 * X-Amz-Content-Sha256 and Authorization are added by the signer and ignored
 * here if present. */
struct sigv4_request {
    const char *method;
    const char *path;  /* without the query, e.g. "/" */
    const char *query; /* raw query string without '?', or NULL */
    const struct sigv4_header *headers;
    size_t n_headers;
    const void *body; /* may be NULL when body_len is 0 */
    size_t body_len;
};

struct sigv4_credentials {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "" when not using temporary credentials */
};

enum sigv4_flags {
    SIGV4_NO_NORMALIZE = 1 << 0,     /* keep dot segments and repeated slashes (S3 style) */
    SIGV4_SIGN_BODY_HEADER = 1 << 1, /* add and sign X-Amz-Content-Sha256 */
    SIGV4_UNSIGNED_TOKEN = 1 << 2,   /* send the session token but leave it out of the signature */
    SIGV4_PRESIGN = 1 << 3,          /* sign in the query string (presigned URL) instead of headers */
};

struct sigv4_params {
    struct sigv4_credentials creds;
    const char *region;
    const char *service;
    time_t now;
    unsigned flags;           /* enum sigv4_flags */
    unsigned expires_seconds; /* SIGV4_PRESIGN only: X-Amz-Expires */
};

/* What a caller adds to the request to send it signed (header signing). */
struct sigv4_signed {
    char *amz_date;       /* X-Amz-Date value, "20150830T123600Z" */
    char *security_token; /* X-Amz-Security-Token value, or NULL */
    char *content_sha256; /* X-Amz-Content-Sha256 value with SIGV4_SIGN_BODY_HEADER, else NULL */
    char *authorization;  /* Authorization value */
};

/* The canonical request (AWS SigV4 step 1). Returns a heap string the caller
 * frees, or NULL when the request or parameters are unusable (missing method,
 * path, region, service, access key or secret; time outside the calendar). */
char *sigv4_canonical_request(const struct sigv4_request *req, const struct sigv4_params *p);

/* The string to sign (step 2). Heap string, caller frees; NULL as above. */
char *sigv4_string_to_sign(const struct sigv4_request *req, const struct sigv4_params *p);

/* The signature as 64 lower-case hex digits (steps 3 and 4). Heap string,
 * caller frees; NULL as above. */
char *sigv4_signature(const struct sigv4_request *req, const struct sigv4_params *p);

/* The Authorization header value for header signing. Heap string, caller
 * frees; NULL as above. */
char *sigv4_authorization(const struct sigv4_request *req, const struct sigv4_params *p);

/* Signs in one go for header signing: fills out with heap strings (free with
 * sigv4_signed_free). Returns 0, or -1 (out zeroed) on unusable input. */
int sigv4_sign(const struct sigv4_request *req, const struct sigv4_params *p, struct sigv4_signed *out);
/* Frees the strings inside s (not s itself) and zeroes it. */
void sigv4_signed_free(struct sigv4_signed *s);

/* For SIGV4_PRESIGN: the whole query string to send (the request's own
 * parameters plus X-Amz-Algorithm, -Credential, -Date, -Expires,
 * -SignedHeaders, -Security-Token and -Signature). Heap string, caller frees;
 * NULL on unusable input. */
char *sigv4_presigned_query(const struct sigv4_request *req, const struct sigv4_params *p);

/* The derived signing key kSigning for (secret, date "YYYYMMDD", region,
 * service) into out. Keys are cached (one per date, region, service and
 * secret, thread-safe), so the four HMACs run once a day per key; *from_cache
 * (may be NULL) tells whether this call was served from the cache. */
void sigv4_signing_key(const char *secret, const char *date, const char *region, const char *service,
                       unsigned char out[32], bool *from_cache);

/* Parses a raw HTTP/1.1 request ("GET /path?query HTTP/1.1", header lines,
 * a blank line, the body; LF or CRLF line ends; folded header lines joined
 * with one space). Returns a request that owns all its strings (free with
 * sigv4_request_free), or NULL for text that is not a request (including any
 * NUL byte). */
struct sigv4_request *sigv4_request_parse(const char *raw, size_t len);
/* Frees a request returned by sigv4_request_parse (NULL is a no-op); never
 * pass a request built by the caller. */
void sigv4_request_free(struct sigv4_request *req);

#endif
