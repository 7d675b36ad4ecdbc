#include "shared/http_answer.h"

#include <stdio.h>
#include <string.h>

const char *http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        break;
    }
    if (status >= 500)
        return "Server Error";
    if (status >= 400)
        return "Client Error";
    if (status >= 300)
        return "Redirection";
    return status >= 200 ? "Success" : "Informational";
}

/* message as a JSON string's contents; control characters become spaces. */
static size_t json_escape(char *out, size_t cap, const char *message)
{
    size_t n = 0;
    for (const char *p = message; *p && n + 2 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else {
            out[n++] = c < 0x20 ? ' ' : (char)c;
        }
    }
    out[n] = '\0';
    return n;
}

size_t http_error_answer(char *out, size_t cap, int status, const char *request_id, const char *extra_headers,
                         const char *message, bool head_only)
{
    char text[384];
    json_escape(text, sizeof(text), message ? message : http_reason(status));
    char body[448];
    int blen = snprintf(body, sizeof(body), "{\"message\":\"%s\"}\n", text);
    int n = snprintf(
        out, cap,
        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" HTTP_SECURITY_HEADERS
        "X-Request-Id: %s\r\n%sConnection: close\r\n\r\n%s",
        status, http_reason(status), blen, request_id && *request_id ? request_id : "-",
        extra_headers ? extra_headers : "", head_only ? "" : body);
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}
