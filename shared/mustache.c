/* mustache: the template compiler (text to a node tree), the renderer (node
 * tree and JSON to text) and template sets (partials from a folder).
 *
 * Longer than the ~600 lines the other modules keep to: all three work on the
 * same private node tree, and the Mustache spec's cases (tests/spec/mustache)
 * exercise them together; splitting would need a private header exposing the
 * tree to three files. */
#include "mustache.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "strbuf.h"
#include "xalloc.h"

/* The token tree. Names and text are slices of the template's own copy of its
 * source, so compiling allocates little beyond the node arrays. */

enum node_type {
    NODE_TEXT,
    /* Where a line of the source starts: a partial included on a standalone
     * line prints its indentation here, which is the spec's "each line of the
     * partial is indented" without re-parsing the partial per call site. */
    NODE_INDENT,
    NODE_VAR,
    NODE_RAW,
    NODE_SECTION,
    NODE_INVERTED,
    NODE_PARTIAL,
};

struct slice {
    const char *s;
    size_t len;
};

struct block {
    struct node *v;
    size_t n, cap;
};

struct node {
    enum node_type type;
    struct slice text;   /* TEXT: the bytes; otherwise the tag's name */
    struct slice *parts; /* the name split at dots; none for "." */
    size_t nparts;
    struct slice indent; /* PARTIAL: whitespace before a standalone tag */
    bool standalone;     /* PARTIAL: alone on its line, so its lines get indented */
    struct block *children;
};

struct mustache_template {
    char *text;
    size_t len;
    struct block root;
};

struct set_entry {
    char *name;
    size_t name_len;
    struct mustache_template *t;
};

struct mustache_set {
    struct set_entry *v;
    size_t n, cap;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void block_free(struct block *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->v[i].parts);
        if (b->v[i].children) {
            block_free(b->v[i].children);
            free(b->v[i].children);
        }
    }
    free(b->v);
}

static struct node *block_push(struct block *b, enum node_type type)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 8;
        b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
    }
    struct node *n = &b->v[b->n++];
    memset(n, 0, sizeof(*n));
    n->type = type;
    return n;
}

/* ---- parsing ---- */

struct open_section {
    struct node *node;
    size_t pos; /* where its tag starts, for error messages */
};

struct parser {
    const char *s;
    size_t len;
    size_t pos;
    struct slice open, close;
    /* Nothing has been emitted yet on the current source line: the next
     * text or tag gets an INDENT node first. */
    bool bol;
    struct block *root;
    struct block *cur;
    struct open_section stack[MUSTACHE_MAX_NESTING];
    size_t depth;
    char *err;
    size_t errlen;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static unsigned line_of(const struct parser *p, size_t pos)
{
    unsigned line = 1;
    for (size_t i = 0; i < pos && i < p->len; i++)
        if (p->s[i] == '\n')
            line++;
    return line;
}

/* Names go into messages cut short and without control bytes. */
#define NAME_FMT "%.*s"
#define NAME_ARG(sl) (int)((sl).len > 60 ? 60 : (sl).len), (sl).s

static bool is_line_end(const struct parser *p, size_t i)
{
    return i < p->len && (p->s[i] == '\n' || (p->s[i] == '\r' && i + 1 < p->len && p->s[i + 1] == '\n'));
}

static void mark_line_start(struct parser *p)
{
    if (p->bol) {
        block_push(p->cur, NODE_INDENT);
        p->bol = false;
    }
}

/* Appends source bytes [from, to) as text nodes, one per line, with an
 * INDENT node before each line that has content. */
static void push_text(struct parser *p, size_t from, size_t to)
{
    while (from < to) {
        const char *nl = memchr(p->s + from, '\n', to - from);
        size_t end = nl ? (size_t)(nl - p->s) + 1 : to;
        if (p->bol && !is_line_end(p, from))
            block_push(p->cur, NODE_INDENT);
        struct node *n = block_push(p->cur, NODE_TEXT);
        n->text = (struct slice){p->s + from, end - from};
        p->bol = nl != NULL;
        from = end;
    }
}

/* Finds the closing delimiter at or after from; with a non-zero sigil the
 * delimiter must directly follow that character ("}" of "{{{x}}}", "=" of
 * "{{=<% %>=}}"), which must itself lie at or after from. Returns the index
 * of the delimiter (after the sigil) or len when there is none. */
static size_t find_close(const struct parser *p, size_t from, char sigil)
{
    size_t i = from;
    while (i < p->len) {
        const char *hit = memmem(p->s + i, p->len - i, p->close.s, p->close.len);
        if (!hit)
            return p->len;
        size_t at = (size_t)(hit - p->s);
        if (!sigil || (at > from && p->s[at - 1] == sigil))
            return at;
        i = at + 1;
    }
    return p->len;
}

static struct slice trim(const char *s, size_t len)
{
    while (len && is_space(*s)) {
        s++;
        len--;
    }
    while (len && is_space(s[len - 1]))
        len--;
    return (struct slice){s, len};
}

static bool slice_eq(struct slice a, struct slice b)
{
    return a.len == b.len && memcmp(a.s, b.s, a.len) == 0;
}

/* Checks a tag name and splits it at dots into n->parts. */
static int parse_name(struct parser *p, struct node *n, struct slice name, size_t tag_pos)
{
    if (name.len == 0) {
        set_err(p->err, p->errlen, "line %u: empty tag name", line_of(p, tag_pos));
        return -1;
    }
    for (size_t i = 0; i < name.len; i++) {
        if (is_space(name.s[i])) {
            set_err(p->err, p->errlen, "line %u: bad tag name '" NAME_FMT "'", line_of(p, tag_pos),
                    NAME_ARG(name));
            return -1;
        }
    }
    n->text = name;
    if (name.len == 1 && name.s[0] == '.')
        return 0;
    size_t count = 1;
    for (size_t i = 0; i < name.len; i++)
        if (name.s[i] == '.')
            count++;
    n->parts = xmalloc(count * sizeof(*n->parts));
    size_t start = 0;
    for (size_t i = 0; i <= name.len; i++) {
        if (i < name.len && name.s[i] != '.')
            continue;
        if (i == start) {
            set_err(p->err, p->errlen, "line %u: bad tag name '" NAME_FMT "'", line_of(p, tag_pos),
                    NAME_ARG(name));
            return -1;
        }
        n->parts[n->nparts++] = (struct slice){name.s + start, i - start};
        start = i + 1;
    }
    return 0;
}

/* "{{=<% %>=}}": the content between the equals signs holds exactly two
 * delimiters, separated by whitespace, neither containing '=' or spaces. */
static int parse_delimiters(struct parser *p, struct slice content, size_t tag_pos)
{
    struct slice in = trim(content.s, content.len);
    size_t i = 0;
    while (i < in.len && !is_space(in.s[i]))
        i++;
    struct slice open = {in.s, i};
    struct slice close = trim(in.s + i, in.len - i);
    bool ok =
        open.len > 0 && close.len > 0 && !memchr(open.s, '=', open.len) && !memchr(close.s, '=', close.len);
    for (size_t k = 0; ok && k < close.len; k++)
        if (is_space(close.s[k]))
            ok = false;
    if (!ok) {
        set_err(p->err, p->errlen, "line %u: bad set-delimiter tag", line_of(p, tag_pos));
        return -1;
    }
    p->open = open;
    p->close = close;
    return 0;
}

/* Parses the tag that starts at tag_pos (its opening delimiter) and adds it to
 * the tree. Returns 0, or -1 with p->err set. */
static int parse_tag(struct parser *p, size_t tag_pos)
{
    size_t c = tag_pos + p->open.len;
    if (c >= p->len) {
        set_err(p->err, p->errlen, "line %u: unclosed tag", line_of(p, tag_pos));
        return -1;
    }
    char sigil = p->s[c];
    char need = sigil == '{' ? '}' : sigil == '=' ? '=' : 0;
    size_t content_start = sigil && strchr("#^/!>=&{", sigil) ? c + 1 : c;
    size_t close_at = find_close(p, content_start, need);
    if (close_at >= p->len) {
        set_err(p->err, p->errlen, "line %u: unclosed tag", line_of(p, tag_pos));
        return -1;
    }
    size_t tag_end = close_at + p->close.len;
    size_t content_end = need ? close_at - 1 : close_at;
    struct slice content = {p->s + content_start, content_end - content_start};
    bool may_stand_alone = sigil && strchr("#^/!>=", sigil);

    /* Standalone: only blanks between the line start and the tag, and only
     * blanks and then a line end (or the end of the template) after it. Such
     * a line vanishes from the output, newline included. */
    size_t line_start = tag_pos;
    while (line_start > p->pos && is_blank(p->s[line_start - 1]))
        line_start--;
    bool standalone = false;
    size_t after = tag_end;
    if (may_stand_alone && (line_start == 0 || p->s[line_start - 1] == '\n')) {
        size_t q = tag_end;
        while (q < p->len && is_blank(p->s[q]))
            q++;
        if (q == p->len) {
            standalone = true;
            after = q;
        } else if (is_line_end(p, q)) {
            standalone = true;
            after = q + (p->s[q] == '\r' ? 2 : 1);
        }
    }

    push_text(p, p->pos, standalone ? line_start : tag_pos);
    if (!standalone)
        mark_line_start(p);
    p->pos = after;

    struct slice name = trim(content.s, content.len);
    struct node *n;
    switch (sigil) {
    case '!':
        break;
    case '=':
        if (parse_delimiters(p, content, tag_pos) < 0)
            return -1;
        break;
    case '#':
    case '^':
        if (p->depth == MUSTACHE_MAX_NESTING) {
            set_err(p->err, p->errlen, "line %u: sections nested deeper than %d", line_of(p, tag_pos),
                    MUSTACHE_MAX_NESTING);
            return -1;
        }
        n = block_push(p->cur, sigil == '#' ? NODE_SECTION : NODE_INVERTED);
        n->children = xcalloc(1, sizeof(*n->children));
        if (parse_name(p, n, name, tag_pos) < 0)
            return -1;
        p->stack[p->depth++] = (struct open_section){n, tag_pos};
        p->cur = n->children;
        break;
    case '/': {
        if (p->depth == 0) {
            set_err(p->err, p->errlen, "line %u: close of unopened section '" NAME_FMT "'",
                    line_of(p, tag_pos), NAME_ARG(name));
            return -1;
        }
        struct open_section *top = &p->stack[p->depth - 1];
        if (!slice_eq(name, top->node->text)) {
            set_err(p->err, p->errlen,
                    "line %u: mismatched close '" NAME_FMT "', expected '" NAME_FMT "' (line %u)",
                    line_of(p, tag_pos), NAME_ARG(name), NAME_ARG(top->node->text), line_of(p, top->pos));
            return -1;
        }
        p->depth--;
        p->cur = p->depth ? p->stack[p->depth - 1].node->children : p->root;
        break;
    }
    case '>':
        n = block_push(p->cur, NODE_PARTIAL);
        if (parse_name(p, n, name, tag_pos) < 0)
            return -1;
        n->standalone = standalone;
        if (standalone)
            n->indent = (struct slice){p->s + line_start, tag_pos - line_start};
        break;
    default:
        n = block_push(p->cur, sigil == '&' || sigil == '{' ? NODE_RAW : NODE_VAR);
        if (parse_name(p, n, name, tag_pos) < 0)
            return -1;
        break;
    }
    if (standalone)
        p->bol = true;
    return 0;
}

struct mustache_template *mustache_compile(const char *text, size_t len, char *err, size_t errlen)
{
    struct mustache_template *t = xcalloc(1, sizeof(*t));
    t->text = xmalloc(len + 1);
    if (len)
        memcpy(t->text, text, len);
    t->text[len] = '\0';
    t->len = len;

    struct parser *p = xcalloc(1, sizeof(*p));
    p->s = t->text;
    p->len = len;
    p->open = (struct slice){"{{", 2};
    p->close = (struct slice){"}}", 2};
    p->bol = true;
    p->root = &t->root;
    p->cur = &t->root;
    p->err = err;
    p->errlen = errlen;

    int rc = 0;
    while (rc == 0 && p->pos < len) {
        const char *hit = memmem(p->s + p->pos, len - p->pos, p->open.s, p->open.len);
        if (!hit) {
            push_text(p, p->pos, len);
            p->pos = len;
            break;
        }
        rc = parse_tag(p, (size_t)(hit - p->s));
    }
    if (rc == 0 && p->depth) {
        struct open_section *top = &p->stack[p->depth - 1];
        set_err(err, errlen, "line %u: unclosed section '" NAME_FMT "'", line_of(p, top->pos),
                NAME_ARG(top->node->text));
        rc = -1;
    }
    free(p);
    if (rc < 0) {
        mustache_template_free(t);
        return NULL;
    }
    return t;
}

void mustache_template_free(struct mustache_template *t)
{
    if (!t)
        return;
    block_free(&t->root);
    free(t->text);
    free(t);
}

/* ---- rendering ---- */

struct frame {
    const json_t *v;
    const struct frame *up;
};

struct render {
    const struct mustache_set *set;
    void (*emit)(void *ctx, const char *s, size_t n);
    void *ctx;
    unsigned long steps;
    int partial_depth;
};

static const struct mustache_template *set_find(const struct mustache_set *set, struct slice name);

/* The spec's lookup: "." is the top of the stack; otherwise the first part is
 * searched from the top of the stack down, and the remaining parts only
 * inside what it found (so a.b never falls back to an outer "b"). */
static const json_t *lookup(struct render *r, const struct frame *f, const struct node *n)
{
    if (n->nparts == 0)
        return f ? f->v : NULL;
    const json_t *v = NULL;
    /* Each level searched counts against the budget: deep stacks times many
     * tags would otherwise be work the step limit does not see. */
    for (; f && !v; f = f->up, r->steps++)
        if (json_is_object(f->v))
            v = json_object_getn(f->v, n->parts[0].s, n->parts[0].len);
    for (size_t i = 1; v && i < n->nparts; i++)
        v = json_is_object(v) ? json_object_getn(v, n->parts[i].s, n->parts[i].len) : NULL;
    return v;
}

static bool truthy(const json_t *v)
{
    if (!v)
        return false;
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE:
        return false;
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0.0;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    default:
        return true;
    }
}

static void emit_escaped(struct render *r, const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *ent;
        switch (s[i]) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = "&quot;";
            break;
        case '\'':
            ent = "&#39;";
            break;
        default:
            continue;
        }
        if (i > start)
            r->emit(r->ctx, s + start, i - start);
        r->emit(r->ctx, ent, strlen(ent));
        start = i + 1;
    }
    if (n > start)
        r->emit(r->ctx, s + start, n - start);
}

/* The shortest %g form that reads back as the same double, so 1.21 prints as
 * "1.21" rather than "1.2100000000000000". */
static int format_real(double d, char *buf, size_t size)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return n;
}

static void emit_value(struct render *r, const json_t *v, bool escape)
{
    char buf[64];
    const char *s = NULL;
    size_t n = 0;
    if (!v)
        return;
    switch (json_typeof(v)) {
    case JSON_STRING:
        s = json_string_value(v);
        n = json_string_length(v);
        break;
    case JSON_INTEGER:
        n = (size_t)snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = buf;
        break;
    case JSON_REAL:
        n = (size_t)format_real(json_real_value(v), buf, sizeof(buf));
        s = buf;
        break;
    case JSON_TRUE:
        s = "true";
        n = 4;
        break;
    case JSON_FALSE:
        s = "false";
        n = 5;
        break;
    default:
        return;
    }
    if (escape)
        emit_escaped(r, s, n);
    else if (n)
        r->emit(r->ctx, s, n);
}

static int render_block(struct render *r, const struct block *b, const struct frame *f, struct slice indent);

static int render_partial(struct render *r, const struct node *n, const struct frame *f, struct slice indent)
{
    const struct mustache_template *t = set_find(r->set, n->text);
    if (!t)
        return 0;
    if (r->partial_depth >= MUSTACHE_MAX_PARTIAL_DEPTH)
        return -1;
    /* A standalone partial's lines take the indentation of its tag on top of
     * what the enclosing partial already has; an inline one takes none. */
    struct slice inner = {"", 0};
    char *buf = NULL;
    if (n->standalone && indent.len + n->indent.len > 0) {
        buf = xmalloc(indent.len + n->indent.len);
        memcpy(buf, indent.s, indent.len);
        memcpy(buf + indent.len, n->indent.s, n->indent.len);
        inner = (struct slice){buf, indent.len + n->indent.len};
    }
    r->partial_depth++;
    int rc = render_block(r, &t->root, f, inner);
    r->partial_depth--;
    free(buf);
    return rc;
}

static int render_section(struct render *r, const struct node *n, const struct frame *f, struct slice indent)
{
    const json_t *v = lookup(r, f, n);
    if (n->type == NODE_INVERTED)
        return truthy(v) ? 0 : render_block(r, n->children, f, indent);
    if (!truthy(v))
        return 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            struct frame item = {json_array_get(v, i), f};
            if (render_block(r, n->children, &item, indent) < 0)
                return -1;
        }
        return 0;
    }
    struct frame pushed = {v, f};
    return render_block(r, n->children, &pushed, indent);
}

static int render_block(struct render *r, const struct block *b, const struct frame *f, struct slice indent)
{
    for (size_t i = 0; i < b->n; i++) {
        const struct node *n = &b->v[i];
        if (++r->steps > MUSTACHE_MAX_STEPS)
            return -1;
        switch (n->type) {
        case NODE_TEXT:
            r->emit(r->ctx, n->text.s, n->text.len);
            break;
        case NODE_INDENT:
            if (indent.len)
                r->emit(r->ctx, indent.s, indent.len);
            break;
        case NODE_VAR:
        case NODE_RAW:
            emit_value(r, lookup(r, f, n), n->type == NODE_VAR);
            break;
        case NODE_SECTION:
        case NODE_INVERTED:
            if (render_section(r, n, f, indent) < 0)
                return -1;
            break;
        case NODE_PARTIAL:
            if (render_partial(r, n, f, indent) < 0)
                return -1;
            break;
        }
    }
    return 0;
}

int mustache_render(const struct mustache_template *t, const json_t *context,
                    const struct mustache_set *partials, void (*emit)(void *ctx, const char *s, size_t n),
                    void *emit_ctx)
{
    struct render r = {.set = partials, .emit = emit, .ctx = emit_ctx};
    struct frame root = {context, NULL};
    return render_block(&r, &t->root, context ? &root : NULL, (struct slice){"", 0});
}

static void strbuf_emit(void *ctx, const char *s, size_t n)
{
    strbuf_add(ctx, s, n);
}

char *mustache_render_string(const struct mustache_template *t, const json_t *context,
                             const struct mustache_set *partials, size_t *len)
{
    /* Pages are mostly template text plus a bit, so start near that size and
     * double from there. */
    struct strbuf b = {0};
    strbuf_reserve(&b, t->len + t->len / 2 + 256);
    if (mustache_render(t, context, partials, strbuf_emit, &b) < 0) {
        strbuf_free(&b);
        return NULL;
    }
    return strbuf_take(&b, len);
}

/* ---- template sets ---- */

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct set_entry *)a)->name, ((const struct set_entry *)b)->name);
}

static const struct mustache_template *set_find(const struct mustache_set *set, struct slice name)
{
    if (!set)
        return NULL;
    size_t lo = 0, hi = set->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct set_entry *e = &set->v[mid];
        size_t m = e->name_len < name.len ? e->name_len : name.len;
        int c = memcmp(e->name, name.s, m);
        if (c == 0)
            c = e->name_len < name.len ? -1 : e->name_len > name.len ? 1 : 0;
        if (c == 0)
            return e->t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void set_add(struct mustache_set *set, const char *name, size_t name_len, struct mustache_template *t)
{
    if (set->n == set->cap) {
        set->cap = set->cap ? set->cap * 2 : 16;
        set->v = xrealloc(set->v, set->cap * sizeof(*set->v));
    }
    set->v[set->n++] = (struct set_entry){xstrndup(name, name_len), name_len, t};
}

static void set_sort(struct mustache_set *set)
{
    if (set->n > 1)
        qsort(set->v, set->n, sizeof(*set->v), entry_cmp);
}

const struct mustache_template *mustache_set_get(const struct mustache_set *set, const char *name)
{
    if (!name)
        return NULL;
    return set_find(set, (struct slice){name, strlen(name)});
}

size_t mustache_set_count(const struct mustache_set *set)
{
    return set ? set->n : 0;
}

void mustache_set_free(struct mustache_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++) {
        free(set->v[i].name);
        mustache_template_free(set->v[i].t);
    }
    free(set->v);
    free(set);
}

struct mustache_set *mustache_set_from_json(const json_t *partials, char *err, size_t errlen)
{
    struct mustache_set *set = xcalloc(1, sizeof(*set));
    if (!partials)
        return set;
    if (!json_is_object(partials)) {
        set_err(err, errlen, "partials are not a JSON object");
        mustache_set_free(set);
        return NULL;
    }
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)partials, key, value)
    {
        if (!json_is_string(value)) {
            set_err(err, errlen, "partial '%s': not a string", key);
            mustache_set_free(set);
            return NULL;
        }
        char cerr[256];
        struct mustache_template *t =
            mustache_compile(json_string_value(value), json_string_length(value), cerr, sizeof(cerr));
        if (!t) {
            set_err(err, errlen, "partial '%s': %s", key, cerr);
            mustache_set_free(set);
            return NULL;
        }
        set_add(set, key, strlen(key), t);
    }
    set_sort(set);
    return set;
}

static const char SUFFIX[] = ".mustache";

struct mustache_set *mustache_set_load_dir(const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        set_err(err, errlen, "%s: %s", dir, strerror(errno));
        return NULL;
    }
    struct mustache_set *set = xcalloc(1, sizeof(*set));
    const size_t suffix_len = sizeof(SUFFIX) - 1;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        size_t name_len = strlen(de->d_name);
        /* Dot files are editor leftovers, never templates. */
        if (de->d_name[0] == '.' || name_len <= suffix_len ||
            strcmp(de->d_name + name_len - suffix_len, SUFFIX) != 0)
            continue;
        char *path = xasprintf("%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        struct strbuf file = {0};
        if (strbuf_read_file(&file, path, SIZE_MAX) < 0) {
            set_err(err, errlen, "%s: %s", path, strerror(errno));
            strbuf_free(&file);
            free(path);
            goto fail;
        }
        size_t len;
        char *text = strbuf_take(&file, &len);
        char cerr[256];
        struct mustache_template *t = mustache_compile(text, len, cerr, sizeof(cerr));
        free(text);
        if (!t) {
            set_err(err, errlen, "%s: %s", path, cerr);
            free(path);
            goto fail;
        }
        free(path);
        set_add(set, de->d_name, name_len - suffix_len, t);
        errno = 0;
    }
    if (errno) {
        set_err(err, errlen, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    closedir(d);
    set_sort(set);
    return set;
fail:
    closedir(d);
    mustache_set_free(set);
    return NULL;
}
