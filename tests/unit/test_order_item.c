/* The DynamoDB item built from an order: every field with its type, money from
 * integer cents, and refusal of text that cannot travel as JSON. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "shopd/order_item.h"

static struct outbox_line lines[] = {
    {.product_id = 1, .name = "Apple", .unit_price_cents = 50, .quantity = 3},
    {.product_id = 42, .name = "Crème brûlée \"deluxe\"", .unit_price_cents = 1299, .quantity = 1},
};

static struct outbox_order order(void)
{
    return (struct outbox_order){
        .id = "6730f698-5aef-447a-b91e-fd8e1582bbc7",
        .user_id = 7,
        .user_email = "buyer@example.com",
        .total_cents = 1449,
        .currency = "USD",
        .created_at = "2026-11-26T21:40:00.123Z",
        .lines = lines,
        .nlines = 2,
    };
}

/* The single-typed value of attribute name in m, checking its type tag. */
static const char *attr(json_t *m, const char *name, const char *type)
{
    json_t *a = json_object_get(m, name);
    cr_assert(json_is_object(a), "attribute %s missing", name);
    cr_assert_eq(json_object_size(a), 1, "attribute %s has more than one type", name);
    json_t *v = json_object_get(a, type);
    cr_assert_not_null(v, "attribute %s is not of type %s", name, type);
    return json_string_value(v);
}

Test(order_item, has_every_field_with_its_type)
{
    struct outbox_order o = order();
    json_t *item = order_item_build(&o);
    cr_assert_not_null(item);
    cr_assert_eq(json_object_size(item), 8, "exactly the fields of DESIGN.md");
    cr_assert_str_eq(attr(item, "order_id", "S"), "6730f698-5aef-447a-b91e-fd8e1582bbc7");
    cr_assert_str_eq(attr(item, "user_id", "N"), "7");
    cr_assert_str_eq(attr(item, "user_email", "S"), "buyer@example.com");
    cr_assert_str_eq(attr(item, "total", "N"), "14.49");
    cr_assert_str_eq(attr(item, "total_cents", "N"), "1449");
    cr_assert_str_eq(attr(item, "currency", "S"), "USD");
    cr_assert_str_eq(attr(item, "created_at", "S"), "2026-11-26T21:40:00.123Z");

    json_t *items = json_object_get(json_object_get(item, "items"), "L");
    cr_assert(json_is_array(items));
    cr_assert_eq(json_array_size(items), 2);
    json_t *first = json_object_get(json_array_get(items, 0), "M");
    cr_assert_eq(json_object_size(first), 4);
    cr_assert_str_eq(attr(first, "product_id", "N"), "1");
    cr_assert_str_eq(attr(first, "name", "S"), "Apple");
    cr_assert_str_eq(attr(first, "unit_price", "N"), "0.50");
    cr_assert_str_eq(attr(first, "quantity", "N"), "3");
    json_t *second = json_object_get(json_array_get(items, 1), "M");
    cr_assert_str_eq(attr(second, "product_id", "N"), "42");
    cr_assert_str_eq(attr(second, "name", "S"), "Crème brûlée \"deluxe\"");
    cr_assert_str_eq(attr(second, "unit_price", "N"), "12.99");
    json_decref(item);
}

Test(order_item, an_order_without_lines_has_an_empty_list)
{
    struct outbox_order o = order();
    o.nlines = 0;
    o.lines = NULL;
    json_t *item = order_item_build(&o);
    cr_assert_not_null(item);
    json_t *items = json_object_get(json_object_get(item, "items"), "L");
    cr_assert(json_is_array(items));
    cr_assert_eq(json_array_size(items), 0);
    json_decref(item);
}

Test(order_item, text_that_is_not_utf8_is_refused)
{
    struct outbox_order o = order();
    o.user_email = "bad\xff@example.com";
    cr_assert_null(order_item_build(&o));

    struct outbox_line bad_line = {.product_id = 1, .name = "\xc3(", .unit_price_cents = 1, .quantity = 1};
    o = order();
    o.lines = &bad_line;
    o.nlines = 1;
    cr_assert_null(order_item_build(&o));
}

Test(order_item, dollars_are_exact_from_cents)
{
    static const struct {
        int64_t cents;
        const char *want;
    } cases[] = {
        {0, "0.00"},
        {5, "0.05"},
        {50, "0.50"},
        {100, "1.00"},
        {1299, "12.99"},
        {-150, "-1.50"},
        {-5, "-0.05"},
        {INT64_MAX, "92233720368547758.07"},
        {INT64_MIN, "-92233720368547758.08"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[32];
        order_item_dollars(cases[i].cents, buf, sizeof(buf));
        cr_assert_str_eq(buf, cases[i].want, "%lld cents", (long long)cases[i].cents);
    }
    char small[6];
    order_item_dollars(123456, small, sizeof(small));
    cr_assert_eq(strlen(small), 5, "truncated, still terminated");
}
