#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/mustache.h"
#include "shared/xalloc.h"

/* ---- the official spec (tests/spec/mustache/, copied from the Mustache spec) ---- */

static char *spec_path(const char *file)
{
    const char *root = getenv("SHOP_ROOT");
    if (!root || !*root)
        root = ".";
    return xasprintf("%s/tests/spec/mustache/%s", root, file);
}

/* Runs every case of one spec file, naming each failing case, and returns
 * how many cases failed. */
static int run_spec_file(const char *file)
{
    char *path = spec_path(file);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    cr_assert_not_null(doc, "%s: %s (line %d)", path, jerr.text, jerr.line);
    free(path);
    json_t *cases = json_object_get(doc, "tests");
    cr_assert(json_array_size(cases) > 0, "%s has no tests", file);

    int failed = 0;
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *tmpl = json_string_value(json_object_get(c, "template"));
        json_t *expected = json_object_get(c, "expected");
        cr_assert(name && tmpl && json_is_string(expected), "%s: case %zu is malformed", file, i);

        char err[256] = "";
        struct mustache_set *set = mustache_set_from_json(json_object_get(c, "partials"), err, sizeof(err));
        struct mustache_template *t = set ? mustache_compile(tmpl, strlen(tmpl), err, sizeof(err)) : NULL;
        if (!t) {
            cr_expect_fail("%s: \"%s\": does not compile: %s", file, name, err);
            failed++;
            mustache_set_free(set);
            continue;
        }
        size_t len = 0;
        char *out = mustache_render_string(t, json_object_get(c, "data"), set, &len);
        bool ok =
            out && len == json_string_length(expected) && memcmp(out, json_string_value(expected), len) == 0;
        if (!ok) {
            cr_expect_fail("%s: \"%s\": expected \"%s\", got \"%s\"", file, name, json_string_value(expected),
                           out ? out : "(render error)");
            failed++;
        }
        free(out);
        mustache_template_free(t);
        mustache_set_free(set);
    }
    json_decref(doc);
    return failed;
}

Test(mustache_spec, interpolation)
{
    cr_assert_eq(run_spec_file("interpolation.json"), 0);
}

Test(mustache_spec, sections)
{
    cr_assert_eq(run_spec_file("sections.json"), 0);
}

Test(mustache_spec, inverted)
{
    cr_assert_eq(run_spec_file("inverted.json"), 0);
}

Test(mustache_spec, comments)
{
    cr_assert_eq(run_spec_file("comments.json"), 0);
}

Test(mustache_spec, partials)
{
    cr_assert_eq(run_spec_file("partials.json"), 0);
}

Test(mustache_spec, delimiters)
{
    cr_assert_eq(run_spec_file("delimiters.json"), 0);
}

/* ---- helpers ---- */

/* Renders tmpl against the JSON text data with partials given as a JSON
 * object text (or NULL); returns the heap output, or NULL on a render error. */
static char *render(const char *tmpl, const char *data, const char *partials)
{
    char err[256] = "";
    json_error_t jerr;
    json_t *ctx = data ? json_loads(data, JSON_DECODE_ANY, &jerr) : NULL;
    cr_assert(!data || ctx, "bad test data %s: %s", data, jerr.text);
    json_t *pj = partials ? json_loads(partials, 0, &jerr) : NULL;
    cr_assert(!partials || pj, "bad test partials: %s", jerr.text);
    struct mustache_set *set = mustache_set_from_json(pj, err, sizeof(err));
    cr_assert_not_null(set, "%s", err);
    struct mustache_template *t = mustache_compile(tmpl, strlen(tmpl), err, sizeof(err));
    cr_assert_not_null(t, "compile \"%s\": %s", tmpl, err);
    char *out = mustache_render_string(t, ctx, set, NULL);
    mustache_template_free(t);
    mustache_set_free(set);
    json_decref(ctx);
    json_decref(pj);
    return out;
}

static void expect_render(const char *tmpl, const char *data, const char *partials, const char *want)
{
    char *out = render(tmpl, data, partials);
    cr_assert_not_null(out, "render \"%s\" failed", tmpl);
    cr_expect_str_eq(out, want, "template \"%s\"", tmpl);
    free(out);
}

/* Compiles tmpl expecting failure with a reason containing want. */
static void expect_compile_error(const char *tmpl, const char *want)
{
    char err[256] = "";
    struct mustache_template *t = mustache_compile(tmpl, strlen(tmpl), err, sizeof(err));
    cr_assert_null(t, "\"%s\" compiled", tmpl);
    cr_expect(strstr(err, want) != NULL, "\"%s\": error \"%s\" lacks \"%s\"", tmpl, err, want);
}

/* ---- compile errors ---- */

Test(mustache_errors, unclosed_section_names_it_and_its_line)
{
    expect_compile_error("<ul>\n\n{{#items}}\n<li>{{name}}</li>\n", "line 3: unclosed section 'items'");
    expect_compile_error("{{^empty}}none", "line 1: unclosed section 'empty'");
}

Test(mustache_errors, mismatched_and_unopened_close)
{
    expect_compile_error("{{#a}}\n{{#b}}\n{{/a}}\n{{/b}}", "line 3: mismatched close 'a', expected 'b'");
    expect_compile_error("x\n{{/a}}", "line 2: close of unopened section 'a'");
}

Test(mustache_errors, unclosed_tags)
{
    expect_compile_error("Hello {{name", "line 1: unclosed tag");
    expect_compile_error("a\nb {{{name}}", "line 2: unclosed tag");
    expect_compile_error("{{", "unclosed tag");
    expect_compile_error("{{! comment never ends", "unclosed tag");
    expect_compile_error("{{=<% %>=}} <%name", "unclosed tag");
}

Test(mustache_errors, bad_delimiters_and_names)
{
    expect_compile_error("{{=<%=}}", "bad set-delimiter tag");
    expect_compile_error("{{= =}}", "bad set-delimiter tag");
    expect_compile_error("{{=<% %> x=}}", "bad set-delimiter tag");
    expect_compile_error("{{=a= b=}}", "bad set-delimiter tag");
    expect_compile_error("{{}}", "empty tag name");
    expect_compile_error("{{#}}{{/}}", "empty tag name");
    expect_compile_error("{{>  }}", "empty tag name");
    expect_compile_error("{{first name}}", "bad tag name 'first name'");
    expect_compile_error("{{a..b}}", "bad tag name");
    expect_compile_error("{{a.}}", "bad tag name");
}

Test(mustache_errors, nesting_limit)
{
    size_t n = MUSTACHE_MAX_NESTING;
    char *ok = xmalloc(n * 12 + 1), *deep = xmalloc((n + 1) * 12 + 1);
    ok[0] = deep[0] = '\0';
    for (size_t i = 0; i < n; i++)
        strcat(ok, "{{#a}}");
    for (size_t i = 0; i < n; i++)
        strcat(ok, "{{/a}}");
    for (size_t i = 0; i <= n; i++)
        strcat(deep, "{{#a}}");
    for (size_t i = 0; i <= n; i++)
        strcat(deep, "{{/a}}");
    char err[128] = "";
    struct mustache_template *t = mustache_compile(ok, strlen(ok), err, sizeof(err));
    cr_assert_not_null(t, "%s", err);
    json_t *ctx = json_pack("{s:b}", "a", 1);
    char *out = mustache_render_string(t, ctx, NULL, NULL);
    cr_assert_str_eq(out, "");
    free(out);
    mustache_template_free(t);
    json_decref(ctx);
    expect_compile_error(deep, "nested deeper than 100");
    free(ok);
    free(deep);
}

Test(mustache_errors, null_error_buffer_is_allowed)
{
    cr_assert_null(mustache_compile("{{#a}}", 6, NULL, 0));
    char tiny[4];
    cr_assert_null(mustache_compile("{{#abc}}", 8, tiny, sizeof(tiny)));
    cr_assert_str_eq(tiny, "lin");
}

/* ---- rendering ---- */

Test(mustache_render, escapes_html_by_default)
{
    const char *data = "{\"x\": \"<script>alert(1)</script>\", \"q\": \"a'b\\\"c&d\"}";
    expect_render("{{x}}", data, NULL, "&lt;script&gt;alert(1)&lt;/script&gt;");
    expect_render("<a title=\"{{q}}\">", data, NULL, "<a title=\"a&#39;b&quot;c&amp;d\">");
    expect_render("{{{x}}}|{{& x}}", data, NULL, "<script>alert(1)</script>|<script>alert(1)</script>");
    expect_render("{{#x}}{{.}}{{/x}}", data, NULL, "&lt;script&gt;alert(1)&lt;/script&gt;");
}

Test(mustache_render, scalars)
{
    const char *data = "{\"i\": -42, \"big\": 9007199254740993, \"r\": 0.1, \"e\": 1e300, \"whole\": 3.0,"
                       "\"t\": true, \"f\": false, \"n\": null, \"list\": [1, 2], \"obj\": {\"k\": 1}}";
    expect_render("{{i}} {{big}} {{r}} {{e}} {{whole}}", data, NULL, "-42 9007199254740993 0.1 1e+300 3");
    expect_render("[{{t}} {{f}} {{n}} {{list}} {{obj}} {{missing}}]", data, NULL, "[true false    ]");
}

Test(mustache_render, truthiness)
{
    const char *data =
        "{\"zero\": 0, \"zr\": 0.0, \"empty\": \"\", \"list\": [], \"obj\": {}, \"n\": 3, \"s\": \"x\"}";
    expect_render("{{#zero}}A{{/zero}}{{#zr}}B{{/zr}}{{#empty}}C{{/empty}}{{#list}}D{{/list}}", data, NULL,
                  "");
    expect_render("{{^zero}}A{{/zero}}{{^empty}}C{{/empty}}{{^list}}D{{/list}}{{^obj}}E{{/obj}}", data, NULL,
                  "ACD");
    expect_render("{{#obj}}E{{/obj}}{{#n}}{{.}}{{/n}}{{#s}}{{.}}{{/s}}", data, NULL, "E3x");
}

Test(mustache_render, context_stack_and_dotted_names)
{
    const char *data = "{\"shop\": \"S\", \"user\": {\"name\": \"Ann\", \"cart\": {\"total\": 5}},"
                       "\"items\": [{\"name\": \"pen\", \"qty\": 2}, {\"name\": \"ink\"}], \"qty\": 9}";
    expect_render("{{#items}}{{name}}x{{qty}}@{{shop}};{{/items}}", data, NULL, "penx2@S;inkx9@S;");
    expect_render("{{user.cart.total}} {{user.cart.missing}} {{user.name.first}}", data, NULL, "5  ");
    expect_render("{{#user}}{{#cart}}{{name}}:{{total}}{{/cart}}{{/user}}", data, NULL, "Ann:5");
}

Test(mustache_render, null_context_and_null_set)
{
    struct mustache_template *t = mustache_compile("a{{x}}{{#y}}b{{/y}}{{^y}}c{{/y}}{{>p}}",
                                                   strlen("a{{x}}{{#y}}b{{/y}}{{^y}}c{{/y}}{{>p}}"), NULL, 0);
    cr_assert_not_null(t);
    size_t len = 99;
    char *out = mustache_render_string(t, NULL, NULL, &len);
    cr_assert_str_eq(out, "ac");
    cr_assert_eq(len, 2);
    free(out);
    mustache_template_free(t);
}

Test(mustache_render, text_with_nul_bytes)
{
    const char tmpl[] = "a\0b{{x}}\0";
    struct mustache_template *t = mustache_compile(tmpl, sizeof(tmpl) - 1, NULL, 0);
    cr_assert_not_null(t);
    json_t *ctx = json_pack("{s:s}", "x", "X");
    size_t len;
    char *out = mustache_render_string(t, ctx, NULL, &len);
    cr_assert_eq(len, 5);
    cr_assert(memcmp(out, "a\0bX\0", 5) == 0);
    free(out);
    json_decref(ctx);
    mustache_template_free(t);
}

Test(mustache_render, delimiters_persist_and_crlf_standalone)
{
    expect_render("{{=<% %>=}}<%a%>{{a}}<%={{ }}=%>{{a}}", "{\"a\": 1}", NULL, "1{{a}}1");
    expect_render("<ul>\r\n  {{#l}}\r\n  <li>{{.}}</li>\r\n  {{/l}}\r\n</ul>", "{\"l\": [1, 2]}", NULL,
                  "<ul>\r\n  <li>1</li>\r\n  <li>2</li>\r\n</ul>");
}

Test(mustache_render, nested_standalone_partials_indent)
{
    const char *partials =
        "{\"outer\": \"<div>\\n  {{>inner}}\\n</div>\\n\", \"inner\": \"<p>\\n{{t}}\\n</p>\\n\"}";
    expect_render("<body>\n  {{>outer}}\n</body>\n", "{\"t\": \"x\\ny\"}", partials,
                  "<body>\n  <div>\n    <p>\n    x\ny\n    </p>\n  </div>\n</body>\n");
    /* every rendered line of a section inside an indented partial is indented */
    expect_render("<body>\n  {{>list}}\n</body>\n", "{\"l\": [1, 2]}",
                  "{\"list\": \"<ul>\\n{{#l}}\\n<li>{{.}}</li>\\n{{/l}}\\n</ul>\\n\"}",
                  "<body>\n  <ul>\n  <li>1</li>\n  <li>2</li>\n  </ul>\n</body>\n");
    /* an inline partial keeps its own lines as they are */
    expect_render("- {{>inner}}", "{\"t\": \"z\"}", partials, "- <p>\nz\n</p>\n");
}

/* ---- limits ---- */

static void count_emit(void *ctx, const char *s, size_t n)
{
    (void)s;
    *(size_t *)ctx += n;
}

Test(mustache_limits, recursive_partial_stops_with_error)
{
    json_t *pj = json_pack("{s:s, s:s, s:s}", "loop", "x{{>loop}}", "a", "{{>b}}", "b", "{{>a}}");
    struct mustache_set *set = mustache_set_from_json(pj, NULL, 0);
    cr_assert_not_null(set);
    json_decref(pj);

    size_t n = 0;
    int rc = mustache_render(mustache_set_get(set, "loop"), NULL, set, count_emit, &n);
    cr_expect_eq(rc, -1);
    cr_expect_eq(n, MUSTACHE_MAX_PARTIAL_DEPTH + 1, "emitted %zu bytes", n);
    cr_expect_null(mustache_render_string(mustache_set_get(set, "a"), NULL, set, NULL));
    mustache_set_free(set);
}

Test(mustache_limits, partial_chain_within_limit_renders)
{
    json_t *pj = json_object();
    for (int i = 0; i < 40; i++) {
        char name[16], text[32];
        snprintf(name, sizeof(name), "p%d", i);
        snprintf(text, sizeof(text), "%d{{>p%d}}", i % 10, i + 1);
        json_object_set_new(pj, name, json_string(text));
    }
    struct mustache_set *set = mustache_set_from_json(pj, NULL, 0);
    json_decref(pj);
    cr_assert_eq(mustache_set_count(set), 40);
    char *out = mustache_render_string(mustache_set_get(set, "p0"), NULL, set, NULL);
    cr_assert_str_eq(out, "0123456789012345678901234567890123456789");
    free(out);
    mustache_set_free(set);
}

Test(mustache_limits, runaway_loops_hit_the_step_budget)
{
    json_t *ctx = json_object();
    json_t *list = json_array();
    for (int i = 0; i < 16; i++)
        json_array_append_new(list, json_integer(i));
    json_object_set_new(ctx, "l", list);
    const char *tmpl = "{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}x{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}";
    struct mustache_template *t = mustache_compile(tmpl, strlen(tmpl), NULL, 0);
    cr_assert_not_null(t);
    size_t n = 0;
    cr_expect_eq(mustache_render(t, ctx, NULL, count_emit, &n), -1);
    cr_expect(n > 0 && n < MUSTACHE_MAX_STEPS);
    mustache_template_free(t);
    json_decref(ctx);
}

Test(mustache_limits, large_list_renders_fully)
{
    json_t *ctx = json_object();
    json_t *items = json_array();
    for (int i = 0; i < 20000; i++)
        json_array_append_new(items,
                              json_pack("{s:i, s:s, s:f}", "id", i, "name", "Widget <b>", "price", 9.5));
    json_object_set_new(ctx, "products", items);
    const char *tmpl =
        "<table>\n{{#products}}\n  <tr><td>{{id}}</td><td>{{name}}</td><td>{{price}}</td></tr>\n"
        "{{/products}}\n</table>\n";
    struct mustache_template *t = mustache_compile(tmpl, strlen(tmpl), NULL, 0);
    cr_assert_not_null(t);
    size_t len;
    char *out = mustache_render_string(t, ctx, NULL, &len);
    cr_assert_not_null(out);
    cr_expect_eq(strlen(out), len);
    cr_expect(strstr(out, "<tr><td>19999</td><td>Widget &lt;b&gt;</td><td>9.5</td></tr>\n</table>\n") !=
              NULL);
    cr_expect(strncmp(out, "<table>\n  <tr><td>0</td>", 24) == 0);
    free(out);
    mustache_template_free(t);
    json_decref(ctx);
}

/* ---- template sets ---- */

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
    free(path);
}

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/shop-mustache-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char *cmd = xasprintf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    free(cmd);
}

TestSuite(mustache_set, .init = make_tmpdir, .fini = remove_tmpdir);

Test(mustache_set, load_dir_compiles_every_template)
{
    write_file("page.mustache", "<h1>{{title}}</h1>\n{{> footer}}\n");
    write_file("footer.mustache", "<footer>{{year}}</footer>\n");
    write_file("notes.txt", "{{#not a template");
    write_file(".page.mustache.swp", "{{#");
    char *sub = xasprintf("%s/sub.mustache", tmpdir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    free(sub);

    char err[256] = "";
    struct mustache_set *set = mustache_set_load_dir(tmpdir, err, sizeof(err));
    cr_assert_not_null(set, "%s", err);
    cr_expect_eq(mustache_set_count(set), 2);
    cr_expect_null(mustache_set_get(set, "notes"));
    cr_expect_null(mustache_set_get(set, "sub"));
    cr_expect_null(mustache_set_get(set, "page.mustache"));
    const struct mustache_template *page = mustache_set_get(set, "page");
    cr_assert_not_null(page);
    json_t *ctx = json_pack("{s:s, s:i}", "title", "Shop & Co", "year", 2026);
    char *out = mustache_render_string(page, ctx, set, NULL);
    cr_expect_str_eq(out, "<h1>Shop &amp; Co</h1>\n<footer>2026</footer>\n");
    free(out);
    json_decref(ctx);
    mustache_set_free(set);
}

Test(mustache_set, load_dir_reports_the_broken_file)
{
    write_file("good.mustache", "ok");
    write_file("bad.mustache", "a\n{{#items}}\n");
    char err[256] = "";
    cr_assert_null(mustache_set_load_dir(tmpdir, err, sizeof(err)));
    cr_expect(strstr(err, "bad.mustache: line 2: unclosed section 'items'") != NULL, "%s", err);
}

Test(mustache_set, load_dir_empty_and_missing)
{
    char err[256] = "";
    struct mustache_set *set = mustache_set_load_dir(tmpdir, err, sizeof(err));
    cr_assert_not_null(set, "%s", err);
    cr_expect_eq(mustache_set_count(set), 0);
    mustache_set_free(set);

    char *missing = xasprintf("%s/nope", tmpdir);
    cr_expect_null(mustache_set_load_dir(missing, err, sizeof(err)));
    cr_expect(strstr(err, "No such file") != NULL, "%s", err);
    free(missing);
}

Test(mustache_set, from_json_rejects_bad_input)
{
    char err[256] = "";
    json_t *j = json_pack("{s:i}", "p", 1);
    cr_expect_null(mustache_set_from_json(j, err, sizeof(err)));
    cr_expect(strstr(err, "partial 'p': not a string") != NULL, "%s", err);
    json_decref(j);

    j = json_pack("{s:s}", "q", "{{/x}}");
    cr_expect_null(mustache_set_from_json(j, err, sizeof(err)));
    cr_expect(strstr(err, "partial 'q': line 1: close of unopened section 'x'") != NULL, "%s", err);
    json_decref(j);

    j = json_array();
    cr_expect_null(mustache_set_from_json(j, err, sizeof(err)));
    json_decref(j);

    struct mustache_set *empty = mustache_set_from_json(NULL, err, sizeof(err));
    cr_assert_not_null(empty);
    cr_expect_eq(mustache_set_count(empty), 0);
    cr_expect_null(mustache_set_get(empty, "x"));
    mustache_set_free(empty);
    mustache_set_free(NULL);
    mustache_template_free(NULL);
}
