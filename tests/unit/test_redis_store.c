/* ratelimitd/redis_store: REDIS_URL parsing (the store itself is tested against a
 * real redis-server in tests/integration/test_ratelimitd.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimitd/redis_store.h"

Test(redis_url, parses_forms_and_refuses_junk)
{
    struct rld_redis_addr a;
    char err[256];
    cr_assert_eq(rld_redis_parse_url("redis://127.0.0.1:6379/0", &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(a.host, "127.0.0.1");
    cr_assert_eq(a.port, 6379);
    cr_assert_eq(a.db, 0);
    cr_assert_eq(a.password[0], 0);
    cr_assert_eq(rld_redis_parse_url("redis://:s3cret@cache.local:7000/3", &a, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_str_eq(a.password, "s3cret");
    cr_assert_str_eq(a.host, "cache.local");
    cr_assert_eq(a.port, 7000);
    cr_assert_eq(a.db, 3);
    cr_assert_eq(rld_redis_parse_url("redis://[::1]:6380", &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(a.host, "::1");
    cr_assert_eq(a.port, 6380);
    cr_assert_eq(rld_redis_parse_url("redis://localhost", &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(a.port, 6379);
    cr_assert_eq(rld_redis_parse_url("unix:///run/redis/redis.sock?db=2", &a, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert(a.is_unix);
    cr_assert_str_eq(a.host, "/run/redis/redis.sock");
    cr_assert_eq(a.db, 2);
    cr_assert_eq(rld_redis_parse_url("http://x", &a, err, sizeof(err)), -1);
    cr_assert_eq(rld_redis_parse_url("redis://h:99999/0", &a, err, sizeof(err)), -1);
    cr_assert_eq(rld_redis_parse_url("redis://h:6379/x", &a, err, sizeof(err)), -1);
    cr_assert_eq(rld_redis_parse_url("redis://", &a, err, sizeof(err)), -1);
    cr_assert_eq(rld_redis_parse_url("unix://relative.sock", &a, err, sizeof(err)), -1);
    cr_assert_eq(rld_redis_parse_url("unix:///x.sock?nodb", &a, err, sizeof(err)), -1);
}
