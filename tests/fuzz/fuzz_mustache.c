/* libFuzzer target for shared/mustache: compiles the input as a template and
 * renders it against a fixed context and partial set, so parsing, standalone
 * handling, delimiter changes, lookups, escaping, partial indentation and the
 * recursion limits all see arbitrary input. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/mustache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *context;
static struct mustache_set *partials;

static const char CONTEXT[] =
    "{\"title\": \"<b>Shop</b> & \\\"Co\\\" 'x'\", \"count\": 3, \"price\": 1.21, \"on\": true, \"off\": "
    "false,"
    " \"none\": null, \"empty\": \"\", \"zero\": 0,"
    " \"items\": [{\"name\": \"pen\", \"qty\": 2}, {\"name\": \"<ink>\", \"tags\": [\"a\", \"b\"]}, 7],"
    " \"user\": {\"name\": \"Ann\", \"cart\": {\"total\": 5, \"lines\": []}},"
    " \"tree\": {\"name\": \"root\", \"child\": {\"name\": \"leaf\", \"child\": null}}}";

static const char PARTIALS[] =
    "{\"p\": \"[{{title}}]\\n\", \"row\": \"  <li>{{name}}</li>\\n{{#tags}}{{.}}{{/tags}}\","
    " \"node\": \"{{name}}\\n{{#child}}\\n  {{>node}}\\n{{/child}}\\n\","
    " \"loop\": \"x{{>loop}}\", \"delims\": \"{{=<% %>=}}<%title%>\"}";

static void discard(void *ctx, const char *s, size_t n)
{
    (void)s;
    *(size_t *)ctx += n;
}

static void setup(void)
{
    context = json_loads(CONTEXT, 0, NULL);
    json_t *pj = json_loads(PARTIALS, 0, NULL);
    partials = mustache_set_from_json(pj, NULL, 0);
    json_decref(pj);
    if (!context || !partials)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!context)
        setup();
    char err[128];
    struct mustache_template *t = mustache_compile((const char *)data, size, err, sizeof(err));
    if (!t) {
        /* A reason is always given, NUL-terminated within the buffer. */
        if (strnlen(err, sizeof(err)) == sizeof(err) || err[0] == '\0')
            abort();
        return 0;
    }
    size_t len = 0;
    char *out = mustache_render_string(t, context, partials, &len);
    if (out && strlen(out) > len)
        abort();
    free(out);
    size_t n = 0;
    mustache_render(t, json_object_get(context, "items"), NULL, discard, &n);
    mustache_template_free(t);
    return 0;
}
