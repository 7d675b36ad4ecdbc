#include "shared/h1frame.h"

#include <string.h>

enum {
    S_START,
    S_LEAD_LF,
    S_METHOD,
    S_TARGET_START,
    S_TARGET,
    S_VERSION,
    S_LINE_LF,
    S_FIELD_START,
    S_NAME,
    S_VALUE,
    S_VALUE_LF,
    S_HEAD_LF,
    S_BODY,
    S_CHUNK_SIZE,
    S_EXT_PRE,
    S_EXT_NAME_START,
    S_EXT_NAME,
    S_EXT_AFTER_NAME,
    S_EXT_VALUE_START,
    S_EXT_TOKEN,
    S_EXT_QUOTED,
    S_EXT_ESCAPE,
    S_CHUNK_LF,
    S_CHUNK_DATA,
    S_CHUNK_DATA_CR,
    S_CHUNK_DATA_LF,
    S_ERROR,
};

#define MAX_CONTENT_LENGTH_DIGITS 18
#define MAX_CHUNK_SIZE_DIGITS 15
#define MAX_LEADING_EMPTY_LINES 2

/* tchar of RFC 9110 section 5.6.2. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP or HTAB: what a field value may hold (obs-text included). */
static bool is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void message_reset(struct h1frame *f)
{
    f->state = S_START;
    f->head_bytes = 0;
    f->content_length = 0;
    f->chunked = f->http10 = false;
    f->remaining = f->body_bytes = f->chunk_size = 0;
    f->leading_crlf = f->hex_digits = f->name_len = f->te_len = 0;
    f->host_count = f->cl_count = f->cl_digits = 0;
    f->cl_conflict = f->te_seen = f->te_bad = f->te_unsupported = f->cl_bad = f->cl_trailing_ws = false;
    f->in_trailer = false;
    f->cl_value = f->cl_first = 0;
    f->major = f->minor = 0;
    f->version_at = 0;
    f->method_len = 0;
}

static bool method_allowed(const struct h1frame *f)
{
    if (!f->allowed_methods)
        return true;
    for (const char *const *m = f->allowed_methods; *m; m++)
        if ((int)strlen(*m) == f->method_len && memcmp(*m, f->method, (size_t)f->method_len) == 0)
            return true;
    return false;
}

void h1frame_init(struct h1frame *f, size_t max_head, uint64_t max_body)
{
    memset(f, 0, sizeof(*f));
    f->max_head = max_head;
    f->max_body = max_body;
    message_reset(f);
}

bool h1frame_in_chunk_line(const struct h1frame *f, bool *in_extension)
{
    *in_extension = f->state >= S_EXT_PRE && f->state <= S_EXT_ESCAPE;
    return f->state >= S_CHUNK_SIZE && f->state <= S_EXT_ESCAPE;
}

bool h1frame_idle(const struct h1frame *f)
{
    return f->state == S_START && f->leading_crlf == 0;
}

static enum h1frame_event fail(struct h1frame *f, int status, const char *reason)
{
    f->state = S_ERROR;
    f->status = status;
    f->reason = reason;
    return H1FRAME_ERROR;
}

enum field_kind { F_OTHER, F_CONTENT_LENGTH, F_TRANSFER_ENCODING, F_HOST };

static enum field_kind field_kind(const struct h1frame *f)
{
    if (f->name_len == 14 && memcmp(f->name, "content-length", 14) == 0)
        return F_CONTENT_LENGTH;
    if (f->name_len == 17 && memcmp(f->name, "transfer-encoding", 17) == 0)
        return F_TRANSFER_ENCODING;
    if (f->name_len == 4 && memcmp(f->name, "host", 4) == 0)
        return F_HOST;
    return F_OTHER;
}

/* One byte of a field value, for the fields whose value decides the framing. */
static void value_byte(struct h1frame *f, unsigned char c)
{
    switch (field_kind(f)) {
    case F_CONTENT_LENGTH:
        if (c == ' ' || c == '\t') {
            if (f->cl_digits > 0)
                f->cl_trailing_ws = true;
        } else if (c >= '0' && c <= '9' && !f->cl_trailing_ws && f->cl_digits < MAX_CONTENT_LENGTH_DIGITS) {
            f->cl_value = f->cl_value * 10 + (uint64_t)(c - '0');
            f->cl_digits++;
        } else {
            f->cl_bad = true;
        }
        break;
    case F_TRANSFER_ENCODING:
        if (c == ' ' || c == '\t')
            break;
        if ((size_t)f->te_len + 1 >= sizeof(f->te)) {
            f->te_bad = true;
            break;
        }
        f->te[f->te_len++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        break;
    default:
        break;
    }
}

/* The end of one field line (head or trailer). Returns false with the refusal set. */
static bool field_end(struct h1frame *f)
{
    enum field_kind kind = field_kind(f);
    if (f->in_trailer && kind != F_OTHER) {
        fail(f, 400, "framing or Host field in the trailer section");
        return false;
    }
    switch (kind) {
    case F_CONTENT_LENGTH:
        if (f->cl_bad || f->cl_digits == 0) {
            fail(f, 400, "invalid Content-Length");
            return false;
        }
        if (f->cl_count > 0 && f->cl_value != f->cl_first) {
            fail(f, 400, "conflicting Content-Length fields");
            return false;
        }
        f->cl_first = f->cl_value;
        f->cl_count++;
        break;
    case F_TRANSFER_ENCODING:
        f->te_seen = true;
        if ((size_t)f->te_len + 1 >= sizeof(f->te)) {
            f->te_bad = true;
        } else {
            f->te[f->te_len++] = ','; /* several fields form one list */
        }
        break;
    case F_HOST:
        f->host_count++;
        break;
    default:
        break;
    }
    f->name_len = 0;
    f->cl_value = 0;
    f->cl_digits = 0;
    f->cl_bad = f->cl_trailing_ws = false;
    return true;
}

/* Transfer-Encoding must be exactly "chunked" (a coding list ending in it that
 * names other codings is one this server does not speak: 501). */
static bool transfer_encoding_ok(struct h1frame *f)
{
    if (f->te_bad)
        return fail(f, 400, "invalid Transfer-Encoding"), false;
    int chunked_at = -1, tokens = 0;
    const char *p = f->te, *end = f->te + f->te_len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t n = (size_t)(comma - p);
        if (n > 0) {
            for (size_t i = 0; i < n; i++)
                if (!is_tchar((unsigned char)p[i]))
                    return fail(f, 400, "invalid Transfer-Encoding"), false;
            if (n == 7 && memcmp(p, "chunked", 7) == 0) {
                if (chunked_at >= 0)
                    return fail(f, 400, "chunked applied twice"), false;
                chunked_at = tokens;
            }
            tokens++;
        }
        p = comma + 1;
    }
    if (tokens == 0 || chunked_at != tokens - 1)
        return fail(f, 400, "Transfer-Encoding must end in chunked"), false;
    if (tokens > 1)
        return fail(f, 501, "transfer coding not supported"), false;
    return true;
}

/* The checks that need the whole head. Returns false with the refusal set. */
static bool head_end(struct h1frame *f)
{
    if (f->te_seen) {
        if (f->cl_count > 0)
            return fail(f, 400, "both Transfer-Encoding and Content-Length"), false;
        if (f->http10)
            return fail(f, 400, "Transfer-Encoding in an HTTP/1.0 request"), false;
        if (!transfer_encoding_ok(f))
            return false;
    }
    if (f->host_count > 1)
        return fail(f, 400, "more than one Host field"), false;
    if (f->host_count == 0 && !f->http10)
        return fail(f, 400, "missing Host field"), false;
    if (!f->te_seen && f->cl_first > f->max_body)
        return fail(f, 413, "request body larger than the limit"), false;
    f->chunked = f->te_seen;
    f->content_length = f->te_seen ? 0 : f->cl_first;
    return true;
}

enum h1frame_event h1frame_scan(struct h1frame *f, const char *data, size_t len, size_t *used)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t i = 0;
    *used = 0;
    if (f->state == S_ERROR)
        return H1FRAME_ERROR;
    for (; i < len; i++) {
        unsigned char c = p[i];
        *used = i;
        if (f->state < S_BODY || (f->in_trailer && f->state <= S_HEAD_LF)) {
            if (++f->head_bytes > f->max_head)
                return fail(f, 431, "request head too large");
        }
        switch (f->state) {
        case S_START:
            if (c == '\r') {
                if (++f->leading_crlf > MAX_LEADING_EMPTY_LINES)
                    return fail(f, 400, "malformed request line");
                f->state = S_LEAD_LF;
            } else if (is_tchar(c)) {
                f->state = S_METHOD;
                f->method[f->method_len++] = (char)c;
            } else {
                return fail(f, 400, "malformed request line");
            }
            break;
        case S_LEAD_LF:
            if (c != '\n')
                return fail(f, 400, "malformed request line");
            f->state = S_START;
            break;
        case S_METHOD:
            if (c == ' ') {
                if (!method_allowed(f))
                    return fail(f, 501, "method not implemented");
                f->state = S_TARGET_START;
            } else if (!is_tchar(c)) {
                return fail(f, 400, "malformed request line");
            } else if (f->method_len < (int)sizeof(f->method)) {
                f->method[f->method_len++] = (char)c;
            } else {
                f->method_len = (int)sizeof(f->method) + 1; /* longer than any method served */
            }
            break;
        case S_TARGET_START:
        case S_TARGET:
            if (c == ' ' && f->state == S_TARGET) {
                f->state = S_VERSION;
                f->version_at = 0;
            } else if (c > 0x20 && c < 0x7f) {
                f->state = S_TARGET;
            } else {
                return fail(f, 400, "malformed request line");
            }
            break;
        case S_VERSION: {
            int at = f->version_at++;
            if (at < 5) {
                if (c != (unsigned char)"HTTP/"[at])
                    return fail(f, 400, "malformed HTTP version");
            } else if (at == 5 || at == 7) {
                if (c < '0' || c > '9')
                    return fail(f, 400, "malformed HTTP version");
                if (at == 5)
                    f->major = (char)c;
                else
                    f->minor = (char)c;
            } else if (at == 6) {
                if (c != '.')
                    return fail(f, 400, "malformed HTTP version");
            } else {
                if (c != '\r')
                    return fail(f, 400, "malformed HTTP version");
                if (f->major != '1')
                    return fail(f, 505, "HTTP version not supported");
                f->http10 = f->minor == '0';
                f->state = S_LINE_LF;
            }
            break;
        }
        case S_LINE_LF:
            if (c != '\n')
                return fail(f, 400, "malformed request line");
            f->state = S_FIELD_START;
            break;
        case S_FIELD_START:
            if (c == '\r') {
                f->state = S_HEAD_LF;
            } else if (c == ' ' || c == '\t') {
                return fail(f, 400, "folded field line");
            } else if (is_tchar(c)) {
                f->name_len = 0;
                f->name[f->name_len++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
                f->state = S_NAME;
            } else {
                return fail(f, 400, "invalid field name");
            }
            break;
        case S_NAME:
            if (c == ':') {
                f->state = S_VALUE;
            } else if (is_tchar(c)) {
                if (f->name_len < (int)sizeof(f->name))
                    f->name[f->name_len] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
                f->name_len++;
            } else if (c == ' ' || c == '\t') {
                return fail(f, 400, "whitespace in or after a field name");
            } else {
                return fail(f, 400, "invalid field name");
            }
            break;
        case S_VALUE:
            if (c == '\r')
                f->state = S_VALUE_LF;
            else if (is_value_char(c))
                value_byte(f, c);
            else
                return fail(f, 400, "control character in a field value");
            break;
        case S_VALUE_LF:
            if (c != '\n')
                return fail(f, 400, "control character in a field value");
            if (!field_end(f))
                return H1FRAME_ERROR;
            f->state = S_FIELD_START;
            break;
        case S_HEAD_LF:
            if (c != '\n')
                return fail(f, 400, "malformed end of head");
            if (f->in_trailer) {
                *used = i + 1;
                message_reset(f);
                return H1FRAME_DONE;
            }
            if (!head_end(f))
                return H1FRAME_ERROR;
            if (f->chunked) {
                f->state = S_CHUNK_SIZE;
                f->hex_digits = 0;
                f->chunk_size = 0;
                if (f->report_chunk_lines) {
                    *used = i + 1;
                    return H1FRAME_CHUNK_LINE;
                }
            } else if (f->content_length > 0) {
                f->remaining = f->content_length;
                f->state = S_BODY;
            } else {
                *used = i + 1;
                message_reset(f);
                return H1FRAME_DONE;
            }
            break;
        case S_BODY: {
            uint64_t take = len - i;
            if (take > f->remaining)
                take = f->remaining;
            f->remaining -= take;
            i += (size_t)take - 1;
            if (f->remaining == 0) {
                *used = i + 1;
                message_reset(f);
                return H1FRAME_DONE;
            }
            break;
        }
        case S_CHUNK_SIZE: {
            int h = hex_value(c);
            if (h >= 0) {
                if (++f->hex_digits > MAX_CHUNK_SIZE_DIGITS)
                    return fail(f, 400, "chunk size too large");
                f->chunk_size = f->chunk_size * 16 + (uint64_t)h;
            } else if (f->hex_digits == 0) {
                return fail(f, 400, "invalid chunk size");
            } else if (c == '\r') {
                f->state = S_CHUNK_LF;
            } else if (c == ';') {
                f->state = S_EXT_NAME_START;
            } else if (c == ' ' || c == '\t') {
                f->state = S_EXT_PRE;
            } else {
                return fail(f, 400, "invalid chunk size");
            }
            break;
        }
        case S_EXT_PRE:
            if (c == ';')
                f->state = S_EXT_NAME_START;
            else if (c == '\r')
                f->state = S_CHUNK_LF;
            else if (c != ' ' && c != '\t')
                return fail(f, 400, "invalid chunk line");
            break;
        case S_EXT_NAME_START:
            if (is_tchar(c))
                f->state = S_EXT_NAME;
            else if (c != ' ' && c != '\t')
                return fail(f, 400, "invalid chunk extension");
            break;
        case S_EXT_NAME:
        case S_EXT_AFTER_NAME:
            if (c == '=')
                f->state = S_EXT_VALUE_START;
            else if (c == ';')
                f->state = S_EXT_NAME_START;
            else if (c == '\r')
                f->state = S_CHUNK_LF;
            else if (c == ' ' || c == '\t')
                f->state = S_EXT_AFTER_NAME;
            else if (!(is_tchar(c) && f->state == S_EXT_NAME))
                return fail(f, 400, "invalid chunk extension");
            break;
        case S_EXT_VALUE_START:
            if (c == '"')
                f->state = S_EXT_QUOTED;
            else if (is_tchar(c))
                f->state = S_EXT_TOKEN;
            else if (c != ' ' && c != '\t')
                return fail(f, 400, "invalid chunk extension");
            break;
        case S_EXT_TOKEN:
            if (c == ';')
                f->state = S_EXT_NAME_START;
            else if (c == '\r')
                f->state = S_CHUNK_LF;
            else if (c == ' ' || c == '\t')
                f->state = S_EXT_PRE;
            else if (!is_tchar(c))
                return fail(f, 400, "invalid chunk extension");
            break;
        case S_EXT_QUOTED:
            if (c == '"')
                f->state = S_EXT_PRE;
            else if (c == '\\')
                f->state = S_EXT_ESCAPE;
            else if (!is_value_char(c))
                return fail(f, 400, "invalid chunk extension");
            break;
        case S_EXT_ESCAPE:
            if (!is_value_char(c))
                return fail(f, 400, "invalid chunk extension");
            f->state = S_EXT_QUOTED;
            break;
        case S_CHUNK_LF:
            if (c != '\n')
                return fail(f, 400, "invalid chunk line");
            if (f->chunk_size == 0) {
                f->in_trailer = true;
                f->head_bytes = 0;
                f->state = S_FIELD_START;
            } else {
                if (f->chunk_size > f->max_body - f->body_bytes)
                    return fail(f, 413, "request body larger than the limit");
                f->body_bytes += f->chunk_size;
                f->remaining = f->chunk_size;
                f->state = S_CHUNK_DATA;
            }
            break;
        case S_CHUNK_DATA: {
            uint64_t take = len - i;
            if (take > f->remaining)
                take = f->remaining;
            f->remaining -= take;
            i += (size_t)take - 1;
            if (f->remaining == 0)
                f->state = S_CHUNK_DATA_CR;
            break;
        }
        case S_CHUNK_DATA_CR:
            if (c != '\r')
                return fail(f, 400, "chunk data longer than its size");
            f->state = S_CHUNK_DATA_LF;
            break;
        case S_CHUNK_DATA_LF:
            if (c != '\n')
                return fail(f, 400, "chunk data longer than its size");
            f->state = S_CHUNK_SIZE;
            f->hex_digits = 0;
            f->chunk_size = 0;
            if (f->report_chunk_lines) {
                *used = i + 1;
                return H1FRAME_CHUNK_LINE;
            }
            break;
        default:
            return fail(f, 400, "malformed request");
        }
    }
    *used = len;
    return H1FRAME_MORE;
}
