/* libFuzzer target: raw HTTP requests through the SigV4 parser and every
 * canonicalisation mode (normalised or not, header or query signing, with a
 * session token signed or not). Checks invariants the signer must keep for any
 * input it accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sigv4_request *req = sigv4_request_parse((const char *)data, size);
    if (!req)
        return 0;
    /* The first byte picks the flags too, so one input reaches several modes. */
    unsigned extra = size ? data[0] & 15u : 0;
    for (unsigned flags = 0; flags < 16; flags += 5) {
        struct sigv4_params p = {
            .creds = {.access_key_id = "AKIDEXAMPLE",
                      .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                      .session_token = (flags ^ extra) & 4 ? "token value" : NULL},
            .region = "us-east-1",
            .service = "service",
            .now = 1440938160,
            .flags = flags ^ extra,
            .expires_seconds = 3600,
        };
        char *creq = sigv4_canonical_request(req, &p);
        char *sig = sigv4_signature(req, &p);
        /* Anything parsed with non-empty method is signable: both succeed or both fail. */
        if ((creq == NULL) != (sig == NULL))
            abort();
        if (creq) {
            /* The canonical URI always starts with '/' and holds only encoded bytes. */
            const char *uri = strchr(creq, '\n');
            if (!uri || uri[1] != '/')
                abort();
            for (const char *c = uri + 1; *c != '\n'; c++)
                if (*c <= ' ' || (unsigned char)*c >= 0x7f)
                    abort();
            if (strlen(sig) != 64)
                abort();
        }
        if (p.flags & SIGV4_PRESIGN) {
            char *q = sigv4_presigned_query(req, &p);
            if ((q == NULL) != (creq == NULL))
                abort();
            free(q);
        } else {
            struct sigv4_signed s;
            int rc = sigv4_sign(req, &p, &s);
            if ((rc == 0) != (creq != NULL))
                abort();
            sigv4_signed_free(&s);
        }
        free(creq);
        free(sig);
    }
    sigv4_request_free(req);
    return 0;
}
