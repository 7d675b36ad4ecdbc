#include "shop_client.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

struct http_resp *shop_get(struct shop_server *s, struct http_client *c, const char *path)
{
    return http_request(c, "GET", shop_url(s, path), NULL, NULL, NULL);
}

struct http_resp *shop_post_form_headers(struct shop_server *s, struct http_client *c, const char *path,
                                         const char *body, const char *const headers[])
{
    return http_request(c, "POST", shop_url(s, path), "application/x-www-form-urlencoded", body, headers);
}

struct http_resp *shop_post_form(struct shop_server *s, struct http_client *c, const char *path,
                                 const char *body)
{
    return shop_post_form_headers(s, c, path, body, NULL);
}

struct http_resp *shop_send_json(struct shop_server *s, struct http_client *c, const char *method,
                                 const char *path, const char *body)
{
    return http_json(c, method, shop_url(s, path), body);
}

const char *shop_message(struct http_resp *r)
{
    return r->json ? json_string_value(json_object_get(r->json, "message")) : NULL;
}

char *shop_field_value(const char *html, const char *name)
{
    char needle[128];
    snprintf(needle, sizeof(needle), "name=\"%s\" value=\"", name);
    const char *p = html ? strstr(html, needle) : NULL;
    if (!p)
        return NULL;
    p += strlen(needle);
    const char *end = strchr(p, '"');
    return end ? strndup(p, (size_t)(end - p)) : NULL;
}

char *shop_csrf(struct shop_server *s, struct http_client *c, const char *path)
{
    struct http_resp *r = shop_get(s, c, path);
    cr_assert_eq(r->status, 200, "GET %s: %ld", path, r->status);
    char *t = shop_field_value(r->body, "csrf_token");
    cr_assert_not_null(t, "no csrf_token on %s", path);
    cr_assert_eq(strlen(t), 64, "csrf_token on %s: %s", path, t);
    http_resp_free(r);
    return t;
}

bool shop_log_contains(const char *path, const char *text)
{
    return harness_log_contains(path, 0, text);
}

void shop_expect_contains(struct http_resp *r, const char *text)
{
    cr_expect(r->body && strstr(r->body, text), "page should contain '%s'", text);
}

void shop_expect_lacks(struct http_resp *r, const char *text)
{
    cr_expect(!r->body || !strstr(r->body, text), "page should not contain '%s'", text);
}

void shop_expect_html(struct http_resp *r)
{
    const char *ct = http_resp_header(r, "Content-Type");
    cr_expect(ct && strncmp(ct, "text/html", 9) == 0, "Content-Type %s", ct ? ct : "(none)");
}

void shop_expect_redirect(struct http_resp *r, const char *location)
{
    cr_expect_eq(r->status, 303, "%ld %s", r->status, r->body ? r->body : "");
    const char *loc = http_resp_header(r, "Location");
    cr_expect(loc && strcmp(loc, location) == 0, "Location %s, expected %s", loc ? loc : "(none)", location);
}
