/* mustache: Mustache templates rendered from jansson values.
 *
 * Implements the spec's core modules (interpolation, sections, inverted
 * sections, comments, partials, set delimiters) including its standalone-line
 * whitespace rules and partial indentation; lambdas are not supported.
 *
 * A template is parsed once into a token tree (mustache_compile) and rendered
 * many times against a json_t context. Partials come from a template set, which
 * is a folder of *.mustache files (mustache_set_load_dir) or a JSON object of
 * name -> template text (mustache_set_from_json). Compiled templates and sets
 * are immutable, so one may be rendered from several threads at once.
 *
 * Rendering rules:
 *   {{name}}            value, HTML-escaped (& < > " ' become entities)
 *   {{{name}}} {{&name}} value as is
 *   {{a.b.c}}           dotted lookup: "a" is searched up the context stack,
 *                       then "b" and "c" only inside what "a" resolved to
 *   {{.}}               the current context
 *   strings render as themselves, integers plainly, reals in the shortest form
 *   that reads back to the same double (1.21 -> "1.21"), true/false as words,
 *   null, missing names, arrays and objects as nothing.
 *   {{#x}}..{{/x}}      skipped when x is falsey: missing, null, false, 0, "",
 *                       or an empty array (JavaScript's notion, so
 *                       {{#stock}} and {{#error}} read naturally); an array
 *                       renders the block once per element with the element
 *                       pushed on the context stack; anything else renders it
 *                       once with x pushed.
 *   {{^x}}..{{/x}}      rendered once when x is falsey.
 *   {{> name}}          the set's template "name" in the current context;
 *                       an unknown name renders nothing.
 *
 * Limits, so that a bad template or a recursive partial cannot exhaust the
 * stack or spin forever: sections nest at most MUSTACHE_MAX_NESTING deep in one
 * template (a compile error), partials nest at most MUSTACHE_MAX_PARTIAL_DEPTH
 * deep and one render does at most MUSTACHE_MAX_STEPS units of work (a tag, a
 * text run, or one context level searched for a name), which is a render
 * error. A page of a thousand products needs well under a tenth of that. */
#ifndef SHARED_MUSTACHE_H
#define SHARED_MUSTACHE_H

#include <jansson.h>
#include <stddef.h>

#define MUSTACHE_MAX_NESTING 100
#define MUSTACHE_MAX_PARTIAL_DEPTH 64
#define MUSTACHE_MAX_STEPS (1UL << 20)

struct mustache_template;
struct mustache_set;

/* Parses len bytes of text (need not be NUL-terminated) into a template that
 * owns a copy of the text. Returns NULL on a malformed template and writes a
 * reason with its 1-based line into err (e.g. "line 3: unclosed section
 * 'items'"): unclosed or mismatched sections, an unclosed tag, an empty name,
 * a bad set-delimiter tag, or nesting deeper than MUSTACHE_MAX_NESTING. err
 * may be NULL when errlen is 0. Free the result with mustache_template_free. */
struct mustache_template *mustache_compile(const char *text, size_t len, char *err, size_t errlen);

/* Frees a template and everything it owns; NULL is a no-op. */
void mustache_template_free(struct mustache_template *t);

/* Renders t against context (may be NULL: every name misses), passing the
 * output in pieces to emit(emit_ctx, bytes, length); the pieces are only valid
 * during the call. Partials are looked up in partials (may be NULL: every
 * partial renders nothing). Returns 0, or -1 when a limit stopped rendering
 * (partials nested too deep, MUSTACHE_MAX_STEPS exceeded); the output emitted
 * up to that point stays emitted and should not be shown to anyone. */
int mustache_render(const struct mustache_template *t, const json_t *context,
                    const struct mustache_set *partials, void (*emit)(void *ctx, const char *s, size_t n),
                    void *emit_ctx);

/* Renders like mustache_render into one NUL-terminated heap string that the
 * caller frees; stores its length in *len when len is not NULL. Returns NULL
 * when a limit stopped rendering. */
char *mustache_render_string(const struct mustache_template *t, const json_t *context,
                             const struct mustache_set *partials, size_t *len);

/* Loads and compiles every regular file named *.mustache directly in dir (no
 * subfolders); a template's name is its file name without ".mustache". Returns
 * the set (free with mustache_set_free), or NULL with a reason naming the file
 * in err when the folder cannot be read or any template fails to read or
 * compile, so a reload can keep serving the previous set. */
struct mustache_set *mustache_set_load_dir(const char *dir, char *err, size_t errlen);

/* Builds a set from a JSON object mapping names to template text (the shape
 * of the spec's "partials"). NULL partials gives an empty set. Returns NULL
 * with a reason naming the template when a value is not a string or does not
 * compile. The set does not keep a reference to partials. */
struct mustache_set *mustache_set_from_json(const json_t *partials, char *err, size_t errlen);

/* Returns the set's template called name, or NULL. The template belongs to
 * the set and lives until mustache_set_free. */
const struct mustache_template *mustache_set_get(const struct mustache_set *set, const char *name);

/* Returns how many templates the set holds. */
size_t mustache_set_count(const struct mustache_set *set);

/* Frees the set and all its templates; NULL is a no-op. */
void mustache_set_free(struct mustache_set *set);

#endif
