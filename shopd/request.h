/* request: one HTTP request inside a shopd worker, and the ways to answer it.
 *
 * The worker fills a struct request (client address, request id, session,
 * rate-limit verdict) before it calls the route's handler; handlers read input
 * through the request_* helpers and answer exactly once with a reply_* call.
 * Every reply adds the security headers, the request id and the rate-limit
 * fields, and writes the access-log line. */
#ifndef SHOPD_REQUEST_H
#define SHOPD_REQUEST_H

#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "shopd/db.h"
#include "shopd/ratelimit_client.h"
#include "shopd/sessions.h"
#include "shopd/settings.h"
#include "shopd/visitor.h"
#include "shared/request_id.h"

struct worker;
struct route;
struct multipart_part;

/* The most parts a multipart/form-data body may have (an upload form has a few). */
#define REQUEST_MAX_PARTS 16

struct request {
    struct evhttp_request *ev;
    struct worker *worker;
    struct db *db;
    const struct shopd_settings *settings;
    const struct route *route;
    const char *method;  /* "GET", "POST", ... */
    char *path;          /* decoded path without the query (owned) */
    int64_t param;       /* the numeric path parameter of /products/<id> and the like */
    char param_text[72]; /* the text path parameter of /orders/<uuid> and the like */
    char client_ip[64];  /* the client, from X-Forwarded-For when the peer is a trusted proxy */
    char request_id[REQUEST_ID_MAX + 1]; /* X-Request-Id from the balancer, or made here */
    bool via_https;      /* a trusted proxy says the client used HTTPS: cookies get Secure */
    uint64_t start_us;
    struct session session; /* valid when has_session */
    bool has_session;
    bool is_admin;
    char *set_session_token; /* a session cookie to send with the reply (owned) */
    bool clear_session;      /* expire the cookie with the reply */
    char visitor_id[VISITOR_ID_LEN + 1]; /* a browser without a session: its visitor cookie ("" when none) */
    bool set_visitor;                    /* a visitor id made for this reply: send its cookie */
    char *set_flash;                     /* a flash cookie value to send with the reply (owned) */
    bool clear_flash;                    /* the flash cookie was read: expire it with the reply */
    json_t *json;            /* the parsed JSON body, once request_json_body succeeded */
    struct evkeyvalq *form;  /* the parsed form body, once request_form was called */
    struct evkeyvalq *query; /* the parsed query string, once request_query was called */
    struct rl_result rl;     /* the tightest budget checked for this request */
    const char *rl_rule;
    bool has_rl;
    /* A multipart/form-data body's parts, pointing into the body (owned), once
       request_form or request_file was called; multipart_error (static) says
       why such a body was refused. */
    struct multipart_part *parts;
    size_t nparts;
    const char *multipart_error;
    int pending_checks;
    bool replied;
    bool held;      /* the handler answers later, after work on the offload pool */
    bool cancelled; /* the client went away while we waited (ratelimitd, offload) */
    int status;
    size_t bytes;
    uint64_t db_failures_at_start; /* db_failure_count() when the request began */
};

/* --- answering (exactly one per request) ------------------------------- */

/* JSON body; takes ownership of body. */
void reply_json(struct request *r, int status, json_t *body);
/* {"message": "..."} with the given status (the API's error and notice form). */
void reply_message(struct request *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An error in the form the route speaks: JSON {"message"} for the API, an HTML
 * error page for browser routes. */
void reply_error(struct request *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An HTML page (copied). */
void reply_html(struct request *r, int status, const char *html, size_t len);
/* Any body; takes the contents of buf. */
void reply_buffer(struct request *r, int status, const char *content_type, struct evbuffer *buf);
/* 303 See Other to location (redirect after POST). */
void reply_redirect(struct request *r, const char *location);
/* Adds a response header before the reply (e.g. Cache-Control). */
void reply_add_header(struct request *r, const char *name, const char *value);

/* --- reading ------------------------------------------------------------- */

/* The first request header with that name, or NULL. */
const char *request_header(struct request *r, const char *name);
/* The JSON object body. Requires Content-Type: application/json; on failure
 * returns NULL with the status to answer (400 or 415) and a message. The object
 * is owned by r. */
json_t *request_json_body(struct request *r, int *status, char *msg, size_t msglen);
/* A field of an application/x-www-form-urlencoded or multipart/form-data body
 * (text parts), or NULL. Owned by r. */
const char *request_form(struct request *r, const char *name);
/* The file part called name of a multipart/form-data body, or NULL (a
 * malformed body has none: r->multipart_error says why). Owned by r. */
const struct multipart_part *request_file(struct request *r, const char *name);
/* A query-string parameter, or NULL. Owned by r. */
const char *request_query(struct request *r, const char *name);
/* The value of cookie name into buf; false if absent. */
bool request_cookie(struct request *r, const char *name, char *buf, size_t len);
/* True when the request is logged in. */
static inline bool request_logged_in(const struct request *r)
{
    return r->has_session && r->session.user_id != 0;
}

/* --- sessions ------------------------------------------------------------- */

/* Starts a fresh session for user_id (0: anonymous), ending any current one
 * (a new token on every login). The cookie goes out with the reply. Returns 0 or -1. */
int request_start_session(struct request *r, int64_t user_id);
/* Ends the current session server-side and expires the cookie. */
void request_end_session(struct request *r);
/* The CSRF token forms of this page carry into out (65 bytes): the session's
 * when there is one, else the visitor cookie's (a visitor id is made, and its
 * cookie sent, when the browser has none yet). Writes nothing to the database. */
void request_csrf_token(struct request *r, char *out);
/* True when token is this browser's CSRF token: its session's, or, without a
 * session, the one of the visitor cookie it sent. A visitor id made for this
 * very reply matches nothing. */
bool request_csrf_ok(struct request *r, const char *token);
/* Keeps a one-time message for the next page: in the session row when logged
 * in, else in a signed short-lived cookie (no database write). */
void request_set_flash(struct request *r, const char *kind, const char *message);
/* Takes the pending one-time message, from the session row or the flash
 * cookie (which is then expired). False when there is none. */
bool request_take_flash(struct request *r, char *kind, size_t kindlen, char *message, size_t msglen);

/* --- answering later ------------------------------------------------------ */

/* Marks the request as answered later, after asynchronous work: the worker does
 * not take the handler's return as a missing answer, and notices a client that
 * goes away meanwhile (r->cancelled). A held request ends with one reply_* call,
 * or with request_abandon when r->cancelled is set. */
void request_hold(struct request *r);
/* Marks r cancelled (r->cancelled) when its client's connection closes. */
void request_watch_close(struct request *r);
/* Ends a held request whose client went away, without answering. */
void request_abandon(struct request *r);
/* The worker's thread pool for CPU-heavy work (password hashing). */
struct offload *request_offload(struct request *r);

#endif
