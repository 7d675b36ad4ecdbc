#include "shopd/catalog_query.h"
#include "shared/crypto.h"
#include "shared/strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sort_names[] = {
    [CATALOG_SORT_ID] = "id",           [CATALOG_SORT_ID_DESC] = "-id", [CATALOG_SORT_NAME] = "name",
    [CATALOG_SORT_NAME_DESC] = "-name", [CATALOG_SORT_PRICE] = "price", [CATALOG_SORT_PRICE_DESC] = "-price",
};
#define NSORTS (sizeof(sort_names) / sizeof(sort_names[0]))

/* The cursor's text before hex: a version, so that a later format can refuse old cursors cleanly. */
#define CURSOR_VERSION "c1"

const char *catalog_sort_name(enum catalog_sort sort)
{
    return (size_t)sort < NSORTS ? sort_names[sort] : "id";
}

bool catalog_query_given(const struct catalog_query_params *p)
{
    return p->q || p->sort || p->limit || p->page || p->cursor;
}

/* A whole decimal number in [min, max], digits only. */
static bool parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !isdigit((unsigned char)*s) || strlen(s) > 18)
        return false;
    for (const char *c = s; *c; c++)
        if (!isdigit((unsigned char)*c))
            return false;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Reads a cursor for sort; false when it is not one of ours or belongs to another sort. */
static bool cursor_decode(const char *text, struct catalog_query *out, enum catalog_sort *sort)
{
    size_t n = strlen(text);
    unsigned char raw[CATALOG_CURSOR_MAX / 2 + 1];
    if (n == 0 || n % 2 || n / 2 >= sizeof(raw) || !crypto_hex_decode(text, n, raw, n / 2))
        return false;
    raw[n / 2] = '\0';
    if (memchr(raw, '\0', n / 2))
        return false;
    /* c1 <sort> <id> <key>: the key is the rest, so a name may hold spaces. */
    char *s = (char *)raw, *fields[4];
    for (int i = 0; i < 3; i++) {
        fields[i] = s;
        s = strchr(s, ' ');
        if (!s)
            return false;
        *s++ = '\0';
    }
    fields[3] = s;
    if (strcmp(fields[0], CURSOR_VERSION) != 0)
        return false;
    size_t k;
    for (k = 0; k < NSORTS && strcmp(fields[1], sort_names[k]) != 0; k++)
        ;
    if (k == NSORTS || !parse_int(fields[2], 1, INT64_MAX / 2, &out->after_id))
        return false;
    *sort = (enum catalog_sort)k;
    switch (*sort) {
    case CATALOG_SORT_PRICE:
    case CATALOG_SORT_PRICE_DESC:
        return parse_int(fields[3], 0, INT64_MAX / 2, &out->after_price_cents);
    case CATALOG_SORT_NAME:
    case CATALOG_SORT_NAME_DESC:
        if (strlen(fields[3]) >= sizeof(out->after_name))
            return false;
        snprintf(out->after_name, sizeof(out->after_name), "%s", fields[3]);
        return true;
    default:
        return *fields[3] == '\0';
    }
}

void catalog_cursor_encode(enum catalog_sort sort, int64_t id, int64_t price_cents, const char *name,
                           char *buf, size_t len)
{
    char text[CATALOG_CURSOR_MAX / 2];
    int n;
    if (sort == CATALOG_SORT_PRICE || sort == CATALOG_SORT_PRICE_DESC)
        n = snprintf(text, sizeof(text), CURSOR_VERSION " %s %" PRId64 " %" PRId64, catalog_sort_name(sort),
                     id, price_cents);
    else if (sort == CATALOG_SORT_NAME || sort == CATALOG_SORT_NAME_DESC)
        n = snprintf(text, sizeof(text), CURSOR_VERSION " %s %" PRId64 " %s", catalog_sort_name(sort), id,
                     name);
    else
        n = snprintf(text, sizeof(text), CURSOR_VERSION " %s %" PRId64 " ", catalog_sort_name(sort), id);
    if (n < 0 || (size_t)n >= sizeof(text) || len < 2 * (size_t)n + 1) {
        /* Cannot happen for names the catalog accepts (at most 200 bytes). */
        if (len)
            buf[0] = '\0';
        return;
    }
    crypto_hex_encode(text, (size_t)n, buf);
}

enum outcome catalog_query_parse(const struct catalog_query_params *p, struct catalog_query *out, char *msg,
                                 size_t msglen)
{
    memset(out, 0, sizeof(*out));
    out->sort = CATALOG_SORT_ID;
    if (p->q) {
        const char *s = p->q;
        size_t n = strlen(s);
        while (n && isspace((unsigned char)*s))
            s++, n--;
        while (n && isspace((unsigned char)s[n - 1]))
            n--;
        if (n > CATALOG_MAX_Q) {
            snprintf(msg, msglen, "q must be at most %d characters", CATALOG_MAX_Q);
            return OUT_INVALID;
        }
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
                snprintf(msg, msglen, "q must not contain control characters");
                return OUT_INVALID;
            }
        memcpy(out->q, s, n);
        out->q[n] = '\0';
    }
    bool sort_given = false;
    if (p->sort) {
        size_t k;
        for (k = 0; k < NSORTS && strcmp(p->sort, sort_names[k]) != 0; k++)
            ;
        if (k == NSORTS) {
            snprintf(msg, msglen, "sort must be one of name, -name, price, -price, id, -id");
            return OUT_INVALID;
        }
        out->sort = (enum catalog_sort)k;
        sort_given = true;
    }
    if (p->limit && !parse_int(p->limit, 1, CATALOG_MAX_LIMIT, &out->limit)) {
        snprintf(msg, msglen, "limit must be an integer from 1 to %d", CATALOG_MAX_LIMIT);
        return OUT_INVALID;
    }
    if (p->page && p->cursor) {
        snprintf(msg, msglen, "give page or cursor, not both");
        return OUT_INVALID;
    }
    if (p->page && !parse_int(p->page, 1, CATALOG_MAX_PAGE, &out->page)) {
        snprintf(msg, msglen, "page must be an integer from 1 to %d", CATALOG_MAX_PAGE);
        return OUT_INVALID;
    }
    if (p->cursor) {
        enum catalog_sort cs;
        if (!cursor_decode(p->cursor, out, &cs)) {
            snprintf(msg, msglen, "cursor is not valid: use the next cursor of an earlier answer");
            return OUT_INVALID;
        }
        if (sort_given && cs != out->sort) {
            snprintf(msg, msglen, "cursor was made for sort=%s, not sort=%s", catalog_sort_name(cs),
                     catalog_sort_name(out->sort));
            return OUT_INVALID;
        }
        out->sort = cs;
        out->has_cursor = true;
    }
    if ((out->page || out->has_cursor) && !out->limit)
        out->limit = CATALOG_DEFAULT_LIMIT;
    return OUT_OK;
}

/* Percent-encodes everything but RFC 3986's unreserved characters. */
static void add_encoded(struct strbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            strbuf_addc(b, (char)c);
        } else {
            strbuf_addc(b, '%');
            strbuf_addc(b, hex[c >> 4]);
            strbuf_addc(b, hex[c & 15]);
        }
    }
}

static void add_param(struct strbuf *b, const char *name, const char *value)
{
    strbuf_addc(b, b->p && strchr(b->p, '?') ? '&' : '?');
    strbuf_adds(b, name);
    strbuf_addc(b, '=');
    add_encoded(b, value);
}

char *catalog_query_url(const struct catalog_query *q, const char *path, bool with_limit, int64_t page,
                        const char *cursor)
{
    struct strbuf b = {0};
    char num[32];
    strbuf_adds(&b, path);
    if (q->q[0])
        add_param(&b, "q", q->q);
    if (q->sort != CATALOG_SORT_ID)
        add_param(&b, "sort", catalog_sort_name(q->sort));
    if (with_limit && q->limit) {
        snprintf(num, sizeof(num), "%" PRId64, q->limit);
        add_param(&b, "limit", num);
    }
    if (page > 0) {
        snprintf(num, sizeof(num), "%" PRId64, page);
        add_param(&b, "page", num);
    } else if (cursor) {
        add_param(&b, "cursor", cursor);
    }
    return strbuf_take(&b, NULL);
}
