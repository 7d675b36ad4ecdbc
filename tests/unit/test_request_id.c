/* request_id: which client ids are kept, and the ids made when none is. */
#include <criterion/criterion.h>
#include <string.h>

#include "shared/request_id.h"

Test(request_id, keeps_uuids_trace_ids_and_base64)
{
    const char *kept[] = {"abc-123",  "trace:42",  "0f8fad5b-d9cb-469f-a165-70867728950e",
                          "dGVzdA==", "a/b+c_d.e", "x"};
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        cr_expect(request_id_valid(kept[i], strlen(kept[i])), "%s refused", kept[i]);
}

Test(request_id, refuses_what_could_break_a_header_or_a_log_line)
{
    const char *refused[] = {"",         "a b", "a\"b", "a\rb",        "a\nb",
                             "<script>", "a;b", "a,b",  "caf\xc3\xa9", "a\tb"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        cr_expect_not(request_id_valid(refused[i], strlen(refused[i])), "%s kept", refused[i]);
    cr_expect_not(request_id_valid("a\0b", 3), "a NUL inside is kept");
}

Test(request_id, length_limit_is_inclusive)
{
    char id[REQUEST_ID_MAX + 2];
    memset(id, 'a', sizeof(id));
    cr_expect(request_id_valid(id, REQUEST_ID_MAX));
    cr_expect_not(request_id_valid(id, REQUEST_ID_MAX + 1));
}

Test(request_id, generated_ids_are_valid_unique_and_differ_between_generators)
{
    struct request_id_gen a, b;
    request_id_gen_init(&a);
    request_id_gen_init(&b);
    char first[REQUEST_ID_MAX + 1], second[REQUEST_ID_MAX + 1], other[REQUEST_ID_MAX + 1];
    size_t n = request_id_next(&a, first);
    cr_expect_eq(n, strlen(first));
    cr_expect(request_id_valid(first, n), "generated id %s is not valid", first);
    request_id_next(&a, second);
    cr_expect_str_neq(first, second);
    request_id_next(&b, other);
    cr_expect_str_neq(first, other, "two generators made the same id");
    /* The counter grows past 8 hex digits without losing its order. */
    a.counter = 0xffffffffu;
    n = request_id_next(&a, first);
    cr_expect(request_id_valid(first, n));
    cr_expect(strstr(first, "-100000000") != NULL, "%s", first);
}
