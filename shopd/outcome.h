/* outcome: how a shop operation ended, shared by the domain modules (catalog,
 * cart, checkout, accounts) so that the JSON API and the HTML pages map the same
 * outcome to the same HTTP status. The human-readable reason travels beside it in
 * a caller-provided buffer. */
#ifndef SHOPD_OUTCOME_H
#define SHOPD_OUTCOME_H

enum outcome {
    OUT_OK = 0,
    OUT_INVALID,      /* 400: the input is wrong */
    OUT_UNAUTHORIZED, /* 401: bad credentials or not logged in */
    OUT_FORBIDDEN,    /* 403 */
    OUT_NOT_FOUND,    /* 404 */
    OUT_CONFLICT,     /* 409: taken email, stock, empty cart */
    OUT_ERROR,        /* 500: the database failed; logged where it happened */
};

static inline int outcome_http_status(enum outcome o)
{
    static const int codes[] = {200, 400, 401, 403, 404, 409, 500};
    return codes[o];
}

#endif
